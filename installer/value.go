package installer

import (
	"fmt"
	"io"
	"sync"
)

// Values a step of one host hands to steps of the same or other hosts later
// in the run (the state server's SSH host key that the rb nodes pin; the
// addresses a node's name resolves to on the server; "this primary got
// through its steps"). A Value is typed: Set and Get take and give a T,
// so no step casts what another stored. A value belongs to the host whose
// step set it; a consumer names that host.
//
// A producing step says what it sets (Producer), a consuming step what it
// reads (Consumer); CheckPlan (Run calls it) refuses a plan in which a
// consumer would run before its producer: in an earlier phase, or in the
// same phase on another host (hosts of a phase run in parallel). A
// consumer whose producer is not in the plan at all (--limit) finds no
// value at run time and says so itself.

// ValueRef names one value: its name and the host that produces it ("" in
// a Producer or Consumer: the step's own host).
type ValueRef struct{ Name, Host string }

func (v ValueRef) String() string { return v.Name + "@" + v.Host }

// Producer is a step that sets values of its host.
type Producer interface {
	Step
	Produces() []ValueRef
}

// Consumer is a step that reads values.
type Consumer interface {
	Step
	Consumes() []ValueRef
}

// Value names a value of type T.
type Value[T any] struct{ name string }

// NewValue names a value; the name must be unique among a run's values.
func NewValue[T any](name string) Value[T] { return Value[T]{name: name} }

// Name is the value's name.
func (v Value[T]) Name() string { return v.name }

// Of refers to the value host produces ("": the step's own host).
func (v Value[T]) Of(host string) ValueRef { return ValueRef{Name: v.name, Host: host} }

// Set stores x as env's host's value.
func (v Value[T]) Set(env *Env, x T) {
	if env.values == nil {
		env.values = &values{}
	}
	env.values.set(ValueRef{v.name, env.Host}, x)
}

// Get returns the value host produced in this run; ok is false when it did
// not (its step failed or did not run, or the host is not in the run).
func (v Value[T]) Get(env *Env, host string) (x T, ok bool) {
	a, ok := env.values.get(ValueRef{v.name, host})
	if !ok {
		return x, false
	}
	x, ok = a.(T)
	return x, ok
}

// values holds a run's values, and the resources its steps share.
type values struct {
	mu      sync.Mutex
	m       map[ValueRef]any
	cache   map[string]any
	closers []io.Closer
}

func (s *values) set(k ValueRef, x any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[ValueRef]any{}
	}
	s.m[k] = x
}

func (s *values) get(k ValueRef) (any, bool) {
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.m[k]
	return x, ok
}

// closeAll closes what Shared opened (the runner calls it once, at the end
// of a run, before it closes the connections).
func (s *values) closeAll() {
	s.mu.Lock()
	cs := s.closers
	s.closers = nil
	s.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

// Shared returns the run's resource under key (a MySQL connection pool, a
// local file's hash, a batch of folder listings), making it with open the
// first time; when it is an io.Closer the runner closes it at the end of
// the run. ok is false outside a run (env made by hand, in a unit test):
// the caller makes its own and releases it. open runs under the run's
// lock: keep it short and local (no waiting on others).
func Shared[T any](env *Env, key string, open func() (T, error)) (x T, ok bool, err error) {
	s := env.values
	if s == nil {
		return x, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, found := s.cache[key]; found {
		x, ok := v.(T)
		if !ok {
			return x, false, fmt.Errorf("run resource %q holds a %T, not a %T", key, v, x)
		}
		return x, true, nil
	}
	x, err = open()
	if err != nil {
		return x, false, err
	}
	if s.cache == nil {
		s.cache = map[string]any{}
	}
	s.cache[key] = x
	if c, isCloser := any(x).(io.Closer); isCloser {
		s.closers = append(s.closers, c)
	}
	return x, true, nil
}
