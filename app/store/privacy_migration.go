package store

import "gorm.io/gorm"

// migratePrivacy adds the privacy features' own state (SPEC 8):
// restrictions of processing, and the Personal Data Reporting cycle: the
// accounts idbridge holds data for, with when each was last reported, and
// per site the cycle in progress, so that a crash resumes it.
func migratePrivacy(tx *gorm.DB, dialect string) error {
	return sqlFor(dialect,
		`CREATE TABLE privacy_restrictions (
			site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			account_id TEXT NOT NULL,
			reason TEXT NOT NULL DEFAULT '',
			restricted_at {{ts}} NOT NULL,
			restricted_by TEXT NOT NULL DEFAULT '',
			blocked_count {{bigint}} NOT NULL DEFAULT 0,
			last_blocked_at {{ts}},
			last_blocked TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (site_id, account_id)
		)`,
		`CREATE TABLE report_accounts (
			site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			account_id TEXT NOT NULL,
			updated_at {{ts}} NOT NULL,
			seen_at {{ts}} NOT NULL,
			reported_at {{ts}},
			PRIMARY KEY (site_id, account_id)
		)`,
		`CREATE TABLE report_sites (
			site_id TEXT PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
			cycle_period_seconds {{bigint}} NOT NULL DEFAULT 0,
			cycle_started_at {{ts}},
			cycle_finished_at {{ts}},
			next_cycle_at {{ts}},
			retry_at {{ts}},
			reported {{bigint}} NOT NULL DEFAULT 0,
			closed {{bigint}} NOT NULL DEFAULT 0,
			erased {{bigint}} NOT NULL DEFAULT 0,
			updated {{bigint}} NOT NULL DEFAULT 0,
			ignored {{bigint}} NOT NULL DEFAULT 0,
			last_status TEXT NOT NULL DEFAULT '',
			last_message TEXT NOT NULL DEFAULT '',
			updated_at {{ts}} NOT NULL
		)`,
	)(tx, dialect)
}
