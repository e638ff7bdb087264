package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

func createItem() *models.OutboxItem {
	return &models.OutboxItem{ResourceType: "User", Op: models.OutboxUserCreated, Payload: []byte(`{"k":1}`)}
}

func createUser(tb testing.TB, st *store.Store, u *models.DirectoryUser) *models.DirectoryUser {
	tb.Helper()
	if err := st.CreateDirectoryUserWithOutbox(context.Background(), u, createItem()); err != nil {
		tb.Fatalf("create %s: %v", u.UserName, err)
	}
	return u
}

// listInTx answers a key lookup the ordinary way: inside a transaction,
// where nothing is coalesced.
func listInTx(tb testing.TB, st *store.Store, siteID string, q store.DirectoryQuery) []models.DirectoryUser {
	tb.Helper()
	var users []models.DirectoryUser
	inTx(tb, st, func(tx *store.Tx) error {
		var err error
		users, _, err = tx.ListDirectoryUsers(siteID, q)
		return err
	})
	return users
}

func byName(name string, groups bool) store.DirectoryQuery {
	return store.DirectoryQuery{Where: "user_name_lower = ?", Args: []any{name}, Limit: 1, WithGroups: groups,
		Key: &store.DirectoryKey{Column: store.KeyUserName, Value: name}}
}

// One batched lookup statement answers each request with exactly what the
// ordinary query answers: its own site only, groups only when asked for,
// nothing for a missing key, duplicates each on their own.
func TestBatchedUserLookup(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		if b.Name != store.Postgres {
			t.Skip("lookups are coalesced on PostgreSQL only")
		}
		st := b.Open(t)
		ctx := context.Background()
		a := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		aliceA := createUser(t, st, newDirectoryUser(a.ID, "Alice@Example.com"))
		bob := createUser(t, st, newDirectoryUser(a.ID, "bob"))
		aliceB := createUser(t, st, newDirectoryUser(other.ID, "alice@example.com"))
		g := &models.DirectoryGroup{SiteID: a.ID, DisplayName: "Admins", Doc: []byte(`{}`)}
		inTx(t, st, func(tx *store.Tx) error {
			if err := tx.CreateDirectoryGroup(g); err != nil {
				return err
			}
			_, err := tx.AddGroupMembers(a.ID, g.ID, []string{aliceA.ID})
			return err
		})

		reqs := []store.LookupRequest{
			{SiteID: a.ID, Value: "alice@example.com", Groups: true},
			{SiteID: other.ID, Value: "alice@example.com", Groups: true},
			{SiteID: a.ID, Value: "nobody"},
			{SiteID: a.ID, Value: "bob", Groups: true},
			{SiteID: a.ID, Value: "alice@example.com"},
			{SiteID: other.ID, Value: "bob"},
		}
		want := []*models.DirectoryUser{aliceA, aliceB, nil, bob, aliceA, nil}
		users, errs := store.RunLookupBatch(ctx, st, store.KeyUserName, reqs)
		for i, r := range reqs {
			if errs[i] != nil {
				t.Fatalf("request %d: %v", i, errs[i])
			}
			if want[i] == nil {
				if users[i] != nil {
					t.Errorf("request %d (%s in %s) found %s", i, r.Value, r.SiteID, users[i].ID)
				}
				continue
			}
			if users[i] == nil || users[i].ID != want[i].ID {
				t.Fatalf("request %d (%s in %s) found %+v, want %s", i, r.Value, r.SiteID, users[i], want[i].ID)
			}
			ordinary := listInTx(t, st, r.SiteID, byName(r.Value, r.Groups))
			if len(ordinary) != 1 || !reflect.DeepEqual(*users[i], ordinary[0]) {
				t.Errorf("request %d: batched %+v, ordinary %+v", i, *users[i], ordinary)
			}
		}
		if d := cmp.Diff([]models.DirectoryGroupRef{{ID: g.ID, DisplayName: "Admins"}}, users[0].Groups); d != "" {
			t.Errorf("alice's groups (-want +got):\n%s", d)
		}
		if users[4].Groups != nil {
			t.Errorf("groups filled for a request that did not ask: %+v", users[4].Groups)
		}

		// A value the database refuses fails its own request only.
		users, errs = store.RunLookupBatch(ctx, st, store.KeyUserName, []store.LookupRequest{
			{SiteID: a.ID, Value: "bob"}, {SiteID: a.ID, Value: "a\x00b"}, {SiteID: other.ID, Value: "alice@example.com"},
		})
		if d := cmp.Diff([]string{bob.ID, "error", aliceB.ID}, batchAnswers(users, errs)); d != "" {
			t.Fatalf("a batch with a bad value, each request's answer (-want +got):\n%s", d)
		}

		users, errs = store.RunLookupBatch(ctx, st, store.KeyID, []store.LookupRequest{
			{SiteID: a.ID, Value: aliceA.ID}, {SiteID: other.ID, Value: aliceA.ID}, {SiteID: other.ID, Value: aliceB.ID},
		})
		if d := cmp.Diff([]string{aliceA.ID, "none", aliceB.ID}, batchAnswers(users, errs)); d != "" {
			t.Fatalf("by id, each request's answer (-want +got):\n%s", d)
		}
	})
}

// One batched create statement creates each user with its outbox item, in
// order; a userName taken before or earlier in the same batch is a
// conflict with nothing written; and a batch that fails as a whole is
// retried one by one, so that only the create at fault fails.
func TestBatchedUserCreate(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		if b.Name != store.Postgres {
			t.Skip("creates are coalesced on PostgreSQL only")
		}
		st := b.Open(t)
		ctx := context.Background()
		a := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		createUser(t, st, newDirectoryUser(a.ID, "bob"))
		users := []*models.DirectoryUser{
			newDirectoryUser(a.ID, "carol"),
			newDirectoryUser(a.ID, "CAROL"), // taken earlier in the batch
			newDirectoryUser(a.ID, "dave"),
			newDirectoryUser(other.ID, "carol"), // another site: fine
			newDirectoryUser(a.ID, "Bob"),       // taken before
		}
		users[2].ExternalID, users[2].DisplayName, users[2].Active = "ext-dave", "", false
		items := make([]*models.OutboxItem, len(users))
		for i := range items {
			items[i] = createItem()
			items[i].Payload = fmt.Appendf(nil, `{"n":%d}`, i)
		}
		errs := store.RunCreateBatch(ctx, st, users, items)
		for i, wantConflict := range []bool{false, true, false, false, true} {
			if wantConflict {
				wantCode(t, errs[i], models.CodeConflict)
				if n := count(t, st, `SELECT count(*) FROM scim_users WHERE id = ?`, users[i].ID); n != 0 {
					t.Errorf("conflicting user %d was written", i)
				}
				if n := count(t, st, `SELECT count(*) FROM outbox WHERE resource_id = ?`, users[i].ID); n != 0 {
					t.Errorf("conflicting user %d has an outbox item", i)
				}
				continue
			}
			if errs[i] != nil {
				t.Fatalf("create %d: %v", i, errs[i])
			}
			got := listInTx(t, st, users[i].SiteID, byName(store.LowerUserName(users[i].UserName), false))
			if len(got) != 1 || got[0].ID != users[i].ID || got[0].ExternalID != users[i].ExternalID ||
				got[0].DisplayName != users[i].DisplayName || got[0].Active != users[i].Active ||
				got[0].Version != 1 || !got[0].CreatedAt.Equal(users[i].CreatedAt) || string(got[0].Doc) != string(users[i].Doc) {
				t.Errorf("create %d stored %+v, want %+v", i, got, users[i])
			}
		}
		// The outbox holds the three creates in batch order, each with its
		// own payload.
		outboxOf := func(site string) []models.OutboxItem {
			var got []models.OutboxItem
			inTx(t, st, func(tx *store.Tx) error {
				var err error
				got, err = tx.FindOutboxItems(site, 0, 100)
				return err
			})
			return got
		}
		inA := outboxOf(a.ID)
		if len(inA) != 3 {
			t.Fatalf("site A's outbox: %+v", inA)
		}
		outbox := append(inA[1:], outboxOf(other.ID)...) // after bob's
		if len(outbox) != 3 {
			t.Fatalf("outbox: %+v", outbox)
		}
		for k, i := range []int{0, 2, 3} {
			it := outbox[k]
			if d := cmp.Diff(map[string]any{"resourceId": users[i].ID, "payload": fmt.Sprintf(`{"n":%d}`, i), "op": models.OutboxUserCreated,
				"resourceType": "User", "status": models.OutboxStatusPending, "createdAt": users[i].CreatedAt},
				map[string]any{"resourceId": it.ResourceID, "payload": string(it.Payload), "op": it.Op,
					"resourceType": it.ResourceType, "status": it.Status, "createdAt": it.CreatedAt}); d != "" {
				t.Errorf("outbox item %d (-want +got):\n%s", k, d)
			}
		}
		if outbox[0].ID >= outbox[1].ID {
			t.Errorf("outbox items out of batch order: %d, %d", outbox[0].ID, outbox[1].ID)
		}

		// A user of a site that does not exist fails the batch statement:
		// retried one by one, only that create fails.
		users = []*models.DirectoryUser{newDirectoryUser(a.ID, "frank"), newDirectoryUser("s_gone", "grace"), newDirectoryUser(a.ID, "heidi")}
		errs = store.RunCreateBatch(ctx, st, users, []*models.OutboxItem{createItem(), createItem(), createItem()})
		if errs[0] != nil || errs[2] != nil {
			t.Fatalf("the good creates of a failed batch: %v, %v", errs[0], errs[2])
		}
		wantCode(t, errs[1], models.CodeInvalid)
		if n := count(t, st, `SELECT count(*) FROM scim_users WHERE user_name_lower IN ('frank', 'heidi')`); n != 2 {
			t.Errorf("%d of the good creates stored", n)
		}

		// A create whose caller left before its batch started is not
		// written; the others are.
		gone, cancel := context.WithCancel(ctx)
		cancel()
		users = []*models.DirectoryUser{newDirectoryUser(a.ID, "ivan"), newDirectoryUser(a.ID, "judy"), newDirectoryUser(a.ID, "mallory")}
		errs = store.RunCreateBatch(ctx, st, users, []*models.OutboxItem{createItem(), createItem(), createItem()}, ctx, gone, ctx)
		if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], context.Canceled) {
			t.Fatalf("a batch with an abandoned create: %v", errs)
		}
		if n := count(t, st, `SELECT count(*) FROM scim_users WHERE user_name_lower IN ('ivan', 'judy', 'mallory')`); n != 2 {
			t.Errorf("%d of the batch stored, want the 2 whose callers waited", n)
		}
		if n := count(t, st, `SELECT count(*) FROM outbox WHERE resource_id = ?`, users[1].ID); n != 0 {
			t.Errorf("the abandoned create has an outbox item")
		}
	})
}

// Through the public API, under concurrency (so that on PostgreSQL
// requests do share statements): every lookup sees its own user, and of
// many creates of one userName exactly one succeeds.
func TestCoalescedPathsUnderLoad(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		sites := []*models.Site{install(t, st, newSite(1)), install(t, st, newSite(2))}
		const workers, each = 8, 12
		var wg sync.WaitGroup
		fail := make(chan string, workers*each*2)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					site := sites[(w+i)%2].ID
					name := fmt.Sprintf("w%d-u%d@example.com", w, i)
					u := newDirectoryUser(site, name)
					if err := st.CreateDirectoryUserWithOutbox(ctx, u, createItem()); err != nil {
						fail <- fmt.Sprintf("create %s: %v", name, err)
						return
					}
					got, total, err := st.View(ctx).ListDirectoryUsers(site, byName(name, true))
					if err != nil || total != 1 || len(got) != 1 || got[0].ID != u.ID {
						fail <- fmt.Sprintf("lookup %s: %v, %d, %v", name, got, total, err)
					}
					q := store.DirectoryQuery{Where: "id = ?", Args: []any{u.ID}, Limit: 1, Key: &store.DirectoryKey{Column: store.KeyID, Value: u.ID}}
					if got, _, err := st.View(ctx).ListDirectoryUsers(sites[(w+i+1)%2].ID, q); err != nil || len(got) != 0 {
						fail <- fmt.Sprintf("the other site sees %s: %v, %v", name, got, err)
					}
				}
			}()
		}
		var won, lost int
		var mu sync.Mutex
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := st.CreateDirectoryUserWithOutbox(ctx, newDirectoryUser(sites[0].ID, "Contended"), createItem())
				mu.Lock()
				defer mu.Unlock()
				var me *models.Error
				switch {
				case err == nil:
					won++
				case errors.As(err, &me) && me.Code == models.CodeConflict:
					lost++
				default:
					fail <- fmt.Sprintf("contended create: %v", err)
				}
			}()
		}
		wg.Wait()
		close(fail)
		for f := range fail {
			t.Error(f)
		}
		if d := cmp.Diff(map[string]int{"won": 1, "lost": workers - 1}, map[string]int{"won": won, "lost": lost}); d != "" {
			t.Errorf("contended creates (-want +got):\n%s", d)
		}
		if n := count(t, st, `SELECT count(*) FROM outbox`); n != workers*each+1 {
			t.Errorf("%d outbox items, want %d", n, workers*each+1)
		}
	})
}

// The outbox backlog counts pending items over all sites and dates the
// oldest; applied items leave it.
func TestOutboxBacklog(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		clock := storetest.NewClock(start)
		st := b.Open(t, storetest.WithNow(clock.Now))
		ctx := context.Background()
		if got, err := st.OutboxBacklog(ctx); err != nil || got != (store.OutboxBacklog{}) {
			t.Fatalf("empty outbox: %+v, %v", got, err)
		}
		a := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		first := createUser(t, st, newDirectoryUser(a.ID, "first"))
		clock.Advance(time.Minute)
		createUser(t, st, newDirectoryUser(other.ID, "second"))
		createUser(t, st, newDirectoryUser(a.ID, "third"))
		got, err := st.OutboxBacklog(ctx)
		if err != nil || got.Pending != 3 || !got.Oldest.Equal(start) {
			t.Fatalf("backlog: %+v, %v; want 3 pending since %s", got, err, start)
		}
		execRaw(t, st, `UPDATE outbox SET status = 'applied' WHERE resource_id = ?`, first.ID)
		got, err = st.OutboxBacklog(ctx)
		if err != nil || got.Pending != 2 || !got.Oldest.Equal(start.Add(time.Minute)) {
			t.Fatalf("after one is applied: %+v, %v", got, err)
		}
	})
}

// batchAnswers is each lookup request's answer, to compare as a list: the
// user's ID, "none" when nothing matched, or "error".
func batchAnswers(users []*models.DirectoryUser, errs []error) []string {
	out := make([]string, len(users))
	for i, u := range users {
		switch {
		case i < len(errs) && errs[i] != nil:
			out[i] = "error"
		case u == nil:
			out[i] = "none"
		default:
			out[i] = u.ID
		}
	}
	return out
}
