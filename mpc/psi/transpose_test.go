package psi

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func bitAt(b []byte, i int) byte { return (b[i/8] >> (i % 8)) & 1 }

func TestTranspose(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var a, orig [64]uint64
	for i := range a {
		a[i] = r.Uint64()
	}
	orig = a
	transpose64(&a)
	for k := range 64 {
		for l := range 64 {
			if (a[l]>>k)&1 != (orig[k]>>l)&1 {
				t.Fatalf("bit (%d,%d) wrong", k, l)
			}
		}
	}
	colBytes := 16 // 128 rows
	cols := make([]byte, kkrtWidth*colBytes)
	for i := range cols {
		cols[i] = byte(r.Uint32())
	}
	rows := make([]byte, colBytes*8*kkrtWidthBytes)
	colsToRows(cols, rows, colBytes)
	for j := 0; j < colBytes*8; j++ {
		for i := 0; i < kkrtWidth; i++ {
			if bitAt(rows[j*kkrtWidthBytes:], i) != bitAt(cols[i*colBytes:], j) {
				t.Fatalf("row %d col %d wrong", j, i)
			}
		}
	}
	back := make([]byte, len(cols))
	rowsToCols(rows, back, colBytes)
	if !bytes.Equal(back, cols) {
		t.Fatal("rowsToCols(colsToRows(x)) != x")
	}
}
