package roles

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
)

// GlusterFS reads its TLS files (and /var/lib/glusterd/secure-access) when
// a daemon starts: its listeners keep the certificate they loaded. After
// install renewed a member's certificate (or changed the CA or
// secure-access), that member's glusterd, bricks and self-heal daemon
// still present the old one until they restart. glusterdFresh finds such
// members — a gluster daemon started before the newest of those files was
// written — and restarts their gluster daemons one member at a time,
// waiting for each to be back (its peers connected, its brick running)
// before the next, so the volume keeps a majority of bricks the whole
// time (client quorum: two of three). It is state, not a notification:
// a run killed between writing a certificate and the restart leaves a
// stale daemon that the next run (and verify) still sees.
//
// It runs on the first member (the gluster CLI acts for the pool) and
// reaches the others through the run's connections, like the Galera step.

// glusterStaleSlack absorbs the one-second resolution of the times
// compared (a daemon started in the same second as the file was written).
const glusterStaleSlack = 2

// glusterdFreshScript prints, on a member: now=, per gluster daemon
// (glusterd, bricks, self-heal daemon) proc=<start> <name>, per TLS file
// file=<mtime> <path>.
const glusterdFreshScript = `now=$(date +%s)
echo "now=$now"
for p in $(pgrep -x glusterd) $(pgrep -x glusterfsd) $(pgrep -f '^[^ ]*glusterfs .*glustershd'); do
  e=$(ps -o etimes= -p "$p" 2>/dev/null | tr -d ' ') || continue
  [ -n "$e" ] || continue
  echo "proc=$((now - e)) $(cat /proc/$p/comm 2>/dev/null)"
done
for f in ` + GlusterCertPath + ` ` + GlusterKeyPath + ` ` + GlusterCAPath + ` ` + GlusterSecureAccess + `; do
  [ -e "$f" ] && echo "file=$(stat -L -c %Y "$f") $f"
done
exit 0`

// glusterRestartScript restarts every gluster daemon of a member except
// FUSE mounts: glusterd (which starts its bricks and self-heal daemon
// again once it sees the pool), the bricks and the self-heal daemon
// (stopping glusterd alone leaves them running with the old certificate).
const glusterRestartScript = `if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemctl stop glusterd; else /etc/init.d/glusterd stop; fi
pkill -TERM -x glusterfsd; pkill -TERM -f '^[^ ]*glusterfs .*glustershd'
i=0; while pgrep -x glusterfsd >/dev/null || pgrep -f '^[^ ]*glusterfs .*glustershd' >/dev/null; do
  i=$((i+1)); [ $i -gt 100 ] && { pkill -KILL -x glusterfsd; pkill -KILL -f '^[^ ]*glusterfs .*glustershd'; sleep 0.5; break; }; sleep 0.1
done
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemctl start glusterd; else /etc/init.d/glusterd start; fi`

// glusterBackScript succeeds once the member's glusterd answers, sees
// every other member connected and runs its brick (server quorum met).
func glusterBackScript(peers int) string {
	return `[ "$(gluster --mode=script peer status 2>/dev/null | grep -c '(Connected)')" -ge ` + strconv.Itoa(peers) + ` ] && pgrep -x glusterfsd >/dev/null`
}

// glusterStale reads glusterdFreshScript's output: why the member's
// daemons are stale ("" when none is).
func glusterStale(out string) string {
	var newest int64
	var newestFile string
	type proc struct {
		start int64
		name  string
	}
	var procs []proc
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "file="); ok {
			t, f, _ := strings.Cut(v, " ")
			if n, err := strconv.ParseInt(t, 10, 64); err == nil && n > newest {
				newest, newestFile = n, f
			}
		} else if v, ok := strings.CutPrefix(l, "proc="); ok {
			t, name, _ := strings.Cut(v, " ")
			if n, err := strconv.ParseInt(t, 10, 64); err == nil {
				procs = append(procs, proc{n, name})
			}
		}
	}
	var old []string
	for _, p := range procs {
		if p.start+glusterStaleSlack < newest {
			old = append(old, p.name)
		}
	}
	if len(old) == 0 {
		return ""
	}
	return fmt.Sprintf("%s started before %s was written (%s): they still use the old TLS files",
		strings.Join(old, ", "), newestFile, time.Unix(newest, 0).UTC().Format("2006-01-02 15:04:05Z"))
}

// glusterdFresh restarts, one member at a time, the gluster daemons of the
// members that started before their TLS files changed.
type glusterdFresh struct {
	Members []string // inventory names, in pool order
	// Wait bounds how long a restarted member may take to be back.
	Wait time.Duration
}

func (g *glusterdFresh) ID() string                { return "glusterfs daemons use the current TLS files" }
func (g *glusterdFresh) Probes() []installer.Probe { return nil }

func (g *glusterdFresh) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, g.ID(), err))
	}
	conn := func(h string) (installer.Conn, error) {
		if h == env.Host {
			return env.Conn, nil
		}
		if env.Peer == nil {
			return nil, fmt.Errorf("%s: not part of this run", h)
		}
		return env.Peer(ctx, h)
	}
	stale := map[string]string{}
	var order, unreachable []string
	// The first member (this host) last: the later steps of the phase
	// ask its gluster CLI.
	for _, m := range append(append([]string(nil), g.Members[1:]...), g.Members[0]) {
		c, err := conn(m)
		if err != nil {
			unreachable = append(unreachable, m)
			continue
		}
		res, err := c.Run(ctx, glusterdFreshScript, nil)
		if err != nil {
			unreachable = append(unreachable, m)
			continue
		}
		if why := glusterStale(string(res.Stdout)); why != "" {
			stale[m] = why
			order = append(order, m)
		}
	}
	if len(order) == 0 {
		return installer.OK("every member's glusterd, bricks and self-heal daemon started after its TLS files were written")
	}
	var msgs []string
	for _, m := range order {
		msgs = append(msgs, m+": "+stale[m])
	}
	if !apply {
		return installer.Drift("restart pending, one member at a time: "+strings.Join(msgs, "; "), "started after the TLS files", strings.Join(msgs, "; "))
	}
	if len(unreachable) > 0 {
		// Restarting a member while another is away would leave one
		// brick of three: the volume would stop taking writes.
		return installer.Drift("restart pending, not done while "+strings.Join(unreachable, ", ")+" cannot be reached (the volume would lose its majority): "+strings.Join(msgs, "; "),
			"started after the TLS files", strings.Join(msgs, "; "))
	}
	wait := g.Wait
	if wait == 0 {
		wait = 90 * time.Second
	}
	var did []string
	for i, m := range order {
		c, err := conn(m)
		if err != nil {
			return fail(err)
		}
		// Every other member serving (its brick running) before this one
		// goes down: two of three bricks the whole time.
		for _, o := range g.Members {
			if o == m {
				continue
			}
			oc, err := conn(o)
			if err != nil {
				return fail(err)
			}
			if res, err := oc.Run(ctx, "pgrep -x glusterfsd >/dev/null", nil); err != nil || res.ExitCode != 0 {
				return fail(fmt.Errorf("not restarting %s: %s runs no brick now (the volume would lose its majority); restart pending for %s", m, o, strings.Join(order[i:], ", ")))
			}
		}
		env.Log("%s: restarting its gluster daemons (%s)", m, stale[m])
		if res, err := c.Run(ctx, glusterRestartScript, nil); err != nil {
			return fail(fmt.Errorf("%s: %w", m, err))
		} else if err := res.Err("restart glusterd"); err != nil {
			return fail(fmt.Errorf("%s: %w", m, err))
		}
		// Back: peers connected and its brick running, before the next
		// member goes down (bounded).
		back := false
		for end := time.Now().Add(wait); time.Now().Before(end); {
			if res, err := c.Run(ctx, glusterBackScript(len(g.Members)-1), nil); err == nil && res.ExitCode == 0 {
				back = true
				break
			}
			select {
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(time.Second):
			}
		}
		if !back {
			return fail(fmt.Errorf("%s: its gluster daemons restarted but it is not back after %s (peers connected, brick running); not restarting %s: check gluster peer status there",
				m, wait, strings.Join(order[i+1:], ", ")))
		}
		did = append(did, m)
	}
	return installer.Changed("restarted the gluster daemons of " + strings.Join(did, ", ") + ", one at a time, each back before the next: " + strings.Join(msgs, "; "))
}
