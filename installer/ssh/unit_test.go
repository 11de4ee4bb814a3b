package sshx

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/inventory"
)

func TestExpandTokens(t *testing.T) {
	vals := map[byte]string{'h': "rb1.example.org", 'd': "/home/a", 'r': "root", 'p': "2222"}
	for in, want := range map[string]string{
		"%h":             "rb1.example.org",
		"%d/.ssh/id_%r":  "/home/a/.ssh/id_root",
		"100%%":          "100%",
		"%x stays":       "%x stays",
		"trailing %":     "trailing %",
		"plain":          "plain",
		"[%h]:%p-%h.%%h": "[rb1.example.org]:2222-rb1.example.org.%h",
	} {
		if got := expandTokens(in, vals); got != want {
			t.Errorf("expandTokens(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizeMode(t *testing.T) {
	for in, want := range map[fs.FileMode]fs.FileMode{
		0o644:                 0o644,
		0o2750:                0o750 | fs.ModeSetgid,
		0o4755:                0o755 | fs.ModeSetuid,
		0o1777:                0o777 | fs.ModeSticky,
		0o755 | fs.ModeSetuid: 0o755 | fs.ModeSetuid,
		0o600 | fs.ModeSetgid: 0o600 | fs.ModeSetgid,
	} {
		if got := normalizeMode(in); got != want {
			t.Errorf("normalizeMode(%o) = %v, want %v", in, got, want)
		}
	}
}

func TestParseIDs(t *testing.T) {
	ids := map[string]int{}
	parseIDs(ids, "passwd", []byte("root:x:0:0:root:/root:/bin/bash\n#comment:x:5:\nbad\nedguser:x:500:500::/home/edguser:/bin/sh\nroot:x:99:\n"))
	parseIDs(ids, "group", []byte("root:x:0:\nedguser:x:501:\n"))
	want := map[string]int{"passwd:root": 0, "passwd:edguser": 500, "group:root": 0, "group:edguser": 501}
	if len(ids) != len(want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	for k, v := range want {
		if ids[k] != v {
			t.Errorf("%s = %d, want %d", k, ids[k], v)
		}
	}
}

func TestMarkedBuffer(t *testing.T) {
	m := &markedBuffer{marker: []byte("@@m:")}
	if _, ok := m.pgid(); ok {
		t.Error("pgid before any output")
	}
	m.Write([]byte("bash: warning\n@@m:12"))
	if _, ok := m.pgid(); ok {
		t.Error("pgid from an unfinished line")
	}
	m.Write([]byte("34\nreal error\n"))
	if n, ok := m.pgid(); !ok || n != 1234 {
		t.Errorf("pgid = %d %v", n, ok)
	}
	if got := string(m.without()); got != "bash: warning\nreal error\n" {
		t.Errorf("without = %q", got)
	}
}

func TestWrap(t *testing.T) {
	c := &Conn{target: &target{user: "edguser", become: "sudo"}}
	w, _ := c.wrap("echo 'hi'", "@@m:", true, true)
	if !strings.HasPrefix(w, "exec sudo -n -- /bin/sh -c '") || !strings.Contains(w, `echo '\''hi'\''`) {
		t.Errorf("become wrap: %s", w)
	}
	c.target.user = "root" // root needs no sudo
	if w, _ := c.wrap("true", "@@m:", true, true); !strings.HasPrefix(w, "exec /bin/sh -c '") || !strings.Contains(w, "kill -9") {
		t.Errorf("root wrap: %s", w)
	}
	// A read-only command (a fact batch) has no watcher.
	if w, _ := c.wrap("true", "@@m:", true, false); !strings.HasPrefix(w, "exec /bin/sh -c '") || strings.Contains(w, "kill -9") || strings.Contains(w, "sleep") {
		t.Errorf("read-only wrap: %s", w)
	}
	if c.shellFileOps() {
		t.Error("root with become uses shell file operations, want SFTP")
	}
	c.target.user = "edguser"
	if !c.shellFileOps() {
		t.Error("become: sudo uses SFTP, want shell file operations")
	}
}

func testInventory(dir string, hosts ...*inventory.Host) *inventory.Inventory {
	return &inventory.Inventory{Path: filepath.Join(dir, "gridha.yaml"), Dir: dir, Hosts: hosts}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "config"), `
Host rb*
    User griduser
    Port 2200
    IdentityFile ~/.ssh/grid_%r
    ProxyJump gw.example.org
    HashKnownHosts yes
Host *
    User other
`)
	inv := testInventory(dir,
		&inventory.Host{Name: "rb1", Address: "rb1.example.org", SSH: inventory.SSH{IdentityFile: "keys/rb"}},
		&inventory.Host{Name: "rb2", Address: "rb2.example.org", SSH: inventory.SSH{User: "root", Port: 22, ProxyJump: "none"}},
		&inventory.Host{Name: "bad", Address: "x", SSH: inventory.SSH{Become: "su"}},
	)
	inv.Defaults = inventory.SSH{ConnectTimeout: 3 * time.Second, KnownHosts: "kh"}
	d := NewDialer(inv, Options{HomeDir: dir, SSHConfigFile: cfg})

	t1, err := d.resolve("rb1", "rb1.example.org", inv.Hosts[0].SSH, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if t1.user != "griduser" || t1.port != 2200 || t1.proxyJump != "gw.example.org" || !t1.hashKnown ||
		t1.timeout != 3*time.Second || t1.knownHosts != filepath.Join(dir, "kh") {
		t.Errorf("rb1: %+v", t1)
	}
	// The inventory's identity (relative to the inventory folder) replaces
	// ssh_config's and the defaults, and is required.
	if len(t1.identities) != 1 || t1.identities[0] != (identity{filepath.Join(dir, "keys/rb"), true}) {
		t.Errorf("rb1 identities %+v", t1.identities)
	}
	t2, err := d.resolve("rb2", "rb2.example.org", inv.Hosts[1].SSH, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if t2.user != "root" || t2.port != 22 || t2.proxyJump != "" || t2.timeout != 3*time.Second {
		t.Errorf("rb2: %+v", t2)
	}
	if len(t2.identities) != 4 || t2.identities[0].path != filepath.Join(dir, ".ssh/grid_root") || t2.identities[0].required {
		t.Errorf("rb2 identities %+v", t2.identities)
	}
	if _, err := d.resolve("bad", "x", inv.Hosts[2].SSH, false, true); err == nil {
		t.Error("become: su accepted")
	}

	// A ProxyJump spec resolves through ssh_config too, without the
	// inventory defaults' user.
	jt, err := d.jumpTarget(t1)
	if err != nil {
		t.Fatal(err)
	}
	if jt.hostname != "gw.example.org" || jt.port != 22 || jt.user != "other" || jt.proxyJump != "" {
		t.Errorf("jump: %+v", jt)
	}
	t1.proxyJump = "admin@[2001:db8::1]:2022"
	if jt, err = d.jumpTarget(t1); err != nil || jt.user != "admin" || jt.hostname != "2001:db8::1" || jt.port != 2022 {
		t.Errorf("jump spec with IPv6: %+v %v", jt, err)
	}
	t1.proxyJump = "a,b"
	if _, err := d.resolve("rb1", "rb1.example.org", inventory.SSH{ProxyJump: "a,b"}, false, true); err == nil {
		t.Error("two hops accepted")
	}
}

func TestMissingIdentity(t *testing.T) {
	dir := t.TempDir()
	inv := testInventory(dir, &inventory.Host{Name: "rb1", Address: "127.0.0.1", SSH: inventory.SSH{User: "root", IdentityFile: "absent_key"}})
	_, err := NewDialer(inv, Options{HomeDir: dir, AgentSocket: "none", SSHConfigFile: "none"}).Dial(t.Context(), "rb1")
	want := "rb1: dial 127.0.0.1:22: identity file " + filepath.Join(dir, "absent_key") + " (from the inventory) does not exist"
	if err == nil || err.Error() != want {
		t.Errorf("missing identity: err %v, want %s", err, want)
	}
	// No key at all: say what was looked for.
	inv.Hosts[0].SSH.IdentityFile = ""
	d := NewDialer(inv, Options{HomeDir: dir, AgentSocket: "none", SSHConfigFile: "none"})
	tg, _ := d.resolve("rb1", "127.0.0.1", inv.Hosts[0].SSH, false, true)
	if _, _, err := d.authMethods(tg); err == nil || !strings.Contains(err.Error(), "set ssh.identity_file") {
		t.Errorf("no key: %v", err)
	}
	if _, err := NewDialer(inv, Options{}).Dial(t.Context(), "nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch: not in inventory") {
		t.Errorf("unknown host: %v", err)
	}
	if _, err := NewDialer(inv, Options{HostKeyPolicy: "yes"}).Dial(t.Context(), "rb1"); err == nil || !strings.Contains(err.Error(), "host-key policy") {
		t.Errorf("bad policy: %v", err)
	}
}

// FuzzPrintfEscape: the escaped form holds no character a login shell
// (sh, bash, csh, tcsh) treats specially inside single quotes, and printf
// turns it back into the input.
func FuzzPrintfEscape(f *testing.F) {
	f.Add("echo 'hi'\nexit 3")
	f.Add("100% \\ \"q\" !$`\r\n\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		e := printfEscape(s)
		if strings.ContainsAny(e, "'\n\r!%") {
			t.Fatalf("escaped form %q holds a special character", e)
		}
		var out []byte
		for i := 0; i < len(e); i++ {
			if e[i] != '\\' {
				out = append(out, e[i])
				continue
			}
			if i+3 >= len(e) {
				t.Fatalf("truncated escape in %q", e)
			}
			var v byte
			for _, d := range e[i+1 : i+4] {
				if d < '0' || d > '7' {
					t.Fatalf("bad escape in %q", e)
				}
				v = v*8 + byte(d-'0')
			}
			out = append(out, v)
			i += 3
		}
		if string(out) != s {
			t.Fatalf("round trip %q -> %q -> %q", s, e, out)
		}
	})
}
