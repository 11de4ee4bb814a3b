package installer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"sort"
	"strconv"
	"strings"
)

// Probe is one fact a step needs, declared by type: FileProbe (a file's
// metadata and small content), FileHashProbe (metadata and SHA-256),
// ServiceProbe, UserProbe, MountsProbe; or, for anything else, a generic
// shell probe, Probe{Key: ..., Script: ...}, whose stdout and exit code are
// the fact (Facts.Get). The probes of all steps of a host are gathered in
// one session: audit cost does not grow in sessions with the number of
// steps. The gatherer batches typed probes by type (all files in one stat)
// and parses each answer once into a typed value that steps read with
// Facts.File, Facts.Service, ...
//
// Two probes of one type with the same Key are the same fact: the first
// one wins. A probe must change nothing on the host and must hold no
// secret.
type Probe struct {
	Key    string
	Script string
	kind   factKind
	arg    string // the path or name a typed probe is about
}

// factKind is the type of a Probe.
type factKind uint8

const (
	factShell factKind = iota
	factFile
	factFileMeta
	factFileHash
	factService
	factUser
	factMounts
	factShares
)

// id is what makes two probes the same fact.
func (p Probe) id() string { return string(rune('a'+p.kind)) + p.Key }

// script is the shell that answers p on its own (the gatherer answers file
// probes together instead, see gather.go).
func (p Probe) script() string {
	switch p.kind {
	case factFile:
		return fileScript(p.arg)
	case factFileMeta:
		return fileMetaScript(p.arg)
	case factFileHash:
		return fileHashScript(p.arg)
	case factService:
		return "n=" + ShellQuote(p.arg) + "\n" + ServiceStateScript
	case factUser:
		return userScript(p.arg)
	case factMounts:
		return mountsScript
	case factShares:
		return sharesScript(p.arg)
	}
	return p.Script
}

// ServiceProbe asks for the state of service name (Facts.Service).
func ServiceProbe(name string) Probe {
	return Probe{kind: factService, arg: name, Key: "service:" + name}
}

// UserProbe asks for account name: passwd entry, primary group, home,
// ~/.ssh and authorized_keys (Facts.User).
func UserProbe(name string) Probe {
	return Probe{kind: factUser, arg: name, Key: "user:" + name}
}

// MountsProbe asks for the mount table, /proc/mounts (Facts.Mounts).
func MountsProbe() Probe { return Probe{kind: factMounts, Key: "proc-mounts"} }

// ProbeResult is the captured output of one generic shell probe.
type ProbeResult struct {
	Stdout   []byte
	ExitCode int
}

// Facts are what the probes of one host found, as typed values.
type Facts struct {
	results  map[string]ProbeResult // generic shell probes, by key
	files    map[string]FileFact
	hashes   map[string]FileFact
	metas    map[string]FileFact
	services map[string]ServiceState
	users    map[string]UserState
	mounts   []MountEntry
	mountsOK bool
	errs     map[string]error // typed answers that did not parse, by probe id
	agent    bool             // the host's gridha answered the typed probes
}

// Agent says whether the host's own gridha (`gridha facts`) answered the
// typed probes, rather than the shell script.
func (f *Facts) Agent() bool { return f != nil && f.agent }

// NewFacts builds Facts from the results of generic shell probes (tests
// add typed facts with SetFile, SetService, ...).
func NewFacts(results map[string]ProbeResult) *Facts {
	if results == nil {
		results = map[string]ProbeResult{}
	}
	return &Facts{results: results, files: map[string]FileFact{}, hashes: map[string]FileFact{}, metas: map[string]FileFact{},
		services: map[string]ServiceState{}, users: map[string]UserState{}, errs: map[string]error{}}
}

// record parses the answer to p, once, into its typed value.
func (f *Facts) record(p Probe, r ProbeResult) {
	switch p.kind {
	case factFile, factFileMeta, factFileHash:
		ff, err := ParseFileFact(p.arg, r.Stdout)
		if err != nil {
			f.errs[p.id()] = err
			return
		}
		delete(f.errs, p.id())
		f.filesOf(p.kind)[p.arg] = ff
	case factService:
		f.services[p.arg] = ParseServiceState(string(r.Stdout))
	case factUser:
		f.users[p.arg] = ParseUserState(string(r.Stdout))
	case factMounts:
		f.SetMounts(ParseMounts(string(r.Stdout)))
	default:
		// Generic shell probes, and the shares probe (its output is
		// what steps read, as the script printed it).
		f.results[p.Key] = r
	}
}

// Get returns the result of the generic shell probe with key.
func (f *Facts) Get(key string) (ProbeResult, bool) {
	if f == nil {
		return ProbeResult{}, false
	}
	r, ok := f.results[key]
	return r, ok
}

// File returns what FileProbe(path) found.
func (f *Facts) File(path string) (FileFact, error) {
	return f.file(f.filesOf(factFile), FileProbe(path))
}

// FileHash returns what FileHashProbe(path) found (SHA256 set for a
// regular file).
func (f *Facts) FileHash(path string) (FileFact, error) {
	return f.file(f.filesOf(factFileHash), FileHashProbe(path))
}

// FileMeta returns what FileMetaProbe(path) found (or FileProbe(path):
// the same with content).
func (f *Facts) FileMeta(path string) (FileFact, error) {
	if f != nil {
		if ff, ok := f.files[path]; ok {
			return ff, nil
		}
	}
	return f.file(f.filesOf(factFileMeta), FileMetaProbe(path))
}

func (f *Facts) filesOf(k factKind) map[string]FileFact {
	if f == nil {
		return nil
	}
	switch k {
	case factFile:
		return f.files
	case factFileMeta:
		return f.metas
	}
	return f.hashes
}

func (f *Facts) file(m map[string]FileFact, p Probe) (FileFact, error) {
	if f != nil {
		if err := f.errs[p.id()]; err != nil {
			return FileFact{Path: p.arg}, err
		}
	}
	ff, ok := m[p.arg]
	if !ok {
		return FileFact{Path: p.arg}, fmt.Errorf("no fact gathered for %s", p.arg)
	}
	return ff, nil
}

// Service returns what ServiceProbe(name) found.
func (f *Facts) Service(name string) (ServiceState, error) {
	if f != nil {
		if st, ok := f.services[name]; ok {
			return st, nil
		}
	}
	return ServiceState{StatusCode: -1}, fmt.Errorf("no fact gathered for service %s", name)
}

// User returns what UserProbe(name) found.
func (f *Facts) User(name string) (UserState, error) {
	if f != nil {
		if st, ok := f.users[name]; ok {
			return st, nil
		}
	}
	return UserState{}, fmt.Errorf("no fact gathered for user %s", name)
}

// Mounts returns the mount table MountsProbe read.
func (f *Facts) Mounts() ([]MountEntry, error) {
	if f == nil || !f.mountsOK {
		return nil, fmt.Errorf("no fact gathered for /proc/mounts")
	}
	return f.mounts, nil
}

// SetFile records a file fact (FileProbe's), under ff.Path.
func (f *Facts) SetFile(ff FileFact) { f.files[ff.Path] = ff }

// SetFileMeta records a file fact without content (FileMetaProbe's).
func (f *Facts) SetFileMeta(ff FileFact) { f.metas[ff.Path] = ff }

// SetFileHash records a file fact with its hash (FileHashProbe's).
func (f *Facts) SetFileHash(ff FileFact) { f.hashes[ff.Path] = ff }

// SetService records the state of service name.
func (f *Facts) SetService(name string, st ServiceState) { f.services[name] = st }

// SetUser records account name.
func (f *Facts) SetUser(name string, st UserState) { f.users[name] = st }

// SetMounts records the mount table.
func (f *Facts) SetMounts(entries []MountEntry) { f.mounts, f.mountsOK = entries, true }

// Merge copies other's facts into f, replacing older ones.
func (f *Facts) Merge(other *Facts) {
	if other == nil {
		return
	}
	maps.Copy(f.results, other.results)
	maps.Copy(f.files, other.files)
	maps.Copy(f.hashes, other.hashes)
	maps.Copy(f.metas, other.metas)
	maps.Copy(f.services, other.services)
	maps.Copy(f.users, other.users)
	maps.Copy(f.errs, other.errs)
	if other.mountsOK {
		f.SetMounts(other.mounts)
	}
}

// Keys lists the keys of the generic shell facts, sorted.
func (f *Facts) Keys() []string {
	keys := make([]string, 0, len(f.results))
	for k := range f.results {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// probeMarker starts every frame line of a fact batch; each batch adds a
// random nonce to it, so that no probe output (file contents included) can
// be taken for a frame line.
const probeMarker = "@@GRIDHA-"

// newNonce returns a fresh batch marker: probeMarker and 16 random hex
// digits.
func newNonce() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux; a fixed marker still works
		// for every output that does not contain it.
		return probeMarker + "0000000000000000"
	}
	return probeMarker + hex.EncodeToString(b[:])
}

// BatchScript renders probes as one POSIX sh script. Each probe runs in its
// own subshell, its stdout passed through as it is between two frame lines
// that carry a random nonce (no encoding, no extra process per probe), its
// exit code in the closing line.
func BatchScript(probes []Probe) string { return batchScript(probes, newNonce()) }

func batchScript(probes []Probe, m string) string {
	first := firstProbes(probes)
	return "LC_ALL=C; export LC_ALL\n" + batchScriptOf(probes, m, func(i int) bool { return first[i] })
}

// firstProbes marks the first probe of each fact in probes (the one that
// is asked; later ones with the same id are the same fact).
func firstProbes(probes []Probe) []bool {
	seen := map[string]bool{}
	first := make([]bool, len(probes))
	for i, p := range probes {
		first[i] = !seen[p.id()]
		seen[p.id()] = true
	}
	return first
}

// batchScriptOf renders the probes sel selects, framed by their index in
// probes (the gatherer splits one batch between the agent and the shell).
func batchScriptOf(probes []Probe, m string, sel func(i int) bool) string {
	var b strings.Builder
	var services []string // frame index and name, in pairs
	for i, p := range probes {
		if !sel(i) {
			continue
		}
		if p.kind == factService {
			services = append(services, strconv.Itoa(i), ShellQuote(p.arg))
			continue
		}
		// The newline before the closing line is always added, so the
		// output is exactly what lies between the two frame lines.
		fmt.Fprintf(&b, "printf '%s B %d\\n'\n(\n%s\n) 2>/dev/null </dev/null 9>&-\nprintf '\\n%s E %d %%s\\n' $?\n", m, i, p.script(), m, i)
	}
	if len(services) > 0 {
		// Every service by one loop over the one script: the shell
		// reads ServiceStateScript once, not once per service. The
		// frames are those of any other probe.
		fmt.Fprintf(&b, "set -- %s\nwhile [ $# -gt 1 ]; do\ni=$1 n=$2; shift 2\nprintf '%s B %%s\\n' \"$i\"\n(\n%s\n) 2>/dev/null </dev/null 9>&-\nprintf '\\n%s E %%s %%s\\n' \"$i\" $?\ndone\n",
			strings.Join(services, " "), m, ServiceStateScript, m)
	}
	return b.String()
}

// ParseBatch reads the output of BatchScript(probes).
func ParseBatch(probes []Probe, out []byte) (*Facts, error) {
	i := bytes.Index(out, []byte(probeMarker))
	if i < 0 {
		if len(probes) == 0 {
			return NewFacts(nil), nil
		}
		return nil, fmt.Errorf("fact batch: no frame in the output")
	}
	end := i + len(probeMarker)
	for end < len(out) && (out[end] >= '0' && out[end] <= '9' || out[end] >= 'a' && out[end] <= 'f') {
		end++
	}
	return parseBatch(probes, out, string(out[i:end]))
}

// parseBatch reads the frames of batchScript(probes, m) from out (other
// output before, between or after them is ignored).
func parseBatch(probes []Probe, out []byte, m string) (*Facts, error) {
	facts := NewFacts(nil)
	answered := map[string]bool{}
	begin := []byte(m + " B ")
	endm := []byte("\n" + m + " E ")
	pos := 0
	for {
		j := bytes.Index(out[pos:], begin)
		if j < 0 {
			break
		}
		j += pos
		if j > 0 && out[j-1] != '\n' {
			return nil, fmt.Errorf("fact batch: frame not at the start of a line")
		}
		nl := bytes.IndexByte(out[j:], '\n')
		if nl < 0 {
			return nil, fmt.Errorf("fact batch: cut off after a begin frame")
		}
		n, err := strconv.Atoi(string(out[j+len(begin) : j+nl]))
		if err != nil || n < 0 || n >= len(probes) {
			return nil, fmt.Errorf("fact batch: bad begin frame %q", out[j:j+nl])
		}
		dataStart := j + nl + 1
		k := bytes.Index(out[dataStart:], endm)
		if k < 0 {
			return nil, fmt.Errorf("fact batch: probe %s: no end frame", probes[n].Key)
		}
		k += dataStart
		data := out[dataStart:k]
		tail := out[k+len(endm):]
		nl2 := bytes.IndexByte(tail, '\n')
		if nl2 < 0 {
			return nil, fmt.Errorf("fact batch: probe %s: cut off end frame", probes[n].Key)
		}
		f := strings.Fields(string(tail[:nl2]))
		if len(f) != 2 {
			return nil, fmt.Errorf("fact batch: bad end frame %q", tail[:nl2])
		}
		n2, err1 := strconv.Atoi(f[0])
		rc, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil || n2 != n {
			return nil, fmt.Errorf("fact batch: bad end frame %q", tail[:nl2])
		}
		facts.record(probes[n], ProbeResult{Stdout: append([]byte(nil), data...), ExitCode: rc})
		answered[probes[n].id()] = true
		pos = k + len(endm) + nl2 + 1
	}
	for _, p := range probes {
		if !answered[p.id()] {
			return nil, fmt.Errorf("fact batch: no result for probe %s", p.Key)
		}
	}
	return facts, nil
}

// Gather runs all probes on conn in one session.
func Gather(ctx context.Context, conn Conn, probes []Probe) (*Facts, error) {
	if len(probes) == 0 {
		return NewFacts(nil), nil
	}
	res, err := conn.Run(ctx, "sh -s", strings.NewReader(BatchScript(probes)))
	if err != nil {
		return nil, fmt.Errorf("gather facts: %w", err)
	}
	if res.ExitCode != 0 {
		return nil, res.Err("gather facts")
	}
	return ParseBatch(probes, res.Stdout)
}

// ShellQuote quotes s for POSIX sh.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:@,%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// MaxProbedContent is the largest file whose content a FileProbe returns.
const MaxProbedContent = 4 << 20

// FileProbe asks for the metadata of path (not following a final
// symlink), a symlink's target, and the content of a regular file up to
// MaxProbedContent (Facts.File).
func FileProbe(path string) Probe { return Probe{kind: factFile, arg: path, Key: "file:" + path} }

// FileMetaProbe asks for the metadata of path and a symlink's target, not
// its content (Facts.FileMeta): for a step that only needs to know whether
// and what a path is.
func FileMetaProbe(path string) Probe {
	return Probe{kind: factFileMeta, arg: path, Key: "file-meta:" + path}
}

// fileMetaScript answers FileMetaProbe(path) on its own.
func fileMetaScript(path string) string {
	return fmt.Sprintf(`p=%s
if [ -L "$p" ] || [ -e "$p" ]; then
  stat -c 'S %%F|%%a|%%u|%%g|%%U|%%G|%%s' "$p"
  if [ -L "$p" ]; then printf 'L '; readlink "$p"; fi
else echo N; fi`, ShellQuote(path))
}

// fileScript answers FileProbe(path) on its own (the gatherer asks all
// file probes of a batch at once instead, see gather.go; this is its
// fallback and Gather's way).
func fileScript(path string) string {
	return fmt.Sprintf(`p=%s
if [ -L "$p" ] || [ -e "$p" ]; then
  stat -c 'S %%F|%%a|%%u|%%g|%%U|%%G|%%s' "$p"
  if [ -L "$p" ]; then printf 'L '; readlink "$p"; fi
  if [ -f "$p" ] && [ ! -L "$p" ] && [ "$(stat -c %%s "$p")" -le %d ]; then printf 'C '; base64 -w0 "$p"; echo; fi
else echo N; fi`, ShellQuote(path), MaxProbedContent)
}

// HashCache is the file on a host where FileHashProbe finds the hashes
// gridha verified (steps.Copy writes it): lines "SHA256 INODE SIZE MTIME
// CTIME PATH".
const HashCache = "/var/lib/gridha/copy.sha256"

// HashCacheable says whether HashCache can hold path (one field, read by
// sh's read).
func HashCacheable(path string) bool { return !strings.ContainsAny(path, " \t\n\r\\") }

// FileHashProbe asks for path's metadata and, for a regular file, its
// SHA-256 (Facts.FileHash), never its content. Hashing an 18 MB binary
// costs about 0.1 CPU-second on the host, so the hash is taken from
// HashCache when the file's inode, size, mtime and ctime (nanoseconds) are
// those recorded there: any write, chmod, chown or rename changes the
// ctime, which only the kernel sets.
func FileHashProbe(path string) Probe {
	return Probe{kind: factFileHash, arg: path, Key: "file-sha256:" + path}
}

func fileHashScript(path string) string {
	sums := "''"
	if HashCacheable(path) {
		sums = HashCache
	}
	return fmt.Sprintf(`p=%s c=%s
if [ -L "$p" ] || [ -e "$p" ]; then
  k=$(stat -c 'S %%F|%%a|%%u|%%g|%%U|%%G|%%s
K %%i %%s %%.9Y %%.9Z' "$p") || exit 1
  printf '%%s\n' "$k"
  if [ -L "$p" ]; then printf 'L '; readlink "$p"; fi
  if [ -f "$p" ] && [ ! -L "$p" ]; then
    k=${k##*K } h=
    if [ -n "$c" ] && [ -f "$c" ]; then
      while read -r s i z m t q; do if [ "$q" = "$p" ] && [ "$i $z $m $t" = "$k" ]; then h=$s; fi; done < "$c"
    fi
    if [ -z "$h" ]; then h=$(sha256sum < "$p") || exit 1; h=${h%%%% *}; fi
    echo "H $h"
  fi
else echo N; fi`, ShellQuote(path), sums)
}

// FileKind says what a path is.
type FileKind string

// File kinds.
const (
	KindNone    FileKind = ""
	KindFile    FileKind = "file"
	KindDir     FileKind = "dir"
	KindSymlink FileKind = "symlink"
	KindOther   FileKind = "other"
)

// FileFact is what FileProbe (or FileHashProbe) found.
type FileFact struct {
	Path         string
	Exists       bool
	Kind         FileKind
	Mode         fs.FileMode // permission and special bits only
	UID, GID     int
	Owner, Group string
	Size         int64
	LinkTarget   string
	Content      []byte
	ContentKnown bool
	SHA256       string // hex, FileHashProbe's only
}

// ParseFileFact parses what fileScript or fileHashScript printed for path.
func ParseFileFact(path string, out []byte) (FileFact, error) {
	ff := FileFact{Path: path}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case line == "N" || line == "":
		case strings.HasPrefix(line, "S "):
			if err := ff.setStat(line[2:]); err != nil {
				return ff, err
			}
		case strings.HasPrefix(line, "L "):
			ff.LinkTarget = line[2:]
		case strings.HasPrefix(line, "C "):
			c, err := base64.StdEncoding.DecodeString(line[2:])
			if err != nil {
				return ff, fmt.Errorf("%s: content: %w", path, err)
			}
			ff.Content, ff.ContentKnown = c, true
		case strings.HasPrefix(line, "H "):
			ff.SHA256 = strings.TrimSpace(line[2:])
		}
	}
	return ff, nil
}

// setStat fills ff from a stat line "kind|mode|uid|gid|user|group|size"
// (stat -c '%F|%a|%u|%g|%U|%G|%s').
func (ff *FileFact) setStat(line string) error {
	f := strings.Split(line, "|")
	if len(f) != 7 {
		return fmt.Errorf("%s: bad stat line %q", ff.Path, line)
	}
	ff.Exists = true
	switch f[0] {
	case "regular file", "regular empty file":
		ff.Kind = KindFile
	case "directory":
		ff.Kind = KindDir
	case "symbolic link":
		ff.Kind = KindSymlink
	default:
		ff.Kind = KindOther
	}
	m, err := strconv.ParseUint(f[1], 8, 32)
	if err != nil {
		return fmt.Errorf("%s: bad mode %q", ff.Path, f[1])
	}
	ff.Mode = UnixFileMode(uint32(m))
	ff.UID, _ = strconv.Atoi(f[2])
	ff.GID, _ = strconv.Atoi(f[3])
	ff.Owner, ff.Group = f[4], f[5]
	ff.Size, _ = strconv.ParseInt(f[6], 10, 64)
	return nil
}

// UnixFileMode maps octal permission bits (with setuid, setgid,
// sticky) to fs.FileMode: how stat -c %a reads back, and how the SSH
// transport takes a raw octal mode (0o4755) a caller may pass.
func UnixFileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// OctalMode renders a mode the way chmod takes it (e.g. "0640", "1777").
func OctalMode(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}
