package installer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The shares probe: what an rb node sees of its state folders on the
// shared file system (steps.StateDir), through the mount, in one probe for
// all of them. It is a typed probe so that the fact agent answers it
// in-process — the shell needs timeout, sh and find for it, in every
// verify — with the shell script as the fallback; the result is kept as
// the script's output (Facts.Get(p.Key)), which steps parse.

// ShareMarker is the file at the top of a populated share folder
// (steps.StateMarker).
const ShareMarker = ".gridha-state"

// ShareListFormat is find's -printf format (shell-quoted) of a share's
// listing: the starting point (%H) first, the path relative to it (%P, ""
// for the folder itself), NUL-terminated fields.
const ShareListFormat = `'%H\0%y\0%m\0%T@\0%s\0%i\0%n\0%U\0%G\0%u\0%g\0%l\0%P\0'`

// ShareListCmd lists the folders named by args (shell words, each ending
// in "/": the folder behind a symlink) with one find, then "@@END <exit
// code>".
func ShareListCmd(args string) string {
	return "find " + args + " -printf " + ShareListFormat + " 2>/dev/null </dev/null; printf '@@END %d\\000' $?"
}

// ShareCheckBody prints what a share folder $S and the temporary folder
// $T next to it hold (share=, entries=, marker lines, tmp=, tmpmarker=).
var ShareCheckBody = fmt.Sprintf(`if [ -d "$S" ]; then echo share=dir; n=0
  for e in "$S"/* "$S"/.[!.]* "$S"/..?*; do if [ -e "$e" ] || [ -L "$e" ]; then n=$((n+1)); fi; done
  echo "entries=$n"
  if [ -f "$S/%s" ]; then echo marker=; while IFS= read -r l || [ -n "$l" ]; do echo "markerline=$l"; done < "$S/%s"; fi
elif [ -e "$S" ]; then echo share=other; fi
if [ -d "$T" ]; then echo tmp=dir; if [ -f "$T/%s" ]; then echo tmpmarker=1; fi; fi
`, ShareMarker, ShareMarker, ShareMarker)

// sharesCheckScript is ShareCheckBody for every share S (with T next to
// it) of its arguments, each answer between "@@share I" and "@@shared I"
// (I from 0); then "@@views" and the listing through the mount of every
// share that holds a state marker (or is behind a symlink, below), one
// find for all (ShareListCmd), NUL-separated. The text answers come first
// and hold no NUL: the first "\n@@views" ends them.
//
// The arguments are triples L S T (L: the node's local state folder, ""
// when unknown). A share whose local folder is already a symlink gets no
// share=/entries=/marker/tmp answer but "linked=1" (each of those is a
// walk through the mount, SFTP requests the state server serves); its
// listing is made whatever its marker says.
var sharesCheckScript = "i=0 np=$(($#/3))\nwhile [ $i -lt $np ]; do eval \"L=\\${$((3*i+1))} S=\\${$((3*i+2))} T=\\${$((3*i+3))}\"\necho \"@@share $i\"\n" +
	"if [ -n \"$L\" ] && [ -L \"$L\" ]; then echo linked=1; else\n" + ShareCheckBody + "fi\n" +
	"echo \"@@shared $i\"\ni=$((i+1))\ndone\n" +
	"i=0\nwhile [ $i -lt $np ]; do L=$1 S=$2; shift 3; if { [ -n \"$L\" ] && [ -L \"$L\" ]; } || [ -f \"$S/" + ShareMarker + "\" ]; then set -- \"$@\" \"$S/\"; fi; i=$((i+1)); done\n" +
	"if [ $# -gt 0 ]; then printf '@@views\\000'; " + ShareListCmd(`"$@"`) + "; fi\nexit 0"

// SharesTimeout is how long the shares probe waits for the shared file
// system (timeout 60 in the script): a hung mount must not hang the batch.
const SharesTimeout = 60 * time.Second

// Share is one share folder of the shares probe: Local the node's state
// folder ("" when unknown), Path the share folder as the node sees it,
// Tmp the temporary folder of a copy next to it.
type Share struct{ Local, Path, Tmp string }

// SharesProbe asks what the node sees of shares under mount (the script's
// output, Facts.Get(p.Key)): nothing unless mount is in /proc/mounts;
// "unanswered=1" when the file system did not answer within
// SharesTimeout.
func SharesProbe(mount string, shares []Share) Probe {
	f := []string{mount}
	for _, s := range shares {
		f = append(f, s.Local, s.Path, s.Tmp)
	}
	arg := strings.Join(f, "\x00")
	sum := sha256.Sum256([]byte(sharesScript(arg)))
	return Probe{kind: factShares, arg: arg, Key: "statedir-shares:" + hex.EncodeToString(sum[:8])}
}

// splitSharesArg undoes SharesProbe's arg.
func splitSharesArg(arg string) (mount string, shares []Share, ok bool) {
	f := strings.Split(arg, "\x00")
	if len(f)%3 != 1 {
		return "", nil, false
	}
	for i := 1; i < len(f); i += 3 {
		shares = append(shares, Share{f[i], f[i+1], f[i+2]})
	}
	return f[0], shares, true
}

// sharesScript is the shell that answers SharesProbe.
func sharesScript(arg string) string {
	mount, shares, _ := splitSharesArg(arg)
	var args strings.Builder
	for _, s := range shares {
		args.WriteString(" " + ShellQuote(s.Local) + " " + ShellQuote(s.Path) + " " + ShellQuote(s.Tmp))
	}
	return fmt.Sprintf(`MP=%s; m=
while read -r _d _mp _r; do if [ "$_mp" = "$MP" ]; then m=1; fi; done < /proc/mounts
if [ -n "$m" ]; then
  # A hung network file system must not hang the whole fact batch.
  timeout %d sh -c %s sh%s || echo unanswered=1
fi
exit 0`, ShellQuote(mount), int(SharesTimeout/time.Second), ShellQuote(sharesCheckScript), args.String())
}

// agentShares writes what sharesScript prints. The walk through the
// mount runs on its own goroutine: when the file system does not answer
// within the deadline, the reply is what the script had printed when
// timeout killed it (the finished share answers; find's listing, which
// find buffers, never) and "unanswered=1", and the walk is left behind
// (the agent exits).
func agentShares(out *bytes.Buffer, arg string, names *idNames, sys hostSystem) error {
	mount, shares, ok := splitSharesArg(arg)
	if !ok {
		return fmt.Errorf("shares probe: bad argument")
	}
	mounts, err := os.ReadFile(sys.path(sys.mounts, "/proc/mounts"))
	if err != nil {
		return fmt.Errorf("%w: %v", errAgentUnsure, err)
	}
	mounted := false
	for _, l := range readLines(mounts) {
		if readFields(l, 3)[1] == mount {
			mounted = true
		}
	}
	if !mounted {
		return nil
	}
	w := &sharesOut{}
	done := make(chan error, 1)
	go func() {
		if sys.sharesHang != nil {
			<-sys.sharesHang
		}
		done <- shareWalk(w, shares, names)
	}()
	deadline := sys.sharesTimeout
	if deadline == 0 {
		deadline = SharesTimeout
	}
	t := time.NewTimer(deadline)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return err
		}
		out.Write(w.bytes())
	case <-t.C:
		out.Write(w.bytes())
		out.WriteString("unanswered=1\n")
	}
	return nil
}

// sharesOut is the script's stdout as far as it got.
type sharesOut struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *sharesOut) add(b []byte) {
	w.mu.Lock()
	w.buf.Write(b)
	w.mu.Unlock()
}

func (w *sharesOut) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

// readLines splits data as sh's `while read` loop reads it: complete lines
// only (read fails on a last line without newline).
func readLines(data []byte) []string {
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 {
		return nil
	}
	return strings.Split(string(data[:i]), "\n")
}

// test(1)'s -L, -d, -f, -e.
func isSymlink(p string) bool {
	var st syscall.Stat_t
	return syscall.Lstat(p, &st) == nil && isLink(&st)
}

func statMode(p string) (uint32, bool) {
	var st syscall.Stat_t
	if syscall.Stat(p, &st) != nil {
		return 0, false
	}
	return st.Mode & syscall.S_IFMT, true
}

func isDir(p string) bool     { m, ok := statMode(p); return ok && m == syscall.S_IFDIR }
func isRegular(p string) bool { m, ok := statMode(p); return ok && m == syscall.S_IFREG }
func exists(p string) bool    { _, ok := statMode(p); return ok }

// shareWalk is the script's sh -c part (sharesCheckScript).
func shareWalk(w *sharesOut, shares []Share, names *idNames) error {
	linked := func(s Share) bool { return s.Local != "" && isSymlink(s.Local) }
	for i, s := range shares {
		var b bytes.Buffer
		fmt.Fprintf(&b, "@@share %d\n", i)
		if linked(s) {
			b.WriteString("linked=1\n")
		} else if err := shareCheck(&b, s); err != nil {
			return err
		}
		fmt.Fprintf(&b, "@@shared %d\n", i)
		w.add(b.Bytes())
	}
	var starts []string
	for _, s := range shares {
		if linked(s) || isRegular(s.Path+"/"+ShareMarker) {
			starts = append(starts, s.Path+"/")
		}
	}
	if len(starts) == 0 {
		return nil
	}
	w.add([]byte("@@views\x00"))
	var b bytes.Buffer
	rc := 0
	for _, start := range starts {
		if err := findList(&b, start, &rc, names); err != nil {
			return err
		}
	}
	fmt.Fprintf(&b, "@@END %d\x00", rc)
	w.add(b.Bytes())
	return nil
}

// shareCheck is ShareCheckBody for one share.
func shareCheck(b *bytes.Buffer, s Share) error {
	S, T := s.Path, s.Tmp
	if isDir(S) {
		b.WriteString("share=dir\n")
		// The three globs match every entry but . and ..; each one
		// then passes [ -e ] || [ -L ].
		f, err := os.Open(S)
		if err != nil {
			return fmt.Errorf("%w: %v", errAgentUnsure, err)
		}
		ents, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return fmt.Errorf("%w: %v", errAgentUnsure, err)
		}
		fmt.Fprintf(b, "entries=%d\n", len(ents))
		if m := S + "/" + ShareMarker; isRegular(m) {
			b.WriteString("marker=\n")
			data, err := os.ReadFile(m)
			if err == nil {
				// dash's echo would turn a backslash into an
				// escape, and its read drops NUL bytes.
				if bytes.ContainsAny(data, "\\\x00") {
					return fmt.Errorf("%w: %s holds a backslash or NUL", errAgentUnsure, m)
				}
				lines := strings.Split(string(data), "\n")
				if lines[len(lines)-1] == "" {
					lines = lines[:len(lines)-1]
				}
				for _, l := range lines {
					b.WriteString("markerline=" + l + "\n")
				}
			}
		}
	} else if exists(S) {
		b.WriteString("share=other\n")
	}
	if isDir(T) {
		b.WriteString("tmp=dir\n")
		if isRegular(T + "/" + ShareMarker) {
			b.WriteString("tmpmarker=1\n")
		}
	}
	return nil
}

// findList is `find START -printf ShareListFormat` (findutils, -P): the
// start and, depth first, every entry under it in directory order, not
// following symlinks (but the start, which ends in "/"). An entry find
// cannot read sets *rc to 1, as find's exit code.
func findList(b *bytes.Buffer, start string, rc *int, names *idNames) error {
	var walk func(p, rel string) error
	walk = func(p, rel string) error {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			*rc = 1
			return nil
		}
		if err := findRecord(b, start, p, rel, &st, names); err != nil {
			return err
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			*rc = 1
			return nil
		}
		ents, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			*rc = 1
		}
		// fts sorts a very large folder by inode number on some file
		// systems: the order would differ.
		if len(ents) > 10000 {
			return fmt.Errorf("%w: %s: %d entries", errAgentUnsure, p, len(ents))
		}
		for _, e := range ents {
			r := e.Name()
			if rel != "" {
				r = rel + "/" + e.Name()
			}
			cp := p + "/" + e.Name()
			if strings.HasSuffix(p, "/") {
				cp = p + e.Name()
			}
			if err := walk(cp, r); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(start, "")
}

// findRecord is one record of ShareListFormat.
func findRecord(b *bytes.Buffer, start, p, rel string, st *syscall.Stat_t, names *idNames) error {
	u, err := names.findName(st.Uid, false)
	if err != nil {
		return err
	}
	g, err := names.findName(st.Gid, true)
	if err != nil {
		return err
	}
	if st.Mtim.Sec < 0 {
		return fmt.Errorf("%w: %s: mtime before 1970", errAgentUnsure, p)
	}
	link := ""
	if isLink(st) {
		if link, err = os.Readlink(p); err != nil {
			return fmt.Errorf("%w: %v", errAgentUnsure, err)
		}
	}
	// %T@: seconds, a point and ten digits (findutils prints the
	// nanoseconds and a zero).
	for _, f := range []string{start, string(findType(st)), fmt.Sprintf("%o", st.Mode&0o7777), fmt.Sprintf("%d.%09d0", st.Mtim.Sec, st.Mtim.Nsec),
		fmt.Sprint(st.Size), fmt.Sprint(st.Ino), fmt.Sprint(st.Nlink), fmt.Sprint(st.Uid), fmt.Sprint(st.Gid), u, g, link, rel} {
		b.WriteString(f)
		b.WriteByte(0)
	}
	return nil
}

// findType is find's %y.
func findType(st *syscall.Stat_t) byte {
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return 'f'
	case syscall.S_IFDIR:
		return 'd'
	case syscall.S_IFLNK:
		return 'l'
	case syscall.S_IFIFO:
		return 'p'
	case syscall.S_IFSOCK:
		return 's'
	case syscall.S_IFCHR:
		return 'c'
	case syscall.S_IFBLK:
		return 'b'
	}
	return 'U'
}
