package he

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

func mustParams(t testing.TB, name string) *Params {
	t.Helper()
	p, err := ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// collective sets up n key parties and their collective public key via
// serialized CKG shares, as the platform would.
func collective(t testing.TB, p *Params, n int) ([]*KeyParty, *PublicKey) {
	t.Helper()
	seed, err := NewCRSSeed()
	if err != nil {
		t.Fatal(err)
	}
	agg, err := NewCKGAggregator(p, seed, n)
	if err != nil {
		t.Fatal(err)
	}
	parties := make([]*KeyParty, n)
	for i := range parties {
		parties[i] = NewKeyParty(p)
		sh, err := parties[i].GenCKGShare(seed)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.Add(sh); err != nil {
			t.Fatal(err)
		}
	}
	pk, err := agg.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pk.MarshalBinary()
	pk2, err := p.UnmarshalPublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return parties, pk2
}

func TestParamsSecurityAndFingerprints(t *testing.T) {
	seen := map[Fingerprint]string{}
	for _, name := range []string{TrainingSetName, ScoringSetName, ScoringSmallSetName} {
		p := mustParams(t, name)
		if p.LogQP() > maxLogQP[p.LogN()] {
			t.Errorf("%s: logQP %.1f above bound", name, p.LogQP())
		}
		if p.SmudgingSigma() < MinSmudgingSigma {
			t.Errorf("%s: sigma too small", name)
		}
		if other, dup := seen[p.Fingerprint()]; dup {
			t.Errorf("%s and %s share a fingerprint", name, other)
		}
		seen[p.Fingerprint()] = name
		if p2 := mustParams(t, name); p2.Fingerprint() != p.Fingerprint() {
			t.Errorf("%s: fingerprint not deterministic", name)
		}
	}
	lit := TrainingLiteral()
	lit.LogQ = []int{60, 60, 60, 45}
	if _, err := New("too-big", lit, TrainingSmudgingSigma); err == nil || !strings.Contains(err.Error(), "128-bit") {
		t.Errorf("logQP 225 at LogN 13 accepted: %v", err)
	}
	if _, err := New("no-flooding", TrainingLiteral(), 3.2); err == nil || !strings.Contains(err.Error(), "smudging") {
		t.Errorf("sigma 3.2 accepted: %v", err)
	}
	if _, err := New("nan-flooding", TrainingLiteral(), math.NaN()); err == nil {
		t.Error("NaN sigma accepted")
	}
}

func TestCoefficientCKSWithMaskAndReveal(t *testing.T) {
	p := mustParams(t, TrainingSetName)
	parties, pk := collective(t, p, 3)
	enc := NewEncryptor(pk)
	vals := make([]float64, p.N())
	r := rand.New(rand.NewPCG(1, 2))
	for i := range vals {
		vals[i] = r.Float64()*4 - 2
	}
	ct, err := enc.EncryptCoeffs(vals)
	if err != nil {
		t.Fatal(err)
	}
	// Move to level 0 (as after the gradient's rescale).
	ct.Resize(1, 0)
	positions := []int{0, 17, p.N() - 1}
	mask, err := p.NewCoeffMask(positions)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ApplyMask(ct, mask); err != nil {
		t.Fatal(err)
	}
	sum, err := NewDecryptionShareSum(p, 0, len(parties))
	if err != nil {
		t.Fatal(err)
	}
	for _, kp := range parties {
		sh, err := kp.DecryptionShare(ct, positions)
		if err != nil {
			t.Fatal(err)
		}
		if err := sum.Add(sh); err != nil {
			t.Fatal(err)
		}
	}
	agg, err := sum.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	pt, err := p.OpenCKS(ct, agg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.DecodeCoeffs(pt, positions, mask)
	if err != nil {
		t.Fatal(err)
	}
	for i, pos := range positions {
		if d := math.Abs(got[i] - vals[pos]); d > 1e-4 {
			t.Errorf("coefficient %d: got %v want %v (err %g)", pos, got[i], vals[pos], d)
		}
	}
	// Without removing the mask the opened value is a uniform mod q0: far off.
	masked, _ := p.DecodeCoeffs(pt, positions, nil)
	off := 0
	for i, pos := range positions {
		if math.Abs(masked[i]-vals[pos]) > 1 {
			off++
		}
	}
	if off == 0 {
		t.Error("masked values decode to the plaintext without the mask")
	}
	// Coefficients not revealed are randomised by the shares.
	hidden := []int{1, 2, 3, 100, 4000}
	hv, _ := p.DecodeCoeffs(pt, hidden, nil)
	close := 0
	for i, pos := range hidden {
		if math.Abs(hv[i]-vals[pos]) < 1 {
			close++
		}
	}
	if close > 1 {
		t.Errorf("%d of %d unrevealed coefficients decrypt to their plaintext", close, len(hidden))
	}
}

func TestFewerSharesCannotDecrypt(t *testing.T) {
	p := mustParams(t, TrainingSetName)
	parties, pk := collective(t, p, 3)
	vals := []float64{0.5, -1.25, 3}
	ct, err := NewEncryptor(pk).EncryptCoeffs(vals)
	if err != nil {
		t.Fatal(err)
	}
	ct.Resize(1, 0)
	// Sum of two of three shares (e.g. the platform colluding with nobody
	// but itself and one other) does not open the ciphertext.
	sum, _ := NewDecryptionShareSum(p, 0, 2)
	for _, kp := range parties[:2] {
		sh, err := kp.DecryptionShare(ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sum.Add(sh); err != nil {
			t.Fatal(err)
		}
	}
	agg, _ := sum.MarshalBinary()
	pt, err := p.OpenCKS(ct, agg)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := p.DecodeCoeffs(pt, []int{0, 1, 2}, nil)
	for i := range vals {
		if math.Abs(got[i]-vals[i]) < 1e-2 {
			t.Errorf("value %d recovered without all shares", i)
		}
	}
	// An incomplete sum refuses to serialize.
	sum3, _ := NewDecryptionShareSum(p, 0, 3)
	sh, _ := parties[0].DecryptionShare(ct, nil)
	_ = sum3.Add(sh)
	if _, err := sum3.MarshalBinary(); err == nil {
		t.Error("incomplete share sum serialized")
	}
}

// TestSharesCarryFlooding checks that every decryption share carries noise of
// the parameter set's σ: two shares of the same party for the same ciphertext
// differ by e1-e2 with standard deviation σ·√2.
func TestSharesCarryFlooding(t *testing.T) {
	p := mustParams(t, TrainingSetName)
	parties, pk := collective(t, p, 2)
	ct, _ := NewEncryptor(pk).EncryptCoeffs([]float64{1})
	ct.Resize(1, 0)
	for _, kind := range []string{"cks", "pcks"} {
		var a, b []byte
		var err error
		var polyCount int
		if kind == "cks" {
			a, _ = parties[0].DecryptionShare(ct, nil)
			b, err = parties[0].DecryptionShare(ct, nil)
			polyCount = 1
		} else {
			rk := NewRecipientKey(p)
			a, _ = parties[0].PCKSShare(ct, rk.PublicKey())
			b, err = parties[0].PCKSShare(ct, rk.PublicKey())
			polyCount = 2
		}
		if err != nil {
			t.Fatal(err)
		}
		k := KindCKSShare
		if kind == "pcks" {
			k = KindPCKSShare
		}
		pa, err := p.unmarshalLevelled(a, k, polyCount, 0)
		if err != nil {
			t.Fatal(err)
		}
		pb, _ := p.unmarshalLevelled(b, k, polyCount, 0)
		rq := p.RingQ().AtLevel(0)
		d := rq.NewPoly()
		rq.Sub(pa[0], pb[0], d)
		rq.INTT(d, d)
		q := p.Q()[0]
		var ss float64
		for _, c := range d.Coeffs[0] {
			v := float64(c)
			if c > q/2 {
				v = -float64(q - c)
			}
			ss += v * v
		}
		sd := math.Sqrt(ss / float64(p.N()))
		want := p.SmudgingSigma() * math.Sqrt2
		if kind == "pcks" {
			// PCKS adds encryption-of-zero noise (u·pk0 differs per share): it
			// is far larger than σ, and at least σ√2.
			if sd < 0.8*want {
				t.Errorf("%s: share difference sd %.3g, want >= %.3g", kind, sd, 0.8*want)
			}
			continue
		}
		if sd < 0.8*want || sd > 1.2*want {
			t.Errorf("%s: share difference sd %.3g, want ≈ %.3g (σ√2)", kind, sd, want)
		}
	}
}

func TestPCKSSlotsToRecipient(t *testing.T) {
	p := mustParams(t, ScoringSmallSetName)
	parties, pk := collective(t, p, 3)
	bank := NewRecipientKey(p)
	enc := NewEncryptor(pk)
	// Three providers' partial logits, summed homomorphically.
	n := 1000
	want := make([]float64, n)
	var cts []*rlwe.Ciphertext
	r := rand.New(rand.NewPCG(3, 4))
	for k := 0; k < 3; k++ {
		u := make([]float64, n)
		for i := range u {
			u[i] = r.NormFloat64()
			want[i] += u[i]
		}
		ct, err := enc.EncryptSlots(u)
		if err != nil {
			t.Fatal(err)
		}
		cts = append(cts, ct)
	}
	sumCt := cts[0].CopyNew()
	rq := p.RingQ().AtLevel(sumCt.Level())
	for _, c := range cts[1:] {
		rq.Add(sumCt.Value[0], c.Value[0], sumCt.Value[0])
		rq.Add(sumCt.Value[1], c.Value[1], sumCt.Value[1])
	}
	// Serialize the bank key as the bank would register it.
	pkb, _ := bank.PublicKey().MarshalBinary()
	bankPK, err := p.UnmarshalPublicKey(pkb)
	if err != nil {
		t.Fatal(err)
	}
	ss, _ := NewPCKSShareSum(p, sumCt.Level(), 3)
	for _, kp := range parties {
		sh, err := kp.PCKSShare(sumCt, bankPK)
		if err != nil {
			t.Fatal(err)
		}
		if err := ss.Add(sh); err != nil {
			t.Fatal(err)
		}
	}
	agg, _ := ss.MarshalBinary()
	out, err := p.SwitchPCKS(sumCt, agg)
	if err != nil {
		t.Fatal(err)
	}
	ctb, _ := p.MarshalCiphertext(out)
	out2, err := p.UnmarshalCiphertext(ctb, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bank.DecryptSlots(out2)
	if err != nil {
		t.Fatal(err)
	}
	var maxErr float64
	for i := range want {
		maxErr = max(maxErr, math.Abs(got[i]-want[i]))
	}
	if maxErr > 1e-3 {
		t.Errorf("PCKS max error %g", maxErr)
	}
	// Another key (not the recipient's) cannot decrypt the switched ciphertext.
	other := NewRecipientKey(p)
	bad, _ := other.DecryptSlots(out2)
	if math.Abs(bad[0]-want[0]) < 1e-2 && math.Abs(bad[1]-want[1]) < 1e-2 {
		t.Error("a non-recipient key decrypts the PCKS output")
	}
	// A recipient key of another parameter set is refused.
	wrong := NewRecipientKey(mustParams(t, TrainingSetName))
	if _, err := parties[0].PCKSShare(sumCt, wrong.PublicKey()); !errors.Is(err, ErrParamsMismatch) {
		t.Errorf("PCKS to a key of another set: %v", err)
	}
}

func TestRejectWrongParamsAndLevel(t *testing.T) {
	train := mustParams(t, TrainingSetName)
	score := mustParams(t, ScoringSmallSetName)
	_, pk := collective(t, train, 2)
	ct, _ := NewEncryptor(pk).EncryptCoeffs([]float64{1, 2})
	b, err := train.MarshalCiphertext(ct)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := train.UnmarshalCiphertext(b, train.MaxLevel()); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	// Other parameter set: refused by fingerprint, error names both.
	_, err = score.UnmarshalCiphertext(b, -1)
	if !errors.Is(err, ErrParamsMismatch) || !strings.Contains(err.Error(), score.Name()) {
		t.Errorf("ciphertext under other params: %v", err)
	}
	// Unexpected level.
	if _, err := train.UnmarshalCiphertext(b, 0); err == nil || !strings.Contains(err.Error(), "unexpected level") {
		t.Errorf("wrong level accepted: %v", err)
	}
	// A forged fingerprint with a body of another ring degree: refused by size.
	big := mustParams(t, ScoringSetName)
	_, pks := collective(t, big, 2)
	cs, _ := NewEncryptor(pks).EncryptSlots([]float64{1})
	cs.Resize(1, 0)
	bs, _ := big.MarshalCiphertext(cs)
	copy(bs[5:13], train.fp[:])
	if _, err := train.UnmarshalCiphertext(bs, -1); !errors.Is(err, ErrMalformed) {
		t.Errorf("forged ciphertext of other N: %v", err)
	}
	// Truncated, level byte above max, unreduced coefficient, bad flags.
	if _, err := train.UnmarshalCiphertext(b[:len(b)-1], -1); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated: %v", err)
	}
	c := bytes.Clone(b)
	c[headerLen+1] = 7
	if _, err := train.UnmarshalCiphertext(c, -1); err == nil {
		t.Error("level 7 accepted")
	}
	c = bytes.Clone(b)
	for i := 0; i < 8; i++ {
		c[headerLen+12+i] = 0xff
	}
	if _, err := train.UnmarshalCiphertext(c, -1); err == nil || !strings.Contains(err.Error(), "not reduced") {
		t.Errorf("unreduced coefficient: %v", err)
	}
	c = bytes.Clone(b)
	c[headerLen+2] = 0
	if _, err := train.UnmarshalCiphertext(c, -1); err == nil {
		t.Error("non-NTT flag accepted")
	}
	// Shares: wrong kind, wrong params, wrong level.
	kp := NewKeyParty(train)
	sh, _ := kp.DecryptionShare(ct, nil)
	sum, _ := NewDecryptionShareSum(train, 0, 1)
	if err := sum.Add(sh); err == nil || !strings.Contains(err.Error(), "unexpected level") {
		t.Errorf("share at level 1 added to a level-0 sum: %v", err)
	}
	sumS, _ := NewDecryptionShareSum(score, 1, 1)
	if err := sumS.Add(sh); !errors.Is(err, ErrParamsMismatch) {
		t.Errorf("share of other params: %v", err)
	}
	sumP, _ := NewPCKSShareSum(train, 1, 1)
	if err := sumP.Add(sh); !errors.Is(err, ErrMalformed) {
		t.Errorf("CKS share into a PCKS sum: %v", err)
	}
	if _, err := score.UnmarshalPublicKey(mustMarshal(pk)); !errors.Is(err, ErrParamsMismatch) {
		t.Errorf("public key of other params: %v", err)
	}
	agg, _ := NewCKGAggregator(score, make([]byte, 32), 2)
	kpt := NewKeyParty(train)
	csh, _ := kpt.GenCKGShare(make([]byte, 32))
	if err := agg.Add(csh); !errors.Is(err, ErrParamsMismatch) {
		t.Errorf("CKG share of other params: %v", err)
	}
}

func mustMarshal(pk *PublicKey) []byte { b, _ := pk.MarshalBinary(); return b }

func TestKeyPartyCheckpointRoundTrip(t *testing.T) {
	p := mustParams(t, TrainingSetName)
	parties, pk := collective(t, p, 2)
	sec, _ := parties[0].MarshalSecret()
	restored, err := p.UnmarshalKeyParty(sec)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := NewEncryptor(pk).EncryptCoeffs([]float64{0.75})
	ct.Resize(1, 0)
	sum, _ := NewDecryptionShareSum(p, 0, 2)
	for _, kp := range []*KeyParty{restored, parties[1]} {
		sh, _ := kp.DecryptionShare(ct, []int{0})
		if err := sum.Add(sh); err != nil {
			t.Fatal(err)
		}
	}
	agg, _ := sum.MarshalBinary()
	pt, _ := p.OpenCKS(ct, agg)
	got, _ := p.DecodeCoeffs(pt, []int{0}, nil)
	if math.Abs(got[0]-0.75) > 1e-4 {
		t.Errorf("restored key party decrypts %v", got[0])
	}
}

func TestParallelStopsOnError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Parallel(ctx, 10, func() (int, error) { return 0, nil }, func(int, int) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	boom := errors.New("boom")
	err = Parallel(context.Background(), 100, func() (int, error) { return 0, nil }, func(_ int, i int) error {
		if i == 5 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("error not propagated: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	p, err := ByName(TrainingSetName)
	if err != nil {
		f.Fatal(err)
	}
	kp := NewKeyParty(p)
	seed := make([]byte, 32)
	ckg, _ := kp.GenCKGShare(seed)
	agg, _ := NewCKGAggregator(p, seed, 2)
	_ = agg.Add(ckg)
	_ = agg.Add(ckg)
	pk, _ := agg.PublicKey()
	ct, _ := NewEncryptor(pk).EncryptCoeffs([]float64{1})
	ctb, _ := p.MarshalCiphertext(ct)
	sh, _ := kp.DecryptionShare(ct, nil)
	// Small seeds so the fuzzer mutates headers; full objects too.
	f.Add(ctb[:64])
	f.Add(sh[:64])
	f.Add(ctb)
	f.Add([]byte("VHE1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = p.UnmarshalCiphertext(data, -1)
		_, _ = p.UnmarshalPublicKey(data)
		_, _ = p.UnmarshalKeyParty(data)
		s, _ := NewDecryptionShareSum(p, 0, 2)
		_ = s.Add(data)
		s2, _ := NewPCKSShareSum(p, 1, 2)
		_ = s2.Add(data)
		if c, err := p.UnmarshalCiphertext(data, -1); err == nil {
			if _, err := p.MarshalCiphertext(c); err != nil {
				t.Errorf("accepted ciphertext does not re-marshal: %v", err)
			}
		}
		_, _, _ = PeekFingerprint(data)
	})
}
