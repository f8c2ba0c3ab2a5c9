package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"time"

	"veil/modeling/lr"
)

// TrainOptions configures RunTrain (FATE's hetero-LR benchmark shape by default).
type TrainOptions struct {
	Rows          int    `json:"rows"`           // default 100000
	LabelFeatures int    `json:"label_features"` // default 30 (label holder)
	Features      []int  `json:"features"`       // provider feature counts; default [300]
	Epochs        int    `json:"epochs"`         // default 1
	BatchSize     int    `json:"batch_size"`     // 0 = full batch
	Seed          uint64 `json:"seed"`           // synthetic data seed (default 1)
}

// TrainResult reports seconds per epoch, federated (all parties in this
// process) and plaintext Go on the same data, and their ratio.
type TrainResult struct {
	Rows                  int     `json:"rows"`
	LabelFeatures         int     `json:"label_features"`
	Features              []int   `json:"features"`
	Epochs                int     `json:"epochs"`
	Iterations            int     `json:"iterations"`
	Cores                 int     `json:"cores"`
	SetupSeconds          float64 `json:"setup_seconds"` // collective key generation
	FederatedSecPerEpoch  float64 `json:"federated_seconds_per_epoch"`
	PlaintextSecPerEpoch  float64 `json:"plaintext_seconds_per_epoch"`
	Ratio                 float64 `json:"ratio"`
	MaxWeightDiff         float64 `json:"max_weight_diff"` // federated vs plaintext model
	FederatedFinalLoss    float64 `json:"federated_final_loss"`
	FATESecPerEpochQuoted float64 `json:"fate_seconds_per_epoch_quoted"`
}

// RunTrain generates synthetic standardised data from a logistic model,
// trains it federated (label holder + providers + coordinator in this
// process, every message serialized) and in plaintext with the same
// algorithm, and reports the seconds per epoch of each.
func RunTrain(ctx context.Context, opt TrainOptions) (*TrainResult, error) {
	if opt.Rows == 0 {
		opt.Rows = 100000
	}
	if opt.LabelFeatures == 0 {
		opt.LabelFeatures = 30
	}
	if len(opt.Features) == 0 {
		opt.Features = []int{300}
	}
	if opt.Epochs == 0 {
		opt.Epochs = 1
	}
	if opt.Seed == 0 {
		opt.Seed = 1
	}
	if opt.Rows < 2 || opt.LabelFeatures < 0 || opt.Epochs < 0 {
		return nil, fmt.Errorf("bench train: invalid options %+v", opt)
	}
	for _, k := range opt.Features {
		if k < 1 {
			return nil, fmt.Errorf("bench train: provider feature count %d < 1", k)
		}
	}
	label, provs, all := trainSynthetic(opt)
	cfg := lr.Config{Epochs: opt.Epochs, BatchSize: opt.BatchSize, LearningRate: 0.5, L2: 0.001, Seed: 7}

	fed, err := lr.TrainInProcess(ctx, cfg, label, provs...)
	if err != nil {
		return nil, fmt.Errorf("bench train: federated: %w", err)
	}
	start := time.Now()
	plain, err := lr.TrainPlaintext(ctx, all, label.Y, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench train: plaintext: %w", err)
	}
	plainDur := time.Since(start)

	res := &TrainResult{
		Rows: opt.Rows, LabelFeatures: opt.LabelFeatures, Features: opt.Features, Epochs: opt.Epochs,
		Iterations: fed.Iterations, Cores: runtime.GOMAXPROCS(0),
		SetupSeconds:          fed.Setup.Seconds(),
		FederatedSecPerEpoch:  fed.Training.Seconds() / float64(opt.Epochs),
		PlaintextSecPerEpoch:  plainDur.Seconds() / float64(opt.Epochs),
		FATESecPerEpochQuoted: 136,
	}
	if res.PlaintextSecPerEpoch > 0 {
		res.Ratio = res.FederatedSecPerEpoch / res.PlaintextSecPerEpoch
	}
	if n := len(fed.EpochLosses); n > 0 {
		res.FederatedFinalLoss = fed.EpochLosses[n-1]
	}
	got := append([]float64{}, fed.Label.Weights...)
	for _, p := range fed.Providers {
		got = append(got, p.Weights...)
	}
	got = append(got, fed.Label.Intercept)
	want := append(append([]float64{}, plain.Weights...), plain.Intercept)
	for i := range got {
		res.MaxWeightDiff = math.Max(res.MaxWeightDiff, math.Abs(got[i]-want[i]))
	}
	return res, nil
}

// trainSynthetic draws standard normal features (label holder first, then
// each provider) and labels from a logistic model with random weights.
func trainSynthetic(opt TrainOptions) (*lr.LabelData, []*lr.FeatureData, [][]float64) {
	r := rand.New(rand.NewPCG(opt.Seed, 0x7a1))
	n := opt.Rows
	total := opt.LabelFeatures
	for _, k := range opt.Features {
		total += k
	}
	scale := 1 / math.Sqrt(float64(max(total, 1)))
	z := make([]float64, n)
	var all [][]float64
	cols := func(k int) [][]float64 {
		X := make([][]float64, k)
		for j := range X {
			c := make([]float64, n)
			w := r.NormFloat64() * 2 * scale
			for i := range c {
				c[i] = r.NormFloat64()
				z[i] += w * c[i]
			}
			X[j] = c
			all = append(all, c)
		}
		return X
	}
	label := &lr.LabelData{Name: "label", X: cols(opt.LabelFeatures)}
	var provs []*lr.FeatureData
	for k, m := range opt.Features {
		provs = append(provs, &lr.FeatureData{Name: fmt.Sprintf("provider%d", k+1), X: cols(m)})
	}
	label.Y = make([]float64, n)
	for i := range z {
		if r.Float64() < 1/(1+math.Exp(-z[i])) {
			label.Y[i] = 1
		}
	}
	return label, provs, all
}
