// Package installer is gridha's step engine: the Step contract, batched fact
// gathering, the per-host runner and the results it reports. It never parses
// flags and never dials SSH itself: a Dialer (installer/ssh) hands it one Conn
// per host.
package installer

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
)

// ReadOnlyRunner is a Conn that can run a command that changes nothing on
// the host and ends by itself (a fact batch) more cheaply: without the
// session watcher that kills a command whose connection died (see
// installer/ssh), which would cost the host a process or more per run.
// Left running after its client died, such a command only finishes its
// reads.
type ReadOnlyRunner interface {
	RunReadOnly(ctx context.Context, cmd string, stdin io.Reader) (CmdResult, error)
}

// runReadOnly runs cmd on conn as a ReadOnlyRunner when it is one, else
// with Run.
func runReadOnly(ctx context.Context, conn Conn, cmd string, stdin io.Reader) (CmdResult, error) {
	if r, ok := conn.(ReadOnlyRunner); ok {
		return r.RunReadOnly(ctx, cmd, stdin)
	}
	return conn.Run(ctx, cmd, stdin)
}

// Conn is the transport to one host: one SSH connection reused for the whole
// run. installer/ssh implements it; tests may use a local implementation.
//
// Secrets never travel in cmd: pass them on stdin.
type Conn interface {
	// Host is the inventory name of the host.
	Host() string
	// Run runs cmd with /bin/sh on the host in one session (wrapped in sudo
	// when the inventory says become: sudo). A non-zero exit is not an error:
	// it is in CmdResult.ExitCode. err is for transport failures only.
	Run(ctx context.Context, cmd string, stdin io.Reader) (CmdResult, error)
	// ReadFile reads a whole file; a missing file gives an error wrapping
	// fs.ErrNotExist.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// WriteFile writes data to a temporary file next to path, sets mode (and
	// owner/group when not empty), then renames it over path, so readers
	// never see a half-written file.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode, owner, group string) error
	// Dial opens a stream to an address as seen from the host ("tcp" or
	// "unix"), through the SSH connection (used for MySQL).
	Dial(ctx context.Context, network, addr string) (net.Conn, error)
	// Stats counts what this Conn opened so far.
	Stats() Stats
	Close() error
}

// StreamRunner is a Conn that can also stream a command's stdout to a
// writer instead of collecting it (installer/ssh's Conn): RunStream is Run
// with CmdResult.Stdout left empty.
type StreamRunner interface {
	RunStream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) (CmdResult, error)
}

// CmdResult is what a remote command left behind.
type CmdResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Err turns a non-zero exit into an error that quotes stderr (never the
// command, which a caller may prefer to keep out of logs).
func (r CmdResult) Err(what string) error {
	if r.ExitCode == 0 {
		return nil
	}
	msg := string(r.Stderr)
	if len(msg) > 400 {
		msg = msg[:400] + "..."
	}
	return fmt.Errorf("%s: exit %d: %s", what, r.ExitCode, trimSpace(msg))
}

// Stats counts SSH resources a Conn used: the benchmark and tests check that
// a host gets one connection and a constant number of sessions.
type Stats struct {
	Connections int `json:"connections"`
	Sessions    int `json:"sessions"`
}

// Dialer connects to a host by its inventory name.
type Dialer interface {
	Dial(ctx context.Context, host string) (Conn, error)
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
