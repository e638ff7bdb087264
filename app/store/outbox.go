package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"idbridge/models"
)

// AddOutboxItems records directory changes for the sync worker, in the
// caller's transaction: they exist exactly when the change they describe
// was committed. Items get status pending, are due at once, and are
// numbered in insertion order.
func (tx *Tx) AddOutboxItems(items ...*models.OutboxItem) error {
	if len(items) == 0 {
		return nil
	}
	now := tx.s.Now()
	var b strings.Builder
	b.WriteString(`INSERT INTO outbox (site_id, resource_type, resource_id, op, payload, status, attempts, next_attempt_at, last_error, created_at, updated_at) VALUES `)
	args := make([]any, 0, 8*len(items))
	for i, it := range items {
		if it.SiteID == "" || it.ResourceID == "" || it.Op == "" {
			return fmt.Errorf("add outbox item: site, resource and op are required")
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`(?, ?, ?, ?, ?, ?, 0, ?, '', ?, ?)`)
		payload := it.Payload
		if len(payload) == 0 {
			payload = []byte("{}")
		}
		it.Status, it.NextAttemptAt, it.CreatedAt, it.UpdatedAt = models.OutboxStatusPending, now, now, now
		args = append(args, it.SiteID, it.ResourceType, it.ResourceID, string(it.Op), string(payload), it.Status, now, now, now)
	}
	if err := tx.db.Exec(b.String(), args...).Error; err != nil {
		return fmt.Errorf("add outbox items: %w", translate(err))
	}
	for _, it := range items {
		tx.noteOutbox(it.SiteID)
	}
	return nil
}

// FindOutboxItems returns the site's outbox items in order, at most limit
// of them after the item with ID after (0: from the start).
func (tx *Tx) FindOutboxItems(siteID string, after int64, limit int) ([]models.OutboxItem, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := tx.db.Raw(`SELECT site_id, id, resource_type, resource_id, op, payload, status, attempts,
		next_attempt_at, last_error, created_at, updated_at FROM outbox WHERE site_id = ? AND id > ? ORDER BY id LIMIT ?`,
		siteID, after, limit).Rows()
	if err != nil {
		return nil, fmt.Errorf("find outbox items: %w", translate(err))
	}
	defer rows.Close()
	var out []models.OutboxItem
	for rows.Next() {
		var it models.OutboxItem
		var op, payload string
		if err := rows.Scan(&it.SiteID, &it.ID, &it.ResourceType, &it.ResourceID, &op, &payload, &it.Status, &it.Attempts,
			&it.NextAttemptAt, &it.LastError, &it.CreatedAt, &it.UpdatedAt); err != nil {
			return nil, fmt.Errorf("find outbox items: %w", err)
		}
		it.Op, it.Payload = models.OutboxOp(op), []byte(payload)
		it.NextAttemptAt, it.CreatedAt, it.UpdatedAt = it.NextAttemptAt.UTC(), it.CreatedAt.UTC(), it.UpdatedAt.UTC()
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find outbox items: %w", translate(err))
	}
	return out, nil
}

// CountOutboxItems counts the site's outbox items.
func (tx *Tx) CountOutboxItems(siteID string) (int, error) {
	return tx.count("outbox", " WHERE site_id = ?", []any{siteID})
}

// OutboxBacklog is what the outbox has still to apply, over all sites: an
// operator's figure (the /metrics backlog gauges), counts and a time only,
// never a site's data. It is the one store read not scoped to a site.
type OutboxBacklog struct {
	Pending int
	Oldest  time.Time // creation time of the oldest pending item; zero when none
}

// OutboxBacklog reads the backlog from the outbox_pending index.
func (s *Store) OutboxBacklog(ctx context.Context) (OutboxBacklog, error) {
	var b OutboxBacklog
	err := s.sqlDB.QueryRowContext(ctx, s.native(`SELECT count(*) FROM outbox WHERE status = ?`),
		models.OutboxStatusPending).Scan(&b.Pending)
	if err != nil {
		return b, fmt.Errorf("outbox backlog: %w", translate(err))
	}
	if b.Pending == 0 {
		return b, nil
	}
	// The column itself, not min() of it: SQLite's driver reads a time
	// only from a column declared as one.
	err = s.sqlDB.QueryRowContext(ctx, s.native(`SELECT created_at FROM outbox WHERE status = ? ORDER BY created_at LIMIT 1`),
		models.OutboxStatusPending).Scan(&b.Oldest)
	if errors.Is(err, sql.ErrNoRows) { // applied meanwhile
		return OutboxBacklog{}, nil
	}
	if err != nil {
		return b, fmt.Errorf("outbox backlog: %w", translate(err))
	}
	b.Oldest = b.Oldest.UTC()
	return b, nil
}
