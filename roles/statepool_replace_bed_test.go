package roles

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
)

// replacedInventory is inv's inventory with member old removed (its host
// gone from hosts:) and host new given the state-server role, written
// beside it (same secrets folder: the pool's CA).
func replacedInventory(t *testing.T, inv *inventory.Inventory, old, new string) *inventory.Inventory {
	t.Helper()
	text, err := os.ReadFile(inv.Path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	skip := false
	for _, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "    ") {
			skip = l == "  "+old+":"
		}
		if strings.HasPrefix(l, "roles:") {
			skip = false
		}
		if skip {
			continue
		}
		out = append(out, l)
		if l == "  "+new+":" {
			out = append(out, "    roles: [state-server]")
		}
	}
	p := filepath.Join(inv.Dir, "gridha-"+new+".yaml")
	if err := os.WriteFile(p, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := inventory.Load(p)
	if err != nil {
		t.Fatalf("inventory without %s, with %s: %v", old, new, err)
	}
	var names []string
	for _, m := range inventory.PoolMembers(n) {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, " "); got != "fs1 fs2 "+new {
		t.Fatalf("pool members of the edited inventory: %s", got)
	}
	return n
}

// replaceLostMember: fs3 destroyed for good (every process killed, cable
// cut, never back as a member) while rb1 writes through the mount; the
// admin replaces it by fs4 in the inventory and runs install rb-node once
// (the pool's phases and the node's). What the user checks: Galera of 3
// incl. fs4 with fs1's rows, fs4's brick holding every file (content,
// owner, mode) after the heal, the volume listing fs4 not fs3, fs3's
// certificate no longer opening the volume, rb1 writing all along.
func replaceLostMember(t *testing.T, ctx context.Context, bed *testbed.Bed, inv *inventory.Inventory) {
	fs1, fs2, fs3, fs4, rb1 := bed.Host("fs1"), bed.Host("fs2"), bed.Host("fs3"), bed.Host("fs4"), bed.Host("rb1")
	// The foreign volume of the subtest before has a brick on fs3: gone
	// first (gluster deletes a volume only with every brick's host up).
	if out, err := fs1.Sh(ctx, "gluster --mode=script volume stop foreign force; gluster --mode=script volume delete foreign"); err != nil {
		t.Fatal(out, err)
	}
	// State before: rows in lbserver20, files of several owners and modes.
	if out, err := fs1.MySQL(ctx, "CREATE TABLE lbserver20.replace_t (id INT PRIMARY KEY, v VARCHAR(40)); INSERT INTO lbserver20.replace_t VALUES (1,'before-a'),(2,'before-b')"); err != nil {
		t.Fatal(out, err)
	}
	const dir = "/mnt/rb-state/replace"
	if out, err := rb1.Sh(ctx, "mkdir -p "+dir+" && echo proxy > "+dir+"/proxy && chown 501:501 "+dir+"/proxy && chmod 0600 "+dir+"/proxy && "+
		"echo tool > "+dir+"/tool && chmod 4755 "+dir+"/tool && ln -s proxy "+dir+"/link"); err != nil {
		t.Fatal(out, err)
	}

	// fs3 is lost: everything on it killed, cable cut.
	if _, err := fs3.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fs3.LinkDown(); err != nil {
		t.Fatal(err)
	}
	waitWsrep(t, ctx, fs1, "wsrep_cluster_size", "2", 90*time.Second)
	// Written after the loss: pending heal for the lost brick.
	if out, err := fs2.MySQL(ctx, "INSERT INTO lbserver20.replace_t VALUES (3,'after-loss')"); err != nil {
		t.Fatal(out, err)
	}
	if out, err := rb1.Sh(ctx, "head -c 70000 /dev/urandom > "+dir+"/after-loss && chown 502:503 "+dir+"/after-loss && chmod 0640 "+dir+"/after-loss"); err != nil {
		t.Fatal(out, err)
	}

	ninv := replacedInventory(t, inv, "fs3", "fs4")
	// verify names the replacement to come, changes nothing.
	chk := bedRun(t, ctx, ninv, StateServer{}, Options{ReadOnly: true}, installer.ModeAudit)
	if r, _ := resultOf(chk, "fs1", "glusterfs volume rbstate"); r.Status != installer.StatusDrift || !strings.Contains(r.Message, "would replace it by "+fs4.Hostname) {
		t.Errorf("verify before the replacement: volume %s %q", r.Status, r.Message)
	}

	// rb1 writes through the mount during the run (bounded loop, one
	// file every 0.2 s), each write checked.
	stop := fmt.Sprintf("/tmp/replace-stop-%d", time.Now().UnixNano())
	loop := make(chan string, 1)
	go func() {
		out, err := rb1.Sh(ctx, `mkdir -p `+dir+`/during && i=1; while [ $i -le 600 ] && [ ! -e `+stop+` ]; do echo "job $i" > `+dir+`/during/job$i || echo "write $i failed"; i=$((i+1)); sleep 0.5; done; echo "wrote $((i-1))"`)
		loop <- fmt.Sprint(out, err)
	}()
	started := time.Now()
	rep := bedRun(t, ctx, ninv, RBNode{withoutHA: true}, Options{}, installer.ModeApply)
	runTook := time.Since(started)
	t.Logf("the replacing run took %.1f s", runTook.Seconds())
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
	if r, _ := resultOf(rep, "fs1", "glusterfs volume rbstate"); r.Status != installer.StatusChanged || !strings.Contains(r.Message, "replaced brick "+fs3.Hostname) {
		t.Errorf("install: volume %s %q, want the brick replaced", r.Status, r.Message)
	}
	if r, _ := resultOf(rep, "fs1", "glusterfs former members detached"); r.Status != installer.StatusChanged || !strings.Contains(r.Message, "detached "+fs3.Hostname) {
		t.Errorf("install: detach %s %q", r.Status, r.Message)
	}

	// Galera: fs4 joined by SST, three members, fs1's rows; the running
	// members were not restarted, their option file names fs4 not fs3.
	waitWsrep(t, ctx, fs4, "wsrep_cluster_size", "3", 90*time.Second)
	rows := func(h *testbed.Host) string {
		out, err := h.MySQL(ctx, "SELECT id, v FROM lbserver20.replace_t ORDER BY id")
		if err != nil {
			t.Fatalf("%s: %s %v", h.Name, out, err)
		}
		return out
	}
	if a, b := rows(fs1), rows(fs4); a != b || !strings.Contains(a, "after-loss") {
		t.Errorf("lbserver20.replace_t on fs4 %q, on fs1 %q", b, a)
	}
	if up, _ := fs1.MySQL(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='UPTIME'"); func() bool {
		s, _ := strconv.Atoi(strings.TrimSpace(up))
		return time.Duration(s)*time.Second < runTook
	}() {
		t.Errorf("fs1's mariadbd was restarted by the run (uptime %s s)", strings.TrimSpace(up))
	}
	cnf, _ := fs1.ReadFile(inv.Roles.StateServer.MySQL.Config)
	if !strings.Contains(string(cnf), fs4.Addr) || strings.Contains(string(cnf), fs3.Addr) {
		t.Errorf("fs1's %s after the replacement:\n%s", inv.Roles.StateServer.MySQL.Config, cnf)
	}

	// The writes during the run all succeeded.
	if out, err := rb1.Sh(ctx, "touch "+stop); err != nil {
		t.Fatal(out, err)
	}
	var wrote string
	select {
	case wrote = <-loop:
	case <-time.After(2 * time.Minute):
		t.Fatal("rb1's write loop did not end")
	}
	if strings.Contains(wrote, "failed") || !strings.HasPrefix(wrote, "wrote ") {
		t.Errorf("rb1's writes through the mount during the run: %s", wrote)
	}

	// GlusterFS: the volume lists fs4, not fs3; fs3 is no peer; the heal
	// copies everything to fs4's brick.
	info, _ := fs1.Sh(ctx, "gluster volume info rbstate")
	if !strings.Contains(info, fs4.Hostname+":/srv/gridha/bricks/rbstate") || strings.Contains(info, fs3.Hostname) {
		t.Errorf("volume info after the replacement:\n%s", info)
	}
	if peers, _ := fs1.Sh(ctx, "gluster pool list"); strings.Contains(peers, fs3.Hostname) || !strings.Contains(peers, fs4.Hostname) {
		t.Errorf("pool after the replacement:\n%s", peers)
	}
	// gluster volume set auth.ssl-allow lists the nodes and members: fs4
	// in, fs3 out.
	allow, _ := fs1.Sh(ctx, "gluster volume get rbstate auth.ssl-allow")
	if !strings.Contains(allow, fs4.Hostname) || strings.Contains(allow, fs3.Hostname) {
		t.Errorf("auth.ssl-allow: %s", allow)
	}
	// Every entry is copied to the new brick (~1400 entries here: the
	// earlier subtests' files): bounded at 4 minutes, for a loaded machine.
	healStart := time.Now()
	for deadline := healStart.Add(4 * time.Minute); ; {
		out, _ := fs1.Sh(ctx, "gluster volume heal rbstate info summary | awk '/Total Number of entries:/ { s += $NF } END { print s+0 }'")
		if strings.TrimSpace(out) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healed 4 minutes after the run: %s entries pending", strings.TrimSpace(out))
		}
		time.Sleep(time.Second)
	}
	t.Logf("healed %.1f s after the run", time.Since(healStart).Seconds())
	listing := func(h *testbed.Host, root string) string {
		out, err := h.Sh(ctx, "cd "+root+" && find . -path ./.glusterfs -prune -o -print | sort | while read -r f; do "+
			`if [ -L "$f" ]; then echo "$f link $(readlink "$f")"; elif [ -f "$f" ]; then echo "$f $(stat -c '%u:%g %a %s' "$f") $(sha256sum < "$f" | cut -c1-16)"; else echo "$f $(stat -c '%u:%g %a' "$f")"; fi; done`)
		if err != nil {
			t.Fatalf("%s: listing %s: %s %v", h.Name, root, out, err)
		}
		return out
	}
	through := listing(rb1, dir)
	if brick := listing(fs4, "/srv/gridha/bricks/rbstate/replace"); brick != through {
		t.Errorf("fs4's brick after the heal:\n%s\nthrough rb1's mount:\n%s", brick, through)
	}
	for _, want := range []string{"./proxy 501:501 600 6 ", "./tool 0:0 4755 ", "./link link proxy", "./after-loss 502:503 640 70000 ", "./during/job1 "} {
		if !strings.Contains(through, "\n"+want) && !strings.HasPrefix(through, want) {
			t.Errorf("through rb1's mount: no %q in\n%s", want, through)
		}
	}

	// rb1's fstab fetches the volume file from fs2 and fs4 now; rb1
	// still writes.
	fstab, _ := rb1.ReadFile("/etc/fstab")
	if !strings.Contains(string(fstab), "backup-volfile-servers="+fs2.Hostname+":"+fs4.Hostname+" ") {
		t.Errorf("rb1's fstab:\n%s", fstab)
	}
	if out, err := rb1.Sh(ctx, "echo after > "+dir+"/after-run && cat "+dir+"/after-run"); err != nil || out != "after\n" {
		t.Errorf("rb1 writes after the run: %q %v", out, err)
	}

	// The lost box's certificate no longer opens the volume: fs3 back on
	// the wire (nothing of gridha's running there) with its old files is
	// refused; fs4 with its own, the same command, mounts it.
	if err := fs3.LinkUp(); err != nil {
		t.Fatal(err)
	}
	mount := "mkdir -p /mnt/rogue; timeout 60 mount -t glusterfs " + fs1.Hostname + ":/rbstate /mnt/rogue >/dev/null 2>&1; echo rc=$?; ls /mnt/rogue/replace 2>&1; umount /mnt/rogue 2>/dev/null; exit 0"
	if out, _ := fs4.Sh(ctx, mount); !strings.HasPrefix(out, "rc=0\n") || !strings.Contains(out, "after-loss") {
		t.Errorf("fs4 (a member, its own certificate) mounting the volume: %q", out)
	}
	if out, _ := fs3.Sh(ctx, mount); !strings.HasPrefix(out, "rc=") || strings.Contains(out, "after-loss") {
		t.Errorf("fs3's old certificate opened the volume: %q", out)
	}

	// verify: the pool whole, fs4 in every field.
	chk = bedRun(t, ctx, ninv, RBNode{withoutHA: true}, Options{ReadOnly: true}, installer.ModeAudit)
	requireNo(t, chk, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing)
	for step, want := range map[string]string{"glusterfs bricks online": "3 of 3 bricks online", "glusterfs pending heals": "0 entries pending heal", "glusterfs former members detached": "no peer outside"} {
		if r, _ := resultOf(chk, "fs1", step); !strings.Contains(r.Message, want) {
			t.Errorf("verify: %s: %s %q", step, r.Status, r.Message)
		}
	}
	if r, _ := resultOf(chk, "fs4", "galera wsrep_cluster_size"); r.Status != installer.StatusOK {
		t.Errorf("verify: fs4 galera wsrep_cluster_size: %+v", r)
	}
}
