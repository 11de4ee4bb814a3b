package roles

import (
	"context"
	"fmt"
	"maps"
	"net"
	"path"
	"slices"
	"strings"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
)

// The rb nodes' credential on the state server, confined (issue 12):
//
//   - sshfs driver: the login account (snfs) has uid 0, so that the SFTP
//     server can keep every file's owner (a node's `cp -a` chowns, and the
//     node's bindfs layer gives new files their creator's uid). It is confined
//     by an sshd Match block: ChrootDirectory on the export (root-owned),
//     ForceCommand internal-sftp (in-process: no shell, no exec), no TCP,
//     stream-local, agent or X11 forwarding, no tunnel, no tty, no user rc,
//     and its keys read from a root-owned file outside the chroot, which the
//     account can neither see nor write. Its login shell is nologin.
//   - snfs (sec_rpc) driver: an ordinary system account (no uid 0: NFS as
//     root needs no privileged login), shell /bin/sh (sshd runs the key's
//     command= through it), each key `command="rpc_psrv -r"`: the remote end
//     of sec_rpc's proxy, nothing else; the same Match block without chroot
//     and ForceCommand.

// snfsKeysDir holds the root-owned authorized keys files (AuthorizedKeysFile
// of the Match block); the account's own ~/.ssh is not read.
const snfsKeysDir = "/etc/ssh/authorized_keys"

// sshdConfigPath is the sshd configuration gridha appends its block to.
const sshdConfigPath = "/etc/ssh/sshd_config"

// nologinShell is the sshfs account's login shell.
const nologinShell = "/usr/sbin/nologin"

// snfsRPCCommand is the only command the sec_rpc driver's key may run.
const snfsRPCCommand = "rpc_psrv -r"

// Markers of gridha's block in sshd_config.
const (
	sshdBlockBegin = "# BEGIN gridha state-server: rb nodes' confined login (written by gridha; do not edit)"
	sshdBlockEnd   = "# END gridha state-server"
)

// snfsKeysFile is the account's authorized keys file.
func snfsKeysFile(user string) string { return path.Join(snfsKeysDir, user) }

// sshdBlock renders gridha's Match block.
func sshdBlock(user, export, driver string) string {
	lines := []string{
		sshdBlockBegin,
		"Match User " + user,
		"\tAuthorizedKeysFile " + snfsKeysDir + "/%u",
		"\tPasswordAuthentication no",
		"\tKbdInteractiveAuthentication no",
		"\tAllowTcpForwarding no",
		"\tAllowStreamLocalForwarding no",
		"\tAllowAgentForwarding no",
		"\tX11Forwarding no",
		"\tPermitTunnel no",
		"\tPermitTTY no",
		"\tPermitUserRC no",
		"\tGatewayPorts no",
		"\tPermitListen none",
		"\tPermitOpen none",
	}
	if driver != "snfs" {
		lines = append(lines,
			"\tChrootDirectory "+export,
			"\tForceCommand internal-sftp",
			// The account has uid 0 (to keep owners): sshd applies
			// PermitRootLogin to it; keys only.
			"\tPermitRootLogin prohibit-password",
		)
	}
	return strings.Join(append(lines, sshdBlockEnd), "\n") + "\n"
}

// confinement is what `sshd -T` must print for the account, connecting from
// a node's address (keys lower case, as sshd -T prints them).
func confinement(user, export, driver string) map[string]string {
	want := map[string]string{
		"authorizedkeysfile":         snfsKeysDir + "/%u",
		"passwordauthentication":     "no",
		"allowtcpforwarding":         "no",
		"allowstreamlocalforwarding": "no",
		"allowagentforwarding":       "no",
		"x11forwarding":              "no",
		"permittunnel":               "no",
		"permittty":                  "no",
		"permituserrc":               "no",
	}
	if driver != "snfs" {
		want["chrootdirectory"] = export
		want["forcecommand"] = "internal-sftp"
	}
	return want
}

// SetSSHDBlock returns sshd_config content with block as the last thing in
// the file (a Match block governs everything after it): an existing gridha
// block is removed wherever it is, everything else is kept byte for byte.
func SetSSHDBlock(content, block string) string {
	var kept []string
	in := false
	for _, l := range strings.SplitAfter(content, "\n") {
		t := strings.TrimRight(l, "\n")
		switch {
		case t == sshdBlockBegin:
			in = true
			continue
		case in && t == sshdBlockEnd:
			in = false
			continue
		case in || l == "":
			continue
		}
		kept = append(kept, l)
	}
	out := strings.Join(kept, "")
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out + block
}

// sshdConfine keeps gridha's Match block at the end of sshd_config, checks
// the configuration with `sshd -t` before reloading sshd, and checks the
// effective settings for the account from each node address with
// `sshd -T -C` (another Match block placed before gridha's, or an Include,
// could override them: that is drift too).
type sshdConfine struct {
	User, Export, Driver string
	// Addrs are the nodes' addresses (sshd -T -C addr=...).
	Addrs []string
}

func (s *sshdConfine) ID() string { return "sshd confinement of " + s.User }

func (s *sshdConfine) effectiveScript() string {
	var b strings.Builder
	addrs := s.Addrs
	if len(addrs) == 0 {
		addrs = []string{"192.0.2.1"}
	}
	// One sshd -T per address is the floor (sshd takes one connection spec
	// at a time) unless the answer provably cannot differ between
	// addresses: the first run is made with -ddd, which logs every Match
	// line sshd evaluated (its own parse, Includes followed); if none of
	// them names an Address or Host criterion, the same settings hold for
	// every node address, named nodes' too: the others get "@@same"
	// (effectiveDiffs gives them the first one's settings). Any doubt (no
	// Match line seen, a log line in another format) runs sshd per address
	// as before. The shell reads sshd's log itself (was awk, and a grep of
	// everything: processes the state server paid for on every verify);
	// effectiveDiffs picks the settings out of what sshd printed. A node
	// named by DNS name costs one getent (every address it has on this
	// server; was getent, awk and sort, and an sshd per address); an IPv4
	// address in canonical form is its own only address.
	b.WriteString(`command -v sshd >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin
same=0 first=1 q="'" nl='
'
# a ADDR HOST USER: sshd's settings for a login of USER from ADDR (HOST).
a() {
  echo "@@addr $1"
  if [ $first = 1 ]; then
    first=0
    t=$(sshd -ddd -T -C "user=$3,host=$2,addr=$1" 2>&1)
    # sshd logs "checking match for '<criteria>' user ...": the criteria's
    # words, split at blanks, '=' and ',', name no Address or Host.
    seen=0 bad=0
    set -f; IFS=$nl
    for l in $t; do
      case $l in *"checking match for $q"*)
        seen=1; c=${l#*"checking match for $q"}; c=${c%%"$q user "*}
        IFS=' 	=,'
        for w in $c; do case $w in [Aa][Dd][Dd][Rr][Ee][Ss][Ss]|[Hh][Oo][Ss][Tt]) bad=1;; esac; done
        IFS=$nl;;
      esac
    done
    unset IFS; set +f
    if [ $seen = 1 ] && [ $bad = 0 ]; then same=1; fi
    printf '%s\n' "$t"
  elif [ $same = 1 ]; then
    echo @@same
  else
    sshd -T -C "user=$3,host=$2,addr=$1" 2>&1
  fi
}
`)
	q := installer.ShellQuote
	for _, n := range addrs {
		if ip := net.ParseIP(n); ip != nil && ip.To4() != nil && ip.String() == n {
			fmt.Fprintf(&b, "a %s %s %s\n", n, n, q(s.User))
			continue
		}
		// Every address once, in getent's order (its first field).
		fmt.Fprintf(&b, `if r=$(getent ahosts %s); then
  got=; set -f; IFS=$nl
  for l in $r; do
    x=${l%%%%[ 	]*}
    case " $got " in *" $x "*) continue;; esac
    got="$got $x"; a "$x" %s %s
  done
  unset IFS; set +f
fi
`, q(n), q(n), q(s.User))
	}
	b.WriteString("exit 0\n")
	return b.String()
}

func (s *sshdConfine) Probes() []installer.Probe {
	return []installer.Probe{installer.FileProbe(sshdConfigPath), {Key: "sshd-effective:" + s.User, Script: s.effectiveScript()}}
}

// effectiveDiffs compares sshd -T output with the wanted confinement.
func (s *sshdConfine) effectiveDiffs(out string) []string {
	want := confinement(s.User, s.Export, s.Driver)
	var diffs []string
	addr := ""
	got := map[string]string{}
	var first map[string]string // the first address's settings, for "@@same"
	flush := func() {
		if first == nil && addr != "" {
			first = got
		}
		if addr == "" {
			return
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if got[k] != want[k] {
				diffs = append(diffs, fmt.Sprintf("from %s: %s is %q, want %q", addr, k, got[k], want[k]))
			}
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if a, ok := strings.CutPrefix(l, "@@addr "); ok {
			flush()
			addr, got = a, map[string]string{}
			continue
		}
		if l == "@@same" && first != nil {
			got = maps.Clone(first)
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(l), " ")
		if ok {
			got[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	flush()
	return diffs
}

func (s *sshdConfine) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	ff, err := env.Facts.File(sshdConfigPath)
	if err != nil {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, s.ID(), err))
	}
	if !ff.Exists {
		return installer.Failed(fmt.Errorf("%s: %s missing: is openssh-server installed?", env.Host, sshdConfigPath))
	}
	block := sshdBlock(s.User, s.Export, s.Driver)
	want := SetSSHDBlock(string(ff.Content), block)
	pr, _ := env.Facts.Get("sshd-effective:" + s.User)
	eff := s.effectiveDiffs(string(pr.Stdout))
	fileOK := want == string(ff.Content)
	if fileOK && len(eff) == 0 {
		return installer.OK("SFTP only" + map[bool]string{true: ", chrooted to " + s.Export, false: ""}[s.Driver != "snfs"] + ", no shell, no forwarding, keys in " + snfsKeysFile(s.User))
	}
	var why []string
	if !fileOK {
		why = append(why, "gridha's Match block in "+sshdConfigPath+" is missing, changed or not last")
	}
	why = append(why, eff...)
	msg := strings.Join(firstOf(why, 6), "; ")
	if !apply {
		found := currentBlock(string(ff.Content))
		if found == "" {
			found = "no gridha block in " + sshdConfigPath
		}
		if len(eff) > 0 {
			found += "\n" + strings.Join(eff, "\n")
		}
		// Two properties: the block gridha writes, and what sshd makes
		// of the whole file (another Match may override it).
		var props []installer.PropertyDrift
		if !fileOK {
			props = append(props, installer.Prop("match_block", "gridha's block, last in "+sshdConfigPath, "missing, changed or not last"))
		}
		if len(eff) > 0 {
			props = append(props, installer.Prop("effective", "SFTP only, confined", strings.Join(eff, "; ")))
		}
		r := installer.DriftProps(msg, props...)
		r.Expected, r.Found = block, found
		return r
	}
	if !fileOK {
		if err := env.Conn.WriteFile(ctx, sshdConfigPath+".gridha-new", []byte(want), ff.Mode, "root", "root"); err != nil {
			return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, s.ID(), err))
		}
		// Check the new file before it replaces the old one: a broken
		// sshd_config would lock everybody out at the next restart.
		script := `N=` + installer.ShellQuote(sshdConfigPath+".gridha-new") + `; C=` + installer.ShellQuote(sshdConfigPath) + `
command -v sshd >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin
if ! out=$(sshd -t -f "$N" 2>&1); then rm -f "$N"; echo "sshd -t refuses the new configuration: $out" >&2; exit 1; fi
mv -f "$N" "$C" || exit 1
` + sshdReload
		res, err := env.Conn.Run(ctx, script, nil)
		if err != nil {
			return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, s.ID(), err))
		}
		if err := res.Err("install the sshd Match block"); err != nil {
			return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, s.ID(), err))
		}
	}
	res, err := env.Conn.Run(ctx, s.effectiveScript(), nil)
	if err != nil {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, s.ID(), err))
	}
	if d := s.effectiveDiffs(string(res.Stdout)); len(d) > 0 {
		return installer.Failed(fmt.Errorf("%s: %s: after writing gridha's Match block sshd still says: %s (an earlier Match block or Include overrides it: fix %s by hand)",
			env.Host, s.ID(), strings.Join(firstOf(d, 4), "; "), sshdConfigPath))
	}
	return installer.Changed(msg)
}

// sshdReload makes the running sshd read its configuration (existing
// sessions, gridha's own included, are separate processes and survive).
const sshdReload = `if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemctl reload ssh 2>/dev/null || systemctl reload sshd
elif [ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null; then kill -HUP "$(cat /run/sshd.pid)"
elif [ -x /etc/init.d/ssh ]; then /etc/init.d/ssh reload
else echo "cannot find how to reload sshd (no systemd, no /run/sshd.pid)" >&2; exit 1; fi
# sshd re-executes itself on SIGHUP and does not listen for a moment: wait
# until it does again (its title says "listener"), so that the next
# connection (another gridha run, a node's mount) is not refused.
sleep 0.3
if [ -s /run/sshd.pid ]; then i=0; while [ $i -lt 50 ] && ! tr '\0' ' ' < /proc/"$(cat /run/sshd.pid)"/cmdline 2>/dev/null | grep -q listener; do sleep 0.1; i=$((i+1)); done; fi
exit 0
`

// snfsAccount is the login account of the nodes on the state server: for
// the sshfs driver uid 0 and gid 0 (a second name for root, confined by the
// Match block), home the export, shell nologin; for the snfs driver a
// system account with /bin/sh. Its password field is "*" (no password,
// but not locked: sshd without PAM refuses keys of a locked account).
func snfsAccount(user, export, home, driver string) installer.Step {
	q := installer.ShellQuote
	if driver == "snfs" {
		return &steps.User{Name: user, Home: home, Shell: "/bin/sh", System: true}
	}
	return &steps.Exec{
		Name:     user + " is uid 0, home " + export + ", shell " + nologinShell,
		ProbeKey: accountProbeKey(user),
		Probe:    accountProbe(user),
		Check: func(r installer.ProbeResult) (bool, string) {
			f, shadow := parseAccountProbe(r.Stdout)
			if len(f) < 7 {
				return false, "no account " + user
			}
			var d []string
			if f[2] != "0" || f[3] != "0" {
				d = append(d, "uid:gid "+f[2]+":"+f[3]+", want 0:0 (owners through sshfs)")
			}
			if f[5] != export {
				d = append(d, "home "+f[5]+", want "+export)
			}
			if f[6] != nologinShell {
				d = append(d, "shell "+f[6]+", want "+nologinShell)
			}
			if shadow == "locked" {
				d = append(d, "locked (sshd refuses its keys)")
			}
			return len(d) == 0, strings.Join(d, "; ")
		},
		// An existing unprivileged snfs (an older gridha) may still serve
		// old sshfs sessions: usermod refuses to change the uid of a
		// running account, and those mounts are replaced on the nodes.
		Apply: fmt.Sprintf(`u=%s
if e=$(getent passwd "$u"); then
  uid=$(echo "$e" | cut -d: -f3)
  [ "$uid" != 0 ] && pkill -KILL -u "$uid" 2>/dev/null; sleep 0.2
  usermod -o -u 0 -g 0 -d %s -s %s -p '*' "$u"
else
  useradd -o -u 0 -g 0 -M -d %s -s %s -p '*' "$u" 2>&1 | grep -v 'outside of the UID_MIN' >&2
  getent passwd "$u" >/dev/null
fi`, q(user), q(export), q(nologinShell), q(export), q(nologinShell)),
	}
}

// firstOf keeps the first n items, saying how many more there were.
func firstOf(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
}

// currentBlock returns gridha's block as it is in content ("" if none).
func currentBlock(content string) string {
	i := strings.Index(content, sshdBlockBegin)
	if i < 0 {
		return ""
	}
	rest := content[i:]
	if j := strings.Index(rest, sshdBlockEnd); j >= 0 {
		return rest[:j+len(sshdBlockEnd)]
	}
	return rest
}

// exportParentSealed makes the export's parent folder root-only (0700). The
// nodes' snfs login is uid 0 inside the chroot (the only way internal-sftp
// keeps owners), so a stolen node key can write root-owned setuid files and
// files of any uid into the export. Nobody on the state server itself may
// reach them: with the parent sealed, no local account can traverse into
// the export, whatever the modes below it; sshd, root, chroots into it
// regardless (ChrootDirectory wants every component root-owned and not
// writable by others, which 0700 root:root is). gridha refuses to seal a
// parent that holds anything else than the export: that would cut local
// users off from folders gridha did not create.
func exportParentSealed(export string) installer.Step {
	return &sealedParent{Parent: path.Dir(export), Export: path.Base(export)}
}

// sealedParent is exportParentSealed's step. Its facts cost no process of
// their own: the parent's mode and owner come with the fact batch's one
// stat of every path, its entries from the shell's own globs (was stat, ls
// and grep on every verify).
type sealedParent struct {
	Parent string // the export's parent folder
	Export string // the export's name in it
}

func (s *sealedParent) ID() string {
	return "exec export's parent " + s.Parent + " root-only (0700)"
}

func (s *sealedParent) entriesKey() string { return "sealed-parent-entries:" + s.Parent }

// entriesScript prints every entry of Parent but the export and a file
// system's lost+found, one per line (what ls -A | grep -vxF printed): the
// three globs cover every name but . and .. (a glob that matches nothing
// stays as it is and is skipped).
func (s *sealedParent) entriesScript() string {
	q := installer.ShellQuote
	return "p=" + q(s.Parent) + `
for f in "$p"/* "$p"/.[!.]* "$p"/..?*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  case ${f##*/} in ` + q(s.Export) + `|lost+found) ;; *) printf '%s\n' "${f##*/}";; esac
done
exit 0`
}

func (s *sealedParent) Probes() []installer.Probe {
	return []installer.Probe{installer.FileMetaProbe(s.Parent), {Key: s.entriesKey(), Script: s.entriesScript()}}
}

// check says whether Parent is sealed, and what was found.
func (s *sealedParent) check(env *installer.Env) (bool, string, error) {
	ff, err := env.Facts.FileMeta(s.Parent)
	if err != nil {
		return false, "", err
	}
	pr, ok := env.Facts.Get(s.entriesKey())
	if !ok {
		return false, "", fmt.Errorf("no fact gathered for the entries of %s", s.Parent)
	}
	ok, found := sealedCheck(s.Parent, ff, string(pr.Stdout))
	return ok, found, nil
}

// sealedCheck: root-only (700 root:root, as stat -c '%a %U:%G' gives it)
// and holding nothing but the export (entries: one name per line).
func sealedCheck(parent string, ff installer.FileFact, entries string) (bool, string) {
	if !ff.Exists {
		return false, parent + " missing"
	}
	mode := strings.TrimLeft(installer.OctalMode(ff.Mode), "0")
	if mode == "" {
		mode = "0"
	}
	mode += " " + ff.Owner + ":" + ff.Group
	found := "mode " + mode
	var other []string
	for _, l := range strings.Split(entries, "\n") {
		if l != "" {
			other = append(other, l)
		}
	}
	if len(other) > 0 {
		found += ", also holds " + strings.Join(other, ", ")
	}
	return mode == "700 root:root" && len(other) == 0, found
}

func (s *sealedParent) apply() string {
	q := installer.ShellQuote
	return "set -e; p=" + q(s.Parent) + "\n" +
		"other=$(ls -A \"$p\" | grep -vxF -e " + q(s.Export) + " -e lost+found || true)\n" +
		"if [ -n \"$other\" ]; then echo \"$p holds more than the export (\"$other\"): gridha makes the export's parent root-only (0700) so that no local account reaches what the nodes write as root; give the export a folder of its own, e.g. $p/gridha/" + s.Export + "\" >&2; exit 1; fi\n" +
		"chown root:root \"$p\"; chmod 0700 \"$p\""
}

func (s *sealedParent) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, s.ID(), err))
	}
	name := "export's parent " + s.Parent + " root-only (0700)"
	ok, found, err := s.check(env)
	if err != nil {
		return fail(err)
	}
	if ok {
		return installer.OK("")
	}
	if !apply {
		return installer.Drift(name+": "+found, "", found)
	}
	res, err := env.Conn.Run(ctx, s.apply(), nil)
	if err != nil {
		return fail(err)
	}
	if err := res.Err(name); err != nil {
		return fail(err)
	}
	if err := env.Reprobe(ctx, s.Probes()...); err != nil {
		return fail(err)
	}
	if ok, after, err := s.check(env); err != nil || !ok {
		return fail(fmt.Errorf("%s: still not as wanted after applying: %s", name, after))
	}
	return installer.Changed(name + ": was " + found)
}
