package roles

import (
	"context"
	"fmt"
	"github.com/gridha/gridha/internal/lazyre"
	"regexp"
	"strings"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/templates"
)

// BDIIClient is the bdii-client role (UIs, worker nodes, service nodes):
// MAN05's client-side failover. The inventory's bdii_list becomes
// LCG_GFAL_INFOSYS=h1:2170,h2:2170 in the environment of sh and csh login
// shells (/etc/profile.d/grid-env.sh and grid-env.csh). gridha owns only the
// lines that set its variables; everything else in a YAIM-made file stays.
type BDIIClient struct{}

// Paths of the grid environment files.
const (
	GridEnvSh  = "/etc/profile.d/grid-env.sh"
	GridEnvCsh = "/etc/profile.d/grid-env.csh"
	// CshLoginHook makes Debian's tcsh read grid-env.csh: Debian's
	// /etc/csh.login sources /etc/csh/login.d/*, not /etc/profile.d/*.csh
	// (Red Hat's does, and there no hook is needed).
	CshLoginHook = "/etc/csh/login.d/grid-env.csh"
)

// ManagedMarker ends every line gridha owns in a file it shares.
const ManagedMarker = "# managed by gridha"

// Name implements Role.
func (BDIIClient) Name() string { return "bdii-client" }

// Summary implements Role.
func (BDIIClient) Summary() string {
	return "top BDII failover list (LCG_GFAL_INFOSYS) in the login environment of UIs and worker nodes"
}

// Plan implements Role.
func (BDIIClient) Plan(inv *inventory.Inventory, opts Options) (*installer.Plan, error) {
	// The inventory checked bdii_list: not empty, host:port entries.
	s := inv.Roles.BDIIClient
	hosts := inv.HostsWithRole("bdii-client")
	vars := GridEnvVars(s)
	ph := installer.Phase{Name: "bdii-client", Steps: map[string][]installer.Step{}}
	for _, h := range hosts {
		if !opts.InLimit(h.Name) {
			continue
		}
		ph.Steps[h.Name] = GridEnvSteps(vars)
	}
	return &installer.Plan{Phases: []installer.Phase{ph}}, nil
}

// EnvVar is one variable gridha exports in the grid environment.
type EnvVar struct{ Name, Value string }

// gridEnvOwned are the variables whose lines gridha recognises in
// grid-env.sh/.csh. LCG_GFAL_INFOSYS is always gridha's; BDII_LIST only when
// exported (else only a line carrying the marker, left by an earlier run).
var gridEnvOwned = []string{"LCG_GFAL_INFOSYS", "BDII_LIST"}

// GridEnvVars are the variables the bdii-client settings ask for.
func GridEnvVars(s inventory.BDIIClient) []EnvVar {
	list := strings.Join(s.BDIIList, ",")
	vars := []EnvVar{{"LCG_GFAL_INFOSYS", list}}
	if s.ExportBDIIList {
		vars = append(vars, EnvVar{"BDII_LIST", list})
	}
	return vars
}

// GridEnvSteps are the steps of one client host.
func GridEnvSteps(vars []EnvVar) []installer.Step {
	return []installer.Step{
		gridEnvFile(GridEnvSh, "grid-env.sh.tmpl", vars, shLine, shOwns(vars), shCheck(vars)),
		gridEnvFile(GridEnvCsh, "grid-env.csh.tmpl", vars, cshLine, cshOwns(vars), cshCheck(vars)),
		cshHook{},
	}
}

func gridEnvFile(path, tmpl string, vars []EnvVar, line func(EnvVar) string, owns func(string) (string, bool), check func([]byte) error) installer.Step {
	want := make([]ownedLine, len(vars))
	lines := make([]string, len(vars))
	for i, v := range vars {
		want[i] = ownedLine{Key: v.Name, Line: line(v)}
		lines[i] = want[i].Line
	}
	return ownedLines{
		Path: path,
		Want: want,
		Owns: owns,
		NewFile: func() ([]byte, error) {
			return templates.Render(tmpl, struct{ Lines []string }{lines})
		},
		Check: check,
		Mode:  0o644, Owner: "root", Group: "root",
	}
}

// shCheck: after gridha's edit, /bin/sh must find exactly one assignment of
// each variable, with the wanted value (steps.ShellAssignments: a second
// one sharing a line with other commands, or continued over lines, is not
// a line gridha owns and would override gridha's).
func shCheck(vars []EnvVar) func([]byte) error {
	return func(content []byte) error {
		for _, v := range vars {
			as, err := steps.ShellAssignments(content, v.Name)
			if err != nil {
				return err
			}
			if len(as) == 1 && as[0].Literal && !as[0].Unset && as[0].Value == v.Value {
				continue
			}
			lines := make([]string, len(as))
			for i, a := range as {
				lines[i] = fmt.Sprint(a.Line)
			}
			return fmt.Errorf("/bin/sh would still find %s set %d times (lines %s of the edited file; the last wins): "+
				"gridha edits only lines that set it alone; remove the others", v.Name, len(as), strings.Join(lines, ", "))
		}
		return nil
	}
}

// cshCheck: csh sets a variable with setenv; after gridha's edit each
// variable must be set by exactly one setenv, counting commands that share
// a line (separated by ;).
func cshCheck(vars []EnvVar) func([]byte) error {
	return func(content []byte) error {
		for _, v := range vars {
			var where []string
			for i, line := range strings.Split(string(content), "\n") {
				t := strings.TrimSpace(line)
				if strings.HasPrefix(t, "#") {
					continue
				}
				for _, cmd := range strings.Split(line, ";") {
					if m := cshAssign().FindStringSubmatch(cmd); m != nil && m[1] == v.Name {
						where = append(where, fmt.Sprint(i+1))
					}
				}
			}
			if len(where) != 1 {
				return fmt.Errorf("csh would find %d setenv of %s (lines %s of the edited file; the last wins): "+
					"gridha edits only lines that set it alone; remove the others", len(where), v.Name, strings.Join(where, ", "))
			}
		}
		return nil
	}
}

// The values are validated host:port lists (no quotes, $ or spaces), so
// double quotes are enough in both shells.
func shLine(v EnvVar) string {
	return fmt.Sprintf("export %s=\"%s\" %s", v.Name, v.Value, ManagedMarker)
}
func cshLine(v EnvVar) string {
	return fmt.Sprintf("setenv %s \"%s\" %s", v.Name, v.Value, ManagedMarker)
}

// Assignment forms recognised: sh `VAR=`, `export VAR=`; csh `setenv VAR`;
// YAIM's grid-env-funcs `gridenv_set "VAR" "..."` / `gridenv_setind` (both
// shells).
var (
	shAssign  = lazyre.New(`^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=`)
	cshAssign = lazyre.New(`^\s*setenv\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s|$)`)
	yaimSet   = lazyre.New(`^\s*gridenv_set(?:ind)?\s+["']?([A-Za-z_][A-Za-z0-9_]*)["']?(?:\s|$)`)
)

func shOwns(vars []EnvVar) func(string) (string, bool) {
	owns := envOwns(vars, shAssign(), yaimSet())
	return func(line string) (string, bool) {
		if k, ok := owns(line); ok {
			return k, ok
		}
		// Other spellings of a line that only sets a variable gridha sets,
		// as /bin/sh reads them: export "VAR=...", readonly VAR=..., VAR=...;
		for _, name := range gridEnvOwned {
			as, err := steps.ShellAssignments([]byte(line), name)
			if err != nil || len(as) != 1 || !as[0].Sole || as[0].Unset {
				continue
			}
			if wantedVar(vars, name) {
				return name, true
			}
		}
		return "", false
	}
}

func wantedVar(vars []EnvVar, name string) bool {
	for _, v := range vars {
		if v.Name == name {
			return true
		}
	}
	return false
}

func cshOwns(vars []EnvVar) func(string) (string, bool) {
	return envOwns(vars, cshAssign(), yaimSet())
}

func envOwns(vars []EnvVar, res ...*regexp.Regexp) func(string) (string, bool) {
	wanted := map[string]bool{}
	for _, v := range vars {
		wanted[v.Name] = true
	}
	return func(line string) (string, bool) {
		for _, re := range res {
			m := re.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			name := m[1]
			for _, o := range gridEnvOwned {
				if name != o {
					continue
				}
				// A variable gridha sets is owned in every form; one it
				// no longer sets only where gridha wrote it.
				if wanted[name] || strings.HasSuffix(strings.TrimSpace(line), ManagedMarker) {
					return name, true
				}
			}
		}
		return "", false
	}
}

// cshHook links CshLoginHook to grid-env.csh where tcsh login shells do not
// read /etc/profile.d (Debian: /etc/csh/login.d exists and /etc/csh.login
// does not mention profile.d). Elsewhere it does nothing.
type cshHook struct{}

func (cshHook) ID() string { return "symlink " + CshLoginHook }

const cshHookProbe = "csh-login-hook"

func (cshHook) Probes() []installer.Probe {
	return []installer.Probe{{Key: cshHookProbe, Script: `if [ -d /etc/csh/login.d ] && ! grep -qs profile.d /etc/csh.login; then
  if [ -L ` + CshLoginHook + ` ]; then echo "link $(readlink ` + CshLoginHook + `)"; elif [ -e ` + CshLoginHook + ` ]; then echo other; else echo absent; fi
else echo unneeded; fi`}}
}

func (c cshHook) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	r, ok := env.Facts.Get(cshHookProbe)
	if !ok {
		return installer.Failed(fmt.Errorf("%s: %s: no fact gathered", env.Host, c.ID()))
	}
	state := strings.TrimSpace(string(r.Stdout))
	switch state {
	case "unneeded":
		return installer.OK("csh login shells read /etc/profile.d themselves")
	case "link " + GridEnvCsh:
		return installer.OK("")
	case "other":
		return installer.Failed(fmt.Errorf("%s: %s exists and is not a symlink; refusing to replace it", env.Host, CshLoginHook))
	}
	if !apply {
		if state == "absent" {
			return installer.MissingProps(CshLoginHook+" does not exist: tcsh login shells would not read "+GridEnvCsh, installer.Prop("target", GridEnvCsh, "absent"))
		}
		return installer.DriftProps(CshLoginHook+" points elsewhere", installer.Prop("target", GridEnvCsh, strings.TrimPrefix(state, "link ")))
	}
	res, err := env.Conn.Run(ctx, "ln -sfn "+installer.ShellQuote(GridEnvCsh)+" "+installer.ShellQuote(CshLoginHook), nil)
	if err == nil {
		err = res.Err("ln -sfn")
	}
	if err != nil {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, c.ID(), err))
	}
	return installer.Changed(CshLoginHook + " -> " + GridEnvCsh)
}
