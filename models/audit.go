package models

import "time"

// AuditEventType names what happened (SPEC section 7).
type AuditEventType string

// Audit events: customer sign-ins and what follows them, and admin actions.
const (
	AuditLoginSuccess         AuditEventType = "login_success"
	AuditLoginFailure         AuditEventType = "login_failure"
	AuditCustomerCreated      AuditEventType = "customer_created"
	AuditAddedToServiceDesk   AuditEventType = "added_to_service_desk"
	AuditAddedToOrganization  AuditEventType = "added_to_organization"
	AuditAccessDenied         AuditEventType = "access_denied"
	AuditLogout               AuditEventType = "logout"
	AuditRequestCreated       AuditEventType = "request_created"
	AuditConfigChanged        AuditEventType = "config_changed"
	AuditTokenRotated         AuditEventType = "token_rotated"
	AuditRecordCorrected      AuditEventType = "record_corrected"
	AuditDataExported         AuditEventType = "data_exported"
	AuditDataErased           AuditEventType = "data_erased"
	AuditProcessingRestricted AuditEventType = "processing_restricted"
	AuditProcessingUnrestrict AuditEventType = "processing_unrestricted"
)

// AuditEventTypes lists every event type.
func AuditEventTypes() []AuditEventType {
	return []AuditEventType{
		AuditLoginSuccess, AuditLoginFailure, AuditCustomerCreated, AuditAddedToServiceDesk,
		AuditAddedToOrganization, AuditAccessDenied, AuditLogout, AuditRequestCreated,
		AuditConfigChanged, AuditTokenRotated, AuditRecordCorrected, AuditDataExported,
		AuditDataErased, AuditProcessingRestricted, AuditProcessingUnrestrict,
	}
}

// Valid reports whether t is a known event type.
func (t AuditEventType) Valid() bool {
	for _, k := range AuditEventTypes() {
		if t == k {
			return true
		}
	}
	return false
}

// AuditEvent is one row of a site's audit log. Fields names what changed,
// never the values (which may be secrets or personal data).
type AuditEvent struct {
	SiteID          string
	ID              string
	OccurredAt      time.Time
	ActorAccountID  string // who acted: the admin, or the customer who signed in
	TargetAccountID string // whom an admin action was about, when a person
	Event           AuditEventType
	Section         string   // for config_changed: "service_account", "sso", …
	Fields          []string // names of the fields changed or corrected
	IP              string
	UserAgent       string
	IdP             string
	Protocol        string // "oidc", "saml"
	Reason          string // a reason code for failures and denials
}

// AuditQuery is what an admin asks of the audit log (GET /api/admin/audit).
// Zero fields do not filter.
type AuditQuery struct {
	From, To  time.Time // From inclusive, To exclusive
	AccountID string    // actor or target
	Event     AuditEventType
	Cursor    string // where the previous page ended
	Limit     int
}

// AuditPage is one page of the audit log, newest first; Next is the cursor
// of the following page, "" at the end.
type AuditPage struct {
	Events []AuditEvent
	Next   string
	// Restricted names the accounts of the page whose processing is
	// restricted (GDPR Art. 18), so the admin page can mark them.
	Restricted map[string]bool
}

// AuditDay is one day of the sign-in chart.
type AuditDay struct {
	Date      string // YYYY-MM-DD, UTC
	Successes int64
	Failures  int64
}
