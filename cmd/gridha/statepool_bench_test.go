package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/testbed"
	"github.com/gridha/gridha/testbed/standins"
)

// benchSubmit runs rb-submit on ui until n jobs were tried with workers in
// flight and no pause, and returns the attempts and the wall time.
func benchSubmit(b *testing.B, s *poolSite, prefix string, n, workers int) ([]standins.Attempt, time.Duration) {
	b.Helper()
	l := s.submit(b, prefix, 5*time.Minute, "-n", strconv.Itoa(n), "-workers", strconv.Itoa(workers), "-every", "0s")
	start := time.Now()
	for end := start.Add(5 * time.Minute); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if !s.bed.Client.Running(context.Background(), "submit-"+prefix) {
			break
		}
	}
	as := l.stop(b)
	if len(as) != n {
		b.Fatalf("%s: %d attempts, want %d", prefix, len(as), n)
	}
	return as, as[len(as)-1].End.Sub(as[0].Start)
}

// latencies are the acknowledged attempts' latencies, sorted.
func latencies(as []standins.Attempt) []time.Duration {
	var out []time.Duration
	for _, a := range standins.Acked(as) {
		out = append(out, a.Latency())
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// benchThroughput prints the submission latency (one job at a time) and
// throughput (4 at a time) through the layout's shared storage.
func benchThroughput(b *testing.B, s *poolSite, layout string) {
	b.Helper()
	const n = 200
	as, wall := benchSubmit(b, s, "lat-"+layout, n, 1)
	lat := latencies(as)
	if len(lat) != n {
		b.Fatalf("%s: %d of %d jobs acknowledged on a quiet site", layout, len(lat), n)
	}
	s.requireJobs(b, "lat-"+layout, as, n)
	as4, wall4 := benchSubmit(b, s, "tput-"+layout, 2*n, 4)
	if k := len(standins.Acked(as4)); k != 2*n {
		b.Fatalf("%s: %d of %d jobs acknowledged with 4 at a time", layout, k, 2*n)
	}
	s.requireJobs(b, "tput-"+layout, as4, 2*n)
	lat4 := latencies(as4)
	fmt.Printf("  %-9s  1 at a time: %5.1f jobs/s, latency median %4.0f ms, p90 %4.0f ms, max %4.0f ms;  4 at a time: %5.1f jobs/s, median %4.0f ms, max %4.0f ms  (load %s)\n",
		layout, float64(n)/wall.Seconds(), ms(pct(lat, 0.5)), ms(pct(lat, 0.9)), ms(lat[len(lat)-1]),
		float64(2*n)/wall4.Seconds(), ms(pct(lat4, 0.5)), ms(lat4[len(lat4)-1]), loadAvg())
	b.ReportMetric(float64(n)/wall.Seconds(), layout+"-jobs/s")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchCrashes crashes a box trials times during submissions and returns
// how long the user's submissions went unacknowledged each time (crash to
// the first acknowledgement of a submission sent after it); box names the
// box to crash in each trial. After each crash the box boots and the site
// must be whole again (verify) before the next trial.
func benchCrashes(b *testing.B, s *poolSite, prefix string, trials int, box func(i int) *testbed.Host) []time.Duration {
	b.Helper()
	ctx := context.Background()
	l := s.submit(b, prefix, 20*time.Minute, "-every", "50ms")
	var took []time.Duration
	for i := 0; i < trials; i++ {
		s.waitServed(b, "rb1", 90*time.Second)
		l.waitAcks(b, 5, 60*time.Second)
		h := box(i)
		if _, err := h.Crash(ctx); err != nil {
			b.Fatal(err)
		}
		at := time.Now()
		d, by := l.answeredAgain(b, at, fmt.Sprintf("%s trial %d: %s crashed", prefix, i+1, h.Name))
		took = append(took, d)
		b.Logf("%s trial %d: %s crashed, answered again after %.2fs by %s", prefix, i+1, h.Name, d.Seconds(), by)
		s.heal(b, h, true)
	}
	s.waitServed(b, "rb1", 90*time.Second)
	l.waitAcks(b, 5, 60*time.Second)
	s.requireJobs(b, prefix, l.stop(b), 20)
	return took
}

func printCrashes(what string, took []time.Duration) {
	d := append([]time.Duration(nil), took...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	med := d[len(d)/2]
	if len(d)%2 == 0 {
		med = (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	var all []string
	for _, x := range took {
		all = append(all, fmt.Sprintf("%.1f", x.Seconds()))
	}
	fmt.Printf("  %-44s median %5.2f s, max %5.2f s  (%s s; load %s)\n", what, med.Seconds(), d[len(d)-1].Seconds(), strings.Join(all, ", "), loadAvg())
}

// BenchmarkStatePool is issue 13's figures, on one PoolBed: job submission
// throughput and latency of the stand-in RB service (sandbox written and
// fsynced through the shared storage, L&B row inserted) from the user's box
// through the rb service IP, and the time from a crash (every process of
// the box but init and sshd killed with SIGKILL) to the user's next
// acknowledged submission, 5 crashes each (GRIDHA_POOL_BENCH_CRASHES):
// first on the single-server layout (sshfs; the rb master), then on the
// pool the same bed is converted to (GlusterFS, Galera; the rb master and
// the pool members in turn).
//
//	go test -run '^$' -bench 'BenchmarkStatePool$' -benchtime 1x ./cmd/gridha
func BenchmarkStatePool(b *testing.B) {
	trials := 5
	if v, err := strconv.Atoi(os.Getenv("GRIDHA_POOL_BENCH_CRASHES")); err == nil && v > 0 && v <= 20 {
		trials = v
	}
	s := &poolSite{}
	s.get(b)
	b.Cleanup(s.down)
	rb1 := s.bed.Host("rb1")
	for b.Loop() {
		s.single(b)
		fmt.Printf("state pool bench: job submissions from ui through the rb service IP (sandbox fsynced on the shared storage + L&B row)\n")
		benchThroughput(b, s, "sshfs")
		sshfsRB := benchCrashes(b, s, "crash-rb-sshfs", trials, func(int) *testbed.Host { return rb1 })
		printCrashes("sshfs layout, rb master crashed:", sshfsRB)
		poolPart(b, s, trials)
	}
}

// poolPart converts the bench's site to the pool and measures it the same
// way, then crashes the pool members in turn.
func poolPart(b *testing.B, s *poolSite, trials int) {
	b.Helper()
	s.pool(b)
	s.poolWhole(b, 3*time.Minute)
	benchThroughput(b, s, "glusterfs")
	rb1 := s.bed.Host("rb1")
	poolRB := benchCrashes(b, s, "crash-rb-pool", trials, func(int) *testbed.Host { return rb1 })
	member := benchCrashes(b, s, "crash-fs-pool", trials, func(i int) *testbed.Host {
		s.poolWhole(b, 3*time.Minute) // the previous crash healed
		return s.bed.Members[i%3]
	})
	printCrashes("pool layout, rb master crashed:", poolRB)
	printCrashes("pool layout, pool member crashed (fs1, fs2, fs3, ...):", member)
}
