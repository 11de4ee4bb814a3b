package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/report/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const secret = "s3cr3t-Pa55word"

var clock = time.Date(2026, 11, 24, 1, 2, 3, 0, time.UTC)

func redactor() *installer.Redactor {
	r := &installer.Redactor{}
	r.Add(secret)
	return r
}

// sample is a run with every status: rb1 converged with drift, rb2
// unreachable, state1 failed half way. Secrets appear in a message and a
// diff, unredacted, as if a step had forgotten to register them.
func sample() *installer.Report {
	ms := time.Millisecond
	return &installer.Report{
		Mode:     installer.ModeAudit,
		Started:  clock,
		Duration: 1500 * ms,
		Hosts: map[string]*installer.HostReport{
			"rb1": {Host: "rb1", Stats: installer.Stats{Connections: 1, Sessions: 2}, Duration: 900 * ms, Facts: 800 * ms},
			"rb2": {Host: "rb2", Unreachable: true, Err: "rb2: unreachable: dial tcp 198.18.0.12:22: connect: no route to host", Stopped: "unreachable in phase base"},
			"state1": {Host: "state1", Stats: installer.Stats{Connections: 1, Sessions: 3}, Stopped: `failed at step "exec mysql" in phase base`,
				Duration: 1200 * ms, Facts: 700 * ms, Support: "outside --limit: only its SSH host key is read"},
		},
		Results: []installer.Result{
			{Host: "rb1", Step: "dir /etc/gridha", Status: installer.StatusOK, Duration: 2 * ms},
			{Host: "rb1", Step: "file /etc/gridha/host.conf", Status: installer.StatusDrift, Message: "content differs",
				Diff: "--- /etc/gridha/host.conf (found)\n+++ /etc/gridha/host.conf (expected)\n@@ -1,2 +1,2 @@\n # managed\n-password=" + secret + "\n+name=rb1\n", Duration: 3 * ms},
			{Host: "rb1", Step: "dir /var/lib/gridha", Status: installer.StatusDrift, Message: "mode and owner differ", Expected: "mode 0700; owner root", Found: "mode 0755; owner daemon",
				Drifted: []installer.PropertyDrift{{Property: "mode", Expected: "0700", Found: "0755"}, {Property: "owner", Expected: "root", Found: "daemon"}}, Duration: ms},
			{Host: "rb1", Step: "keyvalue /etc/motd MOTD", Status: installer.StatusMissing, Message: "file does not exist", Duration: ms},
			{Host: "rb2", Step: "dir /etc/gridha", Status: installer.StatusUnreachable, Message: "rb2: unreachable: dial tcp 198.18.0.12:22: connect: no route to host"},
			{Host: "rb2", Step: "file /etc/gridha/host.conf", Status: installer.StatusUnreachable, Message: "rb2: unreachable: dial tcp 198.18.0.12:22: connect: no route to host"},
			{Host: "state1", Step: "dir /etc/gridha", Status: installer.StatusOK, Duration: ms},
			{Host: "state1", Step: "exec mysql", Status: installer.StatusFailed, Message: "mysql -p" + secret + ": exit 1: access denied", Error: "mysql -p" + secret + ": exit 1: access denied", Duration: 40 * ms},
			{Host: "state1", Step: "file /a", Status: installer.StatusSkipped, Message: `skipped: earlier step "exec mysql" failed`},
			{Host: "state1", Step: "file /b", Status: installer.StatusSkipped, Message: `skipped: earlier step "exec mysql" failed`},
		},
	}
}

// clean is an install with changes only.
func clean() *installer.Report {
	return &installer.Report{
		Mode: installer.ModeApply, Started: clock, Duration: 250 * time.Millisecond,
		Hosts: map[string]*installer.HostReport{"rb1": {Host: "rb1", Stats: installer.Stats{Connections: 1, Sessions: 3}}},
		Results: []installer.Result{
			{Host: "rb1", Step: "dir /etc/gridha", Status: installer.StatusOK},
			{Host: "rb1", Step: "file /etc/gridha/host.conf", Status: installer.StatusChanged, Message: "written",
				Diff: "--- a\n+++ b\n@@ -0,0 +1 @@\n+name=rb1\n"},
		},
	}
}

func render(t *testing.T, format string, r *installer.Report, mode installer.Mode, mut func(*Options)) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	o := Options{Out: &out, Err: &errb, Secrets: redactor(), Now: func() time.Time { return clock }, Command: "verify", Version: "v0.1.0"}
	if mut != nil {
		mut(&o)
	}
	rep, err := New(format, o)
	if err != nil {
		t.Fatal(err)
	}
	code, err := rep.Finish(r, mode)
	if err != nil {
		t.Fatal(err)
	}
	if format == "json" {
		validJSON(t, out.Bytes())
	}
	return out.String() + errb.String(), code
}

// validJSON checks a --output json document against the repository's
// schema (report/schema/report.schema.json).
func validJSON(t *testing.T, doc []byte) {
	t.Helper()
	if err := schema.Validate(doc); err != nil {
		t.Errorf("%v\n%s", err, doc)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s: output differs from %s\n--- got ---\n%s--- want ---\n%s", name, path, got, want)
	}
}

func TestGolden(t *testing.T) {
	cases := []struct {
		name, format string
		rep          *installer.Report
		mode         installer.Mode
		code         int
		mut          func(*Options)
	}{
		{"text-verify", "text", sample(), installer.ModeAudit, ExitFailed, nil},
		{"text-verify-verbose-color", "text", sample(), installer.ModeAudit, ExitFailed, func(o *Options) { o.Verbose, o.Color = true, true }},
		{"text-install", "text", clean(), installer.ModeApply, ExitOK, func(o *Options) { o.Command = "install base" }},
		{"text-install-diff", "text", clean(), installer.ModeApply, ExitOK, func(o *Options) { o.Command, o.Diff = "install base", true }},
		{"text-check", "text", driftOnly(), installer.ModeCheck, ExitDrift, func(o *Options) { o.Command, o.Mode = "install base --check", installer.ModeCheck }},
		{"text-interrupted", "text", sample(), installer.ModeAudit, ExitInterrupted, func(o *Options) { o.Interrupted = func() bool { return true } }},
		{"json-verify", "json", sample(), installer.ModeAudit, ExitFailed, nil},
		{"junit-verify", "junit", sample(), installer.ModeAudit, ExitFailed, nil},
		{"nagios-verify", "nagios", sample(), installer.ModeAudit, NagiosCritical, nil},
		{"nagios-ok", "nagios", clean(), installer.ModeApply, NagiosOK, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, code := render(t, c.format, c.rep, c.mode, c.mut)
			if code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			if strings.Contains(got, secret) {
				t.Errorf("secret leaked into %s output:\n%s", c.format, got)
			}
			golden(t, c.name, got)
		})
	}
}

// driftOnly keeps rb1's results: drift and missing, nothing failed.
func driftOnly() *installer.Report {
	r := sample()
	var keep []installer.Result
	for _, res := range r.Results {
		if res.Host == "rb1" {
			keep = append(keep, res)
		}
	}
	r.Results = keep
	r.Hosts = map[string]*installer.HostReport{"rb1": r.Hosts["rb1"]}
	return r
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		format string
		rep    *installer.Report
		want   int
	}{
		{"text", driftOnly(), ExitDrift},
		{"json", driftOnly(), ExitDrift},
		{"junit", driftOnly(), ExitDrift},
		{"nagios", driftOnly(), NagiosWarning},
		{"text", clean(), ExitOK},
		{"json", clean(), ExitOK},
		{"junit", clean(), ExitOK},
		{"text", sample(), ExitFailed},
		{"nagios", sample(), NagiosCritical},
		{"text", &installer.Report{}, ExitOK},
	} {
		_, code := render(t, c.format, c.rep, installer.ModeAudit, nil)
		if code != c.want {
			t.Errorf("%s: exit %d, want %d", c.format, code, c.want)
		}
	}
	// A refused lock: every step skipped, host error set: failed.
	lock := &installer.Report{Hosts: map[string]*installer.HostReport{"rb1": {Host: "rb1", Err: "rb1: lock held by pid 42"}},
		Results: []installer.Result{{Host: "rb1", Step: "dir /x", Status: installer.StatusSkipped, Message: "not run: host not locked"}}}
	for _, f := range Formats {
		_, code := render(t, f, lock, installer.ModeApply, nil)
		want := ExitFailed
		if f == "nagios" {
			want = NagiosCritical
		}
		if code != want {
			t.Errorf("%s: lock refused: exit %d, want %d", f, code, want)
		}
	}
}

func TestNagiosWarningLine(t *testing.T) {
	got, _ := render(t, "nagios", driftOnly(), installer.ModeAudit, nil)
	want := "GRIDHA WARNING - 1 of 1 hosts: rb1: drift file /etc/gridha/host.conf, drift dir /var/lib/gridha, missing keyvalue /etc/motd MOTD | ok=1 drift=2 missing=1 failed=0 unreachable=0 time=1.500s\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if strings.Count(got, "\n") != 1 {
		t.Errorf("nagios output is not one line: %q", got)
	}
}

func TestJSONDocument(t *testing.T) {
	got, _ := render(t, "json", sample(), installer.ModeAudit, nil)
	var doc JSONDocument
	if err := json.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, got)
	}
	if doc.ExitCode != ExitFailed || doc.Mode != "verify" || len(doc.Hosts) != 3 {
		t.Errorf("doc = %+v", doc)
	}
	if doc.Totals["drift"] != 2 || doc.Totals["missing"] != 1 || doc.Totals["unreachable"] != 1 || doc.Totals["failed"] != 1 {
		t.Errorf("totals = %v", doc.Totals)
	}
	rb1 := doc.Hosts[0]
	if rb1.Name != "rb1" || len(rb1.Results) != 4 || rb1.Results[1].Diff == "" || rb1.SSH.Sessions != 2 {
		t.Errorf("rb1 = %+v", rb1)
	}
}

func TestJUnitCounts(t *testing.T) {
	got, _ := render(t, "junit", sample(), installer.ModeAudit, nil)
	var doc junitSuites
	if err := xml.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, got)
	}
	// rb1: gather facts + 4 cases, 3 failures; rb2: host case (error) + 2
	// skipped; state1: gather facts + 4 cases, 1 error, 2 skipped.
	if doc.Tests != 13 || doc.Failures != 3 || doc.Errors != 2 || doc.Skipped != 4 {
		t.Errorf("tests=%d failures=%d errors=%d skipped=%d", doc.Tests, doc.Failures, doc.Errors, doc.Skipped)
	}
	// Where the time went: the host's suite has its wall time, the facts
	// their own case, the steps microseconds.
	for _, want := range []string{`<testsuite name="rb1" tests="5" failures="3" errors="0" skipped="0" time="0.900"`,
		`<testcase name="gather facts" classname="rb1" time="0.800">`, `<testcase name="dir /etc/gridha" classname="rb1" time="0.002000">`} {
		if !strings.Contains(got, want) {
			t.Errorf("junit lacks %s", want)
		}
	}
}

func TestAbort(t *testing.T) {
	bad := errors.New("gridha.yaml:3:5: hosts.rb1.adress: unknown key (did you mean address?)")
	for _, c := range []struct {
		format string
		code   int
		want   int
		in     string
	}{
		{"text", ExitBadInput, ExitBadInput, "gridha: gridha.yaml:3:5: hosts.rb1.adress"},
		{"json", ExitBadInput, ExitBadInput, `"error": "gridha.yaml:3:5`},
		{"junit", ExitBadInput, ExitBadInput, `type="bad-input"`},
		{"nagios", ExitBadInput, NagiosUnknown, "GRIDHA UNKNOWN - gridha.yaml:3:5"},
		{"nagios", ExitInterrupted, NagiosUnknown, "GRIDHA UNKNOWN - interrupted"},
		{"text", ExitInterrupted, ExitInterrupted, "gridha: "},
	} {
		var out, errb bytes.Buffer
		rep, _ := New(c.format, Options{Out: &out, Err: &errb, Now: func() time.Time { return clock }})
		if got := rep.Abort(bad, c.code); got != c.want {
			t.Errorf("%s: Abort = %d, want %d", c.format, got, c.want)
		}
		if all := out.String() + errb.String(); !strings.Contains(all, c.in) {
			t.Errorf("%s: output lacks %q:\n%s", c.format, c.in, all)
		}
		if c.format == "json" {
			validJSON(t, out.Bytes())
		}
	}
}

func TestLiveTerminal(t *testing.T) {
	var out bytes.Buffer
	rep, _ := New("text", Options{Out: &out, Live: true, Width: 40, Secrets: redactor(), Now: func() time.Time { return clock }})
	res := installer.Result{Host: "rb1", Step: "file /etc/" + secret, Status: installer.StatusChanged}
	rep.Event(installer.Event{Host: "rb1", Phase: "base", Kind: installer.EventHostStart})
	rep.Event(installer.Event{Host: "rb2", Phase: "base", Kind: installer.EventHostStart})
	rep.Event(installer.Event{Host: "rb1", Phase: "base", Step: res.Step, Kind: installer.EventStepResult, Result: &res})
	rep.Event(installer.Event{Host: "rb1", Phase: "base", Kind: installer.EventHostDone})
	s := out.String()
	if !strings.Contains(s, "\x1b[2A") {
		t.Errorf("live block not redrawn in place: %q", s)
	}
	if strings.Contains(s, secret) {
		t.Errorf("secret leaked in live line: %q", s)
	}
	for _, line := range strings.Split(s, "\n") {
		if i := strings.LastIndex(line, "\x1b[2K"); i >= 0 && len([]rune(line[i+4:])) > 39 {
			t.Errorf("live line wider than the terminal: %q", line[i+4:])
		}
	}
	out.Reset()
	if _, err := rep.Finish(clean(), installer.ModeApply); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "\x1b[2A\r\x1b[J") {
		t.Errorf("live block not cleared before the report: %q", out.String())
	}
}

func TestPlainProgressLines(t *testing.T) {
	var out bytes.Buffer
	rep, _ := New("text", Options{Out: &out, Secrets: redactor(), Now: func() time.Time { return clock }})
	at := clock.Add(5 * time.Second)
	ok := installer.Result{Host: "rb1", Step: "dir /etc/gridha", Status: installer.StatusOK}
	drift := installer.Result{Host: "rb1", Step: "file /etc/x", Status: installer.StatusDrift, Message: "has " + secret}
	rep.Event(installer.Event{Time: at, Host: "rb1", Phase: "base", Kind: installer.EventHostStart})
	rep.Event(installer.Event{Time: at, Host: "rb1", Phase: "base", Step: ok.Step, Kind: installer.EventStepResult, Result: &ok})
	rep.Event(installer.Event{Time: at, Host: "rb1", Phase: "base", Step: drift.Step, Kind: installer.EventStepResult, Result: &drift})
	rep.Event(installer.Event{Time: at, Host: "rb1", Phase: "base", Kind: installer.EventHostDone})
	want := "01:02:08 rb1 drift file /etc/x: has ********\n01:02:08 rb1 done ok=1 drift=1\n"
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
}

func TestUnknownFormat(t *testing.T) {
	if _, err := New("xml", Options{}); err == nil || !strings.Contains(err.Error(), "text, json, junit, nagios") {
		t.Errorf("err = %v", err)
	}
}

func TestNagiosLongSummary(t *testing.T) {
	r := &installer.Report{Hosts: map[string]*installer.HostReport{}}
	for i := range 200 {
		h := fmt.Sprintf("rb%03d.a-rather-long-domain.example.org", i)
		r.Hosts[h] = &installer.HostReport{Host: h}
		r.Results = append(r.Results, installer.Result{Host: h, Step: "file /etc/gridha/host.conf", Status: installer.StatusDrift})
	}
	got, code := render(t, "nagios", r, installer.ModeAudit, nil)
	if code != NagiosWarning || len(got) > 1200 || !strings.HasSuffix(got, "| ok=0 drift=200 missing=0 failed=0 unreachable=0 time=0.000s\n") {
		t.Errorf("exit %d, %d bytes: %q", code, len(got), got)
	}
}

// A secret anywhere in a report (step name, host error, where a host
// stopped, every result field, live events) never reaches any format.
func TestRedactionEverywhere(t *testing.T) {
	r := sample()
	r.Hosts["state1"].Err = "state1: lock: " + secret
	r.Hosts["state1"].Stopped = "at " + secret
	r.Results = append(r.Results, installer.Result{Host: "rb1", Step: "exec echo " + secret, Status: installer.StatusFailed,
		Message: secret, Expected: secret, Found: secret, Diff: "-" + secret + "\n", Error: secret})
	for _, f := range Formats {
		for _, interrupted := range []bool{false, true} {
			got, _ := render(t, f, r, installer.ModeCheck, func(o *Options) {
				o.Verbose, o.Diff = true, true
				o.Interrupted = func() bool { return interrupted }
			})
			if strings.Contains(got, secret) {
				t.Errorf("%s (interrupted=%v): secret leaked:\n%s", f, interrupted, got)
			}
		}
		var out bytes.Buffer
		rep, _ := New(f, Options{Out: &out, Err: &out, Verbose: true, Secrets: redactor()})
		res := r.Results[len(r.Results)-1]
		rep.Event(installer.Event{Host: "rb1", Step: res.Step, Kind: installer.EventStepResult, Result: &res})
		rep.Event(installer.Event{Host: "rb1", Step: res.Step, Kind: installer.EventLog, Message: secret})
		rep.Event(installer.Event{Host: "rb1", Kind: installer.EventHostUnreachable, Message: secret})
		rep.Abort(errors.New("bad "+secret), ExitBadInput)
		if strings.Contains(out.String(), secret) {
			t.Errorf("%s: secret leaked in progress or abort:\n%s", f, out.String())
		}
	}
}
