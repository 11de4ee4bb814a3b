package hagd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gridha/gridha/internal/metrics"
)

// scrape GETs /metrics and parses it with Prometheus' own text parser;
// keys are name{label=value,...} in the order hagd writes the labels.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			out[name+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

// TestMetricsEndpoint runs two real daemons (scripts, file lease) over the
// in-memory network, the master with --metrics on a loopback port, and
// scrapes it: state, master, lease time left, takeovers, packets accepted
// and dropped by reason.
func TestMetricsEndpoint(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "svc")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncase $1 in status) [ -e "+dir+"/up-$HAGD_NODE ] ;; start) touch "+dir+"/up-$HAGD_NODE ;; stop) rm -f "+dir+"/up-$HAGD_NODE ;; esac\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	hub := &memHub{}
	l, err := metrics.Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("--metrics :PORT listens on %s, want 127.0.0.1", addr)
	}
	var cancels []context.CancelFunc
	var dones []chan error
	for i, id := range []string{"n1", "n2"} {
		cfg, err := ParseConfig(id, []byte(fmt.Sprintf("id = %s\ngroup = rb:%d\nscript = %s\nkey = %s\ntimeout = 2s\nstop_timeout = 1s\n"+
			"dt1 = 1s\ndt2 = 300ms\nheartbeat = 200ms\nstatus_interval = 300ms\nlease = file\nlease_file = %s/lease\nlease_ttl = 3s\n"+
			"lease_renew = 300ms\nlease_timeout = 300ms\ncontrol = %s/%s.sock\n", id, 30-10*i, script, key, dir, dir, id)))
		if err != nil {
			t.Fatal(err)
		}
		d := &Daemon{Cfg: cfg, Transport: hub.join(), Log: NewLogger(testWriter{t, id}, 1)}
		if id == "n1" {
			d.MetricsListener = l
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		cancels, dones = append(cancels, cancel), append(dones, done)
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
		for _, d := range dones {
			<-d
		}
	}()

	var v map[string]float64
	for i := 0; ; i++ {
		v = scrape(t, addr)
		if v["hagd_group_state{group=rb,state=master}"] == 1 && v["hagd_packets_accepted_total{}"] > 0 {
			break
		}
		if i > 200 {
			t.Fatalf("n1 never master with packets accepted: %v", v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v["hagd_group_state{group=rb,state=normal}"] != 0 || v["hagd_group_master{group=rb,master=n1}"] != 1 ||
		v["hagd_group_became_master_total{group=rb}"] != 1 {
		t.Errorf("master n1: %v", v)
	}
	if left := v["hagd_group_lease_seconds_left{group=rb}"]; left <= 0 || left > 3 {
		t.Errorf("lease seconds left = %v, want in (0, 3] (lease_ttl 3s)", left)
	}
	// A packet that is not hagd's: counted as dropped, with its reason.
	stranger := hub.join()
	if err := stranger.Send([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		v = scrape(t, addr)
		if v["hagd_packets_dropped_total{reason=not_hagd}"] == 1 {
			break
		}
		if i > 100 {
			t.Fatalf("the stranger's packet is not counted as not_hagd: %v", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v["hagd_packets_dropped_total{reason=bad_signature}"] != 0 {
		t.Errorf("dropped: %v", v)
	}
	if n, ok := v["hagd_key_reloads_total{}"]; !ok || n != 0 {
		t.Errorf("key reloads without a key change: %v %v", n, ok)
	}
}
