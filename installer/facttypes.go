package installer

import (
	"encoding/base64"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// The typed facts other than files: what a service, a user account and the
// mount table look like on a host, the scripts that read them and their
// parsers. The gatherer runs the scripts and parses each answer once
// (Facts.record); steps read the values (Facts.Service, Facts.User,
// Facts.Mounts).

// Init systems a ServiceState names.
const (
	InitSystemd = "systemd"
	InitRedHat  = "sysv-redhat"
	InitDebian  = "sysv-debian"
)

// ServiceStateScript prints init=, load=, boot=/link= and status= lines for
// service $n (the caller sets n). Steps that change a service run it again
// after the change, in the same session.
const ServiceStateScript = `if [ -d /run/systemd/system ]; then
  echo init=systemd
  systemctl show -p LoadState "$n.service" 2>/dev/null | sed 's/^LoadState=/load=/'
  echo "boot=$(systemctl is-enabled "$n.service" 2>/dev/null)"
  systemctl is-active --quiet "$n.service"; echo "status=$?"
else
  if command -v chkconfig >/dev/null 2>&1; then echo init=sysv-redhat; else echo init=sysv-debian; fi
  if [ -f "/etc/init.d/$n" ]; then
    echo load=loaded
    for f in /etc/rc[0-6S].d/[SK][0-9][0-9]"$n" /etc/rc.d/rc[0-6].d/[SK][0-9][0-9]"$n"; do
      if [ -e "$f" ] || [ -L "$f" ]; then echo "link=$f"; fi
    done
    # The init script itself, as service(8) would run it (from /), without
    # service's own processes: one process per probe instead of five.
    if [ -x "/etc/init.d/$n" ]; then (cd / && exec "/etc/init.d/$n" status) >/dev/null 2>&1; else service "$n" status >/dev/null 2>&1; fi
    echo "status=$?"
  else
    echo load=not-found
  fi
fi
`

// ServiceState is what a ServiceProbe found about a service.
type ServiceState struct {
	Init       string
	Installed  bool
	Enabled    bool
	BootRaw    string // systemctl is-enabled output, or the S links found
	Running    bool
	StatusCode int // LSB status / systemctl is-active exit code
}

// ParseServiceState reads the output of ServiceStateScript.
func ParseServiceState(out string) ServiceState {
	var st ServiceState
	var links []string
	st.StatusCode = -1
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "init":
			st.Init = v
		case "load":
			st.Installed = v != "" && v != "not-found"
		case "boot":
			st.BootRaw = v
			st.Enabled = SystemdEnabled(v)
		case "link":
			links = append(links, v)
		case "status":
			if n, err := strconv.Atoi(v); err == nil {
				st.StatusCode = n
			}
		}
	}
	if st.Init != InitSystemd {
		st.Enabled = SysVEnabled(links)
		st.BootRaw = strings.Join(links, " ")
	}
	st.Running = LSBRunning(st.StatusCode)
	return st
}

// SystemdEnabled maps "systemctl is-enabled" output to enabled at boot.
func SystemdEnabled(s string) bool {
	switch s {
	case "enabled", "enabled-runtime", "static", "generated", "alias":
		return true
	}
	return false
}

// SysVEnabled reports whether any of the rc links starts the service in a
// multi-user runlevel (2 to 5).
func SysVEnabled(links []string) bool {
	for _, l := range links {
		i := strings.LastIndex(l, "/")
		if i < 0 || i+1 >= len(l) || l[i+1] != 'S' {
			continue
		}
		dir := l[:i] // .../rcN.d
		if len(dir) >= 4 && strings.HasSuffix(dir, ".d") {
			lvl := dir[len(dir)-3]
			if lvl >= '2' && lvl <= '5' {
				return true
			}
		}
	}
	return false
}

// LSBRunning maps an LSB init script status exit code (or systemctl
// is-active's) to running: 0 is running; 1 (dead, pid file left), 2 (dead,
// lock file left), 3 (not running) and 4 (unknown) are not.
func LSBRunning(code int) bool { return code == 0 }

// LSBStatusText explains an LSB status exit code.
func LSBStatusText(code int) string {
	switch code {
	case 0:
		return "running"
	case 1:
		return "dead, pid file exists"
	case 2:
		return "dead, lock file exists"
	case 3:
		return "not running"
	case 4:
		return "status unknown"
	case -1:
		return "status not probed"
	}
	return fmt.Sprintf("status exit %d", code)
}

// userScript reads account $n: the passwd entry, the primary group, one
// stat for the home, ~/.ssh and authorized_keys, and the keys (few
// processes: getent, id, stat, base64).
func userScript(name string) string {
	return "n=" + ShellQuote(name) + `
if e=$(getent passwd "$n"); then
  echo "pw=$e"
  echo "gid=$(id -gn "$n")"
  h=${e#*:*:*:*:*:}; h=${h%%:*}
  echo "home=$h"
  if [ -n "$h" ]; then
    stat -c '%n|%F|%a|%U|%G' "$h" "$h/.ssh" "$h/.ssh/authorized_keys" 2>/dev/null
    if [ -f "$h/.ssh/authorized_keys" ]; then printf 'ak='; base64 -w0 "$h/.ssh/authorized_keys"; echo; fi
  fi
fi
`
}

// UserState is what a UserProbe found about an account.
type UserState struct {
	Exists             bool
	Home, Shell, Group string // Group: the primary group's name
	HomeStat           StatLine
	SSHStat, AKStat    StatLine // ~/.ssh and ~/.ssh/authorized_keys
	Keys               []byte   // authorized_keys content
	KeysKnown          bool
}

// StatLine is the kind, mode and ownership of one path of a UserState.
type StatLine struct {
	Exists       bool
	Kind, Mode   string // stat's %F and %a
	Owner, Group string
}

func parseStatLine(v string) StatLine {
	f := strings.Split(v, "|")
	if len(f) != 4 {
		return StatLine{}
	}
	return StatLine{Exists: true, Kind: f[0], Mode: f[1], Owner: f[2], Group: f[3]}
}

// ParseUserState reads the output of a UserProbe.
func ParseUserState(out string) UserState {
	var st UserState
	var stats []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "/") {
			stats = append(stats, line)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "pw":
			f := strings.Split(v, ":")
			if len(f) >= 7 {
				st.Exists = true
				st.Home, st.Shell = f[5], f[6]
			}
		case "gid":
			st.Group = v
		case "home":
			if !st.Exists {
				st.Home = v
			}
		case "ak":
			if b, err := base64.StdEncoding.DecodeString(v); err == nil {
				st.Keys, st.KeysKnown = b, true
			}
		}
	}
	if st.Home != "" {
		for _, l := range stats {
			// The path is what lies before the last four fields: a
			// home may hold '|' itself (found by FuzzParseUserState).
			f := strings.Split(l, "|")
			if len(f) < 5 {
				continue
			}
			p, rest := strings.Join(f[:len(f)-4], "|"), strings.Join(f[len(f)-4:], "|")
			switch path.Clean(p) {
			case path.Clean(st.Home):
				st.HomeStat = parseStatLine(rest)
			case path.Join(st.Home, ".ssh"):
				st.SSHStat = parseStatLine(rest)
			case path.Join(st.Home, ".ssh", "authorized_keys"):
				st.AKStat = parseStatLine(rest)
			}
		}
	}
	return st
}

// mountsScript prints /proc/mounts, read by sh itself: one process fewer
// in every verify.
const mountsScript = `while IFS= read -r l; do printf '%s\n' "$l"; done < /proc/mounts`

// MountEntry is one line of /proc/mounts or /etc/fstab.
type MountEntry struct {
	Source, Target, FSType string
	Options                []string
}

// MountFields splits a /proc/mounts or fstab line at spaces and tabs, the
// only separators the kernel and fstab(5) use (they write those inside a
// field as octal escapes). strings.Fields would also split at U+00A0 and
// U+0085, which a path may hold as they are (found by FuzzParseMounts); a
// CRLF line's final CR is no part of the last field.
func MountFields(line string) []string {
	return strings.FieldsFunc(strings.TrimSuffix(line, "\r"), func(r rune) bool { return r == ' ' || r == '\t' })
}

// EscapeMountField escapes a mount field the way fstab and /proc/mounts
// write it (octal, for backslash, space, tab and newline).
func EscapeMountField(s string) string {
	r := strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`)
	return r.Replace(s)
}

// UnescapeMountField undoes EscapeMountField the octal escapes of a mount field (\040 for a
// space).
func UnescapeMountField(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ParseMounts reads /proc/mounts (or fstab) content: blank and comment
// lines are skipped, fields unescaped.
func ParseMounts(content string) []MountEntry {
	var out []MountEntry
	for _, line := range strings.Split(content, "\n") {
		f := MountFields(line)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		e := MountEntry{Source: UnescapeMountField(f[0]), Target: UnescapeMountField(f[1]), FSType: f[2]}
		if len(f) >= 4 {
			e.Options = strings.Split(f[3], ",")
		}
		out = append(out, e)
	}
	return out
}

// LiveMount returns the entry mounted at target that is visible (the last
// one in /proc/mounts).
func LiveMount(entries []MountEntry, target string) (MountEntry, bool) {
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Target == target {
			return entries[i], true
		}
	}
	return MountEntry{}, false
}
