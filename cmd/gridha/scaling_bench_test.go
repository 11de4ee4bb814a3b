package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/roles"
	"github.com/gridha/gridha/testbed"
)

// scaleRole plays "base" with n steps per host in two phases: folders,
// files, KEY=value lines and symlinks in equal parts, what a role's
// configuration steps look like.
type scaleRole struct{ n int }

func (scaleRole) Name() string    { return "base" }
func (scaleRole) Summary() string { return "benchmark: n configuration steps per host" }
func (r scaleRole) Plan(inv *inventory.Inventory, opts roles.Options) (*installer.Plan, error) {
	const d = "/etc/gridha-scale"
	one := installer.Phase{Name: "scale 1", Steps: map[string][]installer.Step{}}
	two := installer.Phase{Name: "scale 2", Steps: map[string][]installer.Step{}}
	for _, h := range inv.HostsWithRole("base") {
		if !opts.InLimit(h.Name) {
			continue
		}
		ss := []installer.Step{steps.Dir{Path: d, Mode: 0o755, Owner: "root", Group: "root"}}
		for i := 1; len(ss) < r.n; i++ {
			switch i % 4 {
			case 0:
				ss = append(ss, steps.Dir{Path: fmt.Sprintf("%s/d%03d", d, i), Mode: 0o750, Owner: "root", Group: "root"})
			case 1:
				ss = append(ss, steps.File{Path: fmt.Sprintf("%s/f%03d", d, i), Content: []byte(fmt.Sprintf("host %s\nstep %d\n", h.Name, i)), Mode: 0o644, Owner: "root", Group: "root"})
			case 2:
				ss = append(ss, steps.KeyValue{Path: fmt.Sprintf("%s/kv%02d.conf", d, i/40), Key: fmt.Sprintf("K%03d", i), Value: "v" + strconv.Itoa(i)})
			case 3:
				ss = append(ss, steps.Symlink{Path: fmt.Sprintf("%s/l%03d", d, i), Target: fmt.Sprintf("%s/f%03d", d, i-2)})
			}
		}
		half := (len(ss) + 1) / 2
		one.Steps[h.Name], two.Steps[h.Name] = ss[:half], ss[half:]
	}
	return &installer.Plan{Phases: []installer.Phase{one, two}}, nil
}

func envInts(b *testing.B, name, def string, lo, hi int) []int {
	spec := os.Getenv(name)
	if spec == "" {
		spec = def
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo || n > hi {
			b.Fatalf("%s=%q: want numbers %d..%d", name, spec, lo, hi)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// scaleSample is one timed run: wall time and the CPU the run's hosts
// spent (summed over them).
type scaleSample struct {
	wall, hostCPU time.Duration
	sessions      int // max per host
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkScaling prints how verify and a no-change install scale with the
// number of hosts (GRIDHA_SCALING_HOSTS, default 1,10,30) and of steps per
// host (GRIDHA_SCALING_STEPS, default 10,50,200): median wall time and
// the CPU the hosts themselves spent (testbed Host.CPU: every process of the
// host, sshd included), per host; verify and install measured in 9
// alternating pairs, medians (their ratio is the no-change install's
// overhead, target <= 1.15). The one-host rows run with --limit out of
// the whole bed and with a one-host inventory (--limit must cost no more):
// 9 of each, alternating, medians compared. Writes bench/scaling.svg (wall) and bench/scaling-cpu.svg (host
// CPU per host), or GRIDHA_BENCH_OUT.
//
//	go test -run '^$' -bench 'BenchmarkScaling$' -benchtime 1x ./cmd/gridha
func BenchmarkScaling(b *testing.B) {
	hostSizes := envInts(b, "GRIDHA_SCALING_HOSTS", "1,10,30", 1, 60)
	stepSizes := envInts(b, "GRIDHA_SCALING_STEPS", "10,50,200", 1, 1000)
	maxN := hostSizes[len(hostSizes)-1]
	names := make([]string, maxN)
	hostRoles := map[string][]string{}
	for i := range names {
		names[i] = fmt.Sprintf("s%02d", i+1)
		hostRoles[names[i]] = []string{"base"}
	}
	bed := testbed.New(b, names...)
	inv := bed.WriteInventory(b, bed.HostsYAML(hostRoles))
	inv1 := filepath.Join(filepath.Dir(inv), "one-host.yaml")
	if err := os.WriteFile(inv1, []byte(bed.DefaultsYAML()+bed.HostsYAML(map[string][]string{names[0]: {"base"}})), 0o600); err != nil {
		b.Fatal(err)
	}
	hostCPU := func(hs []string) time.Duration {
		var sum time.Duration
		for _, n := range hs {
			c, err := bed.Host(n).CPU()
			if err != nil {
				b.Fatal(err)
			}
			sum += c
		}
		return sum
	}
	measureN := func(n int, reg *roles.Registry, hs []string, args ...string) scaleSample {
		var walls, cpus []time.Duration
		sessions := 0
		for range n {
			c0 := hostCPU(hs)
			start := time.Now()
			r := gridhaWith(b, reg, false, append(args, "-o", "json")...)
			walls = append(walls, time.Since(start))
			cpus = append(cpus, hostCPU(hs)-c0)
			var doc report.JSONDocument
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 || len(doc.Hosts) != len(hs) {
				b.Fatalf("gridha %s: exit %d, %d hosts, %v\n%s", strings.Join(args, " "), r.code, len(doc.Hosts), err, r.stderr)
			}
			for _, h := range doc.Hosts {
				sessions = max(sessions, h.SSH.Sessions)
				if h.Recap["changed"] != 0 || h.Recap["ok"] == 0 {
					b.Fatalf("gridha %s: %s not converged: %v", strings.Join(args, " "), h.Name, h.Recap)
				}
			}
		}
		return scaleSample{wall: median(walls), hostCPU: median(cpus), sessions: sessions}
	}
	// The --limit comparison is a ratio of two short runs on a shared,
	// loaded machine: one sample each swung it from 0.8 to 1.4. Both are
	// measured pairwise, alternating (load drifts hit both alike), and the
	// ratio is that of the medians of limitPairs samples each.
	const limitPairs = 9
	measurePairs := func(reg *roles.Registry, hs []string, a, b []string) (scaleSample, scaleSample) {
		var sa, sb []scaleSample
		for range limitPairs {
			sa = append(sa, measureN(1, reg, hs, a...))
			sb = append(sb, measureN(1, reg, hs, b...))
		}
		med := func(ss []scaleSample) scaleSample {
			var w, c []time.Duration
			n := 0
			for _, s := range ss {
				w, c, n = append(w, s.wall), append(c, s.hostCPU), max(n, s.sessions)
			}
			return scaleSample{wall: median(w), hostCPU: median(c), sessions: n}
		}
		return med(sa), med(sb)
	}

	type row struct {
		hosts, steps     int
		verify, install  scaleSample
		oneHostInventory scaleSample // hosts == 1 only
		limitVerify      scaleSample // hosts == 1: paired with oneHostInventory
	}
	var rows []row
	for b.Loop() {
		rows = rows[:0]
		for _, n := range stepSizes {
			reg := roles.NewRegistry(scaleRole{n})
			if r := gridhaWith(b, reg, false, "install", "base", "-i", inv, "-o", "json"); r.code != 0 {
				b.Fatalf("install of %d steps on %d hosts: exit %d\n%s", n, maxN, r.code, r.stderr)
			}
			for _, h := range hostSizes {
				hs := names[:h]
				limit := strings.Join(hs, ",")
				rw := row{hosts: h, steps: n}
				// The no-change install against the verify: alternating
				// pairs too (3 of each apart gave 0.60-1.42x under load).
				rw.verify, rw.install = measurePairs(reg, hs,
					[]string{"verify", "-i", inv, "--limit", limit}, []string{"install", "base", "-i", inv, "--limit", limit})
				if h == 1 {
					rw.limitVerify, rw.oneHostInventory = measurePairs(reg, hs,
						[]string{"verify", "-i", inv, "--limit", limit}, []string{"verify", "-i", inv1})
				}
				rows = append(rows, rw)
			}
		}
	}

	load, _ := os.ReadFile("/proc/loadavg")
	lf := strings.Fields(string(load))
	fmt.Printf("verify and no-change install: medians of %d alternating pairs, converged hosts, default concurrency %d, load average %s\n",
		limitPairs, installer.DefaultConcurrency, strings.Join(lf[:min(3, len(lf))], " "))
	fmt.Printf("  %5s %5s  %9s %12s  %9s %12s %8s  %s\n", "hosts", "steps", "verify", "host CPU/h", "install", "host CPU/h", "inst/ver", "sessions/host (verify, install); inst/ver target <= 1.15")
	for _, rw := range rows {
		ratio := rw.install.wall.Seconds() / rw.verify.wall.Seconds()
		fmt.Printf("  %5d %5d  %8.3fs %11.3fs  %8.3fs %11.3fs %8.2f  %d, %d\n", rw.hosts, rw.steps,
			rw.verify.wall.Seconds(), rw.verify.hostCPU.Seconds()/float64(rw.hosts),
			rw.install.wall.Seconds(), rw.install.hostCPU.Seconds()/float64(rw.hosts), ratio,
			rw.verify.sessions, rw.install.sessions)
		b.ReportMetric(rw.verify.wall.Seconds(), fmt.Sprintf("s/verify-%dh-%ds", rw.hosts, rw.steps))
		b.ReportMetric(rw.install.wall.Seconds(), fmt.Sprintf("s/install-%dh-%ds", rw.hosts, rw.steps))
	}
	for _, rw := range rows {
		if rw.hosts == 1 && len(hostSizes) > 1 {
			fmt.Printf("  %d steps: verify --limit %s out of %d hosts %.3fs, of a one-host inventory %.3fs: ratio %.2f (target ≤ 1.3; medians of %d, alternating); host CPU %.3fs / %.3fs\n",
				rw.steps, names[0], maxN, rw.limitVerify.wall.Seconds(), rw.oneHostInventory.wall.Seconds(),
				rw.limitVerify.wall.Seconds()/rw.oneHostInventory.wall.Seconds(), limitPairs,
				rw.limitVerify.hostCPU.Seconds(), rw.oneHostInventory.hostCPU.Seconds())
		}
	}

	// The curves: wall time and host CPU per host against hosts, a line
	// per mode and number of steps.
	var wall, cpu []chartSeries
	for _, n := range stepSizes {
		for _, mode := range []string{"verify", "install (no change)"} {
			w := chartSeries{Name: fmt.Sprintf("%s, %d steps", mode, n), Dashed: mode != "verify"}
			c := w
			for _, rw := range rows {
				if rw.steps != n {
					continue
				}
				s := rw.verify
				if mode != "verify" {
					s = rw.install
				}
				w.X, w.Y = append(w.X, float64(rw.hosts)), append(w.Y, s.wall.Seconds())
				c.X, c.Y = append(c.X, float64(rw.hosts)), append(c.Y, s.hostCPU.Seconds()/float64(rw.hosts))
			}
			wall, cpu = append(wall, w), append(cpu, c)
		}
	}
	out := os.Getenv("GRIDHA_BENCH_OUT")
	if out == "" {
		out = filepath.Join("..", "..", "bench")
	}
	note := fmt.Sprintf(" (load %s)", lf[0])
	for _, ch := range []struct {
		file, title, y string
		s              []chartSeries
	}{
		{"scaling.svg", "gridha: wall time by hosts" + note, "seconds (median of 3)", wall},
		{"scaling-cpu.svg", "gridha: host CPU per host by hosts" + note, "CPU seconds per host", cpu},
	} {
		f, err := os.Create(filepath.Join(out, ch.file))
		if err != nil {
			b.Logf("chart not written: %v", err)
			continue
		}
		if err := writeLineChart(f, ch.title, "hosts", ch.y, ch.s); err != nil {
			b.Error(err)
		}
		f.Close()
		fmt.Printf("  chart: %s\n", f.Name())
	}
}
