package store

// migrateSSO is the customer SSO schema (SPEC 7): the site's SSO settings
// (with the sealed SAML service provider key), its identity providers (the
// OIDC client secret sealed), login state in flight, the IDs of SAML
// assertions already used, portal sessions, and a per-day count of audit
// events for the admin page's chart. Every table carries site_id in its
// primary key and goes with its site (ON DELETE CASCADE).
var migrateSSO = portable(
	`CREATE TABLE sso_settings (
		site_id TEXT PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
		enabled BOOLEAN NOT NULL DEFAULT FALSE,
		allowed_domains TEXT NOT NULL DEFAULT '[]',
		auto_create_customers BOOLEAN NOT NULL DEFAULT FALSE,
		service_desk_ids TEXT NOT NULL DEFAULT '[]',
		organizations_by_domain TEXT NOT NULL DEFAULT '{}',
		session_idle_minutes INTEGER NOT NULL DEFAULT 0,
		session_max_hours INTEGER NOT NULL DEFAULT 0,
		sp_key {{bytes}},
		sp_certificate TEXT NOT NULL DEFAULT '',
		updated_at {{ts}} NOT NULL,
		updated_by TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE TABLE identity_providers (
		site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
		id TEXT NOT NULL,
		name TEXT NOT NULL,
		protocol TEXT NOT NULL,
		enabled BOOLEAN NOT NULL DEFAULT TRUE,
		email_domains TEXT NOT NULL DEFAULT '[]',
		oidc_issuer TEXT NOT NULL DEFAULT '',
		oidc_client_id TEXT NOT NULL DEFAULT '',
		oidc_client_secret {{bytes}},
		oidc_client_secret_hint TEXT NOT NULL DEFAULT '',
		oidc_scopes TEXT NOT NULL DEFAULT '[]',
		oidc_email_claim TEXT NOT NULL DEFAULT '',
		oidc_name_claim TEXT NOT NULL DEFAULT '',
		oidc_require_verified_email BOOLEAN NOT NULL DEFAULT TRUE,
		saml_metadata_xml TEXT NOT NULL DEFAULT '',
		saml_metadata_url TEXT NOT NULL DEFAULT '',
		saml_entity_id TEXT NOT NULL DEFAULT '',
		saml_sso_url TEXT NOT NULL DEFAULT '',
		saml_certificate TEXT NOT NULL DEFAULT '',
		saml_email_attribute TEXT NOT NULL DEFAULT '',
		saml_name_attribute TEXT NOT NULL DEFAULT '',
		created_at {{ts}} NOT NULL,
		updated_at {{ts}} NOT NULL,
		updated_by TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (site_id, id)
	)`,
	// id is the SHA-256 of the state token; browser_hash that of the
	// binding cookie. Rows live ten minutes at most and are deleted on use.
	`CREATE TABLE login_states (
		site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
		id TEXT NOT NULL,
		idp_id TEXT NOT NULL,
		protocol TEXT NOT NULL,
		browser_hash TEXT NOT NULL,
		nonce TEXT NOT NULL DEFAULT '',
		pkce_verifier TEXT NOT NULL DEFAULT '',
		saml_request_id TEXT NOT NULL DEFAULT '',
		return_to TEXT NOT NULL DEFAULT '',
		created_at {{ts}} NOT NULL,
		expires_at {{ts}} NOT NULL,
		PRIMARY KEY (site_id, id)
	)`,
	`CREATE INDEX login_states_expires ON login_states (expires_at)`,
	`CREATE TABLE saml_assertions (
		site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
		idp_id TEXT NOT NULL,
		assertion_id TEXT NOT NULL,
		expires_at {{ts}} NOT NULL,
		PRIMARY KEY (site_id, idp_id, assertion_id)
	)`,
	`CREATE INDEX saml_assertions_expires ON saml_assertions (expires_at)`,
	// id is the SHA-256 of the session cookie's value.
	`CREATE TABLE portal_sessions (
		site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
		id TEXT NOT NULL,
		account_id TEXT NOT NULL,
		email TEXT NOT NULL DEFAULT '',
		display_name TEXT NOT NULL DEFAULT '',
		idp_id TEXT NOT NULL DEFAULT '',
		created_at {{ts}} NOT NULL,
		last_seen_at {{ts}} NOT NULL,
		expires_at {{ts}} NOT NULL,
		PRIMARY KEY (site_id, id)
	)`,
	`CREATE INDEX portal_sessions_account ON portal_sessions (site_id, account_id)`,
	`CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at)`,
	// Counts of audit events per site, UTC day and event, kept in the same
	// transaction as each event, so the 30-day chart reads 60 rows instead
	// of counting a million.
	`CREATE TABLE audit_daily (
		site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
		day TEXT NOT NULL,
		event TEXT NOT NULL,
		count {{bigint}} NOT NULL DEFAULT 0,
		PRIMARY KEY (site_id, day, event)
	)`,
	`CREATE INDEX audit_events_site_event_time ON audit_events (site_id, event, occurred_at)`,
)
