// Package pipeline is the one run behind install, install --check and
// verify (inventory → roles → plan → installer.Run → report → exit code)
// and the offline check and plan. Everything that can be wrong with the
// input is found before any host is dialled. cmd/gridha only reads flags
// into a Request and maps the result to the process exit code.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/roles"
)

// DialOptions are the transport choices of the command line.
type DialOptions struct {
	HostKeyPolicy string // sshx.PolicyStrict or sshx.PolicyAcceptNew
	// Log receives the transport's notices (accepted host keys); it writes
	// to stderr.
	Log func(format string, args ...any)
}

// Env is what a run needs from the outside world; tests give their own
// registry, dialer and buffers.
type Env struct {
	Registry *roles.Registry
	// NewDialer builds the transport for an inventory (gridha's default:
	// OpenSSH-compatible sshx.Dialer).
	NewDialer func(inv *inventory.Inventory, o DialOptions) (installer.Dialer, error)
	Stdout    io.Writer
	Stderr    io.Writer
	// Terminal reports whether w is a terminal, and its width (gridha's
	// default: golang.org/x/term on *os.File).
	Terminal func(w io.Writer) (isTerminal bool, width int)
	// Getenv reads the environment (NO_COLOR).
	Getenv  func(string) string
	Now     func() time.Time
	Version string // the build's, for the reports
}

// Request is what install or verify asked for.
type Request struct {
	Command   string // "install base", "verify": the report's title
	Mode      installer.Mode
	Roles     []string
	All       bool // verify without roles: every role some host within the limit plays
	RotateKey bool
	StateFrom string

	Inventory     string   // path
	Limit         []string // --limit values (names, globs, comma lists)
	Concurrency   int
	Diff          bool
	Verbose       bool
	NoColor       bool
	Output        string // report format
	HostKeyPolicy string
}

// Execute is the one pipeline of install, install --check and verify. It
// returns the exit code and, when the reporter could not say it (the
// output format itself is wrong), the error the caller prints.
func Execute(ctx context.Context, env Env, req Request) (code int, unsaid error) {
	secrets := &installer.Redactor{}
	// stepRoles is filled once the plans exist; the prometheus format
	// labels its counts with it.
	var stepRoles map[roles.HostStep]string
	tty, width := env.Terminal(env.Stdout)
	text := req.Output == "text"
	rep, err := report.New(req.Output, report.Options{
		Out:         env.Stdout,
		Err:         env.Stderr,
		Color:       text && tty && !req.NoColor && env.Getenv("NO_COLOR") == "",
		Live:        text && tty,
		Width:       width,
		Diff:        req.Diff,
		Verbose:     req.Verbose,
		Secrets:     secrets,
		Now:         env.Now,
		Command:     req.Command,
		Mode:        req.Mode,
		Version:     env.Version,
		Interrupted: func() bool { return ctx.Err() != nil },
		RoleOf:      func(host, step string) string { return stepRoles[roles.HostStep{Host: host, Step: step}] },
	})
	if err != nil {
		return report.ExitBadInput, err
	}
	// From here on the reporter says every error, in its format.
	abort := func(err error, code int) (int, error) { return rep.Abort(err, code), nil }

	if !req.All {
		// Role names need no inventory: say so first.
		if err := CheckRoles(env.Registry, req.Roles); err != nil {
			return abort(err, report.ExitBadInput)
		}
	}
	inv, err := LoadInventory(req.Inventory)
	if err != nil {
		return abort(err, report.ExitBadInput)
	}
	hosts, err := inv.ResolveLimit(req.Limit)
	if err != nil {
		return abort(err, report.ExitBadInput)
	}
	ropts := roles.Options{RotateKey: req.RotateKey, StateFrom: req.StateFrom, ReadOnly: req.Mode != installer.ModeApply}
	if len(req.Limit) > 0 {
		ropts.Limit = hosts
	}
	if err := checkStateFrom(inv, req.StateFrom); err != nil {
		return abort(err, report.ExitBadInput)
	}

	names, err := pickRoles(env, inv, hosts, req)
	if err != nil {
		return abort(err, report.ExitBadInput)
	}
	var plans []*installer.Plan
	for _, n := range names {
		role, _ := env.Registry.Get(n)
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
		if len(req.Limit) > 0 {
			where = " within --limit " + strings.Join(hosts, ",")
		}
		return abort(fmt.Errorf("no host in %s plays role %s%s: nothing to do", inv.Path, strings.Join(names, ", "), where), report.ExitBadInput)
	}

	dialer, err := env.NewDialer(inv, DialOptions{HostKeyPolicy: req.HostKeyPolicy, Log: func(format string, args ...any) {
		fmt.Fprintf(env.Stderr, "gridha: "+format+"\n", args...)
	}})
	if err != nil {
		return abort(err, report.ExitBadInput)
	}

	if ctx.Err() != nil {
		return abort(errors.New("interrupted before any host was contacted"), report.ExitInterrupted)
	}
	r, runErr := installer.Run(ctx, dialer, plan, installer.RunOptions{
		Mode:        req.Mode,
		Diff:        req.Diff || req.Mode == installer.ModeAudit,
		Concurrency: req.Concurrency,
		Secrets:     secrets,
		Events:      rep.Event,
		// The shell script answers every probe, even where the host's
		// gridha could (benchmarks compare the two; a suspected agent
		// bug).
		NoFactAgent: env.Getenv("GRIDHA_NO_FACT_AGENT") != "",
	})
	if r == nil {
		code := report.ExitFailed
		if ctx.Err() != nil {
			code = report.ExitInterrupted
		}
		return abort(runErr, code)
	}
	code, err = rep.Finish(r, req.Mode)
	if err != nil {
		fmt.Fprintf(env.Stderr, "gridha: writing the report: %v\n", err)
		if code == 0 {
			code = report.ExitFailed
		}
	}
	return code, nil
}

// checkStateFrom: --state-from names a host of the inventory (the role
// checks it is an rb node of a group being planned).
func checkStateFrom(inv *inventory.Inventory, name string) error {
	if name == "" || inv.Host(name) != nil {
		return nil
	}
	var names []string
	for _, h := range inv.Hosts {
		names = append(names, h.Name)
	}
	msg := fmt.Sprintf("--state-from: no host %q in %s", name, inv.Path)
	if s := inventory.Nearest(name, names); s != "" {
		msg += fmt.Sprintf(", did you mean %q?", s)
	}
	return errors.New(msg)
}

// pickRoles checks the roles asked for, or (verify without arguments) picks
// every registered role some host within the limit plays.
func pickRoles(env Env, inv *inventory.Inventory, hosts []string, req Request) ([]string, error) {
	if !req.All {
		if err := CheckRoles(env.Registry, req.Roles); err != nil {
			return nil, err
		}
		return dedupe(req.Roles), nil
	}
	names, unknown := roles.PlayedRoles(env.Registry, inv, hosts)
	if len(unknown) > 0 {
		fmt.Fprintf(env.Stderr, "gridha: warning: this gridha has no checks for role %s (played in %s); not verified\n",
			strings.Join(unknown, ", "), inv.Path)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no host in %s plays a role gridha can verify (roles: %s)", inv.Path, strings.Join(env.Registry.Names(), ", "))
	}
	return names, nil
}

// dedupe keeps the first of each name: "install base base" runs base once.
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

// CheckRoles fails on the first role name the registry does not know,
// suggesting the nearest one.
func CheckRoles(reg *roles.Registry, names []string) error {
	for _, n := range names {
		if _, err := reg.Get(n); err != nil {
			msg := fmt.Sprintf("unknown role %q", n)
			if s := inventory.Nearest(n, reg.Names()); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
			}
			return fmt.Errorf("%s (roles: %s)", msg, strings.Join(reg.Names(), ", "))
		}
	}
	return nil
}

// LoadInventory reads the inventory at path, with the hint every command
// gives when there is none.
func LoadInventory(path string) (*inventory.Inventory, error) {
	inv, err := inventory.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w (give the inventory with -i FILE or GRIDHA_INVENTORY; commented examples are in inventory-examples/)", err)
	}
	return inv, err
}
