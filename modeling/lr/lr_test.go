package lr

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"veil/mpc/he"
)

// synthetic makes a vertically split logistic data set: the label party has
// gB features, each provider the given number.
func synthetic(seed uint64, n, gB int, provs ...int) (*LabelData, []*FeatureData, [][]float64) {
	r := rand.New(rand.NewPCG(seed, 99))
	col := func() []float64 {
		c := make([]float64, n)
		for i := range c {
			c[i] = r.NormFloat64()
		}
		return c
	}
	z := make([]float64, n)
	var all [][]float64
	addCols := func(k int) [][]float64 {
		var X [][]float64
		for j := 0; j < k; j++ {
			c := col()
			w := r.NormFloat64()
			for i := range z {
				z[i] += w * c[i]
			}
			X = append(X, c)
			all = append(all, c)
		}
		return X
	}
	label := &LabelData{Name: "bank", X: addCols(gB)}
	var ps []*FeatureData
	for k, m := range provs {
		ps = append(ps, &FeatureData{Name: "p" + strconv.Itoa(k), X: addCols(m)})
	}
	label.Y = make([]float64, n)
	for i := range z {
		if r.Float64() < 1/(1+math.Exp(-z[i]+0.5)) {
			label.Y[i] = 1
		}
	}
	return label, ps, all
}

func maxDiff(a, b []float64) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

func flatWeights(r *TrainResult) []float64 {
	w := append([]float64{}, r.Label.Weights...)
	for _, p := range r.Providers {
		w = append(w, p.Weights...)
	}
	return append(w, r.Label.Intercept)
}

func TestFederatedEqualsPlaintextMiniBatch(t *testing.T) {
	label, provs, all := synthetic(1, 5000, 3, 4, 5)
	cfg := Config{Epochs: 3, BatchSize: 1500, LearningRate: 0.8, Decay: 0.05, L2: 0.01, Seed: 3}
	ctx := context.Background()
	fed, err := TrainInProcess(ctx, cfg, label, provs...)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := TrainPlaintext(ctx, all, label.Y, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]float64{}, plain.Weights...), plain.Intercept)
	got := flatWeights(fed)
	if d := maxDiff(got, want); d > 1e-4 {
		t.Errorf("federated weights differ from plaintext by %g\nfed   %v\nplain %v", d, got, want)
	}
	if fed.Iterations != 12 || plain.Iterations != 12 {
		t.Errorf("iterations fed %d plain %d, want 12 (4 batches x 3 epochs)", fed.Iterations, plain.Iterations)
	}
	if len(fed.EpochLosses) != 3 || maxDiff(fed.EpochLosses, plain.EpochLosses) > 1e-4 {
		t.Errorf("encrypted loss %v vs plaintext %v", fed.EpochLosses, plain.EpochLosses)
	}
	if !(fed.EpochLosses[2] < fed.EpochLosses[0]) {
		t.Errorf("loss did not decrease: %v", fed.EpochLosses)
	}
}

func TestEarlyStopping(t *testing.T) {
	label, provs, all := synthetic(2, 2000, 2, 2)
	cfg := Config{Epochs: 40, LearningRate: 1, Tol: 1e-3, Patience: 1, Seed: 1}
	ctx := context.Background()
	fed, err := TrainInProcess(ctx, cfg, label, provs...)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := TrainPlaintext(ctx, all, label.Y, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !fed.StoppedEarly || fed.Iterations >= 40 {
		t.Errorf("no early stop: %d iterations, losses %v", fed.Iterations, fed.EpochLosses)
	}
	if fed.Iterations != plain.Iterations {
		t.Errorf("federated stopped after %d iterations, plaintext after %d", fed.Iterations, plain.Iterations)
	}
}

// TestDefaultCreditAUC is the quality goal: on default_credit (FATE's
// vertical split, repo copy) with a fixed 70/30 split, the federated test
// AUC is within 0.005 of the plaintext AUC of the same algorithm.
func TestDefaultCreditAUC(t *testing.T) {
	s := loadDefaultCredit(t)
	cfg := Config{Epochs: 30, LearningRate: 1, L2: 0.001, Seed: 7}
	if testing.Short() {
		cfg.Epochs = 8
	}
	ctx := context.Background()
	start := time.Now()
	fed, err := TrainInProcess(ctx, cfg, &LabelData{Name: "bank", Y: s.trainY, X: s.trainG}, &FeatureData{Name: "provider", X: s.trainH})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	X := append(append([][]float64{}, s.trainG...), s.trainH...)
	plain, err := TrainPlaintext(ctx, X, s.trainY, cfg)
	if err != nil {
		t.Fatal(err)
	}
	zf, err := fed.Logits(s.testG, s.testH)
	if err != nil {
		t.Fatal(err)
	}
	Xt := append(append([][]float64{}, s.testG...), s.testH...)
	fedAUC, plainAUC := auc(t, zf, s.testY), auc(t, plain.Logits(Xt), s.testY)
	t.Logf("default_credit: %d train rows, %d iterations in %v (setup %v): federated AUC %.4f, plaintext AUC %.4f",
		len(s.trainY), fed.Iterations, elapsed, fed.Setup, fedAUC, plainAUC)
	if math.Abs(fedAUC-plainAUC) > 0.005 {
		t.Errorf("federated AUC %.4f not within 0.005 of plaintext %.4f", fedAUC, plainAUC)
	}
	if plainAUC < 0.70 {
		t.Errorf("plaintext AUC %.4f below 0.70 (scikit-learn reference 0.7135)", plainAUC)
	}
}

// TestWireCarriesNoRawValues records every message of a 3-party run
// (label party + 2 providers) and searches it for every raw feature value and
// label, as float64 bytes (both byte orders) and as decimal
// text (4-byte float32 patterns are too short to search in megabytes of
// uniformly random ciphertext without chance hits). Labels are 0/1, so for them the check is on the label vector: no
// message contains the run of label bytes.
func TestWireCarriesNoRawValues(t *testing.T) {
	label, provs, all := synthetic(5, 600, 2, 3, 2)
	var wire [][]byte
	var total int
	cfg := Config{Epochs: 2, BatchSize: 300, LearningRate: 0.5, Seed: 9}
	_, err := TrainInProcessWith(context.Background(), cfg, InProcessOptions{Record: func(from, to string, msg []byte) {
		wire = append(wire, bytes.Clone(msg))
		total += len(msg)
	}}, label, provs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(wire) < 20 {
		t.Fatalf("only %d messages recorded", len(wire))
	}
	// Every 8-byte window of every message is looked up in a set of the
	// values' float64 encodings; every run of numeric characters is looked
	// up (all its substrings) in a set of the values' decimal forms.
	words := map[uint64]bool{}
	texts := map[string]bool{}
	for _, col := range all {
		for _, v := range col {
			words[math.Float64bits(v)] = true
			var be [8]byte
			binary.BigEndian.PutUint64(be[:], math.Float64bits(v))
			words[binary.LittleEndian.Uint64(be[:])] = true
			texts[strconv.FormatFloat(v, 'g', -1, 64)] = true
			texts[strconv.FormatFloat(v, 'f', 6, 64)] = true
		}
	}
	var lb, lt []byte
	for _, y := range label.Y[:64] {
		lb = append(lb, byte(y))
		lt = append(lt, '0'+byte(y))
	}
	numeric := func(c byte) bool { return c >= '0' && c <= '9' || c == '.' || c == '-' || c == 'e' || c == '+' }
	for i, msg := range wire {
		for o := 0; o+8 <= len(msg); o++ {
			if words[binary.LittleEndian.Uint64(msg[o:])] {
				t.Fatalf("message %d contains a raw feature value as float64 bytes at offset %d", i, o)
			}
		}
		for o := 0; o < len(msg); {
			e := o
			for e < len(msg) && numeric(msg[e]) {
				e++
			}
			for a := o; a < e; a++ {
				for b := a + 1; b <= e; b++ {
					if texts[string(msg[a:b])] && b-a >= 4 {
						t.Fatalf("message %d contains a raw feature value as text %q", i, msg[a:b])
					}
				}
			}
			o = e + 1
		}
		if bytes.Contains(msg, lb) || bytes.Contains(msg, lt) {
			t.Fatalf("message %d contains the label vector", i)
		}
	}
	needles := len(words) + len(texts) + 2
	t.Logf("%d messages, %d bytes searched for %d needles", len(wire), total, needles)
}

// TestCoordinatorCannotDecryptAlone opens a recorded Enc(d) with the
// coordinator's key share only: the result is unrelated to the residual.
func TestCoordinatorCannotDecryptAlone(t *testing.T) {
	label, provs, _ := synthetic(6, 400, 2, 2)
	cfg := Config{Epochs: 1, LearningRate: 0.5, Seed: 1}
	coord, lp, fp, it := startPair(t, cfg, label, provs[0], 400)
	for _, p := range []protocolParty{lp, fp} {
		sh, _ := p.ShareResidual(context.Background(), it)
		if err := coord.AddResidualShare(sh); err != nil {
			t.Fatal(err)
		}
	}
	resid, err := coord.Residual()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := UnmarshalResidual(resid)
	ct, err := coord.params.UnmarshalCiphertext(m.Cts[0], -1)
	if err != nil {
		t.Fatal(err)
	}
	// Round 0, weights 0: d = 0.5 - y, i.e. ±0.5.
	ct.Resize(1, 0)
	sh, err := coord.kp.DecryptionShare(ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := he.NewDecryptionShareSum(coord.params, 0, 1)
	if err := sum.Add(sh); err != nil {
		t.Fatal(err)
	}
	agg, _ := sum.MarshalBinary()
	pt, _ := coord.params.OpenCKS(ct, agg)
	pos := make([]int, 64)
	for i := range pos {
		pos[i] = i
	}
	v, _ := coord.params.DecodeCoeffs(pt, pos, nil)
	match := 0
	for i := range pos {
		if math.Abs(v[i]-(0.5-label.Y[i])) < 0.01 {
			match++
		}
	}
	if match > 2 {
		t.Errorf("coordinator alone recovered %d of 64 residuals", match)
	}
}

func TestCheckpointResume(t *testing.T) {
	label, provs, _ := synthetic(7, 3000, 2, 3)
	cfg := Config{Epochs: 3, BatchSize: 1000, LearningRate: 0.7, Decay: 0.1, L2: 0.01, Tol: 1e-9, Seed: 5}
	ctx := context.Background()
	full, err := TrainInProcess(ctx, cfg, label, provs...)
	if err != nil {
		t.Fatal(err)
	}
	// Run 4 of 9 iterations, keeping the snapshots, then "crash".
	var last map[string][]byte
	var lastIter int
	_, err = TrainInProcessWith(ctx, cfg, InProcessOptions{StopAfter: 4, Checkpoint: func(it int, s map[string][]byte) {
		last, lastIter = s, it
	}}, label, provs...)
	if err != nil {
		t.Fatal(err)
	}
	if lastIter != 4 {
		t.Fatalf("last checkpoint at iteration %d, want 4", lastIter)
	}
	// Resume with fresh party objects (new processes) from the snapshots.
	resumed, err := TrainInProcessWith(ctx, cfg, InProcessOptions{Resume: last}, label, provs...)
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Iterations != full.Iterations {
		t.Errorf("resumed run ended at iteration %d, uninterrupted at %d", resumed.Iterations, full.Iterations)
	}
	// Only HE/flooding noise (~1e-6) separates the two runs.
	if d := maxDiff(flatWeights(resumed), flatWeights(full)); d > 1e-4 {
		t.Errorf("resumed model differs from uninterrupted by %g", d)
	}
	if len(resumed.EpochLosses) != 3 || maxDiff(resumed.EpochLosses, full.EpochLosses) > 1e-4 {
		t.Errorf("epoch losses resumed %v vs full %v", resumed.EpochLosses, full.EpochLosses)
	}
	// A snapshot from another party or a corrupted one is refused.
	lp, _ := NewLabelParty(label)
	if err := lp.Restore(last["p0"]); err == nil {
		t.Error("label party accepted the provider's snapshot")
	}
	if err := lp.Restore(last["bank"][:10]); err == nil {
		t.Error("truncated snapshot accepted")
	}
	// A party whose checkpoint is behind the job's is refused at setup.
	c, _ := NewCoordinator(cfg, []string{"bank", "p0"}, 3000)
	_ = c.Restore(last[""])
	setup, _ := c.Setup()
	fresh, _ := NewLabelParty(label)
	if _, err := fresh.Init(setup); err == nil || !strings.Contains(err.Error(), "resumes at 4") {
		t.Errorf("party at iteration 0 joined a job resuming at 4: %v", err)
	}
}

// setupPair drives one party pair on synthetic data to the point where a
// residual is available.
func setupPair(t *testing.T, cfg Config) (*Coordinator, *LabelParty, *FeatureParty, []byte) {
	t.Helper()
	label, provs, _ := synthetic(8, 500, 2, 2)
	return startPair(t, cfg, label, provs[0], 500)
}

// startPair runs key generation for a label party on label and a feature
// party on prov (n rows) and returns the first iteration message.
func startPair(t *testing.T, cfg Config, label *LabelData, prov *FeatureData, n int) (*Coordinator, *LabelParty, *FeatureParty, []byte) {
	t.Helper()
	lp, _ := NewLabelParty(label)
	fp, _ := NewFeatureParty(prov)
	coord, err := NewCoordinator(cfg, []string{"bank", "p0"}, n)
	if err != nil {
		t.Fatal(err)
	}
	setup, _ := coord.Setup()
	for _, p := range []protocolParty{lp, fp} {
		sh, err := p.Init(setup)
		if err != nil {
			t.Fatal(err)
		}
		if err := coord.AddKeyShare(sh); err != nil {
			t.Fatal(err)
		}
	}
	pk, _ := coord.PublicKey()
	_ = lp.SetPublicKey(pk)
	_ = fp.SetPublicKey(pk)
	it, _, _ := coord.NextIteration()
	return coord, lp, fp, it
}

func TestRejectsMalformedAndMismatched(t *testing.T) {
	cfg := Config{Epochs: 1, LearningRate: 0.5, Seed: 1}
	coord, lp, fp, it := setupPair(t, cfg)
	ctx := context.Background()
	sh, err := lp.ShareResidual(ctx, it)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := UnmarshalResidualShare(sh)

	// 1. Garbage ciphertext bytes inside a well-formed message.
	bad := *m
	bad.Cts = [][]byte{[]byte("not a ciphertext at all")}
	b, _ := bad.MarshalBinary()
	if err := coord.AddResidualShare(b); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("garbage ciphertext: %v", err)
	}
	// 2. Ciphertext under another parameter set (fingerprint mismatch).
	other, _ := he.ByName(he.ScoringSmallSetName)
	kp := he.NewKeyParty(other)
	seed, _ := he.NewCRSSeed()
	agg, _ := he.NewCKGAggregator(other, seed, 2)
	s1, _ := kp.GenCKGShare(seed)
	_ = agg.Add(s1)
	_ = agg.Add(s1)
	opk, _ := agg.PublicKey()
	oct, _ := he.NewEncryptor(opk).EncryptCoeffs([]float64{1})
	ob, _ := other.MarshalCiphertext(oct)
	bad.Cts = [][]byte{ob}
	b, _ = bad.MarshalBinary()
	if err := coord.AddResidualShare(b); !errors.Is(err, he.ErrParamsMismatch) {
		t.Errorf("ciphertext of other parameters: %v", err)
	}
	// 3. Right parameters, wrong level.
	ct, _ := coord.params.UnmarshalCiphertext(m.Cts[0], -1)
	ct.Resize(1, 0)
	lb, _ := coord.params.MarshalCiphertext(ct)
	bad.Cts = [][]byte{lb}
	b, _ = bad.MarshalBinary()
	if err := coord.AddResidualShare(b); err == nil || !strings.Contains(err.Error(), "unexpected level") {
		t.Errorf("wrong level: %v", err)
	}
	// 4. Truncated / garbage messages, wrong tag, trailing bytes.
	for i, g := range [][]byte{nil, {0xff}, sh[:len(sh)/2], append(bytes.Clone(sh), 0), it} {
		if err := coord.AddResidualShare(g); err == nil {
			t.Errorf("garbage message %d accepted", i)
		}
	}
	// The good message still goes through after all the rejections.
	if err := coord.AddResidualShare(sh); err != nil {
		t.Fatalf("valid share after rejections: %v", err)
	}
	// 5. A party refuses a residual that is garbage or out of order.
	if _, err := fp.Gradient(ctx, []byte{tagResidual, 1, 2}); err == nil {
		t.Error("provider accepted a residual before sharing")
	}
	fsh, _ := fp.ShareResidual(ctx, it)
	_ = coord.AddResidualShare(fsh)
	resid, _ := coord.Residual()
	rm, _ := UnmarshalResidual(resid)
	rm.Cts[0] = ob
	rb, _ := rm.MarshalBinary()
	if _, err := fp.Gradient(ctx, rb); !errors.Is(err, he.ErrParamsMismatch) {
		t.Errorf("provider accepted a residual under other parameters: %v", err)
	}
	if _, err := fp.Gradient(ctx, resid); err != nil {
		t.Fatalf("valid residual after rejection: %v", err)
	}
	// 6. A decrypt request asking to open more coefficients than the layout allows.
	req := &DecryptRequest{Iteration: 0, Items: []DecryptItem{{Owner: "bank", Count: 99, Ct: lb}}}
	rqb, _ := req.MarshalBinary()
	if _, err := fp.DecryptShares(ctx, rqb); err == nil || !strings.Contains(err.Error(), "entries") {
		t.Errorf("over-wide decrypt request: %v", err)
	}
}

func TestConfigAndDataValidation(t *testing.T) {
	if _, err := NewLabelParty(&LabelData{Name: "b", Y: []float64{0, 2}}); err == nil || strings.Contains(err.Error(), "2") && !strings.Contains(err.Error(), "row") {
		t.Errorf("label 2: %v", err)
	}
	if _, err := NewFeatureParty(&FeatureData{Name: "p", X: [][]float64{{1, math.NaN()}}}); err == nil {
		t.Error("NaN feature accepted")
	}
	if _, err := NewCoordinator(Config{Epochs: 1, LearningRate: -1}, []string{"a", "b"}, 10); err == nil {
		t.Error("negative learning rate accepted")
	}
	if _, err := NewCoordinator(Config{Epochs: 1, LearningRate: 1, FeaturesPerCiphertext: 3}, []string{"a", "b"}, 10); err == nil {
		t.Error("kg = 3 accepted")
	}
	if _, err := NewCoordinator(Config{Epochs: 1, LearningRate: 1}, []string{"a", "a"}, 10); err == nil {
		t.Error("duplicate party accepted")
	}
}

func FuzzMessages(f *testing.F) {
	f.Add([]byte{tagSetup})
	f.Add([]byte{tagGradient, 1, 0, 0, 0, 0, 0, 0, 0, 'a'})
	f.Add([]byte{tagDecryptRequest, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = UnmarshalSetup(data)
		_, _ = UnmarshalKeyShare(data)
		_, _ = UnmarshalPublicKeyMsg(data)
		_, _ = UnmarshalIterStart(data)
		_, _ = UnmarshalResidualShare(data)
		_, _ = UnmarshalResidual(data)
		_, _ = UnmarshalEncryptedGradient(data)
		_, _ = UnmarshalDecryptRequest(data)
		_, _ = UnmarshalDecryptShares(data)
		_, _ = UnmarshalResult(data)
		lp, _ := NewLabelParty(&LabelData{Name: "b", Y: []float64{0, 1}})
		_ = lp.Restore(data)
	})
}
