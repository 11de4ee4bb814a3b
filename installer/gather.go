package installer

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
)

// The runner's fact batch answers every FileProbe of a phase with three
// processes in all (one stat for every path, one readlink for every
// symlink, one cat for the content of every small regular file, passed as
// it is and cut by the sizes stat gave), instead of a few processes per
// probe: on a busy host, or thirty hosts sharing a control machine's CPU,
// process start-up is what a verify spends its time on. The facts are those
// a FileProbe asked on its own gives; other probes run as in BatchScript.

// splitProbes separates the file probes the combined file script answers
// from the others, keeping first-wins semantics of duplicates. meta holds
// the paths asked only without content (FileMetaProbe): their content is
// not read (a path asked both ways is read, and answers both).
func splitProbes(probes []Probe) (paths []string, meta map[string]bool, others []Probe) {
	seen := map[string]bool{}
	content := map[string]bool{}
	for _, p := range probes {
		if seen[p.id()] {
			continue
		}
		seen[p.id()] = true
		// A path with a newline cannot be told apart in stat's lines: it
		// is asked on its own.
		if (p.kind == factFile || p.kind == factFileMeta) && p.arg != "" && !strings.ContainsAny(p.arg, "\n\r") {
			if !content[p.arg] && (meta == nil || !meta[p.arg]) {
				paths = append(paths, p.arg)
			}
			if p.kind == factFile {
				content[p.arg] = true
			} else {
				if meta == nil {
					meta = map[string]bool{}
				}
				meta[p.arg] = true
			}
		} else {
			others = append(others, p)
		}
	}
	for p := range content {
		delete(meta, p)
	}
	return paths, meta, others
}

// filesScript prints, for paths, between frame lines carrying marker m:
// the lstat line of each existing path (S), the targets of the symlinks
// among them, NUL-terminated, in stat order (L), and the concatenated
// content of the regular files up to MaxProbedContent bytes, in stat order
// (C), leaving out the paths in meta.
func filesScript(paths []string, meta map[string]bool, m string) string {
	if len(paths) == 0 {
		return ""
	}
	var args strings.Builder
	var skip []string
	for _, p := range paths {
		args.WriteString(" ")
		args.WriteString(ShellQuote(p))
		if meta[p] {
			// Quoted words match literally in a case pattern.
			skip = append(skip, ShellQuote(p))
		}
	}
	metaCase := ""
	if len(skip) > 0 {
		metaCase = "\n    case \"${l%|*|*|*|*|*|*|*}\" in " + strings.Join(skip, "|") + ") continue;; esac"
	}
	return fmt.Sprintf(`printf '%[1]s S\n'
s=$(stat -c '%%n|%%F|%%a|%%u|%%g|%%U|%%G|%%s' --%[2]s 2>/dev/null)
printf '%%s\n' "$s"
printf '%[1]s L\n'
set --
for p in%[2]s; do if [ -L "$p" ]; then set -- "$@" "$p"; fi; done
if [ $# -gt 0 ]; then readlink -z -- "$@"; fi
printf '\n%[1]s C\n'
set --
while IFS= read -r l; do
  case "$l" in
  *"|regular file|"*|*"|regular empty file|"*)%[4]s
    if [ "${l##*|}" -le %[3]d ]; then set -- "$@" "${l%%|*|*|*|*|*|*|*}"; fi;;
  esac
done <<GRIDHA_EOF
$s
GRIDHA_EOF
if [ $# -gt 0 ]; then cat -- "$@"; fi
printf '\n%[1]s E\n'
`, m, args.String(), MaxProbedContent, metaCase)
}

// parseFiles turns the output of filesScript into file facts, parsed once
// (the content as cat passed it, no encoding). ok is false when the output
// does not add up (a file changed between stat and cat, a path became a
// symlink): the caller then asks each path on its own.
func parseFiles(paths []string, meta map[string]bool, out []byte, m string) (map[string]FileFact, bool) {
	section := func(name, next string) ([]byte, bool) {
		open := []byte(m + " " + name + "\n")
		i := bytes.Index(out, open)
		if i < 0 || (i > 0 && out[i-1] != '\n') {
			return nil, false
		}
		start := i + len(open)
		j := bytes.Index(out[start:], []byte("\n"+m+" "+next+"\n"))
		if j < 0 {
			return nil, false
		}
		return out[start : start+j], true
	}
	sBlock, ok1 := section("S", "L")
	lBlock, ok2 := section("L", "C")
	cBlock, ok3 := section("C", "E")
	if !ok1 || !ok2 || !ok3 {
		return nil, false
	}
	stats := map[string]string{} // path -> "kind|mode|uid|gid|user|group|size"
	var order []string
	for _, line := range strings.Split(string(sBlock), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) < 8 {
			return nil, false
		}
		p := strings.Join(f[:len(f)-7], "|")
		if _, dup := stats[p]; !dup {
			order = append(order, p)
		}
		stats[p] = strings.Join(f[len(f)-7:], "|")
	}
	// Symlinks and small regular files, in stat order (the order of the
	// arguments the script gave readlink and cat).
	links := map[string]string{}
	targets := bytes.Split(lBlock, []byte{0})
	if len(lBlock) > 0 {
		if targets[len(targets)-1] != nil && len(targets[len(targets)-1]) != 0 {
			return nil, false // not NUL-terminated
		}
		targets = targets[:len(targets)-1]
	} else {
		targets = nil
	}
	contents := map[string][]byte{}
	ti, off := 0, 0
	for _, p := range order {
		kind, rest, _ := strings.Cut(stats[p], "|")
		switch kind {
		case "symbolic link":
			if ti >= len(targets) {
				return nil, false
			}
			links[p] = string(targets[ti])
			ti++
		case "regular file", "regular empty file":
			size, err := strconv.Atoi(rest[strings.LastIndex(rest, "|")+1:])
			if err != nil || size < 0 {
				// A negative size would slice backwards (found by
				// FuzzParseFilesAny).
				return nil, false
			}
			if size > MaxProbedContent || meta[p] {
				continue
			}
			if off+size > len(cBlock) {
				return nil, false
			}
			contents[p] = cBlock[off : off+size]
			off += size
		}
	}
	if ti != len(targets) || off != len(cBlock) {
		return nil, false
	}
	res := map[string]FileFact{}
	for _, p := range paths {
		ff := FileFact{Path: p}
		if st, ok := stats[p]; ok {
			if err := ff.setStat(st); err != nil {
				return nil, false
			}
			if t, ok := links[p]; ok {
				ff.LinkTarget = t
			}
			if c, ok := contents[p]; ok {
				ff.Content, ff.ContentKnown = c, true
			}
		}
		res[p] = ff
	}
	return res, true
}

// gatherScript is the script gatherBatch runs: prelude (the lock wait),
// then the typed probes — answered by the host's own gridha (`gridha facts`,
// see agent.go) when one of agentPaths is there and speaks AgentProtocol,
// else by the combined file script and the typed probes' scripts — then
// the generic shell probes, by the same shell. One session either way:
// the fallback costs no round trip. Its first line is the "R" frame
// line: output an agent left before it failed is cut off there
// (cutAtRestart). agents lists where to look for the agent ("" for none).
func gatherScript(prelude string, paths []string, meta map[string]bool, others []Probe, m, agents string) string {
	var b strings.Builder
	b.WriteString("LC_ALL=C; export LC_ALL\n")
	b.WriteString(prelude)
	first := firstProbes(others)
	agentSel := func(i int) bool { return first[i] && agentKind(others[i].kind) }
	shellSel := func(i int) bool { return first[i] && !agentKind(others[i].kind) }
	req := agentRequest{marker: m, paths: paths, meta: meta}
	for i, p := range others {
		if agentSel(i) {
			req.probes = append(req.probes, agentProbe{index: i, kind: p.kind, arg: p.arg})
		}
	}
	typed := filesScript(paths, meta, m) + batchScriptOf(others, m, agentSel)
	if typed != "" && agents != "" && agentWorth(req) {
		// The delimiter holds the nonce: no request line (all start
		// with a letter and a blank) can end the here-document early.
		// The agent is a short single-threaded job: agentEnv, set for
		// it alone (a request's replies hold a few MiB at most).
		eof := "GRIDHA_REQ_" + strings.TrimPrefix(m, probeMarker)
		fmt.Fprintf(&b, `g=
for g in %s; do if [ -x "$g" ]; then break; fi; g=; done
if [ -n "$g" ] && %s "$g" facts --protocol %d 2>/dev/null 9>&- <<'%s'
%s%s
then :; else
printf '\n%s R\n'
%sfi
`, agents, strings.Join(agentEnv, " "), AgentProtocol, eof, renderAgentRequest(req), eof, m, typed)
	} else {
		b.WriteString(typed)
	}
	b.WriteString(batchScriptOf(others, m, shellSel))
	return b.String()
}

// cutAtRestart drops what lies before the script's last "R" frame line:
// an agent that failed after it wrote part of a reply (it writes all at
// once, so hardly ever) must not leave frames the fallback's repeat.
func cutAtRestart(out []byte, m string) []byte {
	if i := bytes.LastIndex(out, []byte("\n"+m+" R\n")); i >= 0 {
		return out[i:]
	}
	return out
}

// gatherBatch is Gather for the runner: every probe in one session, file
// probes answered together, typed probes by the host's gridha when one of
// agents (space-separated paths; "" for none) is there. prelude runs
// first (a non-zero exit from it aborts the batch).
func gatherBatch(ctx context.Context, conn Conn, probes []Probe, prelude, agents string) (*Facts, CmdResult, error) {
	paths, meta, others := splitProbes(probes)
	if len(paths) == 0 && len(others) == 0 && prelude == "" {
		return NewFacts(nil), CmdResult{}, nil
	}
	m := newNonce()
	// The script as the command itself, not "sh -s" on stdin: one shell
	// process fewer per session (the transport passes a long one on stdin).
	// Read-only and bounded (a hung share is cut by timeout 60): no
	// session watcher, see ReadOnlyRunner.
	res, err := runReadOnly(ctx, conn, gatherScript(prelude, paths, meta, others, m, agents), nil)
	if err != nil {
		return nil, res, fmt.Errorf("gather facts: %w", err)
	}
	if res.ExitCode != 0 {
		return nil, res, res.Err("gather facts")
	}
	out := cutAtRestart(res.Stdout, m)
	facts, err := parseBatch(others, out, m)
	if err != nil {
		return nil, res, err
	}
	facts.agent = bytes.HasPrefix(out, []byte(m+" A ")) || bytes.Contains(out, []byte("\n"+m+" A "))
	if len(paths) > 0 {
		files, ok := parseFiles(paths, meta, out, m)
		if !ok {
			// Something changed under us: ask each path on its own.
			var fps []Probe
			for _, p := range paths {
				if meta[p] {
					fps = append(fps, FileMetaProbe(p))
				} else {
					fps = append(fps, FileProbe(p))
				}
			}
			f, err := Gather(ctx, conn, fps)
			if err != nil {
				return nil, res, err
			}
			facts.Merge(f)
		} else {
			for _, ff := range files {
				if meta[ff.Path] {
					facts.SetFileMeta(ff)
				} else {
					facts.SetFile(ff)
				}
			}
		}
	}
	return facts, res, nil
}
