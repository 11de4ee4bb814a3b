package steps_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
)

// primitiveSuite is one host's worth of every primitive, in two phases (the
// service needs its init script from the first).
func primitiveSuite() (files, services []installer.Step) {
	const d = "/srv/gridha-bench"
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGridhaBenchKey000000000000000000000000001 bench@gridha"
	files = []installer.Step{
		steps.Dir{Path: d, Mode: 0o755, Owner: "root", Group: "root"},
		steps.File{Path: d + "/hagd.conf", Content: []byte("group rb\nlease 30\npeers rb1 rb2\n"), Mode: 0o640, Owner: "root", Group: "daemon", Backup: true},
		steps.File{Path: d + "/secret.key", Content: []byte("not-really-a-secret\n"), Mode: 0o600, Secret: true},
		steps.KeyValue{Path: d + "/lcg-ha", Key: "LEASE", Value: "30"},
		steps.KeyValue{Path: d + "/lcg-ha", Key: "PEERS", Value: "rb1 rb2", Quote: true},
		steps.KeyValue{Path: d + "/lcg-ha", Key: "STATE_DIR", Value: "/var/edgwl"},
		steps.Symlink{Path: d + "/current", Target: d + "/hagd.conf"},
		steps.Absent{Path: d + "/stale"},
		steps.File{Path: "/etc/init.d/gridha-bench", Content: []byte(strings.ReplaceAll(dummyInit, "gridha-dummy", "gridha-bench")), Mode: 0o755},
		steps.User{Name: "benchuser", Home: "/home/benchuser", Shell: "/bin/sh", System: true, AuthorizedKeys: []string{key}},
		steps.Mount{Source: "gridha-bench", Target: "/mnt/gridha-bench", FSType: "tmpfs", Options: []string{"size=1m", "nodev"}, Fstab: true, Mounted: true},
		steps.Exec{Name: "marker", Probe: "cat " + d + "/marker 2>/dev/null", Apply: "echo ok > " + d + "/marker",
			Check: func(r installer.ProbeResult) (bool, string) { return string(r.Stdout) == "ok\n", string(r.Stdout) }},
	}
	services = []installer.Step{steps.Service{Name: "gridha-bench", Boot: steps.BootEnabled, State: steps.StateRunning}}
	return files, services
}

func suitePlan(hosts []string) *installer.Plan {
	p := &installer.Plan{Phases: []installer.Phase{
		{Name: "files", Steps: map[string][]installer.Step{}},
		{Name: "services", Steps: map[string][]installer.Step{}},
	}}
	for _, h := range hosts {
		p.Phases[0].Steps[h], p.Phases[1].Steps[h] = primitiveSuite()
	}
	return p
}

// benchSizes reads GRIDHA_BENCH_HOSTS ("1,5,20" by default).
func benchSizes(b *testing.B) []int {
	spec := os.Getenv("GRIDHA_BENCH_HOSTS")
	if spec == "" {
		spec = "1,5,20"
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 100 {
			b.Fatalf("GRIDHA_BENCH_HOSTS=%q: want numbers 1..100", spec)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkPrimitiveSuite converges every primitive on 1, 5 and 20 test-bed
// hosts (GRIDHA_BENCH_HOSTS, e.g. "1,10,30" for the verify figures), then
// times no-change runs (audit as gridha verify does, and apply, which also
// takes the per-host lock) and prints the wall time, the SSH connections and
// sessions per host, and the ratio of the largest to the smallest size.
//
//	go test -run '^$' -bench PrimitiveSuite -benchtime 3x ./installer/steps
func BenchmarkPrimitiveSuite(b *testing.B) {
	sizes := benchSizes(b)
	walls := map[installer.Mode]map[int]time.Duration{}
	defer func() {
		lo, hi := sizes[0], sizes[len(sizes)-1]
		for _, mode := range []installer.Mode{installer.ModeAudit, installer.ModeApply} {
			if w := walls[mode]; w[lo] > 0 && w[hi] > 0 && hi != lo {
				fmt.Printf("primitive suite, no-change %-5s: wall(%d hosts) / wall(%d host(s)) = %.2f\n", mode, hi, lo, w[hi].Seconds()/w[lo].Seconds())
			}
		}
	}()
	for _, n := range sizes {
		hosts := make([]string, n)
		for i := range hosts {
			hosts[i] = fmt.Sprintf("bench%d", i+1)
		}
		e := newBedEnv(b, hosts, "")
		plan := suitePlan(hosts)
		stepsPerHost := 0
		for _, ph := range plan.Phases {
			stepsPerHost += len(ph.Steps[hosts[0]])
		}
		run := func(mode installer.Mode) *installer.Report {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			rep, err := installer.Run(ctx, e.dialer, plan, installer.RunOptions{Mode: mode})
			if err != nil {
				b.Fatal(err)
			}
			return rep
		}
		rep := run(installer.ModeApply)
		if w := rep.Worst(); w != installer.StatusChanged && w != installer.StatusOK {
			for _, r := range rep.Results {
				if r.Status == w {
					b.Fatalf("converging the suite: %s %s: %s: %s", r.Host, r.Step, r.Status, r.Message)
				}
			}
		}
		for _, mode := range []installer.Mode{installer.ModeAudit, installer.ModeApply} {
			b.Run(fmt.Sprintf("hosts=%d/%s", n, mode), func(b *testing.B) {
				var wall time.Duration
				var conns, sessions int
				for b.Loop() {
					start := time.Now()
					rep := run(mode)
					wall += time.Since(start)
					if rep.Worst() != installer.StatusOK {
						b.Fatalf("no-change run not ok: %v", rep.Counts())
					}
					conns, sessions = 0, 0
					for _, hr := range rep.Hosts {
						conns += hr.Stats.Connections
						sessions += hr.Stats.Sessions
					}
				}
				per := wall / time.Duration(b.N)
				if walls[mode] == nil {
					walls[mode] = map[int]time.Duration{}
				}
				walls[mode][n] = per
				b.ReportMetric(per.Seconds(), "s/run")
				b.ReportMetric(float64(conns)/float64(n), "conns/host")
				b.ReportMetric(float64(sessions)/float64(n), "sessions/host")
				fmt.Printf("primitive suite, no-change %-5s: %2d hosts, %d steps/host, wall %6.2fs, %.0f connection(s)/host, %.1f sessions/host\n",
					mode, n, stepsPerHost, per.Seconds(), float64(conns)/float64(n), float64(sessions)/float64(n))
			})
		}
		e.bed.Down()
	}
}
