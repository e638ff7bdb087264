package models

import "time"

// OutboxMembersRefresh is a membership change the sync worker makes for
// itself: a user's access changed (created, deactivated, reactivated), so
// its memberships in the listed groups are checked again. Payload as
// members_added, plus "reason" (the user change) and "verify" (look the
// membership up in the site first).
const OutboxMembersRefresh OutboxOp = "members_refresh"

// Outbox item statuses besides OutboxStatusPending.
const (
	OutboxStatusApplied       = "applied"        // true in the site
	OutboxStatusFailed        = "failed"         // stopped with a reason; an admin may retry it
	OutboxStatusNotApplicable = "not_applicable" // Atlassian cannot take it for this account; the reason says why
	OutboxStatusHeld          = "held"           // held back by the accidental-deletion brake
	OutboxStatusDiscarded     = "discarded"      // an admin discarded it while held: the site keeps its state
)

// SyncUserState is what idbridge last did to a directory user's Atlassian
// account, so that a reactivation undoes exactly that.
type SyncUserState string

// The states of a user's Atlassian account.
const (
	SyncUserNone          SyncUserState = ""               // no account yet (or forgotten)
	SyncUserActive        SyncUserState = "active"         // found or created, with access
	SyncUserRemovedGroups SyncUserState = "removed_groups" // deactivated: out of the provisioned groups
	SyncUserRemoved       SyncUserState = "removed"        // deactivated: removed from the site
	SyncUserSuspended     SyncUserState = "suspended"      // deactivated: managed account suspended
)

// HasAccess says whether memberships of a user in this state belong in
// the site (a suspended account keeps its groups, and gets them back with
// its access).
func (s SyncUserState) HasAccess() bool { return s == SyncUserActive || s == SyncUserSuspended }

// SyncUser is the Atlassian side of a directory user.
type SyncUser struct {
	SiteID    string
	UserID    string
	AccountID string
	State     SyncUserState
	// Name is the display name last sent to (or found in) the site.
	Name string
	// KeepAccess: an admin discarded the user's deactivation, so the site
	// keeps the account's access until the identity provider reactivates it.
	KeepAccess bool
	// Gen counts changes of State; a membership change recorded for an
	// older generation is checked again.
	Gen       int64
	UpdatedAt time.Time
}

// SyncGroup is the Atlassian side of a directory group.
type SyncGroup struct {
	SiteID  string
	GroupID string
	// AtlassianID is the group's ID in the site; PreviousID, during a
	// rename, the group being replaced.
	AtlassianID string
	Name        string
	PreviousID  string
	UpdatedAt   time.Time
}

// SyncMember is a membership of a directory user in a group's Atlassian
// side: recorded as applied, or (Adding) recorded before its add was made
// and not confirmed since, so that whatever happens meanwhile (a crash, a
// lost answer, the user's deactivation or deletion) knows the account that
// may be in the group.
type SyncMember struct {
	AccountID string
	Adding    bool
}

// SyncStatus is GET /api/admin/sync (SPEC 6.1).
type SyncStatus struct {
	Paused       bool
	PausedReason string
	// Resumable says Resume lifts the pause (Atlassian refused the
	// credentials); other pauses end with what their reason names.
	Resumable       bool
	Pending         int
	OldestPendingAt *time.Time
	Applied         int // last 24 hours
	Failed          int
	NotApplicable   int
	FailedItems     []SyncItem
	Recent          []SyncItem
	Held            *SyncHeld
}

// SyncItem is one outbox item as the admin page shows it.
type SyncItem struct {
	ID       int64
	Op       OutboxOp
	Kind     string // "User" or "Group"
	Subject  string // the user's userName or the group's displayName
	Outcome  string // an outbox status
	Attempts int
	Error    string
	// AtlassianID is the subject's account ID or group ID in the site,
	// when known.
	AtlassianID string
	At          time.Time
}

// SyncHeld describes what the accidental-deletion brake holds back.
type SyncHeld struct {
	Count  int
	Since  time.Time
	Reason string
	// Subjects names some of the users whose deactivation or deletion is
	// held, for the admin to see what would happen.
	Subjects []string
}

// DefaultDeletionThreshold is the accidental-deletion brake's default: 10
// percent of the site's provisioned users (and at least
// MinDeletionThreshold) within an hour.
const (
	DefaultDeletionThreshold = 10
	MinDeletionThreshold     = 20
)

// SyncDirectoryEntry is one directory user or group with its ID in the
// Atlassian site, as the admin page lists them.
type SyncDirectoryEntry struct {
	ID          string // the SCIM id
	Name        string // userName or displayName
	Active      bool
	AtlassianID string        // account or group ID in the site; "" while none
	State       SyncUserState // users: what idbridge last did to the account
	Pending     bool          // changes of it still wait to be applied
}

// SyncDirectoryPage is one page of GET /api/admin/sync/directory.
type SyncDirectoryPage struct {
	Items []SyncDirectoryEntry
	// Next is the cursor of the next page; "" on the last one.
	Next string
}
