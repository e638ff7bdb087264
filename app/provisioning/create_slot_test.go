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
		var site *models.Site
		if err := st.InTx(ctx, func(tx *store.Tx) error {
			var err error
			site, err = tx.SaveInstall(&models.Site{
				SiteFacts:    models.SiteFacts{ClientKey: "c", BaseURL: "https://a.atlassian.net"},
				SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
			})
			return err
		}); err != nil {
			t.Fatal(err)
		}

		// Another connection takes the write lock of the users' table.
		lock, err := st.SQLDB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		locked := true
		unlock := func() {
			if locked {
				locked = false
				if err := lock.Rollback(); err != nil {
					t.Error(err)
				}
			}
		}
		defer unlock()
		if st.Dialect() == store.Postgres {
			// Inserts wait; reads go on.
			_, err = lock.ExecContext(ctx, `LOCK TABLE scim_users IN SHARE ROW EXCLUSIVE MODE`)
		} else {
			// BEGIN IMMEDIATE took SQLite's only write lock; make sure.
			_, err = lock.ExecContext(ctx, `UPDATE sites SET updated_at = updated_at WHERE id = ?`, site.ID)
		}
		if err != nil {
			t.Fatal(err)
		}

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
		count := func(table string) (n int) {
			q := `SELECT count(*) FROM ` + table + ` WHERE site_id = ?`
			if st.Dialect() == store.Postgres {
				q = strings.Replace(q, "?", "$1", 1)
			}
			if err := st.SQLDB().QueryRowContext(ctx, q, site.ID).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		users, items := count("scim_users"), count("outbox")
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
	var site *models.Site
	if err := st.InTx(ctx, func(tx *store.Tx) error {
		var err error
		site, err = tx.SaveInstall(&models.Site{
			SiteFacts:    models.SiteFacts{ClientKey: "c", BaseURL: "https://a.atlassian.net"},
			SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	lock, err := st.SQLDB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(ctx, `UPDATE sites SET updated_at = updated_at WHERE id = ?`, site.ID); err != nil {
		t.Fatal(err)
	}
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
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	if slowest > bound {
		t.Fatalf("the slowest of %d creates queued behind a held write lock took %s, more than %s", n, slowest, bound)
	}
	if refused == 0 {
		t.Fatal("no create was refused while the write lock was held")
	}
	// Whatever was written has its outbox item.
	var users, items int
	if err := st.SQLDB().QueryRowContext(ctx, `SELECT count(*) FROM scim_users WHERE site_id = ?`, site.ID).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if err := st.SQLDB().QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE site_id = ? AND resource_type = 'User'`, site.ID).Scan(&items); err != nil {
		t.Fatal(err)
	}
	if users != items {
		t.Fatalf("%d users stored, %d outbox items", users, items)
	}
}
