package pipeline

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/roles"
)

// fileRole plans one file step on every host playing it (it borrows a
// real role's name: the inventory knows only those).
type fileRole struct {
	name string
	mode uint32
}

func (r fileRole) Name() string    { return r.name }
func (r fileRole) Summary() string { return "test role" }
func (r fileRole) Plan(inv *inventory.Inventory, opts roles.Options) (*installer.Plan, error) {
	ph := installer.Phase{Name: r.name, Steps: map[string][]installer.Step{}}
	for _, h := range inv.HostsWithRole(r.name) {
		ph.Steps[h.Name] = []installer.Step{steps.File{Path: "/etc/shared.conf", Content: []byte("x\n"), Mode: fs.FileMode(0o644 | r.mode)}}
	}
	return &installer.Plan{Phases: []installer.Phase{ph}}, nil
}

// testEnv runs with reg, writes the report to stderr, and records in
// dialled whether a dialer was asked for (it fails: no host is reached).
func testEnv(reg *roles.Registry, stderr io.Writer, dialled *bool) Env {
	return Env{
		Registry: reg,
		NewDialer: func(*inventory.Inventory, DialOptions) (installer.Dialer, error) {
			*dialled = true
			return nil, io.EOF
		},
		Stdout:   io.Discard,
		Stderr:   stderr,
		Terminal: func(io.Writer) (bool, int) { return false, 0 },
		Getenv:   func(string) string { return "" },
		Now:      time.Now,
	}
}

// TestExecuteBadInputDialsNothing: an inventory mistake, an unknown
// --state-from and two roles wanting one file differently each end the
// run with exit 3 before any host is dialled; the reporter says why.
func TestExecuteBadInputDialsNothing(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "gridha.yaml")
	if err := os.WriteFile(inv, []byte("hosts:\n  h1:\n    address: 198.18.0.1\n    roles: [base, bdii-client]\nroles:\n  bdii-client:\n    bdii_list: [top1.example.org:2170]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		req  Request
		want string
	}{
		{"conflicting roles", Request{Roles: []string{"base", "bdii-client"}}, `step "file /etc/shared.conf" is planned by roles base and bdii-client with different wants (steps.File.Mode)`},
		{"unknown state-from", Request{Roles: []string{"base"}, StateFrom: "h2"}, `--state-from: no host "h2"`},
		{"unknown role", Request{Roles: []string{"base", "rb-node"}}, `unknown role "rb-node"`},
		{"no inventory", Request{Roles: []string{"base"}, Inventory: filepath.Join(dir, "none.yaml")}, "give the inventory with -i FILE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			dialled := false
			env := testEnv(roles.NewRegistry(fileRole{"base", 0}, fileRole{"bdii-client", 0o20}), &stderr, &dialled)
			req := c.req
			req.Command, req.Mode, req.Output, req.Concurrency = "install", installer.ModeCheck, "text", 1
			if req.Inventory == "" {
				req.Inventory = inv
			}
			code, unsaid := Execute(context.Background(), env, req)
			if code != report.ExitBadInput || unsaid != nil || dialled {
				t.Fatalf("exit %d, unsaid %v, dialled %v; want 3, nil, false", code, unsaid, dialled)
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, stderr.String())
			}
		})
	}
	// Two roles wanting the same: planned once, reaches the dialer.
	dialled := false
	env := testEnv(roles.NewRegistry(fileRole{"base", 0}, fileRole{"bdii-client", 0}), io.Discard, &dialled)
	if code, _ := Execute(context.Background(), env, Request{Command: "install", Mode: installer.ModeCheck, Output: "text", Concurrency: 1, Inventory: inv, Roles: []string{"base", "bdii-client"}}); code != report.ExitBadInput || !dialled {
		t.Errorf("identical wants: exit %d, dialled %v; want the dialer reached (and its error, exit 3)", code, dialled)
	}
}
