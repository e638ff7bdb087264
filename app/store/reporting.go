package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"idbridge/models"
)

// The Personal Data Reporting cycle's state (SPEC 8): report_accounts holds
// every account ID the site holds personal data for, with when it was last
// reported; report_sites the cycle of each site, so that a crash resumes
// it where it stopped.

// ReportSite is one site's reporting cycle.
type ReportSite struct {
	SiteID          string
	CyclePeriod     time.Duration // 0: the default
	CycleStartedAt  *time.Time    // set while a cycle is in progress
	CycleFinishedAt *time.Time
	NextCycleAt     *time.Time
	RetryAt         *time.Time
	Reported        int64
	Closed          int64
	Erased          int64
	Updated         int64
	Ignored         int64
	LastStatus      string
	LastMessage     string
}

// FindReportSite returns the site's reporting state; a site that never
// reported has the zero state.
func (tx *Tx) FindReportSite(siteID string) (*ReportSite, error) {
	r := &ReportSite{SiteID: siteID}
	var period int64
	var started, finished, next, retry sql.NullTime
	err := tx.db.Raw(`SELECT cycle_period_seconds, cycle_started_at, cycle_finished_at, next_cycle_at, retry_at,
		reported, closed, erased, updated, ignored, last_status, last_message FROM report_sites WHERE site_id = ?`, siteID).Row().
		Scan(&period, &started, &finished, &next, &retry, &r.Reported, &r.Closed, &r.Erased, &r.Updated, &r.Ignored, &r.LastStatus, &r.LastMessage)
	if errors.Is(err, sql.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find reporting state: %w", translate(err))
	}
	r.CyclePeriod = time.Duration(period) * time.Second
	r.CycleStartedAt, r.CycleFinishedAt, r.NextCycleAt, r.RetryAt = nullTime(started), nullTime(finished), nullTime(next), nullTime(retry)
	return r, nil
}

// SaveReportSite stores the site's reporting state.
func (tx *Tx) SaveReportSite(r *ReportSite) error {
	ts := func(t *time.Time) any {
		if t == nil {
			return nil
		}
		return storedTime(*t)
	}
	err := tx.db.Exec(`INSERT INTO report_sites (site_id, cycle_period_seconds, cycle_started_at, cycle_finished_at, next_cycle_at, retry_at,
			reported, closed, erased, updated, ignored, last_status, last_message, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (site_id) DO UPDATE SET cycle_period_seconds = excluded.cycle_period_seconds,
			cycle_started_at = excluded.cycle_started_at, cycle_finished_at = excluded.cycle_finished_at,
			next_cycle_at = excluded.next_cycle_at, retry_at = excluded.retry_at, reported = excluded.reported,
			closed = excluded.closed, erased = excluded.erased, updated = excluded.updated, ignored = excluded.ignored,
			last_status = excluded.last_status, last_message = excluded.last_message, updated_at = excluded.updated_at`,
		r.SiteID, int64(r.CyclePeriod/time.Second), ts(r.CycleStartedAt), ts(r.CycleFinishedAt), ts(r.NextCycleAt), ts(r.RetryAt),
		r.Reported, r.Closed, r.Erased, r.Updated, r.Ignored, r.LastStatus, truncateText(r.LastMessage, 500), tx.s.Now()).Error
	if err != nil {
		return fmt.Errorf("save reporting state: %w", translate(err))
	}
	return nil
}

// ReportableColumn is one column whose account IDs the cycle reports.
type ReportableColumn struct {
	Table  models.TableDecl
	Column string
}

// ReportableColumns lists, from the table declarations, every column that
// holds Atlassian account IDs to report.
func ReportableColumns() []ReportableColumn {
	var out []ReportableColumn
	for _, t := range models.Tables() {
		if t.Person == nil || !t.Person.Reported {
			continue
		}
		for _, c := range append(append([]string{}, t.Person.AccountColumns...), t.Person.ActorColumns...) {
			out = append(out, ReportableColumn{Table: t, Column: c})
		}
	}
	return out
}

// DistinctAccountIDs returns up to limit distinct account IDs of the
// site's column after after, in order, leaving out empty values and the
// pseudonyms of erased people.
func (tx *Tx) DistinctAccountIDs(siteID string, c ReportableColumn, after string, limit int) ([]string, error) {
	var ids []string
	q := fmt.Sprintf(`SELECT DISTINCT %[1]s FROM %[2]s WHERE %[3]s = ? AND %[1]s > ? AND %[1]s NOT LIKE ? ORDER BY %[1]s LIMIT %[4]d`,
		c.Column, c.Table.Name, c.Table.SiteColumn, limit)
	if err := tx.db.Raw(q, siteID, after, models.ErasedTokenPrefix+"%").Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("collect account IDs of %s.%s: %w", c.Table.Name, c.Column, translate(err))
	}
	return ids, nil
}

// UpsertReportAccounts records that the site holds data of the accounts,
// as found by the cycle that started at seenAt: new accounts are added
// (updated at seenAt), known ones marked seen.
func (tx *Tx) UpsertReportAccounts(siteID string, ids []string, seenAt time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	seenAt = storedTime(seenAt)
	var b strings.Builder
	b.WriteString(`INSERT INTO report_accounts (site_id, account_id, updated_at, seen_at) VALUES `)
	args := make([]any, 0, 4*len(ids))
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?)")
		args = append(args, siteID, id, seenAt, seenAt)
	}
	b.WriteString(` ON CONFLICT (site_id, account_id) DO UPDATE SET seen_at = excluded.seen_at`)
	if err := tx.db.Exec(b.String(), args...).Error; err != nil {
		return fmt.Errorf("record accounts to report: %w", translate(err))
	}
	return nil
}

// SweepReportAccounts deletes up to limit of the site's accounts that the
// cycle started at seenAt did not find any more (their data is gone), and
// returns how many.
func (tx *Tx) SweepReportAccounts(siteID string, seenAt time.Time, limit int) (int, error) {
	res := tx.db.Exec(`DELETE FROM report_accounts WHERE site_id = ? AND account_id IN (
		SELECT account_id FROM report_accounts WHERE site_id = ? AND seen_at < ? LIMIT ?)`, siteID, siteID, storedTime(seenAt), limit)
	if res.Error != nil {
		return 0, fmt.Errorf("sweep accounts to report: %w", translate(res.Error))
	}
	return int(res.RowsAffected), nil
}

// DueReportAccounts returns up to limit of the site's accounts after after,
// in order, that were never reported or last reported at or before
// dueBefore.
func (tx *Tx) DueReportAccounts(siteID, after string, dueBefore time.Time, limit int) ([]ReportAccount, error) {
	rows, err := tx.db.Raw(`SELECT account_id, updated_at FROM report_accounts WHERE site_id = ? AND account_id > ?
		AND (reported_at IS NULL OR reported_at <= ?) ORDER BY account_id LIMIT ?`, siteID, after, storedTime(dueBefore), limit).Rows()
	if err != nil {
		return nil, fmt.Errorf("find accounts to report: %w", translate(err))
	}
	defer rows.Close()
	out := make([]ReportAccount, 0, limit)
	for rows.Next() {
		var a ReportAccount
		if err := rows.Scan(&a.AccountID, &a.UpdatedAt); err != nil {
			return nil, fmt.Errorf("find accounts to report: %w", translate(err))
		}
		a.UpdatedAt = a.UpdatedAt.UTC()
		out = append(out, a)
	}
	return out, translate(rows.Err())
}

// ReportAccount is one account to report.
type ReportAccount struct {
	AccountID string
	UpdatedAt time.Time
}

// MarkReported records that the accounts were reported at at.
func (tx *Tx) MarkReported(siteID string, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	if err := tx.db.Exec(`UPDATE report_accounts SET reported_at = ? WHERE site_id = ? AND account_id IN ?`, storedTime(at), siteID, ids).Error; err != nil {
		return fmt.Errorf("mark accounts reported: %w", translate(err))
	}
	return nil
}

// TouchReportAccount records that the account's data changed at at (its
// cached profile data was refreshed or dropped).
func (tx *Tx) TouchReportAccount(siteID, accountID string, at time.Time) error {
	if err := tx.db.Exec(`UPDATE report_accounts SET updated_at = ? WHERE site_id = ? AND account_id = ?`, storedTime(at), siteID, accountID).Error; err != nil {
		return fmt.Errorf("touch account: %w", translate(err))
	}
	return nil
}

// CountReportAccounts counts the site's accounts in the reporting table.
func (tx *Tx) CountReportAccounts(siteID string) (int64, error) {
	var n int64
	if err := tx.db.Raw(`SELECT count(*) FROM report_accounts WHERE site_id = ?`, siteID).Row().Scan(&n); err != nil {
		return 0, fmt.Errorf("count accounts to report: %w", translate(err))
	}
	return n, nil
}

// OldestReport is when the site's least recently reported account was
// reported (nil when none was): the next cycle is due a period after it.
func (tx *Tx) OldestReport(siteID string) (*time.Time, error) {
	// ORDER BY … LIMIT 1 rather than min(): SQLite gives an aggregate no
	// declared type, so min() would come back as text.
	var t sql.NullTime
	err := tx.db.Raw(`SELECT reported_at FROM report_accounts WHERE site_id = ? AND reported_at IS NOT NULL ORDER BY reported_at LIMIT 1`, siteID).Row().Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("oldest report: %w", translate(err))
	}
	return nullTime(t), nil
}
