package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"idbridge/models"
)

// migration is one versioned schema change. Up receives the transaction and
// the dialect, so SQL that differs between SQLite and PostgreSQL is written
// out for each. Migrations are frozen once released: never edit one, add a
// new one. Live models are never auto-migrated.
type migration struct {
	Version int
	Name    string
	Up      func(tx *gorm.DB, dialect string) error
}

// migrationLockKey is the PostgreSQL advisory lock that keeps two replicas
// starting at once from migrating together ("idbridge" in ASCII).
const migrationLockKey int64 = 0x6964627269646765

// sqlFor returns the statements of a migration with dialect-specific types
// substituted: {{ts}} a timestamp, {{bytes}} binary data, {{bigint}} a
// 64-bit integer, {{serial}} an auto-incrementing 64-bit primary key.
func sqlFor(dialect string, stmts ...string) func(tx *gorm.DB, _ string) error {
	var r *strings.Replacer
	if dialect == Postgres {
		r = strings.NewReplacer("{{ts}}", "TIMESTAMPTZ", "{{bytes}}", "BYTEA", "{{bigint}}", "BIGINT",
			"{{serial}}", "BIGSERIAL PRIMARY KEY")
	} else {
		r = strings.NewReplacer("{{ts}}", "DATETIME", "{{bytes}}", "BLOB", "{{bigint}}", "INTEGER",
			"{{serial}}", "INTEGER PRIMARY KEY AUTOINCREMENT")
	}
	return func(tx *gorm.DB, _ string) error {
		for _, stmt := range stmts {
			if err := tx.Exec(r.Replace(stmt)).Error; err != nil {
				return fmt.Errorf("%s: %w", firstLine(stmt), err)
			}
		}
		return nil
	}
}

// portable builds an Up function from SQL templates valid on both dialects.
func portable(stmts ...string) func(tx *gorm.DB, dialect string) error {
	return func(tx *gorm.DB, dialect string) error { return sqlFor(dialect, stmts...)(tx, dialect) }
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		s = s[:i]
	}
	return s
}

// migrations is the ordered history of the schema.
var migrations = []migration{
	{Version: 1, Name: "sites and key checks", Up: portable(
		`CREATE TABLE sites (
			id TEXT PRIMARY KEY,
			client_key TEXT NOT NULL,
			shared_secret {{bytes}},
			base_url TEXT NOT NULL,
			display_url TEXT NOT NULL DEFAULT '',
			display_url_servicedesk_help_center TEXT NOT NULL DEFAULT '',
			product_type TEXT NOT NULL DEFAULT '',
			description TEXT NOT NULL DEFAULT '',
			service_entitlement_number TEXT NOT NULL DEFAULT '',
			entitlement_id TEXT NOT NULL DEFAULT '',
			entitlement_number TEXT NOT NULL DEFAULT '',
			installation_id TEXT NOT NULL DEFAULT '',
			cloud_id TEXT NOT NULL DEFAULT '',
			state TEXT NOT NULL,
			installed_at {{ts}} NOT NULL,
			updated_at {{ts}} NOT NULL,
			uninstalled_at {{ts}},
			purge_after {{ts}}
		)`,
		`CREATE UNIQUE INDEX sites_client_key ON sites (client_key)`,
		`CREATE INDEX sites_installation_id ON sites (installation_id) WHERE installation_id <> ''`,
		`CREATE INDEX sites_cloud_id ON sites (cloud_id) WHERE cloud_id <> ''`,
		`CREATE INDEX sites_purge_after ON sites (purge_after) WHERE purge_after IS NOT NULL`,
		// key_checks holds, per encryption key ID, a known value sealed with
		// that key, so a start with a foreign or corrupted key ring is refused
		// before anything is written with it.
		`CREATE TABLE key_checks (
			key_id TEXT PRIMARY KEY,
			sealed {{bytes}} NOT NULL,
			created_at {{ts}} NOT NULL,
			retired_at {{ts}}
		)`,
	)},
	{Version: 2, Name: "service accounts, customer profiles, audit events, scheduled jobs", Up: portable(
		// One service account per site. token, client_secret and
		// org_admin_key are sealed (keys.go), bound to the site ID;
		// token_hint is the last four characters of the token or client
		// secret, for display.
		`CREATE TABLE service_accounts (
			site_id TEXT PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
			kind TEXT NOT NULL,
			email TEXT NOT NULL DEFAULT '',
			token {{bytes}},
			token_hint TEXT NOT NULL DEFAULT '',
			cloud_id TEXT NOT NULL DEFAULT '',
			client_id TEXT NOT NULL DEFAULT '',
			client_secret {{bytes}},
			expires_at {{ts}},
			org_admin_key {{bytes}},
			org_admin_key_hint TEXT NOT NULL DEFAULT '',
			org_admin_key_expires_at {{ts}},
			status TEXT NOT NULL DEFAULT 'untested',
			status_message TEXT NOT NULL DEFAULT '',
			checked_at {{ts}},
			updated_at {{ts}} NOT NULL,
			updated_by TEXT NOT NULL DEFAULT ''
		)`,
		// The customer record: per field the synced value with its source
		// and time, and an admin's correction (NULL when there is none),
		// which wins over syncs until cleared.
		`CREATE TABLE customer_profiles (
			site_id TEXT PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
			name TEXT NOT NULL DEFAULT '',
			name_source TEXT NOT NULL DEFAULT '',
			name_updated_at {{ts}},
			name_correction TEXT,
			name_corrected_at {{ts}},
			email TEXT NOT NULL DEFAULT '',
			email_source TEXT NOT NULL DEFAULT '',
			email_updated_at {{ts}},
			email_correction TEXT,
			email_corrected_at {{ts}},
			location TEXT NOT NULL DEFAULT '',
			location_source TEXT NOT NULL DEFAULT '',
			location_updated_at {{ts}},
			location_correction TEXT,
			location_corrected_at {{ts}},
			company TEXT NOT NULL DEFAULT '',
			company_source TEXT NOT NULL DEFAULT '',
			company_updated_at {{ts}},
			company_correction TEXT,
			company_corrected_at {{ts}},
			purchaser TEXT NOT NULL DEFAULT '',
			purchaser_source TEXT NOT NULL DEFAULT '',
			purchaser_updated_at {{ts}},
			purchaser_correction TEXT,
			purchaser_corrected_at {{ts}},
			last_sync_at {{ts}},
			sync_status TEXT NOT NULL DEFAULT '',
			updated_at {{ts}} NOT NULL
		)`,
		// The audit log (SPEC section 7). fields is a JSON array of field
		// names, never values.
		`CREATE TABLE audit_events (
			site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
			id TEXT NOT NULL,
			occurred_at {{ts}} NOT NULL,
			actor_account_id TEXT NOT NULL DEFAULT '',
			target_account_id TEXT NOT NULL DEFAULT '',
			event TEXT NOT NULL,
			section TEXT NOT NULL DEFAULT '',
			fields TEXT NOT NULL DEFAULT '[]',
			ip TEXT NOT NULL DEFAULT '',
			user_agent TEXT NOT NULL DEFAULT '',
			idp TEXT NOT NULL DEFAULT '',
			protocol TEXT NOT NULL DEFAULT '',
			reason TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (site_id, id)
		)`,
		`CREATE INDEX audit_events_site_time ON audit_events (site_id, occurred_at)`,
		`CREATE INDEX audit_events_site_actor ON audit_events (site_id, actor_account_id) WHERE actor_account_id <> ''`,
		`CREATE INDEX audit_events_site_target ON audit_events (site_id, target_account_id) WHERE target_account_id <> ''`,
		// When each scheduled job last ran, so that replicas (and restarts)
		// run a daily job once a day, not once per start.
		`CREATE TABLE scheduled_jobs (
			name TEXT PRIMARY KEY,
			last_started_at {{ts}},
			last_finished_at {{ts}},
			last_status TEXT NOT NULL DEFAULT '',
			last_message TEXT NOT NULL DEFAULT ''
		)`,
	)},
	{Version: 3, Name: "scim directory and outbox", Up: migrateSCIM},
	// The backlog metric (OutboxBacklog) counts pending items and reads the
	// oldest one's age from this index alone, whatever the outbox's size.
	{Version: 4, Name: "outbox pending index", Up: portable(
		`CREATE INDEX outbox_pending ON outbox (created_at) WHERE status = 'pending'`,
	)},
	{Version: 5, Name: "customer sso, portal sessions, audit day counts", Up: migrateSSO},
	{Version: 6, Name: "sync state", Up: migrateSync},
	// An admin's "events of this account, newest first" reads its page
	// from these, however many events the site has. Not partial: with a
	// prepared statement's generic plan PostgreSQL cannot prove that a
	// parameter is not '', and would scan the whole site's log instead.
	{Version: 7, Name: "audit events by account and time", Up: portable(
		`CREATE INDEX audit_events_site_actor_time ON audit_events (site_id, actor_account_id, occurred_at)`,
		`CREATE INDEX audit_events_site_target_time ON audit_events (site_id, target_account_id, occurred_at)`,
	)},
	{Version: 8, Name: "privacy: restrictions and the personal data reporting cycle", Up: migratePrivacy},
	// Forge: one site per installationId, and the Forge side of each
	// installation (app system token, sealed), linked for existing sites.
	{Version: 9, Name: "forge installations", Up: migrateForge},
	{Version: 10, Name: "outbox claim order index", Up: portable(
		// The sync worker claims a site's next subject in (next_attempt_at,
		// id) order: with id in the index the claim walks it in that order
		// and stops at the first subject it can take, instead of sorting
		// every due item (41 ms at 5,000 pending items of one site, 0.08 ms
		// with it; docs/PERFORMANCE.md). It replaces the index without id.
		`CREATE INDEX outbox_site_claim ON outbox (site_id, next_attempt_at, id) WHERE status = 'pending'`,
		`DROP INDEX outbox_site_pending`,
	)},
	// The admin page searches the directory by name prefix as a range of
	// lower-cased names in code point order (ListSyncDirectory). SQLite's
	// name indexes are in that order already; PostgreSQL's follow the
	// database's collation, which is rarely C: these are in C's order,
	// whatever the database's.
	{Version: 11, Name: "directory name prefix indexes", Up: func(tx *gorm.DB, dialect string) error {
		if dialect != Postgres {
			return nil
		}
		return sqlFor(dialect,
			`CREATE INDEX scim_users_user_name_c ON scim_users (site_id, user_name_lower COLLATE "C")`,
			`CREATE INDEX scim_groups_display_name_c ON scim_groups (site_id, display_name_lower COLLATE "C")`,
		)(tx, dialect)
	}},
	// A worker with nothing to claim asks when the site's next lease runs
	// out (nextSyncDue). Only a claim's head is leased, so this index holds
	// a handful of rows a site, where the site's pending index holds its
	// whole backlog: 4.5 ms a question at 2,000 pending items of each of
	// 20 sites, a sixth of PostgreSQL's time in the sync benchmark
	// (docs/PERFORMANCE.md).
	{Version: 12, Name: "outbox lease index", Up: portable(
		`CREATE INDEX outbox_leased ON outbox (site_id, lease_until) WHERE status = 'pending' AND lease_until IS NOT NULL`,
	)},
	// A group's claim records the memberships it is about to add, as
	// adding, before it makes the calls, and confirms them after: a crash
	// between an add and its record leaves the account's membership known
	// to the user's deactivation or deletion, and to the claim after it.
	{Version: 13, Name: "sync memberships being added", Up: portable(
		`ALTER TABLE sync_members ADD COLUMN adding BOOLEAN NOT NULL DEFAULT FALSE`,
	)},
	// A site's login states in the order they expire (which, with one TTL,
	// is the order they were made): a site at its bound gives up its oldest
	// (store.MaxLoginStates), found here (with a sort of the ties only).
	{Version: 14, Name: "login states by site and expiry", Up: portable(
		`CREATE INDEX login_states_site_expires ON login_states (site_id, expires_at)`,
	)},
}

func (s *Store) ensureMigrationsTable(ctx context.Context, db *gorm.DB) error {
	return sqlFor(s.dialect, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at {{ts}} NOT NULL
	)`)(db.WithContext(ctx), s.dialect)
}

func (s *Store) appliedVersions(ctx context.Context, db *gorm.DB) (map[int]bool, error) {
	var versions []int
	if err := db.WithContext(ctx).Raw(`SELECT version FROM schema_migrations`).Scan(&versions).Error; err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	return applied, nil
}

// MigrationResult says what Migrate did.
type MigrationResult struct {
	Applied []string // "N name" of each migration applied now
	Current int      // the schema version afterwards
}

// Migrate applies every pending migration, each in its own transaction and
// recorded in schema_migrations. On PostgreSQL a session advisory lock
// serialises replicas: the second waits, then finds nothing left to do.
func (s *Store) Migrate(ctx context.Context) (MigrationResult, error) {
	var res MigrationResult
	db := s.db
	if s.dialect == Postgres {
		conn, err := s.sqlDB.Conn(ctx)
		if err != nil {
			return res, fmt.Errorf("migrate: %w", err)
		}
		defer conn.Close()
		// Waiting for another replica's migrations, and migrating, may take
		// longer than a request's statement: no deadline on this session.
		if _, err := conn.ExecContext(ctx, `SET statement_timeout = 0`); err != nil {
			return res, fmt.Errorf("migrate: %w", err)
		}
		defer func() {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = conn.ExecContext(rctx, `RESET statement_timeout`)
		}()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
			return res, fmt.Errorf("migrate: take advisory lock: %w", err)
		}
		defer func() {
			// A fresh context: the unlock must happen even if ctx is done.
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey)
		}()
	}
	if err := s.ensureMigrationsTable(ctx, db); err != nil {
		// Two replicas may race to create the table itself before either
		// holds data; the loser sees it exists on the retry.
		if err2 := s.ensureMigrationsTable(ctx, db); err2 != nil {
			return res, fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
	}
	applied, err := s.appliedVersions(ctx, db)
	if err != nil {
		return res, err
	}
	// A database a newer idbridge migrated is refused, not used: an older
	// binary misreads what it does not know (a membership being added,
	// since version 13, read as applied, is never added).
	for v := range applied {
		if v > LatestVersion() {
			return res, &models.Error{Code: models.CodePrecondition, Message: fmt.Sprintf(
				"the database's schema is at version %d, which a newer idbridge made; this one knows versions up to %d: run that newer version (or a later one), not this one", v, LatestVersion())}
		}
	}
	if s.afterPlan != nil {
		s.afterPlan()
	}
	for _, m := range migrations {
		if applied[m.Version] {
			res.Current = m.Version
			continue
		}
		skipped := false
		err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			// Re-check inside the transaction: on SQLite, where there is no
			// advisory lock, BEGIN IMMEDIATE serialises two processes and the
			// second finds the migration recorded by the first.
			if s.dialect == Postgres {
				// A migration (an index over a large table) may run longer
				// than a request's statement.
				if err := tx.Exec(`SET LOCAL statement_timeout = 0`).Error; err != nil {
					return err
				}
			}
			var n int64
			if err := tx.Raw(`SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				skipped = true
				return nil
			}
			if err := m.Up(tx, s.dialect); err != nil {
				return err
			}
			return tx.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, s.Now()).Error
		})
		if err != nil {
			return res, fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
		}
		res.Current = m.Version
		if skipped {
			continue
		}
		res.Applied = append(res.Applied, fmt.Sprintf("%d %s", m.Version, m.Name))
		res.Current = m.Version
		s.log.Info("migration applied", "version", m.Version, "name", m.Name)
	}
	return res, nil
}

// PendingMigrations counts migrations not yet applied; readiness needs zero.
func (s *Store) PendingMigrations(ctx context.Context) (int, error) {
	var exists bool
	var err error
	if s.dialect == Postgres {
		err = s.sqlDB.QueryRowContext(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists)
	} else {
		var n int
		err = s.sqlDB.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_migrations'`).Scan(&n)
		exists = n > 0
	}
	if err != nil {
		return 0, err
	}
	if !exists {
		return len(migrations), nil
	}
	applied, err := s.appliedVersions(ctx, s.db)
	if err != nil {
		return 0, err
	}
	pending := 0
	for _, m := range migrations {
		if !applied[m.Version] {
			pending++
		}
	}
	return pending, nil
}

// LatestVersion is the schema version this binary expects.
func LatestVersion() int { return migrations[len(migrations)-1].Version }
