package steps

import (
	"context"
	"errors"

	"github.com/gridha/gridha/installer"
)

// Pending stands for a step that cannot be planned yet because its input
// does not exist (a secret gridha generates on install: verify and --check
// generate nothing). An audit reports it missing with Why; an install fails
// with Why (the install's own plan generates the input instead, so this
// step is only ever reached when that could not happen).
type Pending struct {
	Name string // the ID of the step it stands for ("file /etc/x.key")
	Why  string
}

// ID implements installer.Step.
func (p Pending) ID() string { return p.Name }

// Probes implements installer.Step.
func (Pending) Probes() []installer.Probe { return nil }

// CheckApply implements installer.Step.
func (p Pending) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if apply {
		return failed(env, p.ID(), errors.New(p.Why))
	}
	return installer.Missing(p.Why)
}
