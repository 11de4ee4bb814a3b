package testbed

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// BIND9 on a bed host: a real named (Debian's bind9 package, its own
// /etc/bind configuration in the host's copy-on-write /etc) serving one
// primary zone.
//
// StartBIND writes the zone file /var/lib/bind/db.<zone> (SOA and NS only),
// the zone statement in /etc/bind/named.conf.gridha (the file `gridha install
// dns` owns and replaces with its own zone statement, key include and
// update-policy) and the include line for it in /etc/bind/named.conf.local
// (the same line gridha writes), then starts `named -u bind` and waits until
// it answers for the zone on the host's address. named logs to
// /var/log/named-testbed.log inside the host.

// Paths of the bed's BIND setup (the same ones the dns role uses by default).
const (
	BINDConfDir      = "/etc/bind"
	BINDGridhaConf   = "/etc/bind/named.conf.gridha"
	BINDLocalConf    = "/etc/bind/named.conf.local"
	BINDLog          = "/var/log/named-testbed.log"
	bindIncludeLine  = `include "/etc/bind/named.conf.gridha"; // managed by gridha`
	bindStartTimeout = 30 * time.Second
)

// BINDZoneFile is where StartBIND puts the zone's data.
func BINDZoneFile(zone string) string {
	return "/var/lib/bind/db." + strings.TrimSuffix(strings.ToLower(zone), ".")
}

// StartBIND makes h a BIND primary for zone and starts named (see above). A
// zone file already there is kept (named rewrites it from its journal).
func (h *Host) StartBIND(ctx context.Context, zone string) error {
	zone = strings.TrimSuffix(strings.ToLower(zone), ".")
	if _, ok := dns.IsDomainName(zone); !ok || zone == "" {
		return fmt.Errorf("%s: StartBIND: bad zone %q", h.Name, zone)
	}
	zf := BINDZoneFile(zone)
	zoneData := fmt.Sprintf(`$TTL 300
@	IN SOA	%[1]s. hostmaster.%[2]s. ( 1 3600 600 86400 60 )
@	IN NS	%[1]s.
`, h.Hostname, zone)
	stmt := fmt.Sprintf(`// Written by the gridha test bed (StartBIND); gridha install dns replaces it.
zone "%s" {
	type primary;
	file "%s";
};
`, zone, zf)
	script := fmt.Sprintf(`set -e
mkdir -p /run/named /var/cache/bind /var/lib/bind
chown bind:bind /run/named /var/cache/bind /var/lib/bind
if [ ! -s %[1]s ]; then cat > %[1]s <<'GRIDHA_ZONE'
%[2]sGRIDHA_ZONE
chown bind:bind %[1]s; chmod 0644 %[1]s; fi
if [ ! -e %[3]s ]; then cat > %[3]s <<'GRIDHA_STMT'
%[4]sGRIDHA_STMT
chmod 0644 %[3]s; fi
grep -qF %[5]s %[6]s 2>/dev/null || printf '%%s\n' %[5]s >> %[6]s
: > %[7]s; chown bind:bind %[7]s
named-checkconf
ip link set lo up 2>/dev/null || true
named -u bind -L %[7]s
`, shq(zf), zoneData, shq(BINDGridhaConf), stmt, shq(bindIncludeLine), shq(BINDLocalConf), shq(BINDLog))
	if out, err := h.Sh(ctx, script); err != nil {
		return fmt.Errorf("%s: StartBIND %s: %v: %s", h.Name, zone, err, strings.TrimSpace(out))
	}
	return h.WaitBIND(ctx, zone)
}

// WaitBIND waits (at most 30 s) until named on h answers the zone's SOA on
// the host's address, port 53.
func (h *Host) WaitBIND(ctx context.Context, zone string) error {
	ctx, cancel := context.WithTimeout(ctx, bindStartTimeout)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	q.RecursionDesired = false
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	addr := net.JoinHostPort(h.Addr, "53")
	var last error
	for i := 0; i < 300; i++ {
		r, _, err := c.ExchangeContext(ctx, q, addr)
		switch {
		case err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0:
			return nil
		case err == nil:
			last = fmt.Errorf("answer %s", dns.RcodeToString[r.Rcode])
		default:
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: named does not answer for %s on %s: %v (log %s)", h.Name, zone, addr, last, BINDLog)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: named does not answer for %s on %s: %v (log %s)", h.Name, zone, addr, last, BINDLog)
}

// ReloadBIND has named reload its configuration and zones (rndc reload).
func (h *Host) ReloadBIND(ctx context.Context) error {
	if out, err := h.Sh(ctx, "rndc reload"); err != nil {
		return fmt.Errorf("%s: rndc reload: %v: %s", h.Name, err, strings.TrimSpace(out))
	}
	return nil
}

// StopBIND stops named (rndc stop, which also writes the journal back to
// the zone file) and waits for it to exit; it kills it after 10 s.
func (h *Host) StopBIND(ctx context.Context) error {
	script := `pid=$(cat /run/named/named.pid 2>/dev/null) || exit 0
kill -0 "$pid" 2>/dev/null || exit 0
rndc stop >/dev/null 2>&1 || kill "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; echo "named killed" >&2; fi
exit 0`
	if out, err := h.Sh(ctx, script); err != nil {
		return fmt.Errorf("%s: StopBIND: %v: %s", h.Name, err, strings.TrimSpace(out))
	}
	return nil
}

// AllowBINDUpdates rewrites named.conf.gridha the way `gridha install dns`
// does, for tests that want a primary accepting updates without running
// gridha: the key keyName (HMAC-SHA256, base64 secret) may change the A and
// AAAA records of name (absolute) in zone; named reloads. The secret goes
// through a file written by the test process, never a command line.
func (h *Host) AllowBINDUpdates(ctx context.Context, zone, keyName, secret, name string) error {
	zone = strings.TrimSuffix(strings.ToLower(zone), ".")
	keyFile := BINDConfDir + "/gridha-" + strings.TrimSuffix(keyName, ".") + ".key"
	key := fmt.Sprintf("key \"%s\" {\n\talgorithm hmac-sha256;\n\tsecret \"%s\";\n};\n", strings.TrimSuffix(keyName, "."), secret)
	if err := h.WriteFile(keyFile, []byte(key), 0o640); err != nil {
		return fmt.Errorf("%s: AllowBINDUpdates: %w", h.Name, err)
	}
	conf := fmt.Sprintf(`include "%s";
zone "%s" {
	type primary;
	file "%s";
	update-policy {
		grant %s name %s A AAAA;
	};
};
`, keyFile, zone, BINDZoneFile(zone), strings.TrimSuffix(keyName, "."), dns.Fqdn(name))
	if err := h.WriteFile(BINDGridhaConf, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("%s: AllowBINDUpdates: %w", h.Name, err)
	}
	if out, err := h.Sh(ctx, "chgrp bind "+shq(keyFile)+" && named-checkconf && rndc reconfig"); err != nil {
		return fmt.Errorf("%s: AllowBINDUpdates: %v: %s", h.Name, err, strings.TrimSpace(out))
	}
	return nil
}

// shq quotes s for POSIX sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
