package steps

import (
	"encoding/base64"
	"fmt"
	"path"
	"reflect"
	"strings"
	"testing"
)

// The fuzz targets below cover every parser of what a host's probes print
// (FuzzParseManifest, in statedir_test.go, covers the manifest). Each
// round-trips what the probe script would print for a given state, and
// feeds arbitrary output for "no panic" and the parser's invariants.

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
		line := strings.Join([]string{escapeMountField(source), escapeMountField(target), fstype, opts, "0", "0"}, " ")
		if opts == "" {
			line = strings.Join([]string{escapeMountField(source), escapeMountField(target), fstype}, "\t")
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

// FuzzParseUserState: the user probe's lines for an account (home with
// '|' or spaces, any authorized_keys bytes) give it back; any output parses
// without a panic.
func FuzzParseUserState(f *testing.F) {
	f.Add("/home/rb|x", "/bin/sh", "rb", []byte("ssh-ed25519 AAAA k\n"), true, "pw=a:b\n/|x\nak=!!\n")
	f.Add("/var/lib/rb ", "", "edguser", []byte{0, 255}, false, "/a|dir|755|root|root\nhome=/a\n")
	f.Fuzz(func(t *testing.T, home, shell, group string, keys []byte, groupExists bool, any string) {
		_ = parseUserState(any)
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
		if groupExists {
			b.WriteString("groupexists=1\n")
		}
		st := parseUserState(b.String())
		if !st.Exists || st.Home != home || st.Shell != shell || st.Group != group || !st.KeysKnown ||
			string(st.Keys) != string(keys) || st.GroupExists != groupExists {
			t.Fatalf("%q: got %+v", b.String(), st)
		}
		if st.HomeStat != (statLine{true, "directory", "755", "u", group}) ||
			st.SSHStat != (statLine{true, "directory", "700", "u", group}) ||
			st.AKStat != (statLine{true, "regular file", "600", "u", group}) {
			t.Fatalf("%q: stats %+v %+v %+v", b.String(), st.HomeStat, st.SSHStat, st.AKStat)
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
