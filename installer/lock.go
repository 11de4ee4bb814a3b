package installer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// DefaultLockPath is the per-host lock file a converging run holds.
const DefaultLockPath = "/var/lock/gridha.lock"

// lockWait bounds how long the first fact batch waits for the lock session
// to report that it holds the lock.
const lockWait = 30 * time.Second

// Exit codes of the lock session.
const (
	lockExitBusy    = 75
	lockExitNoFlock = 69
)

// hostLock is a held per-host lock: a session running flock on the lock
// file whose stdin stays open for the run. Closing stdin (or the connection
// dying, or gridha dying) ends the session and frees the lock by itself:
// there is no stale lock file to clean up after a crash.
type hostLock struct {
	stdin  *io.PipeWriter
	cancel context.CancelFunc
	done   chan lockResult
}

type lockResult struct {
	res CmdResult
	err error
}

// release frees the lock and waits (bounded) for the lock session to end.
func (l *hostLock) release() {
	_ = l.stdin.Close()
	select {
	case <-l.done:
	case <-time.After(5 * time.Second):
	}
	l.cancel()
}

// lockScript takes the lock on fd 9, waiting a few seconds at most (readers
// hold it shared for one session only), writes who holds it into the lock
// file (the loser shows it), and then holds it until stdin closes.
func lockScript(path, owner string) string {
	q := ShellQuote(path)
	return fmt.Sprintf(`command -v flock >/dev/null 2>&1 || { echo "flock(1) (util-linux) is not installed" >&2; exit %d; }
mkdir -p "$(dirname %s)" 2>/dev/null
exec 9>>%s || exit 70
if ! flock -w 5 9; then cat %s 2>/dev/null; exit %d; fi
printf '%%s\n' %s > %s
echo locked
cat >/dev/null
`, lockExitNoFlock, q, q, q, lockExitBusy, ShellQuote(owner), q)
}

// lockPrelude makes the first fact batch wait until the lock file names this
// run (the lock session writes it once flock succeeded).
func lockPrelude(path, nonce string) string {
	tries := int(lockWait / (100 * time.Millisecond))
	return fmt.Sprintf(`i=0; w=
while [ $i -lt %d ]; do
  read -r w _ < %s 2>/dev/null
  [ "$w" = %s ] && break
  i=$((i+1)); sleep 0.1
done
if [ "$w" != %s ]; then echo "per-host lock not acquired" >&2; exit %d; fi
`, tries, ShellQuote(path), nonce, nonce, lockExitBusy)
}

// acquireLockAndGather takes the per-host lock (one long session) and gathers
// probes in a second session that first waits for the lock.
func acquireLockAndGather(ctx context.Context, conn Conn, path string, probes []Probe, agents string) (*hostLock, *Facts, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, nil, err
	}
	nonce := "gridha-" + hex.EncodeToString(b[:])
	local, _ := os.Hostname()
	if local == "" {
		local = "unknown host"
	}
	owner := fmt.Sprintf("%s pid %d on %s since %s", nonce, os.Getpid(), local, time.Now().UTC().Format(time.RFC3339))

	lctx, lcancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	l := &hostLock{stdin: pw, cancel: lcancel, done: make(chan lockResult, 1)}
	gctx, gcancel := context.WithCancel(ctx)
	defer gcancel()
	go func() {
		res, err := conn.Run(lctx, lockScript(path, owner), pr)
		_ = pr.Close()
		l.done <- lockResult{res, err}
		gcancel() // the lock session ended: nothing to wait for
	}()

	facts, _, gerr := gatherBatch(gctx, conn, probes, lockPrelude(path, nonce), agents)
	if gerr == nil {
		return l, facts, nil
	}
	// Not locked (or the batch failed): say why, from the lock session's
	// own result when it ended.
	var lr lockResult
	select {
	case lr = <-l.done:
		l.done <- lr
	case <-time.After(2 * time.Second):
		l.release()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("%s: %w", conn.Host(), gerr)
	}
	l.release()
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	return nil, nil, lockError(conn.Host(), path, lr)
}

// ErrLocked matches (errors.Is) the error of a host refused because another
// gridha run holds its lock.
var ErrLocked = errors.New("host locked by another gridha run")

// LockedError says which host is locked and, when known, by whom.
type LockedError struct {
	Host, Holder, Path string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("host %s is being converged by another gridha run (%s; lock %s)", e.Host, e.Holder, e.Path)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

func lockError(host, path string, lr lockResult) error {
	if lr.err != nil {
		return fmt.Errorf("%s: take per-host lock %s: %w", host, path, lr.err)
	}
	switch lr.res.ExitCode {
	case lockExitBusy:
		holder := strings.TrimSpace(string(lr.res.Stdout))
		if f := strings.SplitN(holder, " ", 2); len(f) == 2 && strings.HasPrefix(f[0], "gridha-") {
			holder = f[1]
		}
		if holder == "" {
			holder = "holder unknown"
		}
		return &LockedError{Host: host, Holder: holder, Path: path}
	case 0:
		return fmt.Errorf("%s: per-host lock session ended early", host)
	default:
		return fmt.Errorf("%s: %w", host, lr.res.Err("take per-host lock "+path))
	}
}

// sharedLockPrelude holds the lock file shared (flock -s) for the rest of
// the session: readers never wait for each other, and a reader never reads
// a host while another run holds the lock exclusively to converge it. The
// lock file's content (the converging run) goes to stderr when busy.
func sharedLockPrelude(path string) string {
	q := ShellQuote(path)
	dir := ShellQuote(pathDir(path))
	return fmt.Sprintf(`command -v flock >/dev/null 2>&1 || { echo "flock(1) (util-linux) is not installed" >&2; exit %d; }
[ -d %s ] || mkdir -p %s 2>/dev/null
exec 9>>%s || exit 70
flock -s -n 9 || { cat %s >&2 2>/dev/null; exit %d; }
`, lockExitNoFlock, dir, dir, q, q, lockExitBusy)
}

func pathDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "/"
}

// gatherShared gathers probes in one session; with lockPath set, under the
// per-host lock held shared (see sharedLockPrelude).
func gatherShared(ctx context.Context, conn Conn, probes []Probe, lockPath, agents string) (*Facts, error) {
	if lockPath == "" {
		f, _, err := gatherBatch(ctx, conn, probes, "", agents)
		return f, err
	}
	f, res, err := gatherBatch(ctx, conn, probes, sharedLockPrelude(lockPath), agents)
	if err != nil && res.ExitCode == lockExitBusy {
		res.Stdout = res.Stderr
		return nil, lockError(conn.Host(), lockPath, lockResult{res: res})
	}
	if err != nil && res.ExitCode == lockExitNoFlock {
		return nil, fmt.Errorf("%s: %w", conn.Host(), res.Err("take per-host lock "+lockPath))
	}
	return f, err
}
