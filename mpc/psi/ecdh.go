package psi

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	r255p "github.com/bwesterb/go-ristretto"
	"github.com/cloudflare/circl/group"
)

// pointLen is the size of a compressed ristretto255 element.
const pointLen = 32

var r255 = group.Ristretto255

// stringBytes views s as bytes without copying; the hash only reads it.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// streamIn validates one incoming chunked stream: in-order sequence
// numbers, exactly min(chunk, remaining) items per message, Final exactly
// on the last one. A stream of zero items is one empty Final message.
type streamIn struct {
	kind    MsgKind
	total   int
	itemLen int
	chunk   int
	seq     uint32
	got     int
	done    bool
}

// accept checks m and returns the index of its first item and its count.
func (s *streamIn) accept(m *Message) (first, count int, err error) {
	if s.done {
		return 0, 0, fmt.Errorf("%s message #%d after the end of the stream", s.kind, m.Seq)
	}
	if m.Seq != s.seq {
		return 0, 0, fmt.Errorf("%s message #%d out of order, want #%d", s.kind, m.Seq, s.seq)
	}
	want := min(s.chunk, s.total-s.got)
	if len(m.Payload) != want*s.itemLen {
		return 0, 0, fmt.Errorf("%w: %s message #%d has %d bytes, want %d (%d items of %d bytes)",
			ErrMalformed, s.kind, m.Seq, len(m.Payload), want*s.itemLen, want, s.itemLen)
	}
	last := s.got+want == s.total
	if m.Final != last {
		return 0, 0, fmt.Errorf("%w: %s message #%d final flag %v, want %v", ErrMalformed, s.kind, m.Seq, m.Final, last)
	}
	first = s.got
	s.got += want
	s.seq++
	s.done = last
	return first, want, nil
}

// ownChunks yields the chunks of a stream of n own items.
func ownChunks(n, size int) func(context.Context) (*chunk, error) {
	seq, started := 0, false
	return func(context.Context) (*chunk, error) {
		lo := seq * size
		if started && lo >= n {
			return nil, nil
		}
		started = true
		hi := min(lo+size, n)
		c := &chunk{seq: uint32(seq), lo: lo, hi: hi, final: hi == n}
		seq++
		return c, nil
	}
}

// ecdhKey is one party's secret for one session. Points on the wire are
// enc(2·scalar·P): see ristretto.go for why the factor 2.
type ecdhKey struct {
	dst     []byte
	scalar  r255p.Scalar
	workers int
}

func randomScalar() r255p.Scalar {
	var s r255p.Scalar
	for {
		s.Rand()
		if s.IsNonZeroI() == 1 {
			return s
		}
	}
}

func newECDHKey(cfg Config) *ecdhKey {
	return &ecdhKey{dst: sessionDST(cfg.Session), scalar: randomScalar(), workers: cfg.Workers}
}

// scratch is per-worker state, so the hot loops do not allocate.
type scratch struct {
	h   *h2c
	pts []r255p.Point
	st  []encState
}

func (k *ecdhKey) scratches() []*scratch {
	s := make([]*scratch, k.workers)
	for i := range s {
		s[i] = &scratch{h: newH2C(k.dst)}
	}
	return s
}

func (sc *scratch) grow(n int) {
	if cap(sc.pts) < n {
		sc.pts = make([]r255p.Point, n)
		sc.st = make([]encState, n)
	}
	sc.pts, sc.st = sc.pts[:n], sc.st[:n]
}

// hashBlind writes enc(2·key·H(ids[perm[pos]])) for pos in [lo, hi) to out.
func (k *ecdhKey) hashBlind(sc *scratch, ids []string, perm []uint32, lo, hi int, out []byte) error {
	sc.grow(hi - lo)
	for pos := lo; pos < hi; pos++ {
		p := &sc.pts[pos-lo]
		sc.h.hashToPoint(stringBytes(ids[perm[pos]]), p)
		p.ScalarMult(p, &k.scalar)
	}
	curve.doubleEncodeBatch(sc.pts, sc.st, out)
	return nil
}

// ErrBadPoint is wrapped when a peer sends bytes that are not a valid,
// non-identity ristretto255 element.
var ErrBadPoint = errors.New("psi: invalid point")

// reblind writes enc(2·key·P) for every point P in in (first is the
// stream index of in[0], for error messages) to out, validating each P.
func (k *ecdhKey) reblind(sc *scratch, in []byte, first int, out []byte) error {
	n := len(in) / pointLen
	sc.grow(n)
	var zero r255p.Point
	zero.SetZero()
	var buf [pointLen]byte
	for i := range n {
		p := &sc.pts[i]
		copy(buf[:], in[i*pointLen:])
		if !p.SetBytes(&buf) {
			return fmt.Errorf("%w: item %d is not a canonical ristretto255 encoding", ErrBadPoint, first+i)
		}
		if p.Equals(&zero) {
			return fmt.Errorf("%w: item %d is the identity", ErrBadPoint, first+i)
		}
		p.ScalarMult(p, &k.scalar)
	}
	curve.doubleEncodeBatch(sc.pts, sc.st, out)
	return nil
}

// streamOwnPoints sends key·H(x) for the own items in shuffled order.
func (k *ecdhKey) streamOwnPoints(ctx context.Context, l *link, kind MsgKind, ids []string, perm []uint32, chunkSize int) error {
	sc := k.scratches()
	return ordered(ctx, k.workers, ownChunks(len(ids), chunkSize),
		func(w int, c *chunk) error {
			c.out = make([]byte, (c.hi-c.lo)*pointLen)
			return k.hashBlind(sc[w], ids, perm, c.lo, c.hi, c.out)
		},
		func(c *chunk) error { return l.send(ctx, kind, c.seq, c.final, c.out) })
}

// reblindStream re-blinds every chunk of the peer's stream from next and
// hands the results to emit in order.
func (k *ecdhKey) reblindStream(ctx context.Context, next func(context.Context) (*chunk, error), emit func(*chunk) error) error {
	sc := k.scratches()
	return ordered(ctx, k.workers, next,
		func(w int, c *chunk) error {
			c.out = make([]byte, len(c.in))
			if err := k.reblind(sc[w], c.in, c.lo, c.out); err != nil {
				return fmt.Errorf("peer stream: %w", err)
			}
			return nil
		}, emit)
}

// recvStream turns the incoming messages of one stream into chunks.
func recvStream(l *link, s *streamIn) func(context.Context) (*chunk, error) {
	return func(ctx context.Context) (*chunk, error) {
		if s.done {
			return nil, nil
		}
		m, err := l.recv(ctx)
		if err != nil {
			return nil, err
		}
		if m.Kind != s.kind {
			return nil, fmt.Errorf("got %s message, want %s", m.Kind, s.kind)
		}
		first, n, err := s.accept(m)
		if err != nil {
			return nil, err
		}
		return &chunk{seq: m.Seq, final: m.Final, in: m.Payload, lo: first, hi: first + n}, nil
	}
}

// pairMatch is the leader's view of a two-party run: which of its unique
// IDs are in the pairwise intersection, and at which position of the
// follower's shuffled stream each one sits.
type pairMatch struct {
	peerSize int
	own      []uint32 // indices into the leader's unique IDs
	peerPos  []uint32 // same length: positions in the follower's stream
}

// ecdhLead runs the leader side of a two-party ECDH-PSI:
//
//	leader -> follower: a·H(x) for all x, shuffled             (points)
//	follower -> leader: b·H(y) for all y, shuffled             (points)
//	follower -> leader: b·(a·H(x)), in the leader's order      (reply)
//
// The leader computes a·(b·H(y)) itself and matches.
func ecdhLead(ctx context.Context, l *link, ids []string, cfg Config) (*pairMatch, error) {
	peer, err := l.exchangeHello(ctx, hello{Protocol: ProtocolECDH, Role: roleLeader, Size: uint64(len(ids)), Chunk: uint32(cfg.ChunkSize)}, roleFollower)
	if err != nil {
		return nil, err
	}
	n, m := len(ids), int(peer.Size)
	perm, err := randomPerm(n)
	if err != nil {
		return nil, err
	}
	key := newECDHKey(cfg)

	peerPoints := make(chan *chunk, 2)
	replies := make([]byte, n*pointLen)
	// The size hint comes from the peer: cap it, the map grows if needed.
	table := make(map[[pointLen]byte]uint32, min(m, 1<<22))

	g := newGroup(ctx)
	g.Go(func(ctx context.Context) error {
		if err := key.streamOwnPoints(ctx, l, KindPoints, ids, perm, cfg.ChunkSize); err != nil {
			return fmt.Errorf("streaming own points: %w", err)
		}
		return nil
	})
	// One reader demultiplexes the follower's two streams.
	g.Go(func(ctx context.Context) error {
		defer close(peerPoints)
		pts := &streamIn{kind: KindPoints, total: m, itemLen: pointLen, chunk: cfg.ChunkSize}
		rep := &streamIn{kind: KindReply, total: n, itemLen: pointLen, chunk: cfg.ChunkSize}
		for !pts.done || !rep.done {
			msg, err := l.recv(ctx)
			if err != nil {
				return err
			}
			switch msg.Kind {
			case KindPoints:
				first, cnt, err := pts.accept(msg)
				if err != nil {
					return err
				}
				select {
				case peerPoints <- &chunk{seq: msg.Seq, final: msg.Final, in: msg.Payload, lo: first, hi: first + cnt}:
				case <-ctx.Done():
					return ctx.Err()
				}
			case KindReply:
				first, _, err := rep.accept(msg)
				if err != nil {
					return err
				}
				copy(replies[first*pointLen:], msg.Payload)
			default:
				return fmt.Errorf("unexpected %s message during the exchange", msg.Kind)
			}
		}
		return nil
	})
	g.Go(func(ctx context.Context) error {
		next := func(ctx context.Context) (*chunk, error) {
			select {
			case c, ok := <-peerPoints:
				if !ok {
					return nil, nil
				}
				return c, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return key.reblindStream(ctx, next, func(c *chunk) error {
			for i := 0; i < c.hi-c.lo; i++ {
				var kb [pointLen]byte
				copy(kb[:], c.out[i*pointLen:])
				if _, dup := table[kb]; dup {
					return fmt.Errorf("%w: peer item %d repeats an earlier point", ErrBadPoint, c.lo+i)
				}
				table[kb] = uint32(c.lo + i)
			}
			return nil
		})
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}

	res := &pairMatch{peerSize: m}
	used := make([]bool, m)
	for pos := range n {
		var kb [pointLen]byte
		copy(kb[:], replies[pos*pointLen:])
		j, ok := table[kb]
		if !ok {
			continue
		}
		if used[j] {
			return nil, fmt.Errorf("%w: peer reply %d matches a follower item already matched", ErrBadPoint, pos)
		}
		used[j] = true
		res.own = append(res.own, perm[pos])
		res.peerPos = append(res.peerPos, j)
	}
	return res, nil
}

// ecdhFollow runs the follower side. It returns the follower's shuffle
// (perm[pos] = index of the ID sent at pos), which the leader's result
// positions refer to.
func ecdhFollow(ctx context.Context, l *link, ids []string, cfg Config) (perm []uint32, peerSize int, err error) {
	peer, err := l.exchangeHello(ctx, hello{Protocol: ProtocolECDH, Role: roleFollower, Size: uint64(len(ids)), Chunk: uint32(cfg.ChunkSize)}, roleLeader)
	if err != nil {
		return nil, 0, err
	}
	perm, err = randomPerm(len(ids))
	if err != nil {
		return nil, 0, err
	}
	key := newECDHKey(cfg)
	g := newGroup(ctx)
	g.Go(func(ctx context.Context) error {
		if err := key.streamOwnPoints(ctx, l, KindPoints, ids, perm, cfg.ChunkSize); err != nil {
			return fmt.Errorf("streaming own points: %w", err)
		}
		return nil
	})
	g.Go(func(ctx context.Context) error {
		in := &streamIn{kind: KindPoints, total: int(peer.Size), itemLen: pointLen, chunk: cfg.ChunkSize}
		return key.reblindStream(ctx, recvStream(l, in), func(c *chunk) error {
			return l.send(ctx, KindReply, c.seq, c.final, c.out)
		})
	})
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	return perm, int(peer.Size), nil
}
