package he

import (
	"crypto/rand"
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// CRSSeedLen is the length of a common reference string seed.
const CRSSeedLen = 32

// NewCRSSeed returns a fresh random CRS seed. Any party (in Veil: the
// coordinator) may draw it; it is public and only has to be the same at every
// party of a job. CKG is secure for any seed not chosen adversarially after
// the shares, so the seed is fixed before shares are generated.
func NewCRSSeed() ([]byte, error) {
	seed := make([]byte, CRSSeedLen)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("he: draw CRS seed: %w", err)
	}
	return seed, nil
}

func (p *Params) ckgCRP(seed []byte) (mhe.PublicKeyGenCRP, error) {
	if len(seed) != CRSSeedLen {
		return mhe.PublicKeyGenCRP{}, fmt.Errorf("he: CRS seed must be %d bytes, got %d", CRSSeedLen, len(seed))
	}
	crs, err := sampling.NewKeyedPRNG(append([]byte("veil/he ckg\x00"), seed...))
	if err != nil {
		return mhe.PublicKeyGenCRP{}, fmt.Errorf("he: CRS PRNG: %w", err)
	}
	return mhe.NewPublicKeyGenProtocol(p.Parameters).SampleCRP(crs), nil
}

// PublicKey is a (collective or individual) public key of a parameter set.
type PublicKey struct {
	params *Params
	pk     *rlwe.PublicKey
}

// Params returns the key's parameter set.
func (k *PublicKey) Params() *Params { return k.params }

// Raw returns the lattigo key (for encryptors).
func (k *PublicKey) Raw() *rlwe.PublicKey { return k.pk }

// MarshalBinary serializes the key with the parameter fingerprint.
func (k *PublicKey) MarshalBinary() ([]byte, error) {
	return k.params.marshalQP(KindPublicKey, k.pk.Value[0], k.pk.Value[1]), nil
}

// UnmarshalPublicKey parses a public key made under p.
func (p *Params) UnmarshalPublicKey(data []byte) (*PublicKey, error) {
	polys, err := p.unmarshalQP(data, KindPublicKey, 2)
	if err != nil {
		return nil, fmt.Errorf("he: unmarshal public key: %w", err)
	}
	pk := rlwe.NewPublicKey(p.Parameters)
	pk.Value[0], pk.Value[1] = polys[0], polys[1]
	return &PublicKey{params: p, pk: pk}, nil
}

// KeyParty is one holder of a share of an N-of-N collective secret key: a
// provider, the label holder or the platform. Its secret share never leaves
// it except in its own local checkpoint (MarshalSecret). Everything it sends
// (CKG shares, decryption shares) is safe to relay through the platform.
type KeyParty struct {
	params *Params
	sk     *rlwe.SecretKey
}

// NewKeyParty draws a fresh ternary secret key share.
func NewKeyParty(p *Params) *KeyParty {
	return &KeyParty{params: p, sk: rlwe.NewKeyGenerator(p.Parameters).GenSecretKeyNew()}
}

// Params returns the party's parameter set.
func (kp *KeyParty) Params() *Params { return kp.params }

// GenCKGShare returns this party's share of the collective public key for the
// CRS seed: crp·s_i + e_i.
func (kp *KeyParty) GenCKGShare(crsSeed []byte) ([]byte, error) {
	crp, err := kp.params.ckgCRP(crsSeed)
	if err != nil {
		return nil, err
	}
	ckg := mhe.NewPublicKeyGenProtocol(kp.params.Parameters)
	sh := ckg.AllocateShare()
	ckg.GenShare(kp.sk, crp, &sh)
	return kp.params.marshalQP(KindCKGShare, sh.Value), nil
}

// MarshalSecret serializes the party's secret key share for its own local
// checkpoint. The bytes must never be sent to anyone.
func (kp *KeyParty) MarshalSecret() ([]byte, error) {
	return kp.params.marshalQP(KindSecretKey, kp.sk.Value), nil
}

// UnmarshalKeyParty restores a KeyParty from MarshalSecret's output.
func (p *Params) UnmarshalKeyParty(data []byte) (*KeyParty, error) {
	polys, err := p.unmarshalQP(data, KindSecretKey, 1)
	if err != nil {
		return nil, fmt.Errorf("he: unmarshal secret key: %w", err)
	}
	sk := rlwe.NewSecretKey(p.Parameters)
	sk.Value = polys[0]
	return &KeyParty{params: p, sk: sk}, nil
}

// CKGAggregator sums CKG shares (any party may run it; in Veil the platform
// does) and outputs the collective public key once every party contributed.
type CKGAggregator struct {
	params  *Params
	crp     mhe.PublicKeyGenCRP
	ckg     mhe.PublicKeyGenProtocol
	agg     mhe.PublicKeyGenShare
	parties int
	got     int
}

// NewCKGAggregator expects exactly parties shares for the CRS seed.
func NewCKGAggregator(p *Params, crsSeed []byte, parties int) (*CKGAggregator, error) {
	if parties < 2 {
		return nil, fmt.Errorf("he: collective key needs at least 2 parties, got %d", parties)
	}
	crp, err := p.ckgCRP(crsSeed)
	if err != nil {
		return nil, err
	}
	ckg := mhe.NewPublicKeyGenProtocol(p.Parameters)
	return &CKGAggregator{params: p, crp: crp, ckg: ckg, agg: ckg.AllocateShare(), parties: parties}, nil
}

// Add adds one party's share. It rejects malformed shares, shares of other
// parameter sets and shares beyond the expected count.
func (a *CKGAggregator) Add(share []byte) error {
	if a.got >= a.parties {
		return fmt.Errorf("he: CKG: already have all %d shares", a.parties)
	}
	polys, err := a.params.unmarshalQP(share, KindCKGShare, 1)
	if err != nil {
		return fmt.Errorf("he: CKG share: %w", err)
	}
	a.ckg.AggregateShares(a.agg, mhe.PublicKeyGenShare{Value: polys[0]}, &a.agg)
	a.got++
	return nil
}

// PublicKey returns the collective public key; it fails until all shares are in.
func (a *CKGAggregator) PublicKey() (*PublicKey, error) {
	if a.got != a.parties {
		return nil, fmt.Errorf("he: CKG: have %d of %d shares", a.got, a.parties)
	}
	pk := rlwe.NewPublicKey(a.params.Parameters)
	var v ringqp.Poly = a.agg.Value
	a.ckg.GenPublicKey(mhe.PublicKeyGenShare{Value: v}, a.crp, pk)
	return &PublicKey{params: a.params, pk: pk}, nil
}

// RecipientKey is an ordinary (single-holder) key pair, e.g. a bank's: it
// receives results by PCKS and decrypts them alone.
type RecipientKey struct {
	params *Params
	sk     *rlwe.SecretKey
	pub    *PublicKey
}

// NewRecipientKey generates a key pair for parameter set p.
func NewRecipientKey(p *Params) *RecipientKey {
	sk, pk := rlwe.NewKeyGenerator(p.Parameters).GenKeyPairNew()
	return &RecipientKey{params: p, sk: sk, pub: &PublicKey{params: p, pk: pk}}
}

// PublicKey returns the public half.
func (r *RecipientKey) PublicKey() *PublicKey { return r.pub }

// MarshalSecret serializes the secret key (for the holder's own storage).
func (r *RecipientKey) MarshalSecret() ([]byte, error) {
	return r.params.marshalQP(KindSecretKey, r.sk.Value), nil
}

// UnmarshalRecipientKey restores a recipient key pair from its secret key
// and public key bytes.
func (p *Params) UnmarshalRecipientKey(secret, public []byte) (*RecipientKey, error) {
	polys, err := p.unmarshalQP(secret, KindSecretKey, 1)
	if err != nil {
		return nil, fmt.Errorf("he: unmarshal recipient secret key: %w", err)
	}
	pub, err := p.UnmarshalPublicKey(public)
	if err != nil {
		return nil, err
	}
	sk := rlwe.NewSecretKey(p.Parameters)
	sk.Value = polys[0]
	return &RecipientKey{params: p, sk: sk, pub: pub}, nil
}

// DecryptSlots decrypts a slot-encoded ciphertext switched to this key.
func (r *RecipientKey) DecryptSlots(ct *rlwe.Ciphertext) ([]float64, error) {
	if err := r.params.checkCiphertext(ct); err != nil {
		return nil, err
	}
	pt := rlwe.NewDecryptor(r.params.Parameters, r.sk).DecryptNew(ct)
	return r.params.decodeSlots(pt)
}
