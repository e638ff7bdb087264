package models

// The data inventory (SPEC section 8): one declaration of every column of
// every table idbridge keeps, each classified as personal data or not, and
// for personal data what it is, why it is kept, on which legal basis, where
// it comes from, how long it stays and who receives it. GET /privacy
// renders it for people; export and erasure work from it; a test in
// app/store fails when a table gains a column that is not declared here, or
// when an entry names a column that no longer exists.
//
// When you change an entry that a person would care about (a new personal
// field, a new purpose, recipient or retention), bump InventoryVersion and
// set InventoryLastChanged: /privacy shows both, and that is how changes to
// the privacy policy are announced.

// InventoryVersion is the version of the inventory shown on /privacy.
const InventoryVersion = "4"

// InventoryLastChanged is the date (YYYY-MM-DD) the inventory last changed
// in a way that matters to the people it describes.
const InventoryLastChanged = "2026-12-07"

// InventoryEntry classifies one column. For personal data every field is
// filled; for other columns Purpose says what the column is for and the rest
// may be empty.
type InventoryEntry struct {
	Table      string
	Column     string
	Personal   bool
	Category   string // what kind of personal data
	Purpose    string // why idbridge keeps it
	LegalBasis string // GDPR Art. 6 basis
	Source     string // where it comes from
	Retention  string // how long it stays
	Recipients string // who receives it besides idbridge
	// Secret columns (credentials, and hashes or random values that
	// stand for one) never leave idbridge: an export leaves them out.
	Secret bool
}

// Legal bases, retentions and recipients used by several entries, in words
// for /privacy.
const (
	BasisContract   = "performance of a contract (GDPR Art. 6(1)(b)): the app's subscription with the customer"
	BasisLegitimate = "legitimate interests (GDPR Art. 6(1)(f)): keeping the service secure and accountable to the site's administrators"

	RetainWhileInstalled = "while the app is installed; after an uninstall, until the uninstall retention period ends (30 days by default)"
	RetainSecret         = "while the app is installed; deleted at once when the app is uninstalled"
	RetainAudit          = "the audit retention period (60 days by default), or until the site's data is purged after an uninstall"

	RecipientsNone      = "nobody outside idbridge; shown to the site's administrators on the admin page"
	RecipientsAtlassian = "Atlassian, as the credential of calls idbridge makes to the site's Atlassian APIs; never shown again to anyone"
)

// Inventory returns every classified column, in table order. It returns a
// fresh slice: callers may sort or filter it.
func Inventory() []InventoryEntry {
	entries := []InventoryEntry{
		// schema_migrations: bookkeeping of the schema itself.
		{Table: "schema_migrations", Column: "version", Purpose: "which schema changes are applied"},
		{Table: "schema_migrations", Column: "name", Purpose: "which schema changes are applied"},
		{Table: "schema_migrations", Column: "applied_at", Purpose: "which schema changes are applied"},

		// key_checks: encryption key bookkeeping.
		{Table: "key_checks", Column: "key_id", Purpose: "refusing to start with the wrong encryption key"},
		{Table: "key_checks", Column: "sealed", Purpose: "refusing to start with the wrong encryption key"},
		{Table: "key_checks", Column: "created_at", Purpose: "refusing to start with the wrong encryption key"},
		{Table: "key_checks", Column: "retired_at", Purpose: "knowing when an old encryption key may be dropped"},

		// sites: the installation, as Atlassian describes it at install.
		{Table: "sites", Column: "id", Purpose: "identifying the installation in idbridge's own URLs"},
		{Table: "sites", Column: "client_key", Purpose: "identifying the installation in Atlassian Connect"},
		{Table: "sites", Column: "shared_secret", Secret: true, Purpose: "verifying requests from the site and signing requests to it (encrypted)"},
		{Table: "sites", Column: "base_url", Purpose: "calling the site's APIs"},
		{Table: "sites", Column: "display_url", Purpose: "showing the site's address"},
		{Table: "sites", Column: "display_url_servicedesk_help_center", Purpose: "linking to the site's help center"},
		{Table: "sites", Column: "product_type", Purpose: "telling Jira from Confluence"},
		{Table: "sites", Column: "description", Purpose: "showing which site this is"},
		{Table: "sites", Column: "service_entitlement_number", Purpose: "matching the installation to its Marketplace licence"},
		{Table: "sites", Column: "entitlement_id", Purpose: "matching the installation to its Marketplace licence"},
		{Table: "sites", Column: "entitlement_number", Purpose: "matching the installation to its Marketplace licence"},
		{Table: "sites", Column: "installation_id", Purpose: "identifying the installation on Forge"},
		{Table: "sites", Column: "cloud_id", Purpose: "calling the site through Atlassian's API gateway; matching the licence"},
		{Table: "sites", Column: "state", Purpose: "the install lifecycle"},
		{Table: "sites", Column: "installed_at", Purpose: "the install lifecycle"},
		{Table: "sites", Column: "updated_at", Purpose: "the install lifecycle"},
		{Table: "sites", Column: "uninstalled_at", Purpose: "the install lifecycle"},
		{Table: "sites", Column: "purge_after", Purpose: "deleting an uninstalled site's data on time"},

		// service_accounts: the credentials a site admin configures (SPEC 5).
		{Table: "forge_installations", Column: "site_id", Purpose: "which site the Forge installation belongs to"},
		{Table: "forge_installations", Column: "installation_id", Purpose: "identifying the installation in Atlassian Forge"},
		{Table: "forge_installations", Column: "system_token", Secret: true, Purpose: "calling the site's Atlassian APIs as the app, with the token Forge hands the app (encrypted, short-lived)"},
		{Table: "forge_installations", Column: "system_token_expires_at", Purpose: "knowing when the app system token stops working"},
		{Table: "forge_installations", Column: "forge_installed_at", Purpose: "showing when Forge last installed or upgraded the app"},
		{Table: "forge_installations", Column: "app_version", Purpose: "showing which Forge version of the app the site runs"},
		{Table: "forge_installations", Column: "environment_type", Purpose: "telling development and production installations apart"},
		{Table: "forge_installations", Column: "updated_at", Purpose: "bookkeeping of changes"},
		{Table: "service_accounts", Column: "site_id", Purpose: "which site the service account belongs to"},
		{Table: "service_accounts", Column: "kind", Purpose: "how the service account authenticates"},
		{Table: "service_accounts", Column: "email", Personal: true, Category: "contact details: the email address of the account the API token belongs to",
			Purpose: "authenticating idbridge's calls to Atlassian (user provisioning, customer SSO)", LegalBasis: BasisContract,
			Source: "entered by a site administrator", Retention: RetainWhileInstalled, Recipients: RecipientsAtlassian},
		{Table: "service_accounts", Column: "token", Personal: true, Secret: true, Category: "credentials: the API token of that account (encrypted)",
			Purpose: "authenticating idbridge's calls to Atlassian (user provisioning, customer SSO)", LegalBasis: BasisContract,
			Source: "entered by a site administrator", Retention: RetainSecret, Recipients: RecipientsAtlassian},
		{Table: "service_accounts", Column: "token_hint", Purpose: "showing which token is stored (its last four characters)"},
		{Table: "service_accounts", Column: "cloud_id", Purpose: "calling the site through Atlassian's API gateway"},
		{Table: "service_accounts", Column: "client_id", Purpose: "authenticating an Atlassian service account (not a person)"},
		{Table: "service_accounts", Column: "client_secret", Secret: true, Purpose: "authenticating an Atlassian service account (not a person; encrypted)"},
		{Table: "service_accounts", Column: "expires_at", Purpose: "warning before the credential expires"},
		{Table: "service_accounts", Column: "org_admin_key", Secret: true, Purpose: "calling the organization Admin API (an organization's key, not a person's; encrypted)"},
		{Table: "service_accounts", Column: "org_admin_key_hint", Purpose: "showing which key is stored (its last four characters)"},
		{Table: "service_accounts", Column: "org_admin_key_expires_at", Purpose: "warning before the key expires"},
		{Table: "service_accounts", Column: "org_id", Purpose: "suspending and restoring managed accounts through the organization Admin API (an organization's ID)"},
		{Table: "service_accounts", Column: "status", Purpose: "showing whether the credentials work"},
		{Table: "service_accounts", Column: "status_message", Purpose: "showing whether the credentials work"},
		{Table: "service_accounts", Column: "checked_at", Purpose: "showing whether the credentials work"},
		{Table: "service_accounts", Column: "updated_at", Purpose: "showing when the credentials changed"},
		{Table: "service_accounts", Column: "updated_by", Personal: true, Category: "account identifier: the Atlassian account ID of the administrator who saved the credentials",
			Purpose: "accountability for configuration changes", LegalBasis: BasisLegitimate,
			Source: "the administrator's signed request", Retention: RetainWhileInstalled, Recipients: RecipientsNone},

		// audit_events: who did what (SPEC 7).
		{Table: "audit_events", Column: "site_id", Purpose: "which site the event belongs to"},
		{Table: "audit_events", Column: "id", Purpose: "identifying the event"},
		{Table: "audit_events", Column: "occurred_at", Purpose: "when it happened"},
		{Table: "audit_events", Column: "actor_account_id", Personal: true, Category: "account identifier: the Atlassian account ID of who acted (an administrator, or a customer who signed in)",
			Purpose: "the audit log the site's administrators read: security and accountability", LegalBasis: BasisLegitimate,
			Source: "the signed request or the sign-in", Retention: RetainAudit, Recipients: RecipientsNone},
		{Table: "audit_events", Column: "target_account_id", Personal: true, Category: "account identifier: the Atlassian account ID of the person an administrator's action was about",
			Purpose: "the audit log the site's administrators read: security and accountability", LegalBasis: BasisLegitimate,
			Source: "the administrator's request", Retention: RetainAudit, Recipients: RecipientsNone},
		{Table: "audit_events", Column: "event", Purpose: "what happened"},
		{Table: "audit_events", Column: "section", Purpose: "which part of the configuration changed"},
		{Table: "audit_events", Column: "fields", Purpose: "the names (never the values) of the fields that changed"},
		{Table: "audit_events", Column: "ip", Personal: true, Category: "network identifier: the IP address of a sign-in",
			Purpose: "the audit log the site's administrators read: recognising unusual sign-ins", LegalBasis: BasisLegitimate,
			Source: "the sign-in request", Retention: RetainAudit, Recipients: RecipientsNone},
		{Table: "audit_events", Column: "user_agent", Personal: true, Category: "device information: the browser of a sign-in",
			Purpose: "the audit log the site's administrators read: recognising unusual sign-ins", LegalBasis: BasisLegitimate,
			Source: "the sign-in request", Retention: RetainAudit, Recipients: RecipientsNone},
		{Table: "audit_events", Column: "idp", Purpose: "which identity provider a sign-in used"},
		{Table: "audit_events", Column: "protocol", Purpose: "which protocol a sign-in used"},
		{Table: "audit_events", Column: "reason", Purpose: "why a sign-in failed or was denied (a code)"},

		// scheduled_jobs: when background jobs last ran.
		{Table: "scheduled_jobs", Column: "name", Purpose: "running each scheduled job once per period"},
		{Table: "scheduled_jobs", Column: "last_started_at", Purpose: "running each scheduled job once per period"},
		{Table: "scheduled_jobs", Column: "last_finished_at", Purpose: "running each scheduled job once per period"},
		{Table: "scheduled_jobs", Column: "last_status", Purpose: "showing how the last run went"},
		{Table: "scheduled_jobs", Column: "last_message", Purpose: "showing how the last run went"},
	}
	entries = append(entries, customerProfileInventory()...)
	entries = append(entries, directoryInventory()...)
	entries = append(entries, ssoInventory()...)
	entries = append(entries, privacyInventory()...)
	return entries
}

// customerProfileInventory classifies the customer record (SPEC 3): the
// contact data the privacy policy names, kept on install.
func customerProfileInventory() []InventoryEntry {
	const (
		purpose = "knowing who the customer of the installation is, to provide and support the service they subscribed to"
		source  = "the installation's Atlassian Marketplace licence, and corrections by a site administrator"
	)
	entries := []InventoryEntry{
		{Table: "customer_profiles", Column: "site_id", Purpose: "which site the customer record belongs to"},
		{Table: "customer_profiles", Column: "last_sync_at", Purpose: "when the record was last compared with the Marketplace licence"},
		{Table: "customer_profiles", Column: "sync_status", Purpose: "what the last comparison with the Marketplace licence found"},
		{Table: "customer_profiles", Column: "updated_at", Purpose: "when the record last changed"},
	}
	categories := []struct{ column, category string }{
		{"name", "contact details: the name of the customer's technical contact"},
		{"email", "contact details: the email address of the customer's technical contact"},
		{"location", "location: the customer's country and region"},
		{"company", "organization: the customer's company name (personal data where it names a person)"},
		{"purchaser", "contact details: the name of the person who bought the app (billing contact)"},
	}
	for _, c := range categories {
		entries = append(entries,
			InventoryEntry{Table: "customer_profiles", Column: c.column, Personal: true, Category: c.category,
				Purpose: purpose, LegalBasis: BasisContract, Source: source, Retention: RetainWhileInstalled, Recipients: RecipientsNone},
			InventoryEntry{Table: "customer_profiles", Column: c.column + "_correction", Personal: true, Category: c.category + ", as corrected by a site administrator",
				Purpose: purpose + "; rectification (GDPR Art. 16)", LegalBasis: BasisContract, Source: "a site administrator",
				Retention: RetainWhileInstalled, Recipients: RecipientsNone},
			InventoryEntry{Table: "customer_profiles", Column: c.column + "_source", Purpose: "where the " + c.column + " came from"},
			InventoryEntry{Table: "customer_profiles", Column: c.column + "_updated_at", Purpose: "when the " + c.column + " was learned"},
			InventoryEntry{Table: "customer_profiles", Column: c.column + "_corrected_at", Purpose: "when the " + c.column + " was corrected"},
		)
	}
	return entries
}
