package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/report"
)

// Global flag names.
const (
	flagInventory   = "inventory"
	flagLimit       = "limit"
	flagConcurrency = "concurrency"
	flagCheck       = "check"
	flagDiff        = "diff"
	flagOutput      = "output"
	flagHostKey     = "host-key-policy"
	flagVerbose     = "verbose"
	flagNoColor     = "no-color"
)

// globalFlags returns fresh flag values (urfave/cli flags hold state, so
// the app and each command get their own): they are accepted both before
// and after the command, `gridha -i x.yaml verify` as `gridha verify -i x.yaml`.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagInventory, Aliases: []string{"i"}, Value: "./gridha.yaml", EnvVars: []string{"GRIDHA_INVENTORY"},
			Usage: "inventory `FILE`: hosts, how to reach them, their roles and role settings (what YAIM's site-info.def was)", TakesFile: true},
		&cli.StringFlag{Name: flagLimit, Aliases: []string{"l"},
			Usage: "only these inventory hosts: `HOST,...` (shell patterns allowed: 'rb*')"},
		&cli.IntFlag{Name: flagConcurrency, Value: installer.DefaultConcurrency,
			Usage: "hosts worked on at once (`N`)"},
		&cli.BoolFlag{Name: flagCheck,
			Usage: "install: dry run, report what would change and change nothing (exit 1 if anything would)"},
		&cli.BoolFlag{Name: flagDiff,
			Usage: "show unified diffs of the files that change (verify always shows drift diffs)"},
		&cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Value: "text",
			Usage: "report `FORMAT`: " + strings.Join(report.Formats, "|") + " (nagios: one plugin line, exit 0/1/2/3)"},
		&cli.StringFlag{Name: flagHostKey, Value: "strict",
			Usage: "SSH host keys (`POLICY`): strict (host must be in known_hosts) or accept-new (record unknown hosts; a changed key is always refused)"},
		&cli.BoolFlag{Name: flagVerbose, Aliases: []string{"v"},
			Usage: "list ok steps and every progress line (json, junit: progress on stderr)"},
		&cli.BoolFlag{Name: flagNoColor, EnvVars: []string{"GRIDHA_NO_COLOR"},
			Usage: "no colours even on a terminal (NO_COLOR is honoured too)"},
	}
}

// flagCtx finds the context where a global flag was set: on the command
// (`verify -i x`) or before it (`-i x verify`); the innermost wins. When it
// was set nowhere, the command's own default (the same value) is used.
func flagCtx(c *cli.Context, name string) *cli.Context {
	for _, x := range c.Lineage() {
		if x.Command == nil || !definesFlag(x.Command.Flags, name) {
			continue
		}
		if x.IsSet(name) {
			return x
		}
	}
	return c
}

func definesFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// globals are the global flags as the command sees them.
type globals struct {
	Inventory     string
	Limit         []string
	Concurrency   int
	Check         bool
	Diff          bool
	Output        string
	HostKeyPolicy string
	Verbose       bool
	NoColor       bool
}

func readGlobals(c *cli.Context) (globals, error) {
	g := globals{
		Inventory:     flagCtx(c, flagInventory).String(flagInventory),
		Limit:         splitLimit(flagCtx(c, flagLimit).String(flagLimit)),
		Concurrency:   flagCtx(c, flagConcurrency).Int(flagConcurrency),
		Check:         flagCtx(c, flagCheck).Bool(flagCheck),
		Diff:          flagCtx(c, flagDiff).Bool(flagDiff),
		Output:        flagCtx(c, flagOutput).String(flagOutput),
		HostKeyPolicy: flagCtx(c, flagHostKey).String(flagHostKey),
		Verbose:       flagCtx(c, flagVerbose).Bool(flagVerbose),
		NoColor:       flagCtx(c, flagNoColor).Bool(flagNoColor),
	}
	switch {
	case g.Concurrency < 1:
		return g, badInputf("--concurrency must be at least 1, got %d", g.Concurrency)
	case !slices.Contains(hostKeyPolicies(), g.HostKeyPolicy):
		return g, badInputf("--host-key-policy must be one of %s, got %q", strings.Join(hostKeyPolicies(), ", "), g.HostKeyPolicy)
	case !slices.Contains(report.Formats, g.Output):
		return g, badInputf("--output must be one of %s, got %q", strings.Join(report.Formats, ", "), g.Output)
	case g.Inventory == "":
		return g, badInputf("--inventory: no file given")
	}
	return g, nil
}

// splitLimit splits --limit rb1,rb2 (inventory.ResolveLimit checks the names).
func splitLimit(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
