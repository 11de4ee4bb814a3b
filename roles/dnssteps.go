package roles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/gridha/gridha/installer"
)

// zoneConflict stops the run when the zone is declared in a named
// configuration file other than gridha's: named refuses two statements for
// one zone, and gridha owns the statement (it carries the update-policy).
// Only files named actually reads count: ConfDir/named.conf and the files
// it includes, recursively (relative paths against ConfDir). A leftover
// named.conf.old that nothing includes is not configuration. Without a
// ConfDir/named.conf every ConfDir/named.conf* file is searched.
type zoneConflict struct {
	Zone    string // without the final dot
	ConfDir string
	Own     string // gridha's file, not searched
}

func (z zoneConflict) ID() string { return "zone " + z.Zone + " declared once" }

func (z zoneConflict) probeKey() string { return "zone-conflict:" + z.Zone }

// zoneConflictAwk follows the include statements from main and prints
// file:line:text of every line matching re (lower case) outside own.
// Plain POSIX awk (mawk too): no character classes, bounded to 200 files.
const zoneConflictAwk = `BEGIN {
  q[1] = main; n = 1; i = 1
  while (i <= n && i <= 200) {
    f = q[i++]
    if (f in seen) continue
    seen[f] = 1
    ln = 0
    while ((getline line < f) > 0) {
      ln++
      t = line; sub(/^[ \t]+/, "", t)
      if (t ~ /^(\/\/|#|\/\*)/) continue
      rest = t
      while (match(rest, /include[ \t]+"[^"]+"/)) {
        inc = substr(rest, RSTART, RLENGTH); sub(/^include[ \t]+"/, "", inc); sub(/"$/, "", inc)
        if (inc !~ /^\//) inc = conf "/" inc
        q[++n] = inc
        rest = substr(rest, RSTART + RLENGTH)
      }
      if (f != own && tolower(t) ~ re) print f ":" ln ":" t
    }
    close(f)
  }
}`

func (z zoneConflict) Probes() []installer.Probe {
	dir := strings.TrimSuffix(z.ConfDir, "/")
	zre := strings.ReplaceAll(regexp.QuoteMeta(strings.ToLower(z.Zone)), `\.`, `[.]`)
	grepRe := `zone[[:space:]]+"?` + zre + `[.]?"?([[:space:]]|\{|$)`
	awkRe := `zone[ \t]+"?` + zre + `[.]?"?([ \t]|[{]|$)`
	q := installer.ShellQuote
	script := fmt.Sprintf(`if [ -f %[1]s/named.conf ]; then
  exec awk -v main=%[1]s/named.conf -v conf=%[1]s -v own=%[2]s -v re=%[3]s %[4]s </dev/null
fi
for f in %[1]s/named.conf*; do
  [ -f "$f" ] && [ "$f" != %[2]s ] || continue
  case "$f" in *.gridha-bak|*~|*.dpkg-*) continue ;; esac
  grep -nHiE %[5]s "$f"
done
true`, q(dir), q(z.Own), q(strings.ReplaceAll(awkRe, `\`, `\\`)), q(zoneConflictAwk), q(grepRe))
	return []installer.Probe{{Key: z.probeKey(), Script: script}}
}

func (z zoneConflict) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	r, ok := env.Facts.Get(z.probeKey())
	if !ok {
		return installer.Failed(fmt.Errorf("%s: %s: no fact gathered", env.Host, z.ID()))
	}
	var where []string
	for _, line := range strings.Split(string(r.Stdout), "\n") {
		// file:line:text; skip commented-out statements.
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		text := strings.TrimSpace(parts[2])
		if strings.HasPrefix(text, "//") || strings.HasPrefix(text, "#") || strings.HasPrefix(text, "/*") {
			continue
		}
		where = append(where, parts[0]+":"+parts[1])
	}
	if len(where) == 0 {
		return installer.OK("")
	}
	return installer.Failed(fmt.Errorf("%s: zone %q is already declared in %s; gridha declares it in %s "+
		"(with the update key and policy): remove that statement, and point bind.zone_file at its zone file to keep "+
		"the data", env.Host, z.Zone, strings.Join(where, ", "), z.Own))
}

// createOnly writes a file only when it does not exist; an existing one is
// never compared or touched (a zone file belongs to named once it runs).
type createOnly struct {
	Path         string
	Content      []byte
	Mode         fs.FileMode
	Owner, Group string
}

func (c createOnly) ID() string { return "file " + c.Path + " (created if missing)" }

func (c createOnly) Probes() []installer.Probe {
	// Whether it exists is all: its content (a zone named keeps writing)
	// is never read.
	return []installer.Probe{installer.FileMetaProbe(c.Path)}
}

func (c createOnly) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	ff, err := env.Facts.FileMeta(c.Path)
	if err != nil {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, c.ID(), err))
	}
	if ff.Exists {
		return installer.OK("")
	}
	if !apply {
		return installer.Missing(c.Path + " does not exist")
	}
	if err := env.Conn.WriteFile(ctx, c.Path, c.Content, c.Mode, c.Owner, c.Group); err != nil {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, c.ID(), err))
	}
	return installer.Changed("created " + c.Path)
}

// binaryCopy installs a local program on the host, compared by SHA-256 (a
// program is too big for the content probe).
type binaryCopy struct {
	Path   string // on the host
	Source string // on the admin machine
}

func (b binaryCopy) ID() string { return "binary " + b.Path }

func (b binaryCopy) Probes() []installer.Probe {
	return []installer.Probe{installer.FileHashProbe(b.Path)}
}

func (b binaryCopy) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, b.ID(), err))
	}
	ff, err := env.Facts.FileHash(b.Path)
	if err != nil {
		return fail(err)
	}
	data, err := os.ReadFile(b.Source)
	if err != nil {
		return fail(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	found := ff.SHA256
	if found == want {
		return installer.OK("")
	}
	if !apply {
		if !ff.Exists {
			return installer.MissingProps(b.Path+" does not exist", installer.Prop("kind", "regular file", "absent"))
		}
		r := installer.DriftProps(b.Path+" is another build", installer.Prop("content", "sha256 "+want, "sha256 "+found))
		r.Expected, r.Found = "sha256 "+want, "sha256 "+found
		return r
	}
	if err := env.Conn.WriteFile(ctx, b.Path, data, 0o755, "root", "root"); err != nil {
		return fail(err)
	}
	return installer.Changed(fmt.Sprintf("installed %s from %s (sha256 %s)", b.Path, b.Source, want[:12]))
}

// Markers of this run (env.Shared) that later phases of other hosts read:
// a marker step is the last of its host's steps in a phase, so it runs only
// when every step before it succeeded (a failed step, an unreachable host or
// an interruption skips it).
type doneMarker struct {
	kind string // "primary", "updater", "primary-finished"
}

var (
	primaryDone     = doneMarker{"primary"}
	updaterDone     = doneMarker{"updater"}
	primaryFinished = doneMarker{"primary-finished"}
)

func doneKey(kind, host string) string { return "roles/dns/done/" + kind + "/" + host }

func (m doneMarker) ID() string              { return m.kind + " steps done" }
func (doneMarker) Probes() []installer.Probe { return nil }
func (m doneMarker) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if env.Shared != nil {
		env.Shared.Set(doneKey(m.kind, env.Host), true)
	}
	return installer.OK("")
}

// notDone lists the hosts without the kind marker in this run.
func notDone(env *installer.Env, kind string, hosts []string) []string {
	var bad []string
	for _, h := range hosts {
		if env.Shared == nil {
			return hosts
		}
		if v, ok := env.Shared.Get(doneKey(kind, h)); !ok || v != true {
			bad = append(bad, h)
		}
	}
	return bad
}

// primariesOK stops the rest of a host's dns steps when a primary of this
// run did not get through its steps (failed, unreachable, interrupted): an
// updater is then neither started nor restarted, nor given a new key, so it
// never signs with a key or for a name that primary may not have. What says
// what stays as it was.
type primariesOK struct {
	Primaries []string
	What      string
}

func (primariesOK) ID() string                { return "primaries configured in this run" }
func (primariesOK) Probes() []installer.Probe { return nil }
func (p primariesOK) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	bad := notDone(env, primaryDone.kind, p.Primaries)
	if len(bad) == 0 {
		return installer.OK("")
	}
	return installer.Failed(fmt.Errorf("%s: stopped here: primary %s did not get through this run (it may not know the key or policy); "+
		"%s: re-run when the primary is back", env.Host, strings.Join(bad, ", "), p.What))
}

// updatersOK stops the end of a key rotation on a primary (dropping the
// old key) unless every updater switched to the new key in this run.
type updatersOK struct {
	Updaters []string
}

func (updatersOK) ID() string                { return "updaters switched to the new key" }
func (updatersOK) Probes() []installer.Probe { return nil }
func (u updatersOK) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	bad := notDone(env, updaterDone.kind, u.Updaters)
	if len(bad) == 0 {
		return installer.OK("")
	}
	return installer.Failed(fmt.Errorf("%s: the old TSIG key stays accepted: updater %s did not switch to the new key in this run; "+
		"re-run when it is back", env.Host, strings.Join(bad, ", ")))
}

// rotationCommit ends a key rotation on the admin machine once every
// primary dropped the old key: the pending key replaces the active one
// (an atomic rename), so later runs use only the new key.
type rotationCommit struct {
	Primaries       []string
	Active, Pending string
}

func (rotationCommit) ID() string                { return "TSIG key rotation committed" }
func (rotationCommit) Probes() []installer.Probe { return nil }
func (c rotationCommit) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if !apply {
		return installer.Drift("a TSIG key rotation is under way: "+c.Pending+" waits to replace "+c.Active, "rotation finished", "rotation pending")
	}
	if bad := notDone(env, primaryFinished.kind, c.Primaries); len(bad) > 0 {
		return installer.Failed(fmt.Errorf("%s: TSIG key rotation not finished: primary %s still accepts the old key; re-run", env.Host, strings.Join(bad, ", ")))
	}
	if err := os.Rename(c.Pending, c.Active); err != nil {
		return installer.Failed(fmt.Errorf("%s: TSIG key rotation: %w", env.Host, err))
	}
	return installer.Changed("every primary and updater uses the new TSIG key; " + c.Active + " holds it, the old key is gone")
}

// withSecrets makes the secrets of keys known to the run's redaction.
func withSecrets(s installer.Step, keys []TSIGKey) installer.Step {
	for _, k := range keys {
		s = withSecret{s, k.Secret}
	}
	return s
}

// serviceRestart restarts an init-script service when a tracked step of
// group changed in this run and the service is running; a stopped service
// is the Service step's business (it starts it once, after this step).
type serviceRestart struct {
	Name  string
	Group string
}

func (s serviceRestart) ID() string { return "restart " + s.Name + " on change" }

func (s serviceRestart) Probes() []installer.Probe { return nil }

func (s serviceRestart) script(action string) string {
	n := installer.ShellQuote(s.Name)
	return fmt.Sprintf("if command -v service >/dev/null 2>&1; then service %s %s; else /etc/init.d/%s %s; fi", n, action, n, action)
}

func (s serviceRestart) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if !changedIn(env, s.Group) {
		return installer.OK("")
	}
	if !apply {
		return installer.Drift(s.Name+" runs with the old key or configuration", "restarted", "not restarted")
	}
	notRunning := s.Name + " is not running: the service step starts it"
	n := installer.ShellQuote(s.Name)
	script := fmt.Sprintf("if command -v service >/dev/null 2>&1; then st() { service %s status; }; else st() { /etc/init.d/%s status; }; fi\n"+
		"if st >/dev/null 2>&1; then %s; else echo %s; fi", n, n, s.script("restart"), installer.ShellQuote(notRunning))
	res, err := env.Conn.Run(ctx, script, nil)
	if err == nil {
		err = res.Err(s.Name + " restart")
	}
	if err != nil {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, s.ID(), err))
	}
	out := strings.TrimSpace(string(bytes.TrimSpace(res.Stdout)))
	if out == notRunning {
		return installer.OK(out)
	}
	return installer.Changed(out)
}

// systemdUnit writes a native unit on hosts that run systemd (and has
// systemd re-read its units when it changed); elsewhere it does nothing and
// the init script serves. A native unit takes precedence over the unit
// systemd would generate from the init script.
type systemdUnit struct {
	Path    string
	Content []byte
}

const systemdProbe = "systemd-running"

func (s systemdUnit) ID() string { return "systemd unit " + s.Path }

func (s systemdUnit) Probes() []installer.Probe {
	return []installer.Probe{
		{Key: systemdProbe, Script: "[ -d /run/systemd/system ] && echo yes || echo no"},
		installer.FileProbe(s.Path),
	}
}

func (s systemdUnit) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, s.ID(), err))
	}
	r, ok := env.Facts.Get(systemdProbe)
	if !ok {
		return fail(fmt.Errorf("no fact gathered"))
	}
	if strings.TrimSpace(string(r.Stdout)) != "yes" {
		return installer.OK("no systemd: the init script serves")
	}
	ff, err := env.Facts.File(s.Path)
	if err != nil {
		return fail(err)
	}
	if ff.Exists && ff.Kind == installer.KindFile && ff.ContentKnown && bytes.Equal(ff.Content, s.Content) && ff.Mode.Perm() == 0o644 {
		return installer.OK("")
	}
	if !apply {
		if !ff.Exists {
			return installer.Missing(s.Path + " does not exist")
		}
		return installer.Drift(s.Path+" differs", "gridha's unit, mode 0644", fmt.Sprintf("%s, mode %s", ff.Kind, installer.OctalMode(ff.Mode)))
	}
	if err := env.Conn.WriteFile(ctx, s.Path, s.Content, 0o644, "root", "root"); err != nil {
		return fail(err)
	}
	res, err := env.Conn.Run(ctx, "systemctl daemon-reload", nil)
	if err == nil {
		err = res.Err("systemctl daemon-reload")
	}
	if err != nil {
		return fail(err)
	}
	return installer.Changed("wrote " + s.Path + "; systemctl daemon-reload")
}
