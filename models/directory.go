package models

import "time"

// DirectoryUser is a user that a site's identity provider pushed over SCIM.
// The columns the directory is queried by are kept beside Doc, the JSON of
// the resource as the identity provider sent it (without id, meta and
// password, which are never stored).
type DirectoryUser struct {
	SiteID      string
	ID          string
	UserName    string
	ExternalID  string
	DisplayName string
	GivenName   string
	FamilyName  string
	Email       string // the primary email, else the first one
	Active      bool
	Doc         []byte
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Groups are the groups the user belongs to, filled only when a query
	// asks for them.
	Groups []DirectoryGroupRef
	// Manager is the user the enterprise extension's manager names, when
	// it names a user of the same site; nil otherwise. The store fills it
	// on reads (the document keeps only the manager's ID).
	Manager *DirectoryUserRef
}

// DirectoryGroupRef names a group a directory user belongs to.
type DirectoryGroupRef struct {
	ID          string
	DisplayName string
}

// DirectoryUserRef names a user of the same site; DisplayName is "" when
// the user has none.
type DirectoryUserRef struct {
	ID          string
	DisplayName string
}

// DirectoryGroup is a group that a site's identity provider pushed over
// SCIM. Its members live apart from Doc, so that a change of membership
// never rewrites the group.
type DirectoryGroup struct {
	SiteID      string
	ID          string
	DisplayName string
	ExternalID  string
	Doc         []byte
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// GroupMember is one member of a directory group: a directory user of the
// same site. Display is the user's display name, else its userName.
type GroupMember struct {
	UserID  string
	Display string
}

// OutboxOp names a directory change that the sync worker applies to the
// Atlassian site. The item's Payload is JSON, by op:
//
//	user_*          {"userName", "externalId"?, "displayName"?, "givenName"?,
//	                 "familyName"?, "email"?, "active"}  (the user after the change;
//	                 for user_deleted, before it)
//	group_created,  {"displayName", "externalId"?, "previousDisplayName"?}
//	group_updated,  (previousDisplayName when a rename)
//	group_deleted
//	members_added,  {"groupDisplayName", "userIds": [...]}  (net change of one request;
//	members_removed  a deleted user's memberships go with user_deleted)
//
// A user whose active flag flips gets user_deactivated or user_reactivated
// (after, resp. before, a user_updated when other fields changed too).
type OutboxOp string

// The directory changes written to the outbox.
const (
	OutboxUserCreated     OutboxOp = "user_created"
	OutboxUserUpdated     OutboxOp = "user_updated"
	OutboxUserDeactivated OutboxOp = "user_deactivated"
	OutboxUserReactivated OutboxOp = "user_reactivated"
	OutboxUserDeleted     OutboxOp = "user_deleted"
	OutboxGroupCreated    OutboxOp = "group_created"
	OutboxGroupUpdated    OutboxOp = "group_updated"
	OutboxGroupDeleted    OutboxOp = "group_deleted"
	OutboxMembersAdded    OutboxOp = "members_added"
	OutboxMembersRemoved  OutboxOp = "members_removed"
)

// OutboxStatusPending is the status of an outbox item not yet applied.
const OutboxStatusPending = "pending"

// OutboxItem is one directory change waiting for (or done by) the sync
// worker. Items of one resource are applied in ID order.
type OutboxItem struct {
	SiteID        string
	ID            int64
	ResourceType  string // "User" or "Group"
	ResourceID    string
	Op            OutboxOp
	Payload       []byte // JSON, see app/scim
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// DeactivationMode is what idbridge does in the Atlassian site when the
// identity provider deactivates a user (SCIM active=false).
type DeactivationMode string

// The deactivation modes a site admin chooses from.
const (
	// DeactivateRemoveGroups removes the user from the groups idbridge
	// provisioned; the site's own token is enough.
	DeactivateRemoveGroups DeactivationMode = "remove_groups"
	// DeactivateRemoveFromSite removes the user from the site.
	DeactivateRemoveFromSite DeactivationMode = "remove_from_site"
	// DeactivateSuspend suspends the managed account through the
	// organization Admin API key.
	DeactivateSuspend DeactivationMode = "suspend"
)

// DeactivationModes lists the modes in the order the admin page shows them.
func DeactivationModes() []DeactivationMode {
	return []DeactivationMode{DeactivateRemoveGroups, DeactivateRemoveFromSite, DeactivateSuspend}
}

// ProvisionAs says what idbridge creates in the Atlassian site for a new
// directory user.
type ProvisionAs string

// The kinds of Atlassian user a new directory user becomes.
const (
	ProvisionAccount  ProvisionAs = "account"  // POST /rest/api/3/user with Products
	ProvisionCustomer ProvisionAs = "customer" // POST /rest/servicedeskapi/customer (JSM)
)

// ProvisioningProducts are the product keys Atlassian's create-user API
// accepts for product access.
func ProvisioningProducts() []string {
	return []string{"jira-software", "jira-servicedesk", "jira-core", "jira-product-discovery", "confluence"}
}

// Provisioning is a site's SCIM provisioning settings. The token itself is
// never held here: only whether one exists and when it was made.
type Provisioning struct {
	SiteID         string
	Enabled        bool // a token exists and the SCIM endpoint answers
	TokenCreatedAt *time.Time
	Deactivation   DeactivationMode
	ProvisionAs    ProvisionAs
	Products       []string
	// DeletionThreshold is the accidental-deletion brake: the percentage of
	// the site's provisioned users whose deactivation or deletion within an
	// hour holds the rest back (at least MinDeletionThreshold users); 0
	// turns the brake off.
	DeletionThreshold int
	UpdatedAt         time.Time
}

// ProvisioningUpdate is a site admin's change of the provisioning
// settings; nil fields stay as they are. Enabled false revokes the token
// (the directory stays); true is only valid while a token exists.
type ProvisioningUpdate struct {
	Enabled      *bool
	Deactivation *DeactivationMode
	ProvisionAs  *ProvisionAs
	Products     *[]string
	// DeletionThreshold is a percentage, 0 to 100.
	DeletionThreshold *int
}
