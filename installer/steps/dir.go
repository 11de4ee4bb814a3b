package steps

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/gridha/gridha/installer"
)

// Dir is a directory with a mode and ownership (parents are created as
// needed with the default mode).
type Dir struct {
	Path  string
	Mode  fs.FileMode // 0: leave an existing directory's mode (new: 0755)
	Owner string      // "": leave
	Group string
	// CreateOnly creates the folder with Mode, Owner and Group when it is
	// missing and leaves an existing one as it is (a share folder carries
	// the mode and owner of the state moved into it).
	CreateOnly bool
}

// ID implements installer.Step.
func (d Dir) ID() string { return "dir " + d.Path }

// Probes implements installer.Step.
func (d Dir) Probes() []installer.Probe { return []installer.Probe{installer.FileProbe(d.Path)} }

// CheckApply implements installer.Step.
func (d Dir) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	ff, err := fileFact(env, d.Path)
	if err != nil {
		return failed(env, d.ID(), err)
	}
	want := attrs{Mode: d.Mode, Owner: d.Owner, Group: d.Group}
	q := installer.ShellQuote(d.Path)
	if ff.Exists && ff.Kind != installer.KindDir {
		return failed(env, d.ID(), fmt.Errorf("%s is %s, not a directory; refusing to replace it", d.Path, kindName(ff)))
	}
	if d.CreateOnly && ff.Exists {
		return installer.OK("exists (mode and owner left as they are)")
	}
	if !ff.Exists {
		if !apply {
			r := installer.MissingProps(d.Path+" does not exist", installer.Prop("kind", "directory", "absent"))
			r.Expected = strings.TrimSuffix("directory, "+expectedAttrs(want), ", ")
			return r
		}
		mode := d.Mode
		if mode == 0 {
			mode = 0o755
		}
		script := fmt.Sprintf("mkdir -p %s && chmod %s %s", q, installer.OctalMode(mode), q)
		if d.Owner != "" || d.Group != "" {
			spec := d.Owner
			if d.Group != "" {
				spec += ":" + d.Group
			}
			script += fmt.Sprintf(" && chown %s %s", installer.ShellQuote(spec), q)
		}
		if _, err := sh(ctx, env, "create "+d.Path, script, nil); err != nil {
			return failed(env, d.ID(), err)
		}
		return installer.Changed("created " + d.Path)
	}
	diffs, props, fix := attrDiffs(ff, want)
	if len(diffs) == 0 {
		return installer.OK("")
	}
	msg := d.Path + ": " + strings.Join(diffs, "; ")
	if !apply {
		r := installer.DriftProps(msg, props...)
		r.Expected, r.Found = expectedAttrs(want), foundAttrs(ff)
		return r
	}
	if _, err := sh(ctx, env, "set mode/owner of "+d.Path, strings.Join(fix, " && "), nil); err != nil {
		return failed(env, d.ID(), err)
	}
	return installer.Changed(msg)
}
