package roles

import (
	"context"
	"testing"

	"github.com/gridha/gridha/installer"
)

type namedStep string

func (n namedStep) ID() string                { return string(n) }
func (n namedStep) Probes() []installer.Probe { return nil }
func (n namedStep) CheckApply(context.Context, *installer.Env, bool) installer.Result {
	return installer.OK("")
}

func TestMergePlansDropsSharedSteps(t *testing.T) {
	a := &installer.Plan{Phases: []installer.Phase{{Name: "state-server", Steps: map[string][]installer.Step{
		"state1": {namedStep("user snfs"), namedStep("dir /srv")},
	}}}}
	b := &installer.Plan{Phases: []installer.Phase{
		{Name: "rb-node: state server", Steps: map[string][]installer.Step{"state1": {namedStep("user snfs"), namedStep("ssh host key")}}},
		{Name: "rb-node: prepare", Steps: map[string][]installer.Step{"rb1": {namedStep("user snfs")}, "state1": {namedStep("dir /srv")}}},
	}}
	m := MergePlans(a, nil, b)
	var got [][]string
	for _, ph := range m.Phases {
		var ids []string
		for _, h := range []string{"state1", "rb1"} {
			for _, s := range ph.Steps[h] {
				ids = append(ids, h+":"+s.ID())
			}
		}
		got = append(got, ids)
	}
	want := [][]string{
		{"state1:user snfs", "state1:dir /srv", "state1:ssh host key"},
		// a step ID seen in another phase, or on another host, is kept
		{"state1:dir /srv", "rb1:user snfs"},
	}
	if len(got) != len(want) {
		t.Fatalf("phases: got %v want %v", got, want)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("phase %d: got %v want %v", i, got[i], want[i])
		}
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("phase %d: got %v want %v", i, got[i], want[i])
			}
		}
	}
}
