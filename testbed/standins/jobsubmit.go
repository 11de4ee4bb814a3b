// jobsubmit.go: the RB job submission stand-in (rb-jobd, rb-client) of the
// HA end-to-end test (roles/rbnode_ha_bed_test.go).

package standins

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/gridha/gridha/internal/atomicfile"
)

// RunJobd is the stand-in of the gLite RB's job submission path: the
// Network Server (edg-wl-ns, which took jobs from the UI on port 7772 and
// stored their sandboxes under /var/edgwl) together with the L&B server
// (edg-wl-bkserverd, which logged each job in the lbserver20 MySQL database
// named by EDG_WL_BKSERVERD_ADDOPTS="--mysql user/password@host:db" in
// /etc/sysconfig/edg). It is what an RB HA failover must preserve: a job
// accepted by one master is found, file and L&B row, on the next.
//
// Protocol, one line each way over TCP:
//
//	SUBMIT <id> <payload>  ->  OK <node>
//	GET <id>               ->  JOB <id> file=<payload> lb=<payload> by=<node that took it> via=<node>
//	                           or MISSING <id> <why>
//
// Usage: rb-jobd [-listen :7772] [-state /var/edgwl] [-sysconfig /etc/sysconfig/edg]
func RunJobd(args []string) error {
	fs := flag.NewFlagSet("rb-jobd", flag.ContinueOnError)
	listen := fs.String("listen", ":7772", "address to listen on")
	state := fs.String("state", "/var/edgwl", "state folder (sandboxes)")
	sysconfig := fs.String("sysconfig", "/etc/sysconfig/edg", "file holding EDG_WL_BKSERVERD_ADDOPTS")
	if err := fs.Parse(args); err != nil {
		return err
	}
	node, _ := os.Hostname()
	node = strings.SplitN(node, ".", 2)[0]
	dsn, err := lbDSN(*sysconfig)
	if err != nil {
		return err
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("rb-jobd on %s: listening on %s, state %s\n", node, *listen, *state)
	j := &jobd{db: db, node: node, state: *state}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintln(c, j.handle(strings.TrimSpace(line)))
		}()
	}
}

var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// jobd is one rb-jobd process: its L&B connection pool and whether it has
// made sure the jobs table exists.
type jobd struct {
	db          *sql.DB
	node, state string
	mu          sync.Mutex
	tableReady  bool
}

// ensureTable creates the L&B table once per process: a CREATE TABLE on
// every submission would be a cluster-wide DDL (total order isolation) per
// job on a Galera pool, which the real bkserverd never did.
func (j *jobd) ensureTable(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.tableReady {
		return nil
	}
	if _, err := j.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS jobs (id VARCHAR(64) PRIMARY KEY, payload TEXT NOT NULL, node VARCHAR(64) NOT NULL)"); err != nil {
		return err
	}
	j.tableReady = true
	return nil
}

func (j *jobd) handle(line string) string {
	db, node, state := j.db, j.node, j.state
	f := strings.SplitN(line, " ", 3)
	if len(f) < 2 || !jobIDRE.MatchString(f[1]) {
		return "ERR bad request"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id := f[1]
	path := filepath.Join(state, "jobs", id)
	switch {
	case f[0] == "SUBMIT" && len(f) == 3:
		if err := writeSynced(path, []byte(f[2])); err != nil {
			return "ERR sandbox: " + err.Error()
		}
		if err := j.ensureTable(ctx); err != nil {
			return "ERR L&B: " + err.Error()
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO jobs (id, payload, node) VALUES (?, ?, ?)", id, f[2], node); err != nil {
			return "ERR L&B: " + err.Error()
		}
		return "OK " + node
	case f[0] == "GET":
		b, ferr := os.ReadFile(path)
		var payload, by string
		lerr := db.QueryRowContext(ctx, "SELECT payload, node FROM jobs WHERE id = ?", id).Scan(&payload, &by)
		if ferr != nil || lerr != nil {
			return fmt.Sprintf("MISSING %s file: %v; L&B: %v (via %s)", id, ferr, lerr, node)
		}
		return fmt.Sprintf("JOB %s file=%s lb=%s by=%s via=%s", id, b, payload, by, node)
	}
	return "ERR bad request"
}

func writeSynced(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o644)
}

// lbDSN reads EDG_WL_BKSERVERD_ADDOPTS="--mysql user/password@host:db".
func lbDSN(sysconfig string) (string, error) {
	b, err := os.ReadFile(sysconfig)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), "EDG_WL_BKSERVERD_ADDOPTS=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		v, ok = strings.CutPrefix(v, "--mysql ")
		if !ok {
			break
		}
		i := strings.LastIndex(v, "@")
		if i < 0 {
			break
		}
		up, hd := v[:i], v[i+1:]
		user, pw, _ := strings.Cut(up, "/")
		host, dbname, ok := strings.Cut(hd, ":")
		if !ok {
			break
		}
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, pw, "tcp", net.JoinHostPort(host, "3306"), dbname
		cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 3*time.Second, 5*time.Second, 5*time.Second
		return cfg.FormatDSN(), nil
	}
	return "", errors.New(sysconfig + ": no EDG_WL_BKSERVERD_ADDOPTS=\"--mysql user/password@host:db\"")
}

// JobClient is the User Interface side: rb-client ADDR REQUEST... sends one
// request line and prints the answer; it fails unless the answer is OK or
// JOB.
func JobClient(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: rb-client HOST:PORT SUBMIT|GET ID [PAYLOAD]")
	}
	c, err := net.DialTimeout("tcp", args[0], 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, strings.Join(args[1:], " ")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	fmt.Print(line)
	if !strings.HasPrefix(line, "OK ") && !strings.HasPrefix(line, "JOB ") {
		return errors.New(strings.TrimSpace(line))
	}
	return nil
}

// JobdInitScript is an LSB init script for rb-jobd at bin (what the RB's
// edg-wl-ns init script is to the real daemon).
func JobdInitScript(bin string) string {
	return `#!/bin/sh
### BEGIN INIT INFO
# Provides:          rb-jobd
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: test-bed stand-in of the gLite RB job submission (edg-wl-ns + bkserverd)
### END INIT INFO
PIDFILE=/run/rb-jobd.pid
running() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
case "$1" in
start)
	running && exit 0
	nohup ` + bin + ` </dev/null >>/var/log/rb-jobd.log 2>&1 &
	echo $! > "$PIDFILE"
	sleep 0.2
	running ;;
stop)
	if running; then kill "$(cat "$PIDFILE")"; i=0; while running && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; fi
	running && exit 1
	rm -f "$PIDFILE"; exit 0 ;;
status)
	running && exit 0
	[ -f "$PIDFILE" ] && exit 1
	exit 3 ;;
restart) "$0" stop; "$0" start ;;
*) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
`
}
