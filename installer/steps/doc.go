// Package steps holds gridha's primitive steps: File, KeyValue, Dir, Symlink,
// Absent, Service, User, Mount and Exec. Each is a struct implementing
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
package steps
