package dnsupdater

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/internal/daemonlog"
	"github.com/gridha/gridha/internal/metrics"
)

// DefaultConfigFile is where `gridha install dns` writes the configuration.
const DefaultConfigFile = "/etc/gridha/dns-updater.conf"

// Command is `gridha dns-updater` (run, status); the CLI mounts it.
func Command() *cli.Command {
	cfgFlag := &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: DefaultConfigFile,
		Usage: "configuration file (key = value, see the dnsupdater README)"}
	return &cli.Command{
		Name:  "dns-updater",
		Usage: "MAN05 fault-tolerant DNS updater: keep a BDII round robin equal to the healthy BDIIs",
		Description: "Checks every BDII over LDAP (o=infosys UpdateStats: freshness, TotalEntries) and optional\n" +
			"Nagios plugins, and sends TSIG-signed RFC 2136 updates to every primary so that the round-robin\n" +
			"name holds exactly the healthy BDIIs (never none). Exit codes of --once and status: 0 OK,\n" +
			"1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
		Subcommands: []*cli.Command{
			{
				Name:  "run",
				Usage: "run the updater (daemon; SIGTERM stops it cleanly), or one cycle with --once",
				Flags: append([]cli.Flag{
					cfgFlag,
					&cli.BoolFlag{Name: "once", Usage: "run one cycle, print a Nagios line, exit 0/1/2/3 (cron/Nagios mode)"},
					&cli.BoolFlag{Name: "dry-run", Usage: "with --once: check and print what would change, send no update, keep the state file"},
					&cli.BoolFlag{Name: "debug", Usage: "log debug messages"},
					&cli.StringFlag{Name: "metrics", Usage: "daemon: serve Prometheus metrics on http://`ADDR`/metrics (host:port; :port or port alone listen on 127.0.0.1); off by default"},
				}, daemonlog.Flags()...),
				Action: func(c *cli.Context) error {
					if c.Bool("dry-run") && !c.Bool("once") {
						return cli.Exit("dns-updater: --dry-run needs --once", int(Unknown))
					}
					lo := daemonlog.FromFlags(c)
					if err := lo.Check(); err != nil {
						return cli.Exit("dns-updater: "+err.Error(), int(Unknown))
					}
					if c.String("metrics") != "" && c.Bool("once") {
						return cli.Exit("dns-updater: --metrics is for the daemon, not --once", int(Unknown))
					}
					code := run(c.Context, c.String("config"), c.Bool("once"), c.Bool("dry-run"), c.Bool("debug"), c.App.Writer, lo, c.String("metrics"))
					if code != 0 {
						return cli.Exit("", code)
					}
					return nil
				},
			},
			{
				Name:  "status",
				Usage: "print the last cycle's result from the state file (Nagios exit codes)",
				Flags: []cli.Flag{
					cfgFlag,
					&cli.StringFlag{Name: "state-file", Usage: "read this state file instead of the configured one"},
				},
				Action: func(c *cli.Context) error {
					code := status(c.String("config"), c.String("state-file"), time.Now(), c.App.Writer, c.App.ErrWriter)
					if code != 0 {
						return cli.Exit("", code)
					}
					return nil
				},
			},
		},
	}
}

func run(ctx context.Context, cfgPath string, once, dryRun, debug bool, stdout io.Writer, lo daemonlog.Options, metricsAddr string) int {
	if ctx == nil {
		ctx = context.Background()
	}
	if stdout == nil {
		stdout = os.Stdout
	}
	lo.Level, lo.Tag = slog.LevelInfo, "gridha-dns-updater"
	if debug {
		lo.Level = slog.LevelDebug
	}
	log, closeLog, err := daemonlog.New(lo)
	if err != nil {
		fmt.Fprintf(stdout, "DNS-UPDATER UNKNOWN - %v\n", err)
		return int(Unknown)
	}
	defer closeLog()
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		fmt.Fprintf(stdout, "DNS-UPDATER UNKNOWN - %v\n", err)
		return int(Unknown)
	}
	key, err := cfg.LoadKey()
	if err != nil {
		fmt.Fprintf(stdout, "DNS-UPDATER UNKNOWN - %v\n", err)
		return int(Unknown)
	}
	u := New(cfg, key, nil, log)
	if prev, err := LoadState(cfg.StateFile); err != nil {
		log.Warn("ignoring the previous state", "err", err)
	} else {
		u.Restore(prev)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	if once {
		u.DryRun = dryRun
		st := u.Cycle(ctx)
		if dryRun {
			// The damping counts of a dry run must not count for real runs.
			st.WriteReport(stdout)
			return int(st.Status)
		}
		if err := SaveState(cfg.StateFile, st); err != nil {
			log.Error("cannot write the state file", "err", err)
		}
		fmt.Fprintln(stdout, st.NagiosLine())
		return int(st.Status)
	}
	if metricsAddr != "" {
		l, err := metrics.Listen(metricsAddr)
		if err != nil {
			log.Error("dns-updater", "err", err)
			return 1
		}
		m := &Metrics{}
		u.OnCycle = m.Observe
		go func() {
			if err := metrics.Serve(ctx, l, m.Text); err != nil {
				log.Error("metrics endpoint stopped", "err", err)
			}
		}()
	}
	if err := u.Run(ctx); err != nil {
		log.Error("dns-updater", "err", err)
		return 1
	}
	return 0
}

// status prints the state file; a state older than three intervals (or
// from a stopped updater) is UNKNOWN: nobody is keeping DNS up to date.
func status(cfgPath, statePath string, now time.Time, stdout, stderr io.Writer) int {
	if stdout == nil {
		stdout = os.Stdout
	}
	interval := DefaultInterval
	if statePath == "" {
		cfg, err := LoadConfig(cfgPath)
		if err != nil {
			fmt.Fprintf(stdout, "DNS-UPDATER UNKNOWN - %v\n", err)
			return int(Unknown)
		}
		statePath, interval = cfg.StateFile, cfg.Interval
	}
	st, err := LoadState(statePath)
	if err != nil {
		fmt.Fprintf(stdout, "DNS-UPDATER UNKNOWN - %v\n", err)
		return int(Unknown)
	}
	if st == nil {
		fmt.Fprintf(stdout, "DNS-UPDATER UNKNOWN - no state file %s: the updater has not run yet\n", statePath)
		return int(Unknown)
	}
	if d, err := time.ParseDuration(st.Interval); err == nil && d > 0 {
		interval = d
	}
	if age := now.Sub(st.Time); !st.Stopped && age > 3*interval+10*time.Second {
		st.Status = Unknown
		st.Message = fmt.Sprintf("state is %s old (interval %s): is the updater running? last: %s",
			age.Truncate(time.Second), interval, st.Message)
	}
	st.WriteReport(stdout)
	return int(st.Status)
}
