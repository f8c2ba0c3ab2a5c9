package audit

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"veil/hub/store"
)

var hasher = rfc6962.DefaultHasher

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// The schema. Hashes are hex TEXT so the same SQL serves SQLite and
// PostgreSQL. audit_nodes holds every perfect-subtree hash (level 0 = leaf
// hashes), which makes inclusion and consistency proofs a few lookups.
var migrations = []string{
	`CREATE TABLE audit_head (id INTEGER PRIMARY KEY, size BIGINT NOT NULL)`,
	`INSERT INTO audit_head (id, size) VALUES (1, 0)`,
	`CREATE TABLE audit_entries (
		seq BIGINT PRIMARY KEY,
		time_us BIGINT NOT NULL,
		kind TEXT NOT NULL,
		actor TEXT NOT NULL,
		subject TEXT NOT NULL,
		body TEXT NOT NULL)`,
	`CREATE INDEX audit_entries_subject ON audit_entries (subject, seq)`,
	`CREATE INDEX audit_entries_actor ON audit_entries (actor, seq)`,
	`CREATE INDEX audit_entries_time ON audit_entries (time_us)`,
	`CREATE TABLE audit_entry_providers (
		provider TEXT NOT NULL,
		seq BIGINT NOT NULL,
		PRIMARY KEY (provider, seq))`,
	`CREATE TABLE audit_nodes (
		level INTEGER NOT NULL,
		idx BIGINT NOT NULL,
		hash TEXT NOT NULL,
		PRIMARY KEY (level, idx))`,
	`CREATE TABLE audit_checkpoints (
		size BIGINT PRIMARY KEY,
		root TEXT NOT NULL,
		note TEXT NOT NULL,
		signed_at_us BIGINT NOT NULL)`,
}

// Config configures a Log.
type Config struct {
	// Signer signs checkpoints; its Name is the log origin. Use
	// NewNoteSigner with the platform's Ed25519 key.
	Signer note.Signer
	// CheckpointEvery: a checkpoint is signed as part of the append that
	// brings the unsigned tail to this many entries. 0 means 1000.
	CheckpointEvery uint64
	// CheckpointInterval: an append, or Run's ticker, signs a checkpoint when
	// the latest is older than this and entries were added. 0 means 10s.
	CheckpointInterval time.Duration
	Now                func() time.Time // nil: time.Now
}

// Log is the audit log on a platform database. It is safe for concurrent
// use; appends from several processes sharing a PostgreSQL database are
// serialised by a row lock on audit_head.
type Log struct {
	db  *store.DB
	cfg Config

	mu sync.Mutex // serialises appends and checkpoint signing in this process
	// tip caches the compact range [0, size) after the last commit so an
	// append does not reload it; it is reloaded when another process moved
	// the log.
	tip *compact.Range
}

// Open migrates the audit tables and returns the log.
func Open(ctx context.Context, db *store.DB, cfg Config) (*Log, error) {
	if cfg.Signer == nil {
		return nil, errors.New("audit log: a checkpoint signer is required")
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 1000
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := db.Migrate(ctx, "audit", migrations); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &Log{db: db, cfg: cfg}, nil
}

// Origin is the log's name, the first line of its checkpoints.
func (l *Log) Origin() string { return l.cfg.Signer.Name() }

// Append adds one entry and returns it with Seq (and Time, if it was zero)
// filled in. The entry is committed when Append returns.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	out, err := l.AppendBatch(ctx, []Entry{e})
	if err != nil {
		return Entry{}, err
	}
	return out[0], nil
}

// AppendBatch adds entries atomically, in order, in one transaction: all are
// committed or none. Use it for a job that produces many entries at once.
func (l *Log) AppendBatch(ctx context.Context, entries []Entry) ([]Entry, error) {
	// appendTx validates each entry (Marshal) before anything is written.
	return l.AppendBatchFunc(ctx, len(entries), func(context.Context, *sql.Tx) ([]Entry, error) { return entries, nil })
}

// AppendBatchFunc appends n entries that build computes inside the append's
// transaction, after the log's write lock is taken: build may read and write
// other tables of the same database through tx (the platform counts grant
// uses there), and everything commits together or not at all. build must
// return exactly n entries and must not use the database other than through
// tx. Appends are serialised, so build should be quick.
func (l *Log) AppendBatchFunc(ctx context.Context, n int, build func(ctx context.Context, tx *sql.Tx) ([]Entry, error)) ([]Entry, error) {
	if n <= 0 {
		return nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	tx, err := l.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("append: begin: %w", err)
	}
	defer tx.Rollback()
	return l.appendTx(ctx, tx, n, build)
}

func (l *Log) appendTx(ctx context.Context, tx *sql.Tx, count int, build func(ctx context.Context, tx *sql.Tx) ([]Entry, error)) ([]Entry, error) {
	n := uint64(count)
	// The UPDATE takes the write lock (SQLite) or the row lock (PostgreSQL)
	// before the size is read, so concurrent appenders get dense,
	// non-overlapping sequence numbers.
	if _, err := tx.ExecContext(ctx, l.db.Rebind(`UPDATE audit_head SET size = size + ? WHERE id = 1`), int64(n)); err != nil {
		return nil, fmt.Errorf("append: reserve sequence numbers: %w", err)
	}
	var end int64
	if err := tx.QueryRowContext(ctx, `SELECT size FROM audit_head WHERE id = 1`).Scan(&end); err != nil {
		return nil, fmt.Errorf("append: read log size: %w", err)
	}
	start := uint64(end) - n
	rng, err := l.rangeAt(ctx, tx, start)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	built, err := build(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if len(built) != count {
		return nil, fmt.Errorf("append: %d entries built, %d reserved", len(built), count)
	}
	out := make([]Entry, count)
	copy(out, built)

	now := l.cfg.Now().UTC().Truncate(time.Microsecond)
	var nodes [][]any
	visit := func(id compact.NodeID, hash []byte) {
		nodes = append(nodes, []any{int64(id.Level), int64(id.Index), hex.EncodeToString(hash)})
	}
	var rows, provRows [][]any
	for i := range out {
		e := &out[i]
		e.Seq = start + uint64(i)
		if e.Time.IsZero() {
			e.Time = now
		}
		e.Time = e.Time.UTC().Truncate(time.Microsecond)
		data, err := Marshal(*e) // validates e
		if err != nil {
			return nil, fmt.Errorf("append entry %d: %w", i, err)
		}
		if err := rng.Append(hasher.HashLeaf(data), visit); err != nil {
			return nil, fmt.Errorf("append entry %d: tree: %w", i, err)
		}
		rows = append(rows, []any{int64(e.Seq), e.Time.UnixMicro(), string(e.Kind), e.Actor, e.Subject, string(data)})
		seen := map[string]bool{}
		for _, p := range e.Providers {
			if !seen[p] {
				seen[p] = true
				provRows = append(provRows, []any{p, int64(e.Seq)})
			}
		}
	}
	if err := l.insertRows(ctx, tx, "audit_entries", []string{"seq", "time_us", "kind", "actor", "subject", "body"}, rows); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if err := l.insertRows(ctx, tx, "audit_entry_providers", []string{"provider", "seq"}, provRows); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if err := l.insertRows(ctx, tx, "audit_nodes", []string{"level", "idx", "hash"}, nodes); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}

	last, err := latestCheckpointMeta(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	size := uint64(end)
	if size-last.size >= l.cfg.CheckpointEvery || now.Sub(last.signedAt) >= l.cfg.CheckpointInterval {
		if _, err := l.signAndStore(ctx, tx, rng, now); err != nil {
			return nil, fmt.Errorf("append: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("append: commit: %w", err)
	}
	l.tip = rng
	return out, nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// rangeAt returns the compact range [0, size): a copy of the cached tip if
// it is current, otherwise rebuilt from the stored perfect-subtree hashes.
func (l *Log) rangeAt(ctx context.Context, q querier, size uint64) (*compact.Range, error) {
	if l.tip != nil && l.tip.End() == size {
		hashes := l.tip.Hashes()
		cp := make([][]byte, len(hashes))
		copy(cp, hashes)
		return rangeFactory.NewRange(0, size, cp)
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := nodeHash(ctx, l.db, q, id)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return rangeFactory.NewRange(0, size, hashes)
}

func nodeHash(ctx context.Context, db *store.DB, q querier, id compact.NodeID) ([]byte, error) {
	var hx string
	err := q.QueryRowContext(ctx, db.Rebind(`SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?`), int64(id.Level), int64(id.Index)).Scan(&hx)
	if err != nil {
		return nil, fmt.Errorf("tree node (level %d, index %d): %w", id.Level, id.Index, err)
	}
	h, err := hex.DecodeString(hx)
	if err != nil || len(h) != 32 {
		return nil, fmt.Errorf("tree node (level %d, index %d): stored hash is corrupt", id.Level, id.Index)
	}
	return h, nil
}

// insertRows inserts rows with multi-row INSERTs of bounded size (both
// backends limit the number of bound parameters).
func (l *Log) insertRows(ctx context.Context, tx *sql.Tx, table string, cols []string, rows [][]any) error {
	const maxParams = 900
	per := max(1, maxParams/len(cols))
	for len(rows) > 0 {
		k := min(per, len(rows))
		var b []byte
		b = fmt.Appendf(b, "INSERT INTO %s (", table)
		for i, c := range cols {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, c...)
		}
		b = append(b, ") VALUES "...)
		args := make([]any, 0, k*len(cols))
		for r := range k {
			if r > 0 {
				b = append(b, ", "...)
			}
			b = append(b, '(')
			for i := range cols {
				if i > 0 {
					b = append(b, ", "...)
				}
				b = append(b, '?')
			}
			b = append(b, ')')
			args = append(args, rows[r]...)
		}
		if _, err := tx.ExecContext(ctx, l.db.Rebind(string(b)), args...); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		rows = rows[k:]
	}
	return nil
}

type checkpointMeta struct {
	size     uint64
	signedAt time.Time
}

func latestCheckpointMeta(ctx context.Context, q querier) (checkpointMeta, error) {
	var size, at int64
	err := q.QueryRowContext(ctx, `SELECT size, signed_at_us FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return checkpointMeta{}, nil
	}
	if err != nil {
		return checkpointMeta{}, fmt.Errorf("latest checkpoint: %w", err)
	}
	return checkpointMeta{size: uint64(size), signedAt: time.UnixMicro(at)}, nil
}

func (l *Log) signAndStore(ctx context.Context, q querier, rng *compact.Range, now time.Time) (*Checkpoint, error) {
	root, err := rootOf(rng)
	if err != nil {
		return nil, err
	}
	cp, err := signCheckpoint(l.cfg.Signer, rng.End(), root)
	if err != nil {
		return nil, err
	}
	// Another replica may have signed the same size; Ed25519 is
	// deterministic, so its note is identical and keeping it is correct.
	if _, err := q.ExecContext(ctx, l.db.Rebind(`INSERT INTO audit_checkpoints (size, root, note, signed_at_us) VALUES (?, ?, ?, ?)
		ON CONFLICT (size) DO NOTHING`), int64(cp.Size), hex.EncodeToString(root), string(cp.Note), now.UnixMicro()); err != nil {
		return nil, fmt.Errorf("store checkpoint at size %d: %w", cp.Size, err)
	}
	return cp, nil
}

func rootOf(rng *compact.Range) ([]byte, error) {
	if rng.End() == 0 {
		return hasher.EmptyRoot(), nil
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("tree root: %w", err)
	}
	return root, nil
}

// Checkpoint signs a checkpoint for the current size now (on demand) and
// returns it; if the latest checkpoint already covers the whole log it is
// returned instead.
func (l *Log) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	return l.checkpointIf(ctx, func(checkpointMeta, time.Time) bool { return true })
}

func (l *Log) checkpointIf(ctx context.Context, due func(last checkpointMeta, now time.Time) bool) (*Checkpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tx, err := l.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: begin: %w", err)
	}
	defer tx.Rollback()
	// Lock the head like an append does, so the size cannot move under us.
	if _, err := tx.ExecContext(ctx, `UPDATE audit_head SET size = size WHERE id = 1`); err != nil {
		return nil, fmt.Errorf("checkpoint: lock head: %w", err)
	}
	var size int64
	if err := tx.QueryRowContext(ctx, `SELECT size FROM audit_head WHERE id = 1`).Scan(&size); err != nil {
		return nil, fmt.Errorf("checkpoint: read size: %w", err)
	}
	last, err := latestCheckpointMeta(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	now := l.cfg.Now().UTC()
	var cp *Checkpoint
	if last.size == uint64(size) && !last.signedAt.IsZero() || !due(last, now) {
		if err := tx.Commit(); err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		return l.LatestCheckpoint(ctx)
	}
	rng, err := l.rangeAt(ctx, tx, uint64(size))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if cp, err = l.signAndStore(ctx, tx, rng, now); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("checkpoint: commit: %w", err)
	}
	l.tip = rng
	return cp, nil
}

// Run signs a checkpoint whenever entries were appended and the latest
// checkpoint is older than CheckpointInterval, until ctx ends. Start it in a
// goroutine beside the server; it returns ctx.Err().
func (l *Log) Run(ctx context.Context) error {
	tick := time.NewTicker(max(l.cfg.CheckpointInterval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			_, err := l.checkpointIf(ctx, func(last checkpointMeta, now time.Time) bool {
				return now.Sub(last.signedAt) >= l.cfg.CheckpointInterval
			})
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("audit checkpoint loop: %w", err)
			}
		}
	}
}

// Size returns the number of entries.
func (l *Log) Size(ctx context.Context) (uint64, error) {
	var size int64
	if err := l.db.SQL.QueryRowContext(ctx, `SELECT size FROM audit_head WHERE id = 1`).Scan(&size); err != nil {
		return 0, fmt.Errorf("audit log size: %w", err)
	}
	return uint64(size), nil
}

// LatestCheckpoint returns the checkpoint with the largest size, or nil if
// none was signed yet.
func (l *Log) LatestCheckpoint(ctx context.Context) (*Checkpoint, error) {
	cps, err := l.checkpoints(ctx, `SELECT size, root, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1`)
	if err != nil || len(cps) == 0 {
		return nil, err
	}
	return &cps[0], nil
}

// Checkpoints returns every stored checkpoint in increasing size. The values
// are as stored: verify them with ParseCheckpoint or VerifyLog.
func (l *Log) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	return l.checkpoints(ctx, `SELECT size, root, note FROM audit_checkpoints ORDER BY size`)
}

func (l *Log) checkpoints(ctx context.Context, query string) ([]Checkpoint, error) {
	rows, err := l.db.SQL.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var size int64
		var root, text string
		if err := rows.Scan(&size, &root, &text); err != nil {
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		r, _ := hex.DecodeString(root)
		out = append(out, Checkpoint{Origin: l.Origin(), Size: uint64(size), Root: r, Note: []byte(text)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	return out, nil
}

// RawEntry is an entry as stored: its position and its leaf bytes.
type RawEntry struct {
	Seq  uint64
	Data []byte
}

// Entries calls fn for the stored entries with from <= seq < to in seq
// order, fetching pages so fn may itself use the database. Verification
// must not trust the Seq column: it is returned for locating problems only.
func (l *Log) Entries(ctx context.Context, from, to uint64, fn func(RawEntry) error) error {
	const page = 1000
	for from < to {
		rows, err := l.db.SQL.QueryContext(ctx, l.db.Rebind(`SELECT seq, body FROM audit_entries WHERE seq >= ? AND seq < ? ORDER BY seq LIMIT ?`),
			int64(from), int64(to), page)
		if err != nil {
			return fmt.Errorf("read entries from %d: %w", from, err)
		}
		var batch []RawEntry
		for rows.Next() {
			var seq int64
			var body string
			if err := rows.Scan(&seq, &body); err != nil {
				rows.Close()
				return fmt.Errorf("read entries from %d: %w", from, err)
			}
			batch = append(batch, RawEntry{Seq: uint64(seq), Data: []byte(body)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read entries from %d: %w", from, err)
		}
		if len(batch) == 0 {
			return nil
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
		}
		from = batch[len(batch)-1].Seq + 1
	}
	return nil
}
