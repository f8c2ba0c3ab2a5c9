package metrics

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestHandComputed(t *testing.T) {
	// The scikit-learn roc_auc_score / roc_curve doc example.
	scores := []float64{0.1, 0.4, 0.35, 0.8}
	labels := []float64{0, 0, 1, 1}
	a, err := AUC(scores, labels)
	if err != nil || a != 0.75 {
		t.Errorf("AUC = %v, %v; want 0.75", a, err)
	}
	roc, err := ROC(scores, labels, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantFPR := []float64{0, 0, 0.5, 0.5, 1}
	wantTPR := []float64{0, 0.5, 0.5, 1, 1}
	wantThr := []float64{0.8, 0.4, 0.35, 0.1}
	for k, p := range roc {
		if p.FPR != wantFPR[k] || p.TPR != wantTPR[k] {
			t.Errorf("ROC[%d] = (%v, %v), want (%v, %v)", k, p.FPR, p.TPR, wantFPR[k], wantTPR[k])
		}
		if k > 0 && p.Threshold != wantThr[k-1] {
			t.Errorf("ROC[%d] threshold %v, want %v", k, p.Threshold, wantThr[k-1])
		}
	}
	if roc[0].Threshold <= 0.8 || roc[len(roc)-1].Fraction != 1 || roc[1].Fraction != 0.25 {
		t.Errorf("ROC ends: %+v", roc)
	}
	ks, thr, err := KS(scores, labels)
	if err != nil || ks != 0.5 || thr != 0.8 {
		t.Errorf("KS = %v at %v, %v; want 0.5 at 0.8", ks, thr, err)
	}
}

func TestTies(t *testing.T) {
	// All tied: AUC exactly one half, KS 0.
	a, _ := AUC([]float64{0.5, 0.5, 0.5, 0.5}, []float64{0, 1, 0, 1})
	if a != 0.5 {
		t.Errorf("all-tied AUC = %v", a)
	}
	ks, _, _ := KS([]float64{0.5, 0.5, 0.5, 0.5}, []float64{0, 1, 0, 1})
	if ks != 0 {
		t.Errorf("all-tied KS = %v", ks)
	}
	// Bads {3, 2}, goods {2, 1}: pairs (3>2) (3>1) (2=2 half) (2>1) = 3.5/4.
	a, _ = AUC([]float64{3, 2, 2, 1}, []float64{1, 1, 0, 0})
	if a != 0.875 {
		t.Errorf("AUC = %v, want 0.875", a)
	}
	// Perfect and inverted.
	if a, _ := AUC([]float64{0.9, 0.8, 0.2}, []float64{1, 1, 0}); a != 1 {
		t.Errorf("perfect AUC = %v", a)
	}
	if a, _ := AUC([]float64{0.9, 0.8, 0.2}, []float64{0, 0, 1}); a != 0 {
		t.Errorf("inverted AUC = %v", a)
	}
	// KS is the absolute gap, so an inverted model has KS 1 too.
	if ks, _, _ := KS([]float64{0.9, 0.8, 0.2}, []float64{0, 0, 1}); ks != 1 {
		t.Errorf("inverted KS = %v", ks)
	}
}

// bruteAUC counts pairs: bad above good 1, tie 1/2.
func bruteAUC(scores, labels []float64) float64 {
	var num, pairs float64
	for i := range scores {
		if labels[i] != 1 {
			continue
		}
		for j := range scores {
			if labels[j] != 0 {
				continue
			}
			pairs++
			switch {
			case scores[i] > scores[j]:
				num++
			case scores[i] == scores[j]:
				num += 0.5
			}
		}
	}
	return num / pairs
}

// bruteKS tries every observed score as a threshold.
func bruteKS(scores, labels []float64) float64 {
	var best float64
	for _, t := range scores {
		var tp, fp, p, n float64
		for i, s := range scores {
			if labels[i] == 1 {
				p++
				if s >= t {
					tp++
				}
			} else {
				n++
				if s >= t {
					fp++
				}
			}
		}
		best = math.Max(best, math.Abs(tp/p-fp/n))
	}
	return best
}

func TestAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := 2 + rng.IntN(300)
		scores := make([]float64, n)
		labels := make([]float64, n)
		for i := range scores {
			labels[i] = float64(rng.IntN(2))
			// Few distinct values in some trials, to make many ties.
			s := rng.NormFloat64() + labels[i]*rng.Float64()
			if trial%2 == 0 {
				s = math.Round(s * 2)
			}
			scores[i] = s
		}
		labels[0], labels[1] = 0, 1
		a, err := AUC(scores, labels)
		if err != nil {
			t.Fatal(err)
		}
		if want := bruteAUC(scores, labels); math.Abs(a-want) > 1e-12 {
			t.Fatalf("trial %d: AUC %v, brute force %v", trial, a, want)
		}
		ks, _, err := KS(scores, labels)
		if err != nil {
			t.Fatal(err)
		}
		if want := bruteKS(scores, labels); math.Abs(ks-want) > 1e-12 {
			t.Fatalf("trial %d: KS %v, brute force %v", trial, ks, want)
		}
		// The trapezoid area under the full ROC equals the AUC.
		roc, _ := ROC(scores, labels, 0)
		var area float64
		for k := 1; k < len(roc); k++ {
			area += (roc[k].FPR - roc[k-1].FPR) * (roc[k].TPR + roc[k-1].TPR) / 2
		}
		if math.Abs(area-a) > 1e-12 {
			t.Fatalf("trial %d: trapezoid %v, AUC %v", trial, area, a)
		}
	}
}

func TestROCDownsampling(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 5000
	scores := make([]float64, n)
	labels := make([]float64, n)
	for i := range scores {
		labels[i] = float64(rng.IntN(2))
		scores[i] = rng.Float64() + 0.3*labels[i]
	}
	full, _ := ROC(scores, labels, 0)
	if len(full) != n+1 {
		t.Fatalf("full ROC has %d points, want %d", len(full), n+1)
	}
	roc, err := ROC(scores, labels, 101)
	if err != nil {
		t.Fatal(err)
	}
	if len(roc) != 101 || roc[0] != full[0] || roc[100] != full[n] {
		t.Fatalf("downsampled to %d points; ends %+v %+v", len(roc), roc[0], roc[len(roc)-1])
	}
	for k := 1; k < len(roc); k++ {
		if roc[k].FPR < roc[k-1].FPR || roc[k].TPR < roc[k-1].TPR || roc[k].Threshold >= roc[k-1].Threshold {
			t.Fatalf("downsampled ROC not monotone at %d", k)
		}
	}
	if _, err := ROC(scores, labels, 1); err == nil {
		t.Error("maxPoints 1 accepted")
	}
	small, _ := ROC([]float64{1, 0}, []float64{1, 0}, 10)
	if len(small) != 3 {
		t.Errorf("short ROC has %d points", len(small))
	}
}

func TestHistogramAndEvaluate(t *testing.T) {
	scores := []float64{0, 0.1, 0.5, 0.9, 1.0, 0.95}
	labels := []float64{0, 0, 0, 1, 1, 0}
	h, err := ScoreHistogram(scores, labels, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := Histogram{Edges: []float64{0, 0.5, 1}, Good: []int{2, 2}, Bad: []int{0, 2}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("histogram = %+v, want %+v", h, want)
	}
	ev, err := Evaluate(scores, labels, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := AUC(scores, labels)
	ks, thr, _ := KS(scores, labels)
	if ev.AUC != a || ev.KS != ks || ev.KSThreshold != thr || ev.Rows != 6 || ev.Bads != 2 || len(ev.ROC) != 3 {
		t.Errorf("Evaluate = %+v", ev)
	}
	var total int
	for k := range ev.Histogram.Good {
		total += ev.Histogram.Good[k] + ev.Histogram.Bad[k]
	}
	if total != 6 {
		t.Errorf("histogram holds %d rows", total)
	}
	if h, _ := ScoreHistogram([]float64{2, 2}, []float64{0, 1}, 5); len(h.Good) != 1 {
		t.Errorf("constant scores give %d bins", len(h.Good))
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct{ s, l []float64 }{
		{nil, nil},
		{[]float64{1, 2}, []float64{1}},
		{[]float64{1, 2}, []float64{1, 1}},
		{[]float64{1, 2}, []float64{0, 2}},
		{[]float64{math.NaN(), 2}, []float64{0, 1}},
		{[]float64{math.Inf(1), 2}, []float64{0, 1}},
	} {
		if _, err := AUC(tc.s, tc.l); err == nil {
			t.Errorf("AUC(%v, %v) accepted", tc.s, tc.l)
		}
		if _, _, err := KS(tc.s, tc.l); err == nil {
			t.Errorf("KS(%v, %v) accepted", tc.s, tc.l)
		}
		if _, err := Evaluate(tc.s, tc.l, 10, 10); err == nil {
			t.Errorf("Evaluate(%v, %v) accepted", tc.s, tc.l)
		}
	}
	if _, err := ScoreHistogram([]float64{1, 2}, []float64{0, 1}, 0); err == nil {
		t.Error("0 bins accepted")
	}
}
