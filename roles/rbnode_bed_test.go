package roles

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
	"github.com/gridha/gridha/testbed/standins"
)

// rbTestServices are the RB services the bed tests install stand-ins for.
var rbTestServices = []string{"edg-wl-ns", "edg-wl-proxyrenewal", "myproxy", "condor"}

// rbNodeInventory writes an inventory where state1 serves the given nodes,
// all in group rb-a with ranks 100, 50, ... in that order. The export is
// under /srv, a private layer of each bed host.
func rbNodeInventory(t testing.TB, bed *testbed.Host, b *testbed.Bed, dir string, nodes ...string) *inventory.Inventory {
	t.Helper()
	pwFile := filepath.Join(dir, "lb-password")
	if err := os.WriteFile(pwFile, []byte("LB-secret-for-rb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var hosts, ranks strings.Builder
	fmt.Fprintf(&hosts, "  state1: {address: %s, hostname: %s, roles: [state-server]}\n", bed.Addr, bed.Hostname)
	for i, n := range nodes {
		h := b.Host(n)
		fmt.Fprintf(&hosts, "  %s: {address: %s, hostname: %s, roles: [rb-node]}\n", n, h.Addr, h.Hostname)
		fmt.Fprintf(&ranks, "      %s: {rb-a: %d}\n", n, 100-50*i)
	}
	body := fmt.Sprintf(`secrets_dir: %s
hosts:
%sroles:
  state-server:
    export: /srv/rb-state
    mysql:
      password_file: %s
  rb-node:
    state_server: state1
    services: [%s]
    groups:
      rb-a: {service_ip: %s/24, iface: eth0}
    nodes:
%s`, filepath.Join(dir, "secrets"), hosts.String(), pwFile, strings.Join(rbTestServices, ", "), b.SpareAddr(1), ranks.String())
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

// seedRBState writes a varied RB state on h: nested folders, modes,
// setgid, a hard link, symlinks, an old mtime, another owner, a name with a
// space, a 0600 proxy, an empty folder, a 1 MB file.
func seedRBState(t *testing.T, ctx context.Context, h *testbed.Host) {
	t.Helper()
	script := `set -e
mkdir -p /var/edgwl/jobs /var/edgwl/sandbox/user1 /var/edgwl/empty /var/myproxy /opt/edg/var/spool/edg-wl-renewd /opt/condor/var/condor/spool
echo 'Executable = "/bin/hostname";' > /var/edgwl/sandbox/user1/input.jdl
ln /var/edgwl/sandbox/user1/input.jdl /var/edgwl/sandbox/user1/input-hardlink.jdl
ln -s user1/input.jdl /var/edgwl/sandbox/latest
ln -s /nonexistent/dangling /var/edgwl/sandbox/dangling
echo 'with a space' > '/var/edgwl/sandbox/user1/output file.txt'
head -c 1000000 /dev/urandom > /var/edgwl/sandbox/user1/big.bin
chown nobody:nogroup /var/edgwl/sandbox/user1/big.bin
chmod 2750 /var/edgwl/sandbox
touch -d '2005-06-01 12:00:00' /var/edgwl/sandbox/user1/input.jdl
# What real RB state holds (issue 12): a 0600 proxy of uid 501 in a
# folder of its own, a setuid file, unicode names with spaces, relative,
# absolute and dangling symlinks with their own times, a sparse file.
mkdir -p /var/myproxy/u501
echo 'delegated proxy of uid 501' > '/var/myproxy/u501/x509up_u501 proxy'
chmod 600 '/var/myproxy/u501/x509up_u501 proxy'; chmod 700 /var/myproxy/u501; chown -R 501:501 /var/myproxy/u501
ln -s '/var/myproxy/u501/x509up_u501 proxy' /var/myproxy/abs-link
ln -s 'u501/x509up_u501 proxy' /var/myproxy/rel-link
ln -s /var/myproxy/gone /var/myproxy/dangling
touch -h -d '2006-01-02 03:04:05' /var/myproxy/abs-link /var/myproxy/rel-link /var/myproxy/dangling
echo helper > /var/edgwl/suid-helper; chmod 4755 /var/edgwl/suid-helper
echo 'ünïcode' > '/var/edgwl/sandbox/jöb ünïcode 名前 with spaces.jdl'
truncate -s 8M /var/edgwl/sparse.img; printf data | dd of=/var/edgwl/sparse.img bs=1 seek=4194304 conv=notrunc 2>/dev/null
umask 077; echo 'proxy of alice' > /var/myproxy/alice.creds
echo renew > /opt/edg/var/spool/edg-wl-renewd/alice.renew
echo 'queue' > /opt/condor/var/condor/spool/job_queue.log
mkdir -p /etc/cron.d /etc/sysconfig
echo '*/5 * * * * root /opt/edg/sbin/edg-wl-check-daemons' > /etc/cron.d/edg-wl-check-daemons
printf '# gLite RB\nEDG_WL_USER=edguser\nEDG_WL_BKSERVERD_ADDOPTS=""\nEDG_LOCATION=/opt/edg\n' > /etc/sysconfig/edg
chmod 644 /etc/sysconfig/edg
`
	if out, err := h.Sh(ctx, script); err != nil {
		t.Fatalf("%s: seed state: %v: %s", h.Name, err, out)
	}
}

// seedLB creates a small real lbserver20 in h's MariaDB.
func seedLB(t *testing.T, ctx context.Context, h *testbed.Host, jobs int) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`CREATE DATABASE lbserver20; USE lbserver20;
CREATE TABLE jobs (jobid VARCHAR(64) PRIMARY KEY, owner VARCHAR(64) NOT NULL, state VARCHAR(16), submitted DATETIME, proxy BLOB NULL) ENGINE=InnoDB;
CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, jobid VARCHAR(64) NOT NULL, code INT, note TEXT NULL, KEY (jobid)) ENGINE=InnoDB;
`)
	for i := 1; i <= jobs; i++ {
		proxy := "NULL"
		if i%3 == 0 {
			proxy = fmt.Sprintf("X'%02x00ff27'", i%256)
		}
		fmt.Fprintf(&b, "INSERT INTO jobs VALUES ('https://rb1:9000/job%04d', 'user%d', 'Done', '2005-06-%02d 10:%02d:00', %s);\n", i, i%7, 1+i%28, i%60, proxy)
		fmt.Fprintf(&b, "INSERT INTO events (jobid, code, note) VALUES ('https://rb1:9000/job%04d', 1, 'Submitted'), ('https://rb1:9000/job%04d', 7, %s);\n", i, i, map[bool]string{true: "NULL", false: "'Done, it''s ok'"}[i%5 == 0])
	}
	if _, err := h.MySQL(ctx, b.String()); err != nil {
		t.Fatalf("%s: seed lbserver20: %v", h.Name, err)
	}
}

const lbDumpSQL = "SELECT jobid, owner, state, submitted, HEX(proxy) FROM lbserver20.jobs ORDER BY jobid; SELECT id, jobid, code, note FROM lbserver20.events ORDER BY id"

// stateSums lists "sha256  path" of every regular file under dirs in h
// (following the top-level symlinks), *.tmp files (written by a daemon at
// that instant) left out.
func stateSums(t *testing.T, ctx context.Context, h *testbed.Host, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		s, err := h.Sh(ctx, fmt.Sprintf("cd %s/ && find . -type f ! -name '*.tmp' ! -name '.gridha-*' -print0 | xargs -0r sha256sum", installer.ShellQuote(d)))
		if err != nil {
			t.Fatalf("%s: checksums of %s: %v: %s", h.Name, d, err, s)
		}
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			if sum, p, ok := strings.Cut(l, "  "); ok {
				out[path.Join(d, p)] = sum
			}
		}
	}
	return out
}

// stateManifest lists dir on h (following a top-level symlink) with
// steps.ManifestScript: path, kind, mode, owners, size, mtime, link target,
// sha256, hard-link groups. gridha's own files are left out; withoutJobs
// also leaves out the jobs/ folders, where the stand-in daemons write
// until they are stopped.
func stateManifest(t *testing.T, ctx context.Context, h *testbed.Host, dir string, withoutJobs bool) steps.Manifest {
	t.Helper()
	// While the daemons run, a file listed may be gone before its
	// checksum: a few tries.
	var out string
	var err error
	for try := 0; try < 5; try++ {
		if out, err = h.Sh(ctx, steps.ManifestScript(dir)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s: manifest of %s: %v: %.300s", h.Name, dir, err, out)
	}
	m, err := steps.ParseManifest([]byte(out))
	if err != nil {
		t.Fatalf("%s: manifest of %s: %v", h.Name, dir, err)
	}
	for p := range m {
		if p == steps.StateMarker || p == steps.OwnersFile || withoutJobs && (p == "jobs" || strings.HasPrefix(p, "jobs/")) {
			delete(m, p)
		}
	}
	return m
}

// sameThroughMount compares a state folder as a node sees it through the
// mount with the original: everything, checksums included, but hard-link
// groups (SFTP shows no link counts: they are compared on the server).
func sameThroughMount(orig, view steps.Manifest) []string {
	d := steps.CompareManifestsWith(orig, view, steps.CompareOptions{Owners: true, LinkTimes: true, NodeView: true})
	for p, o := range orig {
		if v, ok := view[p]; ok && o.Kind == "f" && o.SHA256 != v.SHA256 {
			d = append(d, p+": sha256 differs through the mount")
		}
	}
	return d
}

func TestRBNodeOnBed(t *testing.T) {
	bed := testbed.New(t, "state1", "rb1", "rb2")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	srv, rb1, rb2 := bed.Host("state1"), bed.Host("rb1"), bed.Host("rb2")
	for _, h := range []*testbed.Host{srv, rb1} {
		if err := h.StartMariaDB(ctx); err != nil {
			t.Fatal(err)
		}
	}
	seedLB(t, ctx, rb1, 40)
	seedRBState(t, ctx, rb1)
	if err := standins.InstallRB(ctx, rb1, true, rbTestServices...); err != nil {
		t.Fatal(err)
	}
	// rb2: the package defaults (folders, no files) plus one job of its own.
	// No Condor on rb2: /opt/condor/var/condor has no parents there.
	if out, err := rb2.Sh(ctx, "mkdir -p /var/edgwl/jobs /var/edgwl/sandbox /var/myproxy /opt/edg/var/spool/edg-wl-renewd && rm -rf /opt/condor && chmod 700 /var/myproxy && echo rb2 > /var/edgwl/sandbox/rb2-own.jdl"); err != nil {
		t.Fatal(err, out)
	}
	if err := standins.InstallRB(ctx, rb2, false, rbTestServices...); err != nil {
		t.Fatal(err)
	}
	// rb2 is named by its DNS name (the bed's /etc/hosts on every host):
	// the state server resolves it for from= and the MySQL account; gridha
	// itself reaches it through an ssh_config HostName.
	invDir := t.TempDir()
	inv := rbNodeInventory(t, srv, bed, invDir, "rb1", "rb2")
	invText, _ := os.ReadFile(inv.Path)
	invText = []byte(strings.Replace(string(invText), "rb2: {address: "+rb2.Addr+",", "rb2: {address: "+rb2.Hostname+",", 1))
	if err := os.WriteFile(inv.Path, invText, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(invDir, "ssh_config"), []byte("Host "+rb2.Hostname+"\n\tHostName "+rb2.Addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(inv.Path)
	if err != nil || inv.Host("rb2").Address != rb2.Hostname {
		t.Fatalf("inventory with rb2 by name: %v", err)
	}
	role := RBNode{withoutHA: true}
	stateDirs := inv.Roles.RBNode.StateDirs

	// The daemons write while they run: files that exist now must come
	// through unchanged.
	time.Sleep(500 * time.Millisecond)
	before := stateSums(t, ctx, rb1, stateDirs...)
	origM := map[string]steps.Manifest{}
	for _, d := range stateDirs {
		origM[d] = stateManifest(t, ctx, rb1, d, true)
	}
	if len(before) < 10 {
		t.Fatalf("seeded state too small: %d files", len(before))
	}

	chk := bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeCheck)
	requireNo(t, chk, installer.StatusFailed, installer.StatusUnreachable)
	if len(changedSteps(chk)) == 0 {
		t.Fatal("--check on fresh nodes found nothing to do")
	}

	// First run: rb1 moves its state; rb2 has a job of its own and the
	// share already holds rb1's: refused, naming --state-from.
	rep := bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)
	var refused *installer.Result
	for i, r := range rep.Results {
		if r.Status == installer.StatusFailed {
			if r.Host != "rb2" || r.Step != "state dir /var/edgwl" {
				t.Fatalf("unexpected failure: %s %s: %s", r.Host, r.Step, r.Message)
			}
			refused = &rep.Results[i]
		}
	}
	if refused == nil || !strings.Contains(refused.Message, "--state-from rb2") || !strings.Contains(refused.Message, "--state-from rb1") {
		t.Fatalf("rb2's own state: want a refusal naming --state-from, got %+v", refused)
	}
	if strings.Contains(fmt.Sprint(rep.Results), "LB-secret-for-rb") {
		t.Fatal("the L&B password shows in results")
	}

	// rb1: links, mount, identical state, original kept aside.
	share := "/mnt/rb-state/rb-a/"
	for _, d := range stateDirs {
		out, err := rb1.Sh(ctx, "readlink "+d)
		if err != nil || strings.TrimSpace(out) != share+path.Base(d) {
			t.Fatalf("rb1 %s: link %q %v, want -> %s", d, out, err, share+path.Base(d))
		}
		if out, err := rb1.Sh(ctx, "ls -d "+d+".gridha-local-*"); err != nil || strings.Count(out, "\n") != 1 {
			t.Fatalf("rb1 %s: original not kept aside exactly once: %q %v", d, out, err)
		}
	}
	mounts, _ := rb1.Sh(ctx, "cat /proc/mounts")
	if !strings.Contains(mounts, "snfs@"+srv.Addr+":/ /var/lib/gridha/sshfs/mnt/rb-state fuse.sshfs ") ||
		!strings.Contains(mounts, "/var/lib/gridha/sshfs/mnt/rb-state /mnt/rb-state fuse rw,nosuid,nodev,") {
		t.Fatalf("rb1: share not mounted (sshfs, then bindfs):\n%s", mounts)
	}
	fstab, _ := rb1.ReadFile("/etc/fstab")
	if !strings.Contains(string(fstab), "snfs@"+srv.Addr+":/ /var/lib/gridha/sshfs/mnt/rb-state fuse.sshfs _netdev,reconnect,") ||
		!strings.Contains(string(fstab), "/var/lib/gridha/sshfs/mnt/rb-state /mnt/rb-state fuse.bindfs _netdev,nosuid,nodev,default_permissions 0 0\n") {
		t.Fatalf("rb1: no fstab lines:\n%s", fstab)
	}
	after := stateSums(t, ctx, rb1, stateDirs...)
	for p, sum := range before {
		if after[p] != sum {
			t.Errorf("rb1: %s: sha256 %s before, %q after the move", p, sum, after[p])
		}
	}
	// Every file of the kept original is on the share, identical.
	for _, d := range stateDirs {
		out, _ := rb1.Sh(ctx, "ls -d "+d+".gridha-local-*")
		orig := stateSums(t, ctx, rb1, strings.TrimSpace(out))
		onShare := stateSums(t, ctx, rb1, d)
		if len(orig) != len(onShare) {
			t.Errorf("%s: %d files in the original, %d on the share", d, len(orig), len(onShare))
		}
		for p, sum := range orig {
			if q := d + strings.TrimPrefix(p, strings.TrimSpace(out)); onShare[q] != sum {
				t.Errorf("%s: differs on the share", q)
			}
		}
	}
	// Issue 12: the full manifest of every state dir, through the mount on
	// rb1, equals the original's before the move (the daemons' jobs/ left
	// out: they wrote until stopped) and the kept-aside original's (all);
	// on the state server the hard-link groups too.
	for _, d := range stateDirs {
		aside, _ := rb1.Sh(ctx, "ls -d "+d+".gridha-local-*")
		asideM := stateManifest(t, ctx, rb1, strings.TrimSpace(aside), false)
		viewM := stateManifest(t, ctx, rb1, d, false)
		if diffs := steps.CompareManifestsWith(origM[d], stateManifest(t, ctx, rb1, strings.TrimSpace(aside), true), steps.CompareOptions{Owners: true, LinkTimes: true}); len(diffs) > 0 {
			t.Errorf("rb1 %s: kept-aside original differs from the state before the move: %v", d, firstStrings(diffs, 5))
		}
		if diffs := sameThroughMount(asideM, viewM); len(diffs) > 0 {
			t.Errorf("rb1 %s through the mount: %v", d, firstStrings(diffs, 8))
		}
		if diffs := sameThroughMount(origM[d], stateManifest(t, ctx, rb1, d, true)); len(diffs) > 0 {
			t.Errorf("rb1 %s through the mount vs before the move: %v", d, firstStrings(diffs, 8))
		}
		srvM := stateManifest(t, ctx, srv, "/srv/rb-state/rb-a/"+path.Base(d), false)
		if diffs := steps.CompareManifestsWith(asideM, srvM, steps.CompareOptions{Owners: true, LinkTimes: true}); len(diffs) > 0 {
			t.Errorf("%s on the state server: %v", d, firstStrings(diffs, 8))
		}
	}
	if out, err := srv.Sh(ctx, "du -k /srv/rb-state/rb-a/edgwl/sparse.img | cut -f1"); err != nil || strings.TrimSpace(out) == "" || len(strings.TrimSpace(out)) > 3 {
		t.Errorf("sparse file not sparse on the state server: %q KiB used of 8 MiB (%v)", out, err)
	}
	assertLocalPermissions(t, ctx, rb1)

	// Modes, times, symlinks and hard links, seen on the state server.
	got, err := srv.Sh(ctx, `cd /srv/rb-state/rb-a/edgwl/sandbox && stat -c '%n %a %h %Y' user1/input.jdl user1/input-hardlink.jdl . && readlink latest dangling && stat -c '%a' /srv/rb-state/rb-a/myproxy/alice.creds && cat /srv/rb-state/rb-a/edgwl/.gridha-state | head -1 && grep -c big.bin /srv/rb-state/rb-a/edgwl/.gridha-owners`)
	if err != nil {
		t.Fatal(err, got)
	}
	want := fmt.Sprintf("user1/input.jdl 644 2 %d\nuser1/input-hardlink.jdl 644 2 %d\n. 2750 ", time.Date(2005, 6, 1, 12, 0, 0, 0, time.UTC).Unix(), time.Date(2005, 6, 1, 12, 0, 0, 0, time.UTC).Unix())
	if !strings.HasPrefix(got, want) || !strings.Contains(got, "\nuser1/input.jdl\n/nonexistent/dangling\n600\nnode=rb1\n1\n") {
		t.Fatalf("on the state server:\n%s\nwant prefix:\n%s", got, want)
	}
	// The daemons are stopped and disabled: nothing writes any more.
	for _, s := range rbTestServices {
		if out, err := rb1.Sh(ctx, "ls /etc/rc2.d /etc/rc3.d /etc/rc5.d | grep -c '^S.."+s+"$'; /etc/init.d/"+s+" status; echo status=$?"); !strings.Contains(out, "status=3") || !strings.HasPrefix(out, "0\n") {
			t.Errorf("rb1 service %s: %q %v, want disabled (no S link) and stopped (status 3)", s, out, err)
		}
	}
	n1, _ := rb1.Sh(ctx, "find /var/edgwl/ | wc -l")
	time.Sleep(700 * time.Millisecond)
	if n2, _ := rb1.Sh(ctx, "find /var/edgwl/ | wc -l"); n1 != n2 {
		t.Fatalf("state still changes after the services were stopped: %s -> %s", n1, n2)
	}
	if _, err := rb1.ReadFile("/etc/cron.d/edg-wl-check-daemons"); err == nil {
		t.Fatal("cron file still there")
	}
	edg, _ := rb1.Sh(ctx, "stat -c %a /etc/sysconfig/edg; cat /etc/sysconfig/edg")
	wantEdg := fmt.Sprintf("600\n# gLite RB\nEDG_WL_USER=edguser\nEDG_WL_BKSERVERD_ADDOPTS=\"--mysql lbserver/LB-secret-for-rb@%s:lbserver20\"\nEDG_LOCATION=/opt/edg\n", srv.Hostname)
	if edg != wantEdg {
		t.Fatalf("/etc/sysconfig/edg:\n%s\nwant:\n%s", edg, wantEdg)
	}
	// L&B rows: equal on the state server.
	localRows, err := rb1.MySQL(ctx, lbDumpSQL)
	if err != nil {
		t.Fatal(err)
	}
	remoteRows, err := srv.MySQL(ctx, lbDumpSQL)
	if err != nil {
		t.Fatal(err)
	}
	if localRows != remoteRows || strings.Count(localRows, "\n") < 120 {
		t.Fatalf("L&B rows differ or too few:\nlocal:\n%.400s\nremote:\n%.400s", localRows, remoteRows)
	}
	if dbs, _ := srv.MySQL(ctx, "SHOW DATABASES LIKE 'lbserver20%'"); strings.TrimSpace(dbs) != "lbserver20" {
		t.Fatalf("staging database left behind: %q", dbs)
	}
	// The L&B user logs in from rb1 with the password of /etc/sysconfig/edg.
	if out, err := rb1.Sh(ctx, fmt.Sprintf("MYSQL_PWD=LB-secret-for-rb mariadb -h %s -u lbserver -N -B -e 'SELECT COUNT(*) FROM jobs' lbserver20", srv.Hostname)); err != nil || strings.TrimSpace(out) != "40" {
		t.Fatalf("L&B login from rb1: %q %v", out, err)
	}

	// rb2 untouched so far: its own job is still local.
	if out, err := rb2.Sh(ctx, "test -d /var/edgwl && ! test -L /var/edgwl && cat /var/edgwl/sandbox/rb2-own.jdl"); err != nil || out != "rb2\n" {
		t.Fatalf("rb2 after the refusal: %q %v", out, err)
	}
	// --state-from rb1: the share's copy wins, rb2's own is kept aside.
	rep = bedRun(t, ctx, inv, role, Options{StateFrom: "rb1"}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
	for _, d := range stateDirs {
		if out, err := rb2.Sh(ctx, "readlink "+d); err != nil || strings.TrimSpace(out) != share+path.Base(d) {
			t.Fatalf("rb2 %s: link %q %v", d, out, err)
		}
	}
	// The missing parents of /opt/condor/var/condor: created root 0755, said.
	if out, err := rb2.Sh(ctx, "stat -c '%U:%G %a' /opt/condor /opt/condor/var"); err != nil || out != "root:root 755\nroot:root 755\n" {
		t.Fatalf("rb2's created parents: %q %v", out, err)
	}
	saidParents := false
	for _, r := range rep.Results {
		if r.Host == "rb2" && r.Step == "state dir /opt/condor/var/condor" && strings.Contains(r.Message, "created /opt/condor/var (root, 0755)") {
			saidParents = true
		}
	}
	if !saidParents {
		t.Errorf("rb2: the report does not name the created parents of /opt/condor/var/condor")
	}
	if out, err := rb2.Sh(ctx, "cat /var/edgwl.gridha-local-*/sandbox/rb2-own.jdl; test -e /var/edgwl/sandbox/rb2-own.jdl || echo not-on-share"); err != nil || out != "rb2\nnot-on-share\n" {
		t.Fatalf("rb2's own state: %q %v", out, err)
	}
	if got := stateSums(t, ctx, rb2, stateDirs...); len(got) != len(after) {
		t.Fatalf("rb2 sees %d files on the share, rb1 %d", len(got), len(after))
	}
	for _, d := range stateDirs {
		if diffs := sameThroughMount(stateManifest(t, ctx, rb1, d, false), stateManifest(t, ctx, rb2, d, false)); len(diffs) > 0 {
			t.Errorf("rb2 sees %s otherwise than rb1: %v", d, firstStrings(diffs, 8))
		}
	}
	assertLocalPermissions(t, ctx, rb2)
	// rb2, named by DNS name: its key and its MySQL account hold its IP.
	if ak, _ := srv.ReadFile("/etc/ssh/authorized_keys/snfs"); !strings.Contains(string(ak), `from="`+rb2.Addr+`"`) || strings.Contains(string(ak), rb2.Hostname) {
		t.Fatalf("keys file for rb2 by name:\n%s", ak)
	}
	if out, err := rb2.Sh(ctx, fmt.Sprintf("MYSQL_PWD=LB-secret-for-rb mariadb -h %s -u lbserver -N -B -e 'SELECT COUNT(*) > 0 FROM jobs' lbserver20", srv.Hostname)); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("L&B login from rb2 (named by DNS name): %q %v", out, err)
	}

	if rec, err := rb1.ReadFile("/var/lib/gridha/lb-copied-lbserver20"); err != nil || !strings.HasPrefix(string(rec), "lbserver20 copied to state1 (120 rows in 2 tables") {
		t.Fatalf("rb1's record of the L&B copy: %q %v", rec, err)
	}
	// The node now logs to the state server: the remote database grows,
	// which is no conflict.
	if _, err := srv.MySQL(ctx, "INSERT INTO lbserver20.jobs VALUES ('https://rb1:9000/after', 'user1', 'Submitted', NOW(), NULL)"); err != nil {
		t.Fatal(err)
	}

	// Converged: a second run and verify change nothing.
	if c := changedSteps(bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)); len(c) > 0 {
		t.Fatalf("second run changed:\n%s", strings.Join(c, "\n"))
	}
	verified := bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeAudit)
	if c := changedSteps(verified); len(c) > 0 {
		t.Fatalf("verify after install:\n%s", strings.Join(c, "\n"))
	}
	// The nodes' views were compared with the server's folders, listed in
	// the server's own fact batch: the verify cost the state server one
	// session, whatever the number of nodes.
	views := 0
	for _, r := range verified.Results {
		if strings.Contains(r.Message, "the view through the mount equals the share on state1") {
			views++
		}
	}
	if views == 0 || verified.Hosts["state1"].Stats.Sessions != 1 {
		t.Errorf("verify: %d state dirs compared with the server, state1 used %+v, want some and 1 session", views, verified.Hosts["state1"].Stats)
	}

	// A second EDG_WL_BKSERVERD_ADDOPTS appended to /etc/sysconfig/edg wins
	// for /bin/sh (the L&B server would log to localhost): drift, and
	// install leaves the file as it was, one assignment.
	edgBefore := dnsReadFile(t, rb1, "/etc/sysconfig/edg")
	if _, err := rb1.Sh(ctx, `echo 'EDG_WL_BKSERVERD_ADDOPTS="--mysql lbserver/x@localhost:lbserver20"' >> /etc/sysconfig/edg`); err != nil {
		t.Fatal(err)
	}
	const edgStep = "rb1 keyvalue /etc/sysconfig/edg EDG_WL_BKSERVERD_ADDOPTS"
	if st := statuses(bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeAudit))[edgStep]; st != installer.StatusDrift {
		t.Errorf("verify with a second ADDOPTS: %s, want drift", st)
	}
	if st := statuses(bedRun(t, ctx, inv, role, Options{}, installer.ModeApply))[edgStep]; st != installer.StatusChanged {
		t.Errorf("install with a second ADDOPTS: %s, want changed", st)
	}
	if after := dnsReadFile(t, rb1, "/etc/sysconfig/edg"); after != edgBefore {
		t.Errorf("/etc/sysconfig/edg after install:\n%s\nwant:\n%s", after, edgBefore)
	}
}

// rbNodeHelper converges rb-node (storage half) from the inventory at path
// in a process of its own: TestRBNodeKilledMidCopy runs the test binary with
// GRIDHA_RBNODE_INVENTORY set (see TestMain) and kills it with SIGKILL.
func rbNodeHelper(path string) int {
	inv, err := inventory.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	plan, err := RBNode{withoutHA: true}.Plan(inv, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rep, err := installer.Run(context.Background(), bedDialer(inv), plan, installer.RunOptions{Mode: installer.ModeApply, Secrets: &installer.Redactor{},
		Events: func(ev installer.Event) {
			if ev.Result != nil {
				fmt.Printf("%s %s: %s %s\n", ev.Result.Host, ev.Result.Step, ev.Result.Status, ev.Result.Message)
			}
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if rep.Worst() == installer.StatusFailed || rep.Worst() == installer.StatusUnreachable {
		return 1
	}
	return 0
}

func TestRBNodeKilledMidCopy(t *testing.T) {
	bed := testbed.New(t, "state1", "rb1")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	srv, rb1 := bed.Host("state1"), bed.Host("rb1")
	if err := srv.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	seedRBState(t, ctx, rb1)
	// Enough small files that the copy through sshfs takes seconds.
	if out, err := rb1.Sh(ctx, `i=0; while [ $i -lt 25 ]; do mkdir -p /var/edgwl/bulk/d$i; j=0; while [ $j -lt 40 ]; do head -c 8192 /dev/urandom > /var/edgwl/bulk/d$i/f$j; j=$((j+1)); done; i=$((i+1)); done
truncate -s 256M /var/edgwl/big-sparse.img; echo end | dd of=/var/edgwl/big-sparse.img bs=1 seek=268435000 conv=notrunc 2>/dev/null`); err != nil {
		t.Fatal(err, out)
	}
	if err := standins.InstallRB(ctx, rb1, false, rbTestServices...); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inv := rbNodeInventory(t, srv, bed, dir, "rb1")
	stateDirs := inv.Roles.RBNode.StateDirs
	before := stateSums(t, ctx, rb1, stateDirs...)
	origM := map[string]steps.Manifest{}
	for _, d := range stateDirs {
		origM[d] = stateManifest(t, ctx, rb1, d, true)
	}

	// Three instants of the copy of /var/edgwl (each run starts the copy
	// afresh): just started, half way, all files there (verification).
	total := 0
	for _, e := range origM["/var/edgwl"] {
		if e.Kind == "f" {
			total++
		}
	}
	tmp := "/srv/rb-state/rb-a/.edgwl.gridha-tmp-rb1"
	// The third instant waits for the verification's openssl (or sha256sum) on the
	// server (256 MB of a sparse file take it a while): a process that
	// writes nothing until it ends, which only the session watcher stops.
	instants := []struct {
		name  string
		files int
		probe string
	}{{"copy just started", 1, ""}, {"copy half way", total / 2, ""}, {"verifying on the state server", total, "pgrep -x 'sha256sum|openssl' >/dev/null && "}}
	for k, at := range instants {
		cmd := exec.CommandContext(ctx, os.Args[0])
		cmd.Env = append(os.Environ(), "GRIDHA_RBNODE_INVENTORY="+inv.Path)
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("helper-%d.log", k)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		killed, exited := false, false
		for i := 0; i < 2400 && !killed && !exited; i++ { // bounded: 120 s
			out, _ := srv.Sh(ctx, at.probe+"find "+tmp+" -type f 2>/dev/null | wc -l")
			if n, _ := strconv.Atoi(strings.TrimSpace(out)); n >= at.files {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				killed = true
				t.Logf("killed the run with SIGKILL at %q: %d of %d files in the copy", at.name, n, total)
				break
			}
			select {
			case <-done:
				exited = true
			case <-time.After(50 * time.Millisecond):
			}
		}
		if !exited {
			<-done
		}
		logf.Close()
		if !killed {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("never saw the copy at %q; helper output:\n%s", at.name, log)
		}
		// Within 2 s no process gridha started remains on any host (the
		// session watcher looks after 1 s, then every 0.2 s).
		for _, h := range []*testbed.Host{rb1, srv} {
			var out string
			for i := 0; i < 20; i++ { // bounded: 2 s
				time.Sleep(100 * time.Millisecond)
				var err error
				out, err = h.Sh(ctx, `ps -eo pid=,ppid=,comm=,args= | awk -v me=$$ '$1 != me && $2 != me && $3 ~ /^(sh|dash|bash|cp|find|sha256sum|xargs|du|df|touch|chown|flock|cat|sleep|timeout|awk|mariadb|mysql|base64|stat|tail|tar|rm|mkdir|mv|ln|getent|sort|wc|sed)$/'`)
				if err != nil {
					t.Fatal(err, out)
				}
				if strings.TrimSpace(out) == "" {
					break
				}
			}
			if strings.TrimSpace(out) != "" {
				t.Fatalf("%s: 2 s after SIGKILL at %q, processes gridha started are still there:\n%s", h.Name, at.name, out)
			}
		}
		n1, _ := srv.Sh(ctx, "find "+tmp+" 2>/dev/null | wc -l")
		time.Sleep(500 * time.Millisecond)
		if n2, _ := srv.Sh(ctx, "find "+tmp+" 2>/dev/null | wc -l"); n1 != n2 {
			t.Fatalf("the copy outlived the killed run: %s -> %s entries", strings.TrimSpace(n1), strings.TrimSpace(n2))
		}
	}
	if out, _ := rb1.Sh(ctx, "test -d /var/edgwl && ! test -L /var/edgwl && echo local"); out != "local\n" {
		t.Fatalf("after the kill /var/edgwl is %q, want the untouched local folder", out)
	}

	// Re-run: converges, nothing lost.
	rep := bedRun(t, ctx, inv, RBNode{withoutHA: true}, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
	for _, r := range rep.Results {
		if r.Step == "state dir /var/edgwl" {
			t.Logf("figure: re-run's move of /var/edgwl (tar stream to the server + verification there + rename + link): %s", r.Duration.Round(time.Millisecond))
		}
	}
	after := stateSums(t, ctx, rb1, stateDirs...)
	if len(after) != len(before) {
		t.Errorf("%d files before, %d after", len(before), len(after))
	}
	var lost []string
	for p, sum := range before {
		if after[p] != sum {
			lost = append(lost, p)
		}
	}
	sort.Strings(lost)
	if len(lost) > 0 {
		t.Fatalf("lost or changed after kill and re-run: %v", firstStrings(lost, 10))
	}
	if out, _ := srv.Sh(ctx, "ls -a /srv/rb-state/rb-a/"); strings.Contains(out, "gridha-tmp") {
		t.Fatalf("temporary copy left on the share:\n%s", out)
	}
	for _, d := range stateDirs {
		if diffs := sameThroughMount(origM[d], stateManifest(t, ctx, rb1, d, true)); len(diffs) > 0 {
			t.Errorf("%s through the mount after kills and re-run: %v", d, firstStrings(diffs, 8))
		}
		if diffs := steps.CompareManifestsWith(origM[d], stateManifest(t, ctx, srv, "/srv/rb-state/rb-a/"+path.Base(d), true), steps.CompareOptions{Owners: true, LinkTimes: true}); len(diffs) > 0 {
			t.Errorf("%s on the state server after kills and re-run: %v", d, firstStrings(diffs, 8))
		}
	}
	if c := changedSteps(bedRun(t, ctx, inv, RBNode{withoutHA: true}, Options{}, installer.ModeApply)); len(c) > 0 {
		t.Fatalf("run after recovery changed:\n%s", strings.Join(c, "\n"))
	}
}

func firstStrings(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// TestRBNodeSNFSDriverOnBed exercises the notes' sec_rpc driver as far as
// the bed allows: sec_rpc no longer exists, its stand-ins record their
// calls but forward nothing, so the NFS mount itself fails (the bed has no
// NFS client either) — and with it, before any state moves, the node's run.
func TestRBNodeSNFSDriverOnBed(t *testing.T) {
	bed := testbed.New(t, "state1", "rb1")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srv, rb1 := bed.Host("state1"), bed.Host("rb1")
	if err := srv.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	seedRBState(t, ctx, rb1)
	if err := standins.InstallSecRPC(rb1); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inv := rbNodeInventory(t, srv, bed, dir, "rb1")
	inv.Roles.RBNode.SharedFS = "snfs"
	rep := bedRun(t, ctx, inv, RBNode{withoutHA: true}, Options{}, installer.ModeApply)
	st := statuses(rep)
	for id, want := range map[string]installer.Status{
		"rb1 exec snfshost " + srv.Hostname:              installer.StatusChanged,
		"rb1 file /etc/init.d/gridha-rpc-psrv":           installer.StatusChanged,
		"rb1 service gridha-rpc-psrv":                    installer.StatusChanged,
		"rb1 mount /mnt/rb-state":                        installer.StatusFailed,
		"rb1 state dir /var/edgwl":                       installer.StatusSkipped,
		"state1 export /srv/rb-state to " + srv.Hostname: installer.StatusChanged,
	} {
		if st[id] != want {
			t.Errorf("%s: %q, want %q", id, st[id], want)
		}
	}
	calls, err := rb1.ReadFile(standins.SecRPCLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(calls), "snfshost "+srv.Hostname+"\n") || !strings.Contains(string(calls), "rpc_psrv -b /etc/snfs/"+srv.Hostname+"\n") {
		t.Fatalf("sec_rpc calls:\n%s", calls)
	}
	fstab, _ := rb1.ReadFile("/etc/fstab")
	if !strings.Contains(string(fstab), rb1.Hostname+":/srv/rb-state /mnt/rb-state nfs nolock,mountprog=201000,nfsprog=251000,_netdev 0 0") {
		t.Fatalf("fstab:\n%s", fstab)
	}
	exports, _ := srv.ReadFile("/etc/exports")
	if !strings.Contains(string(exports), "/srv/rb-state "+srv.Hostname+"(") {
		t.Fatalf("exports:\n%s", exports)
	}
	if out, err := rb1.Sh(ctx, "test -d /var/edgwl && ! test -L /var/edgwl && ls /etc/rc2.d | grep -c gridha-rpc-psrv"); err != nil || out != "1\n" {
		t.Fatalf("state must stay local, rpc_psrv enabled at boot: %q %v", out, err)
	}
}

// TestRBNodeStateFromWins: both nodes have state of their own; with
// --state-from rb2 the lower-ranked rb2's copy replaces rb1's on the share
// (rb1's kept aside there, and its original kept locally). --check first
// writes nothing on the nodes.
func TestRBNodeStateFromWins(t *testing.T) {
	bed := testbed.New(t, "state1", "rb1", "rb2")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	srv, rb1, rb2 := bed.Host("state1"), bed.Host("rb1"), bed.Host("rb2")
	if err := srv.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*testbed.Host{rb1, rb2} {
		if out, err := h.Sh(ctx, "mkdir -p /var/edgwl/sandbox && echo "+h.Name+" > /var/edgwl/sandbox/"+h.Name+".jdl"); err != nil {
			t.Fatal(err, out)
		}
	}
	inv := rbNodeInventory(t, srv, bed, t.TempDir(), "rb1", "rb2")
	// No node has /var/myproxy: rb1 marks the empty share, rb2 links.
	inv.Roles.RBNode.StateDirs = []string{"/var/edgwl", "/var/myproxy"}
	role := RBNode{withoutHA: true}

	snap1, err := rb1.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	bedRun(t, ctx, inv, role, Options{ReadOnly: true, StateFrom: "rb2"}, installer.ModeCheck)
	if snap2, _ := rb1.Snapshot(); len(testbed.DiffSnapshots(snap1, snap2)) > 0 {
		t.Fatalf("--check wrote on rb1: %v", testbed.DiffSnapshots(snap1, snap2))
	}

	rep := bedRun(t, ctx, inv, role, Options{StateFrom: "rb2"}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
	out, err := srv.Sh(ctx, "cd /srv/rb-state/rb-a && ls edgwl/sandbox && head -1 edgwl/.gridha-state && ls .edgwl.gridha-replaced-rb1-*/sandbox")
	if err != nil || out != "rb2.jdl\nnode=rb2\nrb1.jdl\n" {
		t.Fatalf("share after --state-from rb2: %q %v", out, err)
	}
	if out, err := srv.Sh(ctx, "grep -h -e node= -e moved= /srv/rb-state/rb-a/myproxy/.gridha-state"); err != nil || out != "node=rb1\nmoved=nothing (no local state)\n" {
		t.Fatalf("marker of the empty myproxy share: %q %v", out, err)
	}
	for _, h := range []*testbed.Host{rb1, rb2} {
		if out, err := h.Sh(ctx, "readlink /var/myproxy"); err != nil || out != "/mnt/rb-state/rb-a/myproxy\n" {
			t.Fatalf("%s /var/myproxy: %q %v", h.Name, out, err)
		}
		if out, err := h.Sh(ctx, "readlink /var/edgwl && cat /var/edgwl/sandbox/rb2.jdl && cat /var/edgwl.gridha-local-*/sandbox/"+h.Name+".jdl"); err != nil || out != "/mnt/rb-state/rb-a/edgwl\nrb2\n"+h.Name+"\n" {
			t.Fatalf("%s: %q %v", h.Name, out, err)
		}
	}
	if c := changedSteps(bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)); len(c) > 0 {
		t.Fatalf("second run changed:\n%s", strings.Join(c, "\n"))
	}
}

// assertLocalPermissions checks on node, through the mount, that the 0600
// proxy of uid 501 is readable by uid 501 and root only (not by nobody,
// not through a symlink), and that a service running as uid 501 creates
// files and folders that keep its uid and gid (and can open them again).
func assertLocalPermissions(t *testing.T, ctx context.Context, node *testbed.Host) {
	t.Helper()
	proxy := "'/var/myproxy/u501/x509up_u501 proxy'"
	as := func(uid, script string) (string, error) {
		return node.Sh(ctx, "setpriv --reuid "+uid+" --regid "+uid+" --clear-groups sh -c "+installer.ShellQuote(script)+" 2>&1")
	}
	for _, p := range []string{proxy, "/var/myproxy/abs-link", "/var/myproxy/rel-link"} {
		if out, err := as("65534", "cat "+p); err == nil || strings.Contains(out, "delegated") {
			t.Errorf("%s: nobody reads %s through the mount: %q", node.Name, p, out)
		}
		if out, err := as("501", "cat "+p); err != nil || out != "delegated proxy of uid 501\n" {
			t.Errorf("%s: uid 501 cannot read its proxy %s: %q %v", node.Name, p, out, err)
		}
	}
	name := "/var/myproxy/u501/new-" + node.Name
	if out, err := as("501", "umask 077; echo new > "+name+" && mkdir "+name+".d && echo more >> "+name+" && cat "+name+" && stat -c '%u:%g %a' "+name+" "+name+".d"); err != nil || out != "new\nmore\n501:501 600\n501:501 700\n" {
		t.Errorf("%s: a uid-501 service creating files through the mount: %q %v", node.Name, out, err)
	}
	if out, err := as("65534", "cat "+name); err == nil {
		t.Errorf("%s: nobody reads a new 0600 file of uid 501: %q", node.Name, out)
	}
	if out, err := node.Sh(ctx, "rm -rf "+name+" "+name+".d"); err != nil {
		t.Fatal(out, err)
	}
}
