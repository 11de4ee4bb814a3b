package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/roles"
	"github.com/gridha/gridha/testbed"
)

// ansiblePlaybook renders the steps scaleRole{n} plans for a host as an
// Ansible playbook of the same tasks (file, copy, lineinfile), so both tools
// check and converge exactly the same state on the same hosts.
func ansiblePlaybook(b *testing.B, n int) string {
	inv := &inventory.Inventory{Hosts: []*inventory.Host{{Name: "HOST", Roles: []string{"base"}}}}
	plan, err := scaleRole{n}.Plan(inv, roles.Options{})
	if err != nil {
		b.Fatal(err)
	}
	q := strconv.Quote
	var t strings.Builder
	fmt.Fprintf(&t, "# The %d steps of BenchmarkScaling's role as Ansible tasks (written by BenchmarkAnsible).\n", n)
	t.WriteString("- hosts: all\n  gather_facts: false\n  tasks:\n")
	for _, ph := range plan.Phases {
		for _, s := range ph.Steps["HOST"] {
			switch s := s.(type) {
			case steps.Dir:
				fmt.Fprintf(&t, "    - ansible.builtin.file: {path: %s, state: directory, mode: %q, owner: root, group: root}\n", s.Path, installer.OctalMode(s.Mode))
			case steps.File:
				content := strings.ReplaceAll(string(s.Content), "HOST", "{{ inventory_hostname }}")
				fmt.Fprintf(&t, "    - ansible.builtin.copy: {dest: %s, content: %s, mode: %q, owner: root, group: root}\n", s.Path, q(content), installer.OctalMode(s.Mode))
			case steps.KeyValue:
				fmt.Fprintf(&t, "    - ansible.builtin.lineinfile: {path: %s, regexp: %s, line: %s, create: true}\n", s.Path, q("^"+s.Key+"="), q(s.Key+"="+s.Value))
			case steps.Symlink:
				fmt.Fprintf(&t, "    - ansible.builtin.file: {path: %s, src: %s, state: link}\n", s.Path, s.Target)
			default:
				b.Fatalf("no Ansible task for %T", s)
			}
		}
	}
	return t.String()
}

var ansibleRecap = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// BenchmarkAnsible compares gridha with Ansible (ansible-core from Debian,
// pipelining on, forks 20, no fact gathering) on the same converged bed
// hosts, alternating in the same run: verify against ansible-playbook
// --check, and a no-change install against a no-change playbook run, for
// GRIDHA_ANSIBLE_HOSTS (default 5,20) hosts and GRIDHA_ANSIBLE_STEPS (default
// 20) steps per host. Wall time (gridha: median of 3; Ansible: one run, it
// takes long) and the hosts' CPU. The playbook is written to bench/. Needs
// ansible-playbook (apt-get install ansible-core); without it, it says so
// and stops.
//
//	go test -run '^$' -bench 'BenchmarkAnsible$' -benchtime 1x ./cmd/gridha
func BenchmarkAnsible(b *testing.B) {
	ap, err := exec.LookPath("ansible-playbook")
	if err != nil {
		b.Skip("ansible-playbook not installed (apt-get install ansible-core): no comparison")
	}
	hostSizes := envInts(b, "GRIDHA_ANSIBLE_HOSTS", "5,20", 1, 60)
	n := envInts(b, "GRIDHA_ANSIBLE_STEPS", "20", 1, 1000)[0]
	maxN := hostSizes[len(hostSizes)-1]
	names := make([]string, maxN)
	hostRoles := map[string][]string{}
	for i := range names {
		names[i] = fmt.Sprintf("a%02d", i+1)
		hostRoles[names[i]] = []string{"base"}
	}
	bed := testbed.New(b, names...)
	inv := bed.WriteInventory(b, bed.HostsYAML(hostRoles))
	reg := roles.NewRegistry(scaleRole{n})
	if r := gridhaWith(b, reg, false, "install", "base", "-i", inv); r.code != 0 {
		b.Fatalf("install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	dir := b.TempDir()
	out := os.Getenv("GRIDHA_BENCH_OUT")
	if out == "" {
		out = filepath.Join("..", "..", "bench")
	}
	playbook := filepath.Join(out, fmt.Sprintf("ansible-scaling-%d.yml", n))
	if err := os.WriteFile(playbook, []byte(ansiblePlaybook(b, n)), 0o644); err != nil {
		b.Fatal(err)
	}
	var hosts strings.Builder
	hosts.WriteString("[all]\n")
	for _, nm := range names {
		fmt.Fprintf(&hosts, "%s ansible_host=%s\n", nm, bed.Host(nm).Addr)
	}
	fmt.Fprintf(&hosts, "[all:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\nansible_python_interpreter=/usr/bin/python3\n"+
		"ansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes'\n", bed.ClientKeyFile, bed.KnownHostsFile)
	invFile := filepath.Join(dir, "hosts.ini")
	cfg := filepath.Join(dir, "ansible.cfg")
	if err := os.WriteFile(invFile, []byte(hosts.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("[defaults]\nforks = 20\nhost_key_checking = True\nretry_files_enabled = False\n"+
		"[ssh_connection]\npipelining = True\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	hostCPU := func(hs []string) time.Duration {
		var sum time.Duration
		for _, nm := range hs {
			c, err := bed.Host(nm).CPU()
			if err != nil {
				b.Fatal(err)
			}
			sum += c
		}
		return sum
	}
	ansible := func(hs []string, check bool) (time.Duration, time.Duration) {
		args := []string{"-i", invFile, "--limit", strings.Join(hs, ","), playbook}
		if check {
			args = append(args, "--check")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, ap, args...)
		cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+cfg, "HOME="+dir, "ANSIBLE_HOME="+filepath.Join(dir, ".ansible"), "ANSIBLE_NOCOLOR=1")
		c0 := hostCPU(hs)
		start := time.Now()
		o, err := cmd.CombinedOutput()
		wall := time.Since(start)
		cpu := hostCPU(hs) - c0
		if err != nil {
			b.Fatalf("ansible-playbook %s: %v\n%s", strings.Join(args, " "), err, o)
		}
		recaps := ansibleRecap.FindAllStringSubmatch(string(o), -1)
		for _, m := range recaps {
			if m[3] != "0" || m[4] != "0" || m[5] != "0" {
				b.Fatalf("ansible-playbook %s: %s not unchanged: %s\n%s", strings.Join(args, " "), m[1], m[0], o)
			}
		}
		if len(recaps) != len(hs) {
			b.Fatalf("ansible-playbook: %d recap lines for %d hosts\n%s", len(recaps), len(hs), o)
		}
		return wall, cpu
	}
	gridha := func(hs []string, args ...string) (time.Duration, time.Duration) {
		var walls, cpus []time.Duration
		for range 3 {
			c0 := hostCPU(hs)
			start := time.Now()
			r := gridhaWith(b, reg, false, append(args, "-i", inv, "--limit", strings.Join(hs, ","))...)
			walls = append(walls, time.Since(start))
			cpus = append(cpus, hostCPU(hs)-c0)
			if r.code != 0 {
				b.Fatalf("gridha %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stdout)
			}
		}
		return median(walls), median(cpus)
	}
	type row struct {
		hosts                           int
		gv, gvCPU, av, avCPU, gi, giCPU time.Duration
		ai, aiCPU                       time.Duration
	}
	var rows []row
	for b.Loop() {
		rows = rows[:0]
		for _, h := range hostSizes {
			hs := names[:h]
			rw := row{hosts: h}
			rw.gv, rw.gvCPU = gridha(hs, "verify")
			rw.av, rw.avCPU = ansible(hs, true)
			rw.gi, rw.giCPU = gridha(hs, "install", "base")
			rw.ai, rw.aiCPU = ansible(hs, false)
			rows = append(rows, rw)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	lf := strings.Fields(string(load))
	ver, _ := exec.Command(ap, "--version").Output()
	fmt.Printf("gridha vs %s (pipelining, forks 20, no fact gathering), %d steps per host, same converged hosts, load %s\n",
		strings.SplitN(string(ver), "\n", 2)[0], n, strings.Join(lf[:min(3, len(lf))], " "))
	fmt.Printf("  %5s  %-34s  %-34s\n", "hosts", "audit: verify / --check (ratio)", "no-change converge (ratio)")
	for _, rw := range rows {
		fmt.Printf("  %5d  %6.2fs / %7.2fs (%5.1fx)          %6.2fs / %7.2fs (%5.1fx)\n", rw.hosts,
			rw.gv.Seconds(), rw.av.Seconds(), rw.av.Seconds()/rw.gv.Seconds(),
			rw.gi.Seconds(), rw.ai.Seconds(), rw.ai.Seconds()/rw.gi.Seconds())
		fmt.Printf("  %5s  host CPU/host %.3fs / %.3fs          %.3fs / %.3fs\n", "", rw.gvCPU.Seconds()/float64(rw.hosts),
			rw.avCPU.Seconds()/float64(rw.hosts), rw.giCPU.Seconds()/float64(rw.hosts), rw.aiCPU.Seconds()/float64(rw.hosts))
		b.ReportMetric(rw.av.Seconds()/rw.gv.Seconds(), fmt.Sprintf("x-audit-%dh", rw.hosts))
		b.ReportMetric(rw.ai.Seconds()/rw.gi.Seconds(), fmt.Sprintf("x-noop-%dh", rw.hosts))
	}
	fmt.Printf("  playbook: %s\n", playbook)
}
