// Package metrics is the small Prometheus text exposition (format 0.0.4)
// and opt-in /metrics HTTP endpoint of gridha's daemons (hagd, the DNS
// updater). A few gauges and counters written by hand from each daemon's
// own status snapshot need neither client_golang's registry nor its
// dependencies; the tests parse the output with Prometheus' own parser.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Text builds one exposition: Family declares a metric, Add writes its
// samples right after it (the format wants a family's samples together).
type Text struct {
	b strings.Builder
}

// Family writes the HELP and TYPE lines of name (typ: gauge or counter).
func (t *Text) Family(name, typ, help string) {
	fmt.Fprintf(&t.b, "# HELP %s %s\n# TYPE %s %s\n", name, strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help), name, typ)
}

// Add writes one sample of name; labels are name, value pairs.
func (t *Text) Add(name string, v float64, labels ...string) {
	t.b.WriteString(name)
	if len(labels) > 0 {
		t.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				t.b.WriteByte(',')
			}
			t.b.WriteString(labels[i])
			t.b.WriteString(`="`)
			t.b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(labels[i+1]))
			t.b.WriteByte('"')
		}
		t.b.WriteByte('}')
	}
	t.b.WriteByte(' ')
	t.b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	t.b.WriteByte('\n')
}

// String is the exposition so far.
func (t *Text) String() string { return t.b.String() }

// Bool is 1 for true, for 0/1 gauges.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// DefaultHost is where an address without a host listens: metrics are
// opt-in and local unless the admin names another interface.
const DefaultHost = "127.0.0.1"

// Listen opens the endpoint's socket: ADDR is host:port, or :port / port
// for DefaultHost; listen on every interface only when asked (0.0.0.0:port).
func Listen(addr string) (net.Listener, error) {
	if !strings.Contains(addr, ":") {
		addr = ":" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if host == "" {
		host = DefaultHost
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return l, nil
}

// Serve answers GET /metrics on l with collect's exposition until ctx
// ends. collect runs per scrape and gets the request's context (with a
// deadline: a daemon whose loop is stuck answers 503, not never).
func Serve(ctx context.Context, l net.Listener, collect func(ctx context.Context) (string, error)) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		cctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		text, err := collect(cctx)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = io.WriteString(w, text)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		case <-done:
		}
	}()
	defer close(done)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
