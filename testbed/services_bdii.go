package testbed

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A BDII on a bed host: the Debian `bdii` package's own slapd (started by
// its /usr/share/bdii/bdii-slapd-start, port 2170, databases o=grid, o=glue
// and o=infosys) and its bdii-update daemon, which reads the static LDIF of
// /var/lib/bdii/gip/ldif and the providers of /var/lib/bdii/gip/provider and
// publishes the o=infosys UpdateStats entry MAN05 monitors.
//
// bdii 6.0.0 (bookworm) calls `ldapadd/ldapmodify/ldapdelete/ldapsearch -h
// HOST -p PORT`, options OpenLDAP 2.5 removed; StartBDII installs a wrapper
// (BDIIWrapperDir, first in bdii-update's PATH) that turns them into
// `-H ldap://HOST:PORT`. Without it o=infosys never appears.

// Paths of the bed's BDII setup.
const (
	BDIIWrapperDir  = "/usr/local/lib/gridha-testbed/bdii-bin"
	BDIIConf        = "/etc/bdii/bdii.conf"
	BDIIProvider    = "/var/lib/bdii/gip/provider/gridha-testbed-static"
	BDIIUpdatePID   = "/run/bdii/bdii-update.pid"
	BDIISlapdPID    = "/run/bdii/db/slapd.pid"
	BDIIUpdateLog   = "/var/log/bdii/bdii-update.log"
	BDIIPort        = 2170
	bdiiReadyTimout = 60 * time.Second
)

// BDIIOptions configures StartBDII.
type BDIIOptions struct {
	// BreatheTime is bdii-update's pause between two updates, i.e. how often
	// UpdateStats' modifyTimestamp moves (default 1 s; the package says 120).
	BreatheTime time.Duration
	// Entries is how many static entries the provider publishes under
	// mds-vo-name=local,o=grid (default 5), on top of the package's
	// default.ldif.
	Entries int
}

const bdiiLDAPWrapper = `#!/bin/sh
# gridha test bed: bdii-update 6.0.0 runs "ldapadd -h HOST -p PORT ...";
# OpenLDAP 2.5 (bookworm) removed -h and -p. Turn them into -H ldap://HOST:PORT
# and run the real tool.
prog=${0##*/}
host= port=
n=$#
while [ "$n" -gt 0 ]; do
	a=$1; shift; n=$((n-1))
	case $a in
	-h) host=$1; shift; n=$((n-1)) ;;
	-p) port=$1; shift; n=$((n-1)) ;;
	*) set -- "$@" "$a" ;;
	esac
done
if [ -n "$host$port" ]; then
	set -- -H "ldap://${host:-localhost}:${port:-389}" "$@"
fi
exec /usr/bin/$prog "$@"
`

// StartBDII configures and starts a BDII on h (see above) and waits until
// its UpdateStats entry reports TotalEntries > 0 (at most a minute).
func (h *Host) StartBDII(ctx context.Context, opts BDIIOptions) error {
	if opts.BreatheTime <= 0 {
		opts.BreatheTime = time.Second
	}
	if opts.Entries <= 0 {
		opts.Entries = 5
	}
	var ldif strings.Builder
	for i := 1; i <= opts.Entries; i++ {
		fmt.Fprintf(&ldif, "dn: mds-vo-name=gridha-testbed-%d,mds-vo-name=local,o=grid\nobjectClass: MDS\nmds-vo-name: gridha-testbed-%d\n\n", i, i)
	}
	provider := "#!/bin/sh\n# gridha test bed: a static information provider for " + h.Hostname + "\ncat <<'GRIDHA_LDIF'\n" +
		ldif.String() + "GRIDHA_LDIF\n"
	conf := fmt.Sprintf(`# written by the gridha test bed (StartBDII)
BDII_LOG_FILE=%s
BDII_PID_FILE=%s
BDII_LOG_LEVEL=ERROR
BDII_LDIF_DIR=/var/lib/bdii/gip/ldif
BDII_PROVIDER_DIR=/var/lib/bdii/gip/provider
BDII_PLUGIN_DIR=/var/lib/bdii/gip/plugin
BDII_PORT=%d
BDII_BREATHE_TIME=%s
BDII_READ_TIMEOUT=30
BDII_ARCHIVE_SIZE=0
BDII_DELETE_DELAY=0
BDII_USER=openldap
BDII_VAR_DIR=/var/lib/bdii
`, BDIIUpdateLog, BDIIUpdatePID, BDIIPort, strconv.FormatFloat(opts.BreatheTime.Seconds(), 'f', -1, 64))
	files := []struct {
		path, data string
		mode       uint32
	}{
		{BDIIConf, conf, 0o644},
		{BDIIProvider, provider, 0o755},
	}
	if _, err := h.Sh(ctx, "mkdir -p "+shq(BDIIWrapperDir)+" /var/log/bdii && chown openldap:openldap /var/log/bdii"); err != nil {
		return fmt.Errorf("%s: StartBDII: %w", h.Name, err)
	}
	for _, tool := range []string{"ldapadd", "ldapmodify", "ldapdelete", "ldapsearch"} {
		files = append(files, struct {
			path, data string
			mode       uint32
		}{BDIIWrapperDir + "/" + tool, bdiiLDAPWrapper, 0o755})
	}
	for _, f := range files {
		if err := h.WriteFile(f.path, []byte(f.data), 0o644); err != nil {
			return fmt.Errorf("%s: StartBDII: %w", h.Name, err)
		}
		if _, err := h.Exec(ctx, "chmod", strconv.FormatUint(uint64(f.mode), 8), f.path); err != nil {
			return fmt.Errorf("%s: StartBDII: %w", h.Name, err)
		}
	}
	// slapd first (the package's start script daemonizes it), then the updater.
	if out, err := h.Sh(ctx, `set -e
if p=$(cat `+BDIISlapdPID+` 2>/dev/null) && kill -0 "$p" 2>/dev/null; then exit 0; fi
ip link set lo up 2>/dev/null || true
BDII_CONF=`+BDIIConf+` /usr/share/bdii/bdii-slapd-start`); err != nil {
		return fmt.Errorf("%s: StartBDII: slapd: %v: %s", h.Name, err, strings.TrimSpace(out))
	}
	if err := h.StartBDIIUpdate(ctx); err != nil {
		return err
	}
	return h.WaitBDII(ctx)
}

// StartBDIIUpdate starts bdii-update (daemon mode, as openldap, with the
// ldap tools wrapper first in its PATH) unless it runs already.
func (h *Host) StartBDIIUpdate(ctx context.Context) error {
	script := `set -e
if p=$(cat ` + BDIIUpdatePID + ` 2>/dev/null) && kill -0 "$p" 2>/dev/null; then exit 0; fi
rm -f ` + BDIIUpdatePID + `
runuser -u openldap -- env PATH=` + BDIIWrapperDir + `:/usr/sbin:/usr/bin:/sbin:/bin SLAPD_CONF=/etc/bdii/bdii-slapd.conf \
	/usr/sbin/bdii-update -c ` + BDIIConf + ` -d </dev/null >/dev/null 2>&1
i=0
while [ ! -s ` + BDIIUpdatePID + ` ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -s ` + BDIIUpdatePID + ` ] || { echo "bdii-update wrote no pid file"; tail -n 20 ` + BDIIUpdateLog + `; exit 1; }`
	if out, err := h.Sh(ctx, script); err != nil {
		return fmt.Errorf("%s: StartBDIIUpdate: %v: %s", h.Name, err, strings.TrimSpace(out))
	}
	return nil
}

// StopBDIIUpdate stops bdii-update only: slapd keeps answering but
// UpdateStats' modifyTimestamp ages, as with a hung updater (the BDII's
// init script calls an UpdateStats older than 1200 s stale).
func (h *Host) StopBDIIUpdate(ctx context.Context) error {
	return h.killPIDFile(ctx, "StopBDIIUpdate", BDIIUpdatePID, true)
}

// StopBDII stops bdii-update and slapd: the BDII no longer answers.
func (h *Host) StopBDII(ctx context.Context) error {
	if err := h.StopBDIIUpdate(ctx); err != nil {
		return err
	}
	return h.killPIDFile(ctx, "StopBDII", BDIISlapdPID, false)
}

// KillBDII SIGKILLs slapd and bdii-update at once: a crashed BDII (for
// measuring how fast DNS notices).
func (h *Host) KillBDII(ctx context.Context) error {
	script := `for f in ` + BDIISlapdPID + ` ` + BDIIUpdatePID + `; do
p=$(cat "$f" 2>/dev/null) || continue
[ -n "$p" ] && { kill -KILL -- "-$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; }
rm -f "$f"
done
exit 0`
	if out, err := h.Sh(ctx, script); err != nil {
		return fmt.Errorf("%s: KillBDII: %v: %s", h.Name, err, strings.TrimSpace(out))
	}
	return nil
}

// killPIDFile SIGTERMs the process (group) of a pid file, waits up to 10 s,
// then SIGKILLs it.
func (h *Host) killPIDFile(ctx context.Context, what, pidFile string, group bool) error {
	grp := ""
	if group {
		grp = `kill -TERM -- "-$p" 2>/dev/null || true`
	}
	script := `f=` + pidFile + `
p=$(cat "$f" 2>/dev/null) || exit 0
[ -n "$p" ] || exit 0
kill -0 "$p" 2>/dev/null || { rm -f "$f"; exit 0; }
` + grp + `
kill -TERM "$p" 2>/dev/null || true
i=0
while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if kill -0 "$p" 2>/dev/null; then kill -KILL -- "-$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; sleep 0.2; fi
rm -f "$f"`
	if out, err := h.Sh(ctx, script); err != nil {
		return fmt.Errorf("%s: %s: %v: %s", h.Name, what, err, strings.TrimSpace(out))
	}
	return nil
}

// BDIIStats returns the UpdateStats entry's TotalEntries and modifyTimestamp
// as slapd on h reports them (ldapsearch inside the host).
func (h *Host) BDIIStats(ctx context.Context) (total int, modified time.Time, err error) {
	out, err := h.Exec(ctx, "ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", "ldap://127.0.0.1:2170",
		"-b", "o=infosys", "(objectClass=UpdateStats)", "TotalEntries", "modifyTimestamp")
	if err != nil {
		return 0, time.Time{}, err
	}
	total = -1
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "TotalEntries: "); ok {
			total, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if v, ok := strings.CutPrefix(l, "modifyTimestamp: "); ok {
			modified, _ = time.Parse("20060102150405Z", strings.TrimSpace(v))
		}
	}
	if total < 0 {
		return 0, time.Time{}, fmt.Errorf("%s: no UpdateStats entry yet", h.Name)
	}
	return total, modified, nil
}

// WaitBDII waits (at most a minute) until h's UpdateStats reports
// TotalEntries > 0 (bdii-update's second cycle: the first counts nothing).
func (h *Host) WaitBDII(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, bdiiReadyTimout)
	defer cancel()
	var last error
	for i := 0; i < 600; i++ {
		total, _, err := h.BDIIStats(ctx)
		if err == nil && total > 0 {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("TotalEntries %d", total)
		}
		select {
		case <-ctx.Done():
			log, _ := h.ReadFile(BDIIUpdateLog)
			return fmt.Errorf("%s: BDII not ready: %v\n%s", h.Name, last, bdiiLogTail(string(log), 20))
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: BDII not ready: %v", h.Name, last)
}

func bdiiLogTail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
