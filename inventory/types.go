// Package inventory reads and validates gridha.yaml: the hosts, how to reach
// them, which roles they play and the settings of each role. Validation is
// strict and happens before any host is touched; every error names
// file:line:col and the field.
package inventory

import "time"

// Pos is a position in the inventory file, for error messages.
type Pos struct {
	File   string
	Line   int
	Column int
}

// Inventory is a parsed, validated gridha.yaml.
type Inventory struct {
	Path       string // the file it was read from (absolute)
	Dir        string // its folder: relative paths in the file are relative to it
	SecretsDir string // absolute; where gridha keeps keys it generates (0700)
	Defaults   SSH
	Hosts      []*Host // in file order
	Roles      RoleSettings

	// resolve finds where a field is written (FieldPos); nil for an
	// inventory built in code.
	resolve func(path string) Pos
}

// FieldPos returns where the field path (hosts.rb1.address,
// roles.dns.zones[0].name) is written: its value, else the nearest
// enclosing entry that is written, else line 1 of the file. Errors found
// after loading (by the roles' planning) point at the file with it.
func (inv *Inventory) FieldPos(path string) Pos {
	if inv.resolve == nil {
		return Pos{File: inv.Path}
	}
	return inv.resolve(path)
}

// SSH says how to reach a host. Host entries override Defaults field by
// field; ~/.ssh/config fills what neither sets.
type SSH struct {
	User           string        `yaml:"user"`
	Port           int           `yaml:"port"`
	IdentityFile   string        `yaml:"identity_file"`
	KnownHosts     string        `yaml:"known_hosts"`
	ProxyJump      string        `yaml:"proxy_jump"`
	Become         string        `yaml:"become"` // "" or "sudo"
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// Host is one machine of the inventory.
type Host struct {
	Name     string   // inventory name, used in reports and --limit
	Address  string   // what gridha dials (IP or DNS name)
	Hostname string   // the host's own fully qualified name (default: Address)
	SSH      SSH      // merged with Defaults
	Roles    []string // role names, in file order
	Pos      Pos
}

// HasRole reports whether h plays role.
func (h *Host) HasRole(role string) bool {
	for _, r := range h.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Host returns the host named name, or nil.
func (inv *Inventory) Host(name string) *Host {
	for _, h := range inv.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// HostsWithRole lists the hosts playing role, in file order.
func (inv *Inventory) HostsWithRole(role string) []*Host {
	var out []*Host
	for _, h := range inv.Hosts {
		if h.HasRole(role) {
			out = append(out, h)
		}
	}
	return out
}

// RoleSettings holds the settings of each role; a role absent from the file
// gets its defaults. Each role's struct lives in its own file of this
// package (statesrv.go, rbnode.go, bdiiclient.go, dns.go).
type RoleSettings struct {
	StateServer StateServer `yaml:"state-server"`
	RBNode      RBNode      `yaml:"rb-node"`
	BDIIClient  BDIIClient  `yaml:"bdii-client"`
	DNS         DNS         `yaml:"dns"`
	Base        Base        `yaml:"base"`
}
