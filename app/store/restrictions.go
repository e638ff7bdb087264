package store

import (
	"database/sql"
	"errors"
	"fmt"

	"idbridge/models"
)

// Restrictions of processing (GDPR Art. 18, SPEC 8): one row per restricted
// person of a site. The guard (Restricted) is what every code path that
// processes a person consults; it counts what it holds back.

// SaveRestriction restricts processing of the person's data, or updates
// the reason of a restriction in place (keeping its start and counts). It
// returns the restriction as stored and whether it is new.
func (tx *Tx) SaveRestriction(r *models.Restriction) (*models.Restriction, bool, error) {
	now := tx.s.Now()
	res := tx.db.Exec(`UPDATE privacy_restrictions SET reason = ? WHERE site_id = ? AND account_id = ?`, r.Reason, r.SiteID, r.AccountID)
	if res.Error != nil {
		return nil, false, fmt.Errorf("save restriction: %w", translate(res.Error))
	}
	created := res.RowsAffected == 0
	if created {
		err := tx.db.Exec(`INSERT INTO privacy_restrictions (site_id, account_id, reason, restricted_at, restricted_by) VALUES (?, ?, ?, ?, ?)`,
			r.SiteID, r.AccountID, r.Reason, now, r.RestrictedBy).Error
		if err != nil {
			return nil, false, fmt.Errorf("save restriction: %w", translate(err))
		}
	}
	got, err := tx.FindRestriction(r.SiteID, r.AccountID)
	return got, created, err
}

// DeleteRestriction lifts a restriction; not found when there is none.
func (tx *Tx) DeleteRestriction(siteID, accountID string) error {
	res := tx.db.Exec(`DELETE FROM privacy_restrictions WHERE site_id = ? AND account_id = ?`, siteID, accountID)
	if res.Error != nil {
		return fmt.Errorf("delete restriction: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return &models.Error{Code: models.CodeNotFound, Message: "processing of this account's data is not restricted"}
	}
	return nil
}

const restrictionCols = `site_id, account_id, reason, restricted_at, restricted_by, blocked_count, last_blocked_at, last_blocked`

func scanRestriction(row interface{ Scan(...any) error }) (*models.Restriction, error) {
	var r models.Restriction
	var last sql.NullTime
	if err := row.Scan(&r.SiteID, &r.AccountID, &r.Reason, &r.RestrictedAt, &r.RestrictedBy, &r.BlockedCount, &last, &r.LastBlocked); err != nil {
		return nil, err
	}
	r.RestrictedAt = r.RestrictedAt.UTC()
	r.LastBlockedAt = nullTime(last)
	return &r, nil
}

// FindRestriction returns the person's restriction; not found when
// processing is not restricted.
func (tx *Tx) FindRestriction(siteID, accountID string) (*models.Restriction, error) {
	r, err := scanRestriction(tx.db.Raw(`SELECT `+restrictionCols+` FROM privacy_restrictions WHERE site_id = ? AND account_id = ?`, siteID, accountID).Row())
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "processing of this account's data is not restricted"}
	}
	if err != nil {
		return nil, fmt.Errorf("find restriction: %w", translate(err))
	}
	return r, nil
}

// ListRestrictions returns up to limit of the site's restrictions, by
// account ID after after.
func (tx *Tx) ListRestrictions(siteID, after string, limit int) ([]models.Restriction, error) {
	rows, err := tx.db.Raw(`SELECT `+restrictionCols+` FROM privacy_restrictions WHERE site_id = ? AND account_id > ? ORDER BY account_id LIMIT ?`,
		siteID, after, limit).Rows()
	if err != nil {
		return nil, fmt.Errorf("list restrictions: %w", translate(err))
	}
	defer rows.Close()
	var out []models.Restriction
	for rows.Next() {
		r, err := scanRestriction(rows)
		if err != nil {
			return nil, fmt.Errorf("list restrictions: %w", translate(err))
		}
		out = append(out, *r)
	}
	return out, translate(rows.Err())
}

// RestrictedAmong returns which of the account IDs are restricted.
func (tx *Tx) RestrictedAmong(siteID string, accountIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(accountIDs) == 0 {
		return out, nil
	}
	var ids []string
	if err := tx.db.Raw(`SELECT account_id FROM privacy_restrictions WHERE site_id = ? AND account_id IN ?`, siteID, accountIDs).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("find restrictions: %w", translate(err))
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// Restricted is the guard: it reports whether processing of the person's
// data is restricted and, when it is, counts what was held back (what) on
// the restriction, so nothing is dropped silently.
func (tx *Tx) Restricted(siteID, accountID, what string) (bool, error) {
	if accountID == "" {
		return false, nil
	}
	res := tx.db.Exec(`UPDATE privacy_restrictions SET blocked_count = blocked_count + 1, last_blocked_at = ?, last_blocked = ?
		WHERE site_id = ? AND account_id = ?`, tx.s.Now(), what, siteID, accountID)
	if res.Error != nil {
		return false, fmt.Errorf("check restriction: %w", translate(res.Error))
	}
	return res.RowsAffected > 0, nil
}

// RestrictedUser is the guard for a directory user, found by the account
// ID the sync matched it to; a user without one cannot be restricted yet.
func (tx *Tx) RestrictedUser(siteID, userID, what string) (bool, error) {
	var accountID string
	err := tx.db.Raw(`SELECT account_id FROM sync_users WHERE site_id = ? AND user_id = ?`, siteID, userID).Row().Scan(&accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check restriction: %w", translate(err))
	}
	return tx.Restricted(siteID, accountID, what)
}

// CountRestrictions counts the site's restrictions.
func (tx *Tx) CountRestrictions(siteID string) (int64, error) {
	var n int64
	if err := tx.db.Raw(`SELECT count(*) FROM privacy_restrictions WHERE site_id = ?`, siteID).Row().Scan(&n); err != nil {
		return 0, fmt.Errorf("count restrictions: %w", translate(err))
	}
	return n, nil
}

// DirectoryUsersOfAccount lists the directory users the sync matched to
// the account (usually one), that are still in the directory.
func (tx *Tx) DirectoryUsersOfAccount(siteID, accountID string) ([]string, error) {
	var ids []string
	err := tx.db.Raw(`SELECT s.user_id FROM sync_users s JOIN scim_users u ON u.site_id = s.site_id AND u.id = s.user_id
		WHERE s.site_id = ? AND s.account_id = ? ORDER BY s.user_id LIMIT 10`, siteID, accountID).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("directory users of an account: %w", translate(err))
	}
	return ids, nil
}
