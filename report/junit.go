package report

import (
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
)

// junit writes a JUnit XML document for CI: a <testsuite> per host, a
// <testcase> per step. Drift and missing state are <failure>s, failed steps
// and unreachable hosts are <error>s, skipped steps are <skipped/>.
type junit struct {
	o Options
	verboseLog
}

func newJUnit(o Options) *junit {
	return &junit{o: o, verboseLog: newVerboseLog(o)}
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Hostname  string      `xml:"hostname,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Type    string `xml:"type,attr"`
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr,omitempty"`
}

func (j *junit) Finish(r *installer.Report, mode installer.Mode) (int, error) {
	s := Summarize(r, mode, j.o.Secrets, j.o.Interrupted())
	name := "gridha"
	if j.o.Command != "" {
		name += " " + j.o.Command
	}
	doc := junitSuites{Name: name, Time: secondsStr(s.Duration)}
	ts := ""
	if r != nil && !r.Started.IsZero() {
		ts = r.Started.UTC().Format("2006-01-02T15:04:05")
	}
	for _, h := range s.Hosts {
		suite := junitSuite{Name: h.Name, Hostname: h.Name, Timestamp: ts}
		var total float64
		if h.Error != "" && !hasFailed(h.Results) && (h.Unreachable || h.Count(installer.StatusFailed) > 0 || s.Interrupted) {
			// A host-level problem (dial, lock) as its own test case, so
			// the suite fails even when every step was merely skipped.
			typ := "failed"
			if h.Unreachable {
				typ = "unreachable"
			} else if s.Interrupted {
				typ = "interrupted"
			}
			suite.Cases = append(suite.Cases, junitCase{Name: "host " + h.Name, Classname: h.Name, Time: "0.000",
				Error: &junitProblem{Type: typ, Message: oneLine(h.Error), Body: joinNonEmpty(h.Error, h.Stopped)}})
			suite.Errors++
		}
		for _, res := range h.Results {
			c := junitCase{Name: res.Step, Classname: h.Name, Time: stepSeconds(res.Duration)}
			total += res.Duration.Seconds()
			switch res.Status {
			case installer.StatusDrift, installer.StatusMissing:
				c.Failure = &junitProblem{Type: string(res.Status), Message: failureMessage(res), Body: problemBody(res)}
				suite.Failures++
			case installer.StatusFailed:
				c.Error = &junitProblem{Type: string(res.Status), Message: oneLine(firstNonEmpty(res.Message, res.Error)), Body: problemBody(res)}
				suite.Errors++
			case installer.StatusUnreachable:
				if h.Unreachable {
					// Said once by the host's own test case above.
					c.Skipped = &junitSkipped{Message: "host unreachable"}
					suite.Skipped++
				} else {
					c.Error = &junitProblem{Type: string(res.Status), Message: oneLine(res.Message), Body: problemBody(res)}
					suite.Errors++
				}
			case installer.StatusSkipped:
				c.Skipped = &junitSkipped{Message: oneLine(res.Message)}
				suite.Skipped++
			case installer.StatusChanged:
				c.SystemOut = joinNonEmpty("changed: "+res.Message, diffIf(j.o.Diff, res.Diff))
			default:
				if res.Message != "" {
					c.SystemOut = string(res.Status) + ": " + res.Message
				}
			}
			suite.Cases = append(suite.Cases, c)
		}
		if h.Facts > 0 {
			// Gathering the facts of all steps at once is where most of a
			// host's time goes: its own case, so dashboards show it.
			suite.Cases = append([]junitCase{{Name: "gather facts", Classname: h.Name, Time: secondsStr(h.Facts),
				SystemOut: joinNonEmpty(fmt.Sprintf("%d SSH sessions", h.Stats.Sessions), h.Support)}}, suite.Cases...)
			total += h.Facts.Seconds()
		}
		if h.Duration.Seconds() > total {
			total = h.Duration.Seconds()
		}
		suite.Tests = len(suite.Cases)
		suite.Time = fmt.Sprintf("%.3f", total)
		doc.Tests += suite.Tests
		doc.Failures += suite.Failures
		doc.Errors += suite.Errors
		doc.Skipped += suite.Skipped
		doc.Suites = append(doc.Suites, suite)
	}
	return s.ExitCode(), j.write(doc)
}

func (j *junit) write(doc junitSuites) error {
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("junit report: %w", err)
	}
	out := xml.Header + j.o.Secrets.Redact(string(b)) + "\n"
	if _, err := fmt.Fprint(j.o.Out, out); err != nil {
		return fmt.Errorf("junit report: %w", err)
	}
	return nil
}

// Abort writes a document with one erroring test case, so that CI shows why
// nothing ran; the message also goes to stderr.
func (j *junit) Abort(cause error, code int) int {
	msg := "aborted"
	if cause != nil {
		msg = j.o.Secrets.Redact(cause.Error())
		fmt.Fprint(j.o.Err, ErrorLines(msg))
	}
	typ := "bad-input"
	if code == ExitInterrupted {
		typ = "interrupted"
	}
	name := "gridha"
	if j.o.Command != "" {
		name += " " + j.o.Command
	}
	doc := junitSuites{Name: name, Tests: 1, Errors: 1, Time: "0.000", Suites: []junitSuite{{
		Name: "gridha", Hostname: "localhost", Tests: 1, Errors: 1, Time: "0.000",
		Cases: []junitCase{{Name: "run", Classname: "gridha", Time: "0.000",
			Error: &junitProblem{Type: typ, Message: oneLine(msg), Body: msg}}},
	}}}
	_ = j.write(doc)
	return code
}

// failureMessage is a failure's one-line message: the drifted properties
// first (what a CI dashboard shows), then the step's message.
func failureMessage(r installer.Result) string {
	if len(r.Drifted) == 0 {
		return oneLine(r.Message)
	}
	return oneLine("drifted " + strings.Join(r.Properties(), ", ") + ": " + r.Message)
}

// problemBody is the text of a failure: each drifted property (expected,
// found), or expected and found as a whole; error; diff.
func problemBody(r installer.Result) string {
	var parts []string
	for _, p := range r.Drifted {
		parts = append(parts, fmt.Sprintf("%s: expected %s, found %s", p.Property, oneLine(p.Expected), oneLine(p.Found)))
	}
	if len(r.Drifted) == 0 {
		if r.Expected != "" {
			parts = append(parts, "expected: "+r.Expected)
		}
		if r.Found != "" {
			parts = append(parts, "found: "+r.Found)
		}
	}
	if r.Error != "" && r.Error != r.Message {
		parts = append(parts, "error: "+r.Error)
	}
	if r.Diff != "" {
		parts = append(parts, r.Diff)
	}
	if len(parts) == 0 {
		return r.Message
	}
	return strings.Join(parts, "\n")
}

func diffIf(ok bool, d string) string {
	if ok {
		return d
	}
	return ""
}

func joinNonEmpty(ss ...string) string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, "\n")
}

// stepSeconds renders a step's time with microseconds: a check against
// gathered facts takes well under a millisecond, and "0.000" everywhere
// would hide which steps cost something.
func stepSeconds(d time.Duration) string { return fmt.Sprintf("%.6f", d.Seconds()) }
