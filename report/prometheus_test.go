package report

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gridha/gridha/installer"
)

// roleOf puts sample()'s steps in roles as gridha's planner would: the
// keyvalue and exec steps are a second role's.
func roleOf(host, step string) string {
	switch {
	case strings.HasPrefix(step, "keyvalue"):
		return "bdii-client"
	case step == "exec mysql", step == "file /b":
		return "state-server"
	case step == "file /a":
		return ""
	}
	return "base"
}

// parseProm parses the text format with Prometheus' own parser and returns
// the value of every sample as name{label="v",...} in the parser's label
// order (sorted by name).
func parseProm(t *testing.T, text string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, text)
	}
	out := map[string]float64{}
	for name, f := range fams {
		if f.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s: type %v, want gauge", name, f.GetType())
		}
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			k := name + "{" + strings.Join(ls, ",") + "}"
			if _, dup := out[k]; dup {
				t.Errorf("duplicate series %s", k)
			}
			out[k] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestPrometheusTextfile(t *testing.T) {
	got, code := render(t, "prometheus", sample(), installer.ModeAudit, func(o *Options) { o.RoleOf = roleOf })
	if code != ExitFailed {
		t.Errorf("exit %d, want %d", code, ExitFailed)
	}
	golden(t, "prometheus-verify", got)
	v := parseProm(t, got)
	run := "command=verify,mode=verify"
	for k, want := range map[string]float64{
		"gridha_steps{" + run + ",host=rb1,role=base,status=ok}":                 1,
		"gridha_steps{" + run + ",host=rb1,role=base,status=drift}":              2,
		"gridha_steps{" + run + ",host=rb1,role=bdii-client,status=missing}":     1,
		"gridha_steps{" + run + ",host=rb1,role=bdii-client,status=ok}":          0,
		"gridha_steps{" + run + ",host=state1,role=state-server,status=failed}":  1,
		"gridha_steps{" + run + ",host=state1,role=state-server,status=skipped}": 1,
		"gridha_steps{" + run + ",host=state1,role=unknown,status=skipped}":      1,
		"gridha_host_unreachable{" + run + ",host=rb2}":                          1,
		"gridha_host_unreachable{" + run + ",host=rb1}":                          0,
		"gridha_last_run_timestamp_seconds{" + run + "}":                         float64(clock.Unix()),
		"gridha_last_run_duration_seconds{" + run + "}":                          1.5,
		"gridha_last_run_exit_code{" + run + "}":                                 2,
	} {
		if g, ok := v[k]; !ok || g != want {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, want)
		}
	}
	// Unreachable steps count in gridha_host_unreachable, not as steps.
	for k := range v {
		if strings.Contains(k, "status=unreachable") {
			t.Errorf("unexpected series %s", k)
		}
	}
	if strings.Contains(got, secret) {
		t.Errorf("secret leaked:\n%s", got)
	}
}

// A run that could not happen still updates the run gauges, exit code 3.
func TestPrometheusAbort(t *testing.T) {
	var out, errb bytes.Buffer
	rep, err := New("prometheus", Options{Out: &out, Err: &errb, Command: "verify", Mode: installer.ModeAudit,
		Now: func() time.Time { return clock }, Secrets: redactor()})
	if err != nil {
		t.Fatal(err)
	}
	if code := rep.Abort(errors.New("gridha.yaml:3:5: hosts.rb1.adress: unknown key"), ExitBadInput); code != ExitBadInput {
		t.Errorf("Abort = %d", code)
	}
	v := parseProm(t, out.String())
	if v["gridha_last_run_exit_code{command=verify,mode=verify}"] != 3 || len(v) != 3 {
		t.Errorf("abort metrics: %v", v)
	}
	if !strings.Contains(errb.String(), "gridha.yaml:3:5") {
		t.Errorf("stderr: %q", errb.String())
	}
}

func TestPromQuote(t *testing.T) {
	text := "# TYPE x gauge\nx{v=" + promQuote("a\\b\"c\nd") + "} 1\n"
	v := parseProm(t, text)
	if _, ok := v["x{v=a\\b\"c\nd}"]; !ok {
		t.Errorf("label value did not survive quoting: %v", v)
	}
}
