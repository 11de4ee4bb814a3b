package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
)

// Exit codes of gridha (see doc.go for the table).
const (
	ExitOK          = 0   // every step ok (or changed, in an install)
	ExitDrift       = 1   // verify/--check found drift or missing state
	ExitFailed      = 2   // a step failed or a host was unreachable
	ExitBadInput    = 3   // inventory/usage error: nothing was touched
	ExitInterrupted = 130 // Ctrl-C / SIGTERM: the run was cut short
)

// Nagios plugin exit codes.
const (
	NagiosOK       = 0
	NagiosWarning  = 1
	NagiosCritical = 2
	NagiosUnknown  = 3
)

// Reporter receives the engine's events while a run goes on and writes the
// final report when it ends. Each format is one file of this package.
type Reporter interface {
	// Event is called by the engine (from any goroutine) as hosts progress.
	Event(installer.Event)
	// Finish writes the report of a run (possibly partial, when the run was
	// interrupted) and returns the process exit code.
	Finish(r *installer.Report, mode installer.Mode) (exitCode int, err error)
	// Abort reports a run that could not happen or was cut short before a
	// report existed (bad inventory, unknown role, Ctrl-C while dialling),
	// the way the format says it, and returns the exit code (code is the
	// code gridha would use: ExitBadInput or ExitInterrupted).
	Abort(cause error, code int) int
}

// Options configure a reporter.
type Options struct {
	Out     io.Writer // the report (stdout)
	Err     io.Writer // progress lines of machine formats with Verbose (stderr)
	Color   bool      // ANSI colours (text; only when Out is a terminal and --no-color is not set)
	Live    bool      // Out is a terminal: one updating status line per host (text)
	Width   int       // terminal width for live lines (0: do not truncate)
	Diff    bool      // show unified diffs (text always shows them when a result has one)
	Verbose bool      // text: list ok steps too; machine formats: progress on Err
	// Secrets redacts every registered secret from everything written. The
	// engine already redacts; reporters redact again so that a result built
	// outside the engine cannot leak.
	Secrets *installer.Redactor
	// Mode is the run's mode, for progress lines before Finish (text shows
	// drift/missing as "would change"/"would create" in ModeCheck).
	Mode installer.Mode
	// Now is the clock (tests pin it).
	Now func() time.Time
	// Command names the run in headers ("install base", "verify").
	Command string
	// Version is gridha's version, recorded in json output.
	Version string
	// Interrupted says the run was cut short (Ctrl-C): Finish then reports
	// where each host stood and returns ExitInterrupted (nagios: UNKNOWN).
	Interrupted func() bool
	// RoleOf names the role whose plan holds a host's step (prometheus
	// labels counts by role); nil or "" gives UnknownRole.
	RoleOf func(host, stepID string) string
}

// Formats are the --output values, in the order help and shell completion
// list them: the one list the CLI, its checks and completion use.
var Formats = []string{"text", "json", "junit", "nagios", "prometheus"}

// New returns the reporter for format.
func New(format string, o Options) (Reporter, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Err == nil {
		o.Err = io.Discard
	}
	if o.Interrupted == nil {
		o.Interrupted = func() bool { return false }
	}
	switch format {
	case "text", "":
		return newText(o), nil
	case "json":
		return newJSON(o), nil
	case "junit":
		return newJUnit(o), nil
	case "nagios":
		return newNagios(o), nil
	case "prometheus":
		return newPrometheus(o), nil
	}
	return nil, fmt.Errorf("unknown output format %q (one of %s)", format, strings.Join(Formats, ", "))
}

// HostSummary is one host's results and counts, in the order the engine ran
// them.
type HostSummary struct {
	Name        string
	Unreachable bool
	Error       string // host-level error: dial, lock, fact gathering, interruption
	Stopped     string // where the host stood when it stopped early ("" = ran to the end)
	// Counts are step results by status, except StatusUnreachable, which is
	// 1 for an unreachable host (as in Ansible's recap), not one per step;
	// a host-level error with no failed step (lock refused) counts failed=1.
	Counts  map[installer.Status]int
	Results []installer.Result
	Stats   installer.Stats
	// Duration is the wall time the host was worked on; Facts the part of
	// it spent gathering facts (and waiting for the host's lock).
	Duration, Facts time.Duration
	// Support says why a host outside --limit was contacted (only to read
	// values a named host needs).
	Support string
	// Locked: an install took the host's exclusive lock (something changed).
	Locked bool
}

// Count returns the number of results with status s.
func (h *HostSummary) Count(s installer.Status) int { return h.Counts[s] }

// Summary is a run's report in the shape every format prints: hosts sorted
// by name, results redacted.
type Summary struct {
	Mode        installer.Mode
	Hosts       []*HostSummary
	Totals      map[installer.Status]int // sum of the hosts' Counts
	Duration    time.Duration
	Interrupted bool
}

// Summarize turns an engine report into a Summary, redacting every text.
func Summarize(r *installer.Report, mode installer.Mode, sec *installer.Redactor, interrupted bool) *Summary {
	s := &Summary{Mode: mode, Totals: map[installer.Status]int{}, Interrupted: interrupted}
	if r == nil {
		return s
	}
	s.Duration = r.Duration
	byHost := map[string]*HostSummary{}
	get := func(name string) *HostSummary {
		h := byHost[name]
		if h == nil {
			h = &HostSummary{Name: name, Counts: map[installer.Status]int{}}
			byHost[name] = h
		}
		return h
	}
	for name, hr := range r.Hosts {
		h := get(name)
		if hr == nil {
			continue
		}
		h.Unreachable = hr.Unreachable
		h.Error = sec.Redact(hr.Err)
		h.Stopped = sec.Redact(hr.Stopped)
		h.Stats = hr.Stats
		h.Duration, h.Facts = hr.Duration, hr.Facts
		h.Support, h.Locked = sec.Redact(hr.Support), hr.Locked
	}
	for _, res := range r.Results {
		res = sec.RedactResult(res)
		res.Step = sec.Redact(res.Step)
		h := get(res.Host)
		h.Results = append(h.Results, res)
		if res.Status != installer.StatusUnreachable {
			h.Counts[res.Status]++
		}
	}
	for _, h := range byHost {
		if h.Unreachable {
			h.Counts[installer.StatusUnreachable] = 1
		} else if h.Error != "" && h.Counts[installer.StatusFailed] == 0 && !interrupted {
			h.Counts[installer.StatusFailed] = 1
		}
		for st, n := range h.Counts {
			s.Totals[st] += n
		}
		s.Hosts = append(s.Hosts, h)
	}
	sort.Slice(s.Hosts, func(i, j int) bool { return s.Hosts[i].Name < s.Hosts[j].Name })
	return s
}

// ExitCode is gridha's exit code for a run: 130 when it was interrupted, 2
// when a step failed or a host was unreachable, 1 when drift or missing
// state was found (verify, --check), else 0.
func (s *Summary) ExitCode() int {
	switch {
	case s.Interrupted:
		return ExitInterrupted
	case s.Totals[installer.StatusFailed] > 0 || s.Totals[installer.StatusUnreachable] > 0:
		return ExitFailed
	case s.Totals[installer.StatusDrift] > 0 || s.Totals[installer.StatusMissing] > 0:
		return ExitDrift
	}
	return ExitOK
}

// Audit reports whether the mode only looks (verify or --check): the recap
// then shows drift= and missing=.
func Audit(m installer.Mode) bool { return m == installer.ModeAudit || m == installer.ModeCheck }

// ModeName is the mode as users see it.
func ModeName(m installer.Mode) string {
	switch m {
	case installer.ModeAudit:
		return "verify"
	case installer.ModeCheck:
		return "check"
	case installer.ModeApply:
		return "apply"
	}
	return fmt.Sprint(m)
}

// RecapLine is the Ansible-style recap of one host, without the name.
func RecapLine(h *HostSummary, mode installer.Mode) string {
	c := h.Counts
	line := fmt.Sprintf("ok=%d changed=%d failed=%d unreachable=%d skipped=%d",
		c[installer.StatusOK], c[installer.StatusChanged], c[installer.StatusFailed],
		c[installer.StatusUnreachable], c[installer.StatusSkipped])
	if Audit(mode) {
		line += fmt.Sprintf(" drift=%d missing=%d", c[installer.StatusDrift], c[installer.StatusMissing])
	}
	return line
}

// secondsStr renders a duration as seconds with millisecond precision.
func secondsStr(d time.Duration) string {
	return fmt.Sprintf("%.3f", d.Seconds())
}
