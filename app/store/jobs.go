package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"idbridge/models"
)

// lockKeySQL turns a job name into a PostgreSQL advisory lock key. Advisory
// locks are per database, so the key includes the schema: two idbridge
// schemas in one database (tests do this) lock independently.
const lockKeySQL = `hashtextextended('idbridge job: ' || current_schema() || '/' || $1, 0)`

// TryLock takes the advisory lock called name without waiting, so that
// work meant to happen once across replicas (a scheduled sync) runs on one
// of them at a time. ok is false when another session holds it. The lock
// lives on a dedicated connection until release is called (or the
// connection dies, which releases it too). On SQLite, where idbridge runs
// as one process, it always succeeds: callers keep their own in-process
// exclusion.
func (s *Store) TryLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	if s.dialect != Postgres {
		return func() {}, true, nil
	}
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("try lock %s: %w", name, err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+lockKeySQL+`)`, name).Scan(&ok); err != nil {
		_ = conn.Close()
		return nil, false, fmt.Errorf("try lock %s: %w", name, err)
	}
	if !ok {
		_ = conn.Close()
		return nil, false, nil
	}
	return func() {
		// A fresh context: the unlock must happen even if ctx is done.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(uctx, `SELECT pg_advisory_unlock(`+lockKeySQL+`)`, name)
		_ = conn.Close()
	}, true, nil
}

// JobRun is when a scheduled job last ran and how it went.
type JobRun struct {
	Name           string
	LastStartedAt  *time.Time
	LastFinishedAt *time.Time
	LastStatus     string // "ok" or "failed"
	LastMessage    string
}

type jobRow struct {
	Name           string `gorm:"primaryKey"`
	LastStartedAt  *time.Time
	LastFinishedAt *time.Time
	LastStatus     string
	LastMessage    string
}

func (jobRow) TableName() string { return "scheduled_jobs" }

// FindJobRun returns what is known of the job's runs; a job that never ran
// is not found.
func (tx *Tx) FindJobRun(name string) (*JobRun, error) {
	var r jobRow
	if err := tx.db.Where("name = ?", name).Take(&r).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, &models.Error{Code: models.CodeNotFound, Message: "the job has never run"}
		}
		return nil, fmt.Errorf("find job run %s: %w", name, translate(err))
	}
	return &JobRun{Name: r.Name, LastStartedAt: utcPtr(r.LastStartedAt), LastFinishedAt: utcPtr(r.LastFinishedAt),
		LastStatus: r.LastStatus, LastMessage: r.LastMessage}, nil
}

// StartJobRun records that the job starts now.
func (tx *Tx) StartJobRun(name string) error {
	err := tx.db.Exec(`INSERT INTO scheduled_jobs (name, last_started_at) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET last_started_at = excluded.last_started_at`, name, tx.s.Now()).Error
	if err != nil {
		return fmt.Errorf("start job run %s: %w", name, translate(err))
	}
	return nil
}

// FinishJobRun records that the job finished now, with its status and a
// one-line message.
func (tx *Tx) FinishJobRun(name, status, message string) error {
	err := tx.db.Exec(`INSERT INTO scheduled_jobs (name, last_finished_at, last_status, last_message) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET last_finished_at = excluded.last_finished_at,
		last_status = excluded.last_status, last_message = excluded.last_message`,
		name, tx.s.Now(), status, message).Error
	if err != nil {
		return fmt.Errorf("finish job run %s: %w", name, translate(err))
	}
	return nil
}
