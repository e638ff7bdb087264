package provisioning

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// A create waits for its batch (app/store: one statement on PostgreSQL, one
// write transaction on SQLite) without the site's work slot: the batch
// holds one connection for all of its creates. Holding the slot while
// waiting made every batch a batch of one on a site with a single work
// slot (SQLite's creates under load, docs/PERFORMANCE.md), and left the
// site's reads queued behind its creates. Here the creates' batch waits for
// a write lock another connection holds; meanwhile a list of the same site,
// which needs the site's only work slot, is answered, and once the lock
// goes every create is stored with its outbox item. On PostgreSQL this also
// holds the store's statement cache to never wait while it prepares: the
// creates' INSERT, prepared behind the table's lock, once held the cache's
// lock and with it every other statement of the process.
func TestCreatesWaitForTheirBatchWithoutAWorkSlot(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		// Room in the pool for the lock's connection, the creates' batches
		// and the list.
		st := b.Open(t, storetest.WithStoreOptions(func(o *store.Options) { o.MaxOpenConns = 8 }))
		ctx := context.Background()
		svc := NewService(ServiceConfig{Capacity: CapacityConfig{SiteRequests: 64, SiteWork: 1, Work: 2, Wait: 500 * time.Millisecond}}, st, nil, nil)
		site := installSite(t, st)

		unlock := holdUsersWriteLock(t, st, site.ID)
		defer unlock()

		const n = 6
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				_, err := svc.Create(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Users,
					Body: fmt.Appendf(nil, `{"userName":"user%d@example.com"}`, i)})
				errs <- err
			})
		}
		// Give the creates time to reach their batch, which waits for the
		// lock (with the slot held, the list below would wait for it and
		// be refused after the capacity's 500 ms).
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		if _, err := svc.List(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Users}); err != nil {
			t.Fatalf("a list while the site's creates wait for their batch: %v (after %s)", err, time.Since(start))
		}
		select {
		case err := <-errs:
			t.Fatalf("a create ended while the write lock was held: %v", err)
		default:
		}
		unlock()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("create: %v", err)
			}
		}
		users, items := countOfSite(t, st, "scim_users", site.ID, ""), countOfSite(t, st, "outbox", site.ID, "")
		if users != n || items != n {
			t.Fatalf("%d users and %d outbox items stored, want %d of each", users, items, n)
		}
	})
}

// A create's wait for its batch is bounded like a slot's work
// (WorkTimeout), however many creates queue behind a write lock another
// process holds: each SQLite batch (at most 16 creates) waits its busy
// timeout for the lock, and without the bound the 100th create waited for
// every batch before it in turn. Those past the bound are answered 503; a
// create its caller gave up on may still be written, always with its
// outbox item.
func TestCreatesWaitingForALockedWriterAreBounded(t *testing.T) {
	t.Parallel()
	b := storetest.Backends(t)[0] // SQLite: PostgreSQL bounds each statement itself
	st := b.Open(t, storetest.WithStoreOptions(func(o *store.Options) { o.StatementTimeout = 250 * time.Millisecond }))
	ctx := context.Background()
	svc := NewService(ServiceConfig{Capacity: CapacityConfig{SiteRequests: 200, Wait: 5 * time.Second}}, st, nil, nil)
	site := installSite(t, st)
	unlock := holdUsersWriteLock(t, st, site.ID)
	defer unlock()
	const n = 100
	bound := st.WorkTimeout() + time.Second // the work's deadline, and room for a busy machine
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	var refused int
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			_, err := svc.Create(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Users,
				Body: fmt.Appendf(nil, `{"userName":"queued%d@example.com"}`, i)})
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			slowest = max(slowest, took)
			switch models.ErrorCode(err) {
			case "":
			case models.CodeUnavailable:
				refused++
			default:
				t.Errorf("create %d: %v, want created or unavailable", i, err)
			}
		})
	}
	wg.Wait()
	unlock()
	if slowest > bound {
		t.Fatalf("the slowest of %d creates queued behind a held write lock took %s, more than %s", n, slowest, bound)
	}
	if refused == 0 {
		t.Fatal("no create was refused while the write lock was held")
	}
	// Whatever was written has its outbox item.
	users, items := countOfSite(t, st, "scim_users", site.ID, ""), countOfSite(t, st, "outbox", site.ID, "resource_type = 'User'")
	if users != items {
		t.Fatalf("%d users stored, %d outbox items", users, items)
	}
}

// holdUsersWriteLock takes, on a connection of its own, the lock that user
// creates wait for while reads go on: SQLite's write lock (BEGIN IMMEDIATE
// and a write), PostgreSQL's SHARE ROW EXCLUSIVE lock of scim_users. The
// returned release may be called more than once.
func holdUsersWriteLock(t *testing.T, st *store.Store, siteID string) (release func()) {
	t.Helper()
	ctx := context.Background()
	lock, err := st.SQLDB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dialect() == store.Postgres {
		_, err = lock.ExecContext(ctx, `LOCK TABLE scim_users IN SHARE ROW EXCLUSIVE MODE`)
	} else {
		_, err = lock.ExecContext(ctx, `UPDATE sites SET updated_at = updated_at WHERE id = ?`, siteID)
	}
	if err != nil {
		_ = lock.Rollback()
		t.Fatal(err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := lock.Rollback(); err != nil {
				t.Error(err)
			}
		})
	}
}

// countOfSite counts the site's rows of table, with where as a further
// condition when it is not empty.
func countOfSite(t *testing.T, st *store.Store, table, siteID, where string) (n int) {
	t.Helper()
	q := `SELECT count(*) FROM ` + table + ` WHERE site_id = ?`
	if where != "" {
		q += ` AND ` + where
	}
	if st.Dialect() == store.Postgres {
		q = strings.Replace(q, "?", "$1", 1)
	}
	if err := st.SQLDB().QueryRowContext(context.Background(), q, siteID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
