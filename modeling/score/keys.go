package score

import (
	"encoding/json"
	"errors"
	"fmt"

	"veil/mpc/he"
)

// DefaultParamSet is the CKKS parameter set of scoring keys: LogN 14,
// conjugate-invariant ring (16384 enterprises per ciphertext), four levels
// for the pre-screen polynomial, special primes for the relinearisation key.
const DefaultParamSet = he.ScoringSetName

// KeyRound1 is one key holder's first message of the scoring-key setup: its
// CKG share and its RKG round-1 share. Both are RLWE samples and safe to
// relay.
type KeyRound1 struct {
	CKG  []byte
	RKG1 []byte
}

// KeyHolder is one party's share of a model's scoring key (a feature party
// of the model, or the platform). Its secret share never leaves it: it is
// stored only in the party's own data directory (MarshalBinary).
type KeyHolder struct {
	params *he.Params
	seed   []byte
	kp     *he.KeyParty
	rkg    *he.RKGSession
	pk     *he.PublicKey
}

// NewKeyHolder draws a fresh secret share for the parameter set and the
// setup's public CRS seed and returns the round-1 message.
func NewKeyHolder(params *he.Params, crsSeed []byte) (*KeyHolder, *KeyRound1, error) {
	if params == nil {
		return nil, nil, errors.New("score: key holder: nil parameter set")
	}
	kp := he.NewKeyParty(params)
	ckg, err := kp.GenCKGShare(crsSeed)
	if err != nil {
		return nil, nil, fmt.Errorf("score: key holder: CKG share: %w", err)
	}
	rkg, err := kp.NewRKGSession(crsSeed)
	if err != nil {
		return nil, nil, fmt.Errorf("score: key holder: %w", err)
	}
	r1, err := rkg.Round1()
	if err != nil {
		return nil, nil, fmt.Errorf("score: key holder: RKG round 1: %w", err)
	}
	return &KeyHolder{params: params, seed: append([]byte(nil), crsSeed...), kp: kp, rkg: rkg}, &KeyRound1{CKG: ckg, RKG1: r1}, nil
}

// Round2 answers the aggregated RKG round-1 shares with this party's RKG
// round-2 share.
func (h *KeyHolder) Round2(rkgRound1Sum []byte) ([]byte, error) {
	if h.rkg == nil {
		return nil, errors.New("score: key holder: RKG round 2 already done")
	}
	out, err := h.rkg.Round2(rkgRound1Sum)
	if err != nil {
		return nil, fmt.Errorf("score: key holder: %w", err)
	}
	h.rkg = nil
	return out, nil
}

// Finish stores the collective public key the coordinator computed, which
// the party encrypts its partial logits under.
func (h *KeyHolder) Finish(collectivePublicKey []byte) error {
	pk, err := h.params.UnmarshalPublicKey(collectivePublicKey)
	if err != nil {
		return fmt.Errorf("score: key holder: collective public key: %w", err)
	}
	h.pk = pk
	return nil
}

// Params returns the key's parameter set.
func (h *KeyHolder) Params() *he.Params { return h.params }

// PublicKey returns the collective public key (nil before Finish).
func (h *KeyHolder) PublicKey() *he.PublicKey { return h.pk }

type keyHolderFile struct {
	Version     int    `json:"version"`
	ParamSet    string `json:"param_set"`
	Fingerprint string `json:"fingerprint"`
	Seed        []byte `json:"crs_seed"`
	Secret      []byte `json:"secret_share"`
	PublicKey   []byte `json:"collective_public_key"`
}

// MarshalBinary serializes the finished key holder (secret share and
// collective public key) for the party's own data directory only.
func (h *KeyHolder) MarshalBinary() ([]byte, error) {
	if h.pk == nil {
		return nil, errors.New("score: key holder: setup not finished")
	}
	sec, err := h.kp.MarshalSecret()
	if err != nil {
		return nil, fmt.Errorf("score: key holder: %w", err)
	}
	pub, err := h.pk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("score: key holder: %w", err)
	}
	return json.Marshal(keyHolderFile{Version: 1, ParamSet: h.params.Name(), Fingerprint: h.params.Fingerprint().String(), Seed: h.seed, Secret: sec, PublicKey: pub})
}

// UnmarshalKeyHolder restores a key holder saved by MarshalBinary.
func UnmarshalKeyHolder(data []byte) (*KeyHolder, error) {
	var f keyHolderFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("score: key share file: %w", err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("score: key share file version %d, want 1", f.Version)
	}
	params, err := he.ByName(f.ParamSet)
	if err != nil {
		return nil, fmt.Errorf("score: key share file: %w", err)
	}
	kp, err := params.UnmarshalKeyParty(f.Secret)
	if err != nil {
		return nil, fmt.Errorf("score: key share file: %w", err)
	}
	pk, err := params.UnmarshalPublicKey(f.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("score: key share file: %w", err)
	}
	return &KeyHolder{params: params, seed: f.Seed, kp: kp, pk: pk}, nil
}

// KeyCoordinator runs the aggregation side of the scoring-key setup (the
// platform): it sums CKG and RKG shares and outputs the collective public
// key and relinearisation key. It never holds a secret share other than the
// platform's own KeyHolder.
type KeyCoordinator struct {
	params *he.Params
	ckg    *he.CKGAggregator
	rkg    *he.RKGAggregator
}

// NewKeyCoordinator expects parties key holders (the model's feature parties
// plus the platform).
func NewKeyCoordinator(params *he.Params, crsSeed []byte, parties int) (*KeyCoordinator, error) {
	ckg, err := he.NewCKGAggregator(params, crsSeed, parties)
	if err != nil {
		return nil, fmt.Errorf("score: key setup: %w", err)
	}
	rkg, err := he.NewRKGAggregator(params, crsSeed, parties)
	if err != nil {
		return nil, fmt.Errorf("score: key setup: %w", err)
	}
	return &KeyCoordinator{params: params, ckg: ckg, rkg: rkg}, nil
}

// AddRound1 adds one key holder's round-1 message.
func (c *KeyCoordinator) AddRound1(m *KeyRound1) error {
	if m == nil {
		return errors.New("score: key setup: nil round-1 message")
	}
	if err := c.ckg.Add(m.CKG); err != nil {
		return fmt.Errorf("score: key setup: %w", err)
	}
	if err := c.rkg.AddRound1(m.RKG1); err != nil {
		return fmt.Errorf("score: key setup: %w", err)
	}
	return nil
}

// Round1Result returns the collective public key and the aggregated RKG
// round-1 shares, to send to every key holder.
func (c *KeyCoordinator) Round1Result() (publicKey, rkgRound1Sum []byte, err error) {
	pk, err := c.ckg.PublicKey()
	if err != nil {
		return nil, nil, fmt.Errorf("score: key setup: %w", err)
	}
	if publicKey, err = pk.MarshalBinary(); err != nil {
		return nil, nil, fmt.Errorf("score: key setup: %w", err)
	}
	if rkgRound1Sum, err = c.rkg.Round1Sum(); err != nil {
		return nil, nil, fmt.Errorf("score: key setup: %w", err)
	}
	return publicKey, rkgRound1Sum, nil
}

// AddRound2 adds one key holder's RKG round-2 share.
func (c *KeyCoordinator) AddRound2(share []byte) error {
	if err := c.rkg.AddRound2(share); err != nil {
		return fmt.Errorf("score: key setup: %w", err)
	}
	return nil
}

// Finish returns the evaluation key of the model: the collective public key
// and relinearisation key. Neither decrypts anything.
func (c *KeyCoordinator) Finish() (*EvalKey, error) {
	pk, err := c.ckg.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("score: key setup: %w", err)
	}
	rlk, err := c.rkg.RelinKey()
	if err != nil {
		return nil, fmt.Errorf("score: key setup: %w", err)
	}
	return &EvalKey{Params: c.params, PublicKey: pk, RelinKey: rlk}, nil
}

// EvalKey is the public part of a model's scoring key, kept by the platform.
type EvalKey struct {
	Params    *he.Params
	PublicKey *he.PublicKey
	RelinKey  *he.RelinKey
}

type evalKeyFile struct {
	Version   int    `json:"version"`
	ParamSet  string `json:"param_set"`
	PublicKey []byte `json:"public_key"`
	RelinKey  []byte `json:"relin_key"`
}

// MarshalBinary serializes the evaluation key.
func (k *EvalKey) MarshalBinary() ([]byte, error) {
	pk, err := k.PublicKey.MarshalBinary()
	if err != nil {
		return nil, err
	}
	rlk, err := k.RelinKey.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return json.Marshal(evalKeyFile{Version: 1, ParamSet: k.Params.Name(), PublicKey: pk, RelinKey: rlk})
}

// UnmarshalEvalKey parses MarshalBinary's output.
func UnmarshalEvalKey(data []byte) (*EvalKey, error) {
	var f evalKeyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("score: evaluation key: %w", err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("score: evaluation key version %d, want 1", f.Version)
	}
	params, err := he.ByName(f.ParamSet)
	if err != nil {
		return nil, fmt.Errorf("score: evaluation key: %w", err)
	}
	pk, err := params.UnmarshalPublicKey(f.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("score: evaluation key: %w", err)
	}
	rlk, err := params.UnmarshalRelinKey(f.RelinKey)
	if err != nil {
		return nil, fmt.Errorf("score: evaluation key: %w", err)
	}
	return &EvalKey{Params: params, PublicKey: pk, RelinKey: rlk}, nil
}

// SetupInProcess runs the whole scoring-key setup among freshly created key
// holders (for tests and single-process deployments): it returns one
// KeyHolder per party and the platform's EvalKey.
func SetupInProcess(params *he.Params, parties int) ([]*KeyHolder, *EvalKey, error) {
	seed, err := he.NewCRSSeed()
	if err != nil {
		return nil, nil, err
	}
	coord, err := NewKeyCoordinator(params, seed, parties)
	if err != nil {
		return nil, nil, err
	}
	holders := make([]*KeyHolder, parties)
	for i := range holders {
		h, r1, err := NewKeyHolder(params, seed)
		if err != nil {
			return nil, nil, err
		}
		if err := coord.AddRound1(r1); err != nil {
			return nil, nil, err
		}
		holders[i] = h
	}
	pk, sum1, err := coord.Round1Result()
	if err != nil {
		return nil, nil, err
	}
	for _, h := range holders {
		r2, err := h.Round2(sum1)
		if err != nil {
			return nil, nil, err
		}
		if err := coord.AddRound2(r2); err != nil {
			return nil, nil, err
		}
		if err := h.Finish(pk); err != nil {
			return nil, nil, err
		}
	}
	ek, err := coord.Finish()
	if err != nil {
		return nil, nil, err
	}
	return holders, ek, nil
}
