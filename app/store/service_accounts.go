package store

import (
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"idbridge/app/secret"
	"idbridge/models"
)

const (
	serviceAccountsTable      = "service_accounts"
	accountTokenColumn        = "token"
	accountClientSecretColumn = "client_secret"
	accountOrgAdminKeyColumn  = "org_admin_key"
)

// serviceAccountRow is the persisted form of models.ServiceAccount. The
// three secrets are only ever stored sealed, bound to the site ID and their
// column.
type serviceAccountRow struct {
	SiteID               string `gorm:"primaryKey"`
	Kind                 string
	Email                string
	Token                []byte
	TokenHint            string
	CloudID              string
	ClientID             string
	ClientSecret         []byte
	ExpiresAt            *time.Time
	OrgAdminKey          []byte
	OrgAdminKeyHint      string
	OrgAdminKeyExpiresAt *time.Time
	OrgID                string
	Status               string
	StatusMessage        string
	CheckedAt            *time.Time
	UpdatedAt            time.Time
	UpdatedBy            string
}

func (serviceAccountRow) TableName() string { return serviceAccountsTable }

func (tx *Tx) openAccountSecret(siteID, column string, sealed []byte) (string, error) {
	if len(sealed) == 0 {
		return "", nil
	}
	plain, err := tx.s.ring.Open(sealed, secret.AD(serviceAccountsTable, column, siteID))
	if err != nil {
		return "", fmt.Errorf("open service_accounts.%s of site %s: %w", column, siteID, err)
	}
	return string(plain), nil
}

func (tx *Tx) sealAccountSecret(siteID, column, plain string) ([]byte, error) {
	if plain == "" {
		return nil, nil
	}
	sealed, err := tx.s.ring.Seal([]byte(plain), secret.AD(serviceAccountsTable, column, siteID))
	if err != nil {
		return nil, fmt.Errorf("seal service_accounts.%s: %w", column, err)
	}
	return sealed, nil
}

// FindServiceAccount returns the site's service account with its secrets
// opened. A site without one: not found.
func (tx *Tx) FindServiceAccount(siteID string) (*models.ServiceAccount, error) {
	var r serviceAccountRow
	if err := tx.db.Where("site_id = ?", siteID).Take(&r).Error; err != nil {
		return nil, fmt.Errorf("find service account: %w", translate(err))
	}
	a := &models.ServiceAccount{
		SiteID:               r.SiteID,
		Kind:                 models.AccountKind(r.Kind),
		Email:                r.Email,
		TokenHint:            r.TokenHint,
		CloudID:              r.CloudID,
		ClientID:             r.ClientID,
		ExpiresAt:            utcPtr(r.ExpiresAt),
		OrgAdminKeyHint:      r.OrgAdminKeyHint,
		OrgAdminKeyExpiresAt: utcPtr(r.OrgAdminKeyExpiresAt),
		OrgID:                r.OrgID,
		Status:               models.AccountStatus(r.Status),
		StatusMessage:        r.StatusMessage,
		CheckedAt:            utcPtr(r.CheckedAt),
		UpdatedAt:            r.UpdatedAt.UTC(),
		UpdatedBy:            r.UpdatedBy,
	}
	var err error
	if a.Token, err = tx.openAccountSecret(siteID, accountTokenColumn, r.Token); err != nil {
		return nil, err
	}
	if a.ClientSecret, err = tx.openAccountSecret(siteID, accountClientSecretColumn, r.ClientSecret); err != nil {
		return nil, err
	}
	if a.OrgAdminKey, err = tx.openAccountSecret(siteID, accountOrgAdminKeyColumn, r.OrgAdminKey); err != nil {
		return nil, err
	}
	return a, nil
}

// SaveServiceAccount creates or replaces the site's service account with a,
// sealing its secrets; an empty secret is stored as none. It sets
// UpdatedAt (and returns the account as stored).
func (tx *Tx) SaveServiceAccount(siteID string, a *models.ServiceAccount) (*models.ServiceAccount, error) {
	if siteID == "" || !a.Kind.Valid() {
		return nil, &models.Error{Code: models.CodeInvalid, Message: "a service account needs a site and a known kind"}
	}
	now := tx.s.Now()
	r := serviceAccountRow{
		SiteID:               siteID,
		Kind:                 string(a.Kind),
		Email:                a.Email,
		TokenHint:            a.TokenHint,
		CloudID:              a.CloudID,
		ClientID:             a.ClientID,
		ExpiresAt:            utcPtr(a.ExpiresAt),
		OrgAdminKeyHint:      a.OrgAdminKeyHint,
		OrgAdminKeyExpiresAt: utcPtr(a.OrgAdminKeyExpiresAt),
		OrgID:                a.OrgID,
		Status:               string(a.Status),
		StatusMessage:        a.StatusMessage,
		CheckedAt:            utcPtr(a.CheckedAt),
		UpdatedAt:            now,
		UpdatedBy:            a.UpdatedBy,
	}
	if r.Status == "" {
		r.Status = string(models.AccountUntested)
	}
	var err error
	if r.Token, err = tx.sealAccountSecret(siteID, accountTokenColumn, a.Token); err != nil {
		return nil, err
	}
	if r.ClientSecret, err = tx.sealAccountSecret(siteID, accountClientSecretColumn, a.ClientSecret); err != nil {
		return nil, err
	}
	if r.OrgAdminKey, err = tx.sealAccountSecret(siteID, accountOrgAdminKeyColumn, a.OrgAdminKey); err != nil {
		return nil, err
	}
	// Every column is written, NULLs included, so that a secret the new
	// kind does not use is gone.
	err = tx.db.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "site_id"}},
		UpdateAll: true,
	}).Create(&r).Error
	if err != nil {
		return nil, fmt.Errorf("save service account: %w", translate(err))
	}
	// New credentials may let the site's waiting changes go (no service
	// account before, or a pause after a 401): the sync hears it at commit.
	tx.noteOutbox(siteID)
	return tx.FindServiceAccount(siteID)
}

// SetServiceAccountStatus records what a test or a call learned about the
// credentials. It changes nothing else; a site without a service account:
// not found.
func (tx *Tx) SetServiceAccountStatus(siteID string, status models.AccountStatus, message string, checkedAt time.Time) error {
	switch status {
	case models.AccountUntested, models.AccountOK, models.AccountInvalid:
	default:
		return models.Errorf(models.CodeInvalid, "unknown service account status %q", status)
	}
	res := tx.db.Model(&serviceAccountRow{}).Where("site_id = ?", siteID).
		Updates(map[string]any{"status": string(status), "status_message": message, "checked_at": checkedAt.UTC()})
	if res.Error != nil {
		return fmt.Errorf("set service account status: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return &models.Error{Code: models.CodeNotFound, Message: "no service account is configured"}
	}
	return nil
}

// LockServiceAccount takes a row lock on the site's service account (on
// PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers), so that
// a read-modify-write of it inside InTx is not interleaved with another.
// No service account yet is fine.
func (tx *Tx) LockServiceAccount(siteID string) error {
	var r serviceAccountRow
	err := tx.lockForUpdate().Select("site_id").Where("site_id = ?", siteID).Take(&r).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("lock service account: %w", translate(err))
	}
	return nil
}

// deletedCredentialsMessage is the status a deleted set of credentials
// shows if the site is installed again before its data is purged.
const deletedCredentialsMessage = "The credentials were deleted when the app was uninstalled. Enter them again."

// deleteServiceAccountSecrets removes the site's service-account secrets
// (SPEC 2.2: at once on uninstall) and marks the account invalid. The rest
// of the row waits for the purge.
func (tx *Tx) deleteServiceAccountSecrets(siteID string) error {
	err := tx.db.Model(&serviceAccountRow{}).Where("site_id = ?", siteID).Updates(map[string]any{
		"token": nil, "token_hint": "", "client_secret": nil, "org_admin_key": nil, "org_admin_key_hint": "",
		"status": string(models.AccountInvalid), "status_message": deletedCredentialsMessage,
		"checked_at": tx.s.Now(),
	}).Error
	if err != nil {
		return fmt.Errorf("delete service account secrets: %w", translate(err))
	}
	return nil
}
