package roles

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
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
	m, err := MergePlans([]string{"state-server", "unused", "rb-node"}, []*installer.Plan{a, nil, b})
	if err != nil {
		t.Fatal(err)
	}
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

// TestMergePlansSameIDDifferentWants: two roles planning one step ID for
// one host with different wants is an error naming both roles, the host,
// the step and the field (never its value: content may be secret);
// identical wants (equal values, built separately, with the same check
// function) are merged into one step.
func TestMergePlansSameIDDifferentWants(t *testing.T) {
	file := func(mode uint32, content string) installer.Step {
		return steps.File{Path: "/etc/x.conf", Content: []byte(content), Mode: fs.FileMode(mode), Owner: "root", Group: "root"}
	}
	check := func(installer.ProbeResult) (bool, string) { return true, "" }
	exec := func(c func(installer.ProbeResult) (bool, string)) installer.Step {
		return steps.Exec{Name: "reload x", Probe: "true", Check: c}
	}
	plan := func(ss ...installer.Step) *installer.Plan {
		return &installer.Plan{Phases: []installer.Phase{{Name: "p", Steps: map[string][]installer.Step{"rb1": ss}}}}
	}

	m, err := MergePlans([]string{"state-server", "rb-node"}, []*installer.Plan{
		plan(file(0o640, "a=1\n"), exec(check)), plan(file(0o640, "a=1\n"), exec(check)),
	})
	if err != nil {
		t.Fatalf("identical wants: %v", err)
	}
	if n := len(m.Phases[0].Steps["rb1"]); n != 2 {
		t.Fatalf("identical wants: %d steps, want 2 (each once)", n)
	}

	for _, c := range []struct {
		name  string
		b     installer.Step
		field string
	}{
		{"mode", file(0o600, "a=1\n"), "steps.File.Mode"},
		{"content", file(0o640, "secret-b\n"), "steps.File.Content"},
		{"type", namedStep("file /etc/x.conf"), "steps.File and a roles.namedStep"},
	} {
		_, err := MergePlans([]string{"state-server", "rb-node"}, []*installer.Plan{plan(file(0o640, "a=1\n")), plan(c.b)})
		if err == nil {
			t.Fatalf("%s: different wants merged", c.name)
		}
		for _, want := range []string{"rb1", `"file /etc/x.conf"`, "state-server", "rb-node", c.field} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not name %s", c.name, err, want)
			}
		}
		if strings.Contains(err.Error(), "secret-b") || strings.Contains(err.Error(), "a=1") {
			t.Errorf("%s: error %q shows content", c.name, err)
		}
	}
	other := func(installer.ProbeResult) (bool, string) { return false, "x" }
	if _, err := MergePlans([]string{"a", "b"}, []*installer.Plan{plan(exec(check)), plan(exec(other))}); err == nil ||
		!strings.Contains(err.Error(), "Check (another function)") {
		t.Errorf("another check function: %v", err)
	}
}

// TestMergePlansKeyGeneratedByTheOtherRole: on a fresh site `install
// state-server rb-node` plans the state server's keys file twice, once with
// the node key just generated and once with it loaded; that is one want.
func TestMergePlansKeyGeneratedByTheOtherRole(t *testing.T) {
	key := func(generated bool) *NodeKey {
		return &NodeKey{Node: "rb1", PrivatePEM: []byte("k"), AuthorizedKey: "ssh-ed25519 AAAA gridha-snfs@rb1", Generated: generated}
	}
	nodes := []*inventory.Host{{Name: "rb1", Address: "198.18.0.11"}}
	plan := func(k *NodeKey) *installer.Plan {
		s := &nodeKeysFile{Server: "state1", Path: "/etc/ssh/authorized_keys/snfs", Driver: "sshfs", Nodes: nodes, Keys: []*NodeKey{k}}
		return &installer.Plan{Phases: []installer.Phase{{Name: "p", Steps: map[string][]installer.Step{"state1": {s}}}}}
	}
	if _, err := MergePlans([]string{"state-server", "rb-node"}, []*installer.Plan{plan(key(true)), plan(key(false))}); err != nil {
		t.Fatalf("generated vs loaded key: %v", err)
	}
	other := key(false)
	other.AuthorizedKey = "ssh-ed25519 BBBB gridha-snfs@rb1"
	if _, err := MergePlans([]string{"state-server", "rb-node"}, []*installer.Plan{plan(key(true)), plan(other)}); err == nil {
		t.Fatal("two different keys merged")
	}
}
