package steps

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
)

// StateDir moves a service's local state folder (Path, e.g. /var/edgwl) to
// shared storage (Share, e.g. /mnt/rb-state/rb-a/edgwl, a folder of a
// mounted file system) and leaves a symlink Path -> Share behind (slide 8:
// "cp -a ... Replace local folders with symlinks"), safely:
//
//  1. copy Path into a temporary folder beside the share folder
//     (.<base>.gridha-tmp-<node>), keeping modes, times, symlinks and hard
//     links (and owners when KeepOwners);
//  2. verify the copy against the original: the same entries, kinds, modes,
//     sizes, sha256 of every regular file, symlink targets, hard-link groups,
//     modification times (seconds: SFTP keeps no more) and, with KeepOwners,
//     owners. With ServerHost set the copy is read on the state server
//     itself (through env.Peer), where hard links are visible;
//  3. record the owners in .gridha-owners and write the marker .gridha-state
//     (node, time, counts) last, inside the temporary folder;
//  4. rename it into place (the share folder is populated atomically: a share
//     folder counts as populated only when it holds the marker);
//  5. move the original aside as <Path>.gridha-local-<UTC time> (never
//     deleted);
//  6. link Path -> Share.
//
// Every intermediate state is recognised on the next run (a run killed at any
// instant converges, nothing lost): a temporary folder without marker is a
// partial copy of an intact original and is copied again; one with a marker
// is verified again and renamed; a populated share written by this node
// finishes steps 5-6.
//
// A share already populated by another node: a node whose own state is only
// the package default (no regular file) is moved aside and linked; a node
// with state of its own is refused, unless StateFrom names the winner
// (gridha's --state-from NODE): this node (its copy replaces the share's,
// which is kept aside on the share as .<base>.gridha-replaced-<node>-<time>)
// or another node (this node's copy is kept aside locally). Never a merge,
// never an overwrite.
type StateDir struct {
	Path  string // local state folder on the node
	Share string // the share folder as the node sees it (under Mount)
	Mount string // mount point that must be live before anything moves
	Node  string // this node's inventory name (marker, temporary names)
	// ServerHost and ServerPath: the state server's inventory name and the
	// share folder as the server sees it; the copy is verified there. Empty:
	// verified through the mount (hard links then cannot be checked).
	ServerHost, ServerPath string
	// ServerPaths are every share folder on ServerHost that the run's
	// StateDir steps compare with a node's view, and Shares this node's
	// share folders (as it sees them) that its StateDir steps compare: the
	// first step that needs one reads them all in one session per host
	// (statedirview.go). Empty: each step reads its own folders.
	ServerPaths, Shares []string
	// Locals are the node's local state folders, Locals[i] Shares[i]'s (nil:
	// unknown): the shares probe skips what Decide does not need for a
	// folder that is already a symlink.
	Locals []string
	// StateFrom is the node whose state wins a conflict ("" = refuse).
	StateFrom string
	// KeepOwners: the shared file system keeps owners (NFS as root with the
	// snfs driver; sshfs to the state server's uid-0, chrooted account):
	// copied with cp -a and verified. Owners are recorded in .gridha-owners
	// either way.
	KeepOwners bool
	// NoSpecial: the shared file system cannot hold fifos or device nodes
	// (sshfs); a state folder with some is refused before anything moves.
	NoSpecial bool
	// CopyMount, when set, is another mount of the same share that the copy
	// writes through (sshfs's own, root-only mount under the bindfs view on
	// Mount: one FUSE layer less, and root's cp -a sets owners itself).
	CopyMount string
	// AcceptLinks are other link targets that count as done (the other HA
	// groups' shares of this node: the service script points the link at
	// the group it serves).
	AcceptLinks []string
	// Now gives the time for names and the marker (nil: time.Now).
	Now func() time.Time
}

// StateMarker and OwnersFile are the files gridha keeps at the top of a
// populated share folder.
const (
	StateMarker = installer.ShareMarker
	OwnersFile  = ".gridha-owners"
	// AsideInfix names a state folder moved aside: <path>.gridha-local-<time>.
	AsideInfix = ".gridha-local-"
)

// stateDirLock serialises copies on a node: a copy left running by a killed
// run ends (its watcher kills it when the session dies) before another
// starts.
const stateDirLock = "/var/lock/gridha-statedir.lock"

// ID implements installer.Step.
func (s StateDir) ID() string { return "state dir " + s.Path }

func (s StateDir) tmp() string {
	return path.Join(path.Dir(s.Share), "."+path.Base(s.Share)+".gridha-tmp-"+s.Node)
}

// copyTmp is the temporary folder as the copy writes it (through CopyMount
// when set).
func (s StateDir) copyTmp() string {
	t := s.tmp()
	if s.CopyMount != "" && strings.HasPrefix(t, s.Mount+"/") {
		return path.Join(s.CopyMount, strings.TrimPrefix(t, s.Mount+"/"))
	}
	return t
}

func (s StateDir) serverTmp() string {
	return path.Join(path.Dir(s.ServerPath), "."+path.Base(s.ServerPath)+".gridha-tmp-"+s.Node)
}

func (s StateDir) probeKey() string { return "statedir:" + s.Path }

// Probes implements installer.Step.
func (s StateDir) Probes() []installer.Probe {
	q := installer.ShellQuote
	// Few processes (a verify runs this on every node for every state
	// dir): the share's entries and marker are read by sh itself (and
	// /proc/mounts, when no shares probe looks at the share), the link's target is a typed file fact (the fact agent's
	// readlink, or the batch's one readlink for all paths: not one process
	// per state dir); timeout + sh for the share are the only ones once
	// the state has moved.
	local := fmt.Sprintf(`L=%s
if [ -L "$L" ]; then echo local=link
elif [ -d "$L" ]; then echo local=dir
  echo "files=$(find "$L" -xdev -type f | wc -l)"
  echo "bytes=$(find "$L" -xdev -type f -printf '%%s\n' | awk '{ s += $1 } END { printf "%%d", s }')"
  echo "special=$(find "$L" -xdev \( -type p -o -type b -o -type c \) | wc -l)"
elif [ -e "$L" ]; then echo local=other
else echo local=none; fi
for a in "$L"%s*; do [ -e "$a" ] && echo "aside=$a"; done
`, q(s.Path), AsideInfix)
	if sp, ok := s.sharesProbe(); ok {
		// The share is looked at by the node's one probe of all its
		// shares (one timeout and one sh for all, not per state dir).
		// Whether it is mounted is the typed mount table (gathered): sh's
		// read takes /proc/mounts a byte per system call, about 2 ms of a
		// node's CPU for each state dir that read it.
		return []installer.Probe{{Key: s.probeKey(), Script: local + "exit 0"}, sp, installer.FileMetaProbe(s.Path), installer.MountsProbe()}
	}
	script := fmt.Sprintf(`S=%s; T=%s; MP=%s; m=
while read -r _d _mp _r; do if [ "$_mp" = "$MP" ]; then m=1; fi; done < /proc/mounts
if [ -n "$m" ]; then echo mounted=1; fi
`, q(s.Share), q(s.tmp()), q(s.Mount)) + local
	script += `if [ -n "$m" ]; then
  # A hung network file system must not hang the whole fact batch.
  timeout 60 sh -c ` + q(shareCheckScript) + ` sh "$S" "$T" || echo unanswered=1
fi
exit 0`
	return []installer.Probe{{Key: s.probeKey(), Script: script}, installer.FileMetaProbe(s.Path)}
}

// gathered reads the step's facts: its own probe's, its part of the
// shares probe's, the link target from Path's file fact.
func (s StateDir) gathered(facts *installer.Facts) (StateDirFacts, error) {
	pr, ok := facts.Get(s.probeKey())
	if !ok {
		return StateDirFacts{}, fmt.Errorf("no fact gathered for %s", s.Path)
	}
	out := string(pr.Stdout)
	sp, shared := s.sharesProbe()
	if shared {
		spr, ok := facts.Get(sp.Key)
		if !ok {
			return StateDirFacts{}, fmt.Errorf("no fact gathered for the shares of %s", s.Path)
		}
		out += "\n" + s.shareFacts(string(spr.Stdout))
	}
	f := ParseStateDirFacts(out)
	if shared {
		mounts, err := facts.Mounts()
		if err != nil {
			return StateDirFacts{}, err
		}
		_, f.Mounted = installer.LiveMount(mounts, s.Mount)
	}
	s.linkTarget(facts, &f)
	return f, nil
}

// linkTarget fills f.LinkTarget, for a local folder the probe found a
// symlink, from the typed file fact of Path. Facts that hold none (older
// probe output carries target=) keep what the probe said; a file fact that
// is no symlink (the path changed between the two looks) leaves the target
// empty, which Decide refuses.
func (s StateDir) linkTarget(facts *installer.Facts, f *StateDirFacts) {
	if f.Local != "link" {
		return
	}
	ff, err := facts.FileMeta(s.Path)
	if err != nil {
		return
	}
	f.LinkTarget = ""
	if ff.Kind == installer.KindSymlink {
		f.LinkTarget = ff.LinkTarget
	}
}

// shareCheckScript is installer.ShareCheckBody for one share: sh -c
// SCRIPT sh S T. The node's probe of all its shares (sharesProbe) is
// installer.SharesProbe: its listing is what checkNodeView compares with
// the share on the state server; read there it costs no session of its
// own on the node.
var shareCheckScript = "S=$1 T=$2\n" + installer.ShareCheckBody + "exit 0"

// shareIndex is where Share is in Shares (-1: not there).
func (s StateDir) shareIndex() int {
	for i, sh := range s.Shares {
		if sh == s.Share {
			return i
		}
	}
	return -1
}

// sharesProbe is the node's probe of all its Shares (the same for each of
// its StateDir steps, so the batch runs it once), when Shares names this
// step's share.
func (s StateDir) sharesProbe() (installer.Probe, bool) {
	if len(s.Shares) < 2 || s.shareIndex() < 0 {
		return installer.Probe{}, false
	}
	var shares []installer.Share
	for i, sh := range s.Shares {
		local := ""
		if len(s.Locals) == len(s.Shares) {
			local = s.Locals[i]
		}
		shares = append(shares, installer.Share{Local: local, Path: sh, Tmp: path.Join(path.Dir(sh), "."+path.Base(sh)+".gridha-tmp-"+s.Node)})
	}
	return installer.SharesProbe(s.Mount, shares), true
}

// shareFacts returns this step's part of the shares probe's output, as the
// lines the single-share check prints.
func (s StateDir) shareFacts(out string) string {
	if j := strings.Index(out, "\n@@views\x00"); j >= 0 {
		out = out[:j+1]
	}
	i := s.shareIndex()
	begin, end := fmt.Sprintf("@@share %d", i), fmt.Sprintf("@@shared %d", i)
	var b strings.Builder
	in, done, unanswered := false, false, false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case l == begin:
			in = true
		case l == end:
			in, done = false, true
		case l == "unanswered=1":
			unanswered = true
		case in:
			b.WriteString(l + "\n")
		}
	}
	if !done && unanswered {
		b.WriteString("unanswered=1\n")
	}
	return b.String()
}

// probedView returns this step's share as the node saw it through the
// mount when the shares probe ran (sharesCheckScript's listing), gridha's
// own files left out; ok is false when the probe holds no complete listing
// of it (no marker in the share then, a find that failed, a cut answer).
func (s StateDir) probedView(env *installer.Env) (Manifest, bool) {
	sp, ok := s.sharesProbe()
	if !ok {
		return nil, false
	}
	pr, ok := env.Facts.Get(sp.Key)
	if !ok {
		return nil, false
	}
	return probedViewOf(pr.Stdout, s.Share)
}

// probedViewOf finds share's listing in the shares probe's output.
func probedViewOf(out []byte, share string) (Manifest, bool) {
	j := bytes.Index(out, []byte("\n@@views\x00"))
	if j < 0 {
		return nil, false
	}
	got, ok := parseMultiList(out[j+len("\n@@views\x00"):], []string{share})
	if !ok {
		return nil, false
	}
	return got[share], true
}

// StateDirFacts is what the probe found.
type StateDirFacts struct {
	Mounted      bool
	Local        string // none, dir, link, other
	LinkTarget   string
	Files        int
	Bytes        int64
	Special      int // fifos and device nodes (cannot be kept on sshfs)
	Asides       []string
	Share        string // "", dir, other
	ShareEntries int
	Marker       string // content of the share's marker ("" = not populated)
	Tmp          bool
	TmpMarker    bool
	Unanswered   bool // the share did not answer the probe in time
	// LinkedShare: the shares probe found the local folder a symlink and
	// did not look at the share (Share, ShareEntries, Marker, Tmp,
	// TmpMarker unknown).
	LinkedShare bool
}

// ParseStateDirFacts reads the probe output.
func ParseStateDirFacts(out string) StateDirFacts {
	var f StateDirFacts
	var marker bool
	var lines []string
	for k, v := range installer.Assignments(out) {
		switch k {
		case "mounted":
			f.Mounted = true
		case "local":
			f.Local = v
		case "target":
			f.LinkTarget = v
		case "files":
			f.Files, _ = strconv.Atoi(strings.TrimSpace(v))
		case "bytes":
			f.Bytes, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		case "special":
			f.Special, _ = strconv.Atoi(strings.TrimSpace(v))
		case "aside":
			f.Asides = append(f.Asides, v)
		case "share":
			f.Share = v
		case "entries":
			f.ShareEntries, _ = strconv.Atoi(strings.TrimSpace(v))
		case "marker":
			// The marker's lines follow as markerline=.
			marker = true
		case "markerline":
			lines = append(lines, v)
		case "tmp":
			f.Tmp = true
		case "tmpmarker":
			f.TmpMarker = true
		case "unanswered":
			f.Unanswered = true
		case "linked":
			f.LinkedShare = true
		}
	}
	if marker {
		f.Marker = "(empty marker)"
		if len(lines) > 0 {
			f.Marker = strings.Join(lines, "\n") + "\n"
		}
	}
	return f
}

// MarkerNode returns the node= value of a marker.
func MarkerNode(marker string) string {
	for _, l := range strings.Split(marker, "\n") {
		if v, ok := strings.CutPrefix(l, "node="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// StateDir operations, in the order they run.
const (
	OpReplaceShare = "replace-share" // move the share's copy aside on the share
	OpReverify     = "reverify"      // a share folder with content but no marker: verify, mark
	OpCopy         = "copy"          // (re)copy into the temporary folder, verify, mark
	OpRename       = "rename"        // temporary folder -> share folder
	OpAside        = "aside"         // local folder -> <path>.gridha-local-<time>
	OpLink         = "link"          // path -> share
	OpMark         = "mark"          // nothing to move: mark the share as taken
)

// StateDirPlan is what a StateDir step decides from the facts.
type StateDirPlan struct {
	Ops []string
	// Refuse is set when the step must not touch anything (a conflict or a
	// state it does not recognise); it says why and what to do.
	Refuse string
	Why    string // what the ops do, for the report
}

// Decide is the pure decision of the step (tested without hosts).
func (s StateDir) Decide(f StateDirFacts) StateDirPlan {
	accepted := func(t string) bool {
		if t == s.Share {
			return true
		}
		for _, a := range s.AcceptLinks {
			if t == a {
				return true
			}
		}
		return false
	}
	populated := f.Marker != ""
	owner := MarkerNode(f.Marker)
	switch f.Local {
	case "link":
		if f.LinkTarget == "" {
			// No symlink has an empty target: the path changed between
			// the probe's look and the file fact's.
			return StateDirPlan{Refuse: fmt.Sprintf("%s changed while gridha looked at it (a symlink, then not); re-run", s.Path)}
		}
		if accepted(f.LinkTarget) {
			return StateDirPlan{Why: "linked to " + f.LinkTarget}
		}
		return StateDirPlan{Refuse: fmt.Sprintf("%s is a symlink to %s, not to the share %s; refusing to change it", s.Path, f.LinkTarget, s.Share)}
	case "other":
		return StateDirPlan{Refuse: fmt.Sprintf("%s is neither a folder nor a symlink; refusing to touch it", s.Path)}
	}
	if f.LinkedShare {
		// The shares probe saw a symlink where the step's own probe,
		// a moment apart, did not: nothing is known of the share.
		return StateDirPlan{Refuse: fmt.Sprintf("%s changed while gridha looked at it (a symlink, then %s); re-run", s.Path, f.Local)}
	}
	if !f.Mounted {
		return StateDirPlan{Refuse: fmt.Sprintf("%s is not mounted: refusing to move %s onto the local disk", s.Mount, s.Path)}
	}
	if f.Unanswered {
		return StateDirPlan{Refuse: fmt.Sprintf("the share under %s did not answer within 60 s: refusing to move %s", s.Mount, s.Path)}
	}
	if f.Share == "other" {
		return StateDirPlan{Refuse: fmt.Sprintf("%s on the share is not a folder; refusing to touch it", s.Share)}
	}
	if f.Local == "none" {
		switch {
		case populated:
			return StateDirPlan{Ops: []string{OpLink}, Why: fmt.Sprintf("no local %s: link to the share (%s's state)", s.Path, owner)}
		case len(f.Asides) > 0:
			return StateDirPlan{Refuse: fmt.Sprintf("%s is missing and the share %s holds no marked state, but %s exists: restore it by hand (mv) and re-run", s.Path, s.Share, strings.Join(f.Asides, ", "))}
		}
		// Nothing to move: mark the share as the group's state (the
		// services will write there), so later nodes know it is taken.
		return StateDirPlan{Ops: []string{OpMark, OpLink}, Why: fmt.Sprintf("no local %s: mark the share as this group's state and link", s.Path)}
	}
	// The local folder is a real folder.
	if f.Special > 0 && s.NoSpecial {
		return StateDirPlan{Refuse: fmt.Sprintf("%s holds %d fifos or device nodes, which the shared file system (sshfs) cannot keep; remove them (the services are stopped) and re-run", s.Path, f.Special)}
	}
	own := fmt.Sprintf("%d files, %d bytes", f.Files, f.Bytes)
	if populated {
		switch {
		case owner == s.Node:
			return StateDirPlan{Ops: []string{OpAside, OpLink}, Why: "share holds this node's verified copy: move " + s.Path + " aside and link"}
		case f.Files == 0:
			return StateDirPlan{Ops: []string{OpAside, OpLink}, Why: fmt.Sprintf("share already holds %s's state and %s is only the package default (no files): move it aside and link", owner, s.Path)}
		case s.StateFrom == s.Node:
			return StateDirPlan{Ops: []string{OpReplaceShare, OpCopy, OpRename, OpAside, OpLink},
				Why: fmt.Sprintf("--state-from %s: this node's %s (%s) replaces %s's copy on the share (kept aside there)", s.Node, s.Path, own, owner)}
		case s.StateFrom != "":
			return StateDirPlan{Ops: []string{OpAside, OpLink},
				Why: fmt.Sprintf("--state-from %s: the share's copy (%s's) wins; this node's own %s (%s) is kept aside", s.StateFrom, owner, s.Path, own)}
		}
		return StateDirPlan{Refuse: fmt.Sprintf("%s holds this node's own state (%s) but the share %s already holds %s's state (%s); gridha never merges or overwrites: "+
			"re-run with --state-from %s to make this node's copy win (the share's copy is kept aside on the share), or with --state-from %s to keep the share's copy (this node's is kept aside as %s%s<time>)",
			s.Path, own, s.Share, owner, oneLine(f.Marker), s.Node, owner, s.Path, AsideInfix)}
	}
	if f.ShareEntries > 0 && f.Files == 0 {
		return StateDirPlan{Ops: []string{OpMark, OpAside, OpLink}, Why: fmt.Sprintf("share %s has unmarked content and %s is only the package default (no files): mark the share, move %s aside and link", s.Share, s.Path, s.Path)}
	}
	if f.ShareEntries > 0 {
		return StateDirPlan{Ops: []string{OpReverify, OpAside, OpLink}, Why: fmt.Sprintf("share %s has content but no marker (interrupted before the marker?): verify it against %s", s.Share, s.Path)}
	}
	ops := []string{OpCopy, OpRename, OpAside, OpLink}
	why := fmt.Sprintf("copy %s (%s) to %s, verify, rename into place, move the original aside, link", s.Path, own, s.Share)
	if f.TmpMarker {
		why = fmt.Sprintf("a verified copy of %s is waiting in %s: verify again, rename into place, move the original aside, link", s.Path, s.tmp())
	} else if f.Tmp {
		why = fmt.Sprintf("a partial copy of %s (interrupted run) is in %s: copy again, ", s.Path, s.tmp()) + strings.TrimPrefix(why, "copy "+s.Path+" ("+own+") to "+s.Share+", ")
	}
	return StateDirPlan{Ops: ops, Why: why}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// CheckApply implements installer.Step.
func (s StateDir) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	f, err := s.gathered(env.Facts)
	if err != nil {
		return failed(env, s.ID(), err)
	}
	if !apply && !f.Mounted && f.Local != "link" {
		// --check before the mount exists: say what would happen.
		return installer.Missing(fmt.Sprintf("%s (%s) would move to %s once %s is mounted", s.Path, f.Local, s.Share, s.Mount))
	}
	p := s.Decide(f)
	if p.Refuse != "" {
		if !apply {
			return installer.Drift("conflict: "+p.Refuse, "symlink -> "+s.Share, "local "+f.Local)
		}
		return failed(env, s.ID(), fmt.Errorf("%s", p.Refuse))
	}
	if len(p.Ops) == 0 {
		if f.Local == "link" && f.LinkTarget == s.Share && f.Mounted && s.onServer(env) {
			return s.checkNodeView(ctx, env, p.Why)
		}
		return installer.OK(p.Why)
	}
	if !apply {
		r := installer.Missing(p.Why)
		if f.Local == "dir" || f.Local == "link" {
			r = installer.Drift(p.Why, "symlink -> "+s.Share, "local "+f.Local)
		}
		return r
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	stamp := s.Now().UTC().Format("20060102T150405Z")
	var done []string
	for _, op := range p.Ops {
		var err error
		switch op {
		case OpReplaceShare:
			aside := path.Join(path.Dir(s.Share), "."+path.Base(s.Share)+".gridha-replaced-"+safeName(MarkerNode(f.Marker))+"-"+stamp)
			_, err = sh(ctx, env, "move the share's copy aside", fmt.Sprintf("mv -T %s %s", installer.ShellQuote(s.Share), installer.ShellQuote(aside)), nil)
			if err == nil {
				done = append(done, "share's copy kept aside as "+aside)
			}
		case OpReverify:
			err = s.reverify(ctx, env, stamp)
			if err == nil {
				done = append(done, "verified the unmarked share copy and marked it")
			}
		case OpCopy:
			var what string
			what, err = s.copyVerified(ctx, env, f.TmpMarker, f.Bytes, stamp)
			if err == nil {
				done = append(done, what)
			}
		case OpRename:
			_, err = sh(ctx, env, "rename the copy into place", fmt.Sprintf("mv -T %s %s", installer.ShellQuote(s.tmp()), installer.ShellQuote(s.Share)), nil)
		case OpAside:
			aside := s.Path + AsideInfix + stamp
			_, err = sh(ctx, env, "move "+s.Path+" aside", fmt.Sprintf("mv -T %s %s", installer.ShellQuote(s.Path), installer.ShellQuote(aside)), nil)
			if err == nil {
				done = append(done, "original kept as "+aside)
			}
		case OpMark:
			marker := fmt.Sprintf("node=%s\ntime=%s\nsource=%s\nfiles=0\nbytes=0\nmoved=nothing (no local state)\n", s.Node, stamp, s.Path)
			if _, err = sh(ctx, env, "create "+s.Share, "mkdir -p "+installer.ShellQuote(s.Share), nil); err == nil {
				err = env.Conn.WriteFile(ctx, path.Join(s.Share, StateMarker), []byte(marker), 0o644, "", "")
			}
			if err == nil {
				done = append(done, "marked "+s.Share)
			}
		case OpLink:
			// A state folder whose parents do not exist (a node without
			// that service's package): create them (root, 0755) and say so.
			var res installer.CmdResult
			res, err = sh(ctx, env, "link "+s.Path, fmt.Sprintf(`L=%s; P=$(dirname "$L")
if [ ! -d "$P" ]; then
  if [ -e "$P" ] || [ -L "$P" ]; then echo "$P exists and is not a folder: cannot link $L there; move it away or change roles.rb-node.state_dirs" >&2; exit 1; fi
  (umask 022; mkdir -p "$P") && chown root:root "$P" && chmod 0755 "$P" && echo "created $P (root, 0755)" || exit 1
fi
ln -s %s "$L"`, installer.ShellQuote(s.Path), installer.ShellQuote(s.Share)), nil)
			if err == nil {
				if msg := strings.TrimSpace(string(res.Stdout)); msg != "" {
					done = append(done, msg)
				}
				done = append(done, "linked "+s.Path+" -> "+s.Share)
			}
		}
		if err != nil {
			return failed(env, s.ID(), fmt.Errorf("%s: %w", op, err))
		}
	}
	return installer.Changed(p.Why + " (" + strings.Join(done, "; ") + ")")
}

// safeName keeps a node name usable in a file name.
func safeName(s string) string {
	if s == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// copyScript copies $L into $T (fresh), holding the node's state-dir lock.
// The copy runs in the background with a watcher on the session's stdin: when
// the session dies (gridha killed, link cut) stdin ends and the watcher kills
// the copy, so no copy outlives its run.
func (s StateDir) copyScript() string {
	preserve := "cp -dR --preserve=mode,timestamps,links"
	if s.KeepOwners {
		preserve = "cp -a"
	}
	return fmt.Sprintf(`L=%s; T=%s
exec 3<&0
mkdir -p "$(dirname %s)" 2>/dev/null
exec 8>>%s || exit 70
flock -w 300 8 || { echo "another state-dir copy is still running on this node" >&2; exit 75; }
rm -rf "$T" || exit 1
need=$(du -sb "$L" | cut -f1)
avail=$(df -P -B1 "$(dirname "$T")" | awk 'NR == 2 { print $4 }')
if [ -n "$need" ] && [ -n "$avail" ] && [ "$avail" -lt "$need" ]; then
	echo "not enough space on the share: $L needs $need bytes, $avail available" >&2; exit 73
fi
mkdir "$T" || exit 1
%s "$L/." "$T/" </dev/null & c=$!
( cat >/dev/null; kill $c 2>/dev/null ) <&3 >/dev/null 2>&1 & w=$!
wait $c; rc=$?
kill $w 2>/dev/null
[ $rc -gt 128 ] && exit $rc
# Through sshfs a file's later hard links can disturb its time: set the
# times of hard-linked files again.
cd "$L" && find . -type f -links +1 -exec sh -c 'L=$1 T=$2; shift 2; for f; do touch -m -r "$L/$f" "$T/$f" || exit 1; done' sh "$L" "$T" {} + || rc=1
exit $rc
`, installer.ShellQuote(s.Path), installer.ShellQuote(s.copyTmp()), installer.ShellQuote(stateDirLock), installer.ShellQuote(stateDirLock), preserve)
}

// streamers returns the node's and the state server's connections when both
// can stream (installer/ssh) and the server's session is there: the copy is
// then a tar stream relayed by gridha (streamCopy) instead of cp through the
// mount.
func (s StateDir) streamers(ctx context.Context, env *installer.Env) (src, dst installer.StreamRunner, ok bool) {
	if !s.onServer(env) || !s.KeepOwners {
		return nil, nil, false
	}
	src, ok = env.Conn.(installer.StreamRunner)
	if !ok {
		return nil, nil, false
	}
	peer, err := env.Peer(ctx, s.ServerHost)
	if err != nil {
		return nil, nil, false
	}
	dst, ok = peer.(installer.StreamRunner)
	return src, dst, ok
}

// sendScript writes a tar of $L on stdout, holding the node's state-dir
// lock. Numeric owners: the server's names may differ; --sparse: holes stay
// holes on the server.
func (s StateDir) sendScript() string {
	return fmt.Sprintf(`L=%s
mkdir -p "$(dirname %s)" 2>/dev/null
exec 8>>%s || exit 70
flock -w 300 8 || { echo "another state-dir copy is still running on this node" >&2; exit 75; }
cd "$L" || exit 1
tar -c -f - --sparse --numeric-owner .
`, installer.ShellQuote(s.Path), installer.ShellQuote(stateDirLock), installer.ShellQuote(stateDirLock))
}

// receiveScript (on the state server, root) makes the temporary folder
// afresh and extracts the tar on stdin into it with owners (numeric), modes
// (setuid too), times, symlinks, hard links and holes, holding a lock per
// node: a receiver left by a killed run ends (its session watcher kills
// it) before the next one empties the folder. It first checks that the
// share has room (need: the bytes of the original's files).
func (s StateDir) receiveScript(need int64) string {
	lock := "/var/lock/gridha-statedir-" + safeName(s.Node) + ".lock"
	return fmt.Sprintf(`T=%s; need=%d
exec 8>>%s || exit 70
flock -w 300 8 || { echo "another state-dir copy from %s is still being written on this server" >&2; exit 75; }
rm -rf "$T" || exit 1
avail=$(df -P -B1 "$(dirname "$T")" | awk 'NR == 2 { print $4 }')
if [ -n "$avail" ] && [ "$avail" -lt "$need" ]; then
	echo "not enough space on the share: the copy needs $need bytes, $avail available" >&2; exit 73
fi
mkdir "$T" || exit 1
tar -x -f - -C "$T" --numeric-owner --same-owner --same-permissions
`, installer.ShellQuote(s.serverTmp()), need, installer.ShellQuote(lock), safeName(s.Node))
}

// streamCopy copies the local folder into the temporary folder on the
// state server as a tar stream from the node's session to the server's,
// relayed by gridha: one read of the original, one write on the server's
// own disk, no FUSE or SFTP round trip per file. Each end dies with its
// SSH connection (session watcher); when one end fails the other is
// cancelled. The receiver's complaints are returned as advisory (the
// verification decides); a failed sender, a lock or a full share are
// errors.
func (s StateDir) streamCopy(ctx context.Context, env *installer.Env, src, dst installer.StreamRunner, need int64) (string, error) {
	pr, pw := io.Pipe()
	sctx, cancelSend := context.WithCancel(ctx)
	defer cancelSend()
	rctx, cancelRecv := context.WithCancel(ctx)
	defer cancelRecv()
	type result struct {
		res installer.CmdResult
		err error
	}
	recvCh := make(chan result, 1)
	go func() {
		r, err := dst.RunStream(rctx, s.receiveScript(need), pr, nil)
		if err != nil || r.ExitCode != 0 {
			cancelSend()
		}
		// Whatever the node still sends (tar's last padding) goes nowhere:
		// drained until the sender's end closes the pipe, so the node's
		// session never waits on a reader that is gone.
		_, _ = io.Copy(io.Discard, pr)
		recvCh <- result{r, err}
	}()
	sent, sendErr := src.RunStream(sctx, s.sendScript(), nil, pw)
	if sendErr != nil || sent.ExitCode > 1 {
		// An incomplete stream must not look like a whole archive.
		cancelRecv()
		pw.CloseWithError(fmt.Errorf("the sender on %s failed", env.Host))
	} else {
		pw.Close()
	}
	recv := <-recvCh
	server := s.ServerHost
	switch {
	case recv.err == nil && (recv.res.ExitCode == 70 || recv.res.ExitCode == 73 || recv.res.ExitCode == 75):
		return "", fmt.Errorf("%s: %w", server, recv.res.Err("copy "+s.Path))
	case sendErr != nil && ctx.Err() != nil:
		return "", fmt.Errorf("copy %s: %w", s.Path, sendErr)
	case recv.err != nil && sendErr == nil && sent.ExitCode <= 1:
		return "", fmt.Errorf("copy %s: %w", s.Path, recv.err)
	case sendErr != nil && recv.err == nil && recv.res.ExitCode != 0:
		// The receiver failed first and the sender was cancelled.
		return "", fmt.Errorf("%s: %w", server, recv.res.Err("copy "+s.Path+" (tar -x)"))
	case sendErr != nil:
		return "", fmt.Errorf("copy %s: %w", s.Path, sendErr)
	case sent.ExitCode > 1:
		return "", sent.Err("copy " + s.Path + " (tar -c)")
	}
	var advisory string
	if recv.res.ExitCode != 0 {
		advisory = fmt.Sprintf(" (tar -x on %s exit %d: %s)", server, recv.res.ExitCode, firstLines(string(recv.res.Stderr), 3))
	}
	if sent.ExitCode != 0 {
		advisory += fmt.Sprintf(" (tar -c exit %d: %s)", sent.ExitCode, firstLines(string(sent.Stderr), 3))
	}
	return advisory, nil
}

// copyVerified makes sure the temporary folder holds a verified, marked copy
// of the local folder: a marked one is verified again, anything else is
// copied afresh.
func (s StateDir) copyVerified(ctx context.Context, env *installer.Env, tmpMarked bool, need int64, stamp string) (string, error) {
	// The original's manifest (a checksum of every file) is read while the
	// copy runs: the services are stopped, nothing changes it, and the two
	// use different resources (the disk and a core; the network and sshfs).
	type manifestResult struct {
		m   Manifest
		err error
	}
	localCh := make(chan manifestResult, 1)
	go func() {
		m, err := s.manifest(ctx, env.Conn, s.Path)
		localCh <- manifestResult{m, err}
	}()
	var local Manifest
	var localErr error
	read := false
	readLocal := func() error {
		if !read {
			r := <-localCh
			read, local, localErr = true, r.m, r.err
		}
		if localErr != nil {
			return fmt.Errorf("read %s: %w", s.Path, localErr)
		}
		return nil
	}
	defer func() { _ = readLocal() }() // never leave the goroutine behind
	if tmpMarked {
		if err := readLocal(); err != nil {
			return "", err
		}
		if copyM, err := s.shareManifest(ctx, env, true); err == nil {
			if diffs := CompareManifestsWith(local, copyM, CompareOptions{Owners: s.KeepOwners, LinkTimes: s.onServer(env)}); len(diffs) == 0 {
				return "re-verified the waiting copy", nil
			}
		}
		if env.Log != nil {
			env.Log("the waiting copy in %s no longer matches %s: copying again", s.tmp(), s.Path)
		}
	}
	if env.Log != nil {
		env.Log("copying %s to %s", s.Path, s.tmp())
	}
	var cpErr string
	if src, dst, ok := s.streamers(ctx, env); ok {
		// A tar stream relayed by gridha from the node to the server.
		var err error
		if cpErr, err = s.streamCopy(ctx, env, src, dst, need); err != nil {
			return "", err
		}
	} else {
		// Stdin stays open for the session's life: the remote watcher
		// kills the copy when it ends.
		pr, pw := io.Pipe()
		defer pw.Close()
		res, err := env.Conn.Run(ctx, s.copyScript(), pr)
		if err != nil {
			return "", fmt.Errorf("copy %s: %w", s.Path, err)
		}
		// cp's own complaints are advisory (through sshfs it cannot set the
		// times of symlinks, which the verification leaves out): the
		// verification decides. A lock failure is final.
		switch res.ExitCode {
		case 0:
		case 70, 73, 75:
			return "", res.Err("copy " + s.Path)
		default:
			cpErr = fmt.Sprintf(" (cp exit %d: %s)", res.ExitCode, firstLines(string(res.Stderr), 3))
		}
	}
	if err := readLocal(); err != nil {
		return "", err
	}
	copyM, err := s.shareManifest(ctx, env, true)
	if err != nil {
		return "", fmt.Errorf("read the copy%s: %w", cpErr, err)
	}
	if copyM, err = s.fixOnServer(ctx, env, local, copyM); err != nil {
		return "", err
	}
	if diffs := CompareManifestsWith(local, copyM, CompareOptions{Owners: s.KeepOwners, LinkTimes: s.onServer(env)}); len(diffs) > 0 {
		return "", fmt.Errorf("the copy in %s differs from %s (left there; the next run copies again): %s%s", s.tmp(), s.Path, strings.Join(firstN(diffs, 5), "; "), cpErr)
	}
	if err := s.writeOwnersAndMarker(ctx, env, s.tmp(), local, stamp); err != nil {
		return "", err
	}
	files, bytes := local.Totals()
	return fmt.Sprintf("copied and verified %d files, %d bytes (sha256 of every file)", files, bytes), nil
}

func (s StateDir) onServer(env *installer.Env) bool { return s.ServerHost != "" && env.Peer != nil }

// checkNodeView compares the share folder as the node sees it through the
// mount with the folder on the state server: kinds, modes, numeric owners,
// symlink targets and sizes of every entry. What the node sees is what its
// services get; a mount that lost owners or permissions (an old sshfs
// mount, idmap, a missing bindfs layer) or cannot read symlinks shows here.
// The services write while this runs: an entry only one side lists counts
// when it is older than a minute.
func (s StateDir) checkNodeView(ctx context.Context, env *installer.Env, why string) installer.Result {
	read := func(c installer.Conn, dir string) (Manifest, error) {
		res, err := c.Run(ctx, "D="+installer.ShellQuote(dir)+"\n"+manifestMetaScript, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Host(), err)
		}
		if err := res.Err("list " + dir); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Host(), err)
		}
		m, err := ParseManifest(res.Stdout)
		if err != nil {
			return nil, err
		}
		return m.withoutGridhaFiles(), nil
	}
	peer, err := env.Peer(ctx, s.ServerHost)
	if err != nil {
		return failed(env, s.ID(), err)
	}
	// The run's batched reads first (one session per host for all the
	// folders); only a difference there costs this folder's own reads.
	if srvM, ok := readViews(ctx, env, peer, "server", s.ServerPath, s.ServerPaths); ok {
		view, ok := s.probedView(env)
		if !ok {
			view, ok = readViews(ctx, env, env.Conn, "node", s.Share+"/", s.shareDirs())
		}
		if ok && len(CompareNodeView(srvM, view, time.Now().Add(-time.Minute).Unix())) == 0 {
			return s.nodeViewOK(why, len(srvM))
		}
	}
	srvM, err := read(peer, s.ServerPath)
	if err != nil {
		return failed(env, s.ID(), err)
	}
	view, err := read(env.Conn, s.Share+"/")
	if err != nil {
		return installer.Drift(fmt.Sprintf("linked, but %s cannot be listed through the mount: %v", s.Share, err), "the share as on "+s.ServerHost, "unreadable")
	}
	if diffs := CompareNodeView(srvM, view, time.Now().Add(-time.Minute).Unix()); len(diffs) > 0 {
		return installer.Drift(fmt.Sprintf("linked, but what %s sees through %s differs from the share on %s: %s", env.Host, s.Mount, s.ServerHost, strings.Join(firstN(diffs, 5), "; ")),
			"the share as on "+s.ServerHost, "the view through the mount")
	}
	return s.nodeViewOK(why, len(srvM))
}

func (s StateDir) nodeViewOK(why string, entries int) installer.Result {
	return installer.OK(fmt.Sprintf("%s; the view through the mount equals the share on %s (%d entries: kinds, modes, owners, links, sizes)", why, s.ServerHost, entries))
}

// shareDirs are Shares as checkNodeView lists them (a trailing slash: the
// folder behind a symlink, not the link).
func (s StateDir) shareDirs() []string {
	out := make([]string, len(s.Shares))
	for i, d := range s.Shares {
		out[i] = d + "/"
	}
	return out
}

// CompareNodeView compares a folder on the state server (srv) with the
// node's view of it through the mount: kinds, modes, numeric owners, symlink
// targets, sizes of regular files. An entry only one side lists counts when
// its time is before settled (Unix seconds): newer ones may be being written.
func CompareNodeView(srv, view Manifest, settled int64) []string {
	return diffManifests(srv, view, func(p string, o *ManifestEntry) string {
		if o.MTime < settled {
			return "not seen through the mount: " + p
		}
		return ""
	}, func(p string, o, v *ManifestEntry) string {
		switch {
		case o.Kind != v.Kind:
			return fmt.Sprintf("%s: kind %s, through the mount %s", p, o.Kind, v.Kind)
		case o.Kind != "l" && o.Mode != v.Mode:
			return fmt.Sprintf("%s: mode %s, through the mount %s", p, o.Mode, v.Mode)
		case o.UID != v.UID || o.GID != v.GID:
			return fmt.Sprintf("%s: owner %s:%s, through the mount %s:%s", p, o.UID, o.GID, v.UID, v.GID)
		case o.Kind == "l" && o.Link != v.Link:
			return fmt.Sprintf("%s: link to %q, through the mount %q", p, o.Link, v.Link)
		case o.Kind == "f" && o.Size != v.Size && o.MTime < settled:
			return fmt.Sprintf("%s: %d bytes, through the mount %d", p, o.Size, v.Size)
		}
		return ""
	}, func(p string, v *ManifestEntry) string {
		if v.MTime < settled {
			return "only seen through the mount: " + p
		}
		return ""
	})
}

// diffManifests walks a's entries in path order against b's, sockets left
// out on both sides (they do not survive a copy and mean nothing once their
// daemon is stopped): missing says what an entry of a that b lacks means,
// differ what an entry both list means, extra what one only b lists means;
// "" is no difference. The extras come last, sorted.
func diffManifests(a, b Manifest, missing func(p string, e *ManifestEntry) string, differ func(p string, x, y *ManifestEntry) string, extra func(p string, e *ManifestEntry) string) []string {
	var diffs, extras []string
	for _, p := range a.Paths() {
		x := a[p]
		if x.Kind == "s" {
			continue
		}
		d := ""
		if y, ok := b[p]; ok {
			d = differ(p, x, y)
		} else {
			d = missing(p, x)
		}
		if d != "" {
			diffs = append(diffs, d)
		}
	}
	for p, y := range b {
		if _, ok := a[p]; !ok && y.Kind != "s" {
			if d := extra(p, y); d != "" {
				extras = append(extras, d)
			}
		}
	}
	sort.Strings(extras)
	return append(diffs, extras...)
}

// fixOnServer finishes a copy on the state server (gridha's root session
// there) where SFTP cannot: symlinks get their originals' owners (chown -h:
// SFTP's setstat follows links, a dangling one fails) and times (touch -h:
// no SFTP request sets a symlink's time; cp's attempt through FUSE sets the
// *target's* time instead), and any entry whose time or owner the copy got
// wrong gets the original's. It returns the copy's manifest read again
// (metadata only; checksums kept from copyM, the fixes touch no content).
// Without a server session it does nothing.
func (s StateDir) fixOnServer(ctx context.Context, env *installer.Env, local, copyM Manifest) (Manifest, error) {
	if !s.onServer(env) {
		return copyM, nil
	}
	var in bytes.Buffer
	for p, e := range local {
		c := copyM[p]
		if c == nil || e.Kind == "s" || p == "." {
			continue
		}
		if e.Kind == "l" || c.MTime != e.MTime || c.UID != e.UID || c.GID != e.GID {
			fmt.Fprintf(&in, "%s:%s\x00@%d\x00%s\x00", e.UID, e.GID, e.MTime, p)
		}
	}
	if in.Len() == 0 {
		return copyM, nil
	}
	c, err := env.Peer(ctx, s.ServerHost)
	if err != nil {
		return nil, err
	}
	dir := s.serverTmp()
	script := "cd " + installer.ShellQuote(dir) + ` && xargs -0 -n 3 sh -c 'chown -h "$1" -- "$3" && touch -h -m -d "$2" -- "$3"' sh`
	res, err := c.Run(ctx, script, &in)
	if err != nil {
		return nil, fmt.Errorf("%s: set owners and times: %w", s.ServerHost, err)
	}
	if err := res.Err("set owners and times in " + dir); err != nil {
		return nil, fmt.Errorf("%s: %w", s.ServerHost, err)
	}
	res, err = c.Run(ctx, "D="+installer.ShellQuote(dir)+"\n"+manifestMetaScript, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.ServerHost, err)
	}
	if err := res.Err("list " + dir); err != nil {
		return nil, fmt.Errorf("%s: %w", s.ServerHost, err)
	}
	m, err := ParseManifest(res.Stdout)
	if err != nil {
		return nil, err
	}
	for p, e := range m {
		if old := copyM[p]; old != nil {
			e.SHA256 = old.SHA256
		}
	}
	return m.withoutGridhaFiles(), nil
}

// reverify checks an unmarked share folder against the local folder and
// marks it when they are equal.
func (s StateDir) reverify(ctx context.Context, env *installer.Env, stamp string) error {
	local, err := s.manifest(ctx, env.Conn, s.Path)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.Path, err)
	}
	shareM, err := s.shareManifest(ctx, env, false)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.Share, err)
	}
	if diffs := CompareManifests(local, shareM, s.KeepOwners); len(diffs) > 0 {
		return fmt.Errorf("%s holds files but no marker and differs from %s (%s): not written by gridha from this node; compare them and empty one by hand", s.Share, s.Path, strings.Join(firstN(diffs, 3), "; "))
	}
	return s.writeOwnersAndMarker(ctx, env, s.Share, local, stamp)
}

func (s StateDir) writeOwnersAndMarker(ctx context.Context, env *installer.Env, dir string, local Manifest, stamp string) error {
	if err := env.Conn.WriteFile(ctx, path.Join(dir, OwnersFile), local.OwnersFile(), 0o600, "", ""); err != nil {
		return fmt.Errorf("write %s: %w", OwnersFile, err)
	}
	files, bytes := local.Totals()
	marker := fmt.Sprintf("node=%s\ntime=%s\nsource=%s\nfiles=%d\nbytes=%d\n", s.Node, stamp, s.Path, files, bytes)
	if err := env.Conn.WriteFile(ctx, path.Join(dir, StateMarker), []byte(marker), 0o644, "", ""); err != nil {
		return fmt.Errorf("write %s: %w", StateMarker, err)
	}
	return nil
}

// shareManifest reads the temporary folder (tmp) or the share folder, on
// the state server when ServerHost is set, else through the mount.
func (s StateDir) shareManifest(ctx context.Context, env *installer.Env, tmp bool) (Manifest, error) {
	dir := s.Share
	if tmp {
		dir = s.tmp()
	}
	conn := env.Conn
	if s.ServerHost != "" && env.Peer != nil {
		c, err := env.Peer(ctx, s.ServerHost)
		if err != nil {
			return nil, err
		}
		conn = c
		dir = s.ServerPath
		if tmp {
			dir = s.serverTmp()
		}
	}
	m, err := s.manifest(ctx, conn, dir)
	if err != nil {
		return nil, err
	}
	return m.withoutGridhaFiles(), nil
}

// manifestScript lists every entry under $1 (NUL-separated fields), then
// the sha256 of every regular file. With openssl (its SHA-256 uses the
// CPU's SHA instructions: ~3.5x faster than coreutils' sha256sum on the bed)
// the files go in batches (xargs): "@@B <n>", the n names, "@@H", then
// openssl's n lines in the order of the names and a NUL. The names are taken from the
// batch, never parsed out of openssl's lines (it escapes some: a name with a
// newline gets a leading backslash and "\n"). Without openssl, sha256sum -z.
const manifestScript = `cd "$D" || exit 3
find . -printf '%y\0%m\0%T@\0%s\0%i\0%n\0%U\0%G\0%u\0%g\0%l\0%p\0' || exit 4
printf '@@SHA\0'
if command -v openssl >/dev/null 2>&1; then
  find . -type f -print0 | xargs -0r sh -c 'printf "@@B %d\0" $#; printf "%s\0" "$@"; printf "@@H\0"; openssl dgst -sha256 -r -- "$@" || exit 1; printf "\0"' sh || exit 5
else
  find . -type f -print0 | xargs -0r sha256sum -z || exit 5
fi
`

// manifestMetaScript is manifestScript without the checksums.
const manifestMetaScript = `cd "$D" || exit 3
find . -printf '%y\0%m\0%T@\0%s\0%i\0%n\0%U\0%G\0%u\0%g\0%l\0%p\0' || exit 4
printf '@@SHA\0'
`

// ManifestScript is the shell script that lists dir for ParseManifest.
func ManifestScript(dir string) string {
	return "D=" + installer.ShellQuote(dir) + "\n" + manifestScript
}

func (s StateDir) manifest(ctx context.Context, conn installer.Conn, dir string) (Manifest, error) {
	res, err := conn.Run(ctx, ManifestScript(dir), nil)
	if err != nil {
		return nil, err
	}
	if err := res.Err("list " + dir); err != nil {
		return nil, fmt.Errorf("%s: %w", conn.Host(), err)
	}
	return ParseManifest(res.Stdout)
}

// ManifestEntry is one path of a state folder.
type ManifestEntry struct {
	Kind     string // find %y: f d l s p b c
	Mode     string // octal, with setuid/setgid/sticky
	MTime    int64  // seconds
	Size     int64
	Inode    string
	NLink    int
	UID, GID string
	User     string
	Group    string
	Link     string
	SHA256   string
	HardLink string // first path (sorted) of its hard-link group in the tree, "" when alone
}

// Manifest maps a path relative to the folder ("." for itself) to its entry.
type Manifest map[string]*ManifestEntry

// Paths returns the manifest's paths in sorted order: every comparison and
// rendering walks entries in the same, stable order.
func (m Manifest) Paths() []string {
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}

// ParseManifest reads manifestScript's output.
func ParseManifest(out []byte) (Manifest, error) {
	parts := bytes.Split(out, []byte{0})
	m := Manifest{}
	i := 0
	for ; i < len(parts); i += 12 {
		if string(parts[i]) == "@@SHA" {
			break
		}
		if i+12 > len(parts) {
			return nil, fmt.Errorf("manifest: truncated record")
		}
		f := parts[i : i+12]
		sec, _, _ := strings.Cut(string(f[2]), ".")
		mt, _ := strconv.ParseInt(sec, 10, 64)
		size, _ := strconv.ParseInt(string(f[3]), 10, 64)
		nl, _ := strconv.Atoi(string(f[5]))
		p := normRel(string(f[11]))
		m[p] = &ManifestEntry{Kind: string(f[0]), Mode: string(f[1]), MTime: mt, Size: size, Inode: string(f[4]), NLink: nl,
			UID: string(f[6]), GID: string(f[7]), User: string(f[8]), Group: string(f[9]), Link: string(f[10])}
	}
	if i >= len(parts) {
		return nil, fmt.Errorf("manifest: no checksum section")
	}
	sums := parts[i+1:]
	for j := 0; j < len(sums); j++ {
		rec := sums[j]
		if len(rec) == 0 {
			continue
		}
		if n, ok := strings.CutPrefix(string(rec), "@@B "); ok {
			k, err := parseSHABatch(m, n, sums[j+1:])
			if err != nil {
				return nil, err
			}
			j += k
			continue
		}
		sum, p, ok := strings.Cut(string(rec), "  ")
		if !ok {
			return nil, fmt.Errorf("manifest: bad checksum record %q", rec)
		}
		// A file created after the listing: not part of this manifest.
		if e := m[normRel(p)]; e != nil {
			e.SHA256 = sum
		}
	}
	groups := map[string][]string{}
	for p, e := range m {
		if e.Kind == "f" && e.NLink > 1 {
			groups[e.Inode] = append(groups[e.Inode], p)
		}
	}
	for _, ps := range groups {
		if len(ps) < 2 {
			continue
		}
		sort.Strings(ps)
		for _, p := range ps {
			m[p].HardLink = ps[0]
		}
	}
	return m, nil
}

// parseSHABatch reads one openssl batch of manifestScript's checksum
// section: after "@@B <n>" (n given), the n names, "@@H", then openssl's
// lines, one per name in the same order (a leading backslash when openssl
// escaped the name, then 64 hex digits and " *name"). It returns how many
// NUL-separated parts it used.
func parseSHABatch(m Manifest, n string, rest [][]byte) (int, error) {
	count, err := strconv.Atoi(n)
	if err != nil || count <= 0 || len(rest) < count+2 || string(rest[count]) != "@@H" {
		return 0, fmt.Errorf("manifest: bad checksum batch %q", n)
	}
	names, out := rest[:count], rest[count+1]
	for _, name := range names {
		line, tail, ok := bytes.Cut(out, []byte{'\n'})
		if !ok {
			return 0, fmt.Errorf("manifest: no checksum of %q", name)
		}
		out = tail
		line = bytes.TrimPrefix(line, []byte{'\\'})
		if len(line) < 66 || string(line[64:66]) != " *" {
			return 0, fmt.Errorf("manifest: bad checksum line for %q", name)
		}
		sum := string(line[:64])
		if _, err := hex.DecodeString(sum); err != nil {
			return 0, fmt.Errorf("manifest: bad checksum for %q", name)
		}
		// A file created after the listing (a live folder) is hashed but
		// not listed: it is not part of this manifest.
		if e := m[normRel(string(name))]; e != nil {
			e.SHA256 = sum
		}
	}
	if len(out) != 0 {
		return 0, fmt.Errorf("manifest: %d bytes of checksums left over in a batch of %d", len(out), count)
	}
	return count + 2, nil
}

func normRel(p string) string {
	if p == "." {
		return "."
	}
	return strings.TrimPrefix(p, "./")
}

func (m Manifest) withoutGridhaFiles() Manifest {
	out := Manifest{}
	for p, e := range m {
		if p == StateMarker || p == OwnersFile || strings.HasPrefix(p, "."+StateMarker+".") || strings.HasPrefix(p, "."+OwnersFile+".") {
			continue
		}
		out[p] = e
	}
	return out
}

// Totals counts regular files and their bytes.
func (m Manifest) Totals() (files int, bytes int64) {
	for _, e := range m {
		if e.Kind == "f" {
			files++
			bytes += e.Size
		}
	}
	return files, bytes
}

// OwnersFile renders the owners of every entry, one per line:
// "uid:gid user:group "quoted path"" (sorted by path).
func (m Manifest) OwnersFile() []byte {
	paths := m.Paths()
	var b strings.Builder
	b.WriteString("# owners of the state folder before gridha moved it (uid:gid user:group path); sshfs keeps no owners\n")
	for _, p := range paths {
		e := m[p]
		if e.Kind == "s" {
			continue
		}
		fmt.Fprintf(&b, "%s:%s %s:%s %s\n", e.UID, e.GID, e.User, e.Group, strconv.Quote(p))
	}
	return []byte(b.String())
}

// CompareManifests lists the differences between an original folder and its
// copy: entries, kinds, modes, sizes, checksums, symlink targets, hard-link
// groups, modification times (seconds; not of the folder itself, which the
// marker touches, nor of symlinks, which SFTP cannot set) and, with owners,
// numeric owners. Sockets are left out: they do not survive a copy and
// mean nothing once their daemon is stopped.
func CompareManifests(orig, cp Manifest, owners bool) []string {
	return CompareManifestsWith(orig, cp, CompareOptions{Owners: owners})
}

// CompareOptions say what CompareManifestsWith compares beyond entries,
// kinds, modes, sizes and symlink targets.
type CompareOptions struct {
	Owners    bool // numeric owners
	LinkTimes bool // modification times of symlinks too (set with touch -h on the server)
	// NodeView compares a folder as a node sees it through the mount with
	// the server's: no checksums (not read), no hard-link groups (SFTP
	// shows no link counts).
	NodeView bool
}

// CompareManifestsWith is CompareManifests with options.
func CompareManifestsWith(orig, cp Manifest, opt CompareOptions) []string {
	return diffManifests(orig, cp, func(p string, _ *ManifestEntry) string {
		return "missing " + p
	}, func(p string, o, c *ManifestEntry) string {
		switch {
		case o.Kind != c.Kind:
			return fmt.Sprintf("%s: kind %s, copy %s", p, o.Kind, c.Kind)
		case o.Kind != "l" && o.Mode != c.Mode:
			return fmt.Sprintf("%s: mode %s, copy %s", p, o.Mode, c.Mode)
		case o.Kind == "f" && (o.Size != c.Size || (!opt.NodeView && o.SHA256 != c.SHA256)):
			return fmt.Sprintf("%s: content differs (%d bytes, copy %d)", p, o.Size, c.Size)
		case o.Kind == "l" && o.Link != c.Link:
			return fmt.Sprintf("%s: link to %s, copy to %s", p, o.Link, c.Link)
		case (o.Kind != "l" || opt.LinkTimes) && p != "." && o.MTime != c.MTime:
			return fmt.Sprintf("%s: modified %d, copy %d", p, o.MTime, c.MTime)
		case !opt.NodeView && o.HardLink != c.HardLink:
			return fmt.Sprintf("%s: hard link of %q, copy of %q", p, o.HardLink, c.HardLink)
		case opt.Owners && (o.UID != c.UID || o.GID != c.GID):
			return fmt.Sprintf("%s: owner %s:%s, copy %s:%s", p, o.UID, o.GID, c.UID, c.GID)
		}
		return ""
	}, func(p string, _ *ManifestEntry) string {
		return "extra " + p
	})
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
}

func firstLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = append(l[:n], fmt.Sprintf("... %d more lines", len(l)-n))
	}
	return strings.Join(l, " | ")
}
