package dnsupdater

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseMetrics parses an exposition with Prometheus' own text parser; keys
// are name{label=value,...} in the order the updater writes the labels.
func parseMetrics(t *testing.T, text string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, text)
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

func TestMetricsCounts(t *testing.T) {
	var m Metrics
	at := time.Date(2026, 11, 24, 1, 2, 3, 0, time.UTC)
	cycle := func(b2 bool, changes []Change, perr string) *State {
		return &State{Time: at, Name: "top-bdii.z.test.", Status: Warning,
			BDIIs: []BDIIState{{Name: "b1", Address: "198.18.1.10", Healthy: true, Damper: Damper{InService: true}},
				{Name: "b2", Address: "198.18.1.11", Healthy: b2, Damper: Damper{InService: b2}}},
			Primaries: []PrimaryState{{Addr: "198.18.1.2:53", Changes: changes}, {Addr: "198.18.1.3:53", Error: perr}}}
	}
	m.Observe(cycle(true, nil, ""))
	m.Observe(cycle(false, []Change{{Op: "remove", Address: "198.18.1.11"}}, "dial udp: refused"))
	text, _ := m.Text(context.Background())
	v := parseMetrics(t, text)
	for k, want := range map[string]float64{
		"dnsupdater_cycles_total{}":                                      2,
		"dnsupdater_bdiis_in_service{name=top-bdii.z.test.}":             1,
		"dnsupdater_bdiis{name=top-bdii.z.test.}":                        2,
		"dnsupdater_bdii_in_service{bdii=b2/198.18.1.11}":                0,
		"dnsupdater_bdii_healthy{bdii=b1/198.18.1.10}":                   1,
		"dnsupdater_checks_total{bdii=b1/198.18.1.10,result=ok}":         2,
		"dnsupdater_checks_total{bdii=b2/198.18.1.11,result=ok}":         1,
		"dnsupdater_checks_total{bdii=b2/198.18.1.11,result=failed}":     1,
		"dnsupdater_updates_total{primary=198.18.1.2:53,op=remove}":      1,
		"dnsupdater_errors_total{primary=198.18.1.3:53}":                 1,
		"dnsupdater_status{name=top-bdii.z.test.}":                       1,
		"dnsupdater_last_cycle_timestamp_seconds{name=top-bdii.z.test.}": float64(at.Unix()),
	} {
		if got, ok := v[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
}

// TestCLIMetricsEndpoint runs `gridha dns-updater run --metrics ADDR` as a
// real process (its only BDII and primary refuse) and scrapes it.
func TestCLIMetricsEndpoint(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "du.conf")
	body := "zone = z.test\nname = rr.z.test\nttl = 30\nprimary = 127.0.0.1:1\ntsig_key_name = k\ntsig_key_file = " + key +
		"\nbdii = b1 127.0.0.1 1\ninterval = 1s\ncheck_timeout = 500ms\ndns_timeout = 500ms\nfail_after = 1\nstate_file = " +
		filepath.Join(dir, "state") + "\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := gridha(t, "dns-updater", "run", "-c", conf, "--metrics", addr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	var v map[string]float64
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				v = parseMetrics(t, string(b))
				if v["dnsupdater_cycles_total{}"] >= 1 {
					break
				}
			}
		}
		if i > 100 {
			t.Fatalf("no cycle on /metrics after 10 s: %v\n%s", v, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v["dnsupdater_checks_total{bdii=b1/127.0.0.1,result=failed}"] < 1 || v["dnsupdater_errors_total{primary=127.0.0.1:1}"] < 1 ||
		v["dnsupdater_status{name=rr.z.test.}"] != 2 || v["dnsupdater_bdiis_in_service{name=rr.z.test.}"] != 0 {
		t.Errorf("metrics of a failing BDII and primary: %v", v)
	}
	if out, err := gridha(t, "dns-updater", "run", "--once", "-c", conf, "--metrics", addr).CombinedOutput(); exitCode(err) != 3 {
		t.Errorf("--metrics with --once: exit %d\n%s", exitCode(err), out)
	}
}
