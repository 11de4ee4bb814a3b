package steps

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The fuzz targets below cover every parser of what a host's probes print
// (FuzzParseManifest, in statedir_test.go, covers the manifest). Each
// round-trips what the probe script would print for a given state, and
// feeds arbitrary output for "no panic" and the parser's invariants.

// FuzzParseStateDirFacts: the state-dir probe's lines for a state give
// that state back; a marker is kept line by line.
func FuzzParseStateDirFacts(f *testing.F) {
	f.Add(true, uint8(1), "/srv/state/edgwl", 12, int64(4096), 0, "/var/edgwl.gridha-local-1", uint8(1), 3, "node=rb1\nsince=x", uint8(7), "mounted=1\nlocal=dir\nfiles= 3\nbytes=x\n")
	f.Add(false, uint8(0), "", 0, int64(0), 2, "", uint8(0), 0, "", uint8(0), "marker=\nmarkerline=a=b\n")
	f.Fuzz(func(t *testing.T, mounted bool, local uint8, target string, files int, bytes int64, special int,
		aside string, share uint8, entries int, marker string, flags uint8, any string) {
		_ = ParseStateDirFacts(any)
		if strings.ContainsAny(target+aside, "\n") || strings.HasSuffix(marker, "\n") {
			return
		}
		want := StateDirFacts{
			Mounted: mounted, Local: []string{"none", "dir", "link", "other"}[local%4], LinkTarget: target,
			Files: files, Bytes: bytes, Special: special, Share: []string{"", "dir", "other"}[share%3],
			ShareEntries: entries, Tmp: flags&1 != 0, TmpMarker: flags&2 != 0, Unanswered: flags&4 != 0,
		}
		var b strings.Builder
		if mounted {
			b.WriteString("mounted=1\n")
		}
		fmt.Fprintf(&b, "local=%s\ntarget=%s\nfiles=%d\nbytes=%d\nspecial= %d\n", want.Local, target, files, bytes, special)
		if aside != "" {
			want.Asides = []string{aside, aside + "2"}
			fmt.Fprintf(&b, "aside=%s\naside=%s2\n", aside, aside)
		}
		if want.Share != "" {
			fmt.Fprintf(&b, "share=%s\n", want.Share)
		}
		fmt.Fprintf(&b, "entries=%d\n", entries)
		if flags&8 != 0 {
			b.WriteString("marker=\n")
			want.Marker = "(empty marker)"
			if marker != "" {
				want.Marker = marker + "\n"
				for _, l := range strings.Split(marker, "\n") {
					fmt.Fprintf(&b, "markerline=%s\n", l)
				}
			}
		}
		if want.Tmp {
			b.WriteString("tmp=dir\n")
		}
		if want.TmpMarker {
			b.WriteString("tmpmarker=1\n")
		}
		if want.Unanswered {
			b.WriteString("unanswered=1\n")
		}
		if got := ParseStateDirFacts(b.String()); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\ngot  %+v\nwant %+v", b.String(), got, want)
		}
		if want.Marker != "" && want.Marker != "(empty marker)" {
			if n := MarkerNode(want.Marker); strings.Contains(n, "\n") {
				t.Fatalf("marker node %q", n)
			}
		}
	})
}

// FuzzShellAssignments: any file read back from a host (grid-env.sh,
// sysconfig files) lexes without a panic; every assignment found has a
// line, and a sole one's byte range lies in the file and holds its name.
func FuzzShellAssignments(f *testing.F) {
	f.Add([]byte("A=1\nexport A=\"x y\"; unset A\n"), "A")
	f.Add([]byte("if true; then A=$(b)\\\n c; fi\n# A=2\nreadonly 'A=3'"), "A")
	f.Add([]byte("A='unterminated\n"), "A")
	f.Add([]byte("A=\\"), "A")
	f.Fuzz(func(t *testing.T, content []byte, key string) {
		if !validKey(key) {
			return
		}
		as, err := ShellAssignments(content, key)
		if err != nil {
			return
		}
		for _, a := range as {
			if a.Name != key || a.Line < 1 {
				t.Fatalf("%q: %+v", content, a)
			}
			if a.Sole {
				if a.Start < 0 || a.Start > a.End || a.End > len(content) {
					t.Fatalf("%q: range %d..%d", content, a.Start, a.End)
				}
				if !a.Unset && !strings.Contains(a.Text(content), key) {
					t.Fatalf("%q: sole %+v: text %q", content, a, a.Text(content))
				}
			}
		}
	})
}
