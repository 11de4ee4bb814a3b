package installer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
	got, res, err := gatherBatch(ctx, conn, probes, "", "")
	if err != nil {
		t.Fatal(err)
	}
	fast, _, _ := splitProbes(probes)
	if len(fast) != len(paths)-1 {
		t.Errorf("%d paths on the fast path, want %d", len(fast), len(paths)-1)
	}
	if _, ok := parseFiles(fast, nil, res.Stdout, nonceOf(res.Stdout)); !ok {
		t.Errorf("combined file probes fell back to the plain ones; output:\n%s", res.Stdout)
	}
	if g, w := got.Keys(), want.Keys(); len(g) != len(w) {
		t.Fatalf("keys %v, want %v", g, w)
	}
	for _, k := range want.Keys() {
		a, _ := want.Get(k)
		b, ok := got.Get(k)
		if !ok || !bytes.Equal(a.Stdout, b.Stdout) || a.ExitCode != b.ExitCode {
			t.Errorf("%s:\n got %q (%v)\nwant %q", k, b.Stdout, ok, a.Stdout)
		}
	}
	// Every path: the same typed fact from the combined script as from
	// its own.
	for _, p := range paths {
		a, err1 := want.File(p)
		b, err2 := got.File(p)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%s:\n got %+v (%v)\nwant %+v (%v)", p, b, err2, a, err1)
		}
	}
	ff, err := got.File(paths[2])
	if err != nil || string(ff.Content) != "x" || ff.Mode != 0o644 || ff.Kind != KindFile || !ff.ContentKnown {
		t.Errorf("fact of %s: %+v %v", paths[2], ff, err)
	}
	if ff, err := got.File(big); err != nil || ff.ContentKnown || ff.Size != MaxProbedContent+1 {
		t.Errorf("fact of %s: content known %v, size %d, %v", big, ff.ContentKnown, ff.Size, err)
	}
	if ff, err := got.File(filepath.Join(dir, "dangling")); err != nil || ff.Kind != KindSymlink || ff.LinkTarget != "/nowhere/at all" {
		t.Errorf("dangling link: %+v %v", ff, err)
	}
	if ff, err := got.File(filepath.Join(dir, "missing")); err != nil || ff.Exists {
		t.Errorf("missing: %+v %v", ff, err)
	}
	if _, err := got.File(filepath.Join(dir, "never asked")); err == nil {
		t.Error("a path never probed has a fact")
	}

	// The same paths asked without content: the same facts, no content.
	var metas []Probe
	for _, p := range paths {
		metas = append(metas, FileMetaProbe(p))
	}
	want, err = Gather(ctx, conn, metas)
	if err != nil {
		t.Fatal(err)
	}
	got, res, err = gatherBatch(ctx, conn, metas, "", "")
	if err != nil {
		t.Fatal(err)
	}
	fast, meta, _ := splitProbes(metas)
	if _, ok := parseFiles(fast, meta, res.Stdout, nonceOf(res.Stdout)); !ok || len(meta) != len(paths)-1 {
		t.Errorf("metadata probes fell back to the plain ones (%d meta); output:\n%s", len(meta), res.Stdout)
	}
	for _, p := range paths {
		a, err1 := want.FileMeta(p)
		b, err2 := got.FileMeta(p)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) || b.ContentKnown {
			t.Errorf("meta %s:\n got %+v (%v)\nwant %+v (%v)", p, b, err2, a, err1)
		}
	}
}

// nonceOf is the frame marker of a batch's output.
func nonceOf(out []byte) string {
	i := bytes.Index(out, []byte(probeMarker))
	if i < 0 {
		return ""
	}
	return string(out[i : i+len(probeMarker)+16])
}

func TestParseFilesRejectsShortContent(t *testing.T) {
	m := newNonce()
	out := []byte(m + " S\n/a|regular file|644|0|0|root|root|5\n" + m + " L\n\n" + m + " C\nabc\n" + m + " E\n")
	if _, ok := parseFiles([]string{"/a"}, nil, out, m); ok {
		t.Error("3 bytes of content for a 5-byte file accepted")
	}
	out = []byte(m + " S\n/a|regular file|644|0|0|root|root|3\n" + m + " L\n\n" + m + " C\nabc\n" + m + " E\n")
	if r, ok := parseFiles([]string{"/a"}, nil, out, m); !ok || string(r["/a"].Content) != "abc" || !r["/a"].ContentKnown || r["/a"].Mode != 0o644 {
		t.Errorf("3 bytes for a 3-byte file: %+v %v", r["/a"], ok)
	}
}

// TestBatchFraming: probe output passes through unencoded and comes back
// byte for byte: without a final newline, empty, binary, holding lines that
// look like frames (of the old format, or with another nonce).
func TestBatchFraming(t *testing.T) {
	outputs := map[string]string{
		"plain":     "a=1\nb=2\n",
		"no-eol":    "last",
		"empty":     "",
		"newlines":  "\n\n",
		"binary":    "\x00\x01\xff\n\x00",
		"old-frame": "@@GRIDHA E 0 0\n@@GRIDHA B 1\n",
		"frame":     "\n" + probeMarker + "0123456789abcdef E 0 0\n",
	}
	var probes []Probe
	for k, v := range outputs {
		script := "printf '%s' " + ShellQuote(v) + "; exit 4"
		if k == "binary" {
			// A shell string cannot hold NUL: printf makes the bytes.
			script = `printf '\000\001\377\n\000'; exit 4`
		}
		probes = append(probes, Probe{Key: k, Script: script})
	}
	probes = append(probes, Probe{Key: "exit", Script: "exit 7"})
	f, err := Gather(context.Background(), &localConn{host: "local"}, probes)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range outputs {
		r, _ := f.Get(k)
		if string(r.Stdout) != v || r.ExitCode != 4 {
			t.Errorf("%s: got %q exit %d, want %q exit 4", k, r.Stdout, r.ExitCode, v)
		}
	}
	if r, _ := f.Get("exit"); r.ExitCode != 7 || len(r.Stdout) != 0 {
		t.Errorf("exit: %+v", r)
	}
}

// TestProbesByType: the gatherer tells probes apart by type, not by key or
// script: a shell probe named like a file probe stays a shell probe, two
// typed probes of one path and different types are two facts, and each
// typed answer is parsed once into its value.
func TestProbesByType(t *testing.T) {
	dir := t.TempDir()
	p, m := filepath.Join(dir, "f"), filepath.Join(dir, "meta only")
	for _, f := range []string{p, m} {
		if err := os.WriteFile(f, []byte("abc"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	probes := []Probe{
		{Key: "file:" + p, Script: "echo shell"},
		FileProbe(p), FileProbe(p), FileHashProbe(p), FileMetaProbe(p), FileMetaProbe(m),
		ServiceProbe("gridha-no-such-service"), UserProbe("root"), MountsProbe(),
		ServiceProbe("gridha-no such 'one'"), ServiceProbe("gridha-no-such-service"),
	}
	paths, meta, others := splitProbes(probes)
	if len(paths) != 2 || paths[0] != p || paths[1] != m || len(meta) != 1 || !meta[m] || len(others) != 6 {
		t.Fatalf("split: paths %q, meta %v, %d others", paths, meta, len(others))
	}
	facts, _, err := gatherBatch(context.Background(), &localConn{host: "local"}, probes, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := facts.Get("file:" + p); !ok || string(r.Stdout) != "shell\n" {
		t.Errorf("shell probe: %q %v", r.Stdout, ok)
	}
	if ff, err := facts.File(p); err != nil || string(ff.Content) != "abc" || ff.SHA256 != "" {
		t.Errorf("file: %+v %v", ff, err)
	}
	if ff, err := facts.FileMeta(m); err != nil || ff.ContentKnown || ff.Size != 3 || ff.Kind != KindFile {
		t.Errorf("file meta: %+v %v", ff, err)
	}
	if ff, err := facts.FileMeta(p); err != nil || string(ff.Content) != "abc" {
		t.Errorf("file meta of a path also asked with content: %+v %v", ff, err)
	}
	if ff, err := facts.FileHash(p); err != nil || ff.SHA256 != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" || ff.ContentKnown {
		t.Errorf("file hash: %+v %v", ff, err)
	}
	if st, err := facts.Service("gridha-no-such-service"); err != nil || st.Installed || st.Init == "" {
		t.Errorf("service: %+v %v", st, err)
	}
	if st, err := facts.User("root"); err != nil || !st.Exists || st.Home == "" {
		t.Errorf("user: %+v %v", st, err)
	}
	if m, err := facts.Mounts(); err != nil || len(m) == 0 {
		t.Errorf("mounts: %d entries, %v", len(m), err)
	}
	if st, err := facts.Service("gridha-no such 'one'"); err != nil || st.Installed || st.Init == "" {
		t.Errorf("second service: %+v %v", st, err)
	}
	// The services share one loop over one copy of the script.
	if n := strings.Count(BatchScript(probes), "systemctl is-active"); n != 1 {
		t.Errorf("the service script is in the batch %d times, want 1", n)
	}
	if _, err := facts.Service("other"); err == nil {
		t.Error("a service never asked has a fact")
	}
}
