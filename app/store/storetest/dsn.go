package storetest

import (
	"path/filepath"
	"strings"
	"testing"

	"idbridge/app/store"
)

// Database returns a fresh, empty database on backend b as the (driver, DSN)
// pair that store.Open takes, for code that opens its own store (app.Open):
// SQLite a file in a temporary directory, PostgreSQL a new schema of the
// IDBRIDGE_TEST_DATABASE_URL database (selected by search_path), dropped
// with CASCADE when the test ends. Nothing is migrated. Whoever opens the
// DSN must close it in a cleanup registered after this call, so that it
// runs before the schema is dropped.
func (b Backend) Database(tb testing.TB) (driver, dsn string) {
	tb.Helper()
	switch b.Name {
	case store.SQLite:
		return store.SQLite, filepath.Join(tb.TempDir(), "idbridge.db")
	case store.Postgres:
		adminURL := PostgresURL(tb)
		dsn, err := withSearchPath(adminURL, createSchema(tb, adminURL))
		if err != nil {
			tb.Fatalf("%s: %v", EnvDatabaseURL, err)
		}
		return store.Postgres, dsn
	}
	tb.Fatalf("storetest: unknown backend %q", b.Name)
	return "", ""
}

// DatabaseURL is Database in the form IDBRIDGE_DATABASE_URL takes:
// "sqlite:PATH" or the postgres:// URL. A keyword/value PostgreSQL DSN in
// IDBRIDGE_TEST_DATABASE_URL has no such form and fails the test.
func (b Backend) DatabaseURL(tb testing.TB) string {
	tb.Helper()
	driver, dsn := b.Database(tb)
	if driver == store.SQLite {
		return "sqlite:" + dsn
	}
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		tb.Fatalf("%s must be a postgres:// URL to configure an App with it", EnvDatabaseURL)
	}
	return dsn
}
