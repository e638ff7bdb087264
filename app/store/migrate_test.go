package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestMigrateFromEmpty(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		clock := storetest.NewClock(time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC))
		st := b.Open(t, storetest.Unmigrated(), storetest.WithNow(clock.Now))

		n := store.MigrationCount()
		if pending, err := st.PendingMigrations(ctx); err != nil || pending != n {
			t.Fatalf("PendingMigrations before = %d, %v; want %d, nil", pending, err, n)
		}
		res, err := st.Migrate(ctx)
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if d := cmp.Diff(map[string]int{"applied": n, "current": store.LatestVersion()}, map[string]int{"applied": len(res.Applied), "current": res.Current}); d != "" {
			t.Fatalf("Migrate (-want +got):\n%s", d)
		}
		type row struct {
			Version   int
			Name      string
			AppliedAt time.Time
		}
		var rows []row
		if err := store.ScanRaw(ctx, st, &rows, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`); err != nil {
			t.Fatalf("read schema_migrations: %v", err)
		}
		if len(rows) != n {
			t.Fatalf("schema_migrations has %d rows, want %d", len(rows), n)
		}
		for i, r := range rows {
			if want := fmt.Sprintf("%d %s", r.Version, r.Name); res.Applied[i] != want {
				t.Errorf("Applied[%d] = %q, schema_migrations says %q", i, res.Applied[i], want)
			}
			if !r.AppliedAt.Equal(clock.Now()) {
				t.Errorf("version %d applied_at = %v, want the store clock %v", r.Version, r.AppliedAt, clock.Now())
			}
		}
		if rows[len(rows)-1].Version != store.LatestVersion() {
			t.Errorf("last recorded version %d, want %d", rows[len(rows)-1].Version, store.LatestVersion())
		}
		if pending, err := st.PendingMigrations(ctx); err != nil || pending != 0 {
			t.Fatalf("PendingMigrations after = %d, %v; want 0", pending, err)
		}

		again, err := st.Migrate(ctx)
		if err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		if d := cmp.Diff(store.MigrationResult{Current: store.LatestVersion()}, again, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("second Migrate, want nothing applied (-want +got):\n%s", d)
		}
		if got := count(t, st, `SELECT count(*) FROM schema_migrations`); got != n {
			t.Fatalf("schema_migrations has %d rows after the second Migrate, want %d", got, n)
		}
	})
}

// A database that a newer idbridge migrated is refused in words, and left
// as it is: an older binary would misread what it does not know.
func TestMigrateRefusesANewerSchema(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := b.Open(t)
		newer := store.LatestVersion() + 1
		if err := store.ExecRaw(ctx, st, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from a newer idbridge', ?)`, newer, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		_, err := st.Migrate(ctx)
		if models.ErrorCode(err) != models.CodePrecondition || !strings.Contains(err.Error(), fmt.Sprintf("version %d", newer)) {
			t.Fatalf("Migrate on a newer schema: %v; want a refusal naming version %d", err, newer)
		}
		if got := count(t, st, `SELECT count(*) FROM schema_migrations`); got != store.MigrationCount()+1 {
			t.Fatalf("schema_migrations has %d rows, want %d (left as it was)", got, store.MigrationCount()+1)
		}
	})
}

// TestMigrationRunsInOneTransaction appends a migration whose second
// statement fails: its first statement must be rolled back and nothing
// recorded, while the migrations before it stay applied. It changes the
// package's migration list, so it must not run in parallel.
func TestMigrationRunsInOneTransaction(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := b.Open(t, storetest.Unmigrated())
		good := store.MigrationCount()
		broken := store.AppendMigrationForTest(t, "broken on purpose",
			`CREATE TABLE broken_partial (id INTEGER PRIMARY KEY)`,
			`INSERT INTO no_such_table (id) VALUES (1)`,
		)

		_, err := st.Migrate(ctx)
		if err == nil {
			t.Fatal("Migrate with a broken migration succeeded")
		}
		if want := fmt.Sprintf("migration %d (broken on purpose)", broken); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
		if tableExists(t, st, "broken_partial") {
			t.Error("the broken migration's first statement was not rolled back")
		}
		if got := count(t, st, `SELECT count(*) FROM schema_migrations WHERE version = ?`, broken); got != 0 {
			t.Error("the broken migration was recorded in schema_migrations")
		}
		if got := count(t, st, `SELECT count(*) FROM schema_migrations`); got != good {
			t.Errorf("schema_migrations has %d rows, want the %d good migrations", got, good)
		}
		if !tableExists(t, st, "sites") {
			t.Error("an earlier migration was rolled back with the broken one")
		}
		if pending, err := st.PendingMigrations(ctx); err != nil || pending != 1 {
			t.Errorf("PendingMigrations = %d, %v; want 1", pending, err)
		}
	})
}

// TestMigrateConcurrently starts four replicas' Migrate on one empty
// schema while the test holds the advisory lock, waits until all four are
// queued on it, then lets them go: exactly one may apply each migration.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		if b.Name != store.Postgres {
			t.Skip("the migration advisory lock is PostgreSQL's; SQLite serves one process")
		}
		ctx := context.Background()
		first := b.Open(t, storetest.Unmigrated())
		stores := []*store.Store{first}
		for range 3 {
			stores = append(stores, b.Open(t, storetest.Unmigrated(), storetest.SameDatabase(first)))
		}

		release, err := store.HoldMigrationLock(ctx, first)
		if err != nil {
			t.Fatalf("take the migration lock: %v", err)
		}
		released := false
		defer func() {
			if !released {
				_ = release()
			}
		}()

		results := make([]store.MigrationResult, len(stores))
		errs := make([]error, len(stores))
		var wg sync.WaitGroup
		for i, st := range stores {
			wg.Go(func() { results[i], errs[i] = st.Migrate(ctx) })
		}

		// Other packages' tests may wait on the same lock, so at least four.
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, err := store.MigrationLockWaiters(ctx, first)
			if err != nil {
				t.Fatalf("count lock waiters: %v", err)
			}
			if n >= len(stores) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d sessions wait for the migration lock after 30s, want %d", n, len(stores))
			}
			time.Sleep(5 * time.Millisecond)
		}
		released = true
		if err := release(); err != nil {
			t.Fatalf("release the migration lock: %v", err)
		}
		wg.Wait()

		applied := map[string]int{}
		total := 0
		for i := range stores {
			if errs[i] != nil {
				t.Errorf("replica %d: Migrate: %v", i, errs[i])
			}
			if results[i].Current != store.LatestVersion() {
				t.Errorf("replica %d: current %d, want %d", i, results[i].Current, store.LatestVersion())
			}
			for _, a := range results[i].Applied {
				applied[a]++
			}
			total += len(results[i].Applied)
		}
		if total != store.MigrationCount() {
			t.Errorf("migrations applied %d times in all, want %d (once each): %v", total, store.MigrationCount(), applied)
		}
		for a, n := range applied {
			if n != 1 {
				t.Errorf("migration %q applied %d times", a, n)
			}
		}
		if pending, err := first.PendingMigrations(ctx); err != nil || pending != 0 {
			t.Errorf("PendingMigrations = %d, %v; want 0", pending, err)
		}
	})
}

// TestMigrateConcurrentlyOnOneSQLiteFile: SQLite has no advisory lock, but
// two processes sharing one file (an operator running `idbridge migrate`
// beside a starting server) must still apply each migration once.
func TestMigrateConcurrentlyOnOneSQLiteFile(t *testing.T) {
	t.Parallel()
	b := storetest.Backends(t)[0]
	if b.Name != store.SQLite {
		t.Fatalf("first backend is %s, want sqlite", b.Name)
	}
	ctx := context.Background()
	first := b.Open(t, storetest.Unmigrated())
	stores := []*store.Store{first}
	for range 3 {
		stores = append(stores, b.Open(t, storetest.Unmigrated(), storetest.SameDatabase(first)))
	}
	// Every store reads the (empty) list of applied migrations before any
	// of them applies one: the worst interleaving, forced.
	var planned sync.WaitGroup
	planned.Add(len(stores))
	for _, st := range stores {
		store.SetAfterPlan(st, func() { planned.Done(); planned.Wait() })
	}
	results := make([]store.MigrationResult, len(stores))
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Go(func() { results[i], errs[i] = st.Migrate(ctx) })
	}
	wg.Wait()
	total := 0
	for i := range stores {
		if errs[i] != nil {
			t.Errorf("store %d: Migrate: %v", i, errs[i])
		}
		total += len(results[i].Applied)
	}
	if total != store.MigrationCount() {
		t.Errorf("migrations applied %d times in all, want %d", total, store.MigrationCount())
	}
}
