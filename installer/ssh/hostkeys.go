package sshx

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gridha/gridha/installer"
	skh "github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeyCheck is the host-key half of a ClientConfig.
type hostKeyCheck struct {
	callback   ssh.HostKeyCallback
	algorithms []string
	// err is the callback's refusal, reported instead of the handshake
	// error that wraps it.
	err error
}

// ErrHostKeyMismatch and ErrHostUnknown are wrapped by the errors of the
// host-key check, for errors.Is.
var (
	ErrHostKeyMismatch = errors.New("host key mismatch")
	ErrHostUnknown     = errors.New("host unknown")
)

// loadKnownHosts reads the files that exist; none is an empty database
// (nil).
func loadKnownHosts(files ...string) (*skh.HostKeyDB, error) {
	var present []string
	for _, f := range files {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err == nil {
			present = append(present, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
	}
	if len(present) == 0 {
		return nil, nil
	}
	db, err := skh.NewDB(present...)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return db, nil
}

// hostKeyCheck prepares the check of t's host key against t.knownHosts
// and the global known_hosts file.
// The host-key algorithms offered to the server are ordered by the keys
// known for it, so that the server presents a key we can compare.
func (d *Dialer) hostKeyCheck(t *target) (*hostKeyCheck, error) {
	db, err := loadKnownHosts(t.knownHosts, t.globalKnownHosts)
	if err != nil {
		return nil, err
	}
	hk := &hostKeyCheck{}
	if db != nil {
		hk.algorithms = db.HostKeyAlgorithms(t.addr())
	}
	hk.callback = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(db, hostname, remote, key)
		switch {
		case err == nil:
		case skh.IsHostUnknown(err) && d.opts.HostKeyPolicy == PolicyAcceptNew:
			err = d.acceptNew(t, hostname, remote, key)
		default:
			err = d.describeKeyError(t, key, err)
		}
		hk.err = err
		return err
	}
	return hk, nil
}

// check runs the known_hosts check; an absent file knows no host.
func check(db *skh.HostKeyDB, hostname string, remote net.Addr, key ssh.PublicKey) error {
	if db == nil {
		return &knownhosts.KeyError{}
	}
	return db.HostKeyCallback()(hostname, remote, key)
}

// acceptNew appends key for hostname to t.knownHosts, unless a concurrent
// dial (or another program) recorded the host meanwhile.
func (d *Dialer) acceptNew(t *target, hostname string, remote net.Addr, key ssh.PublicKey) error {
	d.khMu.Lock()
	defer d.khMu.Unlock()
	db, err := loadKnownHosts(t.knownHosts, t.globalKnownHosts)
	if err != nil {
		return err
	}
	if err := check(db, hostname, remote, key); !skh.IsHostUnknown(err) {
		return d.describeKeyError(t, key, err)
	}
	entry := knownhosts.Normalize(hostname)
	if t.hashKnown {
		entry = knownhosts.HashHostname(entry)
	}
	line := knownhosts.Line([]string{entry}, key) + "\n"
	if err := os.MkdirAll(filepath.Dir(t.knownHosts), 0o700); err != nil {
		return fmt.Errorf("accept-new: %w", err)
	}
	f, err := os.OpenFile(t.knownHosts, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("accept-new: %w", err)
	}
	// A file that does not end in a newline would glue our line to its last.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		if last, err := lastByte(t.knownHosts); err == nil && last != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("accept-new: write %s: %w", t.knownHosts, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("accept-new: write %s: %w", t.knownHosts, err)
	}
	d.logf("%s: accepted new host key %s %s for %s, added to %s", t.name, key.Type(), ssh.FingerprintSHA256(key), knownhosts.Normalize(hostname), t.knownHosts)
	return nil
}

func lastByte(file string) (byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, st.Size()-1); err != nil {
		return 0, err
	}
	return b[0], nil
}

// describeKeyError turns a knownhosts error into a message an admin can act
// on: the presented key's fingerprint, the known_hosts file and line, and
// the command that fixes it.
func (d *Dialer) describeKeyError(t *target, key ssh.PublicKey, err error) error {
	if err == nil {
		return nil
	}
	entry := knownhosts.Normalize(t.addr())
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("host key %s %s of %s is revoked in %s:%d: refusing to connect",
			key.Type(), ssh.FingerprintSHA256(key), entry, re.Revoked.Filename, re.Revoked.Line)
	case errors.As(err, &ke) && len(ke.Want) > 0:
		var known []string
		for _, w := range ke.Want {
			known = append(known, fmt.Sprintf("%s:%d (%s %s)", w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key)))
		}
		return fmt.Errorf("%w for %s: the server presented %s %s, which differs from the key recorded in %s. "+
			"Someone may be intercepting the connection, or the host was reinstalled. "+
			"If you have verified the new key out of band, remove the old entry with: ssh-keygen -f %s -R %s",
			ErrHostKeyMismatch, entry, key.Type(), ssh.FingerprintSHA256(key), strings.Join(known, ", "),
			installer.ShellQuote(ke.Want[0].Filename), installer.ShellQuote(entry))
	case errors.As(err, &ke):
		keyscan := "ssh-keyscan"
		if t.port != 22 {
			keyscan += " -p " + strconv.Itoa(t.port)
		}
		keyscan += " -t " + keyTypeName(key.Type()) + " " + installer.ShellQuote(t.hostname) + " >> " + installer.ShellQuote(t.knownHosts)
		return fmt.Errorf("%w: %s is not in %s (it presented %s %s). "+
			"Verify that fingerprint out of band, then add the host with: %s  "+
			"(or run once with --host-key-policy accept-new to record it on first connection)",
			ErrHostUnknown, entry, t.knownHosts, key.Type(), ssh.FingerprintSHA256(key), keyscan)
	default:
		return fmt.Errorf("host key of %s: %w", entry, err)
	}
}

// keyTypeName maps a key type to ssh-keyscan's -t name.
func keyTypeName(typ string) string {
	switch {
	case typ == ssh.KeyAlgoED25519:
		return "ed25519"
	case typ == ssh.KeyAlgoRSA:
		return "rsa"
	case strings.HasPrefix(typ, "ecdsa-"):
		return "ecdsa"
	}
	return typ
}
