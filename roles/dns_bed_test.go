package roles

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gridha/gridha/installer"
	sshx "github.com/gridha/gridha/installer/ssh"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
)

// bedRun plans role with opts and runs it in mode over real SSH.
func bedRun(t *testing.T, ctx context.Context, inv *inventory.Inventory, role Role, opts Options, mode installer.Mode) *installer.Report {
	t.Helper()
	plan, err := role.Plan(inv, opts)
	if err != nil {
		t.Fatalf("plan %s: %v", role.Name(), err)
	}
	// An ssh_config next to the inventory maps host names to the bed's
	// addresses for gridha itself (the machine's /etc/hosts does not know
	// the bed: a test naming a node by DNS name uses it).
	cfg := "none"
	if p := filepath.Join(inv.Dir, "ssh_config"); fileExists(p) {
		cfg = p
	}
	d := sshx.NewDialer(inv, sshx.Options{HostKeyPolicy: "strict", SSHConfigFile: cfg, AgentSocket: "none"})
	rep, err := installer.Run(ctx, d, plan, installer.RunOptions{Mode: mode, Secrets: &installer.Redactor{}})
	if err != nil {
		t.Fatalf("run %s (%v): %v", role.Name(), mode, err)
	}
	for _, r := range rep.Results {
		t.Logf("%v %s %s: %s %s", mode, r.Host, r.Step, r.Status, r.Message)
	}
	for h, hr := range rep.Hosts {
		if hr.Err != "" {
			t.Fatalf("run %s: %s: %s", role.Name(), h, hr.Err)
		}
	}
	return rep
}

// statuses maps "host step" to status.
func statuses(rep *installer.Report) map[string]installer.Status {
	m := map[string]installer.Status{}
	for _, r := range rep.Results {
		m[r.Host+" "+r.Step] = r.Status
	}
	return m
}

func requireNo(t *testing.T, rep *installer.Report, bad ...installer.Status) {
	t.Helper()
	for _, r := range rep.Results {
		for _, b := range bad {
			if r.Status == b {
				t.Errorf("%s %s: %s: %s", r.Host, r.Step, r.Status, r.Message)
			}
		}
	}
}

// lookupA asks server (host:53) for name's A records: sorted addresses and
// their TTL.
func dnsLookupA(t *testing.T, ctx context.Context, server, name string) ([]string, uint32) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q.RecursionDesired = false
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).ExchangeContext(ctx, q, server)
	if err != nil {
		t.Fatalf("query %s at %s: %v", name, server, err)
	}
	var out []string
	var ttl uint32
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
			ttl = a.Hdr.Ttl
		}
	}
	sort.Strings(out)
	return out, ttl
}

// update sends an RFC 2136 update adding (or removing) name A addr, signed
// with key when key.Name is set, and returns the rcode.
func dnsUpdate(t *testing.T, ctx context.Context, server, zone, name, addr string, add bool, key TSIGKey) int {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	rr, err := dns.NewRR(fmt.Sprintf("%s 45 IN A %s", dns.Fqdn(name), addr))
	if err != nil {
		t.Fatal(err)
	}
	if add {
		m.Insert([]dns.RR{rr})
	} else {
		m.Remove([]dns.RR{rr})
	}
	c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
	if key.Name != "" {
		kn := dns.Fqdn(key.Name)
		c.TsigSecret = map[string]string{kn: key.Secret}
		m.SetTsig(kn, dns.HmacSHA256, 300, time.Now().Unix())
	}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if r != nil {
		return r.Rcode
	}
	if err != nil {
		// A response signed with a key we do not share fails TSIG checks
		// here; BIND answers NOTAUTH/BADKEY unsigned, which parses fine.
		t.Fatalf("update %s at %s: %v", name, server, err)
	}
	return -1
}

const dnsZone = "core.testbed.gridha"

func dnsInventory(b *testing.T, bed *testbed.Bed, extra string) (*inventory.Inventory, string) {
	hosts := bed.HostsYAML(map[string][]string{"dns1": {"dns"}, "dns2": {"dns"}, "ui1": {"bdii-client"}})
	body := hosts + fmt.Sprintf(`
roles:
  dns:
    zone: %s
    name: topbdii
    ttl: 45
    key_name: topbdii-update
    primaries: [dns1, dns2]
    updaters: [dns2]
    bdiis:
      - {name: bdii1, address: %s}
      - {name: bdii2, address: %s, port: 2171}
      - {name: bdii3, address: "2001:db8::10"}
    updater:
      service: installed
      binary_source: none
      interval: 10
%s  bdii-client:
    bdii_list: [topbdii.%s:2170, bdii1.example.org:2170]
`, dnsZone, bed.SpareAddr(0), bed.SpareAddr(1), extra, dnsZone)
	path := bed.WriteInventory(b, body)
	inv, err := inventory.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	return inv, path
}

func dnsReadFile(t *testing.T, h *testbed.Host, path string) string {
	t.Helper()
	b, err := h.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fileAttrs is "mode owner:group" of path in h.
func dnsFileAttrs(t *testing.T, ctx context.Context, h *testbed.Host, path string) string {
	t.Helper()
	out, err := h.Sh(ctx, "stat -c '%a %U:%G' "+path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func TestDNSOnBed(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bed := testbed.New(t, "dns1", "dns2", "ui1")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dns1, dns2 := bed.MustHost("dns1"), bed.MustHost("dns2")
	for _, h := range []*testbed.Host{dns1, dns2} {
		if err := h.StartBIND(ctx, dnsZone); err != nil {
			t.Fatal(err)
		}
	}
	inv, _ := dnsInventory(t, bed, "")
	s := inv.Roles.DNS
	rrName := "topbdii." + dnsZone
	srv1, srv2 := net.JoinHostPort(dns1.Addr, "53"), net.JoinHostPort(dns2.Addr, "53")

	// verify before anything: no key is generated on the admin machine.
	bedRun(t, ctx, inv, DNS{}, Options{ReadOnly: true}, installer.ModeAudit)
	if _, err := os.Stat(inv.SecretsDir); err == nil {
		if _, err := os.Stat(TSIGKeyPath(inv, s.KeyName)); err == nil {
			t.Fatal("verify created the TSIG key")
		}
	}

	rep := bedRun(t, ctx, inv, DNS{}, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing, installer.StatusSkipped)

	// The key on the admin machine: 0600 in a 0700 folder.
	keyPath := TSIGKeyPath(inv, s.KeyName)
	st, err := os.Stat(keyPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("local key %s: %v %v", keyPath, st, err)
	}
	if dst, _ := os.Stat(filepath.Dir(keyPath)); dst.Mode().Perm() != 0o700 {
		t.Errorf("secrets folder mode %v", dst.Mode().Perm())
	}
	raw, _ := os.ReadFile(keyPath)
	key, err := ParseBINDKey(raw)
	if err != nil {
		t.Fatal(err)
	}

	// Primaries: key file 0640 root:bind with the same key, included, policy.
	paths := PrimaryPaths(s)
	for _, h := range []*testbed.Host{dns1, dns2} {
		if got := dnsFileAttrs(t, ctx, h, paths.KeyFile); got != "640 root:bind" {
			t.Errorf("%s: %s is %s", h.Name, paths.KeyFile, got)
		}
		if got := dnsReadFile(t, h, paths.KeyFile); got != string(key.BINDFile()) {
			t.Errorf("%s: key file differs from the secrets folder's", h.Name)
		}
		if got := dnsReadFile(t, h, paths.GridhaConf); !strings.Contains(got, "grant topbdii-update name "+rrName+". A AAAA;") {
			t.Errorf("%s: named.conf.gridha:\n%s", h.Name, got)
		}
		if got := dnsReadFile(t, h, paths.LocalConf); strings.Count(got, `include "/etc/bind/named.conf.gridha";`) != 1 {
			t.Errorf("%s: named.conf.local:\n%s", h.Name, got)
		}
	}
	// Updater: key 0600 root:root, configuration naming both primaries.
	if got := dnsFileAttrs(t, ctx, dns2, s.Updater.KeyPath); got != "600 root:root" {
		t.Errorf("updater key is %s", got)
	}
	conf := dnsReadFile(t, dns2, s.Updater.ConfigPath)
	for _, want := range []string{"primary = " + srv1, "primary = " + srv2, "ttl = 45s", "tsig_key_file = " + s.Updater.KeyPath,
		"bdii = bdii2 " + bed.SpareAddr(1) + " 2171", "name = " + rrName + "."} {
		if !strings.Contains(conf, want+"\n") {
			t.Errorf("dns-updater.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, key.Secret) {
		t.Error("the secret is in dns-updater.conf")
	}

	// The record set on both primaries, TTL 45.
	wantRR := []string{bed.SpareAddr(0), bed.SpareAddr(1)}
	sort.Strings(wantRR)
	for _, srv := range []string{srv1, srv2} {
		got, ttl := dnsLookupA(t, ctx, srv, rrName)
		if strings.Join(got, " ") != strings.Join(wantRR, " ") || ttl != 45 {
			t.Errorf("%s: %s A = %v TTL %d, want %v TTL 45", srv, rrName, got, ttl, wantRR)
		}
		// An IPv6 BDII is an AAAA record of the same name.
		q := new(dns.Msg)
		q.SetQuestion(rrName+".", dns.TypeAAAA)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).ExchangeContext(ctx, q, srv)
		if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "2001:db8::10" || r.Answer[0].Header().Ttl != 45 {
			t.Errorf("%s: %s AAAA: %v %v", srv, rrName, r, err)
		}
	}

	// A signed update adds and removes an A record of the round-robin name.
	extra := bed.SpareAddr(2)
	if rc := dnsUpdate(t, ctx, srv1, dnsZone, rrName, extra, true, key); rc != dns.RcodeSuccess {
		t.Fatalf("signed add: %s", dns.RcodeToString[rc])
	}
	if got, _ := dnsLookupA(t, ctx, srv1, rrName); len(got) != 3 {
		t.Errorf("after signed add: %v", got)
	}
	if rc := dnsUpdate(t, ctx, srv1, dnsZone, rrName, extra, false, key); rc != dns.RcodeSuccess {
		t.Fatalf("signed remove: %s", dns.RcodeToString[rc])
	}
	if got, _ := dnsLookupA(t, ctx, srv1, rrName); strings.Join(got, " ") != strings.Join(wantRR, " ") {
		t.Errorf("after signed remove: %v", got)
	}
	// Refused: another name, unsigned, another key.
	other, _ := GenerateTSIGKey("topbdii-update")
	stranger, _ := GenerateTSIGKey("someone-else")
	for _, c := range []struct {
		what string
		name string
		key  TSIGKey
	}{
		{"another name", "www." + dnsZone, key},
		{"unsigned", rrName, TSIGKey{}},
		{"same key name, other secret", rrName, other},
		{"unknown key", rrName, stranger},
	} {
		rc := dnsUpdate(t, ctx, srv1, dnsZone, c.name, extra, true, c.key)
		if rc != dns.RcodeRefused && rc != dns.RcodeNotAuth {
			t.Errorf("%s: rcode %s, want REFUSED or NOTAUTH", c.what, dns.RcodeToString[rc])
		}
	}
	if got, _ := dnsLookupA(t, ctx, srv1, rrName); len(got) != 2 {
		t.Errorf("after refused updates: %v", got)
	}
	if got, _ := dnsLookupA(t, ctx, srv1, "www."+dnsZone); len(got) != 0 {
		t.Errorf("www was added: %v", got)
	}

	// Second run changes nothing, and writes nothing.
	snaps := map[*testbed.Host]map[string]string{}
	for _, h := range []*testbed.Host{dns1, dns2} {
		if snaps[h], err = h.Snapshot(testbed.BINDLog); err != nil {
			t.Fatal(err)
		}
	}
	rep = bedRun(t, ctx, inv, DNS{}, Options{}, installer.ModeApply)
	for _, r := range rep.Results {
		if r.Status != installer.StatusOK {
			t.Errorf("second run: %s %s: %s %s", r.Host, r.Step, r.Status, r.Message)
		}
	}
	for h, before := range snaps {
		after, err := h.Snapshot(testbed.BINDLog)
		if err != nil {
			t.Fatal(err)
		}
		if d := testbed.DiffSnapshots(before, after); len(d) > 0 {
			t.Errorf("second run wrote to %s: %v", h.Name, d)
		}
	}

	// verify reports a key changed by hand on a primary.
	if err := dns1.WriteFile(paths.KeyFile, other.BINDFile(), 0o640); err != nil {
		t.Fatal(err)
	}
	rep = bedRun(t, ctx, inv, DNS{}, Options{ReadOnly: true}, installer.ModeAudit)
	st1 := statuses(rep)
	if got := st1["dns1 file "+paths.KeyFile]; got != installer.StatusDrift {
		t.Errorf("verify after a hand-made key change: %s", got)
	}
	if got := st1["dns2 file "+paths.KeyFile]; got != installer.StatusOK {
		t.Errorf("verify dns2 key: %s", got)
	}
	for _, r := range rep.Results {
		for _, txt := range []string{r.Message, r.Diff, r.Expected, r.Found, r.Error, fmt.Sprint(r.Drifted)} {
			if strings.Contains(txt, key.Secret) || strings.Contains(txt, other.Secret) {
				t.Errorf("a secret in the report: %s %s", r.Host, r.Step)
			}
		}
	}

	// --rotate-key, 5 times, while an unprivileged user of each host opens
	// every file the moment it appears in the key folders: it reads no key
	// (it does read the public named.conf.gridha, so it would see a leak).
	// Then a new key on every primary and updater; the old one is refused.
	var watchers []*testbed.Watcher
	for _, w := range []struct {
		h    *testbed.Host
		dirs []string
	}{{dns1, []string{"/etc/bind"}}, {dns2, []string{"/etc/bind", filepath.Dir(s.Updater.KeyPath)}}} {
		wt, err := w.h.StartWatcher(ctx, w.dirs...)
		if err != nil {
			t.Fatal(err)
		}
		watchers = append(watchers, wt)
	}
	secrets := map[string]bool{key.Secret: true, other.Secret: true}
	for range 5 {
		rep = bedRun(t, ctx, inv, DNS{}, Options{RotateKey: true}, installer.ModeApply)
		requireNo(t, rep, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing, installer.StatusSkipped)
		raw, _ := os.ReadFile(keyPath)
		k, err := ParseBINDKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		secrets[k.Secret] = true
	}
	if len(secrets) != 7 {
		t.Errorf("5 rotations made %d distinct keys, want 5 new ones", len(secrets)-2)
	}
	for i, wt := range watchers {
		wrep, err := wt.Stop()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("watcher %d: %d events, %d opened, %d refused", i, wrep.Events, wrep.Opened, wrep.Denied)
		for sec := range secrets {
			if wrep.Contains(sec) {
				t.Errorf("watcher %d read a TSIG secret", i)
			}
		}
		if !wrep.Contains("update-policy") {
			t.Errorf("watcher %d did not read named.conf.gridha: it would not see a leak either", i)
		}
	}
	raw, _ = os.ReadFile(keyPath)
	newKey, err := ParseBINDKey(raw)
	if err != nil || newKey.Secret == key.Secret {
		t.Fatalf("rotation kept the key (%v)", err)
	}
	for _, f := range []struct {
		h    *testbed.Host
		path string
	}{{dns1, paths.KeyFile}, {dns2, paths.KeyFile}, {dns2, s.Updater.KeyPath}} {
		if got := dnsReadFile(t, f.h, f.path); got != string(newKey.BINDFile()) {
			t.Errorf("%s:%s does not hold the new key", f.h.Name, f.path)
		}
	}
	for _, srv := range []string{srv1, srv2} {
		if rc := dnsUpdate(t, ctx, srv, dnsZone, rrName, extra, true, key); rc != dns.RcodeNotAuth && rc != dns.RcodeRefused {
			t.Errorf("%s: old key after rotation: %s", srv, dns.RcodeToString[rc])
		}
		if rc := dnsUpdate(t, ctx, srv, dnsZone, rrName, extra, false, newKey); rc != dns.RcodeSuccess {
			t.Errorf("%s: new key after rotation: %s", srv, dns.RcodeToString[rc])
		}
	}

	// update_via: controller reads (and would send) straight to port 53 of
	// each primary: the audit agrees with the SSH-tunnelled path.
	inv.Roles.DNS.UpdateVia = "controller"
	for _, r := range bedRun(t, ctx, inv, DNS{}, Options{ReadOnly: true}, installer.ModeAudit).Results {
		if r.Status != installer.StatusOK {
			t.Errorf("audit via the controller: %s %s: %s %s", r.Host, r.Step, r.Status, r.Message)
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
