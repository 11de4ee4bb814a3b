package roles

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
)

// arbiterInventory: fs1 and fs2 are the pool's data members, fs3 its
// arbiter (GlusterFS arbiter brick, garbd), rb1 an rb node.
func arbiterInventory(t *testing.T, bed *testbed.Bed, dir string) *inventory.Inventory {
	t.Helper()
	pwFile := writeLBPassword(t, dir, "arbiter-LB-secret")
	body := fmt.Sprintf(`secrets_dir: %s
%sroles:
  state-server:
    export: /srv/rb-state
    mysql:
      password_file: %s
    pool:
      service_ip: %s/24
      iface: eth0
      arbiter: fs3
  rb-node:
    hagd:
      iface: [eth0]
`+lenientHAGD+`    groups:
      rb-a: {service_ip: %s/24, iface: eth0}
    nodes:
      rb1: {rb-a: 100}
`, filepath.Join(dir, "secrets"), bed.HostsYAML(map[string][]string{
		"fs1": {"state-server"}, "fs2": {"state-server"}, "fs3": {"state-server"}, "rb1": {"rb-node"},
	}), pwFile, bed.SpareAddr(1), bed.SpareAddr(0))
	inv := loadBedInventory(t, bed, dir, body)
	return inv
}

// galeraStatusLine is "status/state size" of h, for logs and checks.
func galeraStatusLine(ctx context.Context, h *testbed.Host) string {
	return wsrep(ctx, h, "wsrep_cluster_status") + "/" + wsrep(ctx, h, "wsrep_local_state_comment") + " " + wsrep(ctx, h, "wsrep_cluster_size")
}

// waitStatus waits (bounded) until galeraStatusLine of h is want.
func waitStatus(t *testing.T, ctx context.Context, h *testbed.Host, want string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := galeraStatusLine(ctx, h)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q after %s, want %q", h.Name, got, limit, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestStatePoolArbiterOnBed: the 2 + arbiter layout (issue 13) on one bed:
// fs1 and fs2 hold the data, fs3 is the arbiter (a metadata-only GlusterFS
// brick and garbd, no MariaDB). Then, on the same bed, the repair of a
// cluster that lost quorum while members kept running (pc.bootstrap).
func TestStatePoolArbiterOnBed(t *testing.T) {
	bed := testbed.New(t, "fs1", "fs2", "fs3", "rb1")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	fs1, fs2, fs3 := bed.Host("fs1"), bed.Host("fs2"), bed.Host("fs3")
	inv := arbiterInventory(t, bed, t.TempDir())

	start := time.Now()
	rep := bedRun(t, ctx, inv, StateServer{}, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable, installer.StatusDrift, installer.StatusMissing)
	t.Logf("install of a 2 + arbiter pool: %s", time.Since(start).Round(time.Second))
	if t.Failed() {
		return
	}

	t.Run("the arbiter brick holds names, not content", func(t *testing.T) {
		out, err := fs1.Sh(ctx, "gluster volume info rbstate")
		if err != nil || !strings.Contains(out, "Number of Bricks: 1 x (2 + 1) = 3") {
			t.Fatalf("volume info: %v\n%s", err, out)
		}
		if _, err := fs1.Sh(ctx, `set -e; mkdir -p /mnt/arb; mount -t glusterfs fs1:/rbstate /mnt/arb
mkdir -p /mnt/arb/sandbox; head -c 65536 /dev/urandom >/mnt/arb/sandbox/job-1; echo hello >/mnt/arb/sandbox/job-2; sync`); err != nil {
			t.Fatal(err)
		}
		defer fs1.Sh(ctx, "umount /mnt/arb")
		brick := "/srv/gridha/bricks/rbstate/sandbox/"
		for _, c := range []struct {
			h    *testbed.Host
			want string
		}{{fs1, "65536 6"}, {fs2, "65536 6"}, {fs3, "0 0"}} {
			out, err := c.h.Sh(ctx, "stat -c %s "+brick+"job-1 "+brick+"job-2 | tr '\\n' ' '")
			if err != nil || strings.TrimSpace(out) != c.want {
				t.Errorf("%s's brick: sizes of job-1 job-2 %q (%v), want %q", c.h.Name, out, err, c.want)
			}
		}
		// Through the mount the content is whole.
		if out, err := fs1.Sh(ctx, "cat /mnt/arb/sandbox/job-2; stat -c %s /mnt/arb/sandbox/job-1"); err != nil || out != "hello\n65536\n" {
			t.Errorf("through the mount: %q %v", out, err)
		}
	})

	t.Run("garbd is the Galera arbitrator: counted, holds no data", func(t *testing.T) {
		for _, h := range []*testbed.Host{fs1, fs2} {
			if got := galeraStatusLine(ctx, h); got != "Primary/Synced 3" {
				t.Errorf("%s: %q, want Primary/Synced 3 (garbd counted)", h.Name, got)
			}
		}
		if out, err := fs3.Sh(ctx, "pgrep -x garbd >/dev/null && echo garbd; pgrep -x mariadbd || echo no-mariadbd; ls /var/lib/mysql/lbserver20 2>&1 >/dev/null | grep -c 'No such' || true"); err != nil || out != "garbd\nno-mariadbd\n1\n" {
			t.Errorf("fs3: %q %v, want garbd running, no mariadbd, no lbserver20", out, err)
		}
		st := statuses(bedRun(t, ctx, inv, StateServer{}, Options{ReadOnly: true}, installer.ModeAudit))
		if s := st["fs3 galera arbitrator (garbd) running"]; s != installer.StatusOK {
			t.Errorf("verify: fs3 garbd %q, want ok", s)
		}
		for _, h := range []string{"fs1", "fs2"} {
			if s := st[h+" galera wsrep_cluster_size"]; s != installer.StatusOK {
				t.Errorf("verify: %s wsrep_cluster_size %q, want ok", h, s)
			}
		}
		if _, ok := st["fs3 galera wsrep_cluster_size"]; ok {
			t.Error("verify asks the arbiter's MariaDB")
		}
	})
	if t.Failed() {
		return
	}
	if _, err := fs1.MySQL(ctx, "CREATE TABLE lbserver20.arb (id INT PRIMARY KEY, at VARCHAR(8)) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	acked := 0
	insert := func(h *testbed.Host, tag string) error {
		_, err := h.MySQL(ctx, fmt.Sprintf("INSERT INTO lbserver20.arb VALUES (%d, '%s')", acked+1, tag))
		if err == nil {
			acked++
		}
		return err
	}
	rows := func(h *testbed.Host) string {
		out, _ := h.MySQL(ctx, "SELECT COUNT(*) FROM lbserver20.arb")
		return strings.TrimSpace(out)
	}

	t.Run("a data member killed during writes: the other and the arbiter keep quorum", func(t *testing.T) {
		// Bounded: 30 inserts, fs2's mariadbd killed after the 10th.
		for i := 0; i < 30; i++ {
			if i == 10 {
				if _, err := fs2.Sh(ctx, "pkill -9 -x mariadbd"); err != nil {
					t.Fatal(err)
				}
			}
			if err := insert(fs1, "kill"); err != nil {
				t.Fatalf("insert %d on fs1 after fs2's kill: %v (fs1 %s)", i, err, galeraStatusLine(ctx, fs1))
			}
			time.Sleep(100 * time.Millisecond)
		}
		waitStatus(t, ctx, fs1, "Primary/Synced 2", 60*time.Second)
		if got := rows(fs1); got != strconv.Itoa(acked) {
			t.Fatalf("fs1 has %s rows, %d acknowledged", got, acked)
		}
		// The next install brings fs2 back (IST) and it has every row.
		rep := bedRun(t, ctx, inv, StateServer{}, Options{}, installer.ModeApply)
		requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
		waitStatus(t, ctx, fs2, "Primary/Synced 3", 60*time.Second)
		if got := rows(fs2); got != strconv.Itoa(acked) {
			t.Fatalf("fs2 has %s rows after rejoining, %d acknowledged", got, acked)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("a data member cut off from the others refuses writes", func(t *testing.T) {
		if err := fs1.Blackhole(ctx, fs2.Addr, fs3.Addr); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				fs1.Unblackhole(ctx, fs2.Addr, fs3.Addr)
			}
		}()
		waitWsrep(t, ctx, fs1, "wsrep_cluster_status", "non-Primary", 60*time.Second)
		if _, err := fs1.MySQL(ctx, "INSERT INTO lbserver20.arb VALUES (100000, 'cut')"); err == nil {
			t.Fatal("fs1, cut off, accepted a write")
		}
		waitStatus(t, ctx, fs2, "Primary/Synced 2", 60*time.Second)
		if err := insert(fs2, "cut"); err != nil {
			t.Fatalf("fs2 and the arbiter refuse a write: %v", err)
		}
		if err := fs1.Unblackhole(ctx, fs2.Addr, fs3.Addr); err != nil {
			t.Fatal(err)
		}
		healed = true
		waitStatus(t, ctx, fs1, "Primary/Synced 3", 90*time.Second)
		if got := rows(fs1); got != strconv.Itoa(acked) {
			t.Fatalf("fs1 has %s rows after the cable is back, %d acknowledged", got, acked)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("quorum lost with members running: install repairs it with pc.bootstrap", func(t *testing.T) {
		// Every member cut off from every other.
		all := []*testbed.Host{fs1, fs2, fs3}
		for _, h := range all {
			var others []string
			for _, o := range all {
				if o != h {
					others = append(others, o.Addr)
				}
			}
			if err := h.Blackhole(ctx, others...); err != nil {
				t.Fatal(err)
			}
			defer h.Unblackhole(ctx, others...)
		}
		waitWsrep(t, ctx, fs1, "wsrep_cluster_status", "non-Primary", 60*time.Second)
		waitWsrep(t, ctx, fs2, "wsrep_cluster_status", "non-Primary", 60*time.Second)
		// Refused while the members cannot reach each other (the database
		// half alone: the volume's steps fail first during a partition).
		rep := bedRun(t, ctx, inv, poolDBRole{}, Options{}, installer.ModeApply)
		if r, _ := resultOf(rep, "fs1", "galera cluster"); r.Status != installer.StatusFailed || !strings.Contains(r.Error, "do not reach each other") {
			t.Fatalf("install during the partition: %s %s %s", r.Status, r.Message, r.Error)
		}
		for _, h := range all {
			for _, o := range all {
				if o != h {
					h.Unblackhole(ctx, o.Addr)
				}
			}
		}
		// Galera re-forms the Primary component by itself when every
		// member of the last one is back: wait for it, bounded.
		deadline := time.Now().Add(45 * time.Second)
		for time.Now().Before(deadline) && wsrep(ctx, fs1, "wsrep_cluster_status") != "Primary" {
			time.Sleep(time.Second)
		}
		t.Logf("partition healed: fs1 %s, fs2 %s", galeraStatusLine(ctx, fs1), galeraStatusLine(ctx, fs2))
		if wsrep(ctx, fs1, "wsrep_cluster_status") != "Primary" {
			t.Log("Galera did not re-form the Primary component after the partition healed")
		} else {
			// The state that stays without quorum: the other data member
			// and the arbiter crash; fs1, alone, is non-Primary and stays.
			if _, err := fs2.Sh(ctx, "pkill -9 -x mariadbd"); err != nil {
				t.Fatal(err)
			}
			if _, err := fs3.Sh(ctx, "pkill -9 -x garbd || true"); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, ctx, fs1, "non-Primary/Initialized 1", 60*time.Second)
			if _, err := fs1.MySQL(ctx, "INSERT INTO lbserver20.arb VALUES (100001, 'alone')"); err == nil {
				t.Fatal("fs1, alone, accepted a write")
			}
		}
		// verify says what install would do (fs2's position after its
		// crash is known only once install recovers it), and does nothing.
		chk := bedRun(t, ctx, inv, poolDBRole{}, Options{ReadOnly: true}, installer.ModeAudit)
		if r, _ := resultOf(chk, "fs1", "galera cluster"); r.Status != installer.StatusDrift || !strings.Contains(r.Message, "pc.bootstrap") {
			t.Errorf("verify of the cluster without quorum: %s %q", r.Status, r.Message)
		}
		if got := wsrep(ctx, fs1, "wsrep_cluster_status"); got != "non-Primary" {
			t.Fatalf("verify changed fs1: %s", got)
		}
		rep = bedRun(t, ctx, inv, StateServer{}, Options{}, installer.ModeApply)
		requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
		r, _ := resultOf(rep, "fs1", "galera cluster")
		// One pc.bootstrap, of fs1 (the survivor, most advanced), and no
		// new cluster (--wsrep-new-cluster) anywhere.
		if !strings.Contains(r.Message, "pc.bootstrap fs1 (") || strings.Count(r.Message, "bootstrap fs") != 1 {
			t.Fatalf("galera cluster: want one pc.bootstrap, got %s %q", r.Status, r.Message)
		}
		t.Logf("repair: %s", r.Message)
		for _, h := range []*testbed.Host{fs1, fs2} {
			waitStatus(t, ctx, h, "Primary/Synced 3", 60*time.Second)
			if got := rows(h); got != strconv.Itoa(acked) {
				t.Errorf("%s has %s rows, %d acknowledged", h.Name, got, acked)
			}
		}
		if err := insert(fs2, "after"); err != nil {
			t.Fatalf("write after the repair: %v", err)
		}
	})
}
