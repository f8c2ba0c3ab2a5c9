package scorecard

import (
	"errors"
	"fmt"
	"math"
)

// Scorecard is the scaling of a model's scores, stored with the model.
type Scorecard struct {
	BasePoints float64 `json:"base_points"` // points at BaseOdds
	BaseOdds   float64 `json:"base_odds"`   // good:bad odds that earn BasePoints
	PDO        float64 `json:"pdo"`         // points to double the odds
}

// Default is 600 points at good:bad odds of 50:1, 20 points to double the odds.
func Default() Scorecard { return Scorecard{BasePoints: 600, BaseOdds: 50, PDO: 20} }

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Validate checks that the scaling is usable: finite BasePoints, BaseOdds > 0
// and PDO > 0 (a negative PDO would make riskier enterprises score higher).
func (s Scorecard) Validate() error {
	switch {
	case !finite(s.BasePoints):
		return errors.New("scorecard: base points must be finite")
	case !finite(s.BaseOdds) || s.BaseOdds <= 0:
		return fmt.Errorf("scorecard: base odds %v must be positive", s.BaseOdds)
	case !finite(s.PDO) || s.PDO <= 0:
		return fmt.Errorf("scorecard: points to double the odds %v must be positive", s.PDO)
	}
	return nil
}

// Factor is PDO / ln 2: the points per unit of ln(odds).
func (s Scorecard) Factor() float64 { return s.PDO / math.Ln2 }

// Offset is BasePoints - Factor * ln(BaseOdds): the points at odds 1:1.
func (s Scorecard) Offset() float64 { return s.BasePoints - s.Factor()*math.Log(s.BaseOdds) }

// PointsFromLogit returns the points of a linear score z = ln(p / (1 - p)),
// the logit of the probability of default: ln(odds) = -z.
func (s Scorecard) PointsFromLogit(z float64) (float64, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	if !finite(z) {
		return 0, errors.New("scorecard: score is not finite")
	}
	return s.Offset() - s.Factor()*z, nil
}

// Points returns the points of a probability of default p, 0 < p < 1.
func (s Scorecard) Points(p float64) (float64, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	if !(p > 0 && p < 1) {
		return 0, fmt.Errorf("scorecard: probability of default %v must be strictly between 0 and 1", p)
	}
	lnOdds := math.Log1p(-p) - math.Log(p)
	return s.Offset() + s.Factor()*lnOdds, nil
}

// Probability inverts Points: the probability of default that earns points.
func (s Scorecard) Probability(points float64) (float64, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	if !finite(points) {
		return 0, errors.New("scorecard: points are not finite")
	}
	lnOdds := (points - s.Offset()) / s.Factor()
	// p = 1 / (1 + odds), computed without overflow for large odds.
	if lnOdds > 0 {
		e := math.Exp(-lnOdds)
		return e / (1 + e), nil
	}
	return 1 / (1 + math.Exp(lnOdds)), nil
}
