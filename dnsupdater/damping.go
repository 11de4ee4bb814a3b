package dnsupdater

import "fmt"

// Damper is the flap damping of one BDII address: it leaves the round robin
// after FailAfter failed checks in a row and comes back after RecoverAfter
// good checks in a row. It is pure (no clock, no I/O) and its fields are the
// state the updater keeps in its state file across restarts.
type Damper struct {
	InService bool `json:"in_service"`
	Fails     int  `json:"consecutive_failures"`
	Successes int  `json:"consecutive_successes"`
}

// NewDamper starts in service: at start-up the updater has no history, and
// the records the dns role created are presumed good until checks say
// otherwise (FailAfter of them).
func NewDamper() Damper { return Damper{InService: true} }

// Observe records one check outcome and reports whether the BDII's service
// state changed, with the reason.
func (d *Damper) Observe(healthy bool, failAfter, recoverAfter int) (changed bool, reason string) {
	if healthy {
		d.Fails = 0
		d.Successes++
		if !d.InService && d.Successes >= recoverAfter {
			d.InService = true
			return true, fmt.Sprintf("%d consecutive good checks (recover_after %d)", d.Successes, recoverAfter)
		}
		return false, ""
	}
	d.Successes = 0
	d.Fails++
	if d.InService && d.Fails >= failAfter {
		d.InService = false
		return true, fmt.Sprintf("%d consecutive failed checks (fail_after %d)", d.Fails, failAfter)
	}
	return false, ""
}

// Describe is a short human description of the damping state.
func (d Damper) Describe(failAfter, recoverAfter int) string {
	switch {
	case d.InService && d.Fails > 0:
		return fmt.Sprintf("in service, failing %d/%d", d.Fails, failAfter)
	case d.InService:
		return "in service"
	case d.Successes > 0:
		return fmt.Sprintf("out of service, recovering %d/%d", d.Successes, recoverAfter)
	}
	return "out of service"
}
