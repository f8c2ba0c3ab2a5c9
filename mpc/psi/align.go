package psi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Alignment is what one participant holds after an alignment.
type Alignment struct {
	// IDs are the IDs common to all parties, sorted byte-wise; every
	// participant ends with the same list.
	IDs      []string   `json:"-"`
	Size     int        `json:"intersection"`
	Protocol Protocol   `json:"protocol"`
	Input    InputStats `json:"input"`
	// PeerSizes are the other parties' set sizes (unique IDs). A follower
	// knows only the leader's size, under the key "leader".
	PeerSizes map[string]int `json:"peer_sizes"`
	// PairwiseSizes (leader only) are |leader ∩ follower| per follower: the
	// leader learns each pairwise intersection, see doc.go.
	PairwiseSizes map[string]int `json:"pairwise_sizes,omitempty"`
	Seconds       float64        `json:"seconds"`
}

// maxFollowers bounds k (the per-ID hit counter is a uint16).
const maxFollowers = 1<<16 - 1

// resultChunk is the number of positions per result message.
const resultChunk = 1 << 14

// AlignLeader runs the label holder's side of an alignment with every
// follower in peers (name -> connection relayed by the platform). It runs
// one two-party PSI per follower, intersects the results and tells each
// follower which of its items are common to all parties.
func AlignLeader(ctx context.Context, ids []string, peers map[string]Conn, cfg Config) (*Alignment, error) {
	start := time.Now()
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	if len(peers) == 0 {
		return nil, errors.New("psi: align leader: no followers")
	}
	if len(peers) > maxFollowers {
		return nil, fmt.Errorf("psi: align leader: %d followers exceed %d", len(peers), maxFollowers)
	}
	uniq, st, err := uniqueIDs(ids)
	if err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(peers))
	links := make(map[string]*link, len(peers))
	for _, name := range names {
		if peers[name] == nil {
			return nil, fmt.Errorf("psi: align leader: nil connection for %q", name)
		}
		links[name] = newLink(peers[name], cfg.Session)
	}
	fail := func(name string, err error) (*Alignment, error) {
		err = fmt.Errorf("psi: align with %q: %w", name, err)
		for _, l := range links {
			l.abort(ctx, err)
		}
		return nil, err
	}

	out := &Alignment{Protocol: cfg.Protocol, Input: st, PeerSizes: map[string]int{}, PairwiseSizes: map[string]int{}}
	// Followers run one after another: each pairwise run already uses
	// every core, and this bounds the leader's memory to one run.
	matches := make(map[string]*pairMatch, len(peers))
	hits := make([]uint16, len(uniq))
	for _, name := range names {
		var pm *pairMatch
		switch cfg.Protocol {
		case ProtocolKKRT:
			pm, err = kkrtLead(ctx, links[name], uniq, cfg)
		default:
			pm, err = ecdhLead(ctx, links[name], uniq, cfg)
		}
		if err != nil {
			return fail(name, err)
		}
		matches[name] = pm
		out.PeerSizes[name] = pm.peerSize
		out.PairwiseSizes[name] = len(pm.own)
		for _, i := range pm.own {
			hits[i]++
		}
	}
	k := uint16(len(peers))
	for i, h := range hits {
		if h == k {
			out.IDs = append(out.IDs, uniq[i])
		}
	}
	slices.Sort(out.IDs)
	out.Size = len(out.IDs)
	for _, name := range names {
		pm := matches[name]
		var pos []uint32
		for j, i := range pm.own {
			if hits[i] == k {
				pos = append(pos, pm.peerPos[j])
			}
		}
		slices.Sort(pos)
		if err := sendResult(ctx, links[name], pos); err != nil {
			return fail(name, err)
		}
	}
	out.Seconds = time.Since(start).Seconds()
	return out, nil
}

// AlignFollower runs a data provider's side of an alignment with the
// leader (through the platform relay).
func AlignFollower(ctx context.Context, ids []string, leader Conn, cfg Config) (*Alignment, error) {
	start := time.Now()
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	if leader == nil {
		return nil, errors.New("psi: align follower: nil leader connection")
	}
	uniq, st, err := uniqueIDs(ids)
	if err != nil {
		return nil, err
	}
	l := newLink(leader, cfg.Session)
	fail := func(err error) (*Alignment, error) {
		err = fmt.Errorf("psi: align with leader: %w", err)
		l.abort(ctx, err)
		return nil, err
	}
	var perm []uint32
	var peerSize int
	switch cfg.Protocol {
	case ProtocolKKRT:
		perm, peerSize, err = kkrtFollow(ctx, l, uniq, cfg)
	default:
		perm, peerSize, err = ecdhFollow(ctx, l, uniq, cfg)
	}
	if err != nil {
		return fail(err)
	}
	pos, err := recvResult(ctx, l, len(uniq))
	if err != nil {
		return fail(err)
	}
	out := &Alignment{Protocol: cfg.Protocol, Input: st, PeerSizes: map[string]int{"leader": peerSize}}
	out.IDs = make([]string, len(pos))
	for i, p := range pos {
		out.IDs[i] = uniq[perm[p]]
	}
	slices.Sort(out.IDs)
	out.Size = len(out.IDs)
	out.Seconds = time.Since(start).Seconds()
	return out, nil
}

// sendResult streams sorted positions as big-endian uint32s.
func sendResult(ctx context.Context, l *link, pos []uint32) error {
	seq := uint32(0)
	for lo := 0; ; lo += resultChunk {
		hi := min(lo+resultChunk, len(pos))
		buf := make([]byte, 0, 4*(hi-lo))
		for _, p := range pos[lo:hi] {
			buf = binary.BigEndian.AppendUint32(buf, p)
		}
		if err := l.send(ctx, KindResult, seq, hi == len(pos), buf); err != nil {
			return fmt.Errorf("sending result: %w", err)
		}
		seq++
		if hi == len(pos) {
			return nil
		}
	}
}

// recvResult receives the leader's positions and checks that they are
// strictly increasing and within the follower's set.
func recvResult(ctx context.Context, l *link, size int) ([]uint32, error) {
	var pos []uint32
	for seq := uint32(0); ; seq++ {
		m, err := l.recvKind(ctx, KindResult, seq)
		if err != nil {
			return nil, fmt.Errorf("result: %w", err)
		}
		if len(m.Payload)%4 != 0 || len(m.Payload) > 4*resultChunk {
			return nil, fmt.Errorf("%w: result message #%d of %d bytes", ErrMalformed, seq, len(m.Payload))
		}
		if !m.Final && len(m.Payload) != 4*resultChunk {
			return nil, fmt.Errorf("%w: non-final result message #%d is short", ErrMalformed, seq)
		}
		for i := 0; i < len(m.Payload); i += 4 {
			p := binary.BigEndian.Uint32(m.Payload[i:])
			if int64(p) >= int64(size) {
				return nil, fmt.Errorf("%w: result position %d outside our %d items", ErrMalformed, p, size)
			}
			if len(pos) > 0 && p <= pos[len(pos)-1] {
				return nil, fmt.Errorf("%w: result positions not strictly increasing at %d", ErrMalformed, p)
			}
			pos = append(pos, p)
		}
		if m.Final {
			return pos, nil
		}
	}
}
