package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// chartSVG draws the latency runs as two panels, CPU-µs/msg and p99 against the rate
// (both axes logarithmic), one line per relay: what the tables say, faster to read.
// Plain SVG written here, so the harness needs no plotting module.
func (r *report) chartSVG() string {
	type point struct{ rate, cpu, p99 float64 }
	series := map[string][]point{}
	var order []string
	for _, l := range r.Latency {
		if l.Relay == relayLoopback {
			continue
		}
		if _, ok := series[l.Relay]; !ok {
			order = append(order, l.Relay)
		}
		series[l.Relay] = append(series[l.Relay], point{float64(l.Rate), l.CPUus, float64(l.P99) / float64(time.Millisecond)})
	}
	colors := map[string]string{relayCopy: "#7f7f7f", relayRsyslog: "#d62728", relayRouter: "#1f77b4",
		relayRouterNoCo: "#9ecae1", relayRouter1P: "#2ca02c", relayBaseline: "#ff7f0e"}
	const w, h, panelW, top, left, plotW, plotH = 1000, 430, 500, 40, 70, 400, 300
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" `+
		`font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	rates := []float64{}
	for _, ps := range series {
		for _, p := range ps {
			if !slices.Contains(rates, p.rate) {
				rates = append(rates, p.rate)
			}
		}
	}
	slices.Sort(rates)
	if len(rates) == 0 {
		return ""
	}
	xmin, xmax := math.Log10(rates[0]), math.Log10(rates[len(rates)-1])
	if xmax == xmin {
		xmax = xmin + 1
	}
	panel := func(ox int, title, unit string, val func(point) float64) {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, ps := range series {
			for _, p := range ps {
				if v := val(p); v > 0 {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
		}
		if math.IsInf(lo, 1) {
			return
		}
		ylo, yhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if yhi == ylo {
			yhi++
		}
		x := func(rate float64) float64 { return float64(ox+left) + (math.Log10(rate)-xmin)/(xmax-xmin)*plotW }
		y := func(v float64) float64 { return float64(top+plotH) - (math.Log10(v)-ylo)/(yhi-ylo)*plotH }
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", ox+left, top-15, title)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", ox+left, top, plotW, plotH)
		for e := ylo; e <= yhi; e++ {
			v := math.Pow(10, e)
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", ox+left, ox+left+plotW, y(v), y(v))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", ox+left-5, y(v)+4, trimFloat(v))
		}
		for _, rt := range rates {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>`+"\n", x(rt), x(rt), top, top+plotH)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(rt), top+plotH+16, trimFloat(rt/1000)+"k")
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">input rate, msgs/s (log)</text>`+"\n", ox+left+plotW/2, top+plotH+34)
		fmt.Fprintf(&b, `<text transform="translate(%d,%d) rotate(-90)" text-anchor="middle">%s (log)</text>`+"\n", ox+18, top+plotH/2, unit)
		for _, name := range order {
			var pts []string
			for _, p := range series[name] {
				if v := val(p); v > 0 {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.rate), y(v)))
				}
			}
			c := colors[name]
			if c == "" {
				c = "#000"
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), c)
			for _, pt := range pts {
				xy := strings.Split(pt, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], c)
			}
		}
	}
	panel(0, "CPU per message", "relay CPU-µs/msg", func(p point) float64 { return p.cpu })
	panel(panelW, "p99 latency, send → sink", "p99, ms", func(p point) float64 { return p.p99 })
	for i, name := range order {
		c := colors[name]
		if c == "" {
			c = "#000"
		}
		lx, ly := left+(i%3)*300, top+plotH+55+(i/3)*18
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", lx, lx+20, ly-4, ly-4, c)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", lx+26, ly, relayName(name))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">make bench, %s, load average at start %s</text>`+"\n", w-10, h-8,
		time.Now().UTC().Format("2006-01-02"), r.Load)
	// right-align the footer
	s := strings.Replace(b.String(), `fill="#555">make bench`, `fill="#555" text-anchor="end">make bench`, 1)
	return s + "</svg>\n"
}

// chartFile is the chart's name, beside the markdown file it illustrates.
const chartFile = "benchmarks-router.svg"

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func writeChart(path string, svg string) error {
	if err := os.WriteFile(path, []byte(svg), 0o644); err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	return nil
}
