package lr

import (
	"context"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"

	"veil/mpc/he"
)

// Coordinator is the platform's side of a training job. It relays and sums
// ciphertexts and shares and runs the schedule and early stopping. It holds
// one share of the N-of-N collective key (so nothing can be decrypted without
// it either), but never a key that decrypts anything alone, and it only ever
// opens the loss.
type Coordinator struct {
	cfg     Config
	params  *he.Params
	kp      *he.KeyParty
	parties []string // label party first
	rows    int
	sch     *schedule
	m       int

	ckg  *he.CKGAggregator
	keys map[string]bool
	pkOK bool

	next     int
	inIter   bool
	shares   map[string][]*rlwe.Ciphertext
	residual []*rlwe.Ciphertext
	grads    map[string]*EncryptedGradient
	items    []DecryptItem
	itemCts  []*rlwe.Ciphertext
	sums     []*he.ShareSum
	gotDec   map[string]bool
	stop     stopper
	done     bool
	eval     *evalState // test-split evaluation (eval.go)
}

// NewCoordinator prepares a job for the named parties (label party first)
// over rows aligned rows.
func NewCoordinator(cfg Config, parties []string, rows int) (*Coordinator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(rows); err != nil {
		return nil, err
	}
	if len(parties) < 2 {
		return nil, fmt.Errorf("lr: need a label party and at least one provider, got %d parties", len(parties))
	}
	seen := map[string]bool{"": true}
	for _, n := range parties {
		if seen[n] {
			return nil, fmt.Errorf("lr: party name %q is empty or repeated", n)
		}
		seen[n] = true
	}
	params, err := he.ByName(cfg.ParamSet)
	if err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg, params: params, parties: parties, rows: rows, sch: newSchedule(rows, cfg),
		m: params.N() / cfg.FeaturesPerCiphertext, stop: stopper{tol: cfg.Tol, patience: cfg.Patience}}, nil
}

// Setup starts a key setup round (also after a restore) and returns the
// Setup message for every party.
func (c *Coordinator) Setup() ([]byte, error) {
	seed, err := he.NewCRSSeed()
	if err != nil {
		return nil, err
	}
	c.kp = he.NewKeyParty(c.params)
	if c.ckg, err = he.NewCKGAggregator(c.params, seed, len(c.parties)+1); err != nil {
		return nil, err
	}
	own, err := c.kp.GenCKGShare(seed)
	if err != nil {
		return nil, err
	}
	if err := c.ckg.Add(own); err != nil {
		return nil, err
	}
	c.keys, c.pkOK, c.inIter = map[string]bool{}, false, false
	return (&Setup{Config: c.cfg, Parties: c.parties, Rows: c.rows, CRSSeed: seed, StartIteration: c.next}).MarshalBinary()
}

func (c *Coordinator) isParty(name string) bool {
	for _, n := range c.parties {
		if n == name {
			return true
		}
	}
	return false
}

// AddKeyShare adds a party's CKG share.
func (c *Coordinator) AddKeyShare(msg []byte) error {
	if c.ckg == nil {
		return fmt.Errorf("lr: coordinator: key share before setup")
	}
	m, err := UnmarshalKeyShare(msg)
	if err != nil {
		return err
	}
	if !c.isParty(m.Party) || c.keys[m.Party] {
		return fmt.Errorf("lr: coordinator: unexpected or repeated key share from %q", m.Party)
	}
	if err := c.ckg.Add(m.Share); err != nil {
		return fmt.Errorf("lr: coordinator: key share from %q: %w", m.Party, err)
	}
	c.keys[m.Party] = true
	return nil
}

// PublicKey returns the collective public key message once all shares are in.
func (c *Coordinator) PublicKey() ([]byte, error) {
	pk, err := c.ckg.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("lr: coordinator: %w", err)
	}
	b, err := pk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	c.pkOK = true
	return (&PublicKeyMsg{Key: b}).MarshalBinary()
}

// NextIteration returns the next IterStart, or done = true when training is over.
func (c *Coordinator) NextIteration() (msg []byte, done bool, err error) {
	if !c.pkOK {
		return nil, false, fmt.Errorf("lr: coordinator: no collective key yet")
	}
	if c.inIter {
		return nil, false, fmt.Errorf("lr: coordinator: iteration %d not finished", c.next)
	}
	if c.done || c.next >= c.cfg.Epochs*c.sch.numBatches {
		c.done = true
		return nil, true, nil
	}
	c.inIter = true
	c.shares = map[string][]*rlwe.Ciphertext{}
	c.grads = map[string]*EncryptedGradient{}
	c.gotDec = map[string]bool{}
	c.residual, c.items, c.itemCts, c.sums = nil, nil, nil, nil
	b, err := (&IterStart{Iteration: c.next}).MarshalBinary()
	return b, false, err
}

func (c *Coordinator) blocks() int {
	_, b := c.sch.at(c.next)
	return (c.sch.size(b) + c.m - 1) / c.m
}

// AddResidualShare adds a party's encrypted residual share.
func (c *Coordinator) AddResidualShare(msg []byte) error {
	m, err := UnmarshalResidualShare(msg)
	if err != nil {
		return err
	}
	if !c.inIter || m.Iteration != c.next || !c.isParty(m.Party) || c.shares[m.Party] != nil {
		return fmt.Errorf("lr: coordinator: unexpected residual share from %q for iteration %d", m.Party, m.Iteration)
	}
	if len(m.Cts) != c.blocks() {
		return fmt.Errorf("lr: coordinator: %q sent %d residual ciphertexts, want %d", m.Party, len(m.Cts), c.blocks())
	}
	cts := make([]*rlwe.Ciphertext, len(m.Cts))
	for k, b := range m.Cts {
		if cts[k], err = c.params.UnmarshalCiphertext(b, c.params.MaxLevel()); err != nil {
			return fmt.Errorf("lr: coordinator: residual share %d from %q: %w", k, m.Party, err)
		}
	}
	c.shares[m.Party] = cts
	return nil
}

// Residual sums all shares into Enc(d) and returns it for every party.
func (c *Coordinator) Residual() ([]byte, error) {
	if len(c.shares) != len(c.parties) {
		return nil, fmt.Errorf("lr: coordinator: have %d of %d residual shares", len(c.shares), len(c.parties))
	}
	eval := hefloat.NewEvaluator(c.params.Parameters, nil)
	nb := c.blocks()
	c.residual = make([]*rlwe.Ciphertext, nb)
	out := &Residual{Iteration: c.next, Cts: make([][]byte, nb)}
	for k := 0; k < nb; k++ {
		acc := c.shares[c.parties[0]][k].CopyNew()
		for _, n := range c.parties[1:] {
			if err := eval.Add(acc, c.shares[n][k], acc); err != nil {
				return nil, fmt.Errorf("lr: coordinator: sum residual: %w", err)
			}
		}
		c.residual[k] = acc
		var err error
		if out.Cts[k], err = c.params.MarshalCiphertext(acc); err != nil {
			return nil, err
		}
	}
	c.shares = nil
	return out.MarshalBinary()
}

// AddGradient adds a party's masked encrypted gradient and loss term.
func (c *Coordinator) AddGradient(msg []byte) error {
	m, err := UnmarshalEncryptedGradient(msg)
	if err != nil {
		return err
	}
	if !c.inIter || c.residual == nil || m.Iteration != c.next || !c.isParty(m.Party) || c.grads[m.Party] != nil {
		return fmt.Errorf("lr: coordinator: unexpected gradient from %q for iteration %d", m.Party, m.Iteration)
	}
	if len(m.Cts) != len(m.Counts) || len(m.Cts) == 0 {
		return fmt.Errorf("lr: coordinator: gradient from %q has %d ciphertexts and %d counts", m.Party, len(m.Cts), len(m.Counts))
	}
	for i, b := range m.Cts {
		if m.Counts[i] < 1 || m.Counts[i] > c.cfg.FeaturesPerCiphertext {
			return fmt.Errorf("lr: coordinator: gradient ciphertext %d from %q claims %d entries", i, m.Party, m.Counts[i])
		}
		if _, err := c.params.UnmarshalCiphertext(b, 0); err != nil {
			return fmt.Errorf("lr: coordinator: gradient ciphertext %d from %q: %w", i, m.Party, err)
		}
	}
	if _, err := c.params.UnmarshalCiphertext(m.Loss, 0); err != nil {
		return fmt.Errorf("lr: coordinator: loss ciphertext from %q: %w", m.Party, err)
	}
	c.grads[m.Party] = m
	return nil
}

// DecryptRequest builds the request for decryption shares: every party's
// gradient ciphertexts (each to be opened only by its owner) and the summed
// loss. The coordinator adds its own shares.
func (c *Coordinator) DecryptRequest(ctx context.Context) ([]byte, error) {
	if len(c.grads) != len(c.parties) {
		return nil, fmt.Errorf("lr: coordinator: have %d of %d gradients", len(c.grads), len(c.parties))
	}
	eval := hefloat.NewEvaluator(c.params.Parameters, nil)
	var loss *rlwe.Ciphertext
	req := &DecryptRequest{Iteration: c.next}
	c.itemCts = nil
	for _, n := range c.parties {
		g := c.grads[n]
		for i, b := range g.Cts {
			ct, err := c.params.UnmarshalCiphertext(b, 0)
			if err != nil {
				return nil, err
			}
			req.Items = append(req.Items, DecryptItem{Owner: n, Count: g.Counts[i], Ct: b})
			c.itemCts = append(c.itemCts, ct)
		}
		lc, err := c.params.UnmarshalCiphertext(g.Loss, 0)
		if err != nil {
			return nil, err
		}
		if loss == nil {
			loss = lc
		} else if err := eval.Add(loss, lc, loss); err != nil {
			return nil, fmt.Errorf("lr: coordinator: sum loss: %w", err)
		}
	}
	lb, err := c.params.MarshalCiphertext(loss)
	if err != nil {
		return nil, err
	}
	req.Items = append(req.Items, DecryptItem{Owner: "", Count: 1, Ct: lb})
	c.itemCts = append(c.itemCts, loss)
	c.items = req.Items
	c.sums = make([]*he.ShareSum, len(req.Items))
	for i := range c.sums {
		if c.sums[i], err = he.NewDecryptionShareSum(c.params, 0, len(c.parties)+1); err != nil {
			return nil, err
		}
	}
	reqBytes, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	own, err := decryptShares(ctx, c.params, c.kp, "coordinator", c.next, c.m, c.cfg.FeaturesPerCiphertext, reqBytes)
	if err != nil {
		return nil, err
	}
	if err := c.addShares(own, true); err != nil {
		return nil, err
	}
	c.grads = nil
	return reqBytes, nil
}

// AddDecryptShares adds one party's decryption shares.
func (c *Coordinator) AddDecryptShares(msg []byte) error { return c.addShares(msg, false) }

func (c *Coordinator) addShares(msg []byte, own bool) error {
	m, err := UnmarshalDecryptShares(msg)
	if err != nil {
		return err
	}
	name := m.Party
	if own {
		name = "\x00coordinator"
	} else if !c.isParty(name) {
		return fmt.Errorf("lr: coordinator: decryption shares from unknown party %q", name)
	}
	if c.sums == nil || m.Iteration != c.next || c.gotDec[name] {
		return fmt.Errorf("lr: coordinator: unexpected decryption shares from %q for iteration %d", m.Party, m.Iteration)
	}
	if len(m.Shares) != len(c.sums) {
		return fmt.Errorf("lr: coordinator: %q sent %d decryption shares, want %d", m.Party, len(m.Shares), len(c.sums))
	}
	for i, sh := range m.Shares {
		if err := c.sums[i].Add(sh); err != nil {
			return fmt.Errorf("lr: coordinator: share %d from %q: %w", i, m.Party, err)
		}
	}
	c.gotDec[name] = true
	return nil
}

// Results opens the loss, advances the schedule and early stopping, and
// returns each party's Result (its own summed shares). The gradient sums
// stay masked by their owners' pads: the coordinator cannot read them.
func (c *Coordinator) Results() (map[string][]byte, error) {
	if len(c.gotDec) != len(c.parties)+1 {
		return nil, fmt.Errorf("lr: coordinator: have decryption shares from %d of %d key holders", len(c.gotDec), len(c.parties)+1)
	}
	last := len(c.items) - 1
	lossSum, err := c.sums[last].MarshalBinary()
	if err != nil {
		return nil, err
	}
	pt, err := c.params.OpenCKS(c.itemCts[last], lossSum)
	if err != nil {
		return nil, err
	}
	v, err := c.params.DecodeCoeffs(pt, targets(c.m, 1), nil)
	if err != nil {
		return nil, err
	}
	loss := taylorLoss(v[0])
	if math.IsNaN(loss) {
		return nil, fmt.Errorf("lr: coordinator: loss is not a number")
	}
	epoch, b := c.sch.at(c.next)
	endOfEpoch := (c.next+1)%c.sch.numBatches == 0
	if c.stop.add(loss, c.sch.size(b), endOfEpoch) || epoch+1 >= c.cfg.Epochs && endOfEpoch {
		c.done = true
	}
	out := map[string][]byte{}
	for _, n := range c.parties {
		r := &Result{Party: n, Iteration: c.next, Loss: loss, Done: c.done}
		for i, it := range c.items[:last] {
			if it.Owner == n {
				s, err := c.sums[i].MarshalBinary()
				if err != nil {
					return nil, err
				}
				r.ShareSums = append(r.ShareSums, s)
			}
		}
		if out[n], err = r.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	c.next++
	c.inIter = false
	c.items, c.itemCts, c.sums, c.residual = nil, nil, nil, nil
	return out, nil
}

// Done reports whether training is over.
func (c *Coordinator) Done() bool { return c.done }

// Iteration returns the number of completed iterations.
func (c *Coordinator) Iteration() int { return c.next }

// EpochLosses returns the Taylor loss of each completed epoch.
func (c *Coordinator) EpochLosses() []float64 { return append([]float64(nil), c.stop.EpochLosses...) }

// IterationLosses returns the loss of each completed iteration.
func (c *Coordinator) IterationLosses() []float64 {
	return append([]float64(nil), c.stop.IterLosses...)
}

// StoppedEarly reports whether early stopping ended training.
func (c *Coordinator) StoppedEarly() bool { return c.stop.stoppedEarly }

const coordSnapshotMagic = "VLRC1"

// Snapshot serializes the coordinator's schedule and early-stopping state
// between iterations (no key material; a resumed job runs a fresh CKG).
func (c *Coordinator) Snapshot() ([]byte, error) {
	if c.inIter {
		return nil, fmt.Errorf("lr: coordinator: snapshot only between iterations")
	}
	w := &writer{b: []byte(coordSnapshotMagic)}
	w.i64(c.next)
	w.f64(c.stop.prev)
	w.i64(c.stop.stalls)
	w.f64(c.stop.epochLossSum)
	w.i64(c.stop.epochRows)
	writeFloats(w, c.stop.EpochLosses)
	writeFloats(w, c.stop.IterLosses)
	flags := byte(0)
	if c.done {
		flags |= 1
	}
	if c.stop.stoppedEarly {
		flags |= 2
	}
	w.u8(flags)
	return w.b, nil
}

// Restore loads a snapshot into a new coordinator (same config and parties)
// before Setup.
func (c *Coordinator) Restore(snap []byte) error {
	if c.ckg != nil {
		return fmt.Errorf("lr: coordinator: restore only before setup")
	}
	if len(snap) < len(coordSnapshotMagic) || string(snap[:len(coordSnapshotMagic)]) != coordSnapshotMagic {
		return fmt.Errorf("lr: coordinator: not a coordinator snapshot")
	}
	r := &reader{b: snap[len(coordSnapshotMagic):]}
	next := r.i64()
	st := stopper{tol: c.cfg.Tol, patience: c.cfg.Patience}
	st.prev = r.f64()
	st.stalls = r.i64()
	st.epochLossSum = r.f64()
	st.epochRows = r.i64()
	st.EpochLosses = readFloats(r)
	st.IterLosses = readFloats(r)
	flags := r.u8()
	if err := r.done("coordinator snapshot"); err != nil {
		return err
	}
	if next < 0 || next > c.cfg.Epochs*c.sch.numBatches || len(st.IterLosses) != next {
		return fmt.Errorf("lr: coordinator: snapshot iteration %d inconsistent with the job", next)
	}
	st.stoppedEarly = flags&2 != 0
	c.next, c.stop, c.done = next, st, flags&1 != 0
	return nil
}

func writeFloats(w *writer, v []float64) {
	w.u64(uint64(len(v)))
	for _, x := range v {
		w.f64(x)
	}
}

func readFloats(r *reader) []float64 {
	n := r.count(8)
	out := make([]float64, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.f64())
	}
	return out
}
