package inventory

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/dnsupdater"
	"github.com/gridha/gridha/hagd"
)

// settingsBlock is where README.md holds role's generated table.
func settingsBlock(role string) (begin, end string) {
	return "<!-- settings " + role + ": generated from inventory/*.go by TestSettingsTablesInREADME; GRIDHA_UPDATE_README=1 go test ./inventory/ rewrites them -->\n",
		"<!-- end settings " + role + " -->\n"
}

// TestSettingsTablesInREADME: README.md's table of every role's settings is
// the one generated from the declaration the decoder and validation use
// (keys, types, SetDefaults' defaults, the fields' doc comments), and every
// setting has a description. GRIDHA_UPDATE_README=1 rewrites the tables.
func TestSettingsTablesInREADME(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	out := string(readme)
	for _, role := range KnownRoles() {
		ss, err := Settings(role)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.Doc == "" || strings.Contains(s.Doc, "\n") {
				t.Errorf("roles.%s.%s: no one-line doc comment on its field (%q)", role, s.Key, s.Doc)
			}
		}
		want, err := SettingsTable(role)
		if err != nil {
			t.Fatal(err)
		}
		begin, end := settingsBlock(role)
		i, j := strings.Index(out, begin), strings.Index(out, end)
		if i < 0 || j < i {
			t.Errorf("README.md has no settings table for %s (lines %q ... %q)", role, begin, end)
			continue
		}
		if got := out[i+len(begin) : j]; got != want {
			if os.Getenv("GRIDHA_UPDATE_README") == "1" {
				out = out[:i+len(begin)] + want + out[j:]
				continue
			}
			t.Errorf("README.md's settings table for %s differs from the declaration (GRIDHA_UPDATE_README=1 go test -run TestSettingsTablesInREADME ./inventory/ rewrites it):\n got:\n%s\nwant:\n%s", role, got, want)
		}
	}
	if out != string(readme) {
		if err := os.WriteFile("README.md", []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("README.md rewritten")
	}
}

// TestSettingsDescribeDeclaration: keys, types and defaults come from the
// declaration itself (a default SetDefaults fills, a nested struct's keys,
// a map's value keys, a list's element keys, a secret).
func TestSettingsDescribeDeclaration(t *testing.T) {
	ss, err := Settings("rb-node")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Setting{}
	for _, s := range ss {
		got[s.Key] = s
	}
	for _, w := range []Setting{
		{Key: "mount_point", Type: "string", Default: "/mnt/rb-state", Doc: "where the state server's export is mounted on a node"},
		{Key: "hagd.timeout", Type: "duration", Default: "2m"},
		{Key: "hagd.key_file", Type: "secret (path or env:NAME)"},
		{Key: "groups.NAME.service_ip", Type: "string", Doc: "the address with prefix length, e.g. 198.18.1.100/24"},
		{Key: "cron_remove", Type: "list of string", Default: "[/etc/cron.d/edg-wl-check-daemons]"},
	} {
		s, ok := got[w.Key]
		if !ok || s.Type != w.Type || s.Default != w.Default || w.Doc != "" && s.Doc != w.Doc {
			t.Errorf("%s: got %+v, want %+v", w.Key, s, w)
		}
	}
	if ss, _ := Settings("dns"); len(ss) == 0 || ss[0].Key != "zone" {
		t.Errorf("dns: %+v", ss)
	}
	if _, err := Settings("rb-nod"); err == nil {
		t.Error("unknown role accepted")
	}
	var b bytes.Buffer
	if err := WriteSettingsHelp(&b, "base"); err != nil || !strings.Contains(b.String(), "   motd (string)\n      one line written to /etc/motd") {
		t.Errorf("help: %v\n%s", err, b.String())
	}
}

// TestSettingsDefaultsFromTheirOwners: the help's defaults are the
// owners' own values: hagd's for rb-node's hagd keys (so the inventory, the
// rendered hagd.conf and the daemon agree), the dns-updater's for the keys
// the inventory leaves to it, and list elements' defaults (bdiis[].port).
func TestSettingsDefaultsFromTheirOwners(t *testing.T) {
	d := hagd.DefaultConfig()
	want := map[string]map[string]string{
		"rb-node": {
			"hagd.port": fmt.Sprint(d.Port), "hagd.timeout": "2m", "hagd.stop_timeout": d.StopTimeout.String(),
			"hagd.dt1": d.DT1.String(), "hagd.dt2": d.DT2.String(), "hagd.heartbeat": d.Heartbeat.String(),
			"hagd.backoff": d.Backoff.String(), "hagd.lease": d.Lease, "hagd.debug": fmt.Sprint(d.Debug),
			"hagd.preempt": "true", "hagd.config": hagd.DefaultConfigPath, "hagd.lease_ttl": "",
		},
		"dns": {
			"updater.interval":      fmt.Sprint(int(dnsupdater.DefaultInterval / time.Second)),
			"updater.check_timeout": fmt.Sprint(int(dnsupdater.DefaultCheckTimeout / time.Second)),
			"updater.fail_after":    fmt.Sprint(dnsupdater.DefaultFailAfter),
			"updater.state_file":    dnsupdater.DefaultStateFile,
			"updater.binary":        GridhaBinary,
			"bdiis[].port":          fmt.Sprint(dnsupdater.DefaultBDIIPort),
		},
	}
	for role, keys := range want {
		ss, err := Settings(role)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, s := range ss {
			got[s.Key] = s.Default
		}
		for k, v := range keys {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s %s: default %q, want %q", role, k, g, v)
			}
		}
	}
}

// TestRoleExamplesLoad: every role's example (its settings type's doc
// comment, printed by --help) is a valid inventory section: loaded under
// roles: with hosts playing the roles the examples name, nothing is
// refused.
func TestRoleExamplesLoad(t *testing.T) {
	var b strings.Builder
	b.WriteString(`hosts:
  state1: {address: 198.18.1.10, roles: [state-server, base]}
  rb1: {address: 198.18.1.11, roles: [rb-node, base]}
  rb2: {address: 198.18.1.12, roles: [rb-node, base]}
  dns1: {address: 198.18.1.21, roles: [dns]}
  dns2: {address: 198.18.1.22, roles: [dns]}
  ui1: {address: 198.18.1.31, roles: [bdii-client]}
roles:
`)
	for _, role := range KnownRoles() {
		ex, err := Example(role)
		if err != nil || !strings.HasPrefix(ex, role+":\n") {
			t.Fatalf("%s: example %q, %v", role, ex, err)
		}
		for _, line := range strings.SplitAfter(ex, "\n") {
			if line != "" {
				b.WriteString("  " + line)
			}
		}
	}
	inv, err := Parse("examples.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("%s\n%v", b.String(), err)
	}
	// A list element's default is filled on load (bdii2 gives no port).
	if bs := inv.Roles.DNS.BDIIs; len(bs) != 2 || bs[1].Port != dnsupdater.DefaultBDIIPort {
		t.Errorf("bdiis: %+v", bs)
	}
	var help bytes.Buffer
	if err := WriteSettingsHelp(&help, "rb-node"); err != nil || !strings.Contains(help.String(), "\nEXAMPLE (under roles:):\n   rb-node:\n     state_server: state1\n") {
		t.Errorf("help: %v\n%s", err, help.String())
	}
}
