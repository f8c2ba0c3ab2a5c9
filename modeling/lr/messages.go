package lr

// Protocol messages. Each has MarshalBinary and an Unmarshal function; the
// in-process driver always sends the bytes, exactly as the gRPC transport
// will. Ciphertexts and shares inside are veil/he objects (tagged with the
// parameter fingerprint) and are parsed, with their expected level, by the
// receiving party.

const (
	tagSetup byte = iota + 1
	tagKeyShare
	tagPublicKey
	tagIterStart
	tagShare
	tagResidual
	tagGradient
	tagDecryptRequest
	tagDecryptShares
	tagResult
)

// Setup starts (or resumes) a job at every party: the hyperparameters, the
// party list and the CRS seed for this run's collective key.
type Setup struct {
	Config         Config
	Parties        []string // label party first, then providers
	Rows           int
	CRSSeed        []byte
	StartIteration int // 0, or the iteration after the checkpoint all parties resume from
}

func (c *Config) write(w *writer) {
	w.i64(c.Epochs)
	w.i64(c.BatchSize)
	w.f64(c.LearningRate)
	w.f64(c.Decay)
	w.f64(c.L2)
	w.f64(c.Tol)
	w.i64(c.Patience)
	w.u64(c.Seed)
	w.i64(c.FeaturesPerCiphertext)
	w.str(c.ParamSet)
}

func (c *Config) read(r *reader) {
	c.Epochs = r.i64()
	c.BatchSize = r.i64()
	c.LearningRate = r.f64()
	c.Decay = r.f64()
	c.L2 = r.f64()
	c.Tol = r.f64()
	c.Patience = r.i64()
	c.Seed = r.u64()
	c.FeaturesPerCiphertext = r.i64()
	c.ParamSet = r.str()
}

// MarshalBinary encodes the message.
func (m *Setup) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagSetup}}
	m.Config.write(w)
	w.strs(m.Parties)
	w.i64(m.Rows)
	w.bytes(m.CRSSeed)
	w.i64(m.StartIteration)
	return w.b, nil
}

// UnmarshalSetup decodes a Setup message.
func UnmarshalSetup(data []byte) (*Setup, error) {
	r, err := openMsg(data, tagSetup, "setup")
	if err != nil {
		return nil, err
	}
	m := &Setup{}
	m.Config.read(r)
	m.Parties = r.strs()
	m.Rows = r.i64()
	m.CRSSeed = r.bytes()
	m.StartIteration = r.i64()
	return m, r.done("setup")
}

// KeyShare carries a party's CKG share.
type KeyShare struct {
	Party string
	Share []byte
}

// MarshalBinary encodes the message.
func (m *KeyShare) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagKeyShare}}
	w.str(m.Party)
	w.bytes(m.Share)
	return w.b, nil
}

// UnmarshalKeyShare decodes a KeyShare message.
func UnmarshalKeyShare(data []byte) (*KeyShare, error) {
	r, err := openMsg(data, tagKeyShare, "key share")
	if err != nil {
		return nil, err
	}
	m := &KeyShare{Party: r.str(), Share: r.bytes()}
	return m, r.done("key share")
}

// PublicKeyMsg carries the collective public key.
type PublicKeyMsg struct{ Key []byte }

// MarshalBinary encodes the message.
func (m *PublicKeyMsg) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagPublicKey}}
	w.bytes(m.Key)
	return w.b, nil
}

// UnmarshalPublicKeyMsg decodes a PublicKeyMsg.
func UnmarshalPublicKeyMsg(data []byte) (*PublicKeyMsg, error) {
	r, err := openMsg(data, tagPublicKey, "public key")
	if err != nil {
		return nil, err
	}
	m := &PublicKeyMsg{Key: r.bytes()}
	return m, r.done("public key")
}

// IterStart tells every party to run iteration Iteration (the batch follows
// from the shared schedule).
type IterStart struct{ Iteration int }

// MarshalBinary encodes the message.
func (m *IterStart) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagIterStart}}
	w.i64(m.Iteration)
	return w.b, nil
}

// UnmarshalIterStart decodes an IterStart.
func UnmarshalIterStart(data []byte) (*IterStart, error) {
	r, err := openMsg(data, tagIterStart, "iteration start")
	if err != nil {
		return nil, err
	}
	m := &IterStart{Iteration: r.i64()}
	return m, r.done("iteration start")
}

// ResidualShare carries a party's encrypted share of the residual
// (0.25·u_k for a provider, 0.25·u_B + 0.5 − y for the label holder), one
// coefficient-packed ciphertext per block of the batch.
type ResidualShare struct {
	Party     string
	Iteration int
	Cts       [][]byte
}

// MarshalBinary encodes the message.
func (m *ResidualShare) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagShare}}
	w.str(m.Party)
	w.i64(m.Iteration)
	w.list(m.Cts)
	return w.b, nil
}

// UnmarshalResidualShare decodes a ResidualShare.
func UnmarshalResidualShare(data []byte) (*ResidualShare, error) {
	r, err := openMsg(data, tagShare, "residual share")
	if err != nil {
		return nil, err
	}
	m := &ResidualShare{Party: r.str(), Iteration: r.i64(), Cts: r.list()}
	return m, r.done("residual share")
}

// Residual carries Enc(d), the homomorphic sum of all residual shares.
type Residual struct {
	Iteration int
	Cts       [][]byte
}

// MarshalBinary encodes the message.
func (m *Residual) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagResidual}}
	w.i64(m.Iteration)
	w.list(m.Cts)
	return w.b, nil
}

// UnmarshalResidual decodes a Residual.
func UnmarshalResidual(data []byte) (*Residual, error) {
	r, err := openMsg(data, tagResidual, "residual")
	if err != nil {
		return nil, err
	}
	m := &Residual{Iteration: r.i64(), Cts: r.list()}
	return m, r.done("residual")
}

// EncryptedGradient carries a party's masked encrypted gradient (Counts[i]
// gradient entries in ciphertext i) and its encrypted loss term.
type EncryptedGradient struct {
	Party     string
	Iteration int
	Cts       [][]byte
	Counts    []int
	Loss      []byte
}

// MarshalBinary encodes the message.
func (m *EncryptedGradient) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagGradient}}
	w.str(m.Party)
	w.i64(m.Iteration)
	w.list(m.Cts)
	w.ints(m.Counts)
	w.bytes(m.Loss)
	return w.b, nil
}

// UnmarshalEncryptedGradient decodes an EncryptedGradient.
func UnmarshalEncryptedGradient(data []byte) (*EncryptedGradient, error) {
	r, err := openMsg(data, tagGradient, "encrypted gradient")
	if err != nil {
		return nil, err
	}
	m := &EncryptedGradient{Party: r.str(), Iteration: r.i64(), Cts: r.list(), Counts: r.ints(), Loss: r.bytes()}
	return m, r.done("encrypted gradient")
}

// DecryptItem is one ciphertext to open: Count coefficients at the protocol's
// fixed target positions. Owner is the party the result goes to ("" for the
// loss, which is opened for everyone).
type DecryptItem struct {
	Owner string
	Count int
	Ct    []byte
}

// DecryptRequest asks every key holder for decryption shares.
type DecryptRequest struct {
	Iteration int
	Items     []DecryptItem
}

// MarshalBinary encodes the message.
func (m *DecryptRequest) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagDecryptRequest}}
	w.i64(m.Iteration)
	w.u64(uint64(len(m.Items)))
	for _, it := range m.Items {
		w.str(it.Owner)
		w.i64(it.Count)
		w.bytes(it.Ct)
	}
	return w.b, nil
}

// UnmarshalDecryptRequest decodes a DecryptRequest.
func UnmarshalDecryptRequest(data []byte) (*DecryptRequest, error) {
	r, err := openMsg(data, tagDecryptRequest, "decrypt request")
	if err != nil {
		return nil, err
	}
	m := &DecryptRequest{Iteration: r.i64()}
	n := r.count(24)
	for i := 0; i < n && r.err == nil; i++ {
		m.Items = append(m.Items, DecryptItem{Owner: r.str(), Count: r.i64(), Ct: r.bytes()})
	}
	return m, r.done("decrypt request")
}

// DecryptShares carries one party's shares, aligned with the request's items.
type DecryptShares struct {
	Party     string
	Iteration int
	Shares    [][]byte
}

// MarshalBinary encodes the message.
func (m *DecryptShares) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagDecryptShares}}
	w.str(m.Party)
	w.i64(m.Iteration)
	w.list(m.Shares)
	return w.b, nil
}

// UnmarshalDecryptShares decodes DecryptShares.
func UnmarshalDecryptShares(data []byte) (*DecryptShares, error) {
	r, err := openMsg(data, tagDecryptShares, "decrypt shares")
	if err != nil {
		return nil, err
	}
	m := &DecryptShares{Party: r.str(), Iteration: r.i64(), Shares: r.list()}
	return m, r.done("decrypt shares")
}

// Result returns to one party the summed decryption shares of its own
// gradient ciphertexts (still masked with its own mask) and the iteration's
// loss, which is public to the job's parties.
type Result struct {
	Party     string
	Iteration int
	ShareSums [][]byte
	Loss      float64
	Done      bool // the coordinator stops after this iteration
}

// MarshalBinary encodes the message.
func (m *Result) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagResult}}
	w.str(m.Party)
	w.i64(m.Iteration)
	w.list(m.ShareSums)
	w.f64(m.Loss)
	if m.Done {
		w.u8(1)
	} else {
		w.u8(0)
	}
	return w.b, nil
}

// UnmarshalResult decodes a Result.
func UnmarshalResult(data []byte) (*Result, error) {
	r, err := openMsg(data, tagResult, "result")
	if err != nil {
		return nil, err
	}
	m := &Result{Party: r.str(), Iteration: r.i64(), ShareSums: r.list(), Loss: r.f64(), Done: r.u8() == 1}
	return m, r.done("result")
}
