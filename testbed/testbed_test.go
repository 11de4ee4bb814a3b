package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sshTo runs cmd on h over the system OpenSSH client with the bed's key and
// strict host-key checking against the bed's known_hosts.
func sshTo(ctx context.Context, b *Bed, h *Host, cmd string) (string, error) {
	c := exec.CommandContext(ctx, "ssh",
		"-F", "/dev/null",
		"-i", b.ClientKeyFile,
		"-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+b.KnownHostsFile,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=10",
		"root@"+h.Addr, cmd)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ssh %s %q: %w: %s", h.Addr, cmd, err, out)
	}
	return string(out), nil
}

func TestTwoHosts(t *testing.T) {
	b := New(t, "alpha", "beta")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, z := b.MustHost("alpha"), b.MustHost("beta")

	for _, h := range []*Host{a, z} {
		out, err := sshTo(ctx, b, h, "hostname; id -u; ls -A /root")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(out)
		if len(lines) < 2 || lines[0] != h.Hostname || lines[1] != "0" {
			t.Errorf("%s: ssh says %q, want hostname %s and uid 0", h.Name, out, h.Hostname)
		}
		// /root comes from /etc/skel only: none of the machine's dotfiles.
		skel := map[string]bool{".ssh": true}
		if ents, err := os.ReadDir("/etc/skel"); err == nil {
			for _, e := range ents {
				skel[e.Name()] = true
			}
		}
		for _, name := range lines[2:] {
			if !skel[name] {
				t.Errorf("%s: /root/%s is not from /etc/skel", h.Name, name)
			}
		}
	}

	// /etc writes are private to the host.
	marker := fmt.Sprintf("/etc/testbed-marker-%d", b.ID)
	if _, err := sshTo(ctx, b, a, "echo alpha >"+marker); err != nil {
		t.Fatal(err)
	}
	if got, err := a.ReadFile(marker); err != nil || string(got) != "alpha\n" {
		t.Errorf("alpha: %s = %q, %v; want alpha", marker, got, err)
	}
	if _, err := z.ReadFile(marker); err == nil {
		t.Errorf("beta sees alpha's %s", marker)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the machine sees alpha's %s", marker)
	}
	if _, err := os.Stat(filepath.Join(a.Upper, marker)); err != nil {
		t.Errorf("alpha's write not in its upper dir: %v", err)
	}

	// Hosts reach each other by name, over the bridge.
	if out, err := z.Sh(ctx, "getent hosts alpha"); err != nil || !strings.Contains(out, a.Addr) {
		t.Errorf("beta: getent hosts alpha = %q, %v", out, err)
	}

	// The machine's own SSH host keys are not in the hosts.
	if out, err := a.Sh(ctx, "ls /etc/ssh/ | grep ssh_host_"); err != nil || strings.TrimSpace(out) != "ssh_host_ed25519_key\nssh_host_ed25519_key.pub" {
		t.Errorf("alpha: host keys in /etc/ssh: %q, %v", out, err)
	}
}
