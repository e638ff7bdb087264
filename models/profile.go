package models

import "time"

// ProfileField names one field of a site's customer record (SPEC section 3).
type ProfileField string

// The customer record's fields.
const (
	ProfileName      ProfileField = "name"      // contact name
	ProfileEmail     ProfileField = "email"     // contact email
	ProfileLocation  ProfileField = "location"  // country/region
	ProfileCompany   ProfileField = "company"   // company name
	ProfilePurchaser ProfileField = "purchaser" // purchaser's name
)

// ProfileFields lists the fields in display order.
func ProfileFields() []ProfileField {
	return []ProfileField{ProfileName, ProfileEmail, ProfileLocation, ProfileCompany, ProfilePurchaser}
}

// Valid reports whether f is a field of the customer record.
func (f ProfileField) Valid() bool {
	switch f {
	case ProfileName, ProfileEmail, ProfileLocation, ProfileCompany, ProfilePurchaser:
		return true
	}
	return false
}

// ProfileSource says where a value of the customer record came from.
type ProfileSource string

// Sources, in the order SPEC section 3 names them.
const (
	SourceMarketplace ProfileSource = "marketplace" // the installation's Marketplace licence
	SourceAdmin       ProfileSource = "admin"       // entered or corrected by a site admin
	SourceInstall     ProfileSource = "install"     // the install event
)

// ProfileValue is one field of the customer record. The synced value (from
// the Marketplace or the install) is kept beside an admin's correction, so
// that clearing the correction shows the latest synced value at once.
type ProfileValue struct {
	Synced       string
	SyncedSource ProfileSource // "" when nothing was ever synced
	SyncedAt     *time.Time
	// Correction, when not nil, is the admin's value; it wins over syncs
	// until cleared.
	Correction  *string
	CorrectedAt *time.Time
}

// Value is the field's effective value.
func (v ProfileValue) Value() string {
	if v.Correction != nil {
		return *v.Correction
	}
	return v.Synced
}

// Source is where the effective value came from; "" when there is none.
func (v ProfileValue) Source() ProfileSource {
	if v.Correction != nil {
		return SourceAdmin
	}
	if v.Synced == "" {
		return ""
	}
	return v.SyncedSource
}

// UpdatedAt is when the effective value was set.
func (v ProfileValue) UpdatedAt() *time.Time {
	if v.Correction != nil {
		return v.CorrectedAt
	}
	return v.SyncedAt
}

// CustomerProfile is a site's customer record: contact name and email,
// location, company and purchaser, each with its source and time.
type CustomerProfile struct {
	SiteID     string
	Fields     map[ProfileField]ProfileValue
	LastSyncAt *time.Time
	// SyncStatus says in words what the last Marketplace sync found for
	// this site ("" before the first).
	SyncStatus string
	UpdatedAt  time.Time
}

// Field returns the value of f (the zero value when unknown).
func (p *CustomerProfile) Field(f ProfileField) ProfileValue {
	if p == nil || p.Fields == nil {
		return ProfileValue{}
	}
	return p.Fields[f]
}

// ProfileChange is one admin correction: a value, or nil to clear it.
type ProfileChange struct {
	Field ProfileField
	Value *string
}

// LicenseContact is what the Marketplace licence of an installation says
// about its customer, mapped to the record's fields. A field absent from
// Values is unknown and left as it is; a field present with "" was erased
// by Atlassian under GDPR ("RTBF") and is cleared here too.
type LicenseContact struct {
	Values map[ProfileField]string
}
