package testbed

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// VolatilePaths are left out of every Snapshot: files the test bed's own
// daemons and logins change (the MariaDB datadir, the test bed's daemon logs,
// the login records sshd keeps).
func VolatilePaths() []string {
	return []string{
		"/var/lib/mysql",
		"/var/log/testbed-",
		"/var/log/wtmp",
		"/var/log/btmp",
		"/var/log/lastlog",
	}
}

// Snapshot digests everything the host has written: each path in its overlay
// upper dirs (/etc, /var, ...) and in its /root, mapped to a digest of its
// type, mode, owner and content (or link target); deletions show as
// "whiteout". Left out: VolatilePaths and the excludes given, each a path
// (itself and everything under it) or, ending in "-", a name prefix
// ("/var/log/testbed-"). Compare two snapshots with DiffSnapshots to prove a
// run wrote nothing.
func (h *Host) Snapshot(exclude ...string) (map[string]string, error) {
	exclude = append(exclude, VolatilePaths()...)
	out := map[string]string{}
	roots := map[string]string{"/root": h.RootDir(), "/export": h.ExportDir()}
	for _, l := range Layers() {
		roots["/"+l] = filepath.Join(h.Upper, l)
	}
	for mount, dir := range roots {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			hp := mount
			if rel != "." {
				hp = filepath.Join(mount, rel)
			}
			if excluded(hp, exclude) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if rel == "." {
				return nil // the mount point itself
			}
			dg, err := digest(p)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) { // removed while we walked
					return nil
				}
				return fmt.Errorf("%s: snapshot %s: %w", h.Name, hp, err)
			}
			out[hp] = dg
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func excluded(p string, exclude []string) bool {
	for _, e := range exclude {
		if e == "" {
			continue
		}
		if d := strings.TrimSuffix(e, "/"); p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
		if strings.HasSuffix(e, "-") && strings.HasPrefix(p, e) {
			return true
		}
	}
	return false
}

func digest(p string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return "", err
	}
	owner := fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	mode := st.Mode & 0o7777
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		defer f.Close()
		hs := sha256.New()
		if _, err := io.Copy(hs, f); err != nil {
			return "", err
		}
		return fmt.Sprintf("file %04o %s %s", mode, owner, hex.EncodeToString(hs.Sum(nil))), nil
	case syscall.S_IFDIR:
		opaque := ""
		buf := make([]byte, 8)
		if n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf); err == nil && string(buf[:n]) == "y" {
			opaque = " opaque"
		}
		return fmt.Sprintf("dir %04o %s%s", mode, owner, opaque), nil
	case syscall.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("symlink %s -> %s", owner, target), nil
	case syscall.S_IFCHR:
		if st.Rdev == 0 {
			return "whiteout", nil
		}
		return fmt.Sprintf("chardev %04o %s %d", mode, owner, st.Rdev), nil
	default:
		return fmt.Sprintf("other %o %s", st.Mode, owner), nil
	}
}

// DiffSnapshots names what differs between snapshots a (before) and b
// (after), sorted by path: "added /p (digest)", "removed /p", "changed /p
// (old -> new)". Empty when they are equal.
func DiffSnapshots(a, b map[string]string) []string {
	var out []string
	for p, da := range a {
		db, ok := b[p]
		switch {
		case !ok:
			out = append(out, "removed "+p)
		case da != db:
			out = append(out, fmt.Sprintf("changed %s (%s -> %s)", p, da, db))
		}
	}
	for p, db := range b {
		if _, ok := a[p]; !ok {
			out = append(out, fmt.Sprintf("added %s (%s)", p, db))
		}
	}
	sort.Slice(out, func(i, j int) bool { return pathOf(out[i]) < pathOf(out[j]) })
	return out
}

func pathOf(line string) string {
	_, rest, _ := strings.Cut(line, " ")
	p, _, _ := strings.Cut(rest, " ")
	return p
}
