package roles

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
)

// Notifications the roles' steps send (installer.Notify) and their
// handlers act on (steps.Restart).
const (
	notifyHAGD    = "hagd"        // hagd's binary, key, password, configuration, init script
	notifyHAGDKey = "hagd-key"    // a key file of a hagd key rotation
	groupNamed    = "dns-named"   // named's key and configuration files
	groupUpdater  = "dns-updater" // the dns-updater's binary, key, configuration, init script, unit
)

// namedReload has named load its new configuration (named-checkconf, then
// rndc reconfig) when a step notified groupNamed in this run, or when one of
// files is newer than named's "last configured" time (rndc status): the
// second test catches a run that wrote the files and then failed before
// reloading, and a file edited by hand since the last reload. named not
// running (or rndc not reaching it) is an error: its zone would not serve
// the update policy gridha wrote.
func namedReload(files []string) steps.Restart {
	return steps.Restart{
		Service: "named", On: groupNamed, What: "configuration", Name: "rndc reconfig",
		Reload: "named-checkconf && rndc reconfig",
		Status: &steps.RestartStatus{Probe: namedReloadProbe(files), Parse: parseNamedReload, Required: true},
	}
}

const namedReloadProbeKey = "named-reload"

func namedReloadProbe(files []string) installer.Probe {
	var b strings.Builder
	b.WriteString("out=$(rndc status 2>&1); echo \"rndc=$?\"\n")
	b.WriteString("printf '%s\\n' \"$out\" | sed -n 's/^last configured: /configured=/p; s/^boot time: /boot=/p'\n")
	b.WriteString("printf '%s\\n' \"$out\" | head -n 3 | sed 's/^/msg=/'\n")
	for _, f := range files {
		q := installer.ShellQuote(f)
		fmt.Fprintf(&b, "[ -e %s ] && echo \"mtime=$(stat -c %%Y %s) %s\"\n", q, q, f)
	}
	b.WriteString("true\n")
	return installer.Probe{Key: namedReloadProbeKey, Script: b.String()}
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
	for k, v := range installer.Assignments(out) {
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

// parseNamedReload is the Restart's view of named.
func parseNamedReload(out []byte) (running bool, stale []string, msg string, err error) {
	st, err := parseNamedState(string(out))
	if err != nil {
		return false, nil, "", err
	}
	if !st.Running {
		return false, nil, fmt.Sprintf("named is not running or rndc cannot reach it (rndc status: %s); start named and run again", st.Msg), nil
	}
	if len(st.Newer) > 0 {
		stale = []string{"modified since named last loaded its configuration: " + strings.Join(st.Newer, ", ")}
	}
	return true, stale, "", nil
}

// withSecret registers a secret with the run's redactor before the wrapped
// step runs, so that no message of it (or of a later step) can show it.
type withSecret struct {
	installer.Step
	secret string
}

func (w withSecret) Unwrap() installer.Step { return w.Step }

func (w withSecret) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	env.Secrets.Add(w.secret)
	return w.Step.CheckApply(ctx, env, apply)
}
