package score

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"veil/modeling/scorecard"
	"veil/mpc/he"
)

// fixture: three feature parties with their own features and weights, the
// platform as fourth key holder, and a bank.
type fixture struct {
	params    *he.Params
	holders   []*KeyHolder // [0..2] providers, [3] platform
	providers []*Provider
	eval      *EvalKey
	agg       *Aggregator
	bank      *BankKey
	bias      float64
}

var sharedFixture *fixture

func newFixture(t testing.TB) *fixture {
	t.Helper()
	if sharedFixture != nil {
		return sharedFixture
	}
	params, err := he.ByName(DefaultParamSet)
	if err != nil {
		t.Fatal(err)
	}
	holders, ek, err := SetupInProcess(params, 4)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{params: params, holders: holders, eval: ek, bias: -2.1}
	for _, h := range holders[:3] {
		p, err := NewProvider(h)
		if err != nil {
			t.Fatal(err)
		}
		f.providers = append(f.providers, p)
	}
	if f.agg, err = NewAggregator(ek); err != nil {
		t.Fatal(err)
	}
	if f.bank, err = GenerateBankKey(params); err != nil {
		t.Fatal(err)
	}
	sharedFixture = f
	return f
}

// partials draws each provider's features and weights and returns u[k][i].
func partials(n int, seed uint64) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	dims := []int{5, 3, 8}
	u := make([][]float64, len(dims))
	for k, d := range dims {
		w := make([]float64, d)
		for j := range w {
			w[j] = r.NormFloat64() * 0.4
		}
		u[k] = make([]float64, n)
		for i := range u[k] {
			x := make([]float64, d)
			for j := range x {
				x[j] = r.NormFloat64()
			}
			v, err := PartialLogit(x, w)
			if err != nil {
				panic(err)
			}
			u[k][i] = v
		}
	}
	return u
}

// run drives one request through every party, recording the messages.
type transcript struct {
	providerCts [][][]byte // provider -> ciphertexts (sent to the platform)
	combined    [][]byte   // platform's result under the collective key
	shares      [][][]byte // key holder -> PCKS shares
	toBank      [][]byte
}

func (f *fixture) run(t testing.TB, u [][]float64, c Combine) *transcript {
	t.Helper()
	ctx := context.Background()
	n := len(u[0])
	tr := &transcript{}
	for k, p := range f.providers {
		cts, err := p.EncryptPartials(ctx, u[k], c.Mode, c.Scale())
		if err != nil {
			t.Fatal(err)
		}
		tr.providerCts = append(tr.providerCts, cts)
	}
	var err error
	if tr.combined, err = f.agg.Combine(ctx, tr.providerCts, n, c); err != nil {
		t.Fatal(err)
	}
	sw, err := NewSwitch(f.params, tr.combined, len(f.holders))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range f.holders {
		sh, err := h.PCKSShares(ctx, tr.combined, f.bank.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		tr.shares = append(tr.shares, sh)
		if err := sw.Add(sh); err != nil {
			t.Fatal(err)
		}
	}
	if tr.toBank, err = sw.Result(); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestScoresMatchPlaintext(t *testing.T) {
	f := newFixture(t)
	n := Slots(f.params) + 1000 // two ciphertexts, the second partly filled
	if testing.Short() {
		n = 3000
	}
	u := partials(n, 1)
	tr := f.run(t, u, Combine{Mode: ModeScore, Bias: f.bias})
	if len(tr.toBank) != Ciphertexts(f.params, n) {
		t.Fatalf("%d result ciphertexts for %d enterprises", len(tr.toBank), n)
	}
	card := scorecard.Default()
	scores, err := f.bank.DecryptScores(context.Background(), tr.toBank, n, card)
	if err != nil {
		t.Fatal(err)
	}
	var maxLogit, maxProb, maxPts float64
	for i, s := range scores {
		z := f.bias + u[0][i] + u[1][i] + u[2][i]
		pts, _ := card.PointsFromLogit(z)
		maxLogit = math.Max(maxLogit, math.Abs(s.Logit-z))
		maxProb = math.Max(maxProb, math.Abs(s.Probability-Sigmoid(z)))
		maxPts = math.Max(maxPts, math.Abs(s.Points-pts))
	}
	t.Logf("%d enterprises in %d ciphertexts: max abs error logit %.2e, PD %.2e, points %.2e", n, len(tr.toBank), maxLogit, maxProb, maxPts)
	if maxLogit > 1e-3 || maxPts > 0.05 {
		t.Fatalf("encrypted scores differ from plaintext: logit %g, points %g", maxLogit, maxPts)
	}
}

func TestPrescreenPassFail(t *testing.T) {
	f := newFixture(t)
	n := 4000
	u := partials(n, 2)
	for k := range u { // spread the logits so many lie beyond the transition band
		for i := range u[k] {
			u[k][i] *= 2.5
		}
	}
	cutoff := 0.15
	c := Combine{Mode: ModePrescreen, Bias: f.bias, CutoffLogit: Logit(cutoff)}
	tr := f.run(t, u, c)
	out, err := f.bank.DecryptPrescreen(context.Background(), tr.toBank, n)
	if err != nil {
		t.Fatal(err)
	}
	margin := 0.25 * DefaultPrescreenDomain // |t| >= 0.25: output within 0.02 of 0 or 1
	var far, wrongFar, wrongNear, clear int
	var maxDev float64
	for i, o := range out {
		z := f.bias + u[0][i] + u[1][i] + u[2][i]
		pass := Sigmoid(z) < cutoff
		want := EvalStep((c.CutoffLogit - z) / DefaultPrescreenDomain)
		maxDev = math.Max(maxDev, math.Abs(o.Value-want))
		if math.Abs(z-c.CutoffLogit) >= margin {
			far++
			if o.Pass != pass || !o.Clear {
				wrongFar++
			}
		} else if math.Abs(z-c.CutoffLogit) > 0.05 && o.Pass != pass {
			wrongNear++
		}
		if o.Clear {
			clear++
		}
	}
	t.Logf("%d enterprises, %d far from the cutoff, %d clear outputs; max |HE - plaintext polynomial| %.2e", n, far, clear, maxDev)
	if far < 100 {
		t.Fatalf("test data has only %d enterprises far from the cutoff", far)
	}
	if wrongFar > 0 || wrongNear > 0 {
		t.Fatalf("pre-screen wrong for %d enterprises far from the cutoff and %d near it", wrongFar, wrongNear)
	}
	if maxDev > 1e-3 {
		t.Fatalf("homomorphic step differs from the plaintext polynomial by %g", maxDev)
	}
}

func TestStepPolynomialShape(t *testing.T) {
	for x := -1.0; x <= 1.0; x += 1.0 / 512 {
		v := EvalStep(x)
		if v < -0.02 || v > 1.02 {
			t.Fatalf("step(%g) = %g outside [-0.02, 1.02]", x, v)
		}
		if x > 1e-9 && v <= 0.5 || x < -1e-9 && v >= 0.5 {
			t.Fatalf("step(%g) = %g on the wrong side of 0.5", x, v)
		}
		if math.Abs(x) >= 0.25 && math.Min(math.Abs(v), math.Abs(v-1)) > 0.02 {
			t.Fatalf("step(%g) = %g is not within 0.02 of 0 or 1", x, v)
		}
	}
}

// decryptWith decrypts with a single party's secret share, as if that share
// were the whole key (what that party could do alone).
func decryptWith(t *testing.T, h *KeyHolder, ct []byte) []float64 {
	t.Helper()
	sec, err := h.kp.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := h.pk.MarshalBinary()
	rk, err := h.params.UnmarshalRecipientKey(sec, pub)
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.params.UnmarshalCiphertext(ct, -1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := rk.DecryptSlots(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// closeFraction is the fraction of i < len(want) with |got[i]-want[i]| < tol.
func closeFraction(got, want []float64, tol float64) float64 {
	c := 0
	for i := range want {
		if math.Abs(got[i]-want[i]) < tol {
			c++
		}
	}
	return float64(c) / float64(len(want))
}

func TestPrivacyOfRecordedMessages(t *testing.T) {
	f := newFixture(t)
	n := 2000
	u := partials(n, 3)
	tr := f.run(t, u, Combine{Mode: ModeScore, Bias: f.bias})
	_ = f.holders[3] // the platform; every holder is checked below
	z := make([]float64, n)
	for i := range z {
		z[i] = f.bias + u[0][i] + u[1][i] + u[2][i]
	}
	// Every provider ciphertext the platform relays: its own share opens nothing.
	for k, cts := range tr.providerCts {
		for _, h := range f.holders {
			if fr := closeFraction(decryptWith(t, h, cts[0]), u[k], 0.5); fr > 0.01 {
				t.Errorf("provider %d's partial logits: %.1f%% recovered with one key share", k, 100*fr)
			}
		}
	}
	// The platform's combined result and the switched result: no score for
	// the platform (or any single key holder).
	for _, h := range f.holders {
		if fr := closeFraction(decryptWith(t, h, tr.combined[0]), z, 0.5); fr > 0.01 {
			t.Errorf("combined result: %.1f%% of the scores open with one key share", 100*fr)
		}
		if fr := closeFraction(decryptWith(t, h, tr.toBank[0]), z, 0.5); fr > 0.01 {
			t.Errorf("bank's result: %.1f%% of the scores open with a key holder's share", 100*fr)
		}
	}
	// Missing one key holder's PCKS share, the switch gives the bank nothing.
	sw, err := NewSwitch(f.params, tr.combined, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range tr.shares[:3] {
		if err := sw.Add(sh); err != nil {
			t.Fatal(err)
		}
	}
	partial, err := sw.Result()
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.bank.decrypt(context.Background(), partial, n)
	if err != nil {
		t.Fatal(err)
	}
	if fr := closeFraction(got, z, 0.5); fr > 0.01 {
		t.Errorf("without the platform's PCKS share the bank still opened %.1f%% of the scores", 100*fr)
	}
	// The bank itself: the full switch opens the sum, never a provider's u_k.
	full, err := f.bank.decrypt(context.Background(), tr.toBank, n)
	if err != nil {
		t.Fatal(err)
	}
	for k := range u {
		if fr := closeFraction(full, u[k], 1e-3); fr > 0.01 {
			t.Errorf("bank output equals provider %d's partial logits for %.1f%%", k, 100*fr)
		}
	}
}

func TestBankKeyWrongParameters(t *testing.T) {
	small, err := he.ByName(he.ScoringSmallSetName)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	k, err := GenerateBankKey(small)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.MarshalPublic()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseBankPublicKey(f.params, pub)
	if !errors.Is(err, ErrWrongParams) {
		t.Fatalf("a bank key of %s was accepted for %s: %v", small.Name(), f.params.Name(), err)
	}
	t.Log(err)
	if _, err := ParseBankPublicKey(f.params, []byte("not json")); err == nil {
		t.Fatal("garbage accepted as a bank public key")
	}
	// The right key round-trips, secret and public.
	good, _ := f.bank.MarshalPublic()
	if _, err := ParseBankPublicKey(f.params, good); err != nil {
		t.Fatal(err)
	}
	sec, _ := f.bank.MarshalSecret()
	back, err := UnmarshalBankKey(sec)
	if err != nil || back.Params().Name() != f.params.Name() {
		t.Fatalf("bank key round trip: %v", err)
	}
	// A PCKS share towards a key of other parameters is refused.
	if _, err := f.holders[0].PCKSShares(context.Background(), nil, k.PublicKey()); err == nil {
		// nil results is fine only when the key matches; the mismatch must fail
		t.Fatal("PCKS towards a key of another parameter set accepted")
	}
}

func TestBadInputs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u := partials(10, 4)
	cts, err := f.providers[0].EncryptPartials(ctx, u[0], ModeScore, 1)
	if err != nil {
		t.Fatal(err)
	}
	// wrong ciphertext count, garbage, wrong level (pre-screen ciphertexts in score mode)
	if _, err := f.agg.Combine(ctx, [][][]byte{cts, {}}, 10, Combine{}); err == nil {
		t.Error("missing ciphertext accepted")
	}
	if _, err := f.agg.Combine(ctx, [][][]byte{cts, {[]byte("garbage")}}, 10, Combine{}); err == nil {
		t.Error("garbage ciphertext accepted")
	}
	top, _ := f.providers[1].EncryptPartials(ctx, u[1], ModePrescreen, -0.1)
	if _, err := f.agg.Combine(ctx, [][][]byte{cts, top}, 10, Combine{}); err == nil {
		t.Error("ciphertext at the wrong level accepted")
	}
	if _, err := f.providers[0].EncryptPartials(ctx, []float64{1e6}, ModeScore, 1); err == nil {
		t.Error("out-of-range partial logit accepted")
	}
	if _, err := PartialLogit([]float64{1, 2}, []float64{1}); err == nil {
		t.Error("feature/weight length mismatch accepted")
	}
	if _, err := f.bank.DecryptScores(ctx, [][]byte{[]byte("x")}, 1, scorecard.Default()); err == nil {
		t.Error("garbage result accepted by the bank")
	}
	sw, _ := NewSwitch(f.params, cts, 2)
	if err := sw.Add([][]byte{[]byte("bad share")}); err == nil {
		t.Error("garbage PCKS share accepted")
	}
	if _, err := sw.Result(); err == nil {
		t.Error("incomplete switch produced a result")
	}
}

func TestKeyHolderPersistence(t *testing.T) {
	f := newFixture(t)
	b, err := f.holders[0].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	h, err := UnmarshalKeyHolder(b)
	if err != nil {
		t.Fatal(err)
	}
	// The restored share must still be a working share of the collective key.
	u := partials(100, 5)
	ctx := context.Background()
	var parts [][][]byte
	for k, p := range f.providers {
		cts, err := p.EncryptPartials(ctx, u[k], ModeScore, 1)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, cts)
	}
	res, err := f.agg.Combine(ctx, parts, 100, Combine{Bias: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	sw, _ := NewSwitch(f.params, res, 4)
	for i, holder := range append([]*KeyHolder{h}, f.holders[1:]...) {
		sh, err := holder.PCKSShares(ctx, res, f.bank.PublicKey())
		if err != nil {
			t.Fatal(i, err)
		}
		if err := sw.Add(sh); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := sw.Result()
	got, err := f.bank.decrypt(ctx, out, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if z := 0.5 + u[0][i] + u[1][i] + u[2][i]; math.Abs(got[i]-z) > 1e-3 {
			t.Fatalf("restored key share: enterprise %d got %g want %g", i, got[i], z)
		}
	}
	ekb, err := f.eval.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalEvalKey(ekb); err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalKeyHolder([]byte(`{"version":1,"param_set":"nope"}`)); err == nil {
		t.Fatal("key file with an unknown parameter set accepted")
	}
}

func TestVerifyResultSignature(t *testing.T) {
	dir := t.TempDir()
	key, err := LoadOrCreateSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateSigningKey(dir)
	if err != nil || !again.Equal(key) {
		t.Fatalf("signing key not stable across loads: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, SigningKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key file mode %v", fi.Mode().Perm())
	}
	op, _ := ParseOp("ge")
	ans, _ := op.Compare(123456, 100000)
	st := VerifyStatement{Provider: "tax", Enterprise: "91350100M000100Y43", Field: "annual_tax_paid", Op: op, Value: 100000, Answer: ans, Bank: "bank1", GrantID: "g1", Time: time.Unix(1700000000, 0).UTC()}
	res, err := SignVerify(key, st)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	if err := res.Check(pub); err != nil {
		t.Fatal(err)
	}
	if err := res.Check(nil); err != nil {
		t.Fatal(err)
	}
	tampered := *res
	tampered.Statement.Answer = !ans
	if err := tampered.Check(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered answer verified: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if err := res.Check(other); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("result verified against another provider's key: %v", err)
	}
	for _, c := range []struct {
		op   string
		v, r float64
		want bool
	}{{"ge", 1, 1, true}, {"gt", 1, 1, false}, {"le", 0, 1, true}, {"lt", 1, 1, false}, {"eq", 2, 2, true}, {"ne", 2, 2, false}} {
		op, err := ParseOp(c.op)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := op.Compare(c.v, c.r); got != c.want {
			t.Errorf("%g %s %g = %v", c.v, c.op, c.r, got)
		}
	}
	if _, err := ParseOp("gte"); err == nil {
		t.Error("unknown op accepted")
	}
}
