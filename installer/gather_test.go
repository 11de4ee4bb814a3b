package installer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestGatherBatchSameAsFileProbe checks that the runner's combined file
// probes give exactly what each FileProbe script gives.
func TestGatherBatchSameAsFileProbe(t *testing.T) {
	dir := t.TempDir()
	w := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	paths := []string{
		w("plain", []byte("a=1\nb=2\n"), 0o640),
		w("empty", nil, 0o600),
		w("with space and 'quote'|pipe", []byte("x"), 0o644),
		w("binary", []byte{0, 1, 2, 255, '\n', 0}, 0o755),
		w("no-newline", []byte("last"), 0o644),
		filepath.Join(dir, "missing"),
		filepath.Join(dir, "sub"),
		filepath.Join(dir, "link"),
		filepath.Join(dir, "dangling"),
		"/dev/null",
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o750)
	os.Symlink("plain", filepath.Join(dir, "link"))
	os.Symlink("/nowhere/at all", filepath.Join(dir, "dangling"))
	big := w("big", bytes.Repeat([]byte("z"), MaxProbedContent+1), 0o644)
	paths = append(paths, big, paths[0]) // a duplicate too
	var probes []Probe
	for _, p := range paths {
		probes = append(probes, FileProbe(p))
	}
	probes = append(probes, Probe{Key: "other", Script: "echo hi; exit 3"})

	conn := &localConn{host: "local"}
	ctx := context.Background()
	want, err := Gather(ctx, conn, probes)
	if err != nil {
		t.Fatal(err)
	}
	got, res, err := gatherBatch(ctx, conn, probes, "")
	if err != nil {
		t.Fatal(err)
	}
	fast, _ := splitProbes(probes)
	if len(fast) != len(paths)-1 {
		t.Errorf("%d paths on the fast path, want %d", len(fast), len(paths)-1)
	}
	if _, ok := parseFiles(fast, res.Stdout); !ok {
		t.Errorf("combined file probes fell back to the plain ones; output:\n%s", res.Stdout)
	}
	if g, w := got.Keys(), want.Keys(); len(g) != len(w) {
		t.Fatalf("keys %v, want %v", g, w)
	}
	for _, k := range want.Keys() {
		a, _ := want.Get(k)
		b, ok := got.Get(k)
		if !ok || !bytes.Equal(a.Stdout, b.Stdout) || (k == "other" && a.ExitCode != b.ExitCode) {
			t.Errorf("%s:\n got %q (%v)\nwant %q", k, b.Stdout, ok, a.Stdout)
		}
	}
	ff, err := FileFactOf(got, paths[2])
	if err != nil || string(ff.Content) != "x" || ff.Mode != 0o644 {
		t.Errorf("fact of %s: %+v %v", paths[2], ff, err)
	}
}

func TestParseFilesRejectsShortContent(t *testing.T) {
	out := []byte(fastMarker + " S\n/a|regular file|644|0|0|root|root|5\n" + fastMarker + " L\n" + fastMarker + " C\n/a\n" + fastMarker + " D\nYWJj\n" + fastMarker + " E\n")
	if _, ok := parseFiles([]string{"/a"}, out); ok {
		t.Error("3 bytes of content for a 5-byte file accepted")
	}
}
