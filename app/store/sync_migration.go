package store

import "gorm.io/gorm"

// migrateSync is the sync worker's state (SPEC 6.1): leases and recovery
// marks on the outbox, the Atlassian side of each directory user, group
// and membership, the per-site pause and brake, the organization ID of the
// service account and the site's deletion threshold.
//
// sync_users, sync_groups and sync_members deliberately do not reference
// the directory tables: a user deleted from the directory keeps its
// account ID here until the deletion has been applied to the site.
func migrateSync(tx *gorm.DB, dialect string) error {
	return sqlFor(dialect,
		`ALTER TABLE outbox ADD COLUMN lease_owner TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE outbox ADD COLUMN lease_until {{ts}}`,
		// recover: the last attempt may have been applied without idbridge
		// learning it (a crash, a lost answer): look the object up first.
		`ALTER TABLE outbox ADD COLUMN recover BOOLEAN NOT NULL DEFAULT FALSE`,
		// waiting_for: the directory user a membership waits for.
		`ALTER TABLE outbox ADD COLUMN waiting_for TEXT NOT NULL DEFAULT ''`,
		// The worker claims a site's due items from this index, and finds
		// the sites with work by skipping through it.
		`CREATE INDEX outbox_site_pending ON outbox (site_id, next_attempt_at) WHERE status = 'pending'`,
		`CREATE INDEX outbox_site_done ON outbox (site_id, updated_at) WHERE status <> 'pending'`,
		`CREATE INDEX outbox_waiting ON outbox (site_id, waiting_for) WHERE waiting_for <> ''`,
		`CREATE TABLE sync_users (
			site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			user_id TEXT NOT NULL,
			account_id TEXT NOT NULL DEFAULT '',
			state TEXT NOT NULL DEFAULT '',
			name TEXT NOT NULL DEFAULT '',
			keep_access BOOLEAN NOT NULL DEFAULT FALSE,
			gen {{bigint}} NOT NULL DEFAULT 0,
			updated_at {{ts}} NOT NULL,
			PRIMARY KEY (site_id, user_id)
		)`,
		`CREATE INDEX sync_users_account ON sync_users (site_id, account_id) WHERE account_id <> ''`,
		`CREATE TABLE sync_groups (
			site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			group_id TEXT NOT NULL,
			atlassian_id TEXT NOT NULL DEFAULT '',
			name TEXT NOT NULL DEFAULT '',
			previous_id TEXT NOT NULL DEFAULT '',
			updated_at {{ts}} NOT NULL,
			PRIMARY KEY (site_id, group_id)
		)`,
		`CREATE TABLE sync_members (
			site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			group_id TEXT NOT NULL,
			user_id TEXT NOT NULL,
			account_id TEXT NOT NULL,
			PRIMARY KEY (site_id, group_id, user_id)
		)`,
		`CREATE INDEX sync_members_user ON sync_members (site_id, user_id)`,
		`CREATE TABLE sync_sites (
			site_id TEXT PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
			paused BOOLEAN NOT NULL DEFAULT FALSE,
			paused_reason TEXT NOT NULL DEFAULT '',
			paused_at {{ts}},
			account_updated_at {{ts}},
			brake_released_at {{ts}},
			updated_at {{ts}} NOT NULL
		)`,
		`ALTER TABLE service_accounts ADD COLUMN org_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE scim_settings ADD COLUMN deletion_threshold INTEGER NOT NULL DEFAULT 10`,
	)(tx, dialect)
}
