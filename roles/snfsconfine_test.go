package roles

import (
	"strings"
	"testing"
)

func TestSetSSHDBlock(t *testing.T) {
	block := sshdBlock("snfs", "/export/rb-state", "sshfs")
	cases := []struct{ name, in string }{
		{"empty", ""},
		{"no newline at end", "Port 22\nUsePAM yes"},
		{"block last already", "Port 22\n" + block},
		{"block in the middle", "Port 22\n" + block + "Match User other\n\tX11Forwarding yes\n"},
		{"old block changed", "Port 22\n" + strings.Replace(block, "PermitTTY no", "PermitTTY yes", 1)},
	}
	for _, c := range cases {
		out := SetSSHDBlock(c.in, block)
		if !strings.HasSuffix(out, block) || strings.Count(out, sshdBlockBegin) != 1 {
			t.Errorf("%s: block not exactly once and last:\n%s", c.name, out)
		}
		if SetSSHDBlock(out, block) != out {
			t.Errorf("%s: not idempotent", c.name)
		}
		in := false
		for _, l := range strings.Split(c.in, "\n") {
			switch l {
			case sshdBlockBegin:
				in = true
			case sshdBlockEnd:
				in = false
			}
			if !in && l != "" && !strings.Contains(out, l) {
				t.Errorf("%s: lost line %q", c.name, l)
			}
		}
	}
	if !strings.Contains(block, "\tChrootDirectory /export/rb-state\n\tForceCommand internal-sftp\n") {
		t.Errorf("sshfs block:\n%s", block)
	}
	if b := sshdBlock("snfs", "/export/rb-state", "snfs"); strings.Contains(b, "Chroot") || strings.Contains(b, "ForceCommand") || !strings.Contains(b, "AllowTcpForwarding no") {
		t.Errorf("snfs driver block:\n%s", b)
	}
}

func TestSSHDEffectiveDiffs(t *testing.T) {
	s := &sshdConfine{User: "snfs", Export: "/x", Driver: "sshfs"}
	good := "@@addr 10.0.0.1\n"
	for k, v := range confinement("snfs", "/x", "sshfs") {
		good += k + " " + v + "\n"
	}
	if d := s.effectiveDiffs(good); len(d) > 0 {
		t.Fatalf("good settings: %v", d)
	}
	bad := strings.Replace(good, "allowtcpforwarding no", "allowtcpforwarding yes", 1)
	if d := s.effectiveDiffs(bad); len(d) != 1 || !strings.Contains(d[0], `from 10.0.0.1: allowtcpforwarding is "yes", want "no"`) {
		t.Fatalf("forwarding allowed: %v", d)
	}
	// sshd -T failing (bad config) prints nothing useful: every setting drifts.
	if d := s.effectiveDiffs("@@addr 10.0.0.1\n/etc/ssh/sshd_config line 3: Bad configuration option\n"); len(d) != len(confinement("snfs", "/x", "sshfs")) {
		t.Fatalf("no output: %v", d)
	}
}

func TestParseResolved(t *testing.T) {
	got := ParseResolved("@@ rb1.example.org\n10.0.0.2\n2001:db8::2\n10.0.0.2\n@@ nowhere.example.org\n@@ rb2\ngarbage\n10.0.0.3\n")
	if strings.Join(got["rb1.example.org"], ",") != "10.0.0.2,10.0.0.2,2001:db8::2" && strings.Join(got["rb1.example.org"], ",") != "10.0.0.2,2001:db8::2" {
		t.Errorf("rb1: %v", got["rb1.example.org"])
	}
	if a, ok := got["nowhere.example.org"]; !ok || len(a) != 0 {
		t.Errorf("unresolved name: %v %v", a, ok)
	}
	if strings.Join(got["rb2"], ",") != "10.0.0.3" {
		t.Errorf("rb2: %v", got["rb2"])
	}
}

func FuzzParseResolved(f *testing.F) {
	f.Add("@@ a\n10.0.0.1\n")
	f.Fuzz(func(t *testing.T, s string) {
		for n, addrs := range ParseResolved(s) {
			for _, a := range addrs {
				if !isIP(a) {
					t.Fatalf("%s: %q is no IP", n, a)
				}
			}
		}
	})
}
