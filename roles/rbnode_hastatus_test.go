package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHAGDStatusCheck runs the verify probe of "hagd supervised" with sh on
// status files as hagd writes them, against this machine's real
// /proc/uptime: fresh and supervised is ok; stale (older than ΔT1: a dead or
// hung hagd), unsupervised, stopping, missing or not hagd's are reported,
// each saying what it found.
func TestHAGDStatusCheck(t *testing.T) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Skip("no /proc/uptime")
	}
	up, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "hagd.status")
	clock := func(ago float64) string { return strconv.FormatFloat(up-ago, 'f', 2, 64) }
	const dt1 = 6 * time.Second
	for _, tc := range []struct {
		name, content string
		ok            bool
		found         string
	}{
		{"fresh", `{"node":"rb1","supervised":true,"groups":[{"group":"g","reason":"a \"quoted\" reason"}],"clock":"` + clock(0.5) + `","pid":42}`, true, ""},
		{"stale", `{"node":"rb1","supervised":true,"clock":"` + clock(60) + `","pid":42}`, false, "dead or hung"},
		{"unsupervised", `{"node":"rb1","supervised":false,"clock":"` + clock(0.5) + `","pid":42}`, false, "not under its supervisor"},
		{"stopping", `{"node":"rb1","supervised":true,"shutdown":true,"clock":"` + clock(0.5) + `","pid":42}`, false, "stopping"},
		{"missing", "", false, "not running (no " + file + ")"},
		{"garbage", "not json", false, "is not hagd's"},
		{"no clock", `{"node":"rb1","supervised":true,"pid":42}`, false, "cannot tell when"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(file)
			if tc.content != "" {
				if err := os.WriteFile(file, []byte(tc.content+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, err := exec.Command("sh", "-c", hagdStatusProbe(file)).Output()
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			ok, found := checkHAGDStatus(string(out), file, dt1)
			if ok != tc.ok || !strings.Contains(found, tc.found) {
				t.Errorf("ok %v %q, want %v %q (probe output %q)", ok, found, tc.ok, tc.found, out)
			}
		})
	}
}
