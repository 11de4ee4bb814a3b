package steps

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/gridha/gridha/installer"
)

// FstabPath is the file Mount edits.
const FstabPath = "/etc/fstab"

// Mount is a filesystem at Target: its /etc/fstab line (Fstab) and its live
// state in /proc/mounts (Mounted). Both are declarative: Fstab false means
// no fstab line for Target, Mounted false means not mounted there.
type Mount struct {
	Source  string
	Target  string
	FSType  string
	Options []string // nil: "defaults"
	Fstab   bool
	Mounted bool
	// SourceSuffix: a live mount of FSType whose source ends with it is
	// the same filesystem as Source, not remounted for another source
	// (only the fstab line changes). A GlusterFS volume ("srv:/vol")
	// fetched from another server of its pool is the same volume, and a
	// node's services keep the mount busy: when the pool member it was
	// mounted from is replaced, the mount stays until its next mount.
	SourceSuffix string
}

// ID implements installer.Step.
func (m Mount) ID() string { return "mount " + m.Target }

// Probes implements installer.Step.
func (m Mount) Probes() []installer.Probe {
	return []installer.Probe{
		installer.FileProbe(FstabPath),
		installer.MountsProbe(),
	}
}

// FstabLine renders the fstab line of m.
func (m Mount) FstabLine() string {
	opts := strings.Join(m.Options, ",")
	if opts == "" {
		opts = "defaults"
	}
	return strings.Join([]string{installer.EscapeMountField(m.Source), installer.EscapeMountField(m.Target), m.FSType, opts, "0", "0"}, " ")
}

// SetFstabLine returns fstab content where target has exactly the given
// line (want != "") or no line (want == ""). The first line for target is
// replaced, later duplicates removed, a missing one appended; comments and
// other lines are kept byte for byte. A line is left alone when its fields
// equal want's, whatever the spacing.
func SetFstabLine(content []byte, target, want string) (out []byte, found string, changed bool) {
	lines := bytes.SplitAfter(content, []byte("\n"))
	var b bytes.Buffer
	done := false
	wantFields := strings.Join(installer.MountFields(want), " ")
	for _, l := range lines {
		if len(l) == 0 {
			continue
		}
		text := strings.TrimRight(string(l), "\n")
		f := installer.MountFields(text)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && installer.UnescapeMountField(f[1]) == target {
			if found == "" {
				found = text
			}
			if want != "" && !done {
				done = true
				if strings.Join(f, " ") == wantFields {
					b.Write(l)
					continue
				}
				b.WriteString(want + "\n")
			}
			changed = true
			continue
		}
		b.Write(l)
	}
	if want != "" && !done {
		if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
			b.WriteByte('\n')
		}
		b.WriteString(want + "\n")
		changed = true
	}
	if !changed {
		return content, found, false
	}
	return b.Bytes(), found, true
}

// flagOptions are mount options the kernel shows in /proc/mounts; only these
// are compared with the live state (others such as _netdev, noauto or a
// FUSE helper's own options never appear there).
var flagOptions = map[string]string{
	"ro": "rw", "rw": "ro", "nosuid": "suid", "nodev": "dev", "noexec": "exec",
	"noatime": "", "nodiratime": "", "sync": "", "dirsync": "",
}

// OptionDiffs lists the wanted options the live mount lacks (and "ro" when
// mounted read-only without asking for it).
func OptionDiffs(want, live []string) []string {
	has := map[string]bool{}
	for _, o := range live {
		has[o] = true
	}
	wantSet := map[string]bool{}
	var out []string
	for _, o := range want {
		wantSet[o] = true
		if _, kernel := flagOptions[o]; kernel && !has[o] {
			out = append(out, o)
		}
		switch o { // suid/dev/exec: the "no" flag must be absent
		case "suid", "dev", "exec":
			if has["no"+o] {
				out = append(out, o)
			}
		}
	}
	if !wantSet["ro"] && has["ro"] {
		out = append(out, "rw")
	}
	return out
}

// CheckApply implements installer.Step.
func (m Mount) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if m.Target == "" || !strings.HasPrefix(m.Target, "/") {
		return failed(env, m.ID(), fmt.Errorf("target %q is not an absolute path", m.Target))
	}
	ff, err := fileFact(env, FstabPath)
	if err != nil {
		return failed(env, m.ID(), err)
	}
	entries, err := env.Facts.Mounts()
	if err != nil {
		return failed(env, m.ID(), err)
	}
	want := ""
	if m.Fstab {
		want = m.FstabLine()
	}
	newFstab, foundLine, fstabChanged := SetFstabLine(ff.Content, m.Target, want)
	live, mounted := installer.LiveMount(entries, m.Target)

	var diffs []string
	var props []installer.PropertyDrift
	if fstabChanged {
		switch {
		case !m.Fstab:
			diffs = append(diffs, "fstab has "+strconv.Quote(foundLine)+", want no line")
		case foundLine == "":
			diffs = append(diffs, "no fstab line")
		default:
			diffs = append(diffs, fmt.Sprintf("fstab line %q, want %q", foundLine, want))
		}
		props = append(props, installer.Prop("fstab", or(want, "no line"), or(foundLine, "no line")))
	}
	action := "" // mount, remount, umount, umount+mount
	opts := strings.Join(m.Options, ",")
	switch {
	case m.Mounted && !mounted:
		diffs = append(diffs, "not mounted")
		props = append(props, installer.Prop("mounted", "yes", "no"))
		action = "mount"
	case m.Mounted && (live.Source != m.Source && (m.SourceSuffix == "" || !strings.HasSuffix(live.Source, m.SourceSuffix)) || !sameFSType(live.FSType, m.FSType)):
		diffs = append(diffs, fmt.Sprintf("mounted from %s (%s), want %s (%s)", live.Source, live.FSType, m.Source, m.FSType))
		props = append(props, installer.Prop("source", m.Source+" ("+m.FSType+")", live.Source+" ("+live.FSType+")"))
		action = "umount+mount"
	case m.Mounted:
		if od := OptionDiffs(m.Options, live.Options); len(od) > 0 {
			diffs = append(diffs, fmt.Sprintf("mounted with %s, lacks %s", strings.Join(live.Options, ","), strings.Join(od, ",")))
			props = append(props, installer.Prop("options", strings.Join(m.Options, ","), strings.Join(live.Options, ",")))
			action = "remount"
		}
	case !m.Mounted && mounted:
		diffs = append(diffs, fmt.Sprintf("mounted from %s, want not mounted", live.Source))
		props = append(props, installer.Prop("mounted", "no", "yes, from "+live.Source))
		action = "umount"
	}
	if len(diffs) == 0 {
		return installer.OK("")
	}
	msg := m.Target + ": " + strings.Join(diffs, "; ")
	if !apply {
		var r installer.Result
		if m.Mounted && !mounted && (!m.Fstab || foundLine == "") {
			r = installer.MissingProps(msg, props...)
		} else {
			r = installer.DriftProps(msg, props...)
		}
		r.Expected = m.expected()
		r.Found = foundState(foundLine, live, mounted)
		if env.Diff && fstabChanged {
			r.Diff = unifiedDiff(FstabPath, ff.Content, newFstab)
		}
		return r
	}
	if fstabChanged {
		mode, owner, group := ff.Mode, ff.Owner, ff.Group
		if !ff.Exists {
			mode, owner, group = 0o644, "", ""
		}
		if err := env.Conn.WriteFile(ctx, FstabPath, newFstab, mode, owner, group); err != nil {
			return failed(env, m.ID(), err)
		}
	}
	t := installer.ShellQuote(m.Target)
	mountCmd := mountCommand(m.FSType, opts, m.Source, m.Target)
	var script string
	switch action {
	case "mount":
		script = mountCmd
	case "umount+mount":
		script = "umount " + t + " && " + mountCmd
	case "remount":
		script = "mount -o " + installer.ShellQuote("remount,"+or(opts, "defaults")) + " " + t
	case "umount":
		script = "umount " + t
	}
	if script != "" {
		// Output to a file, not the session: a FUSE helper (sshfs) that
		// keeps the inherited stdout open would hold the session forever.
		full := `o=$(mktemp) || exit 1
( ` + script + ` ) </dev/null >"$o" 2>&1; rc=$?
cat "$o" >&2; rm -f "$o"; exit $rc`
		if _, err := sh(ctx, env, action+" "+m.Target, full, nil); err != nil {
			return failed(env, m.ID(), err)
		}
	}
	return installer.Changed(msg)
}

// mountCommand is the shell command that mounts source on target.
func mountCommand(fstype, opts, source, target string) string {
	t := installer.ShellQuote(target)
	cmd := fmt.Sprintf("mkdir -p %s && mount -t %s", t, installer.ShellQuote(fstype))
	if opts != "" {
		cmd += " -o " + installer.ShellQuote(opts)
	}
	cmd += " " + installer.ShellQuote(source) + " " + t
	if networkFS(fstype) {
		// A server that many nodes log in to at once refuses some
		// connections (sshd's MaxStartups: 30 first mounts at once lost a
		// few); a refused mount leaves nothing behind, so try again, 3
		// times in all, 1 s then 2 s apart.
		cmd = "n=1; until " + cmd + "; do [ $n -ge 3 ] && exit 1; echo \"mount attempt $n failed, retrying\"; sleep $n; n=$((n+1)); done"
	}
	return cmd
}

// networkFS says whether a mount of fstype needs a server that may refuse a
// connection for a moment (worth a bounded retry).
func networkFS(fstype string) bool {
	switch fstype {
	case "fuse.sshfs", "sshfs", "glusterfs", "fuse.glusterfs", "nfs", "nfs4":
		return true
	}
	return false
}

// sameFSType compares a live filesystem type with the wanted one: FUSE
// filesystems show as fuse.<helper> (sshfs -> fuse.sshfs) and nfs may show
// as nfs4.
func sameFSType(live, want string) bool {
	// bindfs (and other FUSE file systems that set no subtype) show as
	// plain "fuse".
	return live == want || live == "fuse."+want || want == "fuse."+live ||
		(live == "fuse" && strings.HasPrefix(want, "fuse.")) ||
		(want == "nfs" && live == "nfs4")
}

func (m Mount) expected() string {
	var p []string
	if m.Fstab {
		p = append(p, "fstab: "+m.FstabLine())
	} else {
		p = append(p, "no fstab line")
	}
	if m.Mounted {
		p = append(p, "mounted")
	} else {
		p = append(p, "not mounted")
	}
	return strings.Join(p, "; ")
}

func foundState(line string, live installer.MountEntry, mounted bool) string {
	p := []string{"no fstab line"}
	if line != "" {
		p[0] = "fstab: " + line
	}
	if mounted {
		p = append(p, fmt.Sprintf("mounted %s %s %s", live.Source, live.FSType, strings.Join(live.Options, ",")))
	} else {
		p = append(p, "not mounted")
	}
	return strings.Join(p, "; ")
}
