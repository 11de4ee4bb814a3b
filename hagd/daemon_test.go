package hagd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func TestScriptRunnerTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "svc")
	pidf := filepath.Join(dir, "child.pid")
	os.WriteFile(script, []byte(`#!/bin/sh
case $1 in
start) sleep 1000 & echo $! > `+pidf+`; wait ;;
stop) echo stopping $2; exit 0 ;;
status) echo "not running" >&2; exit 3 ;;
esac
`), 0o755)
	r := &ScriptRunner{Path: script, Timeout: 300 * time.Millisecond, StopTimeout: time.Second, Node: "n1"}
	run := func(op string) (out string, err error) {
		ch := make(chan struct {
			err error
			out string
		}, 1)
		r.Run(context.Background(), "g", op, func(err error, out string, _ time.Duration) {
			ch <- struct {
				err error
				out string
			}{err, out}
		})
		v := <-ch
		return v.out, v.err
	}
	_, err := run(OpStart)
	var se *ScriptError
	if !errors.As(err, &se) || !se.TimedOut {
		t.Fatalf("hanging start: %v", err)
	}
	pid, _ := os.ReadFile(pidf)
	// the background child of the script was killed with the group
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strings.TrimSpace(string(pid))); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %s of the timed-out script survives", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out, err := run(OpStop); err != nil || !strings.Contains(out, "stopping g") {
		t.Errorf("stop: %v %q", err, out)
	}
	if _, err := run(OpStatus); !errors.As(err, &se) || se.Exit != 3 || !strings.Contains(err.Error(), "not running") {
		t.Errorf("status: %v", err)
	}
	// a stop supersedes a hanging start
	done := make(chan error, 1)
	r.Timeout = time.Hour
	r.Run(context.Background(), "g", OpStart, func(err error, _ string, _ time.Duration) { done <- err })
	time.Sleep(50 * time.Millisecond)
	if _, err := run(OpStop); err != nil {
		t.Errorf("stop after start: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrSuperseded) {
		t.Errorf("superseded start: %v", err)
	}
}

// memHub is an in-memory broadcast network for daemons in one process.
type memHub struct {
	mu    sync.Mutex
	nodes map[*memTransport]bool
}

type memTransport struct {
	hub *memHub
	ch  chan Packet
	cut bool
}

func (h *memHub) join() *memTransport {
	t := &memTransport{hub: h, ch: make(chan Packet, 256)}
	h.mu.Lock()
	if h.nodes == nil {
		h.nodes = map[*memTransport]bool{}
	}
	h.nodes[t] = true
	h.mu.Unlock()
	return t
}

func (t *memTransport) Send(p []byte) error {
	t.hub.mu.Lock()
	defer t.hub.mu.Unlock()
	if t.cut {
		return errors.New("link down")
	}
	for o := range t.hub.nodes {
		if o != t && !o.cut {
			select {
			case o.ch <- Packet{Data: append([]byte(nil), p...)}:
			default:
			}
		}
	}
	return nil
}

func (t *memTransport) Packets() <-chan Packet { return t.ch }
func (t *memTransport) Close() error {
	t.hub.mu.Lock()
	delete(t.hub.nodes, t)
	t.hub.mu.Unlock()
	return nil
}

// TestDaemonsInProcess runs three real daemons (real scripts, file lease,
// control socket) over an in-memory network: election, manual takeover
// through the control socket, clean shutdown releasing the lease.
func TestDaemonsInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	svcLog := filepath.Join(dir, "service.log")
	script := filepath.Join(dir, "svc")
	os.WriteFile(script, []byte(`#!/bin/sh
echo "$HAGD_NODE $1 $2" >> `+svcLog+`
case $1 in status) [ -e `+dir+`/up-$HAGD_NODE-$2 ] ;; start) touch `+dir+`/up-$HAGD_NODE-$2 ;; stop) rm -f `+dir+`/up-$HAGD_NODE-$2 ;; esac
`), 0o755)
	hub := &memHub{}
	type node struct {
		d      *Daemon
		cancel context.CancelFunc
		done   chan error
		sock   string
	}
	nodes := map[string]*node{}
	for i, id := range []string{"n1", "n2", "n3"} {
		conf := fmt.Sprintf(`id = %s
group = rb:%d
script = %s
key = %s
timeout = 2s
stop_timeout = 1s
dt1 = 1s
dt2 = 300ms
heartbeat = 200ms
status_interval = 300ms
lease = file
lease_file = %s/lease
lease_ttl = 3s
lease_renew = 300ms
lease_timeout = 300ms
control = %s/%s.sock
debug = 3
`, id, 30-10*i, script, key, dir, dir, id)
		cfg, err := ParseConfig(id, []byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		n := &node{d: &Daemon{Cfg: cfg, Transport: hub.join(), Log: NewLogger(testWriter{t, id}, 2)}, cancel: cancel, done: make(chan error, 1), sock: cfg.Control}
		go func() { n.done <- n.d.Run(ctx) }()
		nodes[id] = n
	}
	defer func() {
		for _, n := range nodes {
			n.cancel()
		}
		for _, n := range nodes {
			<-n.done
		}
	}()
	status := func(id string) *StatusReply {
		r, err := ContextControl(nodes[id].sock, ControlRequest{Cmd: "status"}, 2*time.Second)
		if err != nil {
			return nil
		}
		return r.Status
	}
	waitMaster := func(id string) {
		t.Helper()
		for i := 0; i < 300; i++ {
			if s := status(id); s != nil && s.Groups[0].State == "master" {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s never became master", id)
	}
	waitMaster("n1")
	st := status("n2")
	if st.Groups[0].Master != "n1" || len(st.Groups[0].Members) != 3 {
		t.Errorf("n2 sees %+v", st.Groups[0])
	}
	if fi, err := os.Stat(nodes["n1"].sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode: %v %v", fi.Mode(), err)
	}
	var sb strings.Builder
	PrintStatus(&sb, st)
	t.Logf("gridha hagd status on n2:\n%s", sb.String())

	if _, err := ContextControl(nodes["n3"].sock, ControlRequest{Cmd: "takeover", Group: "rb"}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	waitMaster("n3")
	if _, err := ContextControl(nodes["n2"].sock, ControlRequest{Cmd: "giveup", Group: "rb"}, 2*time.Second); err == nil {
		t.Error("giveup on a backup accepted")
	}
	// Clean shutdown of the master: stop, lease released, fast handover.
	nodes["n3"].cancel()
	if err := <-nodes["n3"].done; err != nil {
		t.Fatal(err)
	}
	delete(nodes, "n3")
	if _, err := os.Stat(dir + "/up-n3-rb"); err == nil {
		t.Error("n3's service still up after SIGTERM")
	}
	lease, _ := os.ReadFile(dir + "/lease/rb.lease")
	if strings.HasPrefix(string(lease), "n3 ") {
		t.Errorf("lease still n3's: %q", lease)
	}
	waitMaster("n1")
	log, _ := os.ReadFile(svcLog)
	t.Logf("service log:\n%s", log)
}

type testWriter struct {
	t  *testing.T
	id string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.id, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}

func TestCLIManualArgs(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	run := func(args ...string) error {
		app := &cli.App{Name: "gridha", Commands: []*cli.Command{Command()}, Writer: io.Discard, ErrWriter: io.Discard,
			ExitErrHandler: func(*cli.Context, error) {}}
		return app.Run(append([]string{"gridha", "hagd"}, args...))
	}
	// flags before or after GROUP reach the socket named
	for _, args := range [][]string{
		{"takeover", "--socket", sock, "rb"},
		{"takeover", "rb", "--socket", sock},
		{"giveup", "rb", "-c", "/nonexistent.conf", "--socket", sock},
	} {
		err := run(args...)
		if err == nil || !strings.Contains(err.Error(), sock) {
			t.Errorf("%v: %v", args, err)
		}
	}
	if err := run("takeover"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("no group: %v", err)
	}
	if err := run("takeover", "a", "b"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("two groups: %v", err)
	}
}

// TestDaemonReloadsKeys: a running hagd picks up a second accepted key, a
// new signing key and the end of a rotation from its key files, without a
// restart; a key file it may not use (group-readable) keeps the keys in use.
func TestDaemonReloadsKeys(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := []byte("old key of the multigroup......."), []byte("new key of the multigroup.......")
	key := filepath.Join(dir, "hagd.key")
	put := func(p string, b []byte, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(p+".tmp", b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p+".tmp", mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
	}
	put(key, append(oldKey, '\n'), 0o600)
	script := filepath.Join(dir, "svc")
	os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	cfg, err := ParseConfig("n1", []byte(fmt.Sprintf("id = n1\ngroup = rb:10\nscript = %s\nkey = %s\nheartbeat = 100ms\ndt1 = 1s\ndt2 = 200ms\nlease = none\ncontrol = %s/n1.sock\n", script, key, dir)))
	if err != nil {
		t.Fatal(err)
	}
	hub := &memHub{}
	peer := hub.join()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	d := &Daemon{Cfg: cfg, Transport: hub.join(), Log: NewLogger(testWriter{t, "n1"}, 3)}
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	counters := func() map[string]uint64 {
		r, err := ContextControl(cfg.Control, ControlRequest{Cmd: "status"}, 2*time.Second)
		if err != nil {
			return nil
		}
		return r.Status.Packets
	}
	var seq uint64
	send := func(k []byte) {
		seq++
		b, err := NewCodec(k, []string{"rb"}).Encode(&Message{From: "n2", Nonce: 7, Seq: seq, Time: time.Now(),
			Groups: []GroupEntry{{Group: "rb", Rank: 5, State: StateNormal, Candidate: true}}})
		if err != nil {
			t.Fatal(err)
		}
		peer.Send(b)
	}
	// until sends a packet signed with k every 100 ms until counter k2
	// grows, for at most 3 s (a reload is looked for once a second).
	until := func(what string, k []byte, counter string) {
		t.Helper()
		var before uint64
		for i := 0; i < 50 && before == 0; i++ {
			if c := counters(); c != nil {
				before = c[counter] + 1 // +1: 0 is "not read yet"
			}
			time.Sleep(20 * time.Millisecond)
		}
		for i := 0; i < 30; i++ {
			send(k)
			time.Sleep(100 * time.Millisecond)
			if c := counters(); c[counter]+1 > before {
				return
			}
		}
		t.Fatalf("%s: %s never counted; counters %v", what, counter, counters())
	}
	until("new key before the rotation", newKey, cntBadMAC)
	until("old key before the rotation", oldKey, cntAccepted)

	// phase 1: the new key accepted too
	accept := cfg.AcceptKeyFile()
	put(accept, append(append(append([]byte(nil), newKey...), '\n'), oldKey...), 0o600)
	until("new key once accepted", newKey, cntAccepted)
	until("old key during the rotation", oldKey, cntAccepted)
	if c := counters(); c[cntKeyReloads] != 1 {
		t.Errorf("key reloads: %d, want 1", c[cntKeyReloads])
	}

	// a group-readable accepted-keys file is refused: the keys in use stay
	os.Chmod(accept, 0o640)
	time.Sleep(1200 * time.Millisecond)
	until("new key with a refused file", newKey, cntAccepted)
	if c := counters(); c[cntKeyReloads] != 1 {
		t.Errorf("key reloads after a 0640 file: %d, want 1", c[cntKeyReloads])
	}
	os.Chmod(accept, 0o600)

	// phase 2: sign with the new key; phase 3: the old one dropped
	put(key, append(newKey, '\n'), 0o600)
	signsWith := func(k []byte) bool {
		codec := NewCodec(k, []string{"rb"})
		for i := 0; i < 40; i++ {
			select {
			case p := <-peer.Packets():
				if _, err := codec.Decode(p.Data); err == nil {
					return true
				}
			case <-time.After(100 * time.Millisecond):
			}
		}
		return false
	}
	if !signsWith(newKey) {
		t.Fatal("hagd does not sign with the new key after the key file changed")
	}
	until("old key while switching", oldKey, cntAccepted)
	if err := os.Remove(accept); err != nil {
		t.Fatal(err)
	}
	until("old key after the rotation", oldKey, cntBadMAC)
	until("new key after the rotation", newKey, cntAccepted)
}
