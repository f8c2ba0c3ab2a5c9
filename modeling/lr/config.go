package lr

import (
	"fmt"
	"math"
	"math/rand/v2"

	"veil/mpc/he"
)

// Config holds the hyperparameters every party of a job must agree on.
type Config struct {
	Epochs       int     // maximum number of passes over the data (≥ 1)
	BatchSize    int     // rows per iteration; 0 or ≥ rows means full batch
	LearningRate float64 // initial step size
	Decay        float64 // step at iteration t is LearningRate/(1+Decay·t)
	L2           float64 // L2 penalty λ (not applied to the intercept)
	Tol          float64 // early stopping: an epoch whose loss improves by less than Tol counts as a stall; 0 disables
	Patience     int     // stop after this many consecutive stalls (default 1)
	Seed         uint64  // seed of the shared mini-batch schedule (not secret)
	// FeaturesPerCiphertext is kg in the coefficient packing: a block holds
	// N/kg rows; kg gradient entries come back per ciphertext. Default 2.
	FeaturesPerCiphertext int
	ParamSet              string // he parameter set; default he.TrainingSetName
}

// DefaultConfig returns settings that train default_credit-like data well.
func DefaultConfig() Config {
	return Config{Epochs: 30, BatchSize: 0, LearningRate: 0.5, Decay: 0, L2: 0.001, Tol: 1e-5, Patience: 2, Seed: 7, FeaturesPerCiphertext: 2}
}

func (c Config) withDefaults() Config {
	if c.Patience <= 0 {
		c.Patience = 1
	}
	if c.FeaturesPerCiphertext == 0 {
		c.FeaturesPerCiphertext = 2
	}
	if c.ParamSet == "" {
		c.ParamSet = he.TrainingSetName
	}
	return c
}

func (c Config) validate(rows int) error {
	switch {
	case c.Epochs < 1 || c.Epochs > 100000:
		return fmt.Errorf("lr: epochs %d outside [1, 100000]", c.Epochs)
	case c.BatchSize < 0:
		return fmt.Errorf("lr: negative batch size %d", c.BatchSize)
	case !(c.LearningRate > 0) || math.IsInf(c.LearningRate, 0):
		return fmt.Errorf("lr: learning rate must be positive and finite, got %g", c.LearningRate)
	case c.Decay < 0 || math.IsNaN(c.Decay) || math.IsInf(c.Decay, 0):
		return fmt.Errorf("lr: decay must be ≥ 0, got %g", c.Decay)
	case c.L2 < 0 || math.IsNaN(c.L2) || math.IsInf(c.L2, 0):
		return fmt.Errorf("lr: L2 must be ≥ 0, got %g", c.L2)
	case c.Tol < 0 || math.IsNaN(c.Tol):
		return fmt.Errorf("lr: tolerance must be ≥ 0, got %g", c.Tol)
	case c.FeaturesPerCiphertext < 1 || c.FeaturesPerCiphertext > 64 || c.FeaturesPerCiphertext&(c.FeaturesPerCiphertext-1) != 0:
		return fmt.Errorf("lr: features per ciphertext must be a power of two in [1, 64], got %d", c.FeaturesPerCiphertext)
	case rows < 2:
		return fmt.Errorf("lr: need at least 2 rows, got %d", rows)
	}
	return nil
}

// schedule is the shared, deterministic mini-batch schedule: rows are
// permuted once (from Seed) and cut into fixed batches, so each party can
// pre-encode its batch plaintexts; each epoch visits the batches in an order
// drawn from (Seed, epoch).
type schedule struct {
	rows       int
	batches    [][]int // nil entry = all rows in order (full batch)
	numBatches int
	seed       uint64
}

func newSchedule(rows int, cfg Config) *schedule {
	s := &schedule{rows: rows, seed: cfg.Seed}
	if cfg.BatchSize == 0 || cfg.BatchSize >= rows {
		s.batches = [][]int{nil}
		s.numBatches = 1
		return s
	}
	perm := rand.New(rand.NewPCG(cfg.Seed, 0x5eed)).Perm(rows)
	for lo := 0; lo < rows; lo += cfg.BatchSize {
		hi := min(lo+cfg.BatchSize, rows)
		s.batches = append(s.batches, perm[lo:hi])
	}
	s.numBatches = len(s.batches)
	return s
}

// at returns the epoch and batch index of iteration t.
func (s *schedule) at(t int) (epoch, batch int) {
	epoch = t / s.numBatches
	if s.numBatches == 1 {
		return epoch, 0
	}
	order := rand.New(rand.NewPCG(s.seed, uint64(epoch)+1)).Perm(s.numBatches)
	return epoch, order[t%s.numBatches]
}

func (s *schedule) size(b int) int {
	if s.batches[b] == nil {
		return s.rows
	}
	return len(s.batches[b])
}

func (s *schedule) row(b, i int) int {
	if s.batches[b] == nil {
		return i
	}
	return s.batches[b][i]
}

func stepSize(cfg Config, t int) float64 { return cfg.LearningRate / (1 + cfg.Decay*float64(t)) }

// taylorLoss is the Taylor-1 logistic loss log 2 − z·y'/2 + z²/8 written in
// terms of the Taylor residual d = z/4 + 1/2 − y (y' = 2y − 1):
// log 2 − 1/2 + 2·mean(d²). This identity is what lets the loss be computed
// under encryption from ⟨d, d⟩ = Σ_parties ⟨d, d-share⟩.
func taylorLoss(meanD2 float64) float64 { return math.Ln2 - 0.5 + 2*meanD2 }

// stopper implements early stopping on the epoch loss.
type stopper struct {
	tol, prev     float64
	patience      int
	stalls        int
	epochLossSum  float64
	epochRows     int
	EpochLosses   []float64
	IterLosses    []float64
	stoppedEarly  bool
	lastEpochDone int
}

// add records an iteration's loss; it returns true when training should stop
// after this iteration (end of an epoch with too many stalls).
func (s *stopper) add(loss float64, rows int, endOfEpoch bool) bool {
	s.IterLosses = append(s.IterLosses, loss)
	s.epochLossSum += loss * float64(rows)
	s.epochRows += rows
	if !endOfEpoch {
		return false
	}
	el := s.epochLossSum / float64(s.epochRows)
	s.epochLossSum, s.epochRows = 0, 0
	s.EpochLosses = append(s.EpochLosses, el)
	if len(s.EpochLosses) > 1 && s.tol > 0 {
		if s.prev-el < s.tol {
			s.stalls++
		} else {
			s.stalls = 0
		}
	}
	s.prev = el
	if s.tol > 0 && s.stalls >= s.patience {
		s.stoppedEarly = true
		return true
	}
	return false
}
