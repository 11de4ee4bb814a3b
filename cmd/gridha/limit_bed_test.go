package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/testbed"
)

// acceptedLogins counts the SSH logins as root from the machine that sshd
// on h logged (one line per connection gridha opens).
func acceptedLogins(t *testing.T, bed *testbed.Bed, h *testbed.Host) int {
	t.Helper()
	b, err := h.ReadFile("/var/log/testbed-sshd.log")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "Accepted publickey for root from "+bed.Gateway+" ")
}

func loginsOf(t *testing.T, bed *testbed.Bed) map[string]int {
	out := map[string]int{}
	for _, h := range bed.Hosts() {
		out[h.Name] = acceptedLogins(t, bed, h)
	}
	return out
}

// TestLimitAndNoChangeInstallOnBed: an install where nothing differs opens
// one connection and one session per host and locks nothing; `verify
// rb-node --limit rb1` logs into rb1 and the state server it needs the host
// key of, never into rb2 (counted in sshd's own log), and the report says
// why the state server was contacted.
func TestLimitAndNoChangeInstallOnBed(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bed := testbed.New(t, "state1", "rb1", "rb2")
	dir := t.TempDir()
	pw := filepath.Join(dir, "lb-password")
	if err := os.WriteFile(pw, []byte("LB-secret-for-limit\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var hosts strings.Builder
	for _, h := range bed.Hosts() {
		role := "rb-node"
		if h.Name == "state1" {
			role = "state-server"
		}
		fmt.Fprintf(&hosts, "  %s: {address: %s, hostname: %s, roles: [base, %s]}\n", h.Name, h.Addr, h.Hostname, role)
	}
	inv := filepath.Join(dir, "gridha.yaml")
	body := bed.DefaultsYAML() + fmt.Sprintf(`secrets_dir: secrets
hosts:
%sroles:
  base:
    motd: "limit test"
  state-server:
    export: /srv/rb-state
    mysql:
      password_file: %s
  rb-node:
    state_server: state1
    services: [edg-wl-ns]
    groups:
      rb-a: {service_ip: %s/24, iface: eth0}
    nodes:
      rb1: {rb-a: 100}
      rb2: {rb-a: 50}
`, hosts.String(), pw, bed.SpareAddr(1))
	if err := os.WriteFile(inv, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	if r := gridhaOnBed(t, "install", "base", "-i", inv); r.code != 0 {
		t.Fatalf("install base: exit %d", r.code)
	}
	before := loginsOf(t, bed)
	r := gridhaOnBed(t, "install", "base", "-i", inv, "-o", "json")
	var doc report.JSONDocument
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 {
		t.Fatalf("no-change install: exit %d, %v", r.code, err)
	}
	after := loginsOf(t, bed)
	for _, h := range doc.Hosts {
		if h.SSH.Connections != 1 || h.SSH.Sessions != 1 || h.Locked || h.Recap["changed"] != 0 || h.Recap["ok"] == 0 {
			t.Errorf("no-change install on %s: %+v (want one connection, one session, no lock, nothing changed)", h.Name, h)
		}
		if d := after[h.Name] - before[h.Name]; d != 1 {
			t.Errorf("no-change install: sshd on %s logged %d logins, want 1", h.Name, d)
		}
		if h.DurationS <= 0 || h.FactsS <= 0 {
			t.Errorf("%s: duration_s %v facts_s %v", h.Name, h.DurationS, h.FactsS)
		}
	}
	if len(doc.Hosts) != 3 {
		t.Errorf("no-change install reported %d hosts", len(doc.Hosts))
	}

	// --limit rb1: rb1, and state1 for its host key; never rb2.
	before = loginsOf(t, bed)
	r = gridhaOnBed(t, "verify", "rb-node", "-i", inv, "--limit", "rb1", "-o", "json")
	after = loginsOf(t, bed)
	doc = report.JSONDocument{}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("verify --limit rb1: %v", err)
	}
	want := map[string]int{"rb1": 1, "state1": 1, "rb2": 0}
	for n, w := range want {
		if d := after[n] - before[n]; d != w {
			t.Errorf("verify --limit rb1: sshd on %s logged %d logins, want %d", n, d, w)
		}
	}
	var names []string
	for _, h := range doc.Hosts {
		names = append(names, h.Name)
		switch h.Name {
		case "state1":
			if !strings.Contains(h.Support, "outside --limit") || !strings.Contains(h.Support, "rb1") || len(h.Results) != 1 ||
				!strings.HasPrefix(h.Results[0].Step, "ssh host key ") || h.Results[0].Status != "ok" {
				t.Errorf("state1 under --limit rb1: support %q, results %+v", h.Support, h.Results)
			}
		case "rb1":
			if h.Support != "" || len(h.Results) < 10 {
				t.Errorf("rb1: support %q, %d results", h.Support, len(h.Results))
			}
		}
	}
	if strings.Join(names, ",") != "rb1,state1" {
		t.Errorf("verify --limit rb1 reported hosts %v, want rb1 and state1", names)
	}
	r = gridhaOnBed(t, "verify", "rb-node", "-i", inv, "--limit", "rb1")
	if !strings.Contains(r.stdout, "state1: outside --limit: only its SSH host key is read") {
		t.Errorf("text report does not say why state1 was contacted:\n%s", r.stdout)
	}
}
