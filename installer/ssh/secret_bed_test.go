package sshx_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	sshx "github.com/gridha/gridha/installer/ssh"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
)

// TestBedSecretWrites: an unprivileged user of the host (nobody, at nice
// -20) opens every file the moment inotify reports it in the target folder
// (and in any folder made there), during 20 writes of secret files —
// rotations of one key file, 0600 root:root and 0640 root:daemon — half
// over SFTP as root, half through sudo (with exactly the sudoers lines
// inventory/README.md documents for become: sudo). It reads no secret byte, while it
// does read the public files written the same way (so it would see a leak:
// with the old create-write-chmod order it read the secrets).
func TestBedSecretWrites(t *testing.T) {
	skipShort(t)
	if _, err := exec.LookPath("sudo"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sudo is not installed (make deps installs it)")
		}
		t.Skip("sudo is not installed (make deps installs it)")
	}
	bed := testbed.New(t, "sshx3")
	h := bed.Host("sshx3")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub, err := os.ReadFile(bed.ClientKeyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	script := `set -e
useradd -M -d /srv/edg -s /bin/sh edg
usermod -p '*' edg
mkdir -p /srv/edg/.ssh /etc/gridha-w
cat > /srv/edg/.ssh/authorized_keys
chown -R edg: /srv/edg
chmod 700 /srv/edg /srv/edg/.ssh
printf 'Defaults:edg !requiretty\nedg ALL=(root) NOPASSWD: /bin/sh\n' > /etc/sudoers.d/edg
chmod 440 /etc/sudoers.d/edg
`
	if out, err := h.ExecInput(ctx, pub, "sh", "-c", script); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	inv, err := inventory.Load(bed.WriteInventory(t, bed.HostsYAML(nil)))
	if err != nil {
		t.Fatal(err)
	}
	inv.Hosts = append(inv.Hosts, &inventory.Host{Name: "edg", Address: inv.Hosts[0].Address, SSH: inventory.SSH{User: "edg", Become: "sudo"}})
	d := sshx.NewDialer(inv, sshx.Options{AgentSocket: "none", SSHConfigFile: "none"})
	var conns []*sshx.Conn
	for _, name := range []string{"sshx3", "edg"} {
		c, err := d.DialConn(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}

	w, err := h.StartWatcher(ctx, "/etc/gridha-w")
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for i := range 20 {
		c := conns[i%2]
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		s := fmt.Sprintf("SECRET%02d-%s\n", i, hex.EncodeToString(b))
		secrets = append(secrets, strings.TrimSpace(s))
		mode, group := os.FileMode(0o600), "root"
		if i%4 >= 2 {
			mode, group = 0o640, "daemon"
		}
		if err := c.WriteFile(ctx, "/etc/gridha-w/key", []byte(s), mode, "root", group); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := c.WriteFile(ctx, fmt.Sprintf("/etc/gridha-w/public%d.conf", i), []byte(fmt.Sprintf("PUBLIC%02d\n", i)), 0o644, "root", "root"); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := w.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("watcher: %d events, %d files opened, %d refused, %d reads", rep.Events, rep.Opened, rep.Denied, len(rep.Reads))
	for _, s := range secrets {
		if rep.Contains(s[:8]) {
			t.Errorf("the watcher read %s...", s[:8])
		}
	}
	for _, i := range []int{0, 5, 10, 15} {
		if !rep.Contains(fmt.Sprintf("PUBLIC%02d", i)) {
			t.Errorf("the watcher did not read public%d.conf: it would not see a leak either", i)
		}
	}
	if st, err := h.Sh(ctx, "stat -c '%a %U %G' /etc/gridha-w/key; ls -A /etc/gridha-w | grep -c gridha || true"); err != nil || st != "640 root daemon\n0\n" {
		t.Errorf("key file %q %v, want 640 root daemon and no temporary file or folder left", st, err)
	}
}
