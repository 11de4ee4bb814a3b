package installer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// The runner's fact batch answers every FileProbe of a phase with a handful
// of processes in all (one stat for every path, readlink for symlinks, one
// cat | base64 for every small regular file), instead of a few processes per
// probe: on a busy host, or thirty hosts sharing a control machine's CPU,
// process start-up is what a verify spends its time on. The results are
// byte for byte those FileProbe's own script gives; other probes run as in
// BatchScript.

const fastMarker = "@@GRIDHF"

// fastFilePath returns the path of p when p is exactly FileProbe(path) and
// the path is one the combined script handles (no newline).
func fastFilePath(p Probe) (string, bool) {
	path, ok := strings.CutPrefix(p.Key, "file:")
	if !ok || path == "" || strings.ContainsAny(path, "\n\r") {
		return "", false
	}
	if p.Script != FileProbe(path).Script {
		return "", false
	}
	return path, true
}

// splitProbes separates the probes the combined file script answers from the
// others, keeping first-wins semantics of duplicate keys.
func splitProbes(probes []Probe) (paths []string, others []Probe) {
	seen := map[string]bool{}
	for _, p := range probes {
		if seen[p.Key] {
			continue
		}
		seen[p.Key] = true
		if path, ok := fastFilePath(p); ok {
			paths = append(paths, path)
		} else {
			others = append(others, p)
		}
	}
	return paths, others
}

// filesScript prints, for paths: the lstat line of each existing path, the
// target of each symlink, and the base64 of the concatenated content of the
// regular files up to MaxProbedContent bytes (in stat order).
func filesScript(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	var args strings.Builder
	for _, p := range paths {
		args.WriteString(" ")
		args.WriteString(ShellQuote(p))
	}
	return fmt.Sprintf(`printf '%[1]s S\n'
s=$(stat -c '%%n|%%F|%%a|%%u|%%g|%%U|%%G|%%s' --%[2]s 2>/dev/null)
printf '%%s\n' "$s"
printf '%[1]s L\n'
for p in%[2]s; do if [ -L "$p" ]; then printf '%%s\n' "$p"; readlink "$p" || echo; fi; done
printf '%[1]s C\n'
set --
while IFS= read -r l; do
  case "$l" in
  *"|regular file|"*|*"|regular empty file|"*)
    if [ "${l##*|}" -le %[3]d ]; then set -- "$@" "${l%%|*|*|*|*|*|*|*}"; fi;;
  esac
done <<GRIDHA_EOF
$s
GRIDHA_EOF
if [ $# -gt 0 ]; then printf '%%s\n' "$@"; printf '%[1]s D\n'; cat -- "$@" | base64 -w0; echo; else printf '%[1]s D\n'; fi
printf '%[1]s E\n'
`, fastMarker, args.String(), MaxProbedContent)
}

// parseFiles turns the output of filesScript into FileProbe results. ok is
// false when the output does not add up (a file changed size between stat
// and cat): the caller then runs the plain probes.
func parseFiles(paths []string, out []byte) (map[string]ProbeResult, bool) {
	var section string
	stats := map[string]string{} // path -> "kind|mode|uid|gid|user|group|size"
	links := map[string]string{}
	var contentFiles []string
	var blob string
	var pendingLink string
	haveLink := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
	seenEnd := false
	for sc.Scan() {
		line := sc.Text()
		if m, ok := strings.CutPrefix(line, fastMarker+" "); ok {
			section = m
			if m == "E" {
				seenEnd = true
			}
			continue
		}
		switch section {
		case "S":
			if line == "" {
				continue
			}
			f := strings.Split(line, "|")
			if len(f) < 8 {
				return nil, false
			}
			p := strings.Join(f[:len(f)-7], "|")
			stats[p] = strings.Join(f[len(f)-7:], "|")
		case "L":
			if !haveLink {
				pendingLink, haveLink = line, true
			} else {
				links[pendingLink] = line
				haveLink = false
			}
		case "C":
			contentFiles = append(contentFiles, line)
		case "D":
			blob += line
		}
	}
	if sc.Err() != nil || !seenEnd || haveLink {
		return nil, false
	}
	raw, err := base64.StdEncoding.DecodeString(blob)
	if err != nil {
		return nil, false
	}
	contents := map[string][]byte{}
	off := 0
	for _, p := range contentFiles {
		st, ok := stats[p]
		if !ok {
			return nil, false
		}
		size, err := strconv.Atoi(st[strings.LastIndex(st, "|")+1:])
		if err != nil || off+size > len(raw) {
			return nil, false
		}
		contents[p] = raw[off : off+size]
		off += size
	}
	if off != len(raw) {
		return nil, false
	}
	res := map[string]ProbeResult{}
	for _, p := range paths {
		var b strings.Builder
		st, ok := stats[p]
		if !ok {
			b.WriteString("N\n")
		} else {
			b.WriteString("S " + st + "\n")
			if t, ok := links[p]; ok {
				b.WriteString("L " + t + "\n")
			}
			if c, ok := contents[p]; ok {
				b.WriteString("C " + base64.StdEncoding.EncodeToString(c) + "\n")
			}
		}
		res[FileProbeKey(p)] = ProbeResult{Stdout: []byte(b.String())}
	}
	return res, true
}

// gatherScript is the script gatherBatch runs: prelude (the lock wait), the
// combined file probes, then the other probes as BatchScript renders them.
func gatherScript(prelude string, paths []string, others []Probe) string {
	return "LC_ALL=C; export LC_ALL\n" + prelude + filesScript(paths) + BatchScript(others)
}

// gatherBatch is Gather for the runner: every probe in one session, file
// probes answered together. prelude runs first (a non-zero exit from it
// aborts the batch).
func gatherBatch(ctx context.Context, conn Conn, probes []Probe, prelude string) (*Facts, CmdResult, error) {
	paths, others := splitProbes(probes)
	if len(paths) == 0 && len(others) == 0 && prelude == "" {
		return NewFacts(nil), CmdResult{}, nil
	}
	res, err := conn.Run(ctx, "sh -s", strings.NewReader(gatherScript(prelude, paths, others)))
	if err != nil {
		return nil, res, fmt.Errorf("gather facts: %w", err)
	}
	if res.ExitCode != 0 {
		return nil, res, res.Err("gather facts")
	}
	facts, err := ParseBatch(others, res.Stdout)
	if err != nil {
		return nil, res, err
	}
	if len(paths) > 0 {
		files, ok := parseFiles(paths, res.Stdout)
		if !ok {
			// Something changed under us: ask each path the plain way.
			var fps []Probe
			for _, p := range paths {
				fps = append(fps, FileProbe(p))
			}
			f, err := Gather(ctx, conn, fps)
			if err != nil {
				return nil, res, err
			}
			facts.Merge(f)
		} else {
			facts.Merge(NewFacts(files))
		}
	}
	return facts, res, nil
}
