package roles

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

const baseInventory = `
hosts:
  rb1:
    address: 198.18.0.11
    hostname: rb1.example.org
    roles: [base]
  rb2:
    address: 198.18.0.12
    roles: [base]
  other:
    address: 198.18.0.13
roles:
  base:
    motd: "rb1/rb2: gLite RB HA pair"
`

func TestBasePlan(t *testing.T) {
	inv, err := inventory.Parse("gridha.yaml", []byte(baseInventory))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Base{}.Plan(inv, Options{Limit: []string{"rb1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Hosts(); len(got) != 1 || got[0] != "rb1" {
		t.Fatalf("hosts = %v, want [rb1] (--limit)", got)
	}
	st := plan.Phases[0].Steps["rb1"]
	var ids []string
	for _, s := range st {
		ids = append(ids, s.ID())
	}
	want := "dir /etc/gridha,file /etc/gridha/host.conf,dir /var/lib/gridha,file /etc/motd"
	if strings.Join(ids, ",") != want {
		t.Fatalf("steps = %v, want %s", ids, want)
	}
	conf := st[1].(steps.File)
	for _, line := range []string{"# Managed by gridha", "GRIDHA_HOST='rb1'\n", "GRIDHA_HOSTNAME='rb1.example.org'\n", "GRIDHA_ROLES='base'\n"} {
		if !strings.Contains(string(conf.Content), line) {
			t.Errorf("host.conf lacks %q:\n%s", line, conf.Content)
		}
	}
	if conf.Mode != 0o644 || st[2].(steps.Dir).Mode != fs.FileMode(0o700) || st[0].(steps.Dir).Mode != 0o755 {
		t.Errorf("modes: host.conf %v, /var/lib/gridha %v, /etc/gridha %v", conf.Mode, st[2].(steps.Dir).Mode, st[0].(steps.Dir).Mode)
	}
	if m := st[3].(steps.File); string(m.Content) != "rb1/rb2: gLite RB HA pair\n" {
		t.Errorf("motd = %q", m.Content)
	}

	all, _ := Base{}.Plan(inv, Options{})
	if got := all.Hosts(); strings.Join(got, ",") != "rb1,rb2" {
		t.Errorf("hosts = %v, want rb1,rb2 (other has no base role)", got)
	}
	rb2 := all.Phases[0].Steps["rb2"][1].(steps.File)
	if !strings.Contains(string(rb2.Content), "GRIDHA_HOSTNAME='198.18.0.12'\n") {
		t.Errorf("rb2 host.conf without hostname: falls back to the address:\n%s", rb2.Content)
	}
}

func TestBaseMotdOneLine(t *testing.T) {
	bad := strings.Replace(baseInventory, `motd: "rb1/rb2: gLite RB HA pair"`, `motd: "line one\nline two"`, 1)
	_, err := inventory.Parse("gridha.yaml", []byte(bad))
	if err == nil || !strings.Contains(err.Error(), "roles.base.motd: must be one line") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "gridha.yaml:14:11:") {
		t.Errorf("error without line: %v", err)
	}
}
