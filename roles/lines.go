package roles

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/gridha/gridha/installer"
)

// ownedLine is one line gridha owns in a file another tool also writes.
type ownedLine struct {
	Key  string // what the line sets (e.g. the variable name)
	Line string // the whole line, without the newline
}

// ownedLines is a step that owns some lines of a text file and leaves the
// rest alone: YAIM's /etc/profile.d/grid-env.sh, Debian's named.conf.local.
// Owns says which lines are gridha's and under which key. The first owned
// line of each wanted key is replaced in place by the wanted line, later
// ones (which would override it) and owned lines of keys no longer wanted
// are dropped, and wanted keys not found are appended. A missing file is
// created from NewFile (then edited the same way).
type ownedLines struct {
	Path    string
	Want    []ownedLine
	Owns    func(line string) (key string, ok bool)
	NewFile func() ([]byte, error) // nil: a new file starts empty
	// Check, when set, validates the edited content as its reader reads
	// it (a second assignment in a line gridha does not own): its error is
	// drift in an audit and stops an install (nothing written).
	Check func(content []byte) error
	// Mode, Owner and Group of a new file; an existing file keeps its own.
	Mode         fs.FileMode
	Owner, Group string
}

// ID implements installer.Step.
func (o ownedLines) ID() string { return "lines " + o.Path }

// Probes implements installer.Step.
func (o ownedLines) Probes() []installer.Probe {
	return []installer.Probe{installer.FileProbe(o.Path)}
}

// edit returns content with the owned lines made as wanted.
func (o ownedLines) edit(content []byte) []byte {
	want := map[string]string{}
	for _, w := range o.Want {
		want[w.Key] = w.Line
	}
	placed := map[string]bool{}
	var out []string
	if len(content) > 0 {
		for _, line := range strings.Split(strings.TrimSuffix(string(content), "\n"), "\n") {
			key, owned := o.Owns(line)
			if !owned {
				out = append(out, line)
				continue
			}
			if w, ok := want[key]; ok && !placed[key] {
				out = append(out, w)
				placed[key] = true
			}
		}
	}
	for _, w := range o.Want {
		if !placed[w.Key] {
			out = append(out, w.Line)
			placed[w.Key] = true
		}
	}
	if len(out) == 0 {
		return nil
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// CheckApply implements installer.Step.
func (o ownedLines) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, o.ID(), err))
	}
	ff, err := env.Facts.File(o.Path)
	if err != nil {
		return fail(err)
	}
	if ff.Exists && ff.Kind != installer.KindFile {
		return fail(fmt.Errorf("%s is not a regular file (%s); refusing to edit it", o.Path, ff.Kind))
	}
	var old []byte
	if ff.Exists {
		old = ff.Content
		if !ff.ContentKnown {
			if old, err = env.Conn.ReadFile(ctx, o.Path); err != nil {
				return fail(err)
			}
		}
	} else if o.NewFile != nil {
		if old, err = o.NewFile(); err != nil {
			return fail(err)
		}
	}
	newContent := o.edit(old)
	if o.Check != nil {
		if err := o.Check(newContent); err != nil {
			if !apply {
				return installer.Drift(o.Path+": "+err.Error(), o.describe(), "")
			}
			return fail(fmt.Errorf("%s: %w; nothing changed", o.Path, err))
		}
	}
	if ff.Exists && bytes.Equal(newContent, old) {
		return installer.OK("")
	}
	var diff string
	if env.Diff {
		var before []byte
		if ff.Exists {
			before = old
		}
		diff = udiff.Unified(o.Path+" (on host)", o.Path+" (wanted)", string(before), string(newContent))
	}
	msg := o.Path + ": gridha's lines differ"
	if !ff.Exists {
		msg = o.Path + " does not exist"
	}
	if !apply {
		var r installer.Result
		if ff.Exists {
			r = installer.Drift(msg, o.describe(), "")
		} else {
			r = installer.Missing(msg)
		}
		r.Diff = diff
		return r
	}
	mode, owner, group := o.Mode, o.Owner, o.Group
	if mode == 0 {
		mode = 0o644
	}
	if ff.Exists {
		mode, owner, group = ff.Mode, ff.Owner, ff.Group
	}
	if err := env.Conn.WriteFile(ctx, o.Path, newContent, mode, owner, group); err != nil {
		return fail(err)
	}
	if err := env.Reprobe(ctx, installer.FileProbe(o.Path)); err != nil && env.Log != nil {
		env.Log("re-reading %s after the change: %v", o.Path, err)
	}
	if ff.Exists {
		msg = o.Path + ": replaced gridha's lines"
	} else {
		msg = "created " + o.Path
	}
	r := installer.Changed(msg)
	r.Diff = diff
	return r
}

func (o ownedLines) describe() string {
	lines := make([]string, len(o.Want))
	for i, w := range o.Want {
		lines[i] = w.Line
	}
	return strings.Join(lines, "\n")
}
