package models

// directoryInventory classifies the SCIM directory (SPEC section 6): the
// users and groups a site's identity provider pushes, the provisioning
// settings and the outbox of changes still to be applied to the site.
func directoryInventory() []InventoryEntry {
	const (
		purpose   = "user provisioning: mirroring the site's identity provider into the Atlassian site"
		basis     = "performance of a contract (GDPR Art. 6(1)(b)) with the site, and its legitimate interest (Art. 6(1)(f)) in managing its users' access"
		source    = "the site's identity provider (SCIM), as configured by a site administrator"
		retention = "until the identity provider deletes the user or group, or the app is uninstalled and the uninstall retention period ends (30 days by default)"
		recipient = "Atlassian (the site), to which idbridge applies the changes"
	)
	personal := func(table, column, category string) InventoryEntry {
		return InventoryEntry{Table: table, Column: column, Personal: true, Category: category,
			Purpose: purpose, LegalBasis: basis, Source: source, Retention: retention, Recipients: recipient}
	}
	other := func(table, column, why string) InventoryEntry {
		return InventoryEntry{Table: table, Column: column, Purpose: why}
	}
	secret := func(table, column, why string) InventoryEntry {
		return InventoryEntry{Table: table, Column: column, Purpose: why, Secret: true}
	}
	return []InventoryEntry{
		other("scim_settings", "site_id", "which site the provisioning settings belong to"),
		other("scim_settings", "enabled", "whether the site's identity provider may provision"),
		secret("scim_settings", "token_hash", "checking the identity provider's bearer token (a SHA-256 hash, never the token)"),
		other("scim_settings", "token_created_at", "showing when the token was made"),
		other("scim_settings", "deactivation", "what a deactivation does in the site"),
		other("scim_settings", "provision_as", "what a new user becomes in the site"),
		other("scim_settings", "products", "which product access a new user gets"),
		other("scim_settings", "created_at", "when provisioning was first configured"),
		other("scim_settings", "updated_at", "when provisioning was last configured"),
		other("scim_settings", "deletion_threshold", "holding back an unusual number of deactivations and deletions (the accidental-deletion brake)"),

		other("scim_users", "site_id", "which site the user belongs to"),
		other("scim_users", "id", "identifying the user in SCIM (our opaque ID)"),
		personal("scim_users", "user_name", "account identifier: the user's sign-in name at the identity provider (often an email address)"),
		personal("scim_users", "user_name_lower", "account identifier: the sign-in name in lower case, for case-insensitive uniqueness"),
		personal("scim_users", "external_id", "account identifier: the user's ID at the identity provider"),
		personal("scim_users", "display_name", "identity: the user's display name"),
		personal("scim_users", "given_name", "identity: the user's given name"),
		personal("scim_users", "family_name", "identity: the user's family name"),
		personal("scim_users", "email", "contact details: the user's primary email address"),
		personal("scim_users", "active", "account status: whether the identity provider has the user active"),
		personal("scim_users", "doc", "the user's profile as the identity provider sent it: names, emails, phone numbers, addresses, title, organization, manager and other attributes (never a password)"),
		other("scim_users", "version", "detecting concurrent changes (ETag)"),
		other("scim_users", "created_at", "when the user was provisioned"),
		other("scim_users", "updated_at", "when the user last changed"),

		other("scim_groups", "site_id", "which site the group belongs to"),
		other("scim_groups", "id", "identifying the group in SCIM (our opaque ID)"),
		other("scim_groups", "display_name", "the group's name (a group, not a person)"),
		other("scim_groups", "display_name_lower", "the group's name in lower case, for uniqueness"),
		other("scim_groups", "external_id", "the group's ID at the identity provider"),
		other("scim_groups", "doc", "the group as the identity provider sent it, without its members"),
		other("scim_groups", "version", "detecting concurrent changes (ETag)"),
		other("scim_groups", "created_at", "when the group was provisioned"),
		other("scim_groups", "updated_at", "when the group last changed"),

		other("scim_group_members", "site_id", "which site the membership belongs to"),
		other("scim_group_members", "group_id", "which group"),
		personal("scim_group_members", "user_id", "group membership: which groups a user belongs to"),

		other("outbox", "site_id", "which site the change belongs to"),
		other("outbox", "id", "applying changes in order"),
		other("outbox", "resource_type", "whether the change is about a user or a group"),
		other("outbox", "resource_id", "which user or group changed (our opaque ID)"),
		other("outbox", "op", "what changed"),
		personal("outbox", "payload", "the attributes of the change still to be applied to the site: sign-in name, names, email address, status, group memberships"),
		other("outbox", "status", "whether the change was applied"),
		other("outbox", "attempts", "retrying failed changes"),
		other("outbox", "next_attempt_at", "retrying failed changes; 9999-12-31 keeps a change behind an earlier one of the same user or group"),
		other("outbox", "last_error", "showing why a change failed"),
		other("outbox", "created_at", "when the change was accepted"),
		other("outbox", "updated_at", "when the change was last tried"),
		other("outbox", "lease_owner", "which replica is applying the change"),
		other("outbox", "lease_until", "letting another replica take over when one stops"),
		other("outbox", "recover", "looking the change up in the site before applying it again"),
		other("outbox", "waiting_for", "applying a membership once its user exists in the site (our opaque user ID)"),

		other("sync_users", "site_id", "which site the user belongs to"),
		other("sync_users", "user_id", "which directory user (our opaque ID)"),
		personal("sync_users", "account_id", "account identifier: the user's Atlassian account ID in the site"),
		personal("sync_users", "state", "account status: what idbridge did to the user's access in the site (active, removed from groups or the site, suspended)"),
		personal("sync_users", "name", "identity: the display name idbridge last gave or found for the user in the site"),
		personal("sync_users", "keep_access", "account status: a site administrator chose to keep the user's access despite a deactivation"),
		other("sync_users", "gen", "ordering changes of the user's access"),
		other("sync_users", "updated_at", "when the user's Atlassian side last changed"),

		other("sync_groups", "site_id", "which site the group belongs to"),
		other("sync_groups", "group_id", "which directory group (our opaque ID)"),
		other("sync_groups", "atlassian_id", "the group's ID in the site"),
		other("sync_groups", "name", "the group's name in the site"),
		other("sync_groups", "previous_id", "finishing a rename (Atlassian has none: a new group replaces the old)"),
		other("sync_groups", "updated_at", "when the group's Atlassian side last changed"),

		other("sync_members", "site_id", "which site the membership belongs to"),
		other("sync_members", "group_id", "which group"),
		personal("sync_members", "user_id", "group membership: which groups of the site idbridge put a user in"),
		personal("sync_members", "account_id", "account identifier: the member's Atlassian account ID"),
		personal("sync_members", "adding", "group membership: idbridge is adding the user to the group, and the site has not confirmed it yet"),

		other("sync_sites", "site_id", "which site"),
		other("sync_sites", "paused", "pausing the site's sync while its credentials do not work"),
		other("sync_sites", "paused_reason", "saying why the sync is paused"),
		other("sync_sites", "paused_at", "saying since when the sync is paused"),
		other("sync_sites", "account_updated_at", "resuming the sync when new credentials are saved"),
		other("sync_sites", "brake_released_at", "the accidental-deletion brake: when an administrator last let held changes through"),
		other("sync_sites", "updated_at", "when the site's sync state last changed"),
	}
}
