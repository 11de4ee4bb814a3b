package hagd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The status file is what `gridha hagd status --json` answers, written by
// the daemon's main loop at start, at every group transition and at least
// once per heartbeat interval, so that a reader needs no process and no
// round trip through the control socket: `gridha verify` reads it on every
// rb node with the shell's own read, where starting the gridha binary to ask
// the socket cost more CPU than everything else verify does on the node.
// Each write is a private temporary file renamed into place: a reader sees
// the old or the new status, never a half-written one. The daemon removes it
// when it stops cleanly; a daemon that died leaves a stale one, which the
// reader recognises by Clock: the host's uptime (/proc/uptime, first field,
// the same clock a reader reads) when it was written. Mode 0600, like the
// control socket: it says what the socket says, to root only.

// StatusFileStatus is the status file's content (one line of JSON).
type StatusFileStatus struct {
	StatusReply
	// Clock is the first field of /proc/uptime (seconds since boot, two
	// decimals) when the file was written; "" when it could not be read.
	Clock string `json:"clock"`
	PID   int    `json:"pid"`
}

// statusWrite is when the status file was last written and whether a
// transition since asks for a write before the next interval.
type statusWrite struct {
	last  time.Time
	dirty bool
	err   bool // an error was logged (logged once)
}

// readUptime returns the first field of /proc/uptime.
func readUptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return ""
	}
	f, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	return f
}

// maybeWriteStatus writes the status file when a transition happened since
// the last write or a heartbeat interval has passed (main loop only).
func (d *Daemon) maybeWriteStatus(now time.Time) {
	if d.Cfg.StatusFile == "" {
		return
	}
	if !d.sw.dirty && now.Sub(d.sw.last) < d.Cfg.Heartbeat {
		return
	}
	d.writeStatus(now)
}

func (d *Daemon) writeStatus(now time.Time) {
	path := d.Cfg.StatusFile
	d.sw.last, d.sw.dirty = now, false
	b, err := json.Marshal(StatusFileStatus{StatusReply: d.status(), Clock: readUptime(), PID: os.Getpid()})
	if err == nil {
		b = append(b, '\n')
		err = writeFileAtomic(path, b)
	}
	if err != nil && !d.sw.err {
		d.sw.err = true
		d.Log.Warn("status_file: cannot write the status (gridha verify reports hagd as not running)", "file", path, "err", err)
	}
}

// removeStatus removes the status file at a clean stop: the daemon is gone
// at once, not only when the file has grown stale.
func (d *Daemon) removeStatus() {
	if d.Cfg.StatusFile != "" {
		_ = os.Remove(d.Cfg.StatusFile)
	}
}

// writeFileAtomic writes b to a new private file next to path (0600 from its
// first byte) and renames it onto path.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
