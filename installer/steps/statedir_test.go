package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
)

func TestStateDirDecide(t *testing.T) {
	base := StateDir{Path: "/var/edgwl", Share: "/mnt/rb-state/rb-a/edgwl", Mount: "/mnt/rb-state", Node: "rb2",
		AcceptLinks: []string{"/mnt/rb-state/rb-b/edgwl"}, NoSpecial: true}
	mine := "node=rb2\ntime=x\n"
	other := "node=rb1\ntime=x\n"
	cases := []struct {
		name      string
		stateFrom string
		f         StateDirFacts
		ops       string // space-separated ops; "" = nothing to do
		refuse    string // substring of the refusal
	}{
		{name: "linked", f: StateDirFacts{Local: "link", LinkTarget: "/mnt/rb-state/rb-a/edgwl"}},
		{name: "linked to another group of the node (service script)", f: StateDirFacts{Local: "link", LinkTarget: "/mnt/rb-state/rb-b/edgwl"}},
		{name: "link whose target is unknown (changed between the looks)", f: StateDirFacts{Local: "link"}, refuse: "changed while"},
		{name: "foreign link", f: StateDirFacts{Local: "link", LinkTarget: "/data/edgwl"}, refuse: "refusing to change it"},
		{name: "a file", f: StateDirFacts{Local: "other", Mounted: true}, refuse: "neither a folder"},
		{name: "not mounted", f: StateDirFacts{Local: "dir", Files: 3}, refuse: "is not mounted"},
		{name: "fresh copy", f: StateDirFacts{Mounted: true, Local: "dir", Files: 3, Share: "dir"}, ops: "copy rename aside link"},
		{name: "share missing (moved aside before a kill)", f: StateDirFacts{Mounted: true, Local: "dir", Files: 3}, ops: "copy rename aside link"},
		{name: "partial copy left", f: StateDirFacts{Mounted: true, Local: "dir", Files: 3, Share: "dir", Tmp: true}, ops: "copy rename aside link"},
		{name: "verified copy waiting", f: StateDirFacts{Mounted: true, Local: "dir", Files: 3, Share: "dir", Tmp: true, TmpMarker: true}, ops: "copy rename aside link"},
		{name: "renamed, killed before aside", f: StateDirFacts{Mounted: true, Local: "dir", Files: 3, Share: "dir", ShareEntries: 4, Marker: mine}, ops: "aside link"},
		{name: "aside, killed before link", f: StateDirFacts{Mounted: true, Local: "none", Share: "dir", ShareEntries: 4, Marker: mine, Asides: []string{"/var/edgwl.gridha-local-1"}}, ops: "link"},
		{name: "content without marker", f: StateDirFacts{Mounted: true, Local: "dir", Files: 3, Share: "dir", ShareEntries: 2}, ops: "reverify aside link"},
		{name: "another node's state, package default here", f: StateDirFacts{Mounted: true, Local: "dir", Share: "dir", ShareEntries: 3, Marker: other}, ops: "aside link"},
		{name: "another node's state, own state here", f: StateDirFacts{Mounted: true, Local: "dir", Files: 1, Share: "dir", ShareEntries: 3, Marker: other}, refuse: "--state-from rb2"},
		{name: "conflict won here", stateFrom: "rb2", f: StateDirFacts{Mounted: true, Local: "dir", Files: 1, Share: "dir", ShareEntries: 3, Marker: other}, ops: "replace-share copy rename aside link"},
		{name: "conflict won by the share", stateFrom: "rb1", f: StateDirFacts{Mounted: true, Local: "dir", Files: 1, Share: "dir", ShareEntries: 3, Marker: other}, ops: "aside link"},
		{name: "won here, killed after the share's copy went aside", stateFrom: "rb2", f: StateDirFacts{Mounted: true, Local: "dir", Files: 1}, ops: "copy rename aside link"},
		{name: "nothing local, populated share", f: StateDirFacts{Mounted: true, Local: "none", Share: "dir", ShareEntries: 2, Marker: other}, ops: "link"},
		{name: "nothing anywhere", f: StateDirFacts{Mounted: true, Local: "none", Share: "dir"}, ops: "mark link"},
		{name: "nothing local, unmarked content", f: StateDirFacts{Mounted: true, Local: "none", Share: "dir", ShareEntries: 5}, ops: "mark link"},
		{name: "package default here, unmarked content", f: StateDirFacts{Mounted: true, Local: "dir", Share: "dir", ShareEntries: 5}, ops: "mark aside link"},
		{name: "original aside but share empty", f: StateDirFacts{Mounted: true, Local: "none", Share: "dir", Asides: []string{"/var/edgwl.gridha-local-1"}}, refuse: "restore it by hand"},
		{name: "share hung", f: StateDirFacts{Mounted: true, Local: "dir", Files: 1, Unanswered: true}, refuse: "did not answer"},
		{name: "fifo on sshfs", f: StateDirFacts{Mounted: true, Local: "dir", Files: 1, Special: 1, Share: "dir"}, refuse: "fifos"},
	}
	for _, c := range cases {
		s := base
		s.StateFrom = c.stateFrom
		p := s.Decide(c.f)
		if c.refuse != "" {
			if !strings.Contains(p.Refuse, c.refuse) || len(p.Ops) > 0 {
				t.Errorf("%s: got %+v, want a refusal with %q", c.name, p, c.refuse)
			}
			continue
		}
		if p.Refuse != "" || strings.Join(p.Ops, " ") != c.ops {
			t.Errorf("%s: got ops %q refuse %q, want %q", c.name, strings.Join(p.Ops, " "), p.Refuse, c.ops)
		}
	}
}

func TestParseStateDirFacts(t *testing.T) {
	out := "mounted=1\nlocal=dir\nfiles=12\nbytes=3456\nspecial=0\naside=/var/edgwl.gridha-local-20061124T000000Z\nshare=dir\nentries=3\nmarker=\nmarkerline=node=rb1\ntmp=dir\ntmpmarker=1\n"
	f := ParseStateDirFacts(out)
	if !f.Mounted || f.Local != "dir" || f.Files != 12 || f.Bytes != 3456 || len(f.Asides) != 1 || f.Share != "dir" ||
		f.ShareEntries != 3 || MarkerNode(f.Marker) != "rb1" || !f.Tmp || !f.TmpMarker {
		t.Fatalf("parsed %+v", f)
	}
	if f := ParseStateDirFacts("local=link\ntarget=/mnt/x y\n"); f.Local != "link" || f.LinkTarget != "/mnt/x y" || f.Mounted {
		t.Fatalf("link: %+v", f)
	}
	if f := ParseStateDirFacts("share=dir\nmarker=\n"); f.Marker != "(empty marker)" {
		t.Fatalf("empty marker: %+v", f)
	}
}

// TestStateDirProbeScript runs the probe on this machine: a moved state dir
// (a symlink into a share on a mounted file system, "/"), the share's
// entries counted with dot files, its marker read line by line.
func TestStateDirProbeScript(t *testing.T) {
	dir := t.TempDir()
	share := filepath.Join(dir, "share", "edgwl")
	for _, d := range []string{share + "/jobs", share + "/.hidden", share + "/..dots"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(share, StateMarker), []byte("node=rb1\ntime=x\nlast line without newline"), 0o644); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(dir, "edgwl")
	if err := os.Symlink(share, local); err != nil {
		t.Fatal(err)
	}
	s := StateDir{Path: local, Share: share, Mount: "/", Node: "rb1"}
	f := gatherStateDir(t, s)
	if !f.Mounted || f.Local != "link" || f.LinkTarget != share || f.Share != "dir" || f.ShareEntries != 4 ||
		f.Marker != "node=rb1\ntime=x\nlast line without newline\n" || MarkerNode(f.Marker) != "rb1" || f.Tmp || f.Unanswered {
		t.Errorf("probe gathered as %+v", f)
	}
	// The path is no symlink by the time its file fact is taken: the
	// target is unknown, and Decide refuses rather than guess.
	facts := installer.NewFacts(map[string]installer.ProbeResult{s.probeKey(): {Stdout: []byte("mounted=1\nlocal=link\n")}})
	facts.SetFileMeta(installer.FileFact{Path: local, Exists: true, Kind: installer.KindDir})
	if f, err := s.gathered(facts); err != nil || f.LinkTarget != "" || !strings.Contains(s.Decide(f).Refuse, "changed while") {
		t.Errorf("link gone between the looks: %+v %v, plan %+v", f, err, s.Decide(f))
	}
}

// manifestOutput builds manifestScript-like output.
func manifestOutput(records [][12]string, sums map[string]string) []byte {
	var b strings.Builder
	for _, r := range records {
		for _, f := range r {
			b.WriteString(f)
			b.WriteByte(0)
		}
	}
	b.WriteString("@@SHA\x00")
	for p, s := range sums {
		b.WriteString(s + "  " + p + "\x00")
	}
	return []byte(b.String())
}

func TestManifestCompare(t *testing.T) {
	rec := func(kind, mode, mtime, size, ino, nlink, link, p string) [12]string {
		return [12]string{kind, mode, mtime, size, ino, nlink, "0", "0", "root", "root", link, p}
	}
	orig := manifestOutput([][12]string{
		rec("d", "2750", "1700000000.5", "4096", "1", "3", "", "."),
		rec("f", "644", "1117627200.25", "5", "10", "2", "", "./a b"),
		rec("f", "644", "1117627200.25", "5", "10", "2", "", "./hard"),
		rec("l", "777", "1700000001.0", "3", "11", "1", "a b", "./sym"),
		rec("s", "755", "1700000001.0", "0", "12", "1", "", "./sock"),
	}, map[string]string{"./a b": "aaa", "./hard": "aaa"})
	om, err := ParseManifest(orig)
	if err != nil {
		t.Fatal(err)
	}
	if om["hard"].HardLink != "a b" || om["a b"].HardLink != "a b" || om["a b"].SHA256 != "aaa" || om["a b"].MTime != 1117627200 {
		t.Fatalf("parsed %+v %+v", om["a b"], om["hard"])
	}
	if f, b := om.Totals(); f != 2 || b != 10 {
		t.Fatalf("totals %d %d", f, b)
	}
	// The copy: other inodes, other folder time, symlink time, no socket,
	// a marker: equal.
	cp := manifestOutput([][12]string{
		rec("d", "2750", "1800000000", "4096", "7", "3", "", "."),
		rec("f", "644", "1117627200", "5", "70", "2", "", "./a b"),
		rec("f", "644", "1117627200", "5", "70", "2", "", "./hard"),
		rec("l", "777", "1800000001", "3", "71", "1", "a b", "./sym"),
		rec("f", "644", "1800000001", "9", "72", "1", "", "./.gridha-state"),
	}, map[string]string{"./a b": "aaa", "./hard": "aaa", "./.gridha-state": "mmm"})
	cm, err := ParseManifest(cp)
	if err != nil {
		t.Fatal(err)
	}
	if d := CompareManifests(om, cm.withoutGridhaFiles(), false); len(d) > 0 {
		t.Fatalf("equal copies differ: %v", d)
	}
	if d := CompareManifests(om, cm, false); len(d) != 1 || d[0] != "extra .gridha-state" {
		t.Fatalf("marker not excluded: %v", d)
	}
	// Broken copies: each difference is named.
	bad := manifestOutput([][12]string{
		rec("d", "0755", "1800000000", "4096", "7", "3", "", "."),
		rec("f", "644", "1117627201", "5", "70", "1", "", "./a b"),
		rec("f", "644", "1117627200", "5", "73", "1", "", "./hard"),
		rec("l", "777", "1800000001", "3", "71", "1", "elsewhere", "./sym"),
	}, map[string]string{"./a b": "aaa", "./hard": "bbb"})
	bm, err := ParseManifest(bad)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(CompareManifests(om, bm, false), "\n")
	for _, want := range []string{".: mode 2750, copy 0755", "a b: modified 1117627200, copy 1117627201", "hard: content differs", "sym: link to a b, copy to elsewhere"} {
		if !strings.Contains(got, want) {
			t.Errorf("differences lack %q:\n%s", want, got)
		}
	}
	// Hard links lost (same content, separate files).
	split := manifestOutput([][12]string{
		rec("d", "2750", "1800000000", "4096", "7", "3", "", "."),
		rec("f", "644", "1117627200", "5", "70", "1", "", "./a b"),
		rec("f", "644", "1117627200", "5", "73", "1", "", "./hard"),
		rec("l", "777", "1800000001", "3", "71", "1", "a b", "./sym"),
	}, map[string]string{"./a b": "aaa", "./hard": "aaa"})
	sm, _ := ParseManifest(split)
	if got := strings.Join(CompareManifests(om, sm, false), "\n"); !strings.Contains(got, "hard link") {
		t.Errorf("lost hard link not seen: %s", got)
	}
	if _, err := ParseManifest([]byte("f\x00644\x00")); err == nil {
		t.Error("truncated manifest accepted")
	}
	owners := string(om.OwnersFile())
	if !strings.Contains(owners, `0:0 root:root "a b"`) || strings.Contains(owners, "sock") {
		t.Errorf("owners file:\n%s", owners)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("d\x00755\x001.5\x004096\x001\x002\x000\x000\x00root\x00root\x00\x00.\x00@@SHA\x00"))
	f.Add([]byte("@@SHA\x00abc  ./x\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err == nil {
			_ = CompareManifests(m, m, true)
			_ = m.OwnersFile()
		}
	})
}

// FuzzParseProbedViews: any shares probe output parses without panicking.
func FuzzParseProbedViews(f *testing.F) {
	f.Add([]byte("@@shared 0\n@@views\x00/s/\x00d\x00755\x001.5\x004096\x001\x002\x000\x000\x00root\x00root\x00\x00\x00@@END 0\x00"))
	f.Add([]byte("\n@@views\x00@@END 1\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = probedViewOf(data, "/s")
	})
}

func TestCompareNodeView(t *testing.T) {
	e := func(kind, mode, uid string, size, mtime int64, link string) *ManifestEntry {
		return &ManifestEntry{Kind: kind, Mode: mode, UID: uid, GID: uid, Size: size, MTime: mtime, Link: link}
	}
	srv := Manifest{
		".":           e("d", "755", "0", 4096, 100, ""),
		"proxy":       e("f", "600", "501", 10, 100, ""),
		"abs":         e("l", "777", "0", 5, 100, "/x/y"),
		"new-job":     e("f", "644", "0", 3, 1000, ""),
		"being-wrote": e("f", "644", "0", 9, 1000, ""),
	}
	same := Manifest{}
	for p, v := range srv {
		c := *v
		same[p] = &c
	}
	if d := CompareNodeView(srv, same, 500); len(d) > 0 {
		t.Fatalf("identical views differ: %v", d)
	}
	// What an sshfs mount without idmap/bindfs shows: everything snfs's,
	// links unreadable, a settled file missing; new entries are forgiven.
	bad := Manifest{
		".":           e("d", "755", "999", 4096, 100, ""),
		"proxy":       e("f", "600", "999", 10, 100, ""),
		"abs":         e("l", "777", "0", 5, 100, ""),
		"being-wrote": e("f", "644", "0", 4, 1000, ""),
	}
	got := strings.Join(CompareNodeView(srv, bad, 500), "\n")
	for _, want := range []string{".: owner 0:0, through the mount 999:999", "proxy: owner 501:501", `abs: link to "/x/y", through the mount ""`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "new-job") || strings.Contains(got, "being-wrote") {
		t.Errorf("entries newer than settled reported:\n%s", got)
	}
}

// TestStateDirSharesProbe: with Shares set, a node's state dirs look at
// their shares through one probe (one timeout, one sh), and each step reads
// from it exactly what its own single-share probe finds: a populated share
// with marker, a missing share, a share with a temporary copy.
func TestStateDirSharesProbe(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "share", "a"), filepath.Join(dir, "share", "b"), filepath.Join(dir, "share", "c")
	for _, d := range []string{a + "/jobs", a + "/.hidden", c, filepath.Join(dir, "share", ".c.gridha-tmp-rb1")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(a, StateMarker), []byte("node=rb1\ntime=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "share", ".c.gridha-tmp-rb1", StateMarker), []byte("node=rb1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	shares := []string{a, b, c}
	// The shares probe as the shell answers it (the fact agent's answer
	// is held equal to it in package installer).
	run := func(p installer.Probe) string {
		facts, err := installer.Gather(context.Background(), shellConn{}, []installer.Probe{p})
		if err != nil {
			t.Fatal(err)
		}
		r, ok := facts.Get(p.Key)
		if !ok {
			t.Fatalf("no result for %s", p.Key)
		}
		return string(r.Stdout)
	}
	var sharesKey string
	for _, sh := range shares {
		local := filepath.Join(dir, "local-"+filepath.Base(sh))
		if err := os.Symlink(sh, local); err != nil {
			t.Fatal(err)
		}
		alone := StateDir{Path: local, Share: sh, Mount: "/", Node: "rb1"}
		batched := alone
		batched.Shares = shares
		ps := batched.Probes()
		if len(ps) != 4 || strings.Contains(ps[0].Script, "timeout") || strings.Contains(ps[0].Script, "readlink") || strings.Contains(ps[0].Script, "/proc/mounts") || ps[2] != installer.FileMetaProbe(local) || ps[3] != installer.MountsProbe() {
			t.Fatalf("%s: probes %+v: want the local probe without timeout, readlink or /proc/mounts, the shares probe, the local path's file fact and the mount table", sh, ps)
		}
		if sharesKey != "" && ps[1].Key != sharesKey {
			t.Errorf("%s: shares probe key %s, the first step's %s: the batch would run it twice", sh, ps[1].Key, sharesKey)
		}
		sharesKey = ps[1].Key
		want := gatherStateDir(t, alone)
		got := gatherStateDir(t, batched)
		if want.LinkTarget != sh {
			t.Errorf("%s: link target %q", local, want.LinkTarget)
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Errorf("%s: batched %+v, alone %+v", sh, got, want)
		}
	}
	// The listing of each share that holds a marker comes with the
	// answers (a and not c: c has none) and equals the share's own
	// manifest, file names that look like frames included.
	for _, n := range []string{"x\n@@share 1\nshare=other", "@@viewrc 0 0", "@@SHA", "y\n@@view 1"} {
		if err := os.WriteFile(filepath.Join(a, "jobs", n), []byte("job"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../jobs", filepath.Join(a, ".hidden", "link")); err != nil {
		t.Fatal(err)
	}
	batched := StateDir{Path: filepath.Join(dir, "local-a"), Share: a, Mount: "/", Node: "rb1", Shares: shares}
	sp, _ := batched.sharesProbe()
	out := run(sp)
	if _, ok := probedViewOf([]byte(out), c); ok {
		t.Errorf("share c (no marker) listed")
	}
	view, ok := probedViewOf([]byte(out), a)
	direct, err := exec.Command("/bin/sh", "-c", "D="+installer.ShellQuote(a+"/")+"\n"+manifestMetaScript).Output()
	if err != nil {
		t.Fatal(err)
	}
	want, err := ParseManifest(direct)
	if err != nil {
		t.Fatal(err)
	}
	want = want.withoutGridhaFiles()
	if !ok || len(view) != len(want) || len(want) < 8 {
		t.Fatalf("probed view of a: %v %v, want its %d entries", ok, view, len(want))
	}
	for p, e := range want {
		if g := view[p]; g == nil || g.Kind != e.Kind || g.Mode != e.Mode || g.UID != e.UID || g.GID != e.GID || g.Link != e.Link || g.Size != e.Size || g.MTime != e.MTime {
			t.Errorf("probed view of %q: %+v, listed alone %+v", p, g, e)
		}
	}
	if f := ParseStateDirFacts(batched.shareFacts(out)); f.Share != "dir" || f.ShareEntries != 3 || f.Marker == "" {
		t.Errorf("share answer with the listings after it: %+v", f)
	}
	facts := installer.NewFacts(map[string]installer.ProbeResult{sp.Key: {Stdout: []byte(out)}})
	if m, ok := batched.probedView(&installer.Env{Facts: facts}); !ok || len(m) != len(want) {
		t.Errorf("probedView: %v %v", ok, m)
	}
	// A listing whose find failed, or cut short, gives nothing.
	if i := strings.Index(out, "@@END 0"); i < 0 {
		t.Fatalf("no end frame in %q", out)
	} else if _, ok := probedViewOf([]byte(out[:i]+"@@END 1\x00"), a); ok {
		t.Errorf("failed find: listing used")
	} else if _, ok := probedViewOf([]byte(out[:i-30]), a); ok {
		t.Errorf("cut answer: listing used")
	}
	// With Locals: a share behind a local symlink is not walked (no
	// share=, entries=, marker answer; Decide needs none of them for a
	// link) but listed, marker or not (c has none); a share whose local
	// folder is a real folder gets the full answer, as alone.
	d := filepath.Join(dir, "share", "d")
	localD := filepath.Join(dir, "local-d")
	for _, p := range []string{d, localD} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	withD := []string{a, c, d}
	locals := []string{filepath.Join(dir, "local-a"), filepath.Join(dir, "local-c"), localD}
	for i, sh := range withD {
		s := StateDir{Path: locals[i], Share: sh, Mount: "/", Node: "rb1", Shares: withD, Locals: locals}
		alone := StateDir{Path: locals[i], Share: sh, Mount: "/", Node: "rb1"}
		got := gatherStateDir(t, s)
		want := gatherStateDir(t, alone)
		if sh == d {
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Errorf("%s behind a real folder: %+v, alone %+v", sh, got, want)
			}
			continue
		}
		if !got.LinkedShare || got.Share != "" || got.Marker != "" {
			t.Errorf("%s behind a symlink: %+v, want the share not looked at", sh, got)
		}
		if fmt.Sprintf("%+v", s.Decide(got)) != fmt.Sprintf("%+v", alone.Decide(want)) {
			t.Errorf("%s behind a symlink: plan %+v, alone %+v", sh, s.Decide(got), alone.Decide(want))
		}
		// The probe saw a link, the step's own probe a folder: refused.
		f := got
		f.Local = "dir"
		if p := s.Decide(f); p.Refuse == "" || len(p.Ops) > 0 {
			t.Errorf("%s: linked share facts with a local folder: %+v, want refused", sh, p)
		}
	}
	s0 := StateDir{Path: locals[0], Share: a, Mount: "/", Node: "rb1", Shares: withD, Locals: locals}
	sp0, _ := s0.sharesProbe()
	out0 := run(sp0)
	for _, sh := range []string{a, c} {
		if _, ok := probedViewOf([]byte(out0), sh); !ok {
			t.Errorf("share %s behind a symlink not listed:\n%q", sh, out0)
		}
	}
	if _, ok := probedViewOf([]byte(out0), d); ok {
		t.Errorf("share d (real local folder, no marker) listed")
	}
	// A share missing behind its symlink (b): the one find fails, no
	// listing is used (each step reads its own, and reports b's).
	s0.Shares, s0.Locals = []string{a, b}, []string{locals[0], filepath.Join(dir, "local-b")}
	sp0, _ = s0.sharesProbe()
	if _, ok := probedViewOf([]byte(run(sp0)), a); ok {
		t.Errorf("listing used though the share behind local-b is missing")
	}
	// A hung share: every state dir whose answer did not finish is
	// unanswered.
	s := StateDir{Share: b, Shares: shares}
	if f := ParseStateDirFacts(s.shareFacts("@@share 0\nshare=dir\n@@shared 0\n@@share 1\nunanswered=1\n")); !f.Unanswered {
		t.Errorf("unfinished answer: %+v, want unanswered", f)
	}
	s.Share = a
	if f := ParseStateDirFacts(s.shareFacts("@@share 0\nshare=dir\n@@shared 0\n@@share 1\nunanswered=1\n")); f.Unanswered || f.Share != "dir" {
		t.Errorf("finished answer before a hang: %+v", f)
	}
}

// TestManifestScriptChecksums runs the manifest script with openssl and,
// with openssl off PATH, with sha256sum, over names that a line-based
// parser would get wrong (newline, backslash, " *", leading dash, unicode),
// enough files for several xargs batches, and checks every checksum.
func TestManifestScriptChecksums(t *testing.T) {
	dir := t.TempDir()
	want := map[string]string{}
	put := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		want[name] = hex.EncodeToString(sum[:])
	}
	for _, n := range []string{"a\nb", "c\\d", " sp *x", "-dash", "jöb 名前.jdl", "e\\\nf", "nl\n"} {
		put(n, "content of "+n)
	}
	// Long names: several xargs batches (its command line is ~128 KiB).
	long := strings.Repeat("x", 200)
	for i := 0; i < 1500; i++ {
		put(fmt.Sprintf("%s-%d", long, i), fmt.Sprint(i))
	}
	if err := os.Symlink("a\nb", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (scripts/install-deps.sh installs it)")
	}
	bin := t.TempDir()
	for _, c := range []string{"find", "xargs", "sha256sum", "sh"} {
		p, err := exec.LookPath(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, c)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, path string }{{"openssl", os.Getenv("PATH")}, {"sha256sum", bin}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", ManifestScript(dir))
			cmd.Env = append(os.Environ(), "PATH="+tc.path)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "openssl" && !bytes.Contains(out, []byte("@@B ")) {
				t.Fatal("openssl was not used")
			}
			m, err := ParseManifest(out)
			if err != nil {
				t.Fatal(err)
			}
			for n, sum := range want {
				if e := m[n]; e == nil || e.SHA256 != sum {
					t.Fatalf("%q: got %+v, want sha256 %s", n, e, sum)
				}
			}
			if m["link"] == nil || m["link"].Link != "a\nb" || m["link"].SHA256 != "" {
				t.Fatalf("link: %+v", m["link"])
			}
		})
	}
}

// shellConn runs commands with /bin/sh on this machine: enough for the
// fact gatherer (installer.Gather), which is all these tests use it for.
type shellConn struct{ installer.Conn }

func (shellConn) Host() string { return "local" }
func (shellConn) Run(ctx context.Context, cmd string, stdin io.Reader) (installer.CmdResult, error) {
	var out, errb bytes.Buffer
	x := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	x.Stdin, x.Stdout, x.Stderr = stdin, &out, &errb
	err := x.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return installer.CmdResult{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: ee.ExitCode()}, nil
	}
	return installer.CmdResult{Stdout: out.Bytes(), Stderr: errb.Bytes()}, err
}

// gatherStateDir gathers s's probes (its script, the shares probe, the
// local path's file fact) with the real shell and reads them as
// CheckApply does.
func gatherStateDir(t *testing.T, s StateDir) StateDirFacts {
	t.Helper()
	facts, err := installer.Gather(context.Background(), shellConn{}, s.Probes())
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.gathered(facts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
