package dnsupdater

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// The CLI is tested as a real process (this test binary re-executed as
// `gridha dns-updater ...`), against loopback ports where nothing listens:
// exit codes, the Nagios line, SIGTERM.

const helperEnv = "GRIDHA_DNSUPDATER_HELPER"

// TestMain lets TestCLI run this test binary as `gridha dns-updater ...`
// (a real process: exit codes, signals) when helperEnv is set.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "1" {
		os.Exit(m.Run())
	}
	args := strings.Split(os.Getenv(helperEnv+"_ARGS"), "\x1f")
	app := &cli.App{Name: "gridha", Commands: []*cli.Command{Command()}}
	if err := app.RunContext(context.Background(), append([]string{"gridha"}, args...)); err != nil {
		os.Exit(99)
	}
	os.Exit(0)
}

func gridha(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperEnv+"_ARGS="+strings.Join(args, "\x1f"))
	return cmd
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	conf := filepath.Join(dir, "du.conf")
	body := "zone = z.test\nname = rr.z.test\nttl = 30\nprimary = 127.0.0.1:1\ntsig_key_name = k\ntsig_key_file = " + key +
		"\nbdii = b1 127.0.0.1 1\ninterval = 1s\ncheck_timeout = 500ms\ndns_timeout = 500ms\nfail_after = 1\nstate_file = " + state + "\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}

	// --once: the only BDII fails: records kept, CRITICAL, exit 2.
	out, err := gridha(t, "dns-updater", "run", "--once", "-c", conf).Output()
	if code := exitCode(err); code != 2 || !strings.HasPrefix(string(out), "DNS-UPDATER CRITICAL - no BDII is healthy") {
		t.Errorf("--once: exit %d (%v), stdout %q", code, err, out)
	}
	out, err = gridha(t, "dns-updater", "status", "-c", conf).Output()
	if code := exitCode(err); code != 2 || !strings.Contains(string(out), "bdii b1/127.0.0.1") {
		t.Errorf("status: exit %d\n%s", code, out)
	}

	// Daemon: SIGTERM stops it cleanly (exit 0) and status says so.
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	cmd := gridha(t, "dns-updater", "run", "-c", conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(state); err == nil {
			break
		}
		if i > 100 {
			_ = cmd.Process.Kill()
			t.Fatalf("no state file after 10 s\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if exitCode(err) != 0 {
			t.Errorf("after SIGTERM: exit %d\n%s", exitCode(err), stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("still running 10 s after SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "dns-updater stopped") {
		t.Errorf("no clean-stop log line:\n%s", stderr.String())
	}
	out, err = gridha(t, "dns-updater", "status", "-c", conf).Output()
	if code := exitCode(err); code != 3 || !strings.Contains(string(out), "dns-updater stopped at") {
		t.Errorf("status after stop: exit %d\n%s", code, out)
	}

	// A bad configuration: UNKNOWN (3), naming file and line.
	if err := os.WriteFile(conf, []byte(body+"ttl = 10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = gridha(t, "dns-updater", "run", "--once", "-c", conf).Output()
	if code := exitCode(err); code != 3 || !strings.Contains(string(out), conf+":13: ttl: already set on line 3") {
		t.Errorf("bad config: exit %d, %q", code, out)
	}
	// A key readable by others: refused.
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = gridha(t, "dns-updater", "run", "--once", "-c", conf).Output()
	if code := exitCode(err); code != 3 || !strings.Contains(string(out), "too open") {
		t.Errorf("open key: exit %d, %q", code, out)
	}
}
