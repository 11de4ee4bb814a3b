// jobload.go: the user's side of the state pool's end-to-end tests and
// benchmark (issue 13): rb-submit keeps submitting jobs to the RB job
// submission stand-in (rb-jobd) through the service IP and records every
// attempt; the checker then looks for each acknowledged job's sandbox
// (through the shared mount of an rb node) and its L&B row (in the
// database). rb-submit stands for the gLite UI's edg-job-submit.

package standins

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gridha/gridha/testbed"
)

// RunSubmitter is rb-submit: it submits jobs <prefix>-<n> (n from 1) to
// rb-jobd at -addr, -workers at a time, each worker waiting -every between
// its attempts, until -n jobs were tried, -for passed, or SIGTERM/SIGINT
// (the attempts in flight finish first). Every attempt is one line appended
// to -log, written once its answer (or failure) is in:
//
//	<start unix ns> <end unix ns> <id> OK <node> <payload>
//	<start unix ns> <end unix ns> <id> FAIL <why>
//
// A job is acknowledged only by an "OK <node>" answer; an ID is never tried
// twice (a failed attempt may still have been stored: it is not counted
// either way). Payloads carry random bytes, so a checker cannot find a job
// that was not written.
//
// Usage: rb-submit -addr HOST:PORT -prefix P -log FILE [-n 100000] [-for 10m] [-every 50ms] [-workers 1] [-timeout 10s]
func RunSubmitter(args []string) error {
	fs := flag.NewFlagSet("rb-submit", flag.ContinueOnError)
	addr := fs.String("addr", "", "rb-jobd's address (the service IP and port)")
	prefix := fs.String("prefix", "", "job ID prefix")
	logPath := fs.String("log", "", "file the attempts are appended to")
	n := fs.Int("n", 100000, "at most this many jobs")
	dur := fs.Duration("for", 10*time.Minute, "at most this long")
	every := fs.Duration("every", 50*time.Millisecond, "pause of each worker between its attempts")
	workers := fs.Int("workers", 1, "attempts in flight at once")
	timeout := fs.Duration("timeout", 10*time.Second, "time one attempt may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || !jobIDRE.MatchString(*prefix+"-1") || *logPath == "" || *n < 1 || *dur <= 0 || *workers < 1 || *workers > 64 {
		return errors.New("usage: rb-submit -addr HOST:PORT -prefix P -log FILE [-n N] [-for D] [-every D] [-workers 1-64] [-timeout D]")
	}
	f, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	var mu sync.Mutex
	next := 0
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= *n || ctx.Err() != nil {
			return 0, false
		}
		next++
		return next, true
	}
	var wg sync.WaitGroup
	var werr error
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := take()
				if !ok {
					return
				}
				id := fmt.Sprintf("%s-%d", *prefix, i)
				line := submitOnce(*addr, id, *timeout)
				mu.Lock()
				// One write per line (O_APPEND): a reader never sees half a line.
				if _, err := f.WriteString(line); err != nil && werr == nil {
					werr = err
				}
				mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-time.After(*every):
				}
			}
		}()
	}
	wg.Wait()
	return werr
}

// submitOnce sends SUBMIT id payload and returns the attempt's log line.
func submitOnce(addr, id string, timeout time.Duration) string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	payload := "sandbox-" + id + "-" + hex.EncodeToString(rnd[:])
	start := time.Now()
	answer, err := request(addr, "SUBMIT "+id+" "+payload, timeout)
	end := time.Now()
	if err == nil && !strings.HasPrefix(answer, "OK ") {
		err = errors.New(answer)
	}
	if err != nil {
		why := strings.Join(strings.Fields(err.Error()), " ")
		return fmt.Sprintf("%d %d %s FAIL %s\n", start.UnixNano(), end.UnixNano(), id, why)
	}
	return fmt.Sprintf("%d %d %s OK %s %s\n", start.UnixNano(), end.UnixNano(), id, strings.TrimSpace(strings.TrimPrefix(answer, "OK ")), payload)
}

// request sends one line to rb-jobd and returns its one-line answer.
func request(addr, line string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, min(timeout, 2*time.Second))
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintln(c, line); err != nil {
		return "", err
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(answer), nil
}

// Attempt is one line of rb-submit's log.
type Attempt struct {
	Start, End time.Time
	ID         string
	OK         bool   // acknowledged: "OK <node>"
	Node       string // the rb node that acknowledged it
	Payload    string // what the sandbox file and the L&B row must hold
	Err        string // why it failed
}

// Latency is how long the attempt took.
func (a Attempt) Latency() time.Duration { return a.End.Sub(a.Start) }

// ParseSubmitLog reads rb-submit's log, sorted by the attempts' end.
func ParseSubmitLog(b []byte) ([]Attempt, error) {
	var out []Attempt
	for i, l := range strings.Split(string(b), "\n") {
		if l == "" {
			continue
		}
		f := strings.SplitN(l, " ", 5)
		if len(f) < 4 {
			return nil, fmt.Errorf("submit log line %d: %q: too few fields", i+1, l)
		}
		s, err1 := strconv.ParseInt(f[0], 10, 64)
		e, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("submit log line %d: %q: bad times", i+1, l)
		}
		a := Attempt{Start: time.Unix(0, s), End: time.Unix(0, e), ID: f[2]}
		switch f[3] {
		case "OK":
			rest := strings.Fields(strings.Join(f[4:], " "))
			if len(rest) != 2 {
				return nil, fmt.Errorf("submit log line %d: %q: want OK <node> <payload>", i+1, l)
			}
			a.OK, a.Node, a.Payload = true, rest[0], rest[1]
		case "FAIL":
			a.Err = strings.Join(f[4:], " ")
		default:
			return nil, fmt.Errorf("submit log line %d: %q: want OK or FAIL", i+1, l)
		}
		out = append(out, a)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].End.Before(out[j].End) })
	return out, nil
}

// Acked are the acknowledged attempts of as.
func Acked(as []Attempt) []Attempt {
	var out []Attempt
	for _, a := range as {
		if a.OK {
			out = append(out, a)
		}
	}
	return out
}

// FirstAckAfter is the first acknowledgement of an attempt started after t
// (an answer to a request sent after the fault): when the service answered
// again.
func FirstAckAfter(as []Attempt, t time.Time) (Attempt, bool) {
	for _, a := range as {
		if a.OK && a.Start.After(t) {
			return a, true
		}
	}
	return Attempt{}, false
}

// CheckJobs compares the acknowledged jobs with what was found: sandbox
// file contents and L&B payloads by job ID. It returns one line per job
// that is missing or differs, sorted.
func CheckJobs(acked []Attempt, files, rows map[string]string) []string {
	var out []string
	for _, a := range acked {
		f, fok := files[a.ID]
		r, rok := rows[a.ID]
		switch {
		case !fok:
			out = append(out, fmt.Sprintf("%s (acknowledged by %s): sandbox file missing", a.ID, a.Node))
		case f != a.Payload:
			out = append(out, fmt.Sprintf("%s (acknowledged by %s): sandbox holds %q, want %q", a.ID, a.Node, f, a.Payload))
		}
		switch {
		case !rok:
			out = append(out, fmt.Sprintf("%s (acknowledged by %s): L&B row missing", a.ID, a.Node))
		case r != a.Payload:
			out = append(out, fmt.Sprintf("%s (acknowledged by %s): L&B row holds %q, want %q", a.ID, a.Node, r, a.Payload))
		}
	}
	sort.Strings(out)
	return out
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,40}$`)

// ReadSandboxes reads, on h, every file of dir whose name starts with
// prefix (the sandboxes rb-jobd wrote, seen through h's shared mount): job
// ID -> content. One process for all files; an empty file reads as absent.
func ReadSandboxes(ctx context.Context, h *testbed.Host, dir, prefix string) (map[string]string, error) {
	if !prefixRE.MatchString(prefix) || strings.ContainsAny(dir, "'\n") {
		return nil, fmt.Errorf("%s: read sandboxes: bad folder %q or prefix %q", h.Name, dir, prefix)
	}
	out, err := h.Sh(ctx, "cd '"+dir+"' && find . -maxdepth 1 -type f -name '"+prefix+"*' -exec grep -H '' {} +; true")
	if err != nil {
		return nil, fmt.Errorf("%s: read sandboxes in %s: %w", h.Name, dir, err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		name, content, ok := strings.Cut(strings.TrimPrefix(l, "./"), ":")
		if ok && name != "" {
			m[name] += content
		}
	}
	return m, nil
}

// ReadLBRows reads, on h's MariaDB (root over its socket), the L&B rows of
// the jobs whose ID starts with prefix: job ID -> payload. On a Galera
// member the read waits until the member applied every write the cluster
// committed before it (wsrep_sync_wait), so a row is found on every member
// or is missing.
func ReadLBRows(ctx context.Context, h *testbed.Host, db, prefix string) (map[string]string, error) {
	if !prefixRE.MatchString(prefix) || !regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`).MatchString(db) {
		return nil, fmt.Errorf("%s: read L&B rows: bad database %q or prefix %q", h.Name, db, prefix)
	}
	out, err := h.MySQL(ctx, "SET SESSION wsrep_sync_wait = 1; SELECT id, payload FROM "+db+".jobs WHERE id LIKE '"+prefix+"%'")
	if err != nil {
		return nil, fmt.Errorf("%s: read L&B rows of %s: %w: %s", h.Name, db, err, strings.TrimSpace(out))
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if id, p, ok := strings.Cut(l, "\t"); ok {
			m[id] = p
		}
	}
	return m, nil
}
