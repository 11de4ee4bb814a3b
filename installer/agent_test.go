package installer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// agentTestEnv makes this test binary the fact agent when the gatherer's
// script runs it as `BINARY facts --protocol N` (TestMain): the tests run
// the real script, with the real agent process, against local files.
const agentTestEnv = "GRIDHA_TEST_FACTS_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(agentTestEnv) != "" && len(os.Args) == 4 && os.Args[1] == "facts" && os.Args[2] == "--protocol" {
		n, err := strconv.Atoi(os.Args[3])
		if err != nil {
			os.Exit(3)
		}
		// The gatherer starts the agent single-threaded, without
		// collections (gatherScript): refused otherwise, so every test
		// that wants the agent's answer checks that too.
		if runtime.GOMAXPROCS(0) != 1 || os.Getenv("GOGC") != "off" || os.Getenv("GOMEMLIMIT") == "" {
			os.Exit(3)
		}
		err = ServeFacts(context.Background(), n, os.Stdin, os.Stdout)
		var ae *AgentError
		if errors.As(err, &ae) {
			os.Exit(ae.Code)
		}
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// oddTree makes files of every kind the probes meet, with odd names and
// modes, under a temp dir, and returns their paths (plus some that do not
// exist).
func oddTree(t *testing.T) []string {
	t.Helper()
	d := t.TempDir()
	w := func(name, content string, mode os.FileMode) {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	w("plain", "a=1\nb=2\n", 0o644)
	w("empty", "", 0o600)
	w("with space", "x y\n", 0o640)
	w("pipe|regular file|x", "looks like a stat line\n", 0o644)
	w("no-newline", "last", 0o400)
	w("binary", "\x00\x01\xff\n\x00", 0o755)
	w("setuid", "#!/bin/sh\n", 0o4755)
	w("setgid", "", 0o2711)
	w("mode0", "secret-ish", 0)
	w("quote'and\"dollar$", "q\n", 0o644)
	w("newline\nname", "nl\n", 0o644)
	w("ünïcode", "u\n", 0o644)
	w("frame", "@@GRIDHA-0000000000000000 E\n@@GRIDHA-0000000000000000 B 0\n", 0o644)
	big := strings.Repeat("0123456789abcdef", 1<<12)
	w("big", big, 0o644)
	for _, dir := range []struct {
		name string
		mode os.FileMode
	}{{"dir", 0o755}, {"sticky", 0o1777}, {"dir with space", 0o700}} {
		if err := os.Mkdir(filepath.Join(d, dir.name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(d, dir.name), dir.mode); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"link": "plain", "dangling": "nowhere", "dirlink": "dir", "abslink": filepath.Join(d, "plain"),
		"link with space": "with space", "linkloop": "linkloop"} {
		if err := os.Symlink(target, filepath.Join(d, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(d, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	var paths []string
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		paths = append(paths, filepath.Join(d, e.Name()))
	}
	paths = append(paths, filepath.Join(d, "missing"), filepath.Join(d, "plain")+"/", filepath.Join(d, "dir")+"/", filepath.Join(d, "link")+"/",
		filepath.Join(d, "dir", "..", "plain"), "/etc/passwd", "/proc/self/nonexistent")
	return paths
}

// gatherBoth gathers probes twice on this machine, in one local session
// each: with no agent (the shell script) and with this test binary as the
// agent. It returns both.
func gatherBoth(t *testing.T, probes []Probe) (shell, agent *Facts) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := &localConn{host: "local"}
	shell, _, err := gatherBatch(ctx, conn, probes, "", "")
	if err != nil {
		t.Fatalf("shell: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(agentTestEnv, "1")
	// The first candidate is missing: the script takes the next one.
	agent, _, err = gatherBatch(ctx, conn, probes, "", "/nonexistent/gridha "+exe)
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	return shell, agent
}

func sameFacts(t *testing.T, what string, shell, agent *Facts) {
	t.Helper()
	s, a := *shell, *agent
	s.agent, a.agent = false, false
	if !reflect.DeepEqual(s, a) {
		for p, ff := range shell.files {
			if !reflect.DeepEqual(ff, agent.files[p]) {
				t.Errorf("%s: file %q:\nshell %+v\nagent %+v", what, p, ff, agent.files[p])
			}
		}
		for p, ff := range shell.hashes {
			if !reflect.DeepEqual(ff, agent.hashes[p]) {
				t.Errorf("%s: hash %q:\nshell %+v\nagent %+v", what, p, ff, agent.hashes[p])
			}
		}
		t.Fatalf("%s: facts differ:\nshell %+v\nagent %+v", what, s, a)
	}
}

// TestAgentAnswersAsTheShell: for random sets of probes over files of
// every kind (odd names, modes, symlinks, missing paths), the agent's
// facts equal the shell script's, and the agent did answer.
func TestAgentAnswersAsTheShell(t *testing.T) {
	paths := oddTree(t)
	rng := rand.New(rand.NewSource(17))
	for round := range 12 {
		var probes []Probe
		for _, p := range paths {
			switch rng.Intn(5) {
			case 0:
				probes = append(probes, FileProbe(p))
			case 1:
				probes = append(probes, FileMetaProbe(p))
			case 2:
				probes = append(probes, FileHashProbe(p))
			case 3:
				probes = append(probes, FileProbe(p), FileMetaProbe(p), FileHashProbe(p))
			}
		}
		rng.Shuffle(len(probes), func(i, j int) { probes[i], probes[j] = probes[j], probes[i] })
		probes = append(probes, MountsProbe(), ServiceProbe("gridha-no-such-service"), Probe{Key: "echo", Script: "echo hi; exit 3"},
			UserProbe("root"), UserProbe("nobody"), UserProbe("daemon"))
		shell, agent := gatherBoth(t, probes)
		if shell.Agent() || !agent.Agent() {
			t.Fatalf("round %d: agent answered: shell script %v, with agent %v", round, shell.Agent(), agent.Agent())
		}
		sameFacts(t, fmt.Sprintf("round %d", round), shell, agent)
		if r, _ := agent.Get("echo"); string(r.Stdout) != "hi\n" || r.ExitCode != 3 {
			t.Errorf("shell probe beside the agent: %q exit %d", r.Stdout, r.ExitCode)
		}
		if u, _ := agent.User("root"); !u.Exists || u.Group != "root" || u.Home == "" || !u.HomeStat.Exists {
			t.Errorf("user root: %+v", u)
		}
	}
}

// TestAgentUnknownOwnerFallsBack: a file owned by a uid that /etc/passwd
// does not name is "UNKNOWN" to stat only if NSS has no other source: with
// "files systemd" (or ldap) the agent refuses and the shell answers.
func TestAgentUnknownOwnerFallsBack(t *testing.T) {
	ns, err := os.ReadFile("/etc/nsswitch.conf")
	if err != nil {
		t.Skip("no nsswitch.conf")
	}
	only, err := nssFilesFirst(ns, "passwd")
	d := t.TempDir()
	p := filepath.Join(d, "orphan")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(p, 54321, 54321); err != nil {
		t.Fatal(err)
	}
	shell, agent := gatherBoth(t, []Probe{FileProbe(p), UserProbe("root"), UserProbe("nobody")})
	sameFacts(t, "orphan", shell, agent)
	ff, _ := agent.File(p)
	if ff.Owner != "UNKNOWN" {
		t.Errorf("owner %q, want UNKNOWN", ff.Owner)
	}
	if want := err == nil && only; agent.Agent() != want {
		t.Errorf("agent answered %v, want %v (passwd from files only: %v, %v)", agent.Agent(), want, only, err)
	}
}

// TestAgentRefusesOtherProtocol: another protocol on the command line or
// in the request exits 3 and writes nothing.
func TestAgentRefusesOtherProtocol(t *testing.T) {
	req := renderAgentRequest(agentRequest{marker: probeMarker + "00", paths: []string{"/etc/passwd"}})
	for _, c := range []struct {
		proto int
		req   string
	}{{AgentProtocol + 1, req}, {AgentProtocol, strings.Replace(req, fmt.Sprintf("gridha-facts %d", AgentProtocol), "gridha-facts 99", 1)},
		{AgentProtocol, strings.TrimSuffix(req, ".\n")}} {
		var out bytes.Buffer
		err := ServeFacts(context.Background(), c.proto, strings.NewReader(c.req), &out)
		var ae *AgentError
		if !errors.As(err, &ae) || ae.Code != agentExitProtocol || out.Len() != 0 {
			t.Errorf("protocol %d, request %q: %v, wrote %q", c.proto, c.req, err, out.String())
		}
	}
}

// TestAgentMismatchFallsBack: a gridha on the host that does not know
// `facts` (exit 3, as an old one does), one that fails half-way through
// its reply, and one that is not executable: the shell answers, and the
// facts are the shell's.
func TestAgentMismatchFallsBack(t *testing.T) {
	paths := oddTree(t)
	var probes []Probe
	for _, p := range paths {
		probes = append(probes, FileProbe(p), FileHashProbe(p))
	}
	probes = append(probes, MountsProbe())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := &localConn{host: "local"}
	want, _, err := gatherBatch(ctx, conn, probes, "", "")
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	old := filepath.Join(d, "old")
	if err := os.WriteFile(old, []byte("#!/bin/sh\necho 'gridha: unknown command \"facts\" (see gridha --help)' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Prints a frame of the batch (it reads the marker from the request)
	// and a cut-off file section, then dies.
	half := filepath.Join(d, "half")
	if err := os.WriteFile(half, []byte("#!/bin/sh\nread -r _ _ m\nprintf '%s A 1\\n%s S\\n/etc/passwd|regular file|644|0|0|root|root|1\\n%s L\\n\\n%s C\\nx' \"$m\" \"$m\" \"$m\" \"$m\"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noexec := filepath.Join(d, "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, agent := range []string{old, half, noexec} {
		got, _, err := gatherBatch(ctx, conn, probes, "", agent)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(agent), err)
		}
		if got.Agent() {
			t.Errorf("%s: taken for the agent", filepath.Base(agent))
		}
		sameFacts(t, filepath.Base(agent), want, got)
	}
}

// TestAgentHashCacheAsShell: the agent reads the hash cache as the
// script's `while read -r s i z m t q` loop does (blanks, a last line
// without newline, the last matching line wins).
func TestAgentHashCacheAsShell(t *testing.T) {
	k := "12 34 1700000000.000000001 1700000000.000000002"
	p := "/srv/a file"
	p2 := "/srv/x"
	cases := []string{
		"aa 12 34 1700000000.000000001 1700000000.000000002 /srv/x\n",
		"aa  12\t34 1700000000.000000001 1700000000.000000002   /srv/x  \nbb 12 34 1700000000.000000001 1700000000.000000002 /srv/x\n",
		"cc 12 34 1700000000.000000001 1700000000.000000002 /srv/x",
		"dd 12 34 1700000000.000000001 1700000000.000000002 /srv/a file\n",
		"ee 12 34 1700000000.000000001 1700000000.000000003 /srv/x\n\n \n",
		"   \n\t\nff 12 34 1700000000.000000001 1700000000.000000002 /srv/x\\\n",
	}
	for i, c := range cases {
		f := filepath.Join(t.TempDir(), "c")
		if err := os.WriteFile(f, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{p, p2} {
			script := `c=$1 p=$2 k=$3 h=
while read -r s i z m t q; do if [ "$q" = "$p" ] && [ "$i $z $m $t" = "$k" ]; then h=$s; fi; done < "$c"
printf %s "$h"`
			out, err := exec.Command("/bin/sh", "-c", script, "sh", f, path, k).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := cachedHash(f, path, k); got != string(out) {
				t.Errorf("case %d, %q: agent %q, shell %q", i, path, got, out)
			}
		}
	}
}

// TestAgentNSS: which nsswitch.conf and passwd files the agent reads
// itself, and which it leaves to the shell.
func TestAgentNSS(t *testing.T) {
	for _, c := range []struct {
		conf       string
		only, sure bool
	}{
		{"passwd: files\ngroup: files\n", true, true},
		{"passwd:         files systemd\n", false, true},
		{"passwd: compat # comment\n", true, true},
		{"passwd: ldap files\n", false, false},
		{"passwd: files [NOTFOUND=return] ldap\n", false, false},
		{"# passwd: files\n", false, false},
		{"passwd: files\npasswd: ldap\n", false, false},
		{"passwd:\n", false, false},
	} {
		only, err := nssFilesFirst([]byte(c.conf), "passwd")
		if (err == nil) != c.sure || (err == nil && only != c.only) {
			t.Errorf("%q: only %v, %v; want only %v, sure %v", c.conf, only, err, c.only, c.sure)
		}
	}
	d := t.TempDir()
	w := func(name, s string) string {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sys := hostSystem{
		nsswitch: w("ns", "passwd: files\ngroup: files\n"),
		passwd:   w("passwd", "root:x:0:0:root:/root:/bin/bash\n# c\n\nsnfs:x:500:500:S N F S, room 1:/home/snfs:/bin/sh\ntwin:x:500:500::/:/bin/sh\n"),
		group:    w("group", "root:x:0:\nsnfs:x:500:a,b\n"),
	}
	n := &idNames{sys: sys}
	for uid, want := range map[uint32]string{0: "root", 500: "snfs", 7: "UNKNOWN"} {
		if got, err := n.user(uid); err != nil || got != want {
			t.Errorf("uid %d: %q, %v; want %q", uid, got, err, want)
		}
	}
	if got, err := n.group(500); err != nil || got != "snfs" {
		t.Errorf("gid 500: %q, %v", got, err)
	}
	for _, bad := range []string{"+::::::\n", " root:x:0:0::/:/bin/sh\n", "root:x:00:0::/:/bin/sh\n", "root:x:0:0::/\n", "root:x:-1:0::/:/bin/sh\n"} {
		sys.passwd = w("passwd", bad)
		if _, err := (&idNames{sys: sys}).user(0); !errors.Is(err, errAgentUnsure) {
			t.Errorf("passwd %q: %v, want the agent to refuse", bad, err)
		}
	}
}

// FuzzAgentRequest: the request parser never panics, and what it accepts
// renders back to a request that parses to the same.
func FuzzAgentRequest(f *testing.F) {
	f.Add([]byte(renderAgentRequest(agentRequest{marker: fuzzNonce, paths: []string{"/etc/a b", "/x"}, meta: map[string]bool{"/x": true},
		probes: []agentProbe{{3, factFileHash, "/bin/gridha"}, {4, factService, "rb-jobd"}, {7, factMounts, ""},
			{8, factShares, SharesProbe("/mnt/rb state", []Share{{"/var/edgwl", "/mnt/rb state/rb/edgwl", "/mnt/rb state/rb/.edgwl.tmp"}, {"", "/x\ny", "/z"}}).arg}}})))
	f.Add([]byte(fmt.Sprintf("gridha-facts %d @@GRIDHA-ab\n.\n", AgentProtocol)))
	f.Add([]byte(fmt.Sprintf("gridha-facts %d @@GRIDHA-ab\nP 2 \"/x\"\nB -1 hash \"\\x00\"\nB 1 shares \"/\\x00\"\n", AgentProtocol)))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := parseAgentRequest(in)
		if err != nil {
			return
		}
		again, err := parseAgentRequest([]byte(renderAgentRequest(r)))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", renderAgentRequest(r), err)
		}
		if len(r.meta) == 0 {
			r.meta = nil
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip:\n%+v\n%+v", r, again)
		}
	})
}

// TestAgentOnlyWhenWorth: a batch the shell answers with a process or two
// does not start gridha; an rb node's batch does, in the same script as
// the fallback (one session), and without the agent nowhere.
func TestAgentOnlyWhenWorth(t *testing.T) {
	small := []Probe{FileProbe("/etc/hostname"), ServiceProbe("cron")}
	big := append(small, FileHashProbe("/usr/local/sbin/gridha"), UserProbe("snfs"), MountsProbe())
	for _, c := range []struct {
		probes []Probe
		agents string
		want   bool
	}{{small, agentPaths, false}, {big, agentPaths, true}, {big, "", false}} {
		paths, meta, others := splitProbes(c.probes)
		s := gatherScript("", paths, meta, others, fuzzNonce, c.agents)
		if got := strings.Contains(s, " facts --protocol "); got != c.want {
			t.Errorf("%d probes, agents %q: agent asked %v, want %v", len(c.probes), c.agents, got, c.want)
		}
	}
}
