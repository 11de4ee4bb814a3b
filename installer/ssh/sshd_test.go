package sshx

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/gridha/gridha/inventory"
)

// needRoot skips a test that needs root (to run a real sshd), or fails it
// under CI=true, where every integration test must run. -short skips it.
func needRoot(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test (real sshd): skipped with -short")
	}
	if os.Geteuid() == 0 {
		if _, err := os.Stat("/usr/sbin/sshd"); err == nil {
			return
		}
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("integration test needs root and /usr/sbin/sshd (CI=true: not skipping)")
	}
	tb.Skip("integration test needs root and /usr/sbin/sshd")
}

// sshd is a real OpenSSH server on 127.0.0.1, with its own host key and
// authorized_keys, started for one test.
type sshd struct {
	Dir     string
	Port    int
	HostKey ssh.PublicKey
	Log     string // its log file (-E)
}

// addr is the known_hosts form of the server's address.
func (s *sshd) addr() string {
	return knownhosts.Normalize(net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)))
}

// knownHostsLine is the known_hosts line for s.
func (s *sshd) knownHostsLine() string { return knownhosts.Line([]string{s.addr()}, s.HostKey) }

// writeKey writes an OpenSSH private key file and returns its public key.
func writeKey(tb testing.TB, path string) ssh.PublicKey {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		tb.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sp), 0o644); err != nil {
		tb.Fatal(err)
	}
	return sp
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// noSFTP, given to startSSHD, leaves the sftp subsystem out.
const noSFTP = "# no sftp subsystem"

// startSSHD starts /usr/sbin/sshd -D on a free loopback port accepting the
// public keys given, with extra sshd_config lines.
func startSSHD(tb testing.TB, clientKeys []ssh.PublicKey, extra ...string) *sshd {
	tb.Helper()
	needRoot(tb)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation dir
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	s := &sshd{Dir: dir, Log: filepath.Join(dir, "sshd.log")}
	s.HostKey = writeKey(tb, filepath.Join(dir, "host_key"))
	var ak bytes.Buffer
	for _, k := range clientKeys {
		ak.Write(ssh.MarshalAuthorizedKey(k))
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ak.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	// A clean HOME for the sessions: this machine's root dotfiles (pyenv in
	// .bashrc) must not run on every command.
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		tb.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken meanwhile
		s.Port = freePort(tb)
		// sshd takes the first value of a keyword: extra lines go first.
		cfg := ""
		for _, l := range extra {
			cfg += l + "\n"
		}
		cfg += fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_key
PidFile none
AuthorizedKeysFile %s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
SetEnv HOME=%s
LogLevel VERBOSE
`, s.Port, dir, dir, home)
		if !slices.Contains(extra, noSFTP) {
			cfg += "Subsystem sftp internal-sftp\n"
		}
		cfgPath := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command("/usr/sbin/sshd", "-D", "-f", cfgPath, "-E", s.Log)
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if lastErr = waitListening(s.Port, exited); lastErr == nil {
			tb.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return s
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	log, _ := os.ReadFile(s.Log)
	tb.Fatalf("sshd did not start: %v\n%s", lastErr, log)
	return nil
}

func waitListening(port int, exited chan error) error {
	for i := 0; i < 100; i++ {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("sshd exited: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("port %d not listening after 5s", port)
}

// fixture is a client side for tests: a key, a known_hosts file, a home
// folder, and one sshd that accepts the key.
type fixture struct {
	Dir        string
	Key        string // private key file
	Pub        ssh.PublicKey
	KnownHosts string
	SSHD       *sshd
}

func newFixture(tb testing.TB, extra ...string) *fixture {
	tb.Helper()
	needRoot(tb)
	dir := tb.TempDir()
	f := &fixture{Dir: dir, Key: filepath.Join(dir, "id_test"), KnownHosts: filepath.Join(dir, "known_hosts")}
	f.Pub = writeKey(tb, f.Key)
	f.SSHD = startSSHD(tb, []ssh.PublicKey{f.Pub}, extra...)
	if err := os.WriteFile(f.KnownHosts, []byte(f.SSHD.knownHostsLine()+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

// inventory returns an inventory with one host "h1" on the fixture's sshd.
func (f *fixture) inventory() *inventory.Inventory {
	return &inventory.Inventory{
		Path: filepath.Join(f.Dir, "gridha.yaml"),
		Dir:  f.Dir,
		Hosts: []*inventory.Host{{
			Name:    "h1",
			Address: "127.0.0.1",
			SSH: inventory.SSH{
				User:         "root",
				Port:         f.SSHD.Port,
				IdentityFile: f.Key,
				KnownHosts:   f.KnownHosts,
			},
		}},
	}
}

// options keeps tests away from the user's agent, ~/.ssh/config and keys.
func (f *fixture) options() Options {
	return Options{HomeDir: f.Dir, AgentSocket: "none", SSHConfigFile: "none"}
}

// dial connects to host of inv and closes the Conn at the end of the test.
func dial(tb testing.TB, inv *inventory.Inventory, opts Options, host string) *Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := NewDialer(inv, opts).DialConn(ctx, host)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
