package pipeline

import (
	"fmt"
	"strings"

	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/roles"
)

// Check validates the inventory at path and plans, read-only, every role
// its hosts play, writing one summary line to env.Stdout. Nothing is
// written and no host is contacted; every error is bad input (exit 3).
func Check(env Env, path string) error {
	inv, err := LoadInventory(path)
	if err != nil {
		return err
	}
	names, unknown := roles.PlayedRoles(env.Registry, inv, nil)
	if len(unknown) > 0 {
		fmt.Fprintf(env.Stderr, "gridha: warning: this gridha has no role %s (played in %s); not checked\n", strings.Join(unknown, ", "), inv.Path)
	}
	plans, err := roles.PlanEach(env.Registry, inv, names, roles.Options{})
	if err != nil {
		return err
	}
	var parts []string
	for i, p := range plans {
		n := 0
		for _, ph := range p.Phases {
			for _, ss := range ph.Steps {
				n += len(ss)
			}
		}
		parts = append(parts, fmt.Sprintf("%s (%d hosts, %d steps)", names[i], len(p.Hosts()), n))
	}
	summary := "no host plays a role"
	if len(parts) > 0 {
		summary = "roles " + strings.Join(parts, ", ")
	}
	fmt.Fprintf(env.Stdout, "%s: ok: %d hosts; %s\n", inv.Path, len(inv.Hosts), summary)
	return nil
}

// Plan writes to env.Stdout the steps each host within limit would get
// from names (none: every role some host plays), phase by phase with the
// role that planned each. Nothing is written and no host is contacted;
// every error is bad input (exit 3).
func Plan(env Env, path string, limit, names []string) error {
	if err := CheckRoles(env.Registry, names); err != nil {
		return err
	}
	inv, err := LoadInventory(path)
	if err != nil {
		return err
	}
	hosts, err := inv.ResolveLimit(limit)
	if err != nil {
		return err
	}
	opts := roles.Options{}
	if len(limit) > 0 {
		opts.Limit = hosts
	}
	if len(names) == 0 {
		names, _ = roles.PlayedRoles(env.Registry, inv, hosts)
	}
	names = dedupe(names)
	plans, err := roles.PlanEach(env.Registry, inv, names, opts)
	if err != nil {
		return err
	}
	stepRoles := roles.StepRoles(inv, names, plans)
	plan, err := roles.MergePlans(names, plans)
	if err != nil {
		return err
	}
	if len(plan.Hosts()) == 0 {
		return fmt.Errorf("no host in %s plays role %s: nothing to plan", inv.Path, strings.Join(names, ", "))
	}
	describe := func(host string) string {
		h := inv.Host(host)
		if h == nil {
			return ""
		}
		return h.Address + "; " + strings.Join(h.Roles, ", ")
	}
	roleOf := func(host, step string) string { return stepRoles[roles.HostStep{Host: host, Step: step}] }
	return report.WritePlan(env.Stdout, plan, describe, roleOf)
}
