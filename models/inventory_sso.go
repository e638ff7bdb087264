package models

// ssoInventory classifies customer SSO (SPEC 7): the SSO settings, the
// identity providers, sign-ins in flight, the IDs of SAML assertions
// already used, portal sessions, and the per-day audit counts.
func ssoInventory() []InventoryEntry {
	const (
		sessionPurpose = "keeping a help-center customer signed in to the portal"
		sessionBasis   = "performance of a contract (GDPR Art. 6(1)(b)) with the site, whose customers use the portal; strictly necessary for the service the customer asked for"
		sessionSource  = "the customer's identity provider, at sign-in"
		sessionKeep    = "until the customer signs out, or the session ends (idle or absolute timeout, 8 hours at most by default); at once when the app is uninstalled"
	)
	other := func(table, column, why string) InventoryEntry {
		return InventoryEntry{Table: table, Column: column, Purpose: why}
	}
	secret := func(table, column, why string) InventoryEntry {
		return InventoryEntry{Table: table, Column: column, Purpose: why, Secret: true}
	}
	session := func(column, category string) InventoryEntry {
		return InventoryEntry{Table: "portal_sessions", Column: column, Personal: true, Category: category,
			Purpose: sessionPurpose, LegalBasis: sessionBasis, Source: sessionSource, Retention: sessionKeep, Recipients: RecipientsNone}
	}
	return []InventoryEntry{
		other("sso_settings", "site_id", "which site the SSO settings belong to"),
		other("sso_settings", "enabled", "whether customers may sign in with SSO"),
		other("sso_settings", "allowed_domains", "which email domains may sign in (domains, not addresses)"),
		other("sso_settings", "auto_create_customers", "whether a first sign-in creates the customer"),
		other("sso_settings", "service_desk_ids", "which service desks customers are added to"),
		other("sso_settings", "organizations_by_domain", "which organization customers of a domain join"),
		other("sso_settings", "session_idle_minutes", "how long a portal session lasts without use"),
		other("sso_settings", "session_max_hours", "how long a portal session lasts at most"),
		secret("sso_settings", "sp_key", "signing idbridge's SAML requests (the site's key, not a person's; encrypted)"),
		other("sso_settings", "sp_certificate", "the public half of the SAML key, published in the SP metadata"),
		other("sso_settings", "updated_at", "when the SSO settings changed"),
		{Table: "sso_settings", Column: "updated_by", Personal: true, Category: "account identifier: the Atlassian account ID of the administrator who saved the settings",
			Purpose: "accountability for configuration changes", LegalBasis: BasisLegitimate,
			Source: "the administrator's signed request", Retention: RetainWhileInstalled, Recipients: RecipientsNone},

		other("identity_providers", "site_id", "which site the identity provider belongs to"),
		other("identity_providers", "id", "identifying the identity provider"),
		other("identity_providers", "name", "the identity provider's name, shown to customers"),
		other("identity_providers", "protocol", "OIDC or SAML"),
		other("identity_providers", "enabled", "whether customers may sign in with it"),
		other("identity_providers", "email_domains", "which email domains it signs in (domains, not addresses)"),
		other("identity_providers", "oidc_issuer", "the OpenID provider's address"),
		other("identity_providers", "oidc_client_id", "idbridge's client ID at the OpenID provider"),
		secret("identity_providers", "oidc_client_secret", "authenticating idbridge to the OpenID provider (the site's secret, not a person's; encrypted)"),
		other("identity_providers", "oidc_client_secret_hint", "showing which secret is stored (its last four characters)"),
		other("identity_providers", "oidc_scopes", "what idbridge asks the OpenID provider for"),
		other("identity_providers", "oidc_email_claim", "which claim holds the email address"),
		other("identity_providers", "oidc_name_claim", "which claim holds the name"),
		other("identity_providers", "oidc_require_verified_email", "whether an unverified email address is refused"),
		other("identity_providers", "saml_metadata_xml", "the SAML identity provider's metadata"),
		other("identity_providers", "saml_metadata_url", "where the SAML metadata came from"),
		other("identity_providers", "saml_entity_id", "the SAML identity provider's entity ID"),
		other("identity_providers", "saml_sso_url", "where SAML sign-ins are sent"),
		other("identity_providers", "saml_certificate", "verifying the SAML identity provider's signatures"),
		other("identity_providers", "saml_email_attribute", "which attribute holds the email address"),
		other("identity_providers", "saml_name_attribute", "which attribute holds the name"),
		other("identity_providers", "created_at", "when the identity provider was added"),
		other("identity_providers", "updated_at", "when the identity provider changed"),
		{Table: "identity_providers", Column: "updated_by", Personal: true, Category: "account identifier: the Atlassian account ID of the administrator who saved the identity provider",
			Purpose: "accountability for configuration changes", LegalBasis: BasisLegitimate,
			Source: "the administrator's signed request", Retention: RetainWhileInstalled, Recipients: RecipientsNone},

		// Login state holds no personal data: random values and a path.
		other("login_states", "site_id", "which site the sign-in is for"),
		secret("login_states", "id", "finding the sign-in when the browser comes back (a hash of a random value)"),
		other("login_states", "idp_id", "which identity provider the sign-in went to"),
		other("login_states", "protocol", "OIDC or SAML"),
		secret("login_states", "browser_hash", "refusing a sign-in finished in another browser (a hash of a random cookie)"),
		secret("login_states", "nonce", "refusing a replayed ID token (a random value)"),
		secret("login_states", "pkce_verifier", "proving to the OpenID provider that idbridge started the sign-in (a random value)"),
		other("login_states", "saml_request_id", "refusing a SAML response to another request"),
		other("login_states", "return_to", "the portal page to go back to"),
		other("login_states", "created_at", "when the sign-in started"),
		other("login_states", "expires_at", "deleting unfinished sign-ins after ten minutes"),

		other("saml_assertions", "site_id", "which site the assertion was for"),
		other("saml_assertions", "idp_id", "which identity provider issued it"),
		other("saml_assertions", "assertion_id", "refusing a replayed SAML assertion (the identity provider's random ID)"),
		other("saml_assertions", "expires_at", "forgetting it once it could no longer be accepted anyway"),

		other("portal_sessions", "site_id", "which site the session is for"),
		secret("portal_sessions", "id", "recognising the session cookie (a hash of it; the cookie itself is never stored)"),
		session("account_id", "account identifier: the customer's Atlassian account ID"),
		session("email", "contact details: the customer's email address, as the identity provider gave it"),
		session("display_name", "identity: the customer's name, as the identity provider gave it"),
		other("portal_sessions", "idp_id", "which identity provider the customer signed in with"),
		other("portal_sessions", "created_at", "ending the session after its absolute timeout"),
		other("portal_sessions", "last_seen_at", "ending the session after its idle timeout"),
		other("portal_sessions", "expires_at", "ending the session after its absolute timeout"),

		other("audit_daily", "site_id", "which site the counts belong to"),
		other("audit_daily", "day", "the day counted"),
		other("audit_daily", "event", "which kind of event is counted"),
		other("audit_daily", "count", "the chart of sign-ins per day on the admin page (numbers, no person)"),
	}
}
