package inventory

import (
	"reflect"
	"strings"
	"testing"
)

// TestRoleSettingsFollowConventions checks the settings structs the role
// engineers declare (conventions.go) against what the decoder can fill.
func TestRoleSettingsFollowConventions(t *testing.T) {
	for _, p := range schemaProblems(reflect.TypeFor[RoleSettings](), "roles", map[reflect.Type]bool{}) {
		t.Error(p)
	}
}

func TestSchemaProblemsFindsMistakes(t *testing.T) {
	type bad struct {
		NoTag    string
		Password string            `yaml:"db_password"`
		Key      SecretRef         `yaml:"key"`
		Keys     []SecretRef       `yaml:"key_files"`
		Any      any               `yaml:"any"`
		ByNum    map[int]string    `yaml:"by_num"`
		Ok       OrderedMap[int]   `yaml:"ok"`
		Fine     map[string]string `yaml:"fine"`
	}
	got := schemaProblems(reflect.TypeFor[bad](), "t", map[reflect.Type]bool{})
	want := []string{
		"t: field NoTag has no yaml tag",
		"t.db_password: a secret must be a SecretRef in a key ending in _file, not a string",
		"t.key: a SecretRef key must end in _file",
		"t.any: the decoder cannot fill interface",
		"t.by_num: map keys must be strings",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func schemaProblems(t reflect.Type, path string, seen map[reflect.Type]bool) []string {
	var out []string
	switch {
	case t == durationType || t == secretRefType:
		return nil
	case t.Implements(orderedType):
		return schemaProblems(t.Elem().Field(1).Type, path+".<name>", seen)
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		return schemaProblems(t.Elem(), path, seen)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return []string{path + ": map keys must be strings"}
		}
		return schemaProblems(t.Elem(), path+".<name>", seen)
	case reflect.Struct:
		if seen[t] {
			return nil
		}
		seen[t] = true
		defer delete(seen, t)
		for i := range t.NumField() {
			f := t.Field(i)
			tag, ok := f.Tag.Lookup("yaml")
			if !f.IsExported() || tag == "-" {
				continue
			}
			if !ok {
				out = append(out, path+": field "+f.Name+" has no yaml tag")
				continue
			}
			key, opts, _ := strings.Cut(tag, ",")
			if strings.Contains(opts, "inline") {
				out = append(out, schemaProblems(f.Type, path, seen)...)
				continue
			}
			sub := path + "." + key
			if isSecretType(f.Type) && !strings.HasSuffix(key, "_file") && !strings.HasSuffix(key, "_files") {
				out = append(out, sub+": a SecretRef key must end in _file")
				continue
			}
			if f.Type.Kind() == reflect.String && inlineSecretName(key) {
				out = append(out, sub+": a secret must be a SecretRef in a key ending in _file, not a string")
				continue
			}
			out = append(out, schemaProblems(f.Type, sub, seen)...)
		}
		return out
	case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return nil
	}
	return []string{path + ": the decoder cannot fill " + t.Kind().String()}
}

// inlineSecretName: a string field named like a password (key_name,
// key_path are fine: they name a key, they are not one).
func inlineSecretName(key string) bool {
	for _, part := range strings.Split(strings.ToLower(key), "_") {
		switch part {
		case "password", "passwd", "secret", "token", "passphrase":
			return true
		}
	}
	return false
}
