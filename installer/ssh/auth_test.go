package sshx

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// startAgent runs a real ssh-agent on a socket of its own holding key.
func startAgent(t *testing.T, key string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Skipf("ssh-agent: %v", err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
	})
	if !waitFor(func() bool { _, err := os.Stat(sock); return err == nil }) {
		t.Fatal("ssh-agent socket did not appear")
	}
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	return sock
}

// TestAgentAuth logs in with a key only ssh-agent holds, and with a
// passphrase-protected identity file whose key the agent holds.
func TestAgentAuth(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "agent_key")
	block, _ := ssh.MarshalPrivateKey(priv, "")
	if err := os.WriteFile(plain, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "locked_key")
	block, _ = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("not-in-any-log"))
	if err := os.WriteFile(locked, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	f := newFixture(t)
	f.SSHD = startSSHD(t, []ssh.PublicKey{signer.PublicKey()})
	writeFile(t, f.KnownHosts, f.SSHD.knownHostsLine()+"\n")
	sock := startAgent(t, plain)

	inv := f.inventory()
	opts := f.options()
	opts.AgentSocket = sock
	inv.Hosts[0].SSH.IdentityFile = "" // the agent only (no ~/.ssh/id_* in HomeDir)
	c := dial(t, inv, opts, "h1")
	if got := runOK(t, c, "echo agent"); got != "agent" {
		t.Errorf("got %q", got)
	}
	inv.Hosts[0].SSH.IdentityFile = locked
	c = dial(t, inv, opts, "h1")
	if got := runOK(t, c, "echo locked"); got != "locked" {
		t.Errorf("got %q", got)
	}
	// Without the agent, the protected key is a clear error.
	opts.AgentSocket = "none"
	_, err = NewDialer(inv, opts).Dial(context.Background(), "h1")
	if err == nil || !strings.Contains(err.Error(), "protected by a passphrase") || !strings.Contains(err.Error(), "ssh-add "+locked) {
		t.Errorf("protected key without agent: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "not-in-any-log") {
		t.Error("error shows the passphrase")
	}
}
