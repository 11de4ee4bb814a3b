package steps

import (
	"context"
	"fmt"

	"github.com/gridha/gridha/installer"
)

// Symlink is a symbolic link at Path pointing to Target. A link with
// another target is replaced; a real file or directory at Path is never
// replaced (the step fails and says so: moving data away is a decision for
// an admin or a dedicated migration step).
type Symlink struct {
	Path   string
	Target string
}

// ID implements installer.Step.
func (s Symlink) ID() string { return "symlink " + s.Path }

// Probes implements installer.Step.
func (s Symlink) Probes() []installer.Probe { return []installer.Probe{installer.FileProbe(s.Path)} }

// CheckApply implements installer.Step.
func (s Symlink) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	ff, err := fileFact(env, s.Path)
	if err != nil {
		return failed(env, s.ID(), err)
	}
	switch {
	case ff.Kind == installer.KindSymlink && ff.LinkTarget == s.Target:
		return installer.OK("")
	case ff.Exists && ff.Kind != installer.KindSymlink:
		return failed(env, s.ID(), fmt.Errorf("%s is %s, not a symlink; refusing to replace it with a link to %s (move it away first)", s.Path, kindName(ff), s.Target))
	}
	var r installer.Result
	if !ff.Exists {
		r = installer.MissingProps(fmt.Sprintf("%s does not exist, want a link to %s", s.Path, s.Target), installer.Prop("target", s.Target, "absent"))
	} else {
		r = installer.DriftProps(fmt.Sprintf("%s points to %s, want %s", s.Path, ff.LinkTarget, s.Target), installer.Prop("target", s.Target, ff.LinkTarget))
	}
	r.Expected, r.Found = "-> "+s.Target, "absent"
	if ff.Exists {
		r.Found = "-> " + ff.LinkTarget
	}
	if !apply {
		return r
	}
	// ln -sfn replaces an existing link itself, never what it points to.
	script := fmt.Sprintf("ln -sfn %s %s", installer.ShellQuote(s.Target), installer.ShellQuote(s.Path))
	if _, err := sh(ctx, env, "link "+s.Path, script, nil); err != nil {
		return failed(env, s.ID(), err)
	}
	return installer.Changed(r.Message)
}
