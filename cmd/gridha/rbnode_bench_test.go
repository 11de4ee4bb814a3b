package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/testbed"
	"github.com/gridha/gridha/testbed/standins"
)

// BenchmarkVerifyRBNodes times `gridha verify` of the real roles: a state
// server (MariaDB, export, snfs user) and N rb nodes (sshfs share, state
// dirs moved, hagd running with its default timing, as a site runs it, not
// the demo's quicker one whose 30 daemons alone loaded this 2-core machine
// to 40-57; the stand-in RB service), for GRIDHA_RBNODE_BENCH_NODES (default 1,10) nodes, nodes paired in
// HA groups. It prints, per verify, the median wall time and the CPU the
// hosts themselves spent: the state server's and the mean of an rb node's
// (the idle background of hagd and sshfs, measured over as long a quiet
// time, subtracted), and the same for `verify --limit` of one node. Each
// of GRIDHA_RBNODE_BENCH_SAMPLES (default 5) samples runs
// GRIDHA_RBNODE_BENCH_REPS (default 10) verifies in a row so that the
// kernel's 10 ms CPU ticks resolve a few milliseconds per verify (with 5,
// one node read 0.058 s and, in the next run, 0.044 s with 10). Two
// ratios, each of the medians of GRIDHA_RBNODE_BENCH_PAIRS (default 7)
// alternating samples: a no-op `install state-server rb-node` against
// `verify` of the same hosts (per size), and `verify --limit r01` out of
// the whole bed against the one-node inventory (state server and r01).
//
//	go test -run '^$' -bench 'BenchmarkVerifyRBNodes$' -benchtime 1x ./cmd/gridha
func BenchmarkVerifyRBNodes(b *testing.B) {
	sizes := envInts(b, "GRIDHA_RBNODE_BENCH_NODES", "1,10", 1, 40)
	maxN := sizes[len(sizes)-1]
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	bin := b.TempDir()
	gridha, standin := filepath.Join(bin, "gridha"), filepath.Join(bin, "rb-jobd")
	// Built as make dist builds what the packages ship (static, stripped):
	// the nodes run that binary as hagd and as the fact agent, whose start
	// is part of every verify's cost there.
	for _, bld := range [][]string{{gridha, "."}, {standin, "../../testbed/cmd/gridha-demo"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bld[0], bld[1])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build %s: %v\n%s", bld[1], err, out)
		}
	}
	names := []string{"state1"}
	for i := 1; i <= maxN; i++ {
		names = append(names, fmt.Sprintf("r%02d", i))
	}
	bed := testbed.New(b, names...)
	srv := bed.Host("state1")
	if err := srv.StartMariaDB(ctx); err != nil {
		b.Fatal(err)
	}
	for _, n := range names[1:] {
		h := bed.Host(n)
		if _, err := h.Exec(ctx, "mkdir", "-p", "/opt/standin"); err != nil {
			b.Fatal(err)
		}
		if err := h.CopyIn(standin, "/opt/standin/rb-jobd"); err != nil {
			b.Fatal(err)
		}
		if err := h.WriteFile("/etc/init.d/rb-jobd", []byte(standins.JobdInitScript("/opt/standin/rb-jobd")), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	// inventoryOf is the inventory of the state server and the first k
	// nodes: the bed's (k = maxN), and the one-node inventory that
	// `verify --limit r01` of the whole bed is compared with.
	inventoryOf := func(k int) string {
		var hosts, groups, nodes strings.Builder
		fmt.Fprintf(&hosts, "  state1: {address: %s, hostname: %s, roles: [state-server]}\n", srv.Addr, srv.Hostname)
		for i, n := range names[1 : k+1] {
			h := bed.Host(n)
			fmt.Fprintf(&hosts, "  %s: {address: %s, hostname: %s, roles: [rb-node]}\n", n, h.Addr, h.Hostname)
			g := fmt.Sprintf("g%02d", i/2+1)
			if i%2 == 0 {
				fmt.Fprintf(&groups, "      %s: {service_ip: %s/24, iface: eth0}\n", g, bed.SpareAddr(i/2))
			}
			fmt.Fprintf(&nodes, "      %s: {%s: %d}\n", n, g, 100-50*(i%2))
		}
		return fmt.Sprintf(`hosts:
%sroles:
  state-server:
    export: /srv/rb-state
    mysql:
      password_file: lb-password
  rb-node:
    state_server: state1
    shared_fs: sshfs
    services: [rb-jobd]
    state_dirs: [/var/edgwl, /var/myproxy]
    hagd:
      iface: [eth0]
    groups:
%s    nodes:
%s`, hosts.String(), groups.String(), nodes.String())
	}
	inv := bed.WriteInventory(b, inventoryOf(maxN))
	if err := os.WriteFile(filepath.Join(filepath.Dir(inv), "lb-password"), []byte("bench-LB-password\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	inv1 := filepath.Join(filepath.Dir(inv), "one-node.yaml")
	if err := os.WriteFile(inv1, []byte(bed.DefaultsYAML()+inventoryOf(1)), 0o600); err != nil {
		b.Fatal(err)
	}
	runIn := func(inventory string, args ...string) (report.JSONDocument, int) {
		cmd := exec.CommandContext(ctx, gridha, append([]string{"-i", inventory, "-o", "json"}, args...)...)
		out, _ := cmd.Output()
		var doc report.JSONDocument
		if err := json.Unmarshal(out, &doc); err != nil {
			b.Fatalf("gridha %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return doc, doc.ExitCode
	}
	run := func(args ...string) (report.JSONDocument, int) { return runIn(inv, args...) }
	if doc, code := run("install", "state-server"); code != 0 {
		b.Fatalf("install state-server: exit %d: %+v", code, doc.Hosts)
	}
	// Thirty nodes mounting their share at once exceed sshd's MaxStartups
	// on the state server (10 unauthenticated connections, then random
	// drops): a node or two fail with "Connection reset by peer" and the
	// next install converges them. Bounded: three installs.
	for i := 1; ; i++ {
		doc, code := run("install", "rb-node")
		if code == 0 {
			break
		}
		var failed []string
		for _, h := range doc.Hosts {
			if h.Recap["failed"] > 0 || h.Unreachable {
				failed = append(failed, h.Name+": "+h.Stopped)
			}
		}
		if i == 3 {
			b.Fatalf("install rb-node, 3 times: exit %d: %s", code, strings.Join(failed, "; "))
		}
		b.Logf("install rb-node #%d: exit %d (%s); again", i, code, strings.Join(failed, "; "))
	}
	if _, code := run("install", "rb-node"); code != 0 {
		b.Fatalf("install rb-node on converged nodes: exit %d", code)
	}
	cpuOf := func(hs []string) []time.Duration {
		out := make([]time.Duration, len(hs))
		for i, n := range hs {
			c, err := bed.Host(n).CPU()
			if err != nil {
				b.Fatal(err)
			}
			out[i] = c
		}
		return out
	}
	// measure: per sample, reps verifies back to back; the hosts' CPU is
	// counted over the whole batch and divided by reps, because the kernel
	// counts in 10 ms ticks and one verify of an rb node is a few ticks:
	// one verify per sample cannot tell 0.05 s from 0.06 s. The idle
	// background (hagd, sshfs) is measured right after over as long a
	// quiet time and subtracted. Reported: the median of samples samples
	// (wall per verify, the state server's CPU, an rb node's mean CPU).
	reps := envInts(b, "GRIDHA_RBNODE_BENCH_REPS", "10", 1, 50)[0]
	samples := envInts(b, "GRIDHA_RBNODE_BENCH_SAMPLES", "5", 1, 50)[0]
	type sample struct{ wall, srvCPU, nodeCPU time.Duration }
	background := func(hs []string, d time.Duration) []time.Duration {
		c0 := cpuOf(hs)
		time.Sleep(d)
		c1 := cpuOf(hs)
		for i := range c1 {
			c1[i] -= c0[i]
		}
		return c1
	}
	measure := func(hs []string, args ...string) sample {
		var walls, srvs, nodesCPU []time.Duration
		for range samples {
			c0 := cpuOf(hs)
			start := time.Now()
			for range reps {
				doc, code := run(append([]string{"verify"}, args...)...)
				if code != 0 {
					b.Fatalf("verify %s: exit %d: %+v", strings.Join(args, " "), code, doc.Hosts)
				}
			}
			wall := time.Since(start)
			c1 := cpuOf(hs)
			bg := background(hs, wall)
			var srvC, nodeSum time.Duration
			for i, n := range hs {
				d := c1[i] - c0[i] - bg[i]
				if n == "state1" {
					srvC = d
				} else {
					nodeSum += d
				}
			}
			r := time.Duration(reps)
			walls, srvs = append(walls, wall/r), append(srvs, srvC/r)
			nodesCPU = append(nodesCPU, nodeSum/time.Duration(len(hs)-1)/r)
		}
		return sample{median(walls), median(srvs), median(nodesCPU)}
	}
	// Ratios of two short runs on a shared machine swing with the load
	// (one sample each gave 0.60-1.42x for the same pair): each pair is
	// measured pairs times, alternating, and the medians compared.
	pairs := envInts(b, "GRIDHA_RBNODE_BENCH_PAIRS", "7", 1, 50)[0]
	timed := func(inventory string, okCodes int, args ...string) time.Duration {
		start := time.Now()
		doc, code := runIn(inventory, args...)
		d := time.Since(start)
		if code > okCodes {
			b.Fatalf("gridha -i %s %s: exit %d: %+v", inventory, strings.Join(args, " "), code, doc.Hosts)
		}
		if args[0] == "install" {
			for _, h := range doc.Hosts {
				if h.Recap["changed"] != 0 {
					b.Fatalf("no-op install %s: %s changed %d", strings.Join(args, " "), h.Name, h.Recap["changed"])
				}
			}
		}
		return d
	}
	pairMedians := func(a, b func() time.Duration) (time.Duration, time.Duration) {
		var as, bs []time.Duration
		for range pairs {
			as, bs = append(as, a()), append(bs, b())
		}
		return median(as), median(bs)
	}
	type row struct {
		nodes       int
		all, single sample
		// install: no-op `install state-server rb-node`, verify: the
		// same hosts' verify, alternating (wall, medians).
		install, verify time.Duration
	}
	var rows []row
	// limitN: verify --limit r01 out of the whole bed's inventory;
	// one1: verify --limit r01 of the one-node inventory (the same hosts
	// verified, the same phases: the other nodes' cost, if any); whole1:
	// verify of the one-node inventory (its state server too; exit 1 is
	// accepted: the state server also serves the bed's other nodes,
	// drift for the one-node inventory).
	var limitN, one1, whole1 time.Duration
	for b.Loop() {
		rows = rows[:0]
		for _, n := range sizes {
			hs := names[:n+1]
			limit := strings.Join(hs, ",")
			rw := row{nodes: n}
			rw.all = measure(hs, "--limit", limit)
			rw.single = measure([]string{"state1", names[1]}, "rb-node", "--limit", names[1])
			rw.install, rw.verify = pairMedians(
				func() time.Duration { return timed(inv, 0, "install", "state-server", "rb-node", "--limit", limit) },
				func() time.Duration { return timed(inv, 0, "verify", "--limit", limit) })
			rows = append(rows, rw)
		}
		limitN, one1 = pairMedians(
			func() time.Duration { return timed(inv, 0, "verify", "--limit", names[1]) },
			func() time.Duration { return timed(inv1, 0, "verify", "--limit", names[1]) })
		_, whole1 = pairMedians(
			func() time.Duration { return timed(inv, 0, "verify", "--limit", names[1]) },
			func() time.Duration { return timed(inv1, 1, "verify") })
	}
	load, _ := os.ReadFile("/proc/loadavg")
	lf := strings.Fields(string(load))
	fmt.Printf("verify of the real roles (state server + rb nodes with sshfs, hagd, stand-in RB service), per verify: median of %d samples of %d verifies each, load %s\n", samples, reps, strings.Join(lf[:min(3, len(lf))], " "))
	fmt.Printf("  %5s  %8s  %16s  %16s    %-52s  %s\n", "nodes", "wall", "state server CPU", "rb node CPU", "verify rb-node --limit r01: wall, state server, node", "no-op install / verify (target <= 1.15)")
	for _, rw := range rows {
		fmt.Printf("  %5d  %7.3fs  %15.3fs  %15.3fs    %-52s  %.3fs / %.3fs = %.2f\n", rw.nodes, rw.all.wall.Seconds(), rw.all.srvCPU.Seconds(), rw.all.nodeCPU.Seconds(),
			fmt.Sprintf("%.3fs, %.3fs, %.3fs", rw.single.wall.Seconds(), rw.single.srvCPU.Seconds(), rw.single.nodeCPU.Seconds()),
			rw.install.Seconds(), rw.verify.Seconds(), rw.install.Seconds()/rw.verify.Seconds())
		b.ReportMetric(rw.all.wall.Seconds(), fmt.Sprintf("s/verify-%dnodes", rw.nodes))
		b.ReportMetric(rw.all.nodeCPU.Seconds(), fmt.Sprintf("cpu-s/node-%dnodes", rw.nodes))
		b.ReportMetric(rw.all.srvCPU.Seconds(), fmt.Sprintf("cpu-s/server-%dnodes", rw.nodes))
		b.ReportMetric(rw.install.Seconds()/rw.verify.Seconds(), fmt.Sprintf("install/verify-%dnodes", rw.nodes))
	}
	fmt.Printf("  verify --limit %s out of %d nodes %.3fs; of the one-node inventory: --limit %s %.3fs (ratio %.2f), whole %.3fs (ratio %.2f; target <= 1.3); medians of %d, alternating\n",
		names[1], maxN, limitN.Seconds(), names[1], one1.Seconds(), limitN.Seconds()/one1.Seconds(), whole1.Seconds(), limitN.Seconds()/whole1.Seconds(), pairs)
	b.ReportMetric(limitN.Seconds()/whole1.Seconds(), "limit/one-node-inventory")
}
