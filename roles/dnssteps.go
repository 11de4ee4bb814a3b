package roles

import (
	"bytes"
	"context"
	"errors"
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

// Markers of this run that later phases of other hosts read: a marker
// step is the last of its host's steps in a phase, so it runs only when
// every step before it succeeded (a failed step, an unreachable host or an
// interruption skips it). It sets its host's value of done(kind).
type doneMarker struct {
	kind string // "primary", "updater", "primary-finished"
}

var (
	primaryDone     = doneMarker{"primary"}
	updaterDone     = doneMarker{"updater"}
	primaryFinished = doneMarker{"primary-finished"}
)

// done is the value a marker of kind sets on its host.
func done(kind string) installer.Value[bool] { return installer.NewValue[bool]("done/" + kind) }

// doneOn refers to the markers of kind on hosts, for a Consumer.
func doneOn(kind string, hosts []string) []installer.ValueRef {
	out := make([]installer.ValueRef, len(hosts))
	for i, h := range hosts {
		out[i] = done(kind).Of(h)
	}
	return out
}

func (m doneMarker) ID() string                     { return m.kind + " steps done" }
func (doneMarker) Probes() []installer.Probe        { return nil }
func (m doneMarker) Produces() []installer.ValueRef { return []installer.ValueRef{done(m.kind).Of("")} }
func (m doneMarker) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	done(m.kind).Set(env, true)
	return installer.OK("")
}

// notDone lists the hosts without the kind marker in this run.
func notDone(env *installer.Env, kind string, hosts []string) []string {
	var bad []string
	for _, h := range hosts {
		if v, ok := done(kind).Get(env, h); !ok || !v {
			bad = append(bad, h)
		}
	}
	return bad
}

// hostsDone stops the rest of a host's steps unless every host of Hosts got
// through its Kind marker in this run (failed, unreachable or interrupted
// hosts did not): an updater is then neither started nor restarted, nor
// given a new key, so it never signs with a key or for a name a primary
// may not have; a key rotation goes no further than every host went.
// Before and After frame the list of hosts in the error.
type hostsDone struct {
	Name  string
	Kind  string
	Hosts []string
	// InstallOnly: an audit always passes (it changes nothing that could
	// get ahead of another host).
	InstallOnly   bool
	Before, After string
}

// primariesOK gates a host's dns steps on every primary of the run.
func primariesOK(primaries []string, what string) hostsDone {
	return hostsDone{Name: "primaries configured in this run", Kind: primaryDone.kind, Hosts: primaries,
		Before: "stopped here: primary ", After: " did not get through this run (it may not know the key or policy); " + what + ": re-run when the primary is back"}
}

// updatersOK stops the end of a key rotation on a primary (dropping the
// old key) unless every updater switched to the new key in this run.
func updatersOK(updaters []string) hostsDone {
	return hostsDone{Name: "updaters switched to the new key", Kind: updaterDone.kind, Hosts: updaters,
		Before: "the old TSIG key stays accepted: updater ", After: " did not switch to the new key in this run; re-run when it is back"}
}

func (d hostsDone) ID() string                     { return d.Name }
func (hostsDone) Probes() []installer.Probe        { return nil }
func (d hostsDone) Consumes() []installer.ValueRef { return doneOn(d.Kind, d.Hosts) }
func (d hostsDone) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if !apply && d.InstallOnly {
		return installer.OK("")
	}
	bad := notDone(env, d.Kind, d.Hosts)
	if len(bad) == 0 {
		return installer.OK("")
	}
	return installer.Failed(fmt.Errorf("%s: %s%s%s", env.Host, d.Before, strings.Join(bad, ", "), d.After))
}

// rotationCommit ends a key rotation on the admin machine once every host
// of Hosts got through its Kind marker (dropped the old key): the pending
// key replaces the active one (an atomic rename), so later runs use only
// the new key. A pending key already gone was committed by an earlier run.
type rotationCommit struct {
	Key             string // "TSIG key", "hagd key"
	Kind            string
	Hosts           []string
	Who             string // how the error names the hosts ("primary ")
	Active, Pending string
	Done            string // the message of a commit
}

func (c rotationCommit) ID() string                     { return c.Key + " rotation committed" }
func (rotationCommit) Probes() []installer.Probe        { return nil }
func (c rotationCommit) Consumes() []installer.ValueRef { return doneOn(c.Kind, c.Hosts) }
func (c rotationCommit) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if !apply {
		return installer.Drift("a "+c.Key+" rotation is under way: "+c.Pending+" waits to replace "+c.Active, "rotation finished", "rotation pending")
	}
	if bad := notDone(env, c.Kind, c.Hosts); len(bad) > 0 {
		return installer.Failed(fmt.Errorf("%s: %s rotation not finished: %s%s still accepts the old key; re-run", env.Host, c.Key, c.Who, strings.Join(bad, ", ")))
	}
	if err := os.Rename(c.Pending, c.Active); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return installer.Failed(fmt.Errorf("%s: %s rotation: %w", env.Host, c.Key, err))
	}
	return installer.Changed(c.Done)
}

// withSecrets makes the secrets of keys known to the run's redaction.
func withSecrets(s installer.Step, keys []TSIGKey) installer.Step {
	for _, k := range keys {
		s = withSecret{s, k.Secret}
	}
	return s
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
