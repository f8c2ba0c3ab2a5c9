package he

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"
)

// Wire format of every serialized object:
//
//	"VHE1" | kind (1 byte) | parameter fingerprint (8 bytes) | body
//
// Bodies are fixed-layout: small headers, then polynomials as little-endian
// uint64 coefficients, row by row (one row per RNS prime). The decoder knows
// the exact body size from the header and the parameters, checks it before
// reading, and checks that every coefficient is reduced modulo its prime, so
// malformed input is rejected with an error and never reaches lattigo.

var magic = [4]byte{'V', 'H', 'E', '1'}

// Kind tags a serialized object.
type Kind byte

// Object kinds.
const (
	KindCiphertext Kind = 1
	KindPublicKey  Kind = 2
	KindCKGShare   Kind = 3
	KindCKSShare   Kind = 4
	KindPCKSShare  Kind = 5
	KindSecretKey  Kind = 6
)

func (k Kind) String() string {
	switch k {
	case KindCiphertext:
		return "ciphertext"
	case KindPublicKey:
		return "public key"
	case KindCKGShare:
		return "CKG share"
	case KindCKSShare:
		return "decryption (CKS) share"
	case KindPCKSShare:
		return "PCKS share"
	case KindSecretKey:
		return "secret key"
	case KindRKGRound1:
		return "RKG round-1 share"
	case KindRKGRound2:
		return "RKG round-2 share"
	case KindRelinKey:
		return "relinearisation key"
	default:
		return fmt.Sprintf("kind(%d)", byte(k))
	}
}

const headerLen = 4 + 1 + 8

// ErrParamsMismatch is wrapped by every error about an object made under
// another parameter set.
var ErrParamsMismatch = errors.New("parameter set mismatch")

// ErrMalformed is wrapped by every error about bytes that do not parse.
var ErrMalformed = errors.New("malformed object")

func (p *Params) header(k Kind, bodyLen int) []byte {
	b := make([]byte, headerLen, headerLen+bodyLen)
	copy(b, magic[:])
	b[4] = byte(k)
	copy(b[5:13], p.fp[:])
	return b
}

// openEnvelope checks magic, kind and fingerprint and returns the body.
func (p *Params) openEnvelope(data []byte, want Kind) ([]byte, error) {
	if len(data) < headerLen {
		return nil, fmt.Errorf("%w: %s: %d bytes is shorter than the %d-byte header", ErrMalformed, want, len(data), headerLen)
	}
	if [4]byte(data[:4]) != magic {
		return nil, fmt.Errorf("%w: %s: bad magic %q", ErrMalformed, want, data[:4])
	}
	if got := Kind(data[4]); got != want {
		return nil, fmt.Errorf("%w: expected a %s, got a %s", ErrMalformed, want, got)
	}
	if fp := Fingerprint(data[5:13]); fp != p.fp {
		return nil, fmt.Errorf("%w: %s was made under parameter set fingerprint %s, expected %s (%s)", ErrParamsMismatch, want, fp, p.fp, p.name)
	}
	return data[headerLen:], nil
}

// PeekFingerprint returns the kind and parameter fingerprint of a serialized
// object without parsing it.
func PeekFingerprint(data []byte) (Kind, Fingerprint, error) {
	if len(data) < headerLen || [4]byte(data[:4]) != magic {
		return 0, Fingerprint{}, fmt.Errorf("%w: not a veil/he object", ErrMalformed)
	}
	return Kind(data[4]), Fingerprint(data[5:13]), nil
}

func polyBytes(n, rows int) int { return rows * n * 8 }

// appendPoly writes p's rows; moduli[i] reduces row i, because lattigo's lazy
// operations may leave coefficients in [0, 2q).
func appendPoly(b []byte, p ring.Poly, moduli []uint64) []byte {
	for i, row := range p.Coeffs {
		q := moduli[i]
		for _, c := range row {
			if c >= q {
				c %= q
			}
			b = binary.LittleEndian.AppendUint64(b, c)
		}
	}
	return b
}

// readPoly reads len(moduli) rows of n coefficients into a new polynomial,
// checking that each coefficient is reduced.
func readPoly(data []byte, n int, moduli []uint64, what string) (ring.Poly, []byte, error) {
	need := polyBytes(n, len(moduli))
	if len(data) < need {
		return ring.Poly{}, nil, fmt.Errorf("%w: %s: %d bytes left, need %d", ErrMalformed, what, len(data), need)
	}
	poly := ring.NewPoly(n, len(moduli)-1)
	off := 0
	for i, q := range moduli {
		row := poly.Coeffs[i]
		for j := range row {
			c := binary.LittleEndian.Uint64(data[off:])
			if c >= q {
				return ring.Poly{}, nil, fmt.Errorf("%w: %s: coefficient %d of prime %d is not reduced (%d >= %d)", ErrMalformed, what, j, i, c, q)
			}
			row[j] = c
			off += 8
		}
	}
	return poly, data[need:], nil
}

func (p *Params) qModuli(level int) []uint64 { return p.Q()[:level+1] }

// MarshalCiphertext serializes a degree-1 ciphertext of this parameter set.
func (p *Params) MarshalCiphertext(ct *rlwe.Ciphertext) ([]byte, error) {
	if ct == nil || ct.MetaData == nil {
		return nil, fmt.Errorf("he: marshal ciphertext: nil ciphertext")
	}
	if ct.Degree() != 1 {
		return nil, fmt.Errorf("he: marshal ciphertext: degree %d, only degree 1 is sent", ct.Degree())
	}
	lvl := ct.Level()
	if lvl > p.MaxLevel() || ct.Value[0].N() != p.N() {
		return nil, fmt.Errorf("he: marshal ciphertext: level %d / N %d does not fit %s", lvl, ct.Value[0].N(), p.name)
	}
	body := 4 + 8 + 2*polyBytes(p.N(), lvl+1)
	b := p.header(KindCiphertext, body)
	var flags byte
	if ct.IsNTT {
		flags |= 1
	}
	if ct.IsMontgomery {
		flags |= 2
	}
	if ct.IsBatched {
		flags |= 4
	}
	b = append(b, byte(ct.Degree()), byte(lvl), flags, 0)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(ct.Scale.Float64()))
	b = appendPoly(b, ct.Value[0], p.Q())
	b = appendPoly(b, ct.Value[1], p.Q())
	return b, nil
}

// UnmarshalCiphertext parses a ciphertext made under this parameter set.
// wantLevel ≥ 0 requires that exact level; wantLevel < 0 accepts any level.
func (p *Params) UnmarshalCiphertext(data []byte, wantLevel int) (*rlwe.Ciphertext, error) {
	body, err := p.openEnvelope(data, KindCiphertext)
	if err != nil {
		return nil, fmt.Errorf("he: unmarshal ciphertext: %w", err)
	}
	if len(body) < 12 {
		return nil, fmt.Errorf("he: unmarshal ciphertext: %w: header truncated", ErrMalformed)
	}
	deg, lvl, flags := int(body[0]), int(body[1]), body[2]
	if deg != 1 {
		return nil, fmt.Errorf("he: unmarshal ciphertext: %w: degree %d (want 1)", ErrMalformed, deg)
	}
	if lvl > p.MaxLevel() {
		return nil, fmt.Errorf("he: unmarshal ciphertext: %w: level %d above the maximum %d of %s", ErrParamsMismatch, lvl, p.MaxLevel(), p.name)
	}
	if wantLevel >= 0 && lvl != wantLevel {
		return nil, fmt.Errorf("he: unmarshal ciphertext: unexpected level %d (want %d)", lvl, wantLevel)
	}
	if flags&^7 != 0 || flags&1 == 0 || flags&2 != 0 || body[3] != 0 {
		return nil, fmt.Errorf("he: unmarshal ciphertext: %w: flags %#x (must be NTT, not Montgomery)", ErrMalformed, flags)
	}
	scale := math.Float64frombits(binary.LittleEndian.Uint64(body[4:12]))
	if math.IsNaN(scale) || scale < 1 || scale > math.Ldexp(1, 400) {
		return nil, fmt.Errorf("he: unmarshal ciphertext: %w: scale %g out of range", ErrMalformed, scale)
	}
	rest := body[12:]
	if want := 2 * polyBytes(p.N(), lvl+1); len(rest) != want {
		return nil, fmt.Errorf("he: unmarshal ciphertext: %w: body has %d coefficient bytes, want %d for N=%d at level %d", ErrMalformed, len(rest), want, p.N(), lvl)
	}
	ct := rlwe.NewCiphertext(p.Parameters, 1, lvl)
	for i := 0; i < 2; i++ {
		var poly ring.Poly
		poly, rest, err = readPoly(rest, p.N(), p.qModuli(lvl), fmt.Sprintf("ciphertext polynomial %d", i))
		if err != nil {
			return nil, fmt.Errorf("he: unmarshal ciphertext: %w", err)
		}
		ct.Value[i] = poly
	}
	ct.IsNTT = true
	ct.IsMontgomery = false
	ct.IsBatched = flags&4 != 0
	ct.Scale = rlwe.NewScale(scale)
	ct.LogDimensions = p.LogMaxDimensions()
	return ct, nil
}

func (p *Params) qpSizes() (nq, np int) {
	return p.MaxLevelQ() + 1, p.MaxLevelP() + 1
}

func (p *Params) appendQP(b []byte, v ringqp.Poly) []byte {
	b = appendPoly(b, v.Q, p.Q())
	if p.PCount() > 0 {
		b = appendPoly(b, v.P, p.P())
	}
	return b
}

func (p *Params) readQP(data []byte, what string) (ringqp.Poly, []byte, error) {
	var out ringqp.Poly
	var err error
	out.Q, data, err = readPoly(data, p.N(), p.Q(), what+" (Q)")
	if err != nil {
		return out, nil, err
	}
	if p.PCount() > 0 {
		out.P, data, err = readPoly(data, p.N(), p.P(), what+" (P)")
		if err != nil {
			return out, nil, err
		}
	}
	return out, data, nil
}

func (p *Params) qpBytes() int {
	nq, np := p.qpSizes()
	if p.PCount() == 0 {
		np = 0
	}
	return polyBytes(p.N(), nq+np)
}

func (p *Params) marshalQP(k Kind, polys ...ringqp.Poly) []byte {
	b := p.header(k, len(polys)*p.qpBytes())
	for _, v := range polys {
		b = p.appendQP(b, v)
	}
	return b
}

func (p *Params) unmarshalQP(data []byte, k Kind, count int) ([]ringqp.Poly, error) {
	body, err := p.openEnvelope(data, k)
	if err != nil {
		return nil, err
	}
	if want := count * p.qpBytes(); len(body) != want {
		return nil, fmt.Errorf("%w: %s body is %d bytes, want %d for %s", ErrMalformed, k, len(body), want, p.name)
	}
	out := make([]ringqp.Poly, count)
	for i := range out {
		out[i], body, err = p.readQP(body, fmt.Sprintf("%s polynomial %d", k, i))
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// levelled shares (CKS, PCKS): level byte | count byte | count polys at that level.
func (p *Params) marshalLevelled(k Kind, polys ...ring.Poly) []byte {
	lvl := polys[0].Level()
	b := p.header(k, 2+len(polys)*polyBytes(p.N(), lvl+1))
	b = append(b, byte(lvl), byte(len(polys)))
	for _, v := range polys {
		b = appendPoly(b, v, p.Q())
	}
	return b
}

func (p *Params) unmarshalLevelled(data []byte, k Kind, count, wantLevel int) ([]ring.Poly, error) {
	body, err := p.openEnvelope(data, k)
	if err != nil {
		return nil, err
	}
	if len(body) < 2 {
		return nil, fmt.Errorf("%w: %s header truncated", ErrMalformed, k)
	}
	lvl, n := int(body[0]), int(body[1])
	if n != count {
		return nil, fmt.Errorf("%w: %s has %d polynomials, want %d", ErrMalformed, k, n, count)
	}
	if lvl > p.MaxLevel() {
		return nil, fmt.Errorf("%w: %s level %d above the maximum %d of %s", ErrParamsMismatch, k, lvl, p.MaxLevel(), p.name)
	}
	if wantLevel >= 0 && lvl != wantLevel {
		return nil, fmt.Errorf("%s: unexpected level %d (want %d, the level of the ciphertext)", k, lvl, wantLevel)
	}
	body = body[2:]
	if want := count * polyBytes(p.N(), lvl+1); len(body) != want {
		return nil, fmt.Errorf("%w: %s body is %d bytes, want %d for N=%d at level %d", ErrMalformed, k, len(body), want, p.N(), lvl)
	}
	out := make([]ring.Poly, count)
	for i := range out {
		out[i], body, err = readPoly(body, p.N(), p.qModuli(lvl), fmt.Sprintf("%s polynomial %d", k, i))
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
