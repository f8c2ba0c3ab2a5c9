package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// InclusionProof returns the RFC 6962 inclusion proof of entry index in the
// tree of the given size (a checkpoint's size).
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if err := l.checkSize(ctx, size); err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	return l.buildProof(ctx, nodes)
}

// ConsistencyProof returns the RFC 6962 consistency proof between tree sizes
// size1 <= size2.
func (l *Log) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	if err := l.checkSize(ctx, size2); err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	return l.buildProof(ctx, nodes)
}

func (l *Log) checkSize(ctx context.Context, size uint64) error {
	cur, err := l.Size(ctx)
	if err != nil {
		return err
	}
	if size > cur {
		return fmt.Errorf("tree size %d beyond the log's %d entries", size, cur)
	}
	return nil
}

func (l *Log) buildProof(ctx context.Context, nodes proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := nodeHash(ctx, l.db, l.db.SQL, id)
		if err != nil {
			return nil, fmt.Errorf("proof: %w", err)
		}
		hashes[i] = h
	}
	out, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("proof: %w", err)
	}
	return out, nil
}

// ProvenEntry is an entry with its inclusion proof against a checkpoint.
type ProvenEntry struct {
	Seq   uint64
	Data  []byte // canonical JSON, the leaf
	Proof [][]byte
}

// Prove returns the entries matching q (e.g. Query{Subject: uscc} for
// `veil audit mine`), each with an inclusion proof against one checkpoint
// that covers all of them, signing a fresh checkpoint if the latest does
// not. The caller sees only the matching entries and hashes.
func (l *Log) Prove(ctx context.Context, q Query) (*Checkpoint, []ProvenEntry, error) {
	recs, err := l.Query(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	cp, err := l.LatestCheckpoint(ctx)
	if err != nil {
		return nil, nil, err
	}
	if cp == nil || (len(recs) > 0 && recs[len(recs)-1].Entry.Seq >= cp.Size) {
		if cp, err = l.Checkpoint(ctx); err != nil {
			return nil, nil, err
		}
	}
	// A stored checkpoint never exceeds the log, so InclusionProof's size
	// check (one query per entry) is not repeated here.
	out := make([]ProvenEntry, len(recs))
	for i, r := range recs {
		nodes, err := proof.Inclusion(r.Entry.Seq, cp.Size)
		if err != nil {
			return nil, nil, fmt.Errorf("prove entry %d: inclusion proof: %w", r.Entry.Seq, err)
		}
		p, err := l.buildProof(ctx, nodes)
		if err != nil {
			return nil, nil, fmt.Errorf("prove entry %d: %w", r.Entry.Seq, err)
		}
		out[i] = ProvenEntry{Seq: r.Entry.Seq, Data: r.Data, Proof: p}
	}
	return cp, out, nil
}

// VerifyInclusion is the client-side check for one proven entry: the
// checkpoint note must be signed by v, the data must be a canonical entry
// whose seq is its position, and the proof must lead from its leaf hash to
// the checkpoint's root. It returns the decoded entry.
func VerifyInclusion(v note.Verifier, checkpoint []byte, pe ProvenEntry) (Entry, error) {
	cp, err := ParseCheckpoint(checkpoint, v)
	if err != nil {
		return Entry{}, err
	}
	e, err := Decode(pe.Data)
	if err != nil {
		return Entry{}, fmt.Errorf("entry %d: %w", pe.Seq, err)
	}
	if e.Seq != pe.Seq {
		return Entry{}, fmt.Errorf("entry claims seq %d but is proven at %d", e.Seq, pe.Seq)
	}
	if pe.Seq >= cp.Size {
		return Entry{}, fmt.Errorf("entry %d is beyond checkpoint size %d", pe.Seq, cp.Size)
	}
	if err := proof.VerifyInclusion(hasher, pe.Seq, cp.Size, hasher.HashLeaf(pe.Data), pe.Proof, cp.Root); err != nil {
		return Entry{}, fmt.Errorf("entry %d: inclusion proof against checkpoint %d: %w", pe.Seq, cp.Size, err)
	}
	return e, nil
}

// VerifyConsistency checks that the log at the newer checkpoint extends the
// log at the older one (both notes signed by v), using an RFC 6962
// consistency proof from ConsistencyProof(older.Size, newer.Size).
func VerifyConsistency(v note.Verifier, older, newer []byte, consistency [][]byte) error {
	a, err := ParseCheckpoint(older, v)
	if err != nil {
		return fmt.Errorf("older checkpoint: %w", err)
	}
	b, err := ParseCheckpoint(newer, v)
	if err != nil {
		return fmt.Errorf("newer checkpoint: %w", err)
	}
	if a.Size > b.Size {
		return fmt.Errorf("log rolled back: saved checkpoint has %d entries, current has %d", a.Size, b.Size)
	}
	if a.Size == 0 {
		if len(consistency) != 0 {
			return errors.New("consistency from the empty tree takes an empty proof")
		}
		return nil
	}
	if err := proof.VerifyConsistency(hasher, a.Size, b.Size, consistency, a.Root, b.Root); err != nil {
		return fmt.Errorf("checkpoint %d is not consistent with checkpoint %d: %w", b.Size, a.Size, err)
	}
	return nil
}
