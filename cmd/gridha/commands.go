package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/roles"
)

func roleList(reg *roles.Registry) string {
	var b strings.Builder
	names := reg.Names()
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		r, _ := reg.Get(n)
		fmt.Fprintf(&b, "  %-*s  %s\n", width, n, r.Summary())
	}
	return b.String()
}

func installCommand(d Deps) *cli.Command {
	return &cli.Command{
		Name:      "install",
		Usage:     "converge the hosts playing a role to what the inventory says",
		ArgsUsage: "ROLE [ROLE...]",
		Description: `Brings every host that plays ROLE (in the inventory, within --limit) to the state the
inventory describes, over SSH, one connection per host. Each step checks first and
changes only what differs, so a second run reports no change. This is what the old
one-shot scripts did: rb-state-server on the state server, rb-ha-install-helper on
the rb nodes, YAIM (site-info.def: BDII_LIST) for the BDII clients, but repeatable.

With --check nothing is written: the report says what would change (exit 1 if
anything would), with --diff the unified diff of each file.

Roles:
` + roleList(d.Registry) + `
Several roles run together, phase by phase. A per-host lock stops two gridha runs
from converging the same host at once.`,
		Flags: append(globalFlags(),
			&cli.BoolFlag{Name: "rotate-key", Usage: "dns role: generate a new TSIG key and switch every host to it (primaries accept both until every updater switched); rb-node role: the same for the hagd key (every node accepts both until every node signs with the new one)"},
			&cli.StringFlag{Name: "state-from", Usage: "rb-node role: the rb `NODE` whose local state wins when it and the state server's copy disagree"},
		),
		BashComplete: completeRoles(d),
		Action: func(c *cli.Context) error {
			names, err := roleArgs(c)
			if err != nil {
				return err
			}
			if len(names) == 0 {
				return badInputf("install: which role? one of %s (gridha install --help)", strings.Join(d.Registry.Names(), ", "))
			}
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			mode := installer.ModeApply
			if g.Check {
				mode = installer.ModeCheck
			}
			return execute(c, d, g, job{
				command:   "install " + strings.Join(names, " "),
				mode:      mode,
				roles:     names,
				rotateKey: c.Bool("rotate-key"),
				stateFrom: c.String("state-from"),
			})
		},
	}
}

func verifyCommand(d Deps) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "audit the hosts against the inventory, writing nothing (cron, CI, Nagios)",
		ArgsUsage: "[ROLE...]",
		Description: `Runs every check of ROLE (default: every role some host plays in the inventory)
on every host within --limit, and reports per host and step: ok, drift (expected
vs found; for files a unified diff, secrets redacted), missing, failed,
unreachable. Nothing is written on any host. All facts a host's checks need are
gathered in one SSH session over one connection.

Exit codes: 0 all ok, 1 drift or missing found, 2 a check failed or a host was
unreachable, 3 bad input, 130 interrupted.
--output nagios prints one plugin line: OK (0), WARNING (1: drift/missing: the
setup differs from the inventory), CRITICAL (2: failed/unreachable), UNKNOWN (3).
--output junit writes a test suite per host for CI; --output json one document.

Roles:
` + strings.TrimRight(roleList(d.Registry), "\n"),
		Flags:        globalFlags(),
		BashComplete: completeRoles(d),
		Action: func(c *cli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			names, err := roleArgs(c)
			if err != nil {
				return err
			}
			cmd := "verify"
			if len(names) > 0 {
				cmd += " " + strings.Join(names, " ")
			}
			return execute(c, d, g, job{command: cmd, mode: installer.ModeAudit, roles: names, all: len(names) == 0})
		},
	}
}

func completionCommand() *cli.Command {
	scripts := map[string]string{"bash": bashCompletion, "zsh": zshCompletion}
	shells := completionShells()
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: source <(gridha completion bash)",
		ArgsUsage: strings.Join(shells, "|"),
		BashComplete: func(c *cli.Context) {
			for _, s := range shells {
				fmt.Fprintln(c.App.Writer, s)
			}
		},
		Action: func(c *cli.Context) error {
			sh := c.Args().First()
			s, ok := scripts[sh]
			if !ok || c.NArg() != 1 {
				return badInputf("completion: which shell? one of %s", strings.Join(shells, ", "))
			}
			fmt.Fprint(c.App.Writer, s)
			return nil
		},
	}
}

// noStrayFlags catches a flag left among the role names (only "-i" at the
// very end, without its value, gets there).
// completeRoles completes ROLE arguments: the registered roles.
func completeRoles(d Deps) cli.BashCompleteFunc {
	return func(c *cli.Context) {
		for _, n := range d.Registry.Names() {
			fmt.Fprintln(c.App.Writer, n)
		}
	}
}

// roleArgs are the command's ROLE arguments, none of them a flag.
func roleArgs(c *cli.Context) ([]string, error) {
	names := c.Args().Slice()
	return names, noStrayFlags(names)
}

func noStrayFlags(args []string) error {
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return badInputf("flag %s needs a value (see gridha --help)", a)
		}
	}
	return nil
}
