package psi

import (
	"crypto/sha512"
	"hash"
	"math/big"

	r255p "github.com/bwesterb/go-ristretto"
	fe25519 "github.com/bwesterb/go-ristretto/edwards25519"
)

// The hot loop of ECDH-PSI works on the ristretto255 implementation that
// circl's group.Ristretto255 wraps (github.com/bwesterb/go-ristretto), for
// two reasons: hash-to-group can reuse one SHA-512 state per worker, and
// encodings can be batched. Encoding a point costs an inverse square root
// (about 3.3 µs here, 8 % of a scalar multiplication); encoding 2P instead
// of P needs only an inversion, and a chunk of inversions costs one
// inversion plus three multiplications each (Montgomery's trick). This is
// curve25519-dalek's double_and_compress_batch. Every party therefore
// sends and compares enc(2·k·P) rather than enc(k·P): doubling is a
// bijection of the prime-order group, so this is ECDH-PSI with the secret
// scalars 2a and 2b, and the tests check the encoding against circl's.

// h2c hashes to ristretto255 exactly like circl's
// group.Ristretto255.HashToElement (RFC 9380 ristretto255_XMD:SHA-512_R255MAP_RO_).
type h2c struct {
	h        hash.Hash
	dstPrime []byte
	buf      []byte
}

func newH2C(dst []byte) *h2c {
	dp := append(append([]byte{}, dst...), byte(len(dst)))
	return &h2c{h: sha512.New(), dstPrime: dp}
}

var zPad [128]byte // the all-zero block of expand_message_xmd (read-only)

// hashToPoint sets p to H(msg).
func (c *h2c) hashToPoint(msg []byte, p *r255p.Point) {
	// expand_message_xmd(msg, DST, 64) with SHA-512: ell = 1, so the output
	// is b_1 = H(b_0 || 0x01 || DST'), b_0 = H(Z_pad || msg || 0x0040 || 0x00 || DST').
	c.h.Reset()
	c.h.Write(zPad[:])
	c.h.Write(msg)
	c.h.Write([]byte{0, 64, 0})
	c.h.Write(c.dstPrime)
	c.buf = c.h.Sum(c.buf[:0])
	c.h.Reset()
	c.h.Write(c.buf)
	c.h.Write([]byte{1})
	c.h.Write(c.dstPrime)
	c.buf = c.h.Sum(c.buf[:0])
	var u0, u1 [32]byte
	copy(u0[:], c.buf[:32])
	copy(u1[:], c.buf[32:64])
	var p1 r255p.Point
	p.SetElligator(&u0)
	p1.SetElligator(&u1)
	p.Add(p, &p1)
}

// curveConsts are the field constants of the batched encoding.
type curveConsts struct {
	d, sqrtM1, invSqrtAMinusD fe25519.FieldElement
}

// curve holds the constants once; they are only read, by every worker.
var curve = newCurveConsts()

func newCurveConsts() *curveConsts {
	c := new(curveConsts)
	set := func(fe *fe25519.FieldElement, dec string) {
		v, _ := new(big.Int).SetString(dec, 10)
		fe.SetBigInt(v)
	}
	set(&c.d, "37095705934669439343138083508754565189542113879843219016388785533085940283555")
	c.sqrtM1.SetI()
	set(&c.invSqrtAMinusD, "54469307008909316920995813868745141605393597292927456921205312896311721017578")
	return c
}

// encState is the per-point state of doubleEncodeBatch.
type encState struct{ e, f, g, h, eg, fh, inv fe25519.FieldElement }

// doubleEncodeBatch writes enc(2·pts[i]) to out[32i:32i+32]. st is
// scratch of at least len(pts) entries. No point may be the identity (the
// callers reject it); if a zero denominator shows up anyway, that point is
// encoded the slow way.
func (c *curveConsts) doubleEncodeBatch(pts []r255p.Point, st []encState, out []byte) {
	n := len(pts)
	st = st[:n]
	var xx, yy, zz, dtt, acc, t fe25519.FieldElement
	acc.SetOne()
	for i := range pts {
		p := (*fe25519.ExtendedPoint)(&pts[i])
		s := &st[i]
		xx.Square(&p.X)
		yy.Square(&p.Y)
		zz.Square(&p.Z)
		dtt.Square(&p.T)
		dtt.Mul(&dtt, &c.d)
		t.Add(&p.Y, &p.Y)
		s.e.Mul(&p.X, &t)
		s.f.Add(&zz, &dtt)
		s.g.Add(&yy, &xx)
		s.h.Sub(&zz, &dtt)
		s.eg.Mul(&s.e, &s.g)
		s.fh.Mul(&s.f, &s.h)
		// s.inv holds the prefix product before this point (Montgomery's trick).
		s.inv = acc
		t.Mul(&s.eg, &s.fh)
		if t.IsNonZeroI() == 1 {
			acc.Mul(&acc, &t)
		}
	}
	acc.Inverse(&acc)
	for i := n - 1; i >= 0; i-- {
		s := &st[i]
		t.Mul(&s.eg, &s.fh)
		if t.IsNonZeroI() == 0 {
			var q r255p.Point
			var buf [32]byte
			q.Double(&pts[i])
			q.BytesInto(&buf)
			copy(out[i*pointLen:], buf[:])
			s.inv.SetZero()
			continue
		}
		s.inv.Mul(&s.inv, &acc) // 1/(efgh_i)
		acc.Mul(&acc, &t)
	}
	var zInv, tInv, magic, e, g, h, minusE, fSqrtA, chk, sv fe25519.FieldElement
	var buf [32]byte
	for i := range n {
		s := &st[i]
		if s.inv.IsNonZeroI() == 0 {
			continue // encoded above
		}
		zInv.Mul(&s.eg, &s.inv)
		tInv.Mul(&s.fh, &s.inv)
		magic = c.invSqrtAMinusD
		chk.Mul(&s.eg, &zInv)
		neg1 := chk.IsNegativeI()
		e, g, h = s.e, s.g, s.h
		minusE.Neg(&e)
		fSqrtA.Mul(&s.f, &c.sqrtM1)
		e.ConditionalSet(&s.g, neg1)
		g.ConditionalSet(&minusE, neg1)
		h.ConditionalSet(&fSqrtA, neg1)
		magic.ConditionalSet(&c.sqrtM1, neg1)
		chk.Mul(&h, &e)
		chk.Mul(&chk, &zInv)
		neg2 := chk.IsNegativeI()
		t.Neg(&g)
		g.ConditionalSet(&t, neg2)
		sv.Sub(&h, &g)
		t.Mul(&g, &tInv)
		t.Mul(&magic, &t)
		sv.Mul(&sv, &t)
		t.Neg(&sv)
		sv.ConditionalSet(&t, sv.IsNegativeI())
		sv.BytesInto(&buf)
		copy(out[i*pointLen:], buf[:])
	}
}
