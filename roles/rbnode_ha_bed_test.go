package roles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/hagd"
	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
	"github.com/gridha/gridha/testbed/standins"
)

// TestMain lets the rb-node tests run this test binary as a helper process
// (GRIDHA_RBNODE_INVENTORY: TestRBNodeKilledMidCopy) and on test-bed hosts:
// installed by the role as /usr/local/sbin/gridha (os.Executable(), as the
// real binary installs itself) it is `gridha hagd ...`; copied as rb-jobd
// and rb-client it is the stand-in RB job submission service and its client.
func TestMain(m *testing.M) {
	testbed.RunWatcherIfAsked() // TestDNSOnBed's unprivileged watcher
	if p := os.Getenv("GRIDHA_RBNODE_INVENTORY"); p != "" {
		os.Exit(rbNodeHelper(p))
	}
	var err error
	switch filepath.Base(os.Args[0]) {
	case "gridha":
		app := &cli.App{Name: "gridha", Commands: []*cli.Command{hagd.Command()}}
		err = app.Run(os.Args)
	case "rb-jobd":
		err = standins.RunJobd(os.Args[1:])
	case "rb-client":
		err = standins.JobClient(os.Args[1:])
	case "hagd-probe":
		err = hagdProbe(os.Args[1:])
	default:
		os.Exit(m.Run())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, filepath.Base(os.Args[0])+":", err)
		os.Exit(1)
	}
	os.Exit(0)
}

const (
	standinDir = "/opt/standin"
	jobdBin    = standinDir + "/rb-jobd"
	clientBin  = standinDir + "/rb-client"
	jobdPort   = "7772"
)

// serviceIP is the k-th free address of the bed (198.18.N.200+k).
func serviceIP(bed *testbed.Bed, k int) string {
	return fmt.Sprintf("%s.%d", strings.TrimSuffix(bed.Subnet, ".0/24"), 200+k)
}

// lenientHAGD are hagd timings with slack for a loaded 2-core machine.
const lenientHAGD = `      heartbeat: 250ms
      dt1: 2s
      dt2: 500ms
      timeout: 15s
      stop_timeout: 5s
      status_interval: 1s
      backoff: 10s
      lease_ttl: 8s
      lease_renew: 500ms
      lease_timeout: 500ms
      debug: 3
`

// haBedInventory writes the inventory of the HA tests: state1 and the rb
// nodes; groups and nodes as given (YAML under roles.rb-node).
func haBedInventory(t *testing.T, bed *testbed.Bed, groupsNodes, extra string) *inventory.Inventory {
	t.Helper()
	var hosts strings.Builder
	hosts.WriteString("hosts:\n")
	for _, h := range bed.Hosts() {
		role := "rb-node"
		if h.Name == "state1" {
			role = "state-server"
		}
		fmt.Fprintf(&hosts, "  %s: {address: %s, hostname: %s, roles: [%s]}\n", h.Name, h.Addr, h.Hostname, role)
	}
	body := hosts.String() + `roles:
  state-server:
    export: /srv/rb-state # /srv is private to each bed host (/export would be this machine's)
    mysql:
      password_file: lb-password
  rb-node:
    state_server: state1
    services: [rb-jobd]
    state_dirs: [/var/edgwl, /var/myproxy]
` + extra + `    hagd:
      iface: [eth0]
` + lenientHAGD + groupsNodes
	path := bed.WriteInventory(t, body)
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "lb-password"), []byte("LB-bed-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatalf("inventory:\n%s\n%v", body, err)
	}
	return inv
}

// installStandin puts the stand-in RB service (rb-jobd, init script) on h.
func installStandin(t *testing.T, ctx context.Context, h *testbed.Host) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(ctx, "mkdir", "-p", standinDir); err != nil {
		t.Fatal(err)
	}
	if err := h.CopyIn(self, jobdBin); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(ctx, "ln", "-sf", jobdBin, clientBin); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile("/etc/init.d/rb-jobd", []byte(standins.JobdInitScript(jobdBin)), 0o755); err != nil {
		t.Fatal(err)
	}
}

// haPlan is the HA phase alone, for every rb node.
func haPlan(t *testing.T, inv *inventory.Inventory) *installer.Plan {
	t.Helper()
	st := map[string][]installer.Step{}
	for _, n := range inv.HostsWithRole("rb-node") {
		s, err := RBNode{}.haSteps(inv, n, Options{})
		if err != nil {
			t.Fatal(err)
		}
		st[n.Name] = s
	}
	return &installer.Plan{Phases: []installer.Phase{{Name: PhaseRBHA, Steps: st}}}
}

func runPlan(t *testing.T, ctx context.Context, inv *inventory.Inventory, plan *installer.Plan, mode installer.Mode) *installer.Report {
	t.Helper()
	rep, err := installer.Run(ctx, bedDialer(inv), plan, installer.RunOptions{Mode: mode, Secrets: &installer.Redactor{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		t.Logf("%v %s %s: %s %s", mode, r.Host, r.Step, r.Status, r.Message)
	}
	return rep
}

// script runs the service script on h and returns its output and exit code.
func script(t *testing.T, ctx context.Context, h *testbed.Host, args string) (string, int) {
	t.Helper()
	out, err := h.Sh(ctx, "/opt/lcg/sbin/lcg-ha-service "+args+" 2>&1; echo \"rc=$?\"")
	if err != nil {
		t.Fatalf("%s: lcg-ha-service %s: %v", h.Name, args, err)
	}
	i := strings.LastIndex(out, "rc=")
	rc := -1
	fmt.Sscanf(out[i:], "rc=%d", &rc)
	return out[:i], rc
}

func hasIP(t *testing.T, ctx context.Context, h *testbed.Host, cidr string) bool {
	t.Helper()
	out, err := h.Sh(ctx, "ip -o addr show dev eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[3] == cidr {
			return true
		}
	}
	return false
}

func links(t *testing.T, ctx context.Context, h *testbed.Host) string {
	t.Helper()
	out, err := h.Sh(ctx, "readlink /var/edgwl /var/myproxy")
	if err != nil {
		t.Fatalf("%s: readlink: %v", h.Name, err)
	}
	return strings.TrimSpace(out)
}

// waitFor polls cond every 200 ms until it holds or max passes.
func waitFor(t *testing.T, max time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(max); ; {
		if cond() {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, max)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func dumpHA(t *testing.T, ctx context.Context, hs ...*testbed.Host) {
	for _, h := range hs {
		out, _ := h.Sh(ctx, "tail -n 30 /var/log/hagd.log; echo ---; cat /var/log/lcg-ha-service.log; echo ---; tail -n 5 /var/log/rb-jobd.log")
		t.Logf("%s:\n%s", h.Name, out)
	}
}

func TestRBNodeHAOnBed(t *testing.T) {
	bed := testbed.New(t, "state1", "rb1", "rb2", "rb3")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	srv := bed.Host("state1")
	rb1, rb2, rb3 := bed.Host("rb1"), bed.Host("rb2"), bed.Host("rb3")
	nodes := []*testbed.Host{rb1, rb2, rb3}
	ipA, ipB := serviceIP(bed, 0)+"/24", serviceIP(bed, 1)+"/24"
	inv := haBedInventory(t, bed, fmt.Sprintf(`    groups:
      rb-a: {service_ip: %s, iface: eth0}
      rb-b: {service_ip: %s, iface: eth0}
    nodes:
      rb1: {rb-a: 100}
      rb2: {rb-b: 100}
      rb3: {rb-a: 50, rb-b: 40}
`, ipA, ipB), "")
	if err := srv.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	requireNo(t, bedRun(t, ctx, inv, NewStateServer(), Options{}, installer.ModeApply), installer.StatusFailed, installer.StatusUnreachable)

	// What the storage half leaves: the shared storage mounted (here a
	// tmpfs per node: this test is about the HA half), a share per group,
	// the state folders linked to the node's own group, the RB services.
	home := map[string]string{"rb1": "rb-a", "rb2": "rb-b", "rb3": "rb-a"}
	for _, h := range nodes {
		installStandin(t, ctx, h)
		if _, err := h.Sh(ctx, `mkdir -p /mnt/rb-state /etc/sysconfig && mount -t tmpfs shared /mnt/rb-state &&
mkdir -p /mnt/rb-state/rb-a/edgwl /mnt/rb-state/rb-a/myproxy /mnt/rb-state/rb-b/edgwl /mnt/rb-state/rb-b/myproxy &&
ln -s /mnt/rb-state/`+home[h.Name]+`/edgwl /var/edgwl && ln -s /mnt/rb-state/`+home[h.Name]+`/myproxy /var/myproxy &&
echo 'EDG_WL_BKSERVERD_ADDOPTS="--mysql lbserver/LB-bed-secret@`+srv.Hostname+`:lbserver20"' > /etc/sysconfig/edg`); err != nil {
			t.Fatal(err)
		}
	}

	plan := haPlan(t, inv)
	before, err := rb1.Snapshot("/var/log", "/run")
	if err != nil {
		t.Fatal(err)
	}
	if c := changedSteps(runPlan(t, ctx, inv, plan, installer.ModeCheck)); len(c) == 0 {
		t.Fatal("--check on fresh nodes found nothing to do")
	}
	after, _ := rb1.Snapshot("/var/log", "/run")
	if d := testbed.DiffSnapshots(before, after); len(d) > 0 {
		t.Fatalf("--check wrote on rb1: %v", d)
	}

	rep := runPlan(t, ctx, inv, plan, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
	defer func() {
		if t.Failed() {
			dumpHA(t, context.Background(), nodes...)
		}
	}()

	// Files, modes, owners; the same key everywhere, the local one.
	localKey, err := os.ReadFile(filepath.Join(inv.SecretsDir, "hagd", "key"))
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	bin, _ := os.ReadFile(self)
	sum := sha256.Sum256(bin)
	for _, h := range nodes {
		out, err := h.Sh(ctx, "stat -c '%n %a %U:%G' /opt/lcg/etc/hagd.key /opt/lcg/etc/hagd-mysql.pw /opt/lcg/etc/hagd.conf /etc/sysconfig/lcg-ha /opt/lcg/sbin/lcg-ha-service /etc/init.d/hagd /usr/local/sbin/gridha")
		if err != nil {
			t.Fatal(err)
		}
		want := "/opt/lcg/etc/hagd.key 600 root:root\n/opt/lcg/etc/hagd-mysql.pw 600 root:root\n/opt/lcg/etc/hagd.conf 644 root:root\n" +
			"/etc/sysconfig/lcg-ha 644 root:root\n/opt/lcg/sbin/lcg-ha-service 755 root:root\n/etc/init.d/hagd 755 root:root\n/usr/local/sbin/gridha 755 root:root\n"
		if out != want {
			t.Errorf("%s: modes:\n%s\nwant\n%s", h.Name, out, want)
		}
		if k, _ := h.ReadFile("/opt/lcg/etc/hagd.key"); string(k) != string(localKey) {
			t.Errorf("%s: hagd.key differs from the local one", h.Name)
		}
		if out, _ := h.Sh(ctx, "sha256sum < /usr/local/sbin/gridha"); !strings.HasPrefix(out, hex.EncodeToString(sum[:])) {
			t.Errorf("%s: gridha on the node is not this binary: %s", h.Name, out)
		}
		conf, _ := h.ReadFile("/opt/lcg/etc/hagd.conf")
		cfg, err := hagd.ParseConfig("hagd.conf", conf)
		if err != nil || cfg.ID != h.Name || cfg.MySQLHost != srv.Addr || cfg.DT1 != 2*time.Second {
			t.Errorf("%s: hagd.conf: %v %+v", h.Name, err, cfg)
		}
		if out, err := h.Sh(ctx, "ls /etc/rc2.d /etc/rc3.d /etc/rc5.d | grep -c '^S[0-9][0-9]hagd$'; /etc/init.d/hagd status"); err != nil || !strings.HasPrefix(out, "3\n") {
			t.Errorf("%s: hagd not enabled in runlevels 2, 3, 5 or not running: %q %v", h.Name, out, err)
		}
	}

	// hagd elects: rb1 serves rb-a, rb2 serves rb-b, rb3 is the backup.
	waitFor(t, 60*time.Second, "rb1 master of rb-a and rb2 of rb-b", func() bool {
		_, a := script(t, ctx, rb1, "status rb-a")
		_, b := script(t, ctx, rb2, "status rb-b")
		return a == 0 && b == 0
	})
	if !hasIP(t, ctx, rb1, ipA) || !hasIP(t, ctx, rb2, ipB) || hasIP(t, ctx, rb3, ipA) || hasIP(t, ctx, rb3, ipB) {
		t.Fatal("service IPs not where the election put them")
	}
	if l := links(t, ctx, rb2); l != "/mnt/rb-state/rb-b/edgwl\n/mnt/rb-state/rb-b/myproxy" {
		t.Fatalf("rb2 links: %q", l)
	}

	// Second run: nothing changes (the running masters are left alone).
	if c := changedSteps(runPlan(t, ctx, inv, plan, installer.ModeApply)); len(c) > 0 {
		t.Fatalf("second run changed:\n%s", strings.Join(c, "\n"))
	}

	// hagd stopped (init script): it stops the services it ran, IPs down.
	for _, h := range nodes {
		if out, err := h.Sh(ctx, "/etc/init.d/hagd stop"); err != nil {
			t.Fatalf("%s: hagd stop: %s %v", h.Name, out, err)
		}
	}
	if hasIP(t, ctx, rb1, ipA) || hasIP(t, ctx, rb2, ipB) {
		t.Fatal("service IPs still up after hagd stopped")
	}
	if _, rc := script(t, ctx, rb1, "status rb-a"); rc != 3 {
		t.Fatalf("rb1 status rb-a after hagd stop: %d, want 3", rc)
	}

	// The service script by hand on the backup rb3 (multigroup, slide 6).
	logStart, _ := rb3.ReadFile("/var/log/lcg-ha-service.log")
	for _, c := range []struct {
		args string
		rc   int
	}{{"status rb-b", 3}, {"start", 2}, {"restart rb-a", 2}, {"start rb-z", 2}} {
		if out, rc := script(t, ctx, rb3, c.args); rc != c.rc {
			t.Fatalf("rb3 %s: exit %d, want %d: %s", c.args, rc, c.rc, out)
		}
	}
	if out, rc := script(t, ctx, rb3, "start rb-b"); rc != 0 {
		t.Fatalf("start rb-b: %d %s", rc, out)
	}
	if !hasIP(t, ctx, rb3, ipB) || links(t, ctx, rb3) != "/mnt/rb-state/rb-b/edgwl\n/mnt/rb-state/rb-b/myproxy" {
		t.Fatalf("after start rb-b: ip %v links %q", hasIP(t, ctx, rb3, ipB), links(t, ctx, rb3))
	}
	if _, rc := script(t, ctx, rb3, "status rb-b"); rc != 0 {
		t.Fatalf("status rb-b after start: %d", rc)
	}
	logBefore, _ := rb3.ReadFile("/var/log/lcg-ha-service.log")
	if out, rc := script(t, ctx, rb3, "start rb-b"); rc != 0 {
		t.Fatalf("second start rb-b: %d %s", rc, out)
	}
	logAfter, _ := rb3.ReadFile("/var/log/lcg-ha-service.log")
	if added := strings.TrimPrefix(string(logAfter), string(logBefore)); strings.Contains(added, "up on") || strings.Contains(added, "started") || strings.Contains(added, " -> ") {
		t.Fatalf("second start changed something:\n%s", added)
	}
	if out, rc := script(t, ctx, rb3, "start rb-a"); rc != 1 || !strings.Contains(out, "already serves group rb-b") || hasIP(t, ctx, rb3, ipA) {
		t.Fatalf("start rb-a while serving rb-b: exit %d (want 1): %s", rc, out)
	}
	if out, rc := script(t, ctx, rb3, "stop rb-a"); rc != 0 || !hasIP(t, ctx, rb3, ipB) {
		t.Fatalf("stop rb-a (not served) must succeed and leave rb-b: %d %s", rc, out)
	}
	// A dead service while the IP is up: status fails (hagd fails over).
	if _, err := rb3.Sh(ctx, "kill $(cat /run/rb-jobd.pid)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "rb-jobd dead", func() bool {
		_, err := rb3.Sh(ctx, "/etc/init.d/rb-jobd status")
		return err != nil
	})
	if out, rc := script(t, ctx, rb3, "status rb-b"); rc != 1 || !strings.Contains(out, "rb-jobd is not running") {
		t.Fatalf("status with a dead service: %d %s", rc, out)
	}
	if out, rc := script(t, ctx, rb3, "stop rb-b"); rc != 0 {
		t.Fatalf("stop rb-b: %d %s", rc, out)
	}
	if hasIP(t, ctx, rb3, ipB) || links(t, ctx, rb3) != "/mnt/rb-state/rb-a/edgwl\n/mnt/rb-state/rb-a/myproxy" {
		t.Fatalf("after stop rb-b: ip %v, links %q (want back to rb3's own group rb-a)", hasIP(t, ctx, rb3, ipB), links(t, ctx, rb3))
	}
	for _, a := range []string{"status rb-b", "status rb-a"} {
		if _, rc := script(t, ctx, rb3, a); rc != 3 {
			t.Fatalf("%s after stop: %d, want 3", a, rc)
		}
	}
	if out, rc := script(t, ctx, rb3, "stop rb-b"); rc != 0 {
		t.Fatalf("second stop rb-b: %d %s", rc, out)
	}
	if out, rc := script(t, ctx, rb3, "start rb-a"); rc != 0 || !hasIP(t, ctx, rb3, ipA) {
		t.Fatalf("start rb-a: %d %s", rc, out)
	}
	if out, rc := script(t, ctx, rb3, "stop rb-a"); rc != 0 || hasIP(t, ctx, rb3, ipA) {
		t.Fatalf("stop rb-a: %d %s", rc, out)
	}
	if out, err := rb3.Sh(ctx, "/etc/init.d/rb-jobd status"); err == nil {
		t.Fatalf("rb-jobd still runs after stop: %s", out)
	}
	// No shared storage: start refuses to run the services on local disk.
	if _, err := rb3.Sh(ctx, "umount /mnt/rb-state"); err != nil {
		t.Fatal(err)
	}
	if out, rc := script(t, ctx, rb3, "start rb-a"); rc != 1 || !strings.Contains(out, "not mounted") || hasIP(t, ctx, rb3, ipA) {
		t.Fatalf("start without the mount: %d %s", rc, out)
	}
	if _, err := rb3.Sh(ctx, "mount -t tmpfs shared /mnt/rb-state && mkdir -p /mnt/rb-state/rb-a/edgwl /mnt/rb-state/rb-a/myproxy /mnt/rb-state/rb-b/edgwl /mnt/rb-state/rb-b/myproxy"); err != nil {
		t.Fatal(err)
	}
	// The log: timestamped lines, every start and stop bracketed.
	lg, _ := rb3.ReadFile("/var/log/lcg-ha-service.log")
	lg = lg[len(logStart):]
	var begins, ends int
	for _, l := range strings.Split(strings.TrimSpace(string(lg)), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			t.Fatalf("log line %q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil || f[1] != "rb3" {
			t.Fatalf("log line %q: %v", l, err)
		}
		switch f[4] {
		case "begin":
			begins++
		case "end":
			ends++
		}
	}
	if begins == 0 || begins != ends+2 { // the refused start rb-a and the one without mount
		t.Errorf("log: %d begins, %d ends:\n%s", begins, ends, lg)
	}

	// Install again: hagd is started again, nothing else changes.
	rep = runPlan(t, ctx, inv, plan, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed)
	for _, c := range changedSteps(rep) {
		if !strings.Contains(c, "service hagd: changed") && !strings.Contains(c, "exec hagd supervised: changed") {
			t.Errorf("re-run after hagd stop changed more than hagd: %s", c)
		}
	}

	hagdKeyRotationOnBed(t, ctx, inv, rb1, rb2, rb3)

	// A new key: hagd restarts on every node (it reads the key at start).
	if err := os.WriteFile(filepath.Join(inv.SecretsDir, "hagd", "key"), []byte("a-brand-new-shared-hagd-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pid1, _ := rb1.ReadFile(HAGDPIDFile)
	st := statuses(runPlan(t, ctx, inv, haPlan(t, inv), installer.ModeApply))
	if st["rb1 file /opt/lcg/etc/hagd.key"] != installer.StatusChanged || st["rb1 restart hagd on change"] != installer.StatusChanged ||
		st["rb1 service hagd"] != installer.StatusOK {
		t.Fatalf("key change: %v", st)
	}
	pid2, _ := rb1.ReadFile(HAGDPIDFile)
	if string(pid1) == string(pid2) {
		t.Fatal("hagd not restarted after a key change")
	}

	// gridha's binary altered on a node: verify says so, install puts it
	// back (and restarts hagd, which runs it).
	if _, err := rb3.Sh(ctx, "cd /usr/local/sbin && cp gridha .g && echo tampered >> .g && mv .g gridha"); err != nil {
		t.Fatal(err)
	}
	st = statuses(runPlan(t, ctx, inv, haPlan(t, inv), installer.ModeAudit))
	if st["rb3 copy /usr/local/sbin/gridha"] != installer.StatusDrift || st["rb3 restart hagd on change"] != installer.StatusDrift {
		t.Fatalf("tampered binary: audit %v", st)
	}
	st = statuses(runPlan(t, ctx, inv, haPlan(t, inv), installer.ModeApply))
	if st["rb3 copy /usr/local/sbin/gridha"] != installer.StatusChanged || st["rb3 restart hagd on change"] != installer.StatusChanged {
		t.Fatalf("tampered binary: apply %v", st)
	}
	if out, _ := rb3.Sh(ctx, "sha256sum < /usr/local/sbin/gridha"); !strings.HasPrefix(out, hex.EncodeToString(sum[:])) {
		t.Fatalf("binary not restored: %s", out)
	}

	// hagd started by hand without its supervisor: verify reports it.
	if out, err := rb3.Sh(ctx, "/etc/init.d/hagd stop >/dev/null && (setsid /usr/local/sbin/gridha hagd run --no-supervise -c /opt/lcg/etc/hagd.conf </dev/null >/dev/null 2>&1 & echo $! > /run/hagd-bare.pid) && sleep 1"); err != nil {
		t.Fatalf("bare hagd: %s %v", out, err)
	}
	waitFor(t, 20*time.Second, "the bare hagd answering", func() bool {
		out, err := rb3.Sh(ctx, "/usr/local/sbin/gridha hagd status -c /opt/lcg/etc/hagd.conf")
		return err == nil && strings.Contains(out, "NOT supervised")
	})
	st = statuses(runPlan(t, ctx, inv, haPlan(t, inv), installer.ModeAudit))
	if st["rb3 exec hagd supervised"] != installer.StatusDrift || st["rb1 exec hagd supervised"] != installer.StatusOK {
		t.Errorf("unsupervised hagd on rb3: audit %v", st)
	}
	if out, err := rb3.Sh(ctx, "kill $(cat /run/hagd-bare.pid); i=0; while kill -0 $(cat /run/hagd-bare.pid) 2>/dev/null && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.1; done"); err != nil {
		t.Fatalf("stop the bare hagd: %s %v", out, err)
	}
}

// TestRBNodeFailoverOnBed is issue 8's end to end: install rb-node (state
// on the state server over sshfs, L&B in its MySQL, hagd from the installed
// init script on three nodes), a client on another host submits jobs
// through the service IP, the master's hagd and service are killed with
// SIGKILL, and the client finds every job, sandbox and L&B row, through the
// same IP on the new master; the old master lost the service IP by itself
// (its kernel lifetime), and its hagd, restarted, takes the group back
// (preemption by rank) without overlap.
func TestRBNodeFailoverOnBed(t *testing.T) {
	bed := testbed.New(t, "state1", "rb1", "rb2", "rb3")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	srv := bed.Host("state1")
	rb1, rb2, rb3 := bed.Host("rb1"), bed.Host("rb2"), bed.Host("rb3")
	nodes := []*testbed.Host{rb1, rb2, rb3}
	ip := serviceIP(bed, 0)
	inv := haBedInventory(t, bed, fmt.Sprintf(`    groups:
      rb-a: {service_ip: %s/24, iface: eth0}
    nodes:
      rb1: {rb-a: 100}
      rb2: {rb-a: 50}
      rb3: {rb-a: 30}
`, ip), "")
	if err := srv.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	for _, h := range append(nodes, srv) {
		installStandin(t, ctx, h)
	}
	defer func() {
		if t.Failed() {
			dumpHA(t, context.Background(), nodes...)
		}
	}()
	requireNo(t, bedRun(t, ctx, inv, NewRBNode(), Options{}, installer.ModeApply), installer.StatusFailed, installer.StatusUnreachable)
	waitFor(t, 90*time.Second, "rb1 master of rb-a", func() bool {
		_, rc := script(t, ctx, rb1, "status rb-a")
		return rc == 0
	})

	client := func(args ...string) (string, error) {
		out, err := srv.Exec(ctx, append([]string{clientBin, ip + ":" + jobdPort}, args...)...)
		return strings.TrimSpace(string(out)), err
	}
	const jobs = 10
	for i := 1; i <= jobs; i++ {
		out, err := client("SUBMIT", fmt.Sprintf("job-%d", i), fmt.Sprintf("sandbox-of-job-%d", i))
		if err != nil || out != "OK rb1" {
			t.Fatalf("submit job-%d: %q %v", i, out, err)
		}
	}

	// Second run with the master serving: nothing changes, nothing stops.
	if c := changedSteps(bedRun(t, ctx, inv, NewRBNode(), Options{}, installer.ModeApply)); len(c) > 0 {
		t.Errorf("second install rb-node changed:\n%s", strings.Join(c, "\n"))
	}
	if out, err := client("GET", "job-1"); err != nil || !strings.HasSuffix(out, "via=rb1") {
		t.Fatalf("after the second run the master no longer serves: %q %v", out, err)
	}
	// verify on the running cluster: all green.
	if c := changedSteps(bedRun(t, ctx, inv, NewRBNode(), Options{ReadOnly: true}, installer.ModeAudit)); len(c) > 0 {
		t.Errorf("verify on the running cluster:\n%s", strings.Join(c, "\n"))
	}

	// The master dies: hagd (its supervisor and daemon) and the service
	// killed with SIGKILL. Nothing is left on rb1 to remove the service IP
	// but the kernel lifetime hagd gave it; the new master's gratuitous ARP
	// moves the clients.
	if _, err := rb1.Sh(ctx, "p=$(cat /run/hagd.pid); kill -9 $p $(pgrep -P $p) $(cat /run/rb-jobd.pid)"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var out string
	waitFor(t, 120*time.Second, "a new master answering on "+ip, func() bool {
		o, err := client("GET", "job-1")
		out = o
		return err == nil && strings.Contains(o, "via=")
	})
	t.Logf("failover: the client reached %q %.1f s after the kill", out[strings.LastIndex(out, "via=")+4:], time.Since(killed).Seconds())
	if !strings.HasSuffix(out, "via=rb2") {
		t.Fatalf("new master: %q, want rb2 (the best-ranked survivor)", out)
	}
	for i := 1; i <= jobs; i++ {
		want := fmt.Sprintf("JOB job-%d file=sandbox-of-job-%d lb=sandbox-of-job-%d by=rb1 via=rb2", i, i, i)
		if out, err := client("GET", fmt.Sprintf("job-%d", i)); err != nil || out != want {
			t.Errorf("job-%d after failover: %q %v, want %q", i, out, err, want)
		}
	}
	if out, err := client("SUBMIT", "job-after", "sandbox-after"); err != nil || out != "OK rb2" {
		t.Fatalf("submit after failover: %q %v", out, err)
	}
	if n, err := srv.MySQL(ctx, "SELECT COUNT(*) FROM lbserver20.jobs"); err != nil || strings.TrimSpace(n) != fmt.Sprint(jobs+1) {
		t.Fatalf("L&B rows on the state server: %q %v", n, err)
	}
	// The killed master's kernel dropped the service IP before rb2 could
	// take the lease (hagd's fencing): it is not on rb1 any more.
	if hasIP(t, ctx, rb1, ip+"/24") {
		t.Errorf("rb1 still has the service IP after rb2 took over")
	}
	// The installed gridha reports the new master.
	if out, err := rb2.Sh(ctx, "/usr/local/sbin/gridha hagd status"); err != nil || !strings.Contains(out, "group rb-a") || !strings.Contains(out, "master rb2") {
		t.Errorf("gridha hagd status on rb2: %v\n%s", err, out)
	}
	// hagd restarted on the old master (what its supervisor does when only
	// the daemon dies): rb1 has the best rank and takes the group back
	// (preempt, the default) through an ordered handover.
	if out, err := rb1.Sh(ctx, "/etc/init.d/hagd start"); err != nil {
		t.Fatalf("restart hagd on rb1: %s %v", out, err)
	}
	waitFor(t, 60*time.Second, "rb1 serving again", func() bool {
		out, err := client("GET", "job-after")
		return err == nil && strings.HasSuffix(out, "via=rb1")
	})
	if _, rc := script(t, ctx, rb2, "status rb-a"); rc != 3 {
		t.Errorf("rb2 status rb-a after rb1 took the group back: %d, want 3 (backup)", rc)
	}
	// Only rb2 started the service; the backup rb3 kept it stopped.
	if lg, _ := rb2.ReadFile(HAServiceLog); !strings.Contains(string(lg), "start rb-a end") {
		t.Errorf("rb2's service log has no complete start:\n%s", lg)
	}
	if lg, _ := rb3.ReadFile(HAServiceLog); strings.Contains(string(lg), "start rb-a") {
		t.Errorf("rb3 started rb-a:\n%s", lg)
	}
}

// hagdProbe (hagd-probe KEYFILE ADDR PORT GROUP) sends one heartbeat signed
// with the key in KEYFILE to ADDR:PORT, from a node ID no inventory has, as
// a backup that does not stand for election (the receiver only counts it).
func hagdProbe(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: hagd-probe KEYFILE ADDR PORT GROUP")
	}
	key, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	b, err := hagd.NewCodec(bytes.TrimSpace(key), []string{args[3]}).Encode(&hagd.Message{From: "key-probe", Nonce: uint64(time.Now().UnixNano()), Seq: 1, Time: time.Now(),
		Groups: []hagd.GroupEntry{{Group: args[3], Rank: 1, State: hagd.StateNormal}}})
	if err != nil {
		return err
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(args[1]), Port: port})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write(b)
	return err
}

// hagdStatus is `gridha hagd status --json` on h.
func hagdStatus(t *testing.T, ctx context.Context, h *testbed.Host) hagd.StatusReply {
	t.Helper()
	out, err := h.Sh(ctx, GridhaBinary+" hagd status -c /opt/lcg/etc/hagd.conf --json")
	var st hagd.StatusReply
	if err == nil {
		err = json.Unmarshal([]byte(out), &st)
	}
	if err != nil {
		t.Fatalf("%s: hagd status: %v\n%s", h.Name, err, out)
	}
	return st
}

// hagdKeyRotationOnBed: install rb-node --rotate-key with rb3 unreachable
// stops after the first step (rb1 and rb2 accept both keys, all still sign
// with the old one, the secrets folder keeps the old key); the masters keep
// their groups and their heartbeats keep being accepted; the next run, rb3
// back, without --rotate-key, finishes: every node signs with and accepts
// only the new key, a heartbeat signed with the old key is refused, the new
// key replaced the old one on the admin machine, and no hagd restarted and
// no master changed because of the rotation.
func hagdKeyRotationOnBed(t *testing.T, ctx context.Context, inv *inventory.Inventory, rb1, rb2, rb3 *testbed.Host) {
	nodes := []*testbed.Host{rb1, rb2, rb3}
	names := []string{"rb1", "rb2", "rb3"}
	rb := inv.Roles.RBNode
	keyPath, acceptPath := HAGDKeyPath(rb), HAGDAcceptKeyPath(rb)
	rotPlan := func(rotate bool) *installer.Plan {
		t.Helper()
		rot, err := loadHAGDRotation(inv, rotate, false)
		if err != nil {
			t.Fatal(err)
		}
		p := haPlan(t, inv)
		if rot != nil {
			p.Phases = append(p.Phases, hagdRotationPhases(inv, rot, names)...)
		}
		return p
	}
	waitFor(t, 60*time.Second, "rb1 master of rb-a and rb2 of rb-b", func() bool {
		a, b := hagdStatus(t, ctx, rb1), hagdStatus(t, ctx, rb2)
		return a.Groups[0].State == "master" && b.Groups[0].State == "master"
	})
	oldKey, err := os.ReadFile(hagdKeyPath(inv))
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]string{}
	for _, h := range nodes {
		p, _ := h.ReadFile(HAGDPIDFile)
		pids[h.Name] = string(p)
	}
	start := time.Now()
	// masterSince: each master has been master since before the rotation.
	masterSince := func(when string) {
		t.Helper()
		for _, h := range []*testbed.Host{rb1, rb2} {
			elapsed := time.Since(start)
			g := hagdStatus(t, ctx, h).Groups[0]
			if g.State != "master" || g.Since < elapsed {
				t.Errorf("%s: %s: %s of %s for %v: the master changed during the rotation", when, h.Name, g.State, g.Group, g.Since)
			}
		}
	}
	// heard: rb1 and rb2 accept each other's heartbeats, none refused.
	heard := func(when string) {
		t.Helper()
		a1, b1 := hagdStatus(t, ctx, rb1).Packets, hagdStatus(t, ctx, rb2).Packets
		time.Sleep(time.Second)
		a2, b2 := hagdStatus(t, ctx, rb1).Packets, hagdStatus(t, ctx, rb2).Packets
		if a2["accepted"] <= a1["accepted"] || b2["accepted"] <= b1["accepted"] || a2["bad_signature"] != a1["bad_signature"] || b2["bad_signature"] != b1["bad_signature"] {
			t.Errorf("%s: heartbeats between rb1 and rb2: rb1 %v -> %v, rb2 %v -> %v", when, a1, a2, b1, b2)
		}
	}

	if err := rb3.LinkDown(); err != nil {
		t.Fatal(err)
	}
	rep := runPlan(t, ctx, inv, rotPlan(true), installer.ModeApply)
	if !rep.Hosts["rb3"].Unreachable {
		t.Errorf("rb3 should be unreachable: %+v", rep.Hosts["rb3"])
	}
	newKey, err := os.ReadFile(PendingHAGDKeyPath(inv))
	if err != nil {
		t.Fatalf("no pending hagd key after a rotation stopped half-way: %v", err)
	}
	if k, _ := os.ReadFile(hagdKeyPath(inv)); string(k) != string(oldKey) {
		t.Error("the active hagd key was replaced by a rotation that did not finish")
	}
	for _, h := range []*testbed.Host{rb1, rb2} {
		if k, _ := h.ReadFile(keyPath); string(k) != string(oldKey) {
			t.Errorf("%s: signs with another key than the old one although rb3 does not know the new one", h.Name)
		}
		if out, _ := h.Sh(ctx, "stat -c '%a %U:%G' "+acceptPath); out != "600 root:root\n" {
			t.Errorf("%s: %s: %q, want 600 root:root", h.Name, acceptPath, out)
		}
		if k, _ := h.ReadFile(acceptPath); string(k) != strings.TrimSpace(string(newKey))+"\n"+strings.TrimSpace(string(oldKey))+"\n" {
			t.Errorf("%s: %s does not hold the new and the old key", h.Name, acceptPath)
		}
	}
	heard("during the rotation")
	masterSince("during the rotation")

	if err := rb3.LinkUp(); err != nil {
		t.Fatal(err)
	}
	rep = runPlan(t, ctx, inv, rotPlan(false), installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable, installer.StatusDrift, installer.StatusMissing, installer.StatusSkipped)
	if _, err := os.Stat(PendingHAGDKeyPath(inv)); !os.IsNotExist(err) {
		t.Errorf("pending hagd key still there after the rotation finished: %v", err)
	}
	if k, _ := os.ReadFile(hagdKeyPath(inv)); string(k) != string(newKey) {
		t.Error("the admin machine's hagd key is not the new one")
	}
	for _, h := range nodes {
		if k, _ := h.ReadFile(keyPath); string(k) != string(newKey) {
			t.Errorf("%s: hagd.key is not the new key", h.Name)
		}
		if out, _ := h.Sh(ctx, "stat -c '%a %U:%G' "+keyPath+"; test -e "+acceptPath+" && echo accept file left"); out != "600 root:root\n" {
			t.Errorf("%s: after the rotation: %q", h.Name, out)
		}
		if p, _ := h.ReadFile(HAGDPIDFile); string(p) != pids[h.Name] {
			t.Errorf("%s: hagd restarted during the rotation", h.Name)
		}
	}
	// Each node re-read its key files at each of the three steps.
	for _, h := range nodes {
		if n := hagdStatus(t, ctx, h).Packets["key_reloads"]; n < 3 {
			t.Errorf("%s: hagd reloaded its keys %d times, want at least 3", h.Name, n)
		}
	}
	// A third run changes nothing.
	if c := changedSteps(runPlan(t, ctx, inv, rotPlan(false), installer.ModeApply)); len(c) > 0 {
		t.Errorf("run after the rotation changed:\n%s", strings.Join(c, "\n"))
	}

	// Old key refused, new key accepted (rb1 counts a probe from rb3).
	conf, _ := rb1.ReadFile("/opt/lcg/etc/hagd.conf")
	cfg, err := hagd.ParseConfig("hagd.conf", conf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rb3.Exec(ctx, "ln", "-sf", jobdBin, standinDir+"/hagd-probe"); err != nil {
		t.Fatal(err)
	}
	if err := rb3.WriteFile("/root/old.key", oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	// probe sends a heartbeat of "key-probe" signed with key; it returns
	// whether rb1 now lists key-probe in rb-a and how many it refused.
	probe := func(key string) (listed bool, refused uint64) {
		t.Helper()
		before := hagdStatus(t, ctx, rb1).Packets
		if out, err := rb3.Exec(ctx, standinDir+"/hagd-probe", key, rb1.Addr, strconv.Itoa(cfg.Port), "rb-a"); err != nil {
			t.Fatalf("hagd-probe: %s %v", out, err)
		}
		time.Sleep(300 * time.Millisecond)
		st := hagdStatus(t, ctx, rb1)
		for _, m := range st.Groups[0].Members {
			listed = listed || m.ID == "key-probe"
		}
		return listed, st.Packets["bad_signature"] - before["bad_signature"]
	}
	if listed, refused := probe("/root/old.key"); refused != 1 || listed {
		t.Errorf("a heartbeat signed with the old key after the rotation: %d refused (want 1), sender listed %v", refused, listed)
	}
	if listed, refused := probe(keyPath); refused != 0 || !listed {
		t.Errorf("a heartbeat signed with the new key after the rotation: %d refused (want 0), sender listed %v", refused, listed)
	}
	heard("after the rotation")
	masterSince("after the rotation")
}
