package steps

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/gridha/gridha/internal/lazyre"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/gridha/gridha/installer"
)

// MySQLAdmin says how gridha reaches a MySQL/MariaDB server as its
// administrator: through the host's SSH connection (Conn.Dial), to the unix
// socket (or a TCP address as seen from the host), so MySQL never has to be
// open to the admin's machine. With no Password the server authenticates the
// socket's peer (unix_socket plugin): gridha's SSH login, root.
type MySQLAdmin struct {
	Socket   string // unix socket path on the host; used when set
	Addr     string // else host:port as seen from the host
	User     string
	Password string // secret
}

// session returns a connection pool for a step: the run's shared one for
// this host and server (one MySQL login per run, however many steps), or,
// outside a run (installer.Shared), a fresh one. release is what the step
// defers. The shared login is pinged by the first step that uses it, so a
// server that is down fails with where and as whom; later audits (apply
// false) go straight to their query: a ping is a round trip through the
// SSH connection that costs the server's sshd and mysqld as much as the
// query, once per rb node's account. A converging step pings every time
// (a restart by MySQLListen leaves the pool's connection dead).
func (a MySQLAdmin) session(ctx context.Context, env *installer.Env, apply bool) (db *sql.DB, release func(), err error) {
	key := fmt.Sprintf("mysql\x00%s\x00%s\x00%s\x00%s", env.Host, a.Socket, a.Addr, a.User)
	sess, shared, err := installer.Shared(env, key, func() (*mysqlSession, error) {
		db, err := a.pool(env.Conn)
		return &mysqlSession{DB: db}, err
	})
	if err != nil {
		return nil, nil, err
	}
	if !shared {
		db, err := a.Open(ctx, env.Conn)
		if err != nil {
			return nil, nil, err
		}
		return db, func() { db.Close() }, nil
	}
	// Opening the pool does no I/O; the first use logs in.
	if apply || !sess.pinged.Load() {
		if err := sess.PingContext(ctx); err != nil {
			return nil, nil, a.describe(err)
		}
		sess.pinged.Store(true)
	}
	return sess.DB, func() {}, nil
}

// mysqlSession is a run's shared MySQL login (closed by the runner at the
// end of the run: Close comes with the DB).
type mysqlSession struct {
	*sql.DB
	pinged atomic.Bool // a ping went through
}

// Open connects through conn. The caller closes the DB.
func (a MySQLAdmin) Open(ctx context.Context, conn installer.Conn) (*sql.DB, error) {
	db, err := a.pool(conn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, a.describe(err)
	}
	return db, nil
}

func (a MySQLAdmin) describe(err error) error {
	if a.Socket != "" {
		return fmt.Errorf("mysql at unix:%s as %s: %w", a.Socket, a.User, err)
	}
	return fmt.Errorf("mysql at tcp:%s as %s: %w", a.Addr, a.User, err)
}

// pool makes a connection pool that dials through conn (no I/O yet).
func (a MySQLAdmin) pool(conn installer.Conn) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User = a.User
	cfg.Passwd = a.Password
	cfg.Net, cfg.Addr = "unix", a.Socket
	if a.Socket == "" {
		cfg.Net, cfg.Addr = "tcp", a.Addr
	}
	cfg.Timeout = 15 * time.Second
	// grantRows sends its SHOW GRANTS statements in one query. Every
	// name gridha puts into a statement is checked against a plain-name
	// pattern first (mysqlAccount, mysqlIdentRE): nothing can add a
	// statement of its own.
	cfg.MultiStatements = true
	cfg.ReadTimeout = 60 * time.Second
	cfg.WriteTimeout = 60 * time.Second
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := conn.Dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return installer.WithDeadlines(c), nil
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	return db, nil
}

// MySQLNativeHash is the mysql_native_password hash of password, as MySQL
// stores it: "*" + hex(SHA1(SHA1(password))). gridha compares and sets
// passwords by hash, so the password itself never travels in a statement.
func MySQLNativeHash(password string) string {
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	return "*" + strings.ToUpper(hex.EncodeToString(h2[:]))
}

var (
	mysqlIdentRE   = lazyre.New(`^[A-Za-z0-9_]{1,64}$`)
	mysqlHostRE    = lazyre.New(`^[A-Za-z0-9_.:%-]{1,255}$`)
	mysqlHashRE    = lazyre.New(`^\*[0-9A-F]{40}$`)
	grantPasswdRE  = lazyre.New(` IDENTIFIED (BY PASSWORD|VIA) .*$`)
	grantPasswdRE2 = lazyre.New(` IDENTIFIED BY PASSWORD '[^']*'`)
)

// mysqlAccount renders 'user'@'host' after checking both are plain names:
// they go into statements that cannot take placeholders.
func mysqlAccount(user, host string) (string, error) {
	if !mysqlIdentRE().MatchString(user) {
		return "", fmt.Errorf("refusing MySQL user name %q", user)
	}
	if !mysqlHostRE().MatchString(host) {
		return "", fmt.Errorf("refusing MySQL host %q", host)
	}
	return "'" + user + "'@'" + host + "'", nil
}

// MySQLDatabase makes sure a database exists.
type MySQLDatabase struct {
	Admin MySQLAdmin
	Name  string
}

// ID names the step.
func (s *MySQLDatabase) ID() string { return "mysql database " + s.Name }

// Probes: MySQL facts come over the MySQL connection, not the shell batch.
func (s *MySQLDatabase) Probes() []installer.Probe { return nil }

// CheckApply creates the database when missing.
func (s *MySQLDatabase) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if !mysqlIdentRE().MatchString(s.Name) {
		return installer.Failed(fmt.Errorf("refusing database name %q", s.Name))
	}
	db, release, err := s.Admin.session(ctx, env, apply)
	if err != nil {
		return installer.Failed(err)
	}
	defer release()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", s.Name).Scan(&n); err != nil {
		return installer.Failed(fmt.Errorf("look up database %s: %w", s.Name, err))
	}
	if n > 0 {
		return installer.OK("database exists")
	}
	if !apply {
		return installer.MissingProps("database "+s.Name+" does not exist", installer.Prop("database", s.Name, "absent"))
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+s.Name+"`"); err != nil {
		return installer.Failed(fmt.Errorf("create database %s: %w", s.Name, err))
	}
	return installer.Changed("created database " + s.Name)
}

// MySQLUser makes sure User@Host exists with Password and holds exactly
// ALL PRIVILEGES on Database and nothing else: extra or wider grants are
// drift, revoked on apply.
type MySQLUser struct {
	Admin    MySQLAdmin
	User     string
	Host     string
	Password string // secret
	Database string
}

// ID names the step.
func (s *MySQLUser) ID() string { return "mysql user " + s.User + "@" + s.Host }

// Probes: none, see MySQLDatabase.
func (s *MySQLUser) Probes() []installer.Probe { return nil }

func (s *MySQLUser) wantGrants(account string) []string {
	return []string{
		"GRANT ALL PRIVILEGES ON `" + s.Database + "`.* TO " + backtickAccount(account),
		"GRANT USAGE ON *.* TO " + backtickAccount(account),
	}
}

// backtickAccount turns 'u'@'h' into `u`@`h`, the form SHOW GRANTS prints.
func backtickAccount(account string) string { return strings.ReplaceAll(account, "'", "`") }

// CheckApply audits or converges the account, its password and its grants.
func (s *MySQLUser) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	account, err := mysqlAccount(s.User, s.Host)
	if err != nil {
		return installer.Failed(err)
	}
	if !mysqlIdentRE().MatchString(s.Database) {
		return installer.Failed(fmt.Errorf("refusing database name %q", s.Database))
	}
	hash := MySQLNativeHash(s.Password)
	env.Secrets.Add(s.Password, hash)
	db, release, err := s.Admin.session(ctx, env, apply)
	if err != nil {
		return installer.Failed(err)
	}
	defer release()

	var auth, plugin sql.NullString
	if row, ok := s.Admin.accountRows(ctx, env, db, s.User, apply); ok {
		if r, found := row[s.Host]; found {
			auth = r
		} else {
			err = sql.ErrNoRows
		}
	} else {
		err = db.QueryRowContext(ctx, "SELECT authentication_string, plugin FROM mysql.user WHERE User = ? AND Host = ?", s.User, s.Host).Scan(&auth, &plugin)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if !apply {
			return installer.MissingProps("no MySQL account "+account, installer.Prop("account", account, "absent"))
		}
		if _, err := db.ExecContext(ctx, "CREATE USER "+account+" IDENTIFIED BY PASSWORD '"+hash+"'"); err != nil {
			return installer.Failed(fmt.Errorf("create user %s: %w", account, err))
		}
		if _, err := db.ExecContext(ctx, "GRANT ALL PRIVILEGES ON `"+s.Database+"`.* TO "+account); err != nil {
			return installer.Failed(fmt.Errorf("grant on %s to %s: %w", s.Database, account, err))
		}
		return installer.Changed("created " + account + " with ALL PRIVILEGES on " + s.Database)
	case err != nil:
		return installer.Failed(fmt.Errorf("look up %s: %w", account, err))
	}

	var problems []string
	passwordOK := auth.String == hash
	if !passwordOK {
		problems = append(problems, "password differs from the password file")
	}
	have, ok := s.Admin.grantRows(ctx, env, db, s.User, apply)[s.Host]
	if !ok {
		if have, err = MySQLGrants(ctx, db, account); err != nil {
			return installer.Failed(err)
		}
	}
	want := s.wantGrants(account)
	extra, missing := setDiff(have, want)
	for _, g := range extra {
		problems = append(problems, "extra grant: "+g)
	}
	for _, g := range missing {
		problems = append(problems, "missing grant: "+g)
	}
	if len(problems) == 0 {
		return installer.OK("account, password and grants as expected")
	}
	if !apply {
		var props []installer.PropertyDrift
		if !passwordOK {
			props = append(props, installer.Prop("password", "as in the password file", "differs (not shown)"))
		}
		if len(extra) > 0 || len(missing) > 0 {
			props = append(props, installer.Prop("grants", strings.Join(want, "; "), strings.Join(have, "; ")))
		}
		r := installer.DriftProps(strings.Join(problems, "; "), props...)
		r.Expected, r.Found = strings.Join(want, "\n"), strings.Join(have, "\n")
		return r
	}
	if !passwordOK {
		if !mysqlHashRE().MatchString(hash) {
			return installer.Failed(fmt.Errorf("internal: bad password hash"))
		}
		if _, err := db.ExecContext(ctx, "ALTER USER "+account+" IDENTIFIED BY PASSWORD '"+hash+"'"); err != nil {
			return installer.Failed(fmt.Errorf("set password of %s: %w", account, err))
		}
	}
	if len(extra) > 0 || len(missing) > 0 {
		if _, err := db.ExecContext(ctx, "REVOKE ALL PRIVILEGES, GRANT OPTION FROM "+account); err != nil {
			return installer.Failed(fmt.Errorf("revoke from %s: %w", account, err))
		}
		if _, err := db.ExecContext(ctx, "GRANT ALL PRIVILEGES ON `"+s.Database+"`.* TO "+account); err != nil {
			return installer.Failed(fmt.Errorf("grant on %s to %s: %w", s.Database, account, err))
		}
	}
	return installer.Changed("fixed " + account + ": " + strings.Join(problems, "; "))
}

// accountRows returns the authentication string of every account of user,
// by host, read in one query per run and shared by the run's audits of
// that user's accounts (one query whatever the number of rb nodes, not one
// per node). Only for audits (apply false), which change nothing between
// them; a converging step reads its own account. ok is false when there is
// no shared snapshot (the caller queries its own row).
func (a MySQLAdmin) accountRows(ctx context.Context, env *installer.Env, db *sql.DB, user string, apply bool) (map[string]sql.NullString, bool) {
	if apply {
		return nil, false
	}
	type snapshot struct {
		once sync.Once
		rows map[string]sql.NullString
	}
	key := fmt.Sprintf("mysql-accounts\x00%s\x00%s\x00%s\x00%s\x00%s", env.Host, a.Socket, a.Addr, a.User, user)
	snap, shared, err := installer.Shared(env, key, func() (*snapshot, error) { return &snapshot{}, nil })
	if err != nil || !shared {
		return nil, false
	}
	snap.once.Do(func() {
		rows, err := db.QueryContext(ctx, "SELECT Host, authentication_string FROM mysql.user WHERE User = ?", user)
		if err != nil {
			return
		}
		defer rows.Close()
		m := map[string]sql.NullString{}
		for rows.Next() {
			var h string
			var auth sql.NullString
			if err := rows.Scan(&h, &auth); err != nil {
				return
			}
			m[h] = auth
		}
		if rows.Err() == nil {
			snap.rows = m
		}
	})
	return snap.rows, snap.rows != nil
}

// grantRows returns the grants of every account of user (SHOW GRANTS,
// normalised as MySQLGrants gives them), by host, read once per run for the
// run's audits of that user's accounts: one SHOW GRANTS per account, all
// sent in one multi-statement query, one round trip through the SSH
// connection instead of one per rb node (each round trip cost the state
// server's sshd and mysqld more than the statement itself). The grants are
// SHOW GRANTS' own, as before, not rebuilt from the privilege tables: what
// the server would apply. Like accountRows, only for audits; a host missing
// from the result (an account name gridha refuses to quote, a query that
// failed) is read on its own by the caller.
func (a MySQLAdmin) grantRows(ctx context.Context, env *installer.Env, db *sql.DB, user string, apply bool) map[string][]string {
	snapRows, ok := a.accountRows(ctx, env, db, user, apply)
	if !ok {
		return nil
	}
	type snapshot struct {
		once   sync.Once
		grants map[string][]string
	}
	key := fmt.Sprintf("mysql-grants\x00%s\x00%s\x00%s\x00%s\x00%s", env.Host, a.Socket, a.Addr, a.User, user)
	snap, shared, err := installer.Shared(env, key, func() (*snapshot, error) { return &snapshot{}, nil })
	if err != nil || !shared {
		return nil
	}
	snap.once.Do(func() {
		var hosts, stmts []string
		for h := range snapRows {
			if account, err := mysqlAccount(user, h); err == nil {
				hosts = append(hosts, h)
				stmts = append(stmts, "SHOW GRANTS FOR "+account)
			}
		}
		if len(hosts) == 0 {
			return
		}
		rows, err := db.QueryContext(ctx, strings.Join(stmts, "; "))
		if err != nil {
			return
		}
		defer rows.Close()
		got := map[string][]string{}
		for i := 0; ; i++ {
			if i >= len(hosts) {
				return // more result sets than statements
			}
			var gs []string
			for rows.Next() {
				var g string
				if err := rows.Scan(&g); err != nil {
					return
				}
				gs = append(gs, NormalizeGrant(g))
			}
			if rows.Err() != nil {
				return
			}
			sort.Strings(gs)
			got[hosts[i]] = gs
			if !rows.NextResultSet() {
				break
			}
		}
		if rows.Err() == nil && len(got) == len(hosts) {
			snap.grants = got
		}
	})
	return snap.grants
}

// MySQLGrants lists SHOW GRANTS lines of account without password hashes
// (NormalizeGrant), sorted.
func MySQLGrants(ctx context.Context, db *sql.DB, account string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS FOR "+account)
	if err != nil {
		return nil, fmt.Errorf("show grants for %s: %w", account, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, err
		}
		out = append(out, NormalizeGrant(g))
	}
	sort.Strings(out)
	return out, rows.Err()
}

// NormalizeGrant drops the password part of a SHOW GRANTS line so grants
// can be compared (and reported) without the hash.
func NormalizeGrant(g string) string {
	g = grantPasswdRE2().ReplaceAllString(g, "")
	g = grantPasswdRE().ReplaceAllString(g, "")
	return strings.TrimSpace(g)
}

// MySQLUserHosts makes sure User exists for exactly the given hosts: an
// account of that user from any other host (a node removed from the
// inventory, or a wildcard '%') is drift, dropped on apply.
type MySQLUserHosts struct {
	Admin MySQLAdmin
	User  string
	Hosts []string
}

// ID names the step.
func (s *MySQLUserHosts) ID() string { return "mysql logins of " + s.User }

// Probes: none, see MySQLDatabase.
func (s *MySQLUserHosts) Probes() []installer.Probe { return nil }

// CheckApply drops accounts of User from hosts not in Hosts.
func (s *MySQLUserHosts) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	db, release, err := s.Admin.session(ctx, env, apply)
	if err != nil {
		return installer.Failed(err)
	}
	defer release()
	var have []string
	if snap, ok := s.Admin.accountRows(ctx, env, db, s.User, apply); ok {
		for h := range snap {
			have = append(have, h)
		}
	} else {
		rows, err := db.QueryContext(ctx, "SELECT Host FROM mysql.user WHERE User = ?", s.User)
		if err != nil {
			return installer.Failed(fmt.Errorf("list accounts of %s: %w", s.User, err))
		}
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return installer.Failed(err)
			}
			have = append(have, h)
		}
		rows.Close()
	}
	sort.Strings(have)
	extra, _ := setDiff(have, s.Hosts)
	if len(extra) == 0 {
		return installer.OK("no logins of " + s.User + " from hosts outside the inventory")
	}
	msg := "logins of " + s.User + " from hosts not in the inventory: " + strings.Join(extra, ", ")
	if !apply {
		r := installer.DriftProps(msg, installer.Prop("hosts", strings.Join(s.Hosts, ", "), strings.Join(have, ", ")))
		r.Expected, r.Found = strings.Join(s.Hosts, ", "), strings.Join(have, ", ")
		return r
	}
	for _, h := range extra {
		account, err := mysqlAccount(s.User, h)
		if err != nil {
			return installer.Failed(err)
		}
		if _, err := db.ExecContext(ctx, "DROP USER "+account); err != nil {
			return installer.Failed(fmt.Errorf("drop %s: %w", account, err))
		}
	}
	return installer.Changed("dropped " + msg)
}

// MySQLListen checks that the server takes TCP connections on Address
// (or on every address); on apply it restarts Service so that an option
// file written by an earlier step takes effect, then waits for the socket.
type MySQLListen struct {
	Admin   MySQLAdmin
	Address string
	Port    int
	Service string
}

// ID names the step.
func (s *MySQLListen) ID() string { return fmt.Sprintf("mysql listening on %s:%d", s.Address, s.Port) }

// Probes: none, see MySQLDatabase.
func (s *MySQLListen) Probes() []installer.Probe { return nil }

// CheckApply audits the live bind address and port.
func (s *MySQLListen) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	var found string
	var err error
	if apply {
		// A fresh login: a restart below would leave the run's shared
		// one dead for the steps after this one.
		found, err = s.live(ctx, env)
	} else {
		// An audit (a no-change install audits first too) over the run's
		// shared login: one MySQL login per run, not one more here.
		var db *sql.DB
		var release func()
		db, release, err = s.Admin.session(ctx, env, apply)
		if err != nil {
			return installer.Failed(err)
		}
		found, err = s.liveOn(ctx, db)
		release()
	}
	if err != nil {
		return installer.Failed(err)
	}
	if found == "" {
		return installer.OK("listening")
	}
	want := fmt.Sprintf("%s:%d", s.Address, s.Port)
	if !apply {
		return installer.DriftProps("MySQL does not listen where rb nodes reach it", installer.Prop("listen", want, found))
	}
	res, err := env.Conn.Run(ctx, "service "+installer.ShellQuote(s.Service)+" restart", nil)
	if err != nil {
		return installer.Failed(err)
	}
	if err := res.Err("restart " + s.Service); err != nil {
		return installer.Failed(err)
	}
	var last error
	for i := 0; i < 30; i++ { // bounded: 30 x 1 s
		if f, err := s.live(ctx, env); err == nil && f == "" {
			return installer.Changed("restarted " + s.Service + " to listen on " + want)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return installer.Failed(ctx.Err())
		case <-time.After(time.Second):
		}
	}
	return installer.Failed(fmt.Errorf("after restart MySQL still does not listen on %s (%v)", want, last))
}

// live returns "" when the server listens as wanted, else what it does.
func (s *MySQLListen) live(ctx context.Context, env *installer.Env) (string, error) {
	db, err := s.Admin.Open(ctx, env.Conn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	return s.liveOn(ctx, db)
}

func (s *MySQLListen) liveOn(ctx context.Context, db *sql.DB) (string, error) {
	var bind sql.NullString
	var port, skip int
	if err := db.QueryRowContext(ctx, "SELECT @@bind_address, @@port, @@skip_networking").Scan(&bind, &port, &skip); err != nil {
		return "", fmt.Errorf("read MySQL network settings: %w", err)
	}
	found := fmt.Sprintf("bind_address=%s port=%d skip_networking=%d", bind.String, port, skip)
	if skip != 0 || port != s.Port {
		return found, nil
	}
	for _, b := range strings.Split(bind.String, ",") {
		switch strings.TrimSpace(b) {
		case "", "*", "0.0.0.0", "::", s.Address:
			return "", nil
		}
	}
	return found, nil
}

// setDiff returns what have has beyond want, and what want has beyond have.
func setDiff(have, want []string) (extra, missing []string) {
	hs, ws := map[string]bool{}, map[string]bool{}
	for _, h := range have {
		hs[h] = true
	}
	for _, w := range want {
		ws[w] = true
	}
	for _, h := range have {
		if !ws[h] {
			extra = append(extra, h)
		}
	}
	for _, w := range want {
		if !hs[w] {
			missing = append(missing, w)
		}
	}
	return extra, missing
}
