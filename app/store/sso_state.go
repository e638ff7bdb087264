package store

import (
	"fmt"
	"time"

	"idbridge/models"
)

// loginStateRow is a sign-in in flight (models.LoginState).
type loginStateRow struct {
	SiteID        string `gorm:"primaryKey"`
	ID            string `gorm:"primaryKey"`
	IdPID         string `gorm:"column:idp_id"`
	Protocol      string
	BrowserHash   string
	Nonce         string
	PKCEVerifier  string `gorm:"column:pkce_verifier"`
	SAMLRequestID string `gorm:"column:saml_request_id"`
	ReturnTo      string
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

func (loginStateRow) TableName() string { return "login_states" }

// MaxLoginStates bounds a site's sign-ins in flight (login states live
// models.LoginStateTTL): anyone may start a sign-in, so without a bound
// anyone could fill the table. 2,000 in ten minutes is more than three
// sign-ins started a second, every second, for one help center.
const MaxLoginStates = 2000

// CreateLoginState records a sign-in in flight. A site with MaxLoginStates
// of them already gives up its expired ones and then, if it must, its
// oldest: a sign-in started earlier than the last MaxLoginStates of its
// site is refused at its callback ("start again"). Refusing the new one
// instead would let anyone who starts sign-ins three times a second keep
// every customer of the site out; evicting means outrunning each real
// person's round trip to the identity provider. The bound is checked
// before the insert, not under a lock: concurrent starts may pass it by
// the number of requests in flight.
func (tx *Tx) CreateLoginState(siteID string, st *models.LoginState) error {
	if siteID == "" || st.ID == "" || st.BrowserHash == "" {
		return &models.Error{Code: models.CodeInvalid, Message: "login state needs a site, an ID and a browser"}
	}
	n, err := tx.countLoginStates(siteID)
	if err == nil && n >= MaxLoginStates {
		err = tx.db.Exec(`DELETE FROM login_states WHERE site_id = ? AND expires_at <= ?`, siteID, tx.s.Now().UTC()).Error
		if err == nil {
			n, err = tx.countLoginStates(siteID)
		}
		if err == nil && n >= MaxLoginStates {
			// The oldest, by the (site_id, expires_at) index; a bounded few.
			// On PostgreSQL the rows are locked before they are deleted,
			// skipping those another start is evicting: two such deletes
			// locking overlapping rows in different orders deadlocked
			// (40P01) when concurrent starts met at the bound. SQLite has
			// one writer at a time, so there is nothing to skip.
			skip := ""
			if tx.s.dialect == Postgres {
				skip = " FOR UPDATE SKIP LOCKED"
			}
			err = tx.db.Exec(`DELETE FROM login_states WHERE site_id = ? AND id IN
				(SELECT id FROM login_states WHERE site_id = ? ORDER BY expires_at, id LIMIT ?`+skip+`)`,
				siteID, siteID, min(n-MaxLoginStates+1, 16)).Error
		}
	}
	if err != nil {
		return fmt.Errorf("create login state: %w", translate(err))
	}
	r := loginStateRow{
		SiteID: siteID, ID: st.ID, IdPID: st.IdPID, Protocol: st.Protocol, BrowserHash: st.BrowserHash,
		Nonce: st.Nonce, PKCEVerifier: st.PKCEVerifier, SAMLRequestID: st.SAMLRequestID, ReturnTo: st.ReturnTo,
		CreatedAt: st.CreatedAt.UTC(), ExpiresAt: st.ExpiresAt.UTC(),
	}
	if err := tx.db.Create(&r).Error; err != nil {
		return fmt.Errorf("create login state: %w", translate(err))
	}
	return nil
}

// countLoginStates counts the site's login states, up to a few more than
// MaxLoginStates (what concurrent starts may have added past it): the
// count reads at most that many entries of the primary key.
func (tx *Tx) countLoginStates(siteID string) (int, error) {
	var n int
	err := tx.db.Raw(`SELECT count(*) FROM (SELECT 1 FROM login_states WHERE site_id = ? LIMIT ?) AS s`, siteID, MaxLoginStates+16).Row().Scan(&n)
	return n, err
}

// TakeLoginState returns the site's login state with the ID and deletes it,
// so it is used at most once, even by two requests at the same moment
// (only the one whose DELETE removed the row gets it). An unknown or
// already used ID: not found. An expired state is deleted and not found.
func (tx *Tx) TakeLoginState(siteID, id string) (*models.LoginState, error) {
	// One statement, so one round trip and no transaction: the DELETE is
	// what decides which of two concurrent takes gets the row.
	var rows []loginStateRow
	err := tx.db.Raw(`DELETE FROM login_states WHERE site_id = ? AND id = ?
		RETURNING site_id, id, idp_id, protocol, browser_hash, nonce, pkce_verifier, saml_request_id, return_to, created_at, expires_at`,
		siteID, id).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("take login state: %w", translate(err))
	}
	if len(rows) == 0 {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "not found"}
	}
	r := rows[0]
	if !tx.s.Now().Before(r.ExpiresAt) {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "expired"}
	}
	return &models.LoginState{
		SiteID: r.SiteID, ID: r.ID, IdPID: r.IdPID, Protocol: r.Protocol, BrowserHash: r.BrowserHash,
		Nonce: r.Nonce, PKCEVerifier: r.PKCEVerifier, SAMLRequestID: r.SAMLRequestID, ReturnTo: r.ReturnTo,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	}, nil
}

// ConsumeSAMLAssertion records that the IdP's assertion ID was used, until
// expiresAt; an ID already recorded for the IdP: conflict.
func (tx *Tx) ConsumeSAMLAssertion(siteID, idpID, assertionID string, expiresAt time.Time) error {
	res := tx.db.Exec(`INSERT INTO saml_assertions (site_id, idp_id, assertion_id, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (site_id, idp_id, assertion_id) DO NOTHING`, siteID, idpID, assertionID, expiresAt.UTC())
	if res.Error != nil {
		return fmt.Errorf("record saml assertion: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return &models.Error{Code: models.CodeConflict, Message: "assertion already used"}
	}
	return nil
}

// portalSessionRow is a customer's portal session (models.PortalSession).
type portalSessionRow struct {
	SiteID      string `gorm:"primaryKey"`
	ID          string `gorm:"primaryKey"`
	AccountID   string
	Email       string
	DisplayName string
	IdPID       string `gorm:"column:idp_id"`
	CreatedAt   time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time
}

func (portalSessionRow) TableName() string { return "portal_sessions" }

// CreatePortalSession starts a portal session.
func (tx *Tx) CreatePortalSession(siteID string, s *models.PortalSession) error {
	r := portalSessionRow{
		SiteID: siteID, ID: s.ID, AccountID: s.AccountID, Email: s.Email, DisplayName: s.DisplayName,
		IdPID: s.IdPID, CreatedAt: s.CreatedAt.UTC(), LastSeenAt: s.LastSeenAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(),
	}
	if siteID == "" || r.ID == "" || r.AccountID == "" {
		return &models.Error{Code: models.CodeInvalid, Message: "a portal session needs a site, an ID and an account"}
	}
	if err := tx.db.Create(&r).Error; err != nil {
		return fmt.Errorf("create portal session: %w", translate(err))
	}
	return nil
}

// FindPortalSession returns the site's session with the ID; unknown: not
// found. Expiry is the caller's to judge.
func (tx *Tx) FindPortalSession(siteID, id string) (*models.PortalSession, error) {
	var r portalSessionRow
	if err := tx.db.Where("site_id = ? AND id = ?", siteID, id).Take(&r).Error; err != nil {
		return nil, fmt.Errorf("find portal session: %w", translate(err))
	}
	return &models.PortalSession{
		SiteID: r.SiteID, ID: r.ID, AccountID: r.AccountID, Email: r.Email, DisplayName: r.DisplayName,
		IdPID: r.IdPID, CreatedAt: r.CreatedAt.UTC(), LastSeenAt: r.LastSeenAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	}, nil
}

// TouchPortalSession records activity on the session (for the idle timeout).
func (tx *Tx) TouchPortalSession(siteID, id string, at time.Time) error {
	err := tx.db.Model(&portalSessionRow{}).Where("site_id = ? AND id = ?", siteID, id).
		Update("last_seen_at", at.UTC()).Error
	if err != nil {
		return fmt.Errorf("touch portal session: %w", translate(err))
	}
	return nil
}

// DeletePortalSession ends a session; an unknown one is fine.
func (tx *Tx) DeletePortalSession(siteID, id string) error {
	if err := tx.db.Where("site_id = ? AND id = ?", siteID, id).Delete(&portalSessionRow{}).Error; err != nil {
		return fmt.Errorf("delete portal session: %w", translate(err))
	}
	return nil
}

// PurgeExpiredSSO deletes login state, used-assertion records and portal
// sessions that expired before now (sessions idle for longer than their
// site allows are removed when next seen). It deletes at most limit rows of
// each per call and returns how many it deleted.
func (tx *Tx) PurgeExpiredSSO(now time.Time, limit int) (int, error) {
	total := 0
	for _, table := range []string{"login_states", "saml_assertions", "portal_sessions"} {
		// A bounded delete both dialects understand: by key, from a limited
		// sub-select.
		q := fmt.Sprintf(`DELETE FROM %[1]s WHERE (site_id, id) IN (SELECT site_id, id FROM %[1]s WHERE expires_at < ? LIMIT %[2]d)`, table, limit)
		if table == "saml_assertions" {
			q = fmt.Sprintf(`DELETE FROM saml_assertions WHERE (site_id, idp_id, assertion_id) IN (SELECT site_id, idp_id, assertion_id FROM saml_assertions WHERE expires_at < ? LIMIT %d)`, limit)
		}
		res := tx.db.Exec(q, now.UTC())
		if res.Error != nil {
			return total, fmt.Errorf("purge %s: %w", table, translate(res.Error))
		}
		total += int(res.RowsAffected)
	}
	return total, nil
}

// CountPortalSessions counts the site's portal sessions (live or not yet
// purged).
func (tx *Tx) CountPortalSessions(siteID string) (int, error) {
	var n int64
	if err := tx.db.Model(&portalSessionRow{}).Where("site_id = ?", siteID).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count portal sessions: %w", translate(err))
	}
	return int(n), nil
}
