package roles

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

// The upgrade path from one state server to a pool: the single server's
// export (<export>/<group>/<state dir>, filled by the rb nodes through
// sshfs or snfs) moves into the pool's volume, one group folder at a time,
// with the rb nodes' own copy, verify, swap discipline (steps.StateDir):
// copied into a temporary folder on the volume, verified (entries, kinds,
// modes, owners, times, symlinks, hard links, sha256 of every file), marked,
// renamed into place; the original group folder is kept aside as
// <export>/<group>.gridha-local-<time>, never deleted. A run killed at any
// instant converges on the next run.
//
// The nodes must not write to the export while it moves: first the nodes'
// logins are fenced on the server (the keys file of the snfs account kept
// aside: no new session; the account's open SFTP sessions ended), so a
// write a node still tries fails instead of landing in a copy that is
// about to become stale. The nodes' own run then mounts the volume at the
// same mount point (the state-dir links stay as they are).

// PhasePoolExport is the phase that moves a single server's export into the
// volume (a no-op on members without one).
const PhasePoolExport = "state pool: move the single server's export"

// poolMigrateMount is where a member mounts the volume for the move (its
// parent root-only), unmounted when the move ends.
const poolMigrateMount = "/var/lib/gridha/glusterfs-export-move/volume"

// exportToVolume moves the export on this member (if any) into the volume.
type exportToVolume struct {
	Member   string
	Export   string
	Volume   string // server:/volume to mount
	User     string // the nodes' login on the single server (fenced)
	KeysFile string
	Now      func() time.Time
}

func (e *exportToVolume) ID() string { return "export " + e.Export + " moved into the volume" }

func (e *exportToVolume) probe() installer.Probe {
	q := installer.ShellQuote
	return installer.Probe{Key: "export-move:" + e.Export, Script: "E=" + q(e.Export) + "\n" + `[ -d "$E" ] || exit 0
for g in "$E"/* "$E"/.[!.]*; do
  [ -e "$g" ] || [ -L "$g" ] || continue
  case "$g" in *` + steps.AsideInfix + `*) echo "aside=$g"; continue ;; esac
  if [ -L "$g" ]; then echo "moved=$g"
  elif [ -d "$g" ]; then
    # Only a group folder holding state the nodes moved there (a state
    # folder with gridha's marker) is the single server's share.
    s=; for m in "$g"/*/` + steps.StateMarker + ` "$g"/.[!.]*/` + steps.StateMarker + `; do [ -f "$m" ] && s=1; done
    if [ -n "$s" ]; then echo "todo=$g"; else echo "unmarked=$g"; fi
  else echo "other=$g"; fi
done`}
}

func (e *exportToVolume) Probes() []installer.Probe { return []installer.Probe{e.probe()} }

func (e *exportToVolume) facts(env *installer.Env) (todo, moved, aside, unmarked []string, err error) {
	r, ok := env.Facts.Get(e.probe().Key)
	if !ok {
		return nil, nil, nil, nil, fmt.Errorf("no fact for %s", e.Export)
	}
	for _, l := range strings.Split(string(r.Stdout), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "todo":
			todo = append(todo, v)
		case "moved":
			moved = append(moved, v)
		case "aside":
			aside = append(aside, v)
		case "unmarked":
			unmarked = append(unmarked, v)
		}
	}
	return todo, moved, aside, unmarked, nil
}

func (e *exportToVolume) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, e.ID(), err))
	}
	todo, moved, aside, unmarked, err := e.facts(env)
	if err != nil {
		return fail(err)
	}
	if len(todo) == 0 {
		if len(moved) == 0 {
			if len(unmarked) > 0 {
				return installer.OK("no single-server export here (left alone, no state moved there by gridha: " + strings.Join(unmarked, ", ") + ")")
			}
			return installer.OK("no single-server export here")
		}
		return installer.OK(fmt.Sprintf("moved into the volume: %s (originals kept: %s)", strings.Join(moved, ", "), strings.Join(aside, ", ")))
	}
	if !apply {
		return installer.Drift("would move "+strings.Join(todo, ", ")+" into volume "+e.Volume+" (copy, verify, swap; originals kept aside) after fencing the nodes' "+e.User+" logins", "moved", "in "+e.Export)
	}
	q := installer.ShellQuote
	// Fence: no new node session (keys file kept aside), open ones ended
	// (their sshd processes carry the account's name).
	fence := fmt.Sprintf(`K=%s; if [ -f "$K" ]; then mv "$K" "$K.gridha-pool-$(date -u +%%Y%%m%%dT%%H%%M%%SZ)" || exit 1; fi
pkill -f '^sshd(-session)?: '%s'(@| |$)' 2>/dev/null
i=0; while pgrep -f '^sshd(-session)?: '%s'(@| |$)' >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 50 ] && { echo "sessions of %s still open after 5 s" >&2; exit 1; }; sleep 0.1; done
exit 0`, q(e.KeysFile), q(e.User), q(e.User), e.User)
	if res, err := env.Conn.Run(ctx, fence, nil); err != nil {
		return fail(err)
	} else if err := res.Err("fence the nodes' logins"); err != nil {
		return fail(err)
	}
	mnt := poolMigrateMount
	mount := fmt.Sprintf(`M=%s; install -d -m 0700 "$(dirname "$M")" && mkdir -p "$M" || exit 1
if ! grep -q " $M " /proc/mounts; then
  o=$(mktemp) || exit 1
  ( mount -t glusterfs %s "$M" ) </dev/null >"$o" 2>&1; rc=$?; cat "$o" >&2; rm -f "$o"; exit $rc
fi`, q(mnt), q(e.Volume))
	if res, err := env.Conn.Run(ctx, mount, nil); err != nil {
		return fail(err)
	} else if err := res.Err("mount " + e.Volume); err != nil {
		return fail(err)
	}
	// Unmounted whatever happens (a fresh context: the run's may be done).
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = env.Conn.Run(uctx, "umount "+q(mnt)+" 2>/dev/null || umount -l "+q(mnt), nil)
	}()
	var did []string
	for _, g := range todo {
		sd := steps.StateDir{
			Path:       g,
			Share:      path.Join(mnt, path.Base(g)),
			Mount:      mnt,
			Node:       "export-" + e.Member,
			KeepOwners: true,
			Now:        e.Now,
		}
		if err := env.Reprobe(ctx, sd.Probes()...); err != nil {
			return fail(err)
		}
		r := sd.CheckApply(ctx, env, true)
		if r.Status == installer.StatusFailed {
			return fail(fmt.Errorf("%s: %s", g, r.Message))
		}
		did = append(did, g+": "+r.Message)
	}
	return installer.Changed("fenced the nodes' " + e.User + " logins; " + strings.Join(did, "; "))
}

// poolExportPhase moves a single server's export into the volume, on every
// member in --limit (the one that was the single server has it).
func poolExportPhase(inv *inventory.Inventory, opts Options) installer.Phase {
	cfg := inv.Roles.StateServer
	members := inventory.PoolMembers(inv)
	ph := installer.Phase{Name: PhasePoolExport, Steps: map[string][]installer.Step{}}
	src := GlusterServer(members[0]) + ":/" + cfg.Pool.Volume
	for _, m := range members {
		if !opts.InLimit(m.Name) {
			continue
		}
		ph.Steps[m.Name] = []installer.Step{&exportToVolume{
			Member: m.Name, Export: cfg.Export, Volume: src, User: cfg.SnfsUser, KeysFile: snfsKeysFile(cfg.SnfsUser),
		}}
	}
	return ph
}
