package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Job is one PSI, training or scoring job coordinated by the platform. Its
// result holds sizes and metrics, never an ID or a value.
type Job struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	Parties    []string        `json:"parties"`
	Status     string          `json:"status"` // running, done, failed
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
}

// Job statuses.
const (
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

var jobMigrations = []string{
	`CREATE TABLE IF NOT EXISTS jobs (
		id TEXT PRIMARY KEY,
		kind TEXT NOT NULL,
		parties TEXT NOT NULL,
		status TEXT NOT NULL,
		result TEXT NOT NULL,
		error TEXT NOT NULL,
		created_at TEXT NOT NULL,
		finished_at TEXT NOT NULL)`,
}

// Jobs stores job records.
type Jobs struct{ db *DB }

// NewJobs migrates the jobs table.
func NewJobs(ctx context.Context, db *DB) (*Jobs, error) {
	if err := db.Migrate(ctx, "jobs", jobMigrations); err != nil {
		return nil, err
	}
	return &Jobs{db: db}, nil
}

// Create records a new running job.
func (j *Jobs) Create(ctx context.Context, job Job) error {
	parties, _ := json.Marshal(job.Parties)
	if job.CreatedAt.IsZero() {
		job.CreatedAt = time.Now().UTC()
	}
	_, err := j.db.SQL.ExecContext(ctx, j.db.Rebind(`INSERT INTO jobs (id, kind, parties, status, result, error, created_at, finished_at) VALUES (?, ?, ?, ?, '', '', ?, '')`),
		job.ID, job.Kind, string(parties), JobRunning, job.CreatedAt.Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("create job %s: %w", job.ID, err)
	}
	return nil
}

// Finish records a job's outcome: done with result, or failed with jobErr.
func (j *Jobs) Finish(ctx context.Context, id string, result any, jobErr error) error {
	st, res, msg := JobDone, []byte(nil), ""
	if jobErr != nil {
		st, msg = JobFailed, jobErr.Error()
	} else if result != nil {
		var err error
		if res, err = json.Marshal(result); err != nil {
			return fmt.Errorf("finish job %s: %w", id, err)
		}
	}
	_, err := j.db.SQL.ExecContext(ctx, j.db.Rebind(`UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ? WHERE id = ?`),
		st, string(res), msg, time.Now().UTC().Format(time.RFC3339Nano), id)
	if err != nil {
		return fmt.Errorf("finish job %s: %w", id, err)
	}
	return nil
}

// Get returns a job or ErrNotFound.
func (j *Jobs) Get(ctx context.Context, id string) (Job, error) {
	var job Job
	var parties, result, created, finished string
	err := j.db.SQL.QueryRowContext(ctx, j.db.Rebind(`SELECT id, kind, parties, status, result, error, created_at, finished_at FROM jobs WHERE id = ?`), id).
		Scan(&job.ID, &job.Kind, &parties, &job.Status, &result, &job.Error, &created, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("get job %q: %w", id, err)
	}
	if err := json.Unmarshal([]byte(parties), &job.Parties); err != nil {
		return Job{}, fmt.Errorf("job %q: parties: %w", id, err)
	}
	if result != "" {
		job.Result = json.RawMessage(result)
	}
	job.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	if finished != "" {
		job.FinishedAt, _ = time.Parse(time.RFC3339Nano, finished)
	}
	return job, nil
}
