package roles

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
)

// LBCopy copies a node's local L&B database (slide 8: "Initialize a
// lbserver20 database on a remote host") to the state server when the remote
// one is empty and the local one has rows. No dump file: rows stream from
// the node's MySQL (its unix socket, reached through gridha's SSH connection
// to the node) to the state server's (through gridha's SSH connection to the
// server, env.Peer), table by table, into a staging database
// <db>__gridha_<node>; row counts are compared, then one RENAME TABLE moves
// every table into <db> at once. A killed run leaves at most the staging
// database, dropped and refilled on the next run. A non-empty remote
// database is never written.
type LBCopy struct {
	Node      string
	Server    string // inventory name of the state server (env.Peer)
	Local     steps.MySQLAdmin
	Remote    steps.MySQLAdmin
	Database  string
	StateFrom string
}

// ID implements installer.Step.
func (c *LBCopy) ID() string { return "L&B database " + c.Database + " copied to " + c.Server }

// LBCopyRecordDir holds, on a node, the record of its L&B copy (or of the
// decision to leave its L&B data local): once the node logs to the state
// server its local database is stale, and comparing it again would call the
// growing remote database a conflict.
const LBCopyRecordDir = "/var/lib/gridha"

func (c *LBCopy) record() string { return LBCopyRecordDir + "/lb-copied-" + c.Database }

// Probes implements installer.Step. The socket is a typed fact (the fact
// agent answers it in-process): a verify of a node that copied its L&B
// data long ago stops at the record, and a shell probe would cost it a
// subshell for nothing.
func (c *LBCopy) Probes() []installer.Probe {
	return []installer.Probe{installer.FileMetaProbe(c.Local.Socket), installer.FileProbe(c.record())}
}

// localSocket says whether the node has a local MySQL socket, as test -S
// would: what lstat calls a file, a folder or nothing is none; what it
// calls a symlink or a special file (socket, fifo) is asked on the host
// (rare: only until the L&B data is copied or kept, see record).
func (c *LBCopy) localSocket(ctx context.Context, env *installer.Env) (bool, error) {
	ff, err := env.Facts.FileMeta(c.Local.Socket)
	if err != nil {
		return false, err
	}
	if !ff.Exists || ff.Kind == installer.KindFile || ff.Kind == installer.KindDir {
		return false, nil
	}
	res, err := env.Conn.Run(ctx, "test -S "+installer.ShellQuote(c.Local.Socket), nil)
	if err != nil {
		return false, err
	}
	return res.ExitCode == 0, nil
}

// writeRecord keeps what was decided on the node.
func (c *LBCopy) writeRecord(ctx context.Context, env *installer.Env, what string) error {
	if _, err := env.Conn.Run(ctx, "mkdir -p "+installer.ShellQuote(LBCopyRecordDir), nil); err != nil {
		return err
	}
	line := fmt.Sprintf("%s at %s\n", what, time.Now().UTC().Format(time.RFC3339))
	return env.Conn.WriteFile(ctx, c.record(), []byte(line), 0o644, "root", "")
}

func (c *LBCopy) staging() string {
	s := c.Database + "__gridha_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, c.Node)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// tableCounts lists the base tables of db with their exact row counts.
func tableCounts(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, db string) (map[string]int64, error) {
	// hagd_lease is hagd's lease table (rbnode_ha.go keeps it in the L&B
	// database): not L&B data, so it does not make the database non-empty.
	rows, err := q.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> 'hagd_lease'", db)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, n := range names {
		var cnt int64
		r, err := q.QueryContext(ctx, "SELECT COUNT(*) FROM "+qid(db)+"."+qid(n))
		if err != nil {
			return nil, err
		}
		if r.Next() {
			err = r.Scan(&cnt)
		}
		r.Close()
		if err != nil {
			return nil, err
		}
		out[n] = cnt
	}
	return out, nil
}

// qid quotes a MySQL identifier.
func qid(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func totalRows(m map[string]int64) int64 {
	var t int64
	for _, v := range m {
		t += v
	}
	return t
}

func sameCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func describeCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var p []string
	for _, k := range keys {
		p = append(p, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return fmt.Sprintf("%d rows in %d tables (%s)", totalRows(m), len(m), strings.Join(p, ", "))
}

// CheckApply implements installer.Step.
func (c *LBCopy) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, c.ID(), err))
	}
	if ff, err := env.Facts.File(c.record()); err == nil && ff.Exists {
		return installer.OK(strings.TrimSpace(string(ff.Content)) + " (" + c.record() + ")")
	}
	if sock, err := c.localSocket(ctx, env); err != nil {
		return fail(fmt.Errorf("local MySQL socket %s: %w", c.Local.Socket, err))
	} else if !sock {
		return installer.OK("no local MySQL at " + c.Local.Socket + ": nothing to copy")
	}
	local, err := c.Local.Open(ctx, env.Conn)
	if err != nil {
		return fail(fmt.Errorf("local MySQL: %w", err))
	}
	defer local.Close()
	lc, err := tableCounts(ctx, local, c.Database)
	if err != nil {
		return fail(fmt.Errorf("local %s: %w", c.Database, err))
	}
	if totalRows(lc) == 0 {
		return installer.OK("local " + c.Database + " has no rows: nothing to copy")
	}
	if env.Peer == nil {
		return fail(fmt.Errorf("no connection to %s", c.Server))
	}
	peer, err := env.Peer(ctx, c.Server)
	if err != nil {
		return fail(err)
	}
	remote, err := c.Remote.Open(ctx, peer)
	if err != nil {
		return fail(fmt.Errorf("%s MySQL: %w", c.Server, err))
	}
	defer remote.Close()
	rc, err := tableCounts(ctx, remote, c.Database)
	if err != nil {
		return fail(fmt.Errorf("%s %s: %w", c.Server, c.Database, err))
	}
	if len(rc) > 0 {
		switch {
		case sameCounts(lc, rc):
			// Copied by an earlier run killed before its record.
			what := fmt.Sprintf("%s copied to %s (%s)", c.Database, c.Server, describeCounts(rc))
			if !apply {
				return installer.Drift("would record: "+what, "", "")
			}
			if err := c.writeRecord(ctx, env, what); err != nil {
				return fail(err)
			}
			return installer.Changed("recorded: " + what)
		case c.StateFrom != "" && c.StateFrom != c.Node:
			what := fmt.Sprintf("local %s (%s) left local: --state-from %s", c.Database, describeCounts(lc), c.StateFrom)
			if !apply {
				return installer.Drift("would record: "+what, "", "")
			}
			if err := c.writeRecord(ctx, env, what); err != nil {
				return fail(err)
			}
			return installer.Changed(what + fmt.Sprintf("; %s on %s holds %s", c.Database, c.Server, describeCounts(rc)))
		}
		msg := fmt.Sprintf("%s on %s already holds %s and this node's local one %s; gridha never overwrites a non-empty remote database: "+
			"compare them and empty one by hand, or re-run with --state-from naming another node to leave this node's L&B data local",
			c.Database, c.Server, describeCounts(rc), describeCounts(lc))
		if !apply {
			return installer.Drift("conflict: "+msg, describeCounts(lc), describeCounts(rc))
		}
		return fail(fmt.Errorf("%s", msg))
	}
	if !apply {
		return installer.Missing(fmt.Sprintf("would copy the local %s (%s) to %s", c.Database, describeCounts(lc), c.Server))
	}
	if err := c.copy(ctx, env, local, remote, lc); err != nil {
		return fail(err)
	}
	after, err := tableCounts(ctx, remote, c.Database)
	if err != nil {
		return fail(err)
	}
	if !sameCounts(lc, after) {
		return fail(fmt.Errorf("after the copy %s on %s holds %s, the local one %s", c.Database, c.Server, describeCounts(after), describeCounts(lc)))
	}
	if err := c.writeRecord(ctx, env, fmt.Sprintf("%s copied to %s (%s)", c.Database, c.Server, describeCounts(lc))); err != nil {
		return fail(err)
	}
	return installer.Changed(fmt.Sprintf("copied %s to %s; row counts equal", describeCounts(lc), c.Server))
}

// copy fills the staging database and renames its tables into place.
func (c *LBCopy) copy(ctx context.Context, env *installer.Env, local, remote *sql.DB, lc map[string]int64) error {
	stg := c.staging()
	lconn, err := local.Conn(ctx)
	if err != nil {
		return err
	}
	defer lconn.Close()
	rconn, err := remote.Conn(ctx)
	if err != nil {
		return err
	}
	defer rconn.Close()
	var charset, collation string
	if err := lconn.QueryRowContext(ctx, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", c.Database).Scan(&charset, &collation); err != nil {
		return fmt.Errorf("local %s: %w", c.Database, err)
	}
	for _, q := range []string{
		"SET FOREIGN_KEY_CHECKS = 0",
		"DROP DATABASE IF EXISTS " + qid(stg),
		"CREATE DATABASE " + qid(stg) + " CHARACTER SET " + charset + " COLLATE " + collation,
		"USE " + qid(stg),
	} {
		if _, err := rconn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: staging database %s: %w", c.Server, stg, err)
		}
	}
	if _, err := lconn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return fmt.Errorf("local snapshot: %w", err)
	}
	defer lconn.ExecContext(context.WithoutCancel(ctx), "COMMIT") //nolint:errcheck
	tables := make([]string, 0, len(lc))
	for t := range lc {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		var name, create string
		if err := lconn.QueryRowContext(ctx, "SHOW CREATE TABLE "+qid(c.Database)+"."+qid(t)).Scan(&name, &create); err != nil {
			return fmt.Errorf("local table %s: %w", t, err)
		}
		if _, err := rconn.ExecContext(ctx, create); err != nil {
			return fmt.Errorf("%s: create %s.%s: %w", c.Server, stg, t, err)
		}
		if err := copyRows(ctx, lconn, rconn, c.Database, stg, t); err != nil {
			return err
		}
		if env.Log != nil {
			env.Log("copied %s (%d rows)", t, lc[t])
		}
	}
	sc, err := tableCounts(ctx, rconn, stg)
	if err != nil {
		return err
	}
	if !sameCounts(lc, sc) {
		return fmt.Errorf("%s: staging %s holds %s, the local database %s", c.Server, stg, describeCounts(sc), describeCounts(lc))
	}
	var renames []string
	for _, t := range tables {
		renames = append(renames, qid(stg)+"."+qid(t)+" TO "+qid(c.Database)+"."+qid(t))
	}
	if _, err := rconn.ExecContext(ctx, "RENAME TABLE "+strings.Join(renames, ", ")); err != nil {
		return fmt.Errorf("%s: move the tables into %s: %w", c.Server, c.Database, err)
	}
	if _, err := rconn.ExecContext(ctx, "DROP DATABASE "+qid(stg)); err != nil {
		return fmt.Errorf("%s: drop the empty staging database %s: %w", c.Server, stg, err)
	}
	return nil
}

// copyRows streams table t from the local db into the staging db, in
// batched INSERTs.
func copyRows(ctx context.Context, lconn, rconn *sql.Conn, db, stg, t string) error {
	rows, err := lconn.QueryContext(ctx, "SELECT * FROM "+qid(db)+"."+qid(t))
	if err != nil {
		return fmt.Errorf("read %s: %w", t, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	qcols := make([]string, len(cols))
	for i, c := range cols {
		qcols[i] = qid(c)
	}
	batch := 500
	if n := 30000 / len(cols); n < batch {
		batch = max(1, n)
	}
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	head := "INSERT INTO " + qid(stg) + "." + qid(t) + " (" + strings.Join(qcols, ",") + ") VALUES "
	var args []any
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		q := head + strings.TrimSuffix(strings.Repeat(one+",", n), ",")
		if _, err := rconn.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert into %s.%s: %w", stg, t, err)
		}
		args, n = args[:0], 0
		return nil
	}
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read %s: %w", t, err)
		}
		for _, v := range raw {
			if v == nil {
				args = append(args, nil)
			} else {
				args = append(args, append([]byte{}, v...))
			}
		}
		n++
		if n >= batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", t, err)
	}
	return flush()
}
