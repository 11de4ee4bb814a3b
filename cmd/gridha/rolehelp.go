package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/pipeline"
	"github.com/gridha/gridha/report"
)

// roleHelp answers "install ROLE... --help" and "verify ROLE... --help"
// (handled is false for anything else): urfave/cli would take ROLE for a
// help topic and exit 3. It prints the command's help, then each role's
// settings as the inventory declares, defaults and validates them
// (inventory.Settings).
func roleHelp(ctx context.Context, app *cli.App, d Deps, args []string) (code int, handled bool) {
	if len(args) < 3 {
		return 0, false
	}
	i, cmd := commandAt(app, args)
	if cmd == nil || (cmd.Name != "install" && cmd.Name != "verify") {
		return 0, false
	}
	flags, roles, ok := splitArgs(cmd, args[i+1:])
	help := false
	for _, f := range flags {
		help = help || f == "-h" || f == "--help" || f == "-help"
	}
	if !ok || !help || len(roles) == 0 {
		return 0, false
	}
	if err := pipeline.CheckRoles(d.Registry, roles); err != nil {
		fmt.Fprint(d.Stderr, report.ErrorLines(err.Error()))
		return report.ExitBadInput, true
	}
	if err := app.RunContext(ctx, append(append([]string{}, args[:i+1]...), "--help")); err != nil {
		return exitCode(err), true
	}
	for _, r := range roles {
		fmt.Fprintln(d.Stdout)
		if err := inventory.WriteSettingsHelp(d.Stdout, r); err != nil {
			fmt.Fprint(d.Stderr, report.ErrorLines(err.Error()))
			return report.ExitBadInput, true
		}
	}
	return 0, true
}
