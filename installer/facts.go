package installer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Probe is a read-only shell snippet whose stdout and exit code are a fact.
// Probes of all steps of a host are sent in one script, in one session:
// audit cost does not grow in sessions with the number of steps.
//
// Two probes with the same Key are the same fact: the first one wins. A probe
// must change nothing on the host and must hold no secret.
type Probe struct {
	Key    string
	Script string
}

// ProbeResult is the captured output of one probe.
type ProbeResult struct {
	Stdout   []byte
	ExitCode int
}

// Facts are the probe results of one host.
type Facts struct {
	results map[string]ProbeResult
}

// NewFacts builds Facts from results (tests and reprobes use it).
func NewFacts(results map[string]ProbeResult) *Facts {
	if results == nil {
		results = map[string]ProbeResult{}
	}
	return &Facts{results: results}
}

// Get returns the result of the probe with key.
func (f *Facts) Get(key string) (ProbeResult, bool) {
	if f == nil {
		return ProbeResult{}, false
	}
	r, ok := f.results[key]
	return r, ok
}

// Merge copies other's results into f, replacing older ones.
func (f *Facts) Merge(other *Facts) {
	if other == nil {
		return
	}
	for k, v := range other.results {
		f.results[k] = v
	}
}

// Keys lists the fact keys, sorted.
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
	var b strings.Builder
	b.WriteString("LC_ALL=C; export LC_ALL\n")
	seen := map[string]bool{}
	for i, p := range probes {
		if seen[p.Key] {
			continue
		}
		seen[p.Key] = true
		// The newline before the closing line is always added, so the
		// output is exactly what lies between the two frame lines.
		fmt.Fprintf(&b, "printf '%s B %d\\n'\n(\n%s\n) 2>/dev/null </dev/null 9>&-\nprintf '\\n%s E %d %%s\\n' $?\n", m, i, p.Script, m, i)
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
		facts.results[probes[n].Key] = ProbeResult{Stdout: append([]byte(nil), data...), ExitCode: rc}
		pos = k + len(endm) + nl2 + 1
	}
	for _, p := range probes {
		if _, ok := facts.results[p.Key]; !ok {
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

// FileProbeKey is the fact key of FileProbe(path).
func FileProbeKey(path string) string { return "file:" + path }

// FileProbe reads the metadata of path (not following a final symlink), a
// symlink's target, and the content of a regular file up to MaxProbedContent.
func FileProbe(path string) Probe {
	q := ShellQuote(path)
	script := fmt.Sprintf(`p=%s
if [ -L "$p" ] || [ -e "$p" ]; then
  stat -c 'S %%F|%%a|%%u|%%g|%%U|%%G|%%s' "$p"
  if [ -L "$p" ]; then printf 'L '; readlink "$p"; fi
  if [ -f "$p" ] && [ ! -L "$p" ] && [ "$(stat -c %%s "$p")" -le %d ]; then printf 'C '; base64 -w0 "$p"; echo; fi
else echo N; fi`, q, MaxProbedContent)
	return Probe{Key: FileProbeKey(path), Script: script}
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

// FileFact is what FileProbe found.
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
}

// FileFactOf parses the FileProbe result for path from facts.
func FileFactOf(facts *Facts, path string) (FileFact, error) {
	r, ok := facts.Get(FileProbeKey(path))
	if !ok {
		return FileFact{}, fmt.Errorf("no fact gathered for %s", path)
	}
	return ParseFileFact(path, r.Stdout)
}

// ParseFileFact parses the output of FileProbe(path).
func ParseFileFact(path string, out []byte) (FileFact, error) {
	ff := FileFact{Path: path}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case line == "N" || line == "":
		case strings.HasPrefix(line, "S "):
			f := strings.Split(line[2:], "|")
			if len(f) != 7 {
				return ff, fmt.Errorf("%s: bad stat line %q", path, line)
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
				return ff, fmt.Errorf("%s: bad mode %q", path, f[1])
			}
			ff.Mode = unixModeToFileMode(uint32(m))
			ff.UID, _ = strconv.Atoi(f[2])
			ff.GID, _ = strconv.Atoi(f[3])
			ff.Owner, ff.Group = f[4], f[5]
			ff.Size, _ = strconv.ParseInt(f[6], 10, 64)
		case strings.HasPrefix(line, "L "):
			ff.LinkTarget = line[2:]
		case strings.HasPrefix(line, "C "):
			c, err := base64.StdEncoding.DecodeString(line[2:])
			if err != nil {
				return ff, fmt.Errorf("%s: content: %w", path, err)
			}
			ff.Content, ff.ContentKnown = c, true
		}
	}
	return ff, nil
}

// unixModeToFileMode maps octal permission bits (with setuid, setgid,
// sticky) to fs.FileMode.
func unixModeToFileMode(m uint32) fs.FileMode {
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
