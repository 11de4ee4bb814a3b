package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gridha/gridha/report/schema"
)

// checkJSONReport validates the stdout of every CLI run of the tests that
// asked for --output json against report/schema/report.schema.json, so
// that every JSON report the test suite produces (bad input, unreachable
// hosts, drift on a real bed, interrupted runs) is checked. Benchmarks are
// left alone: validation is not what they measure.
func checkJSONReport(t testing.TB, args []string, stdout string) {
	t.Helper()
	if _, bench := t.(*testing.B); bench || outputFormat(args) != "json" {
		return
	}
	if err := schema.Validate([]byte(stdout)); err != nil {
		t.Errorf("gridha %s: %v\n%s", strings.Join(args, " "), err, stdout)
	}
}

// outputFormat is the last --output/-o value in args ("" if none).
func outputFormat(args []string) string {
	f := ""
	for i, a := range args {
		switch {
		case (a == "-o" || a == "--output" || a == "-output") && i+1 < len(args):
			f = args[i+1]
		case strings.HasPrefix(a, "--output="), strings.HasPrefix(a, "-o="), strings.HasPrefix(a, "-output="):
			f = a[strings.Index(a, "=")+1:]
		}
	}
	return f
}

func TestJSONReportsMatchSchema(t *testing.T) {
	inv := writeInventory(t, goodInventory)
	bad := writeInventory(t, "hosts:\n  rb1:\n    adress: x\n")
	for _, args := range [][]string{
		{"verify", "-i", inv, "--output=json"},
		{"install", "base", "--check", "-i", inv, "-o", "json"},
		{"verify", "-i", bad, "-o", "json"},
		{"verify", "nosuchrole", "-i", inv, "-o", "json"},
	} {
		if outputFormat(args) != "json" {
			t.Fatalf("%v: outputFormat = %q: checkJSONReport would not look", args, outputFormat(args))
		}
		r := runCLI(t, t.Context(), nil, args...)
		if !strings.Contains(r.stdout, `"schema_version": 1`) {
			t.Errorf("%v: no schema_version:\n%s", args, r.stdout)
		}
	}
}

// parseProm parses --output prometheus with Prometheus' own text-format
// parser; keys are name{label="value",...} in the order gridha writes them.
func parseProm(t testing.TB, text string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, text)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			out[name+"{"+strings.Join(ls, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

// The prometheus format through the whole CLI: steps labelled with the
// role that planned them, unreachable hosts, exit codes; a bad inventory
// still writes the run gauges with exit code 3.
func TestPrometheusOutput(t *testing.T) {
	inv := writeInventory(t, goodInventory)
	r := runCLI(t, t.Context(), nil, "verify", "-i", inv, "-o", "prometheus")
	v := parseProm(t, r.stdout)
	run := `command="verify",mode="verify"`
	if r.code != 2 || v[`gridha_host_unreachable{`+run+`,host="rb1"}`] != 1 || v[`gridha_host_unreachable{`+run+`,host="rb2"}`] != 1 ||
		v[`gridha_last_run_exit_code{`+run+`}`] != 2 {
		t.Errorf("exit %d:\n%s", r.code, r.stdout)
	}
	if _, ok := v[`gridha_steps{`+run+`,host="rb1",role="base",status="drift"}`]; !ok {
		t.Errorf("no base-role series for rb1:\n%s", r.stdout)
	}
	bad := writeInventory(t, "hosts:\n  rb1:\n    adress: x\n")
	r = runCLI(t, t.Context(), nil, "verify", "-i", bad, "-o", "prometheus")
	if v := parseProm(t, r.stdout); r.code != 3 || v[`gridha_last_run_exit_code{`+run+`}`] != 3 || !strings.Contains(r.stderr, bad+":3:") {
		t.Errorf("bad inventory: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
