package roles

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gridha/gridha/hagd"
	"github.com/gridha/gridha/installer/steps"
)

// TestPoolHAPhase: every member gets hagd with the pool group, ranked in
// file order, the service IP on pool.iface, the lease in its own Galera
// node with a generated local account; the rb nodes' lease goes to the
// pool's service IP.
func TestPoolHAPhase(t *testing.T) {
	inv := poolTestInventory(t, "")
	ph, err := poolHAPhase(inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ph.Name != PhasePoolHAGD || len(ph.Steps) != 3 {
		t.Fatalf("phase %q on %d hosts", ph.Name, len(ph.Steps))
	}
	pwLocal := filepath.Join(inv.SecretsDir, "galera", "hagd-password")
	st, err := os.Stat(pwLocal)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated lease password: %v %v", st, err)
	}
	pwData, _ := os.ReadFile(pwLocal)
	pw := strings.TrimSpace(string(pwData))
	for name, rank := range map[string]int{"fs1": 30, "fs2": 20, "fs3": 10} {
		s := ph.Steps[name]
		conf := fileStep(t, s, "/opt/lcg/etc/hagd.conf")
		cfg, err := hagd.ParseConfig("hagd.conf", conf.Content)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, conf.Content)
		}
		if cfg.ID != name || len(cfg.Groups) != 1 || cfg.Groups[0] != (hagd.Group{Name: "statedb", Rank: rank}) {
			t.Errorf("%s: id/groups %s %+v", name, cfg.ID, cfg.Groups)
		}
		if !strings.Contains(string(conf.Content), "\nservice_ip = statedb:198.18.0.100/24@eth0\n") {
			t.Errorf("%s: service_ip line missing:\n%s", name, conf.Content)
		}
		if cfg.Script != PoolHAScript || cfg.Lease != "mysql" || cfg.MySQLHost != "127.0.0.1" || cfg.MySQLUser != PoolLeaseUser ||
			cfg.MySQLDB != PoolLeaseDB || cfg.MySQLPasswordFile != "/opt/lcg/etc/hagd-mysql.pw" {
			t.Errorf("%s: script/lease: %+v", name, cfg)
		}
		if conf.Mode != 0o644 || strings.Contains(string(conf.Content), pw) {
			t.Errorf("%s: hagd.conf mode %v or holds the password", name, conf.Mode)
		}
		pf := fileStep(t, s, "/opt/lcg/etc/hagd-mysql.pw")
		if string(pf.Content) != pw+"\n" || pf.Mode != 0o600 || !pf.Secret {
			t.Errorf("%s: password file mode %v secret %v", name, pf.Mode, pf.Secret)
		}
		cc := fileStep(t, s, PoolHAClientConf)
		if want := "[client]\nuser=" + PoolLeaseUser + "\npassword=\"" + pw + "\"\n"; cc.Mode != 0o600 || !cc.Secret || !strings.Contains(string(cc.Content), want) {
			t.Errorf("%s: service script's option file mode %v secret %v:\n%s", name, cc.Mode, cc.Secret, cc.Content)
		}
		sc := fileStep(t, s, PoolHAScript)
		if strings.Contains(string(sc.Content), pw) || !strings.Contains(string(sc.Content), "--defaults-extra-file="+PoolHAClientConf) {
			t.Errorf("%s: service script does not log in through %s:\n%s", name, PoolHAClientConf, sc.Content)
		}
		if sc.Mode != 0o755 || !strings.Contains(string(sc.Content), "Primary") || !strings.Contains(string(sc.Content), "Synced") ||
			!strings.Contains(string(sc.Content), "stop)\n\texit 0") {
			t.Errorf("%s: service script mode %v:\n%s", name, sc.Mode, sc.Content)
		}
		var ids []string
		for _, x := range s {
			ids = append(ids, x.ID())
		}
		for _, want := range []string{"copy /usr/local/sbin/gridha", "file /opt/lcg/etc/hagd.key", "file /etc/init.d/hagd", "service hagd", "exec hagd supervised"} {
			if !strings.Contains(strings.Join(ids, ","), want) {
				t.Errorf("%s: no step %q in %v", name, want, ids)
			}
		}
	}

	// The lease account: member-local, its own database only.
	admin := steps.MySQLAdmin{}
	ls, err := poolLeaseSteps(inv, admin, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := ls[1].(*steps.MySQLUser)
	if !ok || u.User != PoolLeaseUser || u.Host != "localhost" || u.Database != PoolLeaseDB || u.Password != pw {
		t.Errorf("lease account step: %#v", ls[1])
	}

	// The rb nodes' lease: the L&B database at the pool's service IP.
	rb1, err := RBNode{}.haSteps(inv, inv.Host("rb1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := hagd.ParseConfig("hagd.conf", fileStep(t, rb1, "/opt/lcg/etc/hagd.conf").Content)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MySQLHost != "198.18.0.100" || cfg.MySQLUser != "lbserver" || cfg.MySQLDB != "lbserver20" {
		t.Errorf("rb1's lease: %+v", cfg)
	}

	// Read-only planning generates nothing.
	inv2 := poolTestInventory(t, "")
	if _, err := poolHAPhase(inv2, Options{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(inv2.SecretsDir, "galera", "hagd-password")); err == nil {
		t.Fatal("read-only planning generated the lease password")
	}
}

// TestPoolHAClientConfQuotes: a hand-made password with the option file's
// special characters is written so that MariaDB reads it back unchanged.
func TestPoolHAClientConfQuotes(t *testing.T) {
	got := string(poolHAClientConf("/run/my sql.sock", `a"b\c#d`))
	for _, want := range []string{"password=\"a\\\"b\\\\c#d\"\n", "socket=\"/run/my sql.sock\"\n", "user=" + PoolLeaseUser + "\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("option file lacks %q:\n%s", want, got)
		}
	}
}

// TestPoolRBNodePlan: on a pool, install rb-node stops a node's hagd for
// the switch from a single server in the pool's first phase (before the
// export moves, merged there with install state-server's phase), and a
// hagd key rotation covers the pool members, which run hagd with the same
// key: each of its phases has steps on every member and node, and a
// --limit leaving a member out is refused.
func TestPoolRBNodePlan(t *testing.T) {
	inv := poolTestInventory(t, "")
	plan, err := (RBNode{}).Plan(inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Phases[0].Name != PhasePoolMembers {
		t.Fatalf("first phase %s", plan.Phases[0].Name)
	}
	for _, n := range []string{"rb1", "rb2"} {
		var ids []string
		for _, s := range plan.Phases[0].Steps[n] {
			ids = append(ids, s.ID())
		}
		if !slices.Contains(ids, "exec hagd stopped for the switch to the state pool") {
			t.Errorf("%s in phase %s: %q", n, PhasePoolMembers, ids)
		}
	}
	if _, err := LoadHAGDKey(inv, true); err != nil {
		t.Fatal(err)
	}
	if _, err := (RBNode{}).Plan(inv, Options{RotateKey: true, Limit: []string{"rb1", "rb2"}}); err == nil || !strings.Contains(err.Error(), "fs1 is outside --limit") {
		t.Fatalf("--rotate-key with the pool members outside --limit: %v", err)
	}
	plan, err = (RBNode{}).Plan(inv, Options{RotateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	n := len(plan.Phases)
	for i, name := range []string{phaseHAGDKeyAccept, phaseHAGDKeySwitch, phaseHAGDKeyFinish} {
		ph := plan.Phases[n-4+i]
		if ph.Name != name {
			t.Fatalf("phase %d: %s, want %s", n-4+i, ph.Name, name)
		}
		for _, h := range []string{"fs1", "fs2", "fs3", "rb1", "rb2"} {
			if len(ph.Steps[h]) == 0 {
				t.Errorf("%s: no steps on %s", name, h)
			}
		}
	}
	// The pool's hagd phase leaves the key file to the rotation.
	for _, ph := range plan.Phases {
		if ph.Name != PhasePoolHAGD {
			continue
		}
		for _, s := range ph.Steps["fs2"] {
			if strings.Contains(s.ID(), HAGDKeyPath(inv.Roles.RBNode)) {
				t.Errorf("pool hagd phase writes the key during a rotation: %s", s.ID())
			}
		}
	}
}
