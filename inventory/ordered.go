package inventory

// Named is one entry of an OrderedMap.
type Named[T any] struct {
	Name  string
	Value T
}

// OrderedMap is a YAML mapping decoded with its order kept: declare a field
// `Groups OrderedMap[Group] `yaml:"groups"“ and the decoder fills one entry
// per key, in file order (duplicate keys are errors). Iterate it as a slice:
//
//	for _, g := range s.Groups { use(g.Name, g.Value) }
type OrderedMap[T any] []Named[T]

func (OrderedMap[T]) isOrderedMap() {}

// Get returns the value of name.
func (m OrderedMap[T]) Get(name string) (T, bool) {
	for _, e := range m {
		if e.Name == name {
			return e.Value, true
		}
	}
	var zero T
	return zero, false
}

// Ptr returns a pointer to the value of name (to change it in place), or nil.
func (m OrderedMap[T]) Ptr(name string) *T {
	for i := range m {
		if m[i].Name == name {
			return &m[i].Value
		}
	}
	return nil
}

// Names lists the keys in file order.
func (m OrderedMap[T]) Names() []string {
	out := make([]string, len(m))
	for i, e := range m {
		out[i] = e.Name
	}
	return out
}
