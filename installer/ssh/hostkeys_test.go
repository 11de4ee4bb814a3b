package sshx

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func dialErr(t *testing.T, f *fixture, opts Options) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := NewDialer(f.inventory(), opts).Dial(ctx, "h1")
	if err == nil {
		c.Close()
	}
	return err
}

func TestHostUnknownStrict(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(f.KnownHosts, []byte("# no hosts yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []string{"", PolicyStrict} {
		err := dialErr(t, f, Options{HomeDir: f.Dir, AgentSocket: "none", SSHConfigFile: "none", HostKeyPolicy: policy})
		if !errors.Is(err, ErrHostUnknown) {
			t.Fatalf("policy %q: err %v, want ErrHostUnknown", policy, err)
		}
		msg := err.Error()
		for _, want := range []string{
			"h1: dial 127.0.0.1:" + strconv.Itoa(f.SSHD.Port) + ": ",
			ssh.FingerprintSHA256(f.SSHD.HostKey),
			"ssh-keyscan -p " + strconv.Itoa(f.SSHD.Port) + " -t ed25519 127.0.0.1 >> " + f.KnownHosts,
			"--host-key-policy accept-new",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("policy %q: message %q lacks %q", policy, msg, want)
			}
		}
	}
	if b, _ := os.ReadFile(f.KnownHosts); string(b) != "# no hosts yet\n" {
		t.Errorf("strict mode changed known_hosts: %q", b)
	}
	// A known_hosts file that does not exist knows no host either.
	os.Remove(f.KnownHosts)
	if err := dialErr(t, f, f.options()); !errors.Is(err, ErrHostUnknown) {
		t.Errorf("absent known_hosts: err %v", err)
	}
	if _, err := os.Stat(f.KnownHosts); err == nil {
		t.Error("strict mode created known_hosts")
	}
}

func TestHostAcceptNew(t *testing.T) {
	f := newFixture(t)
	for _, hashed := range []bool{false, true} {
		t.Run(fmt.Sprintf("hashed=%v", hashed), func(t *testing.T) {
			// An absent file in an absent folder is created (0700/0600).
			f.KnownHosts = filepath.Join(t.TempDir(), "ssh", "known_hosts")
			var logs []string
			var mu sync.Mutex
			opts := f.options()
			opts.HostKeyPolicy = PolicyAcceptNew
			opts.HashKnownHosts = hashed
			opts.Log = func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				logs = append(logs, fmt.Sprintf(format, args...))
			}
			// Concurrent first dials of one host append one line.
			d := NewDialer(f.inventory(), opts)
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := d.Dial(context.Background(), "h1")
					if err == nil {
						c.Close()
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(f.KnownHosts)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(lines) != 1 {
				t.Fatalf("known_hosts has %d lines, want 1:\n%s", len(lines), b)
			}
			fields := strings.Fields(lines[0])
			wantHost := "[127.0.0.1]:" + strconv.Itoa(f.SSHD.Port)
			if hashed {
				if !strings.HasPrefix(fields[0], "|1|") || strings.Contains(lines[0], "127.0.0.1") {
					t.Errorf("want a hashed entry, got %q", lines[0])
				}
			} else if fields[0] != wantHost {
				t.Errorf("entry host %q, want %q", fields[0], wantHost)
			}
			if len(fields) != 3 || fields[1] != "ssh-ed25519" {
				t.Fatalf("entry %q", lines[0])
			}
			k, err := ssh.ParsePublicKey(mustB64(t, fields[2]))
			if err != nil || string(k.Marshal()) != string(f.SSHD.HostKey.Marshal()) {
				t.Errorf("recorded key is not the server's: %v", err)
			}
			for p, mode := range map[string]os.FileMode{f.KnownHosts: 0o600, filepath.Dir(f.KnownHosts): 0o700 | os.ModeDir} {
				if st, err := os.Stat(p); err != nil || st.Mode() != mode {
					t.Errorf("%s: mode %v, want %v", p, st.Mode(), mode)
				}
			}
			if len(logs) != 1 || !strings.Contains(logs[0], ssh.FingerprintSHA256(f.SSHD.HostKey)) {
				t.Errorf("logs %q: want one line with the fingerprint", logs)
			}
			// Strict mode now accepts the host.
			if err := dialErr(t, f, f.options()); err != nil {
				t.Errorf("strict dial after accept-new: %v", err)
			}
		})
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHostKeyMismatch(t *testing.T) {
	f := newFixture(t)
	other := writeKey(t, filepath.Join(t.TempDir(), "other"))
	content := "# line 1\nexample.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n" +
		knownhosts.Line([]string{f.SSHD.addr()}, other) + "\n"
	if err := os.WriteFile(f.KnownHosts, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []string{PolicyStrict, PolicyAcceptNew} {
		opts := f.options()
		opts.HostKeyPolicy = policy
		err := dialErr(t, f, opts)
		if !errors.Is(err, ErrHostKeyMismatch) {
			t.Fatalf("%s: err %v, want ErrHostKeyMismatch", policy, err)
		}
		for _, want := range []string{
			"h1: dial 127.0.0.1:",
			"presented ssh-ed25519 " + ssh.FingerprintSHA256(f.SSHD.HostKey),
			f.KnownHosts + ":3",
			ssh.FingerprintSHA256(other),
			"ssh-keygen -f " + f.KnownHosts + " -R '" + f.SSHD.addr() + "'",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: message %q lacks %q", policy, err, want)
			}
		}
	}
	if b, _ := os.ReadFile(f.KnownHosts); string(b) != content {
		t.Errorf("known_hosts changed after a mismatch:\n%s", b)
	}
}

// TestGlobalKnownHosts: a key in the global known_hosts file is trusted
// (and not copied to the user's file); a mismatch there names that file.
func TestGlobalKnownHosts(t *testing.T) {
	f := newFixture(t)
	writeFile(t, f.KnownHosts, "")
	global := writeFile(t, filepath.Join(t.TempDir(), "ssh_known_hosts"), "# site-wide\n"+f.SSHD.knownHostsLine()+"\n")
	opts := f.options()
	opts.GlobalKnownHostsFile = global
	opts.HostKeyPolicy = PolicyAcceptNew
	if err := dialErr(t, f, opts); err != nil {
		t.Fatal(err)
	}
	if b := mustRead(t, f.KnownHosts); b != "" {
		t.Errorf("accept-new copied a globally known key: %q", b)
	}
	other := writeKey(t, filepath.Join(t.TempDir(), "other"))
	writeFile(t, global, knownhosts.Line([]string{f.SSHD.addr()}, other)+"\n")
	err := dialErr(t, f, opts)
	if !errors.Is(err, ErrHostKeyMismatch) || !strings.Contains(err.Error(), global+":1") || !strings.Contains(err.Error(), "ssh-keygen -f "+global) {
		t.Errorf("mismatch in the global file: %v", err)
	}
	opts.GlobalKnownHostsFile = "none"
	opts.HostKeyPolicy = PolicyStrict
	if err := dialErr(t, f, opts); !errors.Is(err, ErrHostUnknown) {
		t.Errorf("global file disabled: %v", err)
	}
}
