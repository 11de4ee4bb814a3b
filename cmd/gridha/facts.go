package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/installer"
)

// factsCommand is `gridha facts`, the fact agent a verify runs on a host
// where gridha is installed (installer.ServeFacts): hidden, its only
// caller is the gatherer's script. A protocol other than this gridha's
// exits 3 and writes nothing, so the script falls back to the shell.
func factsCommand() *cli.Command {
	return &cli.Command{
		Name:   "facts",
		Hidden: true,
		Usage:  "answer one fact batch of a verify on this host (request on stdin; used by gridha itself)",
		Flags:  []cli.Flag{&cli.IntFlag{Name: "protocol", Usage: "the request's protocol `VERSION`", Required: true}},
		Action: func(c *cli.Context) error {
			err := installer.ServeFacts(c.Context, c.Int("protocol"), os.Stdin, c.App.Writer)
			var ae *installer.AgentError
			if errors.As(err, &ae) {
				return &exitError{code: ae.Code, err: err}
			}
			return err
		},
	}
}

// serveFactsDirect answers `gridha facts --protocol N` (exactly as the
// gatherer's script calls it) without building the command tree: a verify
// starts the agent once per host, and urfave/cli's setup of every command,
// flag and help text is a good part of what it costs to start. ok is false
// for any other command line, which then goes through Run (and gets its
// errors and help the usual way).
func serveFactsDirect(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) (code int, ok bool) {
	if len(args) != 4 || args[1] != "facts" || args[2] != "--protocol" {
		return 0, false
	}
	protocol, err := strconv.Atoi(args[3])
	if err != nil {
		return 0, false
	}
	err = installer.ServeFacts(ctx, protocol, in, out)
	if err == nil {
		return 0, true
	}
	fmt.Fprintln(errOut, "gridha:", err)
	var ae *installer.AgentError
	if errors.As(err, &ae) {
		return ae.Code, true
	}
	return 1, true
}
