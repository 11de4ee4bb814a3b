package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/gridha/gridha/installer"
)

// Restart restarts a running service when a step of its host notified On
// in this run (installer.Notify): the daemon reads its binary, key or
// configuration only when it starts. It is the one restart of every role,
// over every init system Service knows: systemd (daemon-reload first, the
// unit or init script may be new), Red Hat and Debian SysV, and an init
// script alone (the test bed: no service(8) there).
//
// A service that is not installed or not running is left to the Service
// step that follows (it starts it once, with the new files: never a start
// and a restart in one run); after a restart, or a daemon-reload, Restart
// reads the service's state again for that step.
//
// A service that knows itself whether it runs its current configuration
// (named: rndc status says when it last loaded it) sets Status, and Reload
// when it loads a new configuration without a restart.
type Restart struct {
	Service string // the service: NAME.service under systemd, /etc/init.d/NAME elsewhere
	On      string // the notification that asks for the restart
	// What names what the service runs an old copy of, for messages
	// ("binary, key or configuration" when empty).
	What string
	// Status replaces the init system's view of the service (optional).
	Status *RestartStatus
	// Reload is the command run instead of the init system's restart
	// (optional); its standard output is shown when it fails.
	Reload string
	// Name is the step's ID ("restart SERVICE on change" when empty).
	Name string
}

// RestartStatus is a service's own view of whether it runs its current
// configuration.
type RestartStatus struct {
	Probe installer.Probe
	// Parse reads the probe: running (not running is an error when
	// Required), and stale, why the service runs an old configuration even
	// without a notification (a file modified since it loaded it: a run
	// that failed before the restart, an edit by hand).
	Parse func(out []byte) (running bool, stale []string, msg string, err error)
	// Required: a service that is not running is an error (msg says why),
	// not the business of a later Service step.
	Required bool
}

// ID implements installer.Step.
func (r Restart) ID() string {
	if r.Name != "" {
		return r.Name
	}
	return "restart " + r.Service + " on change"
}

// Handles implements installer.Handler.
func (r Restart) Handles() []string { return []string{r.On} }

// Probes implements installer.Step.
func (r Restart) Probes() []installer.Probe {
	if r.Status != nil {
		return []installer.Probe{r.Status.Probe}
	}
	return []installer.Probe{installer.ServiceProbe(r.Service)}
}

func (r Restart) what() string {
	if r.What != "" {
		return r.What
	}
	return "binary, key or configuration"
}

// state is the service's state: running, and why it needs a restart
// besides a notification.
func (r Restart) state(env *installer.Env) (running bool, stale []string, msg, init string, err error) {
	if r.Status != nil {
		pr, ok := env.Facts.Get(r.Status.Probe.Key)
		if !ok {
			return false, nil, "", "", fmt.Errorf("no fact gathered")
		}
		running, stale, msg, err = r.Status.Parse(pr.Stdout)
		return running, stale, msg, "", err
	}
	st, err := env.Facts.Service(r.Service)
	if err != nil {
		return false, nil, "", "", err
	}
	return st.Installed && st.Running, nil, installer.LSBStatusText(st.StatusCode), st.Init, nil
}

// CheckApply implements installer.Step.
func (r Restart) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	notified := env.Notified(r.On)
	if notified && apply && r.Status == nil {
		// The init script or unit may be new: systemd sees it only after
		// a daemon-reload, and the facts were gathered before it was
		// written.
		if _, err := sh(ctx, env, "daemon-reload", "if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi", nil); err != nil {
			return failed(env, r.ID(), err)
		}
		if err := env.Reprobe(ctx, r.Probes()...); err != nil {
			return failed(env, r.ID(), err)
		}
	}
	running, stale, msg, init, err := r.state(env)
	if err != nil {
		return failed(env, r.ID(), err)
	}
	if !running {
		if r.Status != nil && r.Status.Required {
			return failed(env, r.ID(), fmt.Errorf("%s", msg))
		}
		return installer.OK(r.Service + " not running: nothing to restart")
	}
	var why []string
	if notified {
		why = append(why, "gridha changed its "+r.what()+" in this run")
	}
	why = append(why, stale...)
	if len(why) == 0 {
		return installer.OK(r.Service + " runs the current " + r.what())
	}
	because := strings.Join(why, "; ")
	if !apply {
		act := "restart"
		if r.Reload != "" {
			act = "reload"
		}
		return installer.Drift(r.Service+" runs an old "+r.what()+": "+act+" pending ("+because+")", act+"ed", "running since before the change")
	}
	if r.Reload != "" {
		res, err := env.Conn.Run(ctx, r.Reload, nil)
		if err != nil {
			return failed(env, r.ID(), err)
		}
		if err := res.Err(r.Reload); err != nil {
			// named-checkconf prints the file and line of a mistake on
			// its standard output.
			return failed(env, r.ID(), fmt.Errorf("%w %s", err, strings.TrimSpace(string(res.Stdout))))
		}
		return installer.Changed(r.Reload + ": " + because)
	}
	script := "n=" + installer.ShellQuote(r.Service) + "\n" + actionCmd(init, "restart")
	if _, err := sh(ctx, env, r.Service+" restart", script, nil); err != nil {
		return failed(env, r.ID(), err)
	}
	if err := env.Reprobe(ctx, r.Probes()...); err != nil {
		return failed(env, r.ID(), err)
	}
	return installer.Changed(r.Service + " restarted to load the new " + r.what() + " (" + because + ")")
}
