package grant

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
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
