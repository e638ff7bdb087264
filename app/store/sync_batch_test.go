package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// The sync records a group claim's membership changes together: users
// locked and read in one statement, memberships written in one.
func TestSyncMembershipsRecordedTogether(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t, storetest.WithNow(storetest.NewClock(epoch).Now))
		site := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		ctx := context.Background()

		// 600 users: more than one chunk of the lock and of the writes.
		var users []string
		joined := map[string]string{}
		err := st.InTx(ctx, func(tx *store.Tx) error {
			for i := range 600 {
				u := fmt.Sprintf("u%03d", i)
				users = append(users, u)
				joined[u] = "acc-" + u
				if err := tx.SaveSyncUser(&models.SyncUser{SiteID: site.ID, UserID: u, AccountID: "acc-" + u, State: models.SyncUserActive}); err != nil {
					return err
				}
			}
			// The other site's user of the same ID stays out of it.
			if err := tx.SaveSyncUser(&models.SyncUser{SiteID: other.ID, UserID: "u000", AccountID: "other", State: models.SyncUserActive}); err != nil {
				return err
			}
			return tx.SetSyncMember(site.ID, "g1", "u000", "old-account", true)
		})
		if err != nil {
			t.Fatal(err)
		}

		var locked map[string]models.SyncUser
		err = st.InTx(ctx, func(tx *store.Tx) error {
			var err error
			// Duplicates and a user without an Atlassian side are fine.
			locked, err = tx.LockSyncUsers(site.ID, append([]string{"nobody", "u001"}, users...))
			if err != nil {
				return err
			}
			return tx.SetSyncMembers(site.ID, "g1", joined, nil)
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]any{"users": 600, "u000's account": "acc-u000"},
			map[string]any{"users": len(locked), "u000's account": locked["u000"].AccountID}); diff != "" {
			t.Fatalf("LockSyncUsers read (-want +got):\n%s", diff)
		}
		got, err := st.View(ctx).SyncMembers(site.ID, "g1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(joined, got); diff != "" {
			t.Fatalf("memberships after the batch (-want +got):\n%s", diff)
		}

		err = st.InTx(ctx, func(tx *store.Tx) error {
			return tx.SetSyncMembers(site.ID, "g1", map[string]string{"u000": "acc-new"}, users[1:599])
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err = st.View(ctx).SyncMembers(site.ID, "g1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{"u000": "acc-new", "u599": "acc-u599"}, got); diff != "" {
			t.Fatalf("memberships after removals (-want +got):\n%s", diff)
		}
	})
}

// Refresh items name their groups: the directory's name first, else the
// one recorded for the site, else nothing.
func TestSyncGroupNames(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		site := install(t, st, newSite(1))
		ctx := context.Background()
		dir := &models.DirectoryGroup{SiteID: site.ID, DisplayName: "Engineering", Doc: []byte(`{}`)}
		err := st.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.CreateDirectoryGroup(dir); err != nil {
				return err
			}
			if err := tx.SaveSyncGroup(&models.SyncGroup{SiteID: site.ID, GroupID: dir.ID, AtlassianID: "a1", Name: "engineering (old)"}); err != nil {
				return err
			}
			return tx.SaveSyncGroup(&models.SyncGroup{SiteID: site.ID, GroupID: "g-deleted", AtlassianID: "a2", Name: "Sales"})
		})
		if err != nil {
			t.Fatal(err)
		}
		var names map[string]string
		err = st.InTx(ctx, func(tx *store.Tx) error {
			var err error
			names, err = tx.SyncGroupNames(site.ID, []string{dir.ID, "g-deleted", "g-unknown"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{dir.ID: "Engineering", "g-deleted": "Sales", "g-unknown": ""}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Fatalf("group names (-want +got):\n%s", diff)
		}
	})
}

// A site is drained when no item is pending or held: the benchmark's
// check, which must stay cheap on a large outbox.
func TestSyncDrained(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		site := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		ctx := context.Background()
		drained := func(want bool, when string) {
			t.Helper()
			got, err := st.View(ctx).SyncDrained(site.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("%s: drained = %v, want %v", when, got, want)
			}
		}
		drained(true, "empty outbox")
		err := st.InTx(ctx, func(tx *store.Tx) error {
			return tx.AddOutboxItems(
				&models.OutboxItem{SiteID: site.ID, ResourceType: "User", ResourceID: "u1", Op: models.OutboxUserCreated, Payload: []byte(`{}`)},
				&models.OutboxItem{SiteID: other.ID, ResourceType: "User", ResourceID: "u1", Op: models.OutboxUserCreated, Payload: []byte(`{}`)})
		})
		if err != nil {
			t.Fatal(err)
		}
		drained(false, "one pending item")
		finish := func(status string) {
			t.Helper()
			c, _, err := st.ClaimSyncSubject(ctx, site.ID, "w1", time.Minute)
			if err != nil || c == nil {
				t.Fatalf("claim: %v, %v", c, err)
			}
			err = st.InTx(ctx, func(tx *store.Tx) error {
				_, err := tx.FinishSyncItems(site.ID, "w1", []store.SyncResult{{ID: c.Items[0].ID, Status: status}})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		finish(models.OutboxStatusHeld)
		drained(false, "one held item")
		err = st.InTx(ctx, func(tx *store.Tx) error { _, err := tx.ApplyHeldSync(site.ID); return err })
		if err != nil {
			t.Fatal(err)
		}
		drained(false, "the held item released")
		finish(models.OutboxStatusApplied)
		drained(true, "the item applied (the other site's pending item does not count)")
	})
}

// InTxLazyCommit relaxes the commit of its own transaction only: the
// connection goes back to the pool with PostgreSQL's default.
func TestInTxLazyCommitIsLocal(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t, storetest.WithStoreOptions(func(o *store.Options) { o.MaxOpenConns = 2 }))
		site := install(t, st, newSite(1))
		ctx := context.Background()
		setting := func(tx *store.Tx) string {
			if st.Dialect() != store.Postgres {
				return "n/a"
			}
			var v string
			if err := store.TxQueryRowRaw(tx, `SHOW synchronous_commit`, &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		var inside, after string
		err := st.InTxLazyCommit(ctx, func(tx *store.Tx) error {
			inside = setting(tx)
			return tx.SaveSyncGroup(&models.SyncGroup{SiteID: site.ID, GroupID: "g1", AtlassianID: "a1", Name: "One"})
		})
		if err != nil {
			t.Fatal(err)
		}
		// Both connections of the pool, whichever served the lazy one
		// (SQLite has one writer at a time, and no such setting).
		if st.Dialect() == store.Postgres {
			err = st.InTx(ctx, func(a *store.Tx) error {
				return st.InTx(ctx, func(b *store.Tx) error { after = setting(a) + "," + setting(b); return nil })
			})
		} else {
			after = "n/a,n/a"
		}
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"inside": "off", "after": "on,on"}
		if st.Dialect() != store.Postgres {
			want = map[string]string{"inside": "n/a", "after": "n/a,n/a"}
		}
		if diff := cmp.Diff(want, map[string]string{"inside": inside, "after": after}); diff != "" {
			t.Fatalf("synchronous_commit (-want +got):\n%s", diff)
		}
		if _, err := st.View(ctx).FindSyncGroup(site.ID, "g1"); err != nil {
			t.Fatalf("the lazily committed write is not there: %v", err)
		}
	})
}
