package audit

import (
	"context"
	"encoding/hex"
	"fmt"
)

// StoredLeafHashes returns the leaf hashes stored beside entries
// from <= seq < to (index i is seq from+i; nil where none is stored or the
// stored value is corrupt). A remote auditor passes them to
// LogVerifier.AddStored to pinpoint an edited entry; they are otherwise
// untrusted, since the verifier recomputes the tree from the entries.
func (l *Log) StoredLeafHashes(ctx context.Context, from, to uint64) ([][]byte, error) {
	if to <= from {
		return nil, nil
	}
	out := make([][]byte, to-from)
	rows, err := l.db.SQL.QueryContext(ctx, l.db.Rebind(`SELECT idx, hash FROM audit_nodes WHERE level = 0 AND idx >= ? AND idx < ?`), int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("read leaf hashes from %d: %w", from, err)
	}
	defer rows.Close()
	for rows.Next() {
		var idx int64
		var hx string
		if err := rows.Scan(&idx, &hx); err != nil {
			return nil, fmt.Errorf("read leaf hashes from %d: %w", from, err)
		}
		if h, err := hex.DecodeString(hx); err == nil && len(h) == 32 && uint64(idx) >= from && uint64(idx) < to {
			out[uint64(idx)-from] = h
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read leaf hashes from %d: %w", from, err)
	}
	return out, nil
}
