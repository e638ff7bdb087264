package storetest_test

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

func install(tb testing.TB, st *store.Store, clientKey string) {
	tb.Helper()
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		_, err := tx.SaveInstall(&models.Site{
			SiteFacts:    models.SiteFacts{ClientKey: clientKey, BaseURL: "https://a.atlassian.net"},
			SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
		})
		return err
	})
	if err != nil {
		tb.Fatalf("SaveInstall: %v", err)
	}
}

func TestOpenIsolatesAndSameDatabaseShares(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		a := b.Open(t)
		install(t, a, "client-a")
		if n, err := a.PendingMigrations(ctx); err != nil || n != 0 {
			t.Fatalf("Open left %d migrations pending, %v", n, err)
		}

		fresh := b.Open(t)
		if _, err := fresh.View(ctx).FindSiteByClientKey("client-a"); !models.IsNotFound(err) {
			t.Errorf("a fresh store sees another test's site: %v", err)
		}
		same := b.Open(t, storetest.SameDatabase(a)) // same ring by default, so CheckKeyRing passes
		if _, err := same.View(ctx).FindSiteByClientKey("client-a"); err != nil {
			t.Errorf("SameDatabase does not see the site: %v", err)
		}
	})
}

// TestPostgresSchemaPerOpen checks that the search_path URL parameter
// reaches the server as a run-time parameter, and that the schema is gone
// after the test.
func TestPostgresSchemaPerOpen(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	var schema string
	t.Run("open", func(t *testing.T) {
		for _, b := range storetest.Backends(t) {
			if b.Name != store.Postgres {
				continue
			}
			st := b.Open(t)
			if err := st.SQLDB().QueryRowContext(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(schema, "t_") {
				t.Fatalf("current_schema() = %q, want the test's t_ schema", schema)
			}
			var n int
			if err := st.SQLDB().QueryRowContext(context.Background(), `SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'sites'`, schema).Scan(&n); err != nil || n != 1 {
				t.Fatalf("sites table in %s: %d, %v", schema, n, err)
			}
		}
	})
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("schema %s still exists after the test", schema)
	}
}

// fakeTB records Fatal and Skip and stops the goroutine, as testing.T does.
type fakeTB struct {
	testing.TB
	failed, skipped string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	f.failed = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }
func (f *fakeTB) Skip(args ...any) {
	f.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) { f.Skip(fmt.Sprintf(format, args...)) }

func run(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestMissingDatabaseURL(t *testing.T) {
	t.Setenv(storetest.EnvDatabaseURL, "")

	t.Setenv("CI", "")
	f := run(t, func(tb testing.TB) { storetest.PostgresURL(tb) })
	if d := cmp.Diff(map[string]any{"skipped": true, "failed": ""}, map[string]any{"skipped": f.skipped != "", "failed": f.failed}); d != "" {
		t.Errorf("PostgresURL outside CI, want a skip (-want +got):\n%s", d)
	}
	var names []string
	if f := run(t, func(tb testing.TB) {
		for _, b := range storetest.Backends(tb) {
			names = append(names, b.Name)
		}
	}); f.failed != "" || f.skipped != "" || strings.Join(names, ",") != store.SQLite {
		t.Errorf("Backends outside CI: %v, failed %q, skipped %q; want SQLite alone", names, f.failed, f.skipped)
	}

	t.Setenv("CI", "true")
	for name, fn := range map[string]func(testing.TB){
		"PostgresURL": func(tb testing.TB) { storetest.PostgresURL(tb) },
		"Backends":    func(tb testing.TB) { storetest.Backends(tb) },
	} {
		if f := run(t, fn); !strings.Contains(f.failed, storetest.EnvDatabaseURL) || f.skipped != "" {
			t.Errorf("%s with CI=true: failed %q, skipped %q; want a failure naming %s", name, f.failed, f.skipped, storetest.EnvDatabaseURL)
		}
	}
}

func TestClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := storetest.NewClock(start)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	if want := start.Add(800 * time.Second); !c.Now().Equal(want) {
		t.Errorf("Now = %v, want %v", c.Now(), want)
	}
}
