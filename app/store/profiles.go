package store

import (
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"idbridge/models"
)

const customerProfilesTable = "customer_profiles"

// profileFieldColumns maps each field to its column prefix; the columns are
// <prefix>, <prefix>_source, <prefix>_updated_at, <prefix>_correction and
// <prefix>_corrected_at. The names are fixed here, never taken from input.
var profileFieldColumns = map[models.ProfileField]string{
	models.ProfileName:      "name",
	models.ProfileEmail:     "email",
	models.ProfileLocation:  "location",
	models.ProfileCompany:   "company",
	models.ProfilePurchaser: "purchaser",
}

// profileRow is the persisted form of models.CustomerProfile.
type profileRow struct {
	SiteID               string `gorm:"primaryKey"`
	Name                 string
	NameSource           string
	NameUpdatedAt        *time.Time
	NameCorrection       *string
	NameCorrectedAt      *time.Time
	Email                string
	EmailSource          string
	EmailUpdatedAt       *time.Time
	EmailCorrection      *string
	EmailCorrectedAt     *time.Time
	Location             string
	LocationSource       string
	LocationUpdatedAt    *time.Time
	LocationCorrection   *string
	LocationCorrectedAt  *time.Time
	Company              string
	CompanySource        string
	CompanyUpdatedAt     *time.Time
	CompanyCorrection    *string
	CompanyCorrectedAt   *time.Time
	Purchaser            string
	PurchaserSource      string
	PurchaserUpdatedAt   *time.Time
	PurchaserCorrection  *string
	PurchaserCorrectedAt *time.Time
	LastSyncAt           *time.Time
	SyncStatus           string
	UpdatedAt            time.Time
}

func (profileRow) TableName() string { return customerProfilesTable }

// value returns the stored parts of field f.
func (r *profileRow) value(f models.ProfileField) models.ProfileValue {
	var (
		synced, source       string
		updated, correctedAt *time.Time
		correction           *string
	)
	switch f {
	case models.ProfileName:
		synced, source, updated, correction, correctedAt = r.Name, r.NameSource, r.NameUpdatedAt, r.NameCorrection, r.NameCorrectedAt
	case models.ProfileEmail:
		synced, source, updated, correction, correctedAt = r.Email, r.EmailSource, r.EmailUpdatedAt, r.EmailCorrection, r.EmailCorrectedAt
	case models.ProfileLocation:
		synced, source, updated, correction, correctedAt = r.Location, r.LocationSource, r.LocationUpdatedAt, r.LocationCorrection, r.LocationCorrectedAt
	case models.ProfileCompany:
		synced, source, updated, correction, correctedAt = r.Company, r.CompanySource, r.CompanyUpdatedAt, r.CompanyCorrection, r.CompanyCorrectedAt
	case models.ProfilePurchaser:
		synced, source, updated, correction, correctedAt = r.Purchaser, r.PurchaserSource, r.PurchaserUpdatedAt, r.PurchaserCorrection, r.PurchaserCorrectedAt
	}
	v := models.ProfileValue{
		Synced:       synced,
		SyncedSource: models.ProfileSource(source),
		SyncedAt:     utcPtr(updated),
		CorrectedAt:  utcPtr(correctedAt),
	}
	if correction != nil {
		c := *correction
		v.Correction = &c
	}
	return v
}

// FindCustomerProfile returns the site's customer record. A site for which
// nothing is known yet: not found.
func (tx *Tx) FindCustomerProfile(siteID string) (*models.CustomerProfile, error) {
	var r profileRow
	if err := tx.db.Where("site_id = ?", siteID).Take(&r).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, &models.Error{Code: models.CodeNotFound, Message: "no customer record yet"}
		}
		return nil, fmt.Errorf("find customer profile: %w", translate(err))
	}
	p := &models.CustomerProfile{
		SiteID:     r.SiteID,
		Fields:     make(map[models.ProfileField]models.ProfileValue, len(profileFieldColumns)),
		LastSyncAt: utcPtr(r.LastSyncAt),
		SyncStatus: r.SyncStatus,
		UpdatedAt:  r.UpdatedAt.UTC(),
	}
	for _, f := range models.ProfileFields() {
		p.Fields[f] = r.value(f)
	}
	return p, nil
}

// ensureCustomerProfile creates the site's (empty) record if it has none,
// and locks it for the rest of the transaction on PostgreSQL.
func (tx *Tx) ensureCustomerProfile(siteID string) error {
	err := tx.db.Exec(`INSERT INTO customer_profiles (site_id, updated_at) VALUES (?, ?) ON CONFLICT (site_id) DO NOTHING`,
		siteID, tx.s.Now()).Error
	if err != nil {
		return fmt.Errorf("create customer profile: %w", translate(err))
	}
	if tx.s.dialect == Postgres {
		if err := tx.db.Exec(`SELECT site_id FROM customer_profiles WHERE site_id = ? FOR UPDATE`, siteID).Error; err != nil {
			return fmt.Errorf("lock customer profile: %w", translate(err))
		}
	}
	return nil
}

// CorrectCustomerProfile applies an admin's corrections at once: a value
// becomes the field's correction, which wins over later syncs; nil clears
// the correction, so the synced value shows again. It returns the record
// afterwards and the fields whose effective value or correction changed.
func (tx *Tx) CorrectCustomerProfile(siteID string, changes []models.ProfileChange) (*models.CustomerProfile, []models.ProfileField, error) {
	if err := tx.ensureCustomerProfile(siteID); err != nil {
		return nil, nil, err
	}
	before, err := tx.FindCustomerProfile(siteID)
	if err != nil {
		return nil, nil, err
	}
	now := tx.s.Now()
	updates := map[string]any{}
	var changed []models.ProfileField
	for _, ch := range changes {
		col, ok := profileFieldColumns[ch.Field]
		if !ok {
			return nil, nil, models.FieldError(string(ch.Field), "%q is not a field of the customer record", ch.Field)
		}
		old := before.Field(ch.Field).Correction
		if old == nil && ch.Value == nil || old != nil && ch.Value != nil && *old == *ch.Value {
			continue
		}
		if ch.Value == nil {
			updates[col+"_correction"] = nil
			updates[col+"_corrected_at"] = nil
		} else {
			updates[col+"_correction"] = *ch.Value
			updates[col+"_corrected_at"] = now
		}
		changed = append(changed, ch.Field)
	}
	if len(changed) == 0 {
		return before, nil, nil
	}
	updates["updated_at"] = now
	if err := tx.db.Table(customerProfilesTable).Where("site_id = ?", siteID).Updates(updates).Error; err != nil {
		return nil, nil, fmt.Errorf("correct customer profile: %w", translate(err))
	}
	after, err := tx.FindCustomerProfile(siteID)
	if err != nil {
		return nil, nil, err
	}
	return after, changed, nil
}

// ApplyProfileSync records what a sync found: each field in values takes
// the value with source and time (an admin's correction stays and still
// wins); fields not in values are left alone. status says in words what the
// sync found; lastSync is when it ran.
func (tx *Tx) ApplyProfileSync(siteID string, values map[models.ProfileField]string, source models.ProfileSource, status string) (*models.CustomerProfile, error) {
	if err := tx.ensureCustomerProfile(siteID); err != nil {
		return nil, err
	}
	before, err := tx.FindCustomerProfile(siteID)
	if err != nil {
		return nil, err
	}
	now := tx.s.Now()
	updates := map[string]any{"last_sync_at": now, "sync_status": status}
	for _, f := range models.ProfileFields() {
		v, ok := values[f]
		if !ok {
			continue
		}
		old := before.Field(f)
		if old.Synced == v && (old.SyncedSource == source || v == "") {
			continue // unchanged: keep the time it was learned
		}
		col := profileFieldColumns[f]
		updates[col] = v
		updates[col+"_source"] = string(source)
		updates[col+"_updated_at"] = now
		if v == "" {
			updates[col+"_source"] = ""
		}
		updates["updated_at"] = now
	}
	if err := tx.db.Table(customerProfilesTable).Where("site_id = ?", siteID).Updates(updates).Error; err != nil {
		return nil, fmt.Errorf("apply profile sync: %w", translate(err))
	}
	return tx.FindCustomerProfile(siteID)
}

// RecordProfileSyncStatus notes a sync that found nothing to apply for the
// site (not in the Marketplace, say), without touching any value.
func (tx *Tx) RecordProfileSyncStatus(siteID, status string) error {
	if err := tx.ensureCustomerProfile(siteID); err != nil {
		return err
	}
	err := tx.db.Table(customerProfilesTable).Where("site_id = ?", siteID).
		Updates(map[string]any{"last_sync_at": tx.s.Now(), "sync_status": status}).Error
	if err != nil {
		return fmt.Errorf("record profile sync: %w", translate(err))
	}
	return nil
}

// ActiveSiteIDs lists the IDs of installed and disabled sites, for jobs
// that visit every site, in ID order.
func (tx *Tx) ActiveSiteIDs() ([]string, error) {
	var ids []string
	err := tx.db.Model(&siteRow{}).Where("state <> ?", string(models.SiteUninstalled)).Order("id").Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("list active sites: %w", translate(err))
	}
	return ids, nil
}
