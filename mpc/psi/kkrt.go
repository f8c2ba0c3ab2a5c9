package psi

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/cloudflare/circl/ot/simot"
)

// KKRT16 batched-OPRF PSI (Kolesnikov, Kumaresan, Rosulek, Trieu, CCS
// 2016), semi-honest. The leader is the OPRF receiver and learns the
// intersection; the follower is the OPRF sender.
//
//  1. The leader cuckoo-hashes its items into m bins with 3 hash functions
//     (one item per bin) and sends the hash seed.
//  2. 512 base OTs (circl ot/simot), leader as OT sender of random seed
//     pairs (k0_i, k1_i), follower as OT receiver with random choice bits s.
//  3. OT extension: for bin j the leader's row is r_j = C(x_j), a 512-bit
//     pseudorandom code of the item placed there. It sends the columns
//     u_i = PRG(k0_i) ^ PRG(k1_i) ^ r^i; the follower obtains
//     q_j = t_j ^ (r_j & s), where t_j are the rows of PRG(k0_i).
//  4. The follower sends, for every item y and hash function h, the tag
//     H(q_{h(y)} ^ (C(y) & s), h) in a shuffled order; the leader's tag for
//     x in bin j, placed with hash function h, is H(t_j, h). Equal tags mean
//     equal items.
const (
	kkrtWidth      = 512 // code length in bits = number of base OTs
	kkrtWidthBytes = kkrtWidth / 8
	kkrtHashes     = 3
	kkrtTagLen     = 16
	kkrtBlockRows  = 8192 // bins per OT-extension message (512 KiB)
	kkrtSeedLen    = 16
	otCipherLen    = 12 + kkrtSeedLen + 16 // simot AES-GCM: nonce, seed, tag
	kkrtMaxTries   = 32                    // cuckoo hashing attempts
	kkrtMaxKicks   = 1000
)

// kkrtBins is the number of cuckoo bins for n items: 1.3 n, rounded up to
// a multiple of 64 (the transposition tile).
func kkrtBins(n int) int {
	m := n + n*3/10 + 64
	return (m + 63) &^ 63
}

// kkrtItem is what both sides derive from an ID: the code input v and a
// 64-bit value from which the bins are derived.
type kkrtItem struct {
	v [16]byte
	h uint64
}

func kkrtItems(ctx context.Context, ids []string, order []uint32, session string, workers int) ([]kkrtItem, error) {
	out := make([]kkrtItem, len(ids))
	salt := []byte("VEIL-KKRT-V1\x00" + session + "\x00")
	err := parallelFor(ctx, len(ids), workers, func(lo, hi int) error {
		buf := make([]byte, 0, len(salt)+64)
		for k := lo; k < hi; k++ {
			id := ids[k]
			if order != nil {
				id = ids[order[k]]
			}
			buf = append(append(buf[:0], salt...), id...)
			d := sha256.Sum256(buf)
			copy(out[k].v[:], d[:16])
			out[k].h = binary.LittleEndian.Uint64(d[16:])
		}
		return nil
	})
	return out, err
}

// binOf is hash function i of the cuckoo table.
func binOf(h uint64, seed *[kkrtHashes]uint64, i int, m int) int {
	x := h ^ seed[i]
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	hi, _ := bits.Mul64(x, uint64(m))
	return int(hi)
}

// cuckoo places every item in one of its 3 bins; bin[j] is the item index
// or -1, fn[j] the hash function used. It reports false if it gives up.
func cuckoo(items []kkrtItem, m int, seed *[kkrtHashes]uint64) (bin []int32, fn []uint8, ok bool) {
	bin = make([]int32, m)
	fn = make([]uint8, m)
	for i := range bin {
		bin[i] = -1
	}
	rng := seed[0] | 1
	for idx := range items {
		cur, k := int32(idx), 0
		placed := false
		for range kkrtMaxKicks {
			b := binOf(items[cur].h, seed, k, m)
			if bin[b] < 0 {
				bin[b], fn[b] = cur, uint8(k)
				placed = true
				break
			}
			ev, evk := bin[b], int(fn[b])
			bin[b], fn[b] = cur, uint8(k)
			rng ^= rng << 13
			rng ^= rng >> 7
			rng ^= rng << 17
			cur, k = ev, (evk+1+int(rng&1))%kkrtHashes
		}
		if !placed {
			return nil, nil, false
		}
	}
	return bin, fn, true
}

// kkrtCode computes the 512-bit pseudorandom code C(v) with AES under the
// jointly chosen code key.
func kkrtCode(code cipher.Block, v *[16]byte, out []byte) {
	var in [16]byte
	for b := range kkrtWidthBytes / 16 {
		in = *v
		in[15] ^= byte(b)
		code.Encrypt(out[b*16:b*16+16], in[:])
	}
}

// kkrtTag is the output hash H(row, h), truncated to 128 bits.
func kkrtTag(row []byte, fn int, out []byte) {
	var buf [1 + kkrtWidthBytes]byte
	buf[0] = byte(fn)
	copy(buf[1:], row)
	d := sha256.Sum256(buf[:])
	copy(out, d[:kkrtTagLen])
}

// prgXOR xors the PRG stream of key, starting at byte offset off (a
// multiple of 16), into dst.
func prgXOR(key cipher.Block, off int, dst []byte) {
	var iv [16]byte
	binary.BigEndian.PutUint64(iv[8:], uint64(off/16))
	cipher.NewCTR(key, iv[:]).XORKeyStream(dst, dst)
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		return nil, fmt.Errorf("psi: random bytes: %w", err)
	}
	return b, nil
}

func codeKey(seedR, seedS []byte) (cipher.Block, error) {
	h := sha256.New()
	h.Write([]byte("VEIL-KKRT-V1-code"))
	h.Write(seedR)
	h.Write(seedS)
	return aes.NewCipher(h.Sum(nil)[:16])
}

// parallelFor runs f over [0, n) split into contiguous ranges.
func parallelFor(ctx context.Context, n, workers int, f func(lo, hi int) error) error {
	if n == 0 {
		return nil
	}
	per := max((n+workers*4-1)/(workers*4), 1)
	g := newGroup(ctx)
	sem := make(chan struct{}, workers)
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		g.Go(func(ctx context.Context) error {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			defer func() { <-sem }()
			return f(lo, hi)
		})
	}
	return g.Wait()
}

// base-OT message layouts
const (
	otParamsLen = 4 + 8*kkrtHashes + kkrtSeedLen
	otALen      = otParamsLen + kkrtWidth*pointLen
	otBLen      = kkrtSeedLen + kkrtWidth*pointLen
	otELen      = kkrtWidth * 2 * otCipherLen
)

// kkrtLead runs the leader (OPRF receiver) side.
func kkrtLead(ctx context.Context, l *link, ids []string, cfg Config) (*pairMatch, error) {
	peer, err := l.exchangeHello(ctx, hello{Protocol: ProtocolKKRT, Role: roleLeader, Size: uint64(len(ids)), Chunk: uint32(cfg.ChunkSize)}, roleFollower)
	if err != nil {
		return nil, err
	}
	items, err := kkrtItems(ctx, ids, nil, cfg.Session, cfg.Workers)
	if err != nil {
		return nil, err
	}
	m := kkrtBins(len(ids))
	var seed [kkrtHashes]uint64
	var bin []int32
	var fn []uint8
	for try := 0; ; try++ {
		if try == kkrtMaxTries {
			return nil, fmt.Errorf("kkrt: cuckoo hashing failed %d times", kkrtMaxTries)
		}
		sb, err := randomBytes(8 * kkrtHashes)
		if err != nil {
			return nil, err
		}
		for i := range seed {
			seed[i] = binary.LittleEndian.Uint64(sb[8*i:])
		}
		var ok bool
		if bin, fn, ok = cuckoo(items, m, &seed); ok {
			break
		}
	}

	// Base OTs: we send random seed pairs.
	seeds, err := randomBytes(2 * kkrtWidth * kkrtSeedLen)
	if err != nil {
		return nil, err
	}
	seedR, err := randomBytes(kkrtSeedLen)
	if err != nil {
		return nil, err
	}
	senders := make([]simot.Sender, kkrtWidth)
	msgA := make([]byte, otALen)
	binary.BigEndian.PutUint32(msgA, uint32(m))
	for i := range seed {
		binary.LittleEndian.PutUint64(msgA[4+8*i:], seed[i])
	}
	copy(msgA[4+8*kkrtHashes:], seedR)
	err = parallelFor(ctx, kkrtWidth, cfg.Workers, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			k0 := seeds[(2*i)*kkrtSeedLen : (2*i+1)*kkrtSeedLen]
			k1 := seeds[(2*i+1)*kkrtSeedLen : (2*i+2)*kkrtSeedLen]
			a := senders[i].InitSender(r255, k0, k1, i)
			b, err := a.MarshalBinaryCompress()
			if err != nil {
				return fmt.Errorf("kkrt: base OT %d: %w", i, err)
			}
			copy(msgA[otParamsLen+i*pointLen:], b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := l.send(ctx, KindBaseOT, 0, true, msgA); err != nil {
		return nil, err
	}
	mb, err := l.recvKind(ctx, KindBaseOT, 0)
	if err != nil {
		return nil, fmt.Errorf("kkrt base OT: %w", err)
	}
	if len(mb.Payload) != otBLen {
		return nil, fmt.Errorf("%w: kkrt base OT reply of %d bytes, want %d", ErrMalformed, len(mb.Payload), otBLen)
	}
	code, err := codeKey(seedR, mb.Payload[:kkrtSeedLen])
	if err != nil {
		return nil, fmt.Errorf("kkrt: code key: %w", err)
	}
	msgE := make([]byte, otELen)
	err = parallelFor(ctx, kkrtWidth, cfg.Workers, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			B := r255.NewElement()
			if err := B.UnmarshalBinary(mb.Payload[kkrtSeedLen+i*pointLen : kkrtSeedLen+(i+1)*pointLen]); err != nil {
				return fmt.Errorf("%w: base OT %d: %v", ErrBadPoint, i, err)
			}
			e0, e1 := senders[i].Round2Sender(B)
			if len(e0) != otCipherLen || len(e1) != otCipherLen {
				return fmt.Errorf("kkrt: base OT %d: ciphertexts of %d/%d bytes", i, len(e0), len(e1))
			}
			copy(msgE[(2*i)*otCipherLen:], e0)
			copy(msgE[(2*i+1)*otCipherLen:], e1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := l.send(ctx, KindBaseOT, 1, true, msgE); err != nil {
		return nil, err
	}
	prg0 := make([]cipher.Block, kkrtWidth)
	prg1 := make([]cipher.Block, kkrtWidth)
	for i := range kkrtWidth {
		if prg0[i], err = aes.NewCipher(seeds[(2*i)*kkrtSeedLen : (2*i+1)*kkrtSeedLen]); err != nil {
			return nil, fmt.Errorf("kkrt: PRG key: %w", err)
		}
		if prg1[i], err = aes.NewCipher(seeds[(2*i+1)*kkrtSeedLen : (2*i+2)*kkrtSeedLen]); err != nil {
			return nil, fmt.Errorf("kkrt: PRG key: %w", err)
		}
	}

	// OT extension, one block of bins per message; our tags go to a table.
	table := make(map[[kkrtTagLen]byte]uint32, len(ids))
	type binTag struct {
		tag  [kkrtTagLen]byte
		item uint32
	}
	err = ordered(ctx, cfg.Workers, ownChunks(m, kkrtBlockRows),
		func(_ int, c *chunk) error {
			rows := c.hi - c.lo
			colBytes := rows / 8
			rrows := make([]byte, rows*kkrtWidthBytes)
			for j := c.lo; j < c.hi; j++ {
				if it := bin[j]; it >= 0 {
					kkrtCode(code, &items[it].v, rrows[(j-c.lo)*kkrtWidthBytes:])
				}
			}
			u := make([]byte, kkrtWidth*colBytes)
			rowsToCols(rrows, u, colBytes)
			t := make([]byte, kkrtWidth*colBytes)
			for i := range kkrtWidth {
				ti := t[i*colBytes : (i+1)*colBytes]
				ui := u[i*colBytes : (i+1)*colBytes]
				prgXOR(prg0[i], c.lo/8, ti)
				prgXOR(prg1[i], c.lo/8, ui)
				for k := range ui {
					ui[k] ^= ti[k]
				}
			}
			trows := rrows // reuse: the codes are in u now
			colsToRows(t, trows, colBytes)
			var tags []binTag
			for j := c.lo; j < c.hi; j++ {
				if it := bin[j]; it >= 0 {
					var bt binTag
					bt.item = uint32(it)
					kkrtTag(trows[(j-c.lo)*kkrtWidthBytes:(j-c.lo+1)*kkrtWidthBytes], int(fn[j]), bt.tag[:])
					tags = append(tags, bt)
				}
			}
			c.out, c.aux = u, tags
			return nil
		},
		func(c *chunk) error {
			tags, _ := c.aux.([]binTag)
			for _, bt := range tags {
				if _, dup := table[bt.tag]; dup {
					return errors.New("kkrt: tag collision among own items")
				}
				table[bt.tag] = bt.item
			}
			return l.send(ctx, KindColumns, c.seq, c.final, c.out)
		})
	if err != nil {
		return nil, fmt.Errorf("kkrt extension: %w", err)
	}

	// The follower's tags: 3 per item, in its shuffled order.
	n := int(peer.Size)
	in := &streamIn{kind: KindTags, total: n, itemLen: kkrtHashes * kkrtTagLen, chunk: cfg.ChunkSize}
	res := &pairMatch{peerSize: n}
	matchedBy := make([]bool, len(ids))
	err = ordered(ctx, cfg.Workers, recvStream(l, in),
		func(_ int, c *chunk) error {
			var hits []byte
			for p := c.lo; p < c.hi; p++ {
				for h := range kkrtHashes {
					var tag [kkrtTagLen]byte
					copy(tag[:], c.in[((p-c.lo)*kkrtHashes+h)*kkrtTagLen:])
					if it, ok := table[tag]; ok {
						hits = binary.BigEndian.AppendUint32(hits, it)
						hits = binary.BigEndian.AppendUint32(hits, uint32(p))
					}
				}
			}
			c.out = hits
			return nil
		},
		func(c *chunk) error {
			for k := 0; k < len(c.out); k += 8 {
				it := binary.BigEndian.Uint32(c.out[k:])
				if matchedBy[it] {
					return fmt.Errorf("kkrt: %w: two follower tags match one item", ErrMalformed)
				}
				matchedBy[it] = true
				res.own = append(res.own, it)
				res.peerPos = append(res.peerPos, binary.BigEndian.Uint32(c.out[k+4:]))
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("kkrt tags: %w", err)
	}
	return res, nil
}

// kkrtFollow runs the follower (OPRF sender) side.
func kkrtFollow(ctx context.Context, l *link, ids []string, cfg Config) ([]uint32, int, error) {
	peer, err := l.exchangeHello(ctx, hello{Protocol: ProtocolKKRT, Role: roleFollower, Size: uint64(len(ids)), Chunk: uint32(cfg.ChunkSize)}, roleLeader)
	if err != nil {
		return nil, 0, err
	}
	perm, err := randomPerm(len(ids))
	if err != nil {
		return nil, 0, err
	}
	// Items in the order their tags will be sent.
	items, err := kkrtItems(ctx, ids, perm, cfg.Session, cfg.Workers)
	if err != nil {
		return nil, 0, err
	}
	ma, err := l.recvKind(ctx, KindBaseOT, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("kkrt base OT: %w", err)
	}
	if len(ma.Payload) != otALen {
		return nil, 0, fmt.Errorf("%w: kkrt base OT message of %d bytes, want %d", ErrMalformed, len(ma.Payload), otALen)
	}
	m := int(binary.BigEndian.Uint32(ma.Payload))
	if want := kkrtBins(int(peer.Size)); m != want {
		return nil, 0, fmt.Errorf("%w: kkrt: leader uses %d bins for %d items, want %d", ErrMalformed, m, peer.Size, want)
	}
	var seed [kkrtHashes]uint64
	for i := range seed {
		seed[i] = binary.LittleEndian.Uint64(ma.Payload[4+8*i:])
	}
	seedR := ma.Payload[4+8*kkrtHashes : otParamsLen]

	// Base OTs: we receive one seed of each pair, chosen by s.
	s, err := randomBytes(kkrtWidthBytes)
	if err != nil {
		return nil, 0, err
	}
	seedS, err := randomBytes(kkrtSeedLen)
	if err != nil {
		return nil, 0, err
	}
	choice := func(i int) int { return int(s[i/8]>>(i%8)) & 1 }
	receivers := make([]simot.Receiver, kkrtWidth)
	msgB := make([]byte, otBLen)
	copy(msgB, seedS)
	err = parallelFor(ctx, kkrtWidth, cfg.Workers, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			A := r255.NewElement()
			if err := A.UnmarshalBinary(ma.Payload[otParamsLen+i*pointLen : otParamsLen+(i+1)*pointLen]); err != nil {
				return fmt.Errorf("%w: base OT %d: %v", ErrBadPoint, i, err)
			}
			if A.IsIdentity() {
				return fmt.Errorf("%w: base OT %d: identity", ErrBadPoint, i)
			}
			B := receivers[i].Round1Receiver(r255, choice(i), i, A)
			b, err := B.MarshalBinaryCompress()
			if err != nil {
				return fmt.Errorf("kkrt: base OT %d: %w", i, err)
			}
			copy(msgB[kkrtSeedLen+i*pointLen:], b)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if err := l.send(ctx, KindBaseOT, 0, true, msgB); err != nil {
		return nil, 0, err
	}
	code, err := codeKey(seedR, seedS)
	if err != nil {
		return nil, 0, fmt.Errorf("kkrt: code key: %w", err)
	}
	me, err := l.recvKind(ctx, KindBaseOT, 1)
	if err != nil {
		return nil, 0, fmt.Errorf("kkrt base OT: %w", err)
	}
	if len(me.Payload) != otELen {
		return nil, 0, fmt.Errorf("%w: kkrt base OT ciphertexts of %d bytes, want %d", ErrMalformed, len(me.Payload), otELen)
	}
	prg := make([]cipher.Block, kkrtWidth)
	err = parallelFor(ctx, kkrtWidth, cfg.Workers, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			e0 := me.Payload[(2*i)*otCipherLen : (2*i+1)*otCipherLen]
			e1 := me.Payload[(2*i+1)*otCipherLen : (2*i+2)*otCipherLen]
			if err := receivers[i].Round3Receiver(e0, e1, choice(i)); err != nil {
				return fmt.Errorf("%w: kkrt base OT %d does not decrypt: %v", ErrMalformed, i, err)
			}
			k := receivers[i].Returnmc()
			if len(k) != kkrtSeedLen {
				return fmt.Errorf("%w: kkrt base OT %d seed of %d bytes", ErrMalformed, i, len(k))
			}
			var err error
			if prg[i], err = aes.NewCipher(k); err != nil {
				return fmt.Errorf("kkrt: PRG key: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}

	// OT extension: q rows for every bin, allocated block by block as the
	// columns arrive, so a lying hello cannot make us allocate up front.
	qBlocks := make([][]byte, (m+kkrtBlockRows-1)/kkrtBlockRows)
	in := &streamIn{kind: KindColumns, total: m, itemLen: kkrtWidthBytes, chunk: kkrtBlockRows}
	err = ordered(ctx, cfg.Workers, recvStream(l, in),
		func(_ int, c *chunk) error {
			colBytes := (c.hi - c.lo) / 8
			cols := c.in // u, overwritten by q
			for i := range kkrtWidth {
				qi := cols[i*colBytes : (i+1)*colBytes]
				if choice(i) == 0 {
					clear(qi)
				}
				prgXOR(prg[i], c.lo/8, qi)
			}
			rows := make([]byte, (c.hi-c.lo)*kkrtWidthBytes)
			colsToRows(cols, rows, colBytes)
			qBlocks[c.lo/kkrtBlockRows] = rows
			return nil
		},
		func(*chunk) error { return nil })
	if err != nil {
		return nil, 0, fmt.Errorf("kkrt extension: %w", err)
	}

	// Tags for every item and hash function, in shuffled order.
	err = ordered(ctx, cfg.Workers, ownChunks(len(ids), cfg.ChunkSize),
		func(_ int, c *chunk) error {
			out := make([]byte, (c.hi-c.lo)*kkrtHashes*kkrtTagLen)
			var cw, row [kkrtWidthBytes]byte
			for p := c.lo; p < c.hi; p++ {
				kkrtCode(code, &items[p].v, cw[:])
				for k := range cw {
					cw[k] &= s[k]
				}
				for h := range kkrtHashes {
					j := binOf(items[p].h, &seed, h, m)
					off := (j % kkrtBlockRows) * kkrtWidthBytes
					qj := qBlocks[j/kkrtBlockRows][off : off+kkrtWidthBytes]
					for k := range row {
						row[k] = qj[k] ^ cw[k]
					}
					kkrtTag(row[:], h, out[((p-c.lo)*kkrtHashes+h)*kkrtTagLen:])
				}
			}
			c.out = out
			return nil
		},
		func(c *chunk) error { return l.send(ctx, KindTags, c.seq, c.final, c.out) })
	if err != nil {
		return nil, 0, fmt.Errorf("kkrt tags: %w", err)
	}
	return perm, int(peer.Size), nil
}
