package dnsupdater

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestDamper(t *testing.T) {
	// fail_after 3, recover_after 2; sequence of check outcomes and the
	// expected service state after each.
	cases := []struct {
		name  string
		seq   string // '+' healthy, '-' failed
		want  string // 'I' in service, 'O' out, after each step
		flips int
	}{
		{"healthy stays", "+++++", "IIIII", 0},
		{"removed after 3 failures", "---", "IIO", 1},
		{"a good check resets the failure count", "--+--+--", "IIIIIIII", 0},
		{"back after 2 good checks", "---++", "IIOOI", 2},
		{"a failure resets the recovery count", "---+-+-++", "IIOOOOOOI", 2},
		{"flapping every check never removes", "-+-+-+-+", "IIIIIIII", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDamper()
			flips := 0
			var got strings.Builder
			for _, c := range tc.seq {
				changed, reason := d.Observe(c == '+', 3, 2)
				if changed {
					flips++
					if reason == "" {
						t.Error("a change without a reason")
					}
				}
				if d.InService {
					got.WriteByte('I')
				} else {
					got.WriteByte('O')
				}
			}
			if got.String() != tc.want || flips != tc.flips {
				t.Errorf("%s: got %s (%d changes), want %s (%d)", tc.seq, got.String(), flips, tc.want, tc.flips)
			}
		})
	}
	d := NewDamper()
	d.Observe(false, 1, 1)
	if d.InService {
		t.Error("fail_after 1: still in service after a failure")
	}
	if changed, _ := d.Observe(true, 1, 1); !changed || !d.InService {
		t.Error("recover_after 1: not back after a good check")
	}
}

func mustAddrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func set(ttl uint32, s ...string) RecordSet {
	var rs RecordSet
	c := &DNSClient{Name: "rr.z.org."}
	for _, a := range mustAddrs(s...) {
		rs.add(c.rr(a, ttl))
	}
	rs.sort()
	return rs
}

func TestComputeDiff(t *testing.T) {
	cur := set(60, "10.0.0.2", "10.0.0.1", "2001:db8::1")
	if got := cur.Strings(); strings.Join(got, ",") != "10.0.0.1,10.0.0.2,2001:db8::1" {
		t.Errorf("sorted set: %v", got)
	}
	d := ComputeDiff(cur, mustAddrs("10.0.0.1", "10.0.0.3", "2001:db8::1"), 60)
	if len(d.Add) != 1 || d.Add[0].String() != "10.0.0.3" || len(d.Remove) != 1 || d.Remove[0].String() != "10.0.0.2" || d.TTL {
		t.Errorf("diff %+v", d)
	}
	if d := ComputeDiff(cur, mustAddrs("10.0.0.1", "10.0.0.2", "2001:db8::1"), 60); !d.Empty() {
		t.Errorf("equal sets: %+v", d)
	}
	if d := ComputeDiff(cur, mustAddrs("10.0.0.1", "10.0.0.2", "2001:db8::1"), 30); !d.TTL || len(d.Add)+len(d.Remove) != 0 {
		t.Errorf("TTL change: %+v", d)
	}
}

func TestUpdateMsg(t *testing.T) {
	c := &DNSClient{Zone: "z.org.", Name: "rr.z.org.", TTL: 60}
	cur := set(60, "10.0.0.1", "10.0.0.2")
	desired := mustAddrs("10.0.0.1")
	m := c.UpdateMsg(cur, desired, ComputeDiff(cur, desired, 60))
	if m.Opcode != dns.OpcodeUpdate || m.Question[0].Name != "z.org." || m.Question[0].Qtype != dns.TypeSOA {
		t.Fatalf("not an update of z.org.: %v", m)
	}
	// Prerequisites: A set is exactly what was read; no AAAA set.
	var pre []string
	for _, rr := range m.Answer {
		pre = append(pre, dns.ClassToString[rr.Header().Class]+" "+dns.TypeToString[rr.Header().Rrtype]+" "+rrData(rr))
	}
	if strings.Join(pre, "|") != "IN A 10.0.0.1|IN A 10.0.0.2|NONE AAAA " {
		t.Errorf("prerequisites: %q", pre)
	}
	var upd []string
	for _, rr := range m.Ns {
		upd = append(upd, dns.ClassToString[rr.Header().Class]+" "+rrData(rr)+" "+strconv.FormatUint(uint64(rr.Header().Ttl), 10))
	}
	if strings.Join(upd, "|") != "NONE 10.0.0.2 0|IN 10.0.0.1 60" {
		t.Errorf("update section: %q", upd)
	}
	// The set read is not modified by building the message.
	if cur.rrs[0].Header().Class != dns.ClassINET || cur.rrs[0].Header().Ttl != 60 {
		t.Errorf("UpdateMsg changed the set read: %v", cur.rrs[0])
	}
	if err := c.Update(context.Background(), "127.0.0.1:1", cur, nil, Diff{}); err == nil || !strings.Contains(err.Error(), "without records") {
		t.Errorf("empty desired set: %v", err)
	}
}

func rrData(rr dns.RR) string {
	switch v := rr.(type) {
	case *dns.A:
		return v.A.String()
	case *dns.AAAA:
		return v.AAAA.String()
	}
	return ""
}

func TestStateFileAndStatus(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "state")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := &State{Time: now, Status: Critical, Message: "no BDII is healthy", Name: "rr.z.org.", Interval: "5s",
		FailAfter: 2, RecoverAfter: 3,
		BDIIs:     []BDIIState{{Name: "b1", Address: "10.0.0.1", Port: 2170, Check: "ldap: refused", Damper: Damper{Fails: 4}}},
		Primaries: []PrimaryState{{Addr: "10.0.0.53:53", Records: []string{"10.0.0.1"}}}}
	if err := SaveState(p, st); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("state file: %v %v", fi, err)
	}
	got, err := LoadState(p)
	if err != nil || got.Status != Critical || got.BDIIs[0].Fails != 4 || got.Primaries[0].Records[0] != "10.0.0.1" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	var out bytes.Buffer
	if code := status("", p, now.Add(10*time.Second), &out, &out); code != 2 ||
		!strings.HasPrefix(out.String(), "DNS-UPDATER CRITICAL - no BDII is healthy | bdiis_in_service=0;;;0;1 primaries_in_sync=1;;;0;1\n") ||
		!strings.Contains(out.String(), "out of service") {
		t.Errorf("status: %d\n%s", code, out.String())
	}
	out.Reset()
	if code := status("", p, now.Add(time.Hour), &out, &out); code != 3 || !strings.Contains(out.String(), "is the updater running?") {
		t.Errorf("stale status: %d\n%s", code, out.String())
	}
	out.Reset()
	if code := status("", filepath.Join(dir, "none"), now, &out, &out); code != 3 || !strings.Contains(out.String(), "has not run yet") {
		t.Errorf("missing state: %d\n%s", code, out.String())
	}
	// Restore takes the damping counts back for the BDIIs still configured.
	c := &Config{Name: "rr.z.org.", BDIIs: []BDII{{Name: "b1", Address: netip.MustParseAddr("10.0.0.1"), Port: 2170}}}
	c.SetDefaults()
	u := New(c, nil, []Check{}, nil)
	got.BDIIs[0].InService = false
	u.Restore(got)
	if d := u.damp["b1/10.0.0.1"]; d.InService || d.Fails != 4 {
		t.Errorf("restored damper: %+v", d)
	}
}

func TestExecCheck(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "check_x")
	script := "#!/bin/sh\necho \"checked $1 $2\"\ncase $1 in ok) exit 0;; warn) exit 1;; crit) exit 2;; slow) sleep 5;; esac\nexit 3\n"
	if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want Status
	}{{"ok", OK}, {"warn", Warning}, {"crit", Critical}, {"other", Unknown}, {"slow", Critical}} {
		c := &ExecCheck{CheckName: "x", Argv: []string{plugin, "{name}", "{address}:{port}"}}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		r := c.Run(ctx, BDII{Name: tc.name, Address: netip.MustParseAddr("10.1.2.3"), Port: 2170})
		cancel()
		if r.Status != tc.want {
			t.Errorf("%s: status %s, want %s (%s)", tc.name, r.Status, tc.want, r.Message)
		}
		if tc.name != "slow" && r.Message != "x: checked "+tc.name+" 10.1.2.3:2170" {
			t.Errorf("%s: message %q", tc.name, r.Message)
		}
		if r.Status.Healthy() != (tc.want == OK || tc.want == Warning) {
			t.Errorf("%s: healthy %v", tc.name, r.Status.Healthy())
		}
	}
}

func TestLDAPCheckUnreachable(t *testing.T) {
	// Nothing listens on port 1 of loopback: refused, CRITICAL, quickly.
	c := &LDAPCheck{Freshness: time.Minute, MinEntries: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r := c.Run(ctx, BDII{Name: "b", Address: netip.MustParseAddr("127.0.0.1"), Port: 1})
	if r.Status != Critical || !strings.Contains(r.Message, "127.0.0.1:1") {
		t.Errorf("%+v", r)
	}
}

func TestGeneralizedTime(t *testing.T) {
	for _, s := range []string{"20110615120723Z", "20110615120723.216201Z"} {
		got, err := parseGeneralizedTime(s)
		if err != nil || got.Format(time.RFC3339) != "2011-06-15T12:07:23Z" {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	if _, err := parseGeneralizedTime("yesterday"); err == nil {
		t.Error("garbage parsed")
	}
}

func TestSeedFromDNS(t *testing.T) {
	c := &Config{Name: "rr.z.org.", BDIIs: []BDII{
		{Name: "b1", Address: netip.MustParseAddr("10.0.0.1")},
		{Name: "b2", Address: netip.MustParseAddr("10.0.0.2")},
		{Name: "b3", Address: netip.MustParseAddr("10.0.0.3")},
	}}
	c.SetDefaults()
	healthy := []checkOutcome{{healthy: true}, {healthy: false}, {healthy: true}}
	cases := []struct {
		name  string
		reads []primaryRead
		want  string // in service per BDII
	}{
		{"in DNS on one primary or another", []primaryRead{{cur: set(30, "10.0.0.1")}, {cur: set(30, "10.0.0.2")}}, "IIO"},
		{"empty round robin: the first check decides", []primaryRead{{cur: set(30)}}, "IOI"},
		{"only foreign records: the first check decides", []primaryRead{{cur: set(30, "10.9.9.9")}}, "IOI"},
		{"no primary readable: presumed in service", []primaryRead{{err: errPrereq}}, "III"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := New(c, nil, []Check{}, nil)
			u.seed(tc.reads, healthy)
			var got strings.Builder
			for _, b := range c.BDIIs {
				if u.damp[b.Key()].InService {
					got.WriteByte('I')
				} else {
					got.WriteByte('O')
				}
			}
			if got.String() != tc.want {
				t.Errorf("got %s, want %s", got.String(), tc.want)
			}
			// Seeding happens once, unless no primary could be read.
			if tc.reads[0].err == nil && len(u.fresh) != 0 {
				t.Errorf("still fresh: %v", u.fresh)
			}
		})
	}
	// A restored state is history: no seeding for those BDIIs.
	u := New(c, nil, []Check{}, nil)
	u.Restore(&State{Name: "rr.z.org.", BDIIs: []BDIIState{{Name: "b3", Address: "10.0.0.3", Damper: Damper{InService: true}}}})
	u.seed([]primaryRead{{cur: set(30, "10.0.0.1")}}, healthy)
	if !u.damp["b3/10.0.0.3"].InService || u.damp["b2/10.0.0.2"].InService {
		t.Errorf("restored b3 must stay in service, fresh b2 must start out: %+v %+v", u.damp["b3/10.0.0.3"], u.damp["b2/10.0.0.2"])
	}
}

// flakyCheck fails its first fails runs, then passes.
type flakyCheck struct {
	mu    sync.Mutex
	runs  int
	fails int
}

func (f *flakyCheck) Name() string { return "flaky" }
func (f *flakyCheck) Run(ctx context.Context, b BDII) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs++
	if f.runs <= f.fails {
		return Result{Status: Critical, Message: "down"}
	}
	return Result{Status: OK, Message: "up"}
}

// TestFollowUp: a failed check of a BDII in service is re-checked at once
// until fail_after failures in a row (a dead BDII leaves in one cycle), a
// good follow-up ends it (no flapping), and a BDII out of service is not
// followed up (coming back stays slow: recover_after cycles).
func TestFollowUp(t *testing.T) {
	cfg := &Config{Interval: 2 * time.Second, CheckTimeout: 100 * time.Millisecond, FailAfter: 3, RecoverAfter: 2,
		BDIIs: []BDII{{Name: "b1", Address: netip.MustParseAddr("192.0.2.1"), Port: 2170}}}
	for _, c := range []struct {
		fails     int
		inService bool
		want      string
	}{
		{0, true, "[true]"},
		{1, true, "[false true]"},
		{9, true, "[false false false]"},
		{9, false, "[false]"},
	} {
		chk := &flakyCheck{fails: c.fails}
		u := New(cfg, nil, []Check{chk}, nil)
		u.damp["b1/192.0.2.1"].InService = c.inService
		out := u.checkAll(context.Background())
		if got := fmt.Sprint(out[0].seq); got != c.want {
			t.Errorf("%d failures, in service %v: checks %s, want %s", c.fails, c.inService, got, c.want)
		}
	}
}
