package dnsupdater

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"github.com/gridha/gridha/internal/lazyre"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults of the configuration (see README.md).
const (
	DefaultInterval     = 30 * time.Second
	DefaultFailAfter    = 2
	DefaultRecoverAfter = 3
	DefaultFreshness    = 1200 * time.Second // the BDII init script's hung-updater threshold
	DefaultMinEntries   = 1
	DefaultCheckTimeout = 5 * time.Second
	DefaultDNSTimeout   = 5 * time.Second
	DefaultBDIIPort     = 2170
	DefaultStateFile    = "/var/lib/gridha/dns-updater.state"
	DefaultAlgorithm    = "hmac-sha256"
	// MinTTL is MAN05's floor: "This value should not be lower than 30s - 60s."
	MinTTL = 30 * time.Second
)

// BDII is one address of one BDII in the round robin. A BDII with an IPv4
// and an IPv6 address is two entries with the same Name; each address is
// checked and published (A or AAAA) on its own.
type BDII struct {
	Name    string
	Address netip.Addr
	Port    int
}

// Key identifies a BDII entry in logs, state and damping ("bdii1/198.18.1.10").
func (b BDII) Key() string { return b.Name + "/" + b.Address.String() }

// HostPort is the LDAP endpoint.
func (b BDII) HostPort() string {
	return net.JoinHostPort(b.Address.String(), strconv.Itoa(b.Port))
}

// CommandCheck is an external check: argv (no shell) with the placeholders
// {name}, {address} and {port} replaced per BDII; Nagios plugin exit codes.
type CommandCheck struct {
	Name string
	Argv []string
}

// Config is the dns-updater configuration. The dns role builds one and writes
// Marshal's output to /etc/gridha/dns-updater.conf.
type Config struct {
	Zone          string        // FQDN, e.g. "core.domain.tld."
	Name          string        // round-robin FQDN inside Zone, e.g. "topbdii.core.domain.tld."
	TTL           time.Duration // >= MinTTL
	Primaries     []string      // host:port of each primary (default port 53)
	TSIGKeyName   string        // FQDN; may come from a BIND key file
	TSIGAlgorithm string        // hmac-sha256 (default)
	TSIGKeyFile   string        // base64 secret alone, or a BIND `key "n" {...};` file
	BDIIs         []BDII
	Interval      time.Duration
	FailAfter     int // consecutive failed checks before a record is removed
	RecoverAfter  int // consecutive good checks before it is added again
	Freshness     time.Duration
	MinEntries    int
	QueryBase     string // optional extra search under o=grid / o=glue
	CheckTimeout  time.Duration
	DNSTimeout    time.Duration
	Commands      []CommandCheck
	StateFile     string
	// SkipKeyModeCheck disables the key file permission check (tests of
	// Marshal/Parse only; never set by the parser).
	SkipKeyModeCheck bool `json:"-"`
}

// ConfigError is a configuration error with its line (0: whole file).
type ConfigError struct {
	File string
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// LoadConfig reads and parses path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dns-updater config: %w", err)
	}
	return ParseConfig(path, b)
}

var keyRe = lazyre.New(`^[a-z][a-z0-9_]*$`)

// ParseConfig parses the key = value format (README.md). Unknown keys,
// repeated single-valued keys and bad values are errors naming the line.
func ParseConfig(file string, data []byte) (*Config, error) {
	c := &Config{}
	seen := map[string]int{}  // first line of each key
	multi := map[string]int{} // "key value" of repeated keys -> line

	errf := func(line int, format string, a ...any) error {
		return &ConfigError{File: file, Line: line, Msg: fmt.Sprintf(format, a...)}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, errf(lineNo, "expected key = value, got %q", clip(line))
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !keyRe().MatchString(k) {
			return nil, errf(lineNo, "bad key %q", clip(k))
		}
		if v == "" {
			return nil, errf(lineNo, "%s: empty value", k)
		}
		if prev, dup := seen[k]; dup && !multiKeys[k] {
			return nil, errf(lineNo, "%s: already set on line %d", k, prev)
		} else if !dup {
			seen[k] = lineNo
		}
		if err := c.set(k, v); err != nil {
			return nil, errf(lineNo, "%s: %v", k, err)
		}
		if multiKeys[k] {
			id := k + " " + c.lastID(k)
			if prev, dup := multi[id]; dup {
				return nil, errf(lineNo, "%s: same entry as line %d", k, prev)
			}
			multi[id] = lineNo
		}
	}
	if err := sc.Err(); err != nil {
		return nil, errf(lineNo+1, "%v", err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		// Point at the line of the offending key when there is one.
		if ve, ok := err.(*validationError); ok {
			return nil, errf(seen[ve.key], "%s: %s", ve.key, ve.msg)
		}
		return nil, errf(0, "%v", err)
	}
	return c, nil
}

// lastID identifies the entry a repeated key just added, for duplicates.
func (c *Config) lastID(k string) string {
	switch k {
	case "primary":
		return c.Primaries[len(c.Primaries)-1]
	case "bdii":
		return c.BDIIs[len(c.BDIIs)-1].Address.String()
	case "check_command":
		return c.Commands[len(c.Commands)-1].Name
	}
	return ""
}

var multiKeys = map[string]bool{"primary": true, "bdii": true, "check_command": true}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func (c *Config) set(k, v string) error {
	var err error
	switch k {
	case "zone":
		c.Zone, err = parseFQDN(v)
	case "name":
		c.Name, err = parseFQDN(v)
	case "ttl":
		c.TTL, err = parseDuration(v)
	case "primary":
		var hp string
		hp, err = parseHostPort(v, 53)
		c.Primaries = append(c.Primaries, hp)
	case "tsig_key_name":
		c.TSIGKeyName, err = parseFQDN(v)
	case "tsig_algorithm":
		c.TSIGAlgorithm = strings.ToLower(v)
	case "tsig_key_file":
		if !strings.HasPrefix(v, "/") {
			err = fmt.Errorf("must be an absolute path")
		}
		c.TSIGKeyFile = v
	case "bdii":
		var b BDII
		b, err = parseBDII(v)
		c.BDIIs = append(c.BDIIs, b)
	case "interval":
		c.Interval, err = parseDuration(v)
	case "fail_after":
		c.FailAfter, err = parseCount(v)
	case "recover_after":
		c.RecoverAfter, err = parseCount(v)
	case "freshness":
		c.Freshness, err = parseDuration(v)
	case "min_entries":
		c.MinEntries, err = strconv.Atoi(v)
		if err == nil && c.MinEntries < 0 {
			err = fmt.Errorf("must be >= 0")
		}
	case "query_base":
		c.QueryBase = v
	case "check_timeout":
		c.CheckTimeout, err = parseDuration(v)
	case "dns_timeout":
		c.DNSTimeout, err = parseDuration(v)
	case "check_command":
		var cc CommandCheck
		cc, err = parseCommand(v)
		c.Commands = append(c.Commands, cc)
	case "state_file":
		if !strings.HasPrefix(v, "/") {
			err = fmt.Errorf("must be an absolute path")
		}
		c.StateFile = v
	default:
		return fmt.Errorf("unknown key (known: %s)", strings.Join(knownKeys, ", "))
	}
	return err
}

var knownKeys = []string{"zone", "name", "ttl", "primary", "tsig_key_name", "tsig_algorithm",
	"tsig_key_file", "bdii", "interval", "fail_after", "recover_after", "freshness", "min_entries",
	"query_base", "check_timeout", "dns_timeout", "check_command", "state_file"}

func parseFQDN(v string) (string, error) {
	if strings.ContainsAny(v, " \t") {
		return "", fmt.Errorf("%q: spaces in a domain name", v)
	}
	f := dns.Fqdn(strings.ToLower(v))
	if _, ok := dns.IsDomainName(f); !ok || f == "." {
		return "", fmt.Errorf("%q is not a domain name", v)
	}
	return f, nil
}

// parseDuration accepts Go durations ("30s", "2m") or whole seconds ("30").
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("must be positive")
		}
		if n > 1e7 {
			return 0, fmt.Errorf("%d seconds is too long", n)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 30s, 2m or 30)", v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive")
	}
	return d, nil
}

func parseCount(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, fmt.Errorf("%q: want a whole number from 1 to 1000", v)
	}
	return n, nil
}

func parseHostPort(v string, defPort int) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		// a bare address: IPv6 without brackets or a host without port
		if a, perr := netip.ParseAddr(v); perr == nil {
			return net.JoinHostPort(a.String(), strconv.Itoa(defPort)), nil
		}
		if strings.ContainsAny(v, ":[] \t") {
			return "", fmt.Errorf("%q: want host:port", v)
		}
		host, port = v, strconv.Itoa(defPort)
	}
	if host == "" {
		return "", fmt.Errorf("%q: empty host", v)
	}
	if strings.ContainsAny(host, " \t/") {
		return "", fmt.Errorf("%q: bad host", v)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%q: port must be a number from 1 to 65535", v)
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// bdiiNameRe: a host name, an inventory name or an address (':' for IPv6).
var bdiiNameRe = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

// parseBDII parses "NAME ADDRESS [PORT]".
func parseBDII(v string) (BDII, error) {
	f := strings.Fields(v)
	if len(f) < 2 || len(f) > 3 {
		return BDII{}, fmt.Errorf("want NAME ADDRESS [PORT], got %q", clip(v))
	}
	if !bdiiNameRe().MatchString(f[0]) {
		return BDII{}, fmt.Errorf("bad BDII name %q (letters, digits, . _ - :)", clip(f[0]))
	}
	a, err := netip.ParseAddr(f[1])
	if err != nil || a.Zone() != "" {
		return BDII{}, fmt.Errorf("%q is not an IP address (the record set holds addresses)", clip(f[1]))
	}
	b := BDII{Name: f[0], Address: a.Unmap(), Port: DefaultBDIIPort}
	if len(f) == 3 {
		p, err := strconv.Atoi(f[2])
		if err != nil || p < 1 || p > 65535 {
			return BDII{}, fmt.Errorf("port %q must be a number from 1 to 65535", clip(f[2]))
		}
		b.Port = p
	}
	return b, nil
}

// parseCommand parses "NAME ARGV0 ARG..." (split on white space, no shell).
func parseCommand(v string) (CommandCheck, error) {
	f := strings.Fields(v)
	if len(f) < 2 {
		return CommandCheck{}, fmt.Errorf("want NAME /path/to/plugin [ARG...], got %q", clip(v))
	}
	if !strings.HasPrefix(f[1], "/") {
		return CommandCheck{}, fmt.Errorf("%q: the plugin must be an absolute path", clip(f[1]))
	}
	return CommandCheck{Name: f[0], Argv: f[1:]}, nil
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.TSIGAlgorithm == "" {
		c.TSIGAlgorithm = DefaultAlgorithm
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.FailAfter == 0 {
		c.FailAfter = DefaultFailAfter
	}
	if c.RecoverAfter == 0 {
		c.RecoverAfter = DefaultRecoverAfter
	}
	if c.Freshness == 0 {
		c.Freshness = DefaultFreshness
	}
	if c.MinEntries == 0 {
		c.MinEntries = DefaultMinEntries
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = DefaultCheckTimeout
	}
	if c.DNSTimeout == 0 {
		c.DNSTimeout = DefaultDNSTimeout
	}
	if c.StateFile == "" {
		c.StateFile = DefaultStateFile
	}
	for i := range c.BDIIs {
		if c.BDIIs[i].Port == 0 {
			c.BDIIs[i].Port = DefaultBDIIPort
		}
	}
}

type validationError struct{ key, msg string }

func (e *validationError) Error() string { return e.key + ": " + e.msg }

// Validate checks a complete configuration (after SetDefaults).
func (c *Config) Validate() error {
	bad := func(key, format string, a ...any) error {
		return &validationError{key: key, msg: fmt.Sprintf(format, a...)}
	}
	switch {
	case c.Zone == "":
		return bad("zone", "required")
	case c.Name == "":
		return bad("name", "required")
	case !dns.IsSubDomain(c.Zone, c.Name):
		return bad("name", "%s is not inside zone %s", c.Name, c.Zone)
	case c.TTL == 0:
		return bad("ttl", "required (MAN05: not lower than 30 s - 60 s)")
	case c.TTL < MinTTL:
		return bad("ttl", "%s is below MAN05's floor of %s", c.TTL, MinTTL)
	case c.TTL%time.Second != 0 || c.TTL > 7*24*time.Hour:
		return bad("ttl", "%s: want whole seconds, at most a week", c.TTL)
	case len(c.Primaries) == 0:
		return bad("primary", "at least one primary (host:port) is required")
	case c.TSIGKeyFile == "":
		return bad("tsig_key_file", "required")
	case c.TSIGAlgorithm != "hmac-sha256":
		return bad("tsig_algorithm", "%q: only hmac-sha256 is supported", c.TSIGAlgorithm)
	case len(c.BDIIs) == 0:
		return bad("bdii", "at least one BDII (NAME ADDRESS [PORT]) is required")
	case c.CheckTimeout >= c.Interval:
		return bad("check_timeout", "%s must be shorter than interval %s", c.CheckTimeout, c.Interval)
	case c.QueryBase != "" && !ValidQueryBase(c.QueryBase):
		return bad("query_base", "%q: want a DN ending in o=grid or o=glue", c.QueryBase)
	}
	seenP := map[string]bool{}
	for _, p := range c.Primaries {
		if seenP[p] {
			return bad("primary", "%s listed twice", p)
		}
		seenP[p] = true
	}
	seenB := map[string]bool{}
	for _, b := range c.BDIIs {
		if seenB[b.Address.String()] {
			return bad("bdii", "address %s listed twice", b.Address)
		}
		seenB[b.Address.String()] = true
	}
	seenC := map[string]bool{}
	for _, cc := range c.Commands {
		if seenC[cc.Name] {
			return bad("check_command", "check %q defined twice", cc.Name)
		}
		seenC[cc.Name] = true
	}
	return nil
}

// ValidQueryBase says whether s can be query_base: a DN ending in o=grid or
// o=glue (the inventory checks roles.dns.updater.query_base with it).
func ValidQueryBase(s string) bool {
	l := strings.ToLower(strings.ReplaceAll(s, " ", ""))
	return l == "o=grid" || l == "o=glue" || strings.HasSuffix(l, ",o=grid") || strings.HasSuffix(l, ",o=glue")
}

// Marshal renders c in the format ParseConfig reads (the dns role writes
// this to /etc/gridha/dns-updater.conf). It does not contain the secret.
func (c *Config) Marshal() []byte {
	var b bytes.Buffer
	w := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	sec := func(d time.Duration) string {
		if d%time.Second == 0 {
			return strconv.FormatInt(int64(d/time.Second), 10) + "s"
		}
		return d.String()
	}
	b.WriteString("# gridha dns-updater configuration (see `gridha dns-updater --help`).\n")
	b.WriteString("# Managed by gridha: changes made by hand are reported by `gridha verify`\n")
	b.WriteString("# and replaced by the next `gridha install dns`.\n")
	w("zone", c.Zone)
	w("name", c.Name)
	w("ttl", sec(c.TTL))
	for _, p := range c.Primaries {
		w("primary", p)
	}
	if c.TSIGKeyName != "" {
		w("tsig_key_name", c.TSIGKeyName)
	}
	if c.TSIGAlgorithm != "" {
		w("tsig_algorithm", c.TSIGAlgorithm)
	}
	w("tsig_key_file", c.TSIGKeyFile)
	for _, bd := range c.BDIIs {
		port := bd.Port
		if port == 0 {
			port = DefaultBDIIPort
		}
		w("bdii", fmt.Sprintf("%s %s %d", bd.Name, bd.Address, port))
	}
	if c.Interval != 0 {
		w("interval", sec(c.Interval))
	}
	if c.FailAfter != 0 {
		w("fail_after", strconv.Itoa(c.FailAfter))
	}
	if c.RecoverAfter != 0 {
		w("recover_after", strconv.Itoa(c.RecoverAfter))
	}
	if c.Freshness != 0 {
		w("freshness", sec(c.Freshness))
	}
	if c.MinEntries != 0 {
		w("min_entries", strconv.Itoa(c.MinEntries))
	}
	if c.QueryBase != "" {
		w("query_base", c.QueryBase)
	}
	if c.CheckTimeout != 0 {
		w("check_timeout", sec(c.CheckTimeout))
	}
	if c.DNSTimeout != 0 {
		w("dns_timeout", sec(c.DNSTimeout))
	}
	for _, cc := range c.Commands {
		w("check_command", cc.Name+" "+strings.Join(cc.Argv, " "))
	}
	if c.StateFile != "" {
		w("state_file", c.StateFile)
	}
	return b.Bytes()
}

// TSIGKey is a loaded TSIG key.
type TSIGKey struct {
	Name      string // FQDN
	Algorithm string // dns.HmacSHA256
	Secret    string // base64, as miekg/dns wants it
}

var bindKeyRe = lazyre.New(`(?s)key\s+"?([A-Za-z0-9._-]+)"?\s*\{(.*?)\}\s*;`)
var bindAlgRe = lazyre.New(`algorithm\s+"?([A-Za-z0-9-]+)"?\s*;`)
var bindSecretRe = lazyre.New(`secret\s+"([A-Za-z0-9+/=]+)"\s*;`)

// LoadKey reads the TSIG secret from c.TSIGKeyFile: either the base64 secret
// alone or a BIND key file (`key "name" { algorithm hmac-sha256; secret
// "..."; };`, the file named includes). The file must not be readable by
// others nor writable by its group (0600, or 0640 root:bind for a file
// shared with named on the same host).
func (c *Config) LoadKey() (*TSIGKey, error) {
	fi, err := os.Stat(c.TSIGKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tsig key: %w", err)
	}
	if !c.SkipKeyModeCheck && fi.Mode().Perm()&0o037 != 0 {
		return nil, fmt.Errorf("tsig key %s: mode %04o is too open (want 0600, or 0640 when shared with named)",
			c.TSIGKeyFile, fi.Mode().Perm())
	}
	b, err := os.ReadFile(c.TSIGKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tsig key: %w", err)
	}
	k, err := ParseKey(b, c.TSIGKeyName, c.TSIGAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("tsig key %s: %w", c.TSIGKeyFile, err)
	}
	return k, nil
}

// ParseKey parses a key file's content; name and algorithm from the
// configuration must agree with a BIND key file's when both are given.
// Errors never contain the secret.
func ParseKey(b []byte, name, alg string) (*TSIGKey, error) {
	s := strings.TrimSpace(string(b))
	if alg == "" {
		alg = DefaultAlgorithm
	}
	k := &TSIGKey{Name: name}
	if m := bindKeyRe().FindStringSubmatch(s); m != nil {
		fileName := dns.Fqdn(strings.ToLower(m[1]))
		if name != "" && fileName != name {
			return nil, fmt.Errorf("key file names key %s, configuration says %s", fileName, name)
		}
		k.Name = fileName
		am := bindAlgRe().FindStringSubmatch(m[2])
		if am == nil {
			return nil, fmt.Errorf("key %s: no algorithm", fileName)
		}
		if strings.ToLower(am[1]) != alg {
			return nil, fmt.Errorf("key %s: algorithm %s, configuration says %s", fileName, am[1], alg)
		}
		sm := bindSecretRe().FindStringSubmatch(m[2])
		if sm == nil {
			return nil, fmt.Errorf("key %s: no secret \"...\"; statement", fileName)
		}
		s = sm[1]
	} else if strings.ContainsAny(s, " \t\n{};\"") {
		return nil, fmt.Errorf("neither a base64 secret nor a BIND key statement")
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("secret is not valid base64")
	}
	if len(raw) < 16 {
		return nil, fmt.Errorf("secret is too short (%d bytes; want 32 for hmac-sha256)", len(raw))
	}
	if k.Name == "" {
		return nil, fmt.Errorf("no key name: set tsig_key_name or use a BIND key file")
	}
	k.Algorithm = dns.HmacSHA256
	k.Secret = s
	return k, nil
}
