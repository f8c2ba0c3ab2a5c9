package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ModelRow is one version of a registered model. Record is the full
// registry entry as JSON (hub.Model): parties, feature names,
// hyperparameters, metrics. No weights: each party keeps its own.
type ModelRow struct {
	Name      string
	Version   int
	Status    string // training (version reserved), ready
	JobID     string
	AUC, KS   float64
	Record    []byte
	CreatedAt time.Time
}

// Model statuses.
const (
	ModelTraining = "training"
	ModelReady    = "ready"
)

var modelMigrations = []string{
	`CREATE TABLE IF NOT EXISTS models (
		name TEXT NOT NULL,
		version INTEGER NOT NULL,
		status TEXT NOT NULL,
		job_id TEXT NOT NULL,
		auc DOUBLE PRECISION NOT NULL,
		ks DOUBLE PRECISION NOT NULL,
		record TEXT NOT NULL,
		created_at TEXT NOT NULL,
		PRIMARY KEY (name, version))`,
}

// Models is the model registry.
type Models struct{ db *DB }

// NewModels migrates the models table.
func NewModels(ctx context.Context, db *DB) (*Models, error) {
	if err := db.Migrate(ctx, "models", modelMigrations); err != nil {
		return nil, err
	}
	return &Models{db: db}, nil
}

// Reserve allocates the next version of name for job jobID (status
// training). Concurrent reservations of one name get distinct versions: the
// primary key refuses a duplicate and Reserve tries the next number.
func (m *Models) Reserve(ctx context.Context, name, jobID string) (int, error) {
	for attempt := 0; attempt < 5; attempt++ {
		var last int
		if err := m.db.SQL.QueryRowContext(ctx, m.db.Rebind(`SELECT COALESCE(MAX(version), 0) FROM models WHERE name = ?`), name).Scan(&last); err != nil {
			return 0, fmt.Errorf("reserve model %q: %w", name, err)
		}
		_, err := m.db.SQL.ExecContext(ctx, m.db.Rebind(`INSERT INTO models (name, version, status, job_id, auc, ks, record, created_at) VALUES (?, ?, ?, ?, 0, 0, '{}', ?)`),
			name, last+1, ModelTraining, jobID, time.Now().UTC().Format(time.RFC3339Nano))
		if err == nil {
			return last + 1, nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("reserve model %q: %w", name, ctx.Err())
		}
	}
	return 0, fmt.Errorf("reserve model %q: could not allocate a version (concurrent trainings?)", name)
}

// Release drops a reserved version whose training failed.
func (m *Models) Release(ctx context.Context, name string, version int) error {
	_, err := m.db.SQL.ExecContext(ctx, m.db.Rebind(`DELETE FROM models WHERE name = ? AND version = ? AND status = ?`), name, version, ModelTraining)
	if err != nil {
		return fmt.Errorf("release model %s v%d: %w", name, version, err)
	}
	return nil
}

// Register stores the record of a reserved version and marks it ready.
func (m *Models) Register(ctx context.Context, row ModelRow) error {
	res, err := m.db.SQL.ExecContext(ctx, m.db.Rebind(`UPDATE models SET status = ?, job_id = ?, auc = ?, ks = ?, record = ?, created_at = ? WHERE name = ? AND version = ? AND status = ?`),
		ModelReady, row.JobID, row.AUC, row.KS, string(row.Record), row.CreatedAt.UTC().Format(time.RFC3339Nano), row.Name, row.Version, ModelTraining)
	if err != nil {
		return fmt.Errorf("register model %s v%d: %w", row.Name, row.Version, err)
	}
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return fmt.Errorf("register model %s v%d: version was not reserved", row.Name, row.Version)
	}
	return nil
}

const modelCols = `name, version, status, job_id, auc, ks, record, created_at`

func scanModel(s interface{ Scan(...any) error }) (ModelRow, error) {
	var r ModelRow
	var rec, created string
	if err := s.Scan(&r.Name, &r.Version, &r.Status, &r.JobID, &r.AUC, &r.KS, &rec, &created); err != nil {
		return ModelRow{}, err
	}
	r.Record = []byte(rec)
	r.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	return r, nil
}

// Get returns a ready version of name (version 0: the latest) or ErrNotFound.
func (m *Models) Get(ctx context.Context, name string, version int) (ModelRow, error) {
	q := `SELECT ` + modelCols + ` FROM models WHERE name = ? AND status = ? ORDER BY version DESC LIMIT 1`
	args := []any{name, ModelReady}
	if version > 0 {
		q = `SELECT ` + modelCols + ` FROM models WHERE name = ? AND status = ? AND version = ?`
		args = append(args, version)
	}
	r, err := scanModel(m.db.SQL.QueryRowContext(ctx, m.db.Rebind(q), args...))
	if errors.Is(err, sql.ErrNoRows) {
		if version > 0 {
			return ModelRow{}, fmt.Errorf("model %s v%d: %w", name, version, ErrNotFound)
		}
		return ModelRow{}, fmt.Errorf("model %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return ModelRow{}, fmt.Errorf("get model %s: %w", name, err)
	}
	return r, nil
}

// List returns the latest ready version of every model, by name.
func (m *Models) List(ctx context.Context) ([]ModelRow, error) {
	rows, err := m.db.SQL.QueryContext(ctx, m.db.Rebind(`SELECT `+modelCols+` FROM models m WHERE status = ? AND version = (SELECT MAX(version) FROM models WHERE name = m.name AND status = ?) ORDER BY name`), ModelReady, ModelReady)
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	defer rows.Close()
	var out []ModelRow
	for rows.Next() {
		r, err := scanModel(rows)
		if err != nil {
			return nil, fmt.Errorf("list models: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
