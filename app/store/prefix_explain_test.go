package store_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
)

// TestExplainDirectoryPrefixSearch prints PostgreSQL's plans of the admin
// page's directory search by name prefix over 100,000 users, before
// migration 11 (the LIKE it used) and after (ListSyncDirectory's range),
// with custom and generic plans, for docs/PERFORMANCE.md. It runs only
// with IDBRIDGE_EXPLAIN_PREFIX=1 and IDBRIDGE_TEST_DATABASE_URL set; the
// database's collation is the one to try (CREATE DATABASE … LOCALE_PROVIDER
// icu ICU_LOCALE 'en-US' for one that is not C).
func TestExplainDirectoryPrefixSearch(t *testing.T) {
	if os.Getenv("IDBRIDGE_EXPLAIN_PREFIX") == "" {
		t.Skip("set IDBRIDGE_EXPLAIN_PREFIX=1 to print the plans")
	}
	ctx := context.Background()
	driver, dsn := storetest.Backend{Name: store.Postgres}.Database(t)
	// Not parallel: it changes the package's list of migrations.
	restore := store.MigrationsBeforeForTest(t, "directory name prefix indexes")
	st, err := store.Open(ctx, store.Options{Driver: driver, DSN: dsn, Ring: storetest.Ring(t), MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	site := install(t, st, newSite(1))
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	// PREPARE and DEALLOCATE are the test's own: pgx must not cache any.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	exec := func(q string) {
		t.Helper()
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Names spread evenly over hex digits: a prefix of one digit matches
	// 1/16 of them, of two 1/256, of four about one.
	exec(`INSERT INTO scim_users (site_id, id, user_name, user_name_lower, active, doc, version, created_at, updated_at)
		SELECT '` + site.ID + `', 'u' || i, md5(i::text) || '@example.com', md5(i::text) || '@example.com', true, '{}', 1, now(), now()
		FROM generate_series(1, 100000) i`)
	exec(`ANALYZE`)
	var collation string
	if err := conn.QueryRow(ctx, `SELECT coalesce(daticulocale, datcollate) FROM pg_database WHERE datname = current_database()`).Scan(&collation); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("database collation: %s, PostgreSQL %s\n", collation, conn.PgConn().ParameterStatus("server_version"))

	const cols = `u.id, u.user_name, u.user_name_lower, u.active, COALESCE(s.account_id, ''), COALESCE(s.state, ''),
		EXISTS (SELECT 1 FROM outbox o WHERE o.site_id = u.site_id AND o.resource_id = u.id AND o.status IN ('pending', 'held'))`
	before := `SELECT ` + cols + ` FROM scim_users u LEFT JOIN sync_users s ON s.site_id = u.site_id AND s.user_id = u.id
		WHERE u.site_id = $1 AND u.user_name_lower > $2 AND u.user_name_lower LIKE $3 ESCAPE '\' ORDER BY u.user_name_lower LIMIT $4`
	after := `SELECT ` + cols + ` FROM (SELECT id, site_id, user_name, user_name_lower, active FROM scim_users
			WHERE site_id = $1 AND user_name_lower COLLATE "C" >= $2 AND user_name_lower COLLATE "C" < $3 OFFSET 0) u
		LEFT JOIN sync_users s ON s.site_id = u.site_id AND s.user_id = u.id
		WHERE u.site_id = $4 AND u.user_name_lower > $5 ORDER BY u.user_name_lower LIMIT $6`
	explain := func(label, q, types string, args ...string) {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			exec(`DEALLOCATE ALL`)
			exec(`SET plan_cache_mode = ` + mode)
			exec(`PREPARE p(` + types + `) AS ` + q)
			call := `EXECUTE p('` + strings.Join(args, `', '`) + `', 51)`
			for range 3 { // warm the cache
				exec(`EXPLAIN (ANALYZE) ` + call)
			}
			rows, err := conn.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) `+call)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("--- %s, %s: %s\n", label, mode, call)
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				fmt.Println(line)
			}
			rows.Close()
		}
	}
	prefixes := []string{"f", "ff", "ffe4", "0a"}
	for _, p := range prefixes {
		explain("before", before, "text, text, text, int", site.ID, "", p+"%")
	}
	restore()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	exec(`ANALYZE`)
	for _, p := range prefixes {
		hi := p[:len(p)-1] + string(p[len(p)-1]+1)
		explain("after", after, "text, text, text, text, text, int", site.ID, p, hi, site.ID, "")
	}
}
