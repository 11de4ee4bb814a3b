package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/report"
)

// exitError carries an exit code to Run; msg (when set) is printed as
// "gridha: msg" on stderr.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// badInput is exit 3: the inventory, a flag or an argument is wrong, and no
// host was dialled.
func badInput(err error) error { return &exitError{code: report.ExitBadInput, err: err} }

func badInputf(format string, args ...any) error { return badInput(fmt.Errorf(format, args...)) }

// exitCode turns the error an action returned into the process exit code.
// The message of an exitError or cli.ExitCoder has been printed by then, by
// Run.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	// Anything else comes from urfave/cli itself: an unknown command, a
	// flag that does not parse: bad usage.
	return report.ExitBadInput
}
