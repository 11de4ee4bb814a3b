// Command gridha-testbed brings test beds up and down by hand (for the demo
// and for poking at hosts): see testbed/README.md.
//
//	gridha-testbed up --hosts state1,rb1,rb2 [--id N]
//	gridha-testbed list
//	gridha-testbed exec [--id N] HOST -- cmd...
//	gridha-testbed down --id N | --all
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gridha/gridha/testbed"
	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app().RunContext(ctx, os.Args); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "gridha-testbed:", err)
		os.Exit(1)
	}
}

func app() *cli.App {
	idFlag := &cli.IntFlag{Name: "id", Usage: "bed `ID` (1-250); default: the only bed there is"}
	return &cli.App{
		Name:           "gridha-testbed",
		ExitErrHandler: func(*cli.Context, error) {}, // main prints errors and picks the exit code
		Usage:          "throw-away hosts (Linux namespaces with sshd) for trying gridha on this machine",
		Description: "Each host has its own address 198.18.N.x on bridge ghbrN, hostname <name>.testbed.gridha,\n" +
			"private copy-on-write /etc /var /opt /srv /mnt /home /usr, a fresh /root and its own sshd.\n" +
			"Needs root. Beds stay up until 'down'.",
		Commands: []*cli.Command{
			{
				Name:  "up",
				Usage: "bring up a bed and print how to reach it",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "hosts", Usage: "comma-separated host `NAMES`", Value: "state1,rb1,rb2"},
					&cli.IntFlag{Name: "id", Usage: "bed `ID` (1-250); default: the first free one"},
					&cli.StringFlag{Name: "dir", Usage: "parent `DIR` of the bed's folder", Value: testbed.BaseDir},
				},
				Action: up,
			},
			{
				Name:   "down",
				Usage:  "tear a bed down (--id N), or every bed not used by a running test (--all)",
				Flags:  []cli.Flag{idFlag, &cli.BoolFlag{Name: "all", Usage: "every bed on this machine not used by a running test"}},
				Action: down,
			},
			{
				Name:   "list",
				Usage:  "list the beds on this machine",
				Action: list,
			},
			{
				Name:      "exec",
				Usage:     "run a command as root in a host's namespaces (default: a shell)",
				ArgsUsage: "HOST [-- CMD ARGS...]",
				Flags:     []cli.Flag{idFlag},
				Action:    execHost,
			},
		},
	}
}

func up(c *cli.Context) error {
	var hosts []string
	for _, h := range strings.Split(c.String("hosts"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	ctx, cancel := context.WithTimeout(c.Context, testbed.UpTimeout)
	defer cancel()
	start := time.Now()
	b, err := testbed.Up(ctx, testbed.Options{Hosts: hosts, ID: c.Int("id"), Dir: c.String("dir"), Hold: true})
	if err != nil {
		return err
	}
	b.Detach() // the holder keeps the bed
	w := c.App.Writer
	fmt.Fprintf(w, "bed %d up in %v: subnet %s on bridge %s (this machine is %s)\n\n", b.ID, time.Since(start).Round(time.Millisecond), b.Subnet, b.Bridge, b.Gateway)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tHOSTNAME\tNETNS")
	for _, h := range b.Hosts() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Name, h.Addr, h.Hostname, h.Netns)
	}
	tw.Flush()
	h0 := b.Hosts()[0]
	fmt.Fprintf(w, "\nclient key:  %s\nknown_hosts: %s\n\n", b.ClientKeyFile, b.KnownHostsFile)
	fmt.Fprintf(w, "ssh:   ssh -i %s -o UserKnownHostsFile=%s root@%s\n", b.ClientKeyFile, b.KnownHostsFile, h0.Addr)
	fmt.Fprintf(w, "shell: %s exec --id %d %s\n", c.App.Name, b.ID, h0.Name)
	fmt.Fprintf(w, "down:  %s down --id %d\n\n", c.App.Name, b.ID)
	fmt.Fprintf(w, "# inventory (gridha.yaml):\n%s%s", b.DefaultsYAML(), b.HostsYAML(nil))
	return nil
}

// pickID returns --id, or the only bed recorded on this machine.
func pickID(c *cli.Context) (int, error) {
	if id := c.Int("id"); id != 0 {
		return id, nil
	}
	beds, err := testbed.List(c.Context)
	if err != nil {
		return 0, err
	}
	var ids []int
	for _, b := range beds {
		if len(b.Hosts) > 0 {
			ids = append(ids, b.ID)
		}
	}
	if len(ids) != 1 {
		return 0, fmt.Errorf("%d beds on this machine (%v): say which with --id", len(ids), ids)
	}
	return ids[0], nil
}

func down(c *cli.Context) error {
	if c.Bool("all") {
		beds, err := testbed.List(c.Context)
		if err != nil {
			return err
		}
		var errs []error
		for _, b := range beds {
			if err := testbed.Clean(c.Context, b.ID, true); err != nil {
				if errors.Is(err, testbed.ErrInUse) {
					fmt.Fprintf(c.App.Writer, "bed %d left alone: %v\n", b.ID, err)
				} else {
					errs = append(errs, err)
				}
				continue
			}
			fmt.Fprintf(c.App.Writer, "bed %d down\n", b.ID)
		}
		return errors.Join(errs...)
	}
	if !c.IsSet("id") {
		return errors.New("say which bed: --id N (see list), or --all")
	}
	if err := testbed.Clean(c.Context, c.Int("id"), true); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "bed %d down\n", c.Int("id"))
	return nil
}

func list(c *cli.Context) error {
	beds, err := testbed.List(c.Context)
	if err != nil {
		return err
	}
	if len(beds) == 0 {
		fmt.Fprintln(c.App.Writer, "no beds")
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tCREATED\tHOSTS\tDIR")
	for _, b := range beds {
		state := "stale (crashed; cleaned by the next up or 'down')"
		if b.InUse {
			state = "in use"
		}
		created := "-"
		if !b.Created.IsZero() {
			created = b.Created.Local().Format("2006-01-02 15:04:05")
		}
		hosts := strings.Join(b.Hosts, ",")
		if hosts == "" {
			hosts = fmt.Sprintf("(netns: %s)", strings.Join(b.Netns, ","))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", b.ID, state, created, hosts, b.Dir)
	}
	return tw.Flush()
}

func execHost(c *cli.Context) error {
	if c.NArg() < 1 {
		return errors.New("exec: which host?")
	}
	id, err := pickID(c)
	if err != nil {
		return err
	}
	b, err := testbed.Load(id)
	if err != nil {
		return err
	}
	name := c.Args().First()
	h := b.Host(name)
	if h == nil {
		var names []string
		for _, o := range b.Hosts() {
			names = append(names, o.Name)
		}
		return fmt.Errorf("bed %d has no host %q (hosts: %s)", id, name, strings.Join(names, ", "))
	}
	argv := c.Args().Tail()
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		argv = []string{"bash", "-l"}
	}
	cmd := h.Command(c.Context, argv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = nil // keep the terminal's process group for an interactive shell
	cmd.Cancel = nil
	return cmd.Run()
}
