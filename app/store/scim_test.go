package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

func newDirectoryUser(siteID, userName string) *models.DirectoryUser {
	return &models.DirectoryUser{
		SiteID: siteID, UserName: userName, DisplayName: "D " + userName, Email: userName + "@example.com",
		Active: true, Doc: []byte(`{"userName":"` + userName + `"}`),
	}
}

func inTx(tb testing.TB, st *store.Store, fn func(tx *store.Tx) error) {
	tb.Helper()
	if err := st.InTx(context.Background(), fn); err != nil {
		tb.Fatal(err)
	}
}

func TestDirectoryUsers(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		st := b.Open(t, storetest.WithNow(clock.Now))
		a := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		ctx := context.Background()

		var first *models.DirectoryUser
		inTx(t, st, func(tx *store.Tx) error {
			for i := range 5 {
				u := newDirectoryUser(a.ID, fmt.Sprintf("User%d", i))
				if err := tx.CreateDirectoryUser(u); err != nil {
					return err
				}
				if first == nil {
					first = u
				}
				clock.Advance(time.Second)
			}
			// The same userName in another site is fine.
			return tx.CreateDirectoryUser(newDirectoryUser(other.ID, "user0"))
		})
		// The same userName in another case is not.
		err := st.InTx(ctx, func(tx *store.Tx) error { return tx.CreateDirectoryUser(newDirectoryUser(a.ID, "USER0")) })
		wantCode(t, err, models.CodeConflict)

		got, err := st.View(ctx).FindDirectoryUser(a.ID, first.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]any{"userName": "User0", "email": "User0@example.com", "active": true, "version": int64(1), "createdAt": first.CreatedAt, "doc": string(first.Doc)},
			map[string]any{"userName": got.UserName, "email": got.Email, "active": got.Active, "version": got.Version, "createdAt": got.CreatedAt, "doc": string(got.Doc)}); d != "" {
			t.Errorf("found (-want +got):\n%s", d)
		}
		if _, err := st.View(ctx).FindDirectoryUser(other.ID, first.ID, false); !models.IsNotFound(err) {
			t.Errorf("another site finds the user: %v", err)
		}

		users, total, err := st.View(ctx).ListDirectoryUsers(a.ID, store.DirectoryQuery{Where: "user_name_lower = ?", Args: []any{"user3"}, Limit: 10})
		if err != nil {
			t.Fatalf("filter: %v", err)
		}
		if d := cmp.Diff(map[string]any{"total": 1, "userNames": []string{"User3"}}, map[string]any{"total": total, "userNames": userNames(users)}); d != "" {
			t.Fatalf("filter (-want +got):\n%s", d)
		}
		users, total, err = st.View(ctx).ListDirectoryUsers(a.ID, store.DirectoryQuery{Offset: 1, Limit: 2})
		if err != nil {
			t.Fatalf("page: %v", err)
		}
		if d := cmp.Diff(map[string]any{"total": 5, "userNames": []string{"User1", "User2"}}, map[string]any{"total": total, "userNames": userNames(users)}); d != "" {
			t.Fatalf("page (-want +got):\n%s", d)
		}
		users, total, err = st.View(ctx).ListDirectoryUsers(a.ID, store.DirectoryQuery{Offset: 10, Limit: 2})
		if err != nil {
			t.Fatalf("past the end: %v", err)
		}
		if d := cmp.Diff(map[string]any{"total": 5, "userNames": []string{}}, map[string]any{"total": total, "userNames": userNames(users)}); d != "" {
			t.Fatalf("past the end (-want +got):\n%s", d)
		}
		_, total, err = st.View(ctx).ListDirectoryUsers(a.ID, store.DirectoryQuery{Limit: 0})
		if err != nil || total != 5 {
			t.Fatalf("count only: %d, %v", total, err)
		}
		users, _, err = st.View(ctx).ListDirectoryUsers(a.ID, store.DirectoryQuery{OrderBy: "user_name_lower", Desc: true, Limit: 1})
		if err != nil || users[0].UserName != "User4" {
			t.Fatalf("sorted: %v, %v", users, err)
		}
		if _, _, err := st.View(ctx).ListDirectoryUsers(a.ID, store.DirectoryQuery{OrderBy: "doc; DROP TABLE x", Limit: 1}); err == nil {
			t.Fatal("sorting by an unknown column works")
		}

		first.Active = false
		first.UserName = "renamed"
		inTx(t, st, func(tx *store.Tx) error { return tx.UpdateDirectoryUser(first) })
		got, _ = st.View(ctx).FindDirectoryUser(a.ID, first.ID, false)
		if d := cmp.Diff(map[string]any{"active": false, "userName": "renamed", "version": int64(2)},
			map[string]any{"active": got.Active, "userName": got.UserName, "version": got.Version}); d != "" {
			t.Errorf("after update (-want +got):\n%s", d)
		}
		err = st.InTx(ctx, func(tx *store.Tx) error {
			u := *got
			u.UserName = "user1"
			return tx.UpdateDirectoryUser(&u)
		})
		wantCode(t, err, models.CodeConflict)
		inTx(t, st, func(tx *store.Tx) error { return tx.DeleteDirectoryUser(a.ID, first.ID) })
		err = st.InTx(ctx, func(tx *store.Tx) error { return tx.DeleteDirectoryUser(a.ID, first.ID) })
		wantCode(t, err, models.CodeNotFound)
	})
}

func TestDirectoryGroupsAndMembers(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		a := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		ctx := context.Background()
		var ids []string
		var foreign string
		g := &models.DirectoryGroup{SiteID: a.ID, DisplayName: "Admins", Doc: []byte(`{}`)}
		inTx(t, st, func(tx *store.Tx) error {
			for i := range 1500 {
				u := newDirectoryUser(a.ID, fmt.Sprintf("u%04d", i))
				if err := tx.CreateDirectoryUser(u); err != nil {
					return err
				}
				ids = append(ids, u.ID)
			}
			u := newDirectoryUser(other.ID, "x")
			if err := tx.CreateDirectoryUser(u); err != nil {
				return err
			}
			foreign = u.ID
			return tx.CreateDirectoryGroup(g)
		})
		err := st.InTx(ctx, func(tx *store.Tx) error {
			return tx.CreateDirectoryGroup(&models.DirectoryGroup{SiteID: a.ID, DisplayName: "ADMINS", Doc: []byte(`{}`)})
		})
		wantCode(t, err, models.CodeConflict)

		exist, err := st.View(ctx).ExistingDirectoryUsers(a.ID, []string{ids[0], foreign, "nope"})
		if err != nil || !exist[ids[0]] || exist[foreign] || len(exist) != 1 {
			t.Fatalf("ExistingDirectoryUsers: %v, %v", exist, err)
		}
		var added []string
		inTx(t, st, func(tx *store.Tx) error {
			var err error
			added, err = tx.AddGroupMembers(a.ID, g.ID, append(ids[:1200:1200], ids[0], foreign))
			return err
		})
		if len(added) != 1200 {
			t.Fatalf("added %d, want 1200", len(added))
		}
		inTx(t, st, func(tx *store.Tx) error {
			var err error
			added, err = tx.AddGroupMembers(a.ID, g.ID, ids[1100:1300])
			return err
		})
		if len(added) != 100 {
			t.Fatalf("added again %d, want the 100 new ones", len(added))
		}
		var removed []string
		inTx(t, st, func(tx *store.Tx) error {
			var err error
			removed, err = tx.RemoveGroupMembers(a.ID, g.ID, []string{ids[0], ids[1499]})
			return err
		})
		if !slices.Equal(removed, []string{ids[0]}) {
			t.Fatalf("removed %v", removed)
		}
		members, err := st.View(ctx).FindGroupMembers(a.ID, []string{g.ID})
		if err != nil || len(members[g.ID]) == 0 {
			t.Fatalf("members: %d, %v", len(members[g.ID]), err)
		}
		if d := cmp.Diff(map[string]any{"members": 1299, "first has a display": true},
			map[string]any{"members": len(members[g.ID]), "first has a display": members[g.ID][0].Display != ""}); d != "" {
			t.Fatalf("members (-want +got):\n%s", d)
		}
		groups, err := st.View(ctx).FindDirectoryUserGroups(a.ID, []string{ids[5]})
		if err != nil {
			t.Fatalf("groups of a user: %v", err)
		}
		var names []string
		for _, g := range groups[ids[5]] {
			names = append(names, g.DisplayName)
		}
		if d := cmp.Diff([]string{"Admins"}, names); d != "" {
			t.Fatalf("groups of a user (-want +got):\n%s", d)
		}
		// Deleting a user drops its memberships.
		inTx(t, st, func(tx *store.Tx) error { return tx.DeleteDirectoryUser(a.ID, ids[5]) })
		if n := count(t, st, `SELECT count(*) FROM scim_group_members WHERE site_id = ? AND group_id = ?`, a.ID, g.ID); n != 1298 {
			t.Fatalf("members after a user delete: %d", n)
		}
		inTx(t, st, func(tx *store.Tx) error {
			var err error
			removed, err = tx.RemoveAllGroupMembers(a.ID, g.ID)
			return err
		})
		if len(removed) != 1298 {
			t.Fatalf("removed all: %d", len(removed))
		}
		inTx(t, st, func(tx *store.Tx) error { return tx.DeleteDirectoryGroup(a.ID, g.ID) })
	})
}

func TestSCIMTokenAndOutbox(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		a := install(t, st, newSite(1))
		ctx := context.Background()
		p, err := st.View(ctx).FindProvisioning(a.ID)
		if err != nil || p.Enabled || p.Deactivation != models.DeactivateRemoveGroups {
			t.Fatalf("defaults: %+v, %v", p, err)
		}
		if _, err := st.View(ctx).SCIMTokenHash(a.ID); !models.IsNotFound(err) {
			t.Fatalf("hash before a token: %v", err)
		}
		h := sha256.Sum256([]byte("token"))
		inTx(t, st, func(tx *store.Tx) error { return tx.SetSCIMToken(a.ID, h[:]) })
		got, err := st.View(ctx).SCIMTokenHash(a.ID)
		if err != nil || !bytes.Equal(got, h[:]) {
			t.Fatalf("hash: %x, %v", got, err)
		}
		inTx(t, st, func(tx *store.Tx) error {
			return tx.SaveProvisioning(&models.Provisioning{SiteID: a.ID, Deactivation: models.DeactivateSuspend, ProvisionAs: models.ProvisionCustomer, Products: []string{"jira-servicedesk"}})
		})
		p, _ = st.View(ctx).FindProvisioning(a.ID)
		if !p.Enabled || p.Deactivation != models.DeactivateSuspend || !slices.Equal(p.Products, []string{"jira-servicedesk"}) || p.TokenCreatedAt == nil {
			t.Fatalf("after save: %+v", p)
		}
		inTx(t, st, func(tx *store.Tx) error {
			return tx.AddOutboxItems(
				&models.OutboxItem{SiteID: a.ID, ResourceType: "User", ResourceID: "u1", Op: models.OutboxUserCreated, Payload: []byte(`{"a":1}`)},
				&models.OutboxItem{SiteID: a.ID, ResourceType: "User", ResourceID: "u1", Op: models.OutboxUserDeactivated})
		})
		items, err := st.View(ctx).FindOutboxItems(a.ID, 0, 10)
		if err != nil || len(items) != 2 {
			t.Fatalf("outbox: %+v, %v; want two items", items, err)
		}
		if d := cmp.Diff(map[string]any{"items[0].op": models.OutboxUserCreated, "items[0].status": models.OutboxStatusPending, "in ID order": true},
			map[string]any{"items[0].op": items[0].Op, "items[0].status": items[0].Status, "in ID order": items[1].ID > items[0].ID}); d != "" {
			t.Fatalf("outbox (-want +got):\n%s", d)
		}
		// Uninstall revokes the token at once and keeps the directory.
		inTx(t, st, func(tx *store.Tx) error { return tx.MarkSiteUninstalled(a.ID, time.Now().Add(time.Hour)) })
		if _, err := st.View(ctx).SCIMTokenHash(a.ID); !models.IsNotFound(err) {
			t.Fatalf("hash after uninstall: %v", err)
		}
		if n, _ := st.View(ctx).CountOutboxItems(a.ID); n != 2 {
			t.Fatalf("outbox after uninstall: %d", n)
		}
	})
}

// userNames lists the users' userNames, in order (empty, not nil, for none).
func userNames(users []models.DirectoryUser) []string {
	out := []string{}
	for _, u := range users {
		out = append(out, u.UserName)
	}
	return out
}
