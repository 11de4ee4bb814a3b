package inventory

import (
	"testing"

	"github.com/gridha/gridha/hagd"
)

// hagd.debug: 0 is a real setting (quietest), not "unset".
func TestHAGDDebugZeroIsKept(t *testing.T) {
	inv, err := Parse("gridha.yaml", []byte(`hosts:
  s: {address: 198.18.9.10, roles: [state-server]}
  r: {address: 198.18.9.11, roles: [rb-node]}
roles:
  rb-node:
    state_server: s
    hagd: {debug: 0}
    groups: {g: {service_ip: 198.18.9.100/24, iface: eth0}}
    nodes: {r: {g: 1}}
  state-server: {mysql: {password_file: env:PW}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if d := inv.Roles.RBNode.HAGD.Debug; d == nil || *d != 0 {
		t.Fatalf("debug: got %v, want 0", d)
	}
	if h := inv.Roles.RBNode.HAGD; h.DT1 != hagd.DefaultDT1 || h.DT2 != hagd.DefaultDT2 {
		t.Fatalf("ΔT1/ΔT2 left out should be hagd's defaults, got %s/%s", h.DT1, h.DT2)
	}
	if _, err := Parse("gridha.yaml", []byte(`hosts:
  s: {address: 198.18.9.10, roles: [state-server]}
roles:
  rb-node:
    hagd: {debug: 7}
`)); err == nil {
		t.Fatal("debug 7 accepted")
	}
}
