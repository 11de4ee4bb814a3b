package report

import (
	"time"

	"github.com/gridha/gridha/installer"
)

// progress is the part of an engine event a reporter shows: which host, what
// it is doing now, and the result of a step when one just finished.
type progress struct {
	Time   time.Time
	Host   string
	Phase  string
	What   string            // "phase X", a step ID, "unreachable: ...", ...
	Result *installer.Result // set when a step finished
	Status installer.Status  // the status of Result, or "" while in progress
	Done   bool              // the host finished a phase
	Log    bool              // a step's own progress line
}

// progressOf reads an engine event.
func progressOf(e installer.Event, now func() time.Time) progress {
	p := progress{Time: e.Time, Host: e.Host, Phase: e.Phase}
	if p.Time.IsZero() {
		p.Time = now()
	}
	switch e.Kind {
	case installer.EventHostStart:
		p.What = "phase " + e.Phase
	case installer.EventStepResult:
		p.What = e.Step
		if e.Result != nil {
			r := *e.Result
			p.Result = &r
			p.Status = r.Status
		}
	case installer.EventHostUnreachable:
		p.What = "unreachable: " + e.Message
		p.Status = installer.StatusUnreachable
	case installer.EventHostDone:
		p.What = "phase " + e.Phase + " done"
		p.Done = true
	case installer.EventLog:
		p.What = e.Step + ": " + e.Message
		p.Log = true
	default:
		p.What = e.Message
	}
	return p
}
