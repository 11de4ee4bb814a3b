package steps

import (
	"github.com/gridha/gridha/installer"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetKeyValue(t *testing.T) {
	tests := []struct {
		name, in, key, value string
		quote                bool
		want                 string
		found                int // assignments found
		changed              bool
	}{
		{"replace first, drop later", "A=1\n# B=0\nB=2\nB=3\n", "B", "9", false, "A=1\n# B=0\nB=9\n", 2, true},
		{"commented left", "#B=1\nX=y\n", "B", "2", false, "#B=1\nX=y\nB=2\n", 0, true},
		{"append no newline", "X=y", "B", "2", false, "X=y\nB=2\n", 0, true},
		{"empty file", "", "B", "2", false, "B=2\n", 0, true},
		{"unchanged", "B=2\nC=3\n", "B", "2", false, "B=2\nC=3\n", 1, false},
		{"quoted", "B=old\n", "B", `a "b" $c`, true, "B=\"a \\\"b\\\" \\$c\"\n", 1, true},
		{"quoted unchanged", "B=\"x y\"\n", "B", "x y", true, "B=\"x y\"\n", 1, false},
		{"quoted otherwise, same value", "B='x y'\n", "B", "x y", true, "B='x y'\n", 1, false},
		{"export kept", "  export B=1\n", "B", "2", false, "  export B=2\n", 1, true},
		{"prefix key not matched", "BB=1\n", "B", "2", false, "BB=1\nB=2\n", 0, true},
		{"crlf: sh reads the CR as part of the value", "B=2\r\nC=2\r\n", "B", "2", false, "B=2\nC=2\r\n", 1, true},
		{"last line no newline", "A=1\nB=1", "B", "2", false, "A=1\nB=2", 1, true},
		{"second same value", "B=2\nB=2\n", "B", "2", false, "B=2\n", 2, true},
		{"export second", "B=2\nexport B=3\n", "B", "2", false, "B=2\n", 2, true},
		{"quoted differently second", "B=\"2\"\nB='x'\n", "B", "2", true, "B=\"2\"\n", 2, true},
		{"continuation", "B=2\nA=1\nB=\"x\\\ny\"\nC=3\n", "B", "2", false, "B=2\nA=1\nC=3\n", 2, true},
		{"continued line", "B=\\\n5\n", "B", "5", false, "B=\\\n5\n", 1, false},
		{"multi-line single quotes", "B='a\nb'\nC=1\n", "B", "z", false, "B=z\nC=1\n", 1, true},
		{"unset removed", "B=2\nunset B\n", "B", "2", false, "B=2\n", 2, true},
		{"readonly", "readonly B=7 # pinned\n", "B", "2", false, "readonly B=2\n", 1, true},
		{"in an if block", "if true; then\n  B=7\nfi\n", "B", "2", false, "if true; then\n  B=2\nfi\n", 1, true},
		{"env of a command is not an assignment", "B=7 /bin/true\n", "B", "2", false, "B=7 /bin/true\nB=2\n", 0, true},
		{"export quoted whole", "B=2\nexport 'B=3'\n", "B", "2", false, "B=2\n", 2, true},
		{"trailing semicolon", "B=1;\n", "B", "2", false, "B=2\n", 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, found, changed, err := SetKeyValue([]byte(tc.in), tc.key, tc.value, tc.quote)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want || len(found) != tc.found || changed != tc.changed {
				t.Errorf("got %q, %d found, %v; want %q, %d, %v", out, len(found), changed, tc.want, tc.found, tc.changed)
			}
			// Idempotent: a second pass changes nothing, and leaves one
			// assignment with the wanted value.
			again, as, changed2, err := SetKeyValue(out, tc.key, tc.value, tc.quote)
			if err != nil || changed2 || string(again) != string(out) {
				t.Errorf("second pass changed %q to %q (%v)", out, again, err)
			}
			if len(as) != 1 || as[0].Value != tc.value {
				t.Errorf("after the edit: %+v, want one assignment of %q", as, tc.value)
			}
			// What /bin/sh itself makes of the edited file.
			f := filepath.Join(t.TempDir(), "conf")
			if err := os.WriteFile(f, out, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := exec.Command("/bin/sh", "-c", `. "$1" >/dev/null; printf %s "$`+tc.key+`"`, "sh", f).Output()
			if err != nil || string(got) != tc.value {
				t.Errorf("/bin/sh sourcing %q: %s=%q (%v), want %q", out, tc.key, got, err, tc.value)
			}
		})
	}
}

func TestSetKeyValueSharedLine(t *testing.T) {
	in := "A=1; B=3\n"
	out, found, changed, err := SetKeyValue([]byte(in), "B", "2", false)
	if err == nil || !strings.Contains(err.Error(), "line 1:") || changed || string(out) != in || len(found) != 1 {
		t.Errorf("shared line: %q %v %v %v", out, found, changed, err)
	}
}

func FuzzSetKeyValue(f *testing.F) {
	f.Add("A=1\n#B=2\nB=3", "B", "x y", true)
	f.Add("B='a\nb'\nexport B=\"c\\\nd\"; unset B\n", "B", "x", false)
	f.Fuzz(func(t *testing.T, in, key, value string, quote bool) {
		if !validKey(key) || strings.ContainsAny(value, "\n\r") {
			return
		}
		// Unquoted values are for plain words only (the callers quote
		// anything else).
		if !quote && strings.Trim(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:,@%+=-") != "" {
			return
		}
		out, _, _, err := SetKeyValue([]byte(in), key, value, quote)
		if err != nil {
			return
		}
		again, _, changed, err := SetKeyValue(out, key, value, quote)
		if err != nil || changed || string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, out, again, err)
		}
	})
}

func TestSetFstabLine(t *testing.T) {
	base := "# /etc/fstab\nproc /proc proc defaults 0 0\n/dev/sda1 /srv ext4 defaults 0 2\n"
	line := "rb1:/var/edgwl /mnt/edgwl nfs rw,hard 0 0"
	tests := []struct {
		name, in, target, want, out, found string
		changed                            bool
	}{
		{"append", base, "/mnt/edgwl", line, base + line + "\n", "", true},
		{"append no final newline", strings.TrimSuffix(base, "\n"), "/mnt/edgwl", line, base + line + "\n", "", true},
		{"replace", base + "old:/x /mnt/edgwl nfs ro 0 0\n# tail\n", "/mnt/edgwl", line, base + line + "\n# tail\n", "old:/x /mnt/edgwl nfs ro 0 0", true},
		{"same fields other spacing kept", base + "rb1:/var/edgwl\t/mnt/edgwl  nfs rw,hard 0 0\n", "/mnt/edgwl", line, base + "rb1:/var/edgwl\t/mnt/edgwl  nfs rw,hard 0 0\n", "rb1:/var/edgwl\t/mnt/edgwl  nfs rw,hard 0 0", false},
		{"duplicates removed", base + line + "\nx /mnt/edgwl nfs ro 0 0\n", "/mnt/edgwl", line, base + line + "\n", line, true},
		{"remove", base + line + "\n", "/mnt/edgwl", "", base, line, true},
		{"remove absent", base, "/mnt/edgwl", "", base, "", false},
		{"comment untouched", base + "#x /mnt/edgwl nfs ro 0 0\n", "/mnt/edgwl", "", base + "#x /mnt/edgwl nfs ro 0 0\n", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, found, changed := SetFstabLine([]byte(tc.in), tc.target, tc.want)
			if string(out) != tc.out || found != tc.found || changed != tc.changed {
				t.Errorf("got %q, %q, %v\nwant %q, %q, %v", out, found, changed, tc.out, tc.found, tc.changed)
			}
		})
	}
}

func TestMountParsing(t *testing.T) {
	m := Mount{Source: "root@rb2:/var/my dir", Target: "/mnt/my dir", FSType: "sshfs", Options: []string{"allow_other", "ro"}}
	if got := m.FstabLine(); got != `root@rb2:/var/my\040dir /mnt/my\040dir sshfs allow_other,ro 0 0` {
		t.Errorf("fstab line %q", got)
	}
	procMounts := "proc /proc proc rw,nosuid 0 0\nroot@rb2:/var/my\\040dir /mnt/my\\040dir fuse.sshfs ro,nosuid,nodev,relatime,user_id=0 0 0\n"
	e, ok := installer.LiveMount(installer.ParseMounts(procMounts), "/mnt/my dir")
	if !ok || e.Source != m.Source || !sameFSType(e.FSType, m.FSType) {
		t.Fatalf("live mount %+v %v", e, ok)
	}
	if d := OptionDiffs(m.Options, e.Options); len(d) != 0 {
		t.Errorf("option diffs %v", d)
	}
	if d := OptionDiffs([]string{"noexec"}, e.Options); strings.Join(d, ",") != "noexec,rw" {
		t.Errorf("option diffs %v", d)
	}
	if d := OptionDiffs([]string{"suid"}, e.Options); strings.Join(d, ",") != "suid,rw" {
		t.Errorf("option diffs %v", d)
	}
	if got := (Mount{Source: "a", Target: "/b", FSType: "tmpfs"}).FstabLine(); got != "a /b tmpfs defaults 0 0" {
		t.Errorf("default options: %q", got)
	}
}

// TestServicePlan: a service found disabled and not running (as the
// gatherer gives it) is enabled and started.
func TestServicePlan(t *testing.T) {
	s := Service{Name: "x", Boot: BootEnabled, State: StateRunning}
	diffs, script := s.plan(installer.ServiceState{Init: installer.InitDebian, Installed: true, StatusCode: 3})
	if len(diffs) != 2 || !strings.Contains(script, "update-rc.d") || !strings.Contains(script, "start") {
		t.Errorf("plan: %v\n%s", diffs, script)
	}
}

func TestKeyDiff(t *testing.T) {
	a := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKa1 alice@x"
	b := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKb2 bob@y"
	c := `from="10.0.0.1" ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCc3 carol`
	missing, extra := KeyDiff([]byte(a+"\n# comment\n\n"+c+"\n"), []string{a, b})
	if len(missing) != 1 || !strings.Contains(missing[0], "bob@y") || len(extra) != 1 || !strings.Contains(extra[0], "carol") {
		t.Errorf("missing %v extra %v", missing, extra)
	}
	if got := string(keysContent([]string{a, " ", b + "\n"})); got != a+"\n"+b+"\n" {
		t.Errorf("keys content %q", got)
	}
	if got := KeyLabel(c); got != "ssh-rsa ...AAABAQCc3 carol" && !strings.HasPrefix(got, "ssh-rsa ...") {
		t.Errorf("label %q", got)
	}
}

func TestUnifiedDiff(t *testing.T) {
	d := unifiedDiff("/etc/x", []byte("a\nb\nc\n"), []byte("a\nB\nc\n"))
	for _, want := range []string{"--- /etc/x (on host)", "+++ /etc/x (wanted)", "-b", "+B"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	if unifiedDiff("/x", []byte("same"), []byte("same")) != "" {
		t.Error("equal content gave a diff")
	}
	if d := unifiedDiff("/x", []byte{0, 1}, []byte{0, 2}); !strings.Contains(d, "Binary") {
		t.Errorf("binary: %q", d)
	}
	if d := unifiedDiff("/x", nil, []byte("new\n")); !strings.Contains(d, "+new") {
		t.Errorf("creation diff: %q", d)
	}
}

func TestRenderAssignment(t *testing.T) {
	if got := RenderAssignment("K", "a`b\\c", true); got != "K=\"a\\`b\\\\c\"" {
		t.Errorf("got %s", got)
	}
	for k, ok := range map[string]bool{"A_1": true, "_x": true, "1A": false, "A-B": false, "": false} {
		if validKey(k) != ok {
			t.Errorf("validKey(%q)", k)
		}
	}
}

func FuzzSetFstabLine(f *testing.F) {
	f.Add("proc /proc proc defaults 0 0\n/dev/x /mnt/a ext4 ro 0 0\n# c\n", "/mnt/a", "src /mnt/a nfs rw 0 0")
	f.Fuzz(func(t *testing.T, in, target, want string) {
		if strings.ContainsAny(want, "\n") || strings.HasPrefix(strings.TrimSpace(want), "#") {
			return
		}
		if f := strings.Fields(want); want != "" && (len(f) < 2 || installer.UnescapeMountField(f[1]) != target) {
			return
		}
		out, _, _ := SetFstabLine([]byte(in), target, want)
		again, _, changed := SetFstabLine(out, target, want)
		if changed || string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
	})
}
