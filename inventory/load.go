package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/gridha/gridha/internal/lazyre"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultConnectTimeout is used when neither defaults nor a host set
// connect_timeout.
const DefaultConnectTimeout = 10 * time.Second

// document is the file's top level, decoded by the generic decoder.
type document struct {
	Defaults   SSH                   `yaml:"defaults"`
	SecretsDir string                `yaml:"secrets_dir"`
	Hosts      OrderedMap[hostEntry] `yaml:"hosts"`
	Roles      RoleSettings          `yaml:"roles"`
}

// hostEntry is one host as written: its own keys plus any SSH key.
type hostEntry struct {
	Address  string   `yaml:"address"`
	Hostname string   `yaml:"hostname"`
	Roles    []string `yaml:"roles"`
	SSH      `yaml:",inline"`
}

// Load reads and validates the inventory at path. On any mistake it returns
// a nil Inventory and an ErrorList naming every mistake found
// (file:line:col: field: what is wrong). It touches no host.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return Parse(path, data)
}

// KnownRoles lists the role names an inventory may use, in the order of
// RoleSettings.
func KnownRoles() []string {
	t := reflect.TypeFor[RoleSettings]()
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

var yamlLineRe = lazyre.New(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the messages of yaml's parser (parserc.go), as
// opposed to its scanner. yaml (gopkg.in/yaml.v3 and go.yaml.in/yaml/v3 up
// to v3.0.6 at least) adds one to the 0-based line of scanner errors only:
// a parser error on line 4 comes out as "line 3", and one on the first line
// with no line at all. The error is a plain string, so the kind is told by
// its message.
var yamlParserProblems = []string{
	"did not find expected ",
	"found undefined tag handle",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

func yamlParserProblem(msg string) bool {
	for _, p := range yamlParserProblems {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// syntaxError turns a yaml.v3 parse error into an ErrorList (yaml.v3 gives
// the line but not the column), with the line counted from 1.
func syntaxError(file string, err error) error {
	msg := err.Error()
	p := Pos{File: file}
	if m := yamlLineRe().FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if yamlParserProblem(msg) {
			p.Line++
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
		if yamlParserProblem(msg) {
			p.Line = 1
		}
	}
	return ErrorList{{Pos: p, Msg: "YAML syntax: " + msg}}
}

// readYAML parses one YAML document. yaml.v3 is not expected to panic, but
// an inventory is user input: a panic becomes an error.
func readYAML(file string, data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, ErrorList{{Pos: Pos{File: file}, Msg: fmt.Sprintf("YAML syntax: %v", r)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, ErrorList{{Pos: Pos{File: file, Line: extra.Line, Column: extra.Column},
			Msg: "a second YAML document: an inventory is one document (remove the ---)"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(file, err)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return nil, nil
}

// Parse validates an inventory held in data; file names it in errors and
// its folder is the base of relative paths.
func Parse(file string, data []byte) (*Inventory, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = filepath.Clean(file)
	}
	inv := &Inventory{Path: abs, Dir: filepath.Dir(abs)}
	d := newDecoder(file, inv.Dir)

	root, err := readYAML(file, data)
	if err != nil {
		return nil, err
	}
	var doc document
	if root != nil {
		d.decode(root, reflect.ValueOf(&doc).Elem(), "")
	}

	// secrets_dir and defaults.
	inv.SecretsDir = absPath("secrets", inv.Dir)
	if doc.SecretsDir != "" {
		inv.SecretsDir = absPath(doc.SecretsDir, inv.Dir)
	}
	inv.Defaults = doc.Defaults
	d.checkSSH(&inv.Defaults, "defaults", func(string) bool { return true })
	if _, set := d.pos["defaults.connect_timeout"]; !set || inv.Defaults.ConnectTimeout == 0 {
		inv.Defaults.ConnectTimeout = DefaultConnectTimeout
	}

	d.buildHosts(inv, doc.Hosts)

	// Role settings: defaults for all; validation for the roles the file
	// mentions (a section under roles:, or a host playing the role).
	rv := reflect.ValueOf(&doc.Roles).Elem()
	rt := rv.Type()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("yaml"), ",")
		path := "roles." + name
		d.setDefaults(rv.Field(i), path)
		if _, written := d.pos[path]; written || len(inv.HostsWithRole(name)) > 0 {
			d.validate(rv.Field(i), path, inv)
		}
	}
	inv.Roles = doc.Roles

	if len(d.errs) > 0 {
		return nil, d.errs.sortAndCap()
	}
	inv.resolve = func(path string) Pos { return d.resolve("", path) }
	return inv, nil
}

var hostNameRe = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (d *decoder) buildHosts(inv *Inventory, entries OrderedMap[hostEntry]) {
	if len(entries) == 0 && !d.bad["hosts"] {
		d.errorAt(d.resolve("hosts", ""), "hosts", "no hosts: list at least one host under hosts:")
		return
	}
	known := KnownRoles()
	type seenAt struct {
		host string
		line int
	}
	addrs := map[string]seenAt{}
	fqdns := map[string]seenAt{}
	for _, e := range entries {
		path := joinPath("hosts", e.Name)
		hp := d.resolve(path, "")
		at := func(field string) Pos { return d.resolve(path, field) }
		has := func(key string) bool { _, ok := d.pos[joinPath(path, key)]; return ok }
		h := &Host{Name: e.Name, Address: e.Value.Address, Hostname: e.Value.Hostname, Roles: e.Value.Roles, Pos: hp}
		if fp, ok := d.pos[path]; ok && fp.Key.Line > 0 {
			h.Pos = fp.Key
		}

		if !hostNameRe().MatchString(e.Name) {
			d.errorAt(h.Pos, path, "host name %s may only hold letters, digits, '.', '-' and '_'", quoteValue(e.Name))
		}

		// address and hostname.
		switch {
		case h.Address == "":
			if !d.bad[path+".address"] && !d.bad[path] {
				d.errorAt(h.Pos, path+".address", "required: the IP address or DNS name gridha connects to")
			}
		case !isIPOrDNSName(h.Address):
			d.errorAt(at("address"), path+".address", "%s is neither an IP address nor a DNS name", quoteValue(h.Address))
		default:
			k := strings.ToLower(h.Address)
			if net.ParseIP(h.Address) != nil {
				k = net.ParseIP(h.Address).String()
			}
			port := e.Value.Port
			if !has("port") {
				port = inv.Defaults.Port
			}
			if port == 0 {
				port = 22
			}
			k += "|" + strconv.Itoa(port)
			if first, dup := addrs[k]; dup {
				d.errorAt(at("address"), path+".address", "address %s is also host %s's (line %d)", h.Address, first.host, first.line)
			} else {
				addrs[k] = seenAt{e.Name, h.Pos.Line}
			}
		}
		if h.Hostname != "" {
			if !isDNSName(h.Hostname) {
				d.errorAt(at("hostname"), path+".hostname", "%s is not a DNS name", quoteValue(h.Hostname))
			} else if first, dup := fqdns[strings.ToLower(h.Hostname)]; dup {
				d.errorAt(at("hostname"), path+".hostname", "hostname %s is also host %s's (line %d)", h.Hostname, first.host, first.line)
			} else {
				fqdns[strings.ToLower(h.Hostname)] = seenAt{e.Name, h.Pos.Line}
			}
		} else {
			h.Hostname = h.Address
		}

		// roles.
		seen := map[string]bool{}
		for i, r := range h.Roles {
			rp := fmt.Sprintf("%s.roles[%d]", path, i)
			switch {
			case seen[r]:
				d.errorAt(at(fmt.Sprintf("roles[%d]", i)), rp, "role %s is listed twice", quoteValue(r))
			case !slices.Contains(known, r):
				if s := Nearest(r, known); s != "" {
					d.errorAt(at(fmt.Sprintf("roles[%d]", i)), rp, "unknown role %s, did you mean %s?", quoteValue(r), quoteValue(s))
				} else {
					d.errorAt(at(fmt.Sprintf("roles[%d]", i)), rp, "unknown role %s (known roles: %s)", quoteValue(r), strings.Join(known, ", "))
				}
			}
			seen[r] = true
		}

		// SSH: the host's own keys are checked where written, then merged
		// over the defaults field by field (a key written on the host wins,
		// even when empty: `become: ""` turns off a default sudo).
		own := e.Value.SSH
		d.checkSSH(&own, path, has)
		h.SSH = mergeSSH(inv.Defaults, own, has)
		inv.Hosts = append(inv.Hosts, h)
	}
}

// checkSSH validates and normalises (absolute paths) the SSH keys written
// at path; has says which keys were written there.
func (d *decoder) checkSSH(s *SSH, path string, has func(key string) bool) {
	at := func(key string) Pos { return d.resolve(path, key) }
	written := func(key string) bool {
		_, ok := d.pos[joinPath(path, key)]
		return ok && has(key) && !d.bad[joinPath(path, key)]
	}
	if written("port") && (s.Port < 1 || s.Port > 65535) {
		d.errorAt(at("port"), path+".port", "%d is not a port number (1..65535)", s.Port)
	}
	if written("become") && s.Become != "" && s.Become != "sudo" {
		d.errorAt(at("become"), path+".become", "must be \"\" or \"sudo\", got %s", quoteValue(s.Become))
	}
	if written("connect_timeout") && s.ConnectTimeout <= 0 {
		d.errorAt(at("connect_timeout"), path+".connect_timeout", "must be more than 0s, got %s", s.ConnectTimeout)
	}
	if written("user") && strings.ContainsAny(s.User, " \t\n@:") {
		d.errorAt(at("user"), path+".user", "%s is not a user name", quoteValue(s.User))
	}
	if written("proxy_jump") && s.ProxyJump != "" {
		switch {
		case strings.Contains(s.ProxyJump, ","):
			d.errorAt(at("proxy_jump"), path+".proxy_jump", "only one jump host is supported, got %s", quoteValue(s.ProxyJump))
		case strings.ContainsAny(s.ProxyJump, " \t\n"):
			d.errorAt(at("proxy_jump"), path+".proxy_jump", "%s is not [user@]host[:port]", quoteValue(s.ProxyJump))
		}
	}
	for _, f := range []struct {
		key  string
		val  *string
		what string
	}{{"identity_file", &s.IdentityFile, "identity file"}, {"known_hosts", &s.KnownHosts, "known_hosts file"}} {
		if *f.val == "" || !written(f.key) {
			continue
		}
		*f.val = absPath(*f.val, d.dir)
		fi, err := os.Stat(*f.val)
		switch {
		case err != nil && errors.Is(err, os.ErrNotExist) && f.key == "known_hosts":
			// --host-key-policy accept-new creates it; strict mode
			// refuses every host of an empty list at dial, naming it.
			if _, derr := os.Stat(filepath.Dir(*f.val)); derr != nil {
				d.errorAt(at(f.key), joinPath(path, f.key), "%s %s: its folder does not exist", f.what, *f.val)
			}
		case err != nil && errors.Is(err, os.ErrNotExist):
			d.errorAt(at(f.key), joinPath(path, f.key), "%s %s does not exist", f.what, *f.val)
		case err != nil:
			d.errorAt(at(f.key), joinPath(path, f.key), "%s: %v", f.what, err)
		case fi.IsDir():
			d.errorAt(at(f.key), joinPath(path, f.key), "%s %s is a directory", f.what, *f.val)
		}
	}
}

// mergeSSH lays the keys a host wrote over the defaults.
func mergeSSH(def, own SSH, has func(key string) bool) SSH {
	out := def
	ov, dv := reflect.ValueOf(&out).Elem(), reflect.ValueOf(own)
	t := ov.Type()
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if has(key) {
			ov.Field(i).Set(dv.Field(i))
		}
	}
	return out
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}

// absPath expands ~/ and makes p absolute against dir.
func absPath(p, dir string) string {
	p = expandHome(p)
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return filepath.Clean(p)
}

func isIPOrDNSName(s string) bool {
	return net.ParseIP(s) != nil || isDNSName(s)
}

// isDNSName checks host name syntax (RFC 1123 labels; a trailing dot is
// allowed).
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	// All-numeric names are mistyped IP addresses, not host names.
	return strings.Trim(s, "0123456789.") != ""
}
