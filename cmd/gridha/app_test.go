package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/pipeline"
)

// refusingDialer is the transport of in-process CLI tests: every host is
// unreachable. It records who was dialled, so bad-input tests can prove no
// host was.
type refusingDialer struct {
	mu     sync.Mutex
	dialed []string
	onDial func(ctx context.Context) error
}

func (d *refusingDialer) Dial(ctx context.Context, host string) (installer.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, host)
	d.mu.Unlock()
	if d.onDial != nil {
		return nil, d.onDial(ctx)
	}
	return nil, errors.New("dial tcp: connect: connection refused")
}

type cliResult struct {
	code           int
	stdout, stderr string
	dialed         []string
}

func runCLI(t *testing.T, ctx context.Context, dialer *refusingDialer, args ...string) cliResult {
	t.Helper()
	if dialer == nil {
		dialer = &refusingDialer{}
	}
	var out, errb bytes.Buffer
	d := Deps{
		Env: pipeline.Env{
			Registry: DefaultRegistry(),
			NewDialer: func(*inventory.Inventory, DialOptions) (installer.Dialer, error) {
				return dialer, nil
			},
			Stdout:  &out,
			Stderr:  &errb,
			Getenv:  func(string) string { return "" },
			Now:     func() time.Time { return time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC) },
			Version: "1.2.3",
		},
		Commit:   "abc1234",
		Commands: DefaultDeps().Commands,
	}
	code := Run(ctx, append([]string{"gridha"}, args...), d)
	checkJSONReport(t, args, out.String())
	return cliResult{code: code, stdout: out.String(), stderr: errb.String(), dialed: dialer.dialed}
}

func writeInventory(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gridha.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodInventory = `hosts:
  rb1:
    address: 127.0.0.1
    roles: [base]
  rb2:
    address: 127.0.0.2
    roles: [base]
`

func TestHelp(t *testing.T) {
	r := runCLI(t, context.Background(), nil, "--help")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"install", "verify", "version", "completion", "dns-updater", "hagd", "rb-ha-install-helper",
		"rb-state-server", "site-info.def", "--inventory", "GRIDHA_INVENTORY", "--limit", "--check", "--diff",
		"--output", "--host-key-policy", "--no-color", "130 interrupted"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("gridha --help lacks %q", want)
		}
	}
	r = runCLI(t, context.Background(), nil, "install", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "mark hosts as gridha-managed") || !strings.Contains(r.stdout, "--state-from NODE") {
		t.Errorf("install --help (exit %d):\n%s", r.code, r.stdout)
	}
	r = runCLI(t, context.Background(), nil, "verify", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "WARNING (1: drift/missing") {
		t.Errorf("verify --help (exit %d):\n%s", r.code, r.stdout)
	}
}

func TestBadInputExits3WithoutDialling(t *testing.T) {
	dir := t.TempDir()
	good := writeInventory(t, goodInventory)
	badKey := writeInventory(t, "hosts:\n  rb1:\n    address: 127.0.0.1\n    adress: 127.0.0.1\n    roles: [base]\n")
	noKeyFile := writeInventory(t, "hosts:\n  rb1:\n    address: 127.0.0.1\n    identity_file: keys/missing_ed25519\n    roles: [base]\n")
	for _, c := range []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"unknown key", []string{"verify", "-i", badKey}, []string{"gridha: " + badKey + ":4:5: hosts.rb1.adress: unknown key", "did you mean 'address'"}},
		{"missing key file", []string{"install", "base", "-i", noKeyFile}, []string{"gridha: " + noKeyFile + ":4:20: hosts.rb1.identity_file:", "does not exist"}},
		{"no inventory", []string{"verify", "-i", filepath.Join(dir, "nope.yaml")}, []string{"gridha: inventory: open", "inventory-examples/"}},
		{"unknown role", []string{"install", "bsae", "-i", good}, []string{`gridha: unknown role "bsae", did you mean "base"?`}},
		{"unknown role in verify", []string{"verify", "rb-nod", "-i", good}, []string{`unknown role "rb-nod"`}},
		{"no role", []string{"install", "-i", good}, []string{"install: which role? one of base,"}},
		{"unknown limit host", []string{"-i", good, "--limit", "rb3", "verify"}, []string{`gridha: --limit: no host 'rb3'`, `did you mean 'rb1'?`}},
		{"unknown state-from", []string{"install", "base", "-i", good, "--state-from", "rb7"}, []string{`--state-from: no host "rb7"`}},
		{"bad output", []string{"verify", "-i", good, "-o", "xml"}, []string{"--output must be one of text, json, junit, nagios"}},
		{"bad policy", []string{"verify", "-i", good, "--host-key-policy", "yes"}, []string{"--host-key-policy must be one of strict, accept-new"}},
		{"bad concurrency", []string{"verify", "-i", good, "--concurrency", "0"}, []string{"--concurrency must be at least 1"}},
		{"unknown flag", []string{"verify", "--chek"}, []string{"gridha: flag provided but not defined: -chek"}},
		{"unknown command", []string{"verfy"}, []string{`unknown command "verfy", did you mean "verify"?`}},
		{"no host plays role", []string{"install", "base", "-i", writeInventory(t, "hosts:\n  x:\n    address: 127.0.0.1\n")}, []string{"no host in", "plays role base"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, context.Background(), nil, c.args...)
			if r.code != 3 {
				t.Errorf("exit %d, want 3\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if len(r.dialed) > 0 {
				t.Errorf("bad input, yet dialled %v", r.dialed)
			}
		})
	}
}

func TestBadInputInMachineFormats(t *testing.T) {
	bad := writeInventory(t, "hosts:\n  rb1:\n    adress: x\n")
	r := runCLI(t, context.Background(), nil, "verify", "-i", bad, "--output", "nagios")
	if r.code != 3 || !strings.HasPrefix(r.stdout, "GRIDHA UNKNOWN - "+bad+":") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("nagios: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, context.Background(), nil, "verify", "-i", bad, "--output", "json")
	if r.code != 3 || !strings.Contains(r.stdout, `"exit_code": 3`) || !strings.Contains(r.stdout, `"error": "`+bad+":") {
		t.Errorf("json: exit %d, stdout %s", r.code, r.stdout)
	}
	r = runCLI(t, context.Background(), nil, "verify", "-i", bad, "--output", "junit")
	if r.code != 3 || !strings.Contains(r.stdout, `<error type="bad-input"`) {
		t.Errorf("junit: exit %d, stdout %s", r.code, r.stdout)
	}
}

// Every host unreachable: the pipeline runs to the end, exit 2, whichever
// side of the command the flags are on.
func TestUnreachable(t *testing.T) {
	inv := writeInventory(t, goodInventory)
	for _, args := range [][]string{
		{"install", "base", "-i", inv, "--check", "--limit", "rb1"},
		{"-i", inv, "--limit=rb1", "install", "--check", "base"},
		{"-i", inv, "install", "base", "--limit", "rb1", "--check"},
	} {
		r := runCLI(t, context.Background(), nil, args...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if strings.Join(r.dialed, ",") != "rb1" {
			t.Errorf("%v: dialled %v, want rb1 only (--limit)", args, r.dialed)
		}
		if !strings.Contains(r.stdout, "rb1 : ok=0 changed=0 failed=0 unreachable=1 skipped=0 drift=0 missing=0") {
			t.Errorf("%v: recap:\n%s", args, r.stdout)
		}
	}
	r := runCLI(t, context.Background(), nil, "verify", "-i", inv, "-o", "nagios")
	if r.code != 2 || !strings.HasPrefix(r.stdout, "GRIDHA CRITICAL - 2 of 2 hosts: rb1: unreachable; rb2: unreachable | ok=0 drift=0 missing=0 failed=0 unreachable=2 time=") {
		t.Errorf("nagios: exit %d: %q", r.code, r.stdout)
	}
	t.Setenv("GRIDHA_INVENTORY", inv)
	r = runCLI(t, context.Background(), nil, "verify", "base", "-o", "json")
	if r.code != 2 || !strings.Contains(r.stdout, `"unreachable": 2`) {
		t.Errorf("GRIDHA_INVENTORY: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// Ctrl-C while connecting: exit 130 and where each host stood.
func TestInterrupted(t *testing.T) {
	inv := writeInventory(t, goodInventory)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &refusingDialer{onDial: func(dctx context.Context) error {
		cancel()
		<-dctx.Done()
		return dctx.Err()
	}}
	r := runCLI(t, ctx, d, "install", "base", "-i", inv, "--concurrency", "1")
	if r.code != 130 {
		t.Fatalf("exit %d, want 130\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "INTERRUPTED: where each host stood") || !strings.Contains(r.stdout, " : interrupted while connecting in phase base") {
		t.Errorf("no account of where hosts stood:\n%s", r.stdout)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	r := runCLI(t, context.Background(), nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "gridha 1.2.3 (commit abc1234,") {
		t.Errorf("version: %d %q", r.code, r.stdout)
	}
	for _, sh := range []string{"bash", "zsh"} {
		r = runCLI(t, context.Background(), nil, "completion", sh)
		if r.code != 0 || !strings.Contains(r.stdout, " __complete ") || !strings.Contains(r.stdout, "gridha") {
			t.Errorf("completion %s: %d %q", sh, r.code, r.stdout)
		}
	}
	if r = runCLI(t, context.Background(), nil, "completion", "fish"); r.code != 3 {
		t.Errorf("completion fish: exit %d", r.code)
	}
	r = runCLI(t, context.Background(), nil, "install", "--generate-bash-completion")
	if !strings.HasPrefix(r.stdout, "base\n") {
		t.Errorf("role completion: %q", r.stdout)
	}
}

func TestFlagsFirst(t *testing.T) {
	app := NewApp(Deps{})
	for _, c := range []struct{ in, want string }{
		{"gridha install base --check -i x.yaml", "gridha install --check -i x.yaml base"},
		{"gridha -i x.yaml verify base rb-node --output json", "gridha -i x.yaml verify --output json base rb-node"},
		{"gridha verify -- --weird", "gridha verify --weird"},
		{"gridha install base --limit=rb1 --diff", "gridha install --limit=rb1 --diff base"},
		{"gridha version", "gridha version"},
		{"gridha install base -i", "gridha install base -i"},
		{"gridha install base -l rb1 --check", "gridha install -l rb1 --check base"},
		{"gridha completion bash", "gridha completion bash"},
	} {
		got := strings.Join(flagsFirst(app, strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("%q → %q, want %q", c.in, got, c.want)
		}
	}
}
