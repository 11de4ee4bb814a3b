package installer

import (
	"net"
	"sync"
	"time"
)

// WithDeadlines wraps a stream that cannot take deadlines (an SSH channel
// returns an error from SetDeadline) so that clients which insist on them
// (database/sql drivers) work: a deadline that passes closes the stream,
// which unblocks any read or write with an error. The stream is not usable
// after that, which is what such clients do with a timed-out connection.
func WithDeadlines(c net.Conn) net.Conn { return &deadlineConn{Conn: c} }

type deadlineConn struct {
	net.Conn
	mu             sync.Mutex
	rTimer, wTimer *time.Timer
}

func (c *deadlineConn) arm(timer **time.Timer, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *timer != nil {
		(*timer).Stop()
		*timer = nil
	}
	if t.IsZero() {
		return
	}
	*timer = time.AfterFunc(time.Until(t), func() { _ = c.Conn.Close() })
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.arm(&c.rTimer, t)
	c.arm(&c.wTimer, t)
	return nil
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error  { c.arm(&c.rTimer, t); return nil }
func (c *deadlineConn) SetWriteDeadline(t time.Time) error { c.arm(&c.wTimer, t); return nil }

func (c *deadlineConn) Close() error {
	c.arm(&c.rTimer, time.Time{})
	c.arm(&c.wTimer, time.Time{})
	return c.Conn.Close()
}
