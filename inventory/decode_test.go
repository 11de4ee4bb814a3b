package inventory

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// A settings struct like a role engineer would declare, using every kind of
// field the decoder supports.
type tGroup struct {
	Rank    int      `yaml:"rank"`
	Members []string `yaml:"members"`
}

func (g *tGroup) SetDefaults() {
	if g.Rank == 0 {
		g.Rank = 1
	}
}

func (g *tGroup) Validate(c *Checker) {
	if g.Rank > 100 {
		c.Errorf("rank", "must be 1..100, got %d", g.Rank)
	}
	if len(g.Members) == 0 {
		c.Errorf("members", "required: list at least one host")
	}
}

type tNested struct {
	Port  uint16 `yaml:"port"`
	Level int8   `yaml:"level"`
}

type tSettings struct {
	Name           string             `yaml:"name"`
	Count          int                `yaml:"count"`
	Enabled        bool               `yaml:"enabled"`
	Ratio          float64            `yaml:"ratio"`
	Timeout        time.Duration      `yaml:"timeout"`
	Tags           []string           `yaml:"tags"`
	Groups         OrderedMap[tGroup] `yaml:"groups"`
	Labels         map[string]string  `yaml:"labels"`
	Pools          map[string]tGroup  `yaml:"pools"`
	Opt            *tGroup            `yaml:"opt"`
	KeyFile        SecretRef          `yaml:"key_file"`
	DBPasswordFile SecretRef          `yaml:"db_password_file"`
	Nested         tNested            `yaml:"nested"`
	List           []tGroup           `yaml:"list"`
	Internal       string             // no tag: not a key
}

func (s *tSettings) SetDefaults() {
	if s.Timeout == 0 {
		s.Timeout = 30 * time.Second
	}
}

func (s *tSettings) Validate(c *Checker) {
	if s.Count < 0 {
		c.Errorf("count", "must not be negative")
	}
	if !s.DBPasswordFile.IsSet() {
		c.Errorf("db_password_file", "required")
	}
	if c.Has("name") && s.Name == "" {
		c.Errorf("name", "must not be empty")
	}
}

// decodeT runs the decoder, defaults and validation over body into v, as
// Parse does for role settings, and returns the error lines.
func decodeT(t *testing.T, body string, v any) []string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	d := newDecoder("s.yaml", "/inv")
	rv := reflect.ValueOf(v).Elem()
	d.decode(doc.Content[0], rv, "roles.t")
	d.setDefaults(rv, "roles.t")
	d.validate(rv, "roles.t", &Inventory{})
	d.errs.sort()
	var out []string
	for _, e := range d.errs {
		out = append(out, e.Error())
	}
	return out
}

func TestDecodeAllKinds(t *testing.T) {
	t.Setenv("HOME", "/home/admin")
	body := `
name: lcg
count: 0x10
enabled: yes
ratio: 1.5
timeout: 2m
tags: [a, b]
groups:
  zeta: {rank: 3, members: [rb1]}
  alpha: {members: [rb2, rb3]}
labels: {site: PNPI}
pools:
  p1: {members: [x]}
opt: {members: [y]}
key_file: ~/secrets/hagd.key
db_password_file: env:LB_DB_PASSWORD
nested: {port: 2170, level: -3}
list:
  - {members: [a]}
`
	var s tSettings
	if errs := decodeT(t, body, &s); errs != nil {
		t.Fatalf("errors: %q", errs)
	}
	want := tSettings{
		Name: "lcg", Count: 16, Enabled: true, Ratio: 1.5, Timeout: 2 * time.Minute, Tags: []string{"a", "b"},
		Groups: OrderedMap[tGroup]{
			{"zeta", tGroup{Rank: 3, Members: []string{"rb1"}}},
			{"alpha", tGroup{Rank: 1, Members: []string{"rb2", "rb3"}}},
		},
		Labels:         map[string]string{"site": "PNPI"},
		Pools:          map[string]tGroup{"p1": {Rank: 1, Members: []string{"x"}}},
		Opt:            &tGroup{Rank: 1, Members: []string{"y"}},
		KeyFile:        SecretRef{Path: "/home/admin/secrets/hagd.key"},
		DBPasswordFile: SecretRef{Env: "LB_DB_PASSWORD"},
		Nested:         tNested{Port: 2170, Level: -3},
		List:           []tGroup{{Rank: 1, Members: []string{"a"}}},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("decoded:\n%+v\nwant:\n%+v", s, want)
	}
	if got := s.Groups.Names(); !reflect.DeepEqual(got, []string{"zeta", "alpha"}) {
		t.Errorf("order: %v", got)
	}
	if g, ok := s.Groups.Get("alpha"); !ok || g.Rank != 1 {
		t.Errorf("Get(alpha) = %+v, %v", g, ok)
	}
	s.Groups.Ptr("zeta").Rank = 7
	if s.Groups[0].Value.Rank != 7 || s.Groups.Ptr("nope") != nil {
		t.Errorf("Ptr did not point into the map")
	}
	// Relative secret paths are relative to the inventory's folder.
	var r tSettings
	decodeT(t, "key_file: secrets/../secrets/hagd.key\ndb_password_file: /etc/x\n", &r)
	if r.KeyFile.Path != "/inv/secrets/hagd.key" || r.DBPasswordFile.Path != "/etc/x" {
		t.Errorf("secret paths: %v %v", r.KeyFile, r.DBPasswordFile)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"defaults and validation positions", "count: -1\nname: ''\ngroups:\n  g1:\n    rank: 200\n  g2: {}\n", []string{
			"s.yaml:1:1: roles.t.db_password_file: required",
			"s.yaml:1:8: roles.t.count: must not be negative",
			"s.yaml:2:7: roles.t.name: must not be empty",
			"s.yaml:4:3: roles.t.groups.g1.members: required: list at least one host",
			"s.yaml:5:11: roles.t.groups.g1.rank: must be 1..100, got 200",
			"s.yaml:6:3: roles.t.groups.g2.members: required: list at least one host",
		}},
		{"wrong types", "db_password_file: x\ncount: abc\nenabled: maybe\nratio: fast\ntags: {a: 1}\ngroups: [a]\nlabels: x\nnested: 3\nlist: [1]\nopt: []\n", []string{
			"s.yaml:2:8: roles.t.count: expected a number, got 'abc'",
			"s.yaml:3:10: roles.t.enabled: expected true or false, got 'maybe'",
			"s.yaml:4:8: roles.t.ratio: expected a number, got 'fast'",
			"s.yaml:5:7: roles.t.tags: expected a list, got a mapping",
			"s.yaml:6:9: roles.t.groups: expected a mapping of names to settings, got a list",
			"s.yaml:7:9: roles.t.labels: expected a mapping, got 'x'",
			"s.yaml:8:9: roles.t.nested: expected a mapping, got '3'",
			"s.yaml:9:8: roles.t.list[0]: expected a mapping, got '1'",
			"s.yaml:10:6: roles.t.opt: expected a mapping, got a list",
		}},
		{"ranges", "db_password_file: x\nnested: {port: 70000, level: 200}\ncount: 1.0\n", []string{
			"s.yaml:2:16: roles.t.nested.port: number '70000' is out of range",
			"s.yaml:2:30: roles.t.nested.level: number '200' is out of range",
			"s.yaml:3:8: roles.t.count: expected a whole number, got '1.0'",
		}},
		{"secrets", "db_password_file: env:1BAD\nkey_file: [a]\npassword: x\ndb_password: y\nkey: z\ngroups:\n  g1: {members: [a], token: t}\n", []string{
			"s.yaml:1:19: roles.t.db_password_file: '1BAD' is not an environment variable name",
			"s.yaml:2:11: roles.t.key_file: expected a file path or env:NAME, got a list",
			"s.yaml:3:1: roles.t.password: unknown key 'password': secrets are never inline, and this section has no password_file",
			"s.yaml:4:1: roles.t.db_password: secrets are never inline: use db_password_file (a file path, or env:NAME)",
			"s.yaml:5:1: roles.t.key: secrets are never inline: use key_file (a file path, or env:NAME)",
			"s.yaml:7:22: roles.t.groups.g1.token: unknown key 'token': secrets are never inline, and this section has no token_file",
		}},
		{"empty secret reference", "db_password_file: ''\nkey_file: 'env:'\n", []string{
			"s.yaml:1:19: roles.t.db_password_file: empty secret reference",
			"s.yaml:2:11: roles.t.key_file: env: needs a variable name",
		}},
		{"unknown keys and duplicates", "db_password_file: x\nnmae: a\ngroups:\n  g1: {members: [a], rnak: 2}\n  g1: {}\nInternal: x\ntimeout: 5\n", []string{
			"s.yaml:2:1: roles.t.nmae: unknown key 'nmae', did you mean 'name'?",
			"s.yaml:4:22: roles.t.groups.g1.rnak: unknown key 'rnak', did you mean 'rank'?",
			"s.yaml:5:3: roles.t.groups.g1: duplicate key 'g1' (first at line 4)",
			"s.yaml:6:1: roles.t.Internal: unknown key 'Internal' (valid keys: name, count, enabled, ratio, timeout, tags, groups, labels, pools, opt, key_file, db_password_file, nested, list)",
			"s.yaml:7:10: roles.t.timeout: expected a duration such as 90s or 2m, got '5' (add a unit: 5s)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s tSettings
			got := decodeT(t, tt.body, &s)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

type tEmpty struct{}

type tBadSecret struct {
	Password SecretRef `yaml:"password"`
}

func TestDecodeSchemaMistakes(t *testing.T) {
	var e tEmpty
	if got := decodeT(t, "color: blue\n", &e); !reflect.DeepEqual(got, []string{
		"s.yaml:1:1: roles.t.color: unknown key 'color': this section takes no settings yet"}) {
		t.Errorf("empty struct: %q", got)
	}
	var b tBadSecret
	if got := decodeT(t, "password: x\n", &b); !reflect.DeepEqual(got, []string{
		"s.yaml:1:1: roles.t.password: internal error: a SecretRef key must end in _file"}) {
		t.Errorf("bad secret key: %q", got)
	}
}

func TestAliasBomb(t *testing.T) {
	// Each level merges the one below twice: 2^40 expansions if followed
	// naively. The budget stops it with one error.
	var b strings.Builder
	b.WriteString("hosts:\n  m0: &m0 {address: 10.0.0.1}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "  m%d: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1)
	}
	_, err := Parse("gridha.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "document too large") {
		t.Errorf("merge bomb not stopped: %v", err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n > maxErrors+1 {
		t.Errorf("%d error lines, want at most %d", n, maxErrors+1)
	}
}
