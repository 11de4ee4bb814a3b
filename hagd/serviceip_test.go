package hagd

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// setServiceIP turns the lease deadline into a kernel lifetime that ends
// before it, and removes the address when it cannot.
func TestSetServiceIP(t *testing.T) {
	ip := ServiceIP{Prefix: netip.MustParsePrefix("198.18.9.200/24"), Dev: "eth0"}
	var calls []string
	var delay time.Duration
	run := func(_ context.Context, args ...string) error {
		time.Sleep(delay)
		calls = append(calls, strings.Join(args, " "))
		return nil
	}
	ctx := context.Background()

	// 3.5 s of lease left: ⌊3.5 - 1.1⌋ = 2 s of lifetime.
	up, err := setServiceIP(ctx, run, ip, time.Now().Add(3500*time.Millisecond))
	if !up || err != nil || len(calls) != 1 || calls[0] != "addr replace 198.18.9.200/24 dev eth0 valid_lft 2 preferred_lft 2" {
		t.Fatalf("up %v err %v calls %q", up, err, calls)
	}
	// Less than 1 s + KernelSlack left: removed, ErrFenced.
	calls = nil
	up, err = setServiceIP(ctx, run, ip, time.Now().Add(KernelSlack+900*time.Millisecond))
	if up || !errors.Is(err, ErrFenced) || len(calls) != 1 || !strings.HasPrefix(calls[0], "addr del 198.18.9.200/24") {
		t.Fatalf("near deadline: up %v err %v calls %q", up, err, calls)
	}
	// The call itself takes long (a starved or frozen hagd): whatever
	// hagd ends with, an address it leaves up must be gone (lifetime +
	// KernelSlack after the call returned) by the deadline; the first
	// lifetime asked (2 s) would not be.
	for _, d := range []time.Duration{700 * time.Millisecond, 1500 * time.Millisecond} {
		var lastEnd time.Time
		var lastLft int
		calls, delay = nil, d
		run := func(_ context.Context, args ...string) error {
			time.Sleep(delay)
			calls = append(calls, strings.Join(args, " "))
			lastEnd = time.Now()
			if len(args) == 8 {
				lastLft = int(args[5][0] - '0')
			} else {
				lastLft = 0
			}
			return nil
		}
		deadline := time.Now().Add(KernelSlack + 2050*time.Millisecond)
		up, err := setServiceIP(ctx, run, ip, deadline)
		if len(calls) < 2 {
			t.Errorf("delay %v: a late call was not corrected: %q", d, calls)
		}
		switch {
		case up && err == nil:
			if lastEnd.Add(time.Duration(lastLft)*time.Second + KernelSlack).After(deadline) {
				t.Errorf("delay %v: the address may outlive the deadline: %q", d, calls)
			}
		case !up && errors.Is(err, ErrFenced):
			if !strings.HasPrefix(calls[len(calls)-1], "addr del") {
				t.Errorf("delay %v: fenced without removing: %q", d, calls)
			}
		default:
			t.Errorf("delay %v: up %v err %v", d, up, err)
		}
	}
	// No lease (lease = none): a permanent address.
	calls, delay = nil, 0
	if up, err := setServiceIP(ctx, run, ip, time.Time{}); !up || err != nil || calls[0] != "addr replace 198.18.9.200/24 dev eth0" {
		t.Fatalf("no lease: %v %v %q", up, err, calls)
	}
}
