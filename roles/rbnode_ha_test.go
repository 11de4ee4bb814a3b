package roles

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gridha/gridha/hagd"
	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

// haInventory writes a multigroup inventory (slide 6: rb1 primary of rb-a,
// rb2 of rb-b, rb3 backup of both) into dir and loads it.
func haInventory(t *testing.T, dir, extraHAGD string) *inventory.Inventory {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "lb-password"), []byte("LB-secret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `hosts:
  state1: {address: 198.18.0.10, roles: [state-server]}
  rb1: {address: 198.18.0.11, roles: [rb-node]}
  rb2: {address: 198.18.0.12, roles: [rb-node]}
  rb3: {address: 198.18.0.13, roles: [rb-node]}
roles:
  state-server:
    mysql:
      password_file: lb-password
  rb-node:
    state_server: state1
    services: [rb-standin]
    hagd:
      iface: [eth0]
` + extraHAGD + `
    groups:
      rb-a: {service_ip: 198.18.0.200/24, iface: eth0}
      rb-b: {service_ip: 198.18.0.201/24, iface: eth0}
    nodes:
      rb1: {rb-a: 100}
      rb2: {rb-b: 100}
      rb3: {rb-a: 50, rb-b: 50}
`
	p := filepath.Join(dir, "gridha.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(p)
	if err != nil {
		t.Fatalf("inventory:\n%s\n%v", body, err)
	}
	return inv
}

func fileStep(t *testing.T, st []installer.Step, path string) steps.File {
	t.Helper()
	for _, s := range st {
		if f, ok := installer.Unwrap(s).(steps.File); ok && f.Path == path {
			return f
		}
	}
	t.Fatalf("no file step for %s", path)
	return steps.File{}
}

func TestHASteps(t *testing.T) {
	dir := t.TempDir()
	inv := haInventory(t, dir, "")
	rb3, err := RBNode{}.haSteps(inv, inv.Host("rb3"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range rb3 {
		ids = append(ids, s.ID())
	}
	want := "exec iputils-arping installed,dir /opt/lcg/etc,dir /opt/lcg/sbin,exec node architecture is gridha's (" + runtime.GOARCH + "),copy /usr/local/sbin/gridha," +
		"file /opt/lcg/etc/hagd.key,absent /opt/lcg/etc/hagd.key.accept,file /opt/lcg/etc/hagd-mysql.pw,file /opt/lcg/etc/hagd.conf,dir /etc/logrotate.d,file /etc/logrotate.d/hagd,file /etc/sysconfig/lcg-ha," +
		"file /opt/lcg/sbin/lcg-ha-service,file /etc/init.d/hagd,restart hagd on change,service hagd,exec hagd supervised"
	if got := strings.Join(ids, ","); got != want {
		t.Fatalf("steps:\n got %s\nwant %s", got, want)
	}

	// hagd.conf: both groups with rb3's ranks, the lease in the L&B database.
	conf := fileStep(t, rb3, "/opt/lcg/etc/hagd.conf")
	cfg, err := hagd.ParseConfig("hagd.conf", conf.Content)
	if err != nil {
		t.Fatalf("%v\n%s", err, conf.Content)
	}
	if cfg.ID != "rb3" || len(cfg.Groups) != 2 || cfg.Groups[0] != (hagd.Group{Name: "rb-a", Rank: 50}) ||
		cfg.Groups[1] != (hagd.Group{Name: "rb-b", Rank: 50}) {
		t.Errorf("id/groups: %s %+v", cfg.ID, cfg.Groups)
	}
	if cfg.Script != "/opt/lcg/sbin/lcg-ha-service" || cfg.KeyFile != "/opt/lcg/etc/hagd.key" || cfg.Port != 3333 ||
		strings.Join(cfg.Ifaces, ",") != "eth0" || cfg.Log != HAGDLog {
		t.Errorf("script/key/port/iface/log: %+v", cfg)
	}
	if cfg.Lease != "mysql" || cfg.MySQLHost != "198.18.0.10" || cfg.MySQLUser != "lbserver" || cfg.MySQLDB != "lbserver20" ||
		cfg.MySQLPasswordFile != "/opt/lcg/etc/hagd-mysql.pw" {
		t.Errorf("lease: %+v", cfg)
	}
	if conf.Mode != 0o644 || strings.Contains(string(conf.Content), "LB-secret-pw") {
		t.Errorf("hagd.conf mode %v or holds the password", conf.Mode)
	}
	pw := fileStep(t, rb3, "/opt/lcg/etc/hagd-mysql.pw")
	if string(pw.Content) != "LB-secret-pw\n" || pw.Mode != 0o600 || !pw.Secret {
		t.Errorf("password file: mode %v secret %v", pw.Mode, pw.Secret)
	}

	// The key: generated once, 0600, the same on every node.
	key := fileStep(t, rb3, "/opt/lcg/etc/hagd.key")
	if key.Mode != 0o600 || !key.Secret || len(strings.TrimSpace(string(key.Content))) != 64 {
		t.Errorf("key: mode %v secret %v len %d", key.Mode, key.Secret, len(key.Content))
	}
	st, err := os.Stat(filepath.Join(inv.SecretsDir, "hagd", "key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("local key: %v %v", st, err)
	}
	rb1, err := RBNode{}.haSteps(inv, inv.Host("rb1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if k1 := fileStep(t, rb1, "/opt/lcg/etc/hagd.key"); string(k1.Content) != string(key.Content) {
		t.Error("rb1 and rb3 got different keys")
	}
	c1, _ := hagd.ParseConfig("c", fileStep(t, rb1, "/opt/lcg/etc/hagd.conf").Content)
	if len(c1.Groups) != 1 || c1.Groups[0] != (hagd.Group{Name: "rb-a", Rank: 100}) {
		t.Errorf("rb1 groups: %+v", c1.Groups)
	}

	// lcg-ha: what the service script needs.
	sc := string(fileStep(t, rb3, HASysconfig).Content)
	for _, line := range []string{"SERVICES='rb-standin'\n", "STATE_DIRS='/var/edgwl /var/myproxy /opt/edg/var/spool/edg-wl-renewd /opt/condor/var/condor'\n",
		"MOUNT_POINT='/mnt/rb-state'\n", "HA_GROUPS='rb-a=198.18.0.200/24@eth0 rb-b=198.18.0.201/24@eth0'\n", "HOME_GROUP='rb-a'\n",
		"SERVICE_LOG='/var/log/lcg-ha-service.log'\n", "REQUIRE_MOUNT='yes'\n"} {
		if !strings.Contains(sc, line) {
			t.Errorf("lcg-ha lacks %q:\n%s", line, sc)
		}
	}
	if s := string(fileStep(t, rb1, HASysconfig).Content); !strings.Contains(s, "HA_GROUPS='rb-a=198.18.0.200/24@eth0'\n") {
		t.Errorf("rb1 lcg-ha: only its own group:\n%s", s)
	}

	// The scripts are valid sh.
	for _, p := range []string{"/opt/lcg/sbin/lcg-ha-service", HAGDInitScript, HASysconfig} {
		f := fileStep(t, rb3, p)
		tmp := filepath.Join(dir, filepath.Base(p))
		if err := os.WriteFile(tmp, f.Content, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("sh", "-n", tmp).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", p, err, out)
		}
		if f.Mode != 0o755 && p != HASysconfig {
			t.Errorf("%s mode %v", p, f.Mode)
		}
	}
	init := string(fileStep(t, rb3, HAGDInitScript).Content)
	if !strings.Contains(init, "\"$DAEMON\" hagd run -c \"$CONFIG\"") || !strings.Contains(init, "DAEMON='/usr/local/sbin/gridha'") ||
		!strings.Contains(init, "CONFIG='/opt/lcg/etc/hagd.conf'") || !strings.Contains(init, "# Provides:          hagd") {
		t.Errorf("init script:\n%s", init)
	}
	// Timings the inventory leaves out are hagd's own defaults, written
	// out (the install has always written timeout = 120s), and the init
	// script waits for rb3's two stops of 5 s plus 30 s.
	d := hagd.DefaultConfig()
	if cfg.Timeout != d.Timeout || cfg.StopTimeout != d.StopTimeout || cfg.DT1 != d.DT1 || cfg.DT2 != d.DT2 ||
		cfg.Heartbeat != d.Heartbeat || cfg.StatusInterval != d.StatusInterval || cfg.Backoff != d.Backoff ||
		cfg.LeaseRenew != d.LeaseRenew || cfg.LeaseTimeout != d.LeaseTimeout || cfg.Debug != d.Debug || !cfg.Preempt {
		t.Errorf("defaults: got %+v\nwant hagd's %+v", cfg, d)
	}
	if !strings.Contains(string(conf.Content), "\ntimeout = 120s\nstop_timeout = 5s\n") || !strings.Contains(init, "STOP_WAIT=400\n") {
		t.Errorf("timeout 120s, stop_timeout 5s, STOP_WAIT 400 tenths expected:\n%s\n%s", conf.Content, init)
	}
}

func TestHAStepsReadOnlyAndKeyFile(t *testing.T) {
	dir := t.TempDir()
	inv := haInventory(t, dir, "")
	// verify on a fresh admin machine: no key is generated, it is reported.
	st, err := RBNode{}.haSteps(inv, inv.Host("rb1"), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(inv.SecretsDir, "hagd", "key")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only planning wrote the key: %v", err)
	}
	found := false
	for _, s := range st {
		if s.ID() == "file /opt/lcg/etc/hagd.key" {
			r := s.CheckApply(t.Context(), &installer.Env{Host: "rb1"}, false)
			found = r.Status == installer.StatusMissing
		}
	}
	if !found {
		t.Fatal("read-only plan does not report the missing key")
	}

	// An explicit key file wins; a short one is refused.
	if err := os.WriteFile(filepath.Join(dir, "hagd-key"), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv = haInventory(t, dir, "      key_file: hagd-key\n")
	if _, err := (RBNode{}).haSteps(inv, inv.Host("rb1"), Options{}); err == nil || !strings.Contains(err.Error(), "shorter than 16") {
		t.Fatalf("short key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hagd-key"), []byte("a-long-enough-shared-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err = RBNode{}.haSteps(inv, inv.Host("rb1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if k := fileStep(t, st, "/opt/lcg/etc/hagd.key"); string(k.Content) != "a-long-enough-shared-key\n" {
		t.Errorf("key_file not used: %q", k.Content)
	}

	// lease: none needs no state server; tuned timings reach hagd.conf.
	inv = haInventory(t, dir, "      lease: none\n      dt1: 1200ms\n      dt2: 400ms\n      heartbeat: 250ms\n      stop_timeout: 1s\n")
	st, err = RBNode{}.haSteps(inv, inv.Host("rb2"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := hagd.ParseConfig("c", fileStep(t, st, "/opt/lcg/etc/hagd.conf").Content)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Lease != "none" || cfg.DT1.String() != "1.2s" || cfg.Heartbeat.String() != "250ms" || cfg.StopTimeout.String() != "1s" {
		t.Errorf("tuned: %+v", cfg)
	}
	for _, s := range st {
		if s.ID() == "file /opt/lcg/etc/hagd-mysql.pw" {
			t.Error("lease none still installs the MySQL password")
		}
	}

	// A tuning hagd would refuse is an inventory error at the setting's
	// line (inventory/rbnode.go runs hagd's timing rules), never a plan.
	body, err := os.ReadFile(filepath.Join(dir, "gridha.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(body), "heartbeat: 250ms", "heartbeat: 700ms", 1)
	_, err = inventory.Parse("gridha.yaml", []byte(bad))
	if err == nil || !strings.Contains(err.Error(), "gridha.yaml:16:12: roles.rb-node.hagd.dt1: 1.2s must be at least twice the heartbeat (700ms)") {
		t.Fatalf("dt1 1.2s with heartbeat 700ms:\n%s\n%v", bad, err)
	}
}

// TestHAGDKeyRotationPlan: --rotate-key writes the new key beside the old
// one (0600) before any node is touched and adds the rotation's phases in
// order; while it is under way the HA phase leaves the key file to them (no
// restart), a run without the flag goes on with the same key, --limit is
// refused, and verify generates nothing.
func TestHAGDKeyRotationPlan(t *testing.T) {
	dir := t.TempDir()
	inv := haInventory(t, dir, "")
	// --check --rotate-key before any key exists: planned, nothing written.
	if _, err := (RBNode{}).Plan(inv, Options{RotateKey: true, ReadOnly: true}); err != nil {
		t.Fatalf("--check --rotate-key on a first install: %v", err)
	}
	if _, err := os.Stat(hagdKeyPath(inv)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("--check --rotate-key wrote a key: %v", err)
	}
	if _, err := LoadHAGDKey(inv, true); err != nil {
		t.Fatal(err)
	}
	check, err := (RBNode{}).Plan(inv, Options{RotateKey: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if last := check.Phases[len(check.Phases)-1].Name; last != phaseHAGDKeyCommit {
		t.Errorf("--check --rotate-key: last phase %s, want the rotation's", last)
	}
	if _, err := os.Stat(PendingHAGDKeyPath(inv)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("verify --rotate-key wrote a pending key: %v", err)
	}
	if _, err := (RBNode{}).Plan(inv, Options{RotateKey: true, Limit: []string{"rb1", "state1"}}); err == nil || !strings.Contains(err.Error(), "rb2") {
		t.Fatalf("--rotate-key with --limit: %v", err)
	}
	if _, err := os.Stat(PendingHAGDKeyPath(inv)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused --limit rotation wrote a pending key: %v", err)
	}
	plan, err := (RBNode{}).Plan(inv, Options{RotateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(PendingHAGDKeyPath(inv))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("pending key: %v %v", st, err)
	}
	pending, _ := os.ReadFile(PendingHAGDKeyPath(inv))
	old, _ := os.ReadFile(hagdKeyPath(inv))
	if len(strings.TrimSpace(string(pending))) != 64 || string(pending) == string(old) {
		t.Fatalf("pending key %q (old %q)", pending, old)
	}
	var names []string
	for _, p := range plan.Phases {
		names = append(names, p.Name)
	}
	got := strings.Join(names, ",")
	if !strings.HasSuffix(got, PhaseRBHA+","+phaseHAGDKeyAccept+","+phaseHAGDKeySwitch+","+phaseHAGDKeyFinish+","+phaseHAGDKeyCommit) {
		t.Fatalf("phases %s", got)
	}
	n := len(plan.Phases)
	keyPath := HAGDKeyPath(inv.Roles.RBNode)
	for _, s := range plan.Phases[n-5].Steps["rb1"] {
		if strings.Contains(s.ID(), keyPath) {
			t.Errorf("HA phase writes %s during a rotation: %s", keyPath, s.ID())
		}
	}
	acc := fileStep(t, unwrapSecrets(plan.Phases[n-4].Steps["rb2"]), HAGDAcceptKeyPath(inv.Roles.RBNode))
	want := strings.TrimSpace(string(pending)) + "\n" + strings.TrimSpace(string(old)) + "\n"
	if string(acc.Content) != want || acc.Mode != 0o600 || !acc.Secret {
		t.Errorf("accept file: %q %o secret %v", acc.Content, acc.Mode, acc.Secret)
	}
	sw := fileStep(t, unwrapSecrets(plan.Phases[n-3].Steps["rb3"]), keyPath)
	if strings.TrimSpace(string(sw.Content)) != strings.TrimSpace(string(pending)) {
		t.Errorf("switch writes %q", sw.Content)
	}
	if _, ok := plan.Phases[n-3].Steps["rb3"][0].(hostsDone); !ok {
		t.Error("the switch does not wait for every node to accept the new key")
	}
	if _, ok := plan.Phases[n-2].Steps["rb1"][0].(hostsDone); !ok {
		t.Error("the finish does not wait for every node to sign with the new key")
	}
	// Interrupted: the next run, without the flag, goes on with the same key.
	plan, err = (RBNode{}).Plan(inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sw = fileStep(t, unwrapSecrets(plan.Phases[len(plan.Phases)-3].Steps["rb1"]), keyPath)
	if strings.TrimSpace(string(sw.Content)) != strings.TrimSpace(string(pending)) {
		t.Error("a run after an interrupted rotation uses another new key")
	}
	if _, err := (RBNode{}).Plan(inv, Options{Limit: []string{"rb1", "state1"}}); err == nil || !strings.Contains(err.Error(), "under way") {
		t.Fatalf("--limit during a rotation: %v", err)
	}
}

func unwrapSecrets(st []installer.Step) []installer.Step {
	var out []installer.Step
	for _, s := range st {
		out = append(out, installer.Unwrap(s))
	}
	return out
}
