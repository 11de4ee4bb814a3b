package hagd

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/testbed"
)

// The integration tests run this test binary on test-bed hosts: copied as
// .../gridha it is `gridha hagd ...` (the same Command the real binary
// mounts); copied as .../hagd-inject it sends forged and replayed packets.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "gridha":
		app := &cli.App{Name: "gridha", Commands: []*cli.Command{Command()}}
		if err := app.Run(os.Args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "hagd-ipwatch", "hagd-echo":
		run := ipWatch
		if filepath.Base(os.Args[0]) == "hagd-echo" {
			run = echoServe
		}
		if err := run(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, filepath.Base(os.Args[0])+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "hagd-inject":
		if err := inject(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "hagd-inject:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	itBin     = "/opt/hagd-test/gridha"
	itInject  = "/opt/hagd-test/hagd-inject"
	itConf    = "/opt/lcg/etc/hagd.conf"
	itKey     = "/opt/lcg/etc/hagd.key"
	itPass    = "/opt/lcg/etc/hagd.mysql"
	itScript  = "/opt/lcg/sbin/hagd-test-service"
	itSvcLog  = "/var/log/hagd-service.log"
	itFlagDir = "/etc/hagd-test"
)

// The service script of the tests: it records every operation with a
// timestamp (the hosts share this machine's clock, so the logs merge), keeps
// the "service" as a file in /run, and misbehaves on request (flag files).
const itServiceScript = `#!/bin/sh
op=$1 g=$2
log() { echo "$(date +%s.%N) $HAGD_NODE $1 $g" >> ` + itSvcLog + `; }
case $op in
start)
	log start-begin
	[ -e ` + itFlagDir + `/hang-start ] && sleep 1000
	[ -e ` + itFlagDir + `/fail-start ] && exit 1
	touch /run/hagd-svc-$g
	log start-end ;;
stop)
	log stop-begin
	rm -f /run/hagd-svc-$g
	log stop-end ;;
status)
	[ -e ` + itFlagDir + `/fail-status ] && exit 3
	[ -e /run/hagd-svc-$g ] ;;
*) exit 2 ;;
esac
`

type timing struct {
	name                                  string
	hb, dt1, dt2, ttl, renew, ltimeout    time.Duration
	stopTimeout, timeout, status, backoff time.Duration
}

// tuned is what the tests and the tuned benchmark use; defaults is hagd's.
var (
	tuned = timing{name: "tuned", hb: 250 * time.Millisecond, dt1: 1200 * time.Millisecond, dt2: 400 * time.Millisecond,
		ttl: 2500 * time.Millisecond, renew: 400 * time.Millisecond, ltimeout: 400 * time.Millisecond,
		stopTimeout: time.Second, timeout: 3 * time.Second, status: time.Second, backoff: 10 * time.Second}
	defaults = timing{name: "default"}
	// lenient is tuned with more slack, for the functional tests on a
	// loaded machine (a late heartbeat must not look like a death).
	lenient = timing{name: "lenient", hb: 250 * time.Millisecond, dt1: 2 * time.Second, dt2: 500 * time.Millisecond,
		ttl: 3 * time.Second, renew: 500 * time.Millisecond, ltimeout: 500 * time.Millisecond,
		stopTimeout: time.Second, timeout: 3 * time.Second, status: time.Second, backoff: 10 * time.Second}
)

type cluster struct {
	t     testing.TB
	bed   *testbed.Bed
	db    *testbed.Host
	nodes map[string]*testbed.Host
	names []string
	tm    timing
}

func newCluster(t testing.TB) *cluster {
	if testing.Short() {
		t.Skip("integration test (short mode)")
	}
	bed := testbed.New(t, "db", "n1", "n2", "n3")
	c := &cluster{t: t, bed: bed, db: bed.MustHost("db"), nodes: map[string]*testbed.Host{}, names: []string{"n1", "n2", "n3"}}
	ctx := context.Background()
	if err := c.db.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	pass := "hagd-lease-pw-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := c.db.MySQL(ctx, "CREATE DATABASE hagd; CREATE USER 'hagd'@'%' IDENTIFIED BY '"+pass+"'; GRANT ALL ON hagd.* TO 'hagd'@'%';"); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append([]string{"db"}, c.names...) {
		h := bed.MustHost(n)
		if n != "db" {
			c.nodes[n] = h
		}
		if _, err := h.Exec(ctx, "mkdir", "-p", "/opt/hagd-test", "/opt/lcg/etc", "/opt/lcg/sbin", itFlagDir); err != nil {
			t.Fatal(err)
		}
		name := itBin
		if n == "db" {
			name = itInject
		}
		must(t, h.WriteFile(name, bin, 0o755))
		must(t, h.WriteFile(itKey, []byte("integration-test-shared-key-0123456789\n"), 0o600))
		must(t, h.WriteFile(itPass, []byte(pass+"\n"), 0o600))
		must(t, h.WriteFile(itScript, []byte(itServiceScript), 0o755))
	}
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// setup stops every hagd, clears logs, flags and leases, and writes each
// node's hagd.conf from the template (groups: node -> "g:rank,...").
func (c *cluster) setup(tm timing, groups map[string]string) {
	c.t.Helper()
	ctx := context.Background()
	c.tm = tm
	for _, n := range c.names {
		h := c.nodes[n]
		must(c.t, h.Stop("hagd"))
		if _, err := h.Sh(ctx, "rm -f "+itSvcLog+" /run/hagd-svc-* "+itFlagDir+"/* /var/log/testbed-hagd.log"); err != nil {
			c.t.Fatal(err)
		}
		gs, ok := groups[n]
		if !ok {
			continue
		}
		var gl []Group
		for _, f := range strings.Split(gs, ",") {
			name, r, _ := strings.Cut(f, ":")
			rank, _ := strconv.Atoi(r)
			gl = append(gl, Group{Name: name, Rank: rank})
		}
		debug := 3
		ct := ConfigTemplate{ID: n, Groups: gl, Script: itScript, KeyFile: itKey, Debug: &debug,
			MySQLHost: c.db.Addr, MySQLUser: "hagd", MySQLPasswordFile: itPass,
			Timeout: tm.timeout, StopTimeout: tm.stopTimeout, DT1: tm.dt1, DT2: tm.dt2, Heartbeat: tm.hb,
			StatusInterval: tm.status, Backoff: tm.backoff, LeaseTTL: tm.ttl, LeaseRenew: tm.renew, LeaseTimeout: tm.ltimeout}
		conf, err := ct.Render()
		must(c.t, err)
		must(c.t, h.WriteFile(itConf, conf, 0o644))
	}
	if _, err := c.db.MySQL(ctx, "DELETE FROM hagd.hagd_lease"); err != nil && !strings.Contains(err.Error(), "doesn't exist") {
		c.t.Fatal(err)
	}
}

// params reads back what a node's daemon runs with.
func (c *cluster) params() *Config {
	b, err := c.nodes["n1"].ReadFile(itConf)
	must(c.t, err)
	cfg, err := ParseConfig(itConf, b)
	must(c.t, err)
	return cfg
}

func (c *cluster) start(n string) {
	c.t.Helper()
	must(c.t, c.nodes[n].Start(context.Background(), "hagd", itBin, "hagd", "run", "-c", itConf))
}

func (c *cluster) startAll(names ...string) {
	c.t.Helper()
	for _, n := range names {
		c.start(n)
	}
}

func (c *cluster) status(n string) *StatusReply {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := c.nodes[n].Exec(ctx, itBin, "hagd", "status", "--json", "-c", itConf)
	if err != nil {
		return nil
	}
	var s StatusReply
	if json.Unmarshal(out, &s) != nil {
		return nil
	}
	return &s
}

func groupOf(s *StatusReply, g string) *GroupStatus {
	if s == nil {
		return nil
	}
	for i := range s.Groups {
		if s.Groups[i].Group == g {
			return &s.Groups[i]
		}
	}
	return nil
}

// waitMaster waits (bounded) until node n reports itself master of g.
func (c *cluster) waitMaster(g, n string, max time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if gs := groupOf(c.status(n), g); gs != nil && gs.State == "master" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.dumpLogs()
	c.t.Fatalf("%s did not become master of %s within %v", n, g, max)
}

func (c *cluster) dumpLogs() {
	for _, n := range c.names {
		b, _ := c.nodes[n].ReadFile("/var/log/testbed-hagd.log")
		c.t.Logf("---- %s hagd log (tail)\n%s", n, tail(string(b), 40))
	}
	c.t.Logf("---- service events\n%s", c.eventsText())
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

type svcEvent struct {
	at    time.Time
	node  string
	what  string
	group string
}

// events merges the service scripts' logs of every node.
func (c *cluster) events() []svcEvent {
	var out []svcEvent
	for _, n := range c.names {
		b, err := c.nodes[n].ReadFile(itSvcLog)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 4 {
				continue
			}
			sec, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				continue
			}
			out = append(out, svcEvent{at: time.Unix(0, int64(sec*1e9)), node: f[1], what: f[2], group: f[3]})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

func (c *cluster) eventsText() string {
	var b strings.Builder
	for _, e := range c.events() {
		fmt.Fprintf(&b, "%s %s %s %s\n", e.at.Format("15:04:05.000"), e.node, e.what, e.group)
	}
	return b.String()
}

// firstAfter is the first event matching after t.
func (c *cluster) firstAfter(t time.Time, node, what, group string) (svcEvent, bool) {
	for _, e := range c.events() {
		if e.at.After(t) && e.node == node && e.what == what && e.group == group {
			return e, true
		}
	}
	return svcEvent{}, false
}

// checkNoOverlap asserts from the merged service logs that no two nodes
// ran a group's service at once: a node runs it from start-begin to the
// next stop-end. excused nodes (hagd SIGKILLed: their service was left
// running on purpose) are skipped.
func (c *cluster) checkNoOverlap(excused ...string) {
	c.t.Helper()
	type iv struct {
		node     string
		from, to time.Time
	}
	open := map[string]map[string]time.Time{} // group -> node -> start
	var ivs = map[string][]iv{}
	end := time.Now().Add(time.Hour)
	for _, e := range c.events() {
		if contains(excused, e.node) {
			continue
		}
		if open[e.group] == nil {
			open[e.group] = map[string]time.Time{}
		}
		switch e.what {
		case "start-begin":
			if _, ok := open[e.group][e.node]; !ok {
				open[e.group][e.node] = e.at
			}
		case "stop-end":
			if from, ok := open[e.group][e.node]; ok {
				ivs[e.group] = append(ivs[e.group], iv{e.node, from, e.at})
				delete(open[e.group], e.node)
			}
		}
	}
	for g, m := range open {
		for n, from := range m {
			ivs[g] = append(ivs[g], iv{n, from, end})
		}
	}
	for g, list := range ivs {
		for i := range list {
			for j := i + 1; j < len(list); j++ {
				a, b := list[i], list[j]
				if a.node != b.node && a.from.Before(b.to) && b.from.Before(a.to) {
					c.t.Errorf("TWO MASTERS of %s: %s ran it %s-%s and %s %s-%s\n%s", g,
						a.node, a.from.Format("15:04:05.000"), a.to.Format("15:04:05.000"),
						b.node, b.from.Format("15:04:05.000"), b.to.Format("15:04:05.000"), c.eventsText())
				}
			}
		}
	}
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func (c *cluster) leaseHolder(g string) string {
	out, err := c.db.MySQL(context.Background(), "SELECT holder FROM hagd.hagd_lease WHERE grp='"+g+"' AND expires > NOW(6)")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(out)
}

func TestIntegration(t *testing.T) {
	c := newCluster(t)
	three := map[string]string{"n1": "rb:30", "n2": "rb:20", "n3": "rb:10"}

	t.Run("KillMaster", func(t *testing.T) {
		c.t = t
		c.setup(lenient, three)
		c.startAll("n1", "n2", "n3")
		c.waitMaster("rb", "n1", 20*time.Second)
		if h := c.leaseHolder("rb"); h != "n1" {
			t.Errorf("lease row holder %q, want n1", h)
		}
		time.Sleep(time.Second)
		killed := time.Now()
		must(t, c.nodes["n1"].Kill("hagd"))
		c.waitMaster("rb", "n2", 30*time.Second)
		e, ok := c.firstAfter(killed, "n2", "start-end", "rb")
		if !ok {
			t.Fatalf("no start on n2 in the service log:\n%s", c.eventsText())
		}
		p := c.params()
		took := e.at.Sub(killed)
		// The backup starts within ΔT1+ΔT2 (or, the SIGKILLed master's lease
		// being still valid, within the lease TTL) plus the script's time.
		bound := max(p.DT1+p.DT2, p.LeaseTTL) + p.Timeout + 2*time.Second
		t.Logf("kill -9 of the master -> service up on n2 after %v (ΔT1+ΔT2 %v, lease TTL %v)", took.Round(time.Millisecond), p.DT1+p.DT2, p.LeaseTTL)
		if took > bound {
			t.Errorf("n2 started %v after the kill, bound %v", took, bound)
		}
		if _, ok := c.firstAfter(killed, "n3", "start-begin", "rb"); ok {
			t.Errorf("n3 started too")
		}
		// The killed node comes back: it stops the service its dead daemon
		// left running, then (preempt = yes, the default) takes the group
		// back from n2 through an ordered handover: n2's stop ends before
		// n1's start begins.
		back := time.Now()
		c.start("n1")
		c.waitMaster("rb", "n1", 30*time.Second)
		stale, ok1 := c.firstAfter(back, "n1", "stop-end", "rb")
		n2stop, ok2 := c.firstAfter(back, "n2", "stop-end", "rb")
		n1start, ok3 := c.firstAfter(back, "n1", "start-begin", "rb")
		if !ok1 || !ok2 || !ok3 || !stale.at.Before(n1start.at) || !n2stop.at.Before(n1start.at) {
			t.Errorf("returning n1: want its stale stop and n2's stop before its start:\n%s", c.eventsText())
		}
		if gs := groupOf(c.status("n2"), "rb"); gs == nil || gs.State != "normal" || gs.Master != "n1" {
			t.Errorf("n2 after the preemption: %+v", gs)
		}
	})

	t.Run("LinkDownNoSplitBrain", func(t *testing.T) {
		c.t = t
		c.setup(lenient, three)
		c.startAll("n1", "n2", "n3")
		c.waitMaster("rb", "n1", 20*time.Second)
		time.Sleep(time.Second)
		cut := time.Now()
		must(t, c.nodes["n1"].LinkDown())
		c.waitMaster("rb", "n2", 30*time.Second)
		// the isolated master stopped by itself (its lease could not be renewed)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, ok := c.firstAfter(cut, "n1", "stop-end", "rb"); ok {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		stop, ok := c.firstAfter(cut, "n1", "stop-end", "rb")
		if !ok {
			t.Fatalf("isolated n1 never stopped:\n%s", c.eventsText())
		}
		start, _ := c.firstAfter(cut, "n2", "start-begin", "rb")
		t.Logf("link cut -> n1 stopped after %v, n2 started after %v", stop.at.Sub(cut).Round(time.Millisecond), start.at.Sub(cut).Round(time.Millisecond))
		if h := c.leaseHolder("rb"); h != "n2" {
			t.Errorf("lease row holder %q, want n2", h)
		}
		must(t, c.nodes["n1"].LinkUp())
		time.Sleep(3 * time.Second)
		c.waitMaster("rb", "n2", time.Second)
		if gs := groupOf(c.status("n1"), "rb"); gs == nil || (gs.State != "failed" && gs.State != "normal") || gs.Master != "n2" {
			t.Errorf("healed n1: %+v", gs)
		}
		c.checkNoOverlap()
	})

	t.Run("ForgedAndReplayedPackets", func(t *testing.T) {
		c.t = t
		c.setup(lenient, three)
		c.startAll("n1", "n2", "n3")
		c.waitMaster("rb", "n1", 20*time.Second)
		before := len(c.events())
		bcast := strings.TrimSuffix(c.bed.Gateway, ".1") + ".255"
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := c.db.Exec(ctx, itInject, bcast, "3333", "rb")
		t.Logf("injector: %s", out)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		c.waitMaster("rb", "n1", time.Second)
		if after := len(c.events()); after != before {
			t.Errorf("the service log changed:\n%s", c.eventsText())
		}
		for _, n := range []string{"n2", "n3"} {
			s := c.status(n)
			if s == nil {
				t.Fatalf("%s: no status", n)
			}
			gs := groupOf(s, "rb")
			t.Logf("%s counters: %v", n, s.Packets)
			if s.Packets[cntBadMAC] < 3 || s.Packets[cntReplay] < 1 || s.Packets[cntForeign] < 1 {
				t.Errorf("%s: counters %v: forged/replayed packets not all seen and dropped", n, s.Packets)
			}
			if gs.Master != "n1" || gs.State != "normal" || len(gs.Members) != 3 {
				t.Errorf("%s: %+v", n, gs)
			}
			for _, m := range gs.Members {
				if m.ID == "intruder" {
					t.Errorf("%s: forged member listed", n)
				}
			}
		}
	})

	// A restarted receiver must not accept a captured packet replayed to it
	// (peers_file): n2 restarts while n1 and n3 are frozen (so nothing
	// fresh reaches it first), then n1's captured heartbeats are replayed.
	t.Run("ReplayAfterRestart", func(t *testing.T) {
		c.t = t
		c.setup(lenient, three)
		c.startAll("n1", "n2", "n3")
		c.waitMaster("rb", "n1", 20*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if out, err := c.db.Exec(ctx, itInject, "capture", "3333", "/tmp/hagd-captured", c.nodes["n1"].Addr); err != nil {
			t.Fatalf("capture: %v %s", err, out)
		}
		time.Sleep(500 * time.Millisecond) // n2 accepts newer packets of n1 than those captured
		must(t, c.nodes["n2"].Stop("hagd"))
		for _, n := range []string{"n1", "n3"} {
			c.sh(t, n, `kill -s STOP -- "-$(cat /run/testbed/hagd.pid)"`)
		}
		frozen := true
		thaw := func() {
			if frozen {
				frozen = false
				for _, n := range []string{"n1", "n3"} {
					c.sh(t, n, `kill -s CONT -- "-$(cat /run/testbed/hagd.pid)"`)
				}
			}
		}
		defer thaw()
		c.start("n2")
		var s *StatusReply
		for end := time.Now().Add(10 * time.Second); s == nil && time.Now().Before(end); s = c.status("n2") {
			time.Sleep(50 * time.Millisecond)
		}
		if s == nil {
			t.Fatal("restarted n2 does not answer")
		}
		bcast := strings.TrimSuffix(c.bed.Gateway, ".1") + ".255"
		if out, err := c.db.Exec(ctx, itInject, "replay", bcast, "3333", "/tmp/hagd-captured"); err != nil {
			t.Fatalf("replay: %v %s", err, out)
		}
		time.Sleep(300 * time.Millisecond)
		s = c.status("n2")
		thaw()
		if s == nil {
			t.Fatal("no status from n2")
		}
		t.Logf("restarted n2 after the replay: %v", s.Packets)
		if s.Packets[cntAccepted] != 0 || s.Packets[cntReplay] < 6 {
			t.Errorf("restarted n2 accepted %d replayed packets (counted %d replays, want 6)", s.Packets[cntAccepted], s.Packets[cntReplay])
		}
		c.waitMaster("rb", "n1", 20*time.Second)
	})

	t.Run("ManualTakeover", func(t *testing.T) {
		c.t = t
		c.setup(lenient, three)
		c.startAll("n1", "n2", "n3")
		c.waitMaster("rb", "n1", 20*time.Second)
		asked := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := c.nodes["n3"].Exec(ctx, itBin, "hagd", "takeover", "-c", itConf, "rb"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		c.waitMaster("rb", "n3", 20*time.Second)
		stop, ok1 := c.firstAfter(asked, "n1", "stop-end", "rb")
		start, ok2 := c.firstAfter(asked, "n3", "start-begin", "rb")
		if !ok1 || !ok2 || !stop.at.Before(start.at) {
			t.Errorf("want n1 stop before n3 start:\n%s", c.eventsText())
		} else {
			t.Logf("manual takeover: n1 stopped %v, n3 started %v after the request",
				stop.at.Sub(asked).Round(time.Millisecond), start.at.Sub(asked).Round(time.Millisecond))
		}
		if _, ok := c.firstAfter(asked, "n2", "start-begin", "rb"); ok {
			t.Error("n2 started")
		}
		// giveup on the new master: another node takes over
		if out, err := c.nodes["n3"].Exec(ctx, itBin, "hagd", "giveup", "-c", itConf, "rb"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		c.waitMaster("rb", "n1", 20*time.Second)
		c.checkNoOverlap()
	})

	t.Run("HangingStart", func(t *testing.T) {
		c.t = t
		c.setup(lenient, three)
		must(t, c.nodes["n1"].WriteFile(itFlagDir+"/hang-start", nil, 0o644))
		begun := time.Now()
		c.startAll("n1", "n2", "n3")
		c.waitMaster("rb", "n2", 40*time.Second)
		if _, ok := c.firstAfter(begun, "n1", "start-end", "rb"); ok {
			t.Error("n1's hanging start completed?")
		}
		if _, err := c.nodes["n1"].Sh(context.Background(), "! pgrep -f '[s]leep 1000'"); err != nil {
			t.Errorf("the hanging script survives its timeout: %v", err)
		}
		if gs := groupOf(c.status("n1"), "rb"); gs == nil || gs.State != "failed" {
			t.Errorf("n1 after the failed startup: %+v", gs)
		}
		c.checkNoOverlap()
	})

	t.Run("StatusFailure", func(t *testing.T) {
		c.t = t
		c.setup(lenient, three)
		c.startAll("n1", "n2", "n3")
		c.waitMaster("rb", "n1", 20*time.Second)
		must(t, c.nodes["n1"].WriteFile(itFlagDir+"/fail-status", nil, 0o644))
		c.waitMaster("rb", "n2", 30*time.Second)
		c.checkNoOverlap()
	})

	t.Run("Multigroup", func(t *testing.T) {
		c.t = t
		c.setup(lenient, map[string]string{"n1": "g1:30", "n2": "g2:30", "n3": "g1:10,g2:10"})
		c.startAll("n1", "n2", "n3")
		c.waitMaster("g1", "n1", 20*time.Second)
		c.waitMaster("g2", "n2", 20*time.Second)
		if gs := groupOf(c.status("n3"), "g1"); gs == nil || gs.Master != "n1" {
			t.Errorf("n3 g1: %+v", gs)
		}
		must(t, c.nodes["n1"].Kill("hagd"))
		c.waitMaster("g1", "n3", 30*time.Second)
		c.waitMaster("g2", "n2", time.Second)
		must(t, c.nodes["n2"].Stop("hagd")) // clean: stop, release, goodbye
		c.waitMaster("g2", "n3", 30*time.Second)
		c.waitMaster("g1", "n3", time.Second)
		c.checkNoOverlap("n1")
	})
}

// inject runs on the db host: it captures genuine heartbeats, then sends
// junk, tampered copies, unsigned copies, a forged master claim signed with
// the wrong key, and the genuine packets again (replays).
func inject(args []string) error {
	if len(args) == 4 && args[0] == "capture" {
		return captureTo(args[1], args[2], args[3])
	}
	if len(args) == 4 && args[0] == "replay" {
		return replayFrom(args[1], args[2], args[3])
	}
	if len(args) != 3 {
		return fmt.Errorf("usage: hagd-inject BCAST PORT GROUP")
	}
	port, _ := strconv.Atoi(args[1])
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
	if err != nil {
		return err
	}
	defer pc.Close()
	var captured [][]byte
	buf := make([]byte, MaxPacket)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(captured) < 6 {
		n, _, err := pc.ReadFromUDP(buf)
		if err != nil {
			return fmt.Errorf("capture: %w (got %d)", err, len(captured))
		}
		captured = append(captured, append([]byte(nil), buf[:n]...))
	}
	// Let the senders move on, so that the copies are replays of old
	// packets, not duplicates of their latest.
	time.Sleep(time.Second)
	dst := &net.UDPAddr{IP: net.ParseIP(args[0]), Port: port}
	send := func(p []byte) error { _, err := pc.WriteToUDP(p, dst); return err }
	wrong := NewCodec([]byte("not the key of this multigroup......"), []string{args[2]})
	forged, _ := wrong.Encode(&Message{From: "intruder", Nonce: 1, Seq: 1, Time: time.Now(),
		Groups: []GroupEntry{{Group: args[2], Rank: 65535, State: StateMaster, Candidate: true}}})
	sent := 0
	for _, p := range [][]byte{[]byte("junk, not hagd"), forged} {
		if err := send(p); err != nil {
			return err
		}
		sent++
	}
	for _, p := range captured {
		t := append([]byte(nil), p...)
		t[len(t)/2] ^= 0x40
		u := p[:len(p)-macLen]
		for _, q := range [][]byte{t, u, p} {
			if err := send(q); err != nil {
				return err
			}
			sent++
		}
	}
	fmt.Printf("captured %d genuine packets; sent %d forged, tampered, unsigned and replayed\n", len(captured), sent)
	return nil
}

// BenchmarkFailover measures failover time on the test bed, from the
// induced failure to the end of the service script's start on the new
// master (taken from the merged service logs):
//
//   - default, tuned: the master's hagd is killed with SIGKILL (its service
//     is left running, as after a crash of hagd alone) and restarted as a
//     backup before the next failure;
//   - tuned-linkdown: the master's cable is cut (a host that vanishes); the
//     isolated master must stop by itself before its lease expires, and the
//     merged logs of all the runs must never show two masters.
//
// Run with:
//
//	go test -run '^$' -bench Failover -benchtime 1x ./hagd/
//
// HAGD_BENCH_FAILURES sets the number of failures per setting (default 10).
func BenchmarkFailover(b *testing.B) {
	n := 10
	if v, err := strconv.Atoi(os.Getenv("HAGD_BENCH_FAILURES")); err == nil && v > 0 {
		n = v
	}
	linkdown := tuned
	linkdown.name, linkdown.backoff = "tuned-linkdown", 3*time.Second
	c := newCluster(b)
	for _, tm := range []timing{defaults, tuned, linkdown} {
		cut := tm.name == "tuned-linkdown"
		b.Run(tm.name, func(b *testing.B) {
			c.t = b
			c.setup(tm, map[string]string{"n1": "rb:30", "n2": "rb:20", "n3": "rb:10"})
			c.startAll("n1", "n2", "n3")
			p := c.params()
			c.waitMaster("rb", "n1", p.DT1+p.DT2+p.LeaseTTL+p.Timeout+10*time.Second)
			var took []time.Duration
			for i := 0; i < n; i++ {
				master := ""
				for _, name := range c.names {
					if gs := groupOf(c.status(name), "rb"); gs != nil && gs.State == "master" {
						master = name
					}
				}
				if master == "" {
					b.Fatalf("failure %d: no master", i)
				}
				failed := time.Now()
				if cut {
					must(b, c.nodes[master].LinkDown())
				} else {
					must(b, c.nodes[master].Kill("hagd"))
				}
				var next string
				deadline := failed.Add(p.DT1 + p.DT2 + p.LeaseTTL + p.Timeout + 20*time.Second)
				for next == "" && time.Now().Before(deadline) {
					for _, name := range c.names {
						if name == master {
							continue
						}
						if e, ok := c.firstAfter(failed, name, "start-end", "rb"); ok {
							next = name
							took = append(took, e.at.Sub(failed))
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
				if next == "" {
					c.dumpLogs()
					b.Fatalf("failure %d: no new master", i)
				}
				b.Logf("failure %d: %s %s, %s serving after %v", i+1, master, map[bool]string{true: "cut off", false: "killed"}[cut],
					next, took[len(took)-1].Round(time.Millisecond))
				// The failed node returns as a backup before the next failure.
				if cut {
					must(b, c.nodes[master].LinkUp())
				} else {
					c.start(master)
				}
				settle := time.Now().Add(p.DT1 + p.StopTimeout + p.Backoff + 10*time.Second)
				for time.Now().Before(settle) {
					if gs := groupOf(c.status(master), "rb"); gs != nil && gs.State == "normal" {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			med := took[len(took)/2]
			if len(took)%2 == 0 {
				med = (took[len(took)/2-1] + took[len(took)/2]) / 2
			}
			b.ReportMetric(med.Seconds(), "median-s")
			b.ReportMetric(took[len(took)-1].Seconds(), "max-s")
			what := "kill -9 of the master's hagd"
			if cut {
				what = "master's link cut"
				c.checkNoOverlap()
			}
			fmt.Printf("hagd failover, %s (ΔT1 %v, ΔT2 %v, heartbeat %v, lease TTL %v), %d × %s: median %.2fs, max %.2fs\n",
				tm.name, p.DT1, p.DT2, p.Heartbeat, p.LeaseTTL, len(took), what, med.Seconds(), took[len(took)-1].Seconds())
		})
	}
}

// TestMySQLLease checks the lease rows against a real MariaDB on a test-bed
// host: exclusive, renewable only while valid, taken over only once expired
// on the DB clock, released on request; the table is created on first use.
func TestMySQLLease(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (short mode)")
	}
	bed := testbed.New(t, "db")
	db := bed.MustHost("db")
	ctx := context.Background()
	must(t, db.StartMariaDB(ctx))
	if _, err := db.MySQL(ctx, "CREATE DATABASE hagd; CREATE USER 'hagd'@'%' IDENTIFIED BY 'lease-test-pw'; GRANT ALL ON hagd.* TO 'hagd'@'%';"); err != nil {
		t.Fatal(err)
	}
	l, err := OpenMySQLLease(MySQLConfig{Host: db.Addr, User: "hagd", Password: "lease-test-pw", DB: "hagd", Timeout: 5 * time.Second})
	must(t, err)
	defer l.Close()
	op := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		t.Cleanup(cancel)
		return c
	}
	ttl := 1500 * time.Millisecond
	if r := l.Acquire(op(), "rb", "n1", ttl); !r.OK || r.Err != nil {
		t.Fatalf("n1 acquire: %+v", r)
	}
	if r := l.Acquire(op(), "rb", "n2", ttl); r.OK || r.Err != nil || r.Holder != "n1" || r.Remaining <= 0 || r.Remaining > ttl {
		t.Fatalf("n2 acquire of n1's lease: %+v", r)
	}
	if r := l.Renew(op(), "rb", "n2", ttl); r.OK {
		t.Fatalf("n2 renewed n1's lease")
	}
	if r := l.Renew(op(), "rb", "n1", ttl); !r.OK {
		t.Fatalf("n1 renew: %+v", r)
	}
	row, _ := db.MySQL(ctx, "SELECT holder, expires > NOW(6) FROM hagd.hagd_lease WHERE grp='rb'")
	if strings.TrimSpace(row) != "n1\t1" {
		t.Errorf("row %q", row)
	}
	// expiry on the DB clock: n1 cannot renew any more, n2 may take it
	time.Sleep(ttl + 200*time.Millisecond)
	if r := l.Renew(op(), "rb", "n1", ttl); r.OK {
		t.Fatalf("n1 renewed an expired lease")
	}
	if r := l.Acquire(op(), "rb", "n2", ttl); !r.OK {
		t.Fatalf("n2 acquire of an expired lease: %+v", r)
	}
	must(t, l.Release(op(), "rb", "n1")) // not n1's: no effect
	if r := l.Acquire(op(), "rb", "n1", ttl); r.OK {
		t.Fatalf("n1 took n2's lease after a foreign release")
	}
	must(t, l.Release(op(), "rb", "n2"))
	if r := l.Acquire(op(), "rb", "n3", ttl); !r.OK {
		t.Fatalf("n3 acquire after release: %+v", r)
	}
	row, _ = db.MySQL(ctx, "SELECT grp, holder FROM hagd.hagd_lease")
	if strings.TrimSpace(row) != "rb\tn3" {
		t.Errorf("rows %q", row)
	}
	// the DB unreachable: an error, not a verdict
	must(t, db.StopMariaDB(ctx))
	if r := l.Renew(op(), "rb", "n3", ttl); r.OK || r.Err == nil {
		t.Errorf("renew with the DB down: %+v", r)
	}
}

// captureTo saves 6 genuine heartbeats heard on port, one per line (hex),
// for a later replay.
func captureTo(port, file, from string) error {
	p, _ := strconv.Atoi(port)
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: p})
	if err != nil {
		return err
	}
	defer pc.Close()
	var lines []string
	buf := make([]byte, MaxPacket)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(lines) < 6 {
		n, addr, err := pc.ReadFromUDP(buf)
		if err != nil {
			return fmt.Errorf("capture: %w (got %d)", err, len(lines))
		}
		if addr.IP.String() == from {
			lines = append(lines, fmt.Sprintf("%x", buf[:n]))
		}
	}
	return os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// replayFrom sends the saved heartbeats again, oldest first.
func replayFrom(bcast, port, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	p, _ := strconv.Atoi(port)
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return err
	}
	defer pc.Close()
	dst := &net.UDPAddr{IP: net.ParseIP(bcast), Port: p}
	sent := 0
	for _, l := range strings.Fields(string(b)) {
		var pkt []byte
		if _, err := fmt.Sscanf(l, "%x", &pkt); err != nil {
			return err
		}
		if _, err := pc.WriteToUDP(pkt, dst); err != nil {
			return err
		}
		sent++
	}
	fmt.Printf("replayed %d captured packets\n", sent)
	return nil
}
