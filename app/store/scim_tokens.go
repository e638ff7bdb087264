package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"idbridge/models"
)

// SCIMNotifyChannel is the PostgreSQL channel on which a change of a site's
// SCIM token is announced (payload: the site ID), so every replica drops the
// token it cached at once.
const SCIMNotifyChannel = "idbridge_scim_tokens"

// scimSettingsRow is one site's provisioning settings. token_hash is the
// SHA-256 of the bearer token: tokens are hashed, never stored.
type scimSettingsRow struct {
	SiteID         string `gorm:"primaryKey"`
	Enabled        bool
	TokenHash      []byte
	TokenCreatedAt *time.Time
	Deactivation   string
	ProvisionAs    string
	Products       string
	// DeletionThreshold: the accidental-deletion brake's percentage.
	DeletionThreshold int
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

func (scimSettingsRow) TableName() string { return "scim_settings" }

func provisioningFromRow(r *scimSettingsRow) (*models.Provisioning, error) {
	p := &models.Provisioning{
		SiteID:         r.SiteID,
		Enabled:        r.Enabled && len(r.TokenHash) > 0,
		TokenCreatedAt: utcPtr(r.TokenCreatedAt),
		Deactivation:   models.DeactivationMode(r.Deactivation),
		ProvisionAs:    models.ProvisionAs(r.ProvisionAs),
		UpdatedAt:      r.UpdatedAt.UTC(),

		DeletionThreshold: r.DeletionThreshold,
	}
	if err := json.Unmarshal([]byte(r.Products), &p.Products); err != nil {
		return nil, fmt.Errorf("provisioning settings of site %s: products: %w", r.SiteID, err)
	}
	if p.Products == nil {
		p.Products = []string{}
	}
	return p, nil
}

// defaultProvisioning is what a site has before anyone configured it.
func defaultProvisioning(siteID string) *models.Provisioning {
	return &models.Provisioning{
		SiteID:       siteID,
		Deactivation: models.DeactivateRemoveGroups,
		ProvisionAs:  models.ProvisionAccount,
		Products:     []string{},

		DeletionThreshold: models.DefaultDeletionThreshold,
	}
}

// FindProvisioning returns the site's provisioning settings; a site that
// never configured them gets the defaults (disabled, no token).
func (tx *Tx) FindProvisioning(siteID string) (*models.Provisioning, error) {
	var r scimSettingsRow
	err := tx.db.Where("site_id = ?", siteID).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return defaultProvisioning(siteID), nil
	}
	if err != nil {
		return nil, fmt.Errorf("find provisioning settings: %w", translate(err))
	}
	return provisioningFromRow(&r)
}

// SaveProvisioning stores the admin-chosen settings (deactivation mode,
// what new users become, product access). It neither creates nor revokes a
// token; Enabled is ignored here (see SetSCIMToken and RevokeSCIMToken).
func (tx *Tx) SaveProvisioning(p *models.Provisioning) error {
	products := p.Products
	if products == nil {
		products = []string{}
	}
	b, err := json.Marshal(products)
	if err != nil {
		return fmt.Errorf("save provisioning settings: %w", err)
	}
	now := tx.s.Now()
	res := tx.db.Model(&scimSettingsRow{}).Where("site_id = ?", p.SiteID).Updates(map[string]any{
		"deactivation": string(p.Deactivation),
		"provision_as": string(p.ProvisionAs),
		"products":     string(b),
		"updated_at":   now,

		"deletion_threshold": p.DeletionThreshold,
	})
	if res.Error != nil {
		return fmt.Errorf("save provisioning settings: %w", translate(res.Error))
	}
	if res.RowsAffected > 0 {
		return nil
	}
	err = tx.db.Create(&scimSettingsRow{
		SiteID: p.SiteID, Deactivation: string(p.Deactivation), ProvisionAs: string(p.ProvisionAs),
		Products: string(b), DeletionThreshold: p.DeletionThreshold, CreatedAt: now, UpdatedAt: now,
	}).Error
	if err != nil {
		return fmt.Errorf("save provisioning settings: %w", translate(err))
	}
	return nil
}

// SetSCIMToken stores the hash of a new token for the site and enables
// provisioning; the previous token stops working when the transaction
// commits. Replicas are told on SCIMNotifyChannel.
func (tx *Tx) SetSCIMToken(siteID string, hash []byte) error {
	if len(hash) != 32 {
		return errors.New("set scim token: the hash must be 32 bytes (SHA-256)")
	}
	now := tx.s.Now()
	res := tx.db.Model(&scimSettingsRow{}).Where("site_id = ?", siteID).Updates(map[string]any{
		"enabled": true, "token_hash": hash, "token_created_at": now, "updated_at": now,
	})
	if res.Error != nil {
		return fmt.Errorf("set scim token: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		d := defaultProvisioning(siteID)
		err := tx.db.Create(&scimSettingsRow{
			SiteID: siteID, Enabled: true, TokenHash: hash, TokenCreatedAt: &now,
			Deactivation: string(d.Deactivation), ProvisionAs: string(d.ProvisionAs), Products: "[]",
			CreatedAt: now, UpdatedAt: now,
		}).Error
		if err != nil {
			return fmt.Errorf("set scim token: %w", translate(err))
		}
	}
	return tx.Notify(SCIMNotifyChannel, siteID)
}

// RevokeSCIMToken deletes the site's token and disables provisioning; the
// directory stays. Revoking without a token changes nothing.
func (tx *Tx) RevokeSCIMToken(siteID string) error {
	err := tx.db.Model(&scimSettingsRow{}).Where("site_id = ?", siteID).Updates(map[string]any{
		"enabled": false, "token_hash": nil, "token_created_at": nil, "updated_at": tx.s.Now(),
	}).Error
	if err != nil {
		return fmt.Errorf("revoke scim token: %w", translate(err))
	}
	return tx.Notify(SCIMNotifyChannel, siteID)
}

// SCIMCredentials is what a SCIM request is checked against: the SHA-256
// of the site's token and whether the site is disabled (the app switched
// off in the site, models.Site.Disabled: its directory may be read, not
// changed).
type SCIMCredentials struct {
	TokenHash []byte
	Disabled  bool
}

// SCIMTokenHash returns the SHA-256 of the site's token when provisioning
// is enabled and the site is installed (or disabled); otherwise not found.
func (tx *Tx) SCIMTokenHash(siteID string) ([]byte, error) {
	c, err := tx.FindSCIMCredentials(siteID)
	if err != nil {
		return nil, err
	}
	return c.TokenHash, nil
}

// FindSCIMCredentials returns the site's token hash and state in one
// statement when provisioning is enabled and the site is installed or
// disabled; otherwise not found.
func (tx *Tx) FindSCIMCredentials(siteID string) (*SCIMCredentials, error) {
	rows, err := tx.queryRows(`SELECT t.token_hash, s.state, s.installation_id FROM scim_settings t JOIN sites s ON s.id = t.site_id
		WHERE t.site_id = ? AND t.enabled AND t.token_hash IS NOT NULL AND s.state <> ?`,
		siteID, string(models.SiteUninstalled))
	if err != nil {
		return nil, fmt.Errorf("find scim token: %w", translate(err))
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find scim token: %w", translate(err))
		}
		return nil, &models.Error{Code: models.CodeNotFound, Message: "no SCIM token"}
	}
	var c SCIMCredentials
	var site models.Site
	if err := rows.Scan(&c.TokenHash, &site.State, &site.InstallationID); err != nil {
		return nil, fmt.Errorf("find scim token: %w", translate(err))
	}
	// A stale disabled state of a site registered with Forge blocks
	// nothing (see models.Site.EffectiveState).
	c.Disabled = site.Disabled()
	return &c, nil
}
