package inventory

import (
	"path"
	"regexp"
)

// StateServer is the settings of the state-server role (roles: state-server:),
// the file/DB server of the Resource Broker HA layout (slides 4, 7, 12): it
// exports the shared state folder and hosts the L&B database.
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
	if s.MySQL.Port == 0 {
		s.MySQL.Port = 3306
	}
}

var (
	sqlNameRE  = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	unixNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// Validate checks names that end up in SQL, paths and user databases.
func (s *StateServer) Validate(c *Checker) {
	if !path.IsAbs(s.Export) || path.Clean(s.Export) != s.Export || s.Export == "/" {
		c.Errorf("export", "must be a clean absolute path other than /, got %q", s.Export)
	}
	if !unixNameRE.MatchString(s.SnfsUser) {
		c.Errorf("snfs_user", "not a valid user name: %q", s.SnfsUser)
	}
	if !path.IsAbs(s.SnfsHome) {
		c.Errorf("snfs_home", "must be an absolute path, got %q", s.SnfsHome)
	}
	if !sqlNameRE.MatchString(s.MySQL.Database) {
		c.Errorf("mysql.database", "must be 1-64 letters, digits or _, got %q", s.MySQL.Database)
	}
	if !sqlNameRE.MatchString(s.MySQL.User) || len(s.MySQL.User) > 32 {
		c.Errorf("mysql.user", "must be 1-32 letters, digits or _, got %q", s.MySQL.User)
	}
	if !sqlNameRE.MatchString(s.MySQL.AdminUser) {
		c.Errorf("mysql.admin_user", "must be letters, digits or _, got %q", s.MySQL.AdminUser)
	}
	if s.MySQL.Port < 1 || s.MySQL.Port > 65535 {
		c.Errorf("mysql.port", "must be 1-65535, got %d", s.MySQL.Port)
	}
	if !path.IsAbs(s.MySQL.Socket) {
		c.Errorf("mysql.socket", "must be an absolute path, got %q", s.MySQL.Socket)
	}
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}
