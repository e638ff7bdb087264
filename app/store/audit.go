package store

import (
	"encoding/json"
	"fmt"
	"time"

	"idbridge/models"
)

const auditEventsTable = "audit_events"

// auditEventRow is the persisted form of models.AuditEvent.
type auditEventRow struct {
	SiteID          string `gorm:"primaryKey"`
	ID              string `gorm:"primaryKey"`
	OccurredAt      time.Time
	ActorAccountID  string
	TargetAccountID string
	Event           string
	Section         string
	Fields          string // JSON array of field names
	IP              string `gorm:"column:ip"`
	UserAgent       string
	IdP             string `gorm:"column:idp"`
	Protocol        string
	Reason          string
}

func (auditEventRow) TableName() string { return auditEventsTable }

// CreateAuditEvent appends ev to the site's audit log, in the caller's
// transaction so that the event and the change it records commit or roll
// back together. The store gives it an ID and, when OccurredAt is zero, the
// current time; it returns the event as stored.
func (tx *Tx) CreateAuditEvent(siteID string, ev models.AuditEvent) (*models.AuditEvent, error) {
	if siteID == "" {
		return nil, &models.Error{Code: models.CodeInvalid, Message: "an audit event needs a site"}
	}
	if !ev.Event.Valid() {
		return nil, models.Errorf(models.CodeInvalid, "unknown audit event %q", ev.Event)
	}
	// Processing restricted (GDPR Art. 18): no new detail about the
	// person beyond a marker (the event itself), and no count in the
	// sign-in chart; the guard counts what it held back.
	counted := true
	if ev.ActorAccountID != "" && (ev.IP != "" || ev.UserAgent != "") {
		restricted, err := tx.Restricted(siteID, ev.ActorAccountID, models.BlockedAuditDetail)
		if err != nil {
			return nil, err
		}
		if restricted {
			ev.IP, ev.UserAgent, counted = "", "", false
		}
	}
	ev.SiteID = siteID
	ev.ID = NewID("ev")
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = tx.s.Now()
	}
	ev.OccurredAt = storedTime(ev.OccurredAt)
	if ev.Fields == nil {
		ev.Fields = []string{}
	}
	fields, err := json.Marshal(ev.Fields)
	if err != nil {
		return nil, fmt.Errorf("encode audit fields: %w", err)
	}
	r := auditEventRow{
		SiteID: siteID, ID: ev.ID, OccurredAt: ev.OccurredAt,
		ActorAccountID: ev.ActorAccountID, TargetAccountID: ev.TargetAccountID,
		Event: string(ev.Event), Section: ev.Section, Fields: string(fields),
		IP: ev.IP, UserAgent: ev.UserAgent, IdP: ev.IdP, Protocol: ev.Protocol, Reason: ev.Reason,
	}
	if err := tx.db.Create(&r).Error; err != nil {
		return nil, fmt.Errorf("record audit event: %w", translate(err))
	}
	if counted {
		if err := tx.countAuditEvent(siteID, ev.Event, ev.OccurredAt); err != nil {
			return nil, err
		}
	}
	return &ev, nil
}

// AuditQuery selects a site's audit events. Zero fields do not filter.
type AuditQuery struct {
	From, To  time.Time // From inclusive, To exclusive
	AccountID string    // actor or target
	Event     models.AuditEventType
	Limit     int // at most 1000; 100 when zero
}

// FindAuditEvents returns the site's events matching q, newest first.
func (tx *Tx) FindAuditEvents(siteID string, q AuditQuery) ([]models.AuditEvent, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	db := tx.db.Where("site_id = ?", siteID)
	if !q.From.IsZero() {
		db = db.Where("occurred_at >= ?", q.From.UTC())
	}
	if !q.To.IsZero() {
		db = db.Where("occurred_at < ?", q.To.UTC())
	}
	if q.AccountID != "" {
		db = db.Where("(actor_account_id = ? OR target_account_id = ?)", q.AccountID, q.AccountID)
	}
	if q.Event != "" {
		db = db.Where("event = ?", string(q.Event))
	}
	var rows []auditEventRow
	if err := db.Order("occurred_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("find audit events: %w", translate(err))
	}
	out := make([]models.AuditEvent, 0, len(rows))
	for _, r := range rows {
		ev := models.AuditEvent{
			SiteID: r.SiteID, ID: r.ID, OccurredAt: r.OccurredAt.UTC(),
			ActorAccountID: r.ActorAccountID, TargetAccountID: r.TargetAccountID,
			Event: models.AuditEventType(r.Event), Section: r.Section,
			IP: r.IP, UserAgent: r.UserAgent, IdP: r.IdP, Protocol: r.Protocol, Reason: r.Reason,
		}
		if err := json.Unmarshal([]byte(r.Fields), &ev.Fields); err != nil {
			return nil, fmt.Errorf("decode audit fields of event %s: %w", r.ID, err)
		}
		out = append(out, ev)
	}
	return out, nil
}
