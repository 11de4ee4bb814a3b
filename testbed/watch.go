package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WatchEnv turns a test binary into the watcher of Host.StartWatcher: call
// RunWatcherIfAsked first thing in the test package's TestMain.
const WatchEnv = "GRIDHA_TESTBED_WATCH"

// watcherBin is where StartWatcher puts the test binary in the host.
const watcherBin = "/usr/local/bin/gridha-testbed-watch"

// WatchReport is what the watcher saw: inotify events, files it could open
// (and how often it was refused), and every byte it read from them, both
// when it opened them and at the end (a descriptor opened while a file was
// readable stays usable after a chmod).
type WatchReport struct {
	Events int
	Opened int
	Denied int
	Reads  []WatchRead
}

// WatchRead is the content of one opened file at one moment.
type WatchRead struct {
	Path string
	Data []byte
}

// Contains reports whether any read held s.
func (r WatchReport) Contains(s string) bool {
	for _, rd := range r.Reads {
		if strings.Contains(string(rd.Data), s) {
			return true
		}
	}
	return false
}

// Watcher is an unprivileged user (nobody) on a host who opens every file
// created in some folders the moment inotify reports it.
type Watcher struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// StartWatcher copies the running test binary into h and starts it as
// nobody at nice -20, watching dirs (and folders created in them). It
// returns once the watches are in place. The test package's TestMain must
// call RunWatcherIfAsked.
func (h *Host) StartWatcher(ctx context.Context, dirs ...string) (*Watcher, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if err := h.CopyIn(exe, watcherBin); err != nil {
		return nil, err
	}
	cmd := h.command(ctx, "nice", "-n", "-20", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		"env", WatchEnv+"="+strings.Join(dirs, ":"), watcherBin)
	w := &Watcher{cmd: cmd}
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: watcher: %w", h.Name, err)
	}
	w.out = bufio.NewReader(stdout)
	line, err := w.out.ReadString('\n')
	if err != nil || line != "READY\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s: watcher did not start: %q %v", h.Name, line, err)
	}
	return w, nil
}

// Stop ends the watcher and returns what it saw.
func (w *Watcher) Stop() (WatchReport, error) {
	var rep WatchReport
	w.stdin.Close()
	err := json.NewDecoder(w.out).Decode(&rep)
	if werr := w.cmd.Wait(); err == nil {
		err = werr
	}
	return rep, err
}

// RunWatcherIfAsked runs the watcher and exits when WatchEnv is set.
func RunWatcherIfAsked() {
	if v := os.Getenv(WatchEnv); v != "" {
		os.Exit(runWatcher(strings.Split(v, ":")))
	}
}

// maxWatchFDs bounds the descriptors the watcher keeps open.
const maxWatchFDs = 4000

func runWatcher(dirs []string) int {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		fmt.Fprintln(os.Stderr, "watcher:", err)
		return 1
	}
	const mask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE
	var mu sync.Mutex
	wds := map[int]string{}
	for _, d := range dirs {
		wd, err := unix.InotifyAddWatch(fd, d, mask)
		if err != nil {
			fmt.Fprintf(os.Stderr, "watcher: %s: %v\n", d, err)
			return 1
		}
		wds[wd] = d
	}
	var rep WatchReport
	type opened struct {
		path string
		f    *os.File
	}
	var files []opened
	read := func(path string, f *os.File) {
		b := make([]byte, 1<<20)
		n, _ := f.ReadAt(b, 0)
		if n > 0 {
			rep.Reads = append(rep.Reads, WatchRead{Path: path, Data: b[:n]})
		}
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil || n <= 0 {
				return
			}
			mu.Lock()
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
				off += unix.SizeofInotifyEvent + int(ev.Len)
				dir, ok := wds[int(ev.Wd)]
				if !ok || name == "" {
					continue
				}
				rep.Events++
				p := filepath.Join(dir, name)
				if ev.Mask&unix.IN_ISDIR != 0 {
					// A folder made in a watched one (a private temporary
					// folder): watch it too while it may still be open.
					if wd, err := unix.InotifyAddWatch(fd, p, mask); err == nil {
						wds[wd] = p
					} else {
						rep.Denied++
					}
					continue
				}
				if len(files) >= maxWatchFDs {
					continue
				}
				f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
				if err != nil {
					if os.IsPermission(err) {
						rep.Denied++
					}
					continue
				}
				rep.Opened++
				files = append(files, opened{p, f})
				read(p, f)
			}
			mu.Unlock()
		}
	}()
	fmt.Println("READY")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes stdin
	mu.Lock()
	for _, o := range files {
		read(o.path, o.f)
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 1
	}
	return 0
}
