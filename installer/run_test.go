package installer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// localConn runs commands with /bin/sh on this machine: enough to test the
// runner's bookkeeping (the integration tests in installer/steps use real
// SSH). Steps used with it here write nothing.
type localConn struct {
	host     string
	sessions atomic.Int64
	// lock, when set, is the run's lock path, given a per-host name here so
	// that hosts sharing this machine's files have a lock each.
	lock string
}

func (c *localConn) Host() string { return c.host }
func (c *localConn) Run(ctx context.Context, cmd string, stdin io.Reader) (CmdResult, error) {
	c.sessions.Add(1)
	if c.lock != "" {
		cmd = strings.ReplaceAll(cmd, c.lock, c.lock+"."+c.host)
		if sr, ok := stdin.(*strings.Reader); ok {
			b, _ := io.ReadAll(sr)
			stdin = strings.NewReader(strings.ReplaceAll(string(b), c.lock, c.lock+"."+c.host))
		}
	}
	var out, errb bytes.Buffer
	x := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	x.Stdout, x.Stderr = &out, &errb
	x.WaitDelay = time.Second
	// Like an SSH session, stop feeding stdin once the command exited
	// (exec.Cmd would wait for a never-ending reader).
	var err error
	if stdin != nil {
		w, perr := x.StdinPipe()
		if perr != nil {
			return CmdResult{}, perr
		}
		if err = x.Start(); err == nil {
			go func() { _, _ = io.Copy(w, stdin); w.Close() }()
			err = x.Wait()
		}
	} else {
		err = x.Run()
	}
	if ctx.Err() != nil {
		return CmdResult{}, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return CmdResult{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: ee.ExitCode()}, nil
	}
	return CmdResult{Stdout: out.Bytes(), Stderr: errb.Bytes()}, err
}
func (c *localConn) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return os.ReadFile(path)
}
func (c *localConn) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode, owner, group string) error {
	return errors.New("localConn: no writes")
}
func (c *localConn) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errors.New("localConn: no dial")
}
func (c *localConn) Stats() Stats { return Stats{Connections: 1, Sessions: int(c.sessions.Load())} }
func (c *localConn) Close() error { return nil }

type localDialer struct {
	down  map[string]bool
	dials atomic.Int64
	lock  string // see localConn.lock
}

func (d *localDialer) Dial(ctx context.Context, host string) (Conn, error) {
	d.dials.Add(1)
	if d.down[host] {
		return nil, fmt.Errorf("dial %s: connection refused", host)
	}
	return &localConn{host: host, lock: d.lock}, nil
}

// fakeStep reports a fixed status after checking its probe came through.
type fakeStep struct {
	id     string
	status Status
	log    *[]string
	mu     *sync.Mutex
	panics bool
	block  bool // wait for ctx
	// started is closed when a blocking step starts.
	started chan struct{}
}

func (s fakeStep) ID() string { return s.id }
func (s fakeStep) Probes() []Probe {
	return []Probe{{Key: "echo:" + s.id, Script: "echo " + ShellQuote(s.id)}}
}
func (s fakeStep) CheckApply(ctx context.Context, env *Env, apply bool) Result {
	if s.log != nil {
		s.mu.Lock()
		*s.log = append(*s.log, env.Host+":"+s.id)
		s.mu.Unlock()
	}
	if s.panics {
		panic("boom")
	}
	if s.block {
		close(s.started)
		<-ctx.Done()
		return Failed(ctx.Err())
	}
	pr, ok := env.Facts.Get("echo:" + s.id)
	if !ok || strings.TrimSpace(string(pr.Stdout)) != s.id {
		return Failed(fmt.Errorf("fact missing for %s: %q", s.id, pr.Stdout))
	}
	if s.status == StatusFailed {
		return Failed(errors.New("secret-password broke"))
	}
	return Result{Status: s.status, Message: "msg"}
}

func steps(log *[]string, mu *sync.Mutex, specs ...string) []Step {
	var out []Step
	for _, sp := range specs {
		id, st, _ := strings.Cut(sp, "=")
		s := fakeStep{id: id, status: Status(st), log: log, mu: mu}
		if st == "panic" {
			s.panics, s.status = true, StatusOK
		}
		out = append(out, s)
	}
	return out
}

func TestRunPhasesFailuresUnreachable(t *testing.T) {
	var log []string
	var mu sync.Mutex
	plan := &Plan{Phases: []Phase{
		{Name: "one", Steps: map[string][]Step{
			"a": steps(&log, &mu, "a1=ok", "a2=failed", "a3=ok"),
			"b": steps(&log, &mu, "b1=changed", "b2=panic"),
			"c": steps(&log, &mu, "c1=ok"),
			"d": steps(&log, &mu, "d1=ok"),
		}},
		{Name: "two", Steps: map[string][]Step{
			"a": steps(&log, &mu, "a4=ok"),
			"b": steps(&log, &mu, "b3=ok"),
			"c": steps(&log, &mu, "c2=drift", "c3=ok"),
			"d": steps(&log, &mu, "d2=ok"),
		}},
	}}
	red := &Redactor{}
	red.Add("secret-password")
	var events []Event
	d := &localDialer{down: map[string]bool{"d": true}}
	rep, err := Run(context.Background(), d, plan, RunOptions{Mode: ModeAudit, Concurrency: 2, Secrets: red,
		Events: func(ev Event) { events = append(events, ev) }})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Status{}
	for _, r := range rep.Results {
		got[r.Host+"/"+r.Step] = r.Status
		if strings.Contains(r.Message+r.Error, "secret-password") {
			t.Errorf("secret not redacted: %+v", r)
		}
	}
	want := map[string]Status{
		"a/a1": StatusOK, "a/a2": StatusFailed, "a/a3": StatusSkipped, "a/a4": StatusSkipped,
		"b/b1": StatusChanged, "b/b2": StatusFailed, "b/b3": StatusSkipped,
		"c/c1": StatusOK, "c/c2": StatusDrift, "c/c3": StatusOK,
		"d/d1": StatusUnreachable, "d/d2": StatusUnreachable,
	}
	if len(got) != len(want) {
		t.Errorf("got %d results, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	// Phase barrier: every phase-one step ran before any phase-two step.
	seenTwo := false
	for _, l := range log {
		isTwo := strings.HasSuffix(l, "4") || strings.HasSuffix(l, "b3") || strings.HasPrefix(l, "c:c2") || strings.HasPrefix(l, "c:c3")
		if isTwo {
			seenTwo = true
		} else if seenTwo {
			t.Errorf("phase-one step %s ran after a phase-two step: %v", l, log)
		}
	}
	// A drift that names no property gets the "state" one: every report
	// names what drifted.
	for _, r := range rep.Results {
		if r.Step == "c2" && (len(r.Drifted) != 1 || r.Drifted[0].Property != "state" || r.Drifted[0].Found != "msg") {
			t.Errorf("c2 drifted %+v, want one property state found msg", r.Drifted)
		}
		if !r.Status.NeedsChange() && len(r.Drifted) > 0 {
			t.Errorf("%s/%s: %s with drifted properties %+v", r.Host, r.Step, r.Status, r.Drifted)
		}
	}
	if !rep.Hosts["d"].Unreachable || rep.Hosts["a"].Stopped == "" || rep.Hosts["c"].Stopped != "" {
		t.Errorf("host reports: d=%+v a=%+v c=%+v", rep.Hosts["d"], rep.Hosts["a"], rep.Hosts["c"])
	}
	if rep.Worst() != StatusUnreachable || rep.Counts()[StatusSkipped] != 3 {
		t.Errorf("worst %s counts %v", rep.Worst(), rep.Counts())
	}
	// One connection per host for the whole run; one session per run.
	if n := d.dials.Load(); n != 4 {
		t.Errorf("dials = %d, want 4", n)
	}
	if s := rep.Hosts["c"].Stats.Sessions; s != 1 {
		t.Errorf("sessions of c = %d, want 1 (an audit gathers all phases at once)", s)
	}
	kinds := map[EventKind]int{}
	for _, ev := range events {
		kinds[ev.Kind]++
	}
	if kinds[EventStepResult] != 12 || kinds[EventHostUnreachable] != 1 || kinds[EventHostStart] == 0 {
		t.Errorf("events: %v", kinds)
	}
}

func TestRunSessionsConstant(t *testing.T) {
	for _, n := range []int{1, 20} {
		var specs []string
		for i := 0; i < n; i++ {
			specs = append(specs, fmt.Sprintf("s%d=ok", i))
		}
		plan := &Plan{Phases: []Phase{{Name: "p", Steps: map[string][]Step{"h": steps(nil, nil, specs...)}}}}
		rep, err := Run(context.Background(), &localDialer{}, plan, RunOptions{Mode: ModeCheck})
		if err != nil {
			t.Fatal(err)
		}
		if s := rep.Hosts["h"].Stats.Sessions; s != 1 {
			t.Errorf("%d steps: %d sessions, want 1", n, s)
		}
	}
}

func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	plan := &Plan{Phases: []Phase{
		{Name: "one", Steps: map[string][]Step{
			"a": {fakeStep{id: "a1", status: StatusOK}, fakeStep{id: "a2", block: true, started: started}, fakeStep{id: "a3", status: StatusOK}},
		}},
		{Name: "two", Steps: map[string][]Step{"a": {fakeStep{id: "a4", status: StatusOK}}}},
	}}
	go func() { <-started; cancel() }()
	rep, err := Run(ctx, &localDialer{}, plan, RunOptions{Mode: ModeApply, LockPath: filepath.Join(t.TempDir(), "lock")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("results: %+v", rep.Results)
	}
	if rep.Results[0].Status != StatusOK || rep.Results[1].Status != StatusFailed || rep.Results[2].Status != StatusSkipped ||
		rep.Results[3].Status != StatusSkipped || !strings.Contains(rep.Hosts["a"].Stopped, `interrupted at step "a2"`) {
		t.Errorf("after cancel: %+v / %+v", rep.Results, rep.Hosts["a"])
	}
	t.Logf("stopped: %s", rep.Hosts["a"].Stopped)
}

func TestRunLock(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "gridha.lock")
	release := make(chan struct{})
	started := make(chan struct{})
	plan1 := &Plan{Phases: []Phase{{Name: "p", Steps: map[string][]Step{"h": {waitStep{started, release}}}}}}
	done := make(chan *Report)
	go func() {
		rep, _ := Run(context.Background(), &localDialer{}, plan1, RunOptions{Mode: ModeApply, LockPath: lock})
		done <- rep
	}()
	<-started
	plan2 := &Plan{Phases: []Phase{{Name: "p", Steps: map[string][]Step{"h": steps(nil, nil, "x=ok")}}}}
	rep2, err := Run(context.Background(), &localDialer{}, plan2, RunOptions{Mode: ModeApply, LockPath: lock})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep2.Hosts["h"].Err, "host h is being converged by another gridha run (pid ") || rep2.Results[0].Status != StatusSkipped {
		t.Errorf("second run: %+v %+v", rep2.Hosts["h"], rep2.Results)
	}
	t.Logf("refusal: %s", rep2.Hosts["h"].Err)
	// Audits take no lock.
	rep3, _ := Run(context.Background(), &localDialer{}, plan2, RunOptions{Mode: ModeAudit, LockPath: lock})
	if rep3.Results[0].Status != StatusOK {
		t.Errorf("audit during apply: %+v", rep3.Results)
	}
	close(release)
	rep1 := <-done
	// The shared read, then the lock session and the read under it.
	if rep1.Results[0].Status != StatusOK || rep1.Hosts["h"].Stats.Sessions != 3 || !rep1.Hosts["h"].Locked {
		t.Errorf("first run: %+v %+v", rep1.Results, rep1.Hosts["h"])
	}
	// Freed: a third run takes it.
	rep4, _ := Run(context.Background(), &localDialer{}, plan2, RunOptions{Mode: ModeApply, LockPath: lock})
	if rep4.Results[0].Status != StatusOK {
		t.Errorf("after release: %+v %+v", rep4.Results, rep4.Hosts["h"])
	}
}

type waitStep struct{ started, release chan struct{} }

func (waitStep) ID() string      { return "wait" }
func (waitStep) Probes() []Probe { return nil }
func (w waitStep) CheckApply(ctx context.Context, env *Env, apply bool) Result {
	if !apply {
		// Something to change: the install locks the host.
		return Drift("would wait", "", "")
	}
	close(w.started)
	<-w.release
	return OK("")
}

// touchStep creates a file (apply) and reports changed; seeStep reports
// whether its probe saw the file.
type touchStep struct{ path string }

func (s touchStep) ID() string      { return "touch " + s.path }
func (s touchStep) Probes() []Probe { return nil }
func (s touchStep) CheckApply(ctx context.Context, env *Env, apply bool) Result {
	if _, err := env.Conn.Run(ctx, "touch "+ShellQuote(s.path), nil); err != nil {
		return Failed(err)
	}
	return Changed("touched")
}

type seeStep struct{ path string }

func (s seeStep) ID() string { return "see " + s.path }
func (s seeStep) Probes() []Probe {
	return []Probe{{Key: "see:" + s.path, Script: "test -e " + ShellQuote(s.path)}}
}
func (s seeStep) CheckApply(ctx context.Context, env *Env, apply bool) Result {
	pr, _ := env.Facts.Get("see:" + s.path)
	if pr.ExitCode != 0 {
		return Missing("not seen")
	}
	return OK("")
}

func TestRunRegathersAfterChange(t *testing.T) {
	p := filepath.Join(t.TempDir(), "made")
	plan := &Plan{Phases: []Phase{{Name: "p", Steps: map[string][]Step{"h": {seeStep{p + "x"}, touchStep{p}, seeStep{p}}}}}}
	rep, err := Run(context.Background(), &localDialer{}, plan, RunOptions{Mode: ModeApply, LockPath: filepath.Join(t.TempDir(), "lock")})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Results[2]; got.Status != StatusOK {
		t.Errorf("step after a change did not see it: %+v", got)
	}
	// first read + lock + read under the lock + touch + regather after the change.
	if s := rep.Hosts["h"].Stats.Sessions; s != 5 {
		t.Errorf("sessions %d, want 5", s)
	}
}

// peerStep uses another host's connection, as an L&B copy writes into the
// state server's MySQL.
type peerStep struct{ peer string }

func (peerStep) ID() string      { return "peer" }
func (peerStep) Probes() []Probe { return nil }
func (p peerStep) CheckApply(ctx context.Context, env *Env, apply bool) Result {
	if !apply {
		return Missing("would copy")
	}
	if _, err := env.Peer(ctx, p.peer); err != nil {
		return Failed(err)
	}
	return Changed("copied")
}

// TestRunNoChangeInstall: an install where nothing differs costs what an
// audit costs (one session per host, no lock); a host where something
// differs is locked and read again; a step writing through another host
// locks that host too; no-change installs run side by side.
func TestRunNoChangeInstall(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "gridha.lock")
	plan := &Plan{Phases: []Phase{
		{Name: "one", Steps: map[string][]Step{
			"a": steps(nil, nil, "a1=ok", "a2=ok"),
			"b": steps(nil, nil, "b1=ok"),
			"s": steps(nil, nil, "s1=ok"),
		}},
		{Name: "two", Steps: map[string][]Step{
			"a": steps(nil, nil, "a3=ok"),
			"b": append(steps(nil, nil, "b2=ok"), peerStep{"s"}),
		}},
	}}
	rep, err := Run(context.Background(), &localDialer{lock: lock}, plan, RunOptions{Mode: ModeApply, LockPath: lock})
	if err != nil {
		t.Fatal(err)
	}
	if h := rep.Hosts["a"]; h.Stats.Sessions != 1 || h.Locked || h.Counts[StatusOK] != 3 {
		t.Errorf("no-change host a: %+v", h)
	}
	// b: first read, then in phase two the lock session and the read under it.
	if h := rep.Hosts["b"]; h.Stats.Sessions != 3 || !h.Locked || h.Counts[StatusChanged] != 1 || h.Counts[StatusOK] != 2 {
		t.Errorf("changing host b: %+v", h)
	}
	// s: its own read, then locked for b's write through it (lock + the
	// session waiting for it).
	if h := rep.Hosts["s"]; h.Stats.Sessions != 3 || !h.Locked {
		t.Errorf("peer s: %+v", h)
	}
	for _, h := range []*HostReport{rep.Hosts["a"], rep.Hosts["b"]} {
		if h.Duration <= 0 || h.Facts <= 0 || h.Facts > h.Duration {
			t.Errorf("%s: duration %v, facts %v", h.Host, h.Duration, h.Facts)
		}
	}

	// Two no-change installs at once both run (the lock is only shared).
	noop := &Plan{Phases: []Phase{{Name: "p", Steps: map[string][]Step{"h": steps(nil, nil, "x=ok")}}}}
	var wg sync.WaitGroup
	reps := make([]*Report, 4)
	for i := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], _ = Run(context.Background(), &localDialer{}, noop, RunOptions{Mode: ModeApply, LockPath: lock})
		}()
	}
	wg.Wait()
	for i, r := range reps {
		if r.Results[0].Status != StatusOK || r.Hosts["h"].Err != "" {
			t.Errorf("concurrent no-change install %d: %+v %+v", i, r.Results, r.Hosts["h"])
		}
	}
}

// TestRunSupportHost: a host in the plan only for a value gets the reason
// in its report.
func TestRunSupportHost(t *testing.T) {
	plan := &Plan{
		Phases:  []Phase{{Name: "p", Steps: map[string][]Step{"srv": steps(nil, nil, "key=ok"), "rb1": steps(nil, nil, "x=ok")}}},
		Support: map[string]string{"srv": "outside --limit: only its SSH host key is read (for rb1)"},
	}
	rep, err := Run(context.Background(), &localDialer{}, plan, RunOptions{Mode: ModeAudit})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Hosts["srv"].Support == "" || rep.Hosts["rb1"].Support != "" {
		t.Errorf("support: srv %+v rb1 %+v", rep.Hosts["srv"], rep.Hosts["rb1"])
	}
}
