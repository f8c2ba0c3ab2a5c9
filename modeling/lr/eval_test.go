package lr

import (
	"context"
	"math"
	"testing"
)

// trainParties runs the protocol to the end with the given state machines
// (as TrainInProcess does) and leaves them keyed, for the evaluation.
func trainParties(t *testing.T, cfg Config, lp *LabelParty, fps []*FeatureParty) *Coordinator {
	t.Helper()
	ctx := context.Background()
	parties := []protocolParty{lp}
	names := []string{lp.Name()}
	for _, fp := range fps {
		parties = append(parties, fp)
		names = append(names, fp.Name())
	}
	coord, err := NewCoordinator(cfg, names, lp.rows)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	setup, err := coord.Setup()
	must(err)
	for _, p := range parties {
		sh, err := p.Init(setup)
		must(err)
		must(coord.AddKeyShare(sh))
	}
	pk, err := coord.PublicKey()
	must(err)
	for _, p := range parties {
		must(p.SetPublicKey(pk))
	}
	for {
		it, done, err := coord.NextIteration()
		must(err)
		if done {
			break
		}
		for _, p := range parties {
			sh, err := p.ShareResidual(ctx, it)
			must(err)
			must(coord.AddResidualShare(sh))
		}
		res, err := coord.Residual()
		must(err)
		for _, p := range parties {
			g, err := p.Gradient(ctx, res)
			must(err)
			must(coord.AddGradient(g))
		}
		req, err := coord.DecryptRequest(ctx)
		must(err)
		for _, p := range parties {
			sh, err := p.DecryptShares(ctx, req)
			must(err)
			must(coord.AddDecryptShares(sh))
		}
		out, err := coord.Results()
		must(err)
		for _, p := range parties {
			must(p.Update(out[p.Name()]))
		}
	}
	return coord
}

func TestEvaluationGivesLabelHolderTheScoreSum(t *testing.T) {
	ctx := context.Background()
	label, provs, _ := synthetic(11, 600, 2, 3, 2)
	testL, testP, _ := synthetic(12, 5000, 2, 3, 2) // > one ciphertext of slots
	lp, err := NewLabelParty(label)
	if err != nil {
		t.Fatal(err)
	}
	var fps []*FeatureParty
	for _, d := range provs {
		fp, err := NewFeatureParty(d)
		if err != nil {
			t.Fatal(err)
		}
		fps = append(fps, fp)
	}
	cfg := DefaultConfig()
	cfg.Epochs = 3
	coord := trainParties(t, cfg, lp, fps)

	rows := len(testL.Y)
	start, err := coord.EvalStart(rows)
	if err != nil {
		t.Fatal(err)
	}
	// A party cannot be asked for the switch before the start.
	if _, err := fps[0].EvalSwitchShares(ctx, start); err == nil {
		t.Error("switch shares before evaluation start accepted")
	}
	sh, err := lp.EvalShare(ctx, start, testL.X)
	if err != nil {
		t.Fatal(err)
	}
	if err := coord.AddEvalShare(sh); err != nil {
		t.Fatal(err)
	}
	for k, fp := range fps {
		sh, err := fp.EvalShare(ctx, start, testP[k].X)
		if err != nil {
			t.Fatal(err)
		}
		if err := coord.AddEvalShare(sh); err != nil {
			t.Fatal(err)
		}
		// Released once per key.
		if _, err := fp.EvalShare(ctx, start, testP[k].X); err == nil {
			t.Error("provider released its test logits twice")
		}
	}
	req, err := coord.EvalSwitch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]protocolEvalParty{lp}, fpsAsEval(fps)...) {
		s, err := p.EvalSwitchShares(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := coord.AddEvalSwitchShares(s); err != nil {
			t.Fatal(err)
		}
	}
	res, err := coord.EvalResult()
	if err != nil {
		t.Fatal(err)
	}
	// The coordinator cannot open the result (it is under the label
	// holder's key) and a provider cannot either: only TestLogits exists.
	got, err := lp.TestLogits(res)
	if err != nil {
		t.Fatal(err)
	}
	model := &TrainResult{Label: PartyModel{Party: lp.Name(), Weights: lp.Weights(), Intercept: lp.Intercept()}}
	var px [][][]float64
	for k, fp := range fps {
		model.Providers = append(model.Providers, PartyModel{Party: fp.Name(), Weights: fp.Weights()})
		px = append(px, testP[k].X)
	}
	want, err := model.Logits(testL.X, px...)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != rows {
		t.Fatalf("got %d logits, want %d", len(got), rows)
	}
	// The key switch floods every share (sigma 2^26), which slot decoding
	// turns into an error of about 2.5e-4 per logit: bound the mean error
	// at 1e-3 and the worst of the 5000 at 5e-3 (20 sigma), so the test
	// fails on a wrong sum, never on the noise the protocol adds by design.
	var worst, sum float64
	for i := range got {
		d := math.Abs(got[i] - want[i])
		worst = math.Max(worst, d)
		sum += d
	}
	if mean := sum / float64(len(got)); mean > 1e-3 || worst > 5e-3 || math.IsNaN(worst) {
		t.Errorf("test logits differ from the plaintext model by %g on average, %g at worst", mean, worst)
	}
	// The result is single use.
	if _, err := lp.TestLogits(res); err == nil {
		t.Error("evaluation result opened twice")
	}
}

func TestEvaluationRejectsMalformed(t *testing.T) {
	ctx := context.Background()
	label, provs, _ := synthetic(13, 300, 1, 2)
	lp, _ := NewLabelParty(label)
	fp, _ := NewFeatureParty(provs[0])
	cfg := DefaultConfig()
	cfg.Epochs = 1
	coord := trainParties(t, cfg, lp, []*FeatureParty{fp})
	start, err := coord.EvalStart(10)
	if err != nil {
		t.Fatal(err)
	}
	// Wrong test shape at the party.
	if _, err := fp.EvalShare(ctx, start, [][]float64{{1, 2}}); err == nil {
		t.Error("test columns of the wrong shape accepted")
	}
	// A label holder's share claiming ciphertexts, and garbage.
	bad, _ := (&EvalShare{Party: "bank", Cts: [][]byte{{1, 2, 3}}}).MarshalBinary()
	if err := coord.AddEvalShare(bad); err == nil {
		t.Error("label share with ciphertexts accepted")
	}
	bad, _ = (&EvalShare{Party: "p0", Cts: [][]byte{{1, 2, 3}}}).MarshalBinary()
	if err := coord.AddEvalShare(bad); err == nil {
		t.Error("malformed test ciphertext accepted")
	}
	if err := coord.AddEvalShare([]byte{tagEvalShare, 9, 9}); err == nil {
		t.Error("truncated share accepted")
	}
	if _, err := coord.EvalSwitch(ctx); err == nil {
		t.Error("switch before all shares accepted")
	}
}

type protocolEvalParty interface {
	EvalSwitchShares(context.Context, []byte) ([]byte, error)
}

func fpsAsEval(fps []*FeatureParty) []protocolEvalParty {
	out := make([]protocolEvalParty, len(fps))
	for i, fp := range fps {
		out[i] = fp
	}
	return out
}
