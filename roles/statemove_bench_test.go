package roles

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	sshx "github.com/gridha/gridha/installer/ssh"
	"github.com/gridha/gridha/testbed"
)

// BenchmarkStateMove measures install rb-node's move of ~350 MB of RB
// state (the awkward state of the bed tests, 1000 small files, 30 files of
// 10 MB of random data, a 64 MB sparse file) from a node to the state server
// through the confined sshfs + bindfs mount, with its verification, against
// `rsync -a` of the same folders from the same node to the same server over
// SSH, in one run on one bed (same load for both):
//
//	go test -run '^$' -bench StateMove -benchtime 1x ./roles
func BenchmarkStateMove(b *testing.B) {
	bed := testbed.New(b, "state1", "rb1")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	srv, rb1 := bed.Host("state1"), bed.Host("rb1")
	if err := srv.StartMariaDB(ctx); err != nil {
		b.Fatal(err)
	}
	seed := `set -e
mkdir -p /var/edgwl/sandbox/user1 /var/myproxy/u501 /opt/edg/var/spool/edg-wl-renewd /opt/condor/var/condor/spool
echo 'delegated proxy of uid 501' > /var/myproxy/u501/x509up_u501; chmod 600 /var/myproxy/u501/x509up_u501; chown -R 501:501 /var/myproxy/u501
ln -s /var/myproxy/u501/x509up_u501 /var/myproxy/abs-link; ln -s u501/x509up_u501 /var/myproxy/rel-link; ln -s gone /var/myproxy/dangling
echo helper > /var/edgwl/suid-helper; chmod 4755 /var/edgwl/suid-helper
echo jdl > /var/edgwl/sandbox/user1/input.jdl; ln /var/edgwl/sandbox/user1/input.jdl /var/edgwl/sandbox/user1/hardlink.jdl
echo 'ünïcode' > '/var/edgwl/sandbox/jöb ünïcode 名前 with spaces.jdl'
truncate -s 64M /opt/condor/var/condor/spool/sparse.log; echo x | dd of=/opt/condor/var/condor/spool/sparse.log bs=1 seek=33554432 conv=notrunc 2>/dev/null
i=0; while [ $i -lt 20 ]; do mkdir -p /var/edgwl/jobs/d$i; j=0; while [ $j -lt 50 ]; do head -c 4096 /dev/urandom > /var/edgwl/jobs/d$i/f$j; j=$((j+1)); done; i=$((i+1)); done
i=0; while [ $i -lt 30 ]; do head -c 10485760 /dev/urandom > /var/edgwl/sandbox/out$i.bin; i=$((i+1)); done
`
	if out, err := rb1.Sh(ctx, seed); err != nil {
		b.Fatal(err, out)
	}
	dir := b.TempDir()
	inv := rbNodeInventory(b, srv, bed, dir, "rb1")
	dirs := inv.Roles.RBNode.StateDirs
	size, _ := rb1.Sh(ctx, "du -scb --apparent-size "+strings.Join(dirs, " ")+" | tail -1 | cut -f1")

	// rsync -a of the same folders, node to server, as root over SSH.
	key, err := os.ReadFile(bed.ClientKeyFile)
	if err != nil {
		b.Fatal(err)
	}
	if err := rb1.WriteFile("/root/bench_key", key, 0o600); err != nil {
		b.Fatal(err)
	}
	rsync := fmt.Sprintf("mkdir -p /srv/rsync-baseline && rsync -a -e 'ssh -i /root/bench_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR' %s root@%s:/srv/rsync-baseline/",
		strings.Join(dirs, " "), srv.Addr)
	if _, err := srv.Sh(ctx, "mkdir -p /srv/rsync-baseline"); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if out, err := rb1.Sh(ctx, rsync); err != nil {
		b.Fatal(err, out)
	}
	rsyncTime := time.Since(start)

	plan, err := RBNode{withoutHA: true}.Plan(inv, Options{})
	if err != nil {
		b.Fatal(err)
	}
	d := sshx.NewDialer(inv, sshx.Options{HostKeyPolicy: "strict", SSHConfigFile: "none", AgentSocket: "none"})
	start = time.Now()
	rep, err := installer.Run(ctx, d, plan, installer.RunOptions{Mode: installer.ModeApply, Secrets: &installer.Redactor{}})
	if err != nil {
		b.Fatal(err)
	}
	total := time.Since(start)
	var move time.Duration
	for _, r := range rep.Results {
		if r.Status == installer.StatusFailed || r.Status == installer.StatusUnreachable {
			b.Fatalf("%s %s: %s", r.Host, r.Step, r.Message)
		}
		if strings.HasPrefix(r.Step, "state dir ") {
			move += r.Duration
		}
	}
	b.Logf("%s bytes in %d state dirs: rsync -a %s; gridha's move (copy, fix-up and verification on the server, rename, link) %s; whole install rb-node %s",
		strings.TrimSpace(size), len(dirs), rsyncTime.Round(time.Millisecond), move.Round(time.Millisecond), total.Round(time.Millisecond))
	b.ReportMetric(rsyncTime.Seconds(), "s-rsync")
	b.ReportMetric(move.Seconds(), "s-move")
	b.ReportMetric(move.Seconds()/rsyncTime.Seconds(), "x-rsync")
}
