// Package steps holds gridha's primitive steps: File, KeyValue, Dir, Symlink,
// Absent, Copy, Service, Restart, User, Mount, Exec and Pending. Each is a struct implementing
// installer.Step: it names the facts it needs by type (Probes:
// installer.FileProbe, ServiceProbe, ...; gathered for all steps of a host in
// one session and parsed once by the engine), reads them typed
// (env.Facts.File(path), env.Facts.Service(name), ...), and one CheckApply
// method audits (apply=false) or converges (apply=true), so --check cannot
// disagree with a real run. A result that is not as wanted names each
// property that differs (installer.DriftProps).
//
// Reads go through the probes; writes happen only when apply is true. After a
// step changed the host, the runner gathers the facts of the phase's
// remaining steps again, so a later step of the same phase sees the new
// state (two KeyValue lines of one file, two mounts in /etc/fstab, an init
// script then its service).
//
// A step whose change a daemon must act on is wrapped with installer.Notify
// and a Restart later in the host's plan handles that notification: the
// one restart of every role, over systemd, SysV and a bare init script.
// File and Dir with CreateOnly write only what is missing (a zone file
// named owns, a share folder holding moved state); Pending stands for a
// step whose input verify cannot generate.
package steps
