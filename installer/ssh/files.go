package sshx

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/pkg/sftp"

	"github.com/gridha/gridha/installer"
)

// errClosed is returned by operations on a closed Conn.
var errClosed = errors.New("connection closed")

// exitNotExist is the exit code the shell ReadFile uses for a missing file.
const exitNotExist = 44

// shellFileOps reports whether files go through shell commands (sudo, or
// a server without SFTP) rather than SFTP (which runs as the login user).
func (c *Conn) shellFileOps() bool { return c.shellFiles || c.become() || c.noSFTP.Load() }

// errNoSFTP: the server refused the sftp subsystem.
var errNoSFTP = errors.New("the server has no sftp subsystem")

// sftpClient opens the host's SFTP client on first use (one session).
func (c *Conn) sftpClient(ctx context.Context) (*sftp.Client, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	select {
	case <-c.done:
		return nil, errClosed
	default:
	}
	if c.sftp != nil {
		return c.sftp, nil
	}
	c.sessions.Add(1) // the sftp subsystem runs in a session
	s, err := await(ctx, func() (*sftp.Client, error) { return sftp.NewClient(c.client) },
		func(s *sftp.Client) { s.Close() })
	if err != nil {
		if strings.Contains(err.Error(), "subsystem request failed") {
			// Hardened servers drop the Subsystem line: fall back to
			// shell commands for this host from now on.
			c.noSFTP.Store(true)
			c.dialer.logf("%s: %v; files go through shell commands", c.host, errNoSFTP)
			return nil, errNoSFTP
		}
		return nil, fmt.Errorf("sftp: %w", err)
	}
	c.sftp = s
	return s, nil
}

// ReadFile reads a whole file. A missing file gives an error wrapping
// fs.ErrNotExist.
func (c *Conn) ReadFile(ctx context.Context, p string) ([]byte, error) {
	var b []byte
	var err error
	if !c.shellFileOps() {
		b, err = c.readSFTP(ctx, p)
	}
	if c.shellFileOps() {
		b, err = c.readShell(ctx, p)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", c.host, p, c.closedErr(err))
	}
	return b, nil
}

func (c *Conn) readSFTP(ctx context.Context, p string) ([]byte, error) {
	s, err := c.sftpClient(ctx)
	if err != nil {
		return nil, err
	}
	return await(ctx, func() ([]byte, error) {
		f, err := s.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var buf bytes.Buffer
		if _, err := f.WriteTo(&buf); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}, nil)
}

func (c *Conn) readShell(ctx context.Context, p string) ([]byte, error) {
	q := installer.ShellQuote(p)
	script := fmt.Sprintf("if [ ! -e %s ]; then exit %d; fi; exec cat -- %s", q, exitNotExist, q)
	res, err := c.run(ctx, script, nil, nil, false)
	if err != nil {
		return nil, err
	}
	if res.ExitCode == exitNotExist {
		return nil, fs.ErrNotExist
	}
	if err := res.Err("cat"); err != nil {
		return nil, err
	}
	return res.Stdout, nil
}

// WriteFile writes p so that no reader ever sees content the final mode
// and owner would not let it read: the new file gets its owner/group (when
// given; otherwise those of the file it replaces, if any) and mode before
// its first byte, in a place no other user can reach (over SFTP a private
// 0700 folder beside p; through the shell mktemp's 0600 file), and is then
// renamed over p: readers see the old or the new content, never a mix.
// Both transports follow these steps in this order; a secret is never
// readable by a user who could not read the final file, even for an
// instant (a file opened during such a window would stay readable).
func (c *Conn) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner, group string) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("%s: write %s: path is not absolute", c.host, p)
	}
	mode = normalizeMode(mode)
	var err error
	if !c.shellFileOps() {
		err = c.writeSFTP(ctx, p, data, mode, owner, group)
	}
	if c.shellFileOps() { // also when SFTP just turned out missing
		err = c.writeShell(ctx, p, data, mode, owner, group)
	}
	if err != nil {
		return fmt.Errorf("%s: write %s: %w", c.host, p, c.closedErr(err))
	}
	return nil
}

// normalizeMode accepts set-id and sticky bits both as Go's fs.ModeSetuid
// etc. and as raw octal (0o4755), and returns them as Go's.
func normalizeMode(m fs.FileMode) fs.FileMode {
	return m&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) | installer.UnixFileMode(uint32(m)&0o7000)
}

func (c *Conn) writeShell(ctx context.Context, p string, data []byte, mode fs.FileMode, owner, group string) error {
	dir, base := path.Split(p)
	q := installer.ShellQuote
	var b strings.Builder
	b.WriteString("set -e\numask 077\n")
	fmt.Fprintf(&b, "p=%s\n", q(p))
	// mktemp creates the file 0600 for the login user (root under sudo):
	// nobody else can open it while owner and mode are being set.
	fmt.Fprintf(&b, "t=$(mktemp %s)\n", q(path.Join(dir, "."+base+".gridha-XXXXXX")))
	b.WriteString("trap 'rm -f -- \"$t\"' EXIT\n")
	// Opened for writing first: a final mode without the owner's write
	// bit (0400) must not stop a login user that is not root.
	b.WriteString("exec 3>\"$t\"\n")
	if owner == "" || group == "" {
		b.WriteString("if [ -e \"$p\" ]; then chown --reference=\"$p\" -- \"$t\"; fi\n")
	}
	switch {
	case owner != "" && group != "":
		fmt.Fprintf(&b, "chown %s -- \"$t\"\n", q(owner+":"+group))
	case owner != "":
		fmt.Fprintf(&b, "chown %s -- \"$t\"\n", q(owner))
	case group != "":
		fmt.Fprintf(&b, "chgrp %s -- \"$t\"\n", q(group))
	}
	// Final owner and mode before the first byte (chown before chmod:
	// chown clears set-id bits).
	fmt.Fprintf(&b, "chmod %s -- \"$t\"\n", installer.OctalMode(mode))
	b.WriteString("cat >&3\nexec 3>&-\n")
	if mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		// A write by a user without CAP_FSETID clears set-id bits.
		fmt.Fprintf(&b, "chmod %s -- \"$t\"\n", installer.OctalMode(mode))
	}
	b.WriteString("mv -f -- \"$t\" \"$p\"\ntrap - EXIT\n")
	res, err := c.run(ctx, b.String(), bytes.NewReader(data), nil, true)
	if err != nil {
		return err
	}
	return res.Err("write")
}

func (c *Conn) writeSFTP(ctx context.Context, p string, data []byte, mode fs.FileMode, owner, group string) error {
	s, err := c.sftpClient(ctx)
	if err != nil {
		return err
	}
	uid, gid := -1, -1
	if owner != "" {
		if uid, err = c.lookupID(ctx, s, "passwd", owner); err != nil {
			return err
		}
	}
	if group != "" {
		if gid, err = c.lookupID(ctx, s, "group", group); err != nil {
			return err
		}
	}
	_, err = await(ctx, func() (struct{}, error) {
		return struct{}{}, writeSFTP(ctx, s, p, data, mode, uid, gid)
	}, nil)
	return err
}

// writeSFTP does the SFTP writes in order; it checks ctx before the rename
// so that an abandoned write never lands. sftp-server creates files with
// its own umask (0644) and pkg/sftp cannot pass a mode with the open, so
// the new file is created inside a fresh folder beside p that is made
// 0700 while still empty: nobody else can reach the file there (path
// lookup checks the folder's mode at every open, also with a descriptor
// or an inotify watch taken on the folder before the chmod). The file gets
// its final owner and mode before its first byte, then is renamed over p.
func writeSFTP(ctx context.Context, s *sftp.Client, p string, data []byte, mode fs.FileMode, uid, gid int) error {
	dir, base := path.Split(p)
	if uid < 0 || gid < 0 {
		if st, err := s.Stat(p); err == nil {
			if fst, ok := st.Sys().(*sftp.FileStat); ok {
				if uid < 0 {
					uid = int(fst.UID)
				}
				if gid < 0 {
					gid = int(fst.GID)
				}
			}
		}
	}
	priv := path.Join(dir, ".gridha-"+randHex(6))
	if err := s.Mkdir(priv); err != nil {
		return fmt.Errorf("mkdir %s: %w", priv, err)
	}
	defer func() { _ = s.RemoveDirectory(priv) }()
	if err := s.Chmod(priv, 0o700); err != nil {
		return fmt.Errorf("chmod 0700 %s: %w", priv, err)
	}
	tmp := path.Join(priv, base)
	f, err := s.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	landed := false
	defer func() {
		if !landed {
			f.Close()
			_ = s.Remove(tmp)
		}
	}()
	if uid >= 0 || gid >= 0 {
		if uid < 0 || gid < 0 {
			st, err := f.Stat()
			if err != nil {
				return err
			}
			fst, _ := st.Sys().(*sftp.FileStat)
			if fst == nil {
				return errors.New("sftp: no owner in stat reply")
			}
			if uid < 0 {
				uid = int(fst.UID)
			}
			if gid < 0 {
				gid = int(fst.GID)
			}
		}
		// chown before chmod: chown clears set-id bits.
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
		}
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", installer.OctalMode(mode), err)
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		// A write by a login user without CAP_FSETID clears set-id bits.
		if err := f.Chmod(mode); err != nil {
			return fmt.Errorf("chmod %s: %w", installer.OctalMode(mode), err)
		}
	}
	// fsync@openssh.com: the new content is on disk before it replaces
	// the old. Servers without the extension only lose that guarantee.
	_ = f.Sync()
	if err := f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.PosixRename(tmp, p); err != nil {
		return err
	}
	landed = true
	return nil
}

// idCache maps user and group names of a host to numbers.
type idCache struct {
	ids map[string]int // "passwd:name" / "group:name"
}

// lookupID resolves a user (db "passwd") or group (db "group") name to its
// number: numbers pass through; names are looked up in the host's
// /etc/passwd or /etc/group (read once over SFTP), then with getent (for
// LDAP/NIS accounts), one session per name not found in the files.
func (c *Conn) lookupID(ctx context.Context, s *sftp.Client, db, name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	c.idMu.Lock()
	defer c.idMu.Unlock()
	if c.ids == nil {
		c.ids = &idCache{ids: map[string]int{}}
		for _, f := range []string{"passwd", "group"} {
			b, err := await(ctx, func() ([]byte, error) {
				r, err := s.Open("/etc/" + f)
				if err != nil {
					return nil, err
				}
				defer r.Close()
				var buf bytes.Buffer
				_, err = r.WriteTo(&buf)
				return buf.Bytes(), err
			}, nil)
			if err != nil && ctx.Err() != nil {
				c.ids = nil
				return 0, err
			}
			parseIDs(c.ids.ids, f, b)
		}
	}
	key := db + ":" + name
	if n, ok := c.ids.ids[key]; ok {
		return n, nil
	}
	res, err := c.run(ctx, "getent "+db+" "+installer.ShellQuote(name), nil, nil, false)
	if err != nil {
		return 0, err
	}
	parseIDs(c.ids.ids, db, res.Stdout)
	if n, ok := c.ids.ids[key]; ok {
		return n, nil
	}
	what := "user"
	if db == "group" {
		what = "group"
	}
	return 0, fmt.Errorf("no %s %q on the host", what, name)
}

// parseIDs reads passwd/group lines (name:x:id:...) into ids.
func parseIDs(ids map[string]int, db string, b []byte) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), ":", 4)
		if len(fields) < 3 || fields[0] == "" || strings.HasPrefix(fields[0], "#") {
			continue
		}
		n, err := strconv.Atoi(fields[2])
		if err != nil {
			continue
		}
		if _, dup := ids[db+":"+fields[0]]; !dup {
			ids[db+":"+fields[0]] = n
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
