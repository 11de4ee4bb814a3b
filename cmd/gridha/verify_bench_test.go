package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	sshx "github.com/gridha/gridha/installer/ssh"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/roles"
	"github.com/gridha/gridha/testbed"
)

// benchBase is the base role plus a dozen file, KEY=value, symlink and dir
// steps per host: what a verify of an rb node's configuration looks like.
type benchBase struct{ roles.Base }

func (r benchBase) Plan(inv *inventory.Inventory, opts roles.Options) (*installer.Plan, error) {
	base, err := r.Base.Plan(inv, opts)
	if err != nil {
		return nil, err
	}
	const d = "/etc/gridha-bench"
	ph := installer.Phase{Name: "bench", Steps: map[string][]installer.Step{}}
	for _, h := range inv.HostsWithRole("base") {
		if !opts.InLimit(h.Name) {
			continue
		}
		ph.Steps[h.Name] = []installer.Step{
			steps.Dir{Path: d, Mode: 0o755, Owner: "root", Group: "root"},
			steps.File{Path: d + "/hagd.conf", Content: []byte("group rb-a\nnode " + h.Name + "\nlease 30\npeers rb1 rb2\n"), Mode: 0o640, Owner: "root", Group: "daemon", Backup: true},
			steps.File{Path: d + "/hagd.key", Content: []byte("bench-not-a-secret\n"), Mode: 0o600, Owner: "root", Group: "root", Secret: true},
			steps.File{Path: d + "/lcg-ha-service", Content: []byte("#!/bin/sh\nexec true\n"), Mode: 0o755, Owner: "root", Group: "root"},
			steps.File{Path: d + "/grid-env.sh", Content: []byte("export LCG_GFAL_INFOSYS=bdii1:2170,bdii2:2170\n"), Mode: 0o644, Owner: "root", Group: "root"},
			steps.File{Path: d + "/motd", Content: []byte("rb node " + h.Name + "\n"), Mode: 0o644},
			steps.KeyValue{Path: d + "/lcg-ha", Key: "LEASE", Value: "30"},
			steps.KeyValue{Path: d + "/lcg-ha", Key: "PEERS", Value: "rb1 rb2", Quote: true},
			steps.KeyValue{Path: d + "/lcg-ha", Key: "STATE_DIR", Value: "/var/edgwl"},
			steps.KeyValue{Path: d + "/edg", Key: "EDG_WL_BKSERVERD_ADDOPTS", Value: "--mysql lbserver@state1:lbserver20", Quote: true, Mode: 0o600},
			steps.Symlink{Path: d + "/current", Target: d + "/hagd.conf"},
			steps.Symlink{Path: d + "/edgwl", Target: "/srv/rb-state/rb-a/edgwl"},
		}
	}
	return roles.MergePlans([]string{"base", "bench"}, []*installer.Plan{base, {Phases: []installer.Phase{ph}}})
}

// verifyBenchSizes reads GRIDHA_VERIFY_BENCH_HOSTS ("1,10,30" by default).
func verifyBenchSizes(b *testing.B) []int {
	spec := os.Getenv("GRIDHA_VERIFY_BENCH_HOSTS")
	if spec == "" {
		spec = "1,10,30"
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 60 {
			b.Fatalf("GRIDHA_VERIFY_BENCH_HOSTS=%q: want numbers 1..60", spec)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// verifyTrials is how many verifies are timed per size (the median is
// reported): bounded, and odd so the median is one run.
const verifyTrials = 3

// BenchmarkVerify times `gridha verify -o json` (in-process CLI, real SSH)
// on 1, 10 and 30 converged test-bed hosts (GRIDHA_VERIFY_BENCH_HOSTS), each
// running base plus a dozen file/KEY=value/symlink/dir steps, with the
// default concurrency, and prints the median wall time, the SSH connections
// and sessions per host, the time connecting alone takes (dial and close,
// same concurrency, no session: sshd's share), and the ratio
// verify(max)/verify(1). Targets: ≤ 3 sessions per host; 30 hosts within 2×
// the time of one.
//
//	go test -run '^$' -bench 'BenchmarkVerify$' -benchtime 1x ./cmd/gridha
func BenchmarkVerify(b *testing.B) {
	sizes := verifyBenchSizes(b)
	maxN := sizes[len(sizes)-1]
	names := make([]string, maxN)
	hostRoles := map[string][]string{}
	for i := range names {
		names[i] = fmt.Sprintf("v%02d", i+1)
		hostRoles[names[i]] = []string{"base"}
	}
	bed := testbed.New(b, names...)
	inv := bed.WriteInventory(b, bed.HostsYAML(hostRoles)+"roles:\n  base:\n    motd: \"gridha verify benchmark\"\n")
	reg := roles.NewRegistry(benchBase{})
	if r := gridhaWith(b, reg, false, "install", "base", "-i", inv, "-o", "json"); r.code != 0 {
		b.Fatalf("install on %d hosts: exit %d\n%s%s", maxN, r.code, r.stdout, r.stderr)
	}
	stepsPerHost := 0
	if p, err := (benchBase{}).Plan(mustInventory(b, inv), roles.Options{Limit: names[:1]}); err == nil {
		for _, ph := range p.Phases {
			stepsPerHost += len(ph.Steps[names[0]])
		}
	}

	type row struct {
		hosts                 int
		wall, dial            time.Duration
		connsMax, sessionsMax int
		sessionsPerHost       float64
	}
	// dialAll is the share of SSH connection set-up: connect to n hosts at
	// once (same concurrency bound as verify) and close, no session.
	dialer := sshx.NewDialer(mustInventory(b, inv), sshx.Options{HostKeyPolicy: sshx.PolicyStrict})
	dialAll := func(n int) time.Duration {
		start := time.Now()
		sem := make(chan struct{}, installer.DefaultConcurrency)
		var wg sync.WaitGroup
		for _, name := range names[:n] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				c, err := dialer.Dial(ctx, name)
				if err != nil {
					b.Errorf("dial %s: %v", name, err)
					return
				}
				_ = c.Close()
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	var rows []row
	for b.Loop() {
		rows = rows[:0]
		for _, n := range sizes {
			limit := strings.Join(names[:n], ",")
			var walls, dials []time.Duration
			var last report.JSONDocument
			for i := 0; i < verifyTrials; i++ {
				dials = append(dials, dialAll(n))
				start := time.Now()
				r := gridhaWith(b, reg, false, "verify", "-i", inv, "--limit", limit, "-o", "json")
				walls = append(walls, time.Since(start))
				if r.code != 0 {
					b.Fatalf("verify on %d converged hosts: exit %d\n%s%s", n, r.code, r.stdout, r.stderr)
				}
				last = report.JSONDocument{}
				if err := json.Unmarshal([]byte(r.stdout), &last); err != nil || len(last.Hosts) != n {
					b.Fatalf("verify on %d hosts: json report with %d hosts: %v", n, len(last.Hosts), err)
				}
			}
			sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
			sort.Slice(dials, func(i, j int) bool { return dials[i] < dials[j] })
			rw := row{hosts: n, wall: walls[len(walls)/2], dial: dials[len(dials)/2]}
			total := 0
			for _, h := range last.Hosts {
				rw.connsMax = max(rw.connsMax, h.SSH.Connections)
				rw.sessionsMax = max(rw.sessionsMax, h.SSH.Sessions)
				total += h.SSH.Sessions
			}
			rw.sessionsPerHost = float64(total) / float64(n)
			rows = append(rows, rw)
		}
	}

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("gridha verify, converged hosts, %d steps per host (base + 12 file/KEY=value/symlink/dir), default concurrency %d, median of %d (load average %s):\n",
		stepsPerHost, installer.DefaultConcurrency, verifyTrials, strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	fmt.Printf("  %5s  %8s  %16s  %18s  %s\n", "hosts", "wall", "connections/host", "sessions/host", "of which: connecting alone")
	for _, rw := range rows {
		note := ""
		if rw.sessionsMax > 3 || rw.connsMax != 1 {
			note = "  OVER BUDGET (1 connection, ≤ 3 sessions)"
		}
		fmt.Printf("  %5d  %7.3fs  %16d  %9.1f (max %d)  %7.3fs%s\n", rw.hosts, rw.wall.Seconds(), rw.connsMax, rw.sessionsPerHost, rw.sessionsMax, rw.dial.Seconds(), note)
		b.ReportMetric(rw.wall.Seconds(), fmt.Sprintf("s/verify-%dhosts", rw.hosts))
		b.ReportMetric(rw.sessionsPerHost, fmt.Sprintf("sessions/host-%dhosts", rw.hosts))
	}
	if len(rows) > 1 && rows[0].hosts == 1 {
		last := rows[len(rows)-1]
		ratio := last.wall.Seconds() / rows[0].wall.Seconds()
		fmt.Printf("  verify(%d)/verify(1) = %.2f (target ≤ 2)\n", last.hosts, ratio)
		b.ReportMetric(ratio, fmt.Sprintf("ratio-%d/1", last.hosts))
	}
}

func mustInventory(b *testing.B, path string) *inventory.Inventory {
	b.Helper()
	inv, err := inventory.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	return inv
}
