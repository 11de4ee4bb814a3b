package dnsupdater

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLILogFlags runs `gridha dns-updater run --once` as a real process
// with --log FILE --log-format json: every line of the file is one JSON
// record, and the failed BDII check is among them; a bad --log is refused
// with UNKNOWN before anything runs.
func TestCLILogFlags(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "du.conf")
	body := "zone = z.test\nname = rr.z.test\nttl = 30\nprimary = 127.0.0.1:1\ntsig_key_name = k\ntsig_key_file = " + key +
		"\nbdii = b1 127.0.0.1 1\ninterval = 1s\ncheck_timeout = 500ms\ndns_timeout = 500ms\nfail_after = 1\nstate_file = " +
		filepath.Join(dir, "state") + "\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "du.log")
	out, err := gridha(t, "dns-updater", "run", "--once", "-c", conf, "--log", logFile, "--log-format", "json").CombinedOutput()
	if code := exitCode(err); code != 2 {
		t.Fatalf("--once: exit %d, want 2 (CRITICAL)\n%s", code, out)
	}
	if strings.Contains(string(out), "level=") || strings.Contains(string(out), `"level"`) {
		t.Errorf("log lines on stdout/stderr with --log FILE:\n%s", out)
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	sawB1 := false
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["level"] == nil || m["msg"] == nil {
			t.Errorf("not a JSON record: %q (%v)", l, err)
		}
		sawB1 = sawB1 || strings.Contains(l, "b1/127.0.0.1")
	}
	if !sawB1 {
		t.Errorf("no record names the failed BDII b1:\n%s", b)
	}

	out, err = gridha(t, "dns-updater", "run", "--once", "-c", conf, "--log", "relative.log").CombinedOutput()
	if code := exitCode(err); code != 3 || !strings.Contains(string(out), "--log must be") {
		t.Errorf("--log relative.log: exit %d\n%s", code, out)
	}
}
