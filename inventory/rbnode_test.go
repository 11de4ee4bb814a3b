package inventory

import (
	"strings"
	"testing"
)

// TestRBNodeNeedsWhatHAGDNeeds: the rb-node checks that have no key of
// their own to point at are shown where the user fixes them: a node
// without a rank at the host when the file has no nodes: yet, a missing
// state server at roles.rb-node, a host name hagd cannot take as its node
// ID at the host; a complete inventory passes.
func TestRBNodeNeedsWhatHAGDNeeds(t *testing.T) {
	long := strings.Repeat("n", 65)
	got := parseErrs(t, `hosts:
  rb1: {address: 198.18.9.11, roles: [rb-node]}
  `+long+`: {address: 198.18.9.12, roles: [rb-node]}
roles:
  rb-node:
    hagd: {lease: none}
`)
	want := []string{
		"gridha.yaml:2:3: roles.rb-node.nodes: rb-node rb1 has no rank in any group: add it here (hagd needs at least one group)",
		"gridha.yaml:3:3: roles.rb-node.nodes: host name \"" + long + "\" cannot be hagd's node ID (letters, digits, . _ : -, at most 64)",
		"gridha.yaml:3:3: roles.rb-node.nodes: rb-node " + long + " has no rank in any group: add it here (hagd needs at least one group)",
		"gridha.yaml:5:3: roles.rb-node.state_server: rb-node needs a state server: give a host the role state-server",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if errs := parseErrs(t, `hosts:
  s: {address: 198.18.9.10, roles: [state-server]}
  rb1: {address: 198.18.9.11, roles: [rb-node]}
roles:
  state-server: {mysql: {password_file: env:LB_PW}}
  rb-node:
    groups: {g: {service_ip: 198.18.9.100/24, iface: eth0}}
    nodes: {rb1: {g: 1}}
`); errs != nil {
		t.Errorf("complete inventory refused: %q", errs)
	}
}
