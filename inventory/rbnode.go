package inventory

import (
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/gridha/gridha/hagd"
)

// RBNode is the settings of the rb-node role (roles: rb-node:): a Resource
// Broker service provider whose state lives on the state server (slides 4-8,
// 12-13).
//
//	rb-node:
//	  state_server: state1
//	  groups:                            # one HA group per RB service, with its service IP
//	    rb-a: {service_ip: 198.18.1.100/24, iface: eth0}
//	  nodes:                             # each rb node's rank in the groups it serves
//	    rb1: {rb-a: 100}
//	    rb2: {rb-a: 50}
//	  hagd:
//	    iface: [eth0]
type RBNode struct {
	// StateServer is the inventory name of the host with role state-server.
	StateServer string `yaml:"state_server"`
	// SharedFS is the shared-storage driver: "sshfs" (default; modern
	// form of the notes' NFS over SSH), "snfs" (sec_rpc, as the notes) or
	// "glusterfs" (the state pool's replicated volume; default with a pool).
	SharedFS string `yaml:"shared_fs"`
	// MountPoint is where the state server's export is mounted on a node.
	MountPoint string `yaml:"mount_point"`
	// StateDirs are the RB state folders moved to shared storage (slide 8).
	StateDirs []string `yaml:"state_dirs"`
	// Services are the RB services taken out of boot; hagd starts them.
	Services []string `yaml:"services"`
	// CronRemove are cron files removed so nothing restarts the services.
	CronRemove []string `yaml:"cron_remove"`
	// SysconfigEDG is the file holding EDG_WL_BKSERVERD_ADDOPTS.
	SysconfigEDG string `yaml:"sysconfig_edg"`
	// LocalMySQLSocket is the node's own MySQL, read once to copy an
	// existing L&B database to the state server.
	LocalMySQLSocket string `yaml:"local_mysql_socket"`
	// HAGD is the HA group daemon's configuration (slide 13).
	HAGD HAGDSettings `yaml:"hagd"`
	// Groups are the HA groups: one service each, with its service IP.
	Groups map[string]HAGroup `yaml:"groups"`
	// Nodes gives each rb node its rank in every group it serves (slide 6:
	// a backup may serve several groups). The group where a node has its
	// highest rank is its own: its local state goes to that group's share.
	Nodes map[string]map[string]int `yaml:"nodes"`
}

// HAGDSettings are hagd.conf's parameters (slide 13) plus the intervals.
// Their defaults are hagd's own (hagd.DefaultConfig), filled by SetDefaults,
// so the inventory, the rendered hagd.conf and the daemon cannot disagree.
type HAGDSettings struct {
	Port    int           `yaml:"port"`     // UDP port of hagd's broadcasts
	KeyFile SecretRef     `yaml:"key_file"` // hagd's shared key (the same on every node; generated when unset)
	Timeout time.Duration `yaml:"timeout"`  // time the service script's start and status may take
	Debug   *int          `yaml:"debug"`    // hagd's log level, 0 errors to 5 every packet
	Iface   []string      `yaml:"iface"`    // interfaces to broadcast on (unset: all up non-loopback IPv4)
	DT1     time.Duration `yaml:"dt1"`      // ΔT1: a node not heard this long is dead
	DT2     time.Duration `yaml:"dt2"`      // ΔT2: takeover broadcast before start
	// Script is the service script hagd calls: SCRIPT start|stop|status GROUP.
	Script string `yaml:"script"`
	// Config is where hagd.conf goes (the notes: /opt/lcg/etc/hagd.conf).
	Config string `yaml:"config"`
	// Tuning beyond slide 13 (see hagd/README.md).

	Heartbeat      time.Duration `yaml:"heartbeat"`       // broadcast interval
	StopTimeout    time.Duration `yaml:"stop_timeout"`    // time the service script's stop may take (unset: timeout, at most 5s)
	StatusInterval time.Duration `yaml:"status_interval"` // how often the master runs status
	Backoff        time.Duration `yaml:"backoff"`         // after a failure or giveup, not a candidate this long
	// Lease is the split-brain guard: "mysql" (default: a row in the state
	// server's L&B database, with the L&B account) or "none" (the 2005
	// behaviour: two masters during a partition).
	Lease        string        `yaml:"lease"`
	LeaseTTL     time.Duration `yaml:"lease_ttl"`     // lease length (unset: hagd derives it, dt1 + dt2 or more)
	LeaseRenew   time.Duration `yaml:"lease_renew"`   // lease renewal interval
	LeaseTimeout time.Duration `yaml:"lease_timeout"` // time one lease operation may take
	// Preempt says whether a returning node of higher rank takes its group
	// back from the master, without overlap.
	Preempt *bool `yaml:"preempt"`
}

// HAGroup is one HA group: the service IP its master brings up.
type HAGroup struct {
	// ServiceIP is the address with prefix length, e.g. 198.18.1.100/24.
	ServiceIP string `yaml:"service_ip"`
	// Iface is the interface the service IP goes on.
	Iface string `yaml:"iface"`
}

// DefaultStateDirs are slide 8's folders.
var DefaultStateDirs = []string{"/var/edgwl", "/var/myproxy", "/opt/edg/var/spool/edg-wl-renewd", "/opt/condor/var/condor"}

// DefaultRBServices are the gLite RB services (edg-wl-* init scripts).
var DefaultRBServices = []string{"edg-wl-ns", "edg-wl-wm", "edg-wl-jc", "edg-wl-lm", "edg-wl-proxyrenewal", "edg-wl-bkserverd", "edg-wl-locallogger", "myproxy", "condor"}

// SetDefaults fills the notes' values.
func (r *RBNode) SetDefaults() {
	// With a state pool the default is glusterfs: Validate, the first
	// place that sees the whole inventory, sets it there.
	def(&r.SharedFS, "sshfs")
	def(&r.MountPoint, "/mnt/rb-state")
	if r.StateDirs == nil {
		r.StateDirs = append([]string(nil), DefaultStateDirs...)
	}
	if r.Services == nil {
		r.Services = append([]string(nil), DefaultRBServices...)
	}
	if r.CronRemove == nil {
		r.CronRemove = []string{"/etc/cron.d/edg-wl-check-daemons"}
	}
	def(&r.SysconfigEDG, "/etc/sysconfig/edg")
	def(&r.LocalMySQLSocket, "/run/mysqld/mysqld.sock")
	r.HAGD.SetDefaults()
}

// SetDefaults fills hagd's own defaults (hagd.DefaultConfig) and the
// stop_timeout rule (hagd.DefaultStopTimeoutFor), so that the help and the
// README show them and hagd.conf is rendered from the same values.
func (h *HAGDSettings) SetDefaults() {
	d := hagd.DefaultConfig()
	dur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if h.Port == 0 {
		h.Port = d.Port
	}
	dur(&h.Timeout, d.Timeout)
	dur(&h.StopTimeout, hagd.DefaultStopTimeoutFor(h.Timeout))
	if h.Debug == nil {
		h.Debug = &d.Debug
	}
	dur(&h.DT1, d.DT1)
	dur(&h.DT2, d.DT2)
	dur(&h.Heartbeat, d.Heartbeat)
	dur(&h.StatusInterval, d.StatusInterval)
	dur(&h.Backoff, d.Backoff)
	def(&h.Lease, d.Lease)
	dur(&h.LeaseRenew, d.LeaseRenew)
	dur(&h.LeaseTimeout, d.LeaseTimeout)
	if h.Preempt == nil {
		h.Preempt = &d.Preempt
	}
	def(&h.Script, "/opt/lcg/sbin/lcg-ha-service")
	def(&h.Config, hagd.DefaultConfigPath)
}

// Validate checks the rb-node settings.
func (r *RBNode) Validate(c *Checker) {
	if inv := c.Inventory(); inv != nil && IsPool(inv) && !c.Has("shared_fs") {
		r.SharedFS = "glusterfs"
	}
	switch r.SharedFS {
	case "sshfs", "snfs", "glusterfs":
	default:
		c.Errorf("shared_fs", `must be "sshfs", "snfs" or "glusterfs", got %q`, r.SharedFS)
	}
	if inv := c.Inventory(); inv != nil {
		pool := IsPool(inv)
		switch {
		case r.SharedFS == "glusterfs" && !pool:
			c.Errorf("shared_fs", "glusterfs needs a state pool: give the state-server role to 3 hosts (or 2 + arbiter)")
		case pool && (r.SharedFS == "sshfs" || r.SharedFS == "snfs") && c.Has("shared_fs"):
			c.Errorf("shared_fs", "the state servers form a pool (%d hosts): its files are served by GlusterFS, set shared_fs: glusterfs", len(PoolMembers(inv)))
		}
	}
	// mount_point and state_dirs go unquoted into the service script's
	// space-separated lists (/etc/sysconfig/lcg-ha).
	if !path.IsAbs(r.MountPoint) || path.Clean(r.MountPoint) != r.MountPoint || r.MountPoint == "/" {
		c.Errorf("mount_point", "must be a clean absolute path other than /, got %q", r.MountPoint)
	} else if !shellWord(r.MountPoint) {
		c.Errorf("mount_point", "%q cannot go into the service script (no spaces or shell characters)", r.MountPoint)
	}
	seen := map[string]string{}
	for i, d := range r.StateDirs {
		if !path.IsAbs(d) || path.Clean(d) != d || d == "/" {
			c.Errorf(fmt.Sprintf("state_dirs[%d]", i), "must be a clean absolute path other than /, got %q", d)
			continue
		}
		if !shellWord(d) {
			c.Errorf(fmt.Sprintf("state_dirs[%d]", i), "%q cannot go into the service script's list (no spaces or shell characters)", d)
		}
		if strings.HasPrefix(d+"/", r.MountPoint+"/") || strings.HasPrefix(r.MountPoint+"/", d+"/") {
			c.Errorf(fmt.Sprintf("state_dirs[%d]", i), "%s overlaps the mount point %s", d, r.MountPoint)
		}
		b := path.Base(d)
		if other, dup := seen[b]; dup {
			c.Errorf(fmt.Sprintf("state_dirs[%d]", i), "%s and %s would share the folder %q on the state server", other, d, b)
		}
		seen[b] = d
	}
	for i, s := range r.Services {
		if s == "" || strings.ContainsAny(s, " /'\"$`\\") {
			c.Errorf(fmt.Sprintf("services[%d]", i), "not a service name: %q", s)
		}
	}
	for i, f := range r.CronRemove {
		if !path.IsAbs(f) {
			c.Errorf(fmt.Sprintf("cron_remove[%d]", i), "must be an absolute path, got %q", f)
		}
	}
	r.HAGD.validate(c.Sub("hagd"), r.Groups)
	for name, g := range r.Groups {
		if !groupNameOK(name) {
			c.Errorf("groups."+name, "group names are letters, digits, - and _, got %q", name)
		}
		// hagd adds the service IP itself (service_ip = group:addr@iface),
		// IPv4 only; the service script's HA_GROUPS list holds it too.
		if p, err := netip.ParsePrefix(g.ServiceIP); err != nil {
			c.Errorf("groups."+name+".service_ip", "must be an address with prefix length like 198.18.1.100/24: %v", err)
		} else if !p.Addr().Is4() {
			c.Errorf("groups."+name+".service_ip", "must be an IPv4 address with prefix length (hagd moves IPv4 service addresses), got %q", g.ServiceIP)
		}
		if g.Iface == "" {
			c.Errorf("groups."+name+".iface", "the interface for the service IP is required")
		} else if !ifaceNameOK(g.Iface) {
			c.Errorf("groups."+name+".iface", "not an interface name: %q (1-15 letters, digits, ., _ or -)", g.Iface)
		}
	}
	inv := c.Inventory()
	if inv != nil {
		players := inv.HostsWithRole("rb-node")
		if len(players) > 0 && r.StateServer == "" && len(PoolMembers(inv)) == 0 {
			c.Errorf("state_server", "rb-node needs a state server: give a host the role state-server")
		}
		for _, h := range players {
			// Every node runs hagd, for at least one group; its inventory
			// name is its hagd node ID.
			pos := h.Pos
			if c.Has("nodes") {
				pos = c.Pos("nodes")
			}
			if len(r.Nodes[h.Name]) == 0 {
				c.ErrorfAt(pos, "nodes", "rb-node %s has no rank in any group: add it here (hagd needs at least one group)", h.Name)
			}
			if !hagd.NodeIDOK(h.Name) {
				c.ErrorfAt(h.Pos, "nodes", "host name %q cannot be hagd's node ID (letters, digits, . _ : -, at most 64)", h.Name)
			}
		}
	}
	if inv != nil && r.StateServer != "" {
		if h := inv.Host(r.StateServer); h == nil {
			c.Errorf("state_server", "no host %q in the inventory%s", r.StateServer, suggestHost(inv, r.StateServer))
		} else if !h.HasRole("state-server") {
			c.Errorf("state_server", "host %q does not have role state-server", r.StateServer)
		}
	}
	for node, ranks := range r.Nodes {
		if inv != nil {
			if h := inv.Host(node); h == nil {
				c.Errorf("nodes."+node, "no host %q in the inventory%s", node, suggestHost(inv, node))
			} else if !h.HasRole("rb-node") {
				c.Errorf("nodes."+node, "host %q does not have role rb-node", node)
			}
		}
		if len(ranks) == 0 {
			c.Errorf("nodes."+node, "a node needs a rank in at least one group")
		}
		for g, rank := range ranks {
			if _, ok := r.Groups[g]; !ok {
				c.Errorf("nodes."+node+"."+g, "no such group (groups: %s)", strings.Join(sortedKeys(r.Groups), ", "))
			}
			if rank < 1 || rank > 255 {
				c.Errorf("nodes."+node+"."+g, "rank must be 1-255, got %d", rank)
			}
		}
	}
}

// validate checks the hagd settings (c is at roles.rb-node.hagd): each on
// its own, then together by hagd's own timing rules, with the service IPs
// of groups (hagd's lease must then also bound the address's lifetime).
func (h *HAGDSettings) validate(c *Checker, groups map[string]HAGroup) {
	if h.Port < 1 || h.Port > 65535 {
		c.Errorf("port", "must be 1-65535, got %d", h.Port)
	}
	if h.Debug != nil && (*h.Debug < 0 || *h.Debug > 5) {
		c.Errorf("debug", "must be 0-5 (slide 13), got %d", *h.Debug)
	}
	if h.Lease != "mysql" && h.Lease != "none" {
		c.Errorf("lease", `must be "mysql" or "none", got %q`, h.Lease)
	}
	if c.Has("dt1") && c.Has("dt2") && h.DT2 >= h.DT1 {
		c.Errorf("dt2", "ΔT2 (%s) must be shorter than ΔT1 (%s)", h.DT2, h.DT1)
	}
	for i, name := range h.Iface {
		if !ifaceNameOK(name) {
			c.Errorf(fmt.Sprintf("iface[%d]", i), "not an interface name: %q (1-15 letters, digits, ., _ or -)", name)
		}
	}
	// script and config go into hagd.conf and the service script's
	// configuration, unquoted.
	for _, p := range []struct{ key, val string }{{"script", h.Script}, {"config", h.Config}} {
		if !path.IsAbs(p.val) || path.Clean(p.val) != p.val || !shellWord(p.val) {
			c.Errorf(p.key, "must be a clean absolute path without spaces or shell characters, got %q", p.val)
		}
	}
	bad := false
	for _, p := range []struct {
		key string
		d   time.Duration
	}{{"timeout", h.Timeout}, {"stop_timeout", h.StopTimeout}, {"dt1", h.DT1}, {"dt2", h.DT2}, {"heartbeat", h.Heartbeat},
		{"status_interval", h.StatusInterval}, {"backoff", h.Backoff}, {"lease_ttl", h.LeaseTTL}, {"lease_renew", h.LeaseRenew}, {"lease_timeout", h.LeaseTimeout}} {
		if p.d < 0 || p.d == 0 && p.key != "lease_ttl" {
			c.Errorf(p.key, "must be more than 0, got %s", p.d)
			bad = true
		}
	}
	if bad {
		return
	}
	cfg := hagd.Config{Port: h.Port, Timeout: h.Timeout, StopTimeout: h.StopTimeout, Debug: -1,
		DT1: h.DT1, DT2: h.DT2, Heartbeat: h.Heartbeat, StatusInterval: h.StatusInterval, Backoff: h.Backoff,
		Lease: h.Lease, LeaseTTL: h.LeaseTTL, LeaseRenew: h.LeaseRenew, LeaseTimeout: h.LeaseTimeout}
	for name, g := range groups {
		if p, err := netip.ParsePrefix(g.ServiceIP); err == nil {
			if cfg.ServiceIPs == nil {
				cfg.ServiceIPs = map[string]hagd.ServiceIP{}
			}
			cfg.ServiceIPs[name] = hagd.ServiceIP{Prefix: p, Dev: g.Iface}
		}
	}
	cfg.FillDefaults()
	for _, p := range cfg.TimingProblems() {
		c.Errorf(p.Key, "%s (hagd would not start)", p.Msg)
	}
}

// shellWord accepts values that go unquoted into a space-separated shell
// list of /etc/sysconfig/lcg-ha.
func shellWord(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\n'\"$`\\;&|<>*?[](){}=@#~")
}

// ifaceNameOK accepts a Linux interface name that hagd.conf and the
// service script can carry: 1-15 characters (IFNAMSIZ), letters, digits,
// '.', '_' and '-'.
func ifaceNameOK(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// PrimaryGroup is the group in which node has its highest rank (ties: the
// first by name): its own local state goes to that group's share.
func (r *RBNode) PrimaryGroup(node string) string {
	best, bestRank := "", -1
	for _, g := range sortedKeys(r.Nodes[node]) {
		if rank := r.Nodes[node][g]; rank > bestRank {
			best, bestRank = g, rank
		}
	}
	return best
}

// GroupNames lists the HA groups, sorted.
func (r *RBNode) GroupNames() []string { return sortedKeys(r.Groups) }

// ShareDir is the folder, relative to the export or the mount point, that
// holds state dir dir of group: "<group>/<basename of dir>".
func ShareDir(group, dir string) string { return group + "/" + path.Base(dir) }

func groupNameOK(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
