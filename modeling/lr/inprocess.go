package lr

import (
	"context"
	"fmt"
	"time"
)

// PartyModel is one party's part of a trained model (kept by that party).
type PartyModel struct {
	Party     string
	Weights   []float64 // one per feature column, in the party's column order
	Intercept float64   // label party only
}

// TrainResult summarises a federated run.
type TrainResult struct {
	Label        PartyModel
	Providers    []PartyModel
	Iterations   int
	EpochLosses  []float64
	StoppedEarly bool
	Setup        time.Duration // key generation
	Training     time.Duration // all iterations
}

// InProcessOptions are test and bench hooks for TrainInProcessWith.
type InProcessOptions struct {
	// Record, if set, sees every message exactly as it would go on the wire.
	Record func(from, to string, msg []byte)
	// Checkpoint, if set, receives every party's snapshot (and the
	// coordinator's under the key "") after each completed iteration.
	Checkpoint func(iteration int, snapshots map[string][]byte)
	// StopAfter > 0 stops after that many iterations (in this run), as if
	// the process had been killed; the result is partial.
	StopAfter int
	// Resume, if set, restores every party and the coordinator (key "")
	// from these snapshots before setup.
	Resume map[string][]byte
}

// TrainInProcess runs the whole federated protocol with every party in this
// process, passing serialized messages between the same state machines the
// gRPC services drive.
func TrainInProcess(ctx context.Context, cfg Config, label *LabelData, providers ...*FeatureData) (*TrainResult, error) {
	return TrainInProcessWith(ctx, cfg, InProcessOptions{}, label, providers...)
}

type protocolParty interface {
	Name() string
	Init([]byte) ([]byte, error)
	SetPublicKey([]byte) error
	ShareResidual(context.Context, []byte) ([]byte, error)
	Gradient(context.Context, []byte) ([]byte, error)
	DecryptShares(context.Context, []byte) ([]byte, error)
	Update([]byte) error
	Snapshot() ([]byte, error)
	Restore([]byte) error
}

// TrainInProcessWith is TrainInProcess with hooks.
func TrainInProcessWith(ctx context.Context, cfg Config, opt InProcessOptions, label *LabelData, providers ...*FeatureData) (*TrainResult, error) {
	if len(providers) == 0 {
		return nil, fmt.Errorf("lr: need at least one provider")
	}
	lp, err := NewLabelParty(label)
	if err != nil {
		return nil, err
	}
	parties := []protocolParty{lp}
	names := []string{lp.Name()}
	fps := make([]*FeatureParty, len(providers))
	for i, d := range providers {
		if fps[i], err = NewFeatureParty(d); err != nil {
			return nil, err
		}
		parties = append(parties, fps[i])
		names = append(names, fps[i].Name())
	}
	coord, err := NewCoordinator(cfg, names, lp.rows)
	if err != nil {
		return nil, err
	}
	if opt.Resume != nil {
		if err := coord.Restore(opt.Resume[""]); err != nil {
			return nil, err
		}
		for _, p := range parties {
			if err := p.Restore(opt.Resume[p.Name()]); err != nil {
				return nil, err
			}
		}
	}
	rec := func(from, to string, msg []byte) {
		if opt.Record != nil {
			opt.Record(from, to, msg)
		}
	}
	const platform = "coordinator"

	start := time.Now()
	setup, err := coord.Setup()
	if err != nil {
		return nil, err
	}
	for _, p := range parties {
		rec(platform, p.Name(), setup)
		share, err := p.Init(setup)
		if err != nil {
			return nil, err
		}
		rec(p.Name(), platform, share)
		if err := coord.AddKeyShare(share); err != nil {
			return nil, err
		}
	}
	pk, err := coord.PublicKey()
	if err != nil {
		return nil, err
	}
	for _, p := range parties {
		rec(platform, p.Name(), pk)
		if err := p.SetPublicKey(pk); err != nil {
			return nil, err
		}
	}
	res := &TrainResult{Setup: time.Since(start)}
	start = time.Now()
	ran := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if opt.StopAfter > 0 && ran >= opt.StopAfter {
			break
		}
		it, done, err := coord.NextIteration()
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		for _, p := range parties {
			rec(platform, p.Name(), it)
			sh, err := p.ShareResidual(ctx, it)
			if err != nil {
				return nil, err
			}
			rec(p.Name(), platform, sh)
			if err := coord.AddResidualShare(sh); err != nil {
				return nil, err
			}
		}
		resid, err := coord.Residual()
		if err != nil {
			return nil, err
		}
		for _, p := range parties {
			rec(platform, p.Name(), resid)
			g, err := p.Gradient(ctx, resid)
			if err != nil {
				return nil, err
			}
			rec(p.Name(), platform, g)
			if err := coord.AddGradient(g); err != nil {
				return nil, err
			}
		}
		req, err := coord.DecryptRequest(ctx)
		if err != nil {
			return nil, err
		}
		for _, p := range parties {
			rec(platform, p.Name(), req)
			sh, err := p.DecryptShares(ctx, req)
			if err != nil {
				return nil, err
			}
			rec(p.Name(), platform, sh)
			if err := coord.AddDecryptShares(sh); err != nil {
				return nil, err
			}
		}
		results, err := coord.Results()
		if err != nil {
			return nil, err
		}
		for _, p := range parties {
			rec(platform, p.Name(), results[p.Name()])
			if err := p.Update(results[p.Name()]); err != nil {
				return nil, err
			}
		}
		ran++
		if opt.Checkpoint != nil {
			snaps := map[string][]byte{}
			if snaps[""], err = coord.Snapshot(); err != nil {
				return nil, err
			}
			for _, p := range parties {
				if snaps[p.Name()], err = p.Snapshot(); err != nil {
					return nil, err
				}
			}
			opt.Checkpoint(coord.Iteration(), snaps)
		}
	}
	res.Training = time.Since(start)
	res.Iterations = coord.Iteration()
	res.EpochLosses = coord.EpochLosses()
	res.StoppedEarly = coord.StoppedEarly()
	res.Label = PartyModel{Party: lp.Name(), Weights: lp.Weights(), Intercept: lp.Intercept()}
	for _, fp := range fps {
		res.Providers = append(res.Providers, PartyModel{Party: fp.Name(), Weights: fp.Weights()})
	}
	return res, nil
}

// Logits scores rows with a federated model in plaintext (for evaluation in
// tests and single-process tools): labelX and providerX are the parties'
// column-major features in training column order.
func (r *TrainResult) Logits(labelX [][]float64, providerX ...[][]float64) ([]float64, error) {
	if len(providerX) != len(r.Providers) {
		return nil, fmt.Errorf("lr: %d provider tables for %d providers", len(providerX), len(r.Providers))
	}
	n := -1
	for _, X := range append([][][]float64{labelX}, providerX...) {
		if len(X) > 0 {
			n = len(X[0])
			break
		}
	}
	if n < 0 {
		return nil, fmt.Errorf("lr: no feature columns to score")
	}
	z, err := partial(r.Label, labelX, n)
	if err != nil {
		return nil, err
	}
	for k, X := range providerX {
		zk, err := partial(r.Providers[k], X, n)
		if err != nil {
			return nil, err
		}
		for i := range z {
			z[i] += zk[i]
		}
	}
	return z, nil
}

func partial(m PartyModel, X [][]float64, n int) ([]float64, error) {
	if len(X) != len(m.Weights) {
		return nil, fmt.Errorf("lr: party %q: %d columns, model has %d", m.Party, len(X), len(m.Weights))
	}
	z := make([]float64, n)
	for i := range z {
		z[i] = m.Intercept
	}
	for j, col := range X {
		if len(col) != n {
			return nil, fmt.Errorf("lr: party %q: column %d has %d rows, want %d", m.Party, j, len(col), n)
		}
		for i, x := range col {
			z[i] += m.Weights[j] * x
		}
	}
	return z, nil
}
