package report

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"veil/modeling/metrics"
)

func sampleReport(t *testing.T) Report {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	n := 3000
	scores := make([]float64, n)
	labels := make([]float64, n)
	for i := range scores {
		if rng.Float64() < 0.2 {
			labels[i] = 1
		}
		z := rng.NormFloat64() - 1.5 + 1.2*labels[i]
		scores[i] = 1 / (1 + math.Exp(-z))
	}
	ev, err := metrics.Evaluate(scores, labels, 200, 30)
	if err != nil {
		t.Fatal(err)
	}
	return Report{
		Model:     "default-v1",
		Version:   "3",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Parties: []Party{
			{Name: "bank", Role: "label holder"},
			{Name: "tax", Role: "provider", Features: []string{"Attr1", "Attr6", "sector=<other>"}},
			{Name: "social", Role: "provider", Features: []string{"Attr2"}},
		},
		Hyperparameters: map[string]string{"epochs": "30", "learning_rate": "0.1", "l2": "0.01"},
		Metadata:        map[string]string{"rows_aligned": "6412", "plaintext_auc": "0.7712"},
		TrainingSeconds: 12.5,
		Evaluation:      *ev,
	}
}

// images returns the src of every <img> after checking the page is
// well-formed (strict XML parse of the whole document).
func images(t *testing.T, page []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(page))
	dec.Strict = true
	var srcs []string
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("page is not well-formed: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			depth++
			if el.Name.Local == "img" {
				for _, a := range el.Attr {
					if a.Name.Local == "src" {
						srcs = append(srcs, a.Value)
					}
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 {
		t.Fatalf("unbalanced elements: depth %d", depth)
	}
	return srcs
}

func TestWriteHTML(t *testing.T) {
	r := sampleReport(t)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	page := buf.Bytes()
	if !bytes.HasPrefix(page, []byte("<!DOCTYPE html>")) {
		t.Error("no doctype")
	}
	srcs := images(t, page)
	if len(srcs) != 3 {
		t.Fatalf("%d images, want 3", len(srcs))
	}
	for i, src := range srcs {
		const prefix = "data:image/png;base64,"
		if !strings.HasPrefix(src, prefix) {
			t.Fatalf("image %d is not a PNG data URI: %.40s", i, src)
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, prefix))
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("image %d is not a PNG: %v", i, err)
		}
		if cfg.Width != 576 || cfg.Height != 384 { // 6 x 4 inches at 96 dpi
			t.Errorf("image %d is %dx%d", i, cfg.Width, cfg.Height)
		}
	}
	s := string(page)
	for _, want := range []string{"default-v1", "Attr6", "sector=&lt;other&gt;", "learning_rate", "rows_aligned", "6412", "label holder", "(none)",
		"2026-01-02T03:04:05Z", fmt.Sprintf(">%.4f<", r.Evaluation.AUC), fmt.Sprintf(">%.4f<", r.Evaluation.KS)} {
		if !strings.Contains(s, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Self-contained: no external resource.
	for _, bad := range []string{"http://", "https://", "<script", "<link"} {
		if strings.Contains(s, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if dir := os.Getenv("VEIL_REPORT_DIR"); dir != "" {
		// Manual inspection: VEIL_REPORT_DIR=/tmp go test ./modeling/report
		if err := os.WriteFile(dir+"/report.html", page, 0o644); err != nil {
			t.Fatal(err)
		}
		for i, c := range []func(metrics.Evaluation) ([]byte, error){ROCChart, KSChart, DistributionChart} {
			b, err := c(r.Evaluation)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir+"/chart"+string(rune('0'+i))+".png", b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestEscapesMetadata(t *testing.T) {
	r := sampleReport(t)
	r.Model = `<script>alert(1)</script>`
	r.Parties[1].Features = []string{`a"b`, "c&d"}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>") {
		t.Error("model name not escaped")
	}
	images(t, buf.Bytes())
}

func TestRejectsBadEvaluation(t *testing.T) {
	r := sampleReport(t)
	bad := []func(*metrics.Evaluation){
		func(e *metrics.Evaluation) { e.ROC = e.ROC[:1] },
		func(e *metrics.Evaluation) { e.ROC[1].TPR = 2 },
		func(e *metrics.Evaluation) { e.Histogram.Bad = e.Histogram.Bad[1:] },
		func(e *metrics.Evaluation) { e.Histogram.Edges[2] = e.Histogram.Edges[1] - 1 },
		func(e *metrics.Evaluation) { e.Histogram.Good[0] = -1 },
		func(e *metrics.Evaluation) { e.AUC = 1.5 },
	}
	for i, mutate := range bad {
		rr := r
		ev := r.Evaluation
		ev.ROC = append([]metrics.Point(nil), ev.ROC...)
		ev.Histogram.Edges = append([]float64(nil), ev.Histogram.Edges...)
		ev.Histogram.Good = append([]int(nil), ev.Histogram.Good...)
		ev.Histogram.Bad = append([]int(nil), ev.Histogram.Bad...)
		mutate(&ev)
		rr.Evaluation = ev
		if err := WriteHTML(io.Discard, rr); err == nil {
			t.Errorf("bad evaluation %d accepted", i)
		}
	}
}
