package report

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/gridha/gridha/installer"
)

// ANSI colours (only written when Options.Color is set).
const (
	ansiReset   = "\x1b[0m"
	ansiBold    = "\x1b[1m"
	ansiRed     = "\x1b[31m"
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiMagenta = "\x1b[35m"
	ansiCyan    = "\x1b[36m"
)

// text is the human format: live progress while the run goes on (one
// updating line per host on a terminal, timestamped lines otherwise), then
// the results grouped by host and an Ansible-style recap.
type text struct {
	o Options

	mu     sync.Mutex
	order  []string             // hosts in the order they first appeared
	state  map[string]*liveHost // host -> what it is doing
	drawn  int                  // live lines currently on screen
	last   time.Time            // last redraw
	counts map[string]map[installer.Status]int
}

type liveHost struct {
	what string
	done bool
}

func newText(o Options) *text {
	return &text{o: o, state: map[string]*liveHost{}, counts: map[string]map[installer.Status]int{}}
}

func (t *text) paint(color, s string) string {
	if !t.o.Color || color == "" {
		return s
	}
	return color + s + ansiReset
}

func statusColor(s installer.Status) string {
	switch s {
	case installer.StatusOK:
		return ansiGreen
	case installer.StatusChanged:
		return ansiYellow
	case installer.StatusDrift, installer.StatusMissing:
		return ansiMagenta
	case installer.StatusFailed, installer.StatusUnreachable:
		return ansiRed
	case installer.StatusSkipped:
		return ansiCyan
	}
	return ""
}

// Event implements Reporter.
// verboseLog is what the document reporters (json, junit, prometheus)
// show while the run goes: with --verbose the text reporter's plain lines
// on stderr, else nothing (their stdout is the document alone).
type verboseLog struct{ log *text }

func newVerboseLog(o Options) verboseLog {
	if !o.Verbose {
		return verboseLog{}
	}
	lo := o
	lo.Out, lo.Live, lo.Color = o.Err, false, false
	return verboseLog{newText(lo)}
}

// Event implements Reporter.
func (v verboseLog) Event(e installer.Event) {
	if v.log != nil {
		v.log.Event(e)
	}
}

func (t *text) Event(e installer.Event) {
	p := progressOf(e, t.o.Now)
	if p.Host == "" {
		return
	}
	if p.Result != nil {
		r := t.o.Secrets.RedactResult(*p.Result)
		p.Result = &r
	}
	p.What = t.o.Secrets.Redact(p.What)
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.state[p.Host]
	if h == nil {
		h = &liveHost{}
		t.state[p.Host] = h
		t.order = append(t.order, p.Host)
		t.counts[p.Host] = map[installer.Status]int{}
	}
	h.what, h.done = p.What, p.Done
	if p.Result != nil {
		t.counts[p.Host][p.Status]++
	}
	if t.o.Live {
		// Redraw at most ~12 times a second (30 hosts × 100 steps must not
		// flood the terminal), but always for a new host or a finished phase.
		now := t.o.Now()
		if len(t.order) != t.drawn || p.Done || p.Status == installer.StatusUnreachable || now.Sub(t.last) >= 80*time.Millisecond {
			t.redraw()
			t.last = now
		}
		return
	}
	t.logLine(p)
}

// logLine writes one timestamped progress line (not a terminal).
func (t *text) logLine(p progress) {
	ts := p.Time.Format("15:04:05")
	switch {
	case p.Result != nil:
		switch p.Status {
		case installer.StatusUnreachable:
			return // said once for the host
		case installer.StatusOK, installer.StatusSkipped:
			if !t.o.Verbose {
				return // the report lists skipped steps, folded
			}
		}
		msg := oneLine(trimTarget(p.What, p.Result.Message))
		if msg != "" {
			msg = ": " + msg
		}
		fmt.Fprintf(t.o.Out, "%s %s %s %s%s\n", ts, p.Host, t.paint(statusColor(p.Status), label(p.Status, t.o.Mode)), p.What, msg)
	case p.Status == installer.StatusUnreachable:
		fmt.Fprintf(t.o.Out, "%s %s %s %s\n", ts, p.Host, t.paint(ansiRed, "unreachable"), oneLine(trimHost(p.Host, p.What)))
	case p.Done:
		fmt.Fprintf(t.o.Out, "%s %s done %s\n", ts, p.Host, countsBrief(t.counts[p.Host]))
	case t.o.Verbose:
		fmt.Fprintf(t.o.Out, "%s %s %s\n", ts, p.Host, p.What)
	}
}

// redraw repaints the live block: one line per host, in order of appearance.
func (t *text) redraw() {
	var b strings.Builder
	if t.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", t.drawn)
	}
	width := 0
	for _, n := range t.order {
		if len(n) > width {
			width = len(n)
		}
	}
	for _, n := range t.order {
		h := t.state[n]
		state := "…"
		if h.done {
			state = "✓"
		}
		line := fmt.Sprintf("%-*s %s %s  %s", width, n, state, countsBrief(t.counts[n]), h.what)
		if t.o.Width > 0 {
			line = truncate(line, t.o.Width-1)
		}
		b.WriteString("\r\x1b[2K")
		b.WriteString(line)
		b.WriteString("\n")
	}
	t.drawn = len(t.order)
	io.WriteString(t.o.Out, b.String())
}

// clearLive erases the live block before the final report.
func (t *text) clearLive() {
	if t.drawn > 0 {
		fmt.Fprintf(t.o.Out, "\x1b[%dA\r\x1b[J", t.drawn)
		t.drawn = 0
	}
}

// Finish implements Reporter.
func (t *text) Finish(r *installer.Report, mode installer.Mode) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearLive()
	s := Summarize(r, mode, t.o.Secrets, t.o.Interrupted())
	w := &errWriter{w: t.o.Out}
	wrote := false
	for _, h := range s.Hosts {
		wrote = t.writeHost(w, h, s.Mode) || wrote
	}
	if s.Interrupted {
		t.writeInterrupted(w, s)
	}
	t.writeRecap(w, s, wrote || s.Interrupted)
	return s.ExitCode(), w.err
}

// writeHost lists a host's results worth showing; false if there were none.
func (t *text) writeHost(w io.Writer, h *HostSummary, mode installer.Mode) bool {
	var shown []installer.Result
	for _, res := range h.Results {
		if res.Status == installer.StatusOK && !t.o.Verbose {
			continue
		}
		if res.Status == installer.StatusUnreachable && h.Unreachable {
			continue // said once for the host below
		}
		shown = append(shown, res)
	}
	if len(shown) == 0 && !h.Unreachable && h.Error == "" {
		return false
	}
	fmt.Fprintf(w, "%s\n", t.paint(ansiBold, h.Name))
	indent := "  " + strings.Repeat(" ", len(pad(""))+1)
	switch {
	case h.Unreachable:
		fmt.Fprintf(w, "  %s %s\n", t.paint(ansiRed, pad("unreachable")), oneLine(firstNonEmpty(trimHost(h.Name, h.Error), "could not connect")))
	case h.Error != "" && h.Count(installer.StatusFailed) > 0 && !hasFailed(h.Results):
		fmt.Fprintf(w, "  %s %s\n", t.paint(ansiRed, pad("failed")), oneLine(h.Error))
	}
	for i := 0; i < len(shown); i++ {
		res := shown[i]
		if res.Status == installer.StatusSkipped {
			// Fold a run of steps skipped for the same reason into one line.
			j := i
			for j+1 < len(shown) && shown[j+1].Status == installer.StatusSkipped && shown[j+1].Message == res.Message {
				j++
			}
			if j > i {
				fmt.Fprintf(w, "  %s %d steps (%s … %s): %s\n", t.paint(statusColor(res.Status), pad(label(res.Status, mode))),
					j-i+1, res.Step, shown[j].Step, oneLine(res.Message))
				i = j
				continue
			}
		}
		line := res.Step
		if m := oneLine(trimTarget(res.Step, res.Message)); m != "" {
			line += ": " + m
		}
		if t.o.Verbose {
			line += fmt.Sprintf(" (%s)", shortDuration(res.Duration))
		}
		fmt.Fprintf(w, "  %s %s\n", t.paint(statusColor(res.Status), pad(label(res.Status, mode))), line)
		if len(res.Drifted) > 0 {
			// One line per property that differs: which of mode, owner,
			// content... is off, and how.
			for _, p := range res.Drifted {
				fmt.Fprintf(w, "%s%s: expected %s, found %s\n", indent, p.Property, oneLine(p.Expected), oneLine(p.Found))
			}
		} else if (res.Expected != "" || res.Found != "") && res.Diff == "" {
			fmt.Fprintf(w, "%sexpected: %s\n%sfound:    %s\n", indent, oneLine(res.Expected), indent, oneLine(res.Found))
		}
		if res.Error != "" && res.Error != res.Message {
			fmt.Fprintf(w, "%serror: %s\n", indent, oneLine(res.Error))
		}
		// Diffs of drift are always shown; diffs of changes with --diff.
		if res.Diff != "" && (t.o.Diff || res.Status != installer.StatusChanged) {
			for _, dl := range strings.Split(strings.TrimRight(res.Diff, "\n"), "\n") {
				fmt.Fprintf(w, "%s%s\n", indent, t.paintDiff(dl))
			}
		}
	}
	return true
}

func hasFailed(rs []installer.Result) bool {
	for _, r := range rs {
		if r.Status == installer.StatusFailed {
			return true
		}
	}
	return false
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func (t *text) paintDiff(line string) string {
	switch {
	case strings.HasPrefix(line, "+++"), strings.HasPrefix(line, "---"):
		return t.paint(ansiBold, line)
	case strings.HasPrefix(line, "+"):
		return t.paint(ansiGreen, line)
	case strings.HasPrefix(line, "-"):
		return t.paint(ansiRed, line)
	case strings.HasPrefix(line, "@@"):
		return t.paint(ansiCyan, line)
	}
	return line
}

// writeInterrupted says where each host stood when the run was cut short.
func (t *text) writeInterrupted(w io.Writer, s *Summary) {
	fmt.Fprintf(w, "\n%s\n", t.paint(ansiRed+ansiBold, "INTERRUPTED: where each host stood"))
	names := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		names[i] = h.Name
	}
	width := maxLen(names)
	for _, h := range s.Hosts {
		where := h.Stopped
		if where == "" {
			where = "finished"
			if lh := t.state[h.Name]; lh != nil && !lh.done {
				where = "stopped during: " + lh.what
			}
		}
		fmt.Fprintf(w, "%-*s : %s\n", width, h.Name, where)
	}
}

func (t *text) writeRecap(w io.Writer, s *Summary, gap bool) {
	title := "RECAP"
	if t.o.Command != "" {
		title += " (" + t.o.Command + ")"
	}
	if gap {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%s\n", t.paint(ansiBold, title))
	names := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		names[i] = h.Name
	}
	width := maxLen(names)
	for _, h := range s.Hosts {
		color := ansiGreen
		switch {
		case h.Unreachable || h.Count(installer.StatusFailed) > 0:
			color = ansiRed
		case h.Count(installer.StatusDrift)+h.Count(installer.StatusMissing) > 0:
			color = ansiMagenta
		case h.Count(installer.StatusChanged) > 0:
			color = ansiYellow
		}
		name := fmt.Sprintf("%-*s", width, h.Name)
		line := RecapLine(h, s.Mode)
		if t.o.Verbose {
			line += fmt.Sprintf(" time=%ss facts=%ss sessions=%d", secondsStr(h.Duration), secondsStr(h.Facts), h.Stats.Sessions)
			if h.Locked {
				line += " locked"
			}
		}
		fmt.Fprintf(w, "%s : %s\n", t.paint(color, name), line)
	}
	for _, h := range s.Hosts {
		if h.Support != "" {
			fmt.Fprintf(w, "%s: %s\n", h.Name, h.Support)
		}
	}
	if len(s.Hosts) == 0 {
		fmt.Fprintf(w, "no host had anything to do\n")
	}
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, nil
}

// Abort implements Reporter: the message goes to Err (stderr), prefixed
// "gridha: ", the way the CLI reports bad input.
func (t *text) Abort(cause error, code int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearLive()
	if cause != nil {
		fmt.Fprint(t.o.Err, ErrorLines(t.o.Secrets.Redact(cause.Error())))
	}
	return code
}

// ErrorLines prefixes every line of msg with "gridha: " (an inventory with
// three mistakes gives three lines, each file:line:col: field: what).
func ErrorLines(msg string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		b.WriteString("gridha: ")
		b.WriteString(l)
		b.WriteString("\n")
	}
	return b.String()
}

func pad(s string) string { return fmt.Sprintf("%-12s", s) }

// label is how text shows a status: in --check runs "would create" and
// "would change" say plainly what an install would do.
func label(s installer.Status, m installer.Mode) string {
	if m == installer.ModeCheck {
		switch s {
		case installer.StatusMissing:
			return "would create"
		case installer.StatusDrift:
			return "would change"
		}
	}
	return string(s)
}

func maxLen(ss []string) int {
	n := 0
	for _, s := range ss {
		if len(s) > n {
			n = len(s)
		}
	}
	return n
}

func countsBrief(c map[installer.Status]int) string {
	var parts []string
	if c[installer.StatusUnreachable] > 0 {
		return "unreachable"
	}
	for _, s := range []installer.Status{installer.StatusOK, installer.StatusChanged, installer.StatusDrift,
		installer.StatusMissing, installer.StatusFailed, installer.StatusSkipped} {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", s, c[s]))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ⏎ ")), " ")
}

func truncate(s string, n int) string {
	if n <= 0 {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// trimHost drops the "rb1: " and "unreachable: " prefixes a message repeats
// when it is printed under the host's name anyway.
func trimHost(host, msg string) string {
	for range 4 {
		switch {
		case strings.HasPrefix(msg, host+": "):
			msg = msg[len(host)+2:]
		case strings.HasPrefix(msg, "unreachable: "):
			msg = msg[len("unreachable: "):]
		default:
			return msg
		}
	}
	return msg
}

// trimTarget drops a leading "/etc/motd: " from the message of step "file
// /etc/motd": the step's name already says it.
func trimTarget(step, msg string) string {
	if _, target, ok := strings.Cut(step, " "); ok && target != "" {
		return strings.TrimPrefix(msg, target+": ")
	}
	return msg
}

// shortDuration is a step's time for --verbose: microseconds below a
// millisecond, else milliseconds.
func shortDuration(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
}
