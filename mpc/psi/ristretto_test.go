package psi

import (
	"bytes"
	"fmt"
	"testing"

	r255p "github.com/bwesterb/go-ristretto"
)

// TestHashToPointMatchesCircl: our RFC 9380 hash equals circl's.
func TestHashToPointMatchesCircl(t *testing.T) {
	for _, dst := range [][]byte{sessionDST("s"), listDST("dishonest"), []byte("x")} {
		c := newH2C(dst)
		for i := range 50 {
			msg := []byte(fmt.Sprintf("91%016d", i))
			if i == 0 {
				msg = nil
			}
			var p r255p.Point
			c.hashToPoint(msg, &p)
			want, _ := r255.HashToElement(msg, dst).MarshalBinaryCompress()
			if got := p.Bytes(); !bytes.Equal(got, want) {
				t.Fatalf("H(%q) = %x, circl says %x", msg, got, want)
			}
		}
	}
}

// TestDoubleEncodeBatch: the batched encoding of 2P equals the plain
// encoding of P+P, for batches of several sizes.
func TestDoubleEncodeBatch(t *testing.T) {
	cc := newCurveConsts()
	c := newH2C([]byte("t"))
	for _, n := range []int{1, 2, 7, 64} {
		pts := make([]r255p.Point, n)
		for i := range pts {
			c.hashToPoint([]byte{byte(i), byte(n)}, &pts[i])
		}
		// also a point reached by a scalar multiplication and a decoded one
		var s r255p.Scalar
		s.Rand()
		pts[0].ScalarMult(&pts[0], &s)
		var buf [32]byte
		pts[n-1].BytesInto(&buf)
		pts[n-1].SetBytes(&buf)
		out := make([]byte, n*pointLen)
		cc.doubleEncodeBatch(pts, make([]encState, n), out)
		for i := range pts {
			var d r255p.Point
			d.Double(&pts[i])
			if want := d.Bytes(); !bytes.Equal(out[i*pointLen:(i+1)*pointLen], want) {
				t.Fatalf("n=%d i=%d: batch %x, plain %x", n, i, out[i*pointLen:(i+1)*pointLen], want)
			}
		}
	}
}
