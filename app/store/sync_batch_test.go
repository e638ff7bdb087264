package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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
		want := map[string]models.SyncMember{}
		for u, a := range joined {
			want[u] = models.SyncMember{AccountID: a}
		}
		if diff := cmp.Diff(want, got); diff != "" {
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
		if diff := cmp.Diff(map[string]models.SyncMember{"u000": {AccountID: "acc-new"}, "u599": {AccountID: "acc-u599"}}, got); diff != "" {
			t.Fatalf("memberships after removals (-want +got):\n%s", diff)
		}
	})
}

// A group claim records the memberships it is about to add as being added
// (one statement for many), before the calls; recording them as applied
// confirms them; a user's groups include those being added.
func TestSyncMembershipsBeingAdded(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t, storetest.WithNow(storetest.NewClock(epoch).Now))
		site := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		ctx := context.Background()
		do := func(fn func(tx *store.Tx) error) {
			t.Helper()
			if err := st.InTx(ctx, fn); err != nil {
				t.Fatal(err)
			}
		}
		members := func(group string) map[string]models.SyncMember {
			t.Helper()
			got, err := st.View(ctx).SyncMembers(site.ID, group, nil)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}

		// 250 users: more than one statement's worth.
		adding := map[string]string{}
		want := map[string]models.SyncMember{}
		for i := range 250 {
			u := fmt.Sprintf("u%03d", i)
			adding[u] = "acc-" + u
			want[u] = models.SyncMember{AccountID: "acc-" + u, Adding: true}
		}
		do(func(tx *store.Tx) error {
			if err := tx.SetSyncMember(site.ID, "g1", "applied", "acc-applied", true); err != nil {
				return err
			}
			return tx.SetSyncMember(other.ID, "g1", "u000", "other", true)
		})
		// A membership recorded as applied stays so.
		adding["applied"] = "acc-other"
		want["applied"] = models.SyncMember{AccountID: "acc-applied"}
		do(func(tx *store.Tx) error { return tx.SetSyncMembersAdding(site.ID, "g1", adding) })
		if diff := cmp.Diff(want, members("g1")); diff != "" {
			t.Fatalf("memberships being added (-want +got):\n%s", diff)
		}

		// Being added again, with another account: the new one.
		do(func(tx *store.Tx) error {
			return tx.SetSyncMembersAdding(site.ID, "g1", map[string]string{"u001": "acc-new"})
		})
		// Applied (confirmed), and not added after all (removed).
		do(func(tx *store.Tx) error {
			return tx.SetSyncMembers(site.ID, "g1", map[string]string{"u000": "acc-u000"}, []string{"u002"})
		})
		do(func(tx *store.Tx) error { return tx.SetSyncMember(site.ID, "g1", "u003", "acc-u003", true) })
		got := map[string]models.SyncMember{}
		for u, m := range members("g1") {
			if u <= "u004" {
				got[u] = m
			}
		}
		if diff := cmp.Diff(map[string]models.SyncMember{
			"u000": {AccountID: "acc-u000"}, "u001": {AccountID: "acc-new", Adding: true},
			"u003": {AccountID: "acc-u003"}, "u004": {AccountID: "acc-u004", Adding: true},
			"applied": {AccountID: "acc-applied"},
		}, got); diff != "" {
			t.Fatalf("memberships after confirming and removing (-want +got):\n%s", diff)
		}

		// A user's groups include those it is being added to.
		do(func(tx *store.Tx) error {
			return tx.SetSyncMembersAdding(site.ID, "g2", map[string]string{"u004": "acc-u004"})
		})
		var groups []string
		do(func(tx *store.Tx) error {
			var err error
			groups, err = tx.SyncGroupsOfUser(site.ID, "u004")
			return err
		})
		if diff := cmp.Diff([]string{"g1", "g2"}, groups); diff != "" {
			t.Fatalf("u004's groups (-want +got):\n%s", diff)
		}
		// The other site's membership of the same IDs was left alone.
		if got, err := st.View(ctx).SyncMembers(other.ID, "g1", nil); err != nil || !cmp.Equal(got, map[string]models.SyncMember{"u000": {AccountID: "other"}}) {
			t.Fatalf("the other site's memberships: %v, %v", got, err)
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
				_, err := tx.FinishSyncItems(c, "w1", []store.SyncResult{{ID: c.Items[0].ID, Status: status}})
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

// A claim leases only its subject's head: that one lease keeps every other
// worker off the subject, is renewed and released alone, and a lost lease
// means the outcome writes nothing.
func TestSyncClaimLeasesTheHead(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		ctx := context.Background()
		err := st.InTx(ctx, func(tx *store.Tx) error {
			var items []*models.OutboxItem
			for i := range 3 {
				items = append(items, &models.OutboxItem{SiteID: site.ID, ResourceType: "Group", ResourceID: "g1",
					Op: models.OutboxMembersAdded, Payload: []byte(fmt.Sprintf(`{"userIds":["u%d"]}`, i))})
			}
			items = append(items, &models.OutboxItem{SiteID: site.ID, ResourceType: "User", ResourceID: "u9", Op: models.OutboxUserCreated, Payload: []byte(`{}`)})
			return tx.AddOutboxItems(items...)
		})
		if err != nil {
			t.Fatal(err)
		}
		claim := func(owner string) *store.SyncClaim { t.Helper(); return claimSubject(t, st, site.ID, owner) }
		leases := func() map[int64]string {
			t.Helper()
			items, err := st.View(ctx).ListSyncItems(site.ID, 100)
			if err != nil {
				t.Fatal(err)
			}
			out := map[int64]string{}
			for _, it := range items {
				if it.LeaseOwner != "" {
					out[it.ID] = it.LeaseOwner
				}
			}
			return out
		}

		c1 := claim("w1")
		if c1 == nil || c1.ResourceID != "g1" || len(c1.Items) != 3 || c1.Head != c1.Items[0].ID || c1.Recover {
			t.Fatalf("first claim = %+v, want g1's three items, its head first, nothing to recover", c1)
		}
		if got, want := leases(), map[int64]string{c1.Head: "w1"}; !cmp.Equal(got, want) {
			t.Fatalf("leases after the claim = %v, want only the head's %v", got, want)
		}
		// Another worker gets the other subject, never g1's later items.
		c2 := claim("w2")
		if c2 == nil || c2.ResourceID != "u9" {
			t.Fatalf("second claim = %+v, want u9", c2)
		}
		if c := claim("w3"); c != nil {
			t.Fatalf("third claim took %s's items %v while both subjects are leased", c.ResourceID, c.IDs())
		}

		finish := func(c *store.SyncClaim, owner, status string) bool {
			t.Helper()
			return finishClaim(t, st, c, owner, func(it store.SyncItem) store.SyncResult {
				// As the worker does: a pending outcome of a claim that had
				// to look things up passes that on.
				return store.SyncResult{ID: it.ID, Status: status, NextAttemptAt: clock.Now().Add(time.Minute),
					CountAttempt: true, Recover: c.Recover && status == models.OutboxStatusPending}
			})
		}
		if finish(c2, "w2", models.OutboxStatusApplied) {
			t.Fatal("u9's outcome was lost")
		}

		// Renewal is the head's, and only for its holder.
		err = st.InTx(ctx, func(tx *store.Tx) error {
			if ok, err := tx.RenewSyncLease(c1, "w1", clock.Now().Add(2*time.Minute)); err != nil || !ok {
				return fmt.Errorf("renew by the holder: %v, %v", ok, err)
			}
			stranger := *c1
			if ok, err := tx.RenewSyncLease(&stranger, "w9", clock.Now().Add(time.Hour)); err != nil || ok {
				return fmt.Errorf("renew by another worker: %v, %v", ok, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// The lease runs out: another worker takes g1 over and must look
		// things up first; the first worker's outcome is then lost.
		clock.Advance(3 * time.Minute)
		c3 := claim("w3")
		if c3 == nil || c3.ResourceID != "g1" || c3.Head != c1.Head || !c3.Recover {
			t.Fatalf("claim after the lease ran out = %+v, want g1 taken over, to recover", c3)
		}
		if !finish(c1, "w1", models.OutboxStatusApplied) {
			t.Fatal("the first worker's outcome was recorded after its lease was taken over")
		}
		items, err := st.View(ctx).ListSyncItems(site.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.ResourceID == "g1" && it.Status != models.OutboxStatusPending {
				t.Fatalf("item %d is %s after a lost outcome, want pending", it.ID, it.Status)
			}
		}

		// The holder's retry writes every item's next attempt and frees
		// the subject; the next claim comes when it is due.
		if finish(c3, "w3", models.OutboxStatusPending) {
			t.Fatal("the holder's outcome was lost")
		}
		if got := leases(); len(got) != 0 {
			t.Fatalf("leases after the retry = %v, want none", got)
		}
		if c := claim("w4"); c != nil {
			t.Fatalf("claimed %s before its retry was due", c.ResourceID)
		}
		// Only the head carries the retry; the items behind it are deferred
		// past any claim's walk.
		next := func() map[int64]time.Time {
			t.Helper()
			items, err := st.View(ctx).ListSyncItems(site.ID, 100)
			if err != nil {
				t.Fatal(err)
			}
			out := map[int64]time.Time{}
			for _, it := range items {
				if it.Status == models.OutboxStatusPending {
					out[it.ID] = it.NextAttemptAt
				}
			}
			return out
		}
		ids := c3.IDs()
		far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
		if got, want := next(), map[int64]time.Time{ids[0]: clock.Now().Add(time.Minute), ids[1]: far, ids[2]: far}; !cmp.Equal(got, want) {
			t.Fatalf("next attempts after the retry = %v, want %v", got, want)
		}
		clock.Advance(time.Minute)
		c4 := claim("w4")
		if c4 == nil || c4.ResourceID != "g1" || len(c4.Items) != 3 || !c4.Recover || c4.Items[0].Attempts != 1 {
			t.Fatalf("claim after the retry = %+v, want g1's three items with one attempt, still to recover", c4)
		}
		// The head is applied, the rest waits: the first of the rest is the
		// new head, due when its retry says.
		err = st.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.FinishSyncItems(c4, "w4", []store.SyncResult{
				{ID: ids[0], Status: models.OutboxStatusApplied},
				{ID: ids[1], Status: models.OutboxStatusPending, NextAttemptAt: clock.Now().Add(time.Second)},
				{ID: ids[2], Status: models.OutboxStatusPending, NextAttemptAt: clock.Now().Add(time.Second)},
			})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := next(), map[int64]time.Time{ids[1]: clock.Now().Add(time.Second), ids[2]: far}; !cmp.Equal(got, want) {
			t.Fatalf("next attempts after a partial outcome = %v, want %v", got, want)
		}
		// Should the new head change outside a claim, the item deferred
		// behind it would never be claimed: the hourly safety net makes it due.
		if _, err := st.SQLDB().ExecContext(ctx, `UPDATE outbox SET status = 'failed' WHERE id = `+fmt.Sprint(ids[1])); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Hour)
		if c := claim("w5"); c != nil {
			t.Fatalf("claimed %v, a deferred item", c.IDs())
		}
		if n, err := st.UndeferSyncHeads(ctx, 10); err != nil || n != 1 {
			t.Fatalf("UndeferSyncHeads = %d, %v; want 1", n, err)
		}
		c5 := claim("w5")
		if c5 == nil || c5.Head != ids[2] || len(c5.Items) != 1 {
			t.Fatalf("claim after the safety net = %+v, want the last item", c5)
		}
		if n, err := st.UndeferSyncHeads(ctx, 10); err != nil || n != 0 {
			t.Fatalf("UndeferSyncHeads again = %d, %v; want 0", n, err)
		}
		if finish(c5, "w5", models.OutboxStatusApplied) {
			t.Fatal("the outcome was lost")
		}
		if got := leases(); len(got) != 0 {
			t.Fatalf("leases at the end = %v, want none", got)
		}
	})
}

// An older item of a subject in flight that becomes pending again (an
// admin's retry) must not start a second claim of the subject while the
// first holds the items behind it; once that claim is dead, the items are
// taken over, looked up first, and the dead claim's outcome is lost.
func TestSyncClaimStepsAsideForALiveLeaseBehind(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		for _, dead := range []bool{false, true} {
			clock := storetest.NewClock(epoch)
			st := b.Open(t, storetest.WithNow(clock.Now))
			site := install(t, st, newSite(1))
			ctx := context.Background()
			add := func(n int) { t.Helper(); addGroupItems(t, st, site.ID, "g1", n) }
			claim := func(owner string) *store.SyncClaim { t.Helper(); return claimSubject(t, st, site.ID, owner) }
			finish := func(c *store.SyncClaim, owner, status string) bool {
				t.Helper()
				return finishClaim(t, st, c, owner, func(it store.SyncItem) store.SyncResult {
					return store.SyncResult{ID: it.ID, Status: status}
				})
			}
			add(1)
			first := claim("w0")
			finish(first, "w0", models.OutboxStatusFailed)
			add(2)
			a := claim("a")
			if a == nil || len(a.Items) != 2 {
				t.Fatalf("claim of the later items = %+v", a)
			}
			if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.RetrySyncItem(site.ID, first.Head) }); err != nil {
				t.Fatal(err)
			}
			if dead {
				clock.Advance(2 * time.Minute)
				b := claim("b")
				if b == nil || b.Head != first.Head || len(b.Items) != 3 || !b.Recover {
					t.Fatalf("claim over a dead lease = %+v, want all three items, to look up first", b)
				}
				if !finish(a, "a", models.OutboxStatusApplied) {
					t.Fatal("the dead claim's outcome was recorded over the live one's")
				}
				if finish(b, "b", models.OutboxStatusApplied) {
					t.Fatal("the live claim's outcome was lost")
				}
				continue
			}
			if b := claim("b"); b != nil {
				t.Fatalf("a second claim of g1 while its later items are leased: %+v", b)
			}
			if finish(a, "a", models.OutboxStatusApplied) {
				t.Fatal("the first claim's outcome was lost")
			}
			if b := claim("b"); b != nil {
				t.Fatalf("the retried item was claimed before its step aside ended: %v", b.IDs())
			}
			clock.Advance(5 * time.Second)
			b := claim("b")
			if b == nil || b.Head != first.Head || len(b.Items) != 1 || b.Recover {
				t.Fatalf("claim of the retried item = %+v", b)
			}
			if finish(b, "b", models.OutboxStatusApplied) {
				t.Fatal("the outcome was lost")
			}
		}
	})
}

// A full claim that began before items an earlier claim deferred (an
// older item came back in front) makes the next of them due when it ends.
func TestSyncFullClaimWakesTheNextDeferredItem(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		ctx := context.Background()
		add := func(n int) { t.Helper(); addGroupItems(t, st, site.ID, "g1", n) }
		claim := func() *store.SyncClaim {
			t.Helper()
			c := claimSubject(t, st, site.ID, "w")
			if c == nil {
				t.Fatal("claim: nothing to claim")
			}
			return c
		}
		finish := func(c *store.SyncClaim, status string) {
			t.Helper()
			finishClaim(t, st, c, "w", func(it store.SyncItem) store.SyncResult {
				return store.SyncResult{ID: it.ID, Status: status, NextAttemptAt: clock.Now().Add(time.Second)}
			})
		}
		add(1)
		first := claim()
		finish(first, models.OutboxStatusFailed)
		add(store.MaxClaimItems + 1) // one more than a claim reads
		a := claim()
		finish(a, models.OutboxStatusPending) // all but a's head deferred
		if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.RetrySyncItem(site.ID, first.Head) }); err != nil {
			t.Fatal(err)
		}
		full := claim() // the retried item and the first 499 behind it
		if full.Head != first.Head || len(full.Items) != store.MaxClaimItems {
			t.Fatalf("full claim: head %d, %d items", full.Head, len(full.Items))
		}
		finish(full, models.OutboxStatusApplied)
		next := claim()
		if want := a.Items[len(a.Items)-1].ID; next.Head != want {
			t.Fatalf("next claim's head = %d, want %d (the last item a deferred)", next.Head, want)
		}
	})
}

// addGroupItems adds n members_refresh items of group to the site's outbox.
func addGroupItems(t *testing.T, st *store.Store, siteID, group string, n int) {
	t.Helper()
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		items := make([]*models.OutboxItem, 0, n)
		for range n {
			items = append(items, &models.OutboxItem{SiteID: siteID, ResourceType: "Group", ResourceID: group,
				Op: models.OutboxMembersRefresh, Payload: []byte(`{"userIds":["u1"]}`)})
		}
		return tx.AddOutboxItems(items...)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// claimSubject claims the site's next subject as owner, for a minute; nil
// when there is none.
func claimSubject(t *testing.T, st *store.Store, siteID, owner string) *store.SyncClaim {
	t.Helper()
	c, _, err := st.ClaimSyncSubject(context.Background(), siteID, owner, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// finishClaim records result(item) for each of the claim's items as owner
// and says whether the outcome was lost.
func finishClaim(t *testing.T, st *store.Store, c *store.SyncClaim, owner string, result func(store.SyncItem) store.SyncResult) bool {
	t.Helper()
	var lost bool
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		results := make([]store.SyncResult, 0, len(c.Items))
		for _, it := range c.Items {
			results = append(results, result(it))
		}
		var err error
		lost, err = tx.FinishSyncItems(c, owner, results)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return lost
}

// A worker that finds nothing to claim learns when the first lease runs
// out, and that question reads the few leased rows from outbox_leased, not
// the site's whole backlog, on both databases (without statistics, as
// with autovacuum off, and with PostgreSQL's generic plan).
func TestNextSyncDueReadsTheLeaseIndex(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		for g := range 20 {
			addGroupItems(t, st, site.ID, fmt.Sprintf("g%02d", g), 100)
		}
		addGroupItems(t, st, other.ID, "g00", 1)
		ctx := context.Background()
		// The other site's lease runs out first; it is not this site's.
		if _, _, err := st.ClaimSyncSubject(ctx, other.ID, "w-other", time.Second); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			clock.Advance(time.Second)
			if c, _, err := st.ClaimSyncSubject(ctx, site.ID, fmt.Sprintf("w%d", i), time.Minute); err != nil || c == nil {
				t.Fatalf("claim %d = %v, %v", i, c, err)
			}
		}
		c, next, err := st.ClaimSyncSubject(ctx, site.ID, "late", time.Minute)
		if err != nil || c != nil {
			t.Fatalf("claim with every subject leased = %v, %v; want none", c, err)
		}
		if want := epoch.Add(time.Second + time.Minute); !next.Equal(want) {
			t.Fatalf("next due = %v, want the first lease's end %v", next, want)
		}

		plans := map[string]string{}
		args := []any{site.ID, clock.Now()}
		if b.Name == store.Postgres {
			conn, err := st.SQLDB().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			q := store.NextLeaseSQL
			for i := 1; strings.Contains(q, "?"); i++ {
				q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
			}
			if _, err := conn.ExecContext(ctx, `PREPARE next_lease(text, timestamptz) AS `+q); err != nil {
				t.Fatal(err)
			}
			for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
				if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = `+mode); err != nil {
					t.Fatal(err)
				}
				plans[mode] = explainLines(t, conn, `EXPLAIN EXECUTE next_lease('`+site.ID+`', '`+clock.Now().Format(time.RFC3339Nano)+`')`)
			}
			_, _ = conn.ExecContext(ctx, `DEALLOCATE next_lease`)
			_, _ = conn.ExecContext(ctx, `RESET plan_cache_mode`)
		} else {
			var rows []struct {
				ID, Parent, Notused int
				Detail              string
			}
			if err := store.ScanRaw(ctx, st, &rows, `EXPLAIN QUERY PLAN `+store.NextLeaseSQL, args...); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, r := range rows {
				lines = append(lines, r.Detail)
			}
			plans["sqlite"] = strings.Join(lines, "\n")
		}
		for mode, plan := range plans {
			if !strings.Contains(plan, "outbox_leased") {
				t.Errorf("%s plan of the next lease does not read outbox_leased:\n%s", mode, plan)
			}
		}
	})
}

func explainLines(t *testing.T, conn *sql.Conn, q string) string {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
