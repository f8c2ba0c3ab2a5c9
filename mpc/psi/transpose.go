package psi

import "encoding/binary"

// Bit matrices in the OT extension are stored either by column (column i
// is colBytes consecutive bytes, bit j of it is bit j%8 of byte j/8) or by
// row (row j is 64 bytes, bit i likewise). These helpers convert between
// the two, 64x64 bits at a time.

// transpose64 transposes a 64x64 bit matrix in place: afterwards bit k of
// a[l] is what bit l of a[k] was (Hacker's Delight, LSB-first variant).
func transpose64(a *[64]uint64) {
	m := uint64(0x00000000FFFFFFFF)
	for j := 32; j != 0; {
		for k := 0; k < 64; k = (k + j + 1) &^ j {
			t := ((a[k] >> uint(j)) ^ a[k+j]) & m
			a[k] ^= t << uint(j)
			a[k+j] ^= t
		}
		j >>= 1
		m ^= m << uint(j)
	}
}

// colsToRows turns kkrtWidth columns of colBytes each into colBytes*8 rows
// of kkrtWidthBytes each.
func colsToRows(cols, rows []byte, colBytes int) {
	var w [64]uint64
	for ib := 0; ib < kkrtWidth/64; ib++ {
		for jb := 0; jb < colBytes/8; jb++ {
			for k := range 64 {
				w[k] = binary.LittleEndian.Uint64(cols[(ib*64+k)*colBytes+jb*8:])
			}
			transpose64(&w)
			for l := range 64 {
				binary.LittleEndian.PutUint64(rows[(jb*64+l)*kkrtWidthBytes+ib*8:], w[l])
			}
		}
	}
}

// rowsToCols is the inverse of colsToRows.
func rowsToCols(rows, cols []byte, colBytes int) {
	var w [64]uint64
	for ib := 0; ib < kkrtWidth/64; ib++ {
		for jb := 0; jb < colBytes/8; jb++ {
			for l := range 64 {
				w[l] = binary.LittleEndian.Uint64(rows[(jb*64+l)*kkrtWidthBytes+ib*8:])
			}
			transpose64(&w)
			for k := range 64 {
				binary.LittleEndian.PutUint64(cols[(ib*64+k)*colBytes+jb*8:], w[k])
			}
		}
	}
}
