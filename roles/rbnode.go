package roles

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

// RBNode is the `rb-node` role: a Resource Broker service provider whose
// state lives on the state server (slides 4-8, 12-13). It replaces
// rb-ha-install-helper.sh. This file is the storage half (snfs user, shared
// mount, cron, services, state-dir migration, /etc/sysconfig/edg, the L&B
// copy); the HA half (lcg-ha, hagd.conf, the service script, hagd) is
// haSteps in rbnode_ha.go.
//
// The plan's phases (phases are barriers across hosts):
//
//  0. on the state server: the state-server role's own steps (idempotent,
//     so both roles agree) and its SSH host key, read for the nodes' pinned
//     known_hosts;
//  1. on every node: the snfs user and key, the shared mount, cron files
//     removed, RB services disabled at boot and stopped (before any state
//     moves), EDG_WL_BKSERVERD_ADDOPTS;
//  2. one phase per rank position: in each group, the nodes whose primary
//     group it is move their state one after another, highest rank first
//     (two nodes never copy into the same share at once), then copy their
//     L&B database when the remote one is empty;
//  3. the HA configuration (haSteps).
type RBNode struct {
	// withoutHA leaves the HA phase out (the storage half's own tests).
	withoutHA bool
}

// NewRBNode returns the role.
func NewRBNode() *RBNode { return &RBNode{} }

// Name is the role's name.
func (RBNode) Name() string { return "rb-node" }

// Summary is one line for --help.
func (RBNode) Summary() string {
	return "RB service provider: snfs user and shared mount, RB services off at boot, state dirs moved to the state server, remote L&B database, hagd (replaces rb-ha-install-helper.sh)"
}

// Phase names of the rb-node plan.
const (
	PhaseRBStateServer = "rb-node: state server"
	PhaseRBPrepare     = "rb-node: prepare nodes"
	PhaseRBState       = "rb-node: move state"
	PhaseRBHA          = "rb-node: HA"
)

// sshHostKeyPath is the state server's host key the nodes pin.
const sshHostKeyPath = "/etc/ssh/ssh_host_ed25519_key.pub"

// Plan builds the rb nodes' phases (see RBNode). With a --limit that leaves
// the state server out, its phase only reads what the named nodes need from
// it (its SSH host key); the plan names it in Support.
func (r RBNode) Plan(inv *inventory.Inventory, opts Options) (*installer.Plan, error) {
	rb := inv.Roles.RBNode
	cfg := inv.Roles.StateServer
	all := inv.HostsWithRole(r.Name())
	var nodes []*inventory.Host
	for _, n := range all {
		if opts.InLimit(n.Name) {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return &installer.Plan{}, nil
	}
	srv := rbStateServer(inv)
	var err error
	if opts.StateFrom != "" {
		if h := inv.Host(opts.StateFrom); h == nil || !h.HasRole(r.Name()) {
			return nil, fmt.Errorf("--state-from %s: not an rb-node of the inventory", opts.StateFrom)
		}
	}

	// A hagd key rotation replaces the key on every node: none may be left
	// out (it would refuse the others' heartbeats once they switched).
	// A state pool's members run hagd with the same key (statepool_ha.go):
	// the rotation covers them too.
	keyHosts := append([]*inventory.Host(nil), all...)
	if rb.SharedFS == "glusterfs" {
		for _, m := range inventory.PoolMembers(inv) {
			if m.Name != cfg.Pool.Arbiter { // the arbiter runs no hagd
				keyHosts = append(keyHosts, m)
			}
		}
	}
	var rot *hagdRotation
	if !r.withoutHA {
		if _, err := os.Stat(PendingHAGDKeyPath(inv)); opts.RotateKey || err == nil {
			for _, n := range keyHosts {
				if !opts.InLimit(n.Name) {
					return nil, fmt.Errorf("rb-node: a hagd key rotation (--rotate-key, or one under way: %s) replaces the key on every rb node and pool member: %s is outside --limit (run without --limit)",
						PendingHAGDKeyPath(inv), n.Name)
				}
			}
		}
		if rot, err = loadHAGDRotation(inv, opts.RotateKey, opts.ReadOnly); err != nil {
			return nil, err
		}
	}

	// Phase 0: the state server, as `install state-server` would leave it.
	// Outside --limit it is only read for what the named nodes need from
	// it: its SSH host key (and its connection, for the state and L&B
	// copies of later phases).
	var srvSteps []installer.Step
	var support map[string]string
	var poolPhases []installer.Phase
	if rb.SharedFS == "glusterfs" {
		// A state pool: phase 0 is the pool as install state-server leaves
		// it (its members in --limit); the nodes need nothing read from it.
		pp, err := poolPlan(inv, opts)
		if err != nil {
			return nil, err
		}
		poolPhases = pp.Phases
		if !r.withoutHA && len(poolPhases) > 0 && poolPhases[0].Name == PhasePoolMembers {
			// Before anything moves or restarts (statepool_upgrade.go,
			// the Galera seed): a node switching from a single server's
			// share has its hagd stopped (hagdStoppedForPool); the HA
			// phase starts it again. In the pool's first phase, so that
			// `install state-server rb-node` merges it there too.
			for _, n := range nodes {
				poolPhases[0].Steps[n.Name] = append(poolPhases[0].Steps[n.Name], hagdStoppedForPool(inv))
			}
		}
	} else if opts.InLimit(srv.Name) {
		srvSteps, err = StateServer{}.hostSteps(inv, srv, all, cfg, rb, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", srv.Name, err)
		}
	} else {
		var names []string
		for _, n := range nodes {
			names = append(names, n.Name)
		}
		support = map[string]string{srv.Name: fmt.Sprintf("outside --limit: only its SSH host key is read (pinned in the known_hosts of %s) and its connection kept for their state and L&B copies; its own state-server steps are not %s",
			strings.Join(names, ", "), map[bool]string{true: "verified", false: "converged"}[opts.ReadOnly])}
	}
	// Every share folder the named nodes link to, as the state server sees
	// it: a verify reads them there in one find, in the server's own fact
	// batch (hostKeyStep), not in a session per node or of their own.
	var serverPaths []string
	seen := map[string]bool{}
	for _, n := range nodes {
		for _, d := range rb.StateDirs {
			if p := path.Join(cfg.Export, inventory.ShareDir(rb.PrimaryGroup(n.Name), d)); !seen[p] {
				seen[p] = true
				serverPaths = append(serverPaths, p)
			}
		}
	}
	if rb.SharedFS != "glusterfs" {
		srvSteps = append(srvSteps, &hostKeyStep{Server: srv.Name, Path: sshHostKeyPath, Views: serverPaths})
		poolPhases = []installer.Phase{{Name: PhaseRBStateServer, Steps: map[string][]installer.Step{srv.Name: srvSteps}}}
	}

	lbPassword, err := cfg.MySQL.PasswordFile.Read()
	if err != nil {
		return nil, fmt.Errorf("roles.state-server.mysql.password_file: %w", err)
	}
	remoteAdmin, err := stateServerAdmin(cfg)
	if err != nil {
		return nil, err
	}

	prepare := map[string][]installer.Step{}
	ha := map[string][]installer.Step{}
	byGroup := map[string][]*inventory.Host{}
	for _, n := range nodes {
		s, err := r.prepareSteps(inv, n, srv, lbPassword, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		prepare[n.Name] = s
		if !r.withoutHA {
			h, err := r.haSteps(inv, n, opts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", n.Name, err)
			}
			if len(h) > 0 {
				ha[n.Name] = h
			}
		}
		g := rb.PrimaryGroup(n.Name)
		byGroup[g] = append(byGroup[g], n)
	}
	plan := &installer.Plan{Phases: append(poolPhases, installer.Phase{Name: PhaseRBPrepare, Steps: prepare}), Support: support}
	for k, pos := range RankOrder(rb, byGroup) {
		st := map[string][]installer.Step{}
		for _, n := range pos {
			st[n.Name] = r.stateSteps(inv, n, srv, remoteAdmin, serverPaths, opts)
		}
		plan.Phases = append(plan.Phases, installer.Phase{Name: fmt.Sprintf("%s (%d)", PhaseRBState, k+1), Steps: st})
	}
	if len(ha) > 0 {
		plan.Phases = append(plan.Phases, installer.Phase{Name: PhaseRBHA, Steps: ha})
		if rot != nil {
			// Every host running hagd with the key (the check above: all
			// of them in --limit).
			var names []string
			for _, n := range keyHosts {
				names = append(names, n.Name)
			}
			plan.Phases = append(plan.Phases, hagdRotationPhases(inv, rot, names)...)
		}
	}
	return plan, nil
}

// RankOrder turns each group's nodes (by primary group) into rank
// positions: position k holds the k-th node of every group, by rank (highest
// first, ties by name).
func RankOrder(rb inventory.RBNode, byGroup map[string][]*inventory.Host) [][]*inventory.Host {
	var out [][]*inventory.Host
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		ns := append([]*inventory.Host(nil), byGroup[g]...)
		sort.SliceStable(ns, func(i, j int) bool {
			ri, rj := rb.Nodes[ns[i].Name][g], rb.Nodes[ns[j].Name][g]
			if ri != rj {
				return ri > rj
			}
			return ns[i].Name < ns[j].Name
		})
		for k, n := range ns {
			if k >= len(out) {
				out = append(out, nil)
			}
			out[k] = append(out[k], n)
		}
	}
	return out
}

// rbStateServer is the state server the nodes use (a single server's MySQL
// also holds hagd's lease; a pool's is reached at its service IP). The inventory checked that state_server names a state
// server and that there is one when it is unset.
func rbStateServer(inv *inventory.Inventory) *inventory.Host {
	rb := inv.Roles.RBNode
	if rb.StateServer != "" {
		return inv.Host(rb.StateServer)
	}
	srvs := inv.HostsWithRole("state-server")
	// One state server, or a pool: its first member, the L&B copy's
	// target (any member of the Galera cluster takes it). With none the
	// inventory was refused.
	return srvs[0]
}

func stateServerAdmin(cfg inventory.StateServer) (steps.MySQLAdmin, error) {
	admin := steps.MySQLAdmin{Socket: cfg.MySQL.Socket, User: cfg.MySQL.AdminUser}
	if cfg.MySQL.AdminPasswordFile.IsSet() {
		pw, err := cfg.MySQL.AdminPasswordFile.Read()
		if err != nil {
			return admin, fmt.Errorf("roles.state-server.mysql.admin_password_file: %w", err)
		}
		admin.Password = pw
	}
	return admin, nil
}

// ShareMountDir is where node sees group's share of state dir dir.
func ShareMountDir(rb inventory.RBNode, group, dir string) string {
	return path.Join(rb.MountPoint, inventory.ShareDir(group, dir))
}

// prepareSteps are phase 1 on one node: everything before state moves.
func (r RBNode) prepareSteps(inv *inventory.Inventory, n, srv *inventory.Host, lbPassword string, opts Options) ([]installer.Step, error) {
	rb := inv.Roles.RBNode
	cfg := inv.Roles.StateServer
	var out []installer.Step
	if rb.SharedFS == "glusterfs" {
		gs, err := glusterNodeSteps(inv, n, opts)
		if err != nil {
			return nil, err
		}
		out = gs
	} else {
		var err error
		if out, err = snfsNodeSteps(inv, n, srv, opts); err != nil {
			return nil, err
		}
	}
	for _, c := range rb.CronRemove {
		out = append(out, &steps.Absent{Path: c})
	}
	for _, s := range rb.Services {
		out = append(out, hagdOwnsRunning(steps.Service{Name: s, Boot: steps.BootDisabled, State: steps.StateStopped}))
	}
	out = append(out, &steps.Dir{Path: path.Dir(rb.SysconfigEDG)}, &steps.KeyValue{
		Path:   rb.SysconfigEDG,
		Key:    "EDG_WL_BKSERVERD_ADDOPTS",
		Value:  fmt.Sprintf("--mysql %s/%s@%s:%s", cfg.MySQL.User, lbPassword, lbServerName(inv, srv), cfg.MySQL.Database),
		Quote:  true,
		Mode:   0o600,
		Secret: true,
	})
	return out, nil
}

// lbServerName is the L&B database's host name in the nodes'
// EDG_WL_BKSERVERD_ADDOPTS: the state server's, or the pool's service IP
// (its name when the inventory gives one).
func lbServerName(inv *inventory.Inventory, srv *inventory.Host) string {
	p := inv.Roles.StateServer.Pool
	if !inventory.IsPool(inv) {
		return srv.Hostname
	}
	if p.Name != "" {
		return p.Name
	}
	if pf, err := netip.ParsePrefix(p.ServiceIP); err == nil {
		return pf.Addr().String()
	}
	return srv.Hostname
}

// snfsNodeSteps are the node's snfs account, its key and the state
// server's pinned host key, and the sshfs or snfs mount.
func snfsNodeSteps(inv *inventory.Inventory, n, srv *inventory.Host, opts Options) ([]installer.Step, error) {
	rb := inv.Roles.RBNode
	cfg := inv.Roles.StateServer
	user, home := cfg.SnfsUser, cfg.SnfsHome
	sshDir := path.Join(home, ".ssh")
	keyPath := path.Join(sshDir, "id_ed25519")
	knownHosts := path.Join(sshDir, "known_hosts")
	// The key opens the whole share with root's powers over it (owners are
	// kept): root's alone, read by the root-run sshfs (or rpc_psrv).
	shell := nologinShell
	if rb.SharedFS == "snfs" {
		shell = "/bin/sh"
	}
	out := []installer.Step{
		&steps.User{Name: user, Home: home, Shell: shell, System: true},
		&steps.Dir{Path: sshDir, Mode: 0o700, Owner: "root", Group: "root"},
	}
	key, err := LoadNodeKey(inv, n.Name, !opts.ReadOnly)
	switch {
	case err == nil:
		out = append(out, &steps.File{Path: keyPath, Content: key.PrivatePEM, Mode: 0o600, Owner: "root", Group: "root", Secret: true})
	case opts.ReadOnly:
		out = append(out, steps.Pending{Name: "file " + keyPath, Why: "no snfs key generated for " + n.Name + " yet (install rb-node or state-server generates it)"})
	default:
		return nil, err
	}
	out = append(out, &knownHostsStep{Path: knownHosts, Owner: "root", Server: srv})

	switch rb.SharedFS {
	case "snfs":
		out = append(out, snfsSteps(rb, cfg, n, srv)...)
	default:
		out = append(out, sshfsSteps(rb, cfg, srv, keyPath, knownHosts)...)
	}
	return out, nil
}

// SSHFSRawDir is where a node mounts the state server's export with sshfs,
// seen by root only; the mount point is a bindfs view of it.
const SSHFSRawDir = "/var/lib/gridha/sshfs"

// sshfsSteps are the default driver: two FUSE layers (see README-rbnode.md).
//
//   - sshfs, as root, at SSHFSRawDir/<mount point> (its parent 0700: root
//     only), from snfs@<server>:/ (the chroot is the export), numeric owners
//     (idmap=none), symlink targets verbatim (no_contain_symlinks: Debian's
//     sshfs refuses absolute and ".." targets by default, and RB state has
//     both), no directory cache (a node taking over must list what the other
//     wrote);
//   - bindfs on the mount point: permission checks on the node
//     (default_permissions: a 0600 proxy is its owner's and root's only),
//     other local users allowed (the services are not root), and files and
//     folders created by a service get its uid and gid (bindfs run by root
//     chowns them: sshfs alone would make them root's, and the service
//     could not open them again); nosuid, nodev: nothing on the share runs
//     with privileges on the node.
func sshfsSteps(rb inventory.RBNode, cfg inventory.StateServer, srv *inventory.Host, keyPath, knownHosts string) []installer.Step {
	raw := path.Join(SSHFSRawDir, rb.MountPoint)
	return []installer.Step{
		&steps.Exec{
			Name:  "sshfs and bindfs installed",
			Probe: "for p in sshfs bindfs; do command -v $p >/dev/null 2>&1 || echo $p; done; exit 0",
			Check: func(r installer.ProbeResult) (bool, string) {
				miss := strings.Fields(string(r.Stdout))
				return len(miss) == 0, "missing " + strings.Join(miss, ", ") + ": install the package(s) (Debian, EL: sshfs, bindfs)"
			},
		},
		&steps.Dir{Path: SSHFSRawDir, Mode: 0o700, Owner: "root", Group: "root"},
		&steps.Mount{
			Source: cfg.SnfsUser + "@" + srv.Address + ":/",
			Target: raw,
			FSType: "fuse.sshfs",
			Options: []string{"_netdev", "reconnect", "ServerAliveInterval=15", "ServerAliveCountMax=3",
				"IdentityFile=" + keyPath, "UserKnownHostsFile=" + knownHosts, "StrictHostKeyChecking=yes",
				"BatchMode=yes", "idmap=none", "no_contain_symlinks", "dir_cache=no"},
			Fstab:   true,
			Mounted: true,
		},
		&steps.Mount{
			Source:  raw,
			Target:  rb.MountPoint,
			FSType:  "fuse.bindfs",
			Options: []string{"_netdev", "nosuid", "nodev", "default_permissions"},
			Fstab:   true,
			Mounted: true,
		},
	}
}

// snfsSteps are the notes' sec_rpc driver (slide 7): snfshost, the RPC
// proxy at boot and running, and the NFS mount "as if it's on a local host".
func snfsSteps(rb inventory.RBNode, cfg inventory.StateServer, n, srv *inventory.Host) []installer.Step {
	conf := path.Join(cfg.SnfsHome, srv.Hostname)
	q := installer.ShellQuote
	return []installer.Step{
		&steps.Exec{
			Name:  "snfshost " + srv.Hostname,
			Probe: "test -e " + q(conf),
			Check: func(r installer.ProbeResult) (bool, string) {
				return r.ExitCode == 0, conf + " missing"
			},
			Apply: "snfshost " + q(srv.Hostname),
		},
		&steps.File{Path: "/etc/init.d/" + snfsProxyService, Content: snfsProxyInit(conf), Mode: 0o755, Owner: "root", Group: "root"},
		&optionalService{svc: steps.Service{Name: snfsProxyService, Boot: steps.BootEnabled, State: steps.StateRunning}, required: true},
		&steps.Mount{
			Source:  n.Hostname + ":" + cfg.Export,
			Target:  rb.MountPoint,
			FSType:  "nfs",
			Options: []string{"nolock", "mountprog=201000", "nfsprog=251000", "_netdev"},
			Fstab:   true,
			Mounted: true,
		},
	}
}

// snfsProxyService is the init script gridha writes for rpc_psrv.
const snfsProxyService = "gridha-rpc-psrv"

func snfsProxyInit(conf string) []byte {
	return pidfileInit(`#!/bin/sh
### BEGIN INIT INFO
# Provides:          `+snfsProxyService+`
# Required-Start:    $network $remote_fs
# Required-Stop:     $network $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: sec_rpc RPC proxy to the RB state server (written by gridha)
### END INIT INFO
# chkconfig: 345 20 80
# Written by gridha (install rb-node, shared_fs: snfs): rpc_psrv -b CONF, slide 7.
CONF=`+installer.ShellQuote(conf)+`
`, "/var/run/"+snfsProxyService+".pid", `rpc_psrv -b "$CONF" </dev/null >/dev/null 2>&1 &
	echo $! > "$PIDFILE"
	sleep 1`, false, "restart")
}

// pidfileInit is a SysV init script for a daemon tracked by its pid file
// (rpc_psrv, glusterd), one body for all so that they answer alike: head
// (the #! line, the LSB block, comments, variables), then start, stop,
// status (LSB codes: 0 running, 1 dead with a pid file left, 3 stopped) and
// restart, named by restart ("restart|force-reload"). start runs when the
// daemon is not running; the script's answer is whether it runs after it.
// With stopWait, stop waits up to 10 s for the daemon to exit.
func pidfileInit(head, pidFile, start string, stopWait bool, restart string) []byte {
	wait := ""
	if stopWait {
		wait = "\ti=0\n\twhile running && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n"
	}
	return []byte(head + `PIDFILE=` + pidFile + `
running() { pid=; [ -f "$PIDFILE" ] && { read -r pid < "$PIDFILE"; } 2>/dev/null; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
case "$1" in
start)
	running && exit 0
	` + start + `
	running ;;
stop)
	running && kill "$pid"
` + wait + `	rm -f "$PIDFILE"
	exit 0 ;;
status)
	running && exit 0
	[ -f "$PIDFILE" ] && exit 1
	exit 3 ;;
` + restart + `)
	"$0" stop; "$0" start ;;
*)
	echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
`)
}

// stateSteps are a node's steps in its rank phase: its state dirs, then the
// L&B copy.
func (r RBNode) stateSteps(inv *inventory.Inventory, n, srv *inventory.Host, remoteAdmin steps.MySQLAdmin, serverPaths []string, opts Options) []installer.Step {
	rb := inv.Roles.RBNode
	cfg := inv.Roles.StateServer
	g := rb.PrimaryGroup(n.Name)
	copyMount := ""
	if rb.SharedFS == "sshfs" {
		copyMount = path.Join(SSHFSRawDir, rb.MountPoint)
	}
	// With GlusterFS the node's mount is the volume itself (the same for
	// every client, hard links visible): the copy is written and verified
	// through it, owners and symlink times included.
	gluster := rb.SharedFS == "glusterfs"
	var shares []string
	for _, d := range rb.StateDirs {
		shares = append(shares, ShareMountDir(rb, g, d))
	}
	var out []installer.Step
	for _, d := range rb.StateDirs {
		var accept []string
		for _, og := range slices.Sorted(maps.Keys(rb.Nodes[n.Name])) {
			if og != g {
				accept = append(accept, ShareMountDir(rb, og, d))
			}
		}
		sd := &steps.StateDir{
			Path:        d,
			Share:       ShareMountDir(rb, g, d),
			Mount:       rb.MountPoint,
			Node:        n.Name,
			ServerHost:  srv.Name,
			ServerPath:  path.Join(cfg.Export, inventory.ShareDir(g, d)),
			ServerPaths: serverPaths,
			Shares:      shares,
			Locals:      rb.StateDirs,
			StateFrom:   opts.StateFrom,
			KeepOwners:  true,
			NoSpecial:   rb.SharedFS == "sshfs",
			CopyMount:   copyMount,
			AcceptLinks: accept,
		}
		if gluster {
			sd.ServerHost, sd.ServerPath, sd.ServerPaths = "", "", nil
		}
		out = append(out, sd)
	}
	out = append(out, &LBCopy{
		Node:      n.Name,
		Server:    srv.Name,
		Local:     steps.MySQLAdmin{Socket: rb.LocalMySQLSocket, User: "root"},
		Remote:    remoteAdmin,
		Database:  cfg.MySQL.Database,
		StateFrom: opts.StateFrom,
	})
	return out
}

// sshHostKey is the state server's SSH host key ("type base64"), read by
// hostKeyStep on the server for the nodes' snfs known_hosts.
var sshHostKey = installer.NewValue[string]("ssh-host-key")

// hostKeyStep reads the state server's SSH host key for the nodes' snfs
// known_hosts (pinned: StrictHostKeyChecking=yes). Its probes also list the
// share folders Views on the server for the nodes' StateDir steps of later
// phases (steps.PrimeServerViews): in the batch the server runs anyway.
type hostKeyStep struct {
	Server string
	Path   string
	Views  []string
}

func (h *hostKeyStep) ID() string { return "ssh host key " + h.Path + " (pinned on the rb nodes)" }
func (h *hostKeyStep) Probes() []installer.Probe {
	if len(h.Views) > 0 {
		return []installer.Probe{installer.FileProbe(h.Path), steps.ServerViewsProbe(h.Views)}
	}
	return []installer.Probe{installer.FileProbe(h.Path)}
}
func (h *hostKeyStep) Produces() []installer.ValueRef {
	return []installer.ValueRef{sshHostKey.Of("")}
}
func (h *hostKeyStep) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	ff, err := env.Facts.File(h.Path)
	if err != nil {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, h.ID(), err))
	}
	f := strings.Fields(string(ff.Content))
	if !ff.Exists || len(f) < 2 {
		return installer.Failed(fmt.Errorf("%s: no SSH host key at %s (the rb nodes pin it)", env.Host, h.Path))
	}
	sshHostKey.Set(env, f[0]+" "+f[1])
	// Not listed (a share folder missing yet, say): each node's step reads
	// them itself, as it would without this.
	steps.PrimeServerViews(env, h.Views)
	return installer.OK(f[0] + " ..." + f[1][max(0, len(f[1])-12):])
}

// knownHostsStep writes the snfs user's known_hosts with the state server's
// host key read in phase 0.
type knownHostsStep struct {
	Path, Owner string
	Server      *inventory.Host
}

func (k *knownHostsStep) ID() string { return "file " + k.Path }
func (k *knownHostsStep) Probes() []installer.Probe {
	return []installer.Probe{installer.FileProbe(k.Path)}
}
func (k *knownHostsStep) Consumes() []installer.ValueRef {
	return []installer.ValueRef{sshHostKey.Of(k.Server.Name)}
}
func (k *knownHostsStep) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	v, ok := sshHostKey.Get(env, k.Server.Name)
	if !ok {
		return installer.Failed(fmt.Errorf("%s: %s: the host key of %s was not read (its phase failed or it is unreachable)", env.Host, k.ID(), k.Server.Name))
	}
	names := k.Server.Address
	if k.Server.Hostname != "" && k.Server.Hostname != k.Server.Address {
		names += "," + k.Server.Hostname
	}
	content := names + " " + v + "\n"
	return steps.File{Path: k.Path, Content: []byte(content), Mode: 0o644, Owner: k.Owner}.CheckApply(ctx, env, apply)
}

// optionalService manages a service that may not be installed on every
// node (the RB set varies: MyProxy may be elsewhere); required ones fail.
type optionalService struct {
	svc      steps.Service
	required bool
}

func (o *optionalService) ID() string                { return o.svc.ID() }
func (o *optionalService) Probes() []installer.Probe { return o.svc.Probes() }
func (o *optionalService) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if apply {
		// An init script written by an earlier step of this phase is not
		// in the batch gathered before it: look again.
		if st, err := env.Facts.Service(o.svc.Name); err == nil && !st.Installed {
			if err := env.Reprobe(ctx, o.svc.Probes()...); err != nil {
				return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, o.ID(), err))
			}
		}
	}
	if !o.required {
		if st, err := env.Facts.Service(o.svc.Name); err == nil && !st.Installed {
			return installer.OK("not installed on this node")
		}
	}
	return o.svc.CheckApply(ctx, env, apply)
}
