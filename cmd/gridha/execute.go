package main

import (
	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/pipeline"
)

// job is what install or verify asked for, besides the global flags.
type job struct {
	command   string // "install base", "verify"
	mode      installer.Mode
	roles     []string
	all       bool // verify: every role some host plays
	rotateKey bool
	stateFrom string
}

// execute runs install, install --check or verify (pipeline.Execute) and
// turns its outcome into the command's exit.
func execute(c *cli.Context, d Deps, g globals, j job) error {
	code, err := pipeline.Execute(c.Context, d.Env, pipeline.Request{
		Command:       j.command,
		Mode:          j.mode,
		Roles:         j.roles,
		All:           j.all,
		RotateKey:     j.rotateKey,
		StateFrom:     j.stateFrom,
		Inventory:     g.Inventory,
		Limit:         g.Limit,
		Concurrency:   g.Concurrency,
		Diff:          g.Diff,
		Verbose:       g.Verbose,
		NoColor:       g.NoColor,
		Output:        g.Output,
		HostKeyPolicy: g.HostKeyPolicy,
	})
	if code == 0 && err == nil {
		return nil
	}
	// err, when set, is for Run to print; the reporter said all others.
	return &exitError{code: code, err: err}
}
