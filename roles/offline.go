package roles

import (
	"fmt"
	"github.com/gridha/gridha/internal/lazyre"
	"strings"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
)

// PlanEach plans every named role read-only (opts.ReadOnly is forced: no
// key is generated, nothing is written) and, unlike a run, which stops at
// the first role that cannot be planned, collects every role's error, so
// that `gridha check` shows all mistakes at once. Planning never touches
// the network: it reads the inventory and the admin machine's key files.
// plans[i] is nil when names[i] failed; err is a PlanErrors or nil.
func PlanEach(reg *Registry, inv *inventory.Inventory, names []string, opts Options) (plans []*installer.Plan, err error) {
	opts.ReadOnly = true
	var errs PlanErrors
	for _, n := range names {
		role, gerr := reg.Get(n)
		if gerr != nil {
			errs.add(inv, n, gerr)
			plans = append(plans, nil)
			continue
		}
		p, perr := role.Plan(inv, opts)
		if perr != nil {
			errs.add(inv, n, perr)
			p = nil
		}
		plans = append(plans, p)
	}
	if len(errs) > 0 {
		return plans, errs
	}
	return plans, nil
}

// PlanError is one mistake found while planning, with the roles that found
// it (rb-node plans the state server's steps too, so both report a bad
// state-server setting) and where in the inventory the field it names is.
type PlanError struct {
	Pos   inventory.Pos // zero when the message names no inventory field
	Roles []string
	Msg   string
}

func (e *PlanError) Error() string {
	where := ""
	if e.Pos.File != "" {
		where = e.Pos.String() + ": "
	}
	return fmt.Sprintf("%srole %s: %s", where, strings.Join(e.Roles, ", "), e.Msg)
}

// PlanErrors are every role's mistakes, one per line.
type PlanErrors []*PlanError

func (l PlanErrors) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// fieldRe finds an inventory field path in a message.
var fieldRe = lazyre.New(`\b(?:roles|hosts|defaults)\.[A-Za-z0-9_.\[\]-]*[A-Za-z0-9_\]]`)

func (l *PlanErrors) add(inv *inventory.Inventory, role string, err error) {
	msg := err.Error()
	// Roles prefix their own name ("dns: ..."): the PlanError names it.
	msg = strings.TrimPrefix(msg, role+": ")
	for _, e := range *l {
		if e.Msg == msg {
			e.Roles = append(e.Roles, role)
			return
		}
	}
	pe := &PlanError{Roles: []string{role}, Msg: msg}
	if f := fieldRe().FindString(msg); f != "" && inv != nil {
		pe.Pos = inv.FieldPos(f)
	}
	*l = append(*l, pe)
}

// PlayedRoles lists the registered roles some host within hosts (nil: all
// hosts) plays, in inventory order, and the roles hosts play that reg does
// not know.
func PlayedRoles(reg *Registry, inv *inventory.Inventory, hosts []string) (known, unknown []string) {
	seen := map[string]bool{}
	in := map[string]bool{}
	for _, h := range hosts {
		in[h] = true
	}
	for _, h := range inv.Hosts {
		if hosts != nil && !in[h.Name] {
			continue
		}
		for _, r := range h.Roles {
			if seen[r] {
				continue
			}
			seen[r] = true
			if _, err := reg.Get(r); err != nil {
				unknown = append(unknown, r)
			} else {
				known = append(known, r)
			}
		}
	}
	return known, unknown
}
