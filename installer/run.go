package installer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Mode is what a run does to the hosts.
type Mode int

// Modes. ModeAudit (gridha verify) and ModeCheck (install --check) never
// write; ModeApply converges and takes the per-host lock.
const (
	ModeAudit Mode = iota
	ModeCheck
	ModeApply
)

func (m Mode) String() string {
	switch m {
	case ModeAudit:
		return "audit"
	case ModeCheck:
		return "check"
	case ModeApply:
		return "apply"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// DefaultConcurrency is the number of hosts worked on at once when
// RunOptions.Concurrency is not set.
const DefaultConcurrency = 20

// RunOptions are the choices of one run.
type RunOptions struct {
	Mode        Mode
	Diff        bool // unified diffs of files in results
	Concurrency int  // hosts at once; 0 means DefaultConcurrency
	Secrets     *Redactor
	// Events receives live progress. Calls are serialised (never two at
	// once), so a reporter needs no locking of its own. It must not block
	// for long: every host waits on it.
	Events func(Event)
	// LockPath is the per-host lock file (ModeApply); "" means
	// DefaultLockPath.
	LockPath string
	// NoFactAgent makes the shell script answer every probe even where
	// the host's gridha could (`gridha facts`): for a suspected agent
	// bug, and for benchmarks that compare the two.
	NoFactAgent bool
}

// agents is where the gatherer looks for the host's gridha ("" for
// nowhere).
func (o RunOptions) agents() string {
	if o.NoFactAgent {
		return ""
	}
	return agentPaths
}

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	EventHostStart       EventKind = "host-start"       // a host starts a phase
	EventStepResult      EventKind = "step-result"      // one step finished (Result set)
	EventHostUnreachable EventKind = "host-unreachable" // dial failed (Message says why)
	EventHostDone        EventKind = "host-done"        // a host finished a phase
	EventLog             EventKind = "log"              // a step's progress line (Message)
)

// Event is one piece of live progress.
type Event struct {
	Time    time.Time
	Host    string
	Phase   string
	Step    string
	Kind    EventKind
	Result  *Result
	Message string // redacted
}

// HostReport is how one host fared.
type HostReport struct {
	Host        string         `json:"host"`
	Unreachable bool           `json:"unreachable,omitempty"`
	Err         string         `json:"error,omitempty"` // dial, lock, fact gathering, interruption
	Stats       Stats          `json:"stats"`
	Counts      map[Status]int `json:"counts"`
	// Phase is the last phase the host reached; Stopped says where it
	// stood when the run was interrupted or the host failed ("" when it ran
	// to the end).
	Phase   string `json:"phase,omitempty"`
	Stopped string `json:"stopped,omitempty"`
	// Duration is the wall time the host was worked on (its phases, from
	// dialling to its last step); Facts is the part of it spent gathering
	// facts (and waiting for its lock).
	Duration time.Duration `json:"duration_ns"`
	Facts    time.Duration `json:"facts_ns"`
	// Support says why a host outside --limit was contacted at all: a
	// named host's step needed a value from it (Plan.Support).
	Support string `json:"support,omitempty"`
	// Locked is set when an install took the host's exclusive lock
	// because something on it (or a step writing through it) had to
	// change; a no-change install never takes it.
	Locked bool `json:"locked,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Mode     Mode                   `json:"-"`
	Results  []Result               `json:"results"` // phase by phase, host by host (sorted), in step order
	Hosts    map[string]*HostReport `json:"hosts"`
	Started  time.Time              `json:"started"`
	Duration time.Duration          `json:"duration_ns"`
}

// Counts totals results by status over all hosts.
func (r *Report) Counts() map[Status]int {
	out := map[Status]int{}
	for _, res := range r.Results {
		out[res.Status]++
	}
	return out
}

// severity orders statuses from best to worst, for Worst.
var severity = map[Status]int{
	StatusOK:          0,
	StatusSkipped:     1,
	StatusChanged:     2,
	StatusDrift:       3,
	StatusMissing:     4,
	StatusFailed:      5,
	StatusUnreachable: 6,
}

// Worst is the worst status of the run (ok < skipped < changed < drift <
// missing < failed < unreachable); ok for an empty run. A host-level error
// without any step result (lock refused) counts as failed.
func (r *Report) Worst() Status {
	worst := StatusOK
	for _, res := range r.Results {
		if severity[res.Status] > severity[worst] {
			worst = res.Status
		}
	}
	for _, h := range r.Hosts {
		if h.Unreachable && severity[StatusUnreachable] > severity[worst] {
			worst = StatusUnreachable
		} else if h.Err != "" && severity[StatusFailed] > severity[worst] {
			worst = StatusFailed
		}
	}
	return worst
}

// HostNames lists the hosts of the report, sorted.
func (r *Report) HostNames() []string {
	return slices.Sorted(maps.Keys(r.Hosts))
}

// hostRun is the state of one host across the phases of a run.
type hostRun struct {
	name   string
	conn   Conn
	dialed bool
	// stopped is set once the host can run nothing more: unreachable,
	// lock refused, a step failed, or the run was interrupted.
	stopped    bool
	stopStatus Status // StatusUnreachable or StatusSkipped for the remaining steps
	stopWhy    string // message for remaining steps
	rep        *HostReport
	// allProbes are the probes of all the host's phases, gathered in its
	// first session into facts. Audits use those facts for every phase;
	// an install too, until something has to change on the host.
	allProbes []Probe
	facts     *Facts
	// notes are the notifications of the host's steps in this run.
	notes notes

	// lockMu guards lock and converging: a step of another host may lock
	// this one through Env.Peer while this host runs a phase of its own.
	lockMu sync.Mutex
	lock   *hostLock
	// converging is set (ModeApply) once the host holds its exclusive
	// lock: from then on it works as a converging host does, with facts
	// gathered per phase and again after each change.
	converging bool
}

func (h *hostRun) isConverging() bool {
	h.lockMu.Lock()
	defer h.lockMu.Unlock()
	return h.converging
}

// runner holds what every host of one run shares.
type runner struct {
	hosts  map[string]*hostRun // set before the first phase, read-only after
	dialer Dialer
	opts   RunOptions
	values *values
	evMu   sync.Mutex
}

func (r *runner) emit(ev Event) {
	if r.opts.Events == nil {
		return
	}
	ev.Time = time.Now()
	ev.Message = r.opts.Secrets.Redact(ev.Message)
	r.evMu.Lock()
	defer r.evMu.Unlock()
	r.opts.Events(ev)
}

// Run carries out plan on the hosts dialer reaches.
//
// Per host (hosts in parallel, at most opts.Concurrency at once): one
// connection for the whole run. The host's first session gathers the facts
// of all its phases at once; in ModeAudit and ModeCheck that is the only
// session a host costs. In ModeApply the first session also holds the
// per-host lock shared while it reads (so it never reads a host another run
// is converging), and each phase is first checked against those facts: a
// host where nothing differs costs that one session, like an audit. At the
// first step that would change something the host is locked exclusively (a
// session held for the rest of the run), its facts are read again, and from
// that phase on it converges: facts per phase, read again after each change.
// A failed step skips the rest of that host's steps, in this and later
// phases. Phases are barriers across hosts. Unreachable hosts get
// StatusUnreachable for every step while the others go on.
//
// Run returns a report in every case; the error is non-nil only for a bad
// plan or when ctx was cancelled (the report then says where each host
// stood).
func Run(ctx context.Context, dialer Dialer, plan *Plan, opts RunOptions) (*Report, error) {
	if plan == nil {
		return nil, errors.New("run: no plan")
	}
	if dialer == nil {
		return nil, errors.New("run: no dialer")
	}
	if err := CheckPlan(plan); err != nil {
		return nil, err
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.LockPath == "" {
		opts.LockPath = DefaultLockPath
	}
	r := &runner{dialer: dialer, opts: opts, values: &values{}}
	rep := &Report{Mode: opts.Mode, Hosts: map[string]*HostReport{}, Started: time.Now()}
	hosts := map[string]*hostRun{}
	r.hosts = hosts
	for _, h := range plan.Hosts() {
		hr := &HostReport{Host: h, Counts: map[Status]int{}, Support: plan.Support[h]}
		rep.Hosts[h] = hr
		hosts[h] = &hostRun{name: h, rep: hr}
	}
	for _, ph := range plan.Phases {
		for h, steps := range ph.Steps {
			for _, s := range steps {
				hosts[h].allProbes = append(hosts[h].allProbes, s.Probes()...)
			}
		}
	}
	defer func() {
		r.values.closeAll()
		for _, h := range hosts {
			if h.lock != nil {
				h.lock.release()
			}
			if h.conn != nil {
				h.rep.Stats = h.conn.Stats()
				_ = h.conn.Close()
			}
		}
		rep.Duration = time.Since(rep.Started)
	}()

	sem := make(chan struct{}, opts.Concurrency)
	for pi := range plan.Phases {
		ph := &plan.Phases[pi]
		names := make([]string, 0, len(ph.Steps))
		for h, steps := range ph.Steps {
			if len(steps) > 0 {
				names = append(names, h)
			}
		}
		sort.Strings(names)
		results := make([][]Result, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			h := hosts[name]
			steps := ph.Steps[name]
			if h.stopped || ctx.Err() != nil {
				results[i] = r.notRun(ctx, h, ph.Name, steps)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					results[i] = r.notRun(ctx, h, ph.Name, steps)
					return
				}
				defer func() { <-sem }()
				start := time.Now()
				results[i] = r.runPhase(ctx, h, ph.Name, steps)
				h.rep.Duration += time.Since(start)
			}()
		}
		wg.Wait()
		for i, name := range names {
			for _, res := range results[i] {
				rep.Results = append(rep.Results, res)
				hosts[name].rep.Counts[res.Status]++
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("run interrupted: %w", err)
	}
	return rep, nil
}

// notRun reports steps that cannot run: the host is unreachable or stopped
// earlier, or the run was interrupted before the phase.
func (r *runner) notRun(ctx context.Context, h *hostRun, phase string, steps []Step) []Result {
	if !h.stopped && ctx.Err() != nil {
		h.stopped, h.stopStatus = true, StatusSkipped
		h.stopWhy = "not run: interrupted before phase " + phase
		h.rep.Phase = phase
		h.rep.Stopped = "interrupted before phase " + phase + " started"
	}
	return r.skipAll(h, phase, steps)
}

func (r *runner) skipAll(h *hostRun, phase string, steps []Step) []Result {
	out := make([]Result, 0, len(steps))
	for _, s := range steps {
		res := Result{Host: h.name, Step: s.ID(), Status: h.stopStatus, Message: h.stopWhy}
		res = r.opts.Secrets.RedactResult(res)
		out = append(out, res)
		r.emit(Event{Host: h.name, Phase: phase, Step: res.Step, Kind: EventStepResult, Result: &res})
	}
	return out
}

// stop marks h as unable to run any more steps.
func (h *hostRun) stop(status Status, why, where string) {
	h.stopped, h.stopStatus, h.stopWhy = true, status, why
	if h.rep.Stopped == "" {
		h.rep.Stopped = where
	}
}

// peer hands a step the connection of another host, opened in an earlier
// phase (phases are barriers, so that connection is set and stays set).
// A converging step (apply) may write through it, so in ModeApply the peer
// is first locked exclusively, as if something on it changed.
func (r *runner) peer(apply bool) func(context.Context, string) (Conn, error) {
	return func(ctx context.Context, name string) (Conn, error) {
		h, ok := r.hosts[name]
		if !ok {
			return nil, fmt.Errorf("host %s is not part of this run", name)
		}
		if h.conn == nil {
			return nil, fmt.Errorf("host %s is not connected (unreachable, or it has no step in an earlier phase)", name)
		}
		if apply && r.opts.Mode == ModeApply {
			if _, err := r.lockHost(ctx, h, nil); err != nil {
				return nil, fmt.Errorf("host %s: %w", name, err)
			}
		}
		return h.conn, nil
	}
}

// lockHost takes h's exclusive lock unless it holds it already, gathering
// probes in the session that waits for it (nil facts when it held it).
func (r *runner) lockHost(ctx context.Context, h *hostRun, probes []Probe) (*Facts, error) {
	h.lockMu.Lock()
	defer h.lockMu.Unlock()
	if h.converging {
		return nil, nil
	}
	start := time.Now()
	l, facts, err := acquireLockAndGather(ctx, h.conn, r.opts.LockPath, probes, r.opts.agents())
	if probes != nil {
		// Only the host's own goroutine passes probes: a peer's lock is
		// not this host's time.
		h.rep.Facts += time.Since(start)
	}
	if err != nil {
		return nil, err
	}
	h.lock, h.converging, h.rep.Locked = l, true, true
	return facts, nil
}

// runPhase runs one phase on one host.
func (r *runner) runPhase(ctx context.Context, h *hostRun, phase string, steps []Step) []Result {
	h.rep.Phase = phase
	r.emit(Event{Host: h.name, Phase: phase, Kind: EventHostStart})
	defer r.emit(Event{Host: h.name, Phase: phase, Kind: EventHostDone})

	if !h.dialed {
		h.dialed = true
		conn, err := r.dialer.Dial(ctx, h.name)
		if err != nil {
			if ctx.Err() != nil {
				h.stop(StatusSkipped, "not run: interrupted while connecting", "interrupted while connecting in phase "+phase)
				h.rep.Err = r.opts.Secrets.Redact(fmt.Sprintf("%s: connect: %s", h.name, strings.TrimPrefix(err.Error(), h.name+": ")))
				return r.skipAll(h, phase, steps)
			}
			// The transport's errors already start with the host's name.
			why := strings.TrimPrefix(err.Error(), h.name+": ")
			msg := r.opts.Secrets.Redact(fmt.Sprintf("%s: unreachable: %s", h.name, why))
			h.rep.Unreachable, h.rep.Err = true, msg
			h.stop(StatusUnreachable, msg, "unreachable in phase "+phase)
			r.emit(Event{Host: h.name, Phase: phase, Kind: EventHostUnreachable, Message: msg})
			return r.skipAll(h, phase, steps)
		}
		h.conn = conn
	}

	apply := r.opts.Mode == ModeApply
	if !apply || !h.isConverging() {
		if h.facts == nil {
			// The host's first session: the facts of all its phases. An
			// install reads them under the lock held shared, so that it
			// never reads a host another run is converging.
			lockPath := ""
			if apply {
				lockPath = r.opts.LockPath
			}
			start := time.Now()
			facts, err := gatherShared(ctx, h.conn, h.allProbes, lockPath, r.opts.agents())
			h.rep.Facts += time.Since(start)
			if err != nil {
				return r.gatherFailed(ctx, h, phase, steps, err)
			}
			h.facts = facts
		}
		if !apply {
			return r.runSteps(ctx, h, phase, steps, h.facts, false)
		}
		if out, done := r.noChange(ctx, h, phase, steps); done {
			return out
		}
		// Something differs: lock the host and read its facts again (another
		// run may have converged it since the first session).
		var probes []Probe
		for _, s := range steps {
			probes = append(probes, s.Probes()...)
		}
		facts, err := r.lockHost(ctx, h, probes)
		if err != nil {
			h.rep.Err = r.opts.Secrets.Redact(err.Error())
			if ctx.Err() != nil {
				h.stop(StatusSkipped, "not run: interrupted while locking the host", "interrupted while locking, phase "+phase)
			} else {
				h.stop(StatusSkipped, "not run: host not locked", "lock refused in phase "+phase)
			}
			return r.skipAll(h, phase, steps)
		}
		if facts == nil {
			// Locked meanwhile by a peer step of another host: its facts
			// may have changed through that peer.
			if facts, err = r.gatherPhase(ctx, h, probes); err != nil {
				return r.gatherFailed(ctx, h, phase, steps, err)
			}
		}
		return r.runSteps(ctx, h, phase, steps, facts, true)
	}
	var probes []Probe
	for _, s := range steps {
		probes = append(probes, s.Probes()...)
	}
	facts, err := r.gatherPhase(ctx, h, probes)
	if err != nil {
		return r.gatherFailed(ctx, h, phase, steps, err)
	}
	return r.runSteps(ctx, h, phase, steps, facts, true)
}

func (r *runner) gatherPhase(ctx context.Context, h *hostRun, probes []Probe) (*Facts, error) {
	start := time.Now()
	defer func() { h.rep.Facts += time.Since(start) }()
	facts, _, err := gatherBatch(ctx, h.conn, probes, "", r.opts.agents())
	return facts, err
}

// gatherFailed reports a phase whose facts could not be gathered: the first
// step fails with the reason, the others are skipped.
func (r *runner) gatherFailed(ctx context.Context, h *hostRun, phase string, steps []Step, err error) []Result {
	if ctx.Err() != nil {
		h.stop(StatusSkipped, "not run: interrupted while gathering facts", "interrupted while gathering facts, phase "+phase)
		h.rep.Err = "interrupted"
		return r.skipAll(h, phase, steps)
	}
	if errors.Is(err, ErrLocked) {
		h.rep.Err = r.opts.Secrets.Redact(err.Error())
		h.stop(StatusSkipped, "not run: host not locked", "lock refused in phase "+phase)
		return r.skipAll(h, phase, steps)
	}
	err = fmt.Errorf("%s: phase %s: %w", h.name, phase, err)
	h.rep.Err = r.opts.Secrets.Redact(err.Error())
	res := r.opts.Secrets.RedactResult(Failed(err))
	res.Host, res.Step = h.name, steps[0].ID()
	r.emit(Event{Host: h.name, Phase: phase, Step: res.Step, Kind: EventStepResult, Result: &res})
	h.stop(StatusSkipped, "skipped: facts of phase "+phase+" could not be gathered", "fact gathering failed in phase "+phase)
	return append([]Result{res}, r.skipAll(h, phase, steps[1:])...)
}

// noChange checks a phase of an install against the facts of the host's
// first session without changing anything. done is true when every step is
// ok (the results are then the phase's results: the host needs no lock and
// no other session), or when the run was interrupted meanwhile.
func (r *runner) noChange(ctx context.Context, h *hostRun, phase string, steps []Step) (out []Result, done bool) {
	var logs []Event
	env := r.env(h, h.facts, false)
	out = make([]Result, 0, len(steps))
	for i, s := range steps {
		id := s.ID()
		env.Log = func(format string, args ...any) {
			logs = append(logs, Event{Host: h.name, Phase: phase, Step: id, Kind: EventLog, Message: fmt.Sprintf(format, args...)})
		}
		res := r.check(ctx, h, s, env, false)
		if ctx.Err() != nil && res.Status != StatusOK && res.Status != StatusSkipped {
			// Interrupted: report where the host stood, as a converging
			// run would.
			res.Status, res.Error, res.Message = StatusFailed, ctx.Err().Error(), ctx.Err().Error()
			out = append(out, res)
			for _, ev := range logs {
				r.emit(ev)
			}
			for j := range out {
				r.emit(Event{Host: h.name, Phase: phase, Step: out[j].Step, Kind: EventStepResult, Result: &out[j]})
			}
			h.rep.Err = "interrupted"
			h.stop(StatusSkipped, fmt.Sprintf("skipped: earlier step %q failed", id), fmt.Sprintf("interrupted at step %q in phase %s", id, phase))
			return append(out, r.skipAll(h, phase, steps[i+1:])...), true
		}
		if res.Status != StatusOK && res.Status != StatusSkipped {
			return nil, false
		}
		out = append(out, res)
	}
	for _, ev := range logs {
		r.emit(ev)
	}
	for i := range out {
		r.emit(Event{Host: h.name, Phase: phase, Step: out[i].Step, Kind: EventStepResult, Result: &out[i]})
	}
	return out, true
}

func (r *runner) env(h *hostRun, facts *Facts, apply bool) *Env {
	return &Env{
		Host:    h.name,
		Conn:    h.conn,
		Facts:   facts,
		Diff:    r.opts.Diff,
		Secrets: r.opts.Secrets,
		Peer:    r.peer(apply),
		notes:   &h.notes,
		values:  r.values,
	}
}

// check runs one step and fills in the runner's part of its result.
func (r *runner) check(ctx context.Context, h *hostRun, s Step, env *Env, apply bool) Result {
	start := time.Now()
	res := checkApply(ctx, s, env, apply)
	res.Host, res.Step, res.Duration = h.name, s.ID(), time.Since(start)
	if res.Status == "" {
		res.Status = StatusFailed
		res.Error = "step returned no status"
		res.Message = res.Error
	}
	if res.Status == StatusFailed && res.Error == "" {
		res.Error = res.Message
	}
	if res.Status.NeedsChange() && len(res.Drifted) == 0 {
		// A step that names no property: its whole state is the one
		// that differs, so every report still names one.
		d := PropertyDrift{Property: "state", Expected: res.Expected, Found: res.Found}
		if d.Expected == "" {
			d.Expected = "as the step wants it"
		}
		if d.Found == "" {
			d.Found = res.Message
			if res.Status == StatusMissing {
				d.Found = "absent"
			}
		}
		res.Drifted = []PropertyDrift{d}
	}
	return r.opts.Secrets.RedactResult(res)
}

// runSteps runs the steps of a phase in order: audits (apply false) on the
// facts gathered, converges (apply true) reading facts again after each
// change.
func (r *runner) runSteps(ctx context.Context, h *hostRun, phase string, steps []Step, facts *Facts, apply bool) []Result {
	env := r.env(h, facts, apply)
	out := make([]Result, 0, len(steps))
	// stale is set when a step changed the host: the facts of the steps
	// after it are gathered again (one session) before the next one runs,
	// so a step sees what earlier steps of its phase did (an init script
	// written, then its service started). A no-change run never regathers.
	stale := false
	for i, s := range steps {
		id := s.ID()
		if ctx.Err() != nil {
			h.stop(StatusSkipped, "not run: interrupted", fmt.Sprintf("interrupted in phase %s before step %q (%d of %d steps of the phase done)", phase, id, i, len(steps)))
			h.rep.Err = "interrupted"
			return append(out, r.skipAll(h, phase, steps[i:])...)
		}
		if stale {
			stale = false
			var rest []Probe
			for _, s2 := range steps[i:] {
				rest = append(rest, s2.Probes()...)
			}
			fresh, err := r.gatherPhase(ctx, h, rest)
			if err != nil {
				err = fmt.Errorf("%s: %s: re-reading facts after the previous change: %w", h.name, id, err)
				res := r.opts.Secrets.RedactResult(Failed(err))
				res.Host, res.Step = h.name, id
				out = append(out, res)
				r.emit(Event{Host: h.name, Phase: phase, Step: id, Kind: EventStepResult, Result: &res})
				h.stop(StatusSkipped, fmt.Sprintf("skipped: earlier step %q failed", id), fmt.Sprintf("failed at step %q in phase %s", id, phase))
				if ctx.Err() != nil {
					h.rep.Err = "interrupted"
				}
				return append(out, r.skipAll(h, phase, steps[i+1:])...)
			}
			env.Facts.Merge(fresh)
		}
		env.Log = func(format string, args ...any) {
			r.emit(Event{Host: h.name, Phase: phase, Step: id, Kind: EventLog, Message: fmt.Sprintf(format, args...)})
		}
		res := r.check(ctx, h, s, env, apply)
		recordNotifications(&h.notes, s, res)
		out = append(out, res)
		r.emit(Event{Host: h.name, Phase: phase, Step: id, Kind: EventStepResult, Result: &res})
		if res.Status == StatusChanged && apply {
			stale = true
		}
		if res.Status == StatusFailed {
			where := fmt.Sprintf("failed at step %q in phase %s", id, phase)
			if ctx.Err() != nil {
				where = fmt.Sprintf("interrupted at step %q in phase %s", id, phase)
				h.rep.Err = "interrupted"
			}
			h.stop(StatusSkipped, fmt.Sprintf("skipped: earlier step %q failed", id), where)
			return append(out, r.skipAll(h, phase, steps[i+1:])...)
		}
	}
	return out
}

// checkApply calls s.CheckApply, turning a panic into a failed result so one
// bad step cannot take the whole run down.
func checkApply(ctx context.Context, s Step, env *Env, apply bool) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			res = Failed(fmt.Errorf("%s: %s: internal error: %v", env.Host, s.ID(), p))
		}
	}()
	return s.CheckApply(ctx, env, apply)
}
