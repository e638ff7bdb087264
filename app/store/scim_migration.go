package store

import "gorm.io/gorm"

// migrateSCIM is migration 3: the SCIM directory (users, groups, members),
// the per-site provisioning settings with the token hash, and the outbox.
// Every tenant table carries site_id in its primary key and in every unique
// index, and goes with its site (ON DELETE CASCADE) when the site is purged.
//
// The outbox key differs by dialect: PostgreSQL keys it (site_id, id) with
// id from a sequence, so it can be distributed by site; SQLite, which can
// only auto-increment a lone INTEGER PRIMARY KEY, keys it by id.
func migrateSCIM(tx *gorm.DB, dialect string) error {
	outbox := `CREATE TABLE outbox (
			site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			id BIGSERIAL NOT NULL,
			resource_type TEXT NOT NULL,
			resource_id TEXT NOT NULL,
			op TEXT NOT NULL,
			payload TEXT NOT NULL,
			status TEXT NOT NULL,
			attempts INTEGER NOT NULL DEFAULT 0,
			next_attempt_at {{ts}} NOT NULL,
			last_error TEXT NOT NULL DEFAULT '',
			created_at {{ts}} NOT NULL,
			updated_at {{ts}} NOT NULL,
			PRIMARY KEY (site_id, id)
		)`
	outboxSiteIndex := `CREATE INDEX outbox_site ON outbox (site_id, resource_id, id)`
	if dialect != Postgres {
		outbox = `CREATE TABLE outbox (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			resource_type TEXT NOT NULL,
			resource_id TEXT NOT NULL,
			op TEXT NOT NULL,
			payload TEXT NOT NULL,
			status TEXT NOT NULL,
			attempts INTEGER NOT NULL DEFAULT 0,
			next_attempt_at {{ts}} NOT NULL,
			last_error TEXT NOT NULL DEFAULT '',
			created_at {{ts}} NOT NULL,
			updated_at {{ts}} NOT NULL
		)`
	}
	return sqlFor(dialect,
		`CREATE TABLE scim_settings (
			site_id TEXT PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
			enabled BOOLEAN NOT NULL DEFAULT FALSE,
			token_hash {{bytes}},
			token_created_at {{ts}},
			deactivation TEXT NOT NULL DEFAULT 'remove_groups',
			provision_as TEXT NOT NULL DEFAULT 'account',
			products TEXT NOT NULL DEFAULT '[]',
			created_at {{ts}} NOT NULL,
			updated_at {{ts}} NOT NULL
		)`,
		`CREATE TABLE scim_users (
			site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			id TEXT NOT NULL,
			user_name TEXT NOT NULL,
			user_name_lower TEXT NOT NULL,
			external_id TEXT,
			display_name TEXT,
			given_name TEXT,
			family_name TEXT,
			email TEXT,
			active BOOLEAN NOT NULL,
			doc TEXT NOT NULL,
			version {{bigint}} NOT NULL,
			created_at {{ts}} NOT NULL,
			updated_at {{ts}} NOT NULL,
			PRIMARY KEY (site_id, id)
		)`,
		// userName is unique per site case-insensitively (caseExact=false):
		// the database enforces it on the lowered copy.
		`CREATE UNIQUE INDEX scim_users_user_name ON scim_users (site_id, user_name_lower)`,
		`CREATE INDEX scim_users_external_id ON scim_users (site_id, external_id)`,
		// Stable paging: creation time, then id.
		`CREATE INDEX scim_users_created ON scim_users (site_id, created_at, id)`,
		`CREATE TABLE scim_groups (
			site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			id TEXT NOT NULL,
			display_name TEXT NOT NULL,
			display_name_lower TEXT NOT NULL,
			external_id TEXT,
			doc TEXT NOT NULL,
			version {{bigint}} NOT NULL,
			created_at {{ts}} NOT NULL,
			updated_at {{ts}} NOT NULL,
			PRIMARY KEY (site_id, id)
		)`,
		`CREATE UNIQUE INDEX scim_groups_display_name ON scim_groups (site_id, display_name_lower)`,
		`CREATE INDEX scim_groups_external_id ON scim_groups (site_id, external_id)`,
		`CREATE INDEX scim_groups_created ON scim_groups (site_id, created_at, id)`,
		`CREATE TABLE scim_group_members (
			site_id TEXT NOT NULL,
			group_id TEXT NOT NULL,
			user_id TEXT NOT NULL,
			PRIMARY KEY (site_id, group_id, user_id),
			FOREIGN KEY (site_id, group_id) REFERENCES scim_groups (site_id, id) ON DELETE CASCADE,
			FOREIGN KEY (site_id, user_id) REFERENCES scim_users (site_id, id) ON DELETE CASCADE
		)`,
		`CREATE INDEX scim_group_members_user ON scim_group_members (site_id, user_id)`,
		outbox,
		outboxSiteIndex,
		`CREATE INDEX outbox_due ON outbox (status, next_attempt_at)`,
	)(tx, dialect)
}
