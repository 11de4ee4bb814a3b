package main

import (
	"context"
	"strings"
	"testing"

	"github.com/gridha/gridha/inventory"
)

// TestRoleHelp: "install ROLE --help" and "verify ROLE --help" exit 0 with
// the command's help and every setting of the role (key, type, default,
// description), flags before or after the role; an unknown role is exit 3
// with a suggestion.
func TestRoleHelp(t *testing.T) {
	for _, role := range inventory.KnownRoles() {
		ss, err := inventory.Settings(role)
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"install", role, "--help"}, {"verify", "-h", role}, {"-i", "x.yaml", "install", role, "--check", "--help"}} {
			cmd := "install"
			if args[0] == "verify" {
				cmd = "verify"
			}
			r := runCLI(t, context.Background(), nil, args...)
			if r.code != 0 || !strings.Contains(r.stdout, "USAGE:\n   gridha "+cmd+" ") {
				t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, "SETTINGS of role "+role+" ") {
				t.Errorf("%v: no settings section:\n%s", args, r.stdout)
			}
			for _, s := range ss {
				line := "   " + s.Key + " (" + s.Type
				if s.Default != "" {
					line += ", default " + s.Default
				}
				if !strings.Contains(r.stdout, line+")\n      "+s.Doc+"\n") {
					t.Errorf("%v: lacks %s (%q)", args, s.Key, line)
				}
			}
		}
	}
	r := runCLI(t, context.Background(), nil, "install", "rb-nod", "--help")
	if r.code != 3 || !strings.Contains(r.stderr, `did you mean "rb-node"?`) {
		t.Errorf("unknown role: exit %d\n%s", r.code, r.stderr)
	}
}
