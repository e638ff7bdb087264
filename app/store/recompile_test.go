package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// SQLite compiles a statement again whenever a value bound to its LIMIT
// changes, as it plans with the value (SQLite 3.54 as ncruces builds it):
// a cached statement with `LIMIT ?` was compiled on every run, 100 µs of
// the 280 µs a SCIM filter GET cost (docs/PERFORMANCE.md). The hot
// statements that take a limit run compiled once, whatever it is.
func TestSQLiteHotStatementsAreCompiledOnce(t *testing.T) {
	t.Parallel()
	b := storetest.Backends(t)[0]
	if b.Name != store.SQLite {
		t.Fatalf("first backend %s, want SQLite", b.Name)
	}
	st := b.Open(t)
	site := install(t, st, newSite(1))
	ctx := context.Background()
	err := st.InTx(ctx, func(tx *store.Tx) error {
		for i := range 20 {
			name := fmt.Sprintf("user%02d@example.com", i)
			if err := tx.CreateDirectoryUser(&models.DirectoryUser{SiteID: site.ID, UserName: name, Email: name, Active: true, Doc: []byte(`{}`)}); err != nil {
				return err
			}
			if err := tx.CreateDirectoryGroup(&models.DirectoryGroup{SiteID: site.ID, DisplayName: fmt.Sprintf("group %02d", i), Doc: []byte(`{}`)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	addGroupItems(t, st, site.ID, "g1", 30)
	recompiles := store.CountSQLiteRecompiles(t, st)
	for i := range 30 {
		err := st.InTx(ctx, func(tx *store.Tx) error {
			name := fmt.Sprintf("user%02d@example.com", i%20)
			// A new limit and offset each time, as paging does.
			users, _, err := tx.ListDirectoryUsers(site.ID, store.DirectoryQuery{Where: "user_name_lower = ?", Args: []any{name}, Limit: 10 + i, Offset: i % 3, WithGroups: i%2 == 0})
			if err != nil {
				return err
			}
			if want := map[bool]int{true: 1}[i%3 == 0]; len(users) != want {
				return fmt.Errorf("%s at offset %d: %d users, want %d", name, i%3, len(users), want)
			}
			if _, _, err := tx.ListDirectoryGroups(site.ID, store.DirectoryQuery{Limit: 5 + i, Offset: i}); err != nil {
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The claim reads the items behind its head with a limit too.
		c, _, err := st.ClaimSyncSubject(ctx, site.ID, fmt.Sprintf("w%d", i), time.Minute)
		if err != nil || c == nil {
			t.Fatalf("claim %d: %v, %v", i, c, err)
		}
		finishClaim(t, st, c, c.Owner, func(it store.SyncItem) store.SyncResult {
			if it.ID == c.Head {
				return store.SyncResult{ID: it.ID, Status: models.OutboxStatusApplied}
			}
			return store.SyncResult{ID: it.ID, Status: models.OutboxStatusPending, NextAttemptAt: epoch}
		})
	}
	seen := 0
	for q, n := range recompiles() {
		if !strings.Contains(q, "FROM scim_users") && !strings.Contains(q, "FROM scim_groups") && !strings.Contains(q, "resource_id = ? AND id > ?") {
			continue
		}
		seen++
		if n > 1 {
			t.Errorf("compiled again %d times in 30 runs: %.120s…", n, q)
		}
	}
	if seen < 3 {
		t.Fatalf("saw %d of the statements, want the users' list, the groups' list and the claim's", seen)
	}
}
