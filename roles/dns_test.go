package roles

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

func TestOwnedLinesEdit(t *testing.T) {
	vars := []EnvVar{{"LCG_GFAL_INFOSYS", "a:2170,b:2170"}}
	ol := gridEnvFile(GridEnvSh, "grid-env.sh.tmpl", vars, shLine, shOwns(vars), shCheck(vars)).(ownedLines)
	ours := `export LCG_GFAL_INFOSYS="a:2170,b:2170" # managed by gridha`
	for _, c := range []struct{ name, in, want string }{
		{"empty", "", ours + "\n"},
		{"append", "export A=1\n", "export A=1\n" + ours + "\n"},
		{"no final newline", "export A=1", "export A=1\n" + ours + "\n"},
		{"replace in place", "export A=1\nLCG_GFAL_INFOSYS=x:1\nexport B=2\n", "export A=1\n" + ours + "\nexport B=2\n"},
		{"later duplicates dropped", "export LCG_GFAL_INFOSYS=x:1\nexport B=2\n  export LCG_GFAL_INFOSYS=y:1\n", ours + "\nexport B=2\n"},
		{"YAIM gridenv_set", "if true; then\ngridenv_set         \"LCG_GFAL_INFOSYS\" \"x:2170\"\nfi\n", "if true; then\n" + ours + "\nfi\n"},
		{"similar names kept", "export LCG_GFAL_INFOSYS_OLD=x\n# LCG_GFAL_INFOSYS=commented\n", "export LCG_GFAL_INFOSYS_OLD=x\n# LCG_GFAL_INFOSYS=commented\n" + ours + "\n"},
		{"BDII_LIST of YAIM kept", "export BDII_LIST=x:1\n", "export BDII_LIST=x:1\n" + ours + "\n"},
		{"gridha's old BDII_LIST dropped", "export BDII_LIST=\"x:1\" # managed by gridha\n", ours + "\n"},
		{"other spellings, as sh reads them", "export 'LCG_GFAL_INFOSYS=x:1'\nexport B=2\nreadonly LCG_GFAL_INFOSYS=y;\n", ours + "\nexport B=2\n"},
	} {
		got := string(ol.edit([]byte(c.in)))
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
		if again := string(ol.edit([]byte(got))); again != got {
			t.Errorf("%s: not idempotent: %q", c.name, again)
		}
		if err := ol.Check([]byte(got)); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// A second assignment gridha cannot edit is reported, naming its line.
	for _, in := range []string{"A=1; LCG_GFAL_INFOSYS=x:1\n", "LCG_GFAL_INFOSYS=\"x:1,\\\ny:1\"\n"} {
		if err := ol.Check(ol.edit([]byte(in))); err == nil || !strings.Contains(err.Error(), "LCG_GFAL_INFOSYS set 2 times (lines 1, 2") && !strings.Contains(err.Error(), "unterminated") {
			t.Errorf("%q: %v", in, err)
		}
	}
	cvars := []EnvVar{{"LCG_GFAL_INFOSYS", "a:2170"}, {"BDII_LIST", "a:2170"}}
	col := gridEnvFile(GridEnvCsh, "grid-env.csh.tmpl", cvars, cshLine, cshOwns(cvars), cshCheck(cvars)).(ownedLines)
	got := string(col.edit([]byte("setenv X 1\nsetenv LCG_GFAL_INFOSYS old:1\nsetenv BDII_LIST old:1\n")))
	want := "setenv X 1\nsetenv LCG_GFAL_INFOSYS \"a:2170\" # managed by gridha\nsetenv BDII_LIST \"a:2170\" # managed by gridha\n"
	if got != want {
		t.Errorf("csh:\n got %q\nwant %q", got, want)
	}
	if err := col.Check(col.edit([]byte("set a=1; setenv LCG_GFAL_INFOSYS x\n"))); err == nil || !strings.Contains(err.Error(), "2 setenv of LCG_GFAL_INFOSYS (lines 1, 2") {
		t.Errorf("csh second setenv on a shared line: %v", err)
	}
}

func FuzzOwnedLinesEdit(f *testing.F) {
	f.Add("export A=1\nexport LCG_GFAL_INFOSYS=x\n")
	f.Add("gridenv_set \"BDII_LIST\" \"x\" # managed by gridha\n\n\n")
	f.Add("")
	vars := []EnvVar{{"LCG_GFAL_INFOSYS", "a:2170"}}
	ol := gridEnvFile(GridEnvSh, "grid-env.sh.tmpl", vars, shLine, shOwns(vars), shCheck(vars)).(ownedLines)
	f.Fuzz(func(t *testing.T, in string) {
		once := ol.edit([]byte(in))
		if twice := ol.edit(once); string(twice) != string(once) {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, once, twice)
		}
		if strings.Count(string(once), "export LCG_GFAL_INFOSYS=\"a:2170\" # managed by gridha\n") < 1 {
			t.Fatalf("our line missing: %q", once)
		}
	})
}

func TestTSIGKeyRoundTrip(t *testing.T) {
	k, err := GenerateTSIGKey("gridha-topbdii.")
	if err != nil {
		t.Fatal(err)
	}
	if k.Name != "gridha-topbdii" || len(k.Secret) != 44 {
		t.Fatalf("key %q secret length %d", k.Name, len(k.Secret))
	}
	back, err := ParseBINDKey(k.BINDFile())
	if err != nil || back != k {
		t.Fatalf("round trip: %v %v", back.Name, err)
	}
	// tsig-keygen's layout.
	tk := "key \"ddns-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + k.Secret + "\";\n};\n"
	if got, err := ParseBINDKey([]byte(tk)); err != nil || got.Name != "ddns-key" {
		t.Errorf("tsig-keygen format: %v %v", got.Name, err)
	}
	bad := strings.Replace(string(k.BINDFile()), "hmac-sha256", "hmac-md5", 1)
	if _, err := ParseBINDKey([]byte(bad)); err == nil {
		t.Error("hmac-md5 accepted")
	}
	if _, err := ParseBINDKey([]byte("secret \"abc\";")); err == nil || strings.Contains(err.Error(), "abc") {
		t.Errorf("bad file: %v", err)
	}
	if a, _ := GenerateTSIGKey("x"); a.Secret == k.Secret {
		t.Error("two keys alike")
	}
}

func FuzzParseBINDKey(f *testing.F) {
	k, _ := GenerateTSIGKey("gridha-topbdii")
	f.Add(string(k.BINDFile()))
	f.Add("key x { algorithm hmac-sha256; secret \"AAAA\"; };")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseBINDKey([]byte(in))
		if err != nil {
			return
		}
		again, err := ParseBINDKey(got.BINDFile())
		if err != nil || again != got {
			t.Fatalf("re-parse of %q: %v", got.BINDFile(), err)
		}
	})
}

func TestParseNamedState(t *testing.T) {
	out := "rndc=0\nconfigured=Tue, 24 Nov 2026 00:20:33 GMT\nboot=Tue, 24 Nov 2026 00:10:00 GMT\nmsg=version: BIND 9.18\n" +
		"mtime=1795479633 /etc/bind/a\nmtime=1795479634 /etc/bind/b\n"
	st, err := parseNamedState(out)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.Configured.Unix() != 1795479633 || strings.Join(st.Newer, ",") != "/etc/bind/b" {
		t.Errorf("state %+v", st)
	}
	st, _ = parseNamedState("rndc=1\nmsg=rndc: connect failed: 127.0.0.1#953: connection refused\n")
	if st.Running || !strings.Contains(st.Msg, "connection refused") {
		t.Errorf("down: %+v", st)
	}
	if _, err := parseNamedState("rndc=0\nconfigured=yesterday\n"); err == nil {
		t.Error("bad time accepted")
	}
}

func TestRRSetPlan(t *testing.T) {
	a := netip.MustParseAddr
	s := rrsetStep{TTL: 60, Want: []netip.Addr{a("192.0.2.1"), a("192.0.2.2"), a("2001:db8::1")}}
	for _, c := range []struct {
		name string
		cur  map[netip.Addr]uint32
		keep string // "" = no change
	}{
		{"empty: all", map[netip.Addr]uint32{}, "192.0.2.1 192.0.2.2 2001:db8::1"},
		{"as wanted", map[netip.Addr]uint32{a("192.0.2.1"): 60, a("192.0.2.2"): 60, a("2001:db8::1"): 60}, ""},
		{"updater removed one: left alone", map[netip.Addr]uint32{a("192.0.2.1"): 60}, ""},
		{"TTL fixed, set kept", map[netip.Addr]uint32{a("192.0.2.1"): 300}, "192.0.2.1"},
		{"foreign removed", map[netip.Addr]uint32{a("192.0.2.1"): 60, a("198.51.100.7"): 60}, "192.0.2.1"},
		{"only foreign: all", map[netip.Addr]uint32{a("198.51.100.7"): 60}, "192.0.2.1 192.0.2.2 2001:db8::1"},
	} {
		keep, why := s.plan(current{Addrs: c.cur})
		if got := addrList(keep); got != c.keep || (c.keep == "") != (why == nil) {
			t.Errorf("%s: keep %q why %v, want %q", c.name, got, why, c.keep)
		}
	}
}

// The zone-conflict probe is read-only shell: run it here on a folder.
func TestZoneConflictProbe(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("named.conf.gridha", "zone \"core.example.org\" { type primary; };\n")
	write("named.conf.local", "// zone \"core.example.org\" { old };\nzone \"core-example.org\" {};\nzone \"sub.core.example.org\" {};\n")
	z := zoneConflict{Zone: "core.example.org", ConfDir: dir, Own: filepath.Join(dir, "named.conf.gridha")}
	probe := func() *installer.Facts {
		out, err := exec.Command("sh", "-c", z.Probes()[0].Script).Output()
		if err != nil {
			t.Fatal(err)
		}
		return installer.NewFacts(map[string]installer.ProbeResult{z.probeKey(): {Stdout: out}})
	}
	env := &installer.Env{Host: "dns1", Facts: probe()}
	if r := z.CheckApply(context.Background(), env, false); r.Status != installer.StatusOK {
		t.Fatalf("no conflict expected: %s %s", r.Status, r.Message)
	}
	write("named.conf.options", "options {};\n  zone \"core.example.org.\" IN {\n")
	env.Facts = probe()
	r := z.CheckApply(context.Background(), env, false)
	if r.Status != installer.StatusFailed || !strings.Contains(r.Message, "named.conf.options:2") {
		t.Fatalf("conflict: %s %s", r.Status, r.Message)
	}

	// With a named.conf, only the files it includes (recursively) count:
	// named.conf.options above is no longer read, nor a leftover .old.
	write("named.conf", "// include \"named.conf.options\";\ninclude \""+dir+"/named.conf.local\";\ninclude \"named.conf.gridha\";\n")
	write("named.conf.old", "zone \"core.example.org\" { type master; };\n")
	env.Facts = probe()
	if r := z.CheckApply(context.Background(), env, false); r.Status != installer.StatusOK {
		t.Fatalf("files nothing includes: %s %s", r.Status, r.Message)
	}
	write("named.conf.local", "include \"named.conf.sites\"; // nested, relative\n")
	write("named.conf.sites", "# sites\n\tZone\t\"CORE.example.org\"{ type master; };\n")
	env.Facts = probe()
	r = z.CheckApply(context.Background(), env, false)
	if r.Status != installer.StatusFailed || !strings.Contains(r.Message, "named.conf.sites:2") || strings.Contains(r.Message, ".old") {
		t.Fatalf("conflict in a nested include: %s %s", r.Status, r.Message)
	}
}

const dnsUnitInventory = `
hosts:
  dns1: {address: 192.0.2.53, hostname: dns1.example.org, roles: [dns]}
  dns2: {address: 192.0.2.54, hostname: dns2.example.org, roles: [dns]}
  bdii1: {address: 192.0.2.11}
roles:
  dns:
    zone: core.example.org
    name: topbdii
    primaries: [dns1, dns2]
    updaters: [dns2]
    bdiis:
      - {name: bdii1}
      - {name: bdii2, address: "2001:db8::2"}
    updater: {binary_source: none}
`

func TestDNSPlan(t *testing.T) {
	inv, err := inventory.Parse(filepath.Join(t.TempDir(), "gridha.yaml"), []byte(dnsUnitInventory))
	if err != nil {
		t.Fatal(err)
	}
	inv.SecretsDir = filepath.Join(t.TempDir(), "secrets")
	keyPath := TSIGKeyPath(inv, "topbdii-update")

	// Read-only planning writes no key.
	if _, err := (DNS{}).Plan(inv, Options{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inv.SecretsDir); !os.IsNotExist(err) {
		t.Fatalf("read-only plan created %s", inv.SecretsDir)
	}
	plan, err := DNS{}.Plan(inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(keyPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if d, _ := os.Stat(inv.SecretsDir); d.Mode().Perm() != 0o700 {
		t.Errorf("secrets dir %v", d.Mode().Perm())
	}
	first, _ := os.ReadFile(keyPath)
	if _, err := (DNS{}).Plan(inv, Options{}); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(keyPath); string(again) != string(first) {
		t.Error("a second plan replaced the key")
	}
	var names []string
	for _, ph := range plan.Phases {
		names = append(names, ph.Name)
	}
	if strings.Join(names, ",") != "dns-primaries,dns-records,dns-updaters,dns-updater-service" {
		t.Errorf("phases %v", names)
	}
	if n := len(plan.Phases[1].Steps); n != 2 {
		t.Errorf("record steps on %d primaries", n)
	}
	rr := plan.Phases[1].Steps["dns1"][0].(rrsetStep)
	if rr.Name != "topbdii.core.example.org." || rr.TTL != 60 || addrList(rr.Want) != "192.0.2.11 2001:db8::2" || rr.Addr != "127.0.0.1:53" {
		t.Errorf("rrset step %+v", rr)
	}
	if _, ok := plan.Phases[2].Steps["dns1"]; ok {
		t.Error("dns1 is no updater")
	}
	// --rotate-key with --limit leaving a dns host out is refused before the key changes.
	if _, err := (DNS{}).Plan(inv, Options{RotateKey: true, Limit: []string{"dns1"}}); err == nil || !strings.Contains(err.Error(), "dns2") {
		t.Errorf("rotate with limit: %v", err)
	}
	if again, _ := os.ReadFile(keyPath); string(again) != string(first) {
		t.Error("refused rotation changed the key")
	}
	// --rotate-key: the new key waits beside the active one (a name of its
	// own, so BIND can hold both), and the plan gets the rotation's phases:
	// primaries accept both keys, updaters switch (only when every primary
	// got there), primaries drop the old key (only when every updater
	// switched), then the new key replaces the old on the admin machine.
	plan, err = DNS{}.Plan(inv, Options{RotateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(keyPath); string(again) != string(first) {
		t.Error("the plan of a rotation replaced the active key before any host has the new one")
	}
	pendingPath := PendingTSIGKeyPath(inv, "topbdii-update")
	raw, err := os.ReadFile(pendingPath)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := ParseBINDKey(raw)
	if err != nil || pending.Name != "topbdii-update-alt" {
		t.Fatalf("pending key %+v %v", pending, err)
	}
	if st, _ := os.Stat(pendingPath); st.Mode().Perm() != 0o600 {
		t.Errorf("pending key mode %v", st.Mode().Perm())
	}
	names = nil
	for _, ph := range plan.Phases {
		names = append(names, ph.Name)
	}
	if strings.Join(names, ",") != "dns-primaries,dns-records,dns-updaters,dns-updater-service,dns-rotation-finish,dns-rotation-commit" {
		t.Errorf("rotation phases %v", names)
	}
	var both, only string
	for _, st := range plan.Phases[0].Steps["dns1"] {
		if f, ok := unwrapFile(st); ok && strings.HasSuffix(f.Path, "named.conf.gridha") {
			both = string(f.Content)
		}
	}
	for _, st := range plan.Phases[4].Steps["dns1"] {
		if f, ok := unwrapFile(st); ok && strings.HasSuffix(f.Path, "named.conf.gridha") {
			only = string(f.Content)
		}
	}
	if !strings.Contains(both, "grant topbdii-update name") || !strings.Contains(both, "grant topbdii-update-alt name") {
		t.Errorf("during the switch both keys are granted:\n%s", both)
	}
	if strings.Contains(only, "grant topbdii-update name") || !strings.Contains(only, "grant topbdii-update-alt name") {
		t.Errorf("at the end only the new key is granted:\n%s", only)
	}
	if _, ok := plan.Phases[2].Steps["dns2"][0].(hostsDone); !ok {
		t.Errorf("the updater's steps do not start with the primaries' check: %T", plan.Phases[2].Steps["dns2"][0])
	}
	// A second --rotate-key while one is pending goes on with the same key.
	if _, err := (DNS{}).Plan(inv, Options{RotateKey: true}); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(pendingPath); string(again) != string(raw) {
		t.Error("a second --rotate-key replaced the pending key")
	}
	// A pending rotation needs every dns host, even without --rotate-key.
	if _, err := (DNS{}).Plan(inv, Options{Limit: []string{"dns1"}}); err == nil || !strings.Contains(err.Error(), "rotation is under way") {
		t.Errorf("pending rotation with --limit: %v", err)
	}
}

// unwrapFile finds the steps.File inside Notify/withSecret wrappers.
func unwrapFile(st installer.Step) (steps.File, bool) {
	f, ok := installer.Unwrap(st).(steps.File)
	return f, ok
}

func TestDNSInventoryErrors(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{"    name: topbdii\n", "    name: topbdii\n    ttl: 20\n", "gridha.yaml:10:10: roles.dns.ttl: 20 s is below 30 s"},
		{"primaries: [dns1, dns2]", "primaries: [dns1, dns3]", "roles.dns.primaries[1]: no host \"dns3\""},
		{"updaters: [dns2]", "updaters: [bdii1]", "roles.dns.updaters[0]: host \"bdii1\" does not play the dns role"},
		{"primaries: [dns1, dns2]\n    updaters: [dns2]", "primaries: [dns1]\n    updaters: []", "host \"dns2\" plays dns but is in neither primaries nor updaters"},
		{"name: topbdii", "name: topbdii.elsewhere.org.", "roles.dns.name: \"topbdii.elsewhere.org.\" is not inside zone"},
		{"address: \"2001:db8::2\"", "address: bdii2.example.org", "roles.dns.bdiis[1].address: \"bdii2.example.org\" is not an IP address"},
	} {
		y := strings.Replace(dnsUnitInventory, c.from, c.to, 1)
		_, err := inventory.Parse("gridha.yaml", []byte(y))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: %v, want %q", c.from, c.to, err, c.want)
		}
	}
}

func TestBDIIListErrors(t *testing.T) {
	base := "hosts:\n  ui1: {address: 192.0.2.1, roles: [bdii-client]}\nroles:\n  bdii-client:\n    bdii_list:\n"
	for _, c := range []struct{ list, want string }{
		{"      - top.example.org:2170\n      - top2.example.org\n", "gridha.yaml:7:9: roles.bdii-client.bdii_list[1]: \"top2.example.org\": want host:port"},
		{"      - top.example.org:21x0\n", "bdii_list[0]: \"top.example.org:21x0\": port \"21x0\" is not a number"},
		{"      - top.example.org:99999\n", "is not a number from 1 to 65535"},
		{"      - \"bad host:2170\"\n", "character ' ' not allowed"},
		{"      - \"[2001:db8::1]:2170\"\n      - top.example.org:2170\n", ""},
		{"      []\n", "bdii_list: hosts play bdii-client but bdii_list is empty"},
	} {
		_, err := inventory.Parse("gridha.yaml", []byte(base+c.list))
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: %v", c.list, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.list, err, c.want)
		}
	}
}

// The MAN05 example inventory plans for both roles.
func TestBDIIDNSExamplePlans(t *testing.T) {
	inv, err := inventory.Load("../inventory-examples/bdii-dns.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv.SecretsDir = filepath.Join(t.TempDir(), "secrets")
	inv.Roles.DNS.Updater.BinarySource = "none"
	plan, err := DNS{}.Plan(inv, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if h := plan.Hosts(); strings.Join(h, ",") != "dns1,dns2" {
		t.Errorf("dns hosts %v", h)
	}
	plan, err = BDIIClient{}.Plan(inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h := plan.Hosts(); strings.Join(h, ",") != "ui1,wn1" {
		t.Errorf("bdii-client hosts %v", h)
	}
}

func TestSystemdUnitOnlyWithSystemd(t *testing.T) {
	u := systemdUnit{Path: "/etc/systemd/system/x.service", Content: []byte("[Unit]\n")}
	facts := func(systemd string, file installer.FileFact) *installer.Facts {
		f := installer.NewFacts(map[string]installer.ProbeResult{systemdProbe: {Stdout: []byte(systemd + "\n")}})
		f.SetFile(file)
		return f
	}
	absent := installer.FileFact{Path: u.Path}
	ctx := context.Background()
	if r := u.CheckApply(ctx, &installer.Env{Host: "h", Facts: facts("no", absent)}, false); r.Status != installer.StatusOK {
		t.Errorf("no systemd: %s", r.Status)
	}
	if r := u.CheckApply(ctx, &installer.Env{Host: "h", Facts: facts("yes", absent)}, false); r.Status != installer.StatusMissing {
		t.Errorf("systemd, no unit: %s", r.Status)
	}
	same := installer.FileFact{Path: u.Path, Exists: true, Kind: installer.KindFile, Mode: 0o644, Owner: "root", Group: "root",
		Size: 8, Content: []byte("[Unit]\n"), ContentKnown: true}
	if r := u.CheckApply(ctx, &installer.Env{Host: "h", Facts: facts("yes", same)}, false); r.Status != installer.StatusOK {
		t.Errorf("systemd, same unit: %s %s", r.Status, r.Message)
	}
}
