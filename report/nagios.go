package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gridha/gridha/installer"
)

// nagios writes one Nagios plugin status line and returns the plugin exit
// code:
//
//	GRIDHA OK - 3 hosts, 42 checks ok | ok=42 drift=0 missing=0 failed=0 unreachable=0 time=1.234s
//
//	OK (0)       every check ok
//	WARNING (1)  drift or missing state: the HA setup differs from the
//	             inventory (a hand edit, a disabled service) but every host
//	             answered and every check ran; act on it, nothing is down yet
//	CRITICAL (2) a check failed or a host was unreachable
//	UNKNOWN (3)  the check could not run: bad inventory or usage, interrupted
//
// Perfdata counts checks (steps) by status, hosts for unreachable.
// maxSummary bounds the text before the perfdata: Nagios keeps 4 KB of a
// plugin's output (8 KB since 3.0) and the perfdata must survive.
const maxSummary = 1000

type nagios struct {
	o Options
}

func newNagios(o Options) *nagios { return &nagios{o: o} }

func (n *nagios) Event(installer.Event) {}

func (n *nagios) Finish(r *installer.Report, mode installer.Mode) (int, error) {
	s := Summarize(r, mode, n.o.Secrets, n.o.Interrupted())
	t := s.Totals
	perf := fmt.Sprintf("ok=%d drift=%d missing=%d failed=%d unreachable=%d time=%ss",
		t[installer.StatusOK], t[installer.StatusDrift], t[installer.StatusMissing],
		t[installer.StatusFailed], t[installer.StatusUnreachable], secondsStr(s.Duration))
	state, code := "OK", NagiosOK
	var summary string
	switch {
	case s.Interrupted:
		state, code = "UNKNOWN", NagiosUnknown
		summary = "interrupted before every check ran"
	case t[installer.StatusFailed] > 0 || t[installer.StatusUnreachable] > 0:
		state, code = "CRITICAL", NagiosCritical
		summary = problems(s, func(h *HostSummary) []string {
			var out []string
			if h.Unreachable {
				return []string{"unreachable"}
			}
			for _, res := range h.Results {
				if res.Status == installer.StatusFailed {
					out = append(out, "failed "+res.Step)
				}
			}
			if len(out) == 0 && h.Count(installer.StatusFailed) > 0 {
				out = append(out, "failed: "+oneLine(h.Error))
			}
			return out
		})
	case t[installer.StatusDrift] > 0 || t[installer.StatusMissing] > 0:
		state, code = "WARNING", NagiosWarning
		summary = problems(s, func(h *HostSummary) []string {
			var out []string
			for _, res := range h.Results {
				if res.Status.NeedsChange() {
					out = append(out, string(res.Status)+" "+res.Step)
				}
			}
			return out
		})
	default:
		checks := 0
		for _, h := range s.Hosts {
			checks += len(h.Results)
		}
		summary = fmt.Sprintf("%d %s, %d checks ok", len(s.Hosts), plural(len(s.Hosts), "host", "hosts"), checks)
	}
	line := fmt.Sprintf("GRIDHA %s - %s | %s\n", state, truncate(sanitize(summary), maxSummary), perf)
	_, err := fmt.Fprint(n.o.Out, n.o.Secrets.Redact(line))
	return code, err
}

// problems lists "host: what, what" for each host with a problem, at most a
// few per host, so the status line stays readable in a Nagios UI.
func problems(s *Summary, of func(*HostSummary) []string) string {
	const maxPerHost = 3
	var parts []string
	var names []string
	for _, h := range s.Hosts {
		p := of(h)
		if len(p) == 0 {
			continue
		}
		names = append(names, h.Name)
		if len(p) > maxPerHost {
			p = append(p[:maxPerHost], fmt.Sprintf("and %d more", len(p)-maxPerHost))
		}
		parts = append(parts, h.Name+": "+strings.Join(p, ", "))
	}
	sort.Strings(names)
	return fmt.Sprintf("%d of %d hosts: %s", len(names), len(s.Hosts), strings.Join(parts, "; "))
}

// Abort prints an UNKNOWN line: the check could not run.
func (n *nagios) Abort(cause error, code int) int {
	msg := "could not run"
	if cause != nil {
		msg = n.o.Secrets.Redact(cause.Error())
	}
	if code == ExitInterrupted {
		msg = "interrupted: " + msg
	}
	fmt.Fprintf(n.o.Out, "GRIDHA UNKNOWN - %s\n", sanitize(oneLine(msg)))
	return NagiosUnknown
}

// sanitize keeps the '|' that separates perfdata out of the text.
func sanitize(s string) string { return strings.ReplaceAll(oneLine(s), "|", "/") }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
