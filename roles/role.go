// Package roles turns an inventory into plans: one Role per kind of host
// (state-server, rb-node, bdii-client, dns, base), each composing the
// primitive steps of installer/steps. Reading a role should read like the
// slide of the notes it implements.
package roles

import (
	"fmt"
	"maps"
	"slices"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
)

// Options are the run-wide choices that change what a role plans.
type Options struct {
	// Limit restricts the plan to these inventory host names (nil: all).
	Limit []string
	// RotateKey asks the dns role to replace the TSIG key everywhere.
	RotateKey bool
	// StateFrom names the rb node whose local state wins when the shared copy
	// and a node's own state conflict (rb-node role).
	StateFrom string
	// ReadOnly is set for verify and --check: planning must not write
	// anything, not even on the admin machine (no key generation).
	ReadOnly bool
}

// Role plans the steps of one role for the hosts that play it.
type Role interface {
	// Name is the role's name in the inventory and on the command line.
	Name() string
	// Summary is one line for --help.
	Summary() string
	// Plan builds the phases for the role's hosts (honouring opts.Limit).
	Plan(inv *inventory.Inventory, opts Options) (*installer.Plan, error)
}

// Registry maps role names to roles.
type Registry struct {
	roles map[string]Role
}

// NewRegistry registers roles.
func NewRegistry(rs ...Role) *Registry {
	reg := &Registry{roles: map[string]Role{}}
	for _, r := range rs {
		reg.roles[r.Name()] = r
	}
	return reg
}

// Get returns the role called name, or an error listing the known ones.
func (reg *Registry) Get(name string) (Role, error) {
	if r, ok := reg.roles[name]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("unknown role %q (known roles: %v)", name, reg.Names())
}

// Names lists the registered roles, sorted.
func (reg *Registry) Names() []string {
	return slices.Sorted(maps.Keys(reg.roles))
}

// InLimit reports whether host passes opts.Limit.
func (o Options) InLimit(host string) bool {
	if len(o.Limit) == 0 {
		return true
	}
	for _, h := range o.Limit {
		if h == host {
			return true
		}
	}
	return false
}

// HostStep names one step of one host's plan.
type HostStep struct{ Host, Step string }

// StepRoles maps each host's step IDs to the role (names[i] planned
// plans[i]) whose plan holds it. A step several roles share (rb-node plans
// the state server's steps too) belongs to a role the host plays in inv
// (nil: no preference), else to the first role, as MergePlans keeps the
// first.
func StepRoles(inv *inventory.Inventory, names []string, plans []*installer.Plan) map[HostStep]string {
	out := map[HostStep]string{}
	plays := func(host, role string) bool {
		if inv == nil {
			return false
		}
		h := inv.Host(host)
		return h != nil && h.HasRole(role)
	}
	for _, own := range []bool{true, false} {
		for i, p := range plans {
			if p == nil || i >= len(names) {
				continue
			}
			for _, ph := range p.Phases {
				for h, steps := range ph.Steps {
					if own && !plays(h, names[i]) {
						continue
					}
					for _, s := range steps {
						k := HostStep{h, s.ID()}
						if _, ok := out[k]; !ok {
							out[k] = names[i]
						}
					}
				}
			}
		}
	}
	return out
}
