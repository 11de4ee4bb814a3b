package roles

import (
	"fmt"
	"reflect"

	"github.com/gridha/gridha/installer"
)

// MergePlans concatenates plans phase by phase (phase i of each plan runs
// together), so several roles can run in one pass; names[i] is the role
// that planned plans[i]. A step whose ID a host already has in that phase
// is checked once when both roles want the same of it (rb-node plans the
// state server's steps too). When they want different things (another
// mode, content, source) keeping either would silently give one role what
// the other did not ask for: that is an error naming both roles, the host
// and the step, and the first field that differs.
func MergePlans(names []string, plans []*installer.Plan) (*installer.Plan, error) {
	type planned struct {
		role string
		step installer.Step
	}
	out := &installer.Plan{}
	seen := map[string]planned{} // phase index, host, step ID
	for pi, p := range plans {
		if p == nil {
			continue
		}
		role := fmt.Sprintf("plan %d", pi+1)
		if pi < len(names) {
			role = names[pi]
		}
		for h, why := range p.Support {
			if out.Support == nil {
				out.Support = map[string]string{}
			}
			if out.Support[h] == "" {
				out.Support[h] = why
			}
		}
		for i, ph := range p.Phases {
			if i >= len(out.Phases) {
				out.Phases = append(out.Phases, installer.Phase{Name: ph.Name, Steps: map[string][]installer.Step{}})
			}
			for h, steps := range ph.Steps {
				for _, s := range steps {
					k := fmt.Sprintf("%d\x00%s\x00%s", i, h, s.ID())
					if first, ok := seen[k]; ok {
						if d := stepDiff(first.step, s); d != "" {
							return nil, fmt.Errorf("%s: step %q is planned by roles %s and %s with different wants (%s); "+
								"the run would do only what %s wants", h, s.ID(), first.role, role, d, first.role)
						}
						continue
					}
					seen[k] = planned{role, s}
					out.Phases[i].Steps[h] = append(out.Phases[i].Steps[h], s)
				}
			}
		}
	}
	return out, nil
}

// stepDiff says where two steps with one ID differ ("" when they want the
// same): their type, or the first field (by path) whose value differs. It
// names the field, never its values: a file's content may be a secret.
// Functions (check and content callbacks) count as the same when they are
// the same code: two roles building a step with one helper agree.
func stepDiff(a, b installer.Step) string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Type() != vb.Type() {
		return fmt.Sprintf("a %s and a %s", va.Type(), vb.Type())
	}
	return valueDiff(va.Type().String(), va, vb, 0)
}

// maxDiffDepth bounds the walk: steps are plain values, and a cycle of
// pointers must not hang the planner.
const maxDiffDepth = 32

func valueDiff(path string, a, b reflect.Value, depth int) string {
	if depth > maxDiffDepth {
		return ""
	}
	if a.IsValid() != b.IsValid() {
		return path
	}
	if !a.IsValid() {
		return ""
	}
	switch a.Kind() {
	case reflect.Func:
		if a.IsNil() != b.IsNil() || a.Pointer() != b.Pointer() {
			return path + " (another function)"
		}
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return path
			}
			return ""
		}
		if a.Kind() == reflect.Interface && a.Elem().Type() != b.Elem().Type() {
			return path
		}
		return valueDiff(path, a.Elem(), b.Elem(), depth+1)
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if a.Type().Field(i).Tag.Get("merge") == "ignore" {
				continue // provenance, not a want (e.g. NodeKey.Generated)
			}
			if d := valueDiff(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i), depth+1); d != "" {
				return d
			}
		}
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return path
		}
		for i := 0; i < a.Len(); i++ {
			if d := valueDiff(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i), depth+1); d != "" {
				return d
			}
		}
	case reflect.Map:
		if a.Len() != b.Len() {
			return path
		}
		for _, k := range a.MapKeys() {
			vb := b.MapIndex(k)
			if !vb.IsValid() {
				return fmt.Sprintf("%s[%v]", path, k)
			}
			if d := valueDiff(fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), vb, depth+1); d != "" {
				return d
			}
		}
	case reflect.Chan, reflect.UnsafePointer:
		if a.Pointer() != b.Pointer() {
			return path
		}
	default:
		if !a.Equal(b) {
			return path
		}
	}
	return ""
}
