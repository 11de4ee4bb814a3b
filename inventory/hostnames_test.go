package inventory

import (
	"reflect"
	"testing"
)

func TestHostList(t *testing.T) {
	// state1's address is missing and roles has a typo: Parse refuses the
	// file, HostList still names the hosts.
	body := "defaults: {user: root}\nhosts:\n  state1:\n    roles: [state-server]\n  rb1: {address: 198.18.1.11, roles: [base, rb-node]}\n  rb2:\n    address: 198.18.1.12\n    roles: [rb-node]\nroles:\n  rb-nodes: {}\n"
	if _, err := Parse("gridha.yaml", []byte(body)); err == nil {
		t.Fatal("the test inventory should be invalid")
	}
	got := HostList([]byte(body))
	want := []NamedHost{{"state1", []string{"state-server"}}, {"rb1", []string{"base", "rb-node"}}, {"rb2", []string{"rb-node"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "hosts: [a, b]\n", "hosts:\n  a: [\n", "- x\n"} {
		if got := HostList([]byte(bad)); got != nil {
			t.Errorf("%q: got %+v, want nothing", bad, got)
		}
	}
}
