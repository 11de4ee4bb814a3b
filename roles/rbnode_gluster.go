package roles

import (
	"path"
	"strings"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

// glusterNodeSteps are the prepare steps of an rb node with shared_fs:
// glusterfs (a state pool): its TLS files (the bricks admit only the CNs of
// the inventory's hosts), the GlusterFS FUSE mount of the pool's volume at
// mount_point and its fstab line, and the group folders on it. One FUSE
// layer does what sshfs needed two for: GlusterFS keeps owners, modes,
// links, hard links and times itself, and its FUSE client mounts with
// default_permissions (permission checks on the node: a 0600 proxy is its
// owner's and root's only) and allow_other (the services are not root).
// nosuid, nodev: nothing on the share runs with privileges on the node.
// backup-volfile-servers: the mount fetches its volume file from the next
// member when the first is down (the data path itself goes to every brick).
func glusterNodeSteps(inv *inventory.Inventory, n *inventory.Host, opts Options) ([]installer.Step, error) {
	rb := inv.Roles.RBNode
	out, err := glusterTLSSteps(inv, n, opts)
	if err != nil {
		return nil, err
	}
	out = append(out,
		&steps.Exec{
			Name:  "glusterfs-client installed",
			Probe: "command -v mount.glusterfs >/dev/null 2>&1 || test -x /sbin/mount.glusterfs || test -x /usr/sbin/mount.glusterfs",
			Check: func(r installer.ProbeResult) (bool, string) {
				return r.ExitCode == 0, "mount.glusterfs missing: install the package glusterfs-client (Debian; EL: glusterfs-fuse)"
			},
		},
		// On a node that used a single server's sshfs share, this replaces
		// the bindfs view on the mount point (and its fstab line).
		GlusterMount(inv),
		// ...and the raw sshfs mount under it goes, with its fstab line.
		&steps.Mount{Target: path.Join(SSHFSRawDir, rb.MountPoint), FSType: "fuse.sshfs", Fstab: false, Mounted: false},
	)
	// The group folders, root's, as the single state server's role makes
	// them in its export. The state folders below them are made by the
	// state-dir steps (a single server's export moved into the volume
	// brings its own: an empty one made here first would stand in the way).
	for _, g := range rb.GroupNames() {
		out = append(out, &steps.Dir{Path: path.Join(rb.MountPoint, g), Mode: 0o755, Owner: "root", Group: "root", CreateOnly: true})
	}
	return out, nil
}

// GlusterMount is an rb node's mount of the pool's volume.
func GlusterMount(inv *inventory.Inventory) *steps.Mount {
	p := inv.Roles.StateServer.Pool
	members := inventory.PoolMembers(inv)
	var backups []string
	for _, m := range members[1:] {
		backups = append(backups, GlusterServer(m))
	}
	return &steps.Mount{
		Source:  GlusterServer(members[0]) + ":/" + p.Volume,
		Target:  inv.Roles.RBNode.MountPoint,
		FSType:  "glusterfs",
		Options: []string{"_netdev", "nosuid", "nodev", "backup-volfile-servers=" + strings.Join(backups, ":")},
		Fstab:   true,
		Mounted: true,
		// Mounted from another member (the first one was replaced in the
		// inventory): the same volume, left mounted.
		SourceSuffix: ":/" + p.Volume,
	}
}

// hagdStoppedForPool is an rb node's first step when the site turns from a
// single state server into a pool (phase "state pool: members", before the
// export moves and the single server's MariaDB restarts as the Galera
// seed): while the node still has the single server's share mounted
// (sshfs, or its bindfs view) and hagd runs, hagd is stopped. Stopping it
// stops the RB services it runs and removes the group's service IP (hagd
// does both before it exits), so the services no longer hold the old
// mount (the prepare phase replaces it), nothing writes into an export
// about to be fenced and moved, and no node is master while the lease's
// database restarts: for the switch the group has no master at all, never
// two. The HA phase starts hagd again with the lease at the pool's service
// IP. A node already on the volume, or with nothing mounted, is left alone:
// this never stops the service of a running pool.
func hagdStoppedForPool(inv *inventory.Inventory) steps.Exec {
	q := installer.ShellQuote
	mp := inv.Roles.RBNode.MountPoint
	return steps.Exec{
		Name: "hagd stopped for the switch to the state pool",
		Probe: `awk -v m=` + q(mp) + ` '$2 == m {t = $3} END {print "fs=" t}' /proc/mounts
[ -x ` + q(HAGDInitScript) + ` ] && ` + q(HAGDInitScript) + ` status >/dev/null 2>&1 && echo hagd=running
exit 0`,
		Check: func(r installer.ProbeResult) (bool, string) {
			return checkHAGDStoppedForPool(string(r.Stdout), mp)
		},
		Apply: q(HAGDInitScript) + ` stop >&2 || exit 1
` + q(HAGDInitScript) + ` status >/dev/null 2>&1 && { echo 'hagd still runs after stop' >&2; exit 1; }
exit 0`,
	}
}

// checkHAGDStoppedForPool reads hagdStoppedForPool's probe: ok unless the
// mount point still holds a single server's share while hagd runs.
func checkHAGDStoppedForPool(out, mp string) (bool, string) {
	var fs string
	running := false
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "fs="); ok {
			fs = v
		} else if l == "hagd=running" {
			running = true
		}
	}
	switch {
	case fs == "" || fs == "fuse.glusterfs":
		return true, "no single-server share mounted on " + mp + ": nothing to switch"
	case !running:
		return true, "hagd not running while " + mp + " (" + fs + ") is switched to the pool's volume; the HA phase starts it"
	}
	return false, "hagd runs its groups on the single server's share (" + mp + ": " + fs + "): stopped for the switch to the pool's volume (its services and service IP with it), started again by the HA phase"
}
