package roles

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gridha/gridha/installer"
)

// Replacing a pool member lost for good (issue 13): the admin removes the
// lost host from the inventory, adds a fresh one and runs install. The
// files half does it here, in the volume step on the first member: one
// brick of the volume is replaced by the new member's (gluster volume
// replace-brick ... commit force), after checks that the replacement
// cannot lose an acknowledged write; the former member is then detached
// from the trusted pool (glusterDetach). The new member's certificate,
// glusterd, Galera join (SST from the Primary component), hagd and the
// volume's auth.ssl-allow follow from the inventory like any member's.

// brickReplacement is one brick of the volume to be replaced by the
// inventory's new one.
type brickReplacement struct {
	Old, New string
	// Arbiter: the replaced brick is the arbiter (it holds no file data).
	Arbiter bool
}

// brickHost is the server part of a brick name ("fs1:/srv/b" → "fs1").
func brickHost(b string) string {
	if i := strings.Index(b, ":"); i >= 0 {
		return b[:i]
	}
	return b
}

// sameBricks: the volume has the inventory's bricks. Order does not matter
// (a replaced brick keeps its place in the volume, wherever the new member
// is listed) except the arbiter's, the last of both lists.
func sameBricks(have, want []string, arbiter bool) bool {
	if len(have) != len(want) {
		return false
	}
	if arbiter && len(have) > 0 && have[len(have)-1] != want[len(want)-1] {
		return false
	}
	h, w := slices.Clone(have), slices.Clone(want)
	slices.Sort(h)
	slices.Sort(w)
	return slices.Equal(h, w)
}

// planBrickReplacement compares the volume's bricks with the inventory's:
// nil when they are the same; one replacement when exactly one member was
// swapped for a new host; an error (the refusal, saying what to do) for
// anything else: gridha replaces one member per run and never changes the
// layout or moves a brick to another folder.
func planBrickReplacement(volume string, have, want []string, arbiter bool) (*brickReplacement, error) {
	if sameBricks(have, want, arbiter) {
		return nil, nil
	}
	if len(have) != len(want) {
		return nil, fmt.Errorf("volume %s has %d bricks (%s), the inventory wants %d (%s): gridha does not change the volume's layout",
			volume, len(have), strings.Join(have, " "), len(want), strings.Join(want, " "))
	}
	var removed, added []string
	for _, b := range have {
		if !slices.Contains(want, b) {
			removed = append(removed, b)
		}
	}
	for _, b := range want {
		if !slices.Contains(have, b) {
			added = append(added, b)
		}
	}
	if len(removed) != 1 || len(added) != 1 {
		return nil, fmt.Errorf("volume %s has the bricks %s, the inventory wants %s: %d members replaced at once; gridha replaces one lost member per run, "+
			"so that two copies of every file stay: put back all but one of the removed members in the inventory (%s), run install, wait until verify shows 0 entries pending heal, then replace the next",
			volume, strings.Join(have, " "), strings.Join(want, " "), len(removed), strings.Join(removed, ", "))
	}
	r := &brickReplacement{Old: removed[0], New: added[0]}
	if brickHost(r.Old) == brickHost(r.New) {
		return nil, fmt.Errorf("volume %s: brick %s would become %s on the same host: gridha does not move bricks (roles.state-server.pool.brick_dir or volume changed?)", volume, r.Old, r.New)
	}
	if arbiter {
		r.Arbiter = r.Old == have[len(have)-1]
		if r.Arbiter != (r.New == want[len(want)-1]) {
			return nil, fmt.Errorf("volume %s: replacing %s by %s would move the arbiter role to another member: set roles.state-server.pool.arbiter to the new member when the arbiter was lost, and only then", volume, r.Old, r.New)
		}
	}
	return r, nil
}

// replaceFacts is what the first member's gluster says just before a
// replacement.
type replaceFacts struct {
	// Online: the bricks whose process runs (volume status).
	Online map[string]bool
	// OldPeerConnected: the lost member's glusterd still answers.
	OldPeerConnected bool
	// NewPeerConnected: the new member is a connected peer.
	NewPeerConnected bool
	// Heal: per brick, the entries it lists as pending heal (nil: its
	// list is unknown, the brick did not answer); SplitBrain: the total
	// in split-brain.
	Heal       map[string][]string
	SplitBrain int
}

// replaceRefusal says why replacing r now could lose data or quorum (nil:
// safe). The volume is replica 3 with client quorum: every acknowledged
// write is on at least two bricks, so with one brick lost at least one
// remaining data brick has it — provided the two others are online and
// (with an arbiter, which holds no file data) the remaining data brick is
// not itself missing an entry that only the lost brick held.
func replaceRefusal(volume string, r *brickReplacement, have []string, arbiter bool, f replaceFacts) error {
	var remaining []string
	for _, b := range have {
		if b != r.Old {
			remaining = append(remaining, b)
		}
	}
	var off []string
	for _, b := range remaining {
		if !f.Online[b] {
			off = append(off, b)
		}
	}
	if len(off) > 0 {
		return fmt.Errorf("not replacing %s by %s: %s offline too (more than one member missing at once): the copies that remain may lack data; "+
			"bring it back first (gluster volume start %s force on a member, or boot it), let it heal (verify: 0 entries pending heal), then run install again",
			r.Old, r.New, strings.Join(off, ", "), volume)
	}
	if !f.NewPeerConnected {
		return fmt.Errorf("not replacing %s by %s: %s is not a connected peer of the pool", r.Old, r.New, brickHost(r.New))
	}
	if f.SplitBrain > 0 {
		return fmt.Errorf("not replacing %s by %s: %d entries in split-brain: resolve them first (gluster volume heal %s info split-brain)", r.Old, r.New, f.SplitBrain, volume)
	}
	pending := 0
	for _, b := range remaining {
		pending += len(f.Heal[b])
	}
	if f.OldPeerConnected || f.Online[r.Old] {
		// The member is still reachable: it may hold the newest copy of
		// an entry the others missed. Replace it only once nothing is
		// pending anywhere (a planned retirement).
		if n := len(f.Heal[r.Old]); f.Heal[r.Old] == nil || n > 0 || pending > 0 {
			what := fmt.Sprintf("%d entries pending heal on the others", pending)
			if f.Heal[r.Old] == nil {
				what += ", its own list unknown"
			} else {
				what += fmt.Sprintf(", %d on it", n)
			}
			return fmt.Errorf("not replacing %s by %s: %s is still reachable and may hold the only copy of what is pending heal (%s): "+
				"let the heal finish (verify: 0 entries pending heal) or, if the box is lost for good, power it off, then run install again",
				r.Old, r.New, brickHost(r.Old), what)
		}
		return nil
	}
	if arbiter && !r.Arbiter {
		// The remaining data brick must not lack an entry the arbiter
		// says is pending: the lost brick may have held its only copy.
		var data, arb string
		for _, b := range remaining {
			if b == have[len(have)-1] {
				arb = b
			} else {
				data = b
			}
		}
		if f.Heal[data] == nil || f.Heal[arb] == nil {
			return fmt.Errorf("not replacing %s by %s: the pending heals of %s or %s are unknown: the remaining data brick may lack data only the lost one held", r.Old, r.New, data, arb)
		}
		var lacking []string
		for _, e := range f.Heal[arb] {
			if !slices.Contains(f.Heal[data], e) {
				lacking = append(lacking, e)
			}
		}
		if len(lacking) > 0 {
			return fmt.Errorf("not replacing %s by %s: %d entries pending heal on the arbiter %s are not on %s (e.g. %s): the lost brick may hold their only copy; "+
				"bring the lost member back if at all possible, or restore those files from a backup, then run install again",
				r.Old, r.New, len(lacking), arb, data, lacking[0])
		}
	}
	return nil
}

// healInfoProbe lists the entries pending heal per brick.
func healInfoProbe(volume string) installer.Probe {
	return glusterProbe("gluster:heal-info:"+volume, "volume heal "+installer.ShellQuote(volume)+" info")
}

// gatherReplaceFacts reads the facts of replaceRefusal with fresh probes.
func gatherReplaceFacts(ctx context.Context, env *installer.Env, volume string, r *brickReplacement) (replaceFacts, error) {
	f := replaceFacts{Online: map[string]bool{}, Heal: map[string][]string{}}
	st, err := glusterGet(ctx, env, (&glusterBricksOnline{Volume: volume}).probe(), true)
	if err != nil {
		return f, err
	}
	for _, n := range st.StatusNodes {
		if n.Status == 1 {
			f.Online[n.Hostname+":"+n.Path] = true
		}
	}
	peers, err := glusterGet(ctx, env, (&glusterPeers{}).probe(), true)
	if err != nil {
		return f, err
	}
	for _, p := range peers.Peers {
		names := append([]string{p.Hostname}, p.Hostnames...)
		connected := p.Connected == 1 && p.StateStr == "Peer in Cluster"
		if slices.Contains(names, brickHost(r.Old)) && p.Connected == 1 {
			f.OldPeerConnected = true
		}
		if slices.Contains(names, brickHost(r.New)) && connected {
			f.NewPeerConnected = true
		}
	}
	heal, err := glusterGet(ctx, env, healInfoProbe(volume), true)
	if err != nil {
		return f, err
	}
	if len(heal.HealBricks) == 0 {
		return f, fmt.Errorf("no heal information for volume %s", volume)
	}
	for _, b := range heal.HealBricks {
		if _, err := fmt.Sscan(strings.TrimSpace(b.Entries), new(int)); err != nil {
			// Unknown (the brick did not answer): nil.
			continue
		}
		list := []string{}
		for _, e := range b.Files {
			id := e.GFID
			if id == "" {
				id = strings.TrimSpace(e.Path)
			}
			list = append(list, id)
		}
		f.Heal[b.Name] = list
	}
	_, f.SplitBrain, _ = healCounts(mustSummary(ctx, env, volume))
	return f, nil
}

// mustSummary is the heal summary (for the split-brain count), empty when
// gluster does not answer (the count is then 0 here; the split-brain step
// reports it).
func mustSummary(ctx context.Context, env *installer.Env, volume string) *glusterCLIOut {
	o, err := glusterGet(ctx, env, healProbe(volume), true)
	if err != nil {
		return &glusterCLIOut{}
	}
	return o
}

// replaceBrick does the replacement (the options, auth.ssl-allow with the
// new member's CN among them, are set before, so the new brick and its
// self-heal daemon are let in at once). The self-heal daemon then copies
// every entry to the new brick (replace-brick marks them pending).
func replaceBrick(ctx context.Context, env *installer.Env, volume string, r *brickReplacement) error {
	_, err := glusterRun(ctx, env, "replace brick "+r.Old+" by "+r.New,
		"volume replace-brick "+installer.ShellQuote(volume)+" "+installer.ShellQuote(r.Old)+" "+installer.ShellQuote(r.New)+" commit force")
	return err
}

// glusterDetach detaches from the trusted pool the peers that are no longer
// members in the inventory (a replaced member) once they hold no brick of
// any volume; a peer that still does is named, never forced out.
type glusterDetach struct {
	// Members: the servers (GlusterServer) of every member of the
	// inventory, this one included.
	Members []string
}

func (g *glusterDetach) ID() string { return "glusterfs former members detached" }
func (g *glusterDetach) probes() (peers, vols installer.Probe) {
	return (&glusterPeers{}).probe(), glusterProbe("gluster:volume-info-all", "volume info all")
}
func (g *glusterDetach) Probes() []installer.Probe {
	p, v := g.probes()
	return []installer.Probe{p, v}
}

func (g *glusterDetach) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, g.ID(), err))
	}
	pp, vp := g.probes()
	peers, err := glusterGet(ctx, env, pp, apply)
	if err == nil {
		var vols *glusterCLIOut
		if vols, err = glusterGet(ctx, env, vp, apply); err == nil {
			return g.apply(ctx, env, apply, peers, vols)
		}
	}
	if !apply {
		return installer.Missing(err.Error())
	}
	return fail(err)
}

func (g *glusterDetach) apply(ctx context.Context, env *installer.Env, apply bool, peers, vols *glusterCLIOut) installer.Result {
	bricksOf := map[string][]string{}
	for _, v := range vols.Volumes {
		for _, b := range v.Bricks {
			bricksOf[brickHost(b.Name)] = append(bricksOf[brickHost(b.Name)], v.Name)
		}
	}
	var detach, kept []string
	force := map[string]bool{}
	for _, p := range peers.Peers {
		names := append([]string{p.Hostname}, p.Hostnames...)
		member := false
		var holds []string
		for _, n := range names {
			member = member || slices.Contains(g.Members, n)
			holds = append(holds, bricksOf[n]...)
		}
		if member {
			continue
		}
		if len(holds) > 0 {
			slices.Sort(holds)
			kept = append(kept, fmt.Sprintf("%s (bricks of %s)", p.Hostname, strings.Join(slices.Compact(holds), ", ")))
			continue
		}
		detach = append(detach, p.Hostname)
		force[p.Hostname] = p.Connected != 1
	}
	if len(detach) == 0 && len(kept) == 0 {
		return installer.OK("no peer outside the inventory")
	}
	keptMsg := ""
	if len(kept) > 0 {
		keptMsg = "peers not in the inventory still holding bricks, left in the pool: " + strings.Join(kept, "; ")
	}
	if !apply {
		msg := keptMsg
		if len(detach) > 0 {
			msg = strings.TrimPrefix(msg+"; would detach "+strings.Join(detach, ", "), "; ")
		}
		return installer.Drift(msg, "no peer outside the inventory", strings.Join(append(detach, kept...), ", "))
	}
	for _, p := range detach {
		cmd := "peer detach " + installer.ShellQuote(p)
		if force[p] {
			// An unreachable peer cannot agree to leave: force.
			cmd += " force"
		}
		if _, err := glusterRun(ctx, env, "detach "+p, cmd); err != nil {
			return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, g.ID(), err))
		}
	}
	if len(detach) == 0 {
		return installer.Drift(keptMsg, "no peer outside the inventory", keptMsg)
	}
	msg := "detached " + strings.Join(detach, ", ")
	if keptMsg != "" {
		msg += "; " + keptMsg
	}
	return installer.Changed(msg)
}
