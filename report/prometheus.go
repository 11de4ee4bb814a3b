package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gridha/gridha/installer"
)

// prometheus writes the Prometheus text exposition format for node
// exporter's textfile collector (cron: `gridha verify -o prometheus >
// DIR/gridha.prom.tmp && mv DIR/gridha.prom.tmp DIR/gridha.prom`):
//
//	gridha_steps{host,role,status}        steps of the run by host, role and
//	                                      status (every status written, 0 too,
//	                                      so that a series never vanishes)
//	gridha_host_unreachable{host}         1 when the host could not be reached
//	gridha_last_run_timestamp_seconds     when the run finished (Unix time)
//	gridha_last_run_duration_seconds      how long it took
//	gridha_last_run_exit_code             gridha's exit code (3: bad input)
//
// Every series has command and mode labels, so that `verify` and
// `verify dns` written to two files do not collide. The process exit code
// is gridha's (0, 1 drift, 2 failed, 3, 130).
type prometheus struct {
	o Options
	verboseLog
}

func newPrometheus(o Options) *prometheus {
	return &prometheus{o: o, verboseLog: newVerboseLog(o)}
}

// promStatuses are the step statuses of gridha_steps; unreachable counts
// hosts and has its own gauge.
var promStatuses = []installer.Status{installer.StatusOK, installer.StatusChanged, installer.StatusDrift,
	installer.StatusMissing, installer.StatusFailed, installer.StatusSkipped}

// UnknownRole labels a step whose role Options.RoleOf does not know.
const UnknownRole = "unknown"

func (p *prometheus) Finish(r *installer.Report, mode installer.Mode) (int, error) {
	s := Summarize(r, mode, p.o.Secrets, p.o.Interrupted())
	code := s.ExitCode()
	type key struct{ host, role string }
	counts := map[key]map[installer.Status]int{}
	// Roles are looked up with the engine's step IDs (before redaction:
	// only host and role names are written, never a step).
	if r != nil {
		for _, res := range r.Results {
			role := UnknownRole
			if p.o.RoleOf != nil {
				if rl := p.o.RoleOf(res.Host, res.Step); rl != "" {
					role = rl
				}
			}
			k := key{res.Host, role}
			if counts[k] == nil {
				counts[k] = map[installer.Status]int{}
			}
			counts[k][res.Status]++
		}
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].host != keys[j].host {
			return keys[i].host < keys[j].host
		}
		return keys[i].role < keys[j].role
	})

	var b strings.Builder
	run := p.runLabels(mode)
	b.WriteString("# HELP gridha_steps Steps of the last gridha run by host, role and status.\n# TYPE gridha_steps gauge\n")
	for _, k := range keys {
		for _, st := range promStatuses {
			fmt.Fprintf(&b, "gridha_steps{%s,host=%s,role=%s,status=%s} %d\n", run, promQuote(k.host), promQuote(k.role), promQuote(string(st)), counts[k][st])
		}
	}
	b.WriteString("# HELP gridha_host_unreachable 1 if the host could not be reached in the last gridha run.\n# TYPE gridha_host_unreachable gauge\n")
	for _, h := range s.Hosts {
		v := 0
		if h.Unreachable {
			v = 1
		}
		fmt.Fprintf(&b, "gridha_host_unreachable{%s,host=%s} %d\n", run, promQuote(h.Name), v)
	}
	p.writeRun(&b, run, s.Duration.Seconds(), code)
	return code, p.write(b.String())
}

// Abort still writes the run gauges, with the exit code (3: bad input,
// 130: interrupted), so that a textfile collector shows a run that could
// not happen; the message goes to stderr.
func (p *prometheus) Abort(cause error, code int) int {
	if cause != nil {
		fmt.Fprint(p.o.Err, ErrorLines(p.o.Secrets.Redact(cause.Error())))
	}
	var b strings.Builder
	p.writeRun(&b, p.runLabels(p.o.Mode), 0, code)
	_ = p.write(b.String())
	return code
}

func (p *prometheus) runLabels(mode installer.Mode) string {
	return "command=" + promQuote(p.o.Command) + ",mode=" + promQuote(ModeName(mode))
}

func (p *prometheus) writeRun(b *strings.Builder, run string, duration float64, code int) {
	now := p.o.Now()
	fmt.Fprintf(b, "# HELP gridha_last_run_timestamp_seconds When the last gridha run finished (Unix time).\n# TYPE gridha_last_run_timestamp_seconds gauge\n")
	fmt.Fprintf(b, "gridha_last_run_timestamp_seconds{%s} %.3f\n", run, float64(now.UnixMilli())/1000)
	fmt.Fprintf(b, "# HELP gridha_last_run_duration_seconds How long the last gridha run took.\n# TYPE gridha_last_run_duration_seconds gauge\n")
	fmt.Fprintf(b, "gridha_last_run_duration_seconds{%s} %.3f\n", run, duration)
	fmt.Fprintf(b, "# HELP gridha_last_run_exit_code Exit code of the last gridha run (0 ok, 1 drift, 2 failed, 3 bad input, 130 interrupted).\n# TYPE gridha_last_run_exit_code gauge\n")
	fmt.Fprintf(b, "gridha_last_run_exit_code{%s} %d\n", run, code)
}

func (p *prometheus) write(s string) error {
	if _, err := fmt.Fprint(p.o.Out, p.o.Secrets.Redact(s)); err != nil {
		return fmt.Errorf("prometheus report: %w", err)
	}
	return nil
}

// promQuote quotes a label value as the text format wants: backslash,
// double quote and newline escaped.
func promQuote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}
