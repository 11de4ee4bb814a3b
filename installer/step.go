package installer

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"
)

// Step is one idempotent unit of desired state on one host. Audit and
// converge are one code path: CheckApply(apply=false) only reports what it
// would change; CheckApply(apply=true) changes it. A step reads the host's
// state from env.Facts (gathered in one batch from all steps' Probes) and
// writes only through env.Conn, and only when apply is true.
type Step interface {
	// ID names the step in reports, unique within a host's plan, e.g.
	// "file /opt/lcg/etc/hagd.conf" or "mysql grant lbserver@198.18.0.11".
	ID() string
	// Probes are the facts the step needs, gathered before any step runs.
	Probes() []Probe
	// CheckApply audits (apply=false) or converges (apply=true).
	CheckApply(ctx context.Context, env *Env, apply bool) Result
}

// Env is what a step sees of its host during a run.
type Env struct {
	Host    string
	Conn    Conn
	Facts   *Facts
	Diff    bool      // produce unified diffs for files
	Secrets *Redactor // register every secret a step handles
	// Log receives progress lines (already redacted by the runner).
	Log func(format string, args ...any)
	// Peer returns the open connection of another host of the run, for a
	// step that moves data between hosts (for example an L&B dump from a
	// node loaded on the state server). The peer must have been connected
	// in an earlier phase.
	Peer func(ctx context.Context, host string) (Conn, error)

	// notes are the host's notifications (Notify, Notified); values the
	// run's values and shared resources (Value, Shared).
	notes  *notes
	values *values
}

// Reprobe gathers fresh facts after a change (apply mode only; audits use
// the batch) and merges them into env.Facts.
func (e *Env) Reprobe(ctx context.Context, probes ...Probe) error {
	f, err := Gather(ctx, e.Conn, probes)
	if err != nil {
		return err
	}
	e.Facts.Merge(f)
	return nil
}

// Status is the outcome of a step.
type Status string

// Statuses. In audit mode a step that would change reports Drift (it exists
// but differs) or Missing (it does not exist); --check shows both as "would
// change".
const (
	StatusOK          Status = "ok"
	StatusChanged     Status = "changed"
	StatusDrift       Status = "drift"
	StatusMissing     Status = "missing"
	StatusFailed      Status = "failed"
	StatusSkipped     Status = "skipped"
	StatusUnreachable Status = "unreachable"
)

// NeedsChange reports whether the status means "not as desired yet".
func (s Status) NeedsChange() bool { return s == StatusDrift || s == StatusMissing }

// Result is the outcome of one step on one host.
type Result struct {
	Host     string `json:"host"`
	Step     string `json:"step"`
	Status   Status `json:"status"`
	Message  string `json:"message,omitempty"`
	Expected string `json:"expected,omitempty"`
	Found    string `json:"found,omitempty"`
	// Drifted names each property that is not as wanted (drift and
	// missing results; the runner gives one that names none a "state"
	// property from Expected and Found), so that a JSON or JUnit reader
	// can tell a mode change from a content change.
	Drifted  []PropertyDrift `json:"drifted,omitempty"`
	Diff     string          `json:"diff,omitempty"`
	Error    string          `json:"error,omitempty"`
	Duration time.Duration   `json:"duration_ns"`
}

// PropertyDrift is one property of a step's object that differs: "mode",
// "owner", "group", "content", "kind", "target", "boot", "state", "value"...
// Expected and Found are short, one line each, and never hold a secret.
type PropertyDrift struct {
	Property string `json:"property"`
	Expected string `json:"expected"`
	Found    string `json:"found"`
}

// Prop builds a PropertyDrift.
func Prop(property, expected, found string) PropertyDrift {
	return PropertyDrift{Property: property, Expected: expected, Found: found}
}

// DriftProps builds a drift result from the properties that differ.
// Expected and Found summarise them ("mode 0640; owner root"); a step may
// set them to something more telling afterwards.
func DriftProps(msg string, props ...PropertyDrift) Result {
	r := Result{Status: StatusDrift, Message: msg, Drifted: props}
	r.Expected, r.Found = summarize(props)
	return r
}

// MissingProps builds a missing result (the object does not exist) from
// the properties that differ, usually one.
func MissingProps(msg string, props ...PropertyDrift) Result {
	r := DriftProps(msg, props...)
	r.Status = StatusMissing
	return r
}

// summarize joins properties into the one-line Expected and Found.
func summarize(props []PropertyDrift) (expected, found string) {
	var e, f []string
	for _, p := range props {
		e = append(e, p.Property+" "+p.Expected)
		f = append(f, p.Property+" "+p.Found)
	}
	return strings.Join(e, "; "), strings.Join(f, "; ")
}

// Properties lists the names of the drifted properties.
func (r Result) Properties() []string {
	out := make([]string, len(r.Drifted))
	for i, p := range r.Drifted {
		out[i] = p.Property
	}
	return out
}

// OK, Changed, Drift, Missing and Failed build results; the runner fills
// Host, Step and Duration.
func OK(msg string) Result      { return Result{Status: StatusOK, Message: msg} }
func Changed(msg string) Result { return Result{Status: StatusChanged, Message: msg} }
func Drift(msg, expected, found string) Result {
	return Result{Status: StatusDrift, Message: msg, Expected: expected, Found: found}
}
func Missing(msg string) Result { return Result{Status: StatusMissing, Message: msg} }
func Failed(err error) Result {
	return Result{Status: StatusFailed, Message: err.Error(), Error: err.Error()}
}

// Phase is a set of steps per host; every host finishes a phase before any
// host starts the next one, which is how roles order work across hosts.
type Phase struct {
	Name  string
	Steps map[string][]Step // host name -> ordered steps
}

// Plan is the ordered list of phases of a run.
type Plan struct {
	Phases []Phase
	// Support names the hosts that are in the plan only because a host of
	// --limit needs a value from them (the state server's SSH host key for
	// an rb node), with why; their steps are only the ones producing that
	// value. Reports say so.
	Support map[string]string
}

// Hosts lists every host that has a step in the plan, sorted.
func (p *Plan) Hosts() []string {
	set := map[string]bool{}
	for _, ph := range p.Phases {
		for h := range ph.Steps {
			set[h] = true
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Redactor replaces registered secrets with "********" in anything that is
// logged or reported. Safe for concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
}

// Add registers secrets (empty and very short strings are ignored: they
// would redact ordinary text).
func (r *Redactor) Add(secrets ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		if len(s) >= 4 {
			r.secrets = append(r.secrets, s)
		}
	}
}

// Redact returns s with every registered secret replaced.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "********")
	}
	return s
}

// RedactResult redacts every text field of res.
func (r *Redactor) RedactResult(res Result) Result {
	res.Message = r.Redact(res.Message)
	res.Expected = r.Redact(res.Expected)
	res.Found = r.Redact(res.Found)
	if len(res.Drifted) > 0 {
		d := make([]PropertyDrift, len(res.Drifted))
		for i, p := range res.Drifted {
			d[i] = PropertyDrift{Property: r.Redact(p.Property), Expected: r.Redact(p.Expected), Found: r.Redact(p.Found)}
		}
		res.Drifted = d
	}
	res.Diff = r.Redact(res.Diff)
	res.Error = r.Redact(res.Error)
	return res
}

// MarshalJSON of Status keeps it a plain string.
func (s Status) MarshalJSON() ([]byte, error) { return json.Marshal(string(s)) }
