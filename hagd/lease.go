package hagd

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The lease is what the 2005 HAGD lacked: the guard against two masters.
//
// Guarantee: a provider runs `script start GROUP` only while it holds the
// group's lease, and a provider that cannot renew its lease starts
// `script stop GROUP` no later than stop_timeout + margin before the lease
// can expire, measured on its own monotonic clock from the instant it sent
// the last successful renewal (the store sets the expiry later than that,
// so the local estimate is conservative). Another provider can acquire the
// lease only after it expired on the store's clock (MySQL's NOW(6)), so the
// providers' clocks need not agree. As long as `stop` finishes within
// stop_timeout and hagd itself runs, two masters never run at once.
//
// Trade-off: availability now depends on the lease store. A master cut off
// from the store stops even if it and its service are healthy, and while no
// provider can reach the store nobody holds the lease and the service is
// down. A hagd killed with SIGKILL cannot stop its service; its lease
// expires and a backup takes over, so the service the dead hagd left running
// must be stopped by the next hagd start (which always runs `stop` first) or
// by the service script's own fencing.

// Lease is a time-limited, exclusive claim on a group, held in a store every
// provider can reach.
type Lease interface {
	// Acquire takes the lease if it is free, expired or already ours.
	Acquire(ctx context.Context, group, holder string, ttl time.Duration) LeaseResult
	// Renew extends a lease we hold and that has not expired.
	Renew(ctx context.Context, group, holder string, ttl time.Duration) LeaseResult
	// Release gives up a lease we hold.
	Release(ctx context.Context, group, holder string) error
	Close() error
}

// LeaseTableSQL creates the lease table (the daemon runs it when the table
// is missing; the state server's installer may run it beforehand).
const LeaseTableSQL = `CREATE TABLE IF NOT EXISTS hagd_lease (
  grp     VARCHAR(64) NOT NULL PRIMARY KEY,
  holder  VARCHAR(64) NOT NULL DEFAULT '',
  expires DATETIME(6) NOT NULL
) ENGINE=InnoDB`

// MySQLLease keeps leases as rows of hagd_lease in the state server's MySQL.
// Every comparison uses the server's clock (NOW(6)).
type MySQLLease struct {
	db *sql.DB
	mu sync.Mutex
	ok bool // table known to exist
}

// MySQLConfig is where the lease table lives.
type MySQLConfig struct {
	Host     string // host[:port]
	User     string
	Password string
	DB       string
	Timeout  time.Duration // connect/read/write timeout
}

// OpenMySQLLease prepares a connection pool; it does not connect yet (the
// state server may be down when hagd starts).
func OpenMySQLLease(c MySQLConfig) (*MySQLLease, error) {
	addr := c.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "3306")
	}
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = addr
	mc.User = c.User
	mc.Passwd = c.Password
	mc.DBName = c.DB
	mc.Timeout = c.Timeout
	mc.ReadTimeout = c.Timeout
	mc.WriteTimeout = c.Timeout
	mc.ClientFoundRows = true // rows affected = rows matched
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("lease: mysql %s: %w", c.Host, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxLifetime(5 * time.Minute)
	return &MySQLLease{db: db}, nil
}

func (l *MySQLLease) ensure(ctx context.Context) error {
	l.mu.Lock()
	ok := l.ok
	l.mu.Unlock()
	if ok {
		return nil
	}
	if _, err := l.db.ExecContext(ctx, "SELECT 1 FROM hagd_lease LIMIT 1"); err != nil {
		if _, err2 := l.db.ExecContext(ctx, LeaseTableSQL); err2 != nil {
			return fmt.Errorf("lease table: %v; create: %w", err, err2)
		}
	}
	l.mu.Lock()
	l.ok = true
	l.mu.Unlock()
	return nil
}

// Acquire implements Lease.
func (l *MySQLLease) Acquire(ctx context.Context, group, holder string, ttl time.Duration) LeaseResult {
	if err := l.ensure(ctx); err != nil {
		return LeaseResult{Err: err}
	}
	if _, err := l.db.ExecContext(ctx, "INSERT IGNORE INTO hagd_lease (grp, holder, expires) VALUES (?, '', NOW(6))", group); err != nil {
		return LeaseResult{Err: fmt.Errorf("lease acquire %s: %w", group, err)}
	}
	res, err := l.db.ExecContext(ctx,
		"UPDATE hagd_lease SET holder = ?, expires = NOW(6) + INTERVAL ? MICROSECOND "+
			"WHERE grp = ? AND (holder = ? OR holder = '' OR expires <= NOW(6))",
		holder, ttl.Microseconds(), group, holder)
	return l.result(ctx, "acquire", group, res, err)
}

// Renew implements Lease.
func (l *MySQLLease) Renew(ctx context.Context, group, holder string, ttl time.Duration) LeaseResult {
	res, err := l.db.ExecContext(ctx,
		"UPDATE hagd_lease SET expires = NOW(6) + INTERVAL ? MICROSECOND "+
			"WHERE grp = ? AND holder = ? AND expires > NOW(6)",
		ttl.Microseconds(), group, holder)
	return l.result(ctx, "renew", group, res, err)
}

func (l *MySQLLease) result(ctx context.Context, op, group string, res sql.Result, err error) LeaseResult {
	if err != nil {
		return LeaseResult{Err: fmt.Errorf("lease %s %s: %w", op, group, err)}
	}
	n, err := res.RowsAffected()
	if err != nil {
		return LeaseResult{Err: fmt.Errorf("lease %s %s: %w", op, group, err)}
	}
	if n == 1 {
		return LeaseResult{OK: true}
	}
	var r LeaseResult
	var us int64
	err = l.db.QueryRowContext(ctx,
		"SELECT holder, GREATEST(0, TIMESTAMPDIFF(MICROSECOND, NOW(6), expires)) FROM hagd_lease WHERE grp = ?", group).Scan(&r.Holder, &us)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return LeaseResult{Err: fmt.Errorf("lease %s %s: %w", op, group, err)}
	}
	r.Remaining = time.Duration(us) * time.Microsecond
	return r
}

// Release implements Lease.
func (l *MySQLLease) Release(ctx context.Context, group, holder string) error {
	_, err := l.db.ExecContext(ctx, "UPDATE hagd_lease SET holder = '', expires = NOW(6) WHERE grp = ? AND holder = ?", group, holder)
	if err != nil {
		return fmt.Errorf("lease release %s: %w", group, err)
	}
	return nil
}

// Close implements Lease.
func (l *MySQLLease) Close() error { return l.db.Close() }

// FileLease keeps leases in files of one directory, locked with flock and
// timed with the local clock: only for providers that share a file system
// and a clock (tests, or one host). Use MySQL between real hosts.
type FileLease struct {
	Dir string
}

func (l *FileLease) with(group string, fn func(holder string, expires time.Time) (string, time.Time, LeaseResult)) LeaseResult {
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return LeaseResult{Err: err}
	}
	f, err := os.OpenFile(filepath.Join(l.Dir, group+".lease"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return LeaseResult{Err: err}
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return LeaseResult{Err: err}
	}
	b := make([]byte, 256)
	n, _ := f.ReadAt(b, 0)
	holder, exp := "", time.Time{}
	if fs := strings.Fields(string(b[:n])); len(fs) == 2 {
		holder = fs[0]
		if ns, err := strconv.ParseInt(fs[1], 10, 64); err == nil {
			exp = time.Unix(0, ns)
		}
	}
	nh, ne, r := fn(holder, exp)
	if nh != holder || !ne.Equal(exp) {
		if nh == "" {
			nh = "-"
		}
		line := fmt.Sprintf("%s %d\n", nh, ne.UnixNano())
		if err := f.Truncate(0); err != nil {
			return LeaseResult{Err: err}
		}
		if _, err := f.WriteAt([]byte(line), 0); err != nil {
			return LeaseResult{Err: err}
		}
	}
	return r
}

// Acquire implements Lease.
func (l *FileLease) Acquire(_ context.Context, group, holder string, ttl time.Duration) LeaseResult {
	return l.with(group, func(h string, exp time.Time) (string, time.Time, LeaseResult) {
		now := time.Now()
		if h == holder || h == "" || h == "-" || !now.Before(exp) {
			return holder, now.Add(ttl), LeaseResult{OK: true}
		}
		return h, exp, LeaseResult{Holder: h, Remaining: exp.Sub(now)}
	})
}

// Renew implements Lease.
func (l *FileLease) Renew(_ context.Context, group, holder string, ttl time.Duration) LeaseResult {
	return l.with(group, func(h string, exp time.Time) (string, time.Time, LeaseResult) {
		now := time.Now()
		if h == holder && now.Before(exp) {
			return holder, now.Add(ttl), LeaseResult{OK: true}
		}
		return h, exp, LeaseResult{Holder: h, Remaining: max(0, exp.Sub(now))}
	})
}

// Release implements Lease.
func (l *FileLease) Release(_ context.Context, group, holder string) error {
	return l.with(group, func(h string, exp time.Time) (string, time.Time, LeaseResult) {
		if h == holder {
			return "", time.Now(), LeaseResult{OK: true}
		}
		return h, exp, LeaseResult{}
	}).Err
}

// Close implements Lease.
func (l *FileLease) Close() error { return nil }
