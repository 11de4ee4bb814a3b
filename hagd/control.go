package hagd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The control socket (0600, root) carries one JSON request per connection:
// {"cmd":"status"} | {"cmd":"takeover","group":G} | {"cmd":"giveup","group":G}
// and gets one JSON reply.

// ControlRequest is a request on the control socket.
type ControlRequest struct {
	Cmd   string `json:"cmd"`
	Group string `json:"group,omitempty"`
}

// ControlReply is the answer.
type ControlReply struct {
	OK     bool         `json:"ok"`
	Error  string       `json:"error,omitempty"`
	Status *StatusReply `json:"status,omitempty"`
}

func listenControl(path string) (net.Listener, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control %s: another hagd is running", path)
		}
		os.Remove(path)
	}
	old := unix.Umask(0o077)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return l, nil
}

func (d *Daemon) serveControl(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go d.control(c)
	}
}

func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

func (d *Daemon) control(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	enc := json.NewEncoder(c)
	uid, err := peerUID(c)
	if err != nil || (uid != 0 && uid != os.Geteuid()) {
		_ = enc.Encode(ControlReply{Error: "permission denied"})
		return
	}
	var req ControlRequest
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	if err := json.Unmarshal(line, &req); err != nil {
		_ = enc.Encode(ControlReply{Error: "bad request"})
		return
	}
	reply := make(chan ControlReply, 1)
	d.post(func() {
		now := time.Now()
		var r ControlReply
		switch req.Cmd {
		case "status":
			st := d.status()
			r = ControlReply{OK: true, Status: &st}
		case "takeover", "giveup":
			var acts []Action
			var err error
			if req.Cmd == "takeover" {
				acts, err = d.m.Takeover(now, req.Group)
			} else {
				acts, err = d.m.Giveup(now, req.Group)
			}
			if err != nil {
				r.Error = err.Error()
			} else {
				d.Log.Info("manual "+req.Cmd, "group", req.Group)
				d.exec(acts)
				r.OK = true
			}
		default:
			r.Error = fmt.Sprintf("unknown command %q", req.Cmd)
		}
		reply <- r
	})
	select {
	case r := <-reply:
		_ = enc.Encode(r)
	case <-time.After(4 * time.Second):
		_ = enc.Encode(ControlReply{Error: "daemon busy"})
	}
}

// Control sends one request to the daemon listening on socket.
func Control(ctx context.Context, socket string, req ControlRequest) (*ControlReply, error) {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "unix", socket)
	if err != nil {
		hint := "is hagd running?"
		if errors.Is(err, fs.ErrPermission) {
			hint = "the control socket is root's"
		}
		return nil, fmt.Errorf("hagd control %s: %w (%s)", socket, err, hint)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("hagd control: %w", err)
	}
	var r ControlReply
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		return nil, fmt.Errorf("hagd control: %w", err)
	}
	if !r.OK {
		return &r, fmt.Errorf("hagd: %s", r.Error)
	}
	return &r, nil
}
