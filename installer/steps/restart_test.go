package steps

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
)

// TestRestartDecides: what Restart reports in an audit, from the service's
// state and the notifications of its host: a running service restarts only
// when notified (or, with its own Status, when it says it runs an old
// configuration); a stopped one is the Service step's business unless the
// Status requires it running.
func TestRestartDecides(t *testing.T) {
	running := installer.ServiceState{Init: installer.InitDebian, Installed: true, StatusCode: 0, Running: true}
	stopped := installer.ServiceState{Init: installer.InitDebian, Installed: true, StatusCode: 3}
	absent := installer.ServiceState{Init: installer.InitSystemd, StatusCode: 3}
	r := Restart{Service: "hagd", On: "hagd"}
	for _, c := range []struct {
		name     string
		state    installer.ServiceState
		notified bool
		want     installer.Status
		msg      string
	}{
		{"running, notified", running, true, installer.StatusDrift, "hagd runs an old binary, key or configuration: restart pending"},
		{"running, quiet", running, false, installer.StatusOK, "hagd runs the current"},
		{"stopped, notified", stopped, true, installer.StatusOK, "not running"},
		{"not installed, notified", absent, true, installer.StatusOK, "not running"},
	} {
		facts := installer.NewFacts(nil)
		facts.SetService("hagd", c.state)
		env := &installer.Env{Host: "h", Facts: facts}
		if c.notified {
			env.Notify("hagd")
		}
		res := r.CheckApply(context.Background(), env, false)
		if res.Status != c.want || !strings.Contains(res.Message, c.msg) {
			t.Errorf("%s: %s %q, want %s %q", c.name, res.Status, res.Message, c.want, c.msg)
		}
	}
	if got := r.Handles(); len(got) != 1 || got[0] != "hagd" || r.ID() != "restart hagd on change" {
		t.Errorf("handles %v, id %q", got, r.ID())
	}

	// A service with its own view (named: rndc status).
	own := func(running bool, stale []string, err error) Restart {
		return Restart{Service: "named", On: "named", What: "configuration", Name: "rndc reconfig", Reload: "rndc reconfig",
			Status: &RestartStatus{Probe: installer.Probe{Key: "named", Script: "true"}, Required: true,
				Parse: func([]byte) (bool, []string, string, error) { return running, stale, "rndc: connection refused", err }}}
	}
	for _, c := range []struct {
		name     string
		r        Restart
		notified bool
		want     installer.Status
		msg      string
	}{
		{"stale without notification", own(true, []string{"modified since: /etc/a"}, nil), false, installer.StatusDrift, "reload pending (modified since: /etc/a)"},
		{"notified", own(true, nil, nil), true, installer.StatusDrift, "gridha changed its configuration in this run"},
		{"current", own(true, nil, nil), false, installer.StatusOK, ""},
		{"not running, required", own(false, nil, nil), false, installer.StatusFailed, "rndc: connection refused"},
		{"unreadable", own(true, nil, errors.New("bad date")), false, installer.StatusFailed, "bad date"},
	} {
		env := &installer.Env{Host: "h", Facts: installer.NewFacts(map[string]installer.ProbeResult{"named": {}})}
		if c.notified {
			env.Notify("named")
		}
		res := c.r.CheckApply(context.Background(), env, false)
		if res.Status != c.want || !strings.Contains(res.Message, c.msg) {
			t.Errorf("%s: %s %q, want %s %q", c.name, res.Status, res.Message, c.want, c.msg)
		}
	}
}
