package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"idbridge/models"
)

// countAuditEvent adds one to the site's count of ev on its UTC day, in the
// caller's transaction (audit_daily feeds the admin page's chart).
func (tx *Tx) countAuditEvent(siteID string, ev models.AuditEventType, at time.Time) error {
	err := tx.db.Exec(`INSERT INTO audit_daily (site_id, day, event, count) VALUES (?, ?, ?, 1)
		ON CONFLICT (site_id, day, event) DO UPDATE SET count = audit_daily.count + 1`,
		siteID, at.UTC().Format(time.DateOnly), string(ev)).Error
	if err != nil {
		return fmt.Errorf("count audit event: %w", translate(err))
	}
	return nil
}

// AuditDayCount is how many events of one type a site had on one UTC day.
type AuditDayCount struct {
	Day   string // YYYY-MM-DD
	Event models.AuditEventType
	Count int64
}

// AuditDayCounts returns the site's per-day counts of the given events on
// the UTC days from through to (inclusive, YYYY-MM-DD).
func (tx *Tx) AuditDayCounts(siteID, from, to string, events []models.AuditEventType) ([]AuditDayCount, error) {
	names := make([]string, len(events))
	for i, e := range events {
		names[i] = string(e)
	}
	var rows []struct {
		Day   string
		Event string
		Count int64
	}
	err := tx.db.Raw(`SELECT day, event, count FROM audit_daily WHERE site_id = ? AND day >= ? AND day <= ? AND event IN ? ORDER BY day`,
		siteID, from, to, names).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("audit day counts: %w", translate(err))
	}
	out := make([]AuditDayCount, len(rows))
	for i, r := range rows {
		out[i] = AuditDayCount{Day: r.Day, Event: models.AuditEventType(r.Event), Count: r.Count}
	}
	return out, nil
}

// AuditCursor is where a page of audit events continues: after the event
// at (OccurredAt, ID) in newest-first order.
type AuditCursor struct {
	OccurredAt time.Time
	ID         string
}

// AuditPageQuery selects a page of a site's audit events, newest first.
type AuditPageQuery struct {
	From, To  time.Time // From inclusive, To exclusive; zero: unbounded
	AccountID string    // actor or target
	Event     models.AuditEventType
	After     *AuditCursor
	Limit     int // 1..MaxAuditPage
}

// MaxAuditPage bounds one page of audit events.
const MaxAuditPage = 5000

// FindAuditPage returns up to q.Limit of the site's events matching q,
// newest first, after q.After. Keyset paging: every page costs the same,
// however deep. Rows are scanned by hand: the CSV export reads the whole
// log through here.
func (tx *Tx) FindAuditPage(siteID string, q AuditPageQuery) ([]models.AuditEvent, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxAuditPage)
	var where strings.Builder
	args := []any{siteID}
	where.WriteString("site_id = ?")
	if !q.From.IsZero() {
		where.WriteString(" AND occurred_at >= ?")
		args = append(args, q.From.UTC())
	}
	if !q.To.IsZero() {
		where.WriteString(" AND occurred_at < ?")
		args = append(args, q.To.UTC())
	}
	if q.Event != "" {
		where.WriteString(" AND event = ?")
		args = append(args, string(q.Event))
	}
	if q.After != nil {
		at := q.After.OccurredAt.UTC()
		// The redundant "occurred_at <= ?" is what lets both databases
		// start the index scan at the cursor: with the OR alone, each page
		// read and discarded every newer event again (a page deep in a
		// million events took 214 ms on PostgreSQL instead of 2, and an
		// export was quadratic in the log's length).
		where.WriteString(" AND occurred_at <= ? AND (occurred_at < ? OR id < ?)")
		args = append(args, at, at, q.After.ID)
	}
	const cols = `id, occurred_at, actor_account_id, target_account_id, event, section, fields, ip, user_agent, idp, protocol, reason`
	order := ` ORDER BY occurred_at DESC, id DESC LIMIT ` + strconv.Itoa(limit)
	query := `SELECT ` + cols + ` FROM audit_events WHERE ` + where.String() + order
	if q.AccountID != "" {
		// Events by or about the account: each side newest first from its
		// own index, then merged. One query with "actor = ? OR target = ?"
		// would, as a prepared statement's generic plan, read the whole
		// site's log when most events have no target.
		query = `SELECT ` + cols + ` FROM (
			SELECT * FROM (SELECT ` + cols + ` FROM audit_events WHERE ` + where.String() + ` AND actor_account_id = ?` + order + `) a
			UNION ALL
			SELECT * FROM (SELECT ` + cols + ` FROM audit_events WHERE ` + where.String() + ` AND target_account_id = ? AND actor_account_id <> ?` + order + `) b
		) u` + order
		both := append(append(append([]any{}, args...), q.AccountID), args...)
		args = append(both, q.AccountID, q.AccountID)
	}
	rows, err := tx.db.Raw(query, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("find audit events: %w", translate(err))
	}
	defer rows.Close()
	out := make([]models.AuditEvent, 0, min(limit, 1024))
	for rows.Next() {
		ev := models.AuditEvent{SiteID: siteID}
		var event, fields string
		if err := rows.Scan(&ev.ID, &ev.OccurredAt, &ev.ActorAccountID, &ev.TargetAccountID, &event, &ev.Section, &fields,
			&ev.IP, &ev.UserAgent, &ev.IdP, &ev.Protocol, &ev.Reason); err != nil {
			return nil, fmt.Errorf("read audit events: %w", translate(err))
		}
		ev.Event = models.AuditEventType(event)
		ev.OccurredAt = ev.OccurredAt.UTC()
		if fields != "" && fields != "[]" {
			if err := json.Unmarshal([]byte(fields), &ev.Fields); err != nil {
				return nil, fmt.Errorf("decode audit fields of event %s: %w", ev.ID, err)
			}
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit events: %w", translate(err))
	}
	return out, nil
}

// CreateAuditEvents appends many events to the site's audit log at once
// (a load test's history, an import), with their day counts, in the
// caller's transaction: one multi-row INSERT per thousand events.
func (tx *Tx) CreateAuditEvents(siteID string, evs []models.AuditEvent) error {
	rows := make([]auditEventRow, 0, len(evs))
	days := map[[2]string]int64{}
	for _, ev := range evs {
		if !ev.Event.Valid() {
			return models.Errorf(models.CodeInvalid, "unknown audit event %q", ev.Event)
		}
		at := ev.OccurredAt
		if at.IsZero() {
			at = tx.s.Now()
		}
		at = storedTime(at)
		fields := "[]"
		if len(ev.Fields) > 0 {
			b, err := json.Marshal(ev.Fields)
			if err != nil {
				return err
			}
			fields = string(b)
		}
		rows = append(rows, auditEventRow{SiteID: siteID, ID: NewID("ev"), OccurredAt: at,
			ActorAccountID: ev.ActorAccountID, TargetAccountID: ev.TargetAccountID, Event: string(ev.Event),
			Section: ev.Section, Fields: fields, IP: ev.IP, UserAgent: ev.UserAgent, IdP: ev.IdP, Protocol: ev.Protocol, Reason: ev.Reason})
		days[[2]string{at.Format(time.DateOnly), string(ev.Event)}]++
	}
	if err := tx.db.CreateInBatches(rows, 1000).Error; err != nil {
		return fmt.Errorf("record audit events: %w", translate(err))
	}
	for k, n := range days {
		err := tx.db.Exec(`INSERT INTO audit_daily (site_id, day, event, count) VALUES (?, ?, ?, ?)
			ON CONFLICT (site_id, day, event) DO UPDATE SET count = audit_daily.count + excluded.count`, siteID, k[0], k[1], n).Error
		if err != nil {
			return fmt.Errorf("count audit events: %w", translate(err))
		}
	}
	return nil
}

// Analyze refreshes PostgreSQL's planner statistics (after a bulk load);
// nothing on SQLite.
func (s *Store) Analyze(ctx context.Context) error {
	if s.dialect != Postgres {
		return nil
	}
	return s.db.WithContext(ctx).Exec(`ANALYZE`).Error
}
