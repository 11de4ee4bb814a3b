// Package templates holds gridha's text/template assets (*.tmpl), embedded in
// the binary. Each template renders from a typed struct defined by the role
// that uses it.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
)

//go:embed *.tmpl
var assets embed.FS

// Render executes the named template (e.g. "hagd.conf.tmpl") with data.
// Missing keys are errors, never "<no value>". Every template may use
// {{template "header"}}, the managed-by comment of header.tmpl.
func Render(name string, data any) ([]byte, error) {
	return render(name, data, "")
}

// packagedHeader replaces header.tmpl in the files the gridha packages
// install (RenderPackaged): there, gridha install does not manage them.
const packagedHeader = `# Installed by the gridha package (a configuration file: local changes are
# kept on upgrade). gridha install may replace it with its own copy.`

// RenderPackaged is Render with the package's header instead of the
// managed-by-gridha one: the same template, so a packaged init script or
// logrotate file is the one install would write, but for its comment.
func RenderPackaged(name string, data any) ([]byte, error) {
	return render(name, data, packagedHeader)
}

// render is Render, with header (when set) replacing header.tmpl's.
func render(name string, data any, header string) ([]byte, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs).ParseFS(assets, name, "header.tmpl")
	if err == nil && header != "" {
		_, err = t.New("header").Parse(header)
	}
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// Names lists the embedded templates.
func Names() []string {
	ents, _ := assets.ReadDir(".")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

var funcs = template.FuncMap{
	"join": strings.Join,
	// shq quotes a value for POSIX sh.
	"shq": func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" },
}
