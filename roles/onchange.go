package roles

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
)

// Change tracking between the steps of one host in one run: a step wrapped
// by track() records in env.Shared that it changed (apply) or would change
// (audit), and a later step (named reload, service restart) asks
// changedIn(). Shared is per run, so nothing leaks from one run to the next.

// tracked wraps a step and records its changes under group.
type tracked struct {
	installer.Step
	group string
}

// track wraps s so that its changes count for group.
func track(group string, s installer.Step) installer.Step { return tracked{Step: s, group: group} }

func (t tracked) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	r := t.Step.CheckApply(ctx, env, apply)
	if r.Status == installer.StatusChanged || r.Status.NeedsChange() {
		markChanged(env, t.group)
	}
	return r
}

func changeKey(host, group string) string { return "roles/onchange/" + host + "/" + group }

func markChanged(env *installer.Env, group string) {
	if env.Shared != nil {
		env.Shared.Set(changeKey(env.Host, group), true)
	}
}

// changedIn reports whether a step of group changed (or would change) on
// env's host in this run.
func changedIn(env *installer.Env, group string) bool {
	if env.Shared == nil {
		return false
	}
	v, ok := env.Shared.Get(changeKey(env.Host, group))
	return ok && v == true
}

// namedReload has named load its new configuration (named-checkconf, then
// rndc reconfig) when a tracked step of group changed in this run, or when
// one of Files is newer than named's "last configured" time (rndc status):
// the second test catches a run that wrote the files and then failed before
// reloading, and a file edited by hand since the last reload.
type namedReload struct {
	Group string
	Files []string
}

const namedReloadProbe = "named-reload"

func (n namedReload) ID() string { return "rndc reconfig" }

func (n namedReload) Probes() []installer.Probe {
	var b strings.Builder
	b.WriteString("out=$(rndc status 2>&1); echo \"rndc=$?\"\n")
	b.WriteString("printf '%s\\n' \"$out\" | sed -n 's/^last configured: /configured=/p; s/^boot time: /boot=/p'\n")
	b.WriteString("printf '%s\\n' \"$out\" | head -n 3 | sed 's/^/msg=/'\n")
	for _, f := range n.Files {
		q := installer.ShellQuote(f)
		fmt.Fprintf(&b, "[ -e %s ] && echo \"mtime=$(stat -c %%Y %s) %s\"\n", q, q, f)
	}
	b.WriteString("true\n")
	return []installer.Probe{{Key: namedReloadProbe, Script: b.String()}}
}

// namedState is what the probe found.
type namedState struct {
	Running    bool
	Configured time.Time
	Msg        string
	Newer      []string // files modified after the last reload
}

func parseNamedState(out string) (namedState, error) {
	var st namedState
	var msgs []string
	type mt struct {
		t    int64
		path string
	}
	var mtimes []mt
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "rndc":
			st.Running = v == "0"
		case "configured":
			t, err := time.Parse(time.RFC1123, strings.TrimSpace(v))
			if err != nil {
				return st, fmt.Errorf("rndc status: last configured %q: %v", v, err)
			}
			st.Configured = t
		case "msg":
			msgs = append(msgs, v)
		case "mtime":
			sec, path, _ := strings.Cut(v, " ")
			n, err := strconv.ParseInt(sec, 10, 64)
			if err == nil {
				mtimes = append(mtimes, mt{n, path})
			}
		}
	}
	st.Msg = strings.Join(msgs, "; ")
	if st.Running && !st.Configured.IsZero() {
		for _, m := range mtimes {
			if m.t > st.Configured.Unix() {
				st.Newer = append(st.Newer, m.path)
			}
		}
	}
	return st, nil
}

func (n namedReload) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, n.ID(), err))
	}
	r, ok := env.Facts.Get(namedReloadProbe)
	if !ok {
		return fail(fmt.Errorf("no fact gathered"))
	}
	st, err := parseNamedState(string(r.Stdout))
	if err != nil {
		return fail(err)
	}
	if !st.Running {
		return fail(fmt.Errorf("named is not running or rndc cannot reach it (rndc status: %s); start named and run again", st.Msg))
	}
	var why []string
	if changedIn(env, n.Group) {
		why = append(why, "gridha changed its configuration in this run")
	}
	if len(st.Newer) > 0 {
		why = append(why, "modified since named last loaded its configuration: "+strings.Join(st.Newer, ", "))
	}
	if len(why) == 0 {
		return installer.OK("named runs the current configuration")
	}
	msg := strings.Join(why, "; ")
	if !apply {
		return installer.Drift("named has not loaded its configuration: "+msg, "loaded", "not loaded")
	}
	res, err := env.Conn.Run(ctx, "named-checkconf && rndc reconfig", nil)
	if err != nil {
		return fail(err)
	}
	if err := res.Err("named-checkconf && rndc reconfig"); err != nil {
		// named-checkconf prints the file and line of the mistake on stdout.
		return fail(fmt.Errorf("%w %s", err, strings.TrimSpace(string(res.Stdout))))
	}
	return installer.Changed("rndc reconfig: " + msg)
}

// withSecret registers a secret with the run's redactor before the wrapped
// step runs, so that no message of it (or of a later step) can show it.
type withSecret struct {
	installer.Step
	secret string
}

func (w withSecret) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	env.Secrets.Add(w.secret)
	return w.Step.CheckApply(ctx, env, apply)
}
