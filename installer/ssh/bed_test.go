package sshx_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	sshx "github.com/gridha/gridha/installer/ssh"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
)

// TestBedHost dials a test-bed host from an inventory file the way gridha
// does, checks what it wrote from inside the host, and shows that
// keepalives close a connection whose host dropped off the network.
func TestBedHost(t *testing.T) {
	bed := testbed.New(t, "sshx1")
	h := bed.Host("sshx1")
	inv, err := inventory.Load(bed.WriteInventory(t, bed.HostsYAML(nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := sshx.NewDialer(inv, sshx.Options{AgentSocket: "none", SSHConfigFile: "none", KeepaliveInterval: time.Second, KeepaliveMax: 2, Log: t.Logf})
	c, err := d.DialConn(ctx, "sshx1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	res, err := c.Run(ctx, "hostname", nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := h.Sh(ctx, "hostname")
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != want {
		t.Errorf("hostname over SSH %q, in the host %q", res.Stdout, want)
	}

	const p = "/etc/gridha-sshx-test.conf"
	if err := c.WriteFile(ctx, p, []byte("lease=30\n"), 0o640, "root", "daemon"); err != nil {
		t.Fatal(err)
	}
	if b, err := h.ReadFile(p); err != nil || string(b) != "lease=30\n" {
		t.Errorf("%s in the host: %q %v", p, b, err)
	}
	if st, err := h.Sh(ctx, "stat -c '%a %U %G' "+p); err != nil || strings.TrimSpace(st) != "640 root daemon" {
		t.Errorf("%s: stat %q %v, want 640 root daemon", p, st, err)
	}
	if st := c.Stats(); st.Connections != 1 || st.Sessions != 2 {
		t.Errorf("stats %+v, want 1 connection, 2 sessions (run + sftp)", st)
	}

	// Cut the host's cable during a command: the keepalives go unanswered
	// and the Conn closes, so Run fails instead of hanging.
	done := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, "sleep 60", nil)
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	if err := h.LinkDown(); err != nil {
		t.Fatal(err)
	}
	defer h.LinkUp()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "sshx1: run: ") {
			t.Errorf("Run on a dead link: err %v, want a transport error", err)
		}
	case <-ctx.Done():
		t.Fatal("Run on a dead link never returned")
	}
	if _, err := c.Run(ctx, "true", nil); err == nil {
		t.Error("Run after the keepalives failed succeeded")
	}
}
