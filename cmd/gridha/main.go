// Command gridha makes grid middleware highly available: it installs and
// verifies the HA setup of gLite Resource Brokers (rb-ha-install-helper,
// state server) and top/site BDIIs (MAN05), and runs the daemons (hagd, the
// DNS updater). See `gridha --help` and README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first Ctrl-C the run winds down and reports; a second
		// one kills the process the ordinary way.
		<-ctx.Done()
		stop()
	}()
	code, done := serveFactsDirect(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	if !done {
		code = Run(ctx, os.Args, DefaultDeps())
	}
	stop()
	os.Exit(code)
}
