package hagd

import (
	"context"
	"errors"

	"github.com/gridha/gridha/internal/metrics"
)

// dropReasons are the packet counters of packets hagd did not accept.
var dropReasons = []string{cntBadMAC, cntReplay, cntDuplicate, cntStale, cntMalformed, cntForeign, cntOwnID}

// noteTransition counts the times this node became a group's master (the
// failovers it took part in). It runs on the main loop, like metricsText,
// so the map needs no lock.
func (d *Daemon) noteTransition(a Action) {
	if a.To != StateMaster {
		return
	}
	if d.becameMaster == nil {
		d.becameMaster = map[string]uint64{}
	}
	d.becameMaster[a.Group]++
}

// collectMetrics is one /metrics scrape: a snapshot taken on the main
// loop, as `gridha hagd status` takes it.
func (d *Daemon) collectMetrics(ctx context.Context) (string, error) {
	reply := make(chan string, 1)
	go d.post(func() { reply <- d.metricsText(d.status()) })
	select {
	case s := <-reply:
		return s, nil
	case <-ctx.Done():
		return "", errors.New("hagd: no status from the main loop in time")
	}
}

func (d *Daemon) metricsText(st StatusReply) string {
	var t metrics.Text
	t.Family("hagd_up_seconds", "gauge", "Seconds since hagd started.")
	t.Add("hagd_up_seconds", st.Uptime.Seconds(), "node", st.Node)
	t.Family("hagd_group_state", "gauge", "1 for the state this node is in for the group (initial, normal, takeover, master, giveup, failed, down).")
	for _, g := range st.Groups {
		for _, s := range stateNames[1:] {
			t.Add("hagd_group_state", metrics.Bool(g.State == s), "group", g.Group, "state", s)
		}
	}
	t.Family("hagd_group_master", "gauge", "1 for the group's master as this node sees it (no sample: no master known).")
	for _, g := range st.Groups {
		if g.Master != "" {
			t.Add("hagd_group_master", 1, "group", g.Group, "master", g.Master)
		}
	}
	t.Family("hagd_group_lease_seconds_left", "gauge", "Time left on the split-brain lease this node holds for the group (0: none held).")
	for _, g := range st.Groups {
		t.Add("hagd_group_lease_seconds_left", max(g.LeaseLeft, 0).Seconds(), "group", g.Group)
	}
	t.Family("hagd_group_became_master_total", "counter", "Times this node became the group's master since hagd started (failovers to it).")
	for _, g := range st.Groups {
		t.Add("hagd_group_became_master_total", float64(d.becameMaster[g.Group]), "group", g.Group)
	}
	t.Family("hagd_packets_accepted_total", "counter", "Heartbeat packets accepted.")
	t.Add("hagd_packets_accepted_total", float64(st.Packets[cntAccepted]))
	t.Family("hagd_packets_dropped_total", "counter", "Packets dropped, by reason.")
	for _, r := range dropReasons {
		t.Add("hagd_packets_dropped_total", float64(st.Packets[r]), "reason", r)
	}
	t.Family("hagd_send_errors_total", "counter", "Heartbeats that could not be sent.")
	t.Add("hagd_send_errors_total", float64(st.Packets[cntSendErr]))
	t.Family("hagd_key_reloads_total", "counter", "Times hagd re-read its changed key files (key rotation).")
	t.Add("hagd_key_reloads_total", float64(st.Packets[cntKeyReloads]))
	return t.String()
}

// serveMetrics serves /metrics on d.MetricsListener until ctx ends.
func (d *Daemon) serveMetrics(ctx context.Context) {
	if err := metrics.Serve(ctx, d.MetricsListener, d.collectMetrics); err != nil {
		d.Log.Error("metrics endpoint stopped", "err", err)
	}
}
