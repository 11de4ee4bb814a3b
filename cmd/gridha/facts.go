package main

import (
	"errors"
	"os"

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
