package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/roles"
)

// job is what install or verify asked for.
type job struct {
	command   string // "install base", "verify"
	mode      installer.Mode
	roles     []string
	all       bool // verify: every role some host plays
	rotateKey bool
	stateFrom string
}

// execute is the one pipeline of install, install --check and verify:
// inventory → roles → plan → installer.Run → reporter → exit code.
// Everything that can be wrong with the input is found before any host is
// dialled.
func execute(c *cli.Context, d Deps, g globals, j job) error {
	ctx := c.Context
	secrets := &installer.Redactor{}
	// stepRoles is filled once the plans exist; the prometheus format
	// labels its counts with it.
	var stepRoles map[roles.HostStep]string
	tty, width := d.Terminal(d.Stdout)
	text := g.Output == "text"
	rep, err := report.New(g.Output, report.Options{
		Out:         d.Stdout,
		Err:         d.Stderr,
		Color:       text && tty && !g.NoColor && d.Getenv("NO_COLOR") == "",
		Live:        text && tty,
		Width:       width,
		Diff:        g.Diff,
		Verbose:     g.Verbose,
		Secrets:     secrets,
		Now:         d.Now,
		Command:     j.command,
		Mode:        j.mode,
		Version:     d.Version,
		Interrupted: func() bool { return ctx.Err() != nil },
		RoleOf:      func(host, step string) string { return stepRoles[roles.HostStep{Host: host, Step: step}] },
	})
	if err != nil {
		return badInput(err)
	}
	abort := func(err error, code int) error {
		return &exitError{code: rep.Abort(err, code), err: &printedError{err}}
	}

	if !j.all {
		// Role names need no inventory: say so first.
		if err := checkRoles(d, j.roles); err != nil {
			return abort(err, report.ExitBadInput)
		}
	}
	inv, err := inventory.Load(g.Inventory)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w (give the inventory with -i FILE or GRIDHA_INVENTORY; commented examples are in inventory-examples/)", err)
		}
		return abort(err, report.ExitBadInput)
	}
	hosts, err := inv.ResolveLimit(g.Limit)
	if err != nil {
		return abort(err, report.ExitBadInput)
	}
	ropts := roles.Options{RotateKey: j.rotateKey, StateFrom: j.stateFrom, ReadOnly: j.mode != installer.ModeApply}
	if len(g.Limit) > 0 {
		ropts.Limit = hosts
	}
	if j.stateFrom != "" && inv.Host(j.stateFrom) == nil {
		var names []string
		for _, h := range inv.Hosts {
			names = append(names, h.Name)
		}
		msg := fmt.Sprintf("--state-from: no host %q in %s", j.stateFrom, inv.Path)
		if s := inventory.Nearest(j.stateFrom, names); s != "" {
			msg += fmt.Sprintf(", did you mean %q?", s)
		}
		return abort(errors.New(msg), report.ExitBadInput)
	}

	names, err := pickRoles(d, inv, hosts, j)
	if err != nil {
		return abort(err, report.ExitBadInput)
	}
	var plans []*installer.Plan
	for _, n := range names {
		role, _ := d.Registry.Get(n)
		p, err := role.Plan(inv, ropts)
		if err != nil {
			return abort(fmt.Errorf("%s: %w", n, err), report.ExitBadInput)
		}
		plans = append(plans, p)
	}
	stepRoles = roles.StepRoles(inv, names, plans)
	plan, err := roles.MergePlans(names, plans)
	if err != nil {
		return abort(err, report.ExitBadInput)
	}
	if len(plan.Hosts()) == 0 {
		where := ""
		if len(g.Limit) > 0 {
			where = " within --limit " + strings.Join(hosts, ",")
		}
		return abort(fmt.Errorf("no host in %s plays role %s%s: nothing to do", inv.Path, strings.Join(names, ", "), where), report.ExitBadInput)
	}

	dialer, err := d.NewDialer(inv, DialOptions{HostKeyPolicy: g.HostKeyPolicy, Log: func(format string, args ...any) {
		fmt.Fprintf(d.Stderr, "gridha: "+format+"\n", args...)
	}})
	if err != nil {
		return abort(err, report.ExitBadInput)
	}

	if ctx.Err() != nil {
		return abort(errors.New("interrupted before any host was contacted"), report.ExitInterrupted)
	}
	r, runErr := installer.Run(ctx, dialer, plan, installer.RunOptions{
		Mode:        j.mode,
		Diff:        g.Diff || j.mode == installer.ModeAudit,
		Concurrency: g.Concurrency,
		Secrets:     secrets,
		Events:      rep.Event,
	})
	if r == nil {
		code := report.ExitFailed
		if ctx.Err() != nil {
			code = report.ExitInterrupted
		}
		return abort(runErr, code)
	}
	code, err := rep.Finish(r, j.mode)
	if err != nil {
		fmt.Fprintf(d.Stderr, "gridha: writing the report: %v\n", err)
		if code == 0 {
			code = report.ExitFailed
		}
	}
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
}

// pickRoles checks the roles asked for, or (verify without arguments) picks
// every registered role some host within the limit plays.
func pickRoles(d Deps, inv *inventory.Inventory, hosts []string, j job) ([]string, error) {
	if !j.all {
		if err := checkRoles(d, j.roles); err != nil {
			return nil, err
		}
		return dedupe(j.roles), nil
	}
	var names, unknown []string
	seen := map[string]bool{}
	for _, hn := range hosts {
		h := inv.Host(hn)
		if h == nil {
			continue
		}
		for _, r := range h.Roles {
			if seen[r] {
				continue
			}
			seen[r] = true
			if _, err := d.Registry.Get(r); err != nil {
				unknown = append(unknown, r)
				continue
			}
			names = append(names, r)
		}
	}
	if len(unknown) > 0 {
		fmt.Fprintf(d.Stderr, "gridha: warning: this gridha has no checks for role %s (played in %s); not verified\n",
			strings.Join(unknown, ", "), inv.Path)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no host in %s plays a role gridha can verify (roles: %s)", inv.Path, strings.Join(d.Registry.Names(), ", "))
	}
	return names, nil
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// checkRoles fails on the first role name the registry does not know,
// suggesting the nearest one.
func checkRoles(d Deps, names []string) error {
	for _, n := range names {
		if _, err := d.Registry.Get(n); err != nil {
			msg := fmt.Sprintf("unknown role %q", n)
			if s := inventory.Nearest(n, d.Registry.Names()); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
			}
			return fmt.Errorf("%s (roles: %s)", msg, strings.Join(d.Registry.Names(), ", "))
		}
	}
	return nil
}
