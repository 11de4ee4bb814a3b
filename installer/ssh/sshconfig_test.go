package sshx

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gridha/gridha/inventory"
)

func writeFile(t *testing.T, p, content string) string {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runOK(t *testing.T, c *Conn, cmd string) string {
	t.Helper()
	res, err := c.Run(testCtx(t), cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("%s: exit %d: %s", cmd, res.ExitCode, res.Stderr)
	}
	return strings.TrimSpace(string(res.Stdout))
}

// TestSSHConfigAlias: ~/.ssh/config fills HostName, Port, User and
// IdentityFile for an inventory address that is an alias; values set in
// the inventory win over it.
func TestSSHConfigAlias(t *testing.T) {
	f := newFixture(t)
	port := strconv.Itoa(f.SSHD.Port)
	if err := os.Rename(f.Key, filepath.Join(f.Dir, "alias_key")); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, filepath.Join(f.Dir, "ssh_config"), `
Host gridalias
    HostName 127.0.0.1
    Port `+port+`
    User root
    IdentityFile ~/alias_key

Host wrongport
    HostName 127.0.0.1
    Port 1
    User nobody
    IdentityFile ~/absent_key

Host *
    User nobody
    Port 2
`)
	inv := &inventory.Inventory{
		Path: filepath.Join(f.Dir, "gridha.yaml"),
		Dir:  f.Dir,
		Hosts: []*inventory.Host{
			{Name: "h1", Address: "gridalias", SSH: inventory.SSH{KnownHosts: f.KnownHosts}},
			{Name: "h2", Address: "wrongport", SSH: inventory.SSH{
				KnownHosts: f.KnownHosts, Port: f.SSHD.Port, User: "root", IdentityFile: filepath.Join(f.Dir, "alias_key"),
			}},
		},
	}
	opts := f.options()
	opts.SSHConfigFile = cfg
	c := dial(t, inv, opts, "h1")
	if got := runOK(t, c, "id -un"); got != "root" {
		t.Errorf("h1 logged in as %q, want root (from ssh_config)", got)
	}
	if c.target.hostname != "127.0.0.1" || c.target.port != f.SSHD.Port || c.target.user != "root" {
		t.Errorf("h1 resolved to %s@%s:%d", c.target.user, c.target.hostname, c.target.port)
	}
	// Inventory port, user and key win over the alias's.
	c2 := dial(t, inv, opts, "h2")
	if got := runOK(t, c2, "id -un"); got != "root" {
		t.Errorf("h2 logged in as %q, want root (from the inventory)", got)
	}

	// An ssh_config named explicitly must exist.
	opts.SSHConfigFile = filepath.Join(f.Dir, "absent_config")
	_, err := NewDialer(inv, opts).Dial(context.Background(), "h1")
	if err == nil || !strings.Contains(err.Error(), "absent_config") {
		t.Errorf("missing ssh config: err %v", err)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestProxyJump reaches a target through a jump sshd, with the jump given
// as [user@]host:port in the inventory and as an inventory host named by
// ProxyJump in ssh_config. The jump server's log shows the forwarding.
func TestProxyJump(t *testing.T) {
	f := newFixture(t)
	jump := startSSHD(t, []ssh.PublicKey{f.Pub}, "LogLevel DEBUG1")
	writeFile(t, f.KnownHosts, f.SSHD.knownHostsLine()+"\n"+jump.knownHostsLine()+"\n")
	tport := strconv.Itoa(f.SSHD.Port)
	cfg := writeFile(t, filepath.Join(f.Dir, "ssh_config"), `
Host tgt
    HostName 127.0.0.1
    Port `+tport+`
    ProxyJump bastion
`)
	sshDefaults := inventory.SSH{User: "root", IdentityFile: f.Key, KnownHosts: f.KnownHosts}
	h1 := f.inventory().Hosts[0]
	h1.SSH.ProxyJump = "root@127.0.0.1:" + strconv.Itoa(jump.Port)
	inv := &inventory.Inventory{
		Path:     filepath.Join(f.Dir, "gridha.yaml"),
		Dir:      f.Dir,
		Defaults: sshDefaults,
		Hosts: []*inventory.Host{
			h1,
			{Name: "h2", Address: "tgt", SSH: sshDefaults},
			{Name: "bastion", Address: "127.0.0.1", SSH: inventory.SSH{Port: jump.Port}},
		},
	}
	opts := f.options()
	opts.SSHConfigFile = cfg
	for _, host := range []string{"h1", "h2"} {
		c := dial(t, inv, opts, host)
		if got := runOK(t, c, "echo through"); got != "through" {
			t.Errorf("%s: got %q", host, got)
		}
		// Files go through the jump too.
		p := filepath.Join(t.TempDir(), "f")
		if err := c.WriteFile(testCtx(t), p, []byte("j"), 0o644, "", ""); err != nil {
			t.Fatal(err)
		}
		if st := c.Stats(); st.Connections != 2 || st.Sessions != 2 {
			t.Errorf("%s: stats %+v, want 2 connections (jump + target), 2 sessions", host, st)
		}
	}
	log := mustRead(t, jump.Log)
	if n := strings.Count(log, "target 127.0.0.1 port "+tport); n != 2 {
		t.Errorf("jump sshd forwarded %d connections to port %s, want 2; log:\n%s", n, tport, log)
	}

	// A jump host that is down: the error says so.
	h1.SSH.ProxyJump = "root@127.0.0.1:" + strconv.Itoa(freePort(t))
	_, err := NewDialer(inv, opts).Dial(context.Background(), "h1")
	if err == nil || !strings.HasPrefix(err.Error(), "h1: jump host root@127.0.0.1:") {
		t.Errorf("down jump host: err %v", err)
	}
}
