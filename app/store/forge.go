package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"idbridge/app/secret"
	"idbridge/models"
)

// Forge installations (docs/FORGE.md): once an app is registered with
// Forge, a site is also known by its installationId (an installation ARI,
// unique among sites since the "forge installations" migration) and its cloudId (shared by the Jira
// and the Confluence installation of one cloud site, so never unique). The
// forge_installations row of a site holds what Forge's own lifecycle told
// us and the app system token Forge hands the remote, sealed.

const (
	forgeInstallationsTable = "forge_installations"
	systemTokenColumn       = "system_token"
)

// forgeRow is a forge_installations row.
type forgeRow struct {
	SiteID               string `gorm:"primaryKey"`
	InstallationID       string
	SystemToken          []byte
	SystemTokenExpiresAt *time.Time
	ForgeInstalledAt     *time.Time
	UpdatedAt            time.Time
	AppVersion           string
	EnvironmentType      string
}

func (forgeRow) TableName() string { return forgeInstallationsTable }

// migrateForge: a unique installationId per site (where two rows share one,
// the most recently updated keeps it: an installation is one site), and a
// forge_installations row for every site that already has one, so Connect
// sites registered with Forge are linked before Forge's first event.
func migrateForge(tx *gorm.DB, d string) error {
	return portable(
		`UPDATE sites SET installation_id = ''
		  WHERE installation_id <> '' AND EXISTS (
			SELECT 1 FROM sites newer
			 WHERE newer.installation_id = sites.installation_id AND newer.id <> sites.id
			   AND (newer.updated_at > sites.updated_at OR (newer.updated_at = sites.updated_at AND newer.id > sites.id)))`,
		`DROP INDEX sites_installation_id`,
		`CREATE UNIQUE INDEX sites_installation_id ON sites (installation_id) WHERE installation_id <> ''`,
		`CREATE TABLE forge_installations (
			site_id TEXT PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
			installation_id TEXT NOT NULL,
			system_token {{bytes}},
			system_token_expires_at {{ts}},
			forge_installed_at {{ts}},
			app_version TEXT NOT NULL DEFAULT '',
			environment_type TEXT NOT NULL DEFAULT '',
			updated_at {{ts}} NOT NULL
		)`,
		`INSERT INTO forge_installations (site_id, installation_id, updated_at)
		   SELECT id, installation_id, updated_at FROM sites WHERE installation_id <> ''`,
	)(tx, d)
}

// FindSiteByInstallationID returns the site of a Forge installation, in
// any state.
func (tx *Tx) FindSiteByInstallationID(installationID string) (*models.Site, error) {
	if installationID == "" {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "no installation ID"}
	}
	var r siteRow
	if err := tx.db.Where("installation_id = ?", installationID).Take(&r).Error; err != nil {
		return nil, fmt.Errorf("find site by installation: %w", translate(err))
	}
	return tx.siteFromRow(&r)
}

// FindSitesByCloudID returns the sites of one cloud site (a Jira and a
// Confluence installation share a cloudId), oldest first, at most 8.
func (tx *Tx) FindSitesByCloudID(cloudID string) ([]*models.Site, error) {
	if cloudID == "" {
		return nil, nil
	}
	var rows []siteRow
	if err := tx.db.Where("cloud_id = ?", cloudID).Order("installed_at, id").Limit(8).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("find sites by cloud: %w", translate(err))
	}
	out := make([]*models.Site, 0, len(rows))
	for i := range rows {
		s, err := tx.siteFromRow(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// ForgeInstall is what a verified Forge lifecycle event tells about a site.
type ForgeInstall struct {
	InstallationID  string
	CloudID         string
	BaseURL         string // the site URL of the token's context
	ProductType     string // jira or confluence, from the API base URL
	AppVersion      string
	EnvironmentType string
	// LinkTo, when set, is the ID of the site (found by the caller, by
	// cloudId and product) that this installation belongs to.
	LinkTo string
	// Revive says the event may make an uninstalled site installed again:
	// only Forge's installed event, never a late upgraded one. A disabled
	// site becomes installed with either event (see SaveForgeInstall).
	Revive bool
}

// SaveForgeInstall records a Forge installed or upgraded event: the site of
// that installationId, or the one named by LinkTo (a site Connect installed
// earlier) which then gains the installationId, or else a new site known
// only to Forge, whose clientKey is the installationId until Connect's own
// installed callback (SaveInstall) adopts it. The site becomes installed
// again when it was disabled (installed or upgraded) or uninstalled
// (installed only, Revive); its shared secret, tokens and settings stay.
// Run it inside InTx.
func (tx *Tx) SaveForgeInstall(in ForgeInstall) (*models.Site, error) {
	if in.InstallationID == "" {
		return nil, &models.Error{Code: models.CodeInvalid, Message: "a Forge install needs an installationId"}
	}
	now := tx.s.Now()
	var existing siteRow
	err := tx.lockForUpdate().Where("installation_id = ?", in.InstallationID).Take(&existing).Error
	if errors.Is(err, gorm.ErrRecordNotFound) && in.LinkTo != "" {
		err = tx.lockForUpdate().Where("id = ?", in.LinkTo).Take(&existing).Error
	}
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		if in.BaseURL == "" {
			return nil, &models.Error{Code: models.CodeInvalid, Message: "a Forge install of an unknown site needs the site URL"}
		}
		existing = siteRow{ID: NewID("s"), State: string(models.SiteInstalled), InstalledAt: now, UpdatedAt: now}
		existing.ClientKey = in.InstallationID
		existing.BaseURL = strings.TrimSuffix(in.BaseURL, "/")
		existing.ProductType = in.ProductType
		existing.InstallationID = in.InstallationID
		existing.CloudID = in.CloudID
		if err := tx.db.Create(&existing).Error; err != nil {
			return nil, fmt.Errorf("save forge install: %w", translate(err))
		}
	case err != nil:
		return nil, fmt.Errorf("save forge install: %w", translate(err))
	default:
		updates := map[string]any{"installation_id": in.InstallationID, "updated_at": now}
		if in.CloudID != "" {
			updates["cloud_id"] = in.CloudID
		}
		switch {
		case existing.State == string(models.SiteUninstalled) && in.Revive:
			// Forge installs the app anew: the site is usable again (its
			// Connect secret is gone; Connect's installed brings a new one).
			updates["state"] = string(models.SiteInstalled)
			updates["uninstalled_at"] = nil
			updates["purge_after"] = nil
			updates["installed_at"] = now
		case existing.State == string(models.SiteDisabled):
			// Disabled by Connect's disabled callback before the move to
			// Forge, which sends neither enabled nor disabled: no enabled
			// will ever lift it, and Forge has no disabled state to report,
			// so an installed or upgraded event is the word that the app
			// runs in the site. It is installed again, as Connect's
			// installed would make it, and keeps its secret and data.
			updates["state"] = string(models.SiteInstalled)
		}
		if err := tx.db.Model(&siteRow{}).Where("id = ?", existing.ID).Updates(updates).Error; err != nil {
			return nil, fmt.Errorf("save forge install: %w", translate(err))
		}
		if existing.State == string(models.SiteDisabled) {
			// SCIM refuses a disabled site's changes: replicas drop what
			// they cached of the site's SCIM credentials.
			if err := tx.Notify(SCIMNotifyChannel, existing.ID); err != nil {
				return nil, fmt.Errorf("save forge install: %w", err)
			}
		}
	}
	f := forgeRow{
		SiteID: existing.ID, InstallationID: in.InstallationID, ForgeInstalledAt: &now, UpdatedAt: now,
		AppVersion: in.AppVersion, EnvironmentType: in.EnvironmentType,
	}
	res := tx.db.Model(&forgeRow{}).Where("site_id = ?", existing.ID).Updates(map[string]any{
		"installation_id": f.InstallationID, "forge_installed_at": now, "updated_at": now,
		"app_version": f.AppVersion, "environment_type": f.EnvironmentType,
	})
	if res.Error != nil {
		return nil, fmt.Errorf("save forge install: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		if err := tx.db.Create(&f).Error; err != nil {
			return nil, fmt.Errorf("save forge install: %w", translate(err))
		}
	}
	return tx.FindSiteByID(existing.ID)
}

// SystemToken is the app system token Forge last handed us for a site.
type SystemToken struct {
	Token     string
	ExpiresAt time.Time
}

// SaveSystemToken keeps the app system token of a site's Forge
// installation, sealed and bound to the site, with its expiry. An older
// token (an earlier expiry) never replaces a newer one.
func (tx *Tx) SaveSystemToken(siteID, installationID, token string, expiresAt time.Time) error {
	if token == "" || expiresAt.IsZero() {
		return &models.Error{Code: models.CodeInvalid, Message: "a system token needs a value and an expiry"}
	}
	sealed, err := tx.s.ring.Seal([]byte(token), secret.AD(forgeInstallationsTable, systemTokenColumn, siteID))
	if err != nil {
		return fmt.Errorf("seal system token: %w", err)
	}
	now := tx.s.Now()
	exp := expiresAt.UTC()
	res := tx.db.Model(&forgeRow{}).
		Where("site_id = ? AND (system_token_expires_at IS NULL OR system_token_expires_at < ?)", siteID, exp).
		Updates(map[string]any{"system_token": sealed, "system_token_expires_at": exp, "updated_at": now})
	if res.Error != nil {
		return fmt.Errorf("save system token: %w", translate(res.Error))
	}
	if res.RowsAffected > 0 {
		return nil
	}
	var n int64
	if err := tx.db.Model(&forgeRow{}).Where("site_id = ?", siteID).Count(&n).Error; err != nil {
		return fmt.Errorf("save system token: %w", translate(err))
	}
	if n > 0 {
		return nil // a newer token is kept already
	}
	return translate(tx.db.Create(&forgeRow{
		SiteID: siteID, InstallationID: installationID, SystemToken: sealed, SystemTokenExpiresAt: &exp, UpdatedAt: now,
	}).Error)
}

// FindSystemToken returns the site's app system token; not found when
// there is none or it has expired by now.
func (tx *Tx) FindSystemToken(siteID string, now time.Time) (*SystemToken, error) {
	var r forgeRow
	err := tx.db.Where("site_id = ? AND system_token IS NOT NULL AND system_token_expires_at > ?", siteID, now.UTC()).Take(&r).Error
	if err != nil {
		return nil, fmt.Errorf("find system token: %w", translate(err))
	}
	plain, err := tx.s.ring.Open(r.SystemToken, secret.AD(forgeInstallationsTable, systemTokenColumn, siteID))
	if err != nil {
		return nil, fmt.Errorf("open system token of site %s: %w", siteID, err)
	}
	return &SystemToken{Token: string(plain), ExpiresAt: r.SystemTokenExpiresAt.UTC()}, nil
}

// FindSystemTokenExpiry returns when the site's app system token expires
// (past or not), without opening it; not found when there is none.
func (tx *Tx) FindSystemTokenExpiry(siteID string) (time.Time, error) {
	var r forgeRow
	err := tx.db.Select("site_id", "system_token_expires_at").
		Where("site_id = ? AND system_token IS NOT NULL AND system_token_expires_at IS NOT NULL", siteID).Take(&r).Error
	if err != nil {
		return time.Time{}, fmt.Errorf("find system token expiry: %w", translate(err))
	}
	return r.SystemTokenExpiresAt.UTC(), nil
}

// deleteSystemToken drops the site's app system token (uninstall deletes a
// site's secrets at once).
func (tx *Tx) deleteSystemToken(siteID string) error {
	return translate(tx.db.Model(&forgeRow{}).Where("site_id = ?", siteID).
		Updates(map[string]any{"system_token": nil, "system_token_expires_at": nil}).Error)
}
