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
// /bin/sh sources (/etc/sysconfig/..., lcg-ha, grid-env.sh). The first
// assignment of Key is replaced (commented-out ones are left alone), a
// missing one is appended, a missing file is created; every other byte of
// the file is kept.
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
	newContent, found, changed := SetKeyValue(ff.Content, kv.Key, kv.Value, kv.Quote)
	var diffs []string
	switch {
	case !ff.Exists:
	case found == "" && changed:
		diffs = append(diffs, kv.Key+" not set")
	case changed:
		if kv.Secret {
			diffs = append(diffs, kv.Key+" has another value (secret, not shown)")
		} else {
			diffs = append(diffs, fmt.Sprintf("%s, want %s", strings.TrimSpace(found), want))
		}
	}
	var fix []string
	if ff.Exists {
		var ad []string
		ad, fix = attrDiffs(ff, attrs{Mode: kv.Mode})
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
	if env.Diff && !kv.Secret && changed {
		diffText = unifiedDiff(kv.Path, ff.Content, newContent)
	}
	if !apply {
		var r installer.Result
		if !ff.Exists || found == "" {
			r = installer.Missing(msg)
		} else {
			r = installer.Drift(msg, "", "")
		}
		if !kv.Secret {
			r.Expected, r.Found = want, strings.TrimSpace(found)
		}
		switch {
		case !ff.Exists:
			r.Found = kv.Path + " absent"
		case found == "":
			r.Found = kv.Key + " not set"
		}
		if kv.Secret {
			r.Expected = kv.Key + "=******** (secret, not shown)"
			if ff.Exists && found != "" {
				r.Found = kv.Key + "=******** (secret, as wanted)"
				if changed {
					r.Found = kv.Key + " set to another value (secret, not shown)"
				}
			}
		}
		r.Diff = diffText
		return r
	}
	if changed {
		mode, owner, group := kv.Mode, "", ""
		if ff.Exists {
			mode, owner, group = or0(mode, ff.Mode), ff.Owner, ff.Group
		} else if mode == 0 {
			mode = 0o644
		}
		if err := env.Conn.WriteFile(ctx, kv.Path, newContent, mode, owner, group); err != nil {
			return failed(env, kv.ID(), err)
		}
	} else if len(fix) > 0 {
		if _, err := sh(ctx, env, "chmod "+kv.Path, strings.Join(fix, " && "), nil); err != nil {
			return failed(env, kv.ID(), err)
		}
	}
	r := installer.Changed(msg)
	r.Diff = diffText
	return r
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

// SetKeyValue sets key in shell-style content. The first line assigning key
// (optionally indented and/or prefixed with "export ") is replaced, keeping
// its indentation and export prefix; comments are never touched. When no
// line assigns key, the assignment is appended (after adding a final newline
// the content lacked). found is the existing assignment line ("" when none);
// changed reports whether out differs from content. Every byte outside the
// replaced line is kept.
func SetKeyValue(content []byte, key, value string, quote bool) (out []byte, found string, changed bool) {
	want := RenderAssignment(key, value, quote)
	start := 0
	for start < len(content) {
		end := bytes.IndexByte(content[start:], '\n')
		lineEnd := len(content)
		if end >= 0 {
			lineEnd = start + end
		}
		line := string(content[start:lineEnd])
		if prefix, ok := assignmentPrefix(line, key); ok {
			newLine := prefix + want
			if strings.HasSuffix(line, "\r") {
				newLine += "\r"
			}
			if newLine == line {
				return content, line, false
			}
			out = make([]byte, 0, len(content)+len(newLine))
			out = append(out, content[:start]...)
			out = append(out, newLine...)
			out = append(out, content[lineEnd:]...)
			return out, line, true
		}
		if end < 0 {
			break
		}
		start = lineEnd + 1
	}
	out = append([]byte(nil), content...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	out = append(out, want...)
	out = append(out, '\n')
	return out, "", true
}

// assignmentPrefix reports whether line assigns key, and returns what
// precedes the key (indentation, "export ").
func assignmentPrefix(line, key string) (string, bool) {
	rest := strings.TrimLeft(line, " \t")
	indent := line[:len(line)-len(rest)]
	if strings.HasPrefix(rest, "export") {
		after := strings.TrimLeft(rest[len("export"):], " \t")
		if len(after) < len(rest)-len("export") {
			indent += rest[:len(rest)-len(after)]
			rest = after
		}
	}
	if strings.HasPrefix(rest, key+"=") {
		return indent, true
	}
	return "", false
}
