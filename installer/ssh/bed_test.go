package sshx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
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
	skipShort(t)
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

	// RunStream: 24 MB streamed from one command's stdout into another
	// command's stdin on the host (how a state dir's tar is relayed), never
	// held whole in memory; the host sees the same bytes.
	if out, err := h.Sh(ctx, "head -c 25165824 /dev/urandom > /root/stream-src"); err != nil {
		t.Fatal(err, out)
	}
	pr, pw := io.Pipe()
	recv := make(chan error, 1)
	go func() {
		r, err := c.Run(ctx, "cat > /root/stream-dst", pr)
		if err == nil {
			err = r.Err("receive")
		}
		recv <- err
	}()
	sent, err := c.RunStream(ctx, "cat /root/stream-src", nil, pw)
	pw.CloseWithError(err)
	if err != nil || sent.ExitCode != 0 || len(sent.Stdout) != 0 {
		t.Fatalf("RunStream: %v, exit %d, %d bytes collected (want them streamed)", err, sent.ExitCode, len(sent.Stdout))
	}
	if err := <-recv; err != nil {
		t.Fatal(err)
	}
	if out, err := h.Sh(ctx, "cmp /root/stream-src /root/stream-dst && stat -c %s /root/stream-dst"); err != nil || strings.TrimSpace(out) != "25165824" {
		t.Errorf("the relayed stream differs on the host: %q %v", out, err)
	}
	if st := c.Stats(); st.Connections != 1 || st.Sessions != 4 {
		t.Errorf("stats after the relay %+v, want 1 connection, 4 sessions", st)
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
		if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "sshx1: run: connection lost: no answer to 2 keepalives") {
			t.Errorf("Run on a dead link: err %v, want a transport error", err)
		}
	case <-ctx.Done():
		t.Fatal("Run on a dead link never returned")
	}
	if _, err := c.Run(ctx, "true", nil); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Errorf("Run after the keepalives failed: %v", err)
	}
	if _, err := c.ReadFile(ctx, p); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Errorf("ReadFile after the keepalives failed: %v", err)
	}
}

// TestBedBecomeAndCsh logs in as non-root users of a bed host: one with
// become: sudo (commands and files as root through sudo -n), one whose
// login shell is tcsh (scripts still run under /bin/sh).
func TestBedBecomeAndCsh(t *testing.T) {
	skipShort(t)
	if _, err := exec.LookPath("sudo"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sudo is not installed (make deps installs it)")
		}
		t.Skip("sudo is not installed (make deps installs it)")
	}
	bed := testbed.New(t, "sshx2")
	h := bed.Host("sshx2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub, err := os.ReadFile(bed.ClientKeyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// Homes under /srv: /home is not private to the bed host.
	for _, u := range []struct{ name, shell string }{{"edg", "/bin/bash"}, {"cshu", "/usr/bin/tcsh"}} {
		script := fmt.Sprintf(`set -e
useradd -M -d /srv/%[1]s -s %[2]s %[1]s
usermod -p '*' %[1]s
mkdir -p /srv/%[1]s/.ssh
cat > /srv/%[1]s/.ssh/authorized_keys
chown -R %[1]s: /srv/%[1]s
chmod 700 /srv/%[1]s /srv/%[1]s/.ssh
echo '%[1]s ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/%[1]s
chmod 440 /etc/sudoers.d/%[1]s
`, u.name, u.shell)
		if out, err := h.ExecInput(ctx, pub, "sh", "-c", script); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	inv, err := inventory.Load(bed.WriteInventory(t, bed.HostsYAML(nil)))
	if err != nil {
		t.Fatal(err)
	}
	base := inv.Hosts[0]
	inv.Hosts = append(inv.Hosts,
		&inventory.Host{Name: "edg", Address: base.Address, SSH: inventory.SSH{User: "edg", Become: "sudo"}},
		&inventory.Host{Name: "cshu", Address: base.Address, SSH: inventory.SSH{User: "cshu"}},
	)
	d := sshx.NewDialer(inv, sshx.Options{AgentSocket: "none", SSHConfigFile: "none"})
	run := func(c *sshx.Conn, cmd string, stdin string) string {
		t.Helper()
		var in *strings.Reader
		if stdin != "" {
			in = strings.NewReader(stdin)
		}
		res, err := c.Run(ctx, cmd, readerOrNil(in))
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 0 {
			t.Fatalf("%s: exit %d: %s", cmd, res.ExitCode, res.Stderr)
		}
		return string(res.Stdout)
	}
	// A multi-line script with every kind of quote and a here-document.
	script := "x='it'\"'\"'s'; y=\"$x \\\"q\\\" 100% \\\\ !\"\ncat <<EOF\n$y\nEOF\necho \"$(id -un) $0\""

	edg, err := d.DialConn(ctx, "edg")
	if err != nil {
		t.Fatal(err)
	}
	defer edg.Close()
	if got := run(edg, "id -un; id -u", ""); got != "root\n0\n" {
		t.Errorf("become: id says %q, want root", got)
	}
	if got := run(edg, script, ""); got != "it's \"q\" 100% \\ !\nroot /bin/sh\n" {
		t.Errorf("become: script printed %q", got)
	}
	if got := run(edg, "cat", "via sudo\n"); got != "via sudo\n" {
		t.Errorf("become: stdin through sudo: %q", got)
	}
	const p = "/etc/gridha-become.conf"
	if err := edg.WriteFile(ctx, p, []byte("secret=1\n"), 0o600, "root", "daemon"); err != nil {
		t.Fatal(err)
	}
	if st, err := h.Sh(ctx, "stat -c '%a %U %G' "+p+"; cat "+p); err != nil || st != "600 root daemon\nsecret=1\n" {
		t.Errorf("%s in the host: %q %v", p, st, err)
	}
	if b, err := edg.ReadFile(ctx, p); err != nil || string(b) != "secret=1\n" {
		t.Errorf("become: ReadFile of a root-only file: %q %v", b, err)
	}
	bin := []byte("\x00\r\n\xff\x1b[0m %s '\"\\\n")
	if err := edg.WriteFile(ctx, "/etc/gridha-bin", bin, 0o644, "", ""); err != nil {
		t.Fatal(err)
	}
	if b, err := edg.ReadFile(ctx, "/etc/gridha-bin"); err != nil || string(b) != string(bin) {
		t.Errorf("become: binary round trip %q, %v", b, err)
	}
	if b, err := h.ReadFile("/etc/gridha-bin"); err != nil || string(b) != string(bin) {
		t.Errorf("become: binary file in the host %q, %v", b, err)
	}
	if _, err := edg.ReadFile(ctx, "/etc/absent-gridha"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("become: missing file: %v", err)
	}
	if st := edg.Stats(); st.Sessions != 9 {
		t.Errorf("become: %d sessions, want 9 (sudo check + 8: files go through sudo, not SFTP)", st.Sessions)
	}
	// Cancelling a command run through sudo kills it in the host.
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := edg.Run(cctx, "sleep 41.5; echo never", nil)
		done <- err
	}()
	count := func() string {
		out, _ := h.Sh(ctx, "ps -eo args | grep -c '^sleep 41.5$' || true")
		return strings.TrimSpace(out)
	}
	for i := 0; i < 100 && count() != "1"; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	ccancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled sudo Run: %v", err)
	}
	for i := 0; i < 100 && count() != "0"; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if n := count(); n != "0" {
		t.Errorf("%s sleep processes left after cancel", n)
	}

	// A user sudo does not let in without a password: refused at dial.
	inv.Hosts = append(inv.Hosts, &inventory.Host{Name: "nosudo", Address: base.Address, SSH: inventory.SSH{User: "cshu", Become: "sudo"}})
	if out, err := h.Sh(ctx, "rm /etc/sudoers.d/cshu"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	_, err = d.DialConn(ctx, "nosudo")
	if err == nil || !strings.Contains(err.Error(), "nosudo: become: sudo -n as cshu failed (exit 1): sudo: a password is required; gridha needs sudo without a password (NOPASSWD)") {
		t.Errorf("sudo without NOPASSWD: %v", err)
	}

	cshu, err := d.DialConn(ctx, "cshu")
	if err != nil {
		t.Fatal(err)
	}
	defer cshu.Close()
	if got := run(cshu, `echo "$0" 'single '\''quoted'\'`, ""); got != "/bin/sh single 'quoted'\n" {
		t.Errorf("tcsh login: one-line script printed %q", got)
	}
	if got := run(cshu, script, ""); got != "it's \"q\" 100% \\ !\ncshu /bin/sh\n" {
		t.Errorf("tcsh login: script printed %q", got)
	}
	if got, _ := h.Sh(ctx, "getent passwd cshu | cut -d: -f7"); strings.TrimSpace(got) != "/usr/bin/tcsh" {
		t.Errorf("cshu's shell is %q", got)
	}
}

func readerOrNil(r *strings.Reader) io.Reader {
	if r == nil {
		return nil
	}
	return r
}

// skipShort: -short means no test bed (make unit).
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("test bed: skipped with -short")
	}
}
