package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/gridha/gridha/installer"
)

// fileFact returns what the batch found at path.
func fileFact(env *installer.Env, path string) (installer.FileFact, error) {
	return env.Facts.File(path)
}

// sh runs script on the host and turns a non-zero exit into an error naming
// what (never the script itself, which may be long).
func sh(ctx context.Context, env *installer.Env, what, script string, stdin io.Reader) (installer.CmdResult, error) {
	res, err := env.Conn.Run(ctx, script, stdin)
	if err != nil {
		return res, fmt.Errorf("%s: %s: %w", env.Host, what, err)
	}
	if err := res.Err(what); err != nil {
		return res, fmt.Errorf("%s: %w", env.Host, err)
	}
	return res, nil
}

// writeOrFix converges a file: writes content with mode, owner and group
// when write is set, else runs the fixes of its mode and owner (attrDiffs).
func writeOrFix(ctx context.Context, env *installer.Env, path string, write bool, content []byte, mode fs.FileMode, owner, group string, fix []string) error {
	if write {
		return env.Conn.WriteFile(ctx, path, content, mode, owner, group)
	}
	if len(fix) > 0 {
		_, err := sh(ctx, env, "set mode/owner of "+path, strings.Join(fix, " && "), nil)
		return err
	}
	return nil
}

// failed wraps err with the host and step.
func failed(env *installer.Env, id string, err error) installer.Result {
	return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, id, err))
}

// attrs are the mode and ownership a path should have; zero values mean
// "leave as it is".
type attrs struct {
	Mode         fs.FileMode
	Owner, Group string
}

// attrDiffs lists how ff differs from want, as human phrases and as
// properties (mode, owner, group), and the shell commands that fix it.
func attrDiffs(ff installer.FileFact, want attrs) (diffs []string, props []installer.PropertyDrift, fix []string) {
	q := installer.ShellQuote(ff.Path)
	if want.Mode != 0 && modeBits(ff.Mode) != modeBits(want.Mode) {
		diffs = append(diffs, fmt.Sprintf("mode %s, want %s", installer.OctalMode(ff.Mode), installer.OctalMode(want.Mode)))
		props = append(props, installer.Prop("mode", installer.OctalMode(want.Mode), installer.OctalMode(ff.Mode)))
		fix = append(fix, fmt.Sprintf("chmod %s %s", installer.OctalMode(want.Mode), q))
	}
	ownerBad := want.Owner != "" && !sameID(want.Owner, ff.Owner, ff.UID)
	groupBad := want.Group != "" && !sameID(want.Group, ff.Group, ff.GID)
	if ownerBad {
		props = append(props, installer.Prop("owner", want.Owner, ff.Owner))
	}
	if groupBad {
		props = append(props, installer.Prop("group", want.Group, ff.Group))
	}
	if ownerBad || groupBad {
		diffs = append(diffs, fmt.Sprintf("owner %s:%s, want %s:%s", ff.Owner, ff.Group, or(want.Owner, ff.Owner), or(want.Group, ff.Group)))
		spec := want.Owner
		if groupBad {
			spec += ":" + want.Group
		}
		fix = append(fix, fmt.Sprintf("chown -h %s %s", installer.ShellQuote(spec), q))
	}
	return diffs, props, fix
}

// sameID compares a wanted user or group (name or number) with what stat
// reported.
func sameID(want, name string, id int) bool {
	return want == name || want == fmt.Sprint(id)
}

func modeBits(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// kindName says what a path is, for messages.
func kindName(ff installer.FileFact) string {
	switch ff.Kind {
	case installer.KindFile:
		return "a regular file"
	case installer.KindDir:
		return "a directory"
	case installer.KindSymlink:
		return "a symlink to " + ff.LinkTarget
	case installer.KindNone:
		return "absent"
	}
	return "a special file"
}

// kindWord is kindName without the article, for properties.
func kindWord(ff installer.FileFact) string {
	if !ff.Exists {
		return "absent"
	}
	return strings.TrimPrefix(strings.TrimPrefix(kindName(ff), "a "), "an ")
}

// contentSummary describes content for a "content" property: its size
// and the start of its SHA-256, or only that it is secret.
func contentSummary(c []byte, secret bool) string {
	if secret {
		return "(secret, not shown)"
	}
	sum := sha256.Sum256(c)
	return fmt.Sprintf("%d bytes, sha256 %s", len(c), hex.EncodeToString(sum[:6]))
}
