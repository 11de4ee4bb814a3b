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

// Probes implements installer.Step: the path only, a typed fact (the fact
// agent answers it in-process). Whether a folder is empty is asked only
// when the path is a folder (see CheckApply): a verify, where the path is
// almost always absent, pays no subshell for it.
func (a Absent) Probes() []installer.Probe {
	return []installer.Probe{installer.FileProbe(a.Path)}
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
		script = "rm -rf " + q
		if !a.Recursive {
			// Prints the first entry (nothing when empty). Read-only, so
			// a verify asks it too and reports the refusal install would
			// make; rmdir refuses a folder filled meanwhile on its own.
			res, err := sh(ctx, env, "list "+a.Path, "ls -A "+q+" | head -n 1", nil)
			if err != nil {
				return failed(env, a.ID(), err)
			}
			if len(res.Stdout) > 0 {
				return failed(env, a.ID(), fmt.Errorf("%s is a non-empty directory; refusing to remove it (not recursive)", a.Path))
			}
			script = "rmdir " + q
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
