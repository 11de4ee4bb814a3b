package testbed

import (
	"context"
	"fmt"
	"strings"
)

// PoolBed is the bed of the state pool's end-to-end tests and benchmark
// (issue 13, slide 5): three file/DB servers, two rb nodes forming one hagd
// group, and a user's box outside the group that submits jobs through the
// group's service IP. The same bed holds both layouts: fs1 alone is the
// single state server of slide 4 (sshfs), fs1-fs3 the pool (GlusterFS,
// Galera), so a test can convert one into the other.
type PoolBed struct {
	*Bed
	Members []*Host // fs1, fs2, fs3: the state servers
	Nodes   []*Host // rb1, rb2: the rb nodes, one hagd group (rb1 ranked first)
	Client  *Host   // ui: the user's box
	// RBServiceIP is the rb group's service IP (SpareAddr(0)), DBServiceIP
	// the pool's database service IP (SpareAddr(1)); both without prefix.
	RBServiceIP, DBServiceIP string
}

// PoolHostNames are the hosts of a PoolBed, in bed order.
func PoolHostNames() []string { return []string{"fs1", "fs2", "fs3", "rb1", "rb2", "ui"} }

// UpPool brings up a PoolBed (opts.Hosts is ignored). Down tears it down.
func UpPool(ctx context.Context, opts Options) (*PoolBed, error) {
	opts.Hosts = PoolHostNames()
	b, err := Up(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &PoolBed{
		Bed:         b,
		Members:     []*Host{b.Host("fs1"), b.Host("fs2"), b.Host("fs3")},
		Nodes:       []*Host{b.Host("rb1"), b.Host("rb2")},
		Client:      b.Host("ui"),
		RBServiceIP: b.SpareAddr(0),
		DBServiceIP: b.SpareAddr(1),
	}, nil
}

// PoolLayout says what PoolBed.Inventory writes.
type PoolLayout struct {
	// Members is how many of fs1-fs3 have role state-server: 1 (the
	// single server, sshfs) or 3 (the pool, GlusterFS and Galera).
	Members int
	// StateServer is the rb nodes' state_server (default fs1).
	StateServer string
	// RBNode is YAML appended under roles.rb-node (4 spaces in), e.g.
	// services, state_dirs, hagd timings.
	RBNode string
	// Pool is YAML appended under roles.state-server.pool (6 spaces in).
	Pool string
	// LBPasswordFile is the L&B password file, relative to the inventory.
	LBPasswordFile string
}

// Inventory is the body of the inventory for layout (hosts: and roles:,
// without defaults:; see Bed.WriteInventory): every host of the bed, rb1
// ranked 100 and rb2 50 in group "rb" on RBServiceIP, the export in /srv
// (private to each host), and with 3 members the pool's service IP.
func (p *PoolBed) Inventory(layout PoolLayout) (string, error) {
	if layout.Members != 1 && layout.Members != 3 {
		return "", fmt.Errorf("testbed: pool layout: %d state servers, want 1 or 3", layout.Members)
	}
	if layout.StateServer == "" {
		layout.StateServer = "fs1"
	}
	if layout.LBPasswordFile == "" {
		layout.LBPasswordFile = "lb-password"
	}
	roles := map[string][]string{"rb1": {"rb-node"}, "rb2": {"rb-node"}}
	for _, m := range p.Members[:layout.Members] {
		roles[m.Name] = []string{"state-server"}
	}
	var sb strings.Builder
	sb.WriteString(p.HostsYAML(roles))
	fmt.Fprintf(&sb, `roles:
  state-server:
    export: /srv/rb-state
    mysql:
      password_file: %s
`, layout.LBPasswordFile)
	if layout.Members == 3 {
		fmt.Fprintf(&sb, "    pool:\n      service_ip: %s/24\n      iface: eth0\n%s", p.DBServiceIP, layout.Pool)
	}
	fmt.Fprintf(&sb, `  rb-node:
    state_server: %s
%s    groups:
      rb: {service_ip: %s/24, iface: eth0}
    nodes:
      rb1: {rb: 100}
      rb2: {rb: 50}
`, layout.StateServer, layout.RBNode, p.RBServiceIP)
	return sb.String(), nil
}
