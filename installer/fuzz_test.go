package installer

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"strings"
	"testing"
)

// fuzzNonce is the batch marker the fuzz targets frame with: fixed, so a
// failure replays.
const fuzzNonce = probeMarker + "0123456789abcdef"

// frameOutput is what batchScript's frame lines around one probe print: the
// begin line, the output as it is, a newline, the end line with the exit
// code (the printf lines of batchScript, byte for byte).
func frameOutput(m string, i int, out []byte, rc int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s B %d\n", m, i)
	b.Write(out)
	fmt.Fprintf(&b, "\n%s E %d %d\n", m, i, rc)
	return b.Bytes()
}

// FuzzBatchFraming: whatever two probes print (binary, no final newline,
// lines that look like frames of another batch) comes back byte for byte
// with its exit code, also after output of the session before the batch
// (the lock prelude, a login script) — as long as none of it holds the
// batch's nonce, which a host cannot know in advance.
func FuzzBatchFraming(f *testing.F) {
	f.Add([]byte("a=1\nb=2\n"), []byte("last"), uint8(0), uint8(4), []byte(""))
	f.Add([]byte(""), []byte("\n\n"), uint8(1), uint8(255), []byte("motd\n"))
	f.Add([]byte("\x00\x01\xff\n\x00"), []byte("@@GRIDHA E 0 0\n@@GRIDHA B 1\n"), uint8(7), uint8(0), []byte("x"))
	f.Add([]byte("\n"+probeMarker+"ffffffffffffffff E 0 0\n"), []byte(probeMarker+"ffffffffffffffff B 1\n"), uint8(0), uint8(0), []byte("no newline"))
	f.Fuzz(func(t *testing.T, a, b []byte, rcA, rcB uint8, junk []byte) {
		for _, s := range [][]byte{a, b, junk} {
			if bytes.Contains(s, []byte(fuzzNonce)) {
				return
			}
		}
		probes := []Probe{{Key: "a", Script: "a"}, {Key: "b", Script: "b"}}
		var out []byte
		out = append(out, junk...)
		if len(junk) > 0 && junk[len(junk)-1] != '\n' {
			// The session's own output ends its lines: a frame starts one.
			out = append(out, '\n')
		}
		out = append(out, frameOutput(fuzzNonce, 0, a, int(rcA))...)
		out = append(out, frameOutput(fuzzNonce, 1, b, int(rcB))...)
		check := func(name string, facts *Facts, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v (output %q)", name, err, out)
			}
			for _, w := range []struct {
				key  string
				data []byte
				rc   int
			}{{"a", a, int(rcA)}, {"b", b, int(rcB)}} {
				r, ok := facts.Get(w.key)
				if !ok || !bytes.Equal(r.Stdout, w.data) || r.ExitCode != w.rc {
					t.Fatalf("%s: probe %s: got %q exit %d, want %q exit %d", name, w.key, r.Stdout, r.ExitCode, w.data, w.rc)
				}
			}
		}
		facts, err := parseBatch(probes, out, fuzzNonce)
		check("parseBatch", facts, err)
		// ParseBatch finds the nonce itself: that works when nothing
		// before the first frame looks like a marker.
		if !bytes.Contains(junk, []byte(probeMarker)) {
			facts, err := ParseBatch(probes, out)
			check("ParseBatch", facts, err)
		}
	})
}

// FuzzParseBatch: any output, however cut or garbled, gives an error or a
// result for every probe; never a panic.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte(fuzzNonce+" B 0\nx\n"+fuzzNonce+" E 0 0\n"), uint8(1))
	f.Add([]byte(fuzzNonce+" B 0\nx"), uint8(1))
	f.Add([]byte(fuzzNonce+" B 1\n\n"+fuzzNonce+" E 1 3 4\n"), uint8(2))
	f.Add([]byte(fuzzNonce+" B -1\n\n"+fuzzNonce+" E -1 0\n"), uint8(2))
	f.Add([]byte("junk"+fuzzNonce+" B 0\n"), uint8(0))
	f.Fuzz(func(t *testing.T, out []byte, n uint8) {
		var probes []Probe
		for i := 0; i < int(n%4); i++ {
			probes = append(probes, Probe{Key: fmt.Sprint("k", i)})
		}
		for _, parse := range []func() (*Facts, error){
			func() (*Facts, error) { return ParseBatch(probes, out) },
			func() (*Facts, error) { return parseBatch(probes, out, fuzzNonce) },
		} {
			facts, err := parse()
			if err != nil {
				continue
			}
			for _, p := range probes {
				if _, ok := facts.Get(p.Key); !ok {
					t.Fatalf("no error, but no result for %s", p.Key)
				}
			}
		}
	})
}

// fuzzFile is one path as filesScript's stat, readlink and cat see it.
type fuzzFile struct {
	path    string
	kind    string // stat %F
	mode    uint32
	target  string // symlinks
	content []byte // regular files
	meta    bool   // asked without content
}

// filesOutput is what filesScript prints for files (existing or not) in
// argument order: the stat lines, the NUL-terminated symlink targets, the
// regular files' contents, each section between frame lines.
func filesOutput(m string, files []fuzzFile) []byte {
	var s []string
	var l, c bytes.Buffer
	for _, f := range files {
		if f.kind == "" {
			continue // stat prints nothing for a missing path
		}
		size := 4096
		switch f.kind {
		case "regular file", "regular empty file":
			size = len(f.content)
			if !f.meta {
				c.Write(f.content)
			}
		case "symbolic link":
			size = len(f.target)
			l.WriteString(f.target)
			l.WriteByte(0)
		}
		s = append(s, fmt.Sprintf("%s|%s|%o|0|0|root|root|%d", f.path, f.kind, f.mode, size))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s S\n%s\n", m, strings.Join(s, "\n"))
	fmt.Fprintf(&b, "%s L\n%s\n%s C\n", m, l.Bytes(), m)
	fmt.Fprintf(&b, "%s\n%s E\n", c.Bytes(), m)
	return b.Bytes()
}

// FuzzParseFiles: the combined file probe's output, parsed by parseFiles
// into file facts, gives back each path's kind, mode, size, symlink
// target and content byte for byte (paths with '|', empty and binary
// files, contents that look like frames of another batch).
func FuzzParseFiles(f *testing.F) {
	f.Add("/etc/a|b", []byte("x=1\n"), uint16(0o640), "/srv/x", []byte("\x00\n"), uint8(0))
	f.Add("/a", []byte(""), uint16(0o4755), "", []byte("@@GRIDHA-ffffffffffffffff E\n"), uint8(1))
	f.Add("/a b", []byte("no eol"), uint16(0o1777), "rel/target", []byte{}, uint8(2))
	f.Add("/x", []byte("\n"+probeMarker+"0000000000000000 C\n"), uint16(0o600), "t|u", []byte("y"), uint8(3))
	f.Fuzz(func(t *testing.T, path string, content []byte, mode uint16, target string, content2 []byte, shape uint8) {
		if path == "" || strings.ContainsAny(path, "\n\r") || strings.Contains(path, "\x00") ||
			strings.ContainsAny(target, "\n\x00") ||
			bytes.Contains(content, []byte(fuzzNonce)) || bytes.Contains(content2, []byte(fuzzNonce)) {
			// Newlines in paths are not sent this way (splitProbes), a
			// target cannot hold NUL, and a newline in one is not
			// representable in FileProbe's line format either.
			return
		}
		perm := uint32(mode) & 0o7777
		kinds := []string{"regular file", "symbolic link", "directory", ""}
		files := []fuzzFile{
			{path: path, kind: "regular file", mode: perm, content: content},
			{path: path + ".l", kind: "symbolic link", mode: 0o777, target: target},
			{path: path + ".2", kind: kinds[int(shape)%len(kinds)], mode: perm, target: target + "2", content: content2},
		}
		if len(content) == 0 {
			files[0].kind = "regular empty file"
		}
		if shape&4 != 0 {
			files[0], files[2] = files[2], files[0]
		}
		var meta map[string]bool
		if shape&8 != 0 {
			files[2].meta = true
			meta = map[string]bool{files[2].path: true}
		}
		var paths []string
		for _, f := range files {
			paths = append(paths, f.path)
		}
		out := filesOutput(fuzzNonce, files)
		res, ok := parseFiles(paths, meta, out, fuzzNonce)
		if !ok {
			t.Fatalf("consistent output rejected: %q", out)
		}
		for _, f := range files {
			ff, ok := res[f.path]
			if !ok || ff.Path != f.path {
				t.Fatalf("%s: no result (%+v)", f.path, ff)
			}
			if ff.Exists != (f.kind != "") {
				t.Fatalf("%s: exists %v, kind %q", f.path, ff.Exists, f.kind)
			}
			if !ff.Exists {
				continue
			}
			if want := UnixFileMode(f.mode); ff.Mode != want {
				t.Fatalf("%s: mode %v, want %v", f.path, ff.Mode, want)
			}
			switch f.kind {
			case "regular file", "regular empty file":
				if f.meta {
					if ff.Kind != KindFile || ff.ContentKnown || ff.Size != int64(len(f.content)) {
						t.Fatalf("%s (no content asked): got %+v", f.path, ff)
					}
					continue
				}
				if ff.Kind != KindFile || !ff.ContentKnown || !bytes.Equal(ff.Content, f.content) || ff.Size != int64(len(f.content)) {
					t.Fatalf("%s: got %+v, want content %q", f.path, ff, f.content)
				}
			case "symbolic link":
				if ff.Kind != KindSymlink || ff.LinkTarget != f.target || ff.ContentKnown {
					t.Fatalf("%s: got %+v, want target %q", f.path, ff, f.target)
				}
			case "directory":
				if ff.Kind != KindDir || ff.ContentKnown || ff.LinkTarget != "" {
					t.Fatalf("%s: got %+v", f.path, ff)
				}
			}
		}
	})
}

// FuzzParseFilesAny: garbled output of the combined file probe is refused
// (the runner then asks each path on its own) or accepted with a result
// for every path; never a panic.
func FuzzParseFilesAny(f *testing.F) {
	m := fuzzNonce
	f.Add([]byte(m + " S\n/a|regular file|644|0|0|root|root|3\n" + m + " L\n\n" + m + " C\nabc\n" + m + " E\n"))
	f.Add([]byte(m + " S\n/a|regular file|644|0|0|root|root|-3\n" + m + " L\n\n" + m + " C\nabc\n" + m + " E\n"))
	f.Add([]byte(m + " S\n/a|symbolic link|777|0|0|root|root|3\n" + m + " L\nabc\n" + m + " C\n\n" + m + " E\n"))
	f.Add([]byte(m + " S\n|||||||\n" + m + " L\n\x00\x00\n" + m + " C\n\n" + m + " E\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		paths := []string{"/a", "/b"}
		res, ok := parseFiles(paths, map[string]bool{"/b": true}, out, m)
		if !ok {
			return
		}
		for _, p := range paths {
			if _, ok := res[p]; !ok {
				t.Fatalf("accepted without a result for %s", p)
			}
		}
	})
}

// FuzzParseFileFact: any probe output parses or fails without a panic; a
// stat line's mode keeps only permission and special bits.
func FuzzParseFileFact(f *testing.F) {
	f.Add([]byte("S regular file|644|0|0|root|root|3\nC YWJj\n"))
	f.Add([]byte("S symbolic link|777|0|0|root|root|3\nL /x\n"))
	f.Add([]byte("N\n"))
	f.Add([]byte("S directory|41777777777|0|0|root|root|3\n"))
	f.Add([]byte("S regular file|644|x|y|root|root|z\nC !!\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		ff, err := ParseFileFact("/p", out)
		if err != nil {
			return
		}
		if ff.Mode&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			t.Fatalf("mode %v has type bits", ff.Mode)
		}
		if ff.Exists != (ff.Kind != KindNone) {
			t.Fatalf("exists %v, kind %q", ff.Exists, ff.Kind)
		}
	})
}

// FuzzParseServiceState: the service probe's lines for a state give that
// state back; any output keeps Running and Enabled consistent with the raw
// status code and boot answer.
func FuzzParseServiceState(f *testing.F) {
	f.Add(true, "loaded", "enabled", 0, "/etc/rc2.d/S20x", "init=systemd\nload=loaded\nboot=enabled\nstatus=0\n")
	f.Add(false, "not-found", "", 3, "/etc/rc.d/rc3.d/S99hagd", "init=sysv-redhat\nload=loaded\nlink=/etc/rc3.d/S20x\nlink=/etc/rc0.d/K01x\nstatus=3\n")
	f.Add(false, "", "masked", -1, "/etc/rcS.d/S01x", "status=x\n=\nload\n")
	f.Fuzz(func(t *testing.T, systemd bool, load, boot string, status int, link string, any string) {
		st := ParseServiceState(any)
		if st.Running != LSBRunning(st.StatusCode) {
			t.Fatalf("%q: running %v with status %d", any, st.Running, st.StatusCode)
		}
		if st.Init == InitSystemd && st.Enabled != SystemdEnabled(st.BootRaw) {
			t.Fatalf("%q: enabled %v with boot %q", any, st.Enabled, st.BootRaw)
		}
		if strings.ContainsAny(load+boot+link, "\n") || link == "" {
			return // one line per value, as the probe prints them
		}
		var b strings.Builder
		want := ServiceState{Installed: load != "" && load != "not-found", StatusCode: status, Running: status == 0}
		if systemd {
			fmt.Fprintf(&b, "init=systemd\nload=%s\nboot=%s\nstatus=%d\n", load, boot, status)
			want.Init, want.BootRaw, want.Enabled = InitSystemd, boot, SystemdEnabled(boot)
		} else {
			fmt.Fprintf(&b, "init=%s\nload=%s\nlink=%s\nlink=%s.2\nstatus=%d\n", InitDebian, load, link, link, status)
			want.Init, want.BootRaw, want.Enabled = InitDebian, link+" "+link+".2", SysVEnabled([]string{link, link + ".2"})
		}
		if got := ParseServiceState(b.String()); got != want {
			t.Fatalf("%q: got %+v, want %+v", b.String(), got, want)
		}
	})
}

// FuzzParseMounts: a mount's fields, escaped as the kernel and fstab
// write them, come back from /proc/mounts content unchanged (spaces, tabs,
// backslashes, non-ASCII spaces in paths); any content parses without a
// panic into entries with three fields.
func FuzzParseMounts(f *testing.F) {
	f.Add("rb1:/var/edgwl", "/mnt/edg wl", "fuse.sshfs", "rw,nosuid", "proc /proc proc rw 0 0\n# c\n\n x \n")
	f.Add(`a\b`, "/mnt/\t\u00a0x", "nfs", "", `/dev/sda1 /a\040b ext4 rw 0 0`)
	f.Add("s", "/t\u0085", "ext4", "ro", "a b\nc d e\\")
	f.Fuzz(func(t *testing.T, source, target, fstype, opts, any string) {
		for _, e := range ParseMounts(any) {
			if e.Source == "" || e.Target == "" || e.FSType == "" {
				t.Fatalf("%q: entry %+v", any, e)
			}
		}
		if source == "" || target == "" || strings.HasPrefix(source, "#") || strings.ContainsAny(source+target, "\r") ||
			fstype == "" || strings.ContainsAny(fstype+opts, " \t\r\n#") || strings.HasPrefix(opts, ",") {
			return
		}
		line := strings.Join([]string{EscapeMountField(source), EscapeMountField(target), fstype, opts, "0", "0"}, " ")
		if opts == "" {
			line = strings.Join([]string{EscapeMountField(source), EscapeMountField(target), fstype}, "\t")
		}
		content := "proc /proc proc rw 0 0\n" + line + "\n"
		got := ParseMounts(content)
		if len(got) != 2 {
			t.Fatalf("%q: %d entries", content, len(got))
		}
		e := got[1]
		var wantOpts []string
		if opts != "" {
			wantOpts = strings.Split(opts, ",")
		}
		if e.Source != source || e.Target != target || e.FSType != fstype || !reflect.DeepEqual(e.Options, wantOpts) {
			t.Fatalf("%q: got %+v", content, e)
		}
		if m, ok := LiveMount(got, target); !ok || m.Source != source {
			t.Fatalf("%q: live mount at %q: %+v %v", content, target, m, ok)
		}
	})
}

// FuzzParseUserState: the user probe's lines for an account (home with
// '|' or spaces, any authorized_keys bytes) give it back; any output parses
// without a panic.
func FuzzParseUserState(f *testing.F) {
	f.Add("/home/rb|x", "/bin/sh", "rb", []byte("ssh-ed25519 AAAA k\n"), true, "pw=a:b\n/|x\nak=!!\n")
	f.Add("/var/lib/rb ", "", "edguser", []byte{0, 255}, false, "/a|dir|755|root|root\nhome=/a\n")
	f.Fuzz(func(t *testing.T, home, shell, group string, keys []byte, _ bool, any string) {
		_ = ParseUserState(any)
		// A user or group name holds no '|' (useradd and groupadd refuse
		// it): only the home may, and is read from the right.
		if !strings.HasPrefix(home, "/") || strings.ContainsAny(home+shell+group, ":\n") || strings.Contains(group, "|") {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "pw=u:x:1000:1000:U:%s:%s\ngid=%s\nhome=%s\n", home, shell, group, home)
		fmt.Fprintf(&b, "%s|directory|755|u|%s\n", home, group)
		fmt.Fprintf(&b, "%s|directory|700|u|%s\n", path.Join(home, ".ssh"), group)
		fmt.Fprintf(&b, "%s|regular file|600|u|%s\n", path.Join(home, ".ssh", "authorized_keys"), group)
		fmt.Fprintf(&b, "ak=%s\n", base64.StdEncoding.EncodeToString(keys))
		st := ParseUserState(b.String())
		if !st.Exists || st.Home != home || st.Shell != shell || st.Group != group || !st.KeysKnown ||
			string(st.Keys) != string(keys) {
			t.Fatalf("%q: got %+v", b.String(), st)
		}
		if st.HomeStat != (StatLine{true, "directory", "755", "u", group}) ||
			st.SSHStat != (StatLine{true, "directory", "700", "u", group}) ||
			st.AKStat != (StatLine{true, "regular file", "600", "u", group}) {
			t.Fatalf("%q: stats %+v %+v %+v", b.String(), st.HomeStat, st.SSHStat, st.AKStat)
		}
	})
}
