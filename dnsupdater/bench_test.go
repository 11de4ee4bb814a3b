package dnsupdater

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gridha/gridha/testbed"
)

// BenchmarkDNSRemoval measures the time from a BDII's death (slapd and
// bdii-update SIGKILLed) to the moment its A record is gone from the primary
// (a real DNS query every 50 ms), with the updater daemon running at a 5 s
// interval and the default fail_after (2): MAN05's target here is "within two
// check intervals" (10 s). IGI's Nagios anchor checks every 5 minutes.
//
//	go test ./dnsupdater -run '^$' -bench DNSRemoval -benchtime 1x
//
// It runs GRIDHA_BENCH_TRIALS trials (default 5, at most 20) whatever b.N is,
// prints each and reports the mean and the maximum.
func BenchmarkDNSRemoval(b *testing.B) {
	trials := 5
	if v, err := strconv.Atoi(os.Getenv("GRIDHA_BENCH_TRIALS")); err == nil && v > 0 {
		trials = min(v, 20)
	}
	f := newFixture(b, 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(trials)*time.Minute+2*time.Minute)
	defer cancel()
	c := f.config("bench.state", "interval = 5s\ncheck_timeout = 2s\nfail_after = 2\nrecover_after = 1\n")
	u, logs := f.updater(c)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = u.Run(runCtx) }()
	defer func() { stop(); wg.Wait() }()

	victim, other := f.bdiis[0], f.bdiis[1]
	both, rest := addrs(victim, other), addrs(other)
	// waitFor polls the primary every 50 ms (bounded) until it serves want.
	waitFor := func(want []string, limit time.Duration) (time.Time, error) {
		deadline := time.Now().Add(limit)
		for time.Now().Before(deadline) {
			got, err := records(ctx, f.ns[0])
			if err == nil && slices.Equal(got, want) {
				return time.Now(), nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Time{}, fmt.Errorf("primary does not serve %v after %s\n%s", want, limit, logs)
	}
	if _, err := waitFor(both, 30*time.Second); err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < trials; i++ {
		// Die at a random phase of the updater's 5 s cycle.
		time.Sleep(time.Duration(rand.Int64N(int64(5 * time.Second))))
		dead := time.Now()
		if err := victim.KillBDII(ctx); err != nil {
			b.Fatal(err)
		}
		gone, err := waitFor(rest, 60*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		d := gone.Sub(dead)
		took = append(took, d)
		fmt.Printf("dns-removal trial %d/%d: %s (interval 5s, fail_after 2)\n", i+1, trials, d.Round(10*time.Millisecond))
		if err := victim.StartBDII(ctx, testbed.BDIIOptions{BreatheTime: time.Second}); err != nil {
			b.Fatal(err)
		}
		if _, err := waitFor(both, 30*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var sum, worst time.Duration
	for _, d := range took {
		sum += d
		worst = max(worst, d)
	}
	mean := sum / time.Duration(len(took))
	fmt.Printf("dns-removal: %d trials, mean %s, max %s, target < 10s (two 5 s intervals)\n",
		len(took), mean.Round(10*time.Millisecond), worst.Round(10*time.Millisecond))
	b.ReportMetric(mean.Seconds(), "s/removal-mean")
	b.ReportMetric(worst.Seconds(), "s/removal-max")
}
