package roles

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/testbed"
	"github.com/gridha/gridha/testbed/standins"
)

// poolInventory writes an inventory with fs1-fs3 as the state pool and rb1
// as its rb node (group rb-a).
func poolInventory(t *testing.T, b *testbed.Bed, dir string) *inventory.Inventory {
	t.Helper()
	inv := upgradeInventory(t, b, dir, 3)
	if inv.Roles.RBNode.SharedFS != "glusterfs" {
		t.Fatalf("shared_fs with a pool: %q, want glusterfs by default", inv.Roles.RBNode.SharedFS)
	}
	return inv
}

// resultOf finds host's step in rep.
func resultOf(rep *installer.Report, host, step string) (installer.Result, bool) {
	for _, r := range rep.Results {
		if r.Host == host && r.Step == step {
			return r, true
		}
	}
	return installer.Result{}, false
}

// waitHealed waits (bounded: 90 s) until the volume rbstate has no entry
// pending heal, as gluster on member says.
func waitHealed(t *testing.T, ctx context.Context, member *testbed.Host) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _ := member.Sh(ctx, "gluster volume heal rbstate info summary | awk '/Total Number of entries:/ { s += $NF } END { print s+0 }'")
		if strings.TrimSpace(out) == "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healed after 90 s: %s entries pending", out)
		}
		time.Sleep(time.Second)
	}
}

// poolHealthSteps are the verify fields of the pool's file health (on the
// first member) besides the certificates' expiry (on every host).
var poolHealthSteps = []string{"glusterfs peers connected", "glusterfs bricks online", "glusterfs pending heals", "glusterfs split-brain entries"}

// TestStatePoolFilesOnBed: 3 pool hosts and an rb node, one bed for every
// file-half check of the state pool (issue 13).
func TestStatePoolFilesOnBed(t *testing.T) {
	// fs4: the fresh host that replaces fs3 in the last subtest.
	bed := testbed.New(t, "fs1", "fs2", "fs3", "rb1", "fs4")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	fs1, fs2, rb1 := bed.Host("fs1"), bed.Host("fs2"), bed.Host("rb1")
	seedRBState(t, ctx, rb1)
	if err := standins.InstallRB(ctx, rb1, true, rbTestServices...); err != nil {
		t.Fatal(err)
	}
	invDir := t.TempDir()
	inv := poolInventory(t, bed, invDir)
	stateDirs := inv.Roles.RBNode.StateDirs
	time.Sleep(300 * time.Millisecond)
	origM := map[string]steps.Manifest{}
	for _, d := range stateDirs {
		origM[d] = stateManifest(t, ctx, rb1, d, true)
	}

	// install state-server, then install rb-node (which converges the pool
	// again: nothing to do).
	rep := bedRun(t, ctx, inv, StateServer{}, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
	role := RBNode{withoutHA: true}
	rep = bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
	if out := fmt.Sprint(rep.Results); strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "LB-secret-for-pool") {
		t.Fatal("a private key or the L&B password shows in the results")
	}
	// Second run: nothing changed, on the pool or the node.
	for _, r := range []Role{StateServer{}, role} {
		if ch := changedSteps(bedRun(t, ctx, inv, r, Options{}, installer.ModeApply)); len(ch) > 0 {
			t.Errorf("second %s run changed: %v", r.Name(), firstStrings(ch, 8))
		}
	}

	t.Run("volume", func(t *testing.T) {
		out, err := fs1.Sh(ctx, "gluster volume info rbstate")
		if err != nil {
			t.Fatal(out, err)
		}
		allow := strings.Join([]string{bed.Host("fs1").Hostname, bed.Host("fs2").Hostname, bed.Host("fs3").Hostname, rb1.Hostname}, ",")
		for _, want := range []string{"Type: Replicate", "Status: Started", "Number of Bricks: 1 x 3 = 3",
			"Brick2: " + fs2.Hostname + ":/srv/gridha/bricks/rbstate",
			"cluster.quorum-type: auto", "cluster.server-quorum-type: server", "network.ping-timeout: 5",
			"client.ssl: on", "server.ssl: on", "ssl.own-cert: /etc/ssl/glusterfs.pem", "ssl.ca-list: /etc/ssl/glusterfs.ca",
			"auth.ssl-allow: " + allow + "\n", "user.gridha-managed: yes"} {
			if !strings.Contains(out, want) {
				t.Errorf("volume info lacks %q:\n%s", want, out)
			}
		}
		// Management path over TLS too, with the certificates in /etc/ssl.
		for _, h := range []*testbed.Host{fs1, fs2, rb1} {
			got, err := h.Sh(ctx, "stat -c '%n %a %U' /etc/ssl/glusterfs.key /etc/ssl/glusterfs.pem; readlink /usr/lib/ssl/glusterfs.key; test -f /var/lib/glusterd/secure-access && echo secure-access")
			want := "/etc/ssl/glusterfs.key 600 root\n/etc/ssl/glusterfs.pem 644 root\n/etc/ssl/glusterfs.key\nsecure-access\n"
			if err != nil || got != want {
				t.Errorf("%s: TLS files %q %v, want %q", h.Name, got, err, want)
			}
		}
		if out, err := fs2.Sh(ctx, "grep -c 'SSL support for MGMT is ENABLED' /var/log/glusterfs/glusterd.log"); err != nil || strings.TrimSpace(out) == "0" {
			t.Errorf("fs2: glusterd's management path without TLS: %q %v", out, err)
		}
		// Secrets on the admin machine: 0600, in a 0700 folder.
		ents, _ := os.ReadDir(filepath.Join(inv.SecretsDir, "glusterfs"))
		if len(ents) != 10 {
			t.Errorf("secrets/glusterfs: %d files, want CA + 4 hosts (key and cert each)", len(ents))
		}
		for _, e := range ents {
			if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("secrets/glusterfs/%s: mode %v %v, want 0600", e.Name(), fi.Mode(), err)
			}
		}
	})

	t.Run("mount", func(t *testing.T) {
		mounts, _ := rb1.Sh(ctx, "grep ' /mnt/rb-state ' /proc/mounts")
		if !strings.HasPrefix(mounts, fs1.Hostname+":/rbstate /mnt/rb-state fuse.glusterfs rw,nosuid,nodev,") || !strings.Contains(mounts, "default_permissions,allow_other") {
			t.Errorf("rb1: volume not mounted as wanted: %q", mounts)
		}
		fstab, _ := rb1.ReadFile("/etc/fstab")
		if want := fs1.Hostname + ":/rbstate /mnt/rb-state glusterfs _netdev,nosuid,nodev,backup-volfile-servers=" + bed.Host("fs2").Hostname + ":" + bed.Host("fs3").Hostname + " 0 0\n"; !strings.Contains(string(fstab), want) {
			t.Errorf("rb1 fstab lacks %q:\n%s", want, fstab)
		}
		// The full manifest through the mount (owners, modes, links,
		// times, checksums and hard-link groups: GlusterFS shows them)
		// equals the original's before the move and the kept-aside one's.
		for _, d := range stateDirs {
			if out, err := rb1.Sh(ctx, "readlink "+d); err != nil || strings.TrimSpace(out) != "/mnt/rb-state/rb-a/"+filepath.Base(d) {
				t.Fatalf("rb1 %s: link %q %v", d, out, err)
			}
			aside, _ := rb1.Sh(ctx, "ls -d "+d+".gridha-local-*")
			asideM := stateManifest(t, ctx, rb1, strings.TrimSpace(aside), false)
			opt := steps.CompareOptions{Owners: true, LinkTimes: true}
			if diffs := steps.CompareManifestsWith(origM[d], stateManifest(t, ctx, rb1, d, true), opt); len(diffs) > 0 {
				t.Errorf("rb1 %s through the mount vs before the move: %v", d, firstStrings(diffs, 8))
			}
			if diffs := steps.CompareManifestsWith(asideM, stateManifest(t, ctx, rb1, d, false), opt); len(diffs) > 0 {
				t.Errorf("rb1 %s through the mount vs kept aside: %v", d, firstStrings(diffs, 8))
			}
		}
		// Permission checks on the node: nobody cannot read uid 501's
		// 0600 proxy; uid 501 can, and its new files keep its uid.
		assertLocalPermissions(t, ctx, rb1)
	})

	t.Run("foreign certificate refused", func(t *testing.T) {
		// rb1 with a certificate of another CA (same CN): no mount.
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: rb1.Hostname},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		if out, err := rb1.Sh(ctx, "mkdir -p /root/tls && cp -p /etc/ssl/glusterfs.pem /etc/ssl/glusterfs.key /root/tls/"); err != nil {
			t.Fatal(out, err)
		}
		defer func() {
			if out, err := rb1.Sh(ctx, "cp -p /root/tls/glusterfs.pem /root/tls/glusterfs.key /etc/ssl/"); err != nil {
				t.Fatal(out, err)
			}
		}()
		if err := rb1.WriteFile("/etc/ssl/glusterfs.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := rb1.WriteFile("/etc/ssl/glusterfs.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
			t.Fatal(err)
		}
		// mount fails; under load the FUSE client may have put its mount
		// point in place before it gave up (a dead mount: "Transport
		// endpoint is not connected"): nothing of the volume is seen.
		out, _ := rb1.Sh(ctx, "mkdir -p /mnt/rogue; timeout 60 mount -t glusterfs "+fs1.Hostname+":/rbstate /mnt/rogue >/dev/null 2>&1; echo rc=$?; ls /mnt/rogue 2>&1; umount /mnt/rogue 2>/dev/null; exit 0")
		if !strings.HasPrefix(out, "rc=") || strings.HasPrefix(out, "rc=0\n") || strings.Contains(out, "rb-a") {
			t.Errorf("a certificate of another CA mounted the volume: %q", out)
		}
	})

	t.Run("brick killed during writes", func(t *testing.T) {
		// A bounded write loop on rb1 through the mount; one brick on fs2
		// is killed -9 after the first files.
		const files = 200
		done := make(chan string, 1)
		go func() {
			out, err := rb1.Sh(ctx, fmt.Sprintf(`mkdir -p /var/edgwl/load && i=1; while [ $i -le %d ]; do echo "job $i $(head -c 512 /dev/urandom | od -An -tx1 | tr -d ' \n')" > /var/edgwl/load/job$i.txt || echo "write $i failed"; i=$((i+1)); done; sync; echo written`, files))
			done <- fmt.Sprint(out, err)
		}()
		deadline := time.Now().Add(60 * time.Second)
		for {
			n, _ := rb1.Sh(ctx, "ls /var/edgwl/load 2>/dev/null | wc -l")
			if k, _ := strconv.Atoi(strings.TrimSpace(n)); k >= 20 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if out, err := fs2.Sh(ctx, "pkill -9 -f '[g]lusterfsd.*rbstate' && echo killed"); err != nil {
			t.Fatal(out, err)
		}
		killedAt := time.Now()
		var loop string
		select {
		case loop = <-done:
		case <-time.After(3 * time.Minute):
			t.Fatal("write loop did not end within 3 minutes")
		}
		if !strings.HasSuffix(loop, "written\n<nil>") || strings.Contains(loop, "failed") {
			t.Fatalf("write loop: %s", loop)
		}
		t.Logf("write loop ended %.1f s after the brick was killed", time.Since(killedAt).Seconds())
		sums, err := rb1.Sh(ctx, "cd /var/edgwl/load && cat job*.txt | sort | sha256sum; ls | wc -l")
		if err != nil || !strings.HasSuffix(sums, fmt.Sprintf("\n%d\n", files)) {
			t.Fatalf("files after the kill: %q %v", sums, err)
		}

		// verify: the offline brick and the pending heals, in every format.
		chk := bedRun(t, ctx, inv, StateServer{}, Options{ReadOnly: true}, installer.ModeAudit)
		if r, _ := resultOf(chk, "fs1", "glusterfs bricks online"); r.Status != installer.StatusDrift || !strings.Contains(r.Message, "2 of 3 bricks online; offline: "+fs2.Hostname) {
			t.Errorf("verify with fs2's brick dead: bricks online %s %q", r.Status, r.Message)
		}
		if r, _ := resultOf(chk, "fs1", "glusterfs pending heals"); r.Status != installer.StatusDrift || !strings.Contains(r.Message, "entries pending heal") {
			t.Errorf("verify with fs2's brick dead: pending heals %s %q", r.Status, r.Message)
		}
		for _, format := range []string{"text", "json", "junit", "nagios"} {
			var buf bytes.Buffer
			rp, err := report.New(format, report.Options{Out: &buf, Err: &bytes.Buffer{}, Verbose: true, Secrets: &installer.Redactor{}, Mode: installer.ModeAudit, Now: time.Now, Command: "verify", Interrupted: func() bool { return false }})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rp.Finish(chk, installer.ModeAudit); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"glusterfs bricks online", "glusterfs pending heals"} {
				if !strings.Contains(buf.String(), s) {
					t.Errorf("verify --output %s does not show %q:\n%.1500s", format, s, buf.String())
				}
			}
		}

		// install restarts the brick; the self-heal daemon copies what it
		// missed; verify then shows every field healthy.
		rep := bedRun(t, ctx, inv, StateServer{}, Options{}, installer.ModeApply)
		requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
		if r, _ := resultOf(rep, "fs1", "glusterfs bricks online"); r.Status != installer.StatusChanged {
			t.Errorf("install after the kill: bricks online %s %q, want changed (started)", r.Status, r.Message)
		}
		waitHealed(t, ctx, fs1)
		// The healed brick on fs2 holds every file, as written.
		if out, err := fs2.Sh(ctx, "cd /srv/gridha/bricks/rbstate/rb-a/edgwl/load && cat job*.txt | sort | sha256sum; ls | wc -l"); err != nil || out != sums {
			t.Errorf("fs2's brick after the heal: %q %v, want %q", out, err, sums)
		}
		chk = bedRun(t, ctx, inv, StateServer{}, Options{ReadOnly: true}, installer.ModeAudit)
		requireNo(t, chk, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing)
		for _, s := range poolHealthSteps {
			r, ok := resultOf(chk, "fs1", s)
			if !ok || r.Status != installer.StatusOK {
				t.Errorf("verify after the heal: %s: %+v", s, r)
			}
		}
		for _, h := range []string{"fs1", "fs2", "fs3"} {
			r, _ := resultOf(chk, h, "certificate expiry /etc/ssl/glusterfs.pem")
			if r.Status != installer.StatusOK || !strings.Contains(r.Message, "(824 days)") {
				t.Errorf("%s: certificate expiry %s %q", h, r.Status, r.Message)
			}
		}
		if r, _ := resultOf(chk, "fs1", "glusterfs split-brain entries"); r.Message != "0 entries in split-brain" {
			t.Errorf("split-brain field: %q", r.Message)
		}
	})

	t.Run("certificate renewed", func(t *testing.T) {
		// fs2's certificate renewed as the README says (its two files
		// removed from the secrets folder, install run once): its
		// glusterd and brick present the new one at once; fs1 and fs3,
		// whose files did not change, keep their daemons.
		serial := func(h *testbed.Host, script string) string {
			out, err := h.Sh(ctx, script+" | openssl x509 -noout -serial")
			if err != nil {
				t.Fatalf("%s: %s: %v %s", h.Name, script, err, out)
			}
			return strings.TrimSpace(out)
		}
		onDisk := "openssl x509 -in /etc/ssl/glusterfs.pem"
		served := func(port string) string {
			return "timeout 20 openssl s_client -connect " + fs2.Addr + ":" + port + " -cert /etc/ssl/glusterfs.pem -key /etc/ssl/glusterfs.key -CAfile /etc/ssl/glusterfs.ca </dev/null 2>/dev/null"
		}
		brickPort := func() string {
			out, err := fs2.Sh(ctx, "ss -Htlnp | awk '/glusterfsd/ {n = split($4, a, \":\"); print a[n]; exit}'")
			if err != nil || strings.TrimSpace(out) == "" {
				t.Fatalf("fs2: no brick listening: %q %v", out, err)
			}
			return strings.TrimSpace(out)
		}
		old := serial(fs2, onDisk)
		if got := serial(fs1, served("24007")); got != old {
			t.Fatalf("fs2's glusterd serves %s before the renewal, its file holds %s", got, old)
		}
		fs3Pid, _ := bed.Host("fs3").Sh(ctx, "pgrep -x glusterd")
		for _, f := range []string{"fs2.pem", "fs2.key"} {
			if err := os.Remove(filepath.Join(inv.SecretsDir, "glusterfs", f)); err != nil {
				t.Fatal(err)
			}
		}
		rep := bedRun(t, ctx, inv, StateServer{}, Options{}, installer.ModeApply)
		requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
		if r, _ := resultOf(rep, "fs1", "glusterfs daemons use the current TLS files"); r.Status != installer.StatusChanged || !strings.Contains(r.Message, "restarted the gluster daemons of fs2,") {
			t.Errorf("the renewal's restart: %s %q, want fs2's daemons restarted", r.Status, r.Message)
		}
		renewed := serial(fs2, onDisk)
		if renewed == old {
			t.Fatalf("fs2's certificate not renewed (serial %s)", old)
		}
		if got := serial(fs1, served("24007")); got != renewed {
			t.Errorf("fs2's glusterd serves %s after one run, the renewed certificate is %s", got, renewed)
		}
		if got := serial(fs1, served(brickPort())); got != renewed {
			t.Errorf("fs2's brick serves %s after one run, the renewed certificate is %s", got, renewed)
		}
		if now, _ := bed.Host("fs3").Sh(ctx, "pgrep -x glusterd"); now != fs3Pid {
			t.Errorf("fs3's glusterd restarted (pid %q, was %q): its files did not change", now, fs3Pid)
		}
		// The pool whole again, and the next run changes nothing.
		waitHealed(t, ctx, fs2)
		if r, _ := resultOf(bedRun(t, ctx, inv, StateServer{}, Options{}, installer.ModeApply), "fs1", "glusterfs daemons use the current TLS files"); r.Status != installer.StatusOK {
			t.Errorf("the run after the renewal: %s %q", r.Status, r.Message)
		}
	})

	t.Run("foreign volume and brick refused", func(t *testing.T) {
		// A volume gridha did not create, under the name the inventory
		// gives: refused, and left as it is.
		fs3 := bed.Host("fs3")
		if out, err := fs1.Sh(ctx, fmt.Sprintf("gluster --mode=script volume create foreign replica 3 %s:/srv/foreign %s:/srv/foreign %s:/srv/foreign && gluster --mode=script volume start foreign", fs1.Hostname, fs2.Hostname, fs3.Hostname)); err != nil {
			t.Fatal(out, err)
		}
		other := func(volume string) *inventory.Inventory {
			text, err := os.ReadFile(inv.Path)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "gridha.yaml")
			body := strings.Replace(string(text), "      iface: eth0\n", "      iface: eth0\n      volume: "+volume+"\n", 1)
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			o, err := inventory.Load(p)
			if err != nil || o.Roles.StateServer.Pool.Volume != volume {
				t.Fatalf("inventory with volume %s: %v", volume, err)
			}
			return o
		}
		before, _ := fs1.Sh(ctx, "gluster volume info foreign")
		rep := bedRun(t, ctx, other("foreign"), StateServer{}, Options{}, installer.ModeApply)
		if r, _ := resultOf(rep, "fs1", "glusterfs volume foreign"); r.Status != installer.StatusFailed || !strings.Contains(r.Message, "was not created by gridha") {
			t.Errorf("foreign volume: %s %q, want a refusal", r.Status, r.Message)
		}
		if after, _ := fs1.Sh(ctx, "gluster volume info foreign"); after != before || strings.Contains(after, "ssl") {
			t.Errorf("foreign volume touched:\n%s\nwas:\n%s", after, before)
		}
		// A brick folder holding someone's data: refused on its host, and
		// no volume is created.
		if out, err := fs2.Sh(ctx, "mkdir -p /srv/gridha/bricks/other && echo precious > /srv/gridha/bricks/other/data.txt"); err != nil {
			t.Fatal(out, err)
		}
		rep = bedRun(t, ctx, other("other"), StateServer{}, Options{}, installer.ModeApply)
		if r, _ := resultOf(rep, "fs2", "brick folder /srv/gridha/bricks/other"); r.Status != installer.StatusFailed || !strings.Contains(r.Message, "holds data and is no GlusterFS brick") {
			t.Errorf("brick folder with data: %s %q, want a refusal", r.Status, r.Message)
		}
		if r, _ := resultOf(rep, "fs1", "glusterfs volume other"); r.Status != installer.StatusFailed || !strings.Contains(r.Message, "not creating volume other") {
			t.Errorf("volume over a refused brick folder: %s %q", r.Status, r.Message)
		}
		if out, err := fs2.Sh(ctx, "ls -A /srv/gridha/bricks/other; cat /srv/gridha/bricks/other/data.txt"); err != nil || out != "data.txt\nprecious\n" {
			t.Errorf("fs2's folder after the refusal: %q %v", out, err)
		}
		if out, _ := fs1.Sh(ctx, "gluster volume list"); strings.Contains(out, "other") {
			t.Errorf("a volume was created over the refused folder: %q", out)
		}
	})

	// Last: fs3 is lost for good and replaced by fs4 (statepool_replace_bed_test.go).
	t.Run("member lost for good replaced by editing the inventory", func(t *testing.T) {
		// Its own bound (the replacement's SST and full heal take minutes
		// on a loaded machine), not what the subtests before left of ctx.
		ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
		defer cancel()
		replaceLostMember(t, ctx, bed, inv)
	})
}

// upgradeInventory writes the inventory of fs1-fs3 and rb1 with members
// state servers: 1 (fs1 alone, the single server, sshfs) or 3 (the pool).
func upgradeInventory(t *testing.T, b *testbed.Bed, dir string, members int) *inventory.Inventory {
	t.Helper()
	pwFile := writeLBPassword(t, dir, "LB-secret-for-pool")
	roles := map[string][]string{"rb1": {"rb-node"}}
	for _, m := range []string{"fs1", "fs2", "fs3"}[:members] {
		roles[m] = []string{"state-server"}
	}
	body := fmt.Sprintf(`secrets_dir: %s
%sroles:
  state-server:
    export: /srv/rb-state
    mysql:
      password_file: %s
    pool:
      service_ip: %s/24
      iface: eth0
  rb-node:
    services: [%s]
    groups:
      rb-a: {service_ip: %s/24, iface: eth0}
    nodes:
      rb1: {rb-a: 100}
`, filepath.Join(dir, "secrets"), b.HostsYAML(roles), pwFile, b.SpareAddr(2), strings.Join(rbTestServices, ", "), b.SpareAddr(1))
	return loadBedInventory(t, b, dir, body)
}

// TestStatePoolUpgradeOnBed: a single state server whose rb node moved its
// state there (sshfs) becomes a pool of 3 by one install run: the export
// moves into the volume (copy, verify, swap, original kept aside), the node
// mounts the volume where the sshfs share was, and sees exactly what it saw.
func TestStatePoolUpgradeOnBed(t *testing.T) {
	bed := testbed.New(t, "fs1", "fs2", "fs3", "rb1")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	fs1, rb1 := bed.Host("fs1"), bed.Host("rb1")
	if err := fs1.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	seedRBState(t, ctx, rb1)
	// Enough small files that the export's copy into the volume takes a
	// few seconds (the run is killed in the middle of it).
	if out, err := rb1.Sh(ctx, `i=0; while [ $i -lt 12 ]; do mkdir -p /var/edgwl/bulk/d$i; j=0; while [ $j -lt 40 ]; do head -c 2048 /dev/urandom > /var/edgwl/bulk/d$i/f$j; j=$((j+1)); done; i=$((i+1)); done`); err != nil {
		t.Fatal(out, err)
	}
	dir := t.TempDir()
	role := RBNode{withoutHA: true}
	single := upgradeInventory(t, bed, dir, 1)
	if single.Roles.RBNode.SharedFS != "sshfs" {
		t.Fatalf("single server: shared_fs %q", single.Roles.RBNode.SharedFS)
	}
	rep := bedRun(t, ctx, single, role, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
	// In use: uid 501 writes through the sshfs share.
	if out, err := rb1.Sh(ctx, "setpriv --reuid 501 --regid 501 --clear-groups sh -c 'umask 077; echo renewed > /var/myproxy/u501/renewed'"); err != nil {
		t.Fatal(out, err)
	}
	stateDirs := single.Roles.RBNode.StateDirs
	viewBefore := map[string]steps.Manifest{}
	for _, d := range stateDirs {
		viewBefore[d] = stateManifest(t, ctx, fs1, "/srv/rb-state/rb-a/"+filepath.Base(d), false)
	}

	pool := upgradeInventory(t, bed, dir, 3)
	if pool.Roles.RBNode.SharedFS != "glusterfs" {
		t.Fatalf("pool: shared_fs %q", pool.Roles.RBNode.SharedFS)
	}
	chk := bedRun(t, ctx, pool, role, Options{ReadOnly: true}, installer.ModeCheck)
	requireNo(t, chk, installer.StatusFailed, installer.StatusUnreachable)
	if r, _ := resultOf(chk, "fs1", "export /srv/rb-state moved into the volume"); r.Status != installer.StatusDrift {
		t.Errorf("--check: export move %s %q, want drift", r.Status, r.Message)
	}
	// The upgrade run killed (SIGKILL) while it copies the export into
	// the volume: within a second nothing it started runs on fs1, and the
	// next run converges.
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "GRIDHA_RBNODE_INVENTORY="+pool.Path)
	logf, err := os.Create(filepath.Join(dir, "helper.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tmp := poolMigrateMount + "/.rb-a.gridha-tmp-export-fs1"
	killed := false
	for i := 0; i < 2400 && !killed; i++ { // bounded: 120 s
		out, _ := fs1.Sh(ctx, "find "+tmp+" -type f 2>/dev/null | wc -l")
		if n, _ := strconv.Atoi(strings.TrimSpace(out)); n >= 100 {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
			t.Logf("killed the upgrade run with SIGKILL: %d files in the export's copy", n)
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("the upgrade run ended (%v) before it was seen copying the export:\n%s", err, log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !killed {
		t.Fatal("never saw the export's copy")
	}
	<-exited
	time.Sleep(time.Second)
	if out, _ := fs1.Sh(ctx, "ps -eo pid=,comm=,args= | awk '$2 ~ /^(cp|tar|find|openssl|sha256sum|xargs|flock)$/'"); strings.TrimSpace(out) != "" {
		t.Errorf("fs1: 1 s after SIGKILL, processes of the killed run remain:\n%s", out)
	}
	rep = bedRun(t, ctx, pool, role, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)
	if r, _ := resultOf(rep, "fs1", "export /srv/rb-state moved into the volume"); r.Status != installer.StatusChanged || !strings.Contains(r.Message, "partial copy") {
		t.Errorf("export move after the kill: %s %q, want changed, copying the partial copy again", r.Status, r.Message)
	}
	if out, _ := fs1.Sh(ctx, "grep -c glusterfs-export-move /proc/mounts"); strings.TrimSpace(out) != "0" {
		t.Errorf("fs1: the move's mount is still there after the run: %q", out)
	}
	// The killed copy's files and the move's writes are healed in the
	// background: a run during that would launch a heal (a change).
	waitHealed(t, ctx, fs1)
	if ch := changedSteps(bedRun(t, ctx, pool, role, Options{}, installer.ModeApply)); len(ch) > 0 {
		t.Errorf("second run after the upgrade changed: %v", firstStrings(ch, 8))
	}

	// fs1: the export's group folder kept aside, intact; the nodes'
	// logins fenced (keys file kept aside).
	aside, err := fs1.Sh(ctx, "ls -d /srv/rb-state/rb-a.gridha-local-*; test -L /srv/rb-state/rb-a && echo linked; ls /etc/ssh/authorized_keys/ ")
	if err != nil || strings.Count(aside, "\n") != 3 || !strings.Contains(aside, "\nlinked\nsnfs.gridha-pool-") {
		t.Fatalf("fs1 after the move: %q %v", aside, err)
	}
	asideDir := strings.SplitN(aside, "\n", 2)[0]
	// rb1: the volume where the sshfs share was, no sshfs left, and the
	// same state as before, through the mount.
	mounts, _ := rb1.Sh(ctx, "cat /proc/mounts; cat /etc/fstab")
	if !strings.Contains(mounts, " /mnt/rb-state fuse.glusterfs ") || strings.Contains(mounts, "sshfs") || strings.Contains(mounts, "bindfs") {
		t.Errorf("rb1 mounts after the upgrade:\n%s", mounts)
	}
	opt := steps.CompareOptions{Owners: true, LinkTimes: true}
	for _, d := range stateDirs {
		base := filepath.Base(d)
		if diffs := steps.CompareManifestsWith(viewBefore[d], stateManifest(t, ctx, fs1, asideDir+"/"+base, false), opt); len(diffs) > 0 {
			t.Errorf("fs1: kept-aside %s differs from the export before the move: %v", base, firstStrings(diffs, 8))
		}
		if diffs := steps.CompareManifestsWith(viewBefore[d], stateManifest(t, ctx, rb1, d, false), opt); len(diffs) > 0 {
			t.Errorf("rb1: %s through the volume differs from the export before the move: %v", d, firstStrings(diffs, 8))
		}
	}
	if out, err := rb1.Sh(ctx, "cat /var/myproxy/u501/renewed"); err != nil || out != "renewed\n" {
		t.Errorf("the file written through sshfs, through the volume: %q %v", out, err)
	}
	assertLocalPermissions(t, ctx, rb1)
}
