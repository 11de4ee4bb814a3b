package hagd

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A discrete-event simulation of several providers around the pure Machine:
// a fake clock, a broadcast network that can be cut per node, scripts with
// durations and outcomes, and a lease store on the simulated clock. Every
// step checks that no two nodes may run the same group's service at once
// (from `start` issued to `stop` completed).

const simStep = 10 * time.Millisecond

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type simScript struct {
	group, op string
	id        uint64
	doneAt    time.Time
	err       error
}

type simLeaseOp struct {
	group, op string
	id        uint64
	doneAt    time.Time
	res       LeaseResult
}

type simNode struct {
	id      string
	groups  []Group
	m       *Machine
	alive   bool
	linked  bool
	running map[string]bool // service may be up: start issued, no stop done since
	scripts []simScript
	leases  []simLeaseOp
	// behaviour of the script, per group
	startErr   map[string]error
	startHang  map[string]bool
	statusErr  map[string]error
	stopFails  map[string]int         // this many stops fail (exit 1) before one succeeds
	starts     map[string][]time.Time // start issued
	takeovers  map[string][]time.Time // entered takeover
	transition []string
	// the kernel's view of the service IPs: group -> the instant the
	// address disappears by itself (worst case: lifetime + KernelSlack;
	// far future for a permanent address)
	ipUntil map[string]time.Time
	ipDone  []ipResult
	frozen  bool // SIGSTOP: no event is processed, the kernel goes on
	dbCut   bool // this node alone cannot reach the lease store
	sent    []Message
}

type ipResult struct {
	group string
	id    uint64
	up    bool
	err   error
}

type simLease struct {
	holder  string
	expires time.Time
}

type sim struct {
	t       *testing.T
	now     time.Time
	p       MachineParams
	nodes   map[string]*simNode
	order   []string
	lease   map[string]*simLease
	dbDown  bool
	scriptT time.Duration // how long start/stop/status take
	timeout time.Duration
	inbox   []delivery
	// allowSplit turns the split-brain check off (lease = none tests).
	allowSplit bool
	// ipOnly checks the service IPs only (a frozen hagd's service is
	// still running, unreachable: its address is gone).
	ipOnly bool
}

type delivery struct {
	to  string
	msg Message
}

func testParams() MachineParams {
	return MachineParams{
		DT1: 3 * time.Second, DT2: 1 * time.Second, Heartbeat: 500 * time.Millisecond,
		StatusInterval: 1 * time.Second, Backoff: 20 * time.Second, StopTimeout: 1 * time.Second,
		UseLease: true, LeaseTTL: 4 * time.Second, LeaseRenew: 500 * time.Millisecond,
		LeaseTimeout: 500 * time.Millisecond, LeaseMargin: 250 * time.Millisecond,
	}
}

func newSim(t *testing.T, p MachineParams) *sim {
	return &sim{t: t, now: t0, p: p, nodes: map[string]*simNode{}, lease: map[string]*simLease{},
		scriptT: 200 * time.Millisecond, timeout: 2 * time.Second}
}

// add starts a node serving groups "name:rank,...".
func (s *sim) add(id string, groups string) *simNode {
	var gs []Group
	for _, f := range strings.Split(groups, ",") {
		var g Group
		name, r, _ := strings.Cut(f, ":")
		g.Name = name
		fmt.Sscan(r, &g.Rank)
		gs = append(gs, g)
	}
	n := &simNode{id: id, groups: gs, alive: true, linked: true, running: map[string]bool{},
		startErr: map[string]error{}, startHang: map[string]bool{}, statusErr: map[string]error{}, stopFails: map[string]int{},
		starts: map[string][]time.Time{}, takeovers: map[string][]time.Time{}, ipUntil: map[string]time.Time{}}
	s.nodes[id] = n
	s.order = append(s.order, id)
	s.boot(n)
	return n
}

func (s *sim) boot(n *simNode) {
	p := s.p
	p.Self, p.Groups = n.id, n.groups
	n.m = NewMachine(p)
	n.alive = true
	n.scripts, n.leases, n.ipDone = nil, nil, nil
	s.do(n, n.m.Start(s.now))
}

// crash stops a node's daemon and (a host crash) its service.
func (s *sim) crash(id string) {
	n := s.nodes[id]
	n.alive = false
	n.running = map[string]bool{}
	n.scripts, n.leases, n.ipDone = nil, nil, nil
}

func (s *sim) do(n *simNode, acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case ActBroadcast:
			if n.m.Fenceable(s.now) { // as the daemon does
				s.do(n, n.m.Tick(s.now))
			}
			if !n.linked {
				continue
			}
			msg := n.m.Heartbeat(s.now, false)
			n.sent = append(n.sent, msg)
			for _, o := range s.order {
				if o != n.id {
					s.inbox = append(s.inbox, delivery{o, msg})
				}
			}
		case ActScript:
			// A new script for a group supersedes the one running.
			var keep []simScript
			for _, sc := range n.scripts {
				if sc.group != a.Group {
					keep = append(keep, sc)
				}
			}
			sc := simScript{group: a.Group, op: a.Op, id: a.ID, doneAt: s.now.Add(s.scriptT)}
			switch a.Op {
			case OpStart:
				if !s.allowSplit && !s.ipOnly && s.busy(a.Group, n.id) {
					s.t.Fatalf("%v: SPLIT BRAIN: %s starts %s while %s", s.now.Sub(t0), n.id, a.Group, s.who(a.Group))
				}
				n.running[a.Group] = true
				n.starts[a.Group] = append(n.starts[a.Group], s.now)
				if n.startHang[a.Group] {
					sc.doneAt, sc.err = s.now.Add(s.timeout), errors.New("timed out")
				} else {
					sc.err = n.startErr[a.Group]
				}
			case OpStatus:
				sc.err = n.statusErr[a.Group]
			case OpStop:
				if n.stopFails[a.Group] > 0 {
					n.stopFails[a.Group]--
					sc.err = errors.New("exit status 1")
				}
			}
			n.scripts = append(keep, sc)
		case ActLease:
			op := simLeaseOp{group: a.Group, op: a.Op, id: a.ID, doneAt: s.now.Add(5 * time.Millisecond)}
			if !n.linked || s.dbDown || n.dbCut {
				op.doneAt = s.now.Add(s.p.LeaseTimeout)
				op.res.Err = errors.New("db unreachable")
			} else {
				op.res = s.leaseOp(n.id, a.Group, a.Op)
			}
			n.leases = append(n.leases, op)
		case ActIP:
			r := ipResult{group: a.Group, id: a.ID}
			switch a.Op {
			case OpIPDown:
				delete(n.ipUntil, a.Group)
			default:
				if a.Deadline.IsZero() {
					n.ipUntil[a.Group] = s.now.Add(1000 * time.Hour)
					r.up = true
					break
				}
				lt := ipLifetime(s.now, a.Deadline)
				if lt == 0 {
					delete(n.ipUntil, a.Group)
					r.err = ErrFenced
					break
				}
				if !s.allowSplit && s.ipElsewhere(a.Group, n.id) {
					s.t.Fatalf("%v: TWO IPs: %s adds %s's IP while %s", s.now.Sub(t0), n.id, a.Group, s.whoIP(a.Group))
				}
				n.ipUntil[a.Group] = s.now.Add(time.Duration(lt)*time.Second + KernelSlack)
				r.up = true
			}
			n.ipDone = append(n.ipDone, r)
		case ActLog:
			n.transition = append(n.transition, fmt.Sprintf("%v %s", s.now.Sub(t0), a))
			if a.To == StateTakeover {
				n.takeovers[a.Group] = append(n.takeovers[a.Group], s.now)
			}
			s.t.Logf("%6v %s %s", s.now.Sub(t0), n.id, a)
		case ActNote:
			if a.Level <= 2 {
				s.t.Logf("%6v %s %s", s.now.Sub(t0), n.id, a)
			}
		}
	}
}

// leaseOp is the MySQL lease's logic on the simulated DB clock (it runs at
// once; the answer arrives later).
func (s *sim) leaseOp(holder, group, op string) LeaseResult {
	l := s.lease[group]
	if l == nil {
		l = &simLease{}
		s.lease[group] = l
	}
	switch op {
	case OpAcquire:
		if l.holder == holder || l.holder == "" || !s.now.Before(l.expires) {
			l.holder, l.expires = holder, s.now.Add(s.p.LeaseTTL)
			return LeaseResult{OK: true}
		}
	case OpRenew:
		if l.holder == holder && s.now.Before(l.expires) {
			l.expires = s.now.Add(s.p.LeaseTTL)
			return LeaseResult{OK: true}
		}
	case OpRelease:
		if l.holder == holder {
			l.holder = ""
		}
		return LeaseResult{OK: true}
	}
	return LeaseResult{Holder: l.holder, Remaining: l.expires.Sub(s.now)}
}

func (s *sim) busy(group, except string) bool {
	for _, id := range s.order {
		if id != except && s.nodes[id].running[group] {
			return true
		}
	}
	return false
}

func (s *sim) ipElsewhere(group, except string) bool {
	for _, id := range s.order {
		if u, ok := s.nodes[id].ipUntil[group]; id != except && ok && s.now.Before(u) {
			return true
		}
	}
	return false
}

func (s *sim) whoIP(group string) string {
	var ids []string
	for _, id := range s.order {
		if u, ok := s.nodes[id].ipUntil[group]; ok && s.now.Before(u) {
			ids = append(ids, fmt.Sprintf("%s (until +%v)", id, u.Sub(s.now)))
		}
	}
	return strings.Join(ids, ",") + " hold it"
}

// checkIP fails the test if two nodes hold a group's service IP now.
func (s *sim) checkIP() {
	if s.allowSplit {
		return
	}
	for _, n := range s.nodes {
		for g := range n.ipUntil {
			var ids []string
			for _, id := range s.order {
				if u, ok := s.nodes[id].ipUntil[g]; ok && s.now.Before(u) {
					ids = append(ids, id)
				}
			}
			if len(ids) > 1 {
				s.t.Fatalf("%v: TWO IPs of %s: %s", s.now.Sub(t0), g, s.whoIP(g))
			}
		}
	}
}

func (s *sim) who(group string) string {
	var ids []string
	for _, id := range s.order {
		if s.nodes[id].running[group] {
			ids = append(ids, id)
		}
	}
	return strings.Join(ids, ",") + " runs it"
}

// run advances the simulation by d.
func (s *sim) run(d time.Duration) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		s.now = s.now.Add(simStep)
		inbox := s.inbox
		s.inbox = nil
		for _, dl := range inbox {
			n := s.nodes[dl.to]
			if n.alive && n.linked && !n.frozen {
				s.do(n, n.m.Heard(s.now, &dl.msg))
			}
		}
		for _, id := range s.order {
			n := s.nodes[id]
			for g, u := range n.ipUntil { // the kernel, even for a dead hagd
				if !s.now.Before(u) {
					delete(n.ipUntil, g)
				}
			}
			if !n.alive || n.frozen {
				continue
			}
			ipd := n.ipDone
			n.ipDone = nil
			for _, r := range ipd {
				s.do(n, n.m.IPDone(s.now, r.group, r.id, r.up, r.err))
			}
			var keep []simScript
			var done []simScript
			for _, sc := range n.scripts {
				if s.now.Before(sc.doneAt) {
					keep = append(keep, sc)
				} else {
					done = append(done, sc)
				}
			}
			n.scripts = keep
			for _, sc := range done {
				if sc.op == OpStop && sc.err == nil {
					n.running[sc.group] = false
				}
				s.do(n, n.m.ScriptDone(s.now, sc.group, sc.id, sc.err))
			}
			var lkeep, ldone []simLeaseOp
			for _, l := range n.leases {
				if s.now.Before(l.doneAt) {
					lkeep = append(lkeep, l)
				} else {
					ldone = append(ldone, l)
				}
			}
			n.leases = lkeep
			for _, l := range ldone {
				s.do(n, n.m.LeaseDone(s.now, l.group, l.id, l.res))
			}
			s.do(n, n.m.Tick(s.now))
		}
		s.checkIP()
	}
}

// runUntil advances until cond holds or max passes; it reports how long it
// took.
func (s *sim) runUntil(max time.Duration, what string, cond func() bool) time.Duration {
	start := s.now
	for s.now.Sub(start) < max {
		if cond() {
			return s.now.Sub(start)
		}
		s.run(simStep)
	}
	s.t.Fatalf("%v: %s did not happen within %v", s.now.Sub(t0), what, max)
	return 0
}

func (s *sim) state(id, group string) State {
	for _, st := range s.nodes[id].m.Status(s.now) {
		if st.Group == group {
			return stateFromString(st.State)
		}
	}
	return 0
}

func stateFromString(v string) State {
	for i, n := range stateNames {
		if n == v {
			return State(i)
		}
	}
	return 0
}

func (s *sim) masters(group string) []string {
	var out []string
	for _, id := range s.order {
		if s.nodes[id].alive && !s.nodes[id].frozen && s.state(id, group) == StateMaster {
			out = append(out, id)
		}
	}
	return out
}

func (s *sim) isMaster(group, id string) func() bool {
	return func() bool { m := s.masters(group); return len(m) == 1 && m[0] == id }
}

func (s *sim) expectMaster(group, id string) {
	s.t.Helper()
	if m := s.masters(group); len(m) != 1 || m[0] != id {
		s.t.Fatalf("%v: masters of %s = %v, want [%s]", s.now.Sub(t0), group, m, id)
	}
}

func threeNodes(t *testing.T) *sim {
	s := newSim(t, testParams())
	s.add("n1", "rb:30")
	s.add("n2", "rb:20")
	s.add("n3", "rb:10")
	return s
}

func TestElectionByRank(t *testing.T) {
	s := threeNodes(t)
	s.runUntil(10*time.Second, "a master", func() bool { return len(s.masters("rb")) > 0 })
	s.run(5 * time.Second)
	s.expectMaster("rb", "n1")
	n1 := s.nodes["n1"]
	if len(n1.starts["rb"]) != 1 || len(s.nodes["n2"].starts["rb"]) != 0 || len(s.nodes["n3"].starts["rb"]) != 0 {
		t.Fatalf("starts: n1 %v n2 %v n3 %v", n1.starts["rb"], s.nodes["n2"].starts["rb"], s.nodes["n3"].starts["rb"])
	}
	// Initial mode listens ΔT1, then takeover lasts ΔT2 before start.
	if got := n1.takeovers["rb"][0].Sub(t0); got < s.p.DT1 {
		t.Errorf("takeover after %v, before ΔT1 of listening", got)
	}
	if got := n1.starts["rb"][0].Sub(n1.takeovers["rb"][0]); got < s.p.DT2 {
		t.Errorf("start %v after takeover, want ≥ ΔT2 %v", got, s.p.DT2)
	}
	for _, id := range []string{"n2", "n3"} {
		if st := s.state(id, "rb"); st != StateNormal {
			t.Errorf("%s is %s, want normal", id, st)
		}
	}
}

func TestTieBrokenByID(t *testing.T) {
	s := newSim(t, testParams())
	s.add("b", "rb:5")
	s.add("a", "rb:5")
	s.runUntil(10*time.Second, "a master", func() bool { return len(s.masters("rb")) > 0 })
	s.expectMaster("rb", "a")
}

func TestDeathFailoverAndNoPreemption(t *testing.T) {
	s := threeNodes(t)
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	s.run(3 * time.Second)
	s.crash("n1")
	crashed := s.now
	// The lease of the crashed master must expire before n2 may start:
	// with TTL (4s) > ΔT1+ΔT2 (4s) the lease dominates here.
	s.runUntil(15*time.Second, "n2 master", s.isMaster("rb", "n2"))
	n2 := s.nodes["n2"]
	to := n2.takeovers["rb"][0].Sub(crashed)
	start := n2.starts["rb"][0].Sub(crashed)
	t.Logf("takeover %v, start %v after the crash", to, start)
	if to < s.p.DT1-s.p.Heartbeat || to > s.p.DT1+2*simStep {
		t.Errorf("takeover %v after the crash, want about ΔT1 %v", to, s.p.DT1)
	}
	if start < s.p.DT1+s.p.DT2-s.p.Heartbeat || start > max(s.p.DT1+s.p.DT2, s.p.LeaseTTL)+s.p.LeaseRenew {
		t.Errorf("start %v after the crash: want ΔT1+ΔT2 (or lease expiry) %v", start, s.p.DT1+s.p.DT2)
	}
	if len(s.nodes["n3"].starts["rb"]) != 0 {
		t.Errorf("n3 started too")
	}
	// n1 comes back: it has the best rank but must not preempt n2.
	s.boot(s.nodes["n1"])
	s.run(15 * time.Second)
	s.expectMaster("rb", "n2")
	if st := s.state("n1", "rb"); st != StateNormal {
		t.Errorf("returned n1 is %s, want normal", st)
	}
	if len(s.nodes["n1"].starts["rb"]) != 1 {
		t.Errorf("returned n1 started the service again")
	}
}

func TestFailedStartElectsAnother(t *testing.T) {
	for _, hang := range []bool{false, true} {
		t.Run(fmt.Sprintf("hang=%v", hang), func(t *testing.T) {
			s := newSim(t, testParams())
			n1 := s.add("n1", "rb:30")
			s.add("n2", "rb:20")
			if hang {
				n1.startHang["rb"] = true
			} else {
				n1.startErr["rb"] = errors.New("exit status 1")
			}
			s.runUntil(20*time.Second, "n2 master", s.isMaster("rb", "n2"))
			if len(n1.starts["rb"]) != 1 {
				t.Fatalf("n1 started %d times", len(n1.starts["rb"]))
			}
			if n1.running["rb"] {
				t.Errorf("n1 did not stop after its failed start")
			}
			// n1 stays out (backoff), then becomes a normal backup: no preemption.
			s.run(s.p.Backoff + 5*time.Second)
			s.expectMaster("rb", "n2")
			if st := s.state("n1", "rb"); st != StateNormal {
				t.Errorf("n1 is %s after the backoff, want normal", st)
			}
		})
	}
}

func TestStatusFailureGivesUp(t *testing.T) {
	s := threeNodes(t)
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	n1 := s.nodes["n1"]
	n1.statusErr["rb"] = errors.New("exit status 3")
	s.runUntil(20*time.Second, "n2 master", s.isMaster("rb", "n2"))
	if n1.running["rb"] {
		t.Errorf("n1 still runs the service")
	}
	if st := s.state("n1", "rb"); st != StateFailed {
		t.Errorf("n1 is %s, want failed (backoff)", st)
	}
}

func TestManualTakeover(t *testing.T) {
	// With preemption on: a manual takeover is not undone by rank.
	p := testParams()
	p.Preempt = true
	s := newSim(t, p)
	s.add("n1", "rb:30")
	s.add("n2", "rb:20")
	s.add("n3", "rb:10")
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	s.run(2 * time.Second)
	acts, err := s.nodes["n3"].m.Takeover(s.now, "rb")
	if err != nil {
		t.Fatal(err)
	}
	s.do(s.nodes["n3"], acts)
	s.runUntil(20*time.Second, "n3 master", s.isMaster("rb", "n3"))
	if len(s.nodes["n2"].starts["rb"]) != 0 {
		t.Errorf("n2 started")
	}
	s.run(10 * time.Second)
	s.expectMaster("rb", "n3")
	// n1 became a normal backup (a manual takeover is not a failure).
	if st := s.state("n1", "rb"); st != StateNormal {
		t.Errorf("n1 is %s", st)
	}
	// The master itself cannot take over; a non-master cannot give up.
	if _, err := s.nodes["n3"].m.Takeover(s.now, "rb"); !errors.Is(err, ErrNotPossible) {
		t.Errorf("takeover on master: %v", err)
	}
	if _, err := s.nodes["n2"].m.Giveup(s.now, "rb"); !errors.Is(err, ErrNotPossible) {
		t.Errorf("giveup on backup: %v", err)
	}
}

func TestManualGiveup(t *testing.T) {
	s := threeNodes(t)
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	acts, err := s.nodes["n1"].m.Giveup(s.now, "rb")
	if err != nil {
		t.Fatal(err)
	}
	s.do(s.nodes["n1"], acts)
	s.runUntil(10*time.Second, "n2 master", s.isMaster("rb", "n2"))
}

func TestMultigroup(t *testing.T) {
	// Slide 6: primaries n1 (g1) and n2 (g2), backup n3 for both.
	s := newSim(t, testParams())
	s.add("n1", "g1:30")
	s.add("n2", "g2:30")
	s.add("n3", "g1:10,g2:10")
	s.runUntil(10*time.Second, "both masters", func() bool {
		return s.isMaster("g1", "n1")() && s.isMaster("g2", "n2")()
	})
	s.crash("n1")
	s.runUntil(15*time.Second, "n3 master of g1", s.isMaster("g1", "n3"))
	s.expectMaster("g2", "n2")
	s.crash("n2")
	s.runUntil(15*time.Second, "n3 master of g2", s.isMaster("g2", "n3"))
	s.expectMaster("g1", "n3")
}

func TestPartitionNoSplitBrain(t *testing.T) {
	s := threeNodes(t)
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	s.run(2 * time.Second)
	n1 := s.nodes["n1"]
	n1.linked = false // cut from peers and from the DB; the split-brain check runs every step
	cut := s.now
	s.runUntil(20*time.Second, "n2 master", s.isMaster("rb", "n2"))
	if n1.running["rb"] {
		t.Fatalf("isolated n1 still runs the service")
	}
	t.Logf("n2 started %v after the cut", s.nodes["n2"].starts["rb"][0].Sub(cut))
	if st := s.state("n1", "rb"); st != StateFailed {
		t.Errorf("isolated n1 is %s", st)
	}
	n1.linked = true
	s.run(30 * time.Second)
	s.expectMaster("rb", "n2")
	if st := s.state("n1", "rb"); st != StateNormal {
		t.Errorf("healed n1 is %s, want normal", st)
	}
}

func TestDBDownStopsMasterAndNobodyStarts(t *testing.T) {
	s := threeNodes(t)
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	s.dbDown = true
	s.runUntil(s.p.LeaseTTL, "n1 stopped", func() bool { return !s.nodes["n1"].running["rb"] })
	s.run(20 * time.Second)
	for _, id := range s.order {
		if s.nodes[id].running["rb"] {
			t.Fatalf("%s runs the service without a lease", id)
		}
	}
	s.dbDown = false
	s.runUntil(40*time.Second, "a master", func() bool { return len(s.masters("rb")) == 1 })
}

func TestShutdownHandsOverQuickly(t *testing.T) {
	s := threeNodes(t)
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	n1 := s.nodes["n1"]
	s.do(n1, n1.m.Shutdown(s.now))
	s.runUntil(5*time.Second, "n1 done", n1.m.Done)
	if n1.running["rb"] {
		t.Fatal("service still up after shutdown")
	}
	if l := s.lease["rb"]; l.holder != "" {
		t.Fatalf("lease still held by %q", l.holder)
	}
	// the last message says down: no need to wait ΔT1
	for _, o := range s.order[1:] {
		s.inbox = append(s.inbox, delivery{o, n1.m.Heartbeat(s.now, true)})
	}
	n1.alive = false
	d := s.runUntil(10*time.Second, "n2 master", s.isMaster("rb", "n2"))
	if d >= s.p.DT1+s.p.DT2 {
		t.Errorf("handover after shutdown took %v, ΔT1 was not skipped", d)
	}
}

func TestTwoMastersWithoutLeaseResolve(t *testing.T) {
	// Without a lease (lease = none, the 2005 design) a partition gives two
	// masters; when it heals, the one that does not precede gives up.
	p := testParams()
	p.UseLease = false
	s := newSim(t, p)
	s.allowSplit = true
	n1 := s.add("n1", "rb:30")
	n2 := s.add("n2", "rb:20")
	n1.linked, n2.linked = false, false
	s.runUntil(10*time.Second, "two masters", func() bool { return len(s.masters("rb")) == 2 })
	n1.linked, n2.linked = true, true
	s.runUntil(10*time.Second, "n1 sole master", s.isMaster("rb", "n1"))
	s.run(5 * time.Second)
	s.expectMaster("rb", "n1")
	if n2.running["rb"] {
		t.Errorf("n2 still runs the service")
	}
}

func TestFailedStopKeepsTheLease(t *testing.T) {
	s := threeNodes(t)
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	n1 := s.nodes["n1"]
	n1.statusErr["rb"] = errors.New("exit status 3")
	n1.stopFails["rb"] = 3
	// While n1's stop keeps failing its service may be up: it keeps the
	// lease and nobody starts (the split-brain check runs every step).
	s.run(3 * time.Second)
	if !n1.running["rb"] {
		t.Fatal("n1's service should still be (possibly) up")
	}
	if l := s.lease["rb"]; l.holder != "n1" || !s.now.Before(l.expires) {
		t.Errorf("lease %+v, want n1's and valid", l)
	}
	s.runUntil(20*time.Second, "n2 master", s.isMaster("rb", "n2"))
	if n1.running["rb"] {
		t.Error("n1 still running")
	}
}

func TestFailedInitialStopIsNoCandidate(t *testing.T) {
	s := newSim(t, testParams())
	n1 := s.add("n1", "rb:30")
	s.add("n2", "rb:20")
	// n1's initial stop (the add above already issued it) keeps failing
	// for longer than the ΔT1 of listening: n1 must not stand for election
	// meanwhile, and once its stop succeeds it is a backup.
	n1.scripts[0].err = errors.New("exit status 1")
	n1.stopFails["rb"] = 5
	s.runUntil(10*time.Second, "n2 master", s.isMaster("rb", "n2"))
	s.run(10 * time.Second)
	s.expectMaster("rb", "n2")
	if len(n1.starts["rb"]) != 0 {
		t.Error("n1 started")
	}
}

// ipParams manage the service IP of rb (kernel lifetime 2 s at a 4 s lease).
func ipParams() MachineParams {
	p := testParams()
	p.ManagedIP = map[string]bool{"rb": true}
	return p
}

func ipNodes(t *testing.T, p MachineParams) *sim {
	s := newSim(t, p)
	s.add("n1", "rb:30")
	s.add("n2", "rb:20")
	s.add("n3", "rb:10")
	return s
}

func hasIP(n *simNode, g string, now time.Time) bool {
	u, ok := n.ipUntil[g]
	return ok && now.Before(u)
}

// kill -9 of the master's hagd: its address stays (nothing removes it but
// the kernel) and its service stays; the IP check runs every step.
func TestServiceIPKill9FencedByKernel(t *testing.T) {
	s := ipNodes(t, ipParams())
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	n1 := s.nodes["n1"]
	if !hasIP(n1, "rb", s.now) {
		t.Fatal("master n1 has no service IP")
	}
	s.run(3 * time.Second)
	s.crash("n1") // hagd and its service gone; the kernel keeps the address
	killed := s.now
	s.runUntil(s.p.LeaseTTL, "the kernel drops n1's IP", func() bool { return !hasIP(n1, "rb", s.now) })
	gone := s.now
	s.runUntil(15*time.Second, "n2 master", s.isMaster("rb", "n2"))
	start := s.nodes["n2"].starts["rb"][0]
	t.Logf("IP gone from n1 %v after the kill, n2 started %v after", gone.Sub(killed), start.Sub(killed))
	if !gone.Before(start) {
		t.Errorf("n2 started before n1's address was gone")
	}
}

// SIGSTOP of the master's hagd past its lease, then SIGCONT: the kernel
// removed the address meanwhile; the resumed hagd must not put it back,
// must not send one more "master" heartbeat, and stops.
func TestServiceIPFrozenMaster(t *testing.T) {
	s := ipNodes(t, ipParams())
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	s.run(2 * time.Second)
	n1 := s.nodes["n1"]
	s.ipOnly = true
	n1.frozen = true
	s.runUntil(20*time.Second, "n2 master", s.isMaster("rb", "n2"))
	s.run(2 * time.Second)
	n1.sent = nil
	n1.frozen = false
	s.run(simStep)
	for _, m := range n1.sent {
		if m.Groups[0].State == StateMaster {
			t.Fatalf("resumed n1 sent a master heartbeat")
		}
	}
	s.run(10 * time.Second)
	s.expectMaster("rb", "n2")
	if hasIP(n1, "rb", s.now) {
		t.Error("resumed n1 holds the IP")
	}
}

// A master whose stop hangs (killed at stop_timeout, retried): the address
// went before the first stop; the lease keeps others out while the stop is
// retried and nobody ever holds the IP twice.
func TestServiceIPDroppedBeforeHangingStop(t *testing.T) {
	s := ipNodes(t, ipParams())
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	n1 := s.nodes["n1"]
	n1.statusErr["rb"] = errors.New("exit status 3")
	n1.stopFails["rb"] = 1000
	s.runUntil(5*time.Second, "n1 drops its IP", func() bool { return !hasIP(n1, "rb", s.now) })
	if st := s.state("n1", "rb"); st == StateMaster {
		t.Errorf("n1 still master")
	}
	s.run(5 * time.Second)
	if hasIP(n1, "rb", s.now) {
		t.Error("n1 has the IP again")
	}
}

// Rank decides after install: the highest rank's initial stop fails (a
// loaded node), yet it stands for election (hagd removed the address
// itself), and with preemption a returning rank-30 node takes the group
// back without overlap.
func TestServiceIPRankAndPreemption(t *testing.T) {
	p := ipParams()
	p.Preempt = true
	s := newSim(t, p)
	n1 := s.add("n1", "rb:30")
	n1.scripts[0].err = errors.New("timed out")
	n1.stopFails["rb"] = 2
	s.add("n2", "rb:20")
	s.add("n3", "rb:10")
	s.runUntil(15*time.Second, "n1 master", s.isMaster("rb", "n1"))
	s.crash("n1")
	s.runUntil(15*time.Second, "n2 master", s.isMaster("rb", "n2"))
	s.boot(n1)
	s.runUntil(20*time.Second, "n1 master again", s.isMaster("rb", "n1"))
	s.run(10 * time.Second)
	s.expectMaster("rb", "n1")
	if len(s.nodes["n3"].starts["rb"]) != 0 {
		t.Error("n3 started")
	}
}

// A late-starting higher rank preempts a master elected before it was up.
func TestPreemptionAfterLateStart(t *testing.T) {
	p := testParams()
	p.Preempt = true
	s := newSim(t, p)
	s.add("n3", "rb:10")
	s.runUntil(10*time.Second, "n3 master", s.isMaster("rb", "n3"))
	s.add("n2", "rb:20")
	s.add("n1", "rb:30")
	s.runUntil(20*time.Second, "n1 master", s.isMaster("rb", "n1"))
	s.run(10 * time.Second)
	s.expectMaster("rb", "n1")
}

// The top rank cut from the lease store only: it hears its peers, so after
// each backoff it stands again and preempts the master, fails to get the
// lease, backs off. The backoff doubles, so the group is not bounced back
// and forth every backoff.
func TestPreemptionByANodeWithoutLease(t *testing.T) {
	p := ipParams()
	p.Preempt = true
	s := newSim(t, p)
	n1 := s.add("n1", "rb:30")
	s.add("n2", "rb:20")
	s.runUntil(10*time.Second, "n1 master", s.isMaster("rb", "n1"))
	n1.dbCut = true
	s.runUntil(20*time.Second, "n2 master", s.isMaster("rb", "n2"))
	before := len(n1.takeovers["rb"])
	s.run(7 * s.p.Backoff)
	tries := len(n1.takeovers["rb"]) - before
	t.Logf("n1 (no lease store) stood again %d times in %v", tries, 7*s.p.Backoff)
	if tries > 3 {
		t.Errorf("n1 stood %d times in 7 backoffs: the backoff does not grow", tries)
	}
	n1.dbCut = false
	s.runUntil(20*s.p.Backoff, "n1 master again", s.isMaster("rb", "n1"))
}
