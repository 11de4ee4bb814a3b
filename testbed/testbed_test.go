package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sshTo runs cmd on h over the system OpenSSH client with the bed's key and
// strict host-key checking against the bed's known_hosts.
func sshTo(ctx context.Context, b *Bed, h *Host, cmd string) (string, error) {
	c := exec.CommandContext(ctx, "ssh", append(b.SSHArgs(), "root@"+h.Addr, cmd)...)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ssh %s %q: %w: %s", h.Addr, cmd, err, out)
	}
	return string(out), nil
}

func TestTwoHosts(t *testing.T) {
	b := New(t, "alpha", "beta")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, z := b.MustHost("alpha"), b.MustHost("beta")
	snapA, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	for _, h := range []*Host{a, z} {
		out, err := sshTo(ctx, b, h, "hostname; id -u; ls -A /root")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(out)
		if len(lines) < 2 || lines[0] != h.Hostname || lines[1] != "0" {
			t.Errorf("%s: ssh says %q, want hostname %s and uid 0", h.Name, out, h.Hostname)
		}
		// /root comes from /etc/skel only: none of the machine's dotfiles.
		skel := map[string]bool{".ssh": true}
		if ents, err := os.ReadDir("/etc/skel"); err == nil {
			for _, e := range ents {
				skel[e.Name()] = true
			}
		}
		for _, name := range lines[2:] {
			if !skel[name] {
				t.Errorf("%s: /root/%s is not from /etc/skel", h.Name, name)
			}
		}
	}

	// Host.CPU counts what a session spent in the host (its processes are
	// gone, waited for by sshd): a busy loop of about 0.1 CPU-second shows,
	// the other host's count does not move by as much.
	cpuA0, errA := a.CPU()
	cpuZ0, errZ := z.CPU()
	if errA != nil || errZ != nil {
		t.Fatal(errA, errZ)
	}
	if _, err := sshTo(ctx, b, a, "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"); err != nil {
		t.Fatal(err)
	}
	cpuA1, _ := a.CPU()
	cpuZ1, _ := z.CPU()
	if d := cpuA1 - cpuA0; d < 50*time.Millisecond || d > 10*time.Second {
		t.Errorf("alpha: CPU went from %v to %v after a busy loop", cpuA0, cpuA1)
	}
	if d := cpuZ1 - cpuZ0; d >= cpuA1-cpuA0 {
		t.Errorf("beta's CPU moved by %v, alpha's (the busy one) by %v", d, cpuA1-cpuA0)
	}

	// Logging in over SSH writes nothing a Snapshot sees (sshd's login records are volatile).
	if again, err := a.Snapshot(); err != nil {
		t.Fatal(err)
	} else if d := DiffSnapshots(snapA, again); len(d) > 0 {
		t.Errorf("ssh logins show in alpha's snapshot: %v", d)
	}

	// /etc writes are private to the host.
	marker := fmt.Sprintf("/etc/testbed-marker-%d", b.ID)
	if _, err := sshTo(ctx, b, a, "echo alpha >"+marker); err != nil {
		t.Fatal(err)
	}
	if got, err := a.ReadFile(marker); err != nil || string(got) != "alpha\n" {
		t.Errorf("alpha: %s = %q, %v; want alpha", marker, got, err)
	}
	if _, err := z.ReadFile(marker); err == nil {
		t.Errorf("beta sees alpha's %s", marker)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the machine sees alpha's %s", marker)
	}
	if _, err := os.Stat(filepath.Join(a.Upper, marker)); err != nil {
		t.Errorf("alpha's write not in its upper dir: %v", err)
	}

	// Hosts reach each other by name, over the bridge.
	if out, err := z.Sh(ctx, "getent hosts alpha"); err != nil || !strings.Contains(out, a.Addr) {
		t.Errorf("beta: getent hosts alpha = %q, %v", out, err)
	}

	// A host added later is reachable with the rewritten known_hosts; files copy in.
	g, err := b.AddHost(ctx, "gamma")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := sshTo(ctx, b, g, "hostname"); err != nil || strings.TrimSpace(out) != "gamma.testbed.gridha" {
		t.Errorf("gamma over ssh: %q, %v", out, err)
	}
	if err := g.CopyIn("/usr/bin/true", "/usr/local/bin/testbed-true"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Exec(ctx, "/usr/local/bin/testbed-true"); err != nil {
		t.Errorf("copied-in binary: %v", err)
	}
	if _, err := os.Stat("/usr/local/bin/testbed-true"); err == nil {
		t.Error("the machine sees gamma's /usr/local/bin/testbed-true")
	}

	// The machine's own SSH host keys are not in the hosts.
	if out, err := a.Sh(ctx, "ls /etc/ssh/ | grep ssh_host_"); err != nil || strings.TrimSpace(out) != "ssh_host_ed25519_key\nssh_host_ed25519_key.pub" {
		t.Errorf("alpha: host keys in /etc/ssh: %q, %v", out, err)
	}
}

func TestMariaDBDaemonsAndSnapshot(t *testing.T) {
	b := New(t, "db", "client")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db, client := b.MustHost("db"), b.MustHost("client")

	before, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := db.MySQL(ctx, "SELECT CURRENT_USER()"); err != nil || strings.TrimSpace(out) != "root@localhost" {
		t.Fatalf("mariadb root over the socket: %q, %v", out, err)
	}
	// Reachable on the host's address from another host.
	if _, err := db.MySQL(ctx, "CREATE USER 'probe'@'"+client.Addr+"' IDENTIFIED BY 'probe-pw'"); err != nil {
		t.Fatal(err)
	}
	out, err := client.ExecInput(ctx, []byte("SELECT CURRENT_USER()"), "mariadb", "-h", db.Addr, "-u", "probe", "-pprobe-pw", "-N")
	if err != nil || !strings.Contains(string(out), "probe@"+client.Addr) {
		t.Errorf("client -> db:3306: %q, %v", out, err)
	}
	// Nothing of the running database shows in a snapshot (VolatilePaths).
	mid, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if d := DiffSnapshots(before, mid); len(d) > 0 {
		t.Errorf("starting MariaDB shows in the snapshot: %v", d)
	}
	if err := db.WriteFile("/etc/testbed-snap", []byte("x\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Sh(ctx, "chmod 0600 /etc/hostname"); err != nil {
		t.Fatal(err)
	}
	after, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	d := DiffSnapshots(before, after)
	if len(d) != 2 || !strings.HasPrefix(d[0], "changed /etc/hostname ") || !strings.HasPrefix(d[1], "added /etc/testbed-snap ") {
		t.Errorf("DiffSnapshots = %q, want the new file added and /etc/hostname changed", d)
	}
	if err := db.StopMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	if db.Running(ctx, "mariadb") {
		t.Error("mariadb still running after StopMariaDB")
	}
	// A second start reuses the datadir: the user is still there.
	if err := db.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := db.MySQL(ctx, "SELECT COUNT(*) FROM mysql.user WHERE user='probe'"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("after restart: %q, %v", out, err)
	}

	// Start / Kill of an arbitrary daemon, and the PID namespace.
	if err := client.Start(ctx, "sleeper", "sleep", "300"); err != nil {
		t.Fatal(err)
	}
	if !client.Running(ctx, "sleeper") {
		t.Fatal("sleeper not running")
	}
	if err := client.Kill("sleeper"); err != nil {
		t.Fatal(err)
	}
	if client.Running(ctx, "sleeper") {
		t.Error("sleeper survives Kill")
	}
	if out, err := client.Sh(ctx, "cat /proc/1/cmdline | tr '\\0' ' '"); err != nil || !strings.HasPrefix(out, "perl ") {
		t.Errorf("PID 1 of the host is %q, %v; want the bed's init", out, err)
	}

	// LinkDown cuts the host off the bridge; LinkUp restores it.
	if err := client.LinkDown(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", client.Addr+":22", time.Second); err == nil {
		c.Close()
		t.Error("client's sshd reachable across its downed link")
	}
	if out, err := client.ExecInput(ctx, []byte("SELECT 1"), "mariadb", "-h", db.Addr, "-u", "probe", "-pprobe-pw", "--connect-timeout=1"); err == nil {
		t.Errorf("client reaches db across its downed link: %s", out)
	}
	if err := client.LinkUp(); err != nil {
		t.Fatal(err)
	}
	if err := waitTCP(ctx, client.Addr+":22"); err != nil {
		t.Error(err)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not),
// waiting up to wait for it to go.
func alive(pid int, wait time.Duration) bool {
	for deadline := time.Now().Add(wait); ; {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		if i := strings.LastIndexByte(string(data), ')'); i > 0 && strings.HasPrefix(string(data[i:]), ") Z") {
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leftovers lists what of bed id (folder dir) still exists on the machine,
// giving processes up to wait to go.
func leftovers(t *testing.T, id int, dir string, pids []int, wait time.Duration) []string {
	t.Helper()
	var out []string
	nss, _ := netnsByID(context.Background())
	for _, n := range nss[id] {
		out = append(out, "netns "+n)
	}
	ents, _ := os.ReadDir("/sys/class/net")
	for _, e := range ents {
		if n := e.Name(); n == fmt.Sprintf("ghbr%d", id) || strings.HasPrefix(n, fmt.Sprintf("gh%dv", id)) {
			out = append(out, "link "+n)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		out = append(out, "folder "+dir)
	}
	for _, pid := range pids {
		if alive(pid, wait) {
			out = append(out, fmt.Sprintf("process %d", pid))
		}
	}
	// No mount namespace anywhere still mounts the bed's overlays.
	procs, _ := filepath.Glob("/proc/[0-9]*/mountinfo")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), dir+"/") {
			out = append(out, "mount in "+p)
			break
		}
	}
	return out
}

func TestDownAndCrashRecovery(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	b, err := Up(ctx, Options{Hosts: []string{"one", "two"}})
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{b.MustHost("one").PID, b.MustHost("two").PID}
	if err := b.MustHost("one").Start(ctx, "sleeper", "sleep", "300"); err != nil {
		t.Fatal(err)
	}
	// A bed in use cannot be claimed by someone else.
	if b2, err := Up(ctx, Options{ID: b.ID, Hosts: []string{"x"}}); err == nil {
		b2.Down()
		t.Fatalf("Up claimed bed %d while in use", b.ID)
	}
	if err := b.Down(); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, b.ID, b.Dir, pids, 2*time.Second); len(l) > 0 {
		t.Errorf("after Down: %v", l)
	}

	// A crash: the bed's owner goes away without tear-down (its lock is released).
	c, err := Up(ctx, Options{Hosts: []string{"crash", "crash2"}})
	if err != nil {
		t.Fatal(err)
	}
	pids = []int{c.MustHost("crash").PID, c.MustHost("crash2").PID}
	if err := c.MustHost("crash").Start(ctx, "sleeper", "sleep", "300"); err != nil {
		t.Fatal(err)
	}
	unlock(c.lock) // what the kernel does when the process dies
	if !InUse(c.ID) {
		if l := leftovers(t, c.ID, c.Dir, pids, 0); len(l) == 0 {
			t.Fatal("abandoned bed left nothing to clean up: the test proves nothing")
		}
	}
	d, err := Up(ctx, Options{ID: c.ID, Hosts: []string{"fresh"}})
	if err != nil {
		t.Fatalf("Up over a crashed bed: %v", err)
	}
	for _, pid := range pids {
		if alive(pid, 2*time.Second) {
			t.Errorf("crashed bed's process %d survives the next Up", pid)
		}
	}
	for _, h := range c.Hosts() {
		if _, err := os.Stat(filepath.Join(netnsDir, h.Netns)); err == nil {
			t.Errorf("crashed bed's netns %s survives the next Up", h.Netns)
		}
		if _, err := os.Stat(h.Dir); err == nil {
			t.Errorf("crashed bed's folder %s survives the next Up", h.Dir)
		}
		if linkExists(h.Veth) && h.Index > 1 {
			t.Errorf("crashed bed's veth %s survives the next Up", h.Veth)
		}
	}
	if err := d.Down(); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, d.ID, d.Dir, []int{d.MustHost("fresh").PID}, 2*time.Second); len(l) > 0 {
		t.Errorf("after Down: %v", l)
	}
}

func TestInventoryBlocks(t *testing.T) {
	b := &Bed{ID: 7, Dir: "/tmp/gridha-testbed/7", KnownHostsFile: "/tmp/gridha-testbed/7/known_hosts", ClientKeyFile: "/tmp/gridha-testbed/7/client_key"}
	b.hosts = []*Host{b.newHost("state1", 1), b.newHost("rb1", 2)}
	got := b.HostsYAML(map[string][]string{"rb1": {"rb-node", "bdii-client"}})
	want := `hosts:
  state1:
    address: 198.18.7.11
    hostname: state1.testbed.gridha
  rb1:
    address: 198.18.7.12
    hostname: rb1.testbed.gridha
    roles: [rb-node, bdii-client]
`
	if got != want {
		t.Errorf("HostsYAML:\n%s\nwant:\n%s", got, want)
	}
	path := b.WriteInventory(t, got)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "defaults:\n  user: root\n  identity_file: /tmp/gridha-testbed/7/client_key\n  known_hosts: /tmp/gridha-testbed/7/known_hosts\nhosts:\n") {
		t.Errorf("inventory:\n%s", data)
	}
}

func TestDownAfterNetnsLost(t *testing.T) {
	Require(t)
	ctx := context.Background()
	c, err := Up(ctx, Options{Hosts: []string{"lost"}})
	if err != nil {
		t.Fatal(err)
	}
	h := c.MustHost("lost")
	if !isHostInit(h.PID, h.Dir) {
		t.Fatal("isHostInit false for a live host")
	}
	// lose the netns file: ip netns del (the processes keep the namespace alive)
	if _, err := run(ctx, "ip", "netns", "del", h.Netns); err != nil {
		t.Fatal(err)
	}
	if err := c.Down(); err != nil {
		t.Fatal(err)
	}
	if alive(h.PID, 2*time.Second) {
		t.Errorf("init %d survives Down after its netns file was lost", h.PID)
	}
}

// A test process killed with SIGKILL (no Cleanup runs): the next Up of its
// bed ID cleans what it left.
func TestKilledOwner(t *testing.T) {
	if os.Getenv("GRIDHA_TESTBED_KILLED_OWNER") == "1" {
		b, err := Up(context.Background(), Options{Hosts: []string{"victim"}})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		if err := b.MustHost("victim").Start(context.Background(), "sleeper", "sleep", "300"); err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Printf("BED %d %d\n", b.ID, b.MustHost("victim").PID)
		os.Stdout.Sync()
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKilledOwner$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GRIDHA_TESTBED_KILLED_OWNER=1")
	out, _ := cmd.Output() // killed: an error is expected
	var id, pid int
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(line, "BED %d %d", &id, &pid); err == nil {
			break
		}
	}
	if id == 0 {
		t.Fatalf("child did not bring a bed up:\n%s", out)
	}
	if InUse(id) {
		t.Fatalf("bed %d still held after its owner was killed", id)
	}
	if !alive(pid, 0) {
		t.Fatalf("the killed owner's host init %d is gone already: the test proves nothing", pid)
	}
	d, err := Up(ctx, Options{ID: id, Hosts: []string{"after"}})
	if err != nil {
		t.Fatalf("Up over the killed owner's bed: %v", err)
	}
	defer d.Down()
	if alive(pid, 2*time.Second) {
		t.Errorf("the killed owner's host init %d survives the next Up", pid)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, fmt.Sprintf("gh%d-victim", id))); err == nil {
		t.Error("the killed owner's netns survives the next Up")
	}
	if _, err := os.Stat(filepath.Join(d.Dir, "victim")); err == nil {
		t.Error("the killed owner's host folder survives the next Up")
	}
}
