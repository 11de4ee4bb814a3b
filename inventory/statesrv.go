package inventory

import (
	"github.com/gridha/gridha/internal/lazyre"
	"net/netip"
	"path"
	"time"
)

// StateServer is the settings of the state-server role (roles: state-server:),
// the file/DB server of the Resource Broker HA layout (slides 4, 7, 12): it
// exports the shared state folder and hosts the L&B database.
//
//	state-server:
//	  mysql:
//	    password_file: secrets/lbserver20.pw   # or env:LB_PASSWORD; never inline
type StateServer struct {
	// Export is the folder on the state server holding every HA group's
	// state (one subfolder per group, one per state dir below it).
	Export string `yaml:"export"`
	// SnfsUser is the service user rb nodes log in as (home /etc/snfs).
	SnfsUser string `yaml:"snfs_user"`
	// SnfsHome is that user's home (the notes: /etc/snfs).
	SnfsHome string `yaml:"snfs_home"`
	// MySQL is the L&B database server.
	MySQL StateMySQL `yaml:"mysql"`
	// Pool is the state pool of slide 5, used when the state-server role is on
	// more than one host: a MariaDB Galera cluster for the L&B database and
	// the hagd leases, and a GlusterFS replicated volume for the state dirs.
	Pool StatePool `yaml:"pool"`
}

// StatePool is the pool of file/DB servers (slide 5, "can survive a failure
// of any box"). Its members are the hosts with role state-server, in file
// order (the first one is the preferred master of the DB service IP).
type StatePool struct {
	// ServiceIP is the pool's database address with prefix length (e.g.
	// 198.18.1.101/24), brought up by hagd on one pool member at a time;
	// required for a pool.
	ServiceIP string `yaml:"service_ip"`
	// Iface is the interface the pool's service IP goes on; required for a pool.
	Iface string `yaml:"iface"`
	// Name is the DNS name of the service IP, written into the rb nodes'
	// EDG_WL_BKSERVERD_ADDOPTS (default: the service IP's address).
	Name string `yaml:"name"`
	// Arbiter is the inventory name of the pool member that keeps only
	// quorum (GlusterFS arbiter brick, Galera arbitrator): 2 + arbiter.
	Arbiter string `yaml:"arbiter"`
	// Volume is the GlusterFS volume holding the export.
	Volume string `yaml:"volume"`
	// BrickDir is the brick folder on each pool member.
	BrickDir string `yaml:"brick_dir"`
	// PingTimeout is how long a dead brick stalls writers (GlusterFS
	// network.ping-timeout).
	PingTimeout time.Duration `yaml:"ping_timeout"`
	// CertDays is the validity of the TLS certificates gridha issues.
	CertDays int `yaml:"cert_days"`
	// ClusterName is the Galera cluster name (wsrep_cluster_name).
	ClusterName string `yaml:"cluster_name"`
	// SSTPasswordFile holds the password of Galera's state-transfer account
	// (generated into secrets_dir when unset).
	SSTPasswordFile SecretRef `yaml:"sst_password_file"`
	// HAGroup is the name of the hagd group that moves the service IP.
	HAGroup string `yaml:"ha_group"`
}

// StateMySQL is the L&B database on the state server.
type StateMySQL struct {
	// Database is the L&B database (the notes: lbserver20).
	Database string `yaml:"database"`
	// User is the L&B user the rb nodes' bkserverd logs in as.
	User string `yaml:"user"`
	// PasswordFile holds the L&B user's password (required).
	PasswordFile SecretRef `yaml:"password_file"`
	// AdminUser logs in to administer MySQL; with no admin_password_file it
	// authenticates over the unix socket (unix_socket plugin, as root).
	AdminUser string `yaml:"admin_user"`
	// AdminPasswordFile holds admin_user's password (unset: unix socket
	// authentication).
	AdminPasswordFile SecretRef `yaml:"admin_password_file"`
	// Socket is the unix socket of the state server's MySQL.
	Socket string `yaml:"socket"`
	// BindAddress is where MySQL listens; default: the state server's
	// address, so that rb nodes reach it.
	BindAddress string `yaml:"bind_address"`
	// Port is MySQL's TCP port.
	Port int `yaml:"port"`
	// Config is the MariaDB/MySQL option file gridha owns.
	Config string `yaml:"config"`
	// Service is the init service restarted when MySQL does not listen
	// where it should.
	Service string `yaml:"service"`
}

// SetDefaults fills the notes' values.
func (s *StateServer) SetDefaults() {
	def(&s.Export, "/export/rb-state")
	def(&s.SnfsUser, "snfs")
	def(&s.SnfsHome, "/etc/snfs")
	def(&s.MySQL.Database, "lbserver20")
	def(&s.MySQL.User, "lbserver")
	def(&s.MySQL.AdminUser, "root")
	def(&s.MySQL.Socket, "/run/mysqld/mysqld.sock")
	def(&s.MySQL.Config, "/etc/mysql/mariadb.conf.d/60-gridha.cnf")
	def(&s.MySQL.Service, "mariadb")
	def(&s.Pool.Volume, "rbstate")
	def(&s.Pool.BrickDir, "/srv/gridha/bricks")
	def(&s.Pool.ClusterName, "gridha-lb")
	def(&s.Pool.HAGroup, "statedb")
	if s.Pool.PingTimeout == 0 {
		s.Pool.PingTimeout = 5 * time.Second
	}
	if s.Pool.CertDays == 0 {
		s.Pool.CertDays = 825
	}
	if s.MySQL.Port == 0 {
		s.MySQL.Port = 3306
	}
}

var (
	sqlNameRE  = lazyre.New(`^[A-Za-z0-9_]{1,64}$`)
	unixNameRE = lazyre.New(`^[a-z_][a-z0-9_-]{0,31}$`)
	// GlusterFS volume names and hagd group names: no shell or path characters.
	glusterNameRE = lazyre.New(`^[A-Za-z0-9_-]{1,64}$`)
)

// Validate checks names that end up in SQL, paths and user databases.
func (s *StateServer) Validate(c *Checker) {
	if !path.IsAbs(s.Export) || path.Clean(s.Export) != s.Export || s.Export == "/" {
		c.Errorf("export", "must be a clean absolute path other than /, got %q", s.Export)
	} else if path.Dir(s.Export) == "/" {
		c.Errorf("export", "needs a folder of its own below / (gridha makes the export's parent root-only), e.g. /export%s, got %q", s.Export, s.Export)
	}
	if !unixNameRE().MatchString(s.SnfsUser) {
		c.Errorf("snfs_user", "not a valid user name: %q", s.SnfsUser)
	}
	if !path.IsAbs(s.SnfsHome) {
		c.Errorf("snfs_home", "must be an absolute path, got %q", s.SnfsHome)
	}
	if !sqlNameRE().MatchString(s.MySQL.Database) {
		c.Errorf("mysql.database", "must be 1-64 letters, digits or _, got %q", s.MySQL.Database)
	}
	if !sqlNameRE().MatchString(s.MySQL.User) || len(s.MySQL.User) > 32 {
		c.Errorf("mysql.user", "must be 1-32 letters, digits or _, got %q", s.MySQL.User)
	}
	if !sqlNameRE().MatchString(s.MySQL.AdminUser) {
		c.Errorf("mysql.admin_user", "must be letters, digits or _, got %q", s.MySQL.AdminUser)
	}
	if s.MySQL.Port < 1 || s.MySQL.Port > 65535 {
		c.Errorf("mysql.port", "must be 1-65535, got %d", s.MySQL.Port)
	}
	if !path.IsAbs(s.MySQL.Socket) {
		c.Errorf("mysql.socket", "must be an absolute path, got %q", s.MySQL.Socket)
	}
	// The rb nodes' hagd reaches MySQL there (its mysql_host).
	if b := s.MySQL.BindAddress; b != "" && !isIPOrDNSName(b) {
		c.Errorf("mysql.bind_address", "must be an IP address or a DNS name, got %q", b)
	}
	if inv := c.Inventory(); inv != nil && len(inv.HostsWithRole("state-server")) > 0 && !s.MySQL.PasswordFile.IsSet() {
		pos := c.Pos("mysql.password_file")
		if !c.Has("") {
			pos = inv.HostsWithRole("state-server")[0].Pos // no roles.state-server section: at the host
		}
		c.ErrorfAt(pos, "mysql.password_file", "required: the L&B user's password, a file or env:NAME (never inline)")
	}
	// Pool has its own Validate: the decoder's walk calls it (calling it
	// here too reported every pool error twice).
}

// PoolMembers lists the hosts of the state pool (role state-server), in file
// order; fewer than two means no pool (the single state server of slide 4).
func PoolMembers(inv *Inventory) []*Host { return inv.HostsWithRole("state-server") }

// IsPool says whether the inventory's state servers form a pool.
func IsPool(inv *Inventory) bool { return len(PoolMembers(inv)) > 1 }

// Validate checks the pool settings; the service IP and interface are
// required only when the state-server role is on more than one host.
func (p *StatePool) Validate(c *Checker) {
	if p.PingTimeout < time.Second || p.PingTimeout > 42*time.Second {
		c.Errorf("ping_timeout", "must be 1s-42s, got %s", p.PingTimeout)
	}
	if p.CertDays < 1 || p.CertDays > 3650 {
		c.Errorf("cert_days", "must be 1-3650, got %d", p.CertDays)
	}
	if !glusterNameRE().MatchString(p.ClusterName) {
		c.Errorf("cluster_name", "must be 1-64 letters, digits, _ or -, got %q", p.ClusterName)
	}
	if !glusterNameRE().MatchString(p.Volume) {
		c.Errorf("volume", "must be 1-64 letters, digits, _ or -, got %q", p.Volume)
	}
	if !glusterNameRE().MatchString(p.HAGroup) {
		c.Errorf("ha_group", "must be 1-64 letters, digits, _ or -, got %q", p.HAGroup)
	}
	if !path.IsAbs(p.BrickDir) || path.Clean(p.BrickDir) != p.BrickDir || p.BrickDir == "/" {
		c.Errorf("brick_dir", "must be a clean absolute path other than /, got %q", p.BrickDir)
	}
	if p.ServiceIP != "" {
		if _, err := netip.ParsePrefix(p.ServiceIP); err != nil {
			c.Errorf("service_ip", "must be an address with prefix length, e.g. 198.18.1.101/24, got %q", p.ServiceIP)
		}
	}
	inv := c.Inventory()
	if inv == nil {
		return
	}
	members := PoolMembers(inv)
	if len(members) < 2 {
		return
	}
	if p.ServiceIP == "" {
		c.Errorf("service_ip", "required: %d hosts have role state-server (a pool); the rb nodes reach its database there", len(members))
	}
	if p.Iface == "" {
		c.Errorf("iface", "required: the interface for the pool's service IP")
	}
	if len(members) == 2 && p.Arbiter == "" {
		c.Errorf("arbiter", "a pool of 2 hosts cannot keep quorum when one fails: add a third state-server host (recommended) or name one as arbiter")
	}
	if p.Arbiter != "" {
		h := inv.Host(p.Arbiter)
		switch {
		case h == nil:
			c.Errorf("arbiter", "no host %q in the inventory%s", p.Arbiter, suggestHost(inv, p.Arbiter))
		case !h.HasRole("state-server"):
			c.Errorf("arbiter", "host %q does not have role state-server", p.Arbiter)
		case len(members) != 3:
			c.Errorf("arbiter", "an arbiter makes sense only in a pool of 3 (2 data members + arbiter); this pool has %d", len(members))
		}
	}
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}
