package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/gridha/gridha/dnsupdater"
	"github.com/gridha/gridha/hagd"
	"github.com/gridha/gridha/installer"
	sshx "github.com/gridha/gridha/installer/ssh"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/pipeline"
	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/roles"
)

// DialOptions are the transport choices of the command line.
type DialOptions = pipeline.DialOptions

// Deps is everything the CLI needs from the outside world, so that tests
// run it in-process with their own registry, dialer and buffers: what a
// run needs (pipeline.Env: registry, dialer, stdout and stderr, terminal,
// environment, clock, version) and what only the command line uses.
type Deps struct {
	pipeline.Env
	// Commands are mounted beside install/verify: the daemons (hagd,
	// dns-updater).
	Commands []*cli.Command
	// Commit and Date (RFC 3339, may be empty) are the build's, with
	// Env.Version: stamped by -ldflags or read from the Go build
	// information.
	Commit string
	Date   string
}

// DefaultRegistry lists the roles this gridha can install and verify.
//
// WIRING POINT (lead): register the roles of issues 3 and 4 here as they
// land (roles.StateServer{}, roles.RBNode{}).
func DefaultRegistry() *roles.Registry {
	return roles.NewRegistry(roles.Base{}, roles.StateServer{}, roles.RBNode{}, roles.BDIIClient{}, roles.DNS{})
}

// DefaultDeps are the real ones: SSH, os.Stdout/Stderr, the clock.
func DefaultDeps() Deps {
	v := stampedVersion()
	return Deps{
		Env: pipeline.Env{
			Registry: DefaultRegistry(),
			NewDialer: func(inv *inventory.Inventory, o DialOptions) (installer.Dialer, error) {
				return sshx.NewDialer(inv, sshx.Options{HostKeyPolicy: o.HostKeyPolicy, Log: o.Log}), nil
			},
			Stdout:  os.Stdout,
			Stderr:  os.Stderr,
			Version: v.Version,
		},
		Commands: []*cli.Command{
			hagd.Command(),
			dnsupdater.Command(),
		},
		Commit: v.Commit,
		Date:   v.Date,
	}
}

func (d *Deps) fill() {
	if d.Registry == nil {
		d.Registry = DefaultRegistry()
	}
	if d.Stdout == nil {
		d.Stdout = io.Discard
	}
	if d.Stderr == nil {
		d.Stderr = io.Discard
	}
	if d.Terminal == nil {
		d.Terminal = func(w io.Writer) (bool, int) {
			f, ok := w.(*os.File)
			if !ok || !term.IsTerminal(int(f.Fd())) {
				return false, 0
			}
			width, _, err := term.GetSize(int(f.Fd()))
			if err != nil {
				width = 0
			}
			return true, width
		}
	}
	if d.Getenv == nil {
		d.Getenv = os.Getenv
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Version == "" {
		d.Version = "dev"
	}
	if d.Commit == "" {
		d.Commit = "unknown"
	}
}

// Run runs the command line args (args[0] is the program name) and returns
// the exit code. It never calls os.Exit.
func Run(ctx context.Context, args []string, d Deps) int {
	d.fill()
	if len(args) > 1 && args[1] == completeCommand {
		return runComplete(d, args[2:])
	}
	app := NewApp(d)
	if code, ok := roleHelp(ctx, app, d, args); ok {
		return code
	}
	err := app.RunContext(ctx, flagsFirst(app, args))
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && !ee.printed() {
			fmt.Fprint(d.Stderr, report.ErrorLines(ee.err.Error()))
		}
		return ee.code
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprint(d.Stderr, report.ErrorLines(msg))
	}
	return exitCode(err)
}

// printed reports whether a reporter already said it (Abort).
func (e *exitError) printed() bool {
	var p *printedError
	return errors.As(e.err, &p)
}

// printedError marks an error a reporter has already written.
type printedError struct{ error }

func (p *printedError) Unwrap() error { return p.error }

// NewApp builds the command line.
func NewApp(d Deps) *cli.App {
	d.fill()
	app := &cli.App{
		Name:  "gridha",
		Usage: "install, verify and run high availability for grid middleware (gLite RB, BDII)",
		Description: `gridha replaces the hand-run HA recipes of the 2005 LCG notes and EGI MAN05 with one
tool driven by one inventory file (gridha.yaml):

  - Resource Broker HA: a state server (what rb-state-server set up: the exported
    /var/edgwl, /var/myproxy, spool and condor dirs and the lbserver20 MySQL database)
    and rb nodes (what rb-ha-install-helper did: mounts of the shared state, hagd.conf,
    lcg-ha, EDG_WL_BKSERVERD_ADDOPTS in /etc/sysconfig/edg);
  - BDII HA (MAN05): LCG_GFAL_INFOSYS/BDII_LIST on clients (what YAIM wrote from
    site-info.def) and a fault-tolerant DNS updater for the top-BDII round robin.

Typical use:
  gridha -i site.yaml install base --check --diff   # what would change, nothing written
  gridha -i site.yaml install base                  # converge
  gridha -i site.yaml verify                        # audit every role (cron, CI, Nagios)
  gridha -i site.yaml verify --output nagios        # one Nagios status line

Flags may be given before or after the command. Exit codes: 0 ok (or changed by
install), 1 drift/missing found by verify or --check, 2 a step failed or a host
was unreachable, 3 bad input (nothing touched), 130 interrupted. With
--output nagios: 0 OK, 1 WARNING (drift), 2 CRITICAL, 3 UNKNOWN.`,
		Version:              fmt.Sprintf("%s (commit %s)", d.Version, d.Commit),
		EnableBashCompletion: true,
		Suggest:              true,
		// urfave/cli's version flag is also -v, which is --verbose here:
		// versionFlag is --version alone.
		HideVersion: true,
		Writer:      d.Stdout,
		ErrWriter:   d.Stderr,
		Flags:       append(globalFlags(), versionFlag()),
		Before: func(c *cli.Context) error {
			if c.Bool(flagVersion) {
				fmt.Fprint(c.App.Writer, versionLine(d))
				return &exitError{code: 0}
			}
			return nil
		},
		// Exit codes are ours: nothing inside urfave/cli may exit.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return badInput(fmt.Errorf("%w (see gridha --help)", err))
		},
		Commands: append([]*cli.Command{
			installCommand(d),
			verifyCommand(d),
			checkCommand(d),
			planCommand(d),
			versionCommand(d),
			completionCommand(),
			packageFilesCommand(d),
			factsCommand(),
		}, d.Commands...),
	}
	// An unknown command reaches the app's own action: exit 3 with the
	// nearest command suggested.
	app.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			name := c.Args().First()
			var names []string
			for _, cmd := range c.App.Commands {
				names = append(names, cmd.Name)
			}
			if s := inventory.Nearest(name, names); s != "" {
				return badInputf("unknown command %q, did you mean %q? (see gridha --help)", name, s)
			}
			return badInputf("unknown command %q (see gridha --help)", name)
		}
		return cli.ShowAppHelp(c)
	}
	return app
}
