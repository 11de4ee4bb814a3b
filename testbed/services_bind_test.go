package testbed

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestBIND starts a real named in a bed host, asks it for the zone's SOA
// from the controller, reloads and stops it.
func TestBIND(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	b := New(t, "dns1")
	h := b.MustHost("dns1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.StartBIND(ctx, "core.testbed.gridha"); err != nil {
		t.Fatal(err)
	}
	q := new(dns.Msg)
	q.SetQuestion("core.testbed.gridha.", dns.TypeNS)
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).ExchangeContext(ctx, q, net.JoinHostPort(h.Addr, "53"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].(*dns.NS).Ns != h.Hostname+"." {
		t.Fatalf("NS answer: %v", r)
	}
	if err := h.ReloadBIND(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitBIND(ctx, "core.testbed.gridha"); err != nil {
		t.Fatal(err)
	}
	if err := h.StopBIND(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (&dns.Client{Net: "tcp", Timeout: time.Second}).ExchangeContext(ctx, q, net.JoinHostPort(h.Addr, "53")); err == nil {
		t.Fatal("named still answers after StopBIND")
	}
}
