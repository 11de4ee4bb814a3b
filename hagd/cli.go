package hagd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/internal/daemonlog"
	"github.com/gridha/gridha/internal/metrics"
)

// Command is `gridha hagd ...`: run, status, takeover, giveup, check.
func Command() *cli.Command {
	cfgFlag := &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: DefaultConfigPath, Usage: "hagd.conf"}
	socketFlag := &cli.StringFlag{Name: "socket", Usage: "control socket (default: control in hagd.conf, else " + DefaultControl + ")"}
	return &cli.Command{
		Name:  "hagd",
		Usage: "the HA group daemon: elects a group master and runs the service script on it",
		Subcommands: []*cli.Command{
			{
				Name:  "run",
				Usage: "run the daemon in the foreground (SIGTERM: stop the service, release the lease, exit); a small supervisor restarts it and removes its service IPs if it dies",
				Flags: append([]cli.Flag{cfgFlag, &cli.BoolFlag{Name: "no-supervise", Usage: "run the daemon itself, without the supervising parent"}, &cli.StringFlag{Name: "metrics",
					Usage: "serve Prometheus metrics on http://`ADDR`/metrics (host:port; :port or port alone listen on 127.0.0.1); off by default"}},
					daemonlog.Flags()...),
				ArgsUsage: " ",
				Action: func(c *cli.Context) error {
					cfg, err := LoadConfig(c.String("config"))
					if err != nil {
						return cli.Exit(err, 2)
					}
					lo := daemonlog.FromFlags(c)
					if lo.Target == "" {
						lo.Target = cfg.Log // "" = standard error
					}
					lo.Level, lo.Tag = slogLevel(cfg.Debug), "gridha-hagd"
					if err := lo.Check(); err != nil {
						return cli.Exit(fmt.Sprintf("hagd: %v", err), 2)
					}
					log, closeLog, err := daemonlog.New(lo)
					if err != nil {
						return cli.Exit(fmt.Sprintf("hagd: %v", err), 1)
					}
					defer closeLog()
					ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
					defer stop()
					if !Supervised() && !c.Bool("no-supervise") {
						if err := Supervise(ctx, cfg, log, os.Args); err != nil {
							return cli.Exit(fmt.Sprintf("hagd: %v", err), 1)
						}
						return nil
					}
					d := &Daemon{Cfg: cfg, Log: log}
					if addr := c.String("metrics"); addr != "" {
						l, err := metrics.Listen(addr)
						if err != nil {
							return cli.Exit(fmt.Sprintf("hagd: %v", err), 1)
						}
						defer l.Close()
						d.MetricsListener = l
					}
					if err := d.Run(ctx); err != nil {
						return cli.Exit(fmt.Sprintf("hagd: %v", err), 1)
					}
					return nil
				},
			},
			{
				Name:      "check",
				Usage:     "parse hagd.conf and check the key and password files (exit 2 on error)",
				Flags:     []cli.Flag{cfgFlag},
				ArgsUsage: " ",
				Action: func(c *cli.Context) error {
					cfg, err := LoadConfig(c.String("config"))
					if err != nil {
						return cli.Exit(err, 2)
					}
					if _, err := cfg.ReadKey(); err != nil {
						return cli.Exit(err, 2)
					}
					if _, err := cfg.ReadAcceptKeys(); err != nil {
						return cli.Exit(err, 2)
					}
					if cfg.Lease == "mysql" {
						if _, err := cfg.ReadMySQLPassword(); err != nil {
							return cli.Exit(err, 2)
						}
					}
					fmt.Fprintf(c.App.Writer, "%s: ok (node %s, %d group(s), lease %s)\n", cfg.Path, cfg.ID, len(cfg.Groups), cfg.Lease)
					return nil
				},
			},
			{
				Name:      "status",
				Usage:     "show each group's state, master, members (rank, last heard) and lease",
				Flags:     []cli.Flag{cfgFlag, socketFlag, &cli.BoolFlag{Name: "json", Usage: "JSON output"}},
				ArgsUsage: " ",
				Action: func(c *cli.Context) error {
					r, err := Control(c.Context, socketPath(c), ControlRequest{Cmd: "status"})
					if err != nil {
						return cli.Exit(err, 1)
					}
					if c.Bool("json") {
						e := json.NewEncoder(c.App.Writer)
						e.SetIndent("", "  ")
						return e.Encode(r.Status)
					}
					PrintStatus(c.App.Writer, r.Status)
					return nil
				},
			},
			manualCmd("takeover", "make this node the master of GROUP (the current master stops first)", cfgFlag, socketFlag),
			manualCmd("giveup", "stop GROUP's service on this node, the master, and let another node take over", cfgFlag, socketFlag),
		},
	}
}

func manualCmd(name, usage string, flags ...cli.Flag) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "GROUP",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			// urfave/cli stops at the first argument: accept the flags
			// after GROUP too (gridha hagd takeover rb1 -c FILE).
			args := c.Args().Slice()
			var group string
			for i := 0; i < len(args); i++ {
				switch a := args[i]; {
				case (a == "-c" || a == "--config" || a == "-config") && i+1 < len(args):
					_ = c.Set("config", args[i+1])
					i++
				case (a == "--socket" || a == "-socket") && i+1 < len(args):
					_ = c.Set("socket", args[i+1])
					i++
				case group == "" && !strings.HasPrefix(a, "-"):
					group = a
				default:
					return cli.Exit("usage: gridha hagd "+name+" [-c FILE] GROUP", 2)
				}
			}
			if group == "" {
				return cli.Exit("usage: gridha hagd "+name+" [-c FILE] GROUP", 2)
			}
			if _, err := Control(c.Context, socketPath(c), ControlRequest{Cmd: name, Group: group}); err != nil {
				return cli.Exit(err, 1)
			}
			fmt.Fprintf(c.App.Writer, "%s %s: requested; follow it with gridha hagd status\n", name, group)
			return nil
		},
	}
}

func socketPath(c *cli.Context) string {
	if s := c.String("socket"); s != "" {
		return s
	}
	if cfg, err := LoadConfig(c.String("config")); err == nil {
		return cfg.Control
	}
	return DefaultControl
}

// ContextControl is Control with a timeout, for programs driving hagd.
func ContextControl(socket string, req ControlRequest, timeout time.Duration) (*ControlReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return Control(ctx, socket, req)
}

// PrintStatus writes the human form of a status reply.
func PrintStatus(w io.Writer, s *StatusReply) {
	sup := "supervised"
	if !s.Supervised {
		sup = "NOT supervised (--no-supervise): if it dies, nothing restarts it"
	}
	fmt.Fprintf(w, "node %s, up %v, port %d, lease %s, ΔT1 %v, ΔT2 %v, %s\n", s.Node, s.Uptime.Round(time.Second), s.Port, s.Lease, s.DT1, s.DT2, sup)
	fmt.Fprintf(w, "packets: accepted %d, bad signature %d, replayed %d, stale %d, malformed %d, not hagd %d, duplicate %d\n",
		s.Packets[cntAccepted], s.Packets[cntBadMAC], s.Packets[cntReplay], s.Packets[cntStale], s.Packets[cntMalformed],
		s.Packets[cntForeign], s.Packets[cntDuplicate])
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, g := range s.Groups {
		lease := g.Lease
		if g.LeaseLeft > 0 {
			lease += fmt.Sprintf(" (%v left)", g.LeaseLeft.Round(100*time.Millisecond))
		}
		master := g.Master
		if master == "" {
			master = "-"
		}
		fmt.Fprintf(tw, "\ngroup %s\trank %d\t%s for %v\tmaster %s\tlease %s\n", g.Group, g.Rank, g.State, g.Since.Round(time.Second), master, lease)
		if g.Reason != "" {
			fmt.Fprintf(tw, "  last transition: %s\n", g.Reason)
		}
		if g.Backoff > 0 {
			fmt.Fprintf(tw, "  not a candidate for %v more (backoff)\n", g.Backoff.Round(time.Second))
		}
		fmt.Fprintf(tw, "  MEMBER\tRANK\tSTATE\tCANDIDATE\tLAST HEARD\n")
		for _, m := range g.Members {
			heard := fmt.Sprintf("%.1fs ago", m.LastHeard.Seconds())
			id := m.ID
			if m.Self {
				heard, id = "(this node)", id+"*"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%v\t%s\n", id, m.Rank, m.State, m.Candidate, heard)
		}
	}
	tw.Flush()
}
