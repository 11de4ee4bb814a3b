package dnsupdater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Updater is MAN05's fault-tolerant DNS updater: each cycle it checks every
// BDII, applies flap damping, and makes the round-robin record set on every
// primary equal to the BDIIs in service.
type Updater struct {
	cfg    *Config
	checks []Check
	dns    *DNSClient
	log    *slog.Logger
	damp   map[string]*Damper
	why    map[string]string // last transition reason per BDII key
	// fresh marks BDIIs without history (no state restored, never
	// checked): their first service state is taken from DNS itself.
	fresh map[string]bool
	// Now is the clock for the state file (nil: time.Now).
	Now func() time.Time
	// DryRun computes and logs the changes without sending any update.
	DryRun bool
	// OnCycle, when set, sees each finished cycle of Run (metrics).
	OnCycle func(*State)
}

// New builds an updater. checks nil: ChecksFor(cfg).
func New(cfg *Config, key *TSIGKey, checks []Check, log *slog.Logger) *Updater {
	if checks == nil {
		checks = ChecksFor(cfg)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &Updater{
		cfg:    cfg,
		checks: checks,
		dns: &DNSClient{Zone: cfg.Zone, Name: cfg.Name, TTL: uint32(cfg.TTL / time.Second), Key: key,
			Timeout: cfg.DNSTimeout},
		log:   log,
		damp:  map[string]*Damper{},
		why:   map[string]string{},
		fresh: map[string]bool{},
	}
	for _, b := range cfg.BDIIs {
		d := NewDamper()
		u.damp[b.Key()] = &d
		u.fresh[b.Key()] = true
	}
	return u
}

// Restore takes the damping state of the BDIIs still configured from a
// previous state (so --once from cron, or a restarted daemon, keeps its
// counts).
func (u *Updater) Restore(st *State) {
	if st == nil || !strings.EqualFold(st.Name, u.cfg.Name) {
		return
	}
	for _, b := range st.BDIIs {
		if d, ok := u.damp[b.Name+"/"+b.Address]; ok {
			*d = b.Damper
			delete(u.fresh, b.Name+"/"+b.Address)
			if b.Reason != "" {
				u.why[b.Name+"/"+b.Address] = b.Reason
			}
		}
	}
}

type checkOutcome struct {
	healthy bool // of the last check of the cycle
	status  Status
	msg     string
	// seq is every check of the cycle in order: the first and its
	// follow-ups (see followUps).
	seq []bool
}

// followUpDelay is the pause before re-checking a BDII that failed: long
// enough not to hit the same transient failure, short against the interval.
func (u *Updater) followUpDelay() time.Duration {
	return min(max(u.cfg.Interval/10, 200*time.Millisecond), time.Second)
}

// checkAll checks every BDII once. A BDII in service whose check fails is
// re-checked at once, after followUpDelay, until it passes or has failed
// fail_after times in a row (then it leaves DNS in this cycle, not
// fail_after-1 intervals later), within 3/4 of an interval: a dead BDII
// leaves DNS within about 1.5 intervals of its death, while one failed
// check followed by a good one still changes nothing (no flapping).
func (u *Updater) checkAll(ctx context.Context) []checkOutcome {
	start := time.Now()
	out := make([]checkOutcome, len(u.cfg.BDIIs))
	var wg sync.WaitGroup
	for i, b := range u.cfg.BDIIs {
		d := *u.damp[b.Key()] // a copy: Observe runs after wg.Wait
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := u.checkOne(ctx, b)
			seq := []bool{o.healthy}
			fails := d.Fails + 1
		followUps:
			for !o.healthy && d.InService && fails < u.cfg.FailAfter &&
				time.Since(start)+u.followUpDelay()+u.cfg.CheckTimeout < u.cfg.Interval*3/4 {
				select {
				case <-ctx.Done():
					break followUps
				case <-time.After(u.followUpDelay()):
				}
				o = u.checkOne(ctx, b)
				seq = append(seq, o.healthy)
				fails++
			}
			o.seq = seq
			out[i] = o
		}()
	}
	wg.Wait()
	return out
}

// checkOne runs every check of one BDII; the first failing one is the
// reason.
func (u *Updater) checkOne(ctx context.Context, b BDII) checkOutcome {
	o := checkOutcome{healthy: true, status: OK}
	var msgs []string
	for _, c := range u.checks {
		cctx, cancel := context.WithTimeout(ctx, u.cfg.CheckTimeout)
		r := c.Run(cctx, b)
		cancel()
		msgs = append(msgs, r.Message)
		if r.Status > o.status {
			o.status = r.Status
		}
		if !r.Status.Healthy() {
			o.healthy = false
			break
		}
	}
	o.msg = strings.Join(msgs, "; ")
	return o
}

type primaryRead struct {
	cur RecordSet
	err error
}

// seed gives each BDII without history (first cycle of an updater without
// a state file) the service state DNS already gives it: in service if any
// primary read holds its address, otherwise out of service (it must then
// pass recover_after checks to be added). So a restarted or newly added
// updater neither re-adds a BDII another updater removed nor removes one
// on a single failed check. With no primary readable, the default (in
// service) stands until a primary answers. When no configured BDII is in
// DNS at all (a new round robin), the first check decides.
func (u *Updater) seed(reads []primaryRead, outs []checkOutcome) {
	if len(u.fresh) == 0 {
		return
	}
	present := map[netip.Addr]bool{}
	readable := false
	for _, r := range reads {
		if r.err != nil {
			continue
		}
		readable = true
		for _, a := range r.cur.Addrs {
			present[a] = true
		}
	}
	if !readable {
		return
	}
	anyPresent := false
	for _, b := range u.cfg.BDIIs {
		anyPresent = anyPresent || present[b.Address]
	}
	for i, b := range u.cfg.BDIIs {
		if !u.fresh[b.Key()] {
			continue
		}
		delete(u.fresh, b.Key())
		switch {
		case !anyPresent:
			// An empty round robin (a new name): publish what answers now.
			u.damp[b.Key()].InService = outs[i].healthy
			if outs[i].healthy {
				u.why[b.Key()] = "healthy when this updater started with an empty record set"
			} else {
				u.why[b.Key()] = "failing when this updater started with an empty record set"
			}
		case !present[b.Address]:
			u.damp[b.Key()].InService = false
			u.why[b.Key()] = "not in DNS when this updater started"
			u.log.Info("BDII starts out of service (no record on any primary)", "bdii", b.Key())
		}
	}
}

// Cycle runs one round: checks, damping, one update per primary that needs
// one. It returns the state it also writes to the state file.
func (u *Updater) Cycle(ctx context.Context) *State {
	now := time.Now
	if u.Now != nil {
		now = u.Now
	}
	st := &State{Time: now().UTC(), Name: u.cfg.Name, Zone: u.cfg.Zone, Interval: u.cfg.Interval.String(),
		FailAfter: u.cfg.FailAfter, RecoverAfter: u.cfg.RecoverAfter}
	// Check the BDIIs and read every primary at the same time.
	reads := make([]primaryRead, len(u.cfg.Primaries))
	var rwg sync.WaitGroup
	for i, p := range u.cfg.Primaries {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			rctx, cancel := context.WithTimeout(ctx, 3*u.cfg.DNSTimeout)
			defer cancel()
			reads[i].cur, reads[i].err = u.dns.Read(rctx, p)
		}()
	}
	outs := u.checkAll(ctx)
	rwg.Wait()
	if ctx.Err() != nil {
		st.Status, st.Message = Unknown, "cycle interrupted"
		return st
	}
	u.seed(reads, outs)

	var desired []netip.Addr
	why := map[netip.Addr]string{} // reason to add or remove each address
	var failing, out []string
	for i, b := range u.cfg.BDIIs {
		o := outs[i]
		d := u.damp[b.Key()]
		var changed bool
		var reason string
		for _, h := range o.seq {
			// Follow-ups only run while the BDII is in service: at most
			// one change (out of service) per cycle.
			if c, r := d.Observe(h, u.cfg.FailAfter, u.cfg.RecoverAfter); c {
				changed, reason = true, r
			}
		}
		if changed {
			u.why[b.Key()] = reason + ": " + o.msg
			if d.InService {
				u.log.Info("BDII back in service", "bdii", b.Key(), "reason", reason, "check", o.msg)
			} else {
				u.log.Warn("BDII out of service", "bdii", b.Key(), "reason", reason, "check", o.msg)
			}
		} else if !o.healthy {
			u.log.Warn("BDII check failed", "bdii", b.Key(), "state", d.Describe(u.cfg.FailAfter, u.cfg.RecoverAfter), "check", o.msg)
		}
		if d.InService {
			desired = append(desired, b.Address)
			why[b.Address] = b.Key() + " in service, record missing on this primary (drift reconciled)"
			if changed {
				why[b.Address] = b.Key() + " back in service: " + u.why[b.Key()]
			}
		} else {
			out = append(out, b.Key())
			why[b.Address] = b.Key() + " out of service: " + u.why[b.Key()]
		}
		if !o.healthy {
			failing = append(failing, b.Key())
		}
		st.BDIIs = append(st.BDIIs, BDIIState{Name: b.Name, Address: b.Address.String(), Port: b.Port,
			Healthy: o.healthy, Check: o.msg, Damper: *d, Reason: u.why[b.Key()]})
	}
	slices.SortFunc(desired, netip.Addr.Compare)

	keep := len(desired) == 0
	noneWhy := "no BDII is healthy"
	if len(failing) < len(u.cfg.BDIIs) {
		noneWhy = "no BDII is in service (the healthy ones have not yet passed recover_after checks)"
	}
	if keep {
		u.log.Error("CRITICAL: "+noneWhy+": keeping the current records of every primary unchanged",
			"name", u.cfg.Name, "failing", strings.Join(failing, ","))
	}
	st.Primaries = make([]PrimaryState, len(u.cfg.Primaries))
	var wg sync.WaitGroup
	for i, p := range u.cfg.Primaries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Primaries[i] = u.reconcile(ctx, p, reads[i], desired, keep, why)
		}()
	}
	wg.Wait()

	// Overall status, Nagios style.
	var bad []string
	for _, p := range st.Primaries {
		if p.Error != "" {
			bad = append(bad, p.Addr)
		}
	}
	inSvc := len(u.cfg.BDIIs) - len(out)
	summary := fmt.Sprintf("%s %d/%d BDIIs in service", strings.TrimSuffix(u.cfg.Name, "."), inSvc, len(u.cfg.BDIIs))
	if len(out) > 0 {
		summary += " (out: " + strings.Join(out, ", ") + ")"
	}
	if len(failing) > 0 && !keep {
		summary += ", failing checks: " + strings.Join(failing, ", ")
	}
	summary += fmt.Sprintf(", %d/%d primaries in sync", len(u.cfg.Primaries)-len(bad), len(u.cfg.Primaries))
	if len(bad) > 0 {
		summary += " (failed: " + strings.Join(bad, ", ") + ")"
	}
	switch {
	case keep:
		st.Status = Critical
		summary = noneWhy + ", records kept unchanged: " + summary
	case len(failing) == len(u.cfg.BDIIs):
		// Every check failed in this cycle: a total outage now, even
		// while damping still keeps some BDIIs in service (a Nagios check
		// running --once with its own state file sees this every time).
		st.Status = Critical
		summary = "no BDII passes its check in this cycle: " + summary
	case len(bad) == len(u.cfg.Primaries):
		st.Status = Critical
	case len(bad) > 0 || len(out) > 0 || len(failing) > 0:
		st.Status = Warning
	default:
		st.Status = OK
	}
	st.Message = summary
	return st
}

// reconcile makes one primary's set equal to desired (or only reads it when
// keep is set). A concurrent change (prerequisite failure) is re-read and
// retried, at most three times.
func (u *Updater) reconcile(ctx context.Context, primary string, first primaryRead, desired []netip.Addr, keep bool, why map[netip.Addr]string) PrimaryState {
	ps := PrimaryState{Addr: primary}
	ctx, cancel := context.WithTimeout(ctx, 8*u.cfg.DNSTimeout)
	defer cancel()
	for attempt := 1; attempt <= 3; attempt++ {
		cur, err := first.cur, first.err
		if attempt > 1 {
			cur, err = u.dns.Read(ctx, primary)
		}
		if err != nil {
			ps.Error = err.Error()
			u.log.Error("primary unreachable or unusable", "primary", primary, "err", err)
			return ps
		}
		ps.Records = cur.Strings()
		if keep {
			return ps
		}
		d := ComputeDiff(cur, desired, u.dns.TTL)
		if d.Empty() {
			return ps
		}
		msg, op := "DNS change", func(o string) string { return o }
		if u.DryRun {
			msg, op = "DNS change (dry run: not sent)", func(o string) string { return "would " + o }
		} else {
			err = u.dns.Update(ctx, primary, cur, desired, d)
		}
		if errors.Is(err, errPrereq) && attempt < 3 {
			u.log.Info("record set changed under us, reading it again", "primary", primary, "attempt", attempt)
			continue
		}
		if err != nil {
			ps.Error = err.Error()
			u.log.Error("update failed", "primary", primary, "err", err)
			return ps
		}
		for _, a := range d.Remove {
			reason, ok := why[a]
			if !ok {
				reason = "not the address of a configured BDII"
			}
			ch := Change{Op: op("remove"), Address: a.String(), Reason: reason}
			ps.Changes = append(ps.Changes, ch)
			u.log.Warn(msg, "primary", primary, "op", "remove", "name", u.cfg.Name, "address", a.String(), "reason", reason)
		}
		for _, a := range d.Add {
			reason := why[a]
			ch := Change{Op: op("add"), Address: a.String(), Reason: reason}
			ps.Changes = append(ps.Changes, ch)
			u.log.Warn(msg, "primary", primary, "op", "add", "name", u.cfg.Name, "address", a.String(),
				"ttl", u.dns.TTL, "reason", reason)
		}
		if d.TTL {
			ps.Changes = append(ps.Changes, Change{Op: op("ttl"), Reason: fmt.Sprintf("TTL set to %d", u.dns.TTL)})
			u.log.Warn(msg, "primary", primary, "op", "ttl", "name", u.cfg.Name, "ttl", u.dns.TTL,
				"reason", "TTL differs from the configuration")
		}
		if !u.DryRun {
			ps.Records = make([]string, len(desired))
			for i, a := range desired {
				ps.Records[i] = a.String()
			}
		}
		return ps
	}
	ps.Error = "record set kept changing under us (three attempts)"
	return ps
}

// Run cycles every interval until ctx is cancelled (SIGTERM), saving the
// state after each cycle and a "stopped" state on the way out.
func (u *Updater) Run(ctx context.Context) error {
	u.log.Info("dns-updater starting", "name", u.cfg.Name, "bdiis", len(u.cfg.BDIIs), "primaries",
		strings.Join(u.cfg.Primaries, ","), "interval", u.cfg.Interval.String(), "fail_after", u.cfg.FailAfter,
		"recover_after", u.cfg.RecoverAfter)
	t := time.NewTicker(u.cfg.Interval)
	defer t.Stop()
	var last *State
	for {
		st := u.Cycle(ctx)
		if ctx.Err() != nil {
			break
		}
		last = st
		if u.OnCycle != nil {
			u.OnCycle(st)
		}
		if err := SaveState(u.cfg.StateFile, st); err != nil {
			u.log.Error("cannot write the state file", "err", err)
		}
		u.log.Info("cycle done", "status", st.Status.String(), "summary", st.Message)
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	if last != nil {
		last.Status = Unknown
		last.Message = "dns-updater stopped at " + time.Now().UTC().Format(time.RFC3339) + "; last: " + last.Message
		last.Stopped = true
		if err := SaveState(u.cfg.StateFile, last); err != nil {
			u.log.Error("cannot write the state file", "err", err)
		}
	}
	u.log.Info("dns-updater stopped")
	return nil
}
