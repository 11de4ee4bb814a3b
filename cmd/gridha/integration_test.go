package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/roles"
	"github.com/gridha/gridha/testbed"
)

// gridhaOnBed runs the real CLI in-process (real sshx dialer, real OpenSSH
// on the bed's hosts).
func gridhaOnBed(t *testing.T, args ...string) cliResult {
	t.Helper()
	return gridhaWith(t, nil, true, args...)
}

// gridhaWith is gridhaOnBed with the roles of reg (nil: DefaultRegistry);
// logged puts the command and its output in the test log (benchmarks keep
// their output short).
func gridhaWith(t testing.TB, reg *roles.Registry, logged bool, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	d := DefaultDeps()
	if reg != nil {
		d.Registry = reg
	}
	d.Stdout, d.Stderr = &out, &errb
	d.Terminal = nil
	d.Getenv = func(string) string { return "" }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := Run(ctx, append([]string{"gridha"}, args...), d)
	checkJSONReport(t, args, out.String())
	if logged {
		t.Logf("gridha %s → exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

func sh(t testing.TB, h *testbed.Host, script string) string {
	t.Helper()
	out, err := h.Sh(context.Background(), script)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", h.Name, script, err, out)
	}
	return strings.TrimSpace(out)
}

func snapshots(t testing.TB, hs ...*testbed.Host) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, h := range hs {
		s, err := h.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func assertUnchanged(t testing.TB, what string, before, after []map[string]string) {
	t.Helper()
	for i := range before {
		if d := testbed.DiffSnapshots(before[i], after[i]); len(d) > 0 {
			t.Errorf("%s wrote on host %d: %v", what, i, d)
		}
	}
}

// TestBaseOnBed: install base (then again: no change), verify clean, then a
// hand edit and a mode change are reported as drift in every format, and
// neither --check nor verify writes anything.
func TestBaseOnBed(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bed := testbed.New(t, "rb1", "rb2")
	rb1, rb2 := bed.Host("rb1"), bed.Host("rb2")
	inv := bed.WriteInventory(t, bed.HostsYAML(map[string][]string{"rb1": {"base"}, "rb2": {"base"}})+
		"roles:\n  base:\n    motd: \"gLite RB HA pair (managed by gridha)\"\n")

	// --check on fresh hosts: would change, exit 1, nothing written.
	before := snapshots(t, rb1, rb2)
	r := gridhaOnBed(t, "install", "base", "-i", inv, "--check", "--diff")
	if r.code != report.ExitDrift || !strings.Contains(r.stdout, "would create file /etc/gridha/host.conf") {
		t.Fatalf("install --check: exit %d, want 1 with missing steps", r.code)
	}
	assertUnchanged(t, "install --check", before, snapshots(t, rb1, rb2))

	r = gridhaOnBed(t, "install", "base", "-i", inv)
	if r.code != 0 || !strings.Contains(r.stdout, "rb1 : ok=0 changed=4 failed=0 unreachable=0 skipped=0") {
		t.Fatalf("install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, h := range bed.Hosts() {
		conf := sh(t, h, "cat /etc/gridha/host.conf")
		for _, want := range []string{"# Managed by gridha", "GRIDHA_HOST='" + h.Name + "'", "GRIDHA_HOSTNAME='" + h.Hostname + "'", "GRIDHA_ROLES='base'"} {
			if !strings.Contains(conf, want) {
				t.Errorf("%s: /etc/gridha/host.conf lacks %q:\n%s", h.Name, want, conf)
			}
		}
		if got := sh(t, h, "stat -c '%a %U:%G %F' /etc/gridha /etc/gridha/host.conf /var/lib/gridha"); got != "755 root:root directory\n644 root:root regular file\n700 root:root directory" {
			t.Errorf("%s: modes:\n%s", h.Name, got)
		}
		if got := sh(t, h, "cat /etc/motd"); got != "gLite RB HA pair (managed by gridha)" {
			t.Errorf("%s: /etc/motd = %q", h.Name, got)
		}
	}

	// Second run: nothing to do.
	r = gridhaOnBed(t, "install", "base", "-i", inv)
	if r.code != 0 || !strings.Contains(r.stdout, "rb1 : ok=4 changed=0") || !strings.Contains(r.stdout, "rb2 : ok=4 changed=0") {
		t.Fatalf("second install: exit %d, want 0 and no change", r.code)
	}

	// verify on converged hosts: exit 0, nothing written, ≤ 3 sessions per host.
	before = snapshots(t, rb1, rb2)
	r = gridhaOnBed(t, "verify", "-i", inv, "-o", "json")
	if r.code != 0 {
		t.Fatalf("verify: exit %d", r.code)
	}
	var doc report.JSONDocument
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	for _, h := range doc.Hosts {
		if h.SSH.Connections != 1 || h.SSH.Sessions > 3 {
			t.Errorf("%s: verify used %d connections, %d sessions (want 1, ≤ 3)", h.Name, h.SSH.Connections, h.SSH.Sessions)
		}
	}
	assertUnchanged(t, "verify", before, snapshots(t, rb1, rb2))

	// Drift: a hand edit of host.conf on rb1, a mode change on rb2.
	sh(t, rb1, "echo 'EDITED_BY_HAND=yes' >> /etc/gridha/host.conf")
	sh(t, rb2, "chmod 0755 /var/lib/gridha")
	before = snapshots(t, rb1, rb2)

	r = gridhaOnBed(t, "verify", "-i", inv)
	if r.code != report.ExitDrift {
		t.Errorf("verify after edit: exit %d, want 1", r.code)
	}
	for _, want := range []string{"drift        file /etc/gridha/host.conf", "-EDITED_BY_HAND=yes", "drift        dir /var/lib/gridha",
		"rb1 : ok=3 changed=0 failed=0 unreachable=0 skipped=0 drift=1 missing=0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify text lacks %q", want)
		}
	}

	r = gridhaOnBed(t, "verify", "-i", inv, "-o", "json")
	doc = report.JSONDocument{}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if r.code != 1 || doc.ExitCode != 1 || doc.Totals["drift"] != 2 {
		t.Errorf("json: exit %d, doc exit %d, totals %v", r.code, doc.ExitCode, doc.Totals)
	}
	found := false
	for _, h := range doc.Hosts {
		for _, res := range h.Results {
			if h.Name == "rb1" && res.Step == "file /etc/gridha/host.conf" {
				found = res.Status == "drift" && strings.Contains(res.Diff, "EDITED_BY_HAND")
			}
		}
	}
	if !found {
		t.Errorf("json: no drift with a diff for rb1 host.conf:\n%s", r.stdout)
	}

	r = gridhaOnBed(t, "verify", "-i", inv, "-o", "junit")
	if r.code != 1 || strings.Count(r.stdout, `<failure type="drift"`) != 2 || !strings.Contains(r.stdout, `<testsuite name="rb1"`) {
		t.Errorf("junit: exit %d\n%s", r.code, r.stdout)
	}

	r = gridhaOnBed(t, "verify", "-i", inv, "-o", "nagios")
	if r.code != report.NagiosWarning || !strings.HasPrefix(r.stdout, "GRIDHA WARNING - 2 of 2 hosts: rb1: drift file /etc/gridha/host.conf; rb2: drift dir /var/lib/gridha | ok=6 drift=2 missing=0 failed=0 unreachable=0 time=") {
		t.Errorf("nagios: exit %d: %q", r.code, r.stdout)
	}
	assertUnchanged(t, "verify after drift", before, snapshots(t, rb1, rb2))

	// install puts it right (keeping the edited file as a backup); verify is clean again.
	r = gridhaOnBed(t, "install", "base", "-i", inv, "--diff")
	if r.code != 0 || !strings.Contains(r.stdout, "changed      file /etc/gridha/host.conf") || !strings.Contains(r.stdout, "-EDITED_BY_HAND=yes") {
		t.Errorf("install after drift: exit %d", r.code)
	}
	if got := sh(t, rb1, "grep -c EDITED_BY_HAND /etc/gridha/host.conf || true"); got != "0" {
		t.Errorf("rb1: hand edit still in host.conf")
	}
	if got := sh(t, rb2, "stat -c %a /var/lib/gridha"); got != "700" {
		t.Errorf("rb2: /var/lib/gridha mode %s, want 700", got)
	}
	if r = gridhaOnBed(t, "verify", "-i", inv); r.code != 0 {
		t.Errorf("final verify: exit %d", r.code)
	}
	_ = os.Remove(inv)
}

// TestUnreachableOnBed: one host's link is down: the other converges, the
// recap says unreachable, exit 2 (nagios CRITICAL), and a Ctrl-C during a
// run reports where each host stood with exit 130.
func TestUnreachableOnBed(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bed := testbed.New(t, "rb1", "rb2")
	rb1, rb2 := bed.Host("rb1"), bed.Host("rb2")
	inv := bed.WriteInventory(t, bed.HostsYAML(map[string][]string{"rb1": {"base"}, "rb2": {"base"}}))
	// A short connect timeout for the dead host.
	body, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inv, []byte(strings.Replace(string(body), "defaults:\n", "defaults:\n  connect_timeout: 2s\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rb2.LinkDown(); err != nil {
		t.Fatal(err)
	}
	r := gridhaOnBed(t, "install", "base", "-i", inv)
	if r.code != report.ExitFailed {
		t.Errorf("install with rb2 down: exit %d, want 2", r.code)
	}
	if !strings.Contains(r.stdout, "rb1 : ok=0 changed=3 failed=0 unreachable=0") || !strings.Contains(r.stdout, "rb2 : ok=0 changed=0 failed=0 unreachable=1") {
		t.Errorf("recap:\n%s", r.stdout)
	}
	if got := sh(t, rb1, "stat -c %a /var/lib/gridha"); got != "700" {
		t.Errorf("rb1 not converged while rb2 was down: /var/lib/gridha %q", got)
	}
	r = gridhaOnBed(t, "verify", "-i", inv, "-o", "nagios")
	if r.code != report.NagiosCritical || !strings.HasPrefix(r.stdout, "GRIDHA CRITICAL - 1 of 2 hosts: rb2: unreachable | ok=3 drift=0 missing=0 failed=0 unreachable=1 ") {
		t.Errorf("nagios: exit %d %q", r.code, r.stdout)
	}
	if err := rb2.LinkUp(); err != nil {
		t.Fatal(err)
	}

	// Ctrl-C as soon as rb2's first step changed something: the run stops
	// between steps, exit 130, and the report says where rb2 stood.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errb bytes.Buffer
	out := &cancelOn{word: "rb2 changed", cancel: cancel}
	d := DefaultDeps()
	d.Stdout, d.Stderr, d.Terminal = out, &errb, nil
	code := Run(ctx, []string{"gridha", "install", "base", "-i", inv, "--limit", "rb2"}, d)
	t.Logf("interrupted install → exit %d\n%s%s", code, out.String(), errb.String())
	if code != report.ExitInterrupted || !strings.Contains(out.String(), "INTERRUPTED: where each host stood") ||
		!strings.Contains(out.String(), "rb2 : interrupted in phase base before step") {
		t.Errorf("interrupted install: exit %d, want 130 and where rb2 stood", code)
	}
	if r = gridhaOnBed(t, "install", "base", "-i", inv); r.code != 0 {
		t.Errorf("install after the interruption: exit %d", r.code)
	}
}

// cancelOn is a stdout that presses Ctrl-C when word is written.
type cancelOn struct {
	bytes.Buffer
	word   string
	cancel func()
}

func (c *cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.word) {
		c.cancel()
	}
	return c.Buffer.Write(p)
}
