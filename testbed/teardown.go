package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const netnsDir = "/run/netns"

// netnsByID maps bed ID to the names of its network namespaces (ghN-*).
func netnsByID(ctx context.Context) (map[int][]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return map[int][]string{}, nil
		}
		return nil, err
	}
	out := map[int][]string{}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "gh") {
			continue
		}
		num, _, ok := strings.Cut(name[2:], "-")
		if !ok {
			continue
		}
		id, err := strconv.Atoi(num)
		if err != nil || id < 1 || id > MaxID {
			continue
		}
		out[id] = append(out[id], name)
	}
	return out, ctx.Err()
}

// nsInode identifies a namespace file.
type nsInode struct{ dev, ino uint64 }

func statNS(path string) (nsInode, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nsInode{}, err
	}
	return nsInode{uint64(st.Dev), st.Ino}, nil
}

// pidsInNetns lists the processes whose network namespace is one of nss.
func pidsInNetns(nss map[nsInode]bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ino, err := statNS(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			continue
		}
		if nss[ino] {
			out = append(out, pid)
		}
	}
	return out
}

// teardown removes everything bed id may have left: processes in its network
// namespaces (which ends their PID and mount namespaces, so every overlay and
// mount of the hosts goes too), the namespaces, veths, bridge, the bed's folder
// and its record. The caller holds the bed's lock. It works from what exists on
// the machine, so it also cleans after a crash.
func teardown(ctx context.Context, id int, logf func(string, ...any)) error {
	var errs []error
	nsByID, err := netnsByID(ctx)
	if err != nil {
		return err
	}
	nss := map[nsInode]bool{}
	for _, name := range nsByID[id] {
		if ino, err := statNS(filepath.Join(netnsDir, name)); err == nil {
			nss[ino] = true
		}
	}
	if len(nss) > 0 {
		if err := killAll(ctx, nss); err != nil {
			errs = append(errs, err)
		}
	}
	// Hosts whose namespace file is gone (someone ran ip netns del, or
	// unmounted /run/netns) are found by their init's PID in the record:
	// killing a PID namespace's init ends every process in it.
	if m, err := readMeta(id); err == nil {
		for _, hm := range m.Hosts {
			if hm.PID > 0 && isHostInit(hm.PID, filepath.Join(m.Dir, hm.Name)) {
				_ = syscall.Kill(hm.PID, syscall.SIGKILL)
			}
		}
	}
	// veths (deleting one end deletes its peer), the bridge, the namespaces:
	// one ip process; then check what is left.
	var lines, links []string
	if ents, err := os.ReadDir("/sys/class/net"); err == nil {
		prefix := fmt.Sprintf("gh%dv", id)
		for _, e := range ents {
			if n := e.Name(); strings.HasPrefix(n, prefix) && isDigits(n[len(prefix):]) {
				links = append(links, n)
			}
		}
	}
	if br := fmt.Sprintf("ghbr%d", id); linkExists(br) {
		links = append(links, br)
	}
	for _, n := range links {
		lines = append(lines, "link del "+n)
	}
	for _, name := range nsByID[id] {
		lines = append(lines, "netns del "+name)
	}
	out, _ := runBatch(ctx, true, lines...)
	for _, n := range links {
		if linkExists(n) {
			errs = append(errs, fmt.Errorf("link %s not deleted: %s", n, bytes.TrimSpace(out)))
		}
	}
	for _, name := range nsByID[id] {
		if _, err := os.Stat(filepath.Join(netnsDir, name)); err == nil {
			errs = append(errs, fmt.Errorf("netns %s not deleted: %s", name, bytes.TrimSpace(out)))
		}
	}
	dirs := []string{filepath.Join(BaseDir, strconv.Itoa(id))}
	if m, err := readMeta(id); err == nil && m.Dir != "" {
		dirs = append(dirs, m.Dir)
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, markerFile)); err != nil {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	if err := os.Remove(metaPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if len(nsByID[id]) > 0 {
		logf("testbed: bed %d: removed %d hosts", id, len(nsByID[id]))
	}
	return errors.Join(errs...)
}

// killAll SIGKILLs every process in the namespaces and waits (bounded) until
// none is left.
func killAll(ctx context.Context, nss map[nsInode]bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := pidsInNetns(nss)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v survive SIGKILL", pids)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func linkExists(name string) bool {
	_, err := os.Lstat("/sys/class/net/" + name)
	return err == nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isHostInit reports whether pid is the init of the host whose folder is dir:
// its mounts use dir's overlay upper dirs.
func isHostInit(pid int, dir string) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	return err == nil && bytes.Contains(data, []byte("upperdir="+filepath.Join(dir, "upper")+"/"))
}
