package audit

import (
	"context"
	"encoding/base64"
	"regexp"
	"strconv"
	"strings"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/store"
	"idbridge/models"
)

// Bounds of what an admin may ask of the audit log.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
	MaxStatsDays    = 90
	streamBatch     = 5000
)

var accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9:_-]{1,128}$`)

// Log reads a site's audit log for its admins: pages, the per-day sign-in
// counts, and the whole filtered log as a stream.
type Log struct {
	store    *store.Store
	now      func() time.Time
	accounts *atlassian.ServiceAccounts // for Names; nil: none looked up
}

// NewLog builds the reader.
func NewLog(st *store.Store, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{store: st, now: now}
}

// Page returns one page of the site's events matching q, newest first.
func (l *Log) Page(ctx context.Context, siteID string, q models.AuditQuery) (*models.AuditPage, error) {
	pq, err := pageQuery(q)
	if err != nil {
		return nil, err
	}
	if pq.Limit <= 0 {
		pq.Limit = DefaultPageSize
	}
	if pq.Limit > MaxPageSize {
		return nil, models.FieldError("limit", "Ask for at most %d events at a time.", MaxPageSize)
	}
	// One more than asked says whether there is a next page.
	want := pq.Limit
	pq.Limit++
	events, err := l.store.View(ctx).FindAuditPage(siteID, pq)
	if err != nil {
		return nil, err
	}
	page := &models.AuditPage{Events: events}
	if len(events) > want {
		page.Events = events[:want]
		last := page.Events[want-1]
		page.Next = encodeCursor(last.OccurredAt, last.ID)
	}
	ids := make([]string, 0, 2*len(page.Events))
	for _, e := range page.Events {
		for _, id := range []string{e.ActorAccountID, e.TargetAccountID} {
			if id != "" {
				ids = append(ids, id)
			}
		}
	}
	if page.Restricted, err = l.store.View(ctx).RestrictedAmong(siteID, ids); err != nil {
		return nil, err
	}
	return page, nil
}

// Stream calls fn with every event of the site matching q (Cursor and
// Limit ignored), newest first, reading a bounded batch at a time so that
// memory stays constant however long the log.
func (l *Log) Stream(ctx context.Context, siteID string, q models.AuditQuery, fn func(models.AuditEvent) error) error {
	q.Cursor, q.Limit = "", 0
	pq, err := pageQuery(q)
	if err != nil {
		return err
	}
	pq.Limit = streamBatch
	for {
		events, err := l.store.View(ctx).FindAuditPage(siteID, pq)
		if err != nil {
			return err
		}
		for _, ev := range events {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(events) < streamBatch {
			return nil
		}
		last := events[len(events)-1]
		pq.After = &store.AuditCursor{OccurredAt: last.OccurredAt, ID: last.ID}
	}
}

// Stats returns sign-in successes and failures per UTC day for the last
// days days (today included), oldest first, with empty days as zeros.
func (l *Log) Stats(ctx context.Context, siteID string, days int) ([]models.AuditDay, error) {
	if days <= 0 {
		days = 30
	}
	if days > MaxStatsDays {
		return nil, models.FieldError("days", "Ask for at most %d days.", MaxStatsDays)
	}
	today := l.now().UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(days - 1))
	counts, err := l.store.View(ctx).AuditDayCounts(siteID, first.Format(time.DateOnly), today.Format(time.DateOnly),
		[]models.AuditEventType{models.AuditLoginSuccess, models.AuditLoginFailure})
	if err != nil {
		return nil, err
	}
	out := make([]models.AuditDay, days)
	index := map[string]int{}
	for i := range out {
		d := first.AddDate(0, 0, i).Format(time.DateOnly)
		out[i].Date = d
		index[d] = i
	}
	for _, c := range counts {
		i, ok := index[c.Day]
		if !ok {
			continue
		}
		if c.Event == models.AuditLoginSuccess {
			out[i].Successes += c.Count
		} else {
			out[i].Failures += c.Count
		}
	}
	return out, nil
}

func pageQuery(q models.AuditQuery) (store.AuditPageQuery, error) {
	pq := store.AuditPageQuery{From: q.From, To: q.To, Limit: q.Limit}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return pq, models.FieldError("to", "The end of the period must be after its start.")
	}
	if q.AccountID != "" {
		if !accountIDPattern.MatchString(q.AccountID) {
			return pq, models.FieldError("accountId", "An account ID is letters, digits, colons, dashes and underscores (at most 128).")
		}
		pq.AccountID = q.AccountID
	}
	if q.Event != "" {
		if !q.Event.Valid() {
			return pq, models.FieldError("event", "%q is not an audit event.", truncate(string(q.Event), 40))
		}
		pq.Event = q.Event
	}
	if q.Cursor != "" {
		at, id, ok := decodeCursor(q.Cursor)
		if !ok {
			return pq, models.FieldError("cursor", "The cursor is not one this server gave out; start from the first page.")
		}
		pq.After = &store.AuditCursor{OccurredAt: at, ID: id}
	}
	return pq, nil
}

func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "|" + id))
}

func decodeCursor(c string) (time.Time, string, bool) {
	if len(c) > 256 {
		return time.Time{}, "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", false
	}
	micros, id, ok := strings.Cut(string(raw), "|")
	if !ok || id == "" || len(id) > 64 {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.UnixMicro(n).UTC(), id, true
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
