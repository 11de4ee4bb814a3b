package steps

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/gridha/gridha/installer"
)

// KeyValue is one shell-style assignment KEY=value in a config file that
// /bin/sh sources (/etc/sysconfig/..., lcg-ha, grid-env.sh), read as the
// shell reads it (SetKeyValue, ShellAssignments): every assignment of Key
// counts, so a second one (last wins), an `export KEY=` or an unset is
// drift, and install leaves exactly one line KEY=value (commented-out ones
// are left alone); a missing one is appended, a missing file is created;
// every other byte of the file is kept.
type KeyValue struct {
	Path  string
	Key   string
	Value string
	// Quote writes the value in double quotes, escaping \ " $ and `.
	Quote bool
	Mode  fs.FileMode // 0: leave (a new file gets 0644)
	// Secret values never appear in messages.
	Secret bool
}

// ID implements installer.Step.
func (kv KeyValue) ID() string { return "keyvalue " + kv.Path + " " + kv.Key }

// Probes implements installer.Step.
func (kv KeyValue) Probes() []installer.Probe {
	return []installer.Probe{installer.FileProbe(kv.Path)}
}

// CheckApply implements installer.Step.
func (kv KeyValue) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if !validKey(kv.Key) {
		return failed(env, kv.ID(), fmt.Errorf("%q is not a shell variable name", kv.Key))
	}
	if kv.Secret {
		env.Secrets.Add(kv.Value)
	}
	ff, err := fileFact(env, kv.Path)
	if err != nil {
		return failed(env, kv.ID(), err)
	}
	if ff.Exists && ff.Kind != installer.KindFile {
		return failed(env, kv.ID(), fmt.Errorf("%s is %s, not a regular file", kv.Path, kindName(ff)))
	}
	if ff.Exists && !ff.ContentKnown {
		return failed(env, kv.ID(), fmt.Errorf("%s is larger than %d bytes; not a config file gridha edits", kv.Path, installer.MaxProbedContent))
	}
	want := RenderAssignment(kv.Key, kv.Value, kv.Quote)
	newContent, as, changed, editErr := SetKeyValue(ff.Content, kv.Key, kv.Value, kv.Quote)
	if editErr != nil {
		changed = true // not as wanted, and not editable by gridha
	}
	found := describeAssignments(ff.Content, as, kv.Secret)
	if kv.Secret && len(as) == 1 && !as[0].Unset {
		found = kv.Key + "=******** (secret, as wanted)"
		if changed {
			found = kv.Key + " set to another value (secret, not shown)"
		}
	}
	var diffs []string
	switch {
	case !ff.Exists:
	case editErr != nil:
		diffs = append(diffs, editErr.Error())
	case len(as) == 0:
		diffs = append(diffs, kv.Key+" not set")
	case len(as) > 1:
		lines := make([]string, len(as))
		for i, a := range as {
			lines[i] = fmt.Sprint(a.Line)
		}
		diffs = append(diffs, fmt.Sprintf("%s is assigned %d times (lines %s; /bin/sh uses the last), want one %s", kv.Key, len(as), strings.Join(lines, ", "), shown(want, kv.Secret)))
	case as[0].Unset:
		diffs = append(diffs, fmt.Sprintf("%s is unset (line %d)", kv.Key, as[0].Line))
	case changed:
		if kv.Secret {
			diffs = append(diffs, kv.Key+" has another value (secret, not shown)")
		} else {
			diffs = append(diffs, fmt.Sprintf("%s, want %s", found, want))
		}
	}
	var fix []string
	var attrProps []installer.PropertyDrift
	if ff.Exists {
		var ad []string
		ad, attrProps, fix = attrDiffs(ff, attrs{Mode: kv.Mode})
		diffs = append(diffs, ad...)
	}
	if ff.Exists && len(diffs) == 0 {
		return installer.OK("")
	}
	msg := kv.Path + ": " + strings.Join(diffs, "; ")
	if !ff.Exists {
		msg = kv.Path + " does not exist"
	}
	var diffText string
	if env.Diff && !kv.Secret && changed && editErr == nil {
		diffText = unifiedDiff(kv.Path, ff.Content, newContent)
	}
	if !apply {
		foundValue := found
		switch {
		case !ff.Exists:
			foundValue = kv.Path + " absent"
		case len(as) == 0:
			foundValue = kv.Key + " not set"
		}
		var props []installer.PropertyDrift
		if changed || !ff.Exists {
			props = append(props, installer.Prop("value", shown(want, kv.Secret), foundValue))
		}
		props = append(props, attrProps...)
		var r installer.Result
		if !ff.Exists || len(as) == 0 {
			r = installer.MissingProps(msg, props...)
		} else {
			r = installer.DriftProps(msg, props...)
		}
		r.Expected, r.Found = shown(want, kv.Secret), foundValue
		r.Diff = diffText
		return r
	}
	if editErr != nil {
		return failed(env, kv.ID(), fmt.Errorf("%s: %w", kv.Path, editErr))
	}
	mode, owner, group := kv.Mode, "", ""
	if ff.Exists {
		mode, owner, group = or0(mode, ff.Mode), ff.Owner, ff.Group
	} else if mode == 0 {
		mode = 0o644
	}
	if err := writeOrFix(ctx, env, kv.Path, changed, newContent, mode, owner, group, fix); err != nil {
		return failed(env, kv.ID(), err)
	}
	r := installer.Changed(msg)
	r.Diff = diffText
	return r
}

// shown is s, or its key with the value masked when secret.
func shown(assignment string, secret bool) string {
	if !secret {
		return assignment
	}
	k, _, _ := strings.Cut(assignment, "=")
	return k + "=******** (secret, not shown)"
}

// describeAssignments is what Found says: the assignment line(s) as they
// are in the file (line numbers when several), values masked when secret.
func describeAssignments(content []byte, as []Assignment, secret bool) string {
	if len(as) == 0 {
		return ""
	}
	if secret {
		if len(as) == 1 && !as[0].Unset {
			return as[0].Name + "=******** (secret)"
		}
		parts := make([]string, len(as))
		for i, a := range as {
			what := "assigned"
			if a.Unset {
				what = "unset"
			}
			parts[i] = fmt.Sprintf("line %d: %s %s (secret, not shown)", a.Line, a.Name, what)
		}
		return strings.Join(parts, "; ")
	}
	if len(as) == 1 {
		return strings.TrimSpace(lineOf(content, as[0].Line))
	}
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = fmt.Sprintf("line %d: %s", a.Line, strings.TrimSpace(lineOf(content, a.Line)))
	}
	return strings.Join(parts, "; ")
}

func or0(a, b fs.FileMode) fs.FileMode {
	if a != 0 {
		return a
	}
	return b
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// RenderAssignment renders KEY=value; quoted values go in double quotes
// with \ " $ and ` escaped.
func RenderAssignment(key, value string, quote bool) string {
	if !quote {
		return key + "=" + value
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	return key + `="` + r.Replace(value) + `"`
}

// SetKeyValue makes content assign key exactly once, to value, as a shell
// sourcing it reads it (ShellAssignments): the first assignment that is a
// line of its own is replaced by KEY=value (keeping its indentation and
// export prefix), every other assignment or unset of key is removed (the
// shell would use the last one), and when there is none the assignment is
// appended (after adding a final newline the content lacked). Comments are
// never touched and every other byte is kept. found lists the assignments
// there were; changed reports whether out differs from content. An
// assignment that shares its line with other commands (A=1; KEY=2) is not
// edited: err names its line and content is returned unchanged.
func SetKeyValue(content []byte, key, value string, quote bool) (out []byte, found []Assignment, changed bool, err error) {
	want := RenderAssignment(key, value, quote)
	if found, err = ShellAssignments(content, key); err != nil {
		return content, nil, false, err
	}
	if len(found) == 1 && !found[0].Unset && found[0].Literal && found[0].Value == value {
		return content, found, false, nil
	}
	keep := -1
	for i, a := range found {
		if !a.Sole {
			return content, found, false, fmt.Errorf("line %d: %s is set in a line with other commands; gridha does not edit such a line: give the assignment a line of its own or remove it", a.Line, key)
		}
		if keep < 0 && !a.Unset {
			keep = i
		}
	}
	out = make([]byte, 0, len(content)+len(want)+1)
	pos := 0
	for i, a := range found {
		out = append(out, content[pos:a.Start]...)
		pos = a.End
		if i != keep {
			continue
		}
		// No \r kept from a CRLF line: /bin/sh would read it as part of
		// the value.
		eol := ""
		if bytes.HasSuffix(content[a.Start:a.End], []byte("\n")) {
			eol = "\n"
		}
		out = append(out, a.Prefix+want+eol...)
	}
	out = append(out, content[pos:]...)
	if keep < 0 {
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(out, want...)
		out = append(out, '\n')
	}
	return out, found, !bytes.Equal(out, content), nil
}

// lineOf returns line n (1-based) of content, without its newline.
func lineOf(content []byte, n int) string {
	lines := strings.SplitN(string(content), "\n", n+1)
	if n < 1 || n > len(lines) {
		return ""
	}
	return strings.TrimRight(lines[n-1], "\r")
}
