package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parseErrs parses body as gridha.yaml and returns its error lines.
func parseErrs(t *testing.T, body string) []string {
	t.Helper()
	inv, err := Parse("gridha.yaml", []byte(body))
	if err == nil {
		return nil
	}
	if inv != nil {
		t.Errorf("Parse returned an inventory along with errors")
	}
	if _, ok := err.(ErrorList); !ok {
		t.Errorf("error is %T, want ErrorList", err)
	}
	return strings.Split(err.Error(), "\n")
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"empty file", "", []string{
			"gridha.yaml:1:1: hosts: no hosts: list at least one host under hosts:",
		}},
		{"top level is a list", "- a\n- b\n", []string{
			"gridha.yaml:1:1: expected a mapping, got a list",
			"gridha.yaml:1:1: hosts: no hosts: list at least one host under hosts:",
		}},
		{"syntax error", "hosts:\n  a: [\n", []string{
			"gridha.yaml:3: YAML syntax: did not find expected node content",
		}},
		// yaml reports its parser's errors one line early (line 3 here).
		{"unclosed list on line 4", "hosts:\n  rb1:\n    address: 198.18.1.10\n  rb2: [unclosed\nroles: {}\n", []string{
			"gridha.yaml:4: YAML syntax: did not find expected ',' or ']'",
		}},
		{"bad indentation on line 3", "hosts:\n  a: {address: 198.18.1.10}\n b: 2\n", []string{
			"gridha.yaml:3: YAML syntax: did not find expected key",
		}},
		{"parser error on line 1", "hosts: !foo!bar 1\n", []string{
			"gridha.yaml:1: YAML syntax: found undefined tag handle",
		}},
		// Scanner errors were right already: they stay so.
		{"mapping value on line 4", "hosts:\n  a: 1\n  b: 2\n    c: 3\n", []string{
			"gridha.yaml:4: YAML syntax: mapping values are not allowed in this context",
		}},
		{"two documents", "hosts: {}\n---\nhosts: {}\n", []string{
			"gridha.yaml:2:1: a second YAML document: an inventory is one document (remove the ---)",
		}},
		{"unknown top-level key with suggestion", "host:\n  a: {address: 10.0.0.1}\n", []string{
			"gridha.yaml:1:1: host: unknown key 'host', did you mean 'hosts'?",
			"gridha.yaml:1:1: hosts: no hosts: list at least one host under hosts:",
		}},
		{"unknown key without a near one", "hosts:\n  a:\n    address: 10.0.0.1\n    flavour: x\n", []string{
			"gridha.yaml:4:5: hosts.a.flavour: unknown key 'flavour' (valid keys: address, hostname, roles, user, port, identity_file, known_hosts, proxy_jump, become, connect_timeout)",
		}},
		{"hosts as a list", "hosts:\n  - address: 10.0.0.1\n", []string{
			"gridha.yaml:2:3: hosts: expected a mapping of names to settings, got a list",
		}},
		{"address missing and typo", "hosts:\n  state1:\n    adress: 198.18.1.10\n", []string{
			"gridha.yaml:2:3: hosts.state1.address: required: the IP address or DNS name gridha connects to",
			"gridha.yaml:3:5: hosts.state1.adress: unknown key 'adress', did you mean 'address'?",
		}},
		{"empty host", "hosts:\n  rb1:\n", []string{
			"gridha.yaml:2:3: hosts.rb1.address: required: the IP address or DNS name gridha connects to",
		}},
		{"bad address and hostname", "hosts:\n  a:\n    address: \"rb 1\"\n    hostname: -bad.example.org\n  b:\n    address: 10.0.0.300\n", []string{
			"gridha.yaml:3:14: hosts.a.address: 'rb 1' is neither an IP address nor a DNS name",
			"gridha.yaml:4:15: hosts.a.hostname: '-bad.example.org' is not a DNS name",
			"gridha.yaml:6:14: hosts.b.address: '10.0.0.300' is neither an IP address nor a DNS name",
		}},
		{"bad host name", "hosts:\n  \"rb 1\": {address: 10.0.0.1}\n", []string{
			"gridha.yaml:2:3: hosts.rb 1: host name 'rb 1' may only hold letters, digits, '.', '-' and '_'",
		}},
		{"duplicate host name", "hosts:\n  rb1: {address: 10.0.0.1}\n  rb1: {address: 10.0.0.2}\n", []string{
			"gridha.yaml:3:3: hosts.rb1: duplicate key 'rb1' (first at line 2)",
		}},
		{"duplicate address and hostname", "hosts:\n  rb1: {address: 10.0.0.1, hostname: rb.example.org}\n  rb2: {address: 10.0.0.1, hostname: RB.example.org}\n  rb3: {address: 10.0.0.1, port: 2222}\n", []string{
			"gridha.yaml:3:18: hosts.rb2.address: address 10.0.0.1 is also host rb1's (line 2)",
			"gridha.yaml:3:38: hosts.rb2.hostname: hostname RB.example.org is also host rb1's (line 2)",
		}},
		{"roles", "hosts:\n  a:\n    address: 10.0.0.1\n    roles: [state-server, rb-nod, state-server, frobnicator]\n  b:\n    address: 10.0.0.2\n    roles: rb-node\n", []string{
			"gridha.yaml:2:3: roles.state-server.mysql.password_file: required: the L&B user's password, a file or env:NAME (never inline)",
			"gridha.yaml:4:27: hosts.a.roles[1]: unknown role 'rb-nod', did you mean 'rb-node'?",
			"gridha.yaml:4:35: hosts.a.roles[2]: role 'state-server' is listed twice",
			"gridha.yaml:4:49: hosts.a.roles[3]: unknown role 'frobnicator' (known roles: state-server, rb-node, bdii-client, dns, base)",
			"gridha.yaml:7:12: hosts.b.roles: expected a list, got 'rb-node' (write [rb-node])",
		}},
		{"wrong types", "defaults:\n  port: abc\n  connect_timeout: 10\n  user: [root]\nhosts:\n  a:\n    address: 10.0.0.1\n    port: 22.5\n    connect_timeout: soon\n  b:\n    address: 10.0.0.2\n    port: 99999999999999999999\n", []string{
			"gridha.yaml:2:9: defaults.port: expected a number, got 'abc'",
			"gridha.yaml:3:20: defaults.connect_timeout: expected a duration such as 90s or 2m, got '10' (add a unit: 10s)",
			"gridha.yaml:4:9: defaults.user: expected a string, got a list",
			"gridha.yaml:8:11: hosts.a.port: expected a whole number, got '22.5'",
			"gridha.yaml:9:22: hosts.a.connect_timeout: expected a duration such as 90s or 2m, got 'soon'",
			"gridha.yaml:12:11: hosts.b.port: number '99999999999999999999' is out of range",
		}},
		{"ssh values", "defaults:\n  become: su\n  connect_timeout: 0s\nhosts:\n  a:\n    address: 10.0.0.1\n    port: 0\n    proxy_jump: j1,j2\n    user: \"bob smith\"\n  b:\n    address: 10.0.0.2\n    port: 65536\n", []string{
			"gridha.yaml:2:11: defaults.become: must be \"\" or \"sudo\", got 'su'",
			"gridha.yaml:3:20: defaults.connect_timeout: must be more than 0s, got 0s",
			"gridha.yaml:7:11: hosts.a.port: 0 is not a port number (1..65535)",
			"gridha.yaml:8:17: hosts.a.proxy_jump: only one jump host is supported, got 'j1,j2'",
			"gridha.yaml:9:11: hosts.a.user: 'bob smith' is not a user name",
			"gridha.yaml:12:11: hosts.b.port: 65536 is not a port number (1..65535)",
		}},
		{"inline secrets", "hosts:\n  a:\n    address: 10.0.0.1\n    password: hunter2\nroles:\n  state-server:\n    mysql_password: hunter2\n  rb-nodes: {}\n", []string{
			"gridha.yaml:4:5: hosts.a.password: unknown key 'password': secrets are never inline, and this section has no password_file",
			"gridha.yaml:7:5: roles.state-server.mysql_password: unknown key 'mysql_password': secrets are never inline, and this section has no mysql_password_file",
			"gridha.yaml:8:3: roles.rb-nodes: unknown key 'rb-nodes', did you mean 'rb-node'?",
		}},
		{"alias cycle", "hosts: &h\n  a: *h\n", []string{
			"gridha.yaml:2:6: hosts.a: alias *h refers to a value that contains it",
		}},
		{"merge of a scalar", "hosts:\n  a:\n    <<: 3\n    address: 10.0.0.1\n", []string{
			"gridha.yaml:3:9: hosts.a: << merges a mapping (or a list of them), got '3'",
		}},
		{"non-scalar key", "hosts:\n  a:\n    address: 10.0.0.1\n    [x]: 1\n", []string{
			"gridha.yaml:4:5: hosts.a: keys must be plain names, got a list",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrs(t, tt.body)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

func TestParseMergesDefaults(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"id_test", "known_hosts", "host_key"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	home, _ := os.UserHomeDir()
	body := `
defaults:
  user: root
  identity_file: id_test
  known_hosts: ./known_hosts
  become: sudo
  proxy_jump: gw.example.org
secrets_dir: ~/gridha-secrets
hosts:
  state1:
    address: 198.18.1.10
    hostname: state1.example.org
    roles: [state-server]
  rb1:
    address: rb1.example.org
    roles: [rb-node, base]
    user: grid
    port: 2222
    become: ""
    proxy_jump: ""
    identity_file: host_key
    connect_timeout: 1m30s
roles:
  state-server:
    mysql: {password_file: env:LB_PASSWORD}
  rb-node:
    groups: {rb: {service_ip: 198.18.1.100/24, iface: eth0}}
    nodes: {rb1: {rb: 100}}
`
	path := filepath.Join(dir, "gridha.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Path != path || inv.Dir != dir {
		t.Errorf("Path, Dir = %s, %s", inv.Path, inv.Dir)
	}
	if want := filepath.Join(home, "gridha-secrets"); inv.SecretsDir != want {
		t.Errorf("SecretsDir = %s, want %s", inv.SecretsDir, want)
	}
	wantDef := SSH{User: "root", IdentityFile: filepath.Join(dir, "id_test"), KnownHosts: filepath.Join(dir, "known_hosts"),
		ProxyJump: "gw.example.org", Become: "sudo", ConnectTimeout: 10 * time.Second}
	if inv.Defaults != wantDef {
		t.Errorf("Defaults = %+v, want %+v", inv.Defaults, wantDef)
	}
	want := []Host{
		{Name: "state1", Address: "198.18.1.10", Hostname: "state1.example.org", Roles: []string{"state-server"},
			SSH: wantDef, Pos: Pos{File: path, Line: 10, Column: 3}},
		{Name: "rb1", Address: "rb1.example.org", Hostname: "rb1.example.org", Roles: []string{"rb-node", "base"},
			SSH: SSH{User: "grid", Port: 2222, IdentityFile: filepath.Join(dir, "host_key"), KnownHosts: filepath.Join(dir, "known_hosts"),
				ConnectTimeout: 90 * time.Second},
			Pos: Pos{File: path, Line: 14, Column: 3}},
	}
	if len(inv.Hosts) != len(want) {
		t.Fatalf("%d hosts, want %d", len(inv.Hosts), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(*inv.Hosts[i], want[i]) {
			t.Errorf("host %d:\n got %+v\nwant %+v", i, *inv.Hosts[i], want[i])
		}
	}
	if got := inv.HostsWithRole("rb-node"); len(got) != 1 || got[0].Name != "rb1" {
		t.Errorf("HostsWithRole(rb-node) = %v", got)
	}
}

func TestMissingKeyFiles(t *testing.T) {
	dir := t.TempDir()
	body := "defaults:\n  identity_file: nope\nhosts:\n  a:\n    address: 10.0.0.1\n    known_hosts: /nonexistent/known_hosts\n  b:\n    address: 10.0.0.2\n    identity_file: .\n"
	path := filepath.Join(dir, "inv.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + ":2:18: defaults.identity_file: identity file " + filepath.Join(dir, "nope") + " does not exist\n" +
		path + ":6:18: hosts.a.known_hosts: known_hosts file /nonexistent/known_hosts: its folder does not exist\n" +
		path + ":9:20: hosts.b.identity_file: identity file " + dir + " is a directory"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	if _, err := Load(filepath.Join(dir, "absent.yaml")); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestMergeKeys(t *testing.T) {
	body := `
x-rb: &rb
  roles: [base]
  port: 2222
hosts:
  rb1: {<<: *rb, address: 10.0.0.1}
  rb2:
    <<: *rb
    address: 10.0.0.2
    port: 22
`
	// The x-rb key is unknown: anchors must live inside a known section.
	got := parseErrs(t, body)
	if len(got) != 1 || got[0] != "gridha.yaml:2:1: x-rb: unknown key 'x-rb' (valid keys: defaults, secrets_dir, hosts, roles)" {
		t.Errorf("errors: %q", got)
	}
	body = `
hosts:
  rb1: &rb
    address: 10.0.0.1
    roles: [base]
    port: 2222
  rb2:
    <<: *rb
    address: 10.0.0.2
    port: 22
`
	inv, err := Parse("gridha.yaml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	rb2 := inv.Host("rb2")
	if rb2.Address != "10.0.0.2" || rb2.SSH.Port != 22 || !rb2.HasRole("base") {
		t.Errorf("rb2 = %+v", *rb2)
	}
}

func TestResolveLimit(t *testing.T) {
	inv, err := Parse("gridha.yaml", []byte("hosts:\n  state1: {address: 10.0.0.1}\n  rb1: {address: 10.0.0.2}\n  rb2: {address: 10.0.0.3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{nil, []string{"state1", "rb1", "rb2"}, ""},
		{[]string{"rb2,state1"}, []string{"state1", "rb2"}, ""},
		{[]string{"rb2", " rb2 ", "rb1"}, []string{"rb1", "rb2"}, ""},
		{[]string{"rb*"}, []string{"rb1", "rb2"}, ""},
		{[]string{"rb3"}, nil, "--limit: no host 'rb3' in " + inv.Path + ", did you mean 'rb1'?"},
		{[]string{"rb1,bdii-top", "x*"}, nil, "--limit: no host 'bdii-top' in " + inv.Path + " (hosts: state1, rb1, rb2)\n" +
			"--limit: no host 'x*' in " + inv.Path + " (hosts: state1, rb1, rb2)"},
	}
	for _, tt := range tests {
		got, err := inv.ResolveLimit(tt.in)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if gotErr != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ResolveLimit(%q) = %q, %q; want %q, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
		}
	}
}

func TestNearest(t *testing.T) {
	keys := []string{"address", "hostname", "roles", "identity_file", "connect_timeout"}
	for in, want := range map[string]string{
		"adress": "address", "identity-file": "identity_file", "identityfile": "identity_file",
		"role": "roles", "Hostname": "hostname", "timeout": "", "zzz": "",
	} {
		if got := Nearest(in, keys); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", in, got, want)
		}
	}
}
