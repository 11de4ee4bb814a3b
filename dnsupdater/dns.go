package dnsupdater

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// RecordSet is the A and AAAA records of the round-robin name on one primary.
type RecordSet struct {
	Addrs []netip.Addr // sorted
	TTLs  []uint32     // TTL of each address, same order
	rrs   []dns.RR     // as read, for the update's prerequisite
}

// Has reports whether a is in the set.
func (s RecordSet) Has(a netip.Addr) bool { return slices.Contains(s.Addrs, a) }

// Strings lists the addresses as text.
func (s RecordSet) Strings() []string {
	out := make([]string, len(s.Addrs))
	for i, a := range s.Addrs {
		out[i] = a.String()
	}
	return out
}

// DNSClient talks to the primaries: reads over TCP, RFC 2136 updates signed
// with TSIG.
type DNSClient struct {
	Zone    string
	Name    string
	TTL     uint32
	Key     *TSIGKey
	Timeout time.Duration // per exchange
}

var errPrereq = errors.New("record set changed since it was read (another updater?)")

func (c *DNSClient) client() *dns.Client {
	cl := &dns.Client{Net: "tcp", Timeout: c.Timeout}
	if c.Key != nil {
		cl.TsigSecret = map[string]string{c.Key.Name: c.Key.Secret}
	}
	return cl
}

func (c *DNSClient) exchange(ctx context.Context, m *dns.Msg, primary string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	r, _, err := c.client().ExchangeContext(ctx, m, primary)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Read queries primary directly (TCP, no recursion) for the name's A and
// AAAA records. The primary must answer authoritatively.
func (c *DNSClient) Read(ctx context.Context, primary string) (RecordSet, error) {
	var rs RecordSet
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m := new(dns.Msg)
		m.SetQuestion(c.Name, qt)
		m.RecursionDesired = false
		r, err := c.exchange(ctx, m, primary)
		if err != nil {
			return RecordSet{}, fmt.Errorf("query %s %s: %w", c.Name, dns.TypeToString[qt], err)
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			return RecordSet{}, fmt.Errorf("query %s %s: %s", c.Name, dns.TypeToString[qt], dns.RcodeToString[r.Rcode])
		}
		if !r.Authoritative {
			return RecordSet{}, fmt.Errorf("query %s %s: answer is not authoritative (is this a primary for %s?)",
				c.Name, dns.TypeToString[qt], c.Zone)
		}
		for _, rr := range r.Answer {
			if !strings.EqualFold(rr.Header().Name, c.Name) {
				continue
			}
			switch v := rr.(type) {
			case *dns.A:
				if qt == dns.TypeA {
					rs.add(v)
				}
			case *dns.AAAA:
				if qt == dns.TypeAAAA {
					rs.add(v)
				}
			case *dns.CNAME:
				return RecordSet{}, fmt.Errorf("%s is a CNAME to %s: the round robin needs A/AAAA records", c.Name, v.Target)
			}
		}
	}
	rs.sort()
	return rs, nil
}

func (s *RecordSet) add(rr dns.RR) {
	var a netip.Addr
	switch v := rr.(type) {
	case *dns.A:
		a, _ = netip.AddrFromSlice(v.A.To4())
	case *dns.AAAA:
		a, _ = netip.AddrFromSlice(v.AAAA.To16())
	}
	if !a.IsValid() || s.Has(a.Unmap()) {
		return
	}
	s.Addrs = append(s.Addrs, a.Unmap())
	s.TTLs = append(s.TTLs, rr.Header().Ttl)
	s.rrs = append(s.rrs, dns.Copy(rr))
}

func (s *RecordSet) sort() {
	idx := make([]int, len(s.Addrs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int { return s.Addrs[i].Compare(s.Addrs[j]) })
	a, t := make([]netip.Addr, len(idx)), make([]uint32, len(idx))
	for n, i := range idx {
		a[n], t[n] = s.Addrs[i], s.TTLs[i]
	}
	s.Addrs, s.TTLs = a, t
}

// Diff is what an update must do to make a record set equal to the desired
// addresses.
type Diff struct {
	Add    []netip.Addr // desired, missing
	Remove []netip.Addr // present, not desired
	// TTL is set when a desired record is present with another TTL.
	TTL bool
}

// Empty reports whether nothing needs to change.
func (d Diff) Empty() bool { return len(d.Add) == 0 && len(d.Remove) == 0 && !d.TTL }

// ComputeDiff compares cur with desired (pure).
func ComputeDiff(cur RecordSet, desired []netip.Addr, ttl uint32) Diff {
	var d Diff
	for _, a := range desired {
		if !cur.Has(a) {
			d.Add = append(d.Add, a)
		}
	}
	for i, a := range cur.Addrs {
		if !slices.Contains(desired, a) {
			d.Remove = append(d.Remove, a)
		} else if cur.TTLs[i] != ttl {
			d.TTL = true
		}
	}
	return d
}

func (c *DNSClient) rr(a netip.Addr, ttl uint32) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: c.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: c.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: a.AsSlice()}
}

// UpdateMsg builds the one RFC 2136 UPDATE that turns cur into desired:
// prerequisites that the A and AAAA sets are still exactly cur (so a
// concurrent change by another updater makes it fail instead of being
// overwritten blindly), deletions of the records not desired, and additions
// of every desired record with the configured TTL (idempotent; it also
// guarantees the set is never left empty since desired never is). Unsigned;
// Update signs it.
func (c *DNSClient) UpdateMsg(cur RecordSet, desired []netip.Addr, d Diff) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(c.Zone)
	byType := map[uint16][]dns.RR{}
	for _, rr := range cur.rrs {
		byType[rr.Header().Rrtype] = append(byType[rr.Header().Rrtype], dns.Copy(rr))
	}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		if rrs := byType[t]; len(rrs) > 0 {
			m.Used(rrs)
		} else {
			m.RRsetNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: c.Name, Rrtype: t}}})
		}
	}
	var rem []dns.RR
	for _, a := range d.Remove {
		rem = append(rem, c.rr(a, 0))
	}
	if len(rem) > 0 {
		m.Remove(rem)
	}
	var add []dns.RR
	for _, a := range desired {
		add = append(add, c.rr(a, c.TTL))
	}
	m.Insert(add)
	return m
}

// Update sends the update for (cur -> desired) to primary, signed with the
// TSIG key. errPrereq means the set changed since it was read.
func (c *DNSClient) Update(ctx context.Context, primary string, cur RecordSet, desired []netip.Addr, d Diff) error {
	if len(desired) == 0 {
		return fmt.Errorf("refusing an update that leaves %s without records", c.Name)
	}
	m := c.UpdateMsg(cur, desired, d)
	if c.Key == nil {
		return fmt.Errorf("no TSIG key")
	}
	m.SetTsig(c.Key.Name, c.Key.Algorithm, 300, time.Now().Unix())
	r, err := c.exchange(ctx, m, primary)
	if err != nil {
		return fmt.Errorf("update %s: %w", c.Name, err)
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeNXRrset, dns.RcodeYXRrset:
		return errPrereq
	case dns.RcodeRefused, dns.RcodeNotAuth:
		return fmt.Errorf("update %s: %s (does the primary's update-policy grant key %s A/AAAA of this name?)",
			c.Name, dns.RcodeToString[r.Rcode], c.Key.Name)
	}
	return fmt.Errorf("update %s: %s", c.Name, dns.RcodeToString[r.Rcode])
}
