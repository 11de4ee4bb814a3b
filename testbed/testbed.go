// Package testbed builds throw-away Linux "hosts" for gridha's integration
// tests and demo: each host is a set of namespaces (network, mount, UTS, IPC,
// PID) with its own address on a bridge, its own hostname, private
// copy-on-write /etc, /var, /opt, /srv, /mnt, /home and /usr (overlays over
// this machine's own), a fresh /root from /etc/skel, an empty private /export,
// tmpfs /run and /tmp, its
// own SSH host key and a real OpenSSH sshd on port 22.
//
// Several beds run at once on one machine: bed N (1..250) is claimed with an
// flock'd file /run/gridha-testbed/N.lock, uses subnet 198.18.N.0/24 on bridge
// ghbrN (198.18.N.1 is the controller, i.e. this machine's root namespace) and
// host i (from 1) gets 198.18.N.(10+i). Nothing routes off the bed. A bed whose
// lock is no longer held (its process crashed) is torn down before its ID is
// reused. Everything needs root.
package testbed

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults and limits.
const (
	// BaseDir is where beds keep their files unless Options.Dir says otherwise.
	BaseDir = "/tmp/gridha-testbed"
	// LockDir holds N.lock (flock'd while bed N is in use) and N.json.
	LockDir = "/run/gridha-testbed"
	// MaxID is the highest bed ID (subnet 198.18.N.0/24, inside 198.18.0.0/15).
	MaxID = 250
	// MaxHosts per bed: addresses .11 to .199; .200-.254 are spare (service IPs).
	MaxHosts = 189
	// Domain is the DNS domain of every bed host: <name>.testbed.gridha.
	Domain = "testbed.gridha"
	// UpTimeout bounds New's bring-up.
	UpTimeout = 3 * time.Minute
)

// Options configures Up.
type Options struct {
	Hosts []string // host names: lower-case letters, digits and '-', at most 30 characters
	Dir   string   // parent of the bed's folder; default BaseDir
	ID    int      // 0: the first free ID; otherwise exactly this ID (error if in use)
	// Hold keeps the bed claimed after this process exits (for the
	// gridha-testbed command): a detached holder process keeps the lock.
	Hold bool
	// Logf, if set, receives progress lines.
	Logf func(format string, args ...any)
}

// Bed is a running test bed.
type Bed struct {
	ID             int
	Subnet         string // "198.18.N.0/24"
	Gateway        string // "198.18.N.1": the controller's address on the bridge
	Bridge         string // "ghbrN"
	Dir            string // the bed's folder
	KnownHostsFile string // every host's key, by address
	ClientKeyFile  string // private key authorized for root on every host (public key at +".pub")
	ClientPubKey   string // authorized_keys line of ClientKeyFile

	mu    sync.Mutex
	hosts []*Host
	lock  *os.File // flock'd N.lock; nil for a bed loaded by Load
	logf  func(string, ...any)
	down  bool
}

// meta is N.json: what a later process needs to use or tear down bed N.
type meta struct {
	ID        int        `json:"id"`
	Dir       string     `json:"dir"`
	OwnerPID  int        `json:"owner_pid"`
	HolderPID int        `json:"holder_pid,omitempty"`
	Created   time.Time  `json:"created"`
	Hosts     []hostMeta `json:"hosts"`
}

type hostMeta struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	PID   int    `json:"pid"`
}

var hostNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,29}$`)

// Require skips t when the test bed cannot run here (not root), or fails it
// when CI=true, where every integration test must run.
func Require(t testing.TB) {
	t.Helper()
	if err := canRun(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testbed: %v (CI=true: integration tests must run)", err)
		}
		t.Skipf("testbed: %v", err)
	}
}

func canRun() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root")
	}
	for _, p := range []string{"ip", "unshare", "nsenter", "setsid", "perl"} {
		if _, err := lookPath(p); err != nil {
			return fmt.Errorf("needs %s: %w", p, err)
		}
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		return fmt.Errorf("needs openssh-server: %w", err)
	}
	return nil
}

// New brings up a bed with the given hosts for the test and tears it down
// when the test ends. It skips the test when the bed cannot run (see Require).
func New(t testing.TB, hosts ...string) *Bed {
	t.Helper()
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), UpTimeout)
	defer cancel()
	start := time.Now()
	b, err := Up(ctx, Options{Hosts: hosts})
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Logf("testbed: bed %d up with %d hosts in %v (%s)", b.ID, len(hosts), time.Since(start).Round(time.Millisecond), b.Dir)
	t.Cleanup(func() {
		if t.Failed() {
			b.logTails(t)
		}
		if err := b.Down(); err != nil {
			t.Errorf("testbed: %v", err)
		}
	})
	return b
}

// Up brings up a bed. On error nothing is left behind.
func Up(ctx context.Context, opts Options) (*Bed, error) {
	if err := canRun(); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if len(opts.Hosts) == 0 {
		return nil, errors.New("testbed: no hosts")
	}
	if len(opts.Hosts) > MaxHosts {
		return nil, fmt.Errorf("testbed: %d hosts, at most %d", len(opts.Hosts), MaxHosts)
	}
	seen := map[string]bool{}
	for _, h := range opts.Hosts {
		if !hostNameRE.MatchString(h) {
			return nil, fmt.Errorf("testbed: host name %q: want lower-case letters, digits and '-', starting with a letter, at most 30 characters", h)
		}
		if seen[h] {
			return nil, fmt.Errorf("testbed: host %q given twice", h)
		}
		seen[h] = true
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	// Claim an ID; whatever an earlier user of it left behind goes first. An
	// ID whose leftovers cannot be cleaned is skipped (unless asked for).
	var id int
	var lock *os.File
	for start := 1; ; start = id + 1 {
		var err error
		if id, lock, err = claim(opts.ID, start); err != nil {
			return nil, err
		}
		err = teardown(ctx, id, logf)
		if err == nil {
			break
		}
		unlock(lock)
		if opts.ID != 0 || ctx.Err() != nil {
			return nil, fmt.Errorf("testbed: bed %d: clean stale bed: %w", id, err)
		}
		logf("testbed: bed %d: clean stale bed: %v; trying the next ID", id, err)
	}
	base := opts.Dir
	if base == "" {
		base = BaseDir
	}
	base, err := filepath.Abs(base)
	if err == nil && strings.ContainsAny(base, " \t\n,:\\") {
		err = fmt.Errorf("folder %q: no blanks, ',', ':' or '\\' (they break overlay mount options)", base)
	}
	if err != nil {
		unlock(lock)
		return nil, fmt.Errorf("testbed: %w", err)
	}
	b := &Bed{
		ID:      id,
		Subnet:  fmt.Sprintf("198.18.%d.0/24", id),
		Gateway: fmt.Sprintf("198.18.%d.1", id),
		Bridge:  fmt.Sprintf("ghbr%d", id),
		Dir:     filepath.Join(base, fmt.Sprint(id)),
		lock:    lock,
		logf:    logf,
	}
	b.KnownHostsFile = filepath.Join(b.Dir, "known_hosts")
	b.ClientKeyFile = filepath.Join(b.Dir, "client_key")
	for i, name := range opts.Hosts {
		b.hosts = append(b.hosts, b.newHost(name, i+1))
	}
	if err := b.up(ctx, opts.Hold); err != nil {
		if derr := b.Down(); derr != nil {
			err = fmt.Errorf("%w (and tear-down: %v)", err, derr)
		}
		return nil, fmt.Errorf("testbed: bed %d: %w", id, err)
	}
	return b, nil
}

func (b *Bed) newHost(name string, index int) *Host {
	return &Host{
		Name:     name,
		Addr:     fmt.Sprintf("198.18.%d.%d", b.ID, 10+index),
		Hostname: name + "." + Domain,
		Netns:    fmt.Sprintf("gh%d-%s", b.ID, name),
		Veth:     fmt.Sprintf("gh%dv%d", b.ID, index),
		Dir:      filepath.Join(b.Dir, name),
		Upper:    filepath.Join(b.Dir, name, "upper"),
		Index:    index,
		bed:      b,
	}
}

func (b *Bed) up(ctx context.Context, hold bool) error {
	if err := os.MkdirAll(b.Dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.Dir, markerFile), []byte(fmt.Sprintf("gridha test bed %d\n", b.ID)), 0o644); err != nil {
		return err
	}
	if err := b.writeMeta(0); err != nil { // early, so a crash mid-Up is still cleaned
		return err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if b.ClientPubKey, err = writeKeyPair(b.ClientKeyFile, priv, pub, fmt.Sprintf("gridha-testbed-%d-client", b.ID)); err != nil {
		return err
	}
	lines := []string{
		"link add " + b.Bridge + " type bridge",
		"addr add " + b.Gateway + "/24 dev " + b.Bridge,
		"link set " + b.Bridge + " up",
	}
	for _, h := range b.hosts {
		lines = append(lines, b.netLines(h)...)
	}
	if _, err := runBatch(ctx, false, lines...); err != nil {
		return err
	}
	errs := make([]error, len(b.hosts))
	var wg sync.WaitGroup
	for i, h := range b.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.up(ctx, false); err != nil {
				errs[i] = fmt.Errorf("%s: %w", h.Name, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := b.writeKnownHosts(); err != nil {
		return err
	}
	holder := 0
	if hold {
		if holder, err = startHolder(b.lock); err != nil {
			return err
		}
	}
	return b.writeMeta(holder)
}

func (b *Bed) writeKnownHosts() error {
	var sb strings.Builder
	for _, h := range b.Hosts() {
		fmt.Fprintf(&sb, "%s %s\n", h.Addr, strings.TrimSpace(h.HostKey))
	}
	return os.WriteFile(b.KnownHostsFile, []byte(sb.String()), 0o644)
}

func (b *Bed) writeMeta(holder int) error {
	m := meta{ID: b.ID, Dir: b.Dir, OwnerPID: os.Getpid(), HolderPID: holder, Created: time.Now().UTC()}
	for _, h := range b.Hosts() {
		m.Hosts = append(m.Hosts, hostMeta{Name: h.Name, Index: h.Index, PID: h.PID})
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(metaPath(b.ID), append(data, '\n'), 0o644)
}

// Host returns the host named name, or nil.
func (b *Bed) Host(name string) *Host {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range b.hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Hosts lists the bed's hosts in the order they were given.
func (b *Bed) Hosts() []*Host {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Host(nil), b.hosts...)
}

// SpareAddr returns the k-th (0..54) address of the bed's subnet that no host
// uses, 198.18.N.(200+k): for service IPs that move between hosts.
func (b *Bed) SpareAddr(k int) string {
	if k < 0 || k > 54 {
		panic(fmt.Sprintf("testbed: SpareAddr(%d): want 0..54", k))
	}
	return fmt.Sprintf("198.18.%d.%d", b.ID, 200+k)
}

// AddHost brings up one more host on a running bed. known_hosts is rewritten;
// the other hosts' /etc/hosts are not (they list the hosts of Up).
func (b *Bed) AddHost(ctx context.Context, name string) (*Host, error) {
	if !hostNameRE.MatchString(name) {
		return nil, fmt.Errorf("testbed: host name %q invalid", name)
	}
	b.mu.Lock()
	if b.down {
		b.mu.Unlock()
		return nil, errors.New("testbed: bed is down")
	}
	index := 1
	for _, h := range b.hosts {
		if h.Name == name {
			b.mu.Unlock()
			return nil, fmt.Errorf("testbed: host %q exists", name)
		}
		if h.Index >= index {
			index = h.Index + 1
		}
	}
	if index > MaxHosts {
		b.mu.Unlock()
		return nil, errors.New("testbed: bed is full")
	}
	h := b.newHost(name, index)
	b.hosts = append(b.hosts, h)
	b.mu.Unlock()
	if err := h.up(ctx, true); err != nil {
		return nil, fmt.Errorf("testbed: %s: %w", name, err)
	}
	if err := b.writeKnownHosts(); err != nil {
		return nil, err
	}
	holder := 0
	if m, err := readMeta(b.ID); err == nil {
		holder = m.HolderPID
	}
	return h, b.writeMeta(holder)
}

// Detach lets go of a bed brought up with Options.Hold: this process no
// longer holds it (its holder process does) and this Bed's Down takes it over
// like a loaded one. Without Hold, the bed is then stale and the next Up of
// its ID tears it down.
func (b *Bed) Detach() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lock != nil {
		b.lock.Close() // not LOCK_UN: the holder shares this open file and keeps the lock
		b.lock = nil
	}
}

// Down tears the bed down: every process of its hosts, namespaces, veths,
// bridge and files; then releases its ID. Calling it again does nothing.
func (b *Bed) Down() error {
	b.mu.Lock()
	if b.down {
		b.mu.Unlock()
		return nil
	}
	b.down = true
	lock := b.lock
	b.lock = nil
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if lock == nil { // loaded from N.json, or detached: take the lock over
		var err error
		if lock, err = takeOver(ctx, b.ID); err != nil {
			return fmt.Errorf("testbed: bed %d: %w", b.ID, err)
		}
	}
	err := teardown(ctx, b.ID, b.logf)
	unlock(lock)
	if err != nil {
		return fmt.Errorf("testbed: bed %d: down: %w", b.ID, err)
	}
	return nil
}

// logTails logs the end of each host's init and daemon logs (for a failed test).
func (b *Bed) logTails(t testing.TB) {
	for _, h := range b.Hosts() {
		if out, err := h.Sh(context.Background(), "for f in /var/log/testbed-*.log; do [ -f \"$f\" ] && echo \"== $f\" && tail -n 20 \"$f\"; done; true"); err == nil && out != "" {
			t.Logf("testbed: %s logs:\n%s", h.Name, out)
		}
	}
}

// waitTCP polls addr until it accepts a TCP connection or ctx ends.
func waitTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	delay := 5 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(cctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not answering: %w (last: %v)", addr, ctx.Err(), err)
		case <-time.After(delay):
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// names returns sorted host names (for messages).
func names(hs []*Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	sort.Strings(out)
	return out
}
