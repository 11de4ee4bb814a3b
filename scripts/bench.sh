#!/usr/bin/env bash
# make bench: the figures gridha is judged by, printed by Go benchmarks that
# run against real test-bed hosts (root needed). Each section says what it
# measures; trials are bounded inside each benchmark.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
if [ "$(id -u)" -ne 0 ]; then echo "make bench needs root (network namespaces)" >&2; exit 1; fi
status=0
section() { printf '\n=== %s\n' "$*"; }
bench() { # package, benchmark regexp, extra env...
  local pkg=$1 re=$2; shift 2
  env "$@" go test -run '^$' -bench "$re" -benchtime 1x -count 1 -timeout 30m "$pkg" 2>&1 \
    | grep -Ev '^(goos|goarch|pkg|cpu|PASS)' || status=1
}
section "test bed: bring-up and tear-down of 1, 5 and 20 hosts"
bench ./testbed 'BenchmarkUp$'
section "SSH transport: one command round trip and one file write over an open connection"
bench ./installer/ssh 'Benchmark(Run|WriteFile)$'
section "engine: no-change run of the primitive-step suite on 1, 5 and 20 hosts (wall time, connections and sessions per host)"
bench ./installer/steps 'BenchmarkPrimitiveSuite$'
section "verify: wall time and SSH sessions per host on 1, 10 and 30 hosts"
bench ./cmd/gridha 'BenchmarkVerify$'
section "verify and no-change install, 1 / 10 / 30 hosts x 10 / 50 / 200 steps: wall, hosts' CPU, install/verify (alternating pairs), verify --limit s01 / one-host inventory; charts in bench/"
bench ./cmd/gridha 'BenchmarkScaling$'
section "verify of the real roles: state server + 1, 10 and 30 rb nodes (sshfs, hagd), wall time and the hosts' CPU; no-op install / verify; verify --limit r01 / one-node inventory"
bench ./cmd/gridha 'BenchmarkVerifyRBNodes$' GRIDHA_RBNODE_BENCH_NODES=1,10,30
section "gridha vs Ansible (ansible-core, pipelining, forks 20) on the same bed hosts: audit and no-change converge, 5 and 20 hosts"
bench ./cmd/gridha 'BenchmarkAnsible$'
section "rb-node: move of ~350 MB of RB state through the confined sshfs+bindfs mount (with verification) vs rsync -a of the same folders, same bed, same run"
bench ./roles 'BenchmarkStateMove$'
section "hagd: failover time over 10 induced failures, default and tuned ΔT1/ΔT2"
bench ./hagd 'BenchmarkFailover$'
section "hagd vs keepalived: kill -9 of the master -> prober answered by the new master (10 each: hagd default, tuned; keepalived VRRP unicast advert_int 1), service IP on two nodes; rank after 10 fresh starts"
bench ./hagd 'BenchmarkFencedFailover$'
section "state pool: job submissions through the rb service IP via sshfs vs GlusterFS (throughput, latency); crash of the rb master / a pool member -> the user's next acknowledged submission (median and max of 5)"
bench ./cmd/gridha 'BenchmarkStatePool$'
section "dns-updater: time from a BDII's death to its removal from DNS (5 s interval), median and max of 10 kills, quiet and with every CPU loaded (stress-ng)"
bench ./dnsupdater 'BenchmarkDNSRemoval$'
exit $status
