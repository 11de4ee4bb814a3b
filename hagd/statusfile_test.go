package hagd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestDaemonStatusFile: a lone daemon keeps its status file next to its
// control socket (0600, one line of JSON: node, groups, supervised, the
// host's uptime when written), rewrites it at least once per heartbeat
// interval (the clock advances), shows the group's takeover, and removes
// the file when it stops.
func TestDaemonStatusFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "hagd.key")
	if err := os.WriteFile(key, []byte("a key of thirty-two bytes or so..\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "svc")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("n1", []byte(fmt.Sprintf("id = n1\ngroup = rb:10\nscript = %s\nkey = %s\nheartbeat = 100ms\ndt1 = 600ms\ndt2 = 100ms\nlease = none\ncontrol = %s/n1.sock\n", script, key, dir)))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "n1.status")
	if cfg.StatusFile != path {
		t.Fatalf("status_file default %q, want %q (next to the control socket)", cfg.StatusFile, path)
	}
	hub := &memHub{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	d := &Daemon{Cfg: cfg, Transport: hub.join(), Log: NewLogger(testWriter{t, "n1"}, 2)}
	go func() { done <- d.Run(ctx) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	read := func() (StatusFileStatus, float64, error) {
		var st StatusFileStatus
		b, err := os.ReadFile(path)
		if err != nil {
			return st, 0, err
		}
		if err := json.Unmarshal(b, &st); err != nil {
			return st, 0, fmt.Errorf("%q: %w", b, err)
		}
		c, err := strconv.ParseFloat(st.Clock, 64)
		return st, c, err
	}
	// The lone candidate becomes master after dt1 + dt2; the file shows it
	// within a heartbeat interval. Bounded: 5 s.
	var first float64 = -1
	var st StatusFileStatus
	for i := 0; ; i++ {
		var c float64
		st, c, err = read()
		if err == nil && first < 0 {
			first = c
		}
		if err == nil && len(st.Groups) == 1 && st.Groups[0].State == StateMaster.String() && c > first {
			break
		}
		if i == 100 {
			t.Fatalf("status file never showed n1 master with an advancing clock: %+v, %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("status file mode %o, want 600", fi.Mode().Perm())
	}
	if st.Node != "n1" || st.Supervised || st.PID != os.Getpid() {
		t.Errorf("status: node %q supervised %v pid %d (want n1, false: not under the supervisor, %d)", st.Node, st.Supervised, st.PID, os.Getpid())
	}
	cancel()
	<-done
	stopped = true
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("status file after a clean stop: %v, want it removed", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".n1.status.*")); len(left) > 0 {
		t.Errorf("temporary status files left: %v", left)
	}
}
