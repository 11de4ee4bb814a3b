package inventory

import (
	"embed"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"reflect"
	"strings"
	"time"
)

// A role's settings are declared once: the struct in inventory/<role>.go.
// The decoder reads its yaml keys and types, SetDefaults fills its
// defaults, Validate checks it, and the doc comments of its fields say
// what each one is. Settings describes it from those same places, for
// `gridha install ROLE --help` and the README's tables, so the help cannot
// tell another story than the validation. The comments are read from the
// source files themselves, embedded: they are the declaration.
//
//go:embed base.go bdiiclient.go dns.go rbnode.go statesrv.go
var settingsSources embed.FS

// Setting is one key of a role's settings.
type Setting struct {
	Key     string // relative to roles.<role>: "hagd.port", "groups.NAME.service_ip", "bdiis[].host"
	Type    string // "string", "integer", "duration", "list of string", ...
	Default string // what SetDefaults fills in when the key is left out ("" none)
	Doc     string // one line, from the field's doc comment
}

// Settings lists the settings of role, in declaration order.
func Settings(role string) ([]Setting, error) {
	rt := reflect.TypeFor[RoleSettings]()
	var field reflect.StructField
	found := false
	for _, f := range collectFields(rt, nil) {
		if f.key == role {
			field, found = rt.FieldByIndex(f.index), true
		}
	}
	if !found {
		return nil, fmt.Errorf("unknown role %q (known roles: %s)", role, strings.Join(KnownRoles(), ", "))
	}
	docs, err := fieldDocs()
	if err != nil {
		return nil, err
	}
	// Defaults exactly as Load fills them: the decoder's own walk over a
	// role that the file leaves out entirely.
	v := reflect.New(field.Type).Elem()
	newDecoder("", "").setDefaults(v, "roles."+role)
	var out []Setting
	describeSettings(v.Type(), v, "", docs, &out)
	return out, nil
}

// docDefaulter is a settings struct whose zero values stand for another
// program's own defaults, which the inventory does not fill in (the
// dns-updater applies its own to what its configuration leaves out): it
// names them, by key relative to the struct, from that program's
// constants, so that the help shows what is used.
type docDefaulter interface{ DocDefaults() map[string]string }

// elemDefaults is a list element or map value of type t as SetDefaults
// leaves it when the file gives it no keys.
func elemDefaults(t reflect.Type, path string) reflect.Value {
	v := reflect.New(t).Elem()
	newDecoder("", "").setDefaults(v, path)
	return v
}

// describeSettings appends the keys of struct type t (value v holds the
// defaults; invalid where there is no value).
func describeSettings(t reflect.Type, v reflect.Value, prefix string, docs map[string]string, out *[]Setting) {
	var others map[string]string
	if dd, ok := reflect.New(t).Interface().(docDefaulter); ok {
		others = dd.DocDefaults()
	}
	for _, f := range collectFields(t, nil) {
		sf := t.FieldByIndex(f.index)
		key := prefix + f.key
		var fv reflect.Value
		if v.IsValid() {
			fv = v.FieldByIndex(f.index)
		}
		doc := docs[t.Name()+"."+sf.Name]
		ft := f.typ
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct && ft.Elem() != secretRefType {
			ft = ft.Elem()
			fv = reflect.Value{}
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != secretRefType:
			describeSettings(ft, fv, key+".", docs, out)
			continue
		case (ft.Kind() == reflect.Map || ft.Implements(orderedType)) && elemOf(ft).Kind() == reflect.Struct && elemOf(ft) != secretRefType:
			*out = append(*out, Setting{Key: key, Type: typeName(ft), Doc: doc})
			describeSettings(elemOf(ft), elemDefaults(elemOf(ft), key), key+".NAME.", docs, out)
			continue
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != secretRefType:
			*out = append(*out, Setting{Key: key, Type: typeName(ft), Doc: doc})
			describeSettings(ft.Elem(), elemDefaults(ft.Elem(), key), key+"[].", docs, out)
			continue
		}
		def := defaultText(fv)
		if def == "" {
			def = others[f.key]
		}
		*out = append(*out, Setting{Key: key, Type: typeName(ft), Default: def, Doc: doc})
	}
}

// elemOf is the value type of a map or an OrderedMap.
func elemOf(t reflect.Type) reflect.Type {
	if t.Implements(orderedType) {
		return t.Elem().Field(1).Type
	}
	return t.Elem()
}

// typeName says what YAML a Go type takes.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == secretRefType:
		return "secret (path or env:NAME)"
	case t.Implements(orderedType):
		return "ordered map of " + typeName(elemOf(t))
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map of " + typeName(t.Elem())
	case reflect.Struct:
		return "mapping"
	}
	return t.String()
}

// defaultText renders a defaulted value the way it is written in YAML; ""
// when there is no default.
func defaultText(v reflect.Value) string {
	if !v.IsValid() || v.IsZero() && v.Kind() != reflect.Bool {
		return ""
	}
	switch {
	case v.Type() == durationType:
		s := time.Duration(v.Int()).String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	case v.Type() == secretRefType:
		return v.Interface().(SecretRef).String()
	}
	switch v.Kind() {
	case reflect.Pointer:
		return defaultText(v.Elem())
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = defaultText(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}

// fieldDocs maps "Type.Field" to the first sentence of the field's doc
// comment (or of its line comment) in the settings sources.
func fieldDocs() (map[string]string, error) {
	out := map[string]string{}
	entries, err := settingsSources.ReadDir(".")
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		src, err := settingsSources.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, e.Name(), src, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return false
			}
			for _, fl := range st.Fields.List {
				text := ""
				if fl.Doc != nil {
					text = fl.Doc.Text()
				} else if fl.Comment != nil {
					text = fl.Comment.Text()
				}
				for _, name := range fl.Names {
					out[ts.Name.Name+"."+name.Name] = firstSentence(text, name.Name)
				}
			}
			return false
		})
	}
	return out, nil
}

// firstSentence is the doc comment's first sentence on one line, without
// the field's name it starts with ("MountPoint is where..." → "where...").
func firstSentence(text, name string) string {
	s := strings.Join(strings.Fields(text), " ")
	// The sentence ends at the first ". " that does not end "e.g." or
	// "i.e.".
	for from := 0; ; {
		i := strings.Index(s[from:], ". ")
		if i < 0 {
			break
		}
		i += from
		if strings.HasSuffix(s[:i], "e.g") || strings.HasSuffix(s[:i], "i.e") {
			from = i + 2
			continue
		}
		s = s[:i+1]
		break
	}
	if rest, ok := strings.CutPrefix(s, name+" "); ok {
		for _, verb := range []string{"is ", "are ", "says "} {
			if r, ok := strings.CutPrefix(rest, verb); ok {
				rest = r
				break
			}
		}
		s = rest
	}
	return strings.TrimSuffix(s, ".")
}

// Example is the example of role's settings in the doc comment of its
// settings type (the indented block, "<role>:" and its keys, as written
// under roles:). A test loads every example as an inventory, so an example
// the decoder or Validate would refuse fails the build.
func Example(role string) (string, error) {
	rt := reflect.TypeFor[RoleSettings]()
	typeName := ""
	for _, f := range collectFields(rt, nil) {
		if f.key == role {
			typeName = rt.FieldByIndex(f.index).Type.Name()
		}
	}
	if typeName == "" {
		return "", fmt.Errorf("unknown role %q (known roles: %s)", role, strings.Join(KnownRoles(), ", "))
	}
	entries, err := settingsSources.ReadDir(".")
	if err != nil {
		return "", err
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		src, err := settingsSources.ReadFile(e.Name())
		if err != nil {
			return "", err
		}
		f, err := parser.ParseFile(fset, e.Name(), src, parser.ParseComments)
		if err != nil {
			return "", err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE || gd.Doc == nil || len(gd.Specs) != 1 || gd.Specs[0].(*ast.TypeSpec).Name.Name != typeName {
				continue
			}
			// The first block of lines indented by a tab (gofmt's code
			// block in a doc comment).
			var b strings.Builder
			for _, line := range strings.Split(gd.Doc.Text(), "\n") {
				if strings.HasPrefix(line, "\t") {
					b.WriteString(strings.TrimPrefix(line, "\t") + "\n")
				} else if b.Len() > 0 {
					break
				}
			}
			return b.String(), nil
		}
	}
	return "", nil
}

// WriteSettingsHelp writes role's settings for a terminal: key, type and
// default on one line, what it is on the next; then the example.
func WriteSettingsHelp(w io.Writer, role string) error {
	ss, err := Settings(role)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "SETTINGS of role %s (in the inventory under roles: %s:):\n", role, role)
	if len(ss) == 0 {
		fmt.Fprintln(w, "   none")
	}
	for _, s := range ss {
		line := "   " + s.Key + " (" + s.Type
		if s.Default != "" {
			line += ", default " + s.Default
		}
		fmt.Fprintln(w, line+")")
		if s.Doc != "" {
			fmt.Fprintln(w, "      "+s.Doc)
		}
	}
	ex, err := Example(role)
	if err != nil {
		return err
	}
	if ex != "" {
		fmt.Fprintln(w, "\nEXAMPLE (under roles:):")
		for _, line := range strings.Split(strings.TrimSuffix(ex, "\n"), "\n") {
			fmt.Fprintln(w, "   "+line)
		}
	}
	return nil
}

// SettingsTable is role's settings as a Markdown table, then its example
// (inventory/README.md holds one per role; a test keeps them equal).
func SettingsTable(role string) (string, error) {
	ss, err := Settings(role)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| key | type | default | meaning |\n|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, s := range ss {
		def := ""
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", cell(s.Key), cell(s.Type), cell(def), cell(s.Doc))
	}
	ex, err := Example(role)
	if err != nil {
		return "", err
	}
	if ex != "" {
		b.WriteString("\nExample (under `roles:`):\n\n```yaml\n" + ex + "```\n")
	}
	return b.String(), nil
}
