package inventory

import (
	"strings"
	"testing"
)

// poolYAML is an inventory with n state servers (s1..sn) and one rb node;
// pool is the body of roles.state-server.pool (indented 6 spaces).
func poolYAML(n int, pool string) string {
	var b strings.Builder
	b.WriteString("hosts:\n")
	for i := 1; i <= n; i++ {
		b.WriteString("  s" + string(rune('0'+i)) + ": {address: 198.18.1." + string(rune('0'+i)) + "0, roles: [state-server]}\n")
	}
	b.WriteString("  rb1: {address: 198.18.1.90, roles: [rb-node]}\n")
	b.WriteString("roles:\n  rb-node:\n    groups:\n      rb-a: {service_ip: 198.18.1.100/24, iface: eth0}\n    nodes:\n      rb1: {rb-a: 100}\n")
	b.WriteString("  state-server:\n    mysql: {password_file: /dev/null}\n")
	if pool != "" {
		b.WriteString("    pool:\n" + pool)
	}
	return b.String()
}

func TestStatePoolValidation(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // substrings of the error lines; none: valid
	}{
		{"single state server needs no pool settings", poolYAML(1, ""), nil},
		{"three members with service IP and iface", poolYAML(3, "      service_ip: 198.18.1.101/24\n      iface: eth0\n"), nil},
		{"pool without service IP or iface", poolYAML(3, ""), []string{
			"roles.state-server.pool.service_ip: required: 3 hosts have role state-server (a pool)",
			"roles.state-server.pool.iface: required",
		}},
		{"service IP without prefix", poolYAML(3, "      service_ip: 198.18.1.101\n      iface: eth0\n"), []string{
			"roles.state-server.pool.service_ip: must be an address with prefix length",
		}},
		{"two members without arbiter", poolYAML(2, "      service_ip: 198.18.1.101/24\n      iface: eth0\n"), []string{
			"roles.state-server.pool.arbiter: a pool of 2 hosts cannot keep quorum",
		}},
		{"arbiter outside the pool", poolYAML(3, "      service_ip: 198.18.1.101/24\n      iface: eth0\n      arbiter: rb1\n"), []string{
			`roles.state-server.pool.arbiter: host "rb1" does not have role state-server`,
		}},
		{"unknown arbiter", poolYAML(3, "      service_ip: 198.18.1.101/24\n      iface: eth0\n      arbiter: s9\n"), []string{
			`roles.state-server.pool.arbiter: no host "s9" in the inventory`,
		}},
		{"bad names and limits", poolYAML(3, "      service_ip: 198.18.1.101/24\n      iface: eth0\n      cluster_name: \"a b\"\n      volume: \"x;y\"\n      ha_group: \"../g\"\n      brick_dir: relative\n      ping_timeout: 60s\n      cert_days: 4000\n"), []string{
			"roles.state-server.pool.ping_timeout: must be 1s-42s, got 1m0s",
			"roles.state-server.pool.cert_days: must be 1-3650, got 4000",
			`roles.state-server.pool.cluster_name: must be 1-64 letters, digits, _ or -, got "a b"`,
			`roles.state-server.pool.volume: must be 1-64 letters, digits, _ or -, got "x;y"`,
			`roles.state-server.pool.ha_group: must be 1-64 letters, digits, _ or -, got "../g"`,
			`roles.state-server.pool.brick_dir: must be a clean absolute path other than /, got "relative"`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseErrs(t, tc.body)
			var pool []string
			for _, l := range got {
				if strings.Contains(l, "state-server.pool") {
					pool = append(pool, l)
				}
			}
			if len(pool) != len(tc.want) {
				t.Fatalf("errors:\n%s\nwant %d pool errors like:\n%s", strings.Join(got, "\n"), len(tc.want), strings.Join(tc.want, "\n"))
			}
			// Errors come sorted by position in the file.
			all := strings.Join(pool, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("no error containing %q in:\n%s", w, all)
				}
			}
		})
	}
}

func TestStatePoolDefaultsAndMembers(t *testing.T) {
	inv, err := Parse("gridha.yaml", []byte(poolYAML(3, "      service_ip: 198.18.1.101/24\n      iface: eth0\n")))
	if err != nil {
		t.Fatal(err)
	}
	p := inv.Roles.StateServer.Pool
	if p.ClusterName != "gridha-lb" || p.HAGroup != "statedb" || p.Volume != "rbstate" {
		t.Fatalf("defaults: %+v", p)
	}
	if !IsPool(inv) {
		t.Fatal("3 state servers: not a pool")
	}
	var names []string
	for _, h := range PoolMembers(inv) {
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "s1,s2,s3" {
		t.Fatalf("members in file order: %v", names)
	}
}
