package grant

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"veil/hub/store"
)

// ErrEnterpriseExists is returned when registering a different key for an
// enterprise that already has one, without asking to replace it.
var ErrEnterpriseExists = errors.New("enterprise already registered with a different key")

var sqlMigrations = []string{
	`CREATE TABLE grant_enterprises (
		uscc TEXT PRIMARY KEY,
		public_key TEXT NOT NULL,
		registered_at TEXT NOT NULL)`,
	`CREATE TABLE grant_revocations (
		issuer TEXT NOT NULL,
		grant_id TEXT NOT NULL,
		revoked_at TEXT NOT NULL,
		statement TEXT NOT NULL,
		PRIMARY KEY (issuer, grant_id))`,
	`CREATE TABLE grant_uses (
		issuer TEXT NOT NULL,
		grant_id TEXT NOT NULL,
		uses BIGINT NOT NULL,
		PRIMARY KEY (issuer, grant_id))`,
}

// SQLStore is the enterprise key directory, the revocation store and the use
// counter on the platform database (SQLite or PostgreSQL). A provider agent
// can use it on its own local SQLite file.
type SQLStore struct{ db *store.DB }

var (
	_ Directory       = (*SQLStore)(nil)
	_ RevocationStore = (*SQLStore)(nil)
	_ UseCounter      = (*SQLStore)(nil)
	_ BatchUseStore   = (*SQLStore)(nil)
	_ BatchDirectory  = (*SQLStore)(nil)
)

// NewSQLStore migrates the grant tables and returns the store.
func NewSQLStore(ctx context.Context, db *store.DB) (*SQLStore, error) {
	if err := db.Migrate(ctx, "grant", sqlMigrations); err != nil {
		return nil, fmt.Errorf("grant store: %w", err)
	}
	return &SQLStore{db: db}, nil
}

// Enterprise is a directory entry.
type Enterprise struct {
	USCC         string
	Key          ed25519.PublicKey
	RegisteredAt time.Time
}

// RegisterEnterprise records the grant-signing key of an enterprise.
// Registering the same key again is a no-op; a different key needs replace.
// It reports whether anything changed.
func (s *SQLStore) RegisterEnterprise(ctx context.Context, uscc string, key ed25519.PublicKey, replace bool) (bool, error) {
	if uscc == "" || len(uscc) > maxPartyLen || !isPrintable(uscc) {
		return false, errors.New("register enterprise: missing or bad USCC")
	}
	if len(key) != ed25519.PublicKeySize {
		return false, fmt.Errorf("register enterprise %s: key has %d bytes, want %d", uscc, len(key), ed25519.PublicKeySize)
	}
	enc := base64.StdEncoding.EncodeToString(key)
	tx, err := s.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("register enterprise %s: %w", uscc, err)
	}
	defer tx.Rollback()
	var old string
	err = tx.QueryRowContext(ctx, s.db.Rebind(`SELECT public_key FROM grant_enterprises WHERE uscc = ?`), uscc).Scan(&old)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO grant_enterprises (uscc, public_key, registered_at) VALUES (?, ?, ?)`),
			uscc, enc, time.Now().UTC().Format(time.RFC3339Nano))
	case err != nil:
	case old == enc:
		return false, nil
	case !replace:
		return false, fmt.Errorf("register enterprise %s: %w", uscc, ErrEnterpriseExists)
	default:
		_, err = tx.ExecContext(ctx, s.db.Rebind(`UPDATE grant_enterprises SET public_key = ?, registered_at = ? WHERE uscc = ?`),
			enc, time.Now().UTC().Format(time.RFC3339Nano), uscc)
	}
	if err != nil {
		return false, fmt.Errorf("register enterprise %s: %w", uscc, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("register enterprise %s: commit: %w", uscc, err)
	}
	return true, nil
}

// EnterpriseKey implements Directory.
func (s *SQLStore) EnterpriseKey(ctx context.Context, uscc string) (ed25519.PublicKey, error) {
	var enc string
	err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT public_key FROM grant_enterprises WHERE uscc = ?`), uscc).Scan(&enc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("enterprise %q: %w", uscc, ErrUnknownEnterprise)
	}
	if err != nil {
		return nil, fmt.Errorf("enterprise key %q: %w", uscc, err)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("enterprise key %q: stored key is corrupt", uscc)
	}
	return ed25519.PublicKey(key), nil
}

// ListEnterprises returns the directory ordered by USCC.
func (s *SQLStore) ListEnterprises(ctx context.Context) ([]Enterprise, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT uscc, public_key, registered_at FROM grant_enterprises ORDER BY uscc`)
	if err != nil {
		return nil, fmt.Errorf("list enterprises: %w", err)
	}
	defer rows.Close()
	var out []Enterprise
	for rows.Next() {
		var e Enterprise
		var enc, at string
		if err := rows.Scan(&e.USCC, &enc, &at); err != nil {
			return nil, fmt.Errorf("list enterprises: %w", err)
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("list enterprises: stored key of %q is corrupt", e.USCC)
		}
		e.Key = key
		e.RegisteredAt, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list enterprises: %w", err)
	}
	return out, nil
}

// Revoke implements RevocationStore; the first revocation of a grant is kept.
func (s *SQLStore) Revoke(ctx context.Context, r Revocation) error {
	_, err := s.db.SQL.ExecContext(ctx, s.db.Rebind(`INSERT INTO grant_revocations (issuer, grant_id, revoked_at, statement)
		VALUES (?, ?, ?, ?) ON CONFLICT (issuer, grant_id) DO NOTHING`),
		r.Issuer, r.GrantID, r.RevokedAt.UTC().Format(time.RFC3339Nano), r.Token)
	if err != nil {
		return fmt.Errorf("store revocation of %s/%s: %w", r.Issuer, r.GrantID, err)
	}
	return nil
}

// IsRevoked implements RevocationStore.
func (s *SQLStore) IsRevoked(ctx context.Context, issuer, grantID string) (bool, error) {
	var one int
	err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT 1 FROM grant_revocations WHERE issuer = ? AND grant_id = ?`), issuer, grantID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("revocation lookup %s/%s: %w", issuer, grantID, err)
	}
	return true, nil
}

// Use implements UseCounter with one atomic upsert: the row is incremented
// only while it is below max, so concurrent requests cannot overshoot.
func (s *SQLStore) Use(ctx context.Context, issuer, grantID string, max int64) (int64, bool, error) {
	if max < 1 {
		return 0, false, nil
	}
	var n int64
	err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`INSERT INTO grant_uses (issuer, grant_id, uses) VALUES (?, ?, 1)
		ON CONFLICT (issuer, grant_id) DO UPDATE SET uses = grant_uses.uses + 1 WHERE grant_uses.uses < ?
		RETURNING uses`), issuer, grantID, max).Scan(&n)
	if err == nil {
		return n, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("count use of %s/%s: %w", issuer, grantID, err)
	}
	if err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT uses FROM grant_uses WHERE issuer = ? AND grant_id = ?`), issuer, grantID).Scan(&n); err != nil {
		return 0, false, fmt.Errorf("count use of %s/%s: %w", issuer, grantID, err)
	}
	return n, false, nil
}

// ListRevocations returns every stored revocation (with its signed
// statement) ordered by issuer and grant ID, so a platform can replay them
// to an agent that (re)joins; the agent verifies each statement itself.
func (s *SQLStore) ListRevocations(ctx context.Context) ([]Revocation, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT issuer, grant_id, revoked_at, statement FROM grant_revocations ORDER BY issuer, grant_id`)
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	defer rows.Close()
	var out []Revocation
	for rows.Next() {
		var r Revocation
		var at string
		if err := rows.Scan(&r.Issuer, &r.GrantID, &at, &r.Token); err != nil {
			return nil, fmt.Errorf("list revocations: %w", err)
		}
		r.RevokedAt, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	return out, nil
}

// UseCount returns how many uses of a grant are recorded, without
// recording one (for a dry-run check).
func (s *SQLStore) UseCount(ctx context.Context, issuer, grantID string) (int64, error) {
	var n int64
	err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT uses FROM grant_uses WHERE issuer = ? AND grant_id = ?`), issuer, grantID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("use count of %s/%s: %w", issuer, grantID, err)
	}
	return n, nil
}

// batchParams bounds the bound parameters of one statement (SQLite allows
// 32766, PostgreSQL 65535).
const batchParams = 8000

// placeholders returns "(?, ?), (?, ?), ..." for rows of cols values.
func placeholders(rows, cols int) string {
	b := make([]byte, 0, rows*(3*cols+2))
	for r := range rows {
		if r > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '(')
		for c := range cols {
			if c > 0 {
				b = append(b, ", "...)
			}
			b = append(b, '?')
		}
		b = append(b, ')')
	}
	return string(b)
}

// inList returns "?, ?, ..." for n values.
func inList(n int) string {
	b := make([]byte, 0, 3*n)
	for i := range n {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '?')
	}
	return string(b)
}

// EnterpriseKeys implements BatchDirectory with one query per few thousand
// enterprises.
func (s *SQLStore) EnterpriseKeys(ctx context.Context, usccs []string) (map[string]ed25519.PublicKey, error) {
	out := make(map[string]ed25519.PublicKey, len(usccs))
	for lo := 0; lo < len(usccs); lo += batchParams {
		part := usccs[lo:min(lo+batchParams, len(usccs))]
		args := make([]any, len(part))
		for i, u := range part {
			args[i] = u
		}
		rows, err := s.db.SQL.QueryContext(ctx, s.db.Rebind(`SELECT uscc, public_key FROM grant_enterprises WHERE uscc IN (`+inList(len(part))+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("enterprise keys: %w", err)
		}
		for rows.Next() {
			var u, enc string
			if err := rows.Scan(&u, &enc); err != nil {
				rows.Close()
				return nil, fmt.Errorf("enterprise keys: %w", err)
			}
			key, err := base64.StdEncoding.DecodeString(enc)
			if err != nil || len(key) != ed25519.PublicKeySize {
				rows.Close()
				return nil, fmt.Errorf("enterprise key %q: stored key is corrupt", u)
			}
			out[u] = key
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("enterprise keys: %w", err)
		}
	}
	return out, nil
}

// RegisterEnterprises records many enterprises' keys in one transaction
// (replacing existing keys) and returns the USCCs whose key changed. Bulk
// onboarding and an agent's directory sync use it.
func (s *SQLStore) RegisterEnterprises(ctx context.Context, es []Enterprise) ([]string, error) {
	for _, e := range es {
		if e.USCC == "" || len(e.USCC) > maxPartyLen || !isPrintable(e.USCC) {
			return nil, fmt.Errorf("register enterprises: missing or bad USCC %.40q", e.USCC)
		}
		if len(e.Key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("register enterprise %s: key has %d bytes, want %d", e.USCC, len(e.Key), ed25519.PublicKeySize)
		}
	}
	tx, err := s.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("register enterprises: %w", err)
	}
	defer tx.Rollback()
	old := make(map[string]string, len(es))
	want := make(map[string]string, len(es))
	var order []string
	for _, e := range es {
		if _, dup := want[e.USCC]; !dup {
			order = append(order, e.USCC)
		}
		want[e.USCC] = base64.StdEncoding.EncodeToString(e.Key)
	}
	for lo := 0; lo < len(order); lo += batchParams {
		part := order[lo:min(lo+batchParams, len(order))]
		args := make([]any, len(part))
		for i, u := range part {
			args[i] = u
		}
		rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT uscc, public_key FROM grant_enterprises WHERE uscc IN (`+inList(len(part))+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("register enterprises: %w", err)
		}
		for rows.Next() {
			var u, enc string
			if err := rows.Scan(&u, &enc); err != nil {
				rows.Close()
				return nil, fmt.Errorf("register enterprises: %w", err)
			}
			old[u] = enc
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("register enterprises: %w", err)
		}
	}
	var changed []string
	for _, u := range order {
		if o, ok := old[u]; !ok || o != want[u] {
			changed = append(changed, u)
		}
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	const cols = 3
	for lo := 0; lo < len(changed); lo += batchParams / cols {
		part := changed[lo:min(lo+batchParams/cols, len(changed))]
		args := make([]any, 0, cols*len(part))
		for _, u := range part {
			args = append(args, u, want[u], now)
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO grant_enterprises (uscc, public_key, registered_at) VALUES `+placeholders(len(part), cols)+`
			ON CONFLICT (uscc) DO UPDATE SET public_key = excluded.public_key, registered_at = excluded.registered_at`), args...); err != nil {
			return nil, fmt.Errorf("register enterprises: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("register enterprises: commit: %w", err)
	}
	return changed, nil
}

// UseBatch implements BatchUseStore in its own transaction.
func (s *SQLStore) UseBatch(ctx context.Context, reqs []UseRequest) ([]UseOutcome, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	tx, err := s.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("use batch: begin: %w", err)
	}
	defer tx.Rollback()
	out, err := s.UseBatchTx(ctx, tx, reqs)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("use batch: commit: %w", err)
	}
	return out, nil
}

// UseBatchTx checks revocation and records uses for reqs (in order) inside
// tx, so that a caller can commit them atomically with other writes (the
// platform commits them with the audit entries of the decisions: if the log
// cannot be written, no use is counted either). A few statements per few
// thousand grants, whatever the batch size.
//
// Exactness under concurrency: on PostgreSQL the grants' rows are first
// created if missing and then locked (SELECT ... FOR UPDATE) before they
// are read, so a concurrent batch or Use waits; on SQLite the transaction
// is the only writer (a read snapshot that went stale fails the write with
// SQLITE_BUSY instead of overwriting a newer count).
func (s *SQLStore) UseBatchTx(ctx context.Context, tx *sql.Tx, reqs []UseRequest) ([]UseOutcome, error) {
	out := make([]UseOutcome, len(reqs))
	if len(reqs) == 0 {
		return out, nil
	}
	type key struct{ iss, id string }
	var keys []key
	seen := make(map[key]bool, len(reqs))
	var issuers []string
	seenIss := map[string]bool{}
	for _, r := range reqs {
		k := key{r.Issuer, r.GrantID}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		if !seenIss[r.Issuer] {
			seenIss[r.Issuer] = true
			issuers = append(issuers, r.Issuer)
		}
	}
	pg := s.db.Dialect == store.Postgres
	if pg {
		// Create missing rows (no-op for existing ones) so that every row
		// can be locked below; a concurrent creator of the same row makes
		// this wait for its commit.
		for lo := 0; lo < len(keys); lo += batchParams / 2 {
			part := keys[lo:min(lo+batchParams/2, len(keys))]
			args := make([]any, 0, 2*len(part))
			for _, k := range part {
				args = append(args, k.iss, k.id)
			}
			vals := strings.Repeat("(?, ?, 0), ", len(part))
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO grant_uses (issuer, grant_id, uses) VALUES `+
				vals[:len(vals)-2]+` ON CONFLICT (issuer, grant_id) DO NOTHING`), args...); err != nil {
				return nil, fmt.Errorf("use batch: create counters: %w", err)
			}
		}
	}
	revoked := map[key]bool{}
	uses := make(map[key]int64, len(keys))
	lock := ""
	if pg {
		lock = " FOR UPDATE"
	}
	for lo := 0; lo < len(issuers); lo += batchParams {
		part := issuers[lo:min(lo+batchParams, len(issuers))]
		args := make([]any, len(part))
		for i, u := range part {
			args[i] = u
		}
		in := inList(len(part))
		if err := scanPairs(ctx, tx, s.db.Rebind(`SELECT issuer, grant_id FROM grant_revocations WHERE issuer IN (`+in+`)`), args, func(iss, id string, _ int64) {
			revoked[key{iss, id}] = true
		}, false); err != nil {
			return nil, fmt.Errorf("use batch: revocation lookup: %w", err)
		}
		if err := scanPairs(ctx, tx, s.db.Rebind(`SELECT issuer, grant_id, uses FROM grant_uses WHERE issuer IN (`+in+`)`+lock), args, func(iss, id string, n int64) {
			if seen[key{iss, id}] {
				uses[key{iss, id}] = n
			}
		}, true); err != nil {
			return nil, fmt.Errorf("use batch: read counters: %w", err)
		}
	}
	changed := map[key]bool{}
	for i, r := range reqs {
		k := key{r.Issuer, r.GrantID}
		if revoked[k] {
			out[i].Revoked = true
			continue
		}
		n := uses[k]
		if r.Max >= 1 && n < r.Max {
			n++
			uses[k] = n
			changed[k] = true
			out[i].Used = true
		}
		out[i].Count = n
	}
	var upd []key
	for _, k := range keys {
		if changed[k] {
			upd = append(upd, k)
		}
	}
	for lo := 0; lo < len(upd); lo += batchParams / 3 {
		part := upd[lo:min(lo+batchParams/3, len(upd))]
		args := make([]any, 0, 3*len(part))
		for _, k := range part {
			args = append(args, k.iss, k.id, uses[k])
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO grant_uses (issuer, grant_id, uses) VALUES `+placeholders(len(part), 3)+`
			ON CONFLICT (issuer, grant_id) DO UPDATE SET uses = excluded.uses`), args...); err != nil {
			return nil, fmt.Errorf("use batch: write counters: %w", err)
		}
	}
	return out, nil
}

// scanPairs runs a query returning (issuer, grant_id[, uses]) rows.
func scanPairs(ctx context.Context, tx *sql.Tx, query string, args []any, fn func(iss, id string, n int64), withCount bool) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var iss, id string
		var n int64
		if withCount {
			err = rows.Scan(&iss, &id, &n)
		} else {
			err = rows.Scan(&iss, &id)
		}
		if err != nil {
			return err
		}
		fn(iss, id, n)
	}
	return rows.Err()
}
