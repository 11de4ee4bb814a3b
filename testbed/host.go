package testbed

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Layers lists the folders each host has as private copy-on-write overlays
// over this machine's own (writes land in Host.Upper/<name>). /root is a
// private folder (Host.Dir/root), /run and /tmp are tmpfs. initScript mounts
// them from this list.
func Layers() []string { return []string{"etc", "var", "opt", "srv", "mnt", "home", "usr"} }

// Host is one test-bed host.
type Host struct {
	Name     string // e.g. "rb1"
	Addr     string // 198.18.N.(10+Index)
	Hostname string // "rb1.testbed.gridha"
	Netns    string // network namespace: "ghN-rb1" (ip netns exec works)
	Veth     string // this host's veth end on the bridge: "ghNvI"
	PID      int    // the host's init process (PID 1 inside): nsenter -t PID -a
	Dir      string // the host's folder in the bed's folder
	Upper    string // overlay upper dirs: Upper/etc, Upper/var, ...
	HostKey  string // the host's SSH public key ("ssh-ed25519 AAAA...")
	Index    int    // 1-based position in the bed

	bed *Bed
}

// RootDir is the host folder mounted on the host's /root.
func (h *Host) RootDir() string { return filepath.Join(h.Dir, "root") }

// ExportDir is the host's private /export (bound like /root): the state
// server's default export is /export/rb-state, and gridha makes the
// export's parent root-only; with the machine's /export shared, two beds
// (or a bed and the machine) would share one export and its mode.
func (h *Host) ExportDir() string { return filepath.Join(h.Dir, "export") }

// up brings the host up; plug says whether to make its network namespace
// and veth too (Bed.up does that for all hosts in one go).
func (h *Host) up(ctx context.Context, plug bool) error {
	if err := h.prepare(); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	if plug {
		if _, err := runBatch(ctx, false, h.bed.netLines(h)...); err != nil {
			return err
		}
	}
	if err := h.startInit(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitTCP(wctx, h.Addr+":22"); err != nil {
		log, _ := h.ReadFile("/var/log/testbed-sshd.log")
		return fmt.Errorf("sshd: %w\n%s", err, log)
	}
	return nil
}

// initScript runs as PID 1 of the host's namespaces: it configures the
// inside of the network namespace, mounts the host's private file system
// (Host.Dir/fstab, written by prepare), starts sshd, says READY and then
// reaps orphans forever. As few processes as possible: Up's time is mostly
// process start-ups on a busy machine.
const initScript = `set -eu
B=$1
printf 'addr add %s dev eth0\nlink set lo up\nlink set eth0 up\n' "$3" | ip -batch -
# Drop the copies of /run/netns/* this namespace inherited: they would keep
# other beds' network namespaces alive.
umount -l /run/netns 2>/dev/null || true
mount -a -T "$B/fstab"
mkdir -p /run/sshd /run/testbed /run/mysqld
mkdir -m 1777 /run/lock
echo "$2" >/proc/sys/kernel/hostname
/usr/sbin/sshd -E /var/log/testbed-sshd.log -o PidFile=/run/sshd.pid
echo READY
exec perl -e 'while (1) { sleep 1 if waitpid(-1, 0) < 0 }'
`

// fstab is what the host's init mounts, in order: the overlays, /root, and
// tmpfs on /run and /tmp (last: the bed's folder is under this machine's /tmp).
func (h *Host) fstab() string {
	var sb strings.Builder
	for _, l := range Layers() {
		fmt.Fprintf(&sb, "testbed-%s /%s overlay lowerdir=/%s,upperdir=%s,workdir=%s 0 0\n",
			l, l, l, filepath.Join(h.Upper, l), filepath.Join(h.Dir, "work", l))
	}
	fmt.Fprintf(&sb, "%s /root none bind 0 0\n", h.RootDir())
	fmt.Fprintf(&sb, "%s /export none bind 0 0\n", h.ExportDir())
	sb.WriteString("testbed-run /run tmpfs mode=0755,size=256m 0 0\n")
	sb.WriteString("testbed-tmp /tmp tmpfs mode=1777,size=1g 0 0\n")
	return sb.String()
}

func (h *Host) startInit(ctx context.Context) error {
	logPath := filepath.Join(h.Dir, "init.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", h.Netns,
		"unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--mount-proc", "--propagation", "private",
		"sh", "-c", initScript, "testbed-init", h.Dir, h.Hostname, h.Addr+"/24")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = hostEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start init: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	parent := cmd.Process.Pid
	delay := 2 * time.Millisecond
	for {
		data, _ := os.ReadFile(logPath)
		if bytes.Contains(data, []byte("READY\n")) {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("init exited: %s", bytes.TrimSpace(data))
		case <-ctx.Done():
			return fmt.Errorf("init not ready: %w: %s", ctx.Err(), bytes.TrimSpace(data))
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
	pid := childOf(parent)
	if pid == 0 {
		return fmt.Errorf("init: no child of unshare (pid %d)", parent)
	}
	h.PID = pid
	return nil
}

// childOf finds a child process of parent.
func childOf(parent int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(parent) {
			return pid
		}
	}
	return 0
}

// prepare fills the host's folder: overlay upper and work dirs pre-seeded
// with the host's own files (host key, sshd_config, hostname, hosts), and /root.
func (h *Host) prepare() error {
	for _, l := range Layers() {
		for _, d := range []string{filepath.Join(h.Upper, l), filepath.Join(h.Dir, "work", l)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		// The upper root dir's owner and mode are what the host sees.
		if err := copyAttrs("/"+l, filepath.Join(h.Upper, l)); err != nil {
			return err
		}
	}
	if err := h.prepareRoot(); err != nil {
		return err
	}
	up := func(p string) string { return filepath.Join(h.Upper, p) }
	if err := mkdirLike("/etc/ssh", up("etc/ssh")); err != nil {
		return err
	}
	// The machine's own host keys must not be visible (nor used) in the host.
	old, _ := filepath.Glob("/etc/ssh/ssh_host_*")
	for _, p := range old {
		if err := unix.Mknod(up(p[1:]), unix.S_IFCHR, 0); err != nil { // overlay whiteout
			return fmt.Errorf("whiteout %s: %w", p, err)
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	keyPath := up("etc/ssh/ssh_host_ed25519_key")
	os.Remove(keyPath)
	os.Remove(keyPath + ".pub")
	if h.HostKey, err = writeKeyPair(keyPath, priv, pub, "root@"+h.Hostname); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "fstab"), []byte(h.fstab()), 0o644); err != nil {
		return err
	}
	files := map[string]string{
		"etc/ssh/sshd_config": fmt.Sprintf(sshdConfig, h.Name, h.Addr),
		"etc/hostname":        h.Hostname + "\n",
		"etc/hosts":           h.bed.hostsFile(),
	}
	for p, content := range files {
		if err := os.WriteFile(up(p), []byte(content), 0o644); err != nil {
			return err
		}
	}
	// MariaDB: a fresh, empty datadir (an opaque dir hides the machine's).
	if err := mkdirLike("/var/lib", up("var/lib")); err != nil {
		return err
	}
	if fi, err := os.Stat("/var/lib/mysql"); err == nil {
		d := up("var/lib/mysql")
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if err := os.Chown(d, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if err := unix.Setxattr(d, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("opaque %s: %w", d, err)
		}
	}
	return nil
}

const sshdConfig = `# sshd_config of gridha test-bed host %s (written by the test bed)
Port 22
ListenAddress %s
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
PrintLastLog no
UseDNS no
AuthorizedKeysFile .ssh/authorized_keys
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`

func (b *Bed) hostsFile() string {
	var sb strings.Builder
	sb.WriteString("# written by the gridha test bed\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	fmt.Fprintf(&sb, "%s\tcontroller.%s controller\n", b.Gateway, Domain)
	for _, o := range b.Hosts() {
		fmt.Fprintf(&sb, "%s\t%s %s\n", o.Addr, o.Hostname, o.Name)
	}
	return sb.String()
}

// prepareRoot makes the host's /root: /etc/skel plus the bed's client key in
// .ssh/authorized_keys. Nothing of this machine's /root.
func (h *Host) prepareRoot() error {
	// /export: empty, private; the machine only lends the mount point.
	if err := os.MkdirAll("/export", 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(h.ExportDir(), 0o755); err != nil {
		return err
	}
	root := h.RootDir()
	if err := os.MkdirAll(filepath.Join(root, ".ssh"), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(root, 0o700); err != nil {
		return err
	}
	ents, _ := os.ReadDir("/etc/skel")
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/etc/skel", e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(root, ".ssh", "authorized_keys"), []byte(h.bed.ClientPubKey+"\n"), 0o600)
}

// mkdirLike creates dir with the owner and mode of model.
func mkdirLike(model, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return copyAttrs(model, dir)
}

func copyAttrs(model, dir string) error {
	fi, err := os.Stat(model)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Chown(dir, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return os.Chmod(dir, fi.Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid))
}

// hostEnv is the environment of every command run in a host.
func hostEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "USER=root", "LOGNAME=root", "LANG=C", "TERM=dumb",
	}
}

// Command returns an unstarted command that runs argv as root inside the
// host's namespaces (set Stdin/Stdout/Stderr to stream). Killing it on
// ctx's end kills its process group.
func (h *Host) Command(ctx context.Context, argv ...string) *exec.Cmd {
	return h.command(ctx, argv...)
}

func (h *Host) command(ctx context.Context, argv ...string) *exec.Cmd {
	args := append([]string{"-t", strconv.Itoa(h.PID), "-m", "-u", "-i", "-n", "-p", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = hostEnv()
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Exec runs argv as root inside the host's namespaces (for test setup and
// assertions; gridha itself must go over SSH) and returns its combined
// output. A failure's error holds the output too.
func (h *Host) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	return h.ExecInput(ctx, nil, argv...)
}

// ExecInput is Exec with stdin (for secrets: never put them in argv).
func (h *Host) ExecInput(ctx context.Context, stdin []byte, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("%s: exec: no command", h.Name)
	}
	cmd := h.command(ctx, argv...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %s: %w\n%s", h.Name, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Sh runs a sh script in the host (see Exec) and returns its combined output.
func (h *Host) Sh(ctx context.Context, script string) (string, error) {
	out, err := h.ExecInput(ctx, nil, "sh", "-c", script)
	return string(out), err
}

// openIn opens path as the host sees it (its mounts, its root for symlinks).
func (h *Host) openIn(path string, flags int, mode uint32) (*os.File, error) {
	root, err := os.Open(fmt.Sprintf("/proc/%d/root", h.PID))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.Name, err)
	}
	defer root.Close()
	fd, err := unix.Openat2(int(root.Fd()), strings.TrimLeft(path, "/"), &unix.OpenHow{
		Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: unix.RESOLVE_IN_ROOT,
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: h.Name + ":" + path, Err: err}
	}
	return os.NewFile(uintptr(fd), h.Name+":"+path), nil
}

// ReadFile reads a file as the host sees it.
func (h *Host) ReadFile(path string) ([]byte, error) {
	f, err := h.openIn(path, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteFile writes a file in the host (root-owned, mode applied to new
// files), for test setup.
func (h *Host) WriteFile(path string, data []byte, mode fs.FileMode) error {
	f, err := h.openIn(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, uint32(mode.Perm()))
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CopyIn copies the machine's file src to dst in the host, keeping its
// permission bits (root-owned). For binaries built by a test: the test's
// /tmp is not visible inside hosts (their /tmp is their own).
func (h *Host) CopyIn(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("%s: copy in: %w", h.Name, err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("%s: copy in: %w", h.Name, err)
	}
	if err := h.WriteFile(dst, data, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("copy in %s: %w", src, err)
	}
	f, err := h.openIn(dst, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Chmod(fi.Mode().Perm())
}

var daemonNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Start runs argv as a daemon in the host: its own session, stdin from
// /dev/null, output appended to /var/log/testbed-<name>.log in the host, PID
// in /run/testbed/<name>.pid. It returns once the process runs.
func (h *Host) Start(ctx context.Context, name string, argv ...string) error {
	if !daemonNameRE.MatchString(name) || len(argv) == 0 {
		return fmt.Errorf("%s: start %q: bad name or no command", h.Name, name)
	}
	if h.Running(ctx, name) {
		return fmt.Errorf("%s: start %s: already running", h.Name, name)
	}
	pidFile := "/run/testbed/" + name + ".pid"
	script := `exec >>/var/log/testbed-` + name + `.log 2>&1 </dev/null
echo "testbed: $(date -u +%Y-%m-%dT%H:%M:%SZ) start: $*"
echo $$ >` + pidFile + `.new && mv ` + pidFile + `.new ` + pidFile + `
exec "$@"`
	args := append([]string{"setsid", "-f", "sh", "-c", script, "testbed-" + name}, argv...)
	if _, err := h.Exec(ctx, args...); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.ReadFile(pidFile); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: start %s: no pid file after 10s", h.Name, name)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: start %s: %w", h.Name, name, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Running reports whether the daemon started as name still runs.
func (h *Host) Running(ctx context.Context, name string) bool {
	if !daemonNameRE.MatchString(name) {
		return false
	}
	_, err := h.Sh(ctx, `p=$(cat /run/testbed/`+name+`.pid 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null`)
	return err == nil
}

// Stop sends SIGTERM to the daemon started as name (and its process group),
// waits up to 10 s, then SIGKILLs it. Stopping what is not running is not an
// error.
func (h *Host) Stop(name string) error { return h.signal(name, "TERM") }

// Kill SIGKILLs the daemon started as name (and its process group).
func (h *Host) Kill(name string) error { return h.signal(name, "KILL") }

func (h *Host) signal(name, sig string) error {
	if !daemonNameRE.MatchString(name) {
		return fmt.Errorf("%s: stop %q: bad name", h.Name, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script := `f=/run/testbed/` + name + `.pid
[ -f "$f" ] || exit 0
p=$(cat "$f")
[ -n "$p" ] || exit 0
kill -s ` + sig + ` -- "-$p" 2>/dev/null
kill -s ` + sig + ` "$p" 2>/dev/null || { rm -f "$f"; exit 0; }
i=0
while kill -0 "$p" 2>/dev/null; do
	i=$((i+1))
	if [ $i -eq 200 ]; then kill -s KILL -- "-$p" 2>/dev/null; kill -s KILL "$p" 2>/dev/null; fi
	if [ $i -gt 400 ]; then echo "pid $p survives SIGKILL"; exit 1; fi
	sleep 0.05
done
rm -f "$f"`
	if _, err := h.Sh(ctx, script); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// LinkDown cuts the host's cable: its veth end on the bridge goes down.
func (h *Host) LinkDown() error {
	_, err := run(context.Background(), "ip", "link", "set", h.Veth, "down")
	return err
}

// LinkUp plugs the host's cable back in.
func (h *Host) LinkUp() error {
	_, err := run(context.Background(), "ip", "link", "set", h.Veth, "up")
	return err
}

// netLines are the ip batch commands (root namespace) that make h's network
// namespace and plug it into the bridge; the host's init configures the inside.
func (b *Bed) netLines(h *Host) []string {
	return []string{
		"netns add " + h.Netns,
		fmt.Sprintf("link add %s type veth peer name eth0 netns %s", h.Veth, h.Netns),
		fmt.Sprintf("link set %s master %s up", h.Veth, b.Bridge),
	}
}

// runBatch runs ip commands in one ip process (ip -batch); with force it
// carries on after a failing line.
func runBatch(ctx context.Context, force bool, lines ...string) ([]byte, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	args := []string{"ip", "-batch", "-"}
	if force {
		args = []string{"ip", "-force", "-batch", "-"}
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ip -batch [%s]: %w: %s", strings.Join(lines, "; "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// run runs a command on this machine (root namespaces).
func run(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }

var errNoHost = errors.New("no such host")

// MustHost returns the host named name or panics (for tests).
func (b *Bed) MustHost(name string) *Host {
	h := b.Host(name)
	if h == nil {
		panic(fmt.Sprintf("testbed: bed %d: %s: %v (hosts: %v)", b.ID, name, errNoHost, names(b.Hosts())))
	}
	return h
}
