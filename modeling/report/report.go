package report

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"sort"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"veil/modeling/metrics"
)

// Party is one party of a model and the feature names it contributed (names
// only; the weights stay with the party).
type Party struct {
	Name     string   `json:"name"`
	Role     string   `json:"role"` // e.g. "label holder", "provider"
	Features []string `json:"features"`
}

// Report is what the page shows: model metadata and an evaluation.
type Report struct {
	Title           string             `json:"title"` // page title; defaults to "Model <Model>"
	Model           string             `json:"model"`
	Version         string             `json:"version"`
	CreatedAt       time.Time          `json:"created_at"`
	Parties         []Party            `json:"parties"`
	Hyperparameters map[string]string  `json:"hyperparameters"`
	Metadata        map[string]string  `json:"metadata"` // other facts, e.g. rows_aligned, plaintext_auc
	TrainingSeconds float64            `json:"training_seconds"`
	Evaluation      metrics.Evaluation `json:"evaluation"` // on the test split
}

// Chart size in the page.
const (
	chartWidth  = 6 * vg.Inch
	chartHeight = 4 * vg.Inch
)

var (
	badColor  = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	goodColor = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	grey      = color.NRGBA{R: 0x80, G: 0x80, B: 0x80, A: 0xff}
)

// check rejects an evaluation the charts cannot be drawn from.
func check(ev metrics.Evaluation) error {
	if len(ev.ROC) < 2 {
		return fmt.Errorf("report: the evaluation has %d ROC points, need at least 2", len(ev.ROC))
	}
	for _, p := range ev.ROC {
		for _, v := range []float64{p.FPR, p.TPR, p.Fraction} {
			if !(v >= 0 && v <= 1) {
				return errors.New("report: ROC rates must be in [0, 1]")
			}
		}
	}
	h := ev.Histogram
	if len(h.Good) == 0 || len(h.Good) != len(h.Bad) || len(h.Edges) != len(h.Good)+1 {
		return fmt.Errorf("report: histogram has %d edges, %d good and %d bad bins", len(h.Edges), len(h.Good), len(h.Bad))
	}
	for k, e := range h.Edges {
		if math.IsNaN(e) || math.IsInf(e, 0) || (k > 0 && e < h.Edges[k-1]) {
			return errors.New("report: histogram edges must be finite and increasing")
		}
	}
	for k := range h.Good {
		if h.Good[k] < 0 || h.Bad[k] < 0 {
			return errors.New("report: histogram counts must not be negative")
		}
	}
	for _, v := range []float64{ev.AUC, ev.KS} {
		if !(v >= 0 && v <= 1) {
			return errors.New("report: AUC and KS must be in [0, 1]")
		}
	}
	return nil
}

// renderPNG renders a plot into PNG bytes.
func renderPNG(p *plot.Plot) ([]byte, error) {
	wt, err := p.WriterTo(chartWidth, chartHeight, "png")
	if err != nil {
		return nil, fmt.Errorf("report: render chart: %w", err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("report: encode chart: %w", err)
	}
	return buf.Bytes(), nil
}

func line(xys plotter.XYs, c color.Color, dashed bool) (*plotter.Line, error) {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, fmt.Errorf("report: chart line: %w", err)
	}
	l.Color = c
	l.Width = vg.Points(2)
	if dashed {
		l.Width = vg.Points(1)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	}
	return l, nil
}

// unitPlot is a gridded plot whose axes both run from 0 to 1.
func unitPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.Add(plotter.NewGrid())
	return p
}

// legendBottomRight puts the legend inside the bottom right corner.
func legendBottomRight(p *plot.Plot) {
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(10), vg.Points(10)
}

// ROCChart draws the ROC curve with the chance diagonal.
func ROCChart(ev metrics.Evaluation) ([]byte, error) {
	if err := check(ev); err != nil {
		return nil, err
	}
	p := unitPlot(fmt.Sprintf("ROC curve (AUC = %.4f)", ev.AUC),
		"false positive rate (goods flagged)", "true positive rate (bads caught)")
	xys := make(plotter.XYs, len(ev.ROC))
	for i, pt := range ev.ROC {
		xys[i] = plotter.XY{X: pt.FPR, Y: pt.TPR}
	}
	curve, err := line(xys, badColor, false)
	if err != nil {
		return nil, err
	}
	chance, err := line(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}, grey, true)
	if err != nil {
		return nil, err
	}
	p.Add(chance, curve)
	p.Legend.Add("model", curve)
	p.Legend.Add("chance", chance)
	legendBottomRight(p)
	return renderPNG(p)
}

// KSChart draws the cumulative shares of bads and goods against the share of
// enterprises flagged (highest scores first), and marks the KS gap.
func KSChart(ev metrics.Evaluation) ([]byte, error) {
	if err := check(ev); err != nil {
		return nil, err
	}
	p := unitPlot(fmt.Sprintf("KS chart (KS = %.4f)", ev.KS),
		"share of enterprises flagged, riskiest first", "cumulative share")
	bads := make(plotter.XYs, len(ev.ROC))
	goods := make(plotter.XYs, len(ev.ROC))
	best, gap := 0, -1.0
	for i, pt := range ev.ROC {
		bads[i] = plotter.XY{X: pt.Fraction, Y: pt.TPR}
		goods[i] = plotter.XY{X: pt.Fraction, Y: pt.FPR}
		if d := math.Abs(pt.TPR - pt.FPR); d > gap {
			best, gap = i, d
		}
	}
	bl, err := line(bads, badColor, false)
	if err != nil {
		return nil, err
	}
	gl, err := line(goods, goodColor, false)
	if err != nil {
		return nil, err
	}
	at := ev.ROC[best]
	ksl, err := line(plotter.XYs{{X: at.Fraction, Y: at.FPR}, {X: at.Fraction, Y: at.TPR}}, grey, true)
	if err != nil {
		return nil, err
	}
	ksl.Width = vg.Points(2)
	p.Add(bl, gl, ksl)
	p.Legend.Add("bads (defaults)", bl)
	p.Legend.Add("goods", gl)
	// The gap is drawn at the stored (downsampled) point with the largest
	// gap; the legend gives the exact KS and its threshold.
	p.Legend.Add(fmt.Sprintf("KS %.4f at score >= %.4g", ev.KS, ev.KSThreshold), ksl)
	legendBottomRight(p)
	return renderPNG(p)
}

// DistributionChart draws the score histograms of goods and bads, each
// normalised to its class size so the rare bads stay visible.
func DistributionChart(ev metrics.Evaluation) ([]byte, error) {
	if err := check(ev); err != nil {
		return nil, err
	}
	h := ev.Histogram
	p := plot.New()
	p.Title.Text = "Score distribution, good vs bad"
	p.X.Label.Text = "score"
	p.Y.Label.Text = "share of the class"
	p.Add(plotter.NewGrid())
	var nGood, nBad int
	for k := range h.Good {
		nGood += h.Good[k]
		nBad += h.Bad[k]
	}
	mk := func(counts []int, total int, c color.NRGBA) *plotter.Histogram {
		bins := make([]plotter.HistogramBin, len(counts))
		for k, n := range counts {
			w := 0.0
			if total > 0 {
				w = float64(n) / float64(total)
			}
			bins[k] = plotter.HistogramBin{Min: h.Edges[k], Max: h.Edges[k+1], Weight: w}
		}
		fill := c
		fill.A = 0x70
		return &plotter.Histogram{
			Bins:      bins,
			Width:     h.Edges[1] - h.Edges[0],
			FillColor: fill,
			LineStyle: draw.LineStyle{Color: c, Width: vg.Points(1)},
		}
	}
	good := mk(h.Good, nGood, goodColor)
	bad := mk(h.Bad, nBad, badColor)
	// Head room above the tallest bar for the legend.
	var top float64
	for _, hist := range []*plotter.Histogram{good, bad} {
		for _, b := range hist.Bins {
			top = math.Max(top, b.Weight)
		}
	}
	p.Y.Min, p.Y.Max = 0, 1.25*top+1e-9
	p.Add(good, bad)
	p.Legend.Add(fmt.Sprintf("good (%d)", nGood), good)
	p.Legend.Add(fmt.Sprintf("bad (%d)", nBad), bad)
	p.Legend.Top = true
	return renderPNG(p)
}

type kv struct{ Key, Value string }

func sorted(m map[string]string) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key < out[b].Key })
	return out
}

type chart struct {
	Alt string
	Src template.URL
}

type page struct {
	Report
	Title    string
	Created  string
	Hyper    []kv
	Meta     []kv
	Features int
	Charts   []chart
}

// WriteHTML writes a self-contained HTML page (no external resources: the
// three charts are PNG data: URIs) with the model metadata, the ROC curve,
// the KS chart and the score distribution of good versus bad.
func WriteHTML(w io.Writer, r Report) error {
	if err := check(r.Evaluation); err != nil {
		return err
	}
	pg := page{Report: r, Title: r.Title, Hyper: sorted(r.Hyperparameters), Meta: sorted(r.Metadata)}
	if pg.Title == "" {
		pg.Title = "Model " + r.Model
	}
	if !r.CreatedAt.IsZero() {
		pg.Created = r.CreatedAt.UTC().Format(time.RFC3339)
	}
	for _, p := range r.Parties {
		pg.Features += len(p.Features)
	}
	for _, c := range []struct {
		alt  string
		draw func(metrics.Evaluation) ([]byte, error)
	}{
		{"ROC curve", ROCChart},
		{"KS chart", KSChart},
		{"Score distribution of good and bad", DistributionChart},
	} {
		b, err := c.draw(r.Evaluation)
		if err != nil {
			return err
		}
		pg.Charts = append(pg.Charts, chart{
			Alt: c.alt,
			// Trusted: base64 of our own PNG bytes.
			Src: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b)),
		})
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, pg); err != nil {
		return fmt.Errorf("report: render page: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("report: write page: %w", err)
	}
	return nil
}

// pageTemplate is well-formed XHTML-style HTML5 (every element closed, every
// attribute quoted) so that tests can check it with a strict XML parser.
var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<title>{{.Title}}</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 62em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.metric { font-size: 1.4em; font-weight: bold; }
img { display: block; margin: 0.5em 0 1.5em 0; max-width: 100%; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<table>
<tr><th>model</th><td>{{.Model}}</td></tr>
<tr><th>version</th><td>{{.Version}}</td></tr>
{{- if .Created}}
<tr><th>created</th><td>{{.Created}}</td></tr>
{{- end}}
<tr><th>AUC (test)</th><td class="metric">{{printf "%.4f" .Evaluation.AUC}}</td></tr>
<tr><th>KS (test)</th><td class="metric">{{printf "%.4f" .Evaluation.KS}}</td></tr>
<tr><th>test rows</th><td>{{.Evaluation.Rows}} ({{.Evaluation.Bads}} bad)</td></tr>
{{- if .TrainingSeconds}}
<tr><th>training time</th><td>{{printf "%.1f" .TrainingSeconds}} s</td></tr>
{{- end}}
{{- range .Meta}}
<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>
{{- end}}
</table>
<h2>Parties and features ({{.Features}})</h2>
<table>
<tr><th>party</th><th>role</th><th>features</th></tr>
{{- range .Parties}}
<tr><td>{{.Name}}</td><td>{{.Role}}</td><td>{{range $i, $f := .Features}}{{if $i}}, {{end}}{{$f}}{{else}}(none){{end}}</td></tr>
{{- end}}
</table>
{{- if .Hyper}}
<h2>Hyperparameters</h2>
<table>
{{- range .Hyper}}
<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>
{{- end}}
</table>
{{- end}}
<h2>Charts</h2>
{{- range .Charts}}
<img alt="{{.Alt}}" src="{{.Src}}" />
{{- end}}
<p>Weights are not shown: each party keeps its own.</p>
</body>
</html>
`))
