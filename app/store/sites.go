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

// siteRow is the persisted form of models.Site: the site facts are columns
// of their own names. The shared secret is only ever stored sealed, bound to
// the row's ID.
type siteRow struct {
	ID string `gorm:"primaryKey"`
	models.SiteFacts
	SharedSecret  []byte
	State         string
	InstalledAt   time.Time
	UpdatedAt     time.Time
	UninstalledAt *time.Time
	PurgeAfter    *time.Time
}

func (siteRow) TableName() string { return "sites" }

const (
	sitesTable         = "sites"
	sharedSecretColumn = "shared_secret"
)

func (tx *Tx) siteFromRow(r *siteRow) (*models.Site, error) {
	site := &models.Site{
		ID:            r.ID,
		SiteFacts:     r.SiteFacts,
		State:         models.SiteState(r.State),
		InstalledAt:   r.InstalledAt.UTC(),
		UpdatedAt:     r.UpdatedAt.UTC(),
		UninstalledAt: utcPtr(r.UninstalledAt),
		PurgeAfter:    utcPtr(r.PurgeAfter),
	}
	if len(r.SharedSecret) > 0 {
		plain, err := tx.s.ring.Open(r.SharedSecret, secret.AD(sitesTable, sharedSecretColumn, r.ID))
		if err != nil {
			return nil, fmt.Errorf("open shared secret of site %s: %w", r.ID, err)
		}
		site.SharedSecret = plain
	}
	return site, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// FindSiteByClientKey returns the site with that Connect clientKey, in any
// state; callers decide whether an uninstalled site may act.
func (tx *Tx) FindSiteByClientKey(clientKey string) (*models.Site, error) {
	var r siteRow
	if err := tx.db.Where("client_key = ?", clientKey).Take(&r).Error; err != nil {
		return nil, fmt.Errorf("find site by client key: %w", translate(err))
	}
	return tx.siteFromRow(&r)
}

// FindSiteByID returns the site with our opaque ID.
func (tx *Tx) FindSiteByID(siteID string) (*models.Site, error) {
	var r siteRow
	if err := tx.db.Where("id = ?", siteID).Take(&r).Error; err != nil {
		return nil, fmt.Errorf("find site %s: %w", siteID, translate(err))
	}
	return tx.siteFromRow(&r)
}

// SaveInstall records a verified install: a new site, or an existing one
// (found by clientKey, in any state) whose secret and facts are replaced and
// which becomes installed again. The site keeps its ID across reinstalls.
// Run it inside InTx: it reads, then writes, under a row lock on PostgreSQL.
func (tx *Tx) SaveInstall(in *models.Site) (*models.Site, error) {
	if in.ClientKey == "" || len(in.SharedSecret) == 0 || in.BaseURL == "" {
		return nil, &models.Error{Code: models.CodeInvalid, Message: "install needs clientKey, sharedSecret and baseUrl"}
	}
	now := tx.s.Now()
	var existing siteRow
	err := tx.lockForUpdate().Where("client_key = ?", in.ClientKey).Take(&existing).Error
	if errors.Is(err, gorm.ErrRecordNotFound) && in.InstallationID != "" {
		// A site Forge's installed event made first (docs/FORGE.md): the
		// Connect install adopts it, and its clientKey becomes the real one.
		// Only such a placeholder (its clientKey still the installationId,
		// no shared secret yet): the body's installationId is not covered by
		// the install token, so it must never hand over a site that Connect
		// installed.
		err = tx.lockForUpdate().Where("installation_id = ? AND client_key = installation_id AND shared_secret IS NULL", in.InstallationID).
			Take(&existing).Error
	}
	isNew := errors.Is(err, gorm.ErrRecordNotFound)
	if err != nil && !isNew {
		return nil, fmt.Errorf("save install: %w", translate(err))
	}
	id := existing.ID
	if isNew {
		id = NewID("s")
	}
	sealed, err := tx.s.ring.Seal(in.SharedSecret, secret.AD(sitesTable, sharedSecretColumn, id))
	if err != nil {
		return nil, fmt.Errorf("seal shared secret: %w", err)
	}
	r := siteRow{
		ID:           id,
		SiteFacts:    in.SiteFacts,
		SharedSecret: sealed,
		State:        string(models.SiteInstalled),
		InstalledAt:  now,
		UpdatedAt:    now,
	}
	if isNew {
		err = tx.db.Create(&r).Error
	} else {
		// Forge-registered installs may omit installationId/cloudId on a
		// later event; never erase what we learned.
		if r.InstallationID == "" {
			r.InstallationID = existing.InstallationID
		}
		if r.CloudID == "" {
			r.CloudID = existing.CloudID
		}
		err = tx.db.Model(&siteRow{}).Where("id = ?", id).Select("*").Updates(&r).Error
	}
	if err != nil {
		return nil, fmt.Errorf("save install: %w", translate(err))
	}
	if existing.State == string(models.SiteDisabled) {
		// SCIM refuses a disabled site's changes: replicas drop what they
		// cached of the site's SCIM credentials.
		if err := tx.Notify(SCIMNotifyChannel, id); err != nil {
			return nil, fmt.Errorf("save install: %w", err)
		}
	}
	site, err := tx.siteFromRow(&r)
	if err != nil {
		return nil, err
	}
	return site, nil
}

// SetSiteState changes the state of an installed or disabled site. It never
// revives an uninstalled one: that takes a verified install (SaveInstall).
func (tx *Tx) SetSiteState(siteID string, state models.SiteState) error {
	if state != models.SiteInstalled && state != models.SiteDisabled {
		return &models.Error{Code: models.CodeInvalid, Message: fmt.Sprintf("site state %q cannot be set directly", state)}
	}
	res := tx.db.Model(&siteRow{}).
		Where("id = ? AND state <> ?", siteID, string(models.SiteUninstalled)).
		Updates(map[string]any{"state": string(state), "updated_at": tx.s.Now()})
	if res.Error != nil {
		return fmt.Errorf("set site state: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return &models.Error{Code: models.CodeNotFound, Message: "site is not installed"}
	}
	// SCIM refuses a disabled site's changes: replicas drop what they
	// cached of the site's SCIM credentials.
	return tx.Notify(SCIMNotifyChannel, siteID)
}

// MarkSiteUninstalled deletes the site's secrets at once and schedules the
// rest of its data for purge. Repeating it changes nothing (the first
// uninstall time and purge date stay).
func (tx *Tx) MarkSiteUninstalled(siteID string, purgeAfter time.Time) error {
	now := tx.s.Now()
	res := tx.db.Model(&siteRow{}).
		Where("id = ? AND state <> ?", siteID, string(models.SiteUninstalled)).
		Updates(map[string]any{
			"state":          string(models.SiteUninstalled),
			"shared_secret":  nil,
			"uninstalled_at": now,
			"purge_after":    purgeAfter.UTC(),
			"updated_at":     now,
		})
	if res.Error != nil {
		return fmt.Errorf("mark site uninstalled: %w", translate(res.Error))
	}
	if err := tx.deleteServiceAccountSecrets(siteID); err != nil {
		return fmt.Errorf("mark site uninstalled: %w", err)
	}
	if err := tx.RevokeSCIMToken(siteID); err != nil {
		return fmt.Errorf("mark site uninstalled: %w", err)
	}
	if err := tx.deleteSSOSecrets(siteID); err != nil {
		return fmt.Errorf("mark site uninstalled: %w", err)
	}
	if err := tx.deleteSystemToken(siteID); err != nil {
		return fmt.Errorf("mark site uninstalled: %w", err)
	}
	if res.RowsAffected == 0 {
		// Already uninstalled is fine; an unknown ID must not pass for a
		// deleted secret.
		var n int64
		if err := tx.db.Model(&siteRow{}).Where("id = ?", siteID).Count(&n).Error; err != nil {
			return fmt.Errorf("mark site uninstalled: %w", translate(err))
		}
		if n == 0 {
			return &models.Error{Code: models.CodeNotFound, Message: "site not found"}
		}
	}
	return nil
}

// lockForUpdate takes row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE
// already serialises writers.
func (tx *Tx) lockForUpdate() *gorm.DB {
	if tx.s.dialect == Postgres {
		return tx.db.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return tx.db
}
