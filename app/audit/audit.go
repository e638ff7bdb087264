// Package audit owns the audit log (SPEC section 7): the one place where
// idbridge keeps who did what. Events are written inside the caller's
// transaction, so an event and the change it records commit or roll back
// together: a failed change leaves no event, and a change never goes
// unrecorded.
package audit

import (
	"fmt"
	"slices"

	"idbridge/app/store"
	"idbridge/models"
)

// Sections of the configuration named by config_changed events.
const (
	SectionServiceAccount = "service_account"
	SectionProvisioning   = "provisioning"
	SectionSSO            = "sso"
)

// Record appends ev to the audit log of ev.SiteID within tx, and returns it
// as stored (with its ID and time). Fields are names, never values; they
// are sorted so that equal changes read alike.
func Record(tx *store.Tx, ev models.AuditEvent) (*models.AuditEvent, error) {
	if ev.SiteID == "" {
		return nil, fmt.Errorf("audit: event %s without a site", ev.Event)
	}
	ev.Fields = slices.Clone(ev.Fields)
	slices.Sort(ev.Fields)
	ev.Fields = slices.Compact(ev.Fields)
	stored, err := tx.CreateAuditEvent(ev.SiteID, ev)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return stored, nil
}

// ConfigChanged is the event of an admin changing a section of the
// configuration; fields names what changed.
func ConfigChanged(siteID, actorAccountID, section string, fields []string) models.AuditEvent {
	return models.AuditEvent{SiteID: siteID, ActorAccountID: actorAccountID, Event: models.AuditConfigChanged,
		Section: section, Fields: fields}
}

// RecordCorrected is the event of an admin correcting the customer record.
func RecordCorrected(siteID, actorAccountID string, fields []string) models.AuditEvent {
	return models.AuditEvent{SiteID: siteID, ActorAccountID: actorAccountID, Event: models.AuditRecordCorrected,
		Section: "customer_record", Fields: fields}
}
