package inventory

import (
	"fmt"
	"github.com/gridha/gridha/internal/lazyre"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The generic decoder: from a yaml.Node tree into typed structs, by their
// `yaml:"..."` tags. Role engineers declare structs; this file does the
// rest. Supported field types: string, bool, signed/unsigned ints, floats,
// time.Duration ("90s", "2m"), SecretRef (in keys ending in _file), slices,
// OrderedMap[T], map[string]T, nested structs (also embedded with
// `yaml:",inline"`) and pointers to any of these. Every key and value has
// its position recorded under its dotted path, for Checker.

// maxNodes bounds the work one document may cause (alias expansion can
// otherwise make a small file decode into a huge tree).
const maxNodes = 200000

type fieldPos struct {
	Key, Value Pos
	coll       bool // the value is a mapping, a list or empty: point at the key
}

type decoder struct {
	file   string
	dir    string
	errs   ErrorList
	pos    map[string]fieldPos
	bad    map[string]bool     // paths with a decode error
	active map[*yaml.Node]bool // collections being decoded (alias cycles)
	fields map[reflect.Type][]fieldInfo
	budget int
}

func newDecoder(file, dir string) *decoder {
	return &decoder{
		file:   file,
		dir:    dir,
		pos:    map[string]fieldPos{},
		bad:    map[string]bool{},
		active: map[*yaml.Node]bool{},
		fields: map[reflect.Type][]fieldInfo{},
		budget: maxNodes,
	}
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	secretRefType = reflect.TypeFor[SecretRef]()
	orderedType   = reflect.TypeFor[interface{ isOrderedMap() }]()
	envNameRe     = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (d *decoder) at(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Column: n.Column} }

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errorAt(d.at(n), path, format, args...)
}

func (d *decoder) errorAt(p Pos, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: p, Field: path, Msg: fmt.Sprintf(format, args...)})
	d.bad[path] = true
}

func (d *decoder) setKeyPos(path string, key *yaml.Node) {
	fp := d.pos[path]
	fp.Key = d.at(key)
	d.pos[path] = fp
}

// resolve finds the position for an error in prefix+field: the value when
// it was written (its key when the value is a mapping or list), else the key
// of the nearest enclosing entry written.
func (d *decoder) resolve(prefix, field string) Pos {
	full := joinPath(prefix, field)
	for p, first := full, true; ; p, first = parentPath(p), false {
		if fp, ok := d.pos[p]; ok {
			if first && fp.Value.Line > 0 && !(fp.coll && fp.Key.Line > 0) {
				return fp.Value
			}
			if fp.Key.Line > 0 {
				return fp.Key
			}
			if fp.Value.Line > 0 {
				return fp.Value
			}
		}
		if p == "" {
			return Pos{File: d.file, Line: 1, Column: 1}
		}
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return quoteValue(n.Value)
	}
	return "nothing"
}

// decode fills v (settable) from n; path names v in errors.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.spend(n, path) {
		return
	}
	if fp := d.pos[path]; fp.Value.Line == 0 {
		fp.Value = d.at(n)
		fp.coll = n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode || isNull(n)
		d.pos[path] = fp
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errorf(n, path, "unknown alias *%s", n.Value)
			return
		}
		if d.active[n.Alias] {
			d.errorf(n, path, "alias *%s refers to a value that contains it", n.Value)
			return
		}
		d.decode(n.Alias, v, path)
		return
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		d.active[n] = true
		defer delete(d.active, n)
	}
	if isNull(n) {
		return // absent: leave the zero value (or nil pointer) for SetDefaults
	}
	t := v.Type()
	switch {
	case t == durationType:
		d.decodeDuration(n, v, path)
		return
	case t == secretRefType:
		d.decodeSecret(n, v, path)
		return
	case t.Implements(orderedType):
		d.decodeOrdered(n, v, path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind == yaml.ScalarNode {
			switch strings.ToLower(n.Value) {
			case "true", "yes", "on":
				v.SetBool(true)
				return
			case "false", "no", "off":
				v.SetBool(false)
				return
			}
		}
		d.errorf(n, path, "expected true or false, got %s", describe(n))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a number, got %s", describe(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits())
		if err != nil {
			d.numberError(n, path, err)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a number, got %s", describe(n))
			return
		}
		u, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits())
		if err != nil {
			d.numberError(n, path, err)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a number, got %s", describe(n))
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), t.Bits())
		if err != nil {
			d.numberError(n, path, err)
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n, path, "internal error: the decoder cannot fill a field of type %s", t)
	}
}

// spend counts one unit of decoding work; false (reported once) when the
// document has used up its budget.
func (d *decoder) spend(n *yaml.Node, path string) bool {
	d.budget--
	if d.budget == -1 {
		d.errorf(n, path, "document too large (more than %d values after alias expansion)", maxNodes)
	}
	return d.budget >= 0
}

func (d *decoder) numberError(n *yaml.Node, path string, err error) {
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		d.errorf(n, path, "number %s is out of range", quoteValue(n.Value))
		return
	}
	if n.ShortTag() == "!!float" {
		d.errorf(n, path, "expected a whole number, got %s", quoteValue(n.Value))
		return
	}
	d.errorf(n, path, "expected a number, got %s", describe(n))
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a duration such as 90s or 2m, got %s", describe(n))
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		if _, nerr := strconv.ParseFloat(n.Value, 64); nerr == nil {
			d.errorf(n, path, "expected a duration such as 90s or 2m, got %s (add a unit: %ss)", quoteValue(n.Value), n.Value)
			return
		}
		d.errorf(n, path, "expected a duration such as 90s or 2m, got %s", quoteValue(n.Value))
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) decodeSecret(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a file path or env:NAME, got %s", describe(n))
		return
	}
	ref, err := ParseSecretRef(expandHome(n.Value), d.dir)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return
	}
	if ref.Env != "" && !envNameRe().MatchString(ref.Env) {
		d.errorf(n, path, "%s is not an environment variable name", quoteValue(ref.Env))
		return
	}
	if ref.Path != "" {
		ref.Path = filepath.Clean(ref.Path)
	}
	v.Set(reflect.ValueOf(ref))
}

// pair is one key: value of a mapping, after merge keys (<<) are expanded.
type pair struct{ key, val *yaml.Node }

// pairs lists a mapping's entries in file order. Duplicate keys are errors;
// `<<: *anchor` (or a list of anchors) merges another mapping's entries,
// explicit keys winning.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	explicit := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			continue
		}
		if k.ShortTag() == "!!merge" {
			continue
		}
		if first, dup := explicit[k.Value]; dup {
			d.errorf(k, joinPath(path, k.Value), "duplicate key %s (first at line %d)", quoteValue(k.Value), first.Line)
			continue
		}
		explicit[k.Value] = k
	}
	var out []pair
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be plain names, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			for _, m := range d.mergeSources(val, path) {
				for _, p := range d.pairs(m, path) {
					if explicit[p.key.Value] == nil && !seen[p.key.Value] {
						seen[p.key.Value] = true
						out = append(out, p)
					}
				}
			}
			continue
		}
		if seen[k.Value] {
			continue // duplicate, reported above
		}
		seen[k.Value] = true
		out = append(out, pair{k, val})
	}
	return out
}

// mergeSources resolves the value of a << key to the mappings it merges.
func (d *decoder) mergeSources(val *yaml.Node, path string) []*yaml.Node {
	if !d.spend(val, path) {
		return nil
	}
	var out []*yaml.Node
	var add func(n *yaml.Node, top bool)
	add = func(n *yaml.Node, top bool) {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			if d.active[n.Alias] {
				d.errorf(n, path, "alias *%s refers to a value that contains it", n.Value)
				return
			}
			n = n.Alias
		}
		switch {
		case n.Kind == yaml.MappingNode:
			out = append(out, n)
		case n.Kind == yaml.SequenceNode && top:
			for _, c := range n.Content {
				add(c, false)
			}
		default:
			d.errorf(n, path, "<< merges a mapping (or a list of them), got %s", describe(n))
		}
	}
	add(val, true)
	return out
}

type fieldInfo struct {
	key   string
	index []int
	typ   reflect.Type
}

// structFields lists the keys of a struct type, with inline structs
// flattened. Fields without a yaml tag (or tagged "-") are not keys.
func (d *decoder) structFields(t reflect.Type) []fieldInfo {
	if fs, ok := d.fields[t]; ok {
		return fs
	}
	fs := collectFields(t, nil)
	d.fields[t] = fs
	return fs
}

func collectFields(t reflect.Type, index []int) []fieldInfo {
	var out []fieldInfo
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("yaml")
		if !ok || tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), index...), i)
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			out = append(out, collectFields(f.Type, idx)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, fieldInfo{key: name, index: idx, typ: f.Type})
	}
	return out
}

func keysOf(fs []fieldInfo) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.key
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	fs := d.structFields(v.Type())
	for _, p := range d.pairs(n, path) {
		key := p.key.Value
		sub := joinPath(path, key)
		var f *fieldInfo
		for i := range fs {
			if fs[i].key == key {
				f = &fs[i]
				break
			}
		}
		if f == nil {
			d.unknownKey(p.key, sub, key, fs)
			continue
		}
		d.setKeyPos(sub, p.key)
		if isSecretType(f.typ) && !strings.HasSuffix(key, "_file") && !strings.HasSuffix(key, "_files") {
			d.errorf(p.key, sub, "internal error: a SecretRef key must end in _file")
			continue
		}
		d.decode(p.val, v.FieldByIndex(f.index), sub)
	}
}

func isSecretType(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t == secretRefType
}

func (d *decoder) unknownKey(k *yaml.Node, path, key string, fs []fieldInfo) {
	keys := keysOf(fs)
	if looksSecret(key) {
		want := key + "_file"
		for _, c := range keys {
			if c == want {
				d.errorf(k, path, "secrets are never inline: use %s (a file path, or env:NAME)", want)
				return
			}
		}
		msg := fmt.Sprintf("unknown key %s: secrets are never inline, and this section has no %s_file", quoteValue(key), key)
		if s := Nearest(key, keys); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", quoteValue(s))
		}
		d.errorf(k, path, "%s", msg)
		return
	}
	if s := Nearest(key, keys); s != "" {
		d.errorf(k, path, "unknown key %s, did you mean %s?", quoteValue(key), quoteValue(s))
		return
	}
	if len(keys) == 0 {
		d.errorf(k, path, "unknown key %s: this section takes no settings yet", quoteValue(key))
		return
	}
	d.errorf(k, path, "unknown key %s (valid keys: %s)", quoteValue(key), strings.Join(keys, ", "))
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		if n.Kind == yaml.ScalarNode {
			d.errorf(n, path, "expected a list, got %s (write [%s])", describe(n), n.Value)
			return
		}
		d.errorf(n, path, "expected a list, got %s", describe(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		sub := fmt.Sprintf("%s[%d]", path, i)
		d.setKeyPos(sub, item)
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(item, e, sub)
		out = reflect.Append(out, e)
	}
	v.Set(out)
}

func (d *decoder) decodeOrdered(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping of names to settings, got %s", describe(n))
		return
	}
	ps := d.pairs(n, path)
	out := reflect.MakeSlice(v.Type(), 0, len(ps))
	for _, p := range ps {
		sub := joinPath(path, p.key.Value)
		d.setKeyPos(sub, p.key)
		e := reflect.New(v.Type().Elem()).Elem() // Named[T]
		e.Field(0).SetString(p.key.Value)
		d.decode(p.val, e.Field(1), sub)
		out = reflect.Append(out, e)
	}
	v.Set(out)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.errorf(n, path, "internal error: map keys must be strings, not %s", t.Key())
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	for _, p := range d.pairs(n, path) {
		sub := joinPath(path, p.key.Value)
		d.setKeyPos(sub, p.key)
		e := reflect.New(t.Elem()).Elem()
		d.decode(p.val, e, sub)
		v.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(t.Key()), e)
	}
}

// The optional methods of settings structs (see conventions.go).
type defaulter interface{ SetDefaults() }
type validator interface{ Validate(c *Checker) }

// walk calls fn on every struct reachable from v (v first, then its fields,
// elements and map values), with its path. Values must be addressable;
// map values are copied out and stored back.
func (d *decoder) walk(v reflect.Value, path string, fn func(v reflect.Value, path string)) {
	t := v.Type()
	if t == durationType || t == secretRefType {
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			d.walk(v.Elem(), path, fn)
		}
	case reflect.Struct:
		fn(v, path)
		for _, f := range d.structFields(t) {
			d.walk(v.FieldByIndex(f.index), joinPath(path, f.key), fn)
		}
	case reflect.Slice:
		ordered := t.Implements(orderedType)
		for i := range v.Len() {
			if ordered {
				e := v.Index(i)
				d.walk(e.Field(1), joinPath(path, e.Field(0).String()), fn)
				continue
			}
			d.walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			e := reflect.New(t.Elem()).Elem()
			e.Set(v.MapIndex(k))
			d.walk(e, joinPath(path, k.String()), fn)
			v.SetMapIndex(k, e)
		}
	}
}

// setDefaults calls SetDefaults on v and everything in it, outer first (so
// an outer default can fill an inner struct whose own defaults then fill
// what is still empty).
func (d *decoder) setDefaults(v reflect.Value, path string) {
	d.walk(v, path, func(v reflect.Value, _ string) {
		if s, ok := v.Addr().Interface().(defaulter); ok {
			s.SetDefaults()
		}
	})
}

// validate calls Validate on v and everything in it, outer first.
func (d *decoder) validate(v reflect.Value, path string, inv *Inventory) {
	d.walk(v, path, func(v reflect.Value, p string) {
		if s, ok := v.Addr().Interface().(validator); ok {
			s.Validate(&Checker{d: d, prefix: p, inv: inv})
		}
	})
}
