package roles

import (
	"context"
	"encoding/xml"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

// The files half of the state pool (slide 5): one GlusterFS replicated
// volume (replica 3, or 2 + arbiter) holding what the single state server's
// export held, mounted by the rb nodes (rbnode_gluster.go). Phases:
//
//  1. on every pool member: the TLS files (statepool_certs.go), glusterd at
//     boot and running (an init script of gridha's where there is no
//     systemd), the brick folder's parent — and a refusal when the brick
//     folder holds data that is not this volume's brick;
//  2. on the first pool member (the gluster CLI acts for the whole pool):
//     peers probed, the volume created (only by gridha: a volume of that
//     name that gridha did not create is never touched), its options, started;
//     then its health, each a line of its own in every report: bricks
//     online, pending heals, split-brain entries.
const (
	PhasePoolMembers = "state pool: members"
	PhasePoolVolume  = "state pool: volume"
)

// glusterManagedOption marks a volume gridha created (a user.* option:
// glusterd keeps it and passes it to hook scripts, nothing else reads it).
const glusterManagedOption = "user.gridha-managed"

// glusterCLI runs the gluster CLI non-interactively with XML output; a
// glusterd that does not answer must not hang a fact batch.
const glusterCLI = "timeout 60 gluster --mode=script --xml"

// GlusterServer is how a pool member is named in peer probes and brick
// names: the name the other members resolve.
func GlusterServer(h *inventory.Host) string {
	if h.Hostname != "" {
		return h.Hostname
	}
	return h.Address
}

// GlusterBricks are the volume's bricks, in pool order (the arbiter last).
func GlusterBricks(inv *inventory.Inventory) []string {
	p := inv.Roles.StateServer.Pool
	var out []string
	var arb string
	for _, m := range inventory.PoolMembers(inv) {
		b := GlusterServer(m) + ":" + path.Join(p.BrickDir, p.Volume)
		if m.Name == p.Arbiter {
			arb = b
			continue
		}
		out = append(out, b)
	}
	if arb != "" {
		out = append(out, arb)
	}
	return out
}

// GlusterAllowed is auth.ssl-allow: the CNs of the pool members and rb
// nodes of the inventory, nobody else.
func GlusterAllowed(inv *inventory.Inventory) []string {
	var out []string
	seen := map[string]bool{}
	for _, h := range append(inventory.PoolMembers(inv), inv.HostsWithRole("rb-node")...) {
		if cn := GlusterCN(h); !seen[cn] {
			seen[cn] = true
			out = append(out, cn)
		}
	}
	return out
}

// glusterOption is one volume option gridha sets.
type glusterOption struct{ Key, Value string }

// GlusterOptions are the volume's options, in the order they are set.
func GlusterOptions(inv *inventory.Inventory) []glusterOption {
	p := inv.Roles.StateServer.Pool
	return []glusterOption{
		// Client-side quorum: a client writes only while it reaches a
		// majority of the bricks (with an arbiter: 2 of 3 incl. it), so a
		// partitioned minority cannot write: no split brain.
		{"cluster.quorum-type", "auto"},
		// Server-side quorum: glusterd stops the bricks of a member that
		// lost the majority of the pool.
		{"cluster.server-quorum-type", "server"},
		// A dead brick stalls writers this long, not GlusterFS's 42 s.
		{"network.ping-timeout", strconv.Itoa(int(p.PingTimeout / time.Second))},
		{"ssl.own-cert", GlusterCertPath},
		{"ssl.private-key", GlusterKeyPath},
		{"ssl.ca-list", GlusterCAPath},
		{"auth.ssl-allow", strings.Join(GlusterAllowed(inv), ",")},
		{"client.ssl", "on"},
		{"server.ssl", "on"},
	}
}

// poolFSPhases are the GlusterFS phases of the pool (see above), for the
// members in opts.Limit.
func poolFSPhases(inv *inventory.Inventory, opts Options) ([]installer.Phase, error) {
	members := inventory.PoolMembers(inv)
	p := inv.Roles.StateServer.Pool
	ph := installer.Phase{Name: PhasePoolMembers, Steps: map[string][]installer.Step{}}
	for _, m := range members {
		if !opts.InLimit(m.Name) {
			continue
		}
		tls, err := glusterTLSSteps(inv, m, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		s := append(tls,
			&steps.Exec{
				Name:  "glusterfs-server installed",
				Probe: "command -v glusterd >/dev/null 2>&1 && command -v gluster >/dev/null 2>&1",
				Check: func(r installer.ProbeResult) (bool, string) {
					return r.ExitCode == 0, "glusterd or gluster missing: install the package glusterfs-server"
				},
			},
			&sysvOnlyFile{f: steps.File{Path: glusterdInitScript, Content: glusterdInit(), Mode: 0o755, Owner: "root", Group: "root"}},
			&optionalService{svc: steps.Service{Name: "glusterd", Boot: steps.BootEnabled, State: steps.StateRunning}, required: true},
			&steps.Dir{Path: p.BrickDir, Mode: 0o755, Owner: "root", Group: "root"},
			&brickFree{Path: path.Join(p.BrickDir, p.Volume), Volume: p.Volume},
		)
		ph.Steps[m.Name] = s
	}
	out := []installer.Phase{ph}
	first := members[0]
	if opts.InLimit(first.Name) {
		var others []string
		for _, m := range members[1:] {
			others = append(others, GlusterServer(m))
		}
		var names []string
		for _, m := range members {
			names = append(names, m.Name)
		}
		vol := &glusterVolume{Name: p.Volume, Bricks: GlusterBricks(inv), Members: names, BrickPath: path.Join(p.BrickDir, p.Volume),
			Arbiter: p.Arbiter != "", Options: GlusterOptions(inv)}
		out = append(out, installer.Phase{Name: PhasePoolVolume, Steps: map[string][]installer.Step{first.Name: {
			// A renewed certificate (or a new secure-access) in use:
			// stale gluster daemons restarted one member at a time
			// (statepool_glusterd.go).
			&glusterdFresh{Members: names},
			&glusterPeers{Peers: others},
			vol,
			&glusterDetach{Members: append([]string{GlusterServer(first)}, others...)},
			&glusterBricksOnline{Volume: p.Volume, Bricks: vol.Bricks},
			&glusterHeal{Volume: p.Volume},
			&glusterSplitBrain{Volume: p.Volume},
		}}})
	}
	// The upgrade from a single server: its export moves into the volume
	// (statepool_upgrade.go).
	out = append(out, poolExportPhase(inv, opts))
	return out, nil
}

// glusterdInitScript is gridha's init script for glusterd on hosts without
// systemd (Debian's package ships only a systemd unit).
const glusterdInitScript = "/etc/init.d/glusterd"

func glusterdInit() []byte {
	return pidfileInit(`#!/bin/sh
### BEGIN INIT INFO
# Provides:          glusterd
# Required-Start:     $network $local_fs
# Required-Stop:      $network $local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: GlusterFS management daemon (written by gridha: no systemd here)
### END INIT INFO
# Written by gridha (install state-server, state pool). glusterd forks into
# the background itself and writes its pid file.
`, "/run/glusterd.pid", `glusterd -p "$PIDFILE" </dev/null >/dev/null 2>&1 || exit 1
	i=0
	while ! running && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done`, true, "restart|force-reload")
}

// sysvOnlyFile writes f on hosts without systemd; with systemd it does
// nothing (the package's unit serves).
type sysvOnlyFile struct{ f steps.File }

func (s *sysvOnlyFile) ID() string { return s.f.ID() }
func (s *sysvOnlyFile) Probes() []installer.Probe {
	return append(s.f.Probes(), installer.Probe{Key: systemdProbe, Script: "[ -d /run/systemd/system ] && echo yes || echo no"})
}
func (s *sysvOnlyFile) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if r, ok := env.Facts.Get(systemdProbe); ok && strings.TrimSpace(string(r.Stdout)) == "yes" {
		return installer.OK("systemd: the package's unit serves")
	}
	return s.f.CheckApply(ctx, env, apply)
}

// brickFree refuses a brick folder that holds data but is not a GlusterFS
// brick (no .glusterfs inside): gridha never turns someone's folder into a
// brick. A brick of another volume is refused by gluster itself at create.
type brickFree struct{ Path, Volume string }

func (b *brickFree) ID() string { return "brick folder " + b.Path }
func (b *brickFree) Probes() []installer.Probe {
	q := installer.ShellQuote
	return []installer.Probe{{Key: "brick:" + b.Path, Script: "P=" + q(b.Path) + `
if [ ! -e "$P" ]; then echo none; exit 0; fi
if [ ! -d "$P" ]; then echo other; exit 0; fi
if [ -d "$P/.glusterfs" ]; then echo brick; exit 0; fi
if [ -z "$(ls -A "$P")" ]; then echo empty; else echo data; fi`}}
}
func (b *brickFree) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	r, ok := env.Facts.Get("brick:" + b.Path)
	if !ok {
		return installer.Failed(fmt.Errorf("%s: %s: no fact", env.Host, b.ID()))
	}
	st := strings.TrimSpace(string(r.Stdout))
	if st == "none" || st == "empty" || st == "brick" {
		// The volume step creates the volume only when every member's
		// brick folder passed here.
		brickFreeAt(b.Path).Set(env, true)
	}
	switch st {
	case "none":
		return installer.OK("not there yet: gluster volume create makes it")
	case "empty":
		return installer.OK("empty: becomes the brick of " + b.Volume)
	case "brick":
		return installer.OK("a GlusterFS brick")
	case "other":
		return installer.Failed(fmt.Errorf("%s: %s is not a folder: refusing to use it as a brick (move it away or set roles.state-server.pool.brick_dir)", env.Host, b.Path))
	default:
		return installer.Failed(fmt.Errorf("%s: %s holds data and is no GlusterFS brick: refusing to turn it into a brick of %s (move it away or set roles.state-server.pool.brick_dir)", env.Host, b.Path, b.Volume))
	}
}

// brickFreeAt is set on a member whose brick folder at path passed.
func brickFreeAt(path string) installer.Value[bool] {
	return installer.NewValue[bool]("state-pool/brick-free " + path)
}

func (b *brickFree) Produces() []installer.ValueRef {
	return []installer.ValueRef{brickFreeAt(b.Path).Of("")}
}

func (g *glusterVolume) Consumes() []installer.ValueRef {
	var out []installer.ValueRef
	for _, m := range g.Members {
		out = append(out, brickFreeAt(g.BrickPath).Of(m))
	}
	return out
}

// The gluster CLI's XML answers (only the fields gridha reads).
type glusterCLIOut struct {
	OpRet    int    `xml:"opRet"`
	OpErrstr string `xml:"opErrstr"`
	Peers    []struct {
		Hostname  string   `xml:"hostname"`
		Hostnames []string `xml:"hostnames>hostname"`
		Connected int      `xml:"connected"`
		StateStr  string   `xml:"stateStr"`
	} `xml:"peerStatus>peer"`
	Volumes []struct {
		Name      string `xml:"name"`
		StatusStr string `xml:"statusStr"`
		TypeStr   string `xml:"typeStr"`
		Bricks    []struct {
			Name      string `xml:"name"`
			IsArbiter int    `xml:"isArbiter"`
		} `xml:"bricks>brick"`
		Options []struct {
			Name  string `xml:"name"`
			Value string `xml:"value"`
		} `xml:"options>option"`
	} `xml:"volInfo>volumes>volume"`
	StatusNodes []struct {
		Hostname string `xml:"hostname"`
		Path     string `xml:"path"`
		Status   int    `xml:"status"`
	} `xml:"volStatus>volumes>volume>node"`
	HealBricks []struct {
		Name       string `xml:"name"`
		Status     string `xml:"status"`
		Total      string `xml:"totalNumberOfEntries"`
		SplitBrain string `xml:"numberOfEntriesInSplitBrain"`
		// heal info (not summary): the entries themselves.
		Entries string `xml:"numberOfEntries"`
		Files   []struct {
			GFID string `xml:"gfid,attr"`
			Path string `xml:",chardata"`
		} `xml:"file"`
	} `xml:"healInfo>bricks>brick"`
}

// parseGlusterXML reads the CLI's answer in a probe's output (nothing when
// glusterd did not answer).
func parseGlusterXML(out []byte) (*glusterCLIOut, error) {
	s := string(out)
	i := strings.Index(s, "<cliOutput")
	if i < 0 {
		msg := strings.TrimSpace(s)
		if msg == "" {
			msg = "no answer"
		}
		return nil, fmt.Errorf("gluster CLI: %.300s", msg)
	}
	var o glusterCLIOut
	if err := xml.Unmarshal([]byte(s[i:]), &o); err != nil {
		return nil, fmt.Errorf("gluster CLI: %w", err)
	}
	return &o, nil
}

// glusterFact runs the gluster CLI command args (XML) as a probe.
func glusterProbe(key, args string) installer.Probe {
	return installer.Probe{Key: key, Script: glusterCLI + " " + args + " 2>&1"}
}

// glusterFact reads fact p for step id (probed again when fresh). ok is
// false when it could not be read, with the result to report: missing in a
// check, a failure in a run.
func glusterFact(ctx context.Context, env *installer.Env, id string, p installer.Probe, apply, fresh bool) (o *glusterCLIOut, res installer.Result, ok bool) {
	o, err := glusterGet(ctx, env, p, fresh)
	if err != nil {
		if !apply {
			return nil, installer.Missing(err.Error()), false
		}
		return nil, installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, id, err)), false
	}
	return o, installer.Result{}, true
}

func glusterGet(ctx context.Context, env *installer.Env, p installer.Probe, fresh bool) (*glusterCLIOut, error) {
	if fresh {
		if err := env.Reprobe(ctx, p); err != nil {
			return nil, err
		}
	}
	r, ok := env.Facts.Get(p.Key)
	if !ok {
		return nil, fmt.Errorf("no fact %s", p.Key)
	}
	return parseGlusterXML(r.Stdout)
}

func glusterRun(ctx context.Context, env *installer.Env, what, cmd string) (string, error) {
	res, err := env.Conn.Run(ctx, "timeout 120 gluster --mode=script "+cmd, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", env.Host, what, err)
	}
	if res.ExitCode != 0 {
		msg := strings.TrimSpace(string(res.Stdout) + " " + string(res.Stderr))
		return "", fmt.Errorf("%s: %s: exit %d: %.400s", env.Host, what, res.ExitCode, msg)
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

// glusterPeers makes the other pool members peers of this one (gluster
// peer probe): the step of the "peers connected" field.
type glusterPeers struct{ Peers []string }

func (g *glusterPeers) ID() string { return "glusterfs peers connected" }
func (g *glusterPeers) probe() installer.Probe {
	return glusterProbe("gluster:peer-status", "peer status")
}
func (g *glusterPeers) Probes() []installer.Probe { return []installer.Probe{g.probe()} }

// missing lists the wanted peers not in the pool, and those in it but
// disconnected.
func (g *glusterPeers) missing(o *glusterCLIOut) (absent, down []string) {
	for _, want := range g.Peers {
		found := false
		for _, p := range o.Peers {
			names := append([]string{p.Hostname}, p.Hostnames...)
			for _, n := range names {
				if n == want {
					found = true
				}
			}
			if found {
				if p.Connected != 1 || p.StateStr != "Peer in Cluster" {
					down = append(down, fmt.Sprintf("%s (%s, connected=%d)", want, p.StateStr, p.Connected))
				}
				break
			}
		}
		if !found {
			absent = append(absent, want)
		}
	}
	return absent, down
}

func (g *glusterPeers) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, g.ID(), err))
	}
	o, res, ok := glusterFact(ctx, env, g.ID(), g.probe(), apply, apply)
	if !ok {
		return res
	}
	absent, down := g.missing(o)
	if len(absent) == 0 && len(down) == 0 {
		return installer.OK(fmt.Sprintf("%d peers in the pool, all connected: %s", len(g.Peers), strings.Join(g.Peers, ", ")))
	}
	if !apply {
		msg := ""
		if len(absent) > 0 {
			msg = "not in the pool: " + strings.Join(absent, ", ")
		}
		if len(down) > 0 {
			msg = strings.TrimPrefix(msg+"; disconnected: "+strings.Join(down, ", "), "; ")
		}
		return installer.Drift(msg, strings.Join(g.Peers, ", ")+" connected", msg)
	}
	for _, p := range absent {
		if _, err := glusterRun(ctx, env, "peer probe "+p, "peer probe "+installer.ShellQuote(p)); err != nil {
			return fail(err)
		}
	}
	// A probed peer takes a moment to become "Peer in Cluster".
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err := glusterGet(ctx, env, g.probe(), true)
		if err == nil {
			if a, d := g.missing(o); len(a) == 0 && len(d) == 0 {
				break
			} else if time.Now().After(deadline) {
				return fail(fmt.Errorf("after 30 s: not in the pool %v, disconnected %v (is glusterd running there, with the pool's certificate?)", a, d))
			}
		} else if time.Now().After(deadline) {
			return fail(err)
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	if len(absent) == 0 {
		return installer.OK("all peers connected again: " + strings.Join(g.Peers, ", "))
	}
	return installer.Changed("probed " + strings.Join(absent, ", "))
}

// glusterVolume is the pool's volume: created by gridha (replica 3, or
// replica 3 arbiter 1), marked as gridha's, its options set, started. A
// volume of that name gridha did not create is refused, and so is one whose
// bricks are not the inventory's (gridha does not move bricks).
type glusterVolume struct {
	Name   string
	Bricks []string
	// Members and BrickPath: the inventory names of the members and the
	// brick folder, whose brickFree steps must have passed before create.
	Members   []string
	BrickPath string
	Arbiter   bool
	Options   []glusterOption
}

func (g *glusterVolume) ID() string { return "glusterfs volume " + g.Name }
func (g *glusterVolume) probe() installer.Probe {
	return glusterProbe("gluster:volume-info:"+g.Name, "volume info "+installer.ShellQuote(g.Name))
}
func (g *glusterVolume) Probes() []installer.Probe { return []installer.Probe{g.probe()} }

// volumeState is what gluster says about the volume (nil: none).
type volumeState struct {
	Status  string
	Type    string
	Bricks  []string
	Options map[string]string
}

func (g *glusterVolume) state(o *glusterCLIOut) *volumeState {
	for _, v := range o.Volumes {
		if v.Name != g.Name {
			continue
		}
		st := &volumeState{Status: v.StatusStr, Type: v.TypeStr, Options: map[string]string{}}
		for _, b := range v.Bricks {
			st.Bricks = append(st.Bricks, b.Name)
		}
		for _, op := range v.Options {
			st.Options[op.Name] = op.Value
		}
		return st
	}
	return nil
}

func (g *glusterVolume) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, g.ID(), err))
	}
	o, res, ok := glusterFact(ctx, env, g.ID(), g.probe(), apply, false)
	if !ok && apply {
		o, res, ok = glusterFact(ctx, env, g.ID(), g.probe(), apply, true)
	}
	if !ok {
		return res
	}
	st := g.state(o)
	var did []string
	if st == nil {
		if !apply {
			return installer.Missing(fmt.Sprintf("no volume %s: would create it (%s) on %s", g.Name, g.layout(), strings.Join(g.Bricks, " ")))
		}
		for _, m := range g.Members {
			if free, _ := brickFreeAt(g.BrickPath).Get(env, m); !free {
				return fail(fmt.Errorf("not creating volume %s: the brick folder %s on %s was refused or not checked (see its step \"brick folder %s\")", g.Name, g.BrickPath, m, g.BrickPath))
			}
		}
		args := "volume create " + installer.ShellQuote(g.Name) + " replica 3"
		if g.Arbiter {
			args += " arbiter 1"
		}
		for _, b := range g.Bricks {
			args += " " + installer.ShellQuote(b)
		}
		if _, err := glusterRun(ctx, env, "create volume "+g.Name, args); err != nil {
			return fail(err)
		}
		if _, err := glusterRun(ctx, env, "mark volume "+g.Name, "volume set "+installer.ShellQuote(g.Name)+" "+glusterManagedOption+" yes"); err != nil {
			return fail(err)
		}
		did = append(did, "created ("+g.layout()+")")
		o, err := glusterGet(ctx, env, g.probe(), true)
		if err != nil {
			return fail(err)
		}
		if st = g.state(o); st == nil {
			return fail(fmt.Errorf("volume %s not there after creating it", g.Name))
		}
	}
	if st.Options[glusterManagedOption] != "yes" {
		// A volume gridha created but did not mark yet (a run killed
		// between the two commands) is never started and has exactly the
		// inventory's bricks: adopted. Any other is someone else's.
		if st.Status != "Created" || strings.Join(st.Bricks, " ") != strings.Join(g.Bricks, " ") {
			return fail(fmt.Errorf("volume %s exists and was not created by gridha (no %s option): refusing to touch it (choose another roles.state-server.pool.volume)", g.Name, glusterManagedOption))
		}
		if !apply {
			return installer.Drift("volume "+g.Name+" created but not marked as gridha's yet (a run was interrupted)", glusterManagedOption+"=yes", "unset")
		}
		if _, err := glusterRun(ctx, env, "mark volume "+g.Name, "volume set "+installer.ShellQuote(g.Name)+" "+glusterManagedOption+" yes"); err != nil {
			return fail(err)
		}
		did = append(did, "marked as gridha's (an interrupted run had created it)")
	}
	// A member lost for good and replaced in the inventory: its brick is
	// replaced by the new member's (statepool_replace.go), after the
	// options below (auth.ssl-allow lets the new member in).
	repl, err := planBrickReplacement(g.Name, st.Bricks, g.Bricks, g.Arbiter)
	if err != nil {
		return fail(err)
	}
	if repl != nil && !apply {
		return installer.Drift(fmt.Sprintf("volume %s: brick %s is no longer in the inventory: would replace it by %s (a member replaced)", g.Name, repl.Old, repl.New),
			strings.Join(g.Bricks, " "), strings.Join(st.Bricks, " "))
	}
	if repl != nil {
		f, err := gatherReplaceFacts(ctx, env, g.Name, repl)
		if err != nil {
			return fail(fmt.Errorf("before replacing %s by %s: %w", repl.Old, repl.New, err))
		}
		if err := replaceRefusal(g.Name, repl, st.Bricks, g.Arbiter, f); err != nil {
			return fail(err)
		}
	}
	var drift []string
	for _, op := range g.Options {
		if have := st.Options[op.Key]; have != op.Value {
			drift = append(drift, fmt.Sprintf("%s=%s (is %q)", op.Key, op.Value, have))
			if apply {
				if _, err := glusterRun(ctx, env, "set "+op.Key, "volume set "+installer.ShellQuote(g.Name)+" "+installer.ShellQuote(op.Key)+" "+installer.ShellQuote(op.Value)); err != nil {
					return fail(err)
				}
			}
		}
	}
	if len(drift) > 0 {
		did = append(did, "set "+strings.Join(drift, ", "))
	}
	if repl != nil {
		if err := replaceBrick(ctx, env, g.Name, repl); err != nil {
			return fail(err)
		}
		did = append(did, "replaced brick "+repl.Old+" by "+repl.New+" (the self-heal daemon copies every entry to it)")
	}
	if st.Status != "Started" {
		drift = append(drift, "status "+st.Status)
		if apply {
			if _, err := glusterRun(ctx, env, "start volume "+g.Name, "volume start "+installer.ShellQuote(g.Name)); err != nil {
				return fail(err)
			}
			did = append(did, "started")
		}
	}
	if !apply && len(drift) > 0 {
		return installer.Drift("volume "+g.Name+": "+strings.Join(drift, "; "), "", "")
	}
	if len(did) > 0 {
		return installer.Changed(strings.Join(did, "; "))
	}
	return installer.OK(fmt.Sprintf("%s, %s, started, quorum and TLS options set, %d hosts allowed", g.layout(), strings.Join(g.Bricks, " "), strings.Count(g.option("auth.ssl-allow"), ",")+1))
}

func (g *glusterVolume) option(k string) string {
	for _, o := range g.Options {
		if o.Key == k {
			return o.Value
		}
	}
	return ""
}

func (g *glusterVolume) layout() string {
	if g.Arbiter {
		return "replica 3 arbiter 1"
	}
	return "replica 3"
}

// glusterBricksOnline is the "bricks online" field; a run starts bricks
// that are down (gluster volume start force starts only those).
type glusterBricksOnline struct {
	Volume string
	Bricks []string
}

func (g *glusterBricksOnline) ID() string { return "glusterfs bricks online" }
func (g *glusterBricksOnline) probe() installer.Probe {
	return glusterProbe("gluster:volume-status:"+g.Volume, "volume status "+installer.ShellQuote(g.Volume))
}
func (g *glusterBricksOnline) Probes() []installer.Probe { return []installer.Probe{g.probe()} }

func (g *glusterBricksOnline) offline(o *glusterCLIOut) []string {
	online := map[string]bool{}
	for _, n := range o.StatusNodes {
		if n.Status == 1 {
			online[n.Hostname+":"+n.Path] = true
		}
	}
	var off []string
	for _, b := range g.Bricks {
		if !online[b] {
			off = append(off, b)
		}
	}
	return off
}

func (g *glusterBricksOnline) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, g.ID(), err))
	}
	// In a run the volume may have been created or started by the step
	// before: fresh facts.
	o, res, ok := glusterFact(ctx, env, g.ID(), g.probe(), apply, apply)
	if !ok {
		return res
	}
	off := g.offline(o)
	if len(off) == 0 {
		return installer.OK(fmt.Sprintf("%d of %d bricks online", len(g.Bricks), len(g.Bricks)))
	}
	msg := fmt.Sprintf("%d of %d bricks online; offline: %s", len(g.Bricks)-len(off), len(g.Bricks), strings.Join(off, ", "))
	if !apply {
		return installer.Drift(msg, "all bricks online", strings.Join(off, ", "))
	}
	if _, err := glusterRun(ctx, env, "start offline bricks", "volume start "+installer.ShellQuote(g.Volume)+" force"); err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err := glusterGet(ctx, env, g.probe(), true)
		if err == nil && len(g.offline(o)) == 0 {
			return installer.Changed(msg + ": started")
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("still offline after 30 s: %s (is the member up?)", strings.Join(g.offline(o), ", "))
			}
			return fail(err)
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// healProbe is the heal summary both heal fields read (one CLI call).
func healProbe(volume string) installer.Probe {
	return glusterProbe("gluster:heal-summary:"+volume, "volume heal "+installer.ShellQuote(volume)+" info summary")
}

// healCounts sums the summary over the bricks that answered; unreadable
// lists the bricks whose counts are unknown (down).
func healCounts(o *glusterCLIOut) (pending, split int, unreadable []string) {
	for _, b := range o.HealBricks {
		t, err1 := strconv.Atoi(strings.TrimSpace(b.Total))
		s, err2 := strconv.Atoi(strings.TrimSpace(b.SplitBrain))
		if err1 != nil || err2 != nil {
			// The CLI puts the reason in parentheses ("... (Transport
			// endpoint is not connected)"); keep only that.
			why := strings.TrimSpace(b.Status)
			if i := strings.Index(why, "("); i >= 0 {
				if j := strings.Index(why[i:], ")"); j > 0 {
					why = why[i+1 : i+j]
				}
			}
			unreadable = append(unreadable, b.Name+" ("+why+")")
			continue
		}
		pending += t - s
		split += s
	}
	return pending, split, unreadable
}

// healSummary reads volume's heal summary for step id (probed again when
// fresh) as glusterFact does; a summary without bricks is missing too.
func healSummary(ctx context.Context, env *installer.Env, id, volume string, apply, fresh bool) (o *glusterCLIOut, res installer.Result, ok bool) {
	o, res, ok = glusterFact(ctx, env, id, healProbe(volume), apply, fresh)
	if !ok {
		return nil, res, false
	}
	if len(o.HealBricks) == 0 {
		return nil, installer.Missing("no heal information for volume " + volume), false
	}
	return o, installer.Result{}, true
}

// glusterHeal is the "pending heals" field: entries a brick missed
// (written while it was down) that the self-heal daemon has not copied yet.
// A run asks for an index heal at once.
type glusterHeal struct{ Volume string }

func (g *glusterHeal) ID() string                { return "glusterfs pending heals" }
func (g *glusterHeal) Probes() []installer.Probe { return []installer.Probe{healProbe(g.Volume)} }
func (g *glusterHeal) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	o, res, ok := healSummary(ctx, env, g.ID(), g.Volume, apply, apply)
	if !ok {
		return res
	}
	pending, _, unreadable := healCounts(o)
	if pending == 0 && len(unreadable) == 0 {
		return installer.OK("0 entries pending heal")
	}
	msg := fmt.Sprintf("%d entries pending heal", pending)
	if len(unreadable) > 0 {
		msg += "; unknown on " + strings.Join(unreadable, ", ")
	}
	if !apply || pending == 0 {
		return installer.Drift(msg+" (the self-heal daemon copies them to the brick that missed them)", "0", strconv.Itoa(pending))
	}
	// Launching an index heal only hurries the self-heal daemon, which
	// heals on its own once every brick is back: right after a brick was
	// started the launch can be refused for a moment. A few tries, then
	// the pending entries are reported, never a failure that would stop
	// the rest of the host's run.
	var err error
	for try := 0; try < 3; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, g.ID(), ctx.Err()))
			case <-time.After(2 * time.Second):
			}
		}
		if _, err = glusterRun(ctx, env, "heal "+g.Volume, "volume heal "+installer.ShellQuote(g.Volume)); err == nil {
			return installer.Changed(msg + ": heal launched")
		}
	}
	return installer.Drift(fmt.Sprintf("%s; launching a heal failed (%v): the self-heal daemon copies them on its own", msg, err), "0", strconv.Itoa(pending))
}

// glusterSplitBrain is the "split-brain entries" field: entries whose
// copies disagree with no majority to say which is right. Never repaired
// by gridha (choosing a copy is an admin's decision): failed.
type glusterSplitBrain struct{ Volume string }

func (g *glusterSplitBrain) ID() string                { return "glusterfs split-brain entries" }
func (g *glusterSplitBrain) Probes() []installer.Probe { return []installer.Probe{healProbe(g.Volume)} }
func (g *glusterSplitBrain) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	o, res, ok := healSummary(ctx, env, g.ID(), g.Volume, apply, false)
	if !ok {
		return res
	}
	_, split, _ := healCounts(o)
	if split > 0 {
		return installer.Failed(fmt.Errorf("%s: %d entries in split-brain on volume %s: list them with gluster volume heal %s info split-brain and choose a copy (gluster volume heal %s split-brain ...)", env.Host, split, g.Volume, g.Volume, g.Volume))
	}
	return installer.OK("0 entries in split-brain")
}
