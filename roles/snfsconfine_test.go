package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
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

// TestSSHDEffectiveOneRun runs the probe script with the real sshd on a
// config file of the test's own: without a Match on Address or Host, sshd
// runs once for all node addresses and each gets the same settings; with a
// Match Address block before gridha's, sshd runs per address and the drift
// shows from that address only.
func TestSSHDEffectiveOneRun(t *testing.T) {
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs root and %s (openssh-server)", sshd)
		}
		t.Skip("needs root and " + sshd)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "hostkey")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	s := &sshdConfine{User: "snfs", Export: "/x", Driver: "sshfs", Addrs: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}}
	block := sshdBlock(s.User, s.Export, s.Driver)
	run := func(conf string) (string, int) {
		cf, count := filepath.Join(dir, "sshd_config"), filepath.Join(dir, "count")
		if err := os.WriteFile(cf, []byte("HostKey "+key+"\n"+conf), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(count)
		// The real sshd, on this config; each run counted.
		wrap := "sshd() { echo x >> " + count + "; " + sshd + " -f " + cf + " \"$@\"; }\n"
		out, err := exec.Command("sh", "-c", wrap+s.effectiveScript()).CombinedOutput()
		if err != nil {
			t.Fatalf("script: %v\n%s", err, out)
		}
		c, _ := os.ReadFile(count)
		return string(out), strings.Count(string(c), "x")
	}
	out, n := run(SetSSHDBlock("Match User other\n\tX11Forwarding yes\n", block))
	if d := s.effectiveDiffs(out); len(d) > 0 || n != 1 || strings.Count(out, "@@addr ") != 3 || strings.Count(out, "chrootdirectory /x\n") != 3 {
		t.Errorf("no Match on addresses: %d sshd runs, diffs %v\n%s", n, d, out)
	}
	out, n = run(SetSSHDBlock("Match Address 10.0.0.2\n\tX11Forwarding yes\n", block))
	d := s.effectiveDiffs(out)
	if n != 3 || len(d) != 1 || d[0] != `from 10.0.0.2: x11forwarding is "yes", want "no"` {
		t.Errorf("Match Address 10.0.0.2: %d sshd runs, diffs %v\n%s", n, d, out)
	}
	out, n = run(SetSSHDBlock("Match host=10.0.0.3\n\tPermitTTY yes\n", block))
	d = s.effectiveDiffs(out)
	if n != 3 || len(d) != 1 || d[0] != `from 10.0.0.3: permittty is "yes", want "no"` {
		t.Errorf("Match host=10.0.0.3: %d sshd runs, diffs %v\n%s", n, d, out)
	}
}

// TestExportParentSealedCheck: the sealed parent passes only when root-only
// and holding nothing but the export; what else it holds is named.
func TestExportParentSealedCheck(t *testing.T) {
	s := exportParentSealed("/export/rb-state").(*steps.Exec)
	for _, c := range []struct {
		out  string
		ok   bool
		find string
	}{
		{"700 root:root\n", true, "mode 700 root:root"},
		{"755 root:root\n", false, "mode 755 root:root"},
		{"700 root:root\nhome\nscratch\n", false, "also holds home, scratch"},
		{"700 adm:root\n", false, "mode 700 adm:root"},
		{"", false, "/export missing"},
	} {
		ok, found := s.Check(installer.ProbeResult{Stdout: []byte(c.out)})
		if ok != c.ok || !strings.Contains(found, c.find) {
			t.Errorf("%q: got %v %q, want %v containing %q", c.out, ok, found, c.ok, c.find)
		}
	}
}
