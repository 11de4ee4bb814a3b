package steps

import (
	"context"
	"fmt"
	"strconv"
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

// Init systems.
const (
	InitSystemd = "systemd"
	InitRedHat  = "sysv-redhat"
	InitDebian  = "sysv-debian"
)

// ID implements installer.Step.
func (s Service) ID() string { return "service " + s.Name }

func serviceKey(name string) string { return "service:" + name }

// serviceProbeScript prints init=, installed=, boot=/link= and status=
// lines for service $n.
const serviceProbeScript = `if [ -d /run/systemd/system ]; then
  echo init=systemd
  systemctl show -p LoadState "$n.service" 2>/dev/null | sed 's/^LoadState=/load=/'
  echo "boot=$(systemctl is-enabled "$n.service" 2>/dev/null)"
  systemctl is-active --quiet "$n.service"; echo "status=$?"
else
  if command -v chkconfig >/dev/null 2>&1; then echo init=sysv-redhat; else echo init=sysv-debian; fi
  if [ -f "/etc/init.d/$n" ]; then
    echo load=loaded
    for f in /etc/rc[0-6S].d/[SK][0-9][0-9]"$n" /etc/rc.d/rc[0-6].d/[SK][0-9][0-9]"$n"; do
      if [ -e "$f" ] || [ -L "$f" ]; then echo "link=$f"; fi
    done
    # The init script itself, as service(8) would run it (from /), without
    # service's own processes: one process per probe instead of five.
    if [ -x "/etc/init.d/$n" ]; then (cd / && exec "/etc/init.d/$n" status) >/dev/null 2>&1; else service "$n" status >/dev/null 2>&1; fi
    echo "status=$?"
  else
    echo load=not-found
  fi
fi
`

// Probes implements installer.Step.
func (s Service) Probes() []installer.Probe {
	return []installer.Probe{{Key: serviceKey(s.Name), Script: "n=" + installer.ShellQuote(s.Name) + "\n" + serviceProbeScript}}
}

// ServiceState is what the probe found about a service.
type ServiceState struct {
	Init       string
	Installed  bool
	Enabled    bool
	BootRaw    string // systemctl is-enabled output, or the S links found
	Running    bool
	StatusCode int // LSB status / systemctl is-active exit code
}

// ParseServiceState reads the output of the service probe.
func ParseServiceState(out string) ServiceState {
	var st ServiceState
	var links []string
	st.StatusCode = -1
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "init":
			st.Init = v
		case "load":
			st.Installed = v != "" && v != "not-found"
		case "boot":
			st.BootRaw = v
			st.Enabled = SystemdEnabled(v)
		case "link":
			links = append(links, v)
		case "status":
			if n, err := strconv.Atoi(v); err == nil {
				st.StatusCode = n
			}
		}
	}
	if st.Init != InitSystemd {
		st.Enabled = SysVEnabled(links)
		st.BootRaw = strings.Join(links, " ")
	}
	st.Running = LSBRunning(st.StatusCode)
	return st
}

// SystemdEnabled maps "systemctl is-enabled" output to enabled at boot.
func SystemdEnabled(s string) bool {
	switch s {
	case "enabled", "enabled-runtime", "static", "generated", "alias":
		return true
	}
	return false
}

// SysVEnabled reports whether any of the rc links starts the service in a
// multi-user runlevel (2 to 5).
func SysVEnabled(links []string) bool {
	for _, l := range links {
		i := strings.LastIndex(l, "/")
		if i < 0 || i+1 >= len(l) || l[i+1] != 'S' {
			continue
		}
		dir := l[:i] // .../rcN.d
		if len(dir) >= 4 && strings.HasSuffix(dir, ".d") {
			lvl := dir[len(dir)-3]
			if lvl >= '2' && lvl <= '5' {
				return true
			}
		}
	}
	return false
}

// LSBRunning maps an LSB init script status exit code (or systemctl
// is-active's) to running: 0 is running; 1 (dead, pid file left), 2 (dead,
// lock file left), 3 (not running) and 4 (unknown) are not.
func LSBRunning(code int) bool { return code == 0 }

// LSBStatusText explains an LSB status exit code.
func LSBStatusText(code int) string {
	switch code {
	case 0:
		return "running"
	case 1:
		return "dead, pid file exists"
	case 2:
		return "dead, lock file exists"
	case 3:
		return "not running"
	case 4:
		return "status unknown"
	case -1:
		return "status not probed"
	}
	return fmt.Sprintf("status exit %d", code)
}

// CheckApply implements installer.Step.
func (s Service) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if s.Boot != "" && s.Boot != BootEnabled && s.Boot != BootDisabled {
		return failed(env, s.ID(), fmt.Errorf("boot %q: want %q, %q or empty", s.Boot, BootEnabled, BootDisabled))
	}
	if s.State != "" && s.State != StateRunning && s.State != StateStopped {
		return failed(env, s.ID(), fmt.Errorf("state %q: want %q, %q or empty", s.State, StateRunning, StateStopped))
	}
	pr, ok := env.Facts.Get(serviceKey(s.Name))
	if !ok {
		return failed(env, s.ID(), fmt.Errorf("no fact gathered for service %s", s.Name))
	}
	st := ParseServiceState(string(pr.Stdout))
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
	full := "n=" + installer.ShellQuote(s.Name) + "\n" + script + "\n" + serviceProbeScript
	res, err := sh(ctx, env, "service "+s.Name, full, nil)
	if err != nil {
		return failed(env, s.ID(), err)
	}
	after := ParseServiceState(string(res.Stdout))
	if rest, _ := s.plan(after); len(rest) > 0 {
		return failed(env, s.ID(), fmt.Errorf("service %s still not as wanted after the change: %s", s.Name, strings.Join(rest, "; ")))
	}
	return installer.Changed(msg)
}

// plan compares st with the wanted state and returns the differences and
// the shell that fixes them ($n is the service name).
func (s Service) plan(st ServiceState) (diffs []string, script string) {
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
		diffs = append(diffs, LSBStatusText(st.StatusCode)+", want running")
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
	case InitSystemd:
		return `systemctl enable "$n.service" >/dev/null || exit 1`
	case InitRedHat:
		return `chkconfig --add "$n" >/dev/null 2>&1; chkconfig "$n" on || exit 1`
	}
	// Newer update-rc.d has enable; older ones only remove and defaults.
	return `update-rc.d "$n" defaults >/dev/null 2>&1
update-rc.d "$n" enable >/dev/null 2>&1 || { update-rc.d -f "$n" remove >/dev/null && update-rc.d "$n" defaults >/dev/null; } || exit 1`
}

func disableCmd(init string) string {
	switch init {
	case InitSystemd:
		return `systemctl disable "$n.service" >/dev/null || exit 1`
	case InitRedHat:
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
	case InitSystemd:
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
func (s Service) props(st ServiceState) []installer.PropertyDrift {
	var out []installer.PropertyDrift
	boot := BootDisabled
	if st.Enabled {
		boot = BootEnabled
	}
	if s.Boot != "" && s.Boot != boot {
		out = append(out, installer.Prop("boot", s.Boot, boot))
	}
	if s.State == StateRunning && !st.Running || s.State == StateStopped && st.Running {
		out = append(out, installer.Prop("state", s.State, LSBStatusText(st.StatusCode)))
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

func (s Service) found(st ServiceState) string {
	boot := "disabled at boot"
	if st.Enabled {
		boot = "enabled at boot"
	}
	return fmt.Sprintf("%s, %s (%s)", boot, LSBStatusText(st.StatusCode), st.Init)
}
