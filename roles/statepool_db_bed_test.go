package roles

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
)

// poolInventory writes an inventory for bed: fs1, fs2 and fs3 form the
// state pool, rb1 is an rb node.
func galeraPoolInventory(t *testing.T, bed *testbed.Bed, dir string) *inventory.Inventory {
	t.Helper()
	pwFile := writeLBPassword(t, dir, "pool-LB-secret")
	net := strings.TrimSuffix(bed.Subnet, ".0/24")
	body := fmt.Sprintf(`secrets_dir: %s
%sroles:
  state-server:
    export: /srv/rb-state
    mysql:
      password_file: %s
    pool:
      service_ip: %s.101/24
      iface: eth0
  rb-node:
    hagd:
      iface: [eth0]
`+lenientHAGD+`    groups:
      rb-a: {service_ip: %s.100/24, iface: eth0}
    nodes:
      rb1: {rb-a: 100}
`, filepath.Join(dir, "secrets"), bed.HostsYAML(map[string][]string{
		"fs1": {"state-server"}, "fs2": {"state-server"}, "fs3": {"state-server"}, "rb1": {"rb-node"},
	}), pwFile, net, net)
	inv := loadBedInventory(t, bed, dir, body)
	return inv
}

// writeLBPassword writes the L&B password file of a bed test's inventory
// (dir/lb-password, 0600) and returns its path.
func writeLBPassword(t *testing.T, dir, secret string) string {
	t.Helper()
	p := filepath.Join(dir, "lb-password")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadBedInventory writes the bed's defaults and body as dir/gridha.yaml
// and loads it.
func loadBedInventory(t *testing.T, b *testbed.Bed, dir, body string) *inventory.Inventory {
	t.Helper()
	p := filepath.Join(dir, "gridha.yaml")
	if err := os.WriteFile(p, []byte(b.DefaultsYAML()+body), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(p)
	if err != nil {
		t.Fatalf("inventory:\n%s\n%v", body, err)
	}
	return inv
}

// poolDBRole is the state-server role's database half alone: the files
// half (GlusterFS) has its own bed tests, and this one stays within its
// time budget and independent of it.
type poolDBRole struct{}

func (poolDBRole) Name() string    { return "state-server" }
func (poolDBRole) Summary() string { return "state pool, database half" }
func (poolDBRole) Plan(inv *inventory.Inventory, opts Options) (*installer.Plan, error) {
	ph, err := poolDBPhases(inv, opts)
	if err != nil {
		return nil, err
	}
	return &installer.Plan{Phases: ph}, nil
}

// wsrep reads one wsrep status variable of h ("" when it does not answer).
func wsrep(ctx context.Context, h *testbed.Host, v string) string {
	out, err := h.MySQL(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '"+strings.ToUpper(v)+"'")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// waitWsrep waits (bounded) until h's variable v is want.
func waitWsrep(t *testing.T, ctx context.Context, h *testbed.Host, v, want string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := wsrep(ctx, h, v)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s is %q after %s, want %q", h.Name, v, got, limit, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestStatePoolDBOnBed: one 3-member pool bed shared by every subtest, in
// order: a single state server with data is turned into a pool by one
// install (its database is the seed), then the faults.
func TestStatePoolDBOnBed(t *testing.T) {
	bed := testbed.New(t, "fs1", "fs2", "fs3", "rb1")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	fs := []*testbed.Host{bed.Host("fs1"), bed.Host("fs2"), bed.Host("fs3")}
	rb1 := bed.Host("rb1")
	dir := t.TempDir()
	inv := galeraPoolInventory(t, bed, dir)
	role := poolDBRole{}

	// The site before: fs1 is the single state server, its L&B database
	// in use; fs2 and fs3 run nothing yet.
	if err := fs[0].StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := fs[0].MySQL(ctx, "CREATE DATABASE lbserver20; CREATE TABLE lbserver20.jobs (id INT PRIMARY KEY, owner VARCHAR(64)) ENGINE=InnoDB; INSERT INTO lbserver20.jobs VALUES (1,'alice'),(2,'bob')"); err != nil {
		t.Fatal(err)
	}

	t.Run("install", func(t *testing.T) {
		chk := bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeCheck)
		if s := statuses(chk)["fs1 galera cluster"]; !s.NeedsChange() {
			t.Fatalf("--check: galera cluster %q, want a change", s)
		}
		if on := wsrep(ctx, fs[0], "wsrep_ready"); on == "ON" {
			t.Fatal("--check started Galera")
		}
		start := time.Now()
		rep := bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)
		requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable, installer.StatusDrift, installer.StatusMissing)
		t.Logf("install of a 3-member pool from a single server: %s", time.Since(start).Round(time.Second))
		msg := ""
		for _, r := range rep.Results {
			if r.Step == "galera cluster" && r.Status == installer.StatusChanged {
				msg = r.Message
			}
		}
		if !strings.Contains(msg, "bootstrap fs1") || strings.Contains(msg, "bootstrap fs2") || strings.Contains(msg, "bootstrap fs3") {
			t.Fatalf("galera cluster: want fs1 (the existing server) bootstrapped and only it, got %q", msg)
		}
		for _, h := range fs {
			for v, want := range map[string]string{"wsrep_cluster_status": "Primary", "wsrep_local_state_comment": "Synced", "wsrep_cluster_size": "3"} {
				if got := wsrep(ctx, h, v); got != want {
					t.Errorf("%s: %s = %q, want %q", h.Name, v, got, want)
				}
			}
			// Every row of the single server is on every member.
			if out, err := h.MySQL(ctx, "SELECT GROUP_CONCAT(owner ORDER BY id) FROM lbserver20.jobs"); err != nil || strings.TrimSpace(out) != "alice,bob" {
				t.Errorf("%s: rows of the former single server: %q %v", h.Name, out, err)
			}
			// The SST account's password is in a file mysql alone reads.
			if out, err := h.Sh(ctx, "stat -c '%U:%G %a' /etc/mysql/mariadb.conf.d/61-gridha-galera-sst.cnf"); err != nil || out != "root:mysql 640\n" {
				t.Errorf("%s: SST auth file: %q %v", h.Name, out, err)
			}
		}
		if st, err := os.Stat(filepath.Join(dir, "secrets", "galera", "sst-password")); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("generated SST password: %v %v", st, err)
		}
		pw, _ := os.ReadFile(filepath.Join(dir, "secrets", "galera", "sst-password"))
		for _, r := range rep.Results {
			if s := strings.TrimSpace(string(pw)); strings.Contains(r.Message+r.Expected+r.Found+r.Diff+r.Error, s) {
				t.Fatalf("SST password in a result: %+v", r)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("second run changes nothing, verify reports health", func(t *testing.T) {
		if c := changedSteps(bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)); len(c) > 0 {
			t.Fatalf("second run changed:\n%s", strings.Join(c, "\n"))
		}
		st := statuses(bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeAudit))
		for _, h := range fs {
			for _, v := range []string{"wsrep_cluster_status", "wsrep_local_state_comment", "wsrep_cluster_size"} {
				if s := st[h.Name+" galera "+v]; s != installer.StatusOK {
					t.Errorf("verify %s galera %s: %q, want ok", h.Name, v, s)
				}
			}
		}
	})

	t.Run("a row written on one member is read on another", func(t *testing.T) {
		if _, err := fs[1].MySQL(ctx, "INSERT INTO lbserver20.jobs VALUES (3,'carol')"); err != nil {
			t.Fatal(err)
		}
		if out, err := fs[2].MySQL(ctx, "SELECT owner FROM lbserver20.jobs WHERE id=3"); err != nil || strings.TrimSpace(out) != "carol" {
			t.Fatalf("fs3 reads %q %v", out, err)
		}
	})

	t.Run("a host without the pool CA's certificate cannot join the cluster", func(t *testing.T) {
		// An adversary on the pool's network runs a Galera node of its own
		// (garbd: joining is all it does) against fs1: in plain TCP, then
		// over TLS with a certificate of its own. Either would receive every
		// write-set (and a full node the whole database by SST) if it got
		// in; it must not, and the cluster stays the three members.
		if _, err := rb1.Sh(ctx, "cd /tmp && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout rogue.key -out rogue.pem -subj /CN=rogue -days 1 2>/dev/null"); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ name, opts string }{
			{"plain", ""},
			{"own certificate", "socket.ssl_cert=/tmp/rogue.pem;socket.ssl_key=/tmp/rogue.key;socket.ssl_ca=/tmp/rogue.pem"},
		} {
			cmd := "timeout 15 garbd -a gcomm://" + fs[0].Addr + ":4567 -g " + inv.Roles.StateServer.Pool.ClusterName + " -l /tmp/rogue-garbd.log"
			if tc.opts != "" {
				cmd += " -o '" + tc.opts + "'"
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				rb1.Sh(ctx, cmd+" >/dev/null 2>&1")
			}()
			samples := 0
			for i := 0; i < 40; i++ {
				select {
				case <-done:
					i = 40
					continue
				case <-time.After(500 * time.Millisecond):
				}
				samples++
				if n := wsrep(ctx, fs[0], "wsrep_cluster_size"); n != "3" {
					log, _ := rb1.Sh(ctx, "tail -n 5 /tmp/rogue-garbd.log")
					t.Fatalf("%s: a rogue garbd on rb1 changed fs1's cluster size to %q (it joined):\n%s", tc.name, n, log)
				}
			}
			<-done
			// garbd keeps trying for the 15 s of its timeout: one that gave
			// up at once (a bad option) would prove nothing.
			if samples < 10 {
				log, _ := rb1.Sh(ctx, "tail -n 5 /tmp/rogue-garbd.log")
				t.Fatalf("%s: the rogue garbd ended after %d samples; it did not try to join:\n%s", tc.name, samples, log)
			}
		}
		if n := wsrep(ctx, fs[0], "wsrep_cluster_size"); n != "3" {
			t.Fatalf("cluster size %q after the rogue joins, want 3", n)
		}
		for _, m := range fs {
			if out, err := m.Sh(ctx, "stat -c '%n %a %U' /etc/mysql/gridha-tls/key.pem"); err != nil || out != "/etc/mysql/gridha-tls/key.pem 400 mysql\n" {
				t.Errorf("%s: Galera TLS key %q %v", m.Name, out, err)
			}
		}
	})

	t.Run("the rb node's L&B account reaches only its database", func(t *testing.T) {
		sqlFrom := func(user, pw, host, q string) (string, error) {
			return rb1.Sh(ctx, fmt.Sprintf("MYSQL_PWD=%s mariadb -h %s -u %s -N -B -e %s 2>&1",
				installer.ShellQuote(pw), host, user, installer.ShellQuote(q)))
		}
		for _, h := range fs {
			if out, err := sqlFrom("lbserver", "pool-LB-secret", h.Addr, "SELECT COUNT(*) FROM lbserver20.jobs"); err != nil || strings.TrimSpace(out) != "3" {
				t.Fatalf("L&B account from rb1 on %s: %q %v", h.Name, out, err)
			}
		}
		for _, q := range []string{"CREATE DATABASE other", "SELECT COUNT(*) FROM mysql.user", "SHOW GRANTS FOR gridha_sst@localhost"} {
			if out, err := sqlFrom("lbserver", "pool-LB-secret", fs[0].Addr, q); err == nil {
				t.Fatalf("L&B account ran %q: %s", q, out)
			}
		}
		pw, _ := os.ReadFile(filepath.Join(dir, "secrets", "galera", "sst-password"))
		for _, u := range []string{"root", "gridha_sst"} {
			if out, err := sqlFrom(u, strings.TrimSpace(string(pw)), fs[0].Addr, "SELECT 1"); err == nil {
				t.Fatalf("%s logs in from rb1: %s", u, out)
			}
		}
	})
	if t.Failed() {
		return
	}
	poolServiceIP(t, ctx, inv, fs, rb1)
	if t.Failed() {
		return
	}
	poolFaults(t, ctx, inv, fs)
}

// ipHolders samples which members hold the pool's service IP (each member
// read once, one after the other).
func ipHolders(ctx context.Context, fs []*testbed.Host, ip string) ([]string, error) {
	var out []string
	for _, h := range fs {
		o, err := h.Sh(ctx, "ip -4 -o addr show dev eth0")
		if err != nil {
			return nil, fmt.Errorf("%s: %s %w", h.Name, o, err)
		}
		if strings.Contains(o, " "+ip+"/") {
			out = append(out, h.Name)
		}
	}
	return out, nil
}

// poolServiceIP: hagd on the pool (statepool_ha.go) brings the service IP
// up on one member; the rb node's L&B account reaches lbserver20 there; a
// kill -9 of the holder's mariadbd moves it, never to two members at once.
func poolServiceIP(t *testing.T, ctx context.Context, inv *inventory.Inventory, fs []*testbed.Host, rb1 *testbed.Host) {
	ip := strings.SplitN(inv.Roles.StateServer.Pool.ServiceIP, "/", 2)[0]
	h := inv.Roles.RBNode.HAGD
	// Election (ΔT1 + ΔT2), or a dead holder's lease running out, plus
	// the status poll and slack for the loaded machine.
	bound := h.DT1 + h.DT2 + h.LeaseTTL + h.StatusInterval + 15*time.Second
	// waitOne samples every member every ~100 ms until exactly one holds
	// the IP (and not want's complement, when want is set); two holders at
	// any sample fail the test.
	waitOne := func(t *testing.T, not string, limit time.Duration) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		for i := 0; ; i++ {
			hs, err := ipHolders(ctx, fs, ip)
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) > 1 {
				t.Fatalf("sample %d: the service IP %s is on %v at once", i, ip, hs)
			}
			if len(hs) == 1 && hs[0] != not {
				return hs[0], time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("no member but %q holds %s after %s (holders %v)", not, ip, limit, hs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var holder string
	t.Run("one member holds the service IP; the rb node's L&B account reaches it", func(t *testing.T) {
		holder, _ = waitOne(t, "", bound)
		// And it stays on that one for a while (no flapping, no second).
		end := time.Now().Add(3 * time.Second)
		for time.Now().Before(end) {
			if hs, err := ipHolders(ctx, fs, ip); err != nil || len(hs) != 1 || hs[0] != holder {
				t.Fatalf("holders %v %v, want only %s", hs, err, holder)
			}
			time.Sleep(100 * time.Millisecond)
		}
		out, err := rb1.Sh(ctx, "MYSQL_PWD=pool-LB-secret mariadb -h "+ip+" -u lbserver -N -B -e 'SELECT COUNT(*) FROM lbserver20.jobs' 2>&1")
		if err != nil || strings.TrimSpace(out) != "3" {
			t.Fatalf("L&B account from rb1 through the service IP: %q %v", out, err)
		}
		// The lease account's password never reaches the members' argv:
		// it is in a 0600 file.
		for _, m := range fs {
			if out, err := m.Sh(ctx, "stat -c '%U %a' /opt/lcg/etc/hagd-mysql.pw "+PoolHAClientConf); err != nil || out != "root 600\nroot 600\n" {
				t.Errorf("%s: lease password file, service script's option file %q %v", m.Name, out, err)
			}
			// The service script logs in as the lease account (not the
			// admin: it works with mysql.admin_password_file set too).
			if out, err := m.Sh(ctx, "mariadb --defaults-extra-file="+PoolHAClientConf+" -N -B -e 'SELECT CURRENT_USER()'"); err != nil || out != PoolLeaseUser+"@localhost\n" {
				t.Errorf("%s: the service script's account: %q %v", m.Name, out, err)
			}
			if _, err := m.Sh(ctx, PoolHAScript+" status statedb"); err != nil {
				t.Errorf("%s: service script status on a Primary, Synced member: %v", m.Name, err)
			}
		}
	})
	if t.Failed() {
		return
	}
	t.Run("kill -9 of the holder's mariadbd: the IP moves, never on two members", func(t *testing.T) {
		var hh *testbed.Host
		for _, m := range fs {
			if m.Name == holder {
				hh = m
			}
		}
		// rb1 knows the address at the holder's MAC (a neighbour entry,
		// reachable for 15-45 s and then kept stale until rb1 sends).
		if out, err := rb1.Sh(ctx, "ping -c 1 -W 5 "+ip+" >/dev/null; ip neigh show "+ip); err != nil || !strings.Contains(out, "lladdr") {
			t.Fatalf("rb1: no neighbour entry for %s: %q %v", ip, out, err)
		}
		if out, err := hh.Sh(ctx, "kill -9 $(cat "+GaleraPIDFile+")"); err != nil {
			t.Fatalf("%s: kill -9 mariadbd: %s %v", hh.Name, out, err)
		}
		next, took := waitOne(t, holder, bound)
		t.Logf("service IP moved from %s to %s %.1f s after kill -9 of its mariadbd (bound %s)", holder, next, took.Seconds(), bound)
		// The new holder announced it (gratuitous ARP from the pool's
		// service script): rb1's entry points at its MAC within seconds,
		// with no traffic from rb1 (else rb1 would send to the old MAC
		// until the entry expired: up to ~50 s).
		var nh *testbed.Host
		for _, m := range fs {
			if m.Name == next {
				nh = m
			}
		}
		mac, err := nh.Sh(ctx, "cat /sys/class/net/eth0/address")
		if err != nil {
			t.Fatal(err)
		}
		var neigh string
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if neigh, _ = rb1.Sh(ctx, "ip neigh show "+ip); strings.Contains(neigh, "lladdr "+strings.TrimSpace(mac)) {
				break
			}
		}
		if !strings.Contains(neigh, "lladdr "+strings.TrimSpace(mac)) {
			t.Errorf("rb1's neighbour entry for %s 5 s after it moved to %s (%s): %q: no gratuitous ARP", ip, next, strings.TrimSpace(mac), neigh)
		}
		// The next install brings the killed member back (IST); all
		// three Synced again for the faults that follow.
		rep := bedRun(t, ctx, inv, poolDBRole{}, Options{}, installer.ModeApply)
		requireNo(t, rep, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing)
		for _, m := range fs {
			waitWsrep(t, ctx, m, "wsrep_local_state_comment", "Synced", 60*time.Second)
		}
		// The highest rank gets it back (preemption), still one at a time.
		end := time.Now().Add(bound)
		for time.Now().Before(end) {
			hs, err := ipHolders(ctx, fs, ip)
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) > 1 {
				t.Fatalf("the service IP %s is on %v at once", ip, hs)
			}
			if len(hs) == 1 && hs[0] == fs[0].Name {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s (highest rank) did not get the service IP back within %s", fs[0].Name, bound)
	})
}

// poolFaults are the fault subtests of TestStatePoolDBOnBed, on its pool.
func poolFaults(t *testing.T, ctx context.Context, inv *inventory.Inventory, fs []*testbed.Host) {
	role := poolDBRole{}
	kill9 := func(h *testbed.Host) {
		t.Helper()
		if out, err := h.Sh(ctx, "kill -9 $(cat "+GaleraPIDFile+") && i=0 && while pgrep -x mariadbd >/dev/null; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done"); err != nil {
			t.Fatalf("%s: kill -9 mariadbd: %s %v", h.Name, out, err)
		}
	}
	galeraMsg := func(rep *installer.Report) string {
		for _, r := range rep.Results {
			if r.Step == "galera cluster" && r.Status != installer.StatusOK {
				return r.Message
			}
		}
		return ""
	}
	count := func(h *testbed.Host) string {
		out, err := h.MySQL(ctx, "SELECT COUNT(*) FROM lbserver20.jobs")
		if err != nil {
			return err.Error()
		}
		return strings.TrimSpace(out)
	}

	t.Run("kill -9 of one member: the others stay Primary, install rejoins it by IST", func(t *testing.T) {
		kill9(fs[2])
		waitWsrep(t, ctx, fs[0], "wsrep_cluster_size", "2", 60*time.Second)
		for _, h := range fs[:2] {
			if s := wsrep(ctx, h, "wsrep_cluster_status"); s != "Primary" {
				t.Fatalf("%s: %s after fs3 died", h.Name, s)
			}
		}
		if _, err := fs[0].MySQL(ctx, "INSERT INTO lbserver20.jobs VALUES (4,'dave')"); err != nil {
			t.Fatalf("write with one member dead: %v", err)
		}
		st := statuses(bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeAudit))
		if s := st["fs1 galera wsrep_cluster_size"]; s != installer.StatusDrift {
			t.Errorf("verify with fs3 dead: fs1 cluster size %q, want drift", s)
		}
		rep := bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)
		requireNo(t, rep, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing)
		if m := galeraMsg(rep); !strings.Contains(m, "join fs3") || !strings.Contains(m, "IST") || strings.Contains(m, "bootstrap") {
			t.Fatalf("rejoin: %q, want fs3 joined from its recovered position and no bootstrap", m)
		}
		waitWsrep(t, ctx, fs[2], "wsrep_local_state_comment", "Synced", 60*time.Second)
		if c := count(fs[2]); c != "4" {
			t.Fatalf("fs3 after rejoining: %s rows, want 4", c)
		}
		// IST, not a full transfer: the joiner's log says so.
		log, _ := fs[2].ReadFile(GaleraErrorLog)
		tail := string(log)
		if i := strings.LastIndex(tail, "Recovered position"); i >= 0 {
			tail = tail[i:]
		}
		if !strings.Contains(tail, "IST received") && !strings.Contains(tail, "Receiving IST") {
			t.Fatalf("fs3 rejoined without IST; its log since the restart:\n%s", lastLines(tail, 30))
		}
	})

	t.Run("two of three cut off: the remaining one refuses writes", func(t *testing.T) {
		for _, h := range fs[1:] {
			if err := h.LinkDown(); err != nil {
				t.Fatal(err)
			}
		}
		defer func() {
			for _, h := range fs[1:] {
				_ = h.LinkUp()
			}
		}()
		waitWsrep(t, ctx, fs[0], "wsrep_cluster_status", "non-Primary", 90*time.Second)
		// No member is Primary, so none can renew the pool group's lease:
		// the service IP is on no member within the lease's bound.
		ip := strings.SplitN(inv.Roles.StateServer.Pool.ServiceIP, "/", 2)[0]
		hg := inv.Roles.RBNode.HAGD
		for end := time.Now().Add(hg.LeaseTTL + hg.StatusInterval + 10*time.Second); ; time.Sleep(200 * time.Millisecond) {
			hs, err := ipHolders(ctx, fs, ip)
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) == 0 {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("no member is Primary, yet %v still hold the service IP %s", hs, ip)
			}
		}
		if out, err := fs[0].MySQL(ctx, "INSERT INTO lbserver20.jobs VALUES (5,'eve')"); err == nil {
			t.Fatalf("fs1 alone accepted a write: %q", out)
		}
		st := statuses(bedRun(t, ctx, inv, role, Options{ReadOnly: true, Limit: []string{"fs1"}}, installer.ModeAudit))
		if s := st["fs1 galera wsrep_cluster_status"]; s != installer.StatusDrift {
			t.Errorf("verify of the cut-off pool: fs1 cluster status %q, want drift", s)
		}
		for _, h := range fs[1:] {
			if err := h.LinkUp(); err != nil {
				t.Fatal(err)
			}
		}
		for _, h := range fs {
			waitWsrep(t, ctx, h, "wsrep_cluster_size", "3", 120*time.Second)
			waitWsrep(t, ctx, h, "wsrep_cluster_status", "Primary", 30*time.Second)
		}
		for _, h := range fs {
			if c := count(h); c != "4" {
				t.Fatalf("%s after healing: %s rows, want 4 (nothing divergent)", h.Name, c)
			}
		}
	})

	t.Run("all stopped: install bootstraps the most advanced member only", func(t *testing.T) {
		// fs3 leaves first, then fs2; fs1 takes one more write each time
		// and crashes last: it alone holds row 7.
		for i, h := range []*testbed.Host{fs[2], fs[1]} {
			if _, err := h.MySQL(ctx, "SHUTDOWN"); err != nil && !strings.Contains(err.Error(), "exit") {
				t.Fatal(err)
			}
			if out, err := h.Sh(ctx, "i=0; while pgrep -x mariadbd >/dev/null; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.1; done"); err != nil {
				t.Fatalf("%s did not stop: %s", h.Name, out)
			}
			waitWsrep(t, ctx, fs[0], "wsrep_cluster_size", fmt.Sprint(2-i), 60*time.Second)
			if _, err := fs[0].MySQL(ctx, fmt.Sprintf("INSERT INTO lbserver20.jobs VALUES (%d,'late%d')", 6+i, i)); err != nil {
				t.Fatal(err)
			}
		}
		kill9(fs[0])
		chk := bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeCheck)
		if s := statuses(chk)["fs1 galera cluster"]; !s.NeedsChange() {
			t.Fatalf("--check with every member stopped: %q", s)
		}
		rep := bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)
		requireNo(t, rep, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing)
		m := galeraMsg(rep)
		if !strings.Contains(m, "bootstrap fs1") || strings.Count(m, "bootstrap fs") != 1 {
			t.Fatalf("all stopped: %q, want fs1 (the most advanced) bootstrapped and only it", m)
		}
		for _, h := range fs {
			waitWsrep(t, ctx, h, "wsrep_local_state_comment", "Synced", 60*time.Second)
			if c := count(h); c != "6" {
				t.Fatalf("%s after the restart: %s rows, want 6", h.Name, c)
			}
		}
	})
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
