package report

import (
	"encoding/json"
	"fmt"

	"github.com/gridha/gridha/installer"
)

// jsonReporter writes one JSON document at the end of the run: every result
// (secrets redacted), each host's recap counts and SSH use, the totals and
// the exit code. With --verbose, progress goes to stderr as plain lines.
type jsonReporter struct {
	o Options
	verboseLog
}

func newJSON(o Options) *jsonReporter {
	return &jsonReporter{o: o, verboseLog: newVerboseLog(o)}
}

// JSONSchemaVersion is the schema_version of --output json: it changes in
// every release that changes the document's shape (1 is the first
// release's), together with schema/report.schema.json (the schema's tests
// hold them together).
const JSONSchemaVersion = 1

// JSONDocument is the schema of --output json (schema/report.schema.json).
type JSONDocument struct {
	SchemaVersion int            `json:"schema_version"`
	Version       string         `json:"gridha_version,omitempty"`
	Command       string         `json:"command,omitempty"`
	Mode          string         `json:"mode,omitempty"` // verify | check | apply (empty when the run could not start)
	Finished      string         `json:"finished"`
	DurationS     float64        `json:"duration_s"`
	ExitCode      int            `json:"exit_code"`
	Interrupted   bool           `json:"interrupted,omitempty"`
	Error         string         `json:"error,omitempty"` // the run could not happen (bad input)
	Totals        map[string]int `json:"totals"`
	Hosts         []JSONHost     `json:"hosts"`
}

// JSONHost is one host in --output json.
type JSONHost struct {
	Name        string             `json:"name"`
	Unreachable bool               `json:"unreachable"`
	Error       string             `json:"error,omitempty"`
	Stopped     string             `json:"stopped,omitempty"` // where it stood when it stopped early
	Recap       map[string]int     `json:"recap"`
	SSH         installer.Stats    `json:"ssh"`
	DurationS   float64            `json:"duration_s"`        // wall time the host was worked on
	FactsS      float64            `json:"facts_s"`           // of which gathering facts (and waiting for its lock)
	Support     string             `json:"support,omitempty"` // outside --limit, contacted only for values a named host needs
	Locked      bool               `json:"locked,omitempty"`  // an install locked it: something changed
	Results     []installer.Result `json:"results"`
}

func statusCounts(c map[installer.Status]int) map[string]int {
	out := map[string]int{}
	for _, s := range []installer.Status{installer.StatusOK, installer.StatusChanged, installer.StatusDrift,
		installer.StatusMissing, installer.StatusFailed, installer.StatusSkipped, installer.StatusUnreachable} {
		out[string(s)] = c[s]
	}
	return out
}

func (j *jsonReporter) Finish(r *installer.Report, mode installer.Mode) (int, error) {
	s := Summarize(r, mode, j.o.Secrets, j.o.Interrupted())
	doc := JSONDocument{
		SchemaVersion: JSONSchemaVersion,
		Version:       j.o.Version,
		Command:       j.o.Command,
		Mode:          ModeName(mode),
		Finished:      j.o.Now().UTC().Format("2006-01-02T15:04:05Z"),
		DurationS:     roundMS(s.Duration.Seconds()),
		ExitCode:      s.ExitCode(),
		Interrupted:   s.Interrupted,
		Totals:        statusCounts(s.Totals),
		Hosts:         []JSONHost{},
	}
	for _, h := range s.Hosts {
		jh := JSONHost{Name: h.Name, Unreachable: h.Unreachable, Error: h.Error, Stopped: h.Stopped,
			Recap: statusCounts(h.Counts), SSH: h.Stats, Results: h.Results,
			DurationS: roundMS(h.Duration.Seconds()), FactsS: roundMS(h.Facts.Seconds()), Support: h.Support, Locked: h.Locked}
		if jh.Results == nil {
			jh.Results = []installer.Result{}
		}
		doc.Hosts = append(doc.Hosts, jh)
	}
	return doc.ExitCode, j.write(doc)
}

func (j *jsonReporter) write(doc JSONDocument) error {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("json report: %w", err)
	}
	// Belt and braces: redact the whole document once more.
	out := j.o.Secrets.Redact(string(b))
	if _, err := fmt.Fprintln(j.o.Out, out); err != nil {
		return fmt.Errorf("json report: %w", err)
	}
	return nil
}

// Abort writes a document with the error and no hosts, so that a consumer
// always gets valid JSON on stdout; the message also goes to stderr.
func (j *jsonReporter) Abort(cause error, code int) int {
	doc := JSONDocument{
		SchemaVersion: JSONSchemaVersion,
		Version:       j.o.Version,
		Command:       j.o.Command,
		Finished:      j.o.Now().UTC().Format("2006-01-02T15:04:05Z"),
		ExitCode:      code,
		Interrupted:   code == ExitInterrupted,
		Totals:        statusCounts(nil),
		Hosts:         []JSONHost{},
	}
	if cause != nil {
		doc.Error = j.o.Secrets.Redact(cause.Error())
		fmt.Fprint(j.o.Err, ErrorLines(doc.Error))
	}
	_ = j.write(doc)
	return code
}

func roundMS(f float64) float64 {
	return float64(int64(f*1000+0.5)) / 1000
}
