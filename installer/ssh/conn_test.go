package sshx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestRun(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.inventory(), f.options(), "h1")
	ctx := testCtx(t)

	res, err := c.Run(ctx, "echo out; echo err >&2; exit 3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" || res.ExitCode != 3 {
		t.Errorf("got stdout %q stderr %q exit %d; want out, err, 3", res.Stdout, res.Stderr, res.ExitCode)
	}

	// The command runs under /bin/sh (dash here), whatever the login shell.
	res, err = c.Run(ctx, `readlink /proc/$$/exe`, nil)
	if err != nil {
		t.Fatal(err)
	}
	sh, _ := filepath.EvalSymlinks("/bin/sh")
	if got := strings.TrimSpace(string(res.Stdout)); got != sh {
		t.Errorf("shell is %q, want %q", got, sh)
	}

	// stdin reaches the command, bytes intact, and ends with EOF.
	in := bytes.Repeat([]byte("secret\x00\xff line\n"), 20000)
	res, err = c.Run(ctx, "cat", bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Stdout, in) || res.ExitCode != 0 {
		t.Errorf("cat returned %d bytes (exit %d), want %d", len(res.Stdout), res.ExitCode, len(in))
	}
	// No stdin: the command reads EOF at once.
	res, err = c.Run(ctx, "wc -c", nil)
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "0" {
		t.Errorf("wc -c without stdin: %q %v", res.Stdout, err)
	}
	// Every byte but NUL survives a multi-line script's trip through the
	// login shell.
	var all []byte
	for b := 1; b < 256; b++ {
		if b != '\'' {
			all = append(all, byte(b))
		}
	}
	res, err = c.Run(ctx, "printf '%s' '"+string(all)+"'", nil)
	if err != nil || !bytes.Equal(res.Stdout, all) {
		t.Errorf("bytes 1-255 in a script came back as %q (%v)", res.Stdout, err)
	}
	// A script longer than a command line may be (128 KiB) goes on stdin;
	// its commands still find stdin empty.
	long := strings.Repeat(": padding line to make the script long\n", 8000) + "echo long; wc -c"
	res, err = c.Run(ctx, long, nil)
	if err != nil || strings.Join(strings.Fields(string(res.Stdout)), " ") != "long 0" || res.ExitCode != 0 {
		t.Errorf("long script (%d bytes): %q %q exit %d, %v", len(long), res.Stdout, res.Stderr, res.ExitCode, err)
	}
	// A command killed by a signal reports 128+signal like a shell.
	res, err = c.Run(ctx, "kill -TERM $$", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 128+15 {
		t.Errorf("killed command: exit %d, want 143", res.ExitCode)
	}
}

func TestFiles(t *testing.T) {
	f := newFixture(t)
	bare := newFixture(t, noSFTP)
	for _, mode := range []string{"sftp", "shell", "no-sftp-server"} {
		t.Run(mode, func(t *testing.T) {
			var c *Conn
			switch mode {
			case "no-sftp-server": // falls back to shell commands
				c = dial(t, bare.inventory(), bare.options(), "h1")
			default:
				c = dial(t, f.inventory(), f.options(), "h1")
			}
			c.shellFiles = mode == "shell" // the become: sudo path, without sudo
			ctx := testCtx(t)
			dir := t.TempDir() // the sshd is local: its files are ours
			p := filepath.Join(dir, "hagd.conf")

			if _, err := c.ReadFile(ctx, p); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("missing file: err %v, want fs.ErrNotExist", err)
			}
			// Files whose size stat says 0 (procfs) are read to their end.
			if b, err := c.ReadFile(ctx, "/proc/mounts"); err != nil || !bytes.Contains(b, []byte(" /proc proc ")) {
				t.Errorf("ReadFile(/proc/mounts) = %.80q, %v", b, err)
			}
			if err := c.WriteFile(ctx, p, []byte("v1\n"), 0o640, "daemon", "bin"); err != nil {
				t.Fatal(err)
			}
			assertFile(t, p, "v1\n", 0o640, 1, 2)
			got, err := c.ReadFile(ctx, p)
			if err != nil || string(got) != "v1\n" {
				t.Fatalf("ReadFile = %q, %v", got, err)
			}
			before := inode(t, p)
			// Replacing without owner/group keeps those of the old file;
			// the mode is the one asked for, set-id bits included.
			data := bytes.Repeat([]byte{0, 1, 2, 255}, 100000)
			if err := c.WriteFile(ctx, p, data, 0o2750, "", ""); err != nil {
				t.Fatal(err)
			}
			assertFile(t, p, string(data), 0o750|fs.ModeSetgid, 1, 2)
			if inode(t, p) == before {
				t.Error("file rewritten in place: want a new file renamed over the old")
			}
			// Numeric owner, group by name.
			if err := c.WriteFile(ctx, p, []byte("v3"), 0o600, "0", "nogroup"); err != nil {
				t.Fatal(err)
			}
			assertFile(t, p, "v3", 0o600, 0, 65534)
			// No temporary file left behind.
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("folder holds %v, want only hagd.conf", names)
			}
			// Errors name the host and the path; unknown owners are refused
			// before anything is written.
			err = c.WriteFile(ctx, p, []byte("x"), 0o644, "no-such-user-gridha", "")
			if err == nil || !strings.HasPrefix(err.Error(), "h1: write "+p) {
				t.Errorf("unknown owner: err %v", err)
			}
			assertFile(t, p, "v3", 0o600, 0, 65534)
			err = c.WriteFile(ctx, filepath.Join(dir, "nodir", "x"), []byte("x"), 0o644, "", "")
			if err == nil {
				t.Error("write into a missing folder succeeded")
			}
			if got := c.noSFTP.Load(); got != (mode == "no-sftp-server") {
				t.Errorf("fell back to shell commands: %v", got)
			}
		})
	}
}

func assertFile(t *testing.T, p, content string, mode fs.FileMode, uid, gid uint32) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Errorf("%s: content %.40q, want %.40q", p, b, content)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != mode {
		t.Errorf("%s: mode %v, want %v", p, st.Mode(), mode)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if sys.Uid != uid || sys.Gid != gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", p, sys.Uid, sys.Gid, uid, gid)
	}
}

func inode(t *testing.T, p string) uint64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// echoServer answers each line with "echo: " + line.
func echoServer(t *testing.T, l net.Listener) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := io.WriteString(c, "echo: "+sc.Text()+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
}

func TestDial(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.inventory(), f.options(), "h1")
	ctx := testCtx(t)

	sock := filepath.Join(t.TempDir(), "mysqld.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, ul)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, tl)

	for _, tc := range []struct{ network, addr string }{{"unix", sock}, {"tcp", tl.Addr().String()}} {
		nc, err := c.Dial(ctx, tc.network, tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(nc, "ping\n"); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(nc).ReadString('\n')
		if err != nil || line != "echo: ping\n" {
			t.Errorf("%s %s: got %q, %v", tc.network, tc.addr, line, err)
		}
		nc.Close()
	}
	if _, err := c.Dial(ctx, "unix", sock+".absent"); err == nil || !strings.HasPrefix(err.Error(), "h1: dial unix") {
		t.Errorf("dial to a missing socket: err %v", err)
	}
	if st := c.Stats(); st.Sessions != 0 || st.Connections != 1 {
		t.Errorf("stats after dials: %+v, want 1 connection, 0 sessions", st)
	}
}

// TestCancel: a cancelled Run returns ctx.Err() at once and the remote
// command is killed.
func TestCancel(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.inventory(), f.options(), "h1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, "sleep 31.25", nil)
		done <- err
	}()
	if !waitFor(func() bool { return len(findProcs("sleep", "31.25")) > 0 }) {
		t.Fatal("remote sleep did not start")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: err %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !waitFor(func() bool { return len(findProcs("sleep", "31.25")) == 0 }) {
		t.Errorf("remote sleep still running after cancel: pids %v", findProcs("sleep", "31.25"))
	}
	// The connection still serves.
	res, err := c.Run(context.Background(), "echo ok", nil)
	if err != nil || string(res.Stdout) != "ok\n" {
		t.Errorf("Run after a cancelled Run: %q %v", res.Stdout, err)
	}
	// An already cancelled context opens nothing.
	before := c.Stats().Sessions
	if _, err := c.Run(ctx, "true", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a done ctx: %v", err)
	}
	if c.Stats().Sessions != before {
		t.Error("Run with a done ctx opened a session")
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(cond func() bool) bool {
	for i := 0; i < 200; i++ {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// findProcs lists local pids whose argv is exactly argv.
func findProcs(argv ...string) []string {
	want := strings.Join(argv, "\x00") + "\x00"
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && string(b) == want {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

func TestStats(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.inventory(), f.options(), "h1")
	ctx := testCtx(t)
	p := filepath.Join(t.TempDir(), "f")
	for i := 0; i < 5; i++ {
		if _, err := c.Run(ctx, "true", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteFile(ctx, p, []byte("x"), 0o644, "", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadFile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// 5 runs + one SFTP subsystem for all file operations.
	if st := c.Stats(); st.Connections != 1 || st.Sessions != 6 {
		t.Errorf("stats %+v, want 1 connection and 6 sessions", st)
	}
	if c.Host() != "h1" {
		t.Errorf("Host() = %q", c.Host())
	}
	c.Close()
	if _, err := c.Run(ctx, "true", nil); err == nil {
		t.Error("Run on a closed Conn succeeded")
	}
	if _, err := c.ReadFile(ctx, p); !errors.Is(err, errClosed) {
		t.Errorf("ReadFile on a closed Conn: %v", err)
	}
}

func BenchmarkRun(b *testing.B) {
	f := newFixture(b)
	c := dial(b, f.inventory(), f.options(), "h1")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := c.Run(ctx, "true", nil)
		if err != nil || res.ExitCode != 0 {
			b.Fatal(res, err)
		}
	}
}

// TestConcurrentRuns: more concurrent Runs than sshd's MaxSessions (10)
// all succeed on one connection.
func TestConcurrentRuns(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.inventory(), f.options(), "h1")
	ctx := testCtx(t)
	const n = 25
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			want := strconv.Itoa(i)
			res, err := c.Run(ctx, "sleep 0.2; echo "+want, nil)
			if err == nil && strings.TrimSpace(string(res.Stdout)) != want {
				err = fmt.Errorf("run %d printed %q", i, res.Stdout)
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if st := c.Stats(); st.Connections != 1 || st.Sessions != n {
		t.Errorf("stats %+v, want 1 connection, %d sessions", st, n)
	}
}

func BenchmarkWriteFile(b *testing.B) {
	f := newFixture(b)
	c := dial(b, f.inventory(), f.options(), "h1")
	ctx := context.Background()
	p := filepath.Join(b.TempDir(), "hagd.conf")
	data := bytes.Repeat([]byte("key=value\n"), 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.WriteFile(ctx, p, data, 0o640, "root", "daemon"); err != nil {
			b.Fatal(err)
		}
	}
}
