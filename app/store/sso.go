package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"idbridge/app/secret"
	"idbridge/models"
)

const (
	ssoSettingsTable      = "sso_settings"
	ssoSPKeyColumn        = "sp_key"
	identityProviderTable = "identity_providers"
	idpClientSecretColumn = "oidc_client_secret"
)

// ssoSettingsRow is the persisted form of models.SSOSettings; sp_key is
// sealed, bound to the site ID.
type ssoSettingsRow struct {
	SiteID                string `gorm:"primaryKey"`
	Enabled               bool
	AllowedDomains        string
	AutoCreateCustomers   bool
	ServiceDeskIDs        string `gorm:"column:service_desk_ids"`
	OrganizationsByDomain string
	SessionIdleMinutes    int
	SessionMaxHours       int
	SPKey                 []byte `gorm:"column:sp_key"`
	SPCertificate         string `gorm:"column:sp_certificate"`
	UpdatedAt             time.Time
	UpdatedBy             string
}

func (ssoSettingsRow) TableName() string { return ssoSettingsTable }

// FindSSOSettings returns the site's SSO settings, the SP key opened. A
// site that never configured SSO: not found.
func (tx *Tx) FindSSOSettings(siteID string) (*models.SSOSettings, error) {
	var r ssoSettingsRow
	if err := tx.db.Where("site_id = ?", siteID).Take(&r).Error; err != nil {
		return nil, fmt.Errorf("find sso settings: %w", translate(err))
	}
	s := &models.SSOSettings{
		SiteID: r.SiteID, Enabled: r.Enabled, AutoCreateCustomers: r.AutoCreateCustomers,
		SessionIdleMinutes: r.SessionIdleMinutes, SessionMaxHours: r.SessionMaxHours,
		SPCertificate: r.SPCertificate, UpdatedAt: r.UpdatedAt.UTC(), UpdatedBy: r.UpdatedBy,
	}
	if err := decodeJSONColumn(r.AllowedDomains, &s.AllowedDomains); err != nil {
		return nil, fmt.Errorf("sso settings of site %s: allowed_domains: %w", siteID, err)
	}
	if err := decodeJSONColumn(r.ServiceDeskIDs, &s.ServiceDeskIDs); err != nil {
		return nil, fmt.Errorf("sso settings of site %s: service_desk_ids: %w", siteID, err)
	}
	if err := decodeJSONColumn(r.OrganizationsByDomain, &s.OrganizationsByDomain); err != nil {
		return nil, fmt.Errorf("sso settings of site %s: organizations_by_domain: %w", siteID, err)
	}
	if len(r.SPKey) > 0 {
		plain, err := tx.s.ring.Open(r.SPKey, secret.AD(ssoSettingsTable, ssoSPKeyColumn, siteID))
		if err != nil {
			return nil, fmt.Errorf("open sso_settings.sp_key of site %s: %w", siteID, err)
		}
		s.SPKey = string(plain)
	}
	return s, nil
}

// SaveSSOSettings creates or replaces the site's SSO settings, sealing the
// SP key, and returns them as stored.
func (tx *Tx) SaveSSOSettings(siteID string, s *models.SSOSettings) (*models.SSOSettings, error) {
	if siteID == "" {
		return nil, &models.Error{Code: models.CodeInvalid, Message: "sso settings need a site"}
	}
	r := ssoSettingsRow{
		SiteID: siteID, Enabled: s.Enabled, AutoCreateCustomers: s.AutoCreateCustomers,
		SessionIdleMinutes: s.SessionIdleMinutes, SessionMaxHours: s.SessionMaxHours,
		SPCertificate: s.SPCertificate, UpdatedAt: tx.s.Now(), UpdatedBy: s.UpdatedBy,
	}
	var err error
	if r.AllowedDomains, err = encodeJSONColumn(s.AllowedDomains, "[]"); err != nil {
		return nil, err
	}
	if r.ServiceDeskIDs, err = encodeJSONColumn(s.ServiceDeskIDs, "[]"); err != nil {
		return nil, err
	}
	if r.OrganizationsByDomain, err = encodeJSONColumn(s.OrganizationsByDomain, "{}"); err != nil {
		return nil, err
	}
	if s.SPKey != "" {
		if r.SPKey, err = tx.s.ring.Seal([]byte(s.SPKey), secret.AD(ssoSettingsTable, ssoSPKeyColumn, siteID)); err != nil {
			return nil, fmt.Errorf("seal sso_settings.sp_key: %w", err)
		}
	}
	err = tx.db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "site_id"}}, UpdateAll: true}).Create(&r).Error
	if err != nil {
		return nil, fmt.Errorf("save sso settings: %w", translate(err))
	}
	return tx.FindSSOSettings(siteID)
}

// LockSSOSettings takes a row lock on the site's SSO settings (PostgreSQL),
// so read-modify-writes inside InTx do not interleave. None yet is fine.
func (tx *Tx) LockSSOSettings(siteID string) error {
	var r ssoSettingsRow
	err := tx.lockForUpdate().Select("site_id").Where("site_id = ?", siteID).Take(&r).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("lock sso settings: %w", translate(err))
	}
	return nil
}

// identityProviderRow is the persisted form of models.IdentityProvider;
// oidc_client_secret is sealed, bound to "site_id/id".
type identityProviderRow struct {
	SiteID                   string `gorm:"primaryKey"`
	ID                       string `gorm:"primaryKey"`
	Name                     string
	Protocol                 string
	Enabled                  bool
	EmailDomains             string
	OIDCIssuer               string `gorm:"column:oidc_issuer"`
	OIDCClientID             string `gorm:"column:oidc_client_id"`
	OIDCClientSecret         []byte `gorm:"column:oidc_client_secret"`
	OIDCClientSecretHint     string `gorm:"column:oidc_client_secret_hint"`
	OIDCScopes               string `gorm:"column:oidc_scopes"`
	OIDCEmailClaim           string `gorm:"column:oidc_email_claim"`
	OIDCNameClaim            string `gorm:"column:oidc_name_claim"`
	OIDCRequireVerifiedEmail bool   `gorm:"column:oidc_require_verified_email"`
	SAMLMetadataXML          string `gorm:"column:saml_metadata_xml"`
	SAMLMetadataURL          string `gorm:"column:saml_metadata_url"`
	SAMLEntityID             string `gorm:"column:saml_entity_id"`
	SAMLSSOURL               string `gorm:"column:saml_sso_url"`
	SAMLCertificate          string `gorm:"column:saml_certificate"`
	SAMLEmailAttribute       string `gorm:"column:saml_email_attribute"`
	SAMLNameAttribute        string `gorm:"column:saml_name_attribute"`
	CreatedAt                time.Time
	UpdatedAt                time.Time
	UpdatedBy                string
}

func (identityProviderRow) TableName() string { return identityProviderTable }

func (tx *Tx) idpFromRow(r *identityProviderRow) (*models.IdentityProvider, error) {
	p := &models.IdentityProvider{
		SiteID: r.SiteID, ID: r.ID, Name: r.Name, Protocol: r.Protocol, Enabled: r.Enabled,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), UpdatedBy: r.UpdatedBy,
	}
	if err := decodeJSONColumn(r.EmailDomains, &p.EmailDomains); err != nil {
		return nil, fmt.Errorf("identity provider %s: email_domains: %w", r.ID, err)
	}
	switch r.Protocol {
	case models.ProtocolOIDC:
		o := &models.OIDCConfig{
			Issuer: r.OIDCIssuer, ClientID: r.OIDCClientID, ClientSecretHint: r.OIDCClientSecretHint,
			EmailClaim: r.OIDCEmailClaim, NameClaim: r.OIDCNameClaim, RequireVerifiedEmail: r.OIDCRequireVerifiedEmail,
		}
		if err := decodeJSONColumn(r.OIDCScopes, &o.Scopes); err != nil {
			return nil, fmt.Errorf("identity provider %s: oidc_scopes: %w", r.ID, err)
		}
		if len(r.OIDCClientSecret) > 0 {
			plain, err := tx.s.ring.Open(r.OIDCClientSecret, secret.AD(identityProviderTable, idpClientSecretColumn, r.SiteID+"/"+r.ID))
			if err != nil {
				return nil, fmt.Errorf("open identity_providers.oidc_client_secret of %s: %w", r.ID, err)
			}
			o.ClientSecret = string(plain)
		}
		p.OIDC = o
	case models.ProtocolSAML:
		p.SAML = &models.SAMLConfig{
			MetadataXML: r.SAMLMetadataXML, MetadataURL: r.SAMLMetadataURL, EntityID: r.SAMLEntityID,
			SSOURL: r.SAMLSSOURL, Certificate: r.SAMLCertificate,
			EmailAttribute: r.SAMLEmailAttribute, NameAttribute: r.SAMLNameAttribute,
		}
	}
	return p, nil
}

// FindIdentityProviders returns the site's identity providers, oldest first.
func (tx *Tx) FindIdentityProviders(siteID string) ([]*models.IdentityProvider, error) {
	var rows []identityProviderRow
	if err := tx.db.Where("site_id = ?", siteID).Order("created_at, id").Limit(MaxIdentityProviders + 1).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("find identity providers: %w", translate(err))
	}
	out := make([]*models.IdentityProvider, 0, len(rows))
	for i := range rows {
		p, err := tx.idpFromRow(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// MaxIdentityProviders bounds how many identity providers a site may have.
const MaxIdentityProviders = 20

// FindIdentityProvider returns one of the site's identity providers.
func (tx *Tx) FindIdentityProvider(siteID, id string) (*models.IdentityProvider, error) {
	var r identityProviderRow
	if err := tx.db.Where("site_id = ? AND id = ?", siteID, id).Take(&r).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, &models.Error{Code: models.CodeNotFound, Message: "no such identity provider"}
		}
		return nil, fmt.Errorf("find identity provider: %w", translate(err))
	}
	return tx.idpFromRow(&r)
}

// SaveIdentityProvider creates or replaces the site's identity provider p
// (p.ID set by the caller), sealing its client secret, and returns it as
// stored.
func (tx *Tx) SaveIdentityProvider(siteID string, p *models.IdentityProvider) (*models.IdentityProvider, error) {
	if siteID == "" || p.ID == "" {
		return nil, &models.Error{Code: models.CodeInvalid, Message: "an identity provider needs a site and an ID"}
	}
	now := tx.s.Now()
	r := identityProviderRow{
		SiteID: siteID, ID: p.ID, Name: p.Name, Protocol: p.Protocol, Enabled: p.Enabled,
		CreatedAt: p.CreatedAt, UpdatedAt: now, UpdatedBy: p.UpdatedBy,
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	var err error
	if r.EmailDomains, err = encodeJSONColumn(p.EmailDomains, "[]"); err != nil {
		return nil, err
	}
	r.OIDCScopes = "[]"
	if o := p.OIDC; o != nil {
		r.OIDCIssuer, r.OIDCClientID, r.OIDCClientSecretHint = o.Issuer, o.ClientID, o.ClientSecretHint
		r.OIDCEmailClaim, r.OIDCNameClaim, r.OIDCRequireVerifiedEmail = o.EmailClaim, o.NameClaim, o.RequireVerifiedEmail
		if r.OIDCScopes, err = encodeJSONColumn(o.Scopes, "[]"); err != nil {
			return nil, err
		}
		if o.ClientSecret != "" {
			r.OIDCClientSecret, err = tx.s.ring.Seal([]byte(o.ClientSecret), secret.AD(identityProviderTable, idpClientSecretColumn, siteID+"/"+p.ID))
			if err != nil {
				return nil, fmt.Errorf("seal identity_providers.oidc_client_secret: %w", err)
			}
		}
	}
	if s := p.SAML; s != nil {
		r.SAMLMetadataXML, r.SAMLMetadataURL, r.SAMLEntityID = s.MetadataXML, s.MetadataURL, s.EntityID
		r.SAMLSSOURL, r.SAMLCertificate = s.SSOURL, s.Certificate
		r.SAMLEmailAttribute, r.SAMLNameAttribute = s.EmailAttribute, s.NameAttribute
	}
	err = tx.db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "site_id"}, {Name: "id"}}, UpdateAll: true}).Create(&r).Error
	if err != nil {
		return nil, fmt.Errorf("save identity provider: %w", translate(err))
	}
	return tx.FindIdentityProvider(siteID, p.ID)
}

// CountIdentityProviders counts the site's identity providers.
func (tx *Tx) CountIdentityProviders(siteID string) (int, error) {
	var n int64
	if err := tx.db.Model(&identityProviderRow{}).Where("site_id = ?", siteID).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count identity providers: %w", translate(err))
	}
	return int(n), nil
}

// DeleteIdentityProvider removes the site's identity provider and its
// pending login state; an unknown ID: not found.
func (tx *Tx) DeleteIdentityProvider(siteID, id string) error {
	res := tx.db.Where("site_id = ? AND id = ?", siteID, id).Delete(&identityProviderRow{})
	if res.Error != nil {
		return fmt.Errorf("delete identity provider: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return &models.Error{Code: models.CodeNotFound, Message: "no such identity provider"}
	}
	if err := tx.db.Where("site_id = ? AND idp_id = ?", siteID, id).Delete(&loginStateRow{}).Error; err != nil {
		return fmt.Errorf("delete login state of identity provider: %w", translate(err))
	}
	return nil
}

// deleteSSOSecrets removes the site's IdP client secrets, SP key, login
// state and portal sessions (SPEC 2.2: secrets go at once on uninstall).
func (tx *Tx) deleteSSOSecrets(siteID string) error {
	if err := tx.db.Model(&identityProviderRow{}).Where("site_id = ?", siteID).
		Updates(map[string]any{"oidc_client_secret": nil, "oidc_client_secret_hint": ""}).Error; err != nil {
		return fmt.Errorf("delete identity provider secrets: %w", translate(err))
	}
	if err := tx.db.Model(&ssoSettingsRow{}).Where("site_id = ?", siteID).
		Updates(map[string]any{"sp_key": nil, "sp_certificate": "", "enabled": false}).Error; err != nil {
		return fmt.Errorf("delete sso key: %w", translate(err))
	}
	if err := tx.db.Where("site_id = ?", siteID).Delete(&loginStateRow{}).Error; err != nil {
		return fmt.Errorf("delete login state: %w", translate(err))
	}
	if err := tx.db.Where("site_id = ?", siteID).Delete(&portalSessionRow{}).Error; err != nil {
		return fmt.Errorf("delete portal sessions: %w", translate(err))
	}
	return nil
}

func encodeJSONColumn(v any, empty string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode column: %w", err)
	}
	if string(b) == "null" {
		return empty, nil
	}
	return string(b), nil
}

func decodeJSONColumn(s string, v any) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}
