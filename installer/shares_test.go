package installer

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// oddShares makes share folders of every kind the shares probe meets —
// populated (a marker, odd names, modes, links, hard links, a fifo,
// nested folders), unmarked, missing, a file, behind a symlink, with
// temporary folders beside them — and local state folders that are
// symlinks, folders or missing. It returns them as SharesProbe's
// candidates.
func oddShares(t *testing.T) (locals, shares []string, tmp func(string) string) {
	t.Helper()
	d := t.TempDir()
	sh := filepath.Join(d, "share")
	w := func(p, content string, mode os.FileMode) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	tmp = func(s string) string { return filepath.Join(filepath.Dir(s), "."+filepath.Base(s)+".gridha-tmp-rb1") }
	// a: populated, odd content.
	a := filepath.Join(sh, "a")
	w(filepath.Join(a, ShareMarker), "node=rb1\ntime=x y\n\tindented \n\nlast without newline", 0o644)
	w(filepath.Join(a, ".gridha-owners"), "# owners\n", 0o600)
	for _, n := range []string{"plain", "with space", "new\nline", "ünïcode", "quote'\"$", "@@views\x01", "@@END 0", ".hidden", "..dots", "-dash"} {
		w(filepath.Join(a, "jobs", n), "job "+n, 0o640)
	}
	w(filepath.Join(a, "setuid"), "#!/bin/sh\n", 0o4755)
	w(filepath.Join(a, "mode0"), "", 0)
	w(filepath.Join(a, "deep", "er", "est", "f"), strings.Repeat("x", 5000), 0o644)
	must(os.Mkdir(filepath.Join(a, "sticky"), 0o755))
	must(os.Chmod(filepath.Join(a, "sticky"), 0o1777))
	must(os.Symlink("../plain", filepath.Join(a, "jobs", "link")))
	must(os.Symlink("nowhere", filepath.Join(a, "dangling")))
	must(os.Symlink(filepath.Join(a, "deep"), filepath.Join(a, "abslink")))
	must(os.Link(filepath.Join(a, "jobs", "plain"), filepath.Join(a, "hardlink")))
	must(syscall.Mkfifo(filepath.Join(a, "fifo"), 0o600))
	past := time.Unix(1136214245, 123456789)
	must(os.Chtimes(filepath.Join(a, "jobs", "plain"), past, past))
	// c: unmarked content, a verified copy waiting beside it.
	c := filepath.Join(sh, "c")
	w(filepath.Join(c, "x"), "x", 0o644)
	w(filepath.Join(tmp(c), ShareMarker), "node=rb1\n", 0o644)
	// e: a file; f: an empty marker and a partial copy; g: a symlink to a.
	e := filepath.Join(sh, "e")
	w(e, "not a folder", 0o644)
	f := filepath.Join(sh, "f")
	w(filepath.Join(f, ShareMarker), "", 0o644)
	must(os.MkdirAll(tmp(f), 0o755))
	g := filepath.Join(sh, "g")
	must(os.Symlink(a, g))
	b := filepath.Join(sh, "b") // missing
	shares = []string{a, b, c, e, f, g}
	// Local folders: symlinks to a and c, a real folder, a missing one,
	// and none given.
	loc := filepath.Join(d, "local")
	must(os.MkdirAll(filepath.Join(loc, "dir"), 0o755))
	must(os.Symlink(a, filepath.Join(loc, "to-a")))
	must(os.Symlink(c, filepath.Join(loc, "to-c")))
	locals = []string{filepath.Join(loc, "to-a"), filepath.Join(loc, "to-c"), filepath.Join(loc, "dir"), filepath.Join(loc, "missing"), ""}
	return locals, shares, tmp
}

// TestAgentSharesAsTheShell: for random sets of shares and local
// folders, the agent's answer to the shares probe is byte for byte the
// shell script's (share answers, markers, the find listing: %T@, modes,
// owners, link targets, hard-link counts, paths), and the agent did
// answer.
func TestAgentSharesAsTheShell(t *testing.T) {
	locals, shares, tmp := oddShares(t)
	rng := rand.New(rand.NewSource(17))
	for round := range 16 {
		var sh []Share
		for _, i := range rng.Perm(len(shares))[:1+rng.Intn(len(shares))] {
			sh = append(sh, Share{Local: locals[rng.Intn(len(locals))], Path: shares[i], Tmp: tmp(shares[i])})
		}
		mount := "/"
		if round%5 == 4 {
			mount = "/gridha-not-mounted"
		}
		p := SharesProbe(mount, sh)
		probes := []Probe{p, MountsProbe(), UserProbe("root"), ServiceProbe("gridha-no-such-service")}
		shell, agent := gatherBoth(t, probes)
		if shell.Agent() || !agent.Agent() {
			t.Fatalf("round %d: agent answered: shell script %v, with agent %v", round, shell.Agent(), agent.Agent())
		}
		s, _ := shell.Get(p.Key)
		a, _ := agent.Get(p.Key)
		if !bytes.Equal(s.Stdout, a.Stdout) || s.ExitCode != a.ExitCode {
			t.Fatalf("round %d, shares %+v:\nshell %q (exit %d)\nagent %q (exit %d)", round, sh, s.Stdout, s.ExitCode, a.Stdout, a.ExitCode)
		}
		if mount == "/" && (!bytes.Contains(s.Stdout, []byte("@@shared ")) || len(s.Stdout) < 20) {
			t.Fatalf("round %d: the script answered nothing: %q", round, s.Stdout)
		}
		sameFacts(t, fmt.Sprintf("round %d", round), shell, agent)
	}
}

// TestAgentSharesUnsure: a marker dash's echo would print differently (a
// backslash) is not answered by the agent: the shell answers.
func TestAgentSharesUnsure(t *testing.T) {
	d := t.TempDir()
	s := filepath.Join(d, "s")
	if err := os.MkdirAll(s, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s, ShareMarker), []byte("node=rb1\nnote=a\\tb\\c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := SharesProbe("/", []Share{{Path: s, Tmp: s + ".tmp"}, {Path: d + "/other", Tmp: d + "/other.tmp"}})
	shell, agent := gatherBoth(t, []Probe{p, MountsProbe(), UserProbe("root"), UserProbe("daemon")})
	if agent.Agent() {
		t.Errorf("agent answered a marker with a backslash")
	}
	sameFacts(t, "backslash", shell, agent)
}

// TestAgentSharesHung: a share that does not answer within the deadline
// gets what the script prints when timeout kills it: the answers
// finished before, no listing, "unanswered=1".
func TestAgentSharesHung(t *testing.T) {
	d := t.TempDir()
	s := filepath.Join(d, "s")
	if err := os.MkdirAll(s, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s, ShareMarker), []byte("node=rb1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hang := make(chan struct{})
	defer close(hang)
	p := SharesProbe("/", []Share{{Path: s, Tmp: s + ".tmp"}})
	req := agentRequest{marker: probeMarker + "00", probes: []agentProbe{{index: 0, kind: factShares, arg: p.arg}}}
	start := time.Now()
	out, err := answerAgent(context.Background(), req, hostSystem{sharesTimeout: 50 * time.Millisecond, sharesHang: hang})
	if err != nil {
		t.Fatal(err)
	}
	want := string(frameBytes(req.marker, 0, []byte("unanswered=1\n"), 0))
	if !strings.HasSuffix(string(out), want) || time.Since(start) > 10*time.Second {
		t.Errorf("hung share: %q after %v, want it to end in %q", out, time.Since(start), want)
	}
}

// FuzzSharesArg: the shares probe's argument (the agent's request carries
// it) gives back the mount and shares it was made of, and the script
// quotes every one of them.
func FuzzSharesArg(f *testing.F) {
	f.Add("/mnt/rb-state", "/var/edgwl", "/mnt/rb-state/rb/edgwl", "/mnt/rb-state/rb/.edgwl.gridha-tmp-rb1", "", "/b", "/c")
	f.Add("/mnt/a b", "", "'", "\n", "$x", "`y`", "\\")
	f.Fuzz(func(t *testing.T, mount, l1, s1, t1, l2, s2, t2 string) {
		in := []Share{{l1, s1, t1}, {l2, s2, t2}}
		if strings.Contains(mount+l1+s1+t1+l2+s2+t2, "\x00") {
			return
		}
		p := SharesProbe(mount, in)
		m, got, ok := splitSharesArg(p.arg)
		if !ok || m != mount || len(got) != 2 || got[0] != in[0] || got[1] != in[1] {
			t.Fatalf("%q: %q %+v %v", p.arg, m, got, ok)
		}
		if !strings.Contains(p.script(), ShellQuote(s1)+" "+ShellQuote(t1)+" "+ShellQuote(l2)) {
			t.Fatalf("script does not quote the shares: %s", p.script())
		}
	})
}
