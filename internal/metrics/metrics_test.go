package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestTextParses(t *testing.T) {
	var x Text
	x.Family("a_total", "counter", "Help with a \\ backslash\nand a line break.")
	x.Add("a_total", 3, "k", "quote \" backslash \\ newline \n end", "j", "")
	x.Family("b", "gauge", "No labels.")
	x.Add("b", 0.25)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(x.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, x.String())
	}
	a := fams["a_total"].GetMetric()[0]
	if a.GetCounter().GetValue() != 3 || a.GetLabel()[0].GetValue() != "quote \" backslash \\ newline \n end" ||
		fams["a_total"].GetHelp() != "Help with a \\ backslash\nand a line break." {
		t.Errorf("a_total: %v", fams["a_total"])
	}
	if fams["b"].GetMetric()[0].GetGauge().GetValue() != 0.25 {
		t.Errorf("b: %v", fams["b"])
	}
}

func TestListenLocalByDefault(t *testing.T) {
	for _, addr := range []string{"0", ":0"} {
		l, err := Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Addr().String(); !strings.HasPrefix(got, "127.0.0.1:") {
			t.Errorf("Listen(%q) on %s, want 127.0.0.1", addr, got)
		}
		l.Close()
	}
	if _, err := Listen("not an address:x:y"); err == nil {
		t.Error("bad address accepted")
	}
}
