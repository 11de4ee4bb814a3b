package hagd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ScriptRunner runs `SCRIPT start|stop|status GROUP` (slide 13), one at a
// time per group: a new operation for a group kills the one still running
// (stop supersedes a hanging start). A script that outlives its timeout is
// killed with its whole process group and reported as failed.
type ScriptRunner struct {
	Path        string
	Timeout     time.Duration // start and status
	StopTimeout time.Duration
	Node        string // exported as HAGD_NODE
	// Env adds variables per group (HAGD_SERVICE_IP when hagd manages the
	// group's service IP: the script must then not add it itself).
	Env map[string][]string

	mu      sync.Mutex
	running map[string]*runningScript
}

type runningScript struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// ScriptError is a script that failed.
type ScriptError struct {
	Op, Group string
	Exit      int  // -1 when killed
	TimedOut  bool // killed at the timeout
	Output    string
}

func (e *ScriptError) Error() string {
	var b strings.Builder
	if e.TimedOut {
		b.WriteString("timed out (process group killed)")
	} else {
		fmt.Fprintf(&b, "exit status %d", e.Exit)
	}
	if out := lastLine(e.Output); out != "" {
		fmt.Fprintf(&b, ": %s", out)
	}
	return b.String()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// ErrSuperseded is reported for a script killed because another operation
// on the same group replaced it.
var ErrSuperseded = errors.New("superseded by another operation")

// Run starts op for group in the background and calls done with the result
// (output is the script's combined output, truncated).
func (r *ScriptRunner) Run(ctx context.Context, group, op string, done func(err error, output string, took time.Duration)) {
	sctx, cancel := context.WithCancel(ctx)
	rs := &runningScript{cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	if r.running == nil {
		r.running = map[string]*runningScript{}
	}
	prev := r.running[group]
	r.running[group] = rs
	r.mu.Unlock()
	go func() {
		defer cancel()
		if prev != nil {
			prev.cancel()
			<-prev.done
		}
		start := time.Now()
		out, err := r.exec(sctx, group, op)
		close(rs.done)
		r.mu.Lock()
		if r.running[group] == rs {
			delete(r.running, group)
		}
		r.mu.Unlock()
		done(err, out, time.Since(start))
	}()
}

func (r *ScriptRunner) exec(ctx context.Context, group, op string) (string, error) {
	timeout := r.Timeout
	if op == OpStop {
		timeout = r.StopTimeout
	}
	// Output goes to an unlinked temporary file, not a pipe: a service the
	// script leaves running in the background must not hold us up.
	out, err := os.CreateTemp("", "hagd-script-*")
	if err != nil {
		return "", fmt.Errorf("script output: %w", err)
	}
	os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(r.Path, op, group)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "HAGD_GROUP="+group, "HAGD_OP="+op, "HAGD_NODE="+r.Node)
	cmd.Env = append(cmd.Env, r.Env[group]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", &ScriptError{Op: op, Group: group, Exit: -1, Output: err.Error()}
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var werr error
	var timedOut, superseded bool
	select {
	case werr = <-waited:
	case <-timer.C:
		timedOut = true
	case <-ctx.Done():
		superseded = true
	}
	if timedOut || superseded {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-waited
	}
	output := readTail(out, 4096)
	switch {
	case superseded:
		return output, ErrSuperseded
	case timedOut:
		return output, &ScriptError{Op: op, Group: group, Exit: -1, TimedOut: true, Output: output}
	case werr != nil:
		code := -1
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			code = ee.ExitCode()
		}
		return output, &ScriptError{Op: op, Group: group, Exit: code, Output: output}
	}
	return output, nil
}

func readTail(f *os.File, n int64) string {
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(0, st.Size()-n)
	b := make([]byte, st.Size()-off)
	k, _ := f.ReadAt(b, off)
	return string(b[:k])
}
