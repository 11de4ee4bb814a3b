// Package sshx is gridha's SSH transport: it implements installer.Dialer and
// installer.Conn over golang.org/x/crypto/ssh and github.com/pkg/sftp.
//
// One SSH connection per host serves the whole run; every Run opens one
// session; file transfers share one lazily opened SFTP client per host.
// Keepalives (keepalive@openssh.com) close a connection whose host stopped
// answering, so nothing hangs on a dead link.
//
// Host keys are checked against known_hosts (the inventory's, else
// ~/.ssh/known_hosts, plus /etc/ssh/ssh_known_hosts); host-key algorithms
// are ordered by the keys known for the host. A changed key is always
// refused, with the presented fingerprint and the file:line of the known
// key. An unknown host is refused in "strict" mode (with the ssh-keyscan
// line that adds it) and recorded in "accept-new" mode.
//
// Authentication uses ssh-agent ($SSH_AUTH_SOCK) and identity files (the
// inventory's, else ~/.ssh/id_ed25519, id_rsa, id_ecdsa). ~/.ssh/config
// fills what the inventory leaves empty: HostName, User, Port,
// IdentityFile, UserKnownHostsFile and ProxyJump (one hop).
//
// Commands run under /bin/sh whatever the login shell (csh and tcsh
// included). With become: sudo and a non-root login they run under
// "sudo -n", which needs NOPASSWD and no requiretty for that user (checked
// when dialing); files are then read and written with shell commands
// through sudo instead of SFTP. Cancelling a Run kills the remote command's
// whole process group.
package sshx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
)

// Host-key policies.
const (
	// PolicyStrict refuses hosts that are not in known_hosts.
	PolicyStrict = "strict"
	// PolicyAcceptNew appends the key of a host that is not in known_hosts
	// (trust on first use). A changed key is still refused.
	PolicyAcceptNew = "accept-new"
)

// Defaults.
const (
	DefaultConnectTimeout    = 10 * time.Second
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultKeepaliveMax      = 3
)

// Options tune a Dialer. The zero value is the safe default.
type Options struct {
	// HostKeyPolicy is PolicyStrict ("" means strict) or PolicyAcceptNew.
	HostKeyPolicy string
	// HashKnownHosts makes accept-new write hashed entries (|1|salt|hash),
	// like OpenSSH's HashKnownHosts yes. "HashKnownHosts yes" in
	// ~/.ssh/config turns it on too.
	HashKnownHosts bool
	// SSHConfigFile is the ssh_config file to read ("" means ~/.ssh/config,
	// which may be absent; "none" reads none).
	SSHConfigFile string
	// AgentSocket is the ssh-agent socket ("" means $SSH_AUTH_SOCK; "none"
	// disables the agent).
	AgentSocket string
	// GlobalKnownHostsFile is read besides the user's known_hosts ("" means
	// ssh_config's GlobalKnownHostsFile, else /etc/ssh/ssh_known_hosts;
	// "none" reads none). New keys never go there.
	GlobalKnownHostsFile string
	// HomeDir replaces the local user's home directory (for ~ in paths and
	// the default known_hosts, identity files and ssh_config).
	HomeDir string
	// KeepaliveInterval is the time between keepalive@openssh.com requests
	// (default 15 s); after KeepaliveMax unanswered intervals (default 3)
	// the connection is closed.
	KeepaliveInterval time.Duration
	KeepaliveMax      int
	// Log receives notices (accepted host keys, skipped identity files).
	// Nothing secret is ever passed to it.
	Log func(format string, args ...any)
}

// Dialer connects to inventory hosts. It is safe for concurrent use: the
// runner dials all hosts in parallel.
type Dialer struct {
	inv  *inventory.Inventory
	opts Options
	home string
	// localUser is the name OpenSSH would log in as when nothing says.
	localUser string

	cfgOnce sync.Once
	cfg     *sshConfig
	cfgErr  error

	// khMu serializes the read-check-append of known_hosts in accept-new
	// mode, so concurrent dials of new hosts do not interleave lines.
	khMu sync.Mutex
}

var _ installer.Dialer = (*Dialer)(nil)

// NewDialer returns a Dialer for the hosts of inv.
func NewDialer(inv *inventory.Inventory, opts Options) *Dialer {
	d := &Dialer{inv: inv, opts: opts}
	d.home = opts.HomeDir
	if d.home == "" {
		d.home, _ = os.UserHomeDir()
	}
	if u, err := user.Current(); err == nil {
		d.localUser = u.Username
	}
	if d.opts.KeepaliveInterval <= 0 {
		d.opts.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if d.opts.KeepaliveMax <= 0 {
		d.opts.KeepaliveMax = DefaultKeepaliveMax
	}
	return d
}

func (d *Dialer) logf(format string, args ...any) {
	if d.opts.Log != nil {
		d.opts.Log(format, args...)
	}
}

// target is everything needed to reach one host, after merging the
// inventory, its defaults and ssh_config.
type target struct {
	name     string // inventory name, for messages
	alias    string // the name ssh_config was consulted with
	hostname string // what is dialed
	port     int
	user     string
	// identities: explicit ones (inventory) must exist; others are tried
	// when present.
	identities []identity
	knownHosts string
	// globalKnownHosts is also consulted ("" for none).
	globalKnownHosts string
	hashKnown        bool
	proxyJump        string
	become           string
	timeout          time.Duration
	// kex, ciphers, macs: ssh_config's KexAlgorithms, Ciphers, MACs (nil:
	// Go's defaults).
	kex, ciphers, macs []string
}

type identity struct {
	path     string
	required bool // named in the inventory: missing is an error
}

func (t *target) addr() string { return net.JoinHostPort(t.hostname, strconv.Itoa(t.port)) }

// Dial connects to the inventory host named host and returns its Conn.
func (d *Dialer) Dial(ctx context.Context, host string) (installer.Conn, error) {
	c, err := d.DialConn(ctx, host)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialConn is Dial returning the concrete type.
func (d *Dialer) DialConn(ctx context.Context, host string) (*Conn, error) {
	if d.inv == nil {
		return nil, fmt.Errorf("%s: no inventory", host)
	}
	switch d.opts.HostKeyPolicy {
	case "", PolicyStrict, PolicyAcceptNew:
	default:
		return nil, fmt.Errorf("%s: host-key policy %q: want %q or %q", host, d.opts.HostKeyPolicy, PolicyStrict, PolicyAcceptNew)
	}
	h := d.inv.Host(host)
	if h == nil {
		return nil, fmt.Errorf("%s: not in inventory %s", host, d.inv.Path)
	}
	t, err := d.resolve(h.Name, h.Address, h.SSH, false, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	c := &Conn{host: host, target: t, dialer: d, done: make(chan struct{}), slots: make(chan struct{}, maxRunSessions)}
	if err := c.connect(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	return c, nil
}

// resolve merges host settings, inventory defaults and ssh_config. Values
// from the inventory win; ssh_config fills the rest.
func (d *Dialer) resolve(name, address string, s inventory.SSH, isJump, mergeDefaults bool) (*target, error) {
	def := d.inv.Defaults
	if !mergeDefaults {
		def = inventory.SSH{}
	}
	if s.User == "" {
		s.User = def.User
	}
	if s.Port == 0 {
		s.Port = def.Port
	}
	if s.IdentityFile == "" {
		s.IdentityFile = def.IdentityFile
	}
	if s.KnownHosts == "" {
		s.KnownHosts = def.KnownHosts
	}
	if s.ProxyJump == "" {
		s.ProxyJump = def.ProxyJump
	}
	if s.Become == "" {
		s.Become = def.Become
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = def.ConnectTimeout
	}
	cfg, err := d.sshConfig()
	if err != nil {
		return nil, err
	}
	t := &target{
		name:      name,
		alias:     address,
		hostname:  address,
		port:      s.Port,
		user:      s.User,
		proxyJump: s.ProxyJump,
		become:    s.Become,
		timeout:   s.ConnectTimeout,
		hashKnown: d.opts.HashKnownHosts,
	}
	if t.timeout <= 0 {
		t.timeout = DefaultConnectTimeout
	}
	if v := cfg.get(address, "HostName"); v != "" {
		t.hostname = expandTokens(v, map[byte]string{'h': address})
	}
	if t.user == "" {
		t.user = cfg.get(address, "User")
	}
	if t.user == "" {
		t.user = d.localUser
	}
	if t.user == "" {
		return nil, errors.New("no SSH user: set ssh.user in the inventory")
	}
	if t.port == 0 {
		if v := cfg.get(address, "Port"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p <= 0 || p > 65535 {
				return nil, fmt.Errorf("%s: Port %q for %s is not a port number", cfg.path, v, address)
			}
			t.port = p
		}
	}
	if t.port == 0 {
		t.port = 22
	}
	tokens := map[byte]string{'h': t.hostname, 'n': address, 'r': t.user, 'u': d.localUser, 'd': d.home, 'p': strconv.Itoa(t.port)}
	if s.IdentityFile != "" {
		t.identities = append(t.identities, identity{path: d.localPath(s.IdentityFile, true), required: true})
	} else {
		for _, v := range cfg.getAll(address, "IdentityFile") {
			t.identities = append(t.identities, identity{path: d.localPath(expandTokens(v, tokens), false)})
		}
		for _, n := range []string{"id_ed25519", "id_rsa", "id_ecdsa"} {
			t.identities = append(t.identities, identity{path: filepath.Join(d.home, ".ssh", n)})
		}
	}
	t.knownHosts = s.KnownHosts
	if t.knownHosts != "" {
		t.knownHosts = d.localPath(t.knownHosts, true)
	} else if v := cfg.get(address, "UserKnownHostsFile"); v != "" && v != "none" {
		// OpenSSH allows several files; the first one is where new keys go.
		t.knownHosts = d.localPath(expandTokens(strings.Fields(v)[0], tokens), false)
	} else {
		t.knownHosts = filepath.Join(d.home, ".ssh", "known_hosts")
	}
	switch g := d.opts.GlobalKnownHostsFile; {
	case g == "none":
	case g != "":
		t.globalKnownHosts = d.localPath(g, false)
	default:
		t.globalKnownHosts = "/etc/ssh/ssh_known_hosts"
		if v := cfg.get(address, "GlobalKnownHostsFile"); v == "none" {
			t.globalKnownHosts = ""
		} else if v != "" {
			t.globalKnownHosts = d.localPath(expandTokens(strings.Fields(v)[0], tokens), false)
		}
	}
	for _, a := range sshConfigAlgorithms {
		if v := cfg.get(address, a.key); v != "" {
			l, err := algorithmList(v, a.defaults(ssh.SupportedAlgorithms()), allAlgorithms(a.defaults))
			if err != nil {
				return nil, fmt.Errorf("%s: %s %s for %s: %w", cfg.path, a.key, v, address, err)
			}
			a.set(t, l)
		}
	}
	if strings.EqualFold(cfg.get(address, "HashKnownHosts"), "yes") {
		t.hashKnown = true
	}
	if t.proxyJump == "" {
		t.proxyJump = cfg.get(address, "ProxyJump")
	}
	if strings.EqualFold(t.proxyJump, "none") {
		t.proxyJump = ""
	}
	if t.proxyJump != "" && isJump {
		return nil, fmt.Errorf("jump host %s has its own ProxyJump %s: only one hop is supported", address, t.proxyJump)
	}
	if t.proxyJump != "" && strings.Contains(t.proxyJump, ",") {
		return nil, fmt.Errorf("ProxyJump %s: only one hop is supported", t.proxyJump)
	}
	switch t.become {
	case "", "sudo":
	default:
		return nil, fmt.Errorf("become %q: only \"sudo\" is supported", t.become)
	}
	return t, nil
}

// jumpTarget resolves a ProxyJump spec: an inventory host name, or
// [user@]host[:port] looked up in ssh_config.
func (d *Dialer) jumpTarget(t *target) (*target, error) {
	spec := t.proxyJump
	if h := d.inv.Host(spec); h != nil {
		s := h.SSH
		s.ProxyJump = "none"
		jt, err := d.resolve(h.Name, h.Address, s, true, true)
		if err != nil {
			return nil, fmt.Errorf("jump host %s: %w", spec, err)
		}
		return jt, nil
	}
	if strings.Contains(spec, "://") {
		return nil, fmt.Errorf("ProxyJump %s: URI form is not supported, use [user@]host[:port]", spec)
	}
	var s inventory.SSH
	hostPort := spec
	if i := strings.LastIndex(spec, "@"); i >= 0 {
		s.User, hostPort = spec[:i], spec[i+1:]
	}
	host := hostPort
	if h, p, err := net.SplitHostPort(hostPort); err == nil {
		host = h
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("ProxyJump %s: bad port", spec)
		}
		s.Port = n
	}
	if host == "" {
		return nil, fmt.Errorf("ProxyJump %q: no host", spec)
	}
	// The jump host shares the target's known_hosts, identity and timeout.
	s.KnownHosts = t.knownHosts
	s.ConnectTimeout = t.timeout
	s.ProxyJump = "none"
	for _, id := range t.identities {
		if id.required {
			s.IdentityFile = id.path
		}
	}
	// The inventory defaults (user, become) are for inventory hosts, not
	// for a bastion: only the spec or ssh_config names the jump user.
	jt, err := d.resolve(spec, host, s, true, false)
	if err != nil {
		return nil, fmt.Errorf("jump host %s: %w", spec, err)
	}
	return jt, nil
}

// localPath expands ~ and makes a relative path relative to the inventory's
// folder (inventory values) or the home directory (ssh_config values).
func (d *Dialer) localPath(p string, fromInventory bool) string {
	if p == "~" {
		return d.home
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(d.home, p[2:])
	}
	if filepath.IsAbs(p) {
		return p
	}
	if fromInventory && d.inv.Dir != "" {
		return filepath.Join(d.inv.Dir, p)
	}
	return filepath.Join(d.home, p)
}

// expandTokens replaces ssh_config %-tokens (%% and those in vals).
func expandTokens(s string, vals map[byte]string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
		} else if v, ok := vals[s[i]]; ok {
			b.WriteString(v)
		} else {
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// dialTarget opens the TCP (or tunneled) connection and runs the SSH
// handshake with the connect timeout, honouring ctx throughout.
func (d *Dialer) dialTarget(ctx context.Context, t *target, via *ssh.Client) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	addr := t.addr()
	// Keys and known_hosts first: a missing identity file fails before
	// any packet is sent.
	cfg, hk, closeAuth, err := d.clientConfig(t)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer closeAuth()
	var nc net.Conn
	if via != nil {
		nc, err = via.DialContext(ctx, "tcp", addr)
	} else {
		var nd net.Dialer
		nc, err = nd.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, ctxErr(ctx, err))
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	// Closing the connection is the only way to interrupt the handshake.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, fmt.Errorf("dial %s: %w", addr, ctxErr(ctx, context.Cause(ctx)))
	}
	if err != nil {
		nc.Close()
		if hk.err != nil {
			err = hk.err
		}
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// ctxErr prefers a plain "connect timeout" over a context error wrapped in
// net's words.
func ctxErr(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("connect timeout: %w", err)
	}
	return err
}

// clientConfig builds the ssh.ClientConfig of t: user, auth, host-key check.
func (d *Dialer) clientConfig(t *target) (*ssh.ClientConfig, *hostKeyCheck, func(), error) {
	auth, closeAuth, err := d.authMethods(t)
	if err != nil {
		return nil, nil, nil, err
	}
	hk, err := d.hostKeyCheck(t)
	if err != nil {
		closeAuth()
		return nil, nil, nil, err
	}
	return &ssh.ClientConfig{
		User:              t.user,
		Auth:              auth,
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algorithms,
		Timeout:           t.timeout,
		ClientVersion:     "SSH-2.0-gridha",
		Config:            ssh.Config{KeyExchanges: t.kex, Ciphers: t.ciphers, MACs: t.macs},
	}, hk, closeAuth, nil
}
