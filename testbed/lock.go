package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// markerFile sits in every bed folder; tear-down removes only folders that have it.
const markerFile = ".gridha-testbed"

func lockPath(id int) string { return filepath.Join(LockDir, fmt.Sprintf("%d.lock", id)) }
func metaPath(id int) string { return filepath.Join(LockDir, fmt.Sprintf("%d.json", id)) }

// claim takes the lock of bed id, or of the first free ID from start when
// id is 0.
func claim(id, start int) (int, *os.File, error) {
	if err := os.MkdirAll(LockDir, 0o755); err != nil {
		return 0, nil, fmt.Errorf("testbed: %w", err)
	}
	if id != 0 {
		if id < 1 || id > MaxID {
			return 0, nil, fmt.Errorf("testbed: bed ID %d: want 1..%d", id, MaxID)
		}
		f, err := tryLock(id)
		if err != nil {
			return 0, nil, fmt.Errorf("testbed: bed %d: %w", id, err)
		}
		return id, f, nil
	}
	for n := max(start, 1); n <= MaxID; n++ {
		f, err := tryLock(n)
		if err == nil {
			return n, f, nil
		}
		if !errors.Is(err, ErrInUse) {
			return 0, nil, fmt.Errorf("testbed: bed %d: %w", n, err)
		}
	}
	return 0, nil, fmt.Errorf("testbed: all bed IDs from %d to %d are in use or uncleanable (see gridha-testbed list)", max(start, 1), MaxID)
}

// ErrInUse says a bed is held by a running process (a test, or the
// gridha-testbed command's holder).
var ErrInUse = errors.New("in use")

func tryLock(id int) (*os.File, error) {
	f, err := os.OpenFile(lockPath(id), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrInUse
		}
		return nil, fmt.Errorf("flock %s: %w", lockPath(id), err)
	}
	return f, nil
}

func unlock(f *os.File) {
	if f != nil {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
}

// InUse reports whether bed id's lock is held by some process.
func InUse(id int) bool {
	f, err := tryLock(id)
	if err != nil {
		return errors.Is(err, ErrInUse)
	}
	unlock(f)
	return false
}

// takeOver gets the lock of a bed owned by another process: it stops the
// holder process the gridha-testbed command left (if any) and waits a
// bounded time for the lock. A bed still used by a live test is not taken.
func takeOver(ctx context.Context, id int) (*os.File, error) {
	m, _ := readMeta(id)
	wait := time.Duration(0) // a bed held by a running test is not waited for
	if m != nil && m.HolderPID > 0 && isHolder(m.HolderPID, id) {
		_ = syscall.Kill(m.HolderPID, syscall.SIGKILL)
		wait = 5 * time.Second // the lock goes when the holder is gone
	}
	deadline := time.Now().Add(wait)
	for {
		f, err := tryLock(id)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, ErrInUse) {
			return nil, err
		}
		if time.Now().After(deadline) {
			owner := 0
			if m != nil {
				owner = m.OwnerPID
			}
			return nil, fmt.Errorf("%w by a running test (pid %d); not torn down", ErrInUse, owner)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startHolder starts a detached process that inherits the bed's lock file
// (as its fd 3) and sleeps, so the bed stays claimed after this process exits.
func startHolder(lock *os.File) (int, error) {
	cmd := exec.Command("sleep", "infinity")
	cmd.ExtraFiles = []*os.File{lock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start lock holder: %w", err)
	}
	pid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	return pid, nil
}

// isHolder checks that pid is still the holder of bed id (PIDs get recycled).
func isHolder(pid, id int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.HasPrefix(data, []byte("sleep\x00infinity")) {
		return false
	}
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", pid))
	return err == nil && target == lockPath(id)
}

func readMeta(id int) (*meta, error) {
	data, err := os.ReadFile(metaPath(id))
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", metaPath(id), err)
	}
	return &m, nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Load returns bed id as recorded by the process that brought it up (for the
// gridha-testbed command). Its Down takes the bed over and tears it down.
func Load(id int) (*Bed, error) {
	m, err := readMeta(id)
	if err != nil {
		return nil, fmt.Errorf("testbed: bed %d: %w", id, err)
	}
	b := &Bed{
		ID:      id,
		Subnet:  fmt.Sprintf("198.18.%d.0/24", id),
		Gateway: fmt.Sprintf("198.18.%d.1", id),
		Bridge:  fmt.Sprintf("ghbr%d", id),
		Dir:     m.Dir,
		logf:    func(string, ...any) {},
	}
	b.KnownHostsFile = filepath.Join(b.Dir, "known_hosts")
	b.ClientKeyFile = filepath.Join(b.Dir, "client_key")
	if pub, err := os.ReadFile(b.ClientKeyFile + ".pub"); err == nil {
		b.ClientPubKey = strings.TrimSpace(string(pub))
	}
	for _, hm := range m.Hosts {
		h := b.newHost(hm.Name, hm.Index)
		h.PID = hm.PID
		if pub, err := os.ReadFile(filepath.Join(h.Dir, "upper/etc/ssh/ssh_host_ed25519_key.pub")); err == nil {
			h.HostKey = strings.TrimSpace(string(pub))
		}
		b.hosts = append(b.hosts, h)
	}
	return b, nil
}

// BedInfo describes a bed found on this machine.
type BedInfo struct {
	ID      int
	InUse   bool // lock held: a test or the command's holder uses it
	Dir     string
	Hosts   []string
	Created time.Time
	Netns   []string // namespaces named ghN-* that exist
	Bridge  bool     // ghbrN exists
}

// List describes every bed that has a record or leftovers on this machine.
func List(ctx context.Context) ([]BedInfo, error) {
	nsByID, err := netnsByID(ctx)
	if err != nil {
		return nil, err
	}
	var out []BedInfo
	for id := 1; id <= MaxID; id++ {
		_, statErr := os.Stat(metaPath(id))
		_, brErr := os.Stat("/sys/class/net/" + fmt.Sprintf("ghbr%d", id))
		if statErr != nil && brErr != nil && len(nsByID[id]) == 0 {
			continue
		}
		bi := BedInfo{ID: id, InUse: InUse(id), Netns: nsByID[id], Bridge: brErr == nil}
		if m, err := readMeta(id); err == nil {
			bi.Dir, bi.Created = m.Dir, m.Created
			for _, h := range m.Hosts {
				bi.Hosts = append(bi.Hosts, h.Name)
			}
		}
		out = append(out, bi)
	}
	return out, nil
}

// Clean tears down bed id if no process holds it (a crashed bed); with
// force, it first stops the holder left by the gridha-testbed command.
func Clean(ctx context.Context, id int, force bool) error {
	var lock *os.File
	var err error
	if force {
		lock, err = takeOver(ctx, id)
	} else {
		lock, err = tryLock(id)
	}
	if err != nil {
		return fmt.Errorf("testbed: bed %d: %w", id, err)
	}
	defer unlock(lock)
	if err := teardown(ctx, id, func(string, ...any) {}); err != nil {
		return fmt.Errorf("testbed: bed %d: %w", id, err)
	}
	return nil
}
