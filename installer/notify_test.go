package installer

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// handlerStep reports, as its message, whether its host was notified.
type handlerStep struct {
	id, on string
}

func (h handlerStep) ID() string        { return h.id }
func (h handlerStep) Probes() []Probe   { return nil }
func (h handlerStep) Handles() []string { return []string{h.on} }
func (h handlerStep) CheckApply(ctx context.Context, env *Env, apply bool) Result {
	if env.Notified(h.on) {
		return OK("notified")
	}
	return OK("quiet")
}

// valueStep produces or consumes a typed value.
type valueStep struct {
	id      string
	produce string // value to set, "" for none
	from    string // host whose value to read, "" for none
}

var testValue = NewValue[[]string]("test-value")

func (v valueStep) ID() string      { return v.id }
func (v valueStep) Probes() []Probe { return nil }
func (v valueStep) Produces() []ValueRef {
	if v.produce == "" {
		return nil
	}
	return []ValueRef{testValue.Of("")}
}
func (v valueStep) Consumes() []ValueRef {
	if v.from == "" {
		return nil
	}
	return []ValueRef{testValue.Of(v.from)}
}
func (v valueStep) CheckApply(ctx context.Context, env *Env, apply bool) Result {
	if v.produce != "" {
		testValue.Set(env, []string{env.Host, v.produce})
	}
	if v.from != "" {
		got, ok := testValue.Get(env, v.from)
		if !ok {
			return Missing("no value from " + v.from)
		}
		return OK(strings.Join(got, " "))
	}
	return OK("")
}

// TestNotifications: a step that changes (or in an audit would change) its
// host notifies the handlers of its host, in its phase and later ones; an
// ok step notifies nobody, and a notification never reaches another host.
// A notifier wrapped again (a secret registered first) still notifies.
func TestNotifications(t *testing.T) {
	var log []string
	var mu sync.Mutex
	fake := func(id string, st Status) Step { return fakeStep{id: id, status: st, log: &log, mu: &mu} }
	plan := &Plan{Phases: []Phase{
		{Name: "one", Steps: map[string][]Step{
			"a": {Notify(fake("a1", StatusDrift), "x"), handlerStep{"a-x", "x"}, Notify(fake("a2", StatusOK), "y"), handlerStep{"a-y", "y"}},
			"b": {Notify(fake("b1", StatusOK), "x"), handlerStep{"b-x", "x"}},
			"c": {wrapped{Notify(fake("c1", StatusMissing), "x")}, handlerStep{"c-x", "x"}},
		}},
		{Name: "two", Steps: map[string][]Step{
			"a": {handlerStep{"a-x2", "x"}},
			"b": {handlerStep{"b-x2", "x"}},
		}},
	}}
	rep, err := Run(context.Background(), &localDialer{}, plan, RunOptions{Mode: ModeAudit})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rep.Results {
		got[r.Host+"/"+r.Step] = r.Message
	}
	for k, want := range map[string]string{
		"a/a-x": "notified", "a/a-y": "quiet", "a/a-x2": "notified",
		"b/b-x": "quiet", "b/b-x2": "quiet", "c/c-x": "notified",
	} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}
}

// wrapped is a wrapper step as roles write them (withSecret).
type wrapped struct{ Step }

func (w wrapped) Unwrap() Step { return w.Step }

// TestValues: a value set by a step of one host in one phase is read, typed,
// by a step of another host in a later phase, and by a later step of its
// own host in the same phase; a host that produced nothing has no value.
func TestValues(t *testing.T) {
	plan := &Plan{Phases: []Phase{
		{Name: "one", Steps: map[string][]Step{
			"srv": {valueStep{id: "produce", produce: "key"}, valueStep{id: "same host", from: "srv"}},
		}},
		{Name: "two", Steps: map[string][]Step{
			"node": {valueStep{id: "consume", from: "srv"}, valueStep{id: "from nobody", from: "node"}},
		}},
	}}
	rep, err := Run(context.Background(), &localDialer{}, plan, RunOptions{Mode: ModeAudit})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rep.Results {
		got[r.Host+"/"+r.Step] = string(r.Status) + " " + r.Message
	}
	for k, want := range map[string]string{
		"srv/same host":    "ok srv key",
		"node/consume":     "ok srv key",
		"node/from nobody": "missing no value from node",
	} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}
}

// TestCheckPlan: Run refuses, before contacting any host, a plan that
// would notify nobody or read a value before it is produced.
func TestCheckPlan(t *testing.T) {
	one := func(steps map[string][]Step) *Plan { return &Plan{Phases: []Phase{{Name: "p1", Steps: steps}}} }
	two := func(a, b map[string][]Step) *Plan {
		return &Plan{Phases: []Phase{{Name: "p1", Steps: a}, {Name: "p2", Steps: b}}}
	}
	n := Notify(handlerStep{"file", "other"}, "x")
	for _, c := range []struct {
		name string
		plan *Plan
		want string // "" for a good plan
	}{
		{"handler after", one(map[string][]Step{"a": {n, handlerStep{"h", "x"}}}), ""},
		{"handler in a later phase", two(map[string][]Step{"a": {n}}, map[string][]Step{"a": {handlerStep{"h", "x"}}}), ""},
		{"no handler", one(map[string][]Step{"a": {n}}), `a: step "file" notifies "x", but no step after it on a handles that`},
		{"handler before", one(map[string][]Step{"a": {handlerStep{"h", "x"}, n}}), `notifies "x"`},
		{"handler on another host", one(map[string][]Step{"a": {n}, "b": {handlerStep{"h", "x"}}}), `notifies "x"`},
		{"value from an earlier phase", two(map[string][]Step{"s": {valueStep{id: "p", produce: "v"}}}, map[string][]Step{"n": {valueStep{id: "c", from: "s"}}}), ""},
		{"value earlier on the same host", one(map[string][]Step{"s": {valueStep{id: "p", produce: "v"}, valueStep{id: "c", from: "s"}}}), ""},
		{"value nobody produces", one(map[string][]Step{"n": {valueStep{id: "c", from: "s"}}}), ""},
		{"value later on the same host", one(map[string][]Step{"s": {valueStep{id: "c", from: "s"}, valueStep{id: "p", produce: "v"}}}), `s: step "c" needs test-value of host s, which phase p1 produces after it`},
		{"value from a parallel host", one(map[string][]Step{"s": {valueStep{id: "p", produce: "v"}}, "n": {valueStep{id: "c", from: "s"}}}), `n: step "c" needs test-value of host s`},
		{"value from a later phase", two(map[string][]Step{"n": {valueStep{id: "c", from: "s"}}}, map[string][]Step{"s": {valueStep{id: "p", produce: "v"}}}), `which phase p2 produces after it`},
	} {
		d := &localDialer{}
		_, err := Run(context.Background(), d, c.plan, RunOptions{Mode: ModeAudit})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		case c.want != "" && d.dials.Load() != 0:
			t.Errorf("%s: a bad plan dialled %d hosts", c.name, d.dials.Load())
		}
	}
}

// TestAssignments: key=value lines in order, the value after the first
// "=", other lines passed over, and a stop honoured.
func TestAssignments(t *testing.T) {
	var got []string
	for k, v := range Assignments("init=systemd\nnoise\nmsg=a=b\n=empty key\nlast=") {
		got = append(got, k+"|"+v)
	}
	if want := "init|systemd msg|a=b |empty key last|"; strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
	for k := range Assignments("a=1\nb=2") {
		if k != "a" {
			t.Errorf("went on after a stop: %s", k)
		}
		break
	}
}
