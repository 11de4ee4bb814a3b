package steps

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/gridha/gridha/installer"
)

// Exec is a one-off step for needs the other primitives do not cover: a
// read-only Probe script, a Check of its result, and an Apply script run
// (apply mode only) when Check says the host is not as wanted. After Apply
// the probe runs again and Check must pass, unless NoRecheck.
//
// Secrets go on Stdin, never into Apply or Probe: both may show up in
// process listings on the host.
type Exec struct {
	Name  string
	Probe string // read-only sh; its stdout and exit code go to Check
	// Check says whether the host is as wanted and, if not, what it found
	// (for the report). nil: ok when Probe exits 0.
	Check func(installer.ProbeResult) (ok bool, found string)
	Apply string // sh
	// Stdin is fed to Apply (secrets go here).
	Stdin func() ([]byte, error)
	// NoRecheck skips checking the probe again after Apply (for effects the
	// probe cannot see at once).
	NoRecheck bool
	// ProbeKey names the fact when steps share one Probe (the same Key and
	// Script): the batch runs it once for all of them. "" keys it by Name.
	ProbeKey string
}

// ID implements installer.Step.
func (e Exec) ID() string { return "exec " + e.Name }

func (e Exec) probe() installer.Probe {
	if e.ProbeKey != "" {
		return installer.Probe{Key: e.ProbeKey, Script: e.Probe}
	}
	return installer.Probe{Key: "exec:" + e.Name, Script: e.Probe}
}

// Probes implements installer.Step.
func (e Exec) Probes() []installer.Probe {
	if e.Probe == "" {
		return nil
	}
	return []installer.Probe{e.probe()}
}

func (e Exec) check(env *installer.Env) (bool, string, error) {
	if e.Probe == "" {
		return false, "no probe: always applied", nil
	}
	pr, ok := env.Facts.Get(e.probe().Key)
	if !ok {
		return false, "", fmt.Errorf("no fact gathered for %s", e.Name)
	}
	if e.Check == nil {
		return pr.ExitCode == 0, fmt.Sprintf("probe exit %d", pr.ExitCode), nil
	}
	ok, found := e.Check(pr)
	return ok, found, nil
}

// CheckApply implements installer.Step.
func (e Exec) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	ok, found, err := e.check(env)
	if err != nil {
		return failed(env, e.ID(), err)
	}
	if ok {
		return installer.OK("")
	}
	if !apply {
		return installer.Drift(e.Name+": "+found, "", found)
	}
	if e.Apply == "" {
		return failed(env, e.ID(), fmt.Errorf("%s: %s, and nothing to apply", e.Name, found))
	}
	var stdin io.Reader
	if e.Stdin != nil {
		data, err := e.Stdin()
		if err != nil {
			return failed(env, e.ID(), err)
		}
		stdin = bytes.NewReader(data)
	}
	if _, err := sh(ctx, env, e.Name, e.Apply, stdin); err != nil {
		return failed(env, e.ID(), err)
	}
	if e.Probe != "" && !e.NoRecheck {
		if err := env.Reprobe(ctx, e.probe()); err != nil {
			return failed(env, e.ID(), err)
		}
		if ok, after, err := e.check(env); err != nil || !ok {
			return failed(env, e.ID(), fmt.Errorf("%s: still not as wanted after applying: %s", e.Name, after))
		}
	}
	return installer.Changed(e.Name + ": was " + found)
}
