package inventory

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// errLineRe is the shape of every error line: file:line:col: field: what,
// file:line: what (YAML syntax errors, where yaml.v3 gives no column), or
// file: what (no position known).
var errLineRe = regexp.MustCompile(`^fuzz\.yaml(:\d+(:\d+)?)?: \S`)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../inventory-examples/*.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"",
		"hosts:\n  a: {address: 10.0.0.1, roles: [rb-node]}\n",
		"hosts: &h\n  a: *h\n",
		"hosts:\n  a: &a {address: 10.0.0.1}\n  b: {<<: *a, port: 2222}\n",
		"defaults: {port: abc, connect_timeout: 10}\nhosts: {a: {address: x}}\n",
		"roles:\n  dns: {bdiis: [{name: a}], ttl: 5}\n  bdii-client: {bdii_list: ['[::1]:2170']}\n",
		"hosts:\n  a: {address: 10.0.0.1}\n---\nhosts: {}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse("fuzz.yaml", data)
		if err != nil {
			if inv != nil {
				t.Fatalf("inventory and error both returned")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !errLineRe.MatchString(line) {
					t.Fatalf("error line not file:line:col: %q", line)
				}
			}
			return
		}
		if len(inv.Hosts) == 0 {
			t.Fatalf("valid inventory without hosts")
		}
		for _, h := range inv.Hosts {
			if h.Name == "" || h.Address == "" || h.Hostname == "" || h.SSH.ConnectTimeout <= 0 {
				t.Fatalf("host not filled: %+v", *h)
			}
			if inv.Host(h.Name) != h {
				t.Fatalf("Host(%q) is not the host", h.Name)
			}
			if _, err := inv.ResolveLimit([]string{h.Name}); err != nil {
				t.Fatalf("ResolveLimit(%q): %v", h.Name, err)
			}
		}
	})
}
