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

// TestMultiListScript: one find for several folders gives each folder the
// entries manifestMetaScript gives it alone (kinds, modes, owners, links,
// sizes, times); a missing folder, a failed find or a cut answer gives
// nothing (the caller then lists folder by folder).
func TestMultiListScript(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, c := range [][]string{{"mkdir", a + "/sub"}, {"touch", a + "/sub/f1", b + "/g", a + "/x\n@@END 0"}, {"ln", "-s", "f1", a + "/sub/l"}, {"ln", "-s", a, b + "/toa"}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	dirs := []string{a, b + "/toa/", b}
	out, err := exec.Command("sh", "-c", multiListScript(dirs)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := parseMultiList(out, dirs)
	if !ok {
		t.Fatalf("not parsed: %q", out)
	}
	alone := parseViewBatch(func() []byte {
		o, err := exec.Command("sh", "-c", viewBatchScript(dirs, "@@MK")).Output()
		if err != nil {
			t.Fatal(err)
		}
		return o
	}(), "@@MK", dirs)
	for _, d := range dirs {
		if len(got[d]) != len(alone[d]) || len(got[d]) < 2 {
			t.Errorf("%s: %d entries, alone %d", d, len(got[d]), len(alone[d]))
		}
		for p, e := range alone[d] {
			g := got[d][p]
			if g == nil || g.Kind != e.Kind || g.Mode != e.Mode || g.UID != e.UID || g.GID != e.GID || g.Link != e.Link || g.Size != e.Size || g.MTime != e.MTime {
				t.Errorf("%s %q: %+v, alone %+v", d, p, g, e)
			}
		}
		if len(CompareNodeView(alone[d], got[d], 0)) != 0 {
			t.Errorf("%s: %v", d, CompareNodeView(alone[d], got[d], 0))
		}
	}
	if e := got[b+"/toa/"]["sub/l"]; e == nil || e.Link != "f1" {
		t.Errorf("through the symlinked start: %+v", e)
	}
	missing := append(dirs, a+"/missing")
	out, _ = exec.Command("sh", "-c", multiListScript(missing)).Output()
	if _, ok := parseMultiList(out, missing); ok {
		t.Errorf("a missing folder parsed as listed")
	}
	out, _ = exec.Command("sh", "-c", multiListScript(dirs)).Output()
	if _, ok := parseMultiList(out[:len(out)-20], dirs); ok {
		t.Errorf("a cut answer parsed")
	}
}
