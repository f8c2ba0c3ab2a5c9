package audit

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Query selects entries; empty fields do not filter. Results are in seq
// order.
type Query struct {
	Subject  string    // enterprise USCC
	Actor    string    // party that acted
	Provider string    // provider whose data was involved
	Kind     Kind      // entry kind
	Since    time.Time // time >= Since
	Until    time.Time // time < Until
	FromSeq  uint64    // seq >= FromSeq (paging)
	Limit    int       // 0: no limit
}

// Record is one query result: the decoded entry and its stored bytes.
type Record struct {
	Entry Entry
	Data  []byte
}

// Query returns the entries matching q. Stored bytes that do not decode are
// reported as an error naming the seq: the log was tampered with.
func (l *Log) Query(ctx context.Context, q Query) ([]Record, error) {
	var (
		where []string
		args  []any
	)
	from := "audit_entries e"
	if q.Provider != "" {
		from += " JOIN audit_entry_providers p ON p.seq = e.seq"
		where = append(where, "p.provider = ?")
		args = append(args, q.Provider)
	}
	if q.Subject != "" {
		where = append(where, "e.subject = ?")
		args = append(args, q.Subject)
	}
	if q.Actor != "" {
		where = append(where, "e.actor = ?")
		args = append(args, q.Actor)
	}
	if q.Kind != "" {
		where = append(where, "e.kind = ?")
		args = append(args, string(q.Kind))
	}
	if !q.Since.IsZero() {
		where = append(where, "e.time_us >= ?")
		args = append(args, q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		where = append(where, "e.time_us < ?")
		args = append(args, q.Until.UnixMicro())
	}
	if q.FromSeq > 0 {
		where = append(where, "e.seq >= ?")
		args = append(args, int64(q.FromSeq))
	}
	sqlText := "SELECT e.seq, e.body FROM " + from
	if len(where) > 0 {
		sqlText += " WHERE " + strings.Join(where, " AND ")
	}
	sqlText += " ORDER BY e.seq"
	if q.Limit > 0 {
		sqlText += " LIMIT ?"
		args = append(args, q.Limit)
	}
	rows, err := l.db.SQL.QueryContext(ctx, l.db.Rebind(sqlText), args...)
	if err != nil {
		return nil, fmt.Errorf("audit query: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var seq int64
		var body string
		if err := rows.Scan(&seq, &body); err != nil {
			return nil, fmt.Errorf("audit query: %w", err)
		}
		e, err := Decode([]byte(body))
		if err != nil {
			return nil, fmt.Errorf("audit query: stored entry %d: %w", seq, err)
		}
		out = append(out, Record{Entry: e, Data: []byte(body)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit query: %w", err)
	}
	return out, nil
}

// ExportJSONL writes the entries matching q (q.Limit is ignored) as JSON
// Lines, one canonical entry per line, in seq order, and returns how many it
// wrote. Each line is exactly the Merkle leaf, so an export can be verified
// with VerifyLog.
func (l *Log) ExportJSONL(ctx context.Context, w io.Writer, q Query) (int, error) {
	const page = 1000
	q.Limit = page
	n := 0
	for {
		recs, err := l.Query(ctx, q)
		if err != nil {
			return n, err
		}
		for _, r := range recs {
			if _, err := w.Write(append(r.Data, '\n')); err != nil {
				return n, fmt.Errorf("export: write: %w", err)
			}
			n++
		}
		if len(recs) < page {
			return n, nil
		}
		q.FromSeq = recs[len(recs)-1].Entry.Seq + 1
	}
}
