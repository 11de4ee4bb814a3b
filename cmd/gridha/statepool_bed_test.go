package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridha/gridha/testbed"
	"github.com/gridha/gridha/testbed/standins"
)

// The state pool's end-to-end harness (issue 13): one PoolBed per test
// binary (fs1-fs3, rb1+rb2 in hagd group "rb", the user's box ui), a site
// installed on it by the real CLI in one of two layouts (fs1 alone over
// sshfs, or the pool), a user on ui submitting jobs through the group's
// service IP the whole time (rb-submit), faults injected into one box, and
// afterwards every acknowledged job looked for: its sandbox through the
// shared mount of each rb node, its L&B row in the database.

const (
	sbStandinDir = "/opt/standin"
	sbJobd       = sbStandinDir + "/rb-jobd"
	sbSubmit     = sbStandinDir + "/rb-submit"
	sbClient     = sbStandinDir + "/rb-client"
	sbJobdPort   = "7772"
	// sbJobsDir is where rb-jobd's sandboxes of group rb are, seen through
	// an rb node's shared mount (mount point / group / state dir / jobs).
	sbJobsDir = "/mnt/rb-state/rb/edgwl/jobs"
	// sbAnswerBound is how long after a fault the user's next submission
	// must be acknowledged again (README-statepool: the bound on this
	// 2-core machine, loaded; hagd here: ΔT1 2 s, lease 8 s; measured up
	// to 44 s for fs1's cable cut: the pool's hagd moves the database
	// service IP, then the rb group fails over).
	sbAnswerBound = 90 * time.Second
)

// sbRBNode are the rb-node settings of the harness: the stand-in RB service,
// two state dirs, hagd timings with slack for a loaded machine.
const sbRBNode = `    services: [rb-jobd]
    state_dirs: [/var/edgwl, /var/myproxy]
    hagd:
      iface: [eth0]
      heartbeat: 250ms
      dt1: 2s
      dt2: 500ms
      timeout: 15s
      stop_timeout: 5s
      status_interval: 1s
      backoff: 10s
      lease_ttl: 8s
      lease_renew: 500ms
      lease_timeout: 500ms
`

// poolSite is the shared bed and what is installed on it.
type poolSite struct {
	once    sync.Once
	err     error
	bed     *testbed.PoolBed
	dir     string // inventory, LB password and secrets (inside the bed's folder)
	members int    // state servers installed: 0 (nothing yet), 1 or 3
}

// sharedPool is this test binary's one pool bed: brought up by the first
// test that asks, torn down by TestMain after the tests.
var sharedPool poolSite

func (s *poolSite) down() {
	if s.bed != nil {
		_ = s.bed.Down()
	}
}

// get brings the bed up once (skips without root, fails under CI=true): the
// stand-in RB service on the rb nodes, rb-submit and rb-client on ui.
func (s *poolSite) get(t testing.TB) *poolSite {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test")
	}
	testbed.Require(t)
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testbed.UpTimeout)
		defer cancel()
		if s.bed, s.err = testbed.UpPool(ctx, testbed.Options{}); s.err != nil {
			return
		}
		s.dir = filepath.Join(s.bed.Dir, "site")
		s.err = s.installStandins(ctx)
	})
	if s.err != nil {
		t.Fatalf("pool bed: %v", s.err)
	}
	return s
}

func (s *poolSite) installStandins(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, h := range append(append([]*testbed.Host{}, s.bed.Nodes...), s.bed.Client) {
		if _, err := h.Exec(ctx, "mkdir", "-p", sbStandinDir); err != nil {
			return err
		}
		if err := h.CopyIn(self, sbJobd); err != nil {
			return err
		}
		if _, err := h.Exec(ctx, "ln", "-sf", sbJobd, sbClient); err != nil {
			return err
		}
		if _, err := h.Exec(ctx, "ln", "-sf", sbJobd, sbSubmit); err != nil {
			return err
		}
		if err := h.WriteFile("/etc/init.d/rb-jobd", []byte(standins.JobdInitScript(sbJobd)), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, "lb-password"), []byte("pool-bed-LB-secret\n"), 0o600)
}

// inventory writes the site's inventory for members state servers.
func (s *poolSite) inventory(t testing.TB, members int) string {
	t.Helper()
	body, err := s.bed.Inventory(testbed.PoolLayout{Members: members, RBNode: sbRBNode})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.dir, "gridha.yaml")
	if err := os.WriteFile(p, []byte(s.bed.DefaultsYAML()+body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// gridha runs the real CLI in-process against the site's current inventory.
func (s *poolSite) gridha(t testing.TB, timeout time.Duration, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	d := DefaultDeps()
	d.Stdout, d.Stderr = &out, &errb
	d.Terminal = nil
	d.Getenv = func(string) string { return "" }
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(append([]string{"gridha"}, args...), "-i", filepath.Join(s.dir, "gridha.yaml"))
	start := time.Now()
	code := Run(ctx, argv, d)
	t.Logf("gridha %s → exit %d in %.1fs\n%s%s", strings.Join(args, " "), code, time.Since(start).Seconds(), out.String(), errb.String())
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// single installs the single-server layout (fs1, sshfs) on a fresh bed and
// waits for rb1 to serve group rb.
func (s *poolSite) single(t testing.TB) {
	t.Helper()
	switch s.members {
	case 1:
		return
	case 3:
		t.Fatal("the shared bed already holds the pool: a test asking for the single-server layout must run before the pool tests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.bed.Members[0].StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	s.inventory(t, 1)
	// Two runs, as the demo: one run naming both roles fails on a fresh
	// site (the snfs keys file is planned by both with different
	// "generated" flags).
	for _, role := range []string{"state-server", "rb-node"} {
		if r := s.gridha(t, 5*time.Minute, "install", role); r.code != 0 {
			t.Fatalf("install %s (single-server layout): exit %d", role, r.code)
		}
	}
	s.members = 1
	s.waitServed(t, "rb1", 90*time.Second)
}

// ask sends one request to rb-jobd through the rb service IP from ui.
func (s *poolSite) ask(ctx context.Context, args ...string) (string, error) {
	out, err := s.bed.Client.Exec(ctx, append([]string{sbClient, s.bed.RBServiceIP + ":" + sbJobdPort}, args...)...)
	return strings.TrimSpace(string(out)), err
}

// waitServed waits (bounded) until node answers on the rb service IP.
func (s *poolSite) waitServed(t testing.TB, node string, max time.Duration) {
	t.Helper()
	ctx := context.Background()
	var last string
	for end := time.Now().Add(max); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		last, _ = s.ask(ctx, "GET", "no-such-job")
		if strings.HasSuffix(last, "(via "+node+")") {
			return
		}
	}
	t.Fatalf("%s not answering on %s within %v (last answer %q)", node, s.bed.RBServiceIP, max, last)
}

// master is the rb node answering on the service IP now ("" if none).
func (s *poolSite) master(ctx context.Context) string {
	out, _ := s.ask(ctx, "GET", "no-such-job")
	if i := strings.LastIndex(out, "(via "); i >= 0 {
		return strings.TrimSuffix(out[i+5:], ")")
	}
	return ""
}

// jobLoad is one rb-submit run on ui.
type jobLoad struct {
	site   *poolSite
	prefix string
	log    string
}

// submit starts rb-submit on ui: jobs <prefix>-<n> through the rb service
// IP, one every 100 ms, for at most max.
func (s *poolSite) submit(t testing.TB, prefix string, max time.Duration, extra ...string) *jobLoad {
	t.Helper()
	l := &jobLoad{site: s, prefix: prefix, log: "/var/log/rb-submit-" + prefix + ".log"}
	argv := append([]string{sbSubmit, "-addr", s.bed.RBServiceIP + ":" + sbJobdPort, "-prefix", prefix, "-log", l.log,
		"-for", max.String(), "-every", "100ms"}, extra...)
	if err := s.bed.Client.Start(context.Background(), "submit-"+prefix, argv...); err != nil {
		t.Fatal(err)
	}
	return l
}

// attempts reads rb-submit's log so far.
func (l *jobLoad) attempts(t testing.TB) []standins.Attempt {
	t.Helper()
	b, err := l.site.bed.Client.ReadFile(l.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	as, err := standins.ParseSubmitLog(b)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// stop ends rb-submit (the attempts in flight finish) and returns its log.
func (l *jobLoad) stop(t testing.TB) []standins.Attempt {
	t.Helper()
	if err := l.site.bed.Client.Stop("submit-" + l.prefix); err != nil {
		t.Fatal(err)
	}
	return l.attempts(t)
}

// waitAcks waits (bounded) until n more jobs than now were acknowledged.
func (l *jobLoad) waitAcks(t testing.TB, n int, max time.Duration) {
	t.Helper()
	base := len(standins.Acked(l.attempts(t)))
	for end := time.Now().Add(max); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if len(standins.Acked(l.attempts(t))) >= base+n {
			return
		}
	}
	t.Fatalf("rb-submit %s: not %d more acknowledged jobs within %v", l.prefix, n, max)
}

// answeredAgain waits (bounded by sbAnswerBound) for the first
// acknowledgement of a submission sent after at, and returns how long after
// at it came and which node gave it.
func (l *jobLoad) answeredAgain(t testing.TB, at time.Time, what string) (time.Duration, string) {
	t.Helper()
	for end := at.Add(sbAnswerBound); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if a, ok := standins.FirstAckAfter(l.attempts(t), at); ok {
			t.Logf("%s: the user's submissions acknowledged again after %.1fs (by %s)", what, a.End.Sub(at).Seconds(), a.Node)
			return a.End.Sub(at), a.Node
		}
	}
	var fails []string
	for _, a := range l.attempts(t) {
		if !a.OK && a.Start.After(at) {
			fails = append(fails, a.Err)
		}
	}
	if len(fails) > 5 {
		fails = fails[len(fails)-5:]
	}
	t.Fatalf("%s: no submission acknowledged within %v (README bound); last failures: %s", what, sbAnswerBound, strings.Join(fails, "; "))
	return 0, ""
}

// dbHosts are the hosts whose MariaDB holds the L&B rows now.
func (s *poolSite) dbHosts() []*testbed.Host { return s.bed.Members[:s.members] }

// checkJobs looks for every acknowledged job: its sandbox through each rb
// node's shared mount, its L&B row in each database host; it returns the
// problems found (empty: every job there, as acknowledged).
func (s *poolSite) checkJobs(t testing.TB, prefix string, acked []standins.Attempt) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var problems []string
	var files map[string]string
	for i, n := range s.bed.Nodes {
		f, err := standins.ReadSandboxes(ctx, n, sbJobsDir, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			files = f
		}
		for _, p := range standins.CheckJobs(acked, f, nil) {
			if !strings.Contains(p, "L&B row") {
				problems = append(problems, "through "+n.Name+"'s mount: "+p)
			}
		}
	}
	for _, h := range s.dbHosts() {
		rows, err := standins.ReadLBRows(ctx, h, "lbserver20", prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range standins.CheckJobs(acked, files, rows) {
			if strings.Contains(p, "L&B row") {
				problems = append(problems, "in "+h.Name+"'s database: "+p)
			}
		}
	}
	return problems
}

// requireJobs fails t unless every acknowledged job is found, and unless
// there were at least min of them (a run that acknowledged nothing proves
// nothing).
func (s *poolSite) requireJobs(t testing.TB, prefix string, as []standins.Attempt, min int) {
	t.Helper()
	acked := standins.Acked(as)
	if len(acked) < min {
		t.Fatalf("%s: only %d of %d submissions acknowledged, want at least %d", prefix, len(acked), len(as), min)
	}
	problems := s.checkJobs(t, prefix, acked)
	for i, p := range problems {
		if i == 20 {
			t.Errorf("... and %d more", len(problems)-20)
			break
		}
		t.Errorf("ACKNOWLEDGED JOB LOST: %s", p)
	}
	byNode := map[string]int{}
	for _, a := range acked {
		byNode[a.Node]++
	}
	t.Logf("%s: %d submissions, %d acknowledged (%v), all found: %v", prefix, len(as), len(acked), byNode, len(problems) == 0)
}

// heal brings a crashed box back (boot: fstab mounts, the init scripts
// gridha enabled) and then requires the site to be whole: `gridha verify`
// exit 0, at once or after one `gridha install` run (a second run needed
// fails the test). It returns which.
func (s *poolSite) heal(t testing.TB, h *testbed.Host, crashed bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if crashed {
		out, err := h.Boot(ctx)
		if err != nil {
			t.Fatalf("boot %s: %v\n%s", h.Name, err, out)
		}
		t.Logf("%s booted:\n%s", h.Name, out)
	}
	// The box's own daemons settle first (hagd's election: ΔT1; GlusterFS
	// and Galera reconnecting): a few verifies over about 15 s.
	var r cliResult
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(3 * time.Second) {
		if r = s.gridha(t, 2*time.Minute, "verify"); r.code == 0 {
			return "by itself"
		}
	}
	how := "on the next install run"
	if r = s.gridha(t, 5*time.Minute, "install", "state-server", "rb-node"); r.code != 0 {
		// The acceptance asks for one run. (Seen before the fix in
		// galeraStartScript: a crashed member's Galera join reported
		// "mariadbd exited" while mariadbd was still being launched.)
		// The members' MariaDB logs, then a second run, so that the rest
		// of the test still says what it can.
		t.Errorf("NOT HEALED BY ONE RUN: install after %s came back: exit %d", h.Name, r.code)
		for _, m := range s.bed.Members {
			out, _ := m.Sh(ctx, "tail -n 60 /var/log/mysql/error.log; echo '--- gridha-start.log'; tail -n 20 /var/log/mysql/gridha-start.log; echo '--- grastate.dat'; cat /var/lib/mysql/grastate.dat")
			t.Logf("%s:\n%s", m.Name, out)
		}
		if r = s.gridha(t, 5*time.Minute, "install", "state-server", "rb-node"); r.code != 0 {
			t.Fatalf("install after %s came back, twice: exit %d", h.Name, r.code)
		}
		how = "on the second install run"
	}
	if r = s.gridha(t, 2*time.Minute, "verify"); r.code != 0 {
		t.Fatalf("verify after the install that healed %s: exit %d", h.Name, r.code)
	}
	return how
}

// TestJobHarnessSingleServerOnBed proves the harness on today's layout
// (one state server, sshfs): while the user on ui submits jobs through the
// rb service IP, the rb master crashes (every process but init and sshd
// killed with SIGKILL) and, later, the new master's cable is cut; each time
// the submissions are acknowledged again within sbAnswerBound, the box
// comes back (boot, then verify clean by itself or after one install), and
// afterwards every acknowledged job's sandbox is found through both rb
// nodes' mounts and its L&B row in fs1's database. The checker is shown to
// fail on a job that was acknowledged but never written.
func TestJobHarnessSingleServerOnBed(t *testing.T) {
	s := sharedPool.get(t)
	s.single(t)
	ctx := context.Background()
	load := s.submit(t, "single", 5*time.Minute)
	load.waitAcks(t, 10, 60*time.Second)

	m := s.master(ctx)
	if m != "rb1" {
		t.Fatalf("master before the faults: %q, want rb1", m)
	}
	rb1 := s.bed.Host("rb1")
	killed, err := rb1.Crash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	t.Logf("rb1 crashed; killed:\n%s", killed)
	if out, _ := rb1.Sh(ctx, "pgrep -x gridha; pgrep -x rb-jobd; pgrep -x sshfs; true"); strings.TrimSpace(out) != "" {
		t.Fatalf("rb1 after the crash: hagd, rb-jobd or sshfs still running: %s", out)
	}
	if _, by := load.answeredAgain(t, at, "rb master rb1 crashed"); by != "rb2" {
		t.Errorf("after rb1 crashed, acknowledged by %s, want rb2", by)
	}
	t.Logf("rb1 healed %s", s.heal(t, rb1, true))
	// rb1 ranks first: it takes the group back (ordered handover).
	s.waitServed(t, "rb1", 60*time.Second)
	load.waitAcks(t, 5, 60*time.Second)

	if err := rb1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	if _, by := load.answeredAgain(t, at, "rb master rb1's cable cut"); by != "rb2" {
		t.Errorf("after rb1's cable was cut, acknowledged by %s, want rb2", by)
	}
	load.waitAcks(t, 5, 60*time.Second)
	if err := rb1.LinkUp(); err != nil {
		t.Fatal(err)
	}
	t.Logf("rb1 healed %s", s.heal(t, rb1, false))
	load.waitAcks(t, 5, 60*time.Second)

	as := load.stop(t)
	s.requireJobs(t, "single", as, 30)

	// The checker fails on a job acknowledged but not written (a test that
	// cannot fail is a defect).
	ghost := standins.Attempt{ID: "single-999999", OK: true, Node: "rb1", Payload: "sandbox-never-written"}
	if p := s.checkJobs(t, "single", []standins.Attempt{ghost}); len(p) != 3 {
		t.Errorf("checker on a job never written: %q, want its sandbox missing on rb1 and rb2 and its row missing on fs1", p)
	}
	if r := s.gridha(t, 2*time.Minute, "verify"); r.code != 0 {
		t.Errorf("verify at the end: exit %d", r.code)
	}
	if t.Failed() {
		for _, h := range s.bed.Nodes {
			out, _ := h.Sh(ctx, "tail -n 40 /var/log/hagd.log; echo ---; tail -n 20 /var/log/lcg-ha-service.log; echo ---; tail -n 5 /var/log/rb-jobd.log")
			t.Logf("%s:\n%s", h.Name, out)
		}
	}
}

// stateManifest is what the user's state is on the site: below root on h
// (the export on the single server, the shared mount on an rb node), every
// path's type, mode, owner and (files) size, mtime and SHA-256, symlinks'
// targets (gridha's own .gridha-* bookkeeping left out); and per L&B table
// of every database host its row count (hagd's lease table left out).
func (s *poolSite) stateManifest(t testing.TB, h *testbed.Host, root string) (files string, rows map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := h.Sh(ctx, `cd '`+root+`' && find . -mindepth 1 \( -name '.gridha-*' -o -name '`+convPrefix+`-*' \) -prune -o \( -type f -printf '%y %m %U:%G %s %T@ %p ' -exec sh -c 'sha256sum < "$1" | cut -c1-64' sh {} \; \) -o \( -type l -printf '%y %U:%G %p -> %l\n' \) -o -printf '%y %m %U:%G %p\n' | sort`)
	if err != nil {
		t.Fatalf("manifest of %s on %s: %v\n%s", root, h.Name, err, out)
	}
	rows = map[string]string{}
	for _, h := range s.dbHosts() {
		// hagd's lease rows are hagd's, not the L&B's (the pool adds its
		// own group's).
		tables, err := h.MySQL(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lbserver20' AND table_name NOT LIKE 'hagd%' ORDER BY table_name")
		if err != nil {
			t.Fatalf("%s: tables of lbserver20: %v", h.Name, err)
		}
		var counts []string
		for _, tb := range strings.Fields(tables) {
			where := ""
			if tb == "jobs" {
				// the stand-in's table: the conversion's own jobs are
				// checked one by one.
				where = " WHERE id NOT LIKE '" + convPrefix + "-%'"
			}
			n, err := h.MySQL(ctx, "SET SESSION wsrep_sync_wait = 1; SELECT COUNT(*) FROM lbserver20.`"+tb+"`"+where)
			if err != nil {
				t.Fatalf("%s: count lbserver20.%s: %v", h.Name, tb, err)
			}
			counts = append(counts, tb+"="+strings.TrimSpace(n))
		}
		rows[h.Name] = strings.Join(counts, " ")
	}
	return out, rows
}

// poolFaultBoxes are the boxes TestStatePoolOnBed crashes and cuts off in
// turn (fs1 first: the pool's hagd group ranks it first for the database
// service IP).
var poolFaultBoxes = []string{"fs1", "fs2", "fs3", "rb master"}

// sbPoolVolume is the pool's GlusterFS volume (the inventory's default).
const sbPoolVolume = "rbstate"

// pool converts the site to the 3-host pool (from the single-server layout,
// installed first if the bed is fresh) with one install run (`gridha
// install state-server rb-node`), the user's state and L&B rows in place:
// the state (the export on fs1 before, rb1's mount after) and every L&B
// table's row count (on every pool member after) are the same before and
// after, rb1 mounts GlusterFS and serves again, verify is clean.
func (s *poolSite) pool(t testing.TB) {
	t.Helper()
	if s.members == 3 {
		return
	}
	s.single(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// State the harness did not write: owners, a private 0600 file, a
	// symlink and a hard link, as a proxy store has them.
	if out, err := s.bed.Host("rb1").Sh(ctx, `cd /var/myproxy && printf 'proxy-of-501\n' > p501 && chown 501:501 p501 && chmod 0600 p501 &&
touch -d '2005-06-01 12:00:00' p501 && ln -f p501 p501.hard && ln -sf p501 current`); err != nil {
		t.Fatalf("rb1: state of its own: %v %s", err, out)
	}
	// Before: the export on fs1 as it is (sshfs caches attributes on the
	// nodes); after: what rb1 sees through its GlusterFS mount.
	// The user submits jobs the whole time (prefix convPrefix, left out of
	// the manifests: they are checked job by job at the end).
	load := s.submit(t, convPrefix, 15*time.Minute)
	load.waitAcks(t, 5, 60*time.Second)
	before, rowsBefore := s.stateManifest(t, s.bed.Members[0], "/srv/rb-state")
	s.inventory(t, 3)
	// hagd runs on both nodes (rb1 master, serving): the run itself stops
	// it for the switch and starts it again at the end.
	for _, n := range s.bed.Nodes {
		if out, err := n.Sh(ctx, "/etc/init.d/hagd status"); err != nil {
			t.Fatalf("%s before the conversion: hagd not running: %v %s", n.Name, err, out)
		}
	}
	start := time.Now()
	r := s.gridha(t, 10*time.Minute, "install", "state-server", "rb-node")
	if r.code != 0 {
		load.stop(t)
		t.Fatalf("install state-server rb-node converting fs1 into a pool of fs1-fs3: exit %d", r.code)
	}
	t.Logf("single server → pool: one install run, %.1fs", time.Since(start).Seconds())
	s.members = 3
	after, rowsAfter := s.stateManifest(t, s.bed.Host("rb1"), "/mnt/rb-state")
	if before != after {
		t.Errorf("state through rb1's mount changed by the conversion:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, m := range s.bed.Members {
		if rowsAfter[m.Name] != rowsBefore["fs1"] {
			t.Errorf("L&B row counts on %s after the conversion: %s, on fs1 before: %s", m.Name, rowsAfter[m.Name], rowsBefore["fs1"])
		}
	}
	if out, _ := s.bed.Host("rb1").Sh(ctx, "awk '$2 == \"/mnt/rb-state\" {print $3}' /proc/mounts"); strings.TrimSpace(out) != "fuse.glusterfs" {
		t.Errorf("rb1's /mnt/rb-state after the conversion is %q, want fuse.glusterfs", strings.TrimSpace(out))
	}
	s.waitServed(t, "rb1", 120*time.Second)
	// Never two masters: the service IP on one rb node only.
	holders := 0
	for _, n := range s.bed.Nodes {
		if out, _ := n.Sh(ctx, "ip -o addr show | grep -c ' "+s.bed.RBServiceIP+"/' || true"); strings.TrimSpace(out) != "0" {
			holders++
		}
	}
	if holders != 1 {
		t.Errorf("after the conversion the rb service IP is on %d nodes, want 1", holders)
	}
	load.waitAcks(t, 5, 90*time.Second)
	as := load.stop(t)
	var afterConv int
	for _, a := range standins.Acked(as) {
		if a.Start.After(start) {
			afterConv++
		}
	}
	t.Logf("during the conversion: %d submissions acknowledged after the run started", afterConv)
	s.requireJobs(t, convPrefix, as, 10)
	if r := s.gridha(t, 3*time.Minute, "verify"); r.code != 0 {
		t.Errorf("verify of the pool after the conversion: exit %d", r.code)
	}
}

// convPrefix names the jobs submitted while the site turns into a pool.
const convPrefix = "conv"

// poolWhole waits (bounded) until the pool is whole as seen on its hosts:
// every member's Galera in the Primary component with 3 members, Synced;
// the volume with no pending heal and no split-brain entry.
func (s *poolSite) poolWhole(t testing.TB, max time.Duration) {
	t.Helper()
	ctx := context.Background()
	var why string
	for end := time.Now().Add(max); time.Now().Before(end); time.Sleep(time.Second) {
		why = ""
		for _, m := range s.bed.Members {
			out, err := m.MySQL(ctx, "SELECT GROUP_CONCAT(CONCAT(variable_name, '=', variable_value) ORDER BY variable_name SEPARATOR ' ') FROM information_schema.global_status WHERE variable_name IN ('wsrep_cluster_size', 'wsrep_cluster_status', 'wsrep_local_state_comment')")
			// (information_schema spells the names in capitals)
			if got := strings.TrimSpace(out); err != nil || !strings.EqualFold(got, "wsrep_cluster_size=3 wsrep_cluster_status=Primary wsrep_local_state_comment=Synced") {
				why += fmt.Sprintf("%s: Galera %q %v; ", m.Name, got, err)
			}
		}
		out, err := s.bed.Members[0].Sh(ctx, "gluster volume heal "+sbPoolVolume+" info summary")
		if err != nil {
			why += fmt.Sprintf("heal info: %v; ", err)
		}
		for _, l := range strings.Split(out, "\n") {
			k, v, ok := strings.Cut(l, ":")
			// Per brick: "Status: Connected", "Total Number of entries: 0",
			// "Number of entries in split-brain: 0" (a brick down: "-").
			if k = strings.TrimSpace(k); ok && (k == "Status" || k == "Total Number of entries" || k == "Number of entries in split-brain") {
				if v = strings.TrimSpace(v); v != "0" && v != "Connected" {
					why += fmt.Sprintf("heal info %s: %s; ", k, v)
				}
			}
		}
		if why == "" {
			return
		}
	}
	t.Fatalf("pool not whole within %v: %s", max, why)
}

// splitBrain is the number of split-brain entries on the volume.
func (s *poolSite) splitBrain(t testing.TB) string {
	t.Helper()
	out, err := s.bed.Members[0].Sh(context.Background(), "gluster volume heal "+sbPoolVolume+" info split-brain | awk -F: '/Number of entries in split-brain/ {n += $2} END {print n+0}'")
	if err != nil {
		t.Fatalf("split-brain info: %v %s", err, out)
	}
	return strings.TrimSpace(out)
}

// TestStatePoolOnBed is issue 13's acceptance on the shared bed: the
// single-server site (after TestJobHarnessSingleServerOnBed, or installed
// here) converted to the pool by one install run (Upgrade: state and row
// counts unchanged); then, with the user submitting jobs the whole time,
// each box in turn (fs1, fs2, fs3, the rb master) crashed, then each one's
// cable cut: every time the user's submissions are acknowledged again within
// sbAnswerBound, the box comes back and the site is whole (verify exit 0,
// by itself or after one install; Galera 3 members Synced and no pending
// heal on the hosts); two of the three pool members cut off: the remaining
// one refuses writes (no submission acknowledged, a write through the
// mount fails; the INSERT on fs1 alone is TestStatePoolDBOnBed's),
// and after the cables are back no split-brain entry;
// at the end every acknowledged job is found, sandbox through both rb
// nodes' mounts and L&B row on each of fs1-fs3.
func TestStatePoolOnBed(t *testing.T) {
	s := sharedPool.get(t)
	ctx := context.Background()
	if !t.Run("Upgrade", func(t *testing.T) { s.pool(t) }) {
		t.FailNow()
	}
	s.poolWhole(t, 3*time.Minute)
	load := s.submit(t, "pool", 20*time.Minute)
	load.waitAcks(t, 10, 60*time.Second)
	defer func() {
		if t.Failed() {
			for _, h := range append(append([]*testbed.Host{}, s.bed.Members...), s.bed.Nodes...) {
				out, _ := h.Sh(ctx, "tail -n 25 /var/log/hagd.log 2>/dev/null; tail -n 15 /var/log/lcg-ha-service.log 2>/dev/null; tail -n 15 /var/log/mysql/*.err 2>/dev/null; tail -n 5 /var/log/rb-jobd.log 2>/dev/null")
				t.Logf("%s:\n%s", h.Name, out)
			}
		}
	}()
	box := func(name string) *testbed.Host {
		if name == "rb master" {
			m := s.master(ctx)
			if m == "" {
				t.Fatal("no rb master answering")
			}
			return s.bed.Host(m)
		}
		return s.bed.Host(name)
	}
	for _, fault := range []string{"Crash", "CableCut"} {
		for _, name := range poolFaultBoxes {
			t.Run(fault+"/"+strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
				load.waitAcks(t, 5, 90*time.Second)
				h := box(name)
				var at time.Time
				if fault == "Crash" {
					killed, err := h.Crash(ctx)
					if err != nil {
						t.Fatal(err)
					}
					at = time.Now()
					t.Logf("%s crashed; killed: %s", h.Name, strings.Join(strings.Fields(killed), " "))
				} else {
					if err := h.LinkDown(); err != nil {
						t.Fatal(err)
					}
					at = time.Now()
				}
				load.answeredAgain(t, at, fault+" of "+h.Name)
				load.waitAcks(t, 5, 90*time.Second)
				if fault == "CableCut" {
					if err := h.LinkUp(); err != nil {
						t.Fatal(err)
					}
				}
				t.Logf("%s healed %s", h.Name, s.heal(t, h, fault == "Crash"))
				s.poolWhole(t, 3*time.Minute)
			})
		}
	}

	t.Run("TwoOfThreeCut", func(t *testing.T) {
		fs2, fs3 := s.bed.Members[1], s.bed.Members[2]
		load.waitAcks(t, 5, 90*time.Second)
		for _, h := range []*testbed.Host{fs2, fs3} {
			if err := h.LinkDown(); err != nil {
				t.Fatal(err)
			}
		}
		cut := time.Now()
		// Quorum lost: give the pool and the clients time to notice
		// (Galera's suspect timeout, GlusterFS's ping-timeout).
		time.Sleep(20 * time.Second)
		probeAt := time.Now()
		// (Without a Primary database the rb master also loses its hagd
		// lease and stops: the mount is probed on rb1, master or not.)
		if out, err := s.bed.Host("rb1").Sh(ctx, "timeout 30 sh -c 'echo divergent > "+sbJobsDir+"/../minority-write'"); err == nil {
			t.Errorf("rb1 wrote through its mount with 2 of 3 pool members cut off: %s", out)
		}
		time.Sleep(10 * time.Second)
		for _, a := range load.attempts(t) {
			if a.OK && a.Start.After(probeAt) {
				t.Errorf("job %s acknowledged by %s at %s with 2 of 3 pool members cut off", a.ID, a.Node, a.End.Format("15:04:05.000"))
			}
		}
		for _, h := range []*testbed.Host{fs2, fs3} {
			if err := h.LinkUp(); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("fs2 and fs3 cut off for %.0fs", time.Since(cut).Seconds())
		load.answeredAgain(t, time.Now(), "fs2 and fs3 back")
		t.Logf("pool healed %s", s.heal(t, fs2, false))
		s.poolWhole(t, 3*time.Minute)
		if n := s.splitBrain(t); n != "0" {
			t.Errorf("%s split-brain entries after the partition healed", n)
		}
		if out, _ := s.bed.Host("rb1").Sh(ctx, "cat "+sbJobsDir+"/../minority-write 2>&1"); strings.Contains(out, "divergent") {
			t.Errorf("the write tried through the minority's mount is there after healing")
		}
	})

	load.waitAcks(t, 5, 90*time.Second)
	s.requireJobs(t, "pool", load.stop(t), 50)
}
