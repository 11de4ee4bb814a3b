package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/roles"
)

// loadInventory reads the inventory of g, with the hint commands give when
// there is none.
func loadInventory(g globals) (*inventory.Inventory, error) {
	inv, err := inventory.Load(g.Inventory)
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w (give the inventory with -i FILE or GRIDHA_INVENTORY; commented examples are in inventory-examples/)", err)
	}
	return inv, err
}

func checkCommand(d Deps) *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate the inventory and every role's settings offline (no host is contacted)",
		ArgsUsage: " ",
		Description: `Reads the inventory, checks every key and value (every mistake at once, as
file:line:col: field: what is wrong), then plans every role the hosts play as
install would, without writing anything or contacting any host: a missing key
file or a setting a role cannot use is found here. Exit 0 when all is well, 3
otherwise. Like ansible-playbook --syntax-check; for CI and before a change.`,
		Flags: globalFlags(),
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return badInputf("check takes no arguments (it checks every role of the inventory), got %q", c.Args().First())
			}
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			inv, err := loadInventory(g)
			if err != nil {
				return badInput(err)
			}
			names, unknown := roles.PlayedRoles(d.Registry, inv, nil)
			if len(unknown) > 0 {
				fmt.Fprintf(d.Stderr, "gridha: warning: this gridha has no role %s (played in %s); not checked\n", strings.Join(unknown, ", "), inv.Path)
			}
			plans, err := roles.PlanEach(d.Registry, inv, names, roles.Options{})
			if err != nil {
				return badInput(err)
			}
			var parts []string
			steps := 0
			for i, p := range plans {
				n := 0
				for _, ph := range p.Phases {
					for _, ss := range ph.Steps {
						n += len(ss)
					}
				}
				steps += n
				parts = append(parts, fmt.Sprintf("%s (%d hosts, %d steps)", names[i], len(p.Hosts()), n))
			}
			summary := "no host plays a role"
			if len(parts) > 0 {
				summary = "roles " + strings.Join(parts, ", ")
			}
			fmt.Fprintf(d.Stdout, "%s: ok: %d hosts; %s\n", inv.Path, len(inv.Hosts), summary)
			return nil
		},
	}
}

func planCommand(d Deps) *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "list the steps each host would get, offline (no host is contacted)",
		ArgsUsage: "[ROLE...]",
		Description: `Plans ROLE (default: every role some host plays) for the hosts within --limit
and lists, per host, the steps install and verify would run, phase by phase, each
with the role that planned it. Nothing is written and no host is contacted, so it
cannot say which steps would change anything: install ROLE --check does. Like
ansible-playbook --list-hosts --list-tasks. Exit 0, or 3 on bad input.`,
		Flags: globalFlags(),
		BashComplete: func(c *cli.Context) {
			for _, n := range d.Registry.Names() {
				fmt.Fprintln(c.App.Writer, n)
			}
		},
		Action: func(c *cli.Context) error {
			names := c.Args().Slice()
			if err := noStrayFlags(names); err != nil {
				return err
			}
			if err := checkRoles(d, names); err != nil {
				return badInput(err)
			}
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			inv, err := loadInventory(g)
			if err != nil {
				return badInput(err)
			}
			hosts, err := inv.ResolveLimit(g.Limit)
			if err != nil {
				return badInput(err)
			}
			opts := roles.Options{}
			if len(g.Limit) > 0 {
				opts.Limit = hosts
			}
			if len(names) == 0 {
				names, _ = roles.PlayedRoles(d.Registry, inv, hosts)
			}
			names = dedupe(names)
			plans, err := roles.PlanEach(d.Registry, inv, names, opts)
			if err != nil {
				return badInput(err)
			}
			stepRoles := roles.StepRoles(inv, names, plans)
			plan, err := roles.MergePlans(names, plans)
			if err != nil {
				return badInput(err)
			}
			if len(plan.Hosts()) == 0 {
				return badInputf("no host in %s plays role %s: nothing to plan", inv.Path, strings.Join(names, ", "))
			}
			describe := func(host string) string {
				h := inv.Host(host)
				if h == nil {
					return ""
				}
				return h.Address + "; " + strings.Join(h.Roles, ", ")
			}
			roleOf := func(host, step string) string { return stepRoles[roles.HostStep{Host: host, Step: step}] }
			return report.WritePlan(d.Stdout, plan, describe, roleOf)
		},
	}
}
