package steps

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/gridha/gridha/installer"
)

// User is a local account with a home directory and, when AuthorizedKeys
// is not nil, ~/.ssh (0700) and ~/.ssh/authorized_keys (0600) owned by the
// user and holding exactly AuthorizedKeys, one per line (an empty, non-nil
// slice empties the file). Created with useradd, changed with usermod.
type User struct {
	Name  string
	Home  string // "": useradd's default for a new user, leave for an existing one
	Shell string // "": leave
	// System creates a system account (useradd -r); it does not change an
	// existing account.
	System bool
	// Group is the primary group (created when missing); "": leave.
	Group          string
	AuthorizedKeys []string
}

// ID implements installer.Step.
func (u User) ID() string { return "user " + u.Name }

// Probes implements installer.Step.
func (u User) Probes() []installer.Probe { return []installer.Probe{installer.UserProbe(u.Name)} }

// keysContent is the authorized_keys file holding exactly keys.
func keysContent(keys []string) []byte {
	var b strings.Builder
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k != "" {
			b.WriteString(k)
			b.WriteByte('\n')
		}
	}
	return []byte(b.String())
}

// KeyDiff compares authorized_keys content with the wanted keys and returns
// the keys missing and extra (comments and blank lines ignored).
func KeyDiff(content []byte, want []string) (missing, extra []string) {
	have := map[string]bool{}
	for _, l := range strings.Split(string(content), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			have[l] = true
		}
	}
	wantSet := map[string]bool{}
	for _, k := range want {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		wantSet[k] = true
		if !have[k] {
			missing = append(missing, KeyLabel(k))
		}
	}
	for k := range have {
		if !wantSet[k] {
			extra = append(extra, KeyLabel(k))
		}
	}
	sort.Strings(extra)
	return missing, extra
}

// KeyLabel shortens a public key line for messages: type, the last 12
// characters of the key, and the comment.
func KeyLabel(line string) string {
	f := strings.Fields(line)
	// Options may precede the key type.
	for i := 0; i+1 < len(f); i++ {
		if strings.HasPrefix(f[i], "ssh-") || strings.HasPrefix(f[i], "ecdsa-") || strings.HasPrefix(f[i], "sk-") {
			key := f[i+1]
			if len(key) > 12 {
				key = "..." + key[len(key)-12:]
			}
			label := f[i] + " " + key
			if i+2 < len(f) {
				label += " " + strings.Join(f[i+2:], " ")
			}
			return label
		}
	}
	if len(line) > 40 {
		return line[:40] + "..."
	}
	return line
}

// CheckApply implements installer.Step.
func (u User) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	st, err := env.Facts.User(u.Name)
	if err != nil {
		return failed(env, u.ID(), err)
	}
	manageKeys := u.AuthorizedKeys != nil
	wantKeys := keysContent(u.AuthorizedKeys)

	var diffs, mod []string
	var props []installer.PropertyDrift
	if !st.Exists {
		diffs = append(diffs, "user "+u.Name+" does not exist")
	} else {
		if u.Home != "" && path.Clean(st.Home) != path.Clean(u.Home) {
			diffs = append(diffs, fmt.Sprintf("home %s, want %s", st.Home, u.Home))
			props = append(props, installer.Prop("home", u.Home, st.Home))
			mod = append(mod, "-d "+installer.ShellQuote(u.Home))
		}
		if u.Shell != "" && st.Shell != u.Shell {
			diffs = append(diffs, fmt.Sprintf("shell %s, want %s", st.Shell, u.Shell))
			props = append(props, installer.Prop("shell", u.Shell, st.Shell))
			mod = append(mod, "-s "+installer.ShellQuote(u.Shell))
		}
		if u.Group != "" && st.Group != u.Group {
			diffs = append(diffs, fmt.Sprintf("primary group %s, want %s", st.Group, u.Group))
			props = append(props, installer.Prop("group", u.Group, st.Group))
			mod = append(mod, "-g "+installer.ShellQuote(u.Group))
		}
		if len(mod) == 0 && !st.HomeStat.Exists {
			diffs = append(diffs, "home directory "+st.Home+" missing")
			props = append(props, installer.Prop("home_dir", "directory", "absent"))
		}
	}
	keysDiffer := false
	if manageKeys && st.Exists && len(mod) == 0 {
		owner := u.Name
		if s := st.SSHStat; !s.Exists {
			diffs = append(diffs, "~/.ssh missing")
			props = append(props, installer.Prop("ssh_dir", "directory 700 "+owner, "absent"))
		} else if s.Kind != "directory" || s.Mode != "700" || s.Owner != owner {
			diffs = append(diffs, fmt.Sprintf("~/.ssh is %s %s owned by %s, want directory 700 owned by %s", s.Kind, s.Mode, s.Owner, owner))
			props = append(props, installer.Prop("ssh_dir", "directory 700 "+owner, s.Kind+" "+s.Mode+" "+s.Owner))
		}
		if s := st.AKStat; !s.Exists {
			diffs = append(diffs, "~/.ssh/authorized_keys missing")
			props = append(props, installer.Prop("authorized_keys", keyLabels(string(wantKeys)), "absent"))
			keysDiffer = true
		} else {
			if s.Mode != "600" || s.Owner != owner {
				diffs = append(diffs, fmt.Sprintf("authorized_keys mode %s owner %s, want 600 owned by %s", s.Mode, s.Owner, owner))
				props = append(props, installer.Prop("authorized_keys_mode", "600 "+owner, s.Mode+" "+s.Owner))
			}
			if string(st.Keys) != string(wantKeys) {
				keysDiffer = true
				missing, extra := KeyDiff(st.Keys, u.AuthorizedKeys)
				var d []string
				if len(missing) > 0 {
					d = append(d, "missing "+strings.Join(missing, ", "))
				}
				if len(extra) > 0 {
					d = append(d, "extra "+strings.Join(extra, ", "))
				}
				if len(d) == 0 {
					d = append(d, "same keys, other order or comments")
				}
				diffs = append(diffs, "authorized_keys: "+strings.Join(d, "; "))
				props = append(props, installer.Prop("authorized_keys", keyLabels(string(wantKeys)), keyLabels(string(st.Keys))))
			}
		}
	} else if manageKeys {
		keysDiffer = true
	}
	if len(diffs) == 0 {
		return installer.OK("")
	}
	msg := "user " + u.Name + ": " + strings.Join(diffs, "; ")
	if !apply {
		if !st.Exists {
			r := installer.MissingProps(msg, installer.Prop("exists", "yes", "no"))
			r.Expected, r.Found = u.expectedState(), "absent"
			return r
		}
		r := installer.DriftProps(msg, props...)
		r.Expected, r.Found = u.expectedState(), describeUser(st, manageKeys)
		return r
	}

	var b strings.Builder
	fmt.Fprintf(&b, "set -e\nn=%s\n", installer.ShellQuote(u.Name))
	if u.Group != "" {
		sys := ""
		if u.System {
			sys = "-r "
		}
		fmt.Fprintf(&b, "getent group %s >/dev/null || groupadd %s%s\n", installer.ShellQuote(u.Group), sys, installer.ShellQuote(u.Group))
	}
	if !st.Exists {
		args := []string{"-m"}
		if u.System {
			args = append(args, "-r")
		}
		if u.Home != "" {
			args = append(args, "-d", installer.ShellQuote(u.Home))
		}
		if u.Shell != "" {
			args = append(args, "-s", installer.ShellQuote(u.Shell))
		}
		if u.Group != "" {
			args = append(args, "-g", installer.ShellQuote(u.Group))
		}
		fmt.Fprintf(&b, "useradd %s \"$n\"\n", strings.Join(args, " "))
	} else if len(mod) > 0 {
		fmt.Fprintf(&b, "usermod %s \"$n\"\n", strings.Join(mod, " "))
	}
	b.WriteString(`g=$(id -gn "$n"); h=$(getent passwd "$n" | cut -d: -f6)
[ -d "$h" ] || { mkdir -p "$h"; chown "$n:$g" "$h"; chmod 0755 "$h"; }
`)
	if manageKeys {
		b.WriteString(`install -d -m 0700 -o "$n" -g "$g" "$h/.ssh"
if [ -f "$h/.ssh/authorized_keys" ]; then chown "$n:$g" "$h/.ssh/authorized_keys"; chmod 0600 "$h/.ssh/authorized_keys"; fi
`)
	}
	b.WriteString(`echo "group=$g"; echo "home=$h"` + "\n")
	res, err := sh(ctx, env, "user "+u.Name, b.String(), nil)
	if err != nil {
		return failed(env, u.ID(), err)
	}
	var group, home string
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		if v, ok := strings.CutPrefix(l, "group="); ok {
			group = v
		}
		if v, ok := strings.CutPrefix(l, "home="); ok {
			home = v
		}
	}
	if manageKeys && (keysDiffer || string(st.Keys) != string(wantKeys)) {
		if home == "" || group == "" {
			return failed(env, u.ID(), fmt.Errorf("could not read home and group of %s after useradd", u.Name))
		}
		if err := env.Conn.WriteFile(ctx, path.Join(home, ".ssh", "authorized_keys"), wantKeys, 0o600, u.Name, group); err != nil {
			return failed(env, u.ID(), err)
		}
	}
	return installer.Changed(msg)
}

// expectedState describes the wanted account for a verify report (keys by
// label, never whole).
func (u User) expectedState() string {
	p := []string{"user " + u.Name}
	if u.Home != "" {
		p = append(p, "home "+u.Home)
	}
	if u.Shell != "" {
		p = append(p, "shell "+u.Shell)
	}
	if u.Group != "" {
		p = append(p, "group "+u.Group)
	}
	if u.AuthorizedKeys != nil {
		p = append(p, "authorized_keys: "+keyLabels(strings.Join(u.AuthorizedKeys, "\n")))
	}
	return strings.Join(p, ", ")
}

// describeUser is what the probe found, in the terms of expectedState.
func describeUser(st installer.UserState, manageKeys bool) string {
	p := []string{"user exists", "home " + st.Home, "shell " + st.Shell, "group " + st.Group}
	if manageKeys {
		switch {
		case !st.SSHStat.Exists:
			p = append(p, "no ~/.ssh")
		case !st.AKStat.Exists:
			p = append(p, "no authorized_keys")
		default:
			p = append(p, fmt.Sprintf("authorized_keys (%s %s): %s", st.AKStat.Mode, st.AKStat.Owner, keyLabels(string(st.Keys))))
		}
	}
	return strings.Join(p, ", ")
}

// keyLabels lists the keys of authorized_keys content by KeyLabel
// (comments and blank lines left out), or "none".
func keyLabels(content string) string {
	var out []string
	for _, l := range strings.Split(content, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, KeyLabel(l))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
