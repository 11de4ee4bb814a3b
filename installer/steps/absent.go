package steps

import (
	"context"
	"fmt"

	"github.com/gridha/gridha/installer"
)

// Absent removes a file, symlink (never what it points to) or empty
// directory. A non-empty directory is refused unless Recursive.
type Absent struct {
	Path      string
	Recursive bool
}

// ID implements installer.Step.
func (a Absent) ID() string { return "absent " + a.Path }

func dirEmptyKey(path string) string { return "dir-empty:" + path }

// Probes implements installer.Step.
func (a Absent) Probes() []installer.Probe {
	q := installer.ShellQuote(a.Path)
	return []installer.Probe{
		installer.FileProbe(a.Path),
		// Prints the first entry of a directory (nothing when empty).
		{Key: dirEmptyKey(a.Path), Script: fmt.Sprintf("[ -d %s ] && [ ! -L %s ] && ls -A %s | head -n 1", q, q, q)},
	}
}

// CheckApply implements installer.Step.
func (a Absent) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	ff, err := fileFact(env, a.Path)
	if err != nil {
		return failed(env, a.ID(), err)
	}
	if !ff.Exists {
		return installer.OK("")
	}
	q := installer.ShellQuote(a.Path)
	script := "rm -f " + q
	if ff.Kind == installer.KindDir {
		pr, _ := env.Facts.Get(dirEmptyKey(a.Path))
		empty := len(pr.Stdout) == 0
		switch {
		case a.Recursive:
			script = "rm -rf " + q
		case empty:
			script = "rmdir " + q
		default:
			return failed(env, a.ID(), fmt.Errorf("%s is a non-empty directory; refusing to remove it (not recursive)", a.Path))
		}
	}
	msg := fmt.Sprintf("%s exists (%s), want it absent", a.Path, kindName(ff))
	if !apply {
		return installer.DriftProps(msg, installer.Prop("kind", "absent", kindWord(ff)))
	}
	if _, err := sh(ctx, env, "remove "+a.Path, script, nil); err != nil {
		return failed(env, a.ID(), err)
	}
	return installer.Changed("removed " + a.Path + " (" + kindName(ff) + ")")
}
