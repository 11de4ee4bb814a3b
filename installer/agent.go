package installer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The fact agent: `gridha facts` on a host where gridha is installed (rb
// nodes, DNS updaters) answers the typed probes of one fact batch in one
// process — lstat, readlink, read, SHA-256, /proc/mounts and the init
// system's view of a service — instead of the stat, readlink, cat,
// sha256sum and subshells of the shell script (a verify of an rb node
// spent most of its host CPU starting those). Its reply is byte for byte
// what the shell script prints (the same frames, the same parsers), so the
// gatherer cannot tell the two apart except by the agent's "A" line. The
// gatherer runs the agent and, in the same session, falls back to the
// shell script when the agent is missing, older or newer (another
// protocol), or cannot answer exactly (see agentUnsure): an agent never
// guesses.

// AgentProtocol is the version of the request and reply of `gridha facts`.
// Change it whenever either changes (or a typed fact's script changes what
// it prints): a host's gridha of another version then refuses, and the
// shell script answers.
//
// 2: the shares probe (SharesProbe).
const AgentProtocol = 2

// agentPaths is where the gatherer looks for the agent: where the rb-node
// and DNS updater roles install gridha (inventory.GridhaBinary), then where
// the packages put it (roles.PackageBinary).
const agentPaths = "/usr/local/sbin/gridha /usr/sbin/gridha"

// Exit codes of the agent. Anything but 0 makes the gatherer's script run
// the shell fallback; the agent writes nothing before it knows it answers.
const (
	agentExitProtocol = 3 // another protocol, or a request it cannot read
	agentExitUnsure   = 4 // a fact it cannot reproduce exactly in-process
)

// agentKind says which probe kinds other than files the agent answers.
func agentKind(k factKind) bool {
	return k == factFileHash || k == factService || k == factMounts || k == factUser || k == factShares
}

var agentKindNames = map[factKind]string{factFileHash: "hash", factService: "service", factMounts: "mounts", factUser: "user", factShares: "shares"}

// agentWorth says whether the agent costs the host less than the shell
// script would for req. Starting gridha (a 20 MB Go binary: runtime and
// package initialisation) costs about what five or six short programs do;
// the script's cost is counted here in processes: stat and cat for all
// files, a subshell and stat for each hash, a subshell and a cd+exec
// subshell for each service (the init script runs either way), a
// subshell, getent, id, stat and base64 for each user, a subshell for the
// mount table.
func agentWorth(req agentRequest) bool {
	cost := 0
	if len(req.paths) > 0 {
		cost += 2
	}
	for _, p := range req.probes {
		switch p.kind {
		case factFileHash:
			cost += 3
		case factService:
			cost += 2
		case factUser:
			cost += 6
		case factMounts:
			cost++
		case factShares:
			cost += 3 // timeout, sh, find
		}
	}
	return cost >= agentMinCost
}

// agentMinCost is the processes the shell script must cost before the
// agent is asked (see agentWorth).
const agentMinCost = 8

// agentRequest is one batch's typed probes: the file paths (meta: without
// content) in filesScript's order, and the other typed probes by their
// index in the batch's probes (the frame number).
type agentRequest struct {
	marker string
	paths  []string
	meta   map[string]bool
	probes []agentProbe
}

type agentProbe struct {
	index int
	kind  factKind
	arg   string
}

// renderAgentRequest writes the request the agent reads on stdin: a header
// line with the protocol and the batch marker, one line per path ("P
// 0|1 QUOTED", 1 for meta), one per probe ("B INDEX KIND QUOTED"), and "."
// (a cut-off request is refused). Arguments are Go-quoted: one line each,
// whatever bytes a path holds.
func renderAgentRequest(r agentRequest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gridha-facts %d %s\n", AgentProtocol, r.marker)
	for _, p := range r.paths {
		m := 0
		if r.meta[p] {
			m = 1
		}
		fmt.Fprintf(&b, "P %d %s\n", m, strconv.Quote(p))
	}
	for _, p := range r.probes {
		fmt.Fprintf(&b, "B %d %s %s\n", p.index, agentKindNames[p.kind], strconv.Quote(p.arg))
	}
	b.WriteString(".\n")
	return b.String()
}

// parseAgentRequest reads what renderAgentRequest wrote.
func parseAgentRequest(in []byte) (agentRequest, error) {
	var r agentRequest
	lines := strings.Split(string(in), "\n")
	if len(lines) < 2 {
		return r, errors.New("facts request: cut off")
	}
	h := strings.Split(lines[0], " ")
	if len(h) != 3 || h[0] != "gridha-facts" {
		return r, fmt.Errorf("facts request: bad header %q", lines[0])
	}
	if h[1] != strconv.Itoa(AgentProtocol) {
		return r, fmt.Errorf("facts request: protocol %q, this gridha speaks %d", h[1], AgentProtocol)
	}
	if !validMarker(h[2]) {
		return r, fmt.Errorf("facts request: bad marker %q", h[2])
	}
	r.marker = h[2]
	seen := map[string]bool{}
	indexes := map[int]bool{}
	for n, l := range lines[1:] {
		if l == "." {
			if rest := lines[n+2:]; len(rest) != 1 || rest[0] != "" {
				return r, errors.New("facts request: data after the end")
			}
			return r, nil
		}
		// The quoted argument is the last field: it may hold blanks.
		nf := 4
		if strings.HasPrefix(l, "P ") {
			nf = 3
		}
		f := strings.SplitN(l, " ", nf)
		switch {
		case len(f) == 3 && f[0] == "P" && (f[1] == "0" || f[1] == "1"):
			p, err := strconv.Unquote(f[2])
			if err != nil || p == "" || strings.ContainsAny(p, "\n\r") || seen[p] {
				return r, fmt.Errorf("facts request: line %d: bad path %s", n+2, f[2])
			}
			seen[p] = true
			r.paths = append(r.paths, p)
			if f[1] == "1" {
				if r.meta == nil {
					r.meta = map[string]bool{}
				}
				r.meta[p] = true
			}
		case len(f) == 4 && f[0] == "B":
			i, err := strconv.Atoi(f[1])
			if err != nil || i < 0 || i > 1<<20 || strconv.Itoa(i) != f[1] || indexes[i] {
				return r, fmt.Errorf("facts request: line %d: bad index %q", n+2, f[1])
			}
			indexes[i] = true
			var kind factKind
			for k, name := range agentKindNames {
				if name == f[2] {
					kind = k
				}
			}
			if kind == factShell {
				return r, fmt.Errorf("facts request: line %d: unknown kind %q", n+2, f[2])
			}
			a, err := strconv.Unquote(f[3])
			if err != nil || (kind != factMounts && a == "") {
				return r, fmt.Errorf("facts request: line %d: bad argument %s", n+2, f[3])
			}
			r.probes = append(r.probes, agentProbe{index: i, kind: kind, arg: a})
		default:
			return r, fmt.Errorf("facts request: line %d: %q", n+2, l)
		}
	}
	return r, errors.New("facts request: cut off (no end line)")
}

// validMarker: probeMarker and hex digits, as newNonce makes them (the
// marker goes into the reply's frame lines as it is).
func validMarker(m string) bool {
	rest, ok := strings.CutPrefix(m, probeMarker)
	if !ok || rest == "" || len(rest) > 64 {
		return false
	}
	for _, c := range rest {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// errAgentUnsure is a fact the agent cannot give exactly as the shell
// script would (a user or group name NSS might know beyond /etc/passwd).
var errAgentUnsure = errors.New("cannot answer exactly in-process")

// AgentError is the agent's refusal: Code is its exit code.
type AgentError struct {
	Code int
	Err  error
}

func (e *AgentError) Error() string { return e.Err.Error() }
func (e *AgentError) Unwrap() error { return e.Err }

// ServeFacts is `gridha facts --protocol N`: it reads one request from in
// and writes the reply to out, all at once at the end (a refusal writes
// nothing, so that the shell fallback's output is the only one).
func ServeFacts(ctx context.Context, protocol int, in io.Reader, out io.Writer) error {
	if protocol != AgentProtocol {
		return &AgentError{agentExitProtocol, fmt.Errorf("facts: protocol %d, this gridha speaks %d", protocol, AgentProtocol)}
	}
	raw, err := io.ReadAll(io.LimitReader(in, 64<<20))
	if err != nil {
		return &AgentError{agentExitProtocol, fmt.Errorf("facts: read request: %w", err)}
	}
	req, err := parseAgentRequest(raw)
	if err != nil {
		return &AgentError{agentExitProtocol, err}
	}
	reply, err := answerAgent(ctx, req, hostSystem{})
	if err != nil {
		if errors.Is(err, errAgentUnsure) {
			return &AgentError{agentExitUnsure, err}
		}
		return &AgentError{1, err}
	}
	_, err = out.Write(reply)
	return err
}

// hostSystem is where the agent reads the host's own configuration: the
// real files. Tests give other ones.
type hostSystem struct {
	passwd, group, nsswitch, mounts string
	sharesTimeout                   time.Duration // SharesTimeout when 0
	sharesHang                      chan struct{} // the shares' walk waits for it: a hung mount
}

func (s hostSystem) path(p, def string) string {
	if p != "" {
		return p
	}
	return def
}

// answerAgent computes the reply to req.
func answerAgent(ctx context.Context, req agentRequest, sys hostSystem) ([]byte, error) {
	var b bytes.Buffer
	m := req.marker
	fmt.Fprintf(&b, "%s A %d\n", m, AgentProtocol)
	names := &idNames{sys: sys}
	if len(req.paths) > 0 {
		if err := agentFiles(&b, req.paths, req.meta, m, names); err != nil {
			return nil, err
		}
	}
	for _, p := range req.probes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var out bytes.Buffer
		rc := 0
		var err error
		switch p.kind {
		case factFileHash:
			rc, err = agentHash(&out, p.arg, names)
		case factService:
			agentService(ctx, &out, p.arg, sys)
		case factMounts:
			rc = agentMounts(&out, sys.path(sys.mounts, "/proc/mounts"))
		case factUser:
			err = agentUser(&out, p.arg, names)
		case factShares:
			err = agentShares(&out, p.arg, names, sys)
		}
		if err != nil {
			return nil, err
		}
		b.Write(frameBytes(m, p.index, out.Bytes(), rc))
	}
	return b.Bytes(), nil
}

// frameBytes is what batchScript's frame lines around one probe print.
func frameBytes(m string, i int, out []byte, rc int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s B %d\n", m, i)
	b.Write(out)
	fmt.Fprintf(&b, "\n%s E %d %d\n", m, i, rc)
	return b.Bytes()
}

// statFields is stat -c '%F|%a|%u|%g|%U|%G|%s' of st (LC_ALL=C).
func statFields(st *syscall.Stat_t, names *idNames) (string, error) {
	u, err := names.user(st.Uid)
	if err != nil {
		return "", err
	}
	g, err := names.group(st.Gid)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s|%o|%d|%d|%s|%s|%d", statKind(st), st.Mode&0o7777, st.Uid, st.Gid, u, g, st.Size), nil
}

// statKind is stat's %F (coreutils' file_type) in the C locale.
func statKind(st *syscall.Stat_t) string {
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		if st.Size == 0 {
			return "regular empty file"
		}
		return "regular file"
	case syscall.S_IFDIR:
		return "directory"
	case syscall.S_IFLNK:
		return "symbolic link"
	case syscall.S_IFBLK:
		return "block special file"
	case syscall.S_IFCHR:
		return "character special file"
	case syscall.S_IFIFO:
		return "fifo"
	case syscall.S_IFSOCK:
		return "socket"
	}
	return "weird file"
}

func isReg(st *syscall.Stat_t) bool  { return st.Mode&syscall.S_IFMT == syscall.S_IFREG }
func isLink(st *syscall.Stat_t) bool { return st.Mode&syscall.S_IFMT == syscall.S_IFLNK }

// agentFiles writes what filesScript prints for paths.
func agentFiles(b *bytes.Buffer, paths []string, meta map[string]bool, m string, names *idNames) error {
	type entry struct {
		path string
		st   syscall.Stat_t
	}
	var found []entry
	var lines []string
	for _, p := range paths {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			continue // stat's error went to /dev/null
		}
		f, err := statFields(&st, names)
		if err != nil {
			return err
		}
		found = append(found, entry{p, st})
		lines = append(lines, p+"|"+f)
	}
	fmt.Fprintf(b, "%s S\n%s\n%s L\n", m, strings.Join(lines, "\n"), m)
	for _, e := range found {
		if isLink(&e.st) {
			t, err := os.Readlink(e.path)
			if err != nil {
				continue // readlink's error: the parser sees one target too few
			}
			b.WriteString(t)
			b.WriteByte(0)
		}
	}
	fmt.Fprintf(b, "\n%s C\n", m)
	for _, e := range found {
		if !isReg(&e.st) || meta[e.path] || e.st.Size > MaxProbedContent {
			continue
		}
		// cat passes what the file holds now; a file that changed size
		// since the stat makes the parser fall back to one probe per path,
		// so more than size+1 bytes need not be read.
		f, err := os.Open(e.path)
		if err != nil {
			continue
		}
		_, _ = io.Copy(b, io.LimitReader(f, e.st.Size+1))
		f.Close()
	}
	fmt.Fprintf(b, "\n%s E\n", m)
	return nil
}

// agentHash writes what fileHashScript prints for p; rc is the script's
// exit code.
func agentHash(out *bytes.Buffer, p string, names *idNames) (int, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		out.WriteString("N\n")
		return 0, nil
	}
	f, err := statFields(&st, names)
	if err != nil {
		return 0, err
	}
	k := fmt.Sprintf("%d %d %s %s", st.Ino, st.Size, statTime(st.Mtim), statTime(st.Ctim))
	fmt.Fprintf(out, "S %s\nK %s\n", f, k)
	if isLink(&st) {
		t, _ := os.Readlink(p)
		fmt.Fprintf(out, "L %s\n", t)
	}
	if !isReg(&st) {
		return 0, nil
	}
	h := ""
	if HashCacheable(p) {
		h = cachedHash(HashCache, p, k)
	}
	if h == "" {
		fh, err := os.Open(p)
		if err != nil {
			return 1, nil
		}
		sum := sha256.New()
		_, err = io.Copy(sum, fh)
		fh.Close()
		if err != nil {
			return 1, nil
		}
		h = hex.EncodeToString(sum.Sum(nil))
	}
	fmt.Fprintf(out, "H %s\n", h)
	return 0, nil
}

// statTime is stat's %.9Y / %.9Z.
func statTime(t syscall.Timespec) string {
	if t.Sec < 0 {
		// Not the shell's rendering: no cache line can match, the hash
		// is computed.
		return "-"
	}
	return fmt.Sprintf("%d.%09d", t.Sec, t.Nsec)
}

// cachedHash is fileHashScript's loop over the hash cache: `while read -r
// s i z m t q` over its complete lines (read fails on a last line without
// newline), the last line for p whose "i z m t" is k.
func cachedHash(cache, p, k string) string {
	if fi, err := os.Stat(cache); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	data, err := os.ReadFile(cache)
	if err != nil {
		return ""
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	} else {
		return ""
	}
	h := ""
	for _, line := range strings.Split(string(data), "\n") {
		v := readFields(line, 6)
		if v[5] == p && v[1]+" "+v[2]+" "+v[3]+" "+v[4] == k {
			h = v[0]
		}
	}
	return h
}

// readFields splits line as sh's `read -r` does into n variables with the
// default IFS: runs of spaces and tabs separate, the last variable takes
// the rest without its leading and trailing blanks.
func readFields(line string, n int) []string {
	v := make([]string, n)
	isBlank := func(c byte) bool { return c == ' ' || c == '\t' }
	i := 0
	for k := 0; k < n; k++ {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		if k == n-1 {
			v[k] = strings.TrimRight(line[i:], " \t")
			break
		}
		j := i
		for j < len(line) && !isBlank(line[j]) {
			j++
		}
		v[k] = line[i:j]
		i = j
	}
	return v
}

// agentUser writes what userScript prints for account n: getent passwd
// and id -gn answered from /etc/passwd and /etc/group under the rules of
// idNames. What the shell would print differently (dash's echo turns
// backslashes into escapes; getent looks a numeric name up as a uid) is
// left to the shell.
func agentUser(out *bytes.Buffer, n string, names *idNames) error {
	if n == "" || n[0] >= '0' && n[0] <= '9' || strings.ContainsAny(n, "\\\n") {
		return fmt.Errorf("%w: user name %q", errAgentUnsure, n)
	}
	if err := names.load(); err != nil {
		return err
	}
	e, ok := names.entries[n]
	if !ok {
		if names.onlyUsers {
			return nil // getent failed: the script printed nothing
		}
		return fmt.Errorf("%w: user %s is not in /etc/passwd", errAgentUnsure, n)
	}
	f := strings.Split(e, ":")
	gid, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil || f[3] != strconv.FormatUint(gid, 10) {
		return fmt.Errorf("%w: user %s: gid %q", errAgentUnsure, n, f[3])
	}
	g, ok := names.groups[uint32(gid)]
	if !ok {
		if !names.onlyGrps {
			return fmt.Errorf("%w: gid %d is not in /etc/group", errAgentUnsure, gid)
		}
		g = f[3] // id -gn prints the number (and fails)
	}
	h := f[5]
	if strings.ContainsRune(e+g, '\\') {
		return fmt.Errorf("%w: user %s: a backslash for echo", errAgentUnsure, n)
	}
	fmt.Fprintf(out, "pw=%s\ngid=%s\nhome=%s\n", e, g, h)
	if h == "" {
		return nil
	}
	for _, p := range []string{h, h + "/.ssh", h + "/.ssh/authorized_keys"} {
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) != nil {
			continue
		}
		u, err := names.user(st.Uid)
		if err != nil {
			return err
		}
		gr, err := names.group(st.Gid)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s|%s|%o|%s|%s\n", p, statKind(&st), st.Mode&0o7777, u, gr)
	}
	ak := h + "/.ssh/authorized_keys"
	if fi, err := os.Stat(ak); err == nil && fi.Mode().IsRegular() {
		out.WriteString("ak=")
		if data, err := os.ReadFile(ak); err == nil {
			out.WriteString(base64.StdEncoding.EncodeToString(data))
		}
		out.WriteString("\n")
	}
	return nil
}

// agentMounts writes what mountsScript prints: /proc/mounts up to its last
// newline (sh's read drops a last line without one).
func agentMounts(out *bytes.Buffer, path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 2 // sh's exit for a redirection that failed
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		out.Write(data[:i+1])
	}
	return 0
}

// agentService writes what ServiceStateScript prints for service n. The
// init script's status (or systemctl's) is the one program it runs.
func agentService(ctx context.Context, out *bytes.Buffer, n string, sys hostSystem) {
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		out.WriteString("init=systemd\n")
		show, _ := runQuiet(ctx, "", "systemctl", "show", "-p", "LoadState", n+".service")
		for _, l := range strings.SplitAfter(string(show), "\n") {
			if rest, ok := strings.CutPrefix(l, "LoadState="); ok { // sed 's/^LoadState=/load=/'
				l = "load=" + rest
			}
			out.WriteString(l)
		}
		en, _ := runQuiet(ctx, "", "systemctl", "is-enabled", n+".service")
		fmt.Fprintf(out, "boot=%s\n", strings.TrimRight(string(en), "\n"))
		_, rc := runQuiet(ctx, "", "systemctl", "is-active", "--quiet", n+".service")
		fmt.Fprintf(out, "status=%d\n", rc)
		return
	}
	if _, err := exec.LookPath("chkconfig"); err == nil {
		out.WriteString("init=sysv-redhat\n")
	} else {
		out.WriteString("init=sysv-debian\n")
	}
	script := "/etc/init.d/" + n
	if fi, err := os.Stat(script); err != nil || !fi.Mode().IsRegular() {
		out.WriteString("load=not-found\n")
		return
	}
	out.WriteString("load=loaded\n")
	q := globQuote(n)
	for _, pat := range []string{"/etc/rc[0-6S].d/[SK][0-9][0-9]" + q, "/etc/rc.d/rc[0-6].d/[SK][0-9][0-9]" + q} {
		ms, _ := filepath.Glob(pat)
		for _, f := range ms {
			if _, err := os.Lstat(f); err == nil {
				fmt.Fprintf(out, "link=%s\n", f)
			}
		}
	}
	var rc int
	if syscall.Access(script, 1) == nil { // X_OK, as test -x
		_, rc = runQuiet(ctx, "/", script, "status")
	} else {
		_, rc = runQuiet(ctx, "", "service", n, "status")
	}
	fmt.Fprintf(out, "status=%d\n", rc)
}

// globQuote escapes the pattern characters of s (the shell's "$n" inside a
// glob word is literal).
func globQuote(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// agentEnv is what the gatherer's script puts in the agent's environment
// alone (see gatherScript): a short-lived, single-threaded Go process
// needs one P and no garbage collection below 64 MiB of heap. The programs
// the agent runs (init scripts' status) get the session's environment, as
// the shell fallback runs them (withoutAgentEnv).
var agentEnv = []string{"GOMAXPROCS=1", "GOGC=off", "GOMEMLIMIT=64MiB"}

// withoutAgentEnv is env without agentEnv's variables.
func withoutAgentEnv(env []string) []string {
	out := env[:0:0]
next:
	for _, kv := range env {
		for _, a := range agentEnv {
			if strings.HasPrefix(kv, a[:strings.IndexByte(a, '=')+1]) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// runQuiet runs a program as the probe's shell would (stdin /dev/null,
// stderr dropped, in dir when set) and returns its stdout and the exit
// status sh would give: 127 not found, 126 not executable, 128+N killed by
// signal N. A script without #! line runs with /bin/sh, as sh's exec does.
func runQuiet(ctx context.Context, dir string, prog string, args ...string) ([]byte, int) {
	path := prog
	if !strings.Contains(prog, "/") {
		p, err := exec.LookPath(prog)
		if err != nil {
			return nil, 127
		}
		path = p
	}
	var buf bytes.Buffer
	run := func(name string, argv ...string) error {
		c := exec.CommandContext(ctx, name, argv...)
		c.Dir = dir
		c.Env = withoutAgentEnv(os.Environ())
		c.Stdout = &buf
		return c.Run()
	}
	err := run(path, args...)
	if errors.Is(err, syscall.ENOEXEC) {
		err = run("/bin/sh", append([]string{path}, args...)...)
	}
	if err == nil {
		return buf.Bytes(), 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return buf.Bytes(), 128 + int(ws.Signal())
		}
		return buf.Bytes(), ee.ExitCode()
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 127
	}
	return nil, 126
}

// idNames resolves uids and gids to names as stat's %U and %G do
// (getpwuid, getgrgid) — from /etc/passwd and /etc/group only, and only
// when NSS asks those files first: a name found there is NSS's answer;
// one not found is "UNKNOWN" when files are NSS's only source, and
// errAgentUnsure otherwise (LDAP or sssd might know it).
type idNames struct {
	sys                 hostSystem
	loaded              bool
	err                 error
	users, groups       map[uint32]string
	entries             map[string]string // passwd lines by name, first wins
	onlyUsers, onlyGrps bool
}

func (n *idNames) load() error {
	if n.loaded {
		return n.err
	}
	n.loaded = true
	n.err = func() error {
		ns, err := os.ReadFile(n.sys.path(n.sys.nsswitch, "/etc/nsswitch.conf"))
		if err != nil {
			return fmt.Errorf("%w: %v", errAgentUnsure, err)
		}
		if n.onlyUsers, err = nssFilesFirst(ns, "passwd"); err != nil {
			return err
		}
		if n.onlyGrps, err = nssFilesFirst(ns, "group"); err != nil {
			return err
		}
		if n.users, n.entries, err = readIDFile(n.sys.path(n.sys.passwd, "/etc/passwd"), 7); err != nil {
			return err
		}
		n.groups, _, err = readIDFile(n.sys.path(n.sys.group, "/etc/group"), 4)
		return err
	}()
	return n.err
}

func (n *idNames) user(uid uint32) (string, error) {
	return n.name(&n.users, &n.onlyUsers, "uid", uid, "/etc/passwd")
}

func (n *idNames) group(gid uint32) (string, error) {
	return n.name(&n.groups, &n.onlyGrps, "gid", gid, "/etc/group")
}

// name is id's name in *names (filled, with *only, by load):
// "UNKNOWN" when files are NSS's only source, errAgentUnsure when another
// source might know it.
func (n *idNames) name(names *map[uint32]string, only *bool, kind string, id uint32, file string) (string, error) {
	if err := n.load(); err != nil {
		return "", err
	}
	if s, ok := (*names)[id]; ok {
		return s, nil
	}
	if *only {
		return "UNKNOWN", nil
	}
	return "", fmt.Errorf("%w: %s %d is not in %s", errAgentUnsure, kind, id, file)
}

// findName is find's %u (group false) or %g of id: its name, or the
// number when NSS has no other source than files to know it by.
func (n *idNames) findName(id uint32, group bool) (string, error) {
	if err := n.load(); err != nil {
		return "", err
	}
	names, only, kind, file := n.users, n.onlyUsers, "uid", "/etc/passwd"
	if group {
		names, only, kind, file = n.groups, n.onlyGrps, "gid", "/etc/group"
	}
	if s, ok := names[id]; ok {
		return s, nil
	}
	if only {
		return strconv.FormatUint(uint64(id), 10), nil
	}
	return "", fmt.Errorf("%w: %s %d is not in %s", errAgentUnsure, kind, id, file)
}

// nssFilesFirst reads db's line of nsswitch.conf: its first source must
// be files (or compat, the same without +/- lines); only says whether it is
// the only one. Actions ([NOTFOUND=return]) and anything unusual are
// refused rather than interpreted.
func nssFilesFirst(conf []byte, db string) (only bool, err error) {
	var found []string
	n := 0
	for _, l := range strings.Split(string(conf), "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok || strings.TrimSpace(k) != db {
			continue
		}
		n++
		found = strings.Fields(v)
	}
	if n != 1 || len(found) == 0 || strings.ContainsAny(strings.Join(found, " "), "[]") {
		return false, fmt.Errorf("%w: nsswitch.conf %s: %q", errAgentUnsure, db, found)
	}
	if found[0] != "files" && found[0] != "compat" {
		return false, fmt.Errorf("%w: nsswitch.conf %s starts with %s", errAgentUnsure, db, found[0])
	}
	return len(found) == 1, nil
}

// readIDFile maps the ids of /etc/passwd (fields 7, id in the third) or
// /etc/group (4) to names, first line wins as in NSS's files module, and
// names to their lines. A line it would have to interpret (blanks, +/-
// entries, a bad id) is refused.
func readIDFile(path string, fields int) (map[uint32]string, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errAgentUnsure, err)
	}
	defer f.Close()
	m := map[uint32]string{}
	lines := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		v := strings.Split(l, ":")
		ok := len(v) == fields && v[0] != "" && v[0][0] != '+' && v[0][0] != '-' && !strings.ContainsAny(v[0], " \t\r\x00")
		var id uint64
		if ok {
			id, err = strconv.ParseUint(v[2], 10, 32)
			ok = err == nil && v[2] == strconv.FormatUint(id, 10)
		}
		if !ok {
			return nil, nil, fmt.Errorf("%w: %s: line %q", errAgentUnsure, path, l)
		}
		if _, dup := m[uint32(id)]; !dup {
			m[uint32(id)] = v[0]
		}
		if _, dup := lines[v[0]]; !dup {
			lines[v[0]] = l
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", errAgentUnsure, path, err)
	}
	return m, lines, nil
}
