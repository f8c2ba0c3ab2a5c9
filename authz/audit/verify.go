package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Checks named in a Problem.
const (
	CheckCheckpointSignature = "checkpoint_signature" // a stored checkpoint does not verify
	CheckCheckpointConflict  = "checkpoint_conflict"  // two signed checkpoints of one size differ
	CheckEntryDecode         = "entry_decode"         // entry bytes are not a canonical entry
	CheckSequence            = "sequence"             // entry at position i does not say seq i
	CheckCheckpointRoot      = "checkpoint_root"      // recomputed root differs from a signed one
	CheckCheckpointBeyondLog = "checkpoint_beyond_log"
	CheckSavedCheckpoint     = "saved_checkpoint" // not consistent with the auditor's checkpoint
	CheckStoredLeafHash      = "stored_leaf_hash" // entry differs from the leaf hash stored beside it
)

// maxReported caps the problems listed one by one; a single deletion shifts
// every later seq, and the first few say where it happened.
const maxReported = 50

// Problem is one verification failure and where it is.
type Problem struct {
	Index  int64  `json:"index"` // entry position, or -1 when not about one entry
	Check  string `json:"check"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	if p.Index < 0 {
		return fmt.Sprintf("%s: %s", p.Check, p.Detail)
	}
	return fmt.Sprintf("entry %d: %s: %s", p.Index, p.Check, p.Detail)
}

// Report is the result of verifying a whole log.
type Report struct {
	Entries            uint64      `json:"entries"`
	Root               string      `json:"root"` // hex root of all entries
	CheckpointsChecked int         `json:"checkpoints_checked"`
	LatestCheckpoint   uint64      `json:"latest_checkpoint"` // size of the largest valid checkpoint
	Unsigned           uint64      `json:"unsigned"`          // entries after the latest checkpoint
	SavedCheckpoint    uint64      `json:"saved_checkpoint,omitempty"`
	SavedConsistent    bool        `json:"saved_consistent,omitempty"`
	Problems           []Problem   `json:"problems,omitempty"`
	MoreProblems       int         `json:"more_problems,omitempty"` // not listed beyond maxReported
	Checkpoints        []uint64    `json:"-"`
	Latest             *Checkpoint `json:"-"` // the largest checkpoint whose root matched (to save for next time)
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 && r.MoreProblems == 0 }

// Err returns nil if OK, else an error naming the first problem.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("audit log verification failed (%d problems): %s", len(r.Problems)+r.MoreProblems, r.Problems[0])
}

// LogVerifier recomputes the Merkle tree over a stream of entries and checks
// it against signed checkpoints and an auditor's saved checkpoint. Feed it
// every entry in log order with Add, then call Finish. It keeps O(log n)
// state, so it can run on the client over a gRPC stream of any length.
type LogVerifier struct {
	v      note.Verifier
	cps    []*Checkpoint // valid, sorted by size, unique
	next   int           // index into cps of the next checkpoint to reach
	saved  *Checkpoint
	rng    *compact.Range
	lastOK uint64 // size of the last checkpoint whose root matched
	report Report
	seqBad bool
}

// NewLogVerifier prepares a verification against the given checkpoint notes
// (as stored by the log) and, optionally, a checkpoint the auditor saved
// earlier (nil if none). Every note must be signed by v.
func NewLogVerifier(v note.Verifier, checkpoints [][]byte, saved []byte) *LogVerifier {
	lv := &LogVerifier{v: v, rng: rangeFactory.NewEmptyRange(0)}
	bySize := map[uint64]*Checkpoint{}
	for i, text := range checkpoints {
		cp, err := ParseCheckpoint(text, v)
		if err != nil {
			lv.problem(-1, CheckCheckpointSignature, fmt.Sprintf("stored checkpoint #%d: %v", i, err))
			continue
		}
		if prev, ok := bySize[cp.Size]; ok {
			if !bytes.Equal(prev.Root, cp.Root) {
				lv.problem(-1, CheckCheckpointConflict, fmt.Sprintf("two signed checkpoints for size %d with different roots: the log forked", cp.Size))
			}
			continue
		}
		bySize[cp.Size] = cp
		lv.cps = append(lv.cps, cp)
	}
	sort.Slice(lv.cps, func(i, j int) bool { return lv.cps[i].Size < lv.cps[j].Size })
	lv.report.CheckpointsChecked = len(lv.cps)
	if saved != nil {
		cp, err := ParseCheckpoint(saved, v)
		if err != nil {
			lv.problem(-1, CheckSavedCheckpoint, fmt.Sprintf("saved checkpoint: %v", err))
		} else {
			lv.saved = cp
			lv.report.SavedCheckpoint = cp.Size
		}
	}
	lv.reached(0)
	return lv
}

func (lv *LogVerifier) problem(index int64, check, detail string) {
	if len(lv.report.Problems) >= maxReported {
		lv.report.MoreProblems++
		return
	}
	lv.report.Problems = append(lv.report.Problems, Problem{Index: index, Check: check, Detail: detail})
}

// Add feeds the next entry's stored bytes.
func (lv *LogVerifier) Add(data []byte) {
	lv.add(data, nil)
}

// AddStored feeds the next entry with the leaf hash the server stored for
// it. A mismatch pinpoints an edited entry exactly; the hash is otherwise
// untrusted (the tree is recomputed from data alone).
func (lv *LogVerifier) AddStored(data, storedLeafHash []byte) {
	lv.add(data, storedLeafHash)
}

func (lv *LogVerifier) add(data, stored []byte) {
	idx := lv.rng.End()
	leaf := hasher.HashLeaf(data)
	if stored != nil && !bytes.Equal(stored, leaf) {
		lv.problem(int64(idx), CheckStoredLeafHash, "entry bytes do not match the leaf hash stored when it was appended: the entry was edited")
	}
	e, err := Decode(data)
	switch {
	case err != nil:
		lv.problem(int64(idx), CheckEntryDecode, err.Error())
	case e.Seq != idx && !lv.seqBad:
		// Report the first break in the sequence; later ones follow from it.
		lv.seqBad = true
		what := "an entry is missing here"
		if e.Seq < idx {
			what = "an entry is duplicated or entries were reordered"
		} else if e.Seq == idx+1 {
			what = fmt.Sprintf("entry %d was removed", idx)
		}
		lv.problem(int64(idx), CheckSequence, fmt.Sprintf("position %d holds the entry with seq %d: %s", idx, e.Seq, what))
	case e.Seq != idx:
		lv.report.MoreProblems++
	}
	// Append cannot fail for a range that starts at 0 and grows by one.
	_ = lv.rng.Append(leaf, nil)
	lv.reached(idx + 1)
}

// reached checks every checkpoint (and the saved one) of the size just reached.
func (lv *LogVerifier) reached(size uint64) {
	if lv.saved != nil && lv.saved.Size == size {
		root, _ := rootOf(lv.rng)
		if bytes.Equal(root, lv.saved.Root) {
			lv.report.SavedConsistent = true
		} else {
			lv.problem(int64(size)-1, CheckSavedCheckpoint, fmt.Sprintf(
				"the first %d entries no longer hash to the root of the checkpoint you saved: history was rewritten (log not consistent with it)", size))
		}
	}
	for lv.next < len(lv.cps) && lv.cps[lv.next].Size == size {
		cp := lv.cps[lv.next]
		lv.next++
		root, _ := rootOf(lv.rng)
		if bytes.Equal(root, cp.Root) {
			lv.lastOK = size
			lv.report.LatestCheckpoint = size
			lv.report.Latest = cp
			continue
		}
		lv.problem(int64(size)-1, CheckCheckpointRoot, fmt.Sprintf(
			"root of the first %d entries differs from the signed checkpoint: an entry in positions %d..%d was altered, removed or reordered",
			size, lv.lastOK, size-1))
	}
}

// Finish completes the verification and returns the report.
func (lv *LogVerifier) Finish() *Report {
	n := lv.rng.End()
	r := &lv.report
	r.Entries = n
	root, _ := rootOf(lv.rng)
	r.Root = hex.EncodeToString(root)
	for ; lv.next < len(lv.cps); lv.next++ {
		cp := lv.cps[lv.next]
		lv.problem(-1, CheckCheckpointBeyondLog, fmt.Sprintf(
			"a checkpoint was signed at size %d but the log has only %d entries: entries were removed or the log was rolled back", cp.Size, n))
	}
	if lv.saved != nil && lv.saved.Size > n {
		lv.problem(-1, CheckSavedCheckpoint, fmt.Sprintf(
			"your saved checkpoint has %d entries but the log has only %d: the log was rolled back", lv.saved.Size, n))
	}
	r.Unsigned = n - r.LatestCheckpoint
	for _, cp := range lv.cps {
		r.Checkpoints = append(r.Checkpoints, cp.Size)
	}
	return r
}

// VerifyLog verifies a complete list of entries (in log order) against the
// signed checkpoints and an optional saved checkpoint.
func VerifyLog(v note.Verifier, entries [][]byte, checkpoints [][]byte, saved []byte) *Report {
	lv := NewLogVerifier(v, checkpoints, saved)
	for _, e := range entries {
		lv.Add(e)
	}
	return lv.Finish()
}

// VerifyStored runs the full verification over this log's own database (what
// `veil audit verify` does remotely), additionally comparing each entry with
// the leaf hash stored beside it to pinpoint edits.
func (l *Log) VerifyStored(ctx context.Context, v note.Verifier, saved []byte) (*Report, error) {
	cps, err := l.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	notes := make([][]byte, len(cps))
	for i, cp := range cps {
		notes[i] = cp.Note
	}
	size, err := l.Size(ctx)
	if err != nil {
		return nil, err
	}
	lv := NewLogVerifier(v, notes, saved)
	err = l.Entries(ctx, 0, size, func(e RawEntry) error {
		h, err := nodeHash(ctx, l.db, l.db.SQL, compact.NewNodeID(0, e.Seq))
		if err != nil {
			h = nil
		}
		lv.AddStored(e.Data, h)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r := lv.Finish()
	if r.Entries != size {
		r.Problems = append(r.Problems, Problem{Index: -1, Check: CheckSequence, Detail: fmt.Sprintf(
			"the log head records %d entries but %d are stored: entries were deleted", size, r.Entries)})
	}
	return r, nil
}
