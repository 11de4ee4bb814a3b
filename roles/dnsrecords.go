package roles

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/gridha/gridha/installer"
)

// rrsetStep makes sure the round-robin record set exists on one primary
// with the configured TTL, through an RFC 2136 update signed with the TSIG
// key.
//
// Membership belongs to the dns-updater once the set exists: install adds
// every configured BDII only when the name has no address record at all (a
// new zone, or a set someone emptied), removes addresses that are no BDII of
// the inventory, and corrects the TTL; it does not re-add a BDII the
// updater took out because it failed its checks.
type rrsetStep struct {
	Zone string // FQDN
	Name string // FQDN
	TTL  uint32
	Want []netip.Addr
	Key  TSIGKey
	// Via is "primary" (DNS over TCP to Addr as seen from the primary,
	// through the SSH connection) or "controller" (TCP to Addr from here).
	Via  string
	Addr string
}

// dnsTimeout bounds one DNS exchange.
const dnsTimeout = 5 * time.Second

// zoneWait bounds how long a converging run waits for a zone named was just
// told to load.
const zoneWait = 15 * time.Second

func (s rrsetStep) ID() string { return "dns records " + s.Name }

func (s rrsetStep) Probes() []installer.Probe { return nil }

func (s rrsetStep) keyFQDN() string { return dns.Fqdn(strings.ToLower(s.Key.Name)) }

// exchange sends m to the primary and returns its answer.
func (s rrsetStep) exchange(ctx context.Context, env *installer.Env, m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	c := &dns.Client{Net: "tcp", Timeout: dnsTimeout}
	if m.IsTsig() != nil {
		c.TsigSecret = map[string]string{s.keyFQDN(): s.Key.Secret}
	}
	if s.Via == "controller" {
		r, _, err := c.ExchangeContext(ctx, m, s.Addr)
		return r, err
	}
	nc, err := env.Conn.Dial(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect to named at %s on the primary: %w", s.Addr, err)
	}
	defer nc.Close()
	r, _, err := c.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: nc})
	return r, err
}

// current is the record set as the primary serves it.
type current struct {
	Addrs map[netip.Addr]uint32 // address -> TTL
}

func (s rrsetStep) read(ctx context.Context, env *installer.Env) (current, error) {
	cur := current{Addrs: map[netip.Addr]uint32{}}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		q := new(dns.Msg)
		q.SetQuestion(s.Name, t)
		q.RecursionDesired = false
		r, err := s.exchange(ctx, env, q)
		if err != nil {
			return cur, fmt.Errorf("query %s %s: %w", s.Name, dns.TypeToString[t], err)
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			return cur, fmt.Errorf("query %s %s: %s", s.Name, dns.TypeToString[t], dns.RcodeToString[r.Rcode])
		}
		if !r.Authoritative {
			return cur, fmt.Errorf("query %s %s: the answer is not authoritative: is zone %s loaded as a primary?", s.Name, dns.TypeToString[t], s.Zone)
		}
		for _, rr := range r.Answer {
			switch v := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
					cur.Addrs[a] = v.Hdr.Ttl
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(v.AAAA); ok {
					cur.Addrs[a.Unmap()] = v.Hdr.Ttl
				}
			}
		}
	}
	return cur, nil
}

// plan decides the update: which addresses the set should hold afterwards
// (nil: no change) and why.
func (s rrsetStep) plan(cur current) (keep []netip.Addr, why []string) {
	want := map[netip.Addr]bool{}
	for _, a := range s.Want {
		want[a] = true
	}
	var foreign []string
	ttlBad := false
	for a, ttl := range cur.Addrs {
		if !want[a] {
			foreign = append(foreign, a.String())
			continue
		}
		keep = append(keep, a)
		if ttl != s.TTL {
			ttlBad = true
		}
	}
	sort.Strings(foreign)
	switch {
	case len(keep) == 0:
		why = append(why, "no record of a configured BDII")
		keep = append([]netip.Addr(nil), s.Want...)
	case ttlBad:
		why = append(why, fmt.Sprintf("TTL differs from %d s", s.TTL))
	}
	if len(foreign) > 0 {
		why = append(why, "addresses that are no configured BDII: "+strings.Join(foreign, ", "))
	}
	if len(why) == 0 {
		return nil, nil
	}
	sortAddrs(keep)
	return keep, why
}

func sortAddrs(a []netip.Addr) { sort.Slice(a, func(i, j int) bool { return a[i].Less(a[j]) }) }

func addrList(a []netip.Addr) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return strings.Join(s, " ")
}

func (s rrsetStep) rr(a netip.Addr) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: s.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: s.TTL}, A: net.IP(a.AsSlice())}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: s.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: s.TTL}, AAAA: net.IP(a.AsSlice())}
}

func (s rrsetStep) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	fail := func(err error) installer.Result {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, s.ID(), err))
	}
	env.Secrets.Add(s.Key.Secret)
	cur, err := s.read(ctx, env)
	if err != nil && apply {
		// named may still be loading a zone it was just told about.
		deadline := time.Now().Add(zoneWait)
		for i := 0; err != nil && time.Now().Before(deadline) && i < 60; i++ {
			select {
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(250 * time.Millisecond):
			}
			cur, err = s.read(ctx, env)
		}
	}
	if err != nil {
		if !apply {
			return installer.Missing(fmt.Sprintf("cannot read the record set: %v", err))
		}
		return fail(err)
	}
	keep, why := s.plan(cur)
	found := make([]netip.Addr, 0, len(cur.Addrs))
	for a := range cur.Addrs {
		found = append(found, a)
	}
	sortAddrs(found)
	if why == nil {
		return installer.OK(fmt.Sprintf("%s: %s (TTL %d s)", s.Name, addrList(found), s.TTL))
	}
	msg := s.Name + ": " + strings.Join(why, "; ")
	if !apply {
		want := fmt.Sprintf("%s TTL %d", addrList(keep), s.TTL)
		if len(cur.Addrs) == 0 {
			return installer.MissingProps(msg, installer.Prop("records", want, "none"))
		}
		var have []string
		for _, a := range found {
			have = append(have, fmt.Sprintf("%s TTL %d", a, cur.Addrs[a]))
		}
		r := installer.DriftProps(msg, installer.Prop("records", want, strings.Join(have, ", ")))
		r.Expected, r.Found = want, addrList(found)
		return r
	}
	m := new(dns.Msg)
	m.SetUpdate(s.Zone)
	var rrs []dns.RR
	for _, a := range keep {
		rrs = append(rrs, s.rr(a))
	}
	// One message, applied atomically: drop both sets, add what stays.
	m.RemoveRRset([]dns.RR{
		&dns.A{Hdr: dns.RR_Header{Name: s.Name, Rrtype: dns.TypeA, Class: dns.ClassINET}},
		&dns.AAAA{Hdr: dns.RR_Header{Name: s.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}},
	})
	m.Insert(rrs)
	m.SetTsig(s.keyFQDN(), dns.HmacSHA256, 300, time.Now().Unix())
	r, err := s.exchange(ctx, env, m)
	if err != nil {
		return fail(fmt.Errorf("update: %w", err))
	}
	if r.Rcode != dns.RcodeSuccess {
		return fail(fmt.Errorf("update refused: %s (is the key %s loaded and granted %s?)", dns.RcodeToString[r.Rcode], s.Key.Name, s.Name))
	}
	return installer.Changed(fmt.Sprintf("%s; now %s (TTL %d s)", msg, addrList(keep), s.TTL))
}
