package hagd

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The election is a pure state machine: the daemon feeds it events (a tick,
// a heard heartbeat, a script or lease result, a manual command) with the
// current time, and it answers with actions (broadcast, run the script,
// acquire/renew/release the lease, log a transition). It never reads a
// clock, touches the network or starts a process, so every scenario of
// slides 9-11 is a unit test with a fake clock (machine_test.go).
//
// Per group the provider is in one of the states of slides 10 and 11:
//
//	initial  -- no live master known; after ΔT1 of listening, the best
//	            candidate (highest rank, ties: smaller ID; a successor named
//	            by a manual takeover first) elects itself
//	normal   -- a live master is known (master, takeover or giveup state)
//	takeover -- acquire the lease, broadcast takeover for ΔT2, run start
//	master   -- service up; status polled; lease renewed
//	giveup   -- stop the service, release the lease, broadcast giveup ΔT2
//	failed   -- start/status/lease failed: stop, then not a candidate for
//	            the backoff time
//
// A provider not heard for ΔT1 is dead. With Preempt, a live master hands
// its group to a better-ranked candidate that returns (the ordered handover
// of a manual takeover); without it, a live master is never preempted.
//
// With ManagedIP the machine also owns the group's service IP (ActIP): up
// after the lease and ΔT2, before start; extended with each renewal;
// removed before every stop and as soon as the lease cannot be proven.

// MachineParams are the machine's timing and identity.
type MachineParams struct {
	Self           string
	Groups         []Group
	DT1, DT2       time.Duration
	Heartbeat      time.Duration
	StatusInterval time.Duration
	Backoff        time.Duration
	StopTimeout    time.Duration
	UseLease       bool
	LeaseTTL       time.Duration
	LeaseRenew     time.Duration
	LeaseTimeout   time.Duration
	LeaseMargin    time.Duration
	// ManagedIP lists the groups whose service IP hagd adds and removes
	// itself (service_ip in hagd.conf).
	ManagedIP map[string]bool
	// Preempt: a master hands its group to a live candidate of higher rank.
	Preempt bool
}

// ParamsFromConfig derives the machine parameters from hagd.conf.
func ParamsFromConfig(c *Config) MachineParams {
	managed := map[string]bool{}
	for g := range c.ServiceIPs {
		managed[g] = true
	}
	return MachineParams{
		Self: c.ID, Groups: c.Groups, DT1: c.DT1, DT2: c.DT2, Heartbeat: c.Heartbeat,
		StatusInterval: c.StatusInterval, Backoff: c.Backoff, StopTimeout: c.StopTimeout,
		UseLease: c.Lease != "none", LeaseTTL: c.LeaseTTL, LeaseRenew: c.LeaseRenew,
		LeaseTimeout: c.LeaseTimeout, LeaseMargin: c.leaseMargin(),
		ManagedIP: managed, Preempt: c.Preempt,
	}
}

// ActionKind says what an Action asks for.
type ActionKind int

// Action kinds.
const (
	ActBroadcast ActionKind = iota // send Machine.Heartbeat now
	ActScript                      // run `script Op Group`; report with ScriptDone(ID)
	ActLease                       // lease Op (acquire, renew, release) for Group; report with LeaseDone(ID)
	ActLog                         // a state transition From -> To, with Reason
	ActNote                        // something worth logging (Reason), at Level
	// ActIP adds (OpIPUp), extends (OpIPRenew) or removes (OpIPDown) the
	// group's service IP. The daemon does it before the next action (so a
	// removal precedes the stop that follows it) and reports with IPDone.
	// For up and renew, Deadline is the instant by which the kernel must
	// have dropped the address unless it is renewed again (zero: no lease,
	// no lifetime).
	ActIP
)

// Script and lease operations.
const (
	OpStart   = "start"
	OpStop    = "stop"
	OpStatus  = "status"
	OpAcquire = "acquire"
	OpRenew   = "renew"
	OpRelease = "release"
	OpIPUp    = "ip-up"
	OpIPRenew = "ip-renew"
	OpIPDown  = "ip-down"
)

// Action is one thing the daemon must do.
type Action struct {
	Kind     ActionKind
	Group    string
	Op       string
	ID       uint64
	From, To State
	Reason   string
	Level    int       // for ActNote: the debug level from which it is logged
	Deadline time.Time // for ActIP up/renew
}

func (a Action) String() string {
	switch a.Kind {
	case ActBroadcast:
		return "broadcast"
	case ActScript:
		return fmt.Sprintf("script %s %s #%d", a.Op, a.Group, a.ID)
	case ActLease:
		return fmt.Sprintf("lease %s %s #%d", a.Op, a.Group, a.ID)
	case ActIP:
		return fmt.Sprintf("%s %s", a.Op, a.Group)
	case ActLog:
		return fmt.Sprintf("%s: %s -> %s (%s)", a.Group, a.From, a.To, a.Reason)
	default:
		return fmt.Sprintf("%s: %s", a.Group, a.Reason)
	}
}

// LeaseResult reports a lease operation.
type LeaseResult struct {
	OK bool // acquire/renew: the lease is now ours until sent+TTL
	// Holder and Remaining describe the current holder when OK is false
	// and the lease is someone else's.
	Holder    string
	Remaining time.Duration
	Err       error // the store could not be asked (network, DB down)
}

type peer struct {
	id        string
	rank      int
	state     State
	candidate bool
	target    string
	heard     time.Time
	first     time.Time // heard continuously since
}

type groupSM struct {
	Group
	state State
	since time.Time

	peers map[string]*peer

	// script
	initStopDone bool
	scriptID     uint64
	scriptOp     string
	serviceUp    bool // start has been run and no stop has completed since
	stopping     bool
	stopRetryAt  time.Time // after a failed stop
	startIssued  bool

	// timers
	takeoverUntil    time.Time // ΔT2 end
	takeoverDeadline time.Time // lease must be ours by then
	giveupUntil      time.Time // ΔT2 after the stop
	afterGiveup      State
	giveupTarget     string
	backoffUntil     time.Time
	nextStatus       time.Time

	// manual takeover
	request      string // master asked to hand the group over to us
	requestUntil time.Time
	designated   string // successor named by a master's giveup
	designUntil  time.Time
	manual       bool // master by a manual takeover: not preempted
	asked        bool // we asked the master for a manual takeover
	leaseMisses  int  // takeovers in a row that could not get the lease

	// lease
	leaseHeld      bool
	leaseOpID      uint64
	leaseOp        string
	leaseSentAt    time.Time
	leaseSafeUntil time.Time // start stop by then (local clock, conservative)
	leaseExpiry    time.Time // earliest instant the lease may expire
	nextLease      time.Time
	leaseHolder    string // last known other holder (status)
	lastLeaseErr   string // last lease error logged at warning level
	lastReason     string

	// service IP (ManagedIP groups)
	ipUp      bool   // the address may be on the interface
	ipOp      string // the ActIP in flight, if any
	ipOpID    uint64
	ipWantDn  bool      // removal asked (retried until it succeeds)
	ipRetryAt time.Time // after a failed removal
}

// Machine is the election of all groups of one provider.
type Machine struct {
	p          MachineParams
	groups     []*groupSM
	started    time.Time
	listenTill time.Time
	lastBcast  time.Time
	bcastDue   bool
	nextID     uint64
	shutdown   bool
}

// NewMachine returns a machine; call Start first.
func NewMachine(p MachineParams) *Machine {
	m := &Machine{p: p}
	for _, g := range p.Groups {
		m.groups = append(m.groups, &groupSM{Group: g, state: StateInitial, peers: map[string]*peer{}})
	}
	return m
}

func (m *Machine) id() uint64 { m.nextID++; return m.nextID }

func (m *Machine) group(name string) *groupSM {
	for _, g := range m.groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Start begins: every group is in initial state, its service is stopped
// (`script stop`, whatever a previous run left behind) and the machine
// listens for ΔT1 before any election.
func (m *Machine) Start(now time.Time) []Action {
	m.started = now
	m.listenTill = now.Add(m.p.DT1)
	var acts []Action
	for _, g := range m.groups {
		g.since = now
		acts = append(acts, Action{Kind: ActLog, Group: g.Name, From: StateInitial, To: StateInitial, Reason: fmt.Sprintf("start, rank %d; stopping the service", g.Rank)})
		if m.managed(g) {
			// Whatever a previous run (a hagd killed -9) left: the
			// address goes first, before the script's stop.
			g.ipUp = true
			acts = append(acts, m.dropIP(g)...)
		}
		g.stopping = true
		acts = append(acts, m.script(g, OpStop))
	}
	m.bcastDue = true
	return m.eval(now, acts)
}

// Tick advances timers.
func (m *Machine) Tick(now time.Time) []Action { return m.eval(now, nil) }

// Heard feeds an authentic, fresh heartbeat of another provider.
func (m *Machine) Heard(now time.Time, msg *Message) []Action {
	if msg.From == m.p.Self {
		return nil
	}
	var acts []Action
	for _, e := range msg.Groups {
		g := m.group(e.Group)
		if g == nil {
			continue
		}
		if e.State == StateDown {
			if _, ok := g.peers[msg.From]; ok {
				delete(g.peers, msg.From)
				acts = append(acts, note(g, 2, fmt.Sprintf("peer %s left", msg.From)))
			}
			continue
		}
		p := g.peers[msg.From]
		if p == nil {
			p = &peer{id: msg.From, first: now}
			g.peers[msg.From] = p
			acts = append(acts, note(g, 2, fmt.Sprintf("peer %s (rank %d, %s) alive", msg.From, e.Rank, e.State)))
		} else if p.state != e.State {
			acts = append(acts, note(g, 3, fmt.Sprintf("peer %s: %s -> %s", msg.From, p.state, e.State)))
		}
		p.rank, p.state, p.candidate, p.target, p.heard = e.Rank, e.State, e.Candidate, e.Target, now
		if e.State == StateGiveup && e.Target != "" {
			g.designated = e.Target
			g.designUntil = now.Add(2*m.p.DT1 + m.p.DT2)
		}
	}
	return m.eval(now, acts)
}

// ScriptDone reports the end of an ActScript (err: exit status, timeout).
func (m *Machine) ScriptDone(now time.Time, group string, id uint64, err error) []Action {
	g := m.group(group)
	if g == nil || id != g.scriptID {
		return nil // superseded
	}
	op := g.scriptOp
	g.scriptID, g.scriptOp = 0, ""
	var acts []Action
	switch op {
	case OpStop:
		g.stopping = false
		g.serviceUp = false
		if !g.initStopDone {
			if err != nil && m.managed(g) && !g.ipUp {
				// hagd removed the service IP itself: nothing this node
				// may still run is reachable, so a failing (or slow)
				// harmless initial stop does not cost the candidacy.
				acts = append(acts, note(g, 1, fmt.Sprintf("initial stop failed: %v; the service IP is down, so this node stays a candidate", err)))
				g.initStopDone = true
				g.stopRetryAt = time.Time{}
				break
			}
			if err != nil {
				// Whatever a previous run left may still be up: not a
				// candidate until a stop succeeds.
				retry := max(m.p.StopTimeout, time.Second)
				acts = append(acts, note(g, 0, fmt.Sprintf("initial stop failed: %v; not a candidate, retrying stop in %v", err, retry)))
				g.stopRetryAt = now.Add(retry)
				break
			}
			g.initStopDone = true
			g.stopRetryAt = time.Time{}
			break
		}
		if err != nil {
			// The service may still be up: keep (renewing) the lease so
			// that nobody else starts, and retry the stop.
			retry := max(m.p.StopTimeout, time.Second)
			acts = append(acts, note(g, 0, fmt.Sprintf("stop failed: %v; the service may still be running: keeping the lease, retrying stop in %v", err, retry)))
			g.serviceUp = true
			g.stopRetryAt = now.Add(retry)
			break
		}
		g.stopRetryAt = time.Time{}
		switch g.state {
		case StateGiveup:
			if m.shutdown {
				break
			}
			g.giveupUntil = now.Add(m.p.DT2)
		case StateFailed:
			g.backoffUntil = now.Add(m.p.Backoff)
		}
	case OpStart:
		if g.state != StateTakeover {
			break
		}
		if err == nil {
			g.leaseMisses = 0
		}
		if err != nil {
			acts = append(acts, m.beginStop(now, g, StateFailed, fmt.Sprintf("failed startup: %v", err))...)
			break
		}
		acts = append(acts, m.transition(now, g, StateMaster, "service started")...)
		g.nextStatus = now.Add(m.p.StatusInterval)
	case OpStatus:
		if g.state != StateMaster {
			break
		}
		if err != nil {
			g.afterGiveup = StateFailed
			g.giveupTarget = ""
			acts = append(acts, m.beginStop(now, g, StateGiveup, fmt.Sprintf("status failed: %v", err))...)
			break
		}
		g.nextStatus = now.Add(m.p.StatusInterval)
	}
	return m.eval(now, acts)
}

// LeaseDone reports the end of an ActLease.
func (m *Machine) LeaseDone(now time.Time, group string, id uint64, r LeaseResult) []Action {
	g := m.group(group)
	if g == nil || id != g.leaseOpID {
		return nil
	}
	op, sent := g.leaseOp, g.leaseSentAt
	g.leaseOpID, g.leaseOp = 0, ""
	var acts []Action
	switch op {
	case OpAcquire, OpRenew:
		switch {
		case r.Err == nil && r.OK:
			g.lastLeaseErr = ""
			if !g.leaseHeld {
				acts = append(acts, note(g, 2, "lease acquired"))
			}
			g.leaseHeld = true
			g.leaseHolder = m.p.Self
			g.leaseExpiry = sent.Add(m.p.LeaseTTL)
			g.leaseSafeUntil = g.leaseExpiry.Add(-m.p.StopTimeout - m.p.LeaseMargin)
			g.nextLease = sent.Add(m.p.LeaseRenew)
			if g.ipUp && !g.ipWantDn && g.ipOp == "" && (g.state == StateMaster || g.state == StateTakeover) {
				acts = append(acts, m.ipAction(g, OpIPRenew))
			}
		case r.Err == nil: // someone else holds it
			g.leaseHolder = r.Holder
			wasHeld := g.leaseHeld
			g.leaseHeld = false
			if wasHeld {
				acts = append(acts, note(g, 0, fmt.Sprintf("lease lost to %q", r.Holder)))
				if g.serviceUp || g.state == StateTakeover {
					acts = append(acts, m.beginStop(now, g, StateFailed, "lease lost")...)
				}
			} else {
				acts = append(acts, note(g, 3, fmt.Sprintf("lease held by %q for %v more", r.Holder, r.Remaining)))
			}
			retry := min(m.p.LeaseRenew, r.Remaining+20*time.Millisecond)
			g.nextLease = now.Add(max(retry, 20*time.Millisecond))
		default:
			msg := fmt.Sprintf("lease %s: %v", op, r.Err)
			level := 1
			if msg == g.lastLeaseErr {
				level = 3 // the same error again: once at warning level is enough
			}
			g.lastLeaseErr = msg
			acts = append(acts, note(g, level, msg))
			g.nextLease = now.Add(max(m.p.LeaseRenew/4, 50*time.Millisecond))
		}
	case OpRelease:
		if r.Err != nil {
			acts = append(acts, note(g, 1, fmt.Sprintf("lease release: %v (it expires by itself)", r.Err)))
		}
	}
	return m.eval(now, acts)
}

// ErrNotPossible is returned by Takeover and Giveup when the request does not
// apply in the group's current state.
var ErrNotPossible = errors.New("not possible now")

// Takeover is the manual takeover of slide 11, asked on this provider: if a
// master is alive it is asked to stop and hand the group over; if not, this
// provider takes over at once.
func (m *Machine) Takeover(now time.Time, group string) ([]Action, error) {
	g := m.group(group)
	if g == nil {
		return nil, fmt.Errorf("no group %q here", group)
	}
	switch {
	case m.shutdown:
		return nil, fmt.Errorf("%w: shutting down", ErrNotPossible)
	case g.state == StateMaster || g.state == StateTakeover:
		return nil, fmt.Errorf("%w: already %s of %s", ErrNotPossible, g.state, group)
	case g.stopping || !g.initStopDone || g.serviceUp:
		return nil, fmt.Errorf("%w: the service is being stopped", ErrNotPossible)
	}
	g.backoffUntil = time.Time{}
	var acts []Action
	if g.state == StateFailed || g.state == StateGiveup {
		acts = append(acts, m.transition(now, g, StateInitial, "manual takeover clears the backoff")...)
	}
	master := m.liveMaster(g)
	switch {
	case master == nil:
		g.designated, g.designUntil = m.p.Self, now.Add(m.p.DT1)
		acts = append(acts, m.enterTakeover(now, g, "manual takeover, no live master")...)
	case master.state == StateMaster:
		g.request = master.id
		g.asked = true
		g.requestUntil = now.Add(m.p.DT1 + 2*m.p.DT2 + m.p.StopTimeout + 2*m.p.LeaseTimeout)
		acts = append(acts, note(g, 2, fmt.Sprintf("manual takeover: asking master %s to give up", master.id)))
		m.bcastDue = true
	default:
		return nil, fmt.Errorf("%w: %s is in %s state; retry", ErrNotPossible, master.id, master.state)
	}
	return m.eval(now, acts), nil
}

// Giveup is the manual giveup, asked on the master: stop the service,
// broadcast giveup for ΔT2, then stay out of elections for the backoff time
// so that another provider takes over.
func (m *Machine) Giveup(now time.Time, group string) ([]Action, error) {
	g := m.group(group)
	if g == nil {
		return nil, fmt.Errorf("no group %q here", group)
	}
	if g.state != StateMaster && g.state != StateTakeover {
		return nil, fmt.Errorf("%w: %s is %s here, not master", ErrNotPossible, group, g.state)
	}
	g.afterGiveup, g.giveupTarget = StateFailed, ""
	return m.eval(now, m.beginStop(now, g, StateGiveup, "manual giveup")), nil
}

// Shutdown stops every service this provider runs and releases the leases;
// Done reports when that is over.
func (m *Machine) Shutdown(now time.Time) []Action {
	m.shutdown = true
	var acts []Action
	for _, g := range m.groups {
		if g.serviceUp || g.state == StateTakeover || g.state == StateMaster {
			g.afterGiveup = StateFailed
			acts = append(acts, m.beginStop(now, g, StateGiveup, "shutting down")...)
		}
	}
	return m.eval(now, acts)
}

// Done reports whether a shutdown has finished: no service up, no script
// running, no lease held or being released.
func (m *Machine) Done() bool {
	if !m.shutdown {
		return false
	}
	for _, g := range m.groups {
		if g.serviceUp || g.stopping || g.scriptID != 0 || g.leaseHeld || g.leaseOpID != 0 || g.ipUp || g.ipOp != "" {
			return false
		}
	}
	return true
}

// Heartbeat is the message to broadcast now (From, Groups; the daemon adds
// nonce, sequence and time). down marks the last message of a shutdown.
func (m *Machine) Heartbeat(now time.Time, down bool) Message {
	msg := Message{From: m.p.Self}
	for _, g := range m.groups {
		e := GroupEntry{Group: g.Name, Rank: g.Rank, State: g.state, Candidate: m.candidate(now, g)}
		switch {
		case down:
			e.State = StateDown
		case g.state == StateGiveup:
			e.Target = g.giveupTarget
		case g.state == StateInitial || g.state == StateNormal:
			e.Target = g.request
		}
		msg.Groups = append(msg.Groups, e)
	}
	return msg
}

func (m *Machine) candidate(now time.Time, g *groupSM) bool {
	if m.shutdown || !g.initStopDone || g.stopping || ((g.serviceUp || g.ipUp) && g.state != StateTakeover && g.state != StateMaster) {
		return false
	}
	switch g.state {
	case StateTakeover, StateMaster:
		return true
	case StateInitial, StateNormal:
		return !now.Before(g.backoffUntil)
	}
	return false
}

// precedes reports whether provider a wins an election over b.
func precedes(g *groupSM, aID string, aRank int, bID string, bRank int) bool {
	if g.designated != "" {
		if aID == g.designated {
			return true
		}
		if bID == g.designated {
			return false
		}
	}
	if aRank != bRank {
		return aRank > bRank
	}
	return aID < bID
}

// liveMaster is the best live peer acting as master (master, takeover or
// giveup), or nil.
func (m *Machine) liveMaster(g *groupSM) *peer {
	var best *peer
	for _, p := range g.peers {
		if p.state != StateMaster && p.state != StateTakeover && p.state != StateGiveup {
			continue
		}
		if best == nil || precedes(g, p.id, p.rank, best.id, best.rank) {
			best = p
		}
	}
	return best
}

func note(g *groupSM, level int, reason string) Action {
	return Action{Kind: ActNote, Group: g.Name, Reason: reason, Level: level}
}

func (m *Machine) script(g *groupSM, op string) Action {
	g.scriptID, g.scriptOp = m.id(), op
	return Action{Kind: ActScript, Group: g.Name, Op: op, ID: g.scriptID}
}

func (m *Machine) lease(now time.Time, g *groupSM, op string) Action {
	g.leaseOpID, g.leaseOp, g.leaseSentAt = m.id(), op, now
	return Action{Kind: ActLease, Group: g.Name, Op: op, ID: g.leaseOpID}
}

func (m *Machine) transition(now time.Time, g *groupSM, to State, reason string) []Action {
	if g.state == to {
		return nil
	}
	a := Action{Kind: ActLog, Group: g.Name, From: g.state, To: to, Reason: reason}
	g.state, g.since, g.lastReason = to, now, reason
	m.bcastDue = true
	return []Action{a}
}

func (m *Machine) enterTakeover(now time.Time, g *groupSM, reason string) []Action {
	acts := m.transition(now, g, StateTakeover, reason)
	// The admin's choice stands until the next election: preemption by
	// rank would undo a manual takeover at once.
	g.manual = strings.HasPrefix(reason, "manual takeover") || g.designated == m.p.Self && g.asked
	g.asked = false
	g.takeoverUntil = now.Add(m.p.DT2)
	g.takeoverDeadline = now.Add(m.p.DT2 + m.p.LeaseTTL + 2*m.p.LeaseTimeout)
	g.startIssued = false
	g.request = ""
	g.nextLease = now
	return acts
}

// beginStop moves g to giveup or failed and stops the service if it may be
// running (or starting).
func (m *Machine) beginStop(now time.Time, g *groupSM, to State, reason string) []Action {
	acts := m.transition(now, g, to, reason)
	// The service IP goes first, from hagd's own code: whatever the script
	// then does (hang, fail, be killed), clients no longer reach this node.
	acts = append(acts, m.dropIP(g)...)
	g.giveupUntil = time.Time{}
	if to == StateFailed {
		g.backoffUntil = now.Add(m.p.Backoff)
	}
	if g.stopping {
		return acts
	}
	if g.serviceUp || g.scriptOp == OpStart {
		g.stopping = true
		g.serviceUp = true
		acts = append(acts, m.script(g, OpStop))
	} else if to == StateGiveup && !m.shutdown {
		g.giveupUntil = now.Add(m.p.DT2)
	}
	return acts
}

// eval runs every timer and rule of every group after an event.
func (m *Machine) eval(now time.Time, acts []Action) []Action {
	for _, g := range m.groups {
		acts = m.evalGroup(now, g, acts)
	}
	if m.bcastDue || now.Sub(m.lastBcast) >= m.p.Heartbeat {
		m.bcastDue = false
		m.lastBcast = now
		acts = append(acts, Action{Kind: ActBroadcast})
	}
	return acts
}

func (m *Machine) evalGroup(now time.Time, g *groupSM, acts []Action) []Action {
	// Peers not heard for ΔT1 are dead.
	for id, p := range g.peers {
		if now.Sub(p.heard) >= m.p.DT1 {
			delete(g.peers, id)
			acts = append(acts, note(g, 2, fmt.Sprintf("peer %s dead (not heard for %v, was %s)", id, m.p.DT1, p.state)))
		}
	}
	if g.designated != "" && now.After(g.designUntil) {
		g.designated = ""
	}
	if g.request != "" && now.After(g.requestUntil) {
		acts = append(acts, note(g, 1, fmt.Sprintf("takeover request to %s timed out", g.request)))
		g.request = ""
	}

	// The fence: once the lease can no longer be proven for a stop to end
	// in time, the service IP goes, whatever the state (a stop being
	// retried, a master resumed after SIGSTOP). The kernel lifetime hagd
	// gave the address would remove it before the lease expires anyway.
	if m.p.UseLease && g.ipUp && !g.ipWantDn && !now.Before(g.leaseSafeUntil) {
		acts = append(acts, note(g, 0, "lease not provable: service IP removed"))
		acts = append(acts, m.dropIP(g)...)
	}
	if g.ipWantDn && g.ipUp && g.ipOp == "" && !now.Before(g.ipRetryAt) {
		acts = append(acts, m.dropIP(g)...)
	}

	// The lease guard: a provider whose service may be up and whose lease
	// may expire before a stop could finish stops now.
	if m.p.UseLease && g.serviceUp && !g.stopping && g.stopRetryAt.IsZero() && !now.Before(g.leaseSafeUntil) {
		acts = append(acts, m.beginStop(now, g, StateFailed, "lease not renewed in time")...)
	}

	if (g.serviceUp || !g.initStopDone) && !g.stopping && !g.stopRetryAt.IsZero() && !now.Before(g.stopRetryAt) {
		g.stopRetryAt = time.Time{}
		g.stopping = true
		acts = append(acts, m.script(g, OpStop))
	}

	switch g.state {
	case StateInitial, StateNormal:
		acts = m.evalBackup(now, g, acts)
	case StateTakeover:
		acts = m.evalTakeover(now, g, acts)
	case StateMaster:
		acts = m.evalMaster(now, g, acts)
	case StateGiveup:
		if !g.stopping && !g.giveupUntil.IsZero() && !now.Before(g.giveupUntil) {
			if g.afterGiveup == StateFailed {
				acts = append(acts, m.transition(now, g, StateFailed, "giveup over")...)
				g.backoffUntil = now.Add(m.p.Backoff)
			} else {
				acts = append(acts, m.transition(now, g, StateInitial, "giveup over")...)
				acts = m.evalBackup(now, g, acts)
			}
		}
	case StateFailed:
		if !m.shutdown && !g.stopping && !g.serviceUp && !now.Before(g.backoffUntil) {
			acts = append(acts, m.transition(now, g, StateInitial, "backoff over")...)
			acts = m.evalBackup(now, g, acts)
		}
	}
	return m.syncLease(now, g, acts)
}

func (m *Machine) evalBackup(now time.Time, g *groupSM, acts []Action) []Action {
	if master := m.liveMaster(g); master != nil {
		return append(acts, m.transition(now, g, StateNormal, fmt.Sprintf("master %s (%s)", master.id, master.state))...)
	}
	if g.state == StateNormal {
		acts = append(acts, m.transition(now, g, StateInitial, "no live master")...)
	}
	if m.shutdown || now.Before(m.listenTill) || !m.candidate(now, g) {
		return acts
	}
	// Election: this provider takes over if it precedes every live
	// candidate.
	for _, p := range g.peers {
		if p.candidate && (p.state == StateInitial || p.state == StateNormal) &&
			precedes(g, p.id, p.rank, m.p.Self, g.Rank) {
			return acts
		}
	}
	why := "elected: best live candidate"
	if g.designated == m.p.Self {
		why = "elected: successor named by the previous master"
	}
	return append(acts, m.enterTakeover(now, g, why)...)
}

func (m *Machine) evalTakeover(now time.Time, g *groupSM, acts []Action) []Action {
	if !g.startIssued {
		for _, p := range g.peers {
			if p.state == StateMaster ||
				(p.state == StateTakeover && precedes(g, p.id, p.rank, m.p.Self, g.Rank)) {
				return append(acts, m.transition(now, g, StateNormal, fmt.Sprintf("yield to %s (%s)", p.id, p.state))...)
			}
		}
		held := g.leaseHeld || !m.p.UseLease
		if !held && now.After(g.takeoverDeadline) {
			acts = append(acts, m.beginStop(now, g, StateFailed, fmt.Sprintf("lease not acquired (held by %q)", g.leaseHolder))...)
			// A node that cannot reach the lease store still hears its
			// peers and would stand again (and, ranked higher, preempt the
			// master again) after every backoff: double it each time.
			g.leaseMisses++
			g.backoffUntil = now.Add(m.p.Backoff << min(g.leaseMisses-1, 4))
			return acts
		}
		if held && !now.Before(g.takeoverUntil) && (!m.p.UseLease || now.Before(g.leaseSafeUntil)) {
			g.startIssued = true
			g.serviceUp = true
			if m.managed(g) {
				// start follows once the address is up (IPDone)
				g.ipWantDn = false
				g.ipUp = true
				acts = append(acts, m.ipAction(g, OpIPUp))
			} else {
				acts = append(acts, m.script(g, OpStart))
			}
		}
		return acts
	}
	return acts
}

func (m *Machine) evalMaster(now time.Time, g *groupSM, acts []Action) []Action {
	// Two masters (after a partition heals): the one that does not precede
	// gives up.
	for _, p := range g.peers {
		if p.state == StateMaster && precedes(g, p.id, p.rank, m.p.Self, g.Rank) {
			g.afterGiveup, g.giveupTarget = StateInitial, ""
			return append(acts, m.beginStop(now, g, StateGiveup, fmt.Sprintf("%s is master too and precedes", p.id))...)
		}
	}
	// Manual takeover asked by a peer.
	for _, p := range g.peers {
		if p.target == m.p.Self && (p.state == StateInitial || p.state == StateNormal) {
			g.afterGiveup, g.giveupTarget = StateInitial, p.id
			g.designated, g.designUntil = p.id, now.Add(m.p.StopTimeout+m.p.DT2+2*m.p.DT1)
			return append(acts, m.beginStop(now, g, StateGiveup, fmt.Sprintf("manual takeover asked by %s", p.id))...)
		}
	}
	// Preemption (rank semantics of the notes): a live, healthy candidate
	// of higher rank, heard for ΔT1 without a break, gets the group
	// through the same ordered handover as a manual takeover (stop here,
	// lease released, giveup naming it), so the two never overlap.
	if m.p.Preempt && !g.manual && g.scriptOp != OpStart {
		var best *peer
		for _, p := range g.peers {
			if p.candidate && (p.state == StateInitial || p.state == StateNormal) && p.rank > g.Rank &&
				now.Sub(p.first) >= m.p.DT1 && (best == nil || precedes(g, p.id, p.rank, best.id, best.rank)) {
				best = p
			}
		}
		if best != nil {
			g.afterGiveup, g.giveupTarget = StateInitial, best.id
			g.designated, g.designUntil = best.id, now.Add(m.p.StopTimeout+m.p.DT2+2*m.p.DT1)
			return append(acts, m.beginStop(now, g, StateGiveup, fmt.Sprintf("preempted by %s (rank %d > %d)", best.id, best.rank, g.Rank))...)
		}
	}
	if g.scriptID == 0 && !now.Before(g.nextStatus) {
		acts = append(acts, m.script(g, OpStatus))
	}
	return acts
}

// Fenceable reports whether a managed service IP may be up past the point
// where the lease can be proven (the daemon then runs Tick before sending
// anything).
func (m *Machine) Fenceable(now time.Time) bool {
	if !m.p.UseLease {
		return false
	}
	for _, g := range m.groups {
		if g.ipUp && !g.ipWantDn && !now.Before(g.leaseSafeUntil) {
			return true
		}
		if (g.state == StateMaster || g.state == StateTakeover) && g.serviceUp && !g.stopping && g.stopRetryAt.IsZero() && !now.Before(g.leaseSafeUntil) {
			return true
		}
	}
	return false
}

func (m *Machine) managed(g *groupSM) bool { return m.p.ManagedIP[g.Name] }

// IPDeadline is the instant by which the kernel must have removed g's
// service IP unless hagd renews it: the lease's earliest expiry on the
// database clock, less the lease margin and the clock-rate drift. The
// daemon subtracts the kernel's own lateness (KernelSlack) when it turns
// this into a lifetime in whole seconds.
func (m *Machine) ipDeadline(g *groupSM) time.Time {
	if !m.p.UseLease {
		return time.Time{}
	}
	return g.leaseExpiry.Add(-m.p.LeaseMargin - DriftMargin(m.p.LeaseTTL))
}

func (m *Machine) ipAction(g *groupSM, op string) Action {
	g.ipOp, g.ipOpID = op, m.id()
	a := Action{Kind: ActIP, Group: g.Name, Op: op, ID: g.ipOpID}
	if op != OpIPDown {
		a.Deadline = m.ipDeadline(g)
	}
	return a
}

// dropIP removes the service IP (if hagd manages it and it may be up).
func (m *Machine) dropIP(g *groupSM) []Action {
	if !m.managed(g) || !g.ipUp || g.ipOp == OpIPDown {
		return nil
	}
	g.ipWantDn = true
	return []Action{m.ipAction(g, OpIPDown)}
}

// IPDone reports an ActIP. up says whether the address may still be on the
// interface (false after a removal, and after an up or renew that could
// not keep the lifetime inside the lease: the daemon removed it).
func (m *Machine) IPDone(now time.Time, group string, id uint64, up bool, err error) []Action {
	g := m.group(group)
	if g == nil || id != g.ipOpID {
		return nil
	}
	op := g.ipOp
	g.ipOp, g.ipOpID = "", 0
	var acts []Action
	switch op {
	case OpIPDown:
		g.ipUp = up
		if err != nil {
			acts = append(acts, note(g, 0, fmt.Sprintf("removing the service IP: %v (retrying; its kernel lifetime still ends before the lease)", err)))
			g.ipRetryAt = now.Add(100 * time.Millisecond)
		} else {
			g.ipWantDn = false
			acts = append(acts, note(g, 2, "service IP removed"))
		}
	case OpIPUp, OpIPRenew:
		g.ipUp = up || err == nil
		if err != nil {
			if g.state == StateMaster || g.state == StateTakeover {
				acts = append(acts, m.beginStop(now, g, StateFailed, fmt.Sprintf("service IP %s: %v", op, err))...)
			}
			break
		}
		if op == OpIPUp && g.state == StateTakeover && g.startIssued && g.scriptOp == "" {
			acts = append(acts, note(g, 2, "service IP up"))
			acts = append(acts, m.script(g, OpStart))
		}
	}
	return m.eval(now, acts)
}

// syncLease issues the lease operation the group needs, if any.
func (m *Machine) syncLease(now time.Time, g *groupSM, acts []Action) []Action {
	if !m.p.UseLease || g.leaseOpID != 0 {
		return acts
	}
	want := g.serviceUp || g.stopping || g.ipUp || g.state == StateTakeover || g.state == StateMaster
	switch {
	case want && now.Before(g.nextLease):
	case want && g.leaseHeld:
		acts = append(acts, m.lease(now, g, OpRenew))
	case want && g.state == StateTakeover && !g.startIssued:
		acts = append(acts, m.lease(now, g, OpAcquire))
	case !want && g.leaseHeld:
		g.leaseHeld = false
		acts = append(acts, m.lease(now, g, OpRelease))
		acts = append(acts, note(g, 2, "lease released"))
	}
	return acts
}

// GroupStatus is one group's view for `gridha hagd status`.
type GroupStatus struct {
	Group      string         `json:"group"`
	Rank       int            `json:"rank"`
	State      string         `json:"state"`
	Since      time.Duration  `json:"since_ns"`
	Reason     string         `json:"reason,omitempty"`
	Master     string         `json:"master,omitempty"`
	Candidate  bool           `json:"candidate"`
	Backoff    time.Duration  `json:"backoff_ns,omitempty"`
	Lease      string         `json:"lease"`
	LeaseLeft  time.Duration  `json:"lease_left_ns,omitempty"`
	Designated string         `json:"designated,omitempty"`
	Request    string         `json:"request,omitempty"`
	Members    []MemberStatus `json:"members"`
}

// MemberStatus is one provider of a group as this node sees it.
type MemberStatus struct {
	ID        string        `json:"id"`
	Rank      int           `json:"rank"`
	State     string        `json:"state"`
	Candidate bool          `json:"candidate"`
	Self      bool          `json:"self,omitempty"`
	LastHeard time.Duration `json:"last_heard_ns"`
}

// Status reports every group.
func (m *Machine) Status(now time.Time) []GroupStatus {
	var out []GroupStatus
	for _, g := range m.groups {
		s := GroupStatus{Group: g.Name, Rank: g.Rank, State: g.state.String(), Since: now.Sub(g.since),
			Reason: g.lastReason, Candidate: m.candidate(now, g), Designated: g.designated, Request: g.request}
		if g.backoffUntil.After(now) {
			s.Backoff = g.backoffUntil.Sub(now)
		}
		switch {
		case g.state == StateMaster || g.state == StateTakeover || g.state == StateGiveup:
			s.Master = m.p.Self
		default:
			if p := m.liveMaster(g); p != nil {
				s.Master = p.id
			}
		}
		switch {
		case !m.p.UseLease:
			s.Lease = "none"
		case g.leaseHeld:
			s.Lease = "held"
			s.LeaseLeft = g.leaseExpiry.Sub(now)
		case g.leaseHolder != "" && g.leaseHolder != m.p.Self:
			s.Lease = "held by " + g.leaseHolder
		default:
			s.Lease = "not held"
		}
		s.Members = append(s.Members, MemberStatus{ID: m.p.Self, Rank: g.Rank, State: g.state.String(), Candidate: s.Candidate, Self: true})
		for _, p := range g.peers {
			s.Members = append(s.Members, MemberStatus{ID: p.id, Rank: p.rank, State: p.state.String(), Candidate: p.candidate, LastHeard: now.Sub(p.heard)})
		}
		sort.Slice(s.Members, func(i, j int) bool {
			a, b := s.Members[i], s.Members[j]
			if a.Rank != b.Rank {
				return a.Rank > b.Rank
			}
			return a.ID < b.ID
		})
		out = append(out, s)
	}
	return out
}
