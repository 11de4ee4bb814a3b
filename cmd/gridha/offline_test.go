package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/pipeline"
)

// exampleInventory copies inventory-examples/minimal.yaml (test-bed
// addresses 198.18.1.x) into a fresh folder with the secret it references.
func exampleInventory(t *testing.T) string {
	t.Helper()
	body, err := os.ReadFile("../../inventory-examples/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "lbserver.pw"), []byte("pw-of-the-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "gridha.yaml")
	if err := os.WriteFile(inv, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return inv
}

// noNet runs this test binary as gridha (TestMain) in a new network
// namespace: no interface but a down loopback, no route anywhere, so any
// connection fails at once.
func noNet(t *testing.T, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command("unshare", append([]string{"--net", os.Args[0]}, args...)...)
	cmd.Env = append(os.Environ(), "GRIDHA_TEST_AS_CLI=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("unshare: %v", err)
	}
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// TestCheckAndPlanWithoutNetwork proves check and plan never connect: in a
// namespace with no route at all, verify finds every host unreachable
// (exit 2) while check and plan do their whole job (exit 0), and a bad
// inventory gets every mistake reported (exit 3).
func TestCheckAndPlanWithoutNetwork(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs root and unshare (util-linux): %v", err)
		}
		t.Skip("needs root and unshare (util-linux)")
	}
	inv := exampleInventory(t)

	r := noNet(t, "verify", "-i", inv, "-o", "nagios")
	if r.code != 2 || !strings.Contains(r.stdout, "3 of 3 hosts") || !strings.Contains(r.stdout, "unreachable=3") {
		t.Fatalf("verify without network: exit %d, want 2 with 3 unreachable hosts (else this test proves nothing)\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = noNet(t, "check", "-i", inv)
	if r.code != 0 || r.stdout != inv+": ok: 3 hosts; roles state-server (1 hosts, 19 steps), rb-node (3 hosts, 102 steps)\n" {
		t.Errorf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = noNet(t, "plan", "-i", inv)
	for _, want := range []string{
		"rb1 (198.18.1.11; rb-node): ",
		"state1 (198.18.1.10; state-server): ",
		"\n  phase rb-node: HA\n",
		"\n    [rb-node]      file /opt/lcg/etc/hagd.conf\n",
		"    [state-server] mysql database lbserver20\n",
		"3 hosts, ",
	} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("plan: exit %d, output lacks %q\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "pw-of-the-test") {
		t.Errorf("plan shows the MySQL password")
	}

	// Two mistakes the inventory reader finds and, once they are fixed, two
	// only planning finds (a missing secret file; an rb node without a rank):
	// each run reports all of its mistakes at once, with file:line:col.
	body, _ := os.ReadFile(inv)
	bad := strings.Replace(strings.Replace(string(body), "    hostname: rb2", "    hostnme: rb2", 1), "  connect_timeout: 10s", "  connect_timeout: soon", 1)
	if err := os.WriteFile(inv, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	r = noNet(t, "check", "-i", inv)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code != 3 || len(lines) != 2 || !regexp.MustCompile(`^gridha: `+regexp.QuoteMeta(inv)+`:\d+:\d+: defaults.connect_timeout: `).MatchString(lines[0]) ||
		!regexp.MustCompile(`^gridha: `+regexp.QuoteMeta(inv)+`:\d+:\d+: hosts.rb2.hostnme: unknown key`).MatchString(lines[1]) {
		t.Errorf("check, two inventory mistakes: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(inv, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(filepath.Dir(inv), "secrets", "lbserver.pw")); err != nil {
		t.Fatal(err)
	}
	r = noNet(t, "check", "-i", inv)
	pwLine := lineOf(t, body, "password_file:")
	if r.code != 3 || !strings.Contains(r.stderr, "gridha: "+inv+":"+pwLine+":") || !strings.Contains(r.stderr, "role state-server, rb-node: state1: roles.state-server.mysql.password_file: secret file") ||
		r.stdout != "" {
		t.Errorf("check, missing secret file: exit %d, want 3 naming line %s\n%s%s", r.code, pwLine, r.stdout, r.stderr)
	}
}

// lineOf is the line number of the first line of body containing s.
func lineOf(t *testing.T, body []byte, s string) string {
	t.Helper()
	for i, l := range strings.Split(string(body), "\n") {
		if strings.Contains(l, s) {
			return strconv.Itoa(i + 1)
		}
	}
	t.Fatalf("no line with %q", s)
	return ""
}

// In process: check and plan never build a dialer.
func TestCheckAndPlanBuildNoDialer(t *testing.T) {
	inv := writeInventory(t, goodInventory)
	for _, args := range [][]string{{"check", "-i", inv}, {"plan", "-i", inv}, {"plan", "base", "-i", inv, "--limit", "rb2"}} {
		var out, errb bytes.Buffer
		d := Deps{Env: pipeline.Env{Stdout: &out, Stderr: &errb, NewDialer: func(*inventory.Inventory, DialOptions) (installer.Dialer, error) {
			t.Errorf("%v: a dialer was built", args)
			return &refusingDialer{}, nil
		}}}
		if code := Run(t.Context(), append([]string{"gridha"}, args...), d); code != 0 {
			t.Errorf("%v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
		if args[0] == "plan" && (!strings.Contains(out.String(), "rb2 (127.0.0.2; base): ") || strings.Contains(out.String(), "rb1 (") != (len(args) == 3)) {
			t.Errorf("%v:\n%s", args, out.String())
		}
	}
	// A step two roles plan (rb-node plans the state server's too) is
	// labelled with the role its host plays, whatever the order asked.
	r := runCLI(t, t.Context(), nil, "plan", "rb-node", "state-server", "-i", exampleInventory(t))
	if r.code != 0 || !strings.Contains(r.stdout, "    [state-server] mysql database lbserver20\n") {
		t.Errorf("plan rb-node state-server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, t.Context(), nil, "plan", "bsae", "-i", inv)
	if r.code != 3 || !strings.Contains(r.stderr, `did you mean "base"`) {
		t.Errorf("plan bsae: exit %d\n%s", r.code, r.stderr)
	}
}
