package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Point is one point of the ROC curve at a threshold: rows with score >=
// Threshold are predicted bad. TPR is the share of bads caught, FPR the share
// of goods flagged, Fraction the share of all rows flagged (the x axis of a KS
// or gains chart).
type Point struct {
	Threshold float64 `json:"threshold"`
	FPR       float64 `json:"fpr"`
	TPR       float64 `json:"tpr"`
	Fraction  float64 `json:"fraction"`
}

// Histogram counts goods and bads per score bin. Bin k covers
// [Edges[k], Edges[k+1]); the last bin also includes its upper edge.
type Histogram struct {
	Edges []float64 `json:"edges"`
	Good  []int     `json:"good"`
	Bad   []int     `json:"bad"`
}

// Evaluation is the summary of a model on a labelled set.
type Evaluation struct {
	Rows        int       `json:"rows"`
	Bads        int       `json:"bads"`
	AUC         float64   `json:"auc"`
	KS          float64   `json:"ks"`
	KSThreshold float64   `json:"ks_threshold"`
	ROC         []Point   `json:"roc"`
	Histogram   Histogram `json:"histogram"`
}

// check validates a scores/labels pair and counts the bads.
func check(scores, labels []float64) (bads int, err error) {
	if len(scores) != len(labels) {
		return 0, fmt.Errorf("metrics: %d scores but %d labels", len(scores), len(labels))
	}
	if len(scores) == 0 {
		return 0, errors.New("metrics: no rows")
	}
	for i, s := range scores {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return 0, fmt.Errorf("metrics: score %d is not finite", i)
		}
		switch labels[i] {
		case 1:
			bads++
		case 0:
		default:
			return 0, fmt.Errorf("metrics: label %d is not 0 or 1", i)
		}
	}
	if bads == 0 || bads == len(scores) {
		return 0, fmt.Errorf("metrics: need both classes, got %d bads among %d rows", bads, len(scores))
	}
	return bads, nil
}

// group is a run of rows with one score, in decreasing score order.
type group struct {
	score     float64
	bad, good int
}

func groups(scores, labels []float64) []group {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	var gs []group
	for k, i := range idx {
		if k == 0 || scores[i] != gs[len(gs)-1].score {
			gs = append(gs, group{score: scores[i]})
		}
		g := &gs[len(gs)-1]
		if labels[i] == 1 {
			g.bad++
		} else {
			g.good++
		}
	}
	return gs
}

// AUC is the area under the ROC curve: the probability that a random bad
// scores higher than a random good, ties counting one half (the
// Mann-Whitney U statistic divided by bads*goods).
func AUC(scores, labels []float64) (float64, error) {
	bads, err := check(scores, labels)
	if err != nil {
		return 0, err
	}
	return auc(groups(scores, labels), bads, len(scores)-bads), nil
}

func auc(gs []group, bads, goods int) float64 {
	// Each good is outranked by the bads of higher groups and ties with
	// half the bads of its own group; integers until the final division.
	var above, twiceU float64
	for _, g := range gs {
		twiceU += float64(g.good) * (2*above + float64(g.bad))
		above += float64(g.bad)
	}
	return twiceU / 2 / (float64(bads) * float64(goods))
}

// KS is the Kolmogorov-Smirnov statistic max_t |TPR(t) - FPR(t)|, the largest
// gap between the score distributions of bads and goods, and the threshold
// where it occurs (the highest one on a tie).
func KS(scores, labels []float64) (ks, threshold float64, err error) {
	bads, err := check(scores, labels)
	if err != nil {
		return 0, 0, err
	}
	ks, threshold = ksOf(rocOf(groups(scores, labels), bads, len(scores)-bads))
	return ks, threshold, nil
}

func ksOf(pts []Point) (ks, threshold float64) {
	for _, p := range pts {
		if d := math.Abs(p.TPR - p.FPR); d > ks {
			ks, threshold = d, p.Threshold
		}
	}
	return ks, threshold
}

// rocOf returns the full ROC: (0,0) then one point per distinct score.
func rocOf(gs []group, bads, goods int) []Point {
	n := float64(bads + goods)
	top := math.Nextafter(gs[0].score, math.Inf(1))
	if math.IsInf(top, 0) {
		top = math.MaxFloat64
	}
	pts := make([]Point, 0, len(gs)+1)
	pts = append(pts, Point{Threshold: top})
	var tp, fp int
	for _, g := range gs {
		tp += g.bad
		fp += g.good
		pts = append(pts, Point{
			Threshold: g.score,
			FPR:       float64(fp) / float64(goods),
			TPR:       float64(tp) / float64(bads),
			Fraction:  float64(tp+fp) / n,
		})
	}
	return pts
}

// ROC returns the ROC curve from (0,0) to (1,1), one point per distinct score
// in decreasing threshold order, downsampled to at most maxPoints points
// (evenly spaced in that order, always keeping both ends). maxPoints <= 0
// keeps every point; otherwise it must be at least 2.
func ROC(scores, labels []float64, maxPoints int) ([]Point, error) {
	bads, err := check(scores, labels)
	if err != nil {
		return nil, err
	}
	return downsample(rocOf(groups(scores, labels), bads, len(scores)-bads), maxPoints)
}

func downsample(pts []Point, maxPoints int) ([]Point, error) {
	if maxPoints == 1 {
		return nil, errors.New("metrics: a ROC curve needs at least 2 points")
	}
	if maxPoints <= 0 || len(pts) <= maxPoints {
		return pts, nil
	}
	out := make([]Point, maxPoints)
	last := len(pts) - 1
	for k := range out {
		out[k] = pts[int(math.Round(float64(k)*float64(last)/float64(maxPoints-1)))]
	}
	return out, nil
}

// ScoreHistogram counts goods and bads in bins equal-width bins spanning the
// observed scores (one bin if all scores are equal).
func ScoreHistogram(scores, labels []float64, bins int) (Histogram, error) {
	if _, err := check(scores, labels); err != nil {
		return Histogram{}, err
	}
	return histogram(scores, labels, bins)
}

// histogram is ScoreHistogram on scores and labels that passed check.
func histogram(scores, labels []float64, bins int) (Histogram, error) {
	if bins < 1 {
		return Histogram{}, fmt.Errorf("metrics: %d histogram bins", bins)
	}
	lo, hi := scores[0], scores[0]
	for _, s := range scores {
		lo, hi = math.Min(lo, s), math.Max(hi, s)
	}
	if lo == hi {
		bins = 1
	}
	h := Histogram{Edges: make([]float64, bins+1), Good: make([]int, bins), Bad: make([]int, bins)}
	width := (hi - lo) / float64(bins)
	for k := range h.Edges {
		h.Edges[k] = lo + float64(k)*width
	}
	h.Edges[bins] = hi
	for i, s := range scores {
		k := bins - 1
		if width > 0 {
			k = min(int((s-lo)/width), bins-1)
		}
		if labels[i] == 1 {
			h.Bad[k]++
		} else {
			h.Good[k]++
		}
	}
	return h, nil
}

// Evaluate computes AUC, KS, the ROC (at most maxPoints points, see ROC) and a
// score histogram with bins bins.
func Evaluate(scores, labels []float64, maxPoints, bins int) (*Evaluation, error) {
	bads, err := check(scores, labels)
	if err != nil {
		return nil, err
	}
	goods := len(scores) - bads
	gs := groups(scores, labels)
	full := rocOf(gs, bads, goods)
	ks, thr := ksOf(full)
	roc, err := downsample(full, maxPoints)
	if err != nil {
		return nil, err
	}
	hist, err := histogram(scores, labels, bins)
	if err != nil {
		return nil, err
	}
	return &Evaluation{
		Rows: len(scores), Bads: bads,
		AUC: auc(gs, bads, goods), KS: ks, KSThreshold: thr,
		ROC: roc, Histogram: hist,
	}, nil
}
