package roles

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	sshx "github.com/gridha/gridha/installer/ssh"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
)

// stateServerInventory writes an inventory for bed: state1 serves rb1 and
// rb2 (rb2 only when withRB2), other is a bed host outside the inventory.
func stateServerInventory(t *testing.T, bed *testbed.Bed, pwFile string, withRB2 bool) *inventory.Inventory {
	t.Helper()
	s, r1, r2 := bed.Host("state1"), bed.Host("rb1"), bed.Host("rb2")
	body := fmt.Sprintf(`secrets_dir: %s
hosts:
  state1: {address: %s, hostname: %s, roles: [state-server]}
  rb1: {address: %s, hostname: %s, roles: [rb-node]}
`, filepath.Join(filepath.Dir(pwFile), "secrets"), s.Addr, s.Hostname, r1.Addr, r1.Hostname)
	nodes := "      rb1: {rb-a: 100}\n"
	if withRB2 {
		body += fmt.Sprintf("  rb2: {address: %s, hostname: %s, roles: [rb-node]}\n", r2.Addr, r2.Hostname)
		nodes += "      rb2: {rb-a: 50}\n"
	}
	body += fmt.Sprintf(`roles:
  state-server:
    export: /srv/rb-state # /srv is private to each bed host; /export is the machine's own
    mysql:
      password_file: %s
  rb-node:
    state_server: state1
    groups:
      rb-a: {service_ip: %s/24, iface: eth0}
    nodes:
%s`, pwFile, strings.TrimSuffix(bed.Subnet, ".0/24")+".100", nodes)
	path := filepath.Join(filepath.Dir(pwFile), "gridha.yaml")
	if err := os.WriteFile(path, []byte(bed.DefaultsYAML()+body), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatalf("inventory:\n%s\n%v", body, err)
	}
	return inv
}

func changedSteps(rep *installer.Report) []string {
	var out []string
	for _, r := range rep.Results {
		if r.Status != installer.StatusOK {
			out = append(out, fmt.Sprintf("%s %s: %s %s", r.Host, r.Step, r.Status, r.Message))
		}
	}
	return out
}

func TestStateServerOnBed(t *testing.T) {
	bed := testbed.New(t, "state1", "rb1", "rb2", "other")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, rb1, rb2, other := bed.Host("state1"), bed.Host("rb1"), bed.Host("rb2"), bed.Host("other")
	if err := srv.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "lb-password")
	if err := os.WriteFile(pwFile, []byte("first-LB-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := stateServerInventory(t, bed, pwFile, true)
	role := NewStateServer()

	// --check on a fresh host: reports what it would do, writes nothing.
	before, err := srv.Snapshot("/var/log", "/var/lib/mysql")
	if err != nil {
		t.Fatal(err)
	}
	chk := bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeCheck)
	if len(changedSteps(chk)) == 0 {
		t.Fatal("--check on a fresh state server found nothing to do")
	}
	after, _ := srv.Snapshot("/var/log", "/var/lib/mysql")
	if d := testbed.DiffSnapshots(before, after); len(d) > 0 {
		t.Fatalf("--check wrote on the host: %v", d)
	}
	if n, _ := srv.MySQL(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User='lbserver'"); strings.TrimSpace(n) != "0" {
		t.Fatalf("--check created MySQL accounts: %s", n)
	}

	rep := bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusUnreachable)

	// The export: one folder per group and state dir, root's (the chroot
	// of the nodes' login), traversable by the nodes' service users.
	out, err := srv.Sh(ctx, "stat -c '%U:%G %a' /srv/rb-state /srv/rb-state/rb-a/edgwl /srv/rb-state/rb-a/condor /etc/ssh/authorized_keys/snfs; getent passwd snfs")
	if err != nil {
		t.Fatal(err)
	}
	if want := "root:root 755\nroot:root 755\nroot:root 755\nroot:root 644\nsnfs:x:0:0::/srv/rb-state:/usr/sbin/nologin\n"; out != want {
		t.Fatalf("export folders, keys file, account: got %q want %q", out, want)
	}
	// The keys: exactly the two nodes' keys, restricted, in a root-owned
	// file outside the chroot.
	ak, err := srv.ReadFile("/etc/ssh/authorized_keys/snfs")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testbed.Host{rb1, rb2} {
		if !strings.Contains(string(ak), `restrict,from="`+n.Addr+`",command="internal-sftp" ssh-ed25519 `) {
			t.Fatalf("authorized_keys lacks a restricted key for %s:\n%s", n.Name, ak)
		}
	}
	if got := strings.Count(string(ak), "ssh-ed25519 "); got != 2 {
		t.Fatalf("authorized_keys has %d keys, want 2:\n%s", got, ak)
	}

	assertNodeKeyConfined(t, ctx, inv, srv, rb1)

	// The L&B user works from rb1, only on lbserver20.
	lb := func(h *testbed.Host, pw, sql string) (string, error) {
		return h.Sh(ctx, fmt.Sprintf("MYSQL_PWD=%s mariadb -h %s -u lbserver -N -B -e %s lbserver20 2>&1",
			installer.ShellQuote(pw), srv.Addr, installer.ShellQuote(sql)))
	}
	if out, err := lb(rb1, "first-LB-secret", "CREATE TABLE jobs (id INT PRIMARY KEY, owner VARCHAR(64)); INSERT INTO jobs VALUES (1,'alice'),(2,'bob'); SELECT COUNT(*) FROM jobs"); err != nil || strings.TrimSpace(out) != "2" {
		t.Fatalf("L&B user from rb1: %q %v", out, err)
	}
	if out, err := lb(rb2, "first-LB-secret", "SELECT owner FROM jobs WHERE id=2"); err != nil || strings.TrimSpace(out) != "bob" {
		t.Fatalf("L&B user from rb2: %q %v", out, err)
	}
	if out, err := lb(rb1, "first-LB-secret", "CREATE DATABASE other; SELECT 1"); err == nil {
		t.Fatalf("L&B user could create another database: %q", out)
	}
	if out, err := lb(rb1, "first-LB-secret", "SELECT COUNT(*) FROM mysql.user"); err == nil {
		t.Fatalf("L&B user could read the mysql database: %q", out)
	}
	if out, err := lb(other, "first-LB-secret", "SELECT 1"); err == nil || !strings.Contains(out, "not allowed to connect") && !strings.Contains(out, "Access denied") {
		t.Fatalf("login from a host outside the inventory: %q %v", out, err)
	}

	// The snfs user: SFTP with rb1's key works from rb1, not from other.
	key, err := LoadNodeKey(inv, "rb1", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []*testbed.Host{rb1, other} {
		if err := h.WriteFile("/root/snfs-test.key", key.PrivatePEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sftp := func(h *testbed.Host) (string, error) {
		return h.Sh(ctx, fmt.Sprintf("echo pwd | sftp -b - -i /root/snfs-test.key -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/root/kh snfs@%s 2>&1", srv.Addr))
	}
	if out, err := sftp(rb1); err != nil || !strings.Contains(out, "Remote working directory: /\n") {
		t.Fatalf("snfs SFTP from rb1: %q %v", out, err)
	}
	if out, err := sftp(other); err == nil {
		t.Fatalf("snfs login from a host outside the inventory worked: %q", out)
	}
	if out, err := rb1.Sh(ctx, fmt.Sprintf("ssh -i /root/snfs-test.key -o BatchMode=yes -o UserKnownHostsFile=/root/kh snfs@%s id 2>&1", srv.Addr)); err == nil && strings.Contains(out, "uid=") {
		t.Fatalf("snfs key runs shell commands, want SFTP only: %q", out)
	}

	// Second run: nothing changes.
	if c := changedSteps(bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)); len(c) > 0 {
		t.Fatalf("second run changed:\n%s", strings.Join(c, "\n"))
	}

	// A Match Address block before gridha's that gives rb2's address TCP
	// forwarding: sshd -T is then run per node address (not once for
	// all), and the drift is reported from rb2's address only.
	weak := "Match Address " + rb2.Addr + "\n\tAllowTcpForwarding yes\n"
	if _, err := srv.Sh(ctx, "sed -i '/^# BEGIN gridha state-server/i "+strings.ReplaceAll(strings.TrimSuffix(weak, "\n"), "\n", "\\n")+"' /etc/ssh/sshd_config"); err != nil {
		t.Fatal(err)
	}
	weakAudit := bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeAudit)
	var confine *installer.Result
	for i, r := range weakAudit.Results {
		if r.Step == "sshd confinement of snfs" {
			confine = &weakAudit.Results[i]
		}
	}
	if confine == nil || confine.Status != installer.StatusDrift ||
		!strings.Contains(confine.Message, "from "+rb2.Addr+`: allowtcpforwarding is "yes", want "no"`) || strings.Contains(confine.Message, "from "+rb1.Addr) {
		t.Fatalf("Match Address %s weakening rb2's login: verify says %+v, want drift from rb2's address only", rb2.Addr, confine)
	}
	if _, err := srv.Sh(ctx, "sed -i '/^Match Address "+rb2.Addr+"$/,+1d' /etc/ssh/sshd_config"); err != nil {
		t.Fatal(err)
	}
	if c := changedSteps(bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeAudit)); len(c) > 0 {
		t.Fatalf("after removing the Match Address block:\n%s", strings.Join(c, "\n"))
	}

	// A locked account (sshd refuses its keys), an export parent opened to
	// everybody and holding a folder of its own: drift of each step that
	// checks it (their facts come from one shared probe, the batch's stat
	// and the shell's globs); install unlocks and seals again once the
	// parent holds only the export.
	if _, err := srv.Sh(ctx, "usermod -L snfs && chmod 0755 /srv && mkdir /srv/.scratch"); err != nil {
		t.Fatal(err)
	}
	drift := map[string]string{}
	for _, r := range bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeAudit).Results {
		if r.Status != installer.StatusOK {
			drift[r.Step] = string(r.Status) + ": " + r.Message
		}
	}
	for step, want := range map[string]string{
		"exec snfs is uid 0, home /srv/rb-state, shell /usr/sbin/nologin": "locked (sshd refuses its keys)",
		"exec snfs accepts key logins":                                    "account locked",
		"exec export's parent /srv root-only (0700)":                      "mode 755 root:root, also holds .scratch",
	} {
		if !strings.Contains(drift[step], "drift: ") || !strings.Contains(drift[step], want) {
			t.Errorf("%s: %q, want drift saying %q (all: %v)", step, drift[step], want, drift)
		}
	}
	if len(drift) != 3 {
		t.Errorf("drift beyond the three steps: %v", drift)
	}
	if _, err := srv.Sh(ctx, "rmdir /srv/.scratch"); err != nil {
		t.Fatal(err)
	}
	// The account's step unlocks it too (usermod -p '*'); the key-login
	// step then sees the fresh shared probe and has nothing left to do.
	if c := changedSteps(bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)); len(c) != 2 ||
		!strings.HasPrefix(c[0], "state1 exec snfs is uid 0") || !strings.HasPrefix(c[1], "state1 exec export's parent /srv") {
		t.Fatalf("install after locking and opening: changed %d steps, want the account's and the parent's:\n%s", len(c), strings.Join(c, "\n"))
	}
	if out, err := srv.Sh(ctx, "stat -c '%a %U:%G' /srv; getent shadow snfs | cut -d: -f2"); err != nil || out != "700 root:root\n*\n" {
		t.Fatalf("after install: /srv and snfs's password field %q %v, want 700 root:root and *", out, err)
	}

	// A wider grant added by hand is drift, revoked on install.
	if _, err := srv.MySQL(ctx, fmt.Sprintf("GRANT SELECT ON mysql.* TO 'lbserver'@'%s'", rb1.Addr)); err != nil {
		t.Fatal(err)
	}
	audit := statuses(bedRun(t, ctx, inv, role, Options{ReadOnly: true}, installer.ModeAudit))
	if s := audit["state1 mysql user lbserver@"+rb1.Addr]; s != installer.StatusDrift {
		t.Fatalf("extra grant: verify says %q, want drift", s)
	}
	bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)
	if out, err := lb(rb1, "first-LB-secret", "SELECT COUNT(*) FROM mysql.user"); err == nil {
		t.Fatalf("extra grant not revoked: %q", out)
	}

	// A new password in the file: the next run changes it.
	if err := os.WriteFile(pwFile, []byte("second-LB-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep = bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)
	if s := statuses(rep)["state1 mysql user lbserver@"+rb1.Addr]; s != installer.StatusChanged {
		t.Fatalf("password change: %q, want changed", s)
	}
	for _, r := range rep.Results {
		if strings.Contains(r.Message+r.Expected+r.Found+r.Diff+fmt.Sprint(r.Drifted), "second-LB-secret") {
			t.Fatalf("password in a result: %+v", r)
		}
	}
	if _, err := lb(rb1, "first-LB-secret", "SELECT 1"); err == nil {
		t.Fatal("old password still works")
	}
	if out, err := lb(rb1, "second-LB-secret", "SELECT COUNT(*) FROM jobs"); err != nil || strings.TrimSpace(out) != "2" {
		t.Fatalf("new password: %q %v", out, err)
	}

	// rb2 leaves the inventory: its key and its MySQL account go.
	inv = stateServerInventory(t, bed, pwFile, false)
	bedRun(t, ctx, inv, role, Options{}, installer.ModeApply)
	ak, _ = srv.ReadFile("/etc/ssh/authorized_keys/snfs")
	if strings.Contains(string(ak), rb2.Addr) {
		t.Fatalf("rb2's key still authorized:\n%s", ak)
	}
	if _, err := lb(rb2, "second-LB-secret", "SELECT 1"); err == nil {
		t.Fatal("rb2 can still log in to MySQL after leaving the inventory")
	}

	// MySQL down: a clear error naming the host and what failed.
	if err := srv.StopMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	waitGone(t, ctx, srv)
	plan, err := role.Plan(inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = installer.Run(ctx, bedDialer(inv), plan, installer.RunOptions{Mode: installer.ModeApply, Secrets: &installer.Redactor{}})
	if err != nil {
		t.Fatal(err)
	}
	var failed *installer.Result
	for i, r := range rep.Results {
		if r.Status == installer.StatusFailed {
			failed = &rep.Results[i]
			break
		}
	}
	if failed == nil || failed.Host != "state1" || !strings.Contains(failed.Message, "mysql") {
		t.Fatalf("MySQL down: want a failed step on state1 naming mysql, got %+v", failed)
	}
	t.Logf("MySQL down reported as: %s %s: %s", failed.Host, failed.Step, failed.Message)
}

func waitGone(t *testing.T, ctx context.Context, h *testbed.Host) {
	t.Helper()
	for i := 0; i < 100; i++ { // bounded: 10 s
		if !h.Running(ctx, "mariadb") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("mariadb did not stop")
}

func bedDialer(inv *inventory.Inventory) installer.Dialer {
	return sshx.NewDialer(inv, sshx.Options{HostKeyPolicy: "strict", SSHConfigFile: "none", AgentSocket: "none"})
}

// assertNodeKeyConfined tries, from node with its own snfs key, everything
// the key must not do on srv (over real SSH and SFTP): a shell or command,
// TCP forwarding, reading or writing outside the export, and planting a key
// of its own (in every place the account can write) that would then log in.
func assertNodeKeyConfined(t *testing.T, ctx context.Context, inv *inventory.Inventory, srv, node *testbed.Host) {
	t.Helper()
	k, err := LoadNodeKey(inv, node.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.WriteFile("/root/snfs-test-key", k.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// BatchMode, a throw-away known_hosts: nothing interactive.
	ssh := "ssh -i /root/snfs-test-key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -o LogLevel=ERROR "
	sftp := "sftp -i /root/snfs-test-key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -o LogLevel=ERROR -b - snfs@" + srv.Addr
	run := func(script string) (string, error) { return node.Sh(ctx, script+" 2>&1") }

	// SFTP inside the export works (the positive control).
	out, err := run("echo 'ls /' | timeout 20 " + sftp)
	if err != nil || !strings.Contains(out, "rb-a") {
		t.Fatalf("%s: SFTP into the export: %q %v", node.Name, out, err)
	}
	// No command, no shell: the session is internal-sftp whatever is asked.
	for _, cmd := range []string{"id", "cat /etc/shadow", "sh -c 'echo SHELL-$$'"} {
		out, _ := run("timeout 20 " + ssh + "snfs@" + srv.Addr + " " + installer.ShellQuote(cmd) + " </dev/null | head -c 2000 | od -c | head -5")
		if strings.Contains(out, "u   i   d   =") || strings.Contains(out, "r   o   o   t   :") || strings.Contains(out, "S   H   E   L   L   -") {
			t.Fatalf("%s: the node key ran %q:\n%s", node.Name, cmd, out)
		}
	}
	if out, err := run("timeout 20 " + ssh + "-tt snfs@" + srv.Addr + " </dev/null"); err == nil && strings.Contains(out, "#") {
		t.Fatalf("%s: the node key got a terminal: %q", node.Name, out)
	}
	// No forwarding: a stdio forward to the server's own sshd and MySQL.
	for _, target := range []string{"127.0.0.1:22", srv.Addr + ":3306"} {
		out, err := run("echo | timeout 20 " + ssh + "-W " + target + " snfs@" + srv.Addr)
		if err == nil || !strings.Contains(out, "prohibited") && !strings.Contains(out, "forwarding failed") {
			t.Fatalf("%s: forwarding to %s not refused: %q %v", node.Name, target, out, err)
		}
	}
	// Outside the export: nothing to read, nothing to write.
	for _, p := range []string{"/etc/shadow", "/etc/ssh/authorized_keys/snfs", "/../../etc/passwd", "/root/.ssh/authorized_keys"} {
		if out, err := run("echo 'get " + p + " /tmp/leak' | timeout 20 " + sftp + "; test -e /tmp/leak && echo LEAKED"); err == nil || strings.Contains(out, "LEAKED") {
			t.Fatalf("%s: read %s on the server: %q %v", node.Name, p, out, err)
		}
	}
	// A key of the node's own choosing, put everywhere the account can
	// write: it must not open a login.
	if out, err := run(`rm -f /root/planted /root/planted.pub; ssh-keygen -q -t ed25519 -N '' -f /root/planted && cp /root/planted.pub /root/authorized_keys`); err != nil {
		t.Fatal(out, err)
	}
	for _, dst := range []string{"/etc/ssh/authorized_keys/snfs", "/.ssh/authorized_keys", "/srv/rb-state/.ssh/authorized_keys"} {
		if out, err := run("printf 'mkdir " + path.Dir(dst) + "\\n-put /root/authorized_keys " + dst + "\\n' | timeout 20 " + sftp + " -b -"); err == nil && dst == "/etc/ssh/authorized_keys/snfs" {
			t.Fatalf("%s: replaced the keys file over SFTP: %q", node.Name, out)
		}
	}
	if ak, _ := srv.ReadFile("/etc/ssh/authorized_keys/snfs"); strings.Contains(string(ak), "planted") || strings.Count(string(ak), "ssh-ed25519 ") != 2 {
		t.Fatalf("keys file changed by the node:\n%s", ak)
	}
	if out, err := run("echo 'ls /' | timeout 20 sftp -i /root/planted -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -b - snfs@" + srv.Addr); err == nil {
		t.Fatalf("%s: a planted key logs in: %q", node.Name, out)
	}
	// A setuid-root program planted through the uid-0 login: it lands
	// (root-owned, mode 4755: the positive control), but no local account
	// of the state server can reach it, since the export's parent is
	// root-only.
	if out, err := run("cp /usr/bin/id /root/suid-id; printf 'put /root/suid-id /rb-a/suid-id\\nchmod 4755 /rb-a/suid-id\\n' | timeout 20 " + sftp); err != nil {
		t.Fatalf("%s: planting a file in the export: %q %v", node.Name, out, err)
	}
	if out, err := srv.Sh(ctx, "stat -c '%a %U' /srv/rb-state/rb-a/suid-id"); err != nil || strings.TrimSpace(out) != "4755 root" {
		t.Fatalf("planted file on the server: %q %v (want 4755 root)", out, err)
	}
	if out, err := srv.Sh(ctx, "stat -c '%a %U:%G' /srv"); err != nil || strings.TrimSpace(out) != "700 root:root" {
		t.Fatalf("export's parent /srv on the server: %q %v (want 700 root:root)", out, err)
	}
	for _, cmd := range []string{"/srv/rb-state/rb-a/suid-id -u", "ls /srv/rb-state"} {
		// Through sh: setpriv itself execs with the capabilities it still
		// holds, a shell started by it has none.
		out, err := srv.Sh(ctx, "setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "+installer.ShellQuote(cmd)+" 2>&1")
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Fatalf("an unprivileged account on the state server ran %q: %q %v", cmd, out, err)
		}
	}
	// Clean what the attempts left in the export.
	if out, err := srv.Sh(ctx, "rm -rf /srv/rb-state/.ssh /srv/rb-state/srv /srv/rb-state/rb-a/suid-id; rm -f /root/planted*"); err != nil {
		t.Fatal(out, err)
	}
}
