package installer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Notifications: a step that changed its host (apply) or would change it
// (audit) notifies handlers by name, on its own host ("restart hagd when
// its configuration changed"). The runner records the notification; a
// handler step later in the host's plan asks env.Notified(name). A
// notification holds for the rest of the run (a handler that comes again
// in a later phase acts again), and it never crosses to another host.
//
// Notify wraps a step; Handler marks the step that acts on a name. Run
// refuses a plan in which a notified name has no handler after the
// notifying step on that host: the change would be made and never acted on.

// Notifier is a step that notifies handlers when it changed (or would
// change) its host.
type Notifier interface {
	Step
	Notifies() []string
}

// Handler is a step that acts on notifications: Handles names them.
type Handler interface {
	Step
	Handles() []string
}

// Wrapper is a step that wraps another (a notifying step, one that
// registers a secret first): the runner looks through it for the
// interfaces above.
type Wrapper interface {
	Step
	Unwrap() Step
}

// Unwrap returns the innermost step of a chain of wrappers.
func Unwrap(s Step) Step {
	for i := 0; i < 64; i++ {
		w, ok := s.(Wrapper)
		if !ok {
			return s
		}
		s = w.Unwrap()
	}
	return s
}

// notifying is the step Notify returns.
type notifying struct {
	Step
	names []string
}

// Notify wraps s so that its changes notify the handlers called names on
// its host.
func Notify(s Step, names ...string) Step {
	return notifying{Step: s, names: append([]string(nil), names...)}
}

func (n notifying) Notifies() []string { return n.names }
func (n notifying) Unwrap() Step       { return n.Step }

// CheckApply implements Step (the runner records the notification, so a
// notifying step outside a run, in a unit test, is the step itself).
func (n notifying) CheckApply(ctx context.Context, env *Env, apply bool) Result {
	return n.Step.CheckApply(ctx, env, apply)
}

// collect gathers what get gives for s and every step s wraps that is an I
// (a Notifier, a Handler, a Producer, a Consumer).
func collect[I any, T any](s Step, get func(I) []T) []T {
	var out []T
	for i := 0; i < 64 && s != nil; i++ {
		if x, ok := s.(I); ok {
			out = append(out, get(x)...)
		}
		w, ok := s.(Wrapper)
		if !ok {
			break
		}
		s = w.Unwrap()
	}
	return out
}

func notifiesOf(s Step) []string   { return collect(s, Notifier.Notifies) }
func handlesOf(s Step) []string    { return collect(s, Handler.Handles) }
func producesOf(s Step) []ValueRef { return collect(s, Producer.Produces) }
func consumesOf(s Step) []ValueRef { return collect(s, Consumer.Consumes) }

// notes are the notifications of one host in one run.
type notes struct {
	mu sync.Mutex
	m  map[string]bool
}

func (n *notes) add(names []string) {
	if n == nil || len(names) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]bool{}
	}
	for _, name := range names {
		n.m[name] = true
	}
}

func (n *notes) has(name string) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[name]
}

// Notified reports whether a step of this host notified name in this run
// (it changed, or in an audit would change, the host).
func (e *Env) Notified(name string) bool { return e.notes.has(name) }

// Notify records a notification of name for this host, as a notifying
// step's change does (for a step that decides at run time, and for tests
// of handlers outside a run).
func (e *Env) Notify(names ...string) {
	if e.notes == nil {
		e.notes = &notes{}
	}
	e.notes.add(names)
}

// recordNotifications notes what s notifies when res says it changed or
// would change the host.
func recordNotifications(n *notes, s Step, res Result) {
	if res.Status == StatusChanged || res.Status.NeedsChange() {
		n.add(notifiesOf(s))
	}
}

// CheckPlan refuses a plan the runner would carry out wrongly:
//   - a notification with no handler for it after the notifying step on its
//     host (in the same phase or a later one);
//   - a value (Value) consumed by a step before, or in the same phase on
//     another host as, the step producing it: the consumer would run
//     without it.
func CheckPlan(p *Plan) error {
	type pos struct{ phase, step int }
	lastHandler := map[string]pos{} // host \x00 name -> last handler
	producedAt := map[ValueRef][]pos{}
	producerHost := map[ValueRef]string{}
	for pi, ph := range p.Phases {
		for h, steps := range ph.Steps {
			for si, s := range steps {
				for _, name := range handlesOf(s) {
					lastHandler[h+"\x00"+name] = pos{pi, si}
				}
				for _, v := range producesOf(s) {
					if v.Host == "" {
						v.Host = h
					}
					if v.Host != h {
						return fmt.Errorf("plan: phase %s: %s: step %q says it produces %s of host %s: a step produces values of its own host only",
							ph.Name, h, s.ID(), v.Name, v.Host)
					}
					producedAt[v] = append(producedAt[v], pos{pi, si})
					producerHost[v] = h
				}
			}
		}
	}
	for pi, ph := range p.Phases {
		for _, h := range slices.Sorted(maps.Keys(ph.Steps)) {
			for si, s := range ph.Steps[h] {
				for _, name := range notifiesOf(s) {
					last, ok := lastHandler[h+"\x00"+name]
					if !ok || last.phase < pi || (last.phase == pi && last.step <= si) {
						return fmt.Errorf("plan: phase %s: %s: step %q notifies %q, but no step after it on %s handles that: the change would never be acted on",
							ph.Name, h, s.ID(), name, h)
					}
				}
				for _, v := range consumesOf(s) {
					if v.Host == "" {
						v.Host = h
					}
					for _, at := range producedAt[v] {
						before := at.phase < pi || (at.phase == pi && producerHost[v] == h && at.step < si)
						if !before {
							return fmt.Errorf("plan: phase %s: %s: step %q needs %s of host %s, which phase %s produces after it (a value must be produced in an earlier phase, or earlier on the same host)",
								ph.Name, h, s.ID(), v.Name, v.Host, p.Phases[at.phase].Name)
						}
					}
				}
			}
		}
	}
	return nil
}
