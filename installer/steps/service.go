package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/gridha/gridha/installer"
)

// Service is a system service enabled or disabled at boot and running or
// stopped now. The init system is detected on the host: systemd (when
// /run/systemd/system exists), Red Hat SysV (chkconfig + service), Debian
// SysV (update-rc.d + service/invoke-rc.d). SysV boot state is read from the
// S links in /etc/rc[2-5].d; running state from "service NAME status" (LSB
// exit codes: 0 running, anything else not running).
type Service struct {
	Name  string
	Boot  string // "enabled", "disabled" or "" (leave)
	State string // "running", "stopped" or "" (leave)
}

// Service boot and run states.
const (
	BootEnabled  = "enabled"
	BootDisabled = "disabled"
	StateRunning = "running"
	StateStopped = "stopped"
)

// ID implements installer.Step.
func (s Service) ID() string { return "service " + s.Name }

// Probes implements installer.Step.
func (s Service) Probes() []installer.Probe {
	return []installer.Probe{installer.ServiceProbe(s.Name)}
}

// CheckApply implements installer.Step.
func (s Service) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if s.Boot != "" && s.Boot != BootEnabled && s.Boot != BootDisabled {
		return failed(env, s.ID(), fmt.Errorf("boot %q: want %q, %q or empty", s.Boot, BootEnabled, BootDisabled))
	}
	if s.State != "" && s.State != StateRunning && s.State != StateStopped {
		return failed(env, s.ID(), fmt.Errorf("state %q: want %q, %q or empty", s.State, StateRunning, StateStopped))
	}
	st, err := env.Facts.Service(s.Name)
	if err != nil {
		return failed(env, s.ID(), err)
	}
	if !st.Installed && s.Boot != BootEnabled && s.State != StateRunning {
		return installer.OK("service " + s.Name + " is not installed, so neither enabled nor running")
	}
	if !st.Installed {
		msg := fmt.Sprintf("service %s is not installed (%s: no unit or /etc/init.d/%s)", s.Name, st.Init, s.Name)
		if apply {
			return failed(env, s.ID(), fmt.Errorf("%s", msg))
		}
		return installer.MissingProps(msg, installer.Prop("installed", "yes", "no"))
	}
	diffs, script := s.plan(st)
	if len(diffs) == 0 {
		return installer.OK("")
	}
	msg := "service " + s.Name + ": " + strings.Join(diffs, "; ")
	if !apply {
		r := installer.DriftProps(msg, s.props(st)...)
		r.Expected, r.Found = s.expected(), s.found(st)
		return r
	}
	full := "n=" + installer.ShellQuote(s.Name) + "\n" + script + "\n" + installer.ServiceStateScript
	res, err := sh(ctx, env, "service "+s.Name, full, nil)
	if err != nil {
		return failed(env, s.ID(), err)
	}
	after := installer.ParseServiceState(string(res.Stdout))
	if rest, _ := s.plan(after); len(rest) > 0 {
		return failed(env, s.ID(), fmt.Errorf("service %s still not as wanted after the change: %s", s.Name, strings.Join(rest, "; ")))
	}
	return installer.Changed(msg)
}

// plan compares st with the wanted state and returns the differences and
// the shell that fixes them ($n is the service name).
func (s Service) plan(st installer.ServiceState) (diffs []string, script string) {
	var cmds []string
	if s.Boot == BootEnabled && !st.Enabled {
		diffs = append(diffs, "disabled at boot, want enabled")
		cmds = append(cmds, enableCmd(st.Init))
	}
	if s.Boot == BootDisabled && st.Enabled {
		diffs = append(diffs, "enabled at boot, want disabled")
		cmds = append(cmds, disableCmd(st.Init))
	}
	if s.State == StateRunning && !st.Running {
		diffs = append(diffs, installer.LSBStatusText(st.StatusCode)+", want running")
		cmds = append(cmds, actionCmd(st.Init, "start"))
	}
	if s.State == StateStopped && st.Running {
		diffs = append(diffs, "running, want stopped")
		cmds = append(cmds, actionCmd(st.Init, "stop"))
	}
	return diffs, strings.Join(cmds, "\n")
}

func enableCmd(init string) string {
	switch init {
	case installer.InitSystemd:
		return `systemctl enable "$n.service" >/dev/null || exit 1`
	case installer.InitRedHat:
		return `chkconfig --add "$n" >/dev/null 2>&1; chkconfig "$n" on || exit 1`
	}
	// Newer update-rc.d has enable; older ones only remove and defaults.
	return `update-rc.d "$n" defaults >/dev/null 2>&1
update-rc.d "$n" enable >/dev/null 2>&1 || { update-rc.d -f "$n" remove >/dev/null && update-rc.d "$n" defaults >/dev/null; } || exit 1`
}

func disableCmd(init string) string {
	switch init {
	case installer.InitSystemd:
		return `systemctl disable "$n.service" >/dev/null || exit 1`
	case installer.InitRedHat:
		return `chkconfig "$n" off || exit 1`
	}
	return `update-rc.d "$n" disable >/dev/null 2>&1 || update-rc.d -f "$n" remove >/dev/null || exit 1`
}

// actionCmd starts or stops the service. Its output goes to a temporary file
// rather than the session: a daemon that keeps its inherited stdout open
// would otherwise hold the SSH session open forever.
func actionCmd(init, action string) string {
	var run string
	switch init {
	case installer.InitSystemd:
		run = `systemctl ` + action + ` "$n.service"`
	default:
		run = `if command -v service >/dev/null 2>&1; then service "$n" ` + action + `; else "/etc/init.d/$n" ` + action + `; fi`
	}
	return `o=$(mktemp) || exit 1
( ` + run + ` ) </dev/null >"$o" 2>&1; rc=$?
if [ $rc -ne 0 ]; then cat "$o" >&2; rm -f "$o"; echo "` + action + ` failed (exit $rc)" >&2; exit 1; fi
rm -f "$o"`
}

// props names the properties of st that are not as wanted.
func (s Service) props(st installer.ServiceState) []installer.PropertyDrift {
	var out []installer.PropertyDrift
	boot := BootDisabled
	if st.Enabled {
		boot = BootEnabled
	}
	if s.Boot != "" && s.Boot != boot {
		out = append(out, installer.Prop("boot", s.Boot, boot))
	}
	if s.State == StateRunning && !st.Running || s.State == StateStopped && st.Running {
		out = append(out, installer.Prop("state", s.State, installer.LSBStatusText(st.StatusCode)))
	}
	return out
}

func (s Service) expected() string {
	var p []string
	if s.Boot != "" {
		p = append(p, s.Boot+" at boot")
	}
	if s.State != "" {
		p = append(p, s.State)
	}
	return strings.Join(p, ", ")
}

func (s Service) found(st installer.ServiceState) string {
	boot := "disabled at boot"
	if st.Enabled {
		boot = "enabled at boot"
	}
	return fmt.Sprintf("%s, %s (%s)", boot, installer.LSBStatusText(st.StatusCode), st.Init)
}
