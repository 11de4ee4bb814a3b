// Package daemonlog builds the log/slog logger of gridha's daemons (hagd,
// the DNS updater), so that both log the same way and a site's log shipping
// sees one format:
//
//   - stderr (default): key=value lines (logfmt, what slog's TextHandler
//     writes) or JSON lines. Under systemd stderr goes to the journal; the
//     journal stamps every line itself, so the time= field is left out there
//     (stderr is the stream JOURNAL_STREAM names).
//   - syslog: the local syslog daemon (log/syslog), facility daemon, the
//     record's level as the syslog priority; no time= field (syslog stamps).
//   - a file path: appended to (created 0640), for SysV hosts whose init
//     scripts keep a log file; logrotate's copytruncate works with it.
package daemonlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Targets and formats as the --log and --log-format flags spell them.
const (
	TargetStderr = "stderr"
	TargetSyslog = "syslog"
	FormatText   = "text"
	FormatJSON   = "json"
)

// Flag names shared by the daemons' run commands.
const (
	FlagLog       = "log"
	FlagLogFormat = "log-format"
)

// Options choose where and how a daemon logs.
type Options struct {
	// Target is TargetStderr (or ""), TargetSyslog, or an absolute file path.
	Target string
	// Format is FormatText (or "") or FormatJSON.
	Format string
	// Level is the lowest level logged.
	Level slog.Leveler
	// Tag names the program in syslog ("gridha-hagd").
	Tag string
	// Stderr is where TargetStderr writes (default os.Stderr).
	Stderr io.Writer
	// Getenv reads the environment (default os.Getenv): JOURNAL_STREAM.
	Getenv func(string) string
	// Syslog dials the syslog daemon (default: log/syslog.New); tests
	// point it at their own socket with syslog.Dial.
	Syslog func(prio syslog.Priority, tag string) (*syslog.Writer, error)
}

// Flags are the logging flags of a daemon's run command.
func Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: FlagLog, Usage: "where to log: stderr (journald under systemd), syslog, or an absolute `FILE` path"},
		&cli.StringFlag{Name: FlagLogFormat, Value: FormatText, Usage: "log line `FORMAT`: text (key=value) or json"},
	}
}

// FromFlags reads Flags into Options (target "" when --log was not given:
// the daemon's configuration may name a file).
func FromFlags(c *cli.Context) Options {
	return Options{Target: c.String(FlagLog), Format: c.String(FlagLogFormat), Stderr: c.App.ErrWriter}
}

// Check reports a bad target or format without opening anything.
func (o Options) Check() error {
	switch o.Format {
	case "", FormatText, FormatJSON:
	default:
		return fmt.Errorf("--log-format must be text or json, got %q", o.Format)
	}
	switch t := o.Target; {
	case t == "", t == TargetStderr, t == TargetSyslog:
	case filepath.IsAbs(t):
	default:
		return fmt.Errorf("--log must be stderr, syslog or an absolute file path, got %q", t)
	}
	return nil
}

// New builds the logger. The returned close function flushes and closes
// the file or syslog connection (a no-op for stderr).
func New(o Options) (*slog.Logger, func() error, error) {
	if err := o.Check(); err != nil {
		return nil, nil, err
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	noop := func() error { return nil }
	switch o.Target {
	case "", TargetStderr:
		// journald time-stamps each line: a second time would only differ.
		return slog.New(newHandler(o.Stderr, o.Format, o.Level, toJournal(o.Stderr, o.Getenv("JOURNAL_STREAM")))), noop, nil
	case TargetSyslog:
		dial := o.Syslog
		if dial == nil {
			dial = syslog.New
		}
		tag := o.Tag
		if tag == "" {
			tag = "gridha"
		}
		w, err := dial(syslog.LOG_DAEMON|syslog.LOG_INFO, tag)
		if err != nil {
			return nil, nil, fmt.Errorf("--log syslog: %w", err)
		}
		s := &sink{w: w, mu: &sync.Mutex{}}
		return slog.New(&syslogHandler{inner: newHandler(s, o.Format, o.Level, true), sink: s}), w.Close, nil
	}
	f, err := os.OpenFile(o.Target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	return slog.New(newHandler(f, o.Format, o.Level, false)), f.Close, nil
}

// toJournal reports whether w is the journal's stream: systemd sets
// JOURNAL_STREAM to the device and inode of the service's stderr, and a
// SysV init script run by systemd inherits it while it sends stderr to a
// log file, where lines need their time.
func toJournal(w io.Writer, stream string) bool {
	f, ok := w.(*os.File)
	if !ok || stream == "" {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return stream == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func newHandler(w io.Writer, format string, level slog.Leveler, noTime bool) slog.Handler {
	ho := &slog.HandlerOptions{Level: level}
	if noTime {
		ho.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	if format == FormatJSON {
		return slog.NewJSONHandler(w, ho)
	}
	return slog.NewTextHandler(w, ho)
}

// sink hands one formatted record to syslog at the record's priority.
// slog's handlers write each record with exactly one Write, so the level
// set just before Handle is the level of that Write; mu (shared by every
// handler derived with WithAttrs/WithGroup) keeps the pair together.
type sink struct {
	w     *syslog.Writer
	mu    *sync.Mutex
	level slog.Level
}

func (s *sink) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	var err error
	switch {
	case s.level >= slog.LevelError:
		err = s.w.Err(msg)
	case s.level >= slog.LevelWarn:
		err = s.w.Warning(msg)
	case s.level >= slog.LevelInfo:
		err = s.w.Info(msg)
	default:
		err = s.w.Debug(msg)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

type syslogHandler struct {
	inner slog.Handler
	sink  *sink
}

func (h *syslogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	h.sink.level = r.Level
	return h.inner.Handle(ctx, r)
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &syslogHandler{inner: h.inner.WithAttrs(as), sink: h.sink}
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{inner: h.inner.WithGroup(name), sink: h.sink}
}
