package main

import (
	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/pipeline"
)

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
			if err := pipeline.Check(d.Env, g.Inventory); err != nil {
				return badInput(err)
			}
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
		Flags:        globalFlags(),
		BashComplete: completeRoles(d),
		Action: func(c *cli.Context) error {
			names, err := roleArgs(c)
			if err != nil {
				return err
			}
			// Role names need no inventory: say so before reading flags.
			if err := pipeline.CheckRoles(d.Registry, names); err != nil {
				return badInput(err)
			}
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			if err := pipeline.Plan(d.Env, g.Inventory, g.Limit, names); err != nil {
				return badInput(err)
			}
			return nil
		},
	}
}
