package testbed

import (
	"context"
	"testing"
	"time"
)

// TestBDII starts a real BDII (Debian bdii: slapd on 2170 + bdii-update
// through the ldap tools wrapper) and checks what MAN05 monitors: the
// o=infosys UpdateStats entry with TotalEntries > 0 and a moving
// modifyTimestamp; stopping bdii-update freezes it; StopBDII closes 2170.
func TestBDII(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	b := New(t, "bdii1")
	h := b.MustHost("bdii1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := h.StartBDII(ctx, BDIIOptions{BreatheTime: time.Second, Entries: 3}); err != nil {
		t.Fatal(err)
	}
	total, mod1, err := h.BDIIStats(ctx)
	if err != nil || total < 3 {
		t.Fatalf("UpdateStats: TotalEntries %d, %v; want >= 3", total, err)
	}
	// The published entries are there, under o=grid, seen from the machine.
	if out, err := h.Exec(ctx, "ldapsearch", "-x", "-LLL", "-H", "ldap://"+h.Addr+":2170", "-b",
		"mds-vo-name=gridha-testbed-2,mds-vo-name=local,o=grid", "-s", "base", "dn"); err != nil || len(out) == 0 {
		t.Errorf("static provider entry not published: %s %v", out, err)
	}
	// modifyTimestamp moves while bdii-update runs (bounded wait).
	var mod2 time.Time
	for i := 0; i < 50 && !mod2.After(mod1); i++ {
		time.Sleep(200 * time.Millisecond)
		_, mod2, _ = h.BDIIStats(ctx)
	}
	if !mod2.After(mod1) {
		t.Fatalf("modifyTimestamp does not move: %s then %s", mod1, mod2)
	}
	if err := h.StopBDIIUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	_, frozen, err := h.BDIIStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, again, err := h.BDIIStats(ctx); err != nil || !again.Equal(frozen) {
		t.Errorf("after StopBDIIUpdate modifyTimestamp moved: %s -> %s (%v)", frozen, again, err)
	}
	if err := h.StartBDIIUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.StopBDII(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.BDIIStats(ctx); err == nil {
		t.Error("slapd still answers after StopBDII")
	}
}
