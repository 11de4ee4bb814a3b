package steps_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
)

// TestBedEngine checks the runner over real SSH: a failed step stops its
// host, an unreachable host does not stop the others, the per-host lock
// refuses a second converging run, and sessions do not grow with steps.
func TestBedEngine(t *testing.T) {
	// "ghost" is in the inventory but nothing listens where it points.
	e := newBedEnv(t, []string{"eng1", "eng2"}, "  ghost:\n    address: 127.0.0.1\n    port: 1\n")
	h1, h2 := e.bed.Host("eng1"), e.bed.Host("eng2")

	t.Run("FailedStepStopsHost", func(t *testing.T) {
		sh(t, h1, "mkdir -p /srv/real-dir")
		plan := &installer.Plan{Phases: []installer.Phase{
			{Name: "one", Steps: map[string][]installer.Step{"eng1": {
				steps.File{Path: "/etc/gridha-before", Content: []byte("1\n")},
				steps.Symlink{Path: "/srv/real-dir", Target: "/tmp"}, // refused: fails
				steps.File{Path: "/etc/gridha-after", Content: []byte("2\n")},
			}}},
			{Name: "two", Steps: map[string][]installer.Step{"eng1": {
				steps.Dir{Path: "/srv/gridha-later"},
			}}},
		}}
		// In check mode the refusal is reported the same way and nothing is
		// written anywhere.
		before := snapshot(t, h1)
		rep := e.run(t, installer.ModeCheck, plan)
		sameSnapshot(t, "check with a failing step", before, snapshot(t, h1))
		got := []installer.Status{}
		for _, r := range rep.Results {
			got = append(got, r.Status)
		}
		if fmt.Sprint(got) != "[missing failed skipped skipped]" {
			t.Errorf("check statuses %v", got)
		}
		rep = e.run(t, installer.ModeApply, plan)
		got = got[:0]
		for _, r := range rep.Results {
			got = append(got, r.Status)
		}
		if fmt.Sprint(got) != "[changed failed skipped skipped]" {
			t.Errorf("apply statuses %v", got)
		}
		if out := sh(t, h1, "ls /etc/gridha-before /etc/gridha-after /srv/gridha-later 2>&1 || true"); !strings.Contains(out, "/etc/gridha-before") ||
			!strings.Contains(out, "'/etc/gridha-after': No such file") || !strings.Contains(out, "'/srv/gridha-later': No such file") {
			t.Errorf("after a failed step:\n%s", out)
		}
		if hr := rep.Hosts["eng1"]; !strings.Contains(hr.Stopped, `failed at step "symlink /srv/real-dir"`) {
			t.Errorf("host report: %+v", hr)
		}
	})

	t.Run("UnreachableHost", func(t *testing.T) {
		plan := &installer.Plan{Phases: []installer.Phase{{Name: "one", Steps: map[string][]installer.Step{}}}}
		for _, h := range []string{"eng1", "eng2", "ghost"} {
			plan.Phases[0].Steps[h] = []installer.Step{
				steps.Dir{Path: "/srv/gridha-u", Mode: 0o755},
				steps.KeyValue{Path: "/srv/gridha-u/conf", Key: "A", Value: "1"},
			}
		}
		rep := e.run(t, installer.ModeApply, plan)
		for _, r := range rep.Results {
			want := installer.StatusChanged
			if r.Host == "ghost" {
				want = installer.StatusUnreachable
			}
			if r.Status != want {
				t.Errorf("%s %s: %s (%s), want %s", r.Host, r.Step, r.Status, r.Message, want)
			}
		}
		if hr := rep.Hosts["ghost"]; !hr.Unreachable || hr.Err == "" || rep.Worst() != installer.StatusUnreachable {
			t.Errorf("ghost report %+v, worst %s", hr, rep.Worst())
		}
		for _, h := range []string{"eng1", "eng2"} {
			if b, err := e.bed.Host(h).ReadFile("/srv/gridha-u/conf"); err != nil || string(b) != "A=1\n" {
				t.Errorf("%s: conf %q %v", h, b, err)
			}
		}
	})

	t.Run("LockRefusesConcurrentApply", func(t *testing.T) {
		sh(t, h2, "rm -f /tmp/gridha-go")
		hold := steps.Exec{
			Name:  "wait for the test",
			Probe: "test -e /tmp/gridha-held",
			Apply: "touch /tmp/gridha-held; i=0; while [ ! -e /tmp/gridha-go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
		}
		plan := onePhase("eng2", hold)
		done := make(chan *installer.Report, 1)
		go func() {
			rep, _ := installer.Run(context.Background(), e.dialer, plan, installer.RunOptions{Mode: installer.ModeApply})
			done <- rep
		}()
		deadline := time.Now().Add(60 * time.Second)
		for sh(t, h2, "test -e /tmp/gridha-held && echo yes || echo no") != "yes" {
			if time.Now().After(deadline) {
				t.Fatal("first run never reached its step")
			}
			time.Sleep(100 * time.Millisecond)
		}
		second := onePhase("eng2", steps.Dir{Path: "/srv/gridha-lock-test"})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rep2, err := installer.Run(ctx, e.dialer, second, installer.RunOptions{Mode: installer.ModeApply})
		if err != nil {
			t.Fatal(err)
		}
		hr := rep2.Hosts["eng2"]
		if !strings.Contains(hr.Err, "host eng2 is being converged by another gridha run (pid ") || rep2.Results[0].Status != installer.StatusSkipped {
			t.Errorf("second run: %+v %+v", hr, rep2.Results)
		}
		t.Logf("refused: %s", hr.Err)
		if out := sh(t, h2, "test -e /srv/gridha-lock-test && echo exists || echo absent"); out != "absent" {
			t.Errorf("refused run wrote: %s", out)
		}
		// An audit needs no lock.
		wantAll(t, "audit during apply", e.run(t, installer.ModeAudit, onePhase("eng2", steps.Absent{Path: "/srv/gridha-lock-test"})), installer.StatusOK)
		sh(t, h2, "touch /tmp/gridha-go")
		rep1 := <-done
		if rep1.Results[0].Status != installer.StatusChanged {
			t.Errorf("first run: %+v", rep1.Results)
		}
		// The lock freed itself when the first run ended.
		wantAll(t, "after the first run", e.run(t, installer.ModeApply, second), installer.StatusChanged)
	})

	t.Run("CancelSaysWhereEachHostStood", func(t *testing.T) {
		sh(t, h1, "rm -f /tmp/gridha-slow")
		slow := steps.Exec{
			Name:  "slow",
			Probe: "false",
			Apply: "touch /tmp/gridha-slow; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
		}
		plan := &installer.Plan{Phases: []installer.Phase{
			{Name: "one", Steps: map[string][]installer.Step{
				"eng1": {steps.Dir{Path: "/srv/gridha-c1"}, slow, steps.Dir{Path: "/srv/gridha-c2"}},
				"eng2": {steps.Dir{Path: "/srv/gridha-c1"}},
			}},
			{Name: "two", Steps: map[string][]installer.Step{
				"eng1": {steps.Dir{Path: "/srv/gridha-c3"}},
				"eng2": {steps.Dir{Path: "/srv/gridha-c3"}},
			}},
		}}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			for i := 0; i < 600; i++ {
				if out, _ := h1.Sh(ctx, "test -e /tmp/gridha-slow && echo yes"); strings.TrimSpace(out) == "yes" {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			cancel()
		}()
		start := time.Now()
		rep, err := installer.Run(ctx, e.dialer, plan, installer.RunOptions{Mode: installer.ModeApply})
		if !errors.Is(err, context.Canceled) || rep == nil {
			t.Fatalf("Run after cancel: %v", err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("cancelled run took %s (the slow step alone is 30 s)", d)
		}
		got := map[string]installer.Status{}
		for _, r := range rep.Results {
			got[r.Host+" "+r.Step] = r.Status
		}
		want := map[string]installer.Status{
			"eng1 dir /srv/gridha-c1": installer.StatusChanged, "eng1 exec slow": installer.StatusFailed,
			"eng1 dir /srv/gridha-c2": installer.StatusSkipped, "eng1 dir /srv/gridha-c3": installer.StatusSkipped,
			"eng2 dir /srv/gridha-c1": installer.StatusChanged, "eng2 dir /srv/gridha-c3": installer.StatusSkipped,
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s, want %s", k, got[k], v)
			}
		}
		if s := rep.Hosts["eng1"].Stopped; !strings.Contains(s, `interrupted at step "exec slow" in phase one`) {
			t.Errorf("eng1 stopped: %q", s)
		}
		if s := rep.Hosts["eng2"].Stopped; !strings.Contains(s, "interrupted before phase two") {
			t.Errorf("eng2 stopped: %q", s)
		}
		// The locks freed themselves with the sessions.
		wantAll(t, "apply after the cancelled run", e.run(t, installer.ModeApply, onePhase("eng1", steps.Dir{Path: "/srv/gridha-c2"})), installer.StatusChanged)
	})

	t.Run("CopyKeepsVerifiedHash", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "bin")
		data := bytes.Repeat([]byte("gridha binary stand-in\n"), 40000) // ~1 MB
		if err := os.WriteFile(src, data, 0o755); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		want := hex.EncodeToString(sum[:])
		const dst = "/srv/gridha-copy/bin"
		sh(t, h2, "mkdir -p /srv/gridha-copy")
		plan := onePhase("eng2", steps.Copy{Path: dst, Source: src, Mode: 0o755, Owner: "root", Group: "root"})
		converge(t, e, h2, plan)
		// The hash verified after the copy is kept with the file's inode,
		// size, mtime and ctime.
		line := sh(t, h2, "grep ' "+dst+"$' "+steps.CopySums)
		key := sh(t, h2, "stat -c '%i %s %.9Y %.9Z' "+dst)
		if line != want+" "+key+" "+dst {
			t.Fatalf("%s: %q, want %q", steps.CopySums, line, want+" "+key+" "+dst)
		}
		// Same size, mtime put back: the ctime moved, so the file is hashed
		// again and the change is drift.
		drift(t, e, h2, plan, "cp -p "+dst+" /tmp/copy-ref && printf Z | dd of="+dst+" bs=1 seek=100 conv=notrunc 2>/dev/null && touch -r /tmp/copy-ref "+dst, installer.StatusDrift)
		// While inode, size, mtime and ctime hold, the recorded hash is what
		// verify compares (here a wrong one, planted): no 18 MB hash per run.
		sh(t, h2, "sed -i 's/^"+want+" /"+strings.Repeat("0", 64)+" /' "+steps.CopySums)
		if rep := e.run(t, installer.ModeAudit, plan); rep.Results[0].Status != installer.StatusDrift {
			t.Errorf("audit with a planted hash: %+v", rep.Results[0])
		}
	})

	t.Run("SessionsConstant", func(t *testing.T) {
		sessions := map[int]installer.Stats{}
		for _, n := range []int{2, 40} {
			var ss []installer.Step
			for i := 0; i < n; i++ {
				ss = append(ss, steps.KeyValue{Path: "/srv/gridha-s.conf", Key: fmt.Sprintf("K%d", i), Value: "v"})
			}
			plan := &installer.Plan{Phases: []installer.Phase{
				{Name: "one", Steps: map[string][]installer.Step{"eng1": ss}},
				{Name: "two", Steps: map[string][]installer.Step{"eng1": {steps.Dir{Path: "/srv"}}}},
			}}
			e.run(t, installer.ModeApply, plan)
			for _, mode := range []installer.Mode{installer.ModeAudit, installer.ModeApply} {
				rep := e.run(t, mode, plan)
				wantAll(t, "no-change run", rep, installer.StatusOK)
				st := rep.Hosts["eng1"].Stats
				// Audit and no-change install alike: one fact session for
				// all phases, no lock session.
				want := 1
				if st.Connections != 1 || st.Sessions != want || rep.Hosts["eng1"].Locked {
					t.Errorf("%d steps, %s: %+v, want 1 connection, %d sessions", n, mode, st, want)
				}
				sessions[n] = st
			}
		}
		t.Logf("stats by number of steps: %v", sessions)
	})
}
