package dnsupdater

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridha/gridha/testbed"
	"github.com/miekg/dns"
)

// The integration tests run real BDIIs (Debian bdii: slapd + bdii-update)
// and real BIND9 primaries on a test bed, and an updater in the test process
// (the controller, which reaches every bed host). Most drive Cycle directly,
// so "removed within two check intervals" is asserted as "removed by the
// second cycle after the death" without timing anything; the daemon loop is
// exercised by the two-updater test and measured by BenchmarkDNSRemoval.

const (
	itZone    = "core.testbed.gridha."
	itName    = "topbdii.core.testbed.gridha."
	itKeyName = "gridha-topbdii."
)

type fixture struct {
	t       testing.TB
	bed     *testbed.Bed
	ns      []*testbed.Host
	bdiis   []*testbed.Host
	keyFile string
	dir     string
}

// newFixture brings up primaries ns1..nsP and BDIIs bdii1..bdiiB, each
// primary allowing the key to update the round-robin name.
func newFixture(t testing.TB, primaries, bdiis int) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test")
	}
	var names []string
	for i := 1; i <= primaries; i++ {
		names = append(names, fmt.Sprintf("ns%d", i))
	}
	for i := 1; i <= bdiis; i++ {
		names = append(names, fmt.Sprintf("bdii%d", i))
	}
	b := testbed.New(t, names...)
	f := &fixture{t: t, bed: b, dir: t.TempDir()}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	secret := base64.StdEncoding.EncodeToString(raw)
	// The key file in BIND's format, as `gridha install dns` writes it.
	f.keyFile = filepath.Join(f.dir, "dns-updater.key")
	key := fmt.Sprintf("key \"%s\" {\n\talgorithm hmac-sha256;\n\tsecret \"%s\";\n};\n", strings.TrimSuffix(itKeyName, "."), secret)
	if err := os.WriteFile(f.keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, primaries+bdiis)
	for i := 1; i <= primaries; i++ {
		h := b.MustHost(fmt.Sprintf("ns%d", i))
		f.ns = append(f.ns, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.StartBIND(ctx, itZone); err != nil {
				errs <- err
				return
			}
			if err := h.AllowBINDUpdates(ctx, itZone, itKeyName, secret, itName); err != nil {
				errs <- err
			}
		}()
	}
	for i := 1; i <= bdiis; i++ {
		h := b.MustHost(fmt.Sprintf("bdii%d", i))
		f.bdiis = append(f.bdiis, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.StartBDII(ctx, testbed.BDIIOptions{BreatheTime: time.Second}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return f
}

// config is an updater configuration for the fixture, parsed from text like
// an admin's file.
func (f *fixture) config(stateName string, extra string) *Config {
	f.t.Helper()
	c, err := ParseConfig("it.conf", []byte(f.configText(stateName, extra)))
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// once runs `gridha dns-updater run --once` as a process (a Nagios check
// with its own state file) and returns its output and exit code.
func (f *fixture) once(t *testing.T, stateName string) (string, int) {
	t.Helper()
	p := filepath.Join(f.dir, stateName+".conf")
	if err := os.WriteFile(p, []byte(f.configText(stateName, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := gridha(t, "dns-updater", "run", "--once", "-c", p).Output()
	t.Logf("--once: %s", out)
	return string(out), exitCode(err)
}

func (f *fixture) configText(stateName string, extra string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "zone = %s\nname = %s\nttl = 30\ntsig_key_file = %s\nstate_file = %s\n",
		itZone, itName, f.keyFile, filepath.Join(f.dir, stateName))
	for _, h := range f.ns {
		fmt.Fprintf(&sb, "primary = %s:53\n", h.Addr)
	}
	for _, h := range f.bdiis {
		fmt.Fprintf(&sb, "bdii = %s %s 2170\n", h.Name, h.Addr)
	}
	// Test defaults, unless extra sets the key.
	// Generous timeouts: the machine is shared with other tests (load
	// average above 10 on 2 cores happens). Cycle-driven tests do not wait
	// for the interval.
	for _, l := range []string{"interval = 10s", "check_timeout = 5s", "dns_timeout = 5s", "fail_after = 2", "recover_after = 2"} {
		k, _, _ := strings.Cut(l, " ")
		if !strings.Contains("\n"+extra, "\n"+k+" ") {
			sb.WriteString(l + "\n")
		}
	}
	sb.WriteString(extra)
	return sb.String()
}

// logBuffer collects an updater's log for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (f *fixture) updater(c *Config) (*Updater, *logBuffer) {
	f.t.Helper()
	key, err := c.LoadKey()
	if err != nil {
		f.t.Fatal(err)
	}
	lb := &logBuffer{}
	return New(c, key, nil, slog.New(slog.NewTextHandler(lb, nil))), lb
}

// records asks primary h (a real DNS query over TCP) for the name's A set.
func records(ctx context.Context, h *testbed.Host) ([]string, error) {
	q := new(dns.Msg)
	q.SetQuestion(itName, dns.TypeA)
	q.RecursionDesired = false
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).ExchangeContext(ctx, q, net.JoinHostPort(h.Addr, "53"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
			if a.Hdr.Ttl != 30 {
				return nil, fmt.Errorf("%s: TTL %d, want 30", a.A, a.Hdr.Ttl)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func addrs(hs ...*testbed.Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Addr)
	}
	slices.SortFunc(out, func(a, b string) int { return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b)) })
	return out
}

func (f *fixture) wantRecords(ctx context.Context, h *testbed.Host, want []string, when string) {
	f.t.Helper()
	got, err := records(ctx, h)
	if err != nil {
		f.t.Fatalf("%s: %s: %v", when, h.Name, err)
	}
	if !slices.Equal(got, want) {
		f.t.Fatalf("%s: %s serves %v, want %v", when, h.Name, got, want)
	}
}

func cycle(ctx context.Context, t testing.TB, u *Updater, c *Config) *State {
	t.Helper()
	st := u.Cycle(ctx)
	if err := SaveState(c.StateFile, st); err != nil {
		t.Fatal(err)
	}
	t.Logf("cycle: %s", st.NagiosLine())
	return st
}

// TestBDIIDeathAndRecovery: a stopped BDII leaves DNS by the second cycle
// (fail_after 2) on every primary, with the reason logged; restarted, it
// comes back after recover_after (2) good checks; a foreign record is
// removed; the TTL is the configured one.
func TestBDIIDeathAndRecovery(t *testing.T) {
	f := newFixture(t, 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// A site plugin (Nagios exit codes) beside the LDAP check.
	plugin := filepath.Join(f.dir, "check_bdii_glue")
	script := "#!/bin/sh\nif ldapsearch -x -LLL -o nettimeout=1 -H ldap://$1:$2 -b o=glue -s base dn >/dev/null 2>&1; " +
		"then echo \"OK - o=glue answers on $1\"; exit 0; fi\necho \"CRITICAL - o=glue does not answer on $1\"; exit 2\n"
	if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := f.config("a.state", "query_base = o=grid\nmin_entries = 5\ncheck_command = glue "+plugin+" {address} {port}\n")
	u, logs := f.updater(c)
	b1, b2 := f.bdiis[0], f.bdiis[1]

	st := cycle(ctx, t, u, c)
	if st.Status != OK {
		t.Fatalf("first cycle: %s\n%+v\n%s", st.NagiosLine(), st.BDIIs, logs)
	}
	for _, b := range st.BDIIs {
		if !strings.Contains(b.Check, "o=grid answers") || !strings.Contains(b.Check, "glue: OK - o=glue answers on "+b.Address) {
			t.Errorf("%s: check message %q", b.Name, b.Check)
		}
	}
	for _, ns := range f.ns {
		f.wantRecords(ctx, ns, addrs(b1, b2), "first cycle")
	}

	// A record no BDII owns (set by hand) goes.
	foreign := f.bed.SpareAddr(1)
	if err := u.dns.Update(ctx, f.ns[0].Addr+":53", RecordSet{}, []netip.Addr{netip.MustParseAddr(foreign)}, Diff{}); err == nil {
		t.Fatal("an update whose prerequisite (empty set) is false was accepted")
	}
	cur, err := u.dns.Read(ctx, f.ns[0].Addr+":53")
	if err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(cur.Addrs), netip.MustParseAddr(foreign))
	if err := u.dns.Update(ctx, f.ns[0].Addr+":53", cur, all, ComputeDiff(cur, all, 30)); err != nil {
		t.Fatal(err)
	}
	f.wantRecords(ctx, f.ns[0], append(addrs(b1, b2), foreign), "foreign record added by hand")
	// A dry run says what it would do and does not do it.
	ud, _ := f.updater(c)
	ud.DryRun = true
	dst := ud.Cycle(ctx)
	if ch := dst.Primaries[0].Changes; len(ch) != 1 || ch[0].Op != "would remove" || ch[0].Address != foreign {
		t.Errorf("dry run changes: %+v", ch)
	}
	f.wantRecords(ctx, f.ns[0], append(addrs(b1, b2), foreign), "after a dry run")
	cycle(ctx, t, u, c)
	f.wantRecords(ctx, f.ns[0], addrs(b1, b2), "cycle after the foreign record")
	if !strings.Contains(logs.String(), "not the address of a configured BDII") {
		t.Errorf("removal of the foreign record not logged with its reason:\n%s", logs)
	}

	// Death: bdii1 stops answering.
	if err := b1.StopBDII(ctx); err != nil {
		t.Fatal(err)
	}
	// Its failed check is re-checked at once (a short follow-up, not a
	// whole interval later): the second failure (fail_after 2) takes it
	// out in the same cycle.
	st = cycle(ctx, t, u, c)
	for _, ns := range f.ns {
		f.wantRecords(ctx, ns, addrs(b2), "the cycle that saw it fail twice (check and follow-up)")
	}
	if st.Status != Warning || !strings.Contains(st.Message, "1/2 BDIIs in service") {
		t.Errorf("after removal: %s", st.NagiosLine())
	}
	if len(st.Primaries[0].Changes) != 1 || !strings.Contains(st.Primaries[0].Changes[0].Reason, "2 consecutive failed checks") {
		t.Errorf("change not recorded with its reason: %+v", st.Primaries[0].Changes)
	}
	st = cycle(ctx, t, u, c)
	for _, ns := range f.ns {
		f.wantRecords(ctx, ns, addrs(b2), "next cycle")
	}
	if len(st.Primaries[0].Changes) != 0 {
		t.Errorf("next cycle changed: %+v", st.Primaries[0].Changes)
	}
	if !strings.Contains(logs.String(), `msg="DNS change"`) || !strings.Contains(logs.String(), "address="+b1.Addr) ||
		!strings.Contains(logs.String(), "connection refused") {
		t.Errorf("removal not logged with the check's reason:\n%s", logs)
	}

	// A new updater without history (another site's, or this one after
	// losing its state file) does not put the dead BDII back.
	c2 := f.config("fresh.state", "")
	u2, logs2 := f.updater(c2)
	cycle(ctx, t, u2, c2)
	for _, ns := range f.ns {
		f.wantRecords(ctx, ns, addrs(b2), "a fresh updater's first cycle")
	}
	if !strings.Contains(logs2.String(), "BDII starts out of service") {
		t.Errorf("fresh updater did not seed bdii1 from DNS:\n%s", logs2)
	}

	// Recovery: back after recover_after (2) good checks.
	if err := b1.StartBDII(ctx, testbed.BDIIOptions{BreatheTime: time.Second}); err != nil {
		t.Fatal(err)
	}
	cycle(ctx, t, u, c)
	for _, ns := range f.ns {
		f.wantRecords(ctx, ns, addrs(b2), "first good check (recover_after 2)")
	}
	st = cycle(ctx, t, u, c)
	for _, ns := range f.ns {
		f.wantRecords(ctx, ns, addrs(b1, b2), "second good check")
	}
	if st.Status != OK {
		t.Errorf("after recovery: %s", st.NagiosLine())
	}

	// status reads the state file: exit code and report.
	var out bytes.Buffer
	if code := status("", c.StateFile, time.Now(), &out, &out); code != 0 || !strings.Contains(out.String(), "DNS-UPDATER OK") {
		t.Errorf("status: exit %d\n%s", code, out.String())
	}
}

// TestStaleBDII: a BDII whose bdii-update stopped (slapd still answers, the
// UpdateStats modifyTimestamp ages past the freshness threshold) is removed.
func TestStaleBDII(t *testing.T) {
	f := newFixture(t, 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const fresh = 20 * time.Second // bdii-update refreshes every ~2 s; leave room for a loaded machine
	c := f.config("s.state", fmt.Sprintf("freshness = %s\n", fresh))
	u, logs := f.updater(c)
	b1, b2 := f.bdiis[0], f.bdiis[1]
	cycle(ctx, t, u, c)
	f.wantRecords(ctx, f.ns[0], addrs(b1, b2), "first cycle")

	if err := b2.StopBDIIUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait (bounded) until bdii2's UpdateStats is older than the threshold.
	for i := 0; ; i++ {
		_, mod, err := b2.BDIIStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(mod) > fresh+time.Second {
			break
		}
		if i > 120 {
			t.Fatalf("UpdateStats of bdii2 not stale after %d s (modified %s)", i/2, mod)
		}
		time.Sleep(500 * time.Millisecond)
	}
	cycle(ctx, t, u, c)
	st := cycle(ctx, t, u, c)
	f.wantRecords(ctx, f.ns[0], addrs(b1), "two cycles with a stale bdii2")
	for _, b := range st.BDIIs {
		if b.Name == "bdii2" && (b.Healthy || !strings.Contains(b.Check, "stale")) {
			t.Errorf("bdii2 check: %+v", b)
		}
	}
	if !strings.Contains(logs.String(), "UpdateStats is stale") {
		t.Errorf("stale reason not logged:\n%s", logs)
	}

	// bdii-update back: fresh again, re-added after recover_after (2).
	if err := b2.StartBDIIUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ { // bounded wait for a fresh UpdateStats
		if _, mod, err := b2.BDIIStats(ctx); err == nil && time.Since(mod) < 3*time.Second {
			break
		}
		if i > 60 {
			t.Fatal("bdii2's UpdateStats not fresh 30 s after bdii-update restarted")
		}
		time.Sleep(500 * time.Millisecond)
	}
	cycle(ctx, t, u, c)
	cycle(ctx, t, u, c)
	f.wantRecords(ctx, f.ns[0], addrs(b1, b2), "bdii2 fresh again")

	// A hung slapd (SIGSTOP: the kernel still accepts the connection, no
	// LDAP answer comes) fails on the check timeout and is removed too.
	if out, err := b1.Sh(ctx, "kill -STOP $(cat "+testbed.BDIISlapdPID+")"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	defer b1.Sh(context.Background(), "kill -CONT $(cat "+testbed.BDIISlapdPID+")")
	cycle(ctx, t, u, c)
	st = cycle(ctx, t, u, c)
	f.wantRecords(ctx, f.ns[0], addrs(b2), "two cycles with a hung bdii1")
	if !strings.Contains(st.BDIIs[0].Check, "no answer within the check timeout") {
		t.Errorf("hung bdii1 check: %q", st.BDIIs[0].Check)
	}
}

// TestAllDownKeepsRecords: when no BDII is healthy the records stay and the
// status is CRITICAL (the Nagios line, the state file and `status`).
func TestAllDownKeepsRecords(t *testing.T) {
	f := newFixture(t, 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := f.config("d.state", "")
	u, logs := f.updater(c)
	cycle(ctx, t, u, c)
	both := addrs(f.bdiis...)
	f.wantRecords(ctx, f.ns[0], both, "first cycle")
	// A Nagios check: `run --once` with its own state file says what
	// this cycle's checks found, whatever the damping: all up OK, one
	// down WARNING, all down CRITICAL (the first time it sees them down).
	if out, code := f.once(t, "nagios.state"); code != 0 || !strings.HasPrefix(out, "DNS-UPDATER OK") {
		t.Errorf("--once, all up: exit %d, %s", code, out)
	}
	for i, b := range f.bdiis {
		if err := b.StopBDII(ctx); err != nil {
			t.Fatal(err)
		}
		want, wantCode := "DNS-UPDATER WARNING", 1
		if i == len(f.bdiis)-1 {
			want, wantCode = "DNS-UPDATER CRITICAL", 2
		}
		if out, code := f.once(t, "nagios.state"); code != wantCode || !strings.HasPrefix(out, want) {
			t.Errorf("--once, %d of %d down: exit %d, %s; want exit %d, %s", i+1, len(f.bdiis), code, out, wantCode, want)
		}
	}
	// The --once runs above are real cycles: they took bdii1 out while
	// bdii2 was up. With every BDII down the records stay as they are.
	kept, err := records(ctx, f.ns[0])
	if err != nil {
		t.Fatal(err)
	}
	var st *State
	for i := 0; i < 4; i++ {
		st = cycle(ctx, t, u, c)
		f.wantRecords(ctx, f.ns[0], kept, fmt.Sprintf("cycle %d with every BDII down", i+1))
	}
	if st.Status != Critical || !strings.Contains(st.Message, "records kept") {
		t.Errorf("all down: %s", st.NagiosLine())
	}
	if !strings.Contains(logs.String(), "CRITICAL: no BDII is healthy") {
		t.Errorf("not said loudly:\n%s", logs)
	}
	var out bytes.Buffer
	if code := status("", c.StateFile, time.Now(), &out, &out); code != 2 || !strings.Contains(out.String(), "CRITICAL") {
		t.Errorf("status: exit %d\n%s", code, out.String())
	}
	// One comes back: it is the only one left after recover_after... and the
	// dead one is removed in the same update (never an empty set).
	if err := f.bdiis[0].StartBDII(ctx, testbed.BDIIOptions{BreatheTime: time.Second}); err != nil {
		t.Fatal(err)
	}
	cycle(ctx, t, u, c)
	f.wantRecords(ctx, f.ns[0], kept, "first good check of bdii1")
	st = cycle(ctx, t, u, c)
	f.wantRecords(ctx, f.ns[0], addrs(f.bdiis[0]), "bdii1 back in service")
	if st.Status != Warning {
		t.Errorf("one of two back: %s", st.NagiosLine())
	}
}

// TestPrimaryDown: with one primary down the other is still updated; when it
// comes back it is reconciled (the IBERGRID drift).
func TestPrimaryDown(t *testing.T) {
	f := newFixture(t, 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := f.config("p.state", "")
	u, logs := f.updater(c)
	ns1, ns2 := f.ns[0], f.ns[1]
	b1, b2 := f.bdiis[0], f.bdiis[1]
	cycle(ctx, t, u, c)
	f.wantRecords(ctx, ns2, addrs(b1, b2), "first cycle")

	if err := ns2.StopBIND(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b1.StopBDII(ctx); err != nil {
		t.Fatal(err)
	}
	cycle(ctx, t, u, c)
	st := cycle(ctx, t, u, c)
	f.wantRecords(ctx, ns1, addrs(b2), "bdii1 dead, ns2 down")
	if st.Status != Warning || !strings.Contains(st.Message, "1/2 primaries in sync") || st.Primaries[1].Error == "" {
		t.Errorf("ns2 down: %s %+v", st.NagiosLine(), st.Primaries)
	}
	if err := ns2.StartBIND(ctx, itZone); err != nil {
		t.Fatal(err)
	}
	f.wantRecords(ctx, ns2, addrs(b1, b2), "ns2 back, before a cycle (drifted)")
	st = cycle(ctx, t, u, c)
	f.wantRecords(ctx, ns2, addrs(b2), "ns2 reconciled")
	f.wantRecords(ctx, ns1, addrs(b2), "ns1 unchanged")
	if len(st.Primaries[1].Changes) != 1 || st.Primaries[1].Changes[0].Op != "remove" {
		t.Errorf("ns2 reconcile changes: %+v", st.Primaries[1].Changes)
	}
	if len(st.Primaries[0].Changes) != 0 {
		t.Errorf("ns1 changed again: %+v\n%s", st.Primaries[0].Changes, logs)
	}
}

// TestTwoUpdaters: two updater daemons (one per site) run at once against
// the same primaries; after a BDII dies and comes back, both primaries hold
// the correct set and neither updater keeps changing it.
func TestTwoUpdaters(t *testing.T) {
	f := newFixture(t, 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cs := []*Config{f.config("u1.state", ""), f.config("u2.state", "")}
	var logs []*logBuffer
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, c := range cs {
		c.Interval, c.CheckTimeout, c.DNSTimeout = 2*time.Second, 1500*time.Millisecond, 2*time.Second
		u, lb := f.updater(c)
		logs = append(logs, lb)
		wg.Add(1)
		go func() { defer wg.Done(); _ = u.Run(runCtx) }()
	}
	defer func() { stop(); wg.Wait() }()

	// waitAll waits (bounded) until every primary serves want and both
	// updaters' last states say so.
	waitAll := func(want []string, what string) {
		t.Helper()
		for i := 0; ; i++ {
			ok := true
			for _, ns := range f.ns {
				if got, err := records(ctx, ns); err != nil || !slices.Equal(got, want) {
					ok = false
				}
			}
			for _, c := range cs {
				st, err := LoadState(c.StateFile)
				if err != nil || st == nil || len(st.Primaries) != 2 || !slices.Equal(st.Primaries[0].Records, want) ||
					!slices.Equal(st.Primaries[1].Records, want) {
					ok = false
				}
			}
			if ok {
				return
			}
			if i > 300 {
				t.Fatalf("%s: not converged on %v after 60 s\nupdater 1:\n%s\nupdater 2:\n%s", what, want, logs[0], logs[1])
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	b1, b2 := f.bdiis[0], f.bdiis[1]
	waitAll(addrs(b1, b2), "start")
	if err := b2.StopBDII(ctx); err != nil {
		t.Fatal(err)
	}
	waitAll(addrs(b1), "bdii2 dead")
	if err := b2.StartBDII(ctx, testbed.BDIIOptions{BreatheTime: time.Second}); err != nil {
		t.Fatal(err)
	}
	waitAll(addrs(b1, b2), "bdii2 back")
	// No fighting: a few more cycles of both change nothing.
	before := strings.Count(logs[0].String(), `msg="DNS change"`) + strings.Count(logs[1].String(), `msg="DNS change"`)
	time.Sleep(5 * time.Second)
	after := strings.Count(logs[0].String(), `msg="DNS change"`) + strings.Count(logs[1].String(), `msg="DNS change"`)
	if after != before {
		t.Errorf("updaters still changing DNS after converging (%d -> %d changes)\n%s\n%s", before, after, logs[0], logs[1])
	}
	for _, ns := range f.ns {
		f.wantRecords(ctx, ns, addrs(b1, b2), "end")
	}
	// Clean shutdown: Run returns and leaves a "stopped" state.
	stop()
	wg.Wait()
	for _, c := range cs {
		st, err := LoadState(c.StateFile)
		if err != nil || st == nil || !st.Stopped {
			t.Errorf("%s after shutdown: %+v %v", c.StateFile, st, err)
		}
	}
}
