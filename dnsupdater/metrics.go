package dnsupdater

import (
	"context"
	"sort"
	"sync"

	"github.com/gridha/gridha/internal/metrics"
)

// Metrics keeps what the opt-in /metrics endpoint shows, from each cycle's
// State (Updater.OnCycle): BDIIs in service, checks, DNS updates, errors.
type Metrics struct {
	mu      sync.Mutex
	last    *State
	cycles  uint64
	checks  map[[2]string]uint64 // BDII key, ok|failed
	updates map[[2]string]uint64 // primary, add|remove|ttl
	errors  map[string]uint64    // primary
}

// Observe records one finished cycle.
func (m *Metrics) Observe(st *State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.checks == nil {
		m.checks, m.updates, m.errors = map[[2]string]uint64{}, map[[2]string]uint64{}, map[string]uint64{}
	}
	m.last = st
	m.cycles++
	for _, b := range st.BDIIs {
		res := "failed"
		if b.Healthy {
			res = "ok"
		}
		m.checks[[2]string{b.Name + "/" + b.Address, res}]++
	}
	for _, p := range st.Primaries {
		for _, c := range p.Changes {
			m.updates[[2]string{p.Addr, c.Op}]++
		}
		if p.Error != "" {
			m.errors[p.Addr]++
		}
	}
}

// Text is the exposition of everything observed so far.
func (m *Metrics) Text(_ context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var t metrics.Text
	t.Family("dnsupdater_cycles_total", "counter", "Check-and-update cycles done since the updater started.")
	t.Add("dnsupdater_cycles_total", float64(m.cycles))
	if st := m.last; st != nil {
		in := 0
		for _, b := range st.BDIIs {
			if b.InService {
				in++
			}
		}
		t.Family("dnsupdater_bdiis_in_service", "gauge", "BDIIs in the round robin after the last cycle.")
		t.Add("dnsupdater_bdiis_in_service", float64(in), "name", st.Name)
		t.Family("dnsupdater_bdiis", "gauge", "BDIIs configured.")
		t.Add("dnsupdater_bdiis", float64(len(st.BDIIs)), "name", st.Name)
		t.Family("dnsupdater_bdii_in_service", "gauge", "1 if the BDII is in the round robin (after flap damping).")
		for _, b := range st.BDIIs {
			t.Add("dnsupdater_bdii_in_service", metrics.Bool(b.InService), "bdii", b.Name+"/"+b.Address)
		}
		t.Family("dnsupdater_bdii_healthy", "gauge", "1 if the BDII passed its last check.")
		for _, b := range st.BDIIs {
			t.Add("dnsupdater_bdii_healthy", metrics.Bool(b.Healthy), "bdii", b.Name+"/"+b.Address)
		}
		t.Family("dnsupdater_status", "gauge", "Status of the last cycle, Nagios style: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
		t.Add("dnsupdater_status", float64(st.Status), "name", st.Name)
		t.Family("dnsupdater_last_cycle_timestamp_seconds", "gauge", "When the last cycle ran (Unix time).")
		t.Add("dnsupdater_last_cycle_timestamp_seconds", float64(st.Time.UnixMilli())/1000, "name", st.Name)
	}
	t.Family("dnsupdater_checks_total", "counter", "BDII checks, by BDII and result.")
	for _, k := range sortedPairs(m.checks) {
		t.Add("dnsupdater_checks_total", float64(m.checks[k]), "bdii", k[0], "result", k[1])
	}
	t.Family("dnsupdater_updates_total", "counter", "DNS changes sent (RFC 2136), by primary and operation.")
	for _, k := range sortedPairs(m.updates) {
		t.Add("dnsupdater_updates_total", float64(m.updates[k]), "primary", k[0], "op", k[1])
	}
	t.Family("dnsupdater_errors_total", "counter", "Cycles in which a primary could not be read or updated.")
	prims := make([]string, 0, len(m.errors))
	for p := range m.errors {
		prims = append(prims, p)
	}
	sort.Strings(prims)
	for _, p := range prims {
		t.Add("dnsupdater_errors_total", float64(m.errors[p]), "primary", p)
	}
	return t.String(), nil
}

func sortedPairs(m map[[2]string]uint64) [][2]string {
	out := make([][2]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out
}
