package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
)

// chartSeries is one line of a chart: points (x, y) in x order.
type chartSeries struct {
	Name   string
	X, Y   []float64
	Dashed bool
}

// chartPalette colours the series in order (a colour-blind-safe set).
var chartPalette = []string{"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#999999"}

// writeLineChart draws series as a small SVG line chart (linear axes from
// 0, ticks, a legend): `make bench` writes its scaling curves with it, so
// people can look at the curve instead of reading the table. No
// dependency: a chart this small is a few dozen SVG elements.
func writeLineChart(w io.Writer, title, xLabel, yLabel string, series []chartSeries) error {
	const (
		width, height            = 770.0, 420.0
		left, right, top, bottom = 64.0, 250.0, 40.0, 50.0
		plotW, plotH             = width - left - right, height - top - bottom
		tickCount                = 5
		fontFamily               = "sans-serif"
	)
	maxX, maxY := 0.0, 0.0
	for _, s := range series {
		for i := range s.X {
			maxX, maxY = math.Max(maxX, s.X[i]), math.Max(maxY, s.Y[i])
		}
	}
	maxX, maxY = niceCeil(maxX), niceCeil(maxY)
	px := func(x float64) float64 { return left + x/maxX*plotW }
	py := func(y float64) float64 { return top + plotH - y/maxY*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="%s" font-size="12">`+"\n", width, height, width, height, fontFamily)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, xmlEscape(title))
	for i := 0; i <= tickCount; i++ {
		yv := maxY * float64(i) / tickCount
		y := py(yv)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, y, left+plotW, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, trimFloat(yv))
		xv := maxX * float64(i) / tickCount
		x := px(xv)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", x, top+plotH, x, top+plotH+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, top+plotH+18, trimFloat(xv))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, top+plotH, left+plotW, top+plotH)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, top, left, top+plotH)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", left+plotW/2, height-10, xmlEscape(xLabel))
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n", top+plotH/2, top+plotH/2, xmlEscape(yLabel))
	for i, s := range series {
		color := chartPalette[i%len(chartPalette)]
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts []string
		for j := range s.X {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.X[j]), py(s.Y[j])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", color, dash, strings.Join(pts, " "))
		for j := range s.X {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s: %s, %s</title></circle>`+"\n",
				px(s.X[j]), py(s.Y[j]), color, xmlEscape(s.Name), trimFloat(s.X[j]), trimFloat(s.Y[j]))
		}
		ly := top + 10 + float64(i)*18
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", width-right+14, ly, width-right+38, ly, color, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", width-right+44, ly+4, xmlEscape(s.Name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten (axis ends).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p*1.0000001 {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "" || s == "-0" {
		return "0"
	}
	return s
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// TestLineChart: the chart is well-formed XML with one polyline and one
// legend entry per series, points inside the plot, escaped names.
func TestLineChart(t *testing.T) {
	var b strings.Builder
	err := writeLineChart(&b, "verify <wall>", "hosts", "seconds", []chartSeries{
		{Name: "verify, 10 steps", X: []float64{1, 10, 30}, Y: []float64{0.2, 0.9, 2.7}},
		{Name: "install & no change", X: []float64{1, 10, 30}, Y: []float64{0.25, 1.1, 3.1}, Dashed: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	dec := xml.NewDecoder(strings.NewReader(svg))
	polylines, texts := 0, []string{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
			for _, a := range se.Attr {
				if a.Name.Local != "points" {
					continue
				}
				for _, p := range strings.Fields(a.Value) {
					var x, y float64
					if _, err := fmt.Sscanf(p, "%f,%f", &x, &y); err != nil || x < 64 || x > 520 || y < 40 || y > 370 {
						t.Errorf("point %s outside the plot", p)
					}
				}
			}
		}
		if cd, ok := tok.(xml.CharData); ok {
			texts = append(texts, string(cd))
		}
	}
	all := strings.Join(texts, "|")
	if polylines != 2 || !strings.Contains(all, "verify <wall>") || !strings.Contains(all, "install & no change") {
		t.Errorf("polylines %d, texts %q", polylines, all)
	}
	if niceCeil(2.7) != 5 || niceCeil(0.9) != 1 || niceCeil(31) != 50 || niceCeil(0.031) != 0.05 {
		t.Errorf("niceCeil: %v %v %v %v", niceCeil(2.7), niceCeil(0.9), niceCeil(31), niceCeil(0.031))
	}
}
