package roles

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

// rbPlanInventory is a multigroup layout: rb1 and rb3 in rb-a, rb2 and rb4
// in rb-b, rb4 also a backup of rb-a (slide 6).
func rbPlanInventory(t *testing.T, driver string) *inventory.Inventory {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("pw-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `defaults: {user: root}
hosts:
  state1: {address: 198.18.9.10, hostname: state1.example.org, roles: [state-server]}
  rb1: {address: 198.18.9.11, hostname: rb1.example.org, roles: [rb-node]}
  rb2: {address: 198.18.9.12, roles: [rb-node]}
  rb3: {address: 198.18.9.13, roles: [rb-node]}
  rb4: {address: 198.18.9.14, roles: [rb-node]}
roles:
  state-server:
    mysql: {password_file: ` + pw + `}
  rb-node:
    shared_fs: ` + driver + `
    groups:
      rb-a: {service_ip: 198.18.9.100/24, iface: eth0}
      rb-b: {service_ip: 198.18.9.101/24, iface: eth0}
    nodes:
      rb1: {rb-a: 100}
      rb2: {rb-b: 100}
      rb3: {rb-a: 50}
      rb4: {rb-a: 20, rb-b: 30}
`
	p := filepath.Join(dir, "gridha.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func stepIDs(ss []installer.Step) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID())
	}
	return out
}

func TestRBNodePlanPhases(t *testing.T) {
	inv := rbPlanInventory(t, "sshfs")
	plan, err := RBNode{withoutHA: true}.Plan(inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ph := range plan.Phases {
		names = append(names, ph.Name+":"+strings.Join(sortedHostNames(ph.Steps), ","))
	}
	want := "rb-node: state server:state1|rb-node: prepare nodes:rb1,rb2,rb3,rb4|rb-node: move state (1):rb1,rb2|rb-node: move state (2):rb3,rb4"
	if got := strings.Join(names, "|"); got != want {
		t.Fatalf("phases:\n%s\nwant:\n%s", got, want)
	}
	// rb4's own state goes to rb-b (its highest rank); rb-a's share is
	// accepted as a link target (the service script's choice).
	var sd *steps.StateDir
	for _, s := range plan.Phases[3].Steps["rb4"] {
		if d, ok := s.(*steps.StateDir); ok && d.Path == "/var/edgwl" {
			sd = d
		}
	}
	if sd == nil || sd.Share != "/mnt/rb-state/rb-b/edgwl" || sd.ServerPath != "/export/rb-state/rb-b/edgwl" ||
		strings.Join(sd.AcceptLinks, ",") != "/mnt/rb-state/rb-a/edgwl" || !sd.KeepOwners || !sd.NoSpecial {
		t.Fatalf("rb4 /var/edgwl: %+v", sd)
	}
	// The state server: create-only share folders, the host key read last.
	srv := plan.Phases[0].Steps["state1"]
	var createOnly int
	for _, s := range srv {
		if d, ok := s.(*steps.Dir); ok && d.CreateOnly {
			createOnly++
		}
	}
	if createOnly != 8 {
		t.Errorf("%d create-only share folders, want 8 (2 groups x 4 dirs)", createOnly)
	}
	if _, ok := srv[len(srv)-1].(*hostKeyStep); !ok {
		t.Errorf("last state-server step %s, want the host key", srv[len(srv)-1].ID())
	}
	prep := strings.Join(stepIDs(plan.Phases[1].Steps["rb1"]), "\n")
	for _, w := range []string{"user snfs", "file /etc/snfs/.ssh/id_ed25519", "file /etc/snfs/.ssh/known_hosts", "mount /mnt/rb-state",
		"absent /etc/cron.d/edg-wl-check-daemons", "service edg-wl-ns", "service condor", "keyvalue /etc/sysconfig/edg EDG_WL_BKSERVERD_ADDOPTS"} {
		if !strings.Contains(prep, w) {
			t.Errorf("prepare steps lack %q:\n%s", w, prep)
		}
	}
	if strings.Index(prep, "service edg-wl-ns") > strings.Index(prep, "keyvalue") {
		t.Error("services must stop before the sysconfig change")
	}

	// --limit rb3: only rb3 among the nodes; the state server only for
	// its host key, and the plan says why.
	plan, err = RBNode{withoutHA: true}.Plan(inv, Options{Limit: []string{"rb3"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan.Hosts(), ","); got != "rb3,state1" {
		t.Fatalf("limit rb3: hosts %s", got)
	}
	if srv := plan.Phases[0].Steps["state1"]; len(srv) != 1 || !strings.HasPrefix(srv[0].ID(), "ssh host key ") ||
		!strings.Contains(plan.Support["state1"], "rb3") {
		t.Errorf("limit rb3: state1 steps %v, support %q", stepIDs(srv), plan.Support["state1"])
	}
	// With the state server in the limit, its own steps run too.
	plan, err = RBNode{withoutHA: true}.Plan(inv, Options{Limit: []string{"rb3", "state1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Phases[0].Steps["state1"]) < 5 || len(plan.Support) != 0 {
		t.Errorf("limit rb3,state1: state1 steps %v, support %v", stepIDs(plan.Phases[0].Steps["state1"]), plan.Support)
	}
	if _, err := (RBNode{withoutHA: true}).Plan(inv, Options{StateFrom: "state1"}); err == nil {
		t.Fatal("--state-from a host that is not an rb node was accepted")
	}
}

func sortedHostNames(m map[string][]installer.Step) []string {
	var out []string
	for h := range m {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

func TestRBNodePlanReadOnlyWritesNoKey(t *testing.T) {
	inv := rbPlanInventory(t, "sshfs")
	plan, err := RBNode{withoutHA: true}.Plan(inv, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(inv.SecretsDir, "snfs")); err == nil {
		t.Fatal("verify/--check planning generated snfs keys")
	}
	found := false
	for _, s := range plan.Phases[1].Steps["rb1"] {
		if _, ok := s.(steps.Pending); ok {
			found = true
		}
	}
	if !found {
		t.Fatal("a missing key should be a not-yet step in verify")
	}
}

func TestRBNodePlanSNFSDriver(t *testing.T) {
	inv := rbPlanInventory(t, "snfs")
	plan, err := RBNode{withoutHA: true}.Plan(inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mount *steps.Mount
	var ids []string
	for _, s := range plan.Phases[1].Steps["rb1"] {
		ids = append(ids, s.ID())
		if m, ok := s.(*steps.Mount); ok {
			mount = m
		}
	}
	joined := strings.Join(ids, "\n")
	for _, w := range []string{"exec snfshost state1.example.org", "file /etc/init.d/gridha-rpc-psrv", "service gridha-rpc-psrv"} {
		if !strings.Contains(joined, w) {
			t.Errorf("snfs steps lack %q:\n%s", w, joined)
		}
	}
	if mount == nil || mount.FstabLine() != "rb1.example.org:/export/rb-state /mnt/rb-state nfs nolock,mountprog=201000,nfsprog=251000,_netdev 0 0" {
		t.Fatalf("snfs mount: %+v", mount)
	}
	for _, s := range plan.Phases[2].Steps["rb1"] {
		if d, ok := s.(*steps.StateDir); ok && !d.KeepOwners {
			t.Fatalf("snfs driver keeps owners: %+v", d)
		}
	}
	// The state server exports to its own host name only (slide 7).
	var export string
	for _, s := range plan.Phases[0].Steps["state1"] {
		if strings.HasPrefix(s.ID(), "export ") {
			export = s.ID()
		}
	}
	if export != "export /export/rb-state to state1.example.org" {
		t.Fatalf("export step: %q", export)
	}
}

func TestRankOrder(t *testing.T) {
	rb := inventory.RBNode{Nodes: map[string]map[string]int{
		"a1": {"g1": 10}, "a2": {"g1": 30}, "a3": {"g1": 30}, "b1": {"g2": 5},
	}}
	h := func(n string) *inventory.Host { return &inventory.Host{Name: n} }
	pos := RankOrder(rb, map[string][]*inventory.Host{"g1": {h("a1"), h("a3"), h("a2")}, "g2": {h("b1")}})
	var got []string
	for _, p := range pos {
		var names []string
		for _, n := range p {
			names = append(names, n.Name)
		}
		got = append(got, strings.Join(names, ","))
	}
	if strings.Join(got, " | ") != "a2,b1 | a3 | a1" {
		t.Fatalf("rank order %v", got)
	}
}
