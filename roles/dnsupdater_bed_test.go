package roles

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gridha/gridha/installer"
	sshx "github.com/gridha/gridha/installer/ssh"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
)

// buildGridha builds the gridha binary the updater hosts get.
func dnsBuildGridha(t *testing.T, ctx context.Context) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), "gridha")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/gridha/gridha/cmd/gridha")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build gridha: %v\n%s", err, out)
	}
	return bin
}

// waitA waits (bounded) until server's A set for name equals want.
func dnsWaitA(t *testing.T, ctx context.Context, server, name string, want []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var got []string
	for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
		got, _ = dnsLookupA(t, ctx, server, name)
		if strings.Join(got, " ") == strings.Join(want, " ") {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s at %s: %v, want %v within %v", name, server, got, want, within)
}

// TestDNSUpdaterServiceOnBed installs the real dns-updater service on a
// primary and checks that it updates DNS with the key gridha gave it, before
// and after --rotate-key, and through a rotation with the other primary
// unreachable: updates keep working during and after, the next run with
// the primary back finishes the rotation, the old key is refused then.
func TestDNSUpdaterServiceOnBed(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bed := testbed.New(t, "dns1", "dns2", "bdii1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dns1, dns2, bdii1 := bed.MustHost("dns1"), bed.MustHost("dns2"), bed.MustHost("bdii1")
	bin := dnsBuildGridha(t, ctx)
	for _, h := range []*testbed.Host{dns1, dns2} {
		if err := h.StartBIND(ctx, dnsZone); err != nil {
			t.Fatal(err)
		}
	}
	// A primary that does not serve the zone yet: gridha creates the zone
	// file (SOA, NS) and the zone statement.
	zf := testbed.BINDZoneFile(dnsZone)
	if out, err := dns1.Sh(ctx, "echo '// nothing yet' > "+testbed.BINDGridhaConf+" && rndc reconfig && rm -f "+zf+" "+zf+".jnl"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := bdii1.StartBDII(ctx, testbed.BDIIOptions{}); err != nil {
		t.Fatal(err)
	}
	ghost := bed.SpareAddr(0) // a BDII that does not answer
	body := bed.HostsYAML(map[string][]string{"dns1": {"dns"}, "dns2": {"dns"}}) + fmt.Sprintf(`
roles:
  dns:
    zone: %s
    name: topbdii
    ttl: 30
    primaries: [dns1, dns2]
    updaters: [dns1]
    bdiis:
      - {name: bdii1}
      - {name: ghost, address: %s}
    updater:
      binary_source: %s
      interval: 2
      check_timeout: 1
      dns_timeout: 1
      fail_after: 1
      recover_after: 1
`, dnsZone, ghost, bin)
	inv, err := inventory.Load(bed.WriteInventory(t, body))
	if err != nil {
		t.Fatal(err)
	}
	u := inv.Roles.DNS.Updater
	rrName := "topbdii." + dnsZone
	srv := net.JoinHostPort(dns1.Addr, "53")

	rep := bedRun(t, ctx, inv, DNS{}, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing, installer.StatusSkipped)
	if got := dnsFileAttrs(t, ctx, dns1, zf); got != "644 bind:bind" {
		t.Errorf("zone file %s is %s", zf, got)
	}
	soa := new(dns.Msg)
	soa.SetQuestion(dnsZone+".", dns.TypeNS)
	if r, _, err := (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).ExchangeContext(ctx, soa, srv); err != nil ||
		len(r.Answer) != 2 || r.Answer[0].(*dns.NS).Ns+" "+r.Answer[1].(*dns.NS).Ns != dns1.Hostname+". "+dns2.Hostname+"." &&
		r.Answer[1].(*dns.NS).Ns+" "+r.Answer[0].(*dns.NS).Ns != dns1.Hostname+". "+dns2.Hostname+"." {
		t.Errorf("NS of the zone gridha created: %v %v", r, err)
	}
	if out, err := dns1.Exec(ctx, "/etc/init.d/"+u.ServiceName, "status"); err != nil {
		t.Fatalf("service status: %v %s", err, out)
	}
	if out, err := dns1.Sh(ctx, "ls /etc/rc2.d/ | grep -c '^S..'"+u.ServiceName+"$"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("not enabled at boot: %q %v", out, err)
	}
	// Started once (not started, then restarted), with a logrotate file.
	if st := statuses(rep)["dns1 restart "+u.ServiceName+" on change"]; st != installer.StatusOK {
		t.Errorf("first install: the restart step says %s, want ok (the service step starts it)", st)
	}
	if out, err := dns1.Sh(ctx, "grep -c 'dns-updater starting' /var/log/"+u.ServiceName+".log"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("first install started the updater %q times (%v), want once", out, err)
	}
	if got := dnsReadFile(t, dns1, "/etc/logrotate.d/"+u.ServiceName); !strings.Contains(got, "/var/log/"+u.ServiceName+".log {") || !strings.Contains(got, "copytruncate") {
		t.Errorf("logrotate file:\n%s", got)
	}
	// The updater, with gridha's key, takes the dead BDII out.
	dnsWaitA(t, ctx, srv, rrName, []string{bdii1.Addr}, 30*time.Second)

	// A second run changes nothing (and does not restart the updater).
	pid1 := dnsReadFile(t, dns1, "/run/"+u.ServiceName+".pid")
	rep = bedRun(t, ctx, inv, DNS{}, Options{}, installer.ModeApply)
	for _, r := range rep.Results {
		if r.Status != installer.StatusOK {
			t.Errorf("second run: %s %s: %s %s", r.Host, r.Step, r.Status, r.Message)
		}
	}

	// --rotate-key: the updater is restarted with the new key and keeps
	// working: put the dead BDII back by hand (new key); it is removed again.
	rep = bedRun(t, ctx, inv, DNS{}, Options{RotateKey: true}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing, installer.StatusSkipped)
	if st := statuses(rep)["dns1 restart "+u.ServiceName+" on change"]; st != installer.StatusChanged {
		t.Errorf("restart after rotation: %s", st)
	}
	if pid2 := dnsReadFile(t, dns1, "/run/"+u.ServiceName+".pid"); pid2 == pid1 {
		t.Error("the updater was not restarted after the key rotation")
	}
	raw, err := os.ReadFile(TSIGKeyPath(inv, inv.Roles.DNS.KeyName))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseBINDKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetUpdate(dnsZone + ".")
	rr, _ := dns.NewRR(fmt.Sprintf("%s. 30 IN A %s", rrName, ghost))
	m.Insert([]dns.RR{rr})
	kn := dns.Fqdn(key.Name)
	m.SetTsig(kn, dns.HmacSHA256, 300, time.Now().Unix())
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 3 * time.Second, TsigSecret: map[string]string{kn: key.Secret}}).ExchangeContext(ctx, m, srv)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("re-adding the dead BDII: %v %v", r, err)
	}
	dnsWaitA(t, ctx, srv, rrName, []string{bdii1.Addr}, 30*time.Second)
	tsigErrors := func(when string) {
		t.Helper()
		if out, err := dns1.Sh(ctx, "grep -ci 'badkey\\|notauth\\|badsig\\|bad authentication' /var/log/"+u.ServiceName+".log || true"); err == nil && strings.TrimSpace(out) != "0" {
			log, _ := dns1.ReadFile("/var/log/" + u.ServiceName + ".log")
			t.Errorf("%s: the updater met TSIG errors:\n%s", when, log)
		}
	}
	tsigErrors("after the rotation")

	// A rotation with dns2 unreachable: dns1 accepts both keys, but the
	// updater keeps the old key and is not restarted, nothing is
	// dropped, the active key stays; the updater keeps working.
	srv2 := net.JoinHostPort(dns2.Addr, "53")
	oldKey := key
	pid := dnsReadFile(t, dns1, "/run/"+u.ServiceName+".pid")
	if err := dns2.LinkDown(); err != nil {
		t.Fatal(err)
	}
	rep = bedRunReport(t, ctx, inv, Options{RotateKey: true})
	if !rep.Hosts["dns2"].Unreachable {
		t.Errorf("dns2 should be unreachable: %+v", rep.Hosts["dns2"])
	}
	if got := dnsReadFile(t, dns1, "/run/"+u.ServiceName+".pid"); got != pid {
		t.Error("the updater was restarted although primary dns2 did not get the new key")
	}
	if got := dnsReadFile(t, dns1, u.KeyPath); got != string(oldKey.BINDFile()) {
		t.Error("the updater got the new key although primary dns2 does not know it")
	}
	pendingRaw, err := os.ReadFile(PendingTSIGKeyPath(inv, inv.Roles.DNS.KeyName))
	if err != nil {
		t.Fatalf("no pending key after a rotation stopped half-way: %v", err)
	}
	newKey, err := ParseBINDKey(pendingRaw)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(TSIGKeyPath(inv, inv.Roles.DNS.KeyName)); string(raw) != string(oldKey.BINDFile()) {
		t.Error("the active key was replaced by a rotation that did not finish")
	}
	if rc := dnsUpdate(t, ctx, srv, dnsZone, rrName, bed.SpareAddr(3), false, newKey); rc != dns.RcodeSuccess {
		t.Errorf("dns1 during the rotation: new key %s, want accepted", dns.RcodeToString[rc])
	}
	// Updates keep working: the updater (old key) removes a record added by hand.
	if rc := dnsUpdate(t, ctx, srv, dnsZone, rrName, ghost, true, oldKey); rc != dns.RcodeSuccess {
		t.Fatalf("re-adding the dead BDII with the old key during the rotation: %s", dns.RcodeToString[rc])
	}
	dnsWaitA(t, ctx, srv, rrName, []string{bdii1.Addr}, 30*time.Second)
	tsigErrors("during the rotation")

	// dns2 is back: a run without --rotate-key finishes the rotation.
	if err := dns2.LinkUp(); err != nil {
		t.Fatal(err)
	}
	rep = bedRun(t, ctx, inv, DNS{}, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing, installer.StatusSkipped)
	if _, err := os.Stat(PendingTSIGKeyPath(inv, inv.Roles.DNS.KeyName)); !os.IsNotExist(err) {
		t.Errorf("pending key still there after the rotation finished: %v", err)
	}
	if raw, _ := os.ReadFile(TSIGKeyPath(inv, inv.Roles.DNS.KeyName)); string(raw) != string(newKey.BINDFile()) {
		t.Error("the admin machine's key is not the new one")
	}
	if got := dnsReadFile(t, dns1, "/run/"+u.ServiceName+".pid"); got == pid {
		t.Error("the updater was not restarted with the new key")
	}
	for _, h := range []*testbed.Host{dns1, dns2} {
		if got := dnsReadFile(t, h, PrimaryPaths(inv.Roles.DNS).KeyFile); got != string(newKey.BINDFile()) {
			t.Errorf("%s: the key file does not hold only the new key", h.Name)
		}
	}
	for _, sv := range []string{srv, srv2} {
		if rc := dnsUpdate(t, ctx, sv, dnsZone, rrName, ghost, true, oldKey); rc != dns.RcodeNotAuth && rc != dns.RcodeRefused {
			t.Errorf("%s: old key after the rotation: %s, want refused", sv, dns.RcodeToString[rc])
		}
	}
	if rc := dnsUpdate(t, ctx, srv2, dnsZone, rrName, ghost, true, newKey); rc != dns.RcodeSuccess {
		t.Fatalf("dns2: new key after the rotation: %s", dns.RcodeToString[rc])
	}
	dnsWaitA(t, ctx, srv2, rrName, []string{bdii1.Addr}, 30*time.Second)
	tsigErrors("after the rotation finished")
}

// bedRunReport is bedRun (install dns) that lets hosts be unreachable.
func bedRunReport(t *testing.T, ctx context.Context, inv *inventory.Inventory, opts Options) *installer.Report {
	t.Helper()
	plan, err := DNS{}.Plan(inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	d := sshx.NewDialer(inv, sshx.Options{HostKeyPolicy: "strict", SSHConfigFile: "none", AgentSocket: "none"})
	rep, err := installer.Run(ctx, d, plan, installer.RunOptions{Mode: installer.ModeApply, Secrets: &installer.Redactor{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		t.Logf("%s %s: %s %s", r.Host, r.Step, r.Status, r.Message)
	}
	return rep
}
