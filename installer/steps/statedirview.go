package steps

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/gridha/gridha/installer"
)

// A verify compares every state dir of every node with its share on the
// state server (checkNodeView). Read one folder per session, that is two
// sessions per node and state dir, two of them on the one state server for
// every node: the server's cost grew with the number of nodes. Instead the
// first step that needs a folder on a host reads every folder of the batch
// on that host in one session (StateDir.ServerPaths on the server,
// StateDir.Shares on the node), kept for the run (installer.Shared). A batch
// read is a snapshot taken earlier than the step's own moment: a step whose
// batched views differ (or whose folder could not be read in the batch)
// reads both sides again, one at a time, as before, and reports only what
// that fresh comparison finds.

// viewBatch is one host's folders read together, once per run.
type viewBatch struct {
	once sync.Once
	m    map[string]Manifest // folder -> manifest, gridha's own files left out
}

// readViews returns the manifest of dir read as part of dirs on c in one
// session, shared by the steps of the run (key names the host and side);
// ok is false when the batch could not give it (then read it alone).
func readViews(ctx context.Context, env *installer.Env, c installer.Conn, side, dir string, dirs []string) (Manifest, bool) {
	if len(dirs) == 0 {
		return nil, false
	}
	b, shared, err := installer.Shared(env, viewsKey(side, c.Host(), dirs), func() (*viewBatch, error) { return &viewBatch{}, nil })
	if err != nil || !shared {
		return nil, false
	}
	b.once.Do(func() { b.m = readViewBatch(ctx, c, dirs) })
	m, ok := b.m[dir]
	return m, ok
}

// viewsKey names the run's batch of dirs read on host (side "server" or
// "node").
func viewsKey(side, host string, dirs []string) string {
	return "statedir-views\x00" + side + "\x00" + host + "\x00" + strings.Join(dirs, "\x00")
}

// ServerViewsProbe lists dirs (StateDir.ServerPaths: every share folder the
// run's nodes compare their view with) in the state server's own fact
// batch, and PrimeServerViews hands that listing to the nodes' StateDir
// steps of later phases: the one find runs in the session the server opens
// anyway, instead of a session of its own when the first node asks (an SSH
// channel, a login shell, sh and the session's prelude on the server, every
// verify). Like any batch read it is a snapshot: a node whose view differs
// from it reads both sides again (checkNodeView).
func ServerViewsProbe(dirs []string) installer.Probe {
	sum := sha256.Sum256([]byte(strings.Join(dirs, "\x00")))
	return installer.Probe{Key: "statedir-server-views:" + hex.EncodeToString(sum[:8]), Script: multiListScript(dirs)}
}

// PrimeServerViews keeps what ServerViewsProbe(dirs) found on env's host
// (the state server, in its own step) as the run's batch of those folders
// on that host. false: nothing kept (no complete listing, no run; a node
// then reads them itself).
func PrimeServerViews(env *installer.Env, dirs []string) bool {
	if len(dirs) == 0 || env.Facts == nil || env.Conn == nil {
		return false
	}
	pr, ok := env.Facts.Get(ServerViewsProbe(dirs).Key)
	if !ok || pr.ExitCode != 0 {
		return false
	}
	got, ok := parseMultiList(pr.Stdout, dirs)
	if !ok {
		return false
	}
	b, shared, err := installer.Shared(env, viewsKey("server", env.Conn.Host(), dirs), func() (*viewBatch, error) { return &viewBatch{}, nil })
	if err != nil || !shared {
		return false
	}
	primed := false
	b.once.Do(func() { b.m, primed = got, true })
	return primed
}

// readViewBatch lists dirs on c in one session (manifestMetaScript for each,
// framed by a random marker); a folder that could not be listed is absent
// from the result.
func readViewBatch(ctx context.Context, c installer.Conn, dirs []string) map[string]Manifest {
	var nb [8]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return nil
	}
	mk := "@@GRIDHA-VIEW-" + hex.EncodeToString(nb[:])
	// One find for every folder first (the state server lists two
	// folders per rb node: a find each cost more than the rest of its
	// verify); when that find fails anywhere (a folder missing or
	// unreadable), which folder failed is unknown: list them one by one.
	if res, err := c.Run(ctx, multiListScript(dirs), nil); err == nil && res.ExitCode == 0 {
		if got, ok := parseMultiList(res.Stdout, dirs); ok {
			return got
		}
	}
	res, err := c.Run(ctx, viewBatchScript(dirs, mk), nil)
	if err != nil || res.ExitCode != 0 {
		return nil
	}
	return parseViewBatch(res.Stdout, mk, dirs)
}

// multiListCmd lists the folders named by args (shell words, each ending
// in "/": the folder behind a symlink) with one find, then "@@END <exit
// code>": installer.ShareListFormat, manifestMetaScript's record with the
// starting point first and the path relative to it.
func multiListCmd(args string) string { return installer.ShareListCmd(args) }

func multiListScript(dirs []string) string {
	var args strings.Builder
	for i, d := range dirs {
		if i > 0 {
			args.WriteByte(' ')
		}
		args.WriteString(installer.ShellQuote(strings.TrimSuffix(d, "/") + "/"))
	}
	return multiListCmd(args.String())
}

// parseMultiList reads multiListCmd's output: the manifest of each of dirs
// (gridha's own files left out), as manifestMetaScript would give it. ok
// is false unless find exited 0 and listed every folder. Records are read
// by position (13 fields), so no file name can pass for the end.
func parseMultiList(out []byte, dirs []string) (map[string]Manifest, bool) {
	parts := bytes.Split(out, []byte{0})
	byStart := map[string]Manifest{}
	i := 0
	for ; i+13 <= len(parts); i += 13 {
		if bytes.HasPrefix(parts[i], []byte("@@END ")) {
			break
		}
		f := parts[i : i+13]
		start := string(f[0])
		m := byStart[start]
		if m == nil {
			m = Manifest{}
			byStart[start] = m
		}
		sec, _, _ := strings.Cut(string(f[3]), ".")
		mt, _ := strconv.ParseInt(sec, 10, 64)
		size, _ := strconv.ParseInt(string(f[4]), 10, 64)
		nl, _ := strconv.Atoi(string(f[6]))
		p := string(f[12])
		if p == "" {
			p = "."
		}
		m[p] = &ManifestEntry{Kind: string(f[1]), Mode: string(f[2]), MTime: mt, Size: size, Inode: string(f[5]), NLink: nl,
			UID: string(f[7]), GID: string(f[8]), User: string(f[9]), Group: string(f[10]), Link: string(f[11])}
	}
	if i >= len(parts) || string(parts[i]) != "@@END 0" {
		return nil, false
	}
	got := map[string]Manifest{}
	for _, d := range dirs {
		m := byStart[strings.TrimSuffix(d, "/")+"/"]
		if m == nil || m["."] == nil {
			return nil, false
		}
		got[d] = m.withoutGridhaFiles()
	}
	return got, true
}

func viewBatchScript(dirs []string, mk string) string {
	var script strings.Builder
	for i, d := range dirs {
		fmt.Fprintf(&script, "printf '%s B %d\\0'\n(D=%s\n%s) 2>/dev/null </dev/null\nprintf '%s E %d %%s\\0' $?\n",
			mk, i, installer.ShellQuote(d), manifestMetaScript, mk, i)
	}
	return script.String()
}

// parseViewBatch cuts readViewBatch's output into the folders' manifests.
func parseViewBatch(out []byte, mk string, dirs []string) map[string]Manifest {
	got := map[string]Manifest{}
	for i, d := range dirs {
		begin := []byte(fmt.Sprintf("%s B %d\x00", mk, i))
		j := bytes.Index(out, begin)
		if j < 0 {
			continue
		}
		body := out[j+len(begin):]
		endm := []byte(fmt.Sprintf("%s E %d ", mk, i))
		k := bytes.Index(body, endm)
		if k < 0 {
			continue
		}
		rest := body[k+len(endm):]
		z := bytes.IndexByte(rest, 0)
		if z < 0 {
			continue
		}
		if rc, err := strconv.Atoi(string(rest[:z])); err != nil || rc != 0 {
			continue
		}
		m, err := ParseManifest(body[:k])
		if err != nil {
			continue
		}
		got[d] = m.withoutGridhaFiles()
	}
	return got
}
