package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Party is one registered participant: an agent the platform dials
// (providers, label-holding banks) or a client identity (banks, auditors).
type Party struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Address string    `json:"address,omitempty"` // host:port of its agent; empty for pure clients
	CertSHA string    `json:"cert_sha256"`       // SHA-256 of the certificate seen when it was added
	AddedAt time.Time `json:"added_at"`
}

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// Registry stores the parties known to the platform.
type Registry interface {
	PutParty(ctx context.Context, p Party) error
	GetParty(ctx context.Context, name string) (Party, error)
	ListParties(ctx context.Context) ([]Party, error)
	DeleteParty(ctx context.Context, name string) error
}

var registryMigrations = []string{
	`CREATE TABLE IF NOT EXISTS parties (
		name TEXT PRIMARY KEY,
		role TEXT NOT NULL,
		address TEXT NOT NULL,
		cert_sha256 TEXT NOT NULL,
		added_at TEXT NOT NULL)`,
}

// SQLRegistry is the Registry on a SQLite or PostgreSQL database.
type SQLRegistry struct{ db *DB }

// NewRegistry migrates the registry tables and returns the registry.
func NewRegistry(ctx context.Context, db *DB) (*SQLRegistry, error) {
	if err := db.Migrate(ctx, "registry", registryMigrations); err != nil {
		return nil, err
	}
	return &SQLRegistry{db: db}, nil
}

// PutParty inserts or replaces a party.
func (r *SQLRegistry) PutParty(ctx context.Context, p Party) error {
	if p.Name == "" || p.Role == "" {
		return errors.New("put party: name and role are required")
	}
	if p.AddedAt.IsZero() {
		p.AddedAt = time.Now().UTC()
	}
	_, err := r.db.SQL.ExecContext(ctx, r.db.Rebind(`INSERT INTO parties (name, role, address, cert_sha256, added_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET role = excluded.role, address = excluded.address,
			cert_sha256 = excluded.cert_sha256, added_at = excluded.added_at`),
		p.Name, p.Role, p.Address, p.CertSHA, p.AddedAt.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("put party %q: %w", p.Name, err)
	}
	return nil
}

// GetParty returns the named party or ErrNotFound.
func (r *SQLRegistry) GetParty(ctx context.Context, name string) (Party, error) {
	row := r.db.SQL.QueryRowContext(ctx, r.db.Rebind(`SELECT name, role, address, cert_sha256, added_at FROM parties WHERE name = ?`), name)
	p, err := scanParty(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Party{}, fmt.Errorf("party %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Party{}, fmt.Errorf("get party %q: %w", name, err)
	}
	return p, nil
}

// ListParties returns all parties ordered by name.
func (r *SQLRegistry) ListParties(ctx context.Context) ([]Party, error) {
	rows, err := r.db.SQL.QueryContext(ctx, `SELECT name, role, address, cert_sha256, added_at FROM parties ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list parties: %w", err)
	}
	defer rows.Close()
	var out []Party
	for rows.Next() {
		p, err := scanParty(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list parties: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list parties: %w", err)
	}
	return out, nil
}

// DeleteParty removes a party; deleting an unknown party is ErrNotFound.
func (r *SQLRegistry) DeleteParty(ctx context.Context, name string) error {
	res, err := r.db.SQL.ExecContext(ctx, r.db.Rebind(`DELETE FROM parties WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("delete party %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("party %q: %w", name, ErrNotFound)
	}
	return nil
}

func scanParty(scan func(...any) error) (Party, error) {
	var p Party
	var added string
	if err := scan(&p.Name, &p.Role, &p.Address, &p.CertSHA, &added); err != nil {
		return Party{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, added)
	if err != nil {
		return Party{}, fmt.Errorf("party %q: bad added_at %q: %w", p.Name, added, err)
	}
	p.AddedAt = t
	return p, nil
}
