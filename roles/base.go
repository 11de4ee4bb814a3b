package roles

import (
	"fmt"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/templates"
)

// Base marks a host as managed by gridha: /etc/gridha/ (0755),
// /etc/gridha/host.conf rendered from base-host.conf.tmpl (inventory name,
// FQDN, roles, managed-by header), /var/lib/gridha/ (0700, where gridha keeps
// per-host state), and optionally a one-line /etc/motd. It is the smallest
// real role: the skeleton's tests and `make demo` use it.
type Base struct{}

// Base paths.
const (
	BaseConfDir  = "/etc/gridha"
	BaseHostConf = "/etc/gridha/host.conf"
	BaseStateDir = "/var/lib/gridha"
	BaseMotd     = "/etc/motd"
)

// Name implements Role.
func (Base) Name() string { return "base" }

// Summary implements Role.
func (Base) Summary() string {
	return "mark hosts as gridha-managed: /etc/gridha/host.conf, /var/lib/gridha, optional /etc/motd"
}

// BaseHostConfData is what base-host.conf.tmpl renders.
type BaseHostConfData struct {
	Name     string
	Hostname string
	Roles    []string
}

// Plan implements Role: one phase, the same steps on every base host.
func (Base) Plan(inv *inventory.Inventory, opts Options) (*installer.Plan, error) {
	ph := installer.Phase{Name: "base", Steps: map[string][]installer.Step{}}
	for _, h := range inv.HostsWithRole("base") {
		if !opts.InLimit(h.Name) {
			continue
		}
		hostname := h.Hostname
		if hostname == "" {
			hostname = h.Address
		}
		conf, err := templates.Render("base-host.conf.tmpl", BaseHostConfData{Name: h.Name, Hostname: hostname, Roles: h.Roles})
		if err != nil {
			return nil, fmt.Errorf("base: %s: %w", h.Name, err)
		}
		s := []installer.Step{
			steps.Dir{Path: BaseConfDir, Mode: 0o755, Owner: "root", Group: "root"},
			steps.File{Path: BaseHostConf, Content: conf, Mode: 0o644, Owner: "root", Group: "root", Backup: true},
			steps.Dir{Path: BaseStateDir, Mode: 0o700, Owner: "root", Group: "root"},
		}
		if motd := inv.Roles.Base.Motd; motd != "" {
			s = append(s, steps.File{Path: BaseMotd, Content: []byte(motd + "\n"), Mode: 0o644, Owner: "root", Group: "root", Backup: true})
		}
		ph.Steps[h.Name] = s
	}
	return &installer.Plan{Phases: []installer.Phase{ph}}, nil
}
