package store

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ncruces/go-sqlite3"
	sqlitedriver "github.com/ncruces/go-sqlite3/driver"

	"idbridge/models"
)

// Test hooks for the external store_test package, which needs them to look
// under the API: raw SQL on the store's own connection (so PostgreSQL's
// search_path applies), the migration list, and the migration lock.

// TranslateError is the store's classification of database errors.
func TranslateError(err error) error { return translate(err) }

// ExecRaw runs one statement; placeholders are "?" on both dialects.
func ExecRaw(ctx context.Context, s *Store, query string, args ...any) error {
	return s.db.WithContext(ctx).Exec(query, args...).Error
}

// QueryRowRaw scans the first row of a query into dest.
func QueryRowRaw(ctx context.Context, s *Store, query string, args []any, dest ...any) error {
	return s.db.WithContext(ctx).Raw(query, args...).Row().Scan(dest...)
}

// TxQueryRowRaw scans the first row of a query run in tx into dest.
func TxQueryRowRaw(tx *Tx, query string, dest ...any) error {
	return tx.db.Raw(query).Row().Scan(dest...)
}

// ScanRaw scans every row of a query into dest, a pointer to a slice of
// structs whose fields match the columns.
func ScanRaw(ctx context.Context, s *Store, dest any, query string, args ...any) error {
	return s.db.WithContext(ctx).Raw(query, args...).Scan(dest).Error
}

// NextLeaseSQL is the question a worker with nothing to claim asks about
// leases (nextSyncDue), for the plan test.
const NextLeaseSQL = nextLeaseSQL

// MigrationCount is how many migrations this binary knows.
func MigrationCount() int { return len(migrations) }

// AppendMigrationForTest adds a migration made of stmts after the last one
// until the test ends, and returns its version. Tests that use it must not
// run in parallel with others: migrations is package state.
func AppendMigrationForTest(tb testing.TB, name string, stmts ...string) int {
	tb.Helper()
	saved := migrations
	v := saved[len(saved)-1].Version + 1
	migrations = append(saved[:len(saved):len(saved)], migration{Version: v, Name: name, Up: portable(stmts...)})
	tb.Cleanup(func() { migrations = saved })
	return v
}

// MigrationsBeforeForTest leaves out the migration named name and every
// one after it, and returns the function that puts them back (also called
// when the test ends). Tests that use it must not run in parallel with
// others: migrations is package state.
func MigrationsBeforeForTest(tb testing.TB, name string) (restore func()) {
	tb.Helper()
	saved := migrations
	for i, m := range saved {
		if m.Name == name {
			migrations = saved[:i:i]
			restore = func() { migrations = saved }
			tb.Cleanup(restore)
			return restore
		}
	}
	tb.Fatalf("no migration named %q", name)
	return nil
}

// HoldMigrationLock takes the PostgreSQL migration advisory lock on a
// connection of its own, and returns the function that releases it.
func HoldMigrationLock(ctx context.Context, s *Store) (release func() error, err error) {
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return func() error {
		defer conn.Close()
		var ok bool
		if err := conn.QueryRowContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLockKey).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the migration lock was not held")
		}
		return nil
	}, nil
}

// MigrationLockWaiters counts sessions waiting for the migration advisory
// lock, in the whole database.
func MigrationLockWaiters(ctx context.Context, s *Store) (int, error) {
	var n int
	err := s.sqlDB.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1`,
		migrationLockKey>>32, migrationLockKey&0xffffffff).Scan(&n)
	return n, err
}

// SetAfterPlan makes Migrate call fn after it has read which migrations are
// applied and before it applies the others.
func SetAfterPlan(st *Store, fn func()) { st.afterPlan = fn }

// LookupRequest is one request of a batched user lookup.
type LookupRequest struct {
	SiteID, Value string
	Groups        bool
}

// RunLookupBatch runs one batched lookup statement (PostgreSQL) by column
// for the requests, as the coalescer would, and returns each request's user
// (nil: none) and error.
func RunLookupBatch(ctx context.Context, s *Store, column string, reqs []LookupRequest) ([]*models.DirectoryUser, []error) {
	batch := make([]*userLookup, len(reqs))
	for i, r := range reqs {
		batch[i] = &userLookup{siteID: r.SiteID, value: r.Value, groups: r.Groups}
		batch[i].init()
	}
	s.lookupUsers(column)(ctx, batch)
	users := make([]*models.DirectoryUser, len(reqs))
	errs := make([]error, len(reqs))
	for i, it := range batch {
		users[i], errs[i] = it.user, it.wait(ctx)
	}
	return users, errs
}

// RunCreateBatch runs one batched create statement (PostgreSQL) for the
// users and their outbox items, as the coalescer would, and returns each
// create's error. callers, when given, are the requests' contexts.
func RunCreateBatch(ctx context.Context, s *Store, users []*models.DirectoryUser, items []*models.OutboxItem, callers ...context.Context) []error {
	batch := make([]*userCreate, 0, len(users))
	errs := make([]error, len(users))
	for i := range users {
		c, err := s.newUserCreate(users[i], items[i])
		if err != nil {
			errs[i] = err
			continue
		}
		if i < len(callers) {
			c.ctx = callers[i]
		}
		c.init()
		batch = append(batch, c)
	}
	s.createUsers(ctx, batch)
	k := 0
	for i := range users {
		if errs[i] == nil {
			errs[i] = translate(batch[k].wait(ctx))
			k++
		}
	}
	return errs
}

// CountSQLiteRecompiles limits an SQLite store to two connections (a
// transaction's and one to prepare statements on) and makes them report,
// for each statement's SQL, how often SQLite compiled the statement again
// (SQLITE_STMTSTATUS_REPREPARE) as of its latest run.
func CountSQLiteRecompiles(tb testing.TB, s *Store) func() map[string]int {
	tb.Helper()
	s.sqlDB.SetMaxOpenConns(2)
	s.sqlDB.SetMaxIdleConns(2)
	var mu sync.Mutex
	counts := map[string]int{}
	trace := func(_ sqlite3.TraceEvent, stmt, _ any) error {
		if st, ok := stmt.(*sqlite3.Stmt); ok {
			mu.Lock()
			counts[st.SQL()] = max(counts[st.SQL()], st.Status(sqlite3.STMTSTATUS_REPREPARE, false))
			mu.Unlock()
		}
		return nil
	}
	ctx := context.Background()
	for range 2 {
		conn, err := s.sqlDB.Conn(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		defer conn.Close() // both held until both are traced
		err = conn.Raw(func(dc any) error { return dc.(sqlitedriver.Conn).Raw().Trace(sqlite3.TRACE_STMT, trace) })
		if err != nil {
			tb.Fatal(err)
		}
	}
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[string]int, len(counts))
		for k, v := range counts {
			out[k] = v
		}
		return out
	}
}

// TxExecRaw runs one statement in the transaction.
func TxExecRaw(tx *Tx, query string, args ...any) error {
	return tx.db.Exec(query, args...).Error
}
