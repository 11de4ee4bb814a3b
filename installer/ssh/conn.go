package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/gridha/gridha/installer"
)

// Conn is the SSH connection to one host. It is safe for concurrent use.
type Conn struct {
	host   string
	target *target
	dialer *Dialer

	client *ssh.Client
	jump   *ssh.Client // nil without ProxyJump

	connections atomic.Int64
	sessions    atomic.Int64

	sftpMu sync.Mutex
	sftp   *sftp.Client

	idMu sync.Mutex
	ids  *idCache

	// shellFiles forces ReadFile/WriteFile through shell commands, as with
	// become: sudo (tests use it to cover that path without sudo).
	shellFiles bool
	// noSFTP: the server refused the sftp subsystem; files go through
	// shell commands.
	noSFTP atomic.Bool

	slots chan struct{} // bounds concurrent exec sessions

	closeOnce sync.Once
	done      chan struct{}
	lostErr   atomic.Value // error: why keepalives closed the Conn
}

var _ installer.Conn = (*Conn)(nil)

// maxRunSessions is how many Runs may have a session open at once: below
// OpenSSH's default MaxSessions 10, leaving room for SFTP and a kill.
const maxRunSessions = 8

// connect dials the jump host (if any) and the target, and starts the
// keepalives.
func (c *Conn) connect(ctx context.Context) error {
	d := c.dialer
	t := c.target
	if t.proxyJump != "" {
		jt, err := d.jumpTarget(t)
		if err != nil {
			return err
		}
		jc, err := d.dialTarget(ctx, jt, nil)
		if err != nil {
			return fmt.Errorf("jump host %s: %w", t.proxyJump, err)
		}
		c.connections.Add(1)
		c.jump = jc
		go c.keepalive(jc)
	}
	cl, err := d.dialTarget(ctx, t, c.jump)
	if err != nil {
		if c.jump != nil {
			err = fmt.Errorf("%w (through jump host %s)", err, t.proxyJump)
		}
		c.Close() // the jump connection and its keepalive
		return err
	}
	c.connections.Add(1)
	c.client = cl
	go c.keepalive(cl)
	if c.become() {
		if err := c.checkSudo(ctx); err != nil {
			c.Close()
			return err
		}
	}
	return nil
}

// checkSudo fails early, with a hint, when become: sudo cannot work
// without a password or a terminal.
func (c *Conn) checkSudo(ctx context.Context) error {
	res, err := c.run(ctx, "true", nil, nil, false)
	if err != nil {
		return fmt.Errorf("become: sudo: %w", err)
	}
	if res.ExitCode != 0 {
		msg := strings.TrimSpace(string(res.Stderr))
		return fmt.Errorf("become: sudo -n as %s failed (exit %d): %s; gridha needs sudo without a password (NOPASSWD) and without requiretty for %s "+
			"(in /etc/sudoers.d: Defaults:%s !requiretty and %s ALL=(root) NOPASSWD: /bin/sh)",
			c.target.user, res.ExitCode, msg, c.target.user, c.target.user, c.target.user)
	}
	return nil
}

// keepalive sends keepalive@openssh.com every interval; a failed request or
// KeepaliveMax unanswered intervals close the whole Conn, so that every
// blocked operation on it fails instead of hanging.
func (c *Conn) keepalive(cl *ssh.Client) {
	interval := c.dialer.opts.KeepaliveInterval
	maxMissed := c.dialer.opts.KeepaliveMax
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := cl.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		answered := false
		for missed := 0; !answered; {
			select {
			case <-c.done:
				return
			case err := <-reply:
				if err != nil {
					c.lost(fmt.Errorf("keepalive failed: %w", err))
					return
				}
				answered = true
			case <-time.After(interval):
				missed++
				if missed >= maxMissed {
					c.lost(fmt.Errorf("no answer to %d keepalives in %v", missed, time.Duration(missed)*interval))
					return
				}
			}
		}
	}
}

// lost closes a Conn whose connection died, remembering why: operations
// that fail afterwards say so.
func (c *Conn) lost(why error) {
	select {
	case <-c.done: // closed by its owner meanwhile
		return
	default:
	}
	c.lostErr.CompareAndSwap(nil, why)
	c.dialer.logf("%s: connection lost: %v", c.host, why)
	c.Close()
}

// closedErr explains err when the Conn is closed.
func (c *Conn) closedErr(err error) error {
	select {
	case <-c.done:
	default:
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if why, _ := c.lostErr.Load().(error); why != nil {
		return fmt.Errorf("connection lost: %w", why)
	}
	if errors.Is(err, errClosed) {
		return err
	}
	return fmt.Errorf("%w: %v", errClosed, err)
}

// Host is the inventory name of the host.
func (c *Conn) Host() string { return c.host }

// Stats counts the connections (jump host included) and sessions (SFTP
// included) this Conn opened.
func (c *Conn) Stats() installer.Stats {
	return installer.Stats{Connections: int(c.connections.Load()), Sessions: int(c.sessions.Load())}
}

// Close closes the SFTP client and the connections.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		// The transport first: sftp's Close waits for its reader, which
		// only ends when the channel does (never, on a dead link).
		if c.client != nil {
			err = c.client.Close()
		}
		if c.jump != nil {
			c.jump.Close()
		}
		c.sftpMu.Lock()
		if c.sftp != nil {
			c.sftp.Close()
			c.sftp = nil
		}
		c.sftpMu.Unlock()
	})
	return err
}

// become reports whether commands and files go through sudo.
func (c *Conn) become() bool { return c.target.become == "sudo" && c.target.user != "root" }

// wrap makes script run under /bin/sh whatever the login shell, and under
// sudo when become says so (sudo -n fails instead of prompting for a
// password). The script first reports its process group on stderr, after
// marker, so that a cancelled Run can kill the whole group.
//
// The login shell (sshd runs "$SHELL -c <command>") only ever sees one
// line: a multi-line script travels as printf octal escapes that sh turns
// back into the script, because csh and tcsh cannot quote a newline. A
// script too long for one argument (Linux allows 128 KiB) travels on stdin
// instead when the caller has no stdin of its own: wrap then returns it as
// viaStdin, and the script's commands find stdin at its end, as usual.
func (c *Conn) wrap(script, marker string, stdinFree, watch bool) (cmd, viaStdin string) {
	watcher := ""
	if watch {
		watcher = sessionWatcher + "; "
	}
	report := `g=$$; if [ -r /proc/$$/stat ]; then read -r _gp _gc _gs _gpp g _gr < /proc/$$/stat || g=$$; fi; ` +
		`echo "` + marker + `$g" >&2; ` + watcher + `unset g _gp _gc _gs _gpp _gr _gw`
	inner := report
	switch {
	case stdinFree && len(script) > maxInlineScript/4:
		inner, viaStdin = `eval "$(cat)"`, report+"\n"+script
	case strings.ContainsAny(script, "\n\r"):
		inner = `eval "$(printf '` + printfEscape(report+"\n"+script) + `')"`
	case strings.TrimSpace(script) != "":
		inner = report + "; " + script
	}
	if c.become() {
		return "exec sudo -n -- /bin/sh -c " + installer.ShellQuote(inner), viaStdin
	}
	return "exec /bin/sh -c " + installer.ShellQuote(inner), viaStdin
}

// sessionWatcher (part of every command's prelude, after g is its process
// group) kills the command's process group when the SSH connection that
// started it is gone: sshd does not kill a session's processes when the
// client dies (gridha killed with SIGKILL, the link cut), and a copy or a
// dump must not go on without anyone to see its end. It looks for its own
// shell (it leaves when the command ends) and for the sshd process serving
// the connection (the shell's parent, or sudo's parent with become) after
// 1 s, then every 0.2 s: every poll is a sleep process, and most commands
// (a verify's one fact batch) end within the first second, so they pay for
// one sleep instead of one per 0.2 s of their run (a verify of a loaded
// node ran 10 of them). A command that runs on after its connection died is
// killed within about 1.2 s. It holds none of the session's descriptors: the session closes
// when the command ends. [ -d /proc/N ] rather than kill -0: a non-root
// login may not signal sshd. Without /proc (not Linux) there is no watcher.
// The parent's name is read with the shell's read, not cat: every command
// of every run pays for the prelude.
const sessionWatcher = `if [ -d /proc/$$ ] && [ -d /proc/$PPID ]; then _gw=$PPID; _gn=; { read -r _gn < /proc/$_gw/comm; } 2>/dev/null; if [ "$_gn" = sudo ]; then read -r _gp _gc _gs _gw _gr < /proc/$_gw/stat; fi; ` +
	`(sleep 1; while [ -d /proc/$$ ]; do [ -d /proc/$_gw ] || { kill -9 -$g; exit 0; }; sleep 0.2; done) </dev/null >/dev/null 2>&1 & fi`

// maxInlineScript bounds the command line sent to sshd: scripts longer
// than a quarter of it (escaping may quadruple them) go on stdin when they
// can (see wrap).
const maxInlineScript = 64 << 10

// printfEscape turns s into a printf format that prints s: every byte but
// letters, digits and a few safe marks becomes a \ooo octal escape.
func printfEscape(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte(" _-./,:=+@", ch) >= 0 {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "\\%03o", ch)
		}
	}
	return b.String()
}

// newSession opens a session, giving up when ctx ends.
// A refused open (sshd's MaxSessions reached, because a closed session is
// freed by the server a moment after we close it) is retried for a while.
func (c *Conn) newSession(ctx context.Context) (*ssh.Session, error) {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		var s *ssh.Session
		s, err = await(ctx, c.client.NewSession, func(s *ssh.Session) { s.Close() })
		if err == nil {
			c.sessions.Add(1)
			return s, nil
		}
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, errClosed
		case <-time.After(time.Duration(20+10*attempt) * time.Millisecond):
		}
	}
	return nil, err
}

// Run runs cmd with /bin/sh on the host in one session. A non-zero exit is
// in the result, not the error. When ctx ends, the remote command gets
// SIGKILL (its whole process group, through a second session), the session
// is closed and ctx.Err() is returned.
func (c *Conn) Run(ctx context.Context, cmd string, stdin io.Reader) (installer.CmdResult, error) {
	res, err := c.run(ctx, cmd, stdin, nil, true)
	if err != nil {
		return res, fmt.Errorf("%s: run: %w", c.host, c.closedErr(err))
	}
	return res, nil
}

// RunReadOnly is Run without the session watcher (installer.ReadOnlyRunner):
// for a command that changes nothing and ends by itself.
func (c *Conn) RunReadOnly(ctx context.Context, cmd string, stdin io.Reader) (installer.CmdResult, error) {
	res, err := c.run(ctx, cmd, stdin, nil, false)
	if err != nil {
		return res, fmt.Errorf("%s: run: %w", c.host, c.closedErr(err))
	}
	return res, nil
}

// RunStream is Run with the command's stdout written to stdout as it comes
// (CmdResult.Stdout stays empty): a stream too big to hold, such as a tar
// of a state folder relayed from one host to another.
func (c *Conn) RunStream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) (installer.CmdResult, error) {
	res, err := c.run(ctx, cmd, stdin, stdout, true)
	if err != nil {
		return res, fmt.Errorf("%s: run: %w", c.host, c.closedErr(err))
	}
	return res, nil
}

// run runs script in a session; watch adds the session watcher to its
// prelude (see sessionWatcher).
func (c *Conn) run(ctx context.Context, script string, stdin io.Reader, out io.Writer, watch bool) (installer.CmdResult, error) {
	var res installer.CmdResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	// sshd allows MaxSessions (10) open sessions per connection, SFTP's
	// included: more concurrent Runs wait for a slot instead of failing.
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return res, ctx.Err()
	}
	defer func() { <-c.slots }()
	s, err := c.newSession(ctx)
	if err != nil {
		return res, err
	}
	defer s.Close()
	marker := "@@gridha-pgid:" + randHex(6) + ":"
	var stdout bytes.Buffer
	stderr := &markedBuffer{marker: []byte(marker)}
	s.Stdout = &stdout
	if out != nil {
		s.Stdout = out
	}
	s.Stderr = stderr
	cmd, viaStdin := c.wrap(script, marker, stdin == nil, watch)
	switch {
	case viaStdin != "":
		s.Stdin = strings.NewReader(viaStdin)
	case stdin != nil:
		s.Stdin = stdin
	}
	if err := s.Start(cmd); err != nil {
		return res, err
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		s.Close()
		if pgid, ok := stderr.pgid(); ok {
			c.killGroup(pgid)
		}
		return res, ctx.Err()
	}
	res.Stdout = stdout.Bytes()
	res.Stderr = stderr.without()
	var ee *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitStatus()
	default:
		return res, err
	}
	return res, nil
}

// killGroup kills the process group of a cancelled command: sshd's signal
// reaches only the session's first process, not what it started.
func (c *Conn) killGroup(pgid int) {
	if pgid <= 1 {
		return
	}
	// Bounded: on a dead link the cancelled Run must still return soon.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.newSession(ctx)
	if err != nil {
		return
	}
	defer s.Close()
	// The shell's own kill: dash's takes "kill -9 -N" (not "--" nor
	// "-s KILL -N"); procps' /usr/bin/kill 4.0.2 under sudo left the group
	// alive in our tests.
	cmd := "kill -9 -" + strconv.Itoa(pgid) + " 2>/dev/null"
	if c.become() {
		cmd = "sudo -n /bin/sh -c " + installer.ShellQuote(cmd)
	}
	done := make(chan struct{})
	go func() {
		_ = s.Run("exec /bin/sh -c " + installer.ShellQuote(cmd))
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// markedBuffer collects stderr and finds the process-group line that wrap
// puts first (after anything the login shell itself printed).
type markedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker []byte
}

func (m *markedBuffer) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.buf.Write(p)
}

// line returns the span of the marker line in b (end after its newline).
func (m *markedBuffer) line(b []byte) (start, end int, ok bool) {
	start = bytes.Index(b, m.marker)
	if start < 0 {
		return 0, 0, false
	}
	nl := bytes.IndexByte(b[start:], '\n')
	if nl < 0 {
		return 0, 0, false
	}
	return start, start + nl + 1, true
}

func (m *markedBuffer) pgid() (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.buf.Bytes()
	start, end, ok := m.line(b)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(string(b[start+len(m.marker) : end-1]))
	return n, err == nil
}

// without returns stderr without the marker line.
func (m *markedBuffer) without() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.buf.Bytes()
	start, end, ok := m.line(b)
	if !ok {
		return b
	}
	out := append([]byte(nil), b[:start]...)
	return append(out, b[end:]...)
}

// Dial opens a stream to addr ("tcp" host:port or "unix" socket path) as
// seen from the host, through the SSH connection. The socket is opened by
// sshd as the login user (not through sudo).
func (c *Conn) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("%s: dial %s %s: unsupported network", c.host, network, addr)
	}
	nc, err := c.client.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s %s through ssh: %w", c.host, network, addr, c.closedErr(err))
	}
	return nc, nil
}

// await runs f in a goroutine and waits for it or for ctx. When ctx wins,
// a result that arrives later is released with drop.
func await[T any](ctx context.Context, f func() (T, error), drop func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	var mu sync.Mutex
	abandoned := false
	go func() {
		v, err := f()
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			if err == nil && drop != nil {
				drop(v)
			}
			return
		}
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		mu.Lock()
		select {
		case r := <-ch:
			if r.err == nil && drop != nil {
				drop(r.v)
			}
		default:
			abandoned = true
		}
		mu.Unlock()
		var zero T
		return zero, ctx.Err()
	}
}
