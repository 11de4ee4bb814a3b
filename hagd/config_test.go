package hagd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimalConf = `# test
id = rb1
group = rb1:100, rb2:50
group = rb3:10   # a second group line adds
script = /opt/lcg/sbin/hagd-service
key = /opt/lcg/etc/hagd.key
mysql_host = state1.example.org
mysql_user = hagd
mysql_password_file = /opt/lcg/etc/hagd.mysql
`

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig("hagd.conf", []byte(minimalConf))
	if err != nil {
		t.Fatal(err)
	}
	want := []Group{{"rb1", 100}, {"rb2", 50}, {"rb3", 10}}
	if len(c.Groups) != 3 || c.Groups[0] != want[0] || c.Groups[1] != want[1] || c.Groups[2] != want[2] {
		t.Errorf("groups %v", c.Groups)
	}
	if c.Port != 3333 || c.Debug != 2 || c.Timeout != DefaultTimeout || c.DT1 != DefaultDT1 || c.DT2 != DefaultDT2 ||
		c.Lease != "mysql" || c.MySQLDB != "hagd" || c.Control != DefaultControl || c.StopTimeout != DefaultStopTimeout {
		t.Errorf("defaults: %+v", c)
	}
}

// TestDefaultConfigIsWhatHAGDDoes: a hagd.conf that sets only the
// required keys and a rendered one whose template leaves every timing out
// both run with DefaultConfig's values (the inventory shows and fills the
// same), and timeout is 2 min, the value install rb-node always wrote.
func TestDefaultConfigIsWhatHAGDDoes(t *testing.T) {
	d := DefaultConfig()
	if d.Timeout != 2*time.Minute || d.StopTimeout != 5*time.Second {
		t.Fatalf("timeout %s, stop_timeout %s: want 2m, 5s", d.Timeout, d.StopTimeout)
	}
	parsed, err := ParseConfig("hagd.conf", []byte(minimalConf))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ConfigTemplate{ID: "rb1", Groups: []Group{{"rb1", 100}}, Script: "/s", KeyFile: "/k",
		MySQLHost: "db", MySQLUser: "u", MySQLPasswordFile: "/p"}.Render()
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := ParseConfig("rendered", b)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Config{parsed, rendered} {
		if c.Port != d.Port || c.Timeout != d.Timeout || c.StopTimeout != d.StopTimeout || c.Debug != d.Debug ||
			c.DT1 != d.DT1 || c.DT2 != d.DT2 || c.Heartbeat != d.Heartbeat || c.StatusInterval != d.StatusInterval ||
			c.Backoff != d.Backoff || c.Lease != d.Lease || c.LeaseRenew != d.LeaseRenew || c.LeaseTimeout != d.LeaseTimeout ||
			c.Control != d.Control || c.Preempt != d.Preempt {
			t.Errorf("%s: got %+v\nwant %+v", c.Path, c, d)
		}
	}
	if parsed.MySQLDB != d.MySQLDB {
		t.Errorf("mysql_db %q", parsed.MySQLDB)
	}
	// stop_timeout follows a short timeout down; ExitWait covers each
	// group's stop one after another.
	short, err := ParseConfig("x", []byte(minimalConf+"timeout = 3s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if short.StopTimeout != 3*time.Second || DefaultStopTimeoutFor(3*time.Second) != 3*time.Second {
		t.Errorf("stop_timeout with timeout 3s: %s", short.StopTimeout)
	}
	if w := ExitWait(5*time.Second, 3); w != 45*time.Second {
		t.Errorf("ExitWait(5s, 3) = %s", w)
	}
}

func TestParseConfigValues(t *testing.T) {
	c, err := ParseConfig("x", []byte(minimalConf+`port = 4444
timeout = 45
debug = 0
iface = eth0, eth1
iface = bond0
dt1 = 1.5s
dt2 = 500ms
heartbeat = 250ms
lease_ttl = 4s
lease_renew = 500ms
lease_timeout = 500ms
stop_timeout = 2s
max_skew = 0
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 4444 || c.Timeout != 45*time.Second || c.Debug != 0 || strings.Join(c.Ifaces, " ") != "eth0 eth1 bond0" ||
		c.DT1 != 1500*time.Millisecond || c.DT2 != 500*time.Millisecond || c.MaxSkew != 0 {
		t.Errorf("%+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct{ conf, want string }{
		{"prot = 3333\n", `f:1: prot: unknown key (did you mean "port"?)`},
		{"port = 70000\n", `f:1: port: "70000" is not a port`},
		{"port 3333\n", `f:1: "port 3333": want key = value`},
		{"\n\ngroup = rb1\n", `f:3: group: "rb1": want name:rank`},
		{"group = rb1:x\n", `f:1: group: rb1: rank "x" is not a number`},
		{"group = rb1:1, rb1:2\n", `f:1: group: group rb1 listed twice`},
		{"debug = 9\n", `f:1: debug: "9" is not a level 0-5`},
		{"timeout = soon\n", `f:1: timeout: "soon" is not a duration`},
		{"timeout = 0\n", `f:1: timeout: "0": must be more than 0`},
		{"script = hagd-service\n", `f:1: script: "hagd-service" is not an absolute path`},
		{"port = 1\nport = 2\n", `f:2: port: set twice (first at line 1)`},
		{"key =\n", `f:1: key: empty value`},
		{"lease = zookeeper\n", `f:1: lease: "zookeeper": want mysql, file or none`},
		{"mysql_host = a b\n", `mysql_host: "a b" is not a host[:port]`},
	}
	for _, c := range cases {
		_, err := ParseConfig("f", []byte(c.conf))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.conf, err, c.want)
		}
	}
	// Semantic errors, once the lines parse.
	sem := []struct{ extra, want string }{
		{"dt1 = 1s\nheartbeat = 1s\n", "dt1: 1s must be at least twice the heartbeat"},
		{"lease_ttl = 3s\n", "lease_ttl: 3s is too short"},
		{"lease = file\n", "lease_file: required with lease = file"},
	}
	for _, c := range sem {
		_, err := ParseConfig("f", []byte(minimalConf+c.extra))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.extra, err, c.want)
		}
	}
	_, err := ParseConfig("f", []byte("port = 3333\n"))
	for _, k := range []string{"group: required", "script: required", "key: required"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("missing keys: got %v, want %q", err, k)
		}
	}
	// All line errors are reported, not just the first.
	_, err = ParseConfig("f", []byte("a = 1\nb = 2\n"))
	if err == nil || !strings.Contains(err.Error(), "f:1: a:") || !strings.Contains(err.Error(), "f:2: b:") {
		t.Errorf("got %v", err)
	}
}

func TestKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hagd.key")
	if err := os.WriteFile(p, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Config{KeyFile: p}
	if _, err := c.ReadKey(); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Errorf("0644 key accepted: %v", err)
	}
	os.Chmod(p, 0o600)
	k, err := c.ReadKey()
	if err != nil || string(k) != "0123456789abcdef0123" {
		t.Errorf("key %q, %v", k, err)
	}
	os.WriteFile(p, []byte("short"), 0o600)
	if _, err := c.ReadKey(); err == nil {
		t.Error("short key accepted")
	}
}

func TestTemplateRendersAndParses(t *testing.T) {
	debug := 3
	cases := []ConfigTemplate{
		{ID: "rb1", Groups: []Group{{"rb1", 100}, {"rb2", 50}}, Script: "/opt/lcg/sbin/hagd-service",
			KeyFile: "/opt/lcg/etc/hagd.key", MySQLHost: "state1", MySQLUser: "hagd", MySQLPasswordFile: "/opt/lcg/etc/hagd.mysql"},
		{ID: "rb2", Groups: []Group{{"g", 1}}, Script: "/s", KeyFile: "/k", Ifaces: []string{"eth0", "eth1"}, Debug: &debug,
			Lease: "file", LeaseFile: "/var/lib/hagd", DT1: 1500 * time.Millisecond, DT2: 500 * time.Millisecond,
			Heartbeat: 250 * time.Millisecond, LeaseTTL: 3 * time.Second, LeaseRenew: 500 * time.Millisecond,
			LeaseTimeout: 500 * time.Millisecond, StopTimeout: time.Second, Timeout: 3 * time.Second, Log: "/var/log/hagd.log"},
		{ID: "rb3", Groups: []Group{{"g", 1}}, Script: "/s", KeyFile: "/k", Lease: "none"},
	}
	for _, tc := range cases {
		b, err := tc.Render()
		if err != nil {
			t.Fatalf("%s: %v", tc.ID, err)
		}
		c, err := ParseConfig("rendered", b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.ID, err, b)
		}
		if c.ID != tc.ID || len(c.Groups) != len(tc.Groups) || c.Script != tc.Script || c.KeyFile != tc.KeyFile {
			t.Errorf("%s: parsed back %+v", tc.ID, c)
		}
		if !strings.HasPrefix(string(b), "# Managed by gridha") {
			t.Errorf("no header:\n%s", b)
		}
		if tc.ID == "rb2" && (c.Debug != 3 || c.DT1 != 1500*time.Millisecond || strings.Join(c.Ifaces, ",") != "eth0,eth1" || c.LeaseFile != "/var/lib/hagd") {
			t.Errorf("rb2: %+v", c)
		}
	}
	if _, err := (ConfigTemplate{ID: "x"}).Render(); err == nil {
		t.Error("incomplete template rendered")
	}
	if _, err := (ConfigTemplate{ID: "x", Groups: []Group{{"g", 1}}, Script: "/s # x", KeyFile: "/k", Lease: "none"}).Render(); err == nil {
		t.Error("value with # rendered")
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimalConf))
	f.Add([]byte("port = 1\n# x\n\tgroup = a:1 # c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig("fuzz", b)
		if err == nil && (len(c.Groups) == 0 || c.Script == "" || c.KeyFile == "") {
			t.Fatalf("accepted an incomplete config: %+v", c)
		}
	})
}

func TestParseConfigServiceIP(t *testing.T) {
	c, err := ParseConfig("hagd.conf", []byte(minimalConf+"service_ip = rb1:198.18.1.100/24@eth0\nservice_ip = rb3:198.18.1.101/24@eth1\npreempt = no\npeers_file = /var/lib/hagd/peers\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ServiceIPs["rb1"].String(); got != "198.18.1.100/24@eth0" || len(c.ServiceIPs) != 2 || c.Preempt || c.PeersFile != "/var/lib/hagd/peers" {
		t.Errorf("service IPs %v, preempt %v, peers %q", c.ServiceIPs, c.Preempt, c.PeersFile)
	}
	// With service_ip the default lease leaves the kernel lifetime room.
	if c.LeaseTTL < c.MinLeaseTTLForIP() || c.ipLifetimeFloor() < time.Second {
		t.Errorf("default lease_ttl %v, floor %v", c.LeaseTTL, c.ipLifetimeFloor())
	}
	for _, tc := range []struct{ extra, want string }{
		{"service_ip = rb1:198.18.1.100@eth0\n", `hagd.conf:10: service_ip: "rb1:198.18.1.100@eth0": "198.18.1.100" is not an IPv4 address/prefix`},
		{"service_ip = rb1:198.18.1.100/24\n", "want group:address/prefix@iface"},
		{"service_ip = nosuch:198.18.1.100/24@eth0\n", "service_ip: group nosuch is not in group"},
		{"service_ip = rb1:198.18.1.100/24@eth0, rb1:198.18.1.101/24@eth0\n", "group rb1 has two service IPs"},
		{"service_ip = rb1:198.18.1.100/24@eth0\nlease_ttl = 2.5s\nlease_renew = 400ms\nlease_timeout = 400ms\nstop_timeout = 1s\ndt1 = 1.2s\nheartbeat = 250ms\n",
			"lease_ttl: 2.5s is too short for service_ip"},
		{"preempt = maybe\n", `preempt: "maybe": want yes or no`},
	} {
		_, err := ParseConfig("hagd.conf", []byte(minimalConf+tc.extra))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.extra, err, tc.want)
		}
	}
	// The tuned timings with a 3 s lease are accepted.
	if _, err := ParseConfig("hagd.conf", []byte(minimalConf+"service_ip = rb1:198.18.1.100/24@eth0\nlease_ttl = 3s\nlease_renew = 400ms\nlease_timeout = 400ms\nstop_timeout = 1s\ndt1 = 1.2s\nheartbeat = 250ms\n")); err != nil {
		t.Errorf("tuned with lease_ttl 3s: %v", err)
	}
}
