package main

import (
	"context"
	"strings"
	"testing"
)

// everyMistakeInventory holds one mistake of every kind the roles used to
// find only while planning (one at a time, without a position): each line
// marked "# <- " is wrong. The hosts are test-bed addresses no bed uses.
const everyMistakeInventory = `hosts:
  state1: {address: 198.18.250.10, roles: [state-server]}
  rb1: {address: 198.18.250.11, roles: [rb-node, base]}
  rb2: {address: 198.18.250.12, roles: [rb-node]}                # <- no rank in any group (reported at nodes:)
  ui1: {address: 198.18.250.13, roles: [bdii-client]}
  dns1: {address: 198.18.250.14, roles: [dns]}
roles:
  state-server:
    mysql:                                                       # <- no password_file
      bind_address: "db host"                                    # <- not an address hagd can reach
  rb-node:
    state_server: state1
    mount_point: /mnt/rb$state                                   # <- shell character
    state_dirs: [/var/edgwl, "/var/my proxy"]                    # <- space
    hagd:
      script: /opt/lcg/sbin/lcg-ha;service                       # <- shell character
      config: /opt/lcg/etc/../hagd.conf                          # <- not clean
      iface: [an-interface-name-too-long]                        # <- longer than 15
      heartbeat: 2s
      dt1: 3s                                                    # <- less than twice the heartbeat
      lease_ttl: 2s                                              # <- shorter than the lease budget
    groups:
      ga: {service_ip: "2001:db8::10/64", iface: eth0}           # <- IPv6: hagd moves IPv4
      gb: {service_ip: 198.18.250.300/24, iface: eth0}           # <- not an address
      gc: {service_ip: 198.18.250.101/24, iface: "eth0;reboot"}  # <- not an interface
    nodes:
      rb1: {ga: 100, gb: 100, gc: 100, gz: 1}                    # <- no group gz
  bdii-client:
    bdii_list: [topbdii.example.org]                             # <- no port
  dns:
    zone: example.org
    name: topbdii
    ttl: 10                                                      # <- below MAN05's 30 s
    primaries: [dns1, dns9]                                      # <- dns9 is no host
    bdiis:
      - {name: bdii1, address: 198.18.250.20}
      - {name: bdii2}                                            # <- no address, no such host
    updater:
      check_timeout: 40                                          # <- not shorter than the default interval (30 s)
      query_base: o=elsewhere                                    # <- not under o=grid or o=glue
      check_commands:
        - {name: site, argv: [/usr/lib/nagios/plugins/check_ldap]}
        - {name: site, argv: [/usr/lib/nagios/plugins/check_tcp]}  # <- name twice
`

// TestEveryRoleMistakeInOneRun: an inventory with one mistake of every kind
// the roles checked while planning reports all of them in one run, each at
// its file:line:col with its field, exit 3, and no host dialled (the
// dialer records every attempt; a run that dialled would also end 2, not 3).
// Before, these came one per run from the roles, most without a position,
// and mysql.password_file's absence only after the others were fixed.
func TestEveryRoleMistakeInOneRun(t *testing.T) {
	inv := writeInventory(t, everyMistakeInventory)
	body := []byte(everyMistakeInventory)
	want := []struct{ marker, field, msg string }{
		{"    nodes:", "roles.rb-node.nodes", "rb-node rb2 has no rank in any group"},
		{`bind_address: "db host"`, "roles.state-server.mysql.bind_address", "must be an IP address or a DNS name"},
		{"    mysql:", "roles.state-server.mysql.password_file", "required: the L&B user's password"},
		{"mount_point: /mnt/rb$state", "roles.rb-node.mount_point", "cannot go into the service script"},
		{"state_dirs: [/var/edgwl", "roles.rb-node.state_dirs[1]", "cannot go into the service script's list"},
		{"script: /opt/lcg/sbin/lcg-ha;service", "roles.rb-node.hagd.script", "without spaces or shell characters"},
		{"config: /opt/lcg/etc/../hagd.conf", "roles.rb-node.hagd.config", "must be a clean absolute path"},
		{"iface: [an-interface", "roles.rb-node.hagd.iface[0]", "not an interface name"},
		{"dt1: 3s", "roles.rb-node.hagd.dt1", "must be at least twice the heartbeat (2s) (hagd would not start)"},
		{"lease_ttl: 2s", "roles.rb-node.hagd.lease_ttl", "is too short"},
		{"ga: {service_ip", "roles.rb-node.groups.ga.service_ip", "must be an IPv4 address"},
		{"gb: {service_ip", "roles.rb-node.groups.gb.service_ip", "must be an address with prefix length"},
		{"gc: {service_ip", "roles.rb-node.groups.gc.iface", "not an interface name"},
		{"rb1: {ga: 100", "roles.rb-node.nodes.rb1.gz", "no such group"},
		{"bdii_list: [topbdii", "roles.bdii-client.bdii_list[0]", "want host:port"},
		{"ttl: 10", "roles.dns.ttl", "below 30 s"},
		{"primaries: [dns1, dns9]", "roles.dns.primaries[1]", `no host "dns9"`},
		{"- {name: bdii2}", "roles.dns.bdiis[1].address", "set the BDII's IP address"},
		{"check_timeout: 40", "roles.dns.updater.check_timeout", "40s must be shorter than updater.interval (30s)"},
		{"query_base: o=elsewhere", "roles.dns.updater.query_base", "want a DN ending in o=grid or o=glue"},
		{"argv: [/usr/lib/nagios/plugins/check_tcp]", "roles.dns.updater.check_commands[1].name", "already updater.check_commands[0]'s name"},
	}
	for _, args := range [][]string{{"verify", "-i", inv}, {"install", "rb-node", "-i", inv}, {"check", "-i", inv}} {
		r := runCLI(t, context.Background(), nil, args...)
		if r.code != 3 {
			t.Errorf("%v: exit %d, want 3\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if len(r.dialed) > 0 {
			t.Errorf("%v: bad input, yet dialled %v", args, r.dialed)
		}
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		for _, w := range want {
			prefix := inv + ":" + lineOf(t, body, w.marker) + ":"
			found := false
			for _, l := range lines {
				// file:line:col: field: message
				rest, ok := strings.CutPrefix(strings.TrimPrefix(l, "gridha: "), prefix)
				col, rest, ok2 := strings.Cut(rest, ": ")
				if ok && ok2 && col != "" && strings.Trim(col, "0123456789") == "" &&
					strings.HasPrefix(rest, w.field+": ") && strings.Contains(rest, w.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("%v: no line %sCOL: %s: ...%s...", args, prefix, w.field, w.msg)
			}
		}
		if t.Failed() {
			t.Fatalf("stderr:\n%s", r.stderr)
		}
	}
}
