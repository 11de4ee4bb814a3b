package dnsupdater

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodConf = `# test
zone = core.example.org
name = topbdii.core.example.org.
ttl = 60
primary = 198.18.1.2:53
primary = 198.18.2.2
tsig_key_name = gridha-bdii
tsig_key_file = /etc/gridha/dns-updater.key
bdii = bdii1 198.18.1.10
bdii = bdii1 2001:db8::10 2170
bdii = bdii2 198.18.1.11 2171
interval = 5s
fail_after = 2
recover_after = 3
freshness = 20m
min_entries = 10
query_base = o=grid
check_timeout = 2s
check_command = entries /usr/lib/nagios/plugins/check_bdii_entries -H {address} -p {port}
state_file = /var/lib/gridha/x.state
`

func TestParseConfigGood(t *testing.T) {
	c, err := ParseConfig("t.conf", []byte(goodConf))
	if err != nil {
		t.Fatal(err)
	}
	if c.Zone != "core.example.org." || c.Name != "topbdii.core.example.org." || c.TTL != time.Minute {
		t.Errorf("zone/name/ttl: %q %q %s", c.Zone, c.Name, c.TTL)
	}
	if strings.Join(c.Primaries, ",") != "198.18.1.2:53,198.18.2.2:53" {
		t.Errorf("primaries %v", c.Primaries)
	}
	if c.TSIGKeyName != "gridha-bdii." || c.TSIGAlgorithm != "hmac-sha256" {
		t.Errorf("key %q %q", c.TSIGKeyName, c.TSIGAlgorithm)
	}
	if len(c.BDIIs) != 3 || c.BDIIs[1].Address.String() != "2001:db8::10" || c.BDIIs[2].Port != 2171 || c.BDIIs[0].Port != 2170 {
		t.Errorf("bdiis %+v", c.BDIIs)
	}
	if c.Interval != 5*time.Second || c.FailAfter != 2 || c.RecoverAfter != 3 || c.Freshness != 20*time.Minute ||
		c.MinEntries != 10 || c.QueryBase != "o=grid" || c.CheckTimeout != 2*time.Second {
		t.Errorf("numbers %+v", c)
	}
	if len(c.Commands) != 1 || c.Commands[0].Name != "entries" || c.Commands[0].Argv[0] != "/usr/lib/nagios/plugins/check_bdii_entries" {
		t.Errorf("commands %+v", c.Commands)
	}
	// Marshal round trip.
	c2, err := ParseConfig("m.conf", c.Marshal())
	if err != nil {
		t.Fatalf("marshal output does not parse: %v\n%s", err, c.Marshal())
	}
	if string(c2.Marshal()) != string(c.Marshal()) {
		t.Errorf("round trip differs:\n%s\n---\n%s", c.Marshal(), c2.Marshal())
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig("t.conf", []byte("zone=z.org\nname=rr.z.org\nttl=30s\nprimary=10.0.0.1\ntsig_key_file=/k\nbdii=a 10.0.0.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Interval != 30*time.Second || c.FailAfter != DefaultFailAfter || c.RecoverAfter != DefaultRecoverAfter ||
		c.Freshness != 1200*time.Second || c.MinEntries != 1 || c.StateFile != DefaultStateFile || c.CheckTimeout != 5*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := "zone = z.org\nname = rr.z.org\nttl = 60\nprimary = 10.0.0.1:53\ntsig_key_file = /k\nbdii = a 10.0.0.5\n"
	cases := []struct {
		name, body string
		line       int
		want       string
	}{
		{"ttl below 30", strings.Replace(base, "ttl = 60", "ttl = 29", 1), 3, "below MAN05"},
		{"ttl 10s", strings.Replace(base, "ttl = 60", "ttl = 10s", 1), 3, "below MAN05"},
		{"unknown key", base + "colour = blue\n", 7, "unknown key"},
		{"no equals", base + "fail_after 3\n", 7, "key = value"},
		{"dup key", base + "ttl = 90\n", 7, "already set on line 3"},
		{"dup primary", base + "primary = 10.0.0.1\n", 7, "same entry as line 4"},
		{"dup bdii address", base + "bdii = b 10.0.0.5\n", 7, "same entry as line 6"},
		{"bad bdii", base + "bdii = onlyname\n", 7, "NAME ADDRESS"},
		{"bdii hostname", base + "bdii = b bdii.example.org\n", 7, "not an IP address"},
		{"bad port", base + "bdii = b 10.0.0.6 99999\n", 7, "port"},
		{"bad primary port", strings.Replace(base, "10.0.0.1:53", "10.0.0.1:x", 1), 4, "port"},
		{"name outside zone", strings.Replace(base, "rr.z.org", "rr.other.org", 1), 2, "not inside zone"},
		{"no ttl", strings.Replace(base, "ttl = 60\n", "", 1), 0, "ttl: required"},
		{"no bdii", strings.Replace(base, "bdii = a 10.0.0.5\n", "", 1), 0, "bdii: at least one"},
		{"relative key", strings.Replace(base, "/k", "k", 1), 5, "absolute"},
		{"algorithm", base + "tsig_algorithm = hmac-md5\n", 7, "only hmac-sha256"},
		{"fail_after 0", base + "fail_after = 0\n", 7, "1 to 1000"},
		{"timeout >= interval", base + "interval = 5\ncheck_timeout = 5\n", 8, "shorter than interval"},
		{"query base", base + "query_base = o=other\n", 7, "o=grid or o=glue"},
		{"relative plugin", base + "check_command = x check_it\n", 7, "absolute path"},
		{"empty value", base + "zone =\n", 7, "empty value"},
		{"bad duration", base + "interval = soon\n", 7, "not a duration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("u.conf", []byte(tc.body))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want ConfigError, got %v", err)
			}
			if ce.Line != tc.line || !strings.Contains(ce.Msg, tc.want) {
				t.Errorf("got %v (line %d), want line %d containing %q", err, ce.Line, tc.line, tc.want)
			}
			if tc.line > 0 && !strings.HasPrefix(err.Error(), "u.conf:") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func secret32() string {
	return base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
}

func TestParseKey(t *testing.T) {
	s := secret32()
	k, err := ParseKey([]byte(s+"\n"), "k1.", "hmac-sha256")
	if err != nil || k.Name != "k1." || k.Secret != s {
		t.Fatalf("plain: %+v %v", k, err)
	}
	bind := "# gridha\nkey \"gridha-bdii\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + s + "\";\n};\n"
	k, err = ParseKey([]byte(bind), "", "")
	if err != nil || k.Name != "gridha-bdii." || k.Secret != s {
		t.Fatalf("bind: %+v %v", k, err)
	}
	if _, err := ParseKey([]byte(bind), "other.", ""); err == nil || !strings.Contains(err.Error(), "configuration says") {
		t.Errorf("name mismatch not caught: %v", err)
	}
	if _, err := ParseKey([]byte(strings.Replace(bind, "hmac-sha256", "hmac-md5", 1)), "", ""); err == nil {
		t.Error("algorithm mismatch not caught")
	}
	if _, err := ParseKey([]byte(s), "", ""); err == nil || !strings.Contains(err.Error(), "no key name") {
		t.Errorf("missing name: %v", err)
	}
	if _, err := ParseKey([]byte("not base64!"), "k.", ""); err == nil || strings.Contains(err.Error(), "not base64!") {
		t.Errorf("bad secret: %v", err)
	}
	if _, err := ParseKey([]byte("c2hvcnQ="), "k.", ""); err == nil {
		t.Error("short secret accepted")
	}
}

func TestLoadKeyMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := os.WriteFile(p, []byte(secret32()), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Config{TSIGKeyFile: p, TSIGKeyName: "k.", TSIGAlgorithm: "hmac-sha256"}
	if _, err := c.LoadKey(); err == nil || !strings.Contains(err.Error(), "too open") {
		t.Fatalf("0644 accepted: %v", err)
	}
	for _, m := range []os.FileMode{0o600, 0o640} {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
		if _, err := c.LoadKey(); err != nil {
			t.Errorf("mode %o: %v", m, err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConf))
	f.Add([]byte("zone=z\nname=a.z\nttl=30\nprimary=[::1]:53\ntsig_key_file=/k\nbdii=a ::1\n"))
	f.Add([]byte("bdii = a 1.2.3.4 2170 extra\n= x\n#\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("f.conf", data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		// Whatever parses must survive Marshal -> Parse unchanged.
		c2, err := ParseConfig("m.conf", c.Marshal())
		if err != nil {
			t.Fatalf("marshal of a parsed config does not parse: %v\n%s", err, c.Marshal())
		}
		if string(c2.Marshal()) != string(c.Marshal()) {
			t.Fatalf("round trip differs")
		}
		if c.TTL < MinTTL {
			t.Fatalf("ttl %s accepted", c.TTL)
		}
	})
}

func TestParseConfigIPv6Names(t *testing.T) {
	c, err := ParseConfig("t.conf", []byte("zone=z.org\nname=rr.z.org\nttl=30\nprimary=[2001:db8::53]:53\nprimary=2001:db8::54\n"+
		"tsig_key_file=/k\nbdii=2001:db8::1 2001:db8::1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Primaries[0] != "[2001:db8::53]:53" || c.Primaries[1] != "[2001:db8::54]:53" || c.BDIIs[0].Name != "2001:db8::1" {
		t.Errorf("%v %+v", c.Primaries, c.BDIIs)
	}
	if _, err := ParseConfig("m.conf", c.Marshal()); err != nil {
		t.Errorf("round trip: %v\n%s", err, c.Marshal())
	}
}
