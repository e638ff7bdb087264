package models

import (
	"regexp"
	"time"
)

// The second half of the data inventory (SPEC 8): for every table, how
// idbridge reaches its rows: which column names the site, which columns
// page through it, and, for a table that holds personal data, how the rows
// about one person are found and what erasure does to them. Export,
// erasure, restriction, the Personal Data Reporting cycle and the
// retention purge are driven by these declarations, never by code per
// table: a table declared here joins all of them. A test in app/store
// fails when a table has no declaration, or when a table with a personal
// column declares no way to find a person's rows.

// EraseAction is what erasure does to a person's rows in a table.
type EraseAction string

// Erase actions.
const (
	// EraseDelete: the rows are about the person alone; they are deleted.
	EraseDelete EraseAction = "delete"
	// EraseClear: the row is not the person's (a configuration that an
	// administrator saved); the account ID columns are emptied.
	EraseClear EraseAction = "clear"
	// ErasePseudonymise: the rows are shared (the audit log: who did what
	// to whom); the account ID is replaced by an irreversible token and
	// the ClearColumns are emptied, so the log stays whole without naming
	// the person.
	ErasePseudonymise EraseAction = "pseudonymise"
)

// PersonJoin reaches a person's rows through another table of the same
// site: the rows whose Column is one of Table.TableColumn for the rows of
// Table whose AccountColumn holds the person's account ID.
type PersonJoin struct {
	Column        string // in the declared table
	Table         string // the table that knows the account ID
	TableColumn   string // its column matched against Column
	AccountColumn string // its column holding the account ID
}

// PersonLink says how a table's rows about one person are found.
type PersonLink struct {
	// AccountColumns hold the person's Atlassian account ID directly.
	AccountColumns []string
	// ActorColumns hold the account ID of whoever acted on a row that is
	// about someone else (the administrator who restricted a person): the
	// person's export includes such rows and the reporting cycle reports
	// the IDs, but erasing the person replaces the ID with the erasure's
	// pseudonym and keeps the row, which belongs to the other person.
	ActorColumns []string
	// Via reaches the person through another table (exclusive with
	// AccountColumns).
	Via *PersonJoin
	// Where narrows the rows further: a fixed condition on the table's own
	// columns, without parameters (the outbox: only user changes).
	Where string
	// Erase is what erasure does to the rows.
	Erase EraseAction
	// ClearColumns are emptied in pseudonymised rows (IP, user agent).
	ClearColumns []string
	// Cached columns hold a copy of Atlassian profile data; they are
	// dropped when the Personal Data Reporting API says the account was
	// updated.
	Cached []string
	// Reported: the AccountColumns hold Atlassian account IDs that the
	// Personal Data Reporting cycle reports.
	Reported bool
}

// TableDecl declares how idbridge reaches one table's rows.
type TableDecl struct {
	Name string
	// SiteColumn names the site the row belongs to ("site_id"; "id" for
	// sites itself); empty for global bookkeeping tables, which hold no
	// site's data.
	SiteColumn string
	// Key is the primary key after the site column, in order: export and
	// purge page through a site's rows by it. Empty: one row per site.
	Key []string
	// Person is how a person's rows are found; nil when the table holds no
	// personal data, or holds it without an account ID (see NotByPerson).
	Person *PersonLink
	// NotByPerson says why a table with personal columns has no Person
	// link: its rows describe someone who is not an Atlassian account of
	// the site (the customer record's contact). Such rows are exported
	// with the whole site, corrected through their own route, and deleted
	// with the site.
	NotByPerson string
}

// Tables names used by the privacy features themselves.
const (
	TableAuditEvents   = "audit_events"
	TableRestrictions  = "privacy_restrictions"
	TableReportAccount = "report_accounts"
	TableReportSites   = "report_sites"
	TableSites         = "sites"
)

// Tables declares every table, in an order that deletes safely: a table
// comes after the tables whose rows reference it (children first), so
// that the purge may delete table by table in this order.
func Tables() []TableDecl {
	site := func(name string, key ...string) TableDecl {
		return TableDecl{Name: name, SiteColumn: "site_id", Key: key}
	}
	with := func(d TableDecl, p PersonLink) TableDecl { d.Person = &p; return d }
	byAccount := func(cols ...string) PersonLink {
		return PersonLink{AccountColumns: cols, Erase: EraseDelete, Reported: true}
	}
	clear := func(cols ...string) PersonLink {
		return PersonLink{AccountColumns: cols, Erase: EraseClear, Reported: true}
	}
	viaSyncUser := func(column string) *PersonJoin {
		return &PersonJoin{Column: column, Table: "sync_users", TableColumn: "user_id", AccountColumn: "account_id"}
	}
	return []TableDecl{
		{Name: "schema_migrations"},
		{Name: "key_checks"},
		{Name: "scheduled_jobs"},

		// The audit log: shared by who acted and whom it was about.
		with(site(TableAuditEvents, "id"), PersonLink{AccountColumns: []string{"actor_account_id", "target_account_id"},
			Erase: ErasePseudonymise, ClearColumns: []string{"ip", "user_agent"}, Reported: true}),
		site("audit_daily", "day", "event"),

		// Configuration saved by an administrator, who is named.
		with(site("service_accounts"), clear("updated_by")),
		with(site("sso_settings"), clear("updated_by")),
		with(site("identity_providers", "id"), clear("updated_by")),

		// The Forge side of an installation: no personal data.
		site("forge_installations"),

		{Name: "customer_profiles", SiteColumn: "site_id",
			NotByPerson: "the customer record describes the site's customer (technical contact, purchaser), who is not identified by an Atlassian account ID: it is exported with the whole site, corrected through the customer record (PUT /api/admin/profile), and deleted with the site's data"},

		// The directory: found through the user's Atlassian account ID
		// that the sync learned. A user the sync has not matched to an
		// account yet has no account ID to be found by.
		with(site("scim_group_members", "group_id", "user_id"), PersonLink{Via: viaSyncUser("user_id"), Erase: EraseDelete}),
		with(site("outbox", "id"), PersonLink{Via: viaSyncUser("resource_id"), Where: "resource_type = 'User'", Erase: EraseDelete}),
		with(site("scim_users", "id"), PersonLink{Via: viaSyncUser("id"), Erase: EraseDelete}),
		site("scim_groups", "id"),
		site("scim_settings"),
		with(site("sync_members", "group_id", "user_id"), byAccount("account_id")),
		func() TableDecl {
			p := byAccount("account_id")
			p.Cached = []string{"name"}
			return with(site("sync_users", "user_id"), p)
		}(),
		site("sync_groups", "group_id"),
		site("sync_sites"),

		// Customer SSO.
		site("login_states", "id"),
		site("saml_assertions", "idp_id", "assertion_id"),
		with(site("portal_sessions", "id"), byAccount("account_id")),

		// The privacy features' own state.
		with(site(TableRestrictions, "account_id"), PersonLink{AccountColumns: []string{"account_id"}, ActorColumns: []string{"restricted_by"},
			Erase: EraseDelete, Reported: true}),
		with(site(TableReportAccount, "account_id"), PersonLink{AccountColumns: []string{"account_id"}, Erase: EraseDelete}),
		site(TableReportSites),

		{Name: TableSites, SiteColumn: "id"},
	}
}

// TableByName returns the declaration of a table.
func TableByName(name string) (TableDecl, bool) {
	for _, t := range Tables() {
		if t.Name == name {
			return t, true
		}
	}
	return TableDecl{}, false
}

// accountIDPattern is what idbridge accepts as an Atlassian account ID:
// Atlassian's are "557058:…" or 24 hex digits, at most 128 characters.
var accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9:_-]{1,128}$`)

// ValidAccountID reports whether s has the shape of an Atlassian account ID.
func ValidAccountID(s string) bool { return accountIDPattern.MatchString(s) }

// ErasedTokenPrefix starts the token that replaces an erased person's
// account ID in the audit log; no Atlassian account ID starts so.
const ErasedTokenPrefix = "erased:"

// Erasure is what erasing a person did (SPEC 8).
type Erasure struct {
	// Pseudonym is the token that now stands for the person in the audit
	// log; it cannot be traced back to the account.
	Pseudonym string
	// Rows counts, per table, the rows deleted or changed.
	Rows map[string]int64
	// DirectoryUsers is how many provisioned directory users were erased:
	// the identity provider still has them and may push them again.
	DirectoryUsers int64
}

// Nothing reports whether the erasure found nothing to erase.
func (e *Erasure) Nothing() bool {
	for _, n := range e.Rows {
		if n > 0 {
			return false
		}
	}
	return true
}

// Restriction is a restriction of processing of one person's data (GDPR
// Art. 18): the data is kept but not processed.
type Restriction struct {
	SiteID       string
	AccountID    string
	Reason       string
	RestrictedAt time.Time
	RestrictedBy string
	// BlockedCount counts what was held back since; LastBlocked says what
	// (sync, sign_in, audit_detail, reporting_refresh).
	BlockedCount  int64
	LastBlockedAt *time.Time
	LastBlocked   string
}

// What a restriction holds back, as counted.
const (
	BlockedSync             = "sync"
	BlockedSignIn           = "sign_in"
	BlockedAuditDetail      = "audit_detail"
	BlockedReportingRefresh = "reporting_refresh"
)

// ExportSummary says what an export wrote.
type ExportSummary struct {
	Rows   int64
	Tables map[string]int64
}

// PrivacyStatus is the admin page's view of a site's privacy state: its
// restrictions and its Personal Data Reporting cycle.
type PrivacyStatus struct {
	Restrictions int64
	// Reporting is off when idbridge has no reporting API configured.
	ReportingEnabled bool
	AccountsHeld     int64 // accounts in the reporting table
	CyclePeriod      time.Duration
	CycleInProgress  bool
	LastCycleAt      *time.Time // when the last cycle finished
	NextCycleAt      *time.Time
	RetryAt          *time.Time
	Reported         int64 // accounts reported by the last (or current) cycle
	Closed           int64
	Erased           int64 // closed accounts whose data was erased
	Updated          int64
	Ignored          int64
	LastStatus       string
	LastMessage      string
}

// Rectification corrects a person's directory attributes (GDPR Art. 16);
// nil fields stay as they are.
type Rectification struct {
	DisplayName *string
	GivenName   *string
	FamilyName  *string
	Email       *string
}

// Rectified says what a rectification changed: the directory users of the
// account (usually one) and the attributes corrected.
type Rectified struct {
	UserIDs []string
	Fields  []string
}
