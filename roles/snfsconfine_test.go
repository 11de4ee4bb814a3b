package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
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
	// "@@same" before any address stands for nothing: every setting drifts.
	if d := s.effectiveDiffs("@@same\n@@addr 10.0.0.1\n@@same\n"); len(d) != len(confinement("snfs", "/x", "sshfs")) {
		t.Fatalf("@@same with no first address: %v", d)
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
	// getent ahosts as it prints: the address first, each address once.
	got = ParseResolved("@@ rb4\n10.0.0.4        STREAM rb4.example.org\n10.0.0.4        DGRAM  \n10.0.0.4        RAW    \n2001:db8::4     STREAM \n")
	if strings.Join(got["rb4"], ",") != "10.0.0.4,2001:db8::4" {
		t.Errorf("rb4: %v", got["rb4"])
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
	if d := s.effectiveDiffs(out); len(d) > 0 || n != 1 || strings.Count(out, "@@addr ") != 3 || strings.Count(out, "\n@@same\n") != 2 || strings.Count(out, "chrootdirectory /x\n") != 1 {
		t.Errorf("no Match on addresses: %d sshd runs, diffs %v\n%s", n, d, out)
	}
	// The others stand for the first: what differs there differs from
	// every address.
	d0 := s.effectiveDiffs(strings.Replace(out, "chrootdirectory /x\n", "chrootdirectory none\n", 1))
	if len(d0) != 3 || d0[2] != `from 10.0.0.3: chrootdirectory is "none", want "/x"` {
		t.Errorf("first address drifting: diffs %v", d0)
	}
	// A node named by DNS name: each address getent gives once, the same
	// one sshd run standing for them; with a Match on Address, sshd per
	// address, the name's included.
	named := &sshdConfine{User: "snfs", Export: "/x", Driver: "sshfs", Addrs: []string{"10.0.0.1", "localhost"}}
	runNamed := func(conf string) (string, int) {
		saved := s
		s = named
		defer func() { s = saved }()
		return run(conf)
	}
	out, n = runNamed(SetSSHDBlock("Match User other\n\tX11Forwarding yes\n", block))
	if d := named.effectiveDiffs(out); len(d) > 0 || n != 1 || !strings.Contains(out, "@@addr 127.0.0.1\n@@same\n") || strings.Count(out, "@@addr 127.0.0.1\n") != 1 {
		t.Errorf("named node, no Match on addresses: %d sshd runs, diffs %v\n%s", n, d, out)
	}
	out, n = runNamed(SetSSHDBlock("Match Address 127.0.0.1\n\tX11Forwarding yes\n", block))
	if d := named.effectiveDiffs(out); n != strings.Count(out, "@@addr ") || n < 2 || len(d) != 1 || d[0] != `from 127.0.0.1: x11forwarding is "yes", want "no"` {
		t.Errorf("named node, Match Address 127.0.0.1: %d sshd runs, diffs %v\n%s", n, d, out)
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
	dir := func(mode uint32, owner string) installer.FileFact {
		return installer.FileFact{Path: "/export", Exists: true, Kind: installer.KindDir, Mode: installer.UnixFileMode(mode), Owner: owner, Group: "root"}
	}
	for _, c := range []struct {
		ff      installer.FileFact
		entries string
		ok      bool
		find    string
	}{
		{dir(0o700, "root"), "", true, "mode 700 root:root"},
		{dir(0o755, "root"), "", false, "mode 755 root:root"},
		{dir(0o1700, "root"), "", false, "mode 1700 root:root"},
		{dir(0o700, "root"), "home\nscratch\n", false, "also holds home, scratch"},
		{dir(0o700, "adm"), "", false, "mode 700 adm:root"},
		{installer.FileFact{Path: "/export"}, "", false, "/export missing"},
	} {
		ok, found := sealedCheck("/export", c.ff, c.entries)
		if ok != c.ok || !strings.Contains(found, c.find) {
			t.Errorf("%+v %q: got %v %q, want %v containing %q", c.ff, c.entries, ok, found, c.ok, c.find)
		}
	}
}

// TestSealedParentEntries runs the entries probe on a folder of the test's
// own: every entry but the export and lost+found, dotfiles included, one
// per line, as ls -A | grep -vxF printed them.
func TestSealedParentEntries(t *testing.T) {
	dir := t.TempDir()
	s := &sealedParent{Parent: dir, Export: "rb state"}
	run := func() string {
		out, err := exec.Command("sh", "-c", s.entriesScript()).Output()
		if err != nil {
			t.Fatalf("entries script: %v", err)
		}
		return string(out)
	}
	if out := run(); out != "" {
		t.Fatalf("empty folder: %q", out)
	}
	for _, n := range []string{"rb state", "lost+found", "home", ".hidden", "..dots", "*"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/nowhere", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(run())
	slices.Sort(got)
	if want := []string{"*", "..dots", ".hidden", "dangling", "home"}; !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
}

// TestAccountProbe runs the shared account probe for root and for an
// account that does not exist: the passwd fields and the password field's
// lock state, never the field itself.
func TestAccountProbe(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (getent shadow)")
		}
		t.Skip("needs root (getent shadow)")
	}
	out, err := exec.Command("sh", "-c", accountProbe("root")).Output()
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	pw, shadow := parseAccountProbe(out)
	if len(pw) != 7 || pw[0] != "root" || pw[2] != "0" || (shadow != "open" && shadow != "locked") {
		t.Fatalf("root: %q %q (output %q)", pw, shadow, out)
	}
	if strings.Contains(string(out), "$") {
		t.Fatalf("a password hash left the host: %q", out)
	}
	out, _ = exec.Command("sh", "-c", accountProbe("no-such-gridha-user")).Output()
	if pw, shadow := parseAccountProbe(out); pw != nil || shadow != "" || len(out) != 0 {
		t.Fatalf("missing account: %q %q (output %q)", pw, shadow, out)
	}
	for _, c := range []struct{ out, shadow string }{
		{"pw=snfs:x:0:0::/srv:/usr/sbin/nologin\nshadow=locked\n", "locked"},
		{"pw=snfs:x:0:0::/srv:/usr/sbin/nologin\nshadow=open\n", "open"},
		{"pw=snfs:x:0:0::/srv:/usr/sbin/nologin\n", ""},
	} {
		if pw, shadow := parseAccountProbe([]byte(c.out)); len(pw) != 7 || shadow != c.shadow {
			t.Errorf("%q: %q %q", c.out, pw, shadow)
		}
	}
}
