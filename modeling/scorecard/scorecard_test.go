package scorecard

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestDefaultScaling(t *testing.T) {
	s := Default()
	if !near(s.Factor(), 20/math.Ln2) || !near(s.Factor(), 28.85390081777927) {
		t.Errorf("factor = %v", s.Factor())
	}
	if !near(s.Offset(), 600-28.85390081777927*math.Log(50)) || math.Abs(s.Offset()-487.1229) > 1e-4 {
		t.Errorf("offset = %v", s.Offset())
	}
	// odds = good:bad = (1-p)/p. p = 1/51 is odds 50:1 -> 600 points;
	// doubling the odds to 100:1 adds 20, halving to 25:1 takes 20 away.
	for _, c := range []struct{ p, want float64 }{
		{1.0 / 51, 600},
		{1.0 / 101, 620},
		{1.0 / 26, 580},
		{1.0 / 201, 640},
		{0.5, 600 - 20*math.Log2(50)},
	} {
		got, err := s.Points(c.p)
		if err != nil || !near(got, c.want) {
			t.Errorf("Points(%v) = %v, %v; want %v", c.p, got, err, c.want)
		}
	}
	// Odds are good:bad, not bad:good: a riskier enterprise scores lower.
	lo, _ := s.Points(0.3)
	hi, _ := s.Points(0.01)
	if lo >= hi {
		t.Errorf("Points(0.3) = %v >= Points(0.01) = %v", lo, hi)
	}
}

func TestLogitAndInverse(t *testing.T) {
	s := Scorecard{BasePoints: 500, BaseOdds: 19, PDO: 50}
	for _, p := range []float64{1e-9, 0.001, 0.05, 0.5, 0.9, 0.999999} {
		z := math.Log(p / (1 - p))
		a, err := s.Points(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.PointsFromLogit(z)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(a-b) > 1e-6 {
			t.Errorf("p=%v: Points %v, PointsFromLogit %v", p, a, b)
		}
		back, err := s.Probability(a)
		if err != nil || math.Abs(back-p)/p > 1e-9 {
			t.Errorf("Probability(Points(%v)) = %v, %v", p, back, err)
		}
	}
	// Extreme logits do not overflow.
	if v, err := s.PointsFromLogit(800); err != nil || !finite(v) {
		t.Errorf("PointsFromLogit(800) = %v, %v", v, err)
	}
	if p, err := s.Probability(1e6); err != nil || p < 0 || p > 1e-300 {
		t.Errorf("Probability(1e6) = %v, %v", p, err)
	}
	if p, err := s.Probability(-1e6); err != nil || p != 1 {
		t.Errorf("Probability(-1e6) = %v, %v", p, err)
	}
}

func TestInvalid(t *testing.T) {
	for _, s := range []Scorecard{
		{BasePoints: 600, BaseOdds: 0, PDO: 20},
		{BasePoints: 600, BaseOdds: -1, PDO: 20},
		{BasePoints: 600, BaseOdds: 50, PDO: 0},
		{BasePoints: 600, BaseOdds: 50, PDO: -20},
		{BasePoints: math.NaN(), BaseOdds: 50, PDO: 20},
		{BasePoints: 600, BaseOdds: math.Inf(1), PDO: 20},
	} {
		if s.Validate() == nil {
			t.Errorf("%+v validated", s)
		}
		if _, err := s.Points(0.1); err == nil {
			t.Errorf("%+v scored", s)
		}
	}
	for _, p := range []float64{0, 1, -0.1, 1.1, math.NaN()} {
		if _, err := Default().Points(p); err == nil {
			t.Errorf("Points(%v) accepted", p)
		}
	}
	if _, err := Default().PointsFromLogit(math.Inf(-1)); err == nil {
		t.Error("infinite logit accepted")
	}
}
