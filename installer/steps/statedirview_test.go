package steps

import (
	"os/exec"
	"testing"
)

// TestViewBatchScript runs readViewBatch's script with the local sh: two
// folders listed in one run come back each with its own entries, and a
// folder that cannot be listed is left out (its step then reads alone).
func TestViewBatchScript(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, c := range [][]string{{"mkdir", a + "/sub"}, {"touch", a + "/sub/f1", b + "/g"}, {"ln", "-s", "f1", a + "/sub/l"}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	dirs := []string{a + "/", b + "/", a + "/missing/"}
	mk := "@@GRIDHA-VIEW-test"
	out, err := exec.Command("sh", "-c", viewBatchScript(dirs, mk)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := parseViewBatch(out, mk, dirs)
	if len(got) != 2 {
		t.Fatalf("got %d folders, want 2 (the missing one left out): %v", len(got), got)
	}
	if e := got[a+"/"]["sub/l"]; e == nil || e.Kind != "l" || e.Link != "f1" {
		t.Errorf("%s: sub/l = %+v, want a link to f1", a, e)
	}
	if e := got[a+"/"]["sub/f1"]; e == nil || e.Kind != "f" {
		t.Errorf("%s: sub/f1 = %+v", a, e)
	}
	if e := got[b+"/"]["g"]; e == nil || e.Kind != "f" || len(got[b+"/"]) != 2 {
		t.Errorf("%s: %v", b, got[b+"/"])
	}
	// A truncated answer gives nothing rather than a wrong listing.
	if g := parseViewBatch(out[:len(out)/2], mk, dirs); len(g) > 1 {
		t.Errorf("truncated output: %d folders", len(g))
	}
}
