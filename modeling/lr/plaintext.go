package lr

import (
	"context"
	"fmt"
)

// PlainModel is a centrally trained model: Weights[j] for feature column j.
type PlainModel struct {
	Weights      []float64
	Intercept    float64
	Iterations   int
	EpochLosses  []float64
	StoppedEarly bool
}

// Score returns the logit of row i of column-major X.
func (m *PlainModel) Logits(X [][]float64) []float64 {
	n := 0
	if len(X) > 0 {
		n = len(X[0])
	}
	z := make([]float64, n)
	for i := range z {
		z[i] = m.Intercept
	}
	for j, col := range X {
		w := m.Weights[j]
		for i, x := range col {
			z[i] += w * x
		}
	}
	return z
}

// TrainPlaintext trains the same model as the federated protocol — Taylor-1
// residual, same batch schedule, step sizes, L2 and early stopping — on
// column-major X (all parties' columns; order does not matter) and 0/1
// labels y, centrally and in plaintext. Callers report its AUC beside the
// federated one.
func TrainPlaintext(ctx context.Context, X [][]float64, y []float64, cfg Config) (*PlainModel, error) {
	cfg = cfg.withDefaults()
	n := len(y)
	if err := cfg.validate(n); err != nil {
		return nil, err
	}
	for j, col := range X {
		if len(col) != n {
			return nil, fmt.Errorf("lr: plaintext: column %d has %d rows, labels have %d", j, len(col), n)
		}
	}
	if err := checkLabels(y); err != nil {
		return nil, err
	}
	sch := newSchedule(n, cfg)
	m := &PlainModel{Weights: make([]float64, len(X))}
	st := &stopper{tol: cfg.Tol, patience: cfg.Patience}
	total := cfg.Epochs * sch.numBatches
	d := make([]float64, n)
	g := make([]float64, len(X))
	for t := 0; t < total; t++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		epoch, b := sch.at(t)
		B := sch.size(b)
		var sumD2 float64
		for i := 0; i < B; i++ {
			r := sch.row(b, i)
			z := m.Intercept
			for j, col := range X {
				z += m.Weights[j] * col[r]
			}
			d[i] = 0.25*z + 0.5 - y[r]
			sumD2 += d[i] * d[i]
		}
		var sumD float64
		for i := 0; i < B; i++ {
			sumD += d[i]
		}
		var reg float64
		for j, col := range X {
			var s float64
			for i := 0; i < B; i++ {
				s += col[sch.row(b, i)] * d[i]
			}
			g[j] = s / float64(B)
			reg += m.Weights[j] * m.Weights[j]
		}
		loss := taylorLoss(sumD2/float64(B)) + 0.5*cfg.L2*reg
		eta := stepSize(cfg, t)
		for j := range m.Weights {
			m.Weights[j] -= eta * (g[j] + cfg.L2*m.Weights[j])
		}
		m.Intercept -= eta * sumD / float64(B)
		m.Iterations = t + 1
		endOfEpoch := (t+1)%sch.numBatches == 0
		if st.add(loss, B, endOfEpoch) || epoch+1 > cfg.Epochs {
			break
		}
	}
	m.EpochLosses = st.EpochLosses
	m.StoppedEarly = st.stoppedEarly
	return m, nil
}

func checkLabels(y []float64) error {
	for i, v := range y {
		if v != 0 && v != 1 {
			// The value itself is not echoed: labels never appear in errors.
			return fmt.Errorf("lr: label at row %d is not 0 or 1", i)
		}
	}
	return nil
}
