package steps

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/gridha/gridha/installer"
)

// BackupSuffix is appended to a file's path to keep the content a File step
// replaced (when File.Backup is set).
const BackupSuffix = ".gridha-bak"

// File is a regular file with exact content, mode and ownership. It is
// written to a temporary file and renamed over Path (Conn.WriteFile), so
// readers never see half a file.
type File struct {
	Path    string
	Content []byte
	Mode    fs.FileMode // 0: leave an existing file's mode (new files get 0644)
	Owner   string      // "": leave (new files: the login user, root)
	Group   string
	// Secret content is never shown: no diff, no content in any output.
	Secret bool
	// Backup keeps the replaced content as Path+".gridha-bak" when the
	// content changes.
	Backup bool
	// CreateOnly writes the file only when nothing is at Path; whatever
	// is there is never compared or touched (a zone file belongs to named
	// once it runs).
	CreateOnly bool
}

// ID implements installer.Step.
func (f File) ID() string {
	if f.CreateOnly {
		return "file " + f.Path + " (created if missing)"
	}
	return "file " + f.Path
}

// Probes implements installer.Step.
func (f File) Probes() []installer.Probe {
	if f.CreateOnly {
		// Whether something is there is all: its content (a zone named
		// keeps writing) is never read.
		return []installer.Probe{installer.FileMetaProbe(f.Path)}
	}
	return []installer.Probe{installer.FileProbe(f.Path)}
}

// CheckApply implements installer.Step.
func (f File) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	ff, err := fileFact(env, f.Path)
	if f.CreateOnly {
		ff, err = env.Facts.FileMeta(f.Path)
	}
	if err != nil {
		return failed(env, f.ID(), err)
	}
	if f.CreateOnly && ff.Exists {
		return installer.OK("")
	}
	if ff.Kind == installer.KindDir || ff.Kind == installer.KindOther {
		return failed(env, f.ID(), fmt.Errorf("%s is %s, not a regular file; refusing to replace it", f.Path, kindName(ff)))
	}
	want := attrs{Mode: f.Mode, Owner: f.Owner, Group: f.Group}
	if !ff.Exists {
		if !apply {
			r := installer.MissingProps(f.Path+" does not exist", installer.Prop("kind", "regular file", "absent"))
			if env.Diff && !f.Secret {
				r.Diff = unifiedDiff(f.Path, nil, f.Content)
			}
			return r
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := env.Conn.WriteFile(ctx, f.Path, f.Content, mode, f.Owner, f.Group); err != nil {
			return failed(env, f.ID(), err)
		}
		r := installer.Changed("created " + f.Path)
		if env.Diff && !f.Secret {
			r.Diff = unifiedDiff(f.Path, nil, f.Content)
		}
		return r
	}

	var diffs []string
	var props []installer.PropertyDrift
	contentDiffers := false
	var old []byte
	if ff.Kind == installer.KindSymlink {
		diffs = append(diffs, "is "+kindName(ff)+", want a regular file")
		props = append(props, installer.Prop("kind", "regular file", kindWord(ff)))
		contentDiffers = true
	} else {
		old = ff.Content
		if !ff.ContentKnown {
			// Larger than a probe returns: compare sizes first, then read it.
			if ff.Size != int64(len(f.Content)) {
				old = nil
				contentDiffers = true
			} else if old, err = env.Conn.ReadFile(ctx, f.Path); err != nil {
				return failed(env, f.ID(), err)
			}
		}
		if !contentDiffers && !bytes.Equal(old, f.Content) {
			contentDiffers = true
		}
		if contentDiffers {
			diffs = append(diffs, "content differs")
			found := fmt.Sprintf("%d bytes", ff.Size)
			switch {
			case f.Secret:
				found = "other content (secret, not shown)"
			case old != nil || ff.ContentKnown:
				found = contentSummary(old, false)
			}
			props = append(props, installer.Prop("content", contentSummary(f.Content, f.Secret), found))
		}
	}
	var fix []string
	if ff.Kind != installer.KindSymlink {
		var ad []string
		var ap []installer.PropertyDrift
		ad, ap, fix = attrDiffs(ff, want)
		diffs, props = append(diffs, ad...), append(props, ap...)
	}
	if len(diffs) == 0 {
		return installer.OK("")
	}
	msg := f.Path + ": " + strings.Join(diffs, "; ")
	var diffText string
	if env.Diff && contentDiffers {
		if f.Secret {
			msg += " (secret content not shown)"
		} else if ff.Kind != installer.KindSymlink {
			diffText = unifiedDiff(f.Path, old, f.Content)
		}
	}
	if !apply {
		r := installer.DriftProps(msg, props...)
		r.Expected, r.Found = expectedAttrs(want), foundAttrs(ff)
		r.Diff = diffText
		return r
	}
	mode, owner, group := f.Mode, f.Owner, f.Group
	if contentDiffers {
		if f.Backup && ff.Kind == installer.KindFile {
			bak := installer.ShellQuote(f.Path + BackupSuffix)
			if _, err := sh(ctx, env, "back up "+f.Path, fmt.Sprintf("cp -p %s %s", installer.ShellQuote(f.Path), bak), nil); err != nil {
				return failed(env, f.ID(), err)
			}
		}
		if mode == 0 {
			mode = ff.Mode
			if ff.Kind == installer.KindSymlink {
				mode = 0o644
			}
		}
		if ff.Kind == installer.KindFile {
			owner, group = or(owner, ff.Owner), or(group, ff.Group)
		}
	}
	if err := writeOrFix(ctx, env, f.Path, contentDiffers, f.Content, mode, owner, group, fix); err != nil {
		return failed(env, f.ID(), err)
	}
	r := installer.Changed(msg)
	r.Diff = diffText
	return r
}

func expectedAttrs(a attrs) string {
	var parts []string
	if a.Mode != 0 {
		parts = append(parts, "mode "+installer.OctalMode(a.Mode))
	}
	if a.Owner != "" || a.Group != "" {
		parts = append(parts, "owner "+or(a.Owner, "-")+":"+or(a.Group, "-"))
	}
	return strings.Join(parts, ", ")
}

func foundAttrs(ff installer.FileFact) string {
	if !ff.Exists {
		return "absent"
	}
	return fmt.Sprintf("%s, mode %s, owner %s:%s", strings.TrimPrefix(kindName(ff), "a "), installer.OctalMode(ff.Mode), ff.Owner, ff.Group)
}
