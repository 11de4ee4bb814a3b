// Package hagd is the HA group daemon of slides 9-13 of the 2005 LCG HA notes:
// service providers broadcast signed heartbeats (ID, rank and state per HA
// group), a provider not heard for ΔT1 is dead, the highest-ranked live
// provider becomes group master after broadcasting takeover for ΔT2, and the
// master runs the service through `script start|stop|status GROUP`.
//
// Beyond the 2005 design, a master must hold a lease (a row in the state
// server's MySQL) before it starts the service and stops the service before
// that lease can expire, so that two masters never run at once.
//
// The package is split so that the election is a pure state machine
// (machine.go) tested without a network; config.go, wire.go, lease.go,
// script.go and daemon.go connect it to the world.
package hagd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"github.com/gridha/gridha/internal/lazyre"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gridha/gridha/internal/nearest"
	"github.com/gridha/gridha/internal/privatefile"
)

// DefaultConfigPath is where install rb-node renders hagd.conf (slide 12).
const DefaultConfigPath = "/opt/lcg/etc/hagd.conf"

// Group is one HA group this provider serves and its rank in it (slide 13:
// "service provider with highest rank in a group wins the election").
type Group struct {
	Name string
	Rank int
}

// Config is a parsed hagd.conf. Durations are Go durations; Parse fills the
// defaults for keys that are absent.
type Config struct {
	Path string // file the config was read from (for messages)

	ID      string  // node ID, unique in the multigroup (default: host name)
	Port    int     // UDP port (3333)
	Groups  []Group // group = name:rank, ...
	Script  string  // SCRIPT start|stop|status GROUP
	Timeout time.Duration
	// StopTimeout bounds `script stop` (default: DefaultStopTimeoutFor(Timeout)). The lease budget
	// depends on it: a master that cannot renew starts stop early enough for
	// stop to finish before the lease can expire.
	StopTimeout time.Duration
	Debug       int      // 0-5 (2)
	Ifaces      []string // empty: every non-loopback interface that is up
	KeyFile     string   // path of the shared key (0600); the key is never in hagd.conf

	DT1            time.Duration // ΔT1: a provider not heard for this long is dead
	DT2            time.Duration // ΔT2: takeover/giveup broadcast before start/after stop
	Heartbeat      time.Duration // broadcast interval
	StatusInterval time.Duration // how often the master runs `script status`
	Backoff        time.Duration // after a failed start/status/giveup: not a candidate for this long
	MaxSkew        time.Duration // packets whose timestamp is further than this from our clock are dropped (0: off)

	Lease        string // "mysql" (default), "file" or "none"
	LeaseTTL     time.Duration
	LeaseRenew   time.Duration
	LeaseTimeout time.Duration
	LeaseFile    string // directory for lease = file

	MySQLHost         string // host[:port] of the state server's MySQL
	MySQLUser         string
	MySQLDB           string
	MySQLPasswordFile string // 0600

	Control string // unix socket for gridha hagd status/takeover/giveup
	// StatusFile is where the daemon keeps its status for readers that
	// should not start a process to ask the control socket (statusfile.go).
	StatusFile string
	Log        string // log file ("" = standard error)

	// ServiceIPs are the groups' service addresses hagd itself adds (with a
	// kernel lifetime bound to the lease) and removes: group -> address.
	ServiceIPs map[string]ServiceIP
	// Preempt: a master gives the group to a live, healthy candidate of
	// higher rank (default true).
	Preempt bool
	// PeersFile keeps the replay filter's state across restarts ("" = off).
	PeersFile string
}

// ServiceIP is a group's service address on one interface of this node.
type ServiceIP struct {
	Prefix netip.Prefix // address/prefix length, as `ip addr add` takes it
	Dev    string
}

func (s ServiceIP) String() string { return s.Prefix.String() + "@" + s.Dev }

// Defaults of the optional keys. DefaultConfig gathers them; the rules that
// derive one default from other settings are DefaultStopTimeoutFor and
// Config.DefaultLeaseTTL.
const (
	DefaultPort = 3333
	// DefaultTimeout bounds the service script's start and status: 2 min,
	// because start brings up a whole Resource Broker (nine init scripts,
	// condor and the L&B server among them, one after another), which a
	// 2005 box did not always finish in 30 s; a start cut short is a failed
	// takeover and the group moves on. It was 30 s here and 2 min in the
	// inventory until both read it from this one place.
	DefaultTimeout        = 2 * time.Minute
	DefaultDebug          = 2
	DefaultDT1            = 6 * time.Second
	DefaultDT2            = 3 * time.Second
	DefaultHeartbeat      = 1 * time.Second
	DefaultStatusInterval = 5 * time.Second
	DefaultBackoff        = 30 * time.Second
	DefaultMaxSkew        = 60 * time.Second
	DefaultLeaseRenew     = 1 * time.Second
	DefaultLeaseTimeout   = 1 * time.Second
	DefaultStopTimeout    = 5 * time.Second
	DefaultControl        = "/run/hagd.sock"
	// DefaultStatusFile is the status file's path when neither status_file
	// nor control is set; gridha verify reads it there (the installer sets
	// neither). With control set, the default is next to the socket.
	DefaultStatusFile = "/run/hagd.status"
	DefaultMySQLDB    = "hagd"
	// DefaultPeersFile is where the installer's hagd.conf keeps the replay
	// filter across restarts (peers_file).
	DefaultPeersFile = "/var/lib/hagd/peers"
)

// DefaultConfig is hagd's value of every optional key, the one place they
// are written down: ParseConfig fills what hagd.conf leaves out from it,
// ConfigTemplate.Render writes it into the hagd.conf it renders, and the
// inventory's rb-node settings take it as their defaults (so `gridha
// install rb-node --help` shows it). Keys whose default depends on other
// keys hold the value they take with the other defaults: StopTimeout
// (DefaultStopTimeoutFor) and LeaseTTL (Config.DefaultLeaseTTL, zero here:
// it also depends on service_ip).
func DefaultConfig() Config {
	return Config{
		Port:           DefaultPort,
		Timeout:        DefaultTimeout,
		StopTimeout:    DefaultStopTimeoutFor(DefaultTimeout),
		Debug:          DefaultDebug,
		DT1:            DefaultDT1,
		DT2:            DefaultDT2,
		Heartbeat:      DefaultHeartbeat,
		StatusInterval: DefaultStatusInterval,
		Backoff:        DefaultBackoff,
		Lease:          "mysql",
		LeaseRenew:     DefaultLeaseRenew,
		LeaseTimeout:   DefaultLeaseTimeout,
		MySQLDB:        DefaultMySQLDB,
		Control:        DefaultControl,
		Preempt:        true,
	}
}

// DefaultStopTimeoutFor is stop_timeout when hagd.conf sets none: timeout,
// but at most DefaultStopTimeout (a stop that hangs longer holds the
// group, and the lease budget grows with it).
func DefaultStopTimeoutFor(timeout time.Duration) time.Duration {
	return min(timeout, DefaultStopTimeout)
}

// ExitWait is how long an init script or unit waits for hagd to exit
// before it kills it: hagd stops its groups one after another, each within
// stopTimeout, then releases its leases; 30 s more covers the lease
// release (2 x lease_timeout + 1 s with the defaults) with room for a
// loaded host.
func ExitWait(stopTimeout time.Duration, groups int) time.Duration {
	return stopTimeout*time.Duration(groups) + 30*time.Second
}

type keyDef struct {
	help string
	set  func(c *Config, v string) error
}

var groupNameRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
var nodeIDRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// NodeIDOK says whether s can be a node ID (the id key; install rb-node
// uses the inventory host name).
func NodeIDOK(s string) bool { return nodeIDRE().MatchString(s) }

// keys is the table of hagd.conf keys. It is read-only after package
// initialisation.
var keys = map[string]keyDef{
	"id": {"node ID, unique in the multigroup (default: host name)", func(c *Config, v string) error {
		if !nodeIDRE().MatchString(v) {
			return fmt.Errorf("%q is not a node ID (letters, digits, . _ : -, at most 64)", v)
		}
		c.ID = v
		return nil
	}},
	"port": {"UDP port of the broadcasts", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not a port (1-65535)", v)
		}
		c.Port = n
		return nil
	}},
	"group": {"HA groups and ranks: name:rank[, name:rank...] (may repeat)", func(c *Config, v string) error {
		for _, f := range splitList(v) {
			name, r, ok := strings.Cut(f, ":")
			if !ok {
				return fmt.Errorf("%q: want name:rank", f)
			}
			if !groupNameRE().MatchString(name) {
				return fmt.Errorf("%q is not a group name (letters, digits, . _ -, at most 64)", name)
			}
			rank, err := strconv.Atoi(r)
			if err != nil || rank < 0 || rank > 65535 {
				return fmt.Errorf("%s: rank %q is not a number 0-65535", name, r)
			}
			for _, g := range c.Groups {
				if g.Name == name {
					return fmt.Errorf("group %s listed twice", name)
				}
			}
			c.Groups = append(c.Groups, Group{Name: name, Rank: rank})
		}
		if len(c.Groups) > maxGroups {
			return fmt.Errorf("at most %d groups", maxGroups)
		}
		return nil
	}},
	"script":       {"service script: SCRIPT start|stop|status GROUP", setAbsPath(func(c *Config) *string { return &c.Script })},
	"timeout":      {"time the script may take (start, status)", setDur(func(c *Config) *time.Duration { return &c.Timeout })},
	"stop_timeout": {"time `script stop` may take (default: timeout, at most 5s)", setDur(func(c *Config) *time.Duration { return &c.StopTimeout })},
	"debug": {"log verbosity 0-5", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 5 {
			return fmt.Errorf("%q is not a level 0-5", v)
		}
		c.Debug = n
		return nil
	}},
	"iface": {"interfaces to broadcast on (default: all up, non-loopback)", func(c *Config, v string) error {
		for _, f := range splitList(v) {
			if len(f) > 15 || strings.ContainsAny(f, "/ ") {
				return fmt.Errorf("%q is not an interface name", f)
			}
			c.Ifaces = append(c.Ifaces, f)
		}
		return nil
	}},
	"service_ip": {"group:address/prefix@iface: a service IP hagd adds with a kernel lifetime bound to the lease (may repeat)", func(c *Config, v string) error {
		for _, f := range splitList(v) {
			name, rest, ok := strings.Cut(f, ":")
			cidr, dev, ok2 := strings.Cut(rest, "@")
			if !ok || !ok2 {
				return fmt.Errorf("%q: want group:address/prefix@iface", f)
			}
			pfx, err := netip.ParsePrefix(cidr)
			if err != nil || !pfx.Addr().Is4() {
				return fmt.Errorf("%q: %q is not an IPv4 address/prefix", f, cidr)
			}
			if dev == "" || len(dev) > 15 || strings.ContainsAny(dev, "/ :") {
				return fmt.Errorf("%q: %q is not an interface name", f, dev)
			}
			if c.ServiceIPs == nil {
				c.ServiceIPs = map[string]ServiceIP{}
			}
			if _, dup := c.ServiceIPs[name]; dup {
				return fmt.Errorf("group %s has two service IPs", name)
			}
			c.ServiceIPs[name] = ServiceIP{Prefix: pfx, Dev: dev}
		}
		return nil
	}},
	"preempt": {"yes: a master hands the group to a returning candidate of higher rank; no: a live master is never preempted", func(c *Config, v string) error {
		switch strings.ToLower(v) {
		case "yes", "true", "on", "1":
			c.Preempt = true
		case "no", "false", "off", "0":
			c.Preempt = false
		default:
			return fmt.Errorf("%q: want yes or no", v)
		}
		return nil
	}},
	"peers_file":      {"file keeping the last sequence number heard from each node across restarts (replay guard)", setAbsPath(func(c *Config) *string { return &c.PeersFile })},
	"key":             {"path of the shared key file (mode 0600)", setAbsPath(func(c *Config) *string { return &c.KeyFile })},
	"dt1":             {"ΔT1: a provider not heard for this long is dead", setDur(func(c *Config) *time.Duration { return &c.DT1 })},
	"dt2":             {"ΔT2: takeover/giveup broadcast time", setDur(func(c *Config) *time.Duration { return &c.DT2 })},
	"heartbeat":       {"broadcast interval", setDur(func(c *Config) *time.Duration { return &c.Heartbeat })},
	"status_interval": {"how often the master runs `script status`", setDur(func(c *Config) *time.Duration { return &c.StatusInterval })},
	"backoff":         {"after a failure or giveup, not a candidate for this long", setDur(func(c *Config) *time.Duration { return &c.Backoff })},
	"max_skew":        {"drop packets stamped further than this from our clock (0: off)", setDur0(func(c *Config) *time.Duration { return &c.MaxSkew })},
	"lease": {"split-brain guard: mysql, file or none", func(c *Config, v string) error {
		switch v {
		case "mysql", "file", "none":
			c.Lease = v
			return nil
		}
		return fmt.Errorf("%q: want mysql, file or none", v)
	}},
	"lease_ttl":           {"lease length (default: dt1 + dt2, at least what the lease budget needs)", setDur(func(c *Config) *time.Duration { return &c.LeaseTTL })},
	"lease_renew":         {"lease renewal interval", setDur(func(c *Config) *time.Duration { return &c.LeaseRenew })},
	"lease_timeout":       {"time one lease operation may take", setDur(func(c *Config) *time.Duration { return &c.LeaseTimeout })},
	"lease_file":          {"directory of lease files (lease = file)", setAbsPath(func(c *Config) *string { return &c.LeaseFile })},
	"mysql_host":          {"state server MySQL host[:port] (lease = mysql)", setMySQLHost},
	"mysql_user":          {"MySQL user", setWord(func(c *Config) *string { return &c.MySQLUser })},
	"mysql_db":            {"MySQL database holding hagd_lease", setWord(func(c *Config) *string { return &c.MySQLDB })},
	"mysql_password_file": {"path of the MySQL password (mode 0600)", setAbsPath(func(c *Config) *string { return &c.MySQLPasswordFile })},
	"control":             {"unix socket of the control commands", setAbsPath(func(c *Config) *string { return &c.Control })},
	"status_file":         {"file holding the daemon's status (as status --json shows it), rewritten every heartbeat interval (mode 0600)", setAbsPath(func(c *Config) *string { return &c.StatusFile })},
	"log":                 {"log file (default: standard error)", setAbsPath(func(c *Config) *string { return &c.Log })},
}

// Keys returns the known hagd.conf keys with a one-line description each,
// sorted (for documentation and the template test).
func Keys() [][2]string {
	var out [][2]string
	for k, d := range keys {
		out = append(out, [2]string{k, d.help})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

func setDur(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := ParseDuration(v)
		if err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("%q: must be more than 0", v)
		}
		*field(c) = d
		return nil
	}
}

func setDur0(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := ParseDuration(v)
		if err != nil {
			return err
		}
		if d < 0 {
			return fmt.Errorf("%q: must not be negative", v)
		}
		*field(c) = d
		return nil
	}
}

func setAbsPath(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if !strings.HasPrefix(v, "/") {
			return fmt.Errorf("%q is not an absolute path", v)
		}
		*field(c) = v
		return nil
	}
}

var wordRE = lazyre.New(`^[A-Za-z0-9_.-]{1,64}$`)

func setWord(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if !wordRE().MatchString(v) {
			return fmt.Errorf("%q: letters, digits, _ . - only", v)
		}
		*field(c) = v
		return nil
	}
}

func setMySQLHost(c *Config, v string) error {
	host, port := v, ""
	if h, p, err := net.SplitHostPort(v); err == nil {
		host, port = h, p
	}
	if host == "" || strings.ContainsAny(host, "/@() ") {
		return fmt.Errorf("%q is not a host[:port]", v)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: bad port", v)
		}
	}
	c.MySQLHost = v
	return nil
}

// ParseDuration accepts a Go duration ("1.5s", "500ms") or a plain number of
// seconds ("30", as the 2005 hagd.conf had).
func ParseDuration(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f > 1e6 || f < -1e6 {
			return 0, fmt.Errorf("%q is out of range", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 30, 1.5s, 500ms)", v)
	}
	return d, nil
}

// LineError is an error at a line of hagd.conf.
type LineError struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *LineError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// LoadConfig reads and parses a hagd.conf file. It does not read the key or
// password files (see Config.ReadKey, Config.ReadMySQLPassword).
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hagd config: %w", err)
	}
	return ParseConfig(path, b)
}

// ParseConfig parses hagd.conf text: one `key = value` per line, `#` starts
// a comment (at the start of a line or after white space), blank lines are
// ignored. Every error found is reported, each as file:line: key: message.
func ParseConfig(name string, data []byte) (*Config, error) {
	c := &Config{Path: name, Debug: -1, Preempt: true}
	var errs []error
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := commentStart(text); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			errs = append(errs, &LineError{name, line, "", fmt.Sprintf("%q: want key = value", text)})
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		def, ok := keys[k]
		if !ok {
			msg := "unknown key"
			if s := suggest(k); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			errs = append(errs, &LineError{name, line, k, msg})
			continue
		}
		if prev, dup := seen[k]; dup && k != "group" && k != "iface" && k != "service_ip" {
			errs = append(errs, &LineError{name, line, k, fmt.Sprintf("set twice (first at line %d)", prev)})
			continue
		}
		seen[k] = line
		if v == "" {
			errs = append(errs, &LineError{name, line, k, "empty value"})
			continue
		}
		if err := def.set(c, v); err != nil {
			errs = append(errs, &LineError{name, line, k, err.Error()})
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s:%d: %w", name, line+1, err))
	}
	if len(errs) == 0 {
		c.setDefaults()
		errs = append(errs, c.validate(seen)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// commentStart finds a # that starts a comment: at the start of the line or
// after white space (so a value may contain '#' inside a word).
func commentStart(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return i
		}
	}
	return -1
}

func (c *Config) setDefaults() {
	if c.ID == "" {
		if h, err := os.Hostname(); err == nil {
			c.ID = strings.SplitN(h, ".", 2)[0]
			if !nodeIDRE().MatchString(c.ID) {
				c.ID = ""
			}
		}
	}
	c.FillDefaults()
}

// FillDefaults sets every optional key left at its zero value (Debug: left
// negative) to DefaultConfig's, then the derived ones: StopTimeout from
// Timeout, LeaseTTL from the others. Preempt, a bool, is ParseConfig's to
// preset.
func (c *Config) FillDefaults() {
	d := DefaultConfig()
	dur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	str := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	if c.Port == 0 {
		c.Port = d.Port
	}
	dur(&c.Timeout, d.Timeout)
	dur(&c.StopTimeout, DefaultStopTimeoutFor(c.Timeout))
	if c.Debug < 0 {
		c.Debug = d.Debug
	}
	dur(&c.DT1, d.DT1)
	dur(&c.DT2, d.DT2)
	dur(&c.Heartbeat, d.Heartbeat)
	dur(&c.StatusInterval, d.StatusInterval)
	dur(&c.Backoff, d.Backoff)
	str(&c.Lease, d.Lease)
	dur(&c.LeaseRenew, d.LeaseRenew)
	dur(&c.LeaseTimeout, d.LeaseTimeout)
	dur(&c.LeaseTTL, c.DefaultLeaseTTL())
	str(&c.MySQLDB, d.MySQLDB)
	str(&c.Control, d.Control)
	if c.StatusFile == "" {
		c.StatusFile = strings.TrimSuffix(c.Control, ".sock") + ".status"
	}
}

func (c *Config) validate(seen map[string]int) []error {
	var errs []error
	at := func(key string) int { return seen[key] }
	bad := func(key, format string, a ...any) {
		errs = append(errs, &LineError{c.Path, at(key), key, fmt.Sprintf(format, a...)})
	}
	if c.ID == "" {
		bad("id", "not set and the host name is not a usable node ID")
	}
	for _, k := range []string{"group", "script", "key"} {
		if _, ok := seen[k]; !ok {
			bad(k, "required")
		}
	}
	for g := range c.ServiceIPs {
		found := false
		for _, x := range c.Groups {
			found = found || x.Name == g
		}
		if !found {
			bad("service_ip", "group %s is not in group = ...", g)
		}
	}
	switch c.Lease {
	case "mysql":
		for _, k := range []string{"mysql_host", "mysql_user", "mysql_password_file"} {
			if _, ok := seen[k]; !ok {
				bad(k, "required with lease = mysql")
			}
		}
	case "file":
		if c.LeaseFile == "" {
			bad("lease_file", "required with lease = file")
		}
	}
	for _, p := range c.TimingProblems() {
		bad(p.Key, "%s", p.Msg)
	}
	return errs
}

// KeyProblem is a rule of hagd.conf that one key breaks.
type KeyProblem struct {
	Key string // the hagd.conf key: "dt1", "lease_ttl"
	Msg string
}

// TimingProblems checks how the timings of c (defaults filled) fit
// together: the rules hagd refuses to start without. The inventory runs
// them on the rb-node settings, so that a mistake is reported at its line
// in gridha.yaml before any host is touched, not when hagd.conf is
// rendered.
func (c *Config) TimingProblems() []KeyProblem {
	var out []KeyProblem
	bad := func(key, format string, a ...any) {
		out = append(out, KeyProblem{key, fmt.Sprintf(format, a...)})
	}
	if c.Heartbeat*2 > c.DT1 {
		bad("dt1", "%v must be at least twice the heartbeat (%v)", c.DT1, c.Heartbeat)
	}
	if c.MaxSkew != 0 && c.MaxSkew < c.DT1 {
		bad("max_skew", "%v must be 0 or at least dt1 (%v)", c.MaxSkew, c.DT1)
	}
	if c.Lease != "none" {
		// A master that cannot renew must start stop early enough that stop
		// ends before the lease can expire, and must not do so merely
		// because one renewal failed.
		need := c.LeaseRenew + c.LeaseTimeout + c.StopTimeout + c.leaseMargin()
		if c.LeaseTTL <= need {
			bad("lease_ttl", "%v is too short: it must exceed lease_renew + lease_timeout + stop_timeout + margin = %v", c.LeaseTTL, need)
		}
		if len(c.ServiceIPs) > 0 {
			// The kernel must be able to hold the service IP at least one
			// whole second, and that second must cover one renewal cycle,
			// after a renewal that took all of lease_timeout (see
			// IPLifetime and README "Fencing").
			tmin := c.ipLifetimeFloor()
			if tmin < time.Second || tmin < c.LeaseRenew+c.LeaseTimeout {
				bad("lease_ttl", "%v is too short for service_ip: the kernel lifetime of the address would be %v, it must be at least 1s and lease_renew + lease_timeout (%v); lease_ttl must be at least %v",
					c.LeaseTTL, tmin, c.LeaseRenew+c.LeaseTimeout, c.MinLeaseTTLForIP())
			}
		}
		if c.LeaseRenew*2 > c.DT1 {
			bad("lease_renew", "%v must be at most half of dt1 (%v)", c.LeaseRenew, c.DT1)
		}
	}
	return out
}

// DefaultLeaseTTL is lease_ttl when hagd.conf does not set it: ΔT1+ΔT2, so
// that a master that died holding the lease delays its successor no more
// than the death detection already does, but at least what the lease budget
// needs (a stop before expiry, and one failed renewal tolerated).
func (c *Config) DefaultLeaseTTL() time.Duration {
	ttl := max(c.DT1+c.DT2, 2*c.LeaseRenew+c.LeaseTimeout+c.StopTimeout+c.leaseMargin())
	if len(c.ServiceIPs) > 0 {
		ttl = max(ttl, c.MinLeaseTTLForIP())
	}
	return ttl
}

// KernelSlack bounds how late Linux removes an IPv4 address whose
// valid_lft ran out: net/ipv4/devinet.c check_lifetime() runs at the
// earliest expiry, rounded up by at most HZ/4, but never sooner than HZ
// after its previous run, so an address may outlive its lifetime by up to
// one second; 100 ms more for the work queue on a loaded machine. Measured
// on the test bed: 1 s lifetimes were gone after 1.04-1.26 s.
const KernelSlack = 1100 * time.Millisecond

// DriftMargin is what hagd subtracts from a lease for the rate difference
// between its monotonic clock and the database server's (2000 ppm of the
// lease, far more than NTP-disciplined or even free-running quartz drift).
func DriftMargin(ttl time.Duration) time.Duration { return ttl / 500 }

// ipLifetimeFloor is the smallest kernel lifetime (whole seconds) hagd can
// give the service IP after a renewal that took the whole lease_timeout.
func (c *Config) ipLifetimeFloor() time.Duration {
	room := c.LeaseTTL - c.leaseMargin() - DriftMargin(c.LeaseTTL) - KernelSlack - c.LeaseTimeout
	return room.Truncate(time.Second)
}

// MinLeaseTTLForIP is the shortest lease_ttl that service_ip accepts with
// the other timings of c.
func (c *Config) MinLeaseTTLForIP() time.Duration {
	need := max(time.Second, c.LeaseRenew+c.LeaseTimeout)
	need = (need + time.Second - 1).Truncate(time.Second)
	ttl := need + c.leaseMargin() + KernelSlack + c.LeaseTimeout
	return ttl + ttl/499 + time.Millisecond
}

// leaseMargin is kept between the end of a stop and the earliest instant
// the lease may expire.
func (c *Config) leaseMargin() time.Duration {
	return max(c.LeaseTimeout/2, 200*time.Millisecond)
}

// ReadKey reads the shared key file, refusing a file that group or others
// may read (hagd.conf itself may be 0644; the key may not).
func (c *Config) ReadKey() ([]byte, error) {
	b, err := readSecretFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if len(b) < 16 {
		return nil, fmt.Errorf("key: %s: the key is shorter than 16 bytes", c.KeyFile)
	}
	return b, nil
}

// AcceptKeyFile is the file of keys hagd accepts besides its own during a
// key rotation: the key file's path with ".accept" appended.
func (c *Config) AcceptKeyFile() string { return c.KeyFile + ".accept" }

// ReadAcceptKeys reads AcceptKeyFile: one key per line, each accepted in
// addition to the key hagd signs with. A missing file is no extra key; the
// file has the key file's mode rule.
func (c *Config) ReadAcceptKeys() ([][]byte, error) {
	p := c.AcceptKeyFile()
	b, err := readSecretFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("accepted keys: %w", err)
	}
	var out [][]byte
	for i, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(line) < 16 {
			return nil, fmt.Errorf("accepted keys: %s:%d: the key is shorter than 16 bytes", p, i+1)
		}
		out = append(out, line)
	}
	return out, nil
}

// ReadMySQLPassword reads mysql_password_file (same mode rule as the key).
func (c *Config) ReadMySQLPassword() (string, error) {
	b, err := readSecretFile(c.MySQLPasswordFile)
	if err != nil {
		return "", fmt.Errorf("mysql_password_file: %w", err)
	}
	return string(b), nil
}

func readSecretFile(path string) ([]byte, error) {
	b, err := privatefile.Read(path, privatefile.Rules{
		TooOpen: func(m fs.FileMode) error {
			return fmt.Errorf("%s has mode %04o: group and others must not have access (chmod 0600)", path, m)
		},
		Regular: true,
		Limit:   4096,
	})
	if err != nil {
		return nil, err
	}
	v := bytes.TrimSpace(b)
	if len(v) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

// suggest returns the known key nearest to k, if it is near enough.
func suggest(k string) string {
	names := make([]string, 0, len(keys))
	for name := range keys {
		names = append(names, name)
	}
	sort.Strings(names)
	return nearest.Word(k, names)
}
