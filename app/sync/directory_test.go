package sync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"idbridge/app/store/storetest"
	syncw "idbridge/app/sync"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// TestDirectoryListsAtlassianIDs: the admin page's list of provisioned
// users and groups carries each one's Atlassian ID once the sync made it,
// is paged by name with an opaque cursor, searches by prefix, and answers
// bad input with a field error.
func TestDirectoryListsAtlassianIDs(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		var ids []string
		for i := range syncw.DirectoryPageSize + 5 {
			ids = append(ids, e.createUser(fmt.Sprintf("u%03d@example.com", i), true))
		}
		e.createUser("Zed_%@example.com", true)
		e.createGroup("Engineering", ids[0])
		ctx := context.Background()
		page, err := e.w.Directory(ctx, e.site.ID, "users", "", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) == 0 {
			t.Fatal("first page before the sync: no items")
		}
		got := map[string]any{"items": len(page.Items), "has next": page.Next != "", "items[0].atlassianId": page.Items[0].AtlassianID, "items[0].pending": page.Items[0].Pending}
		want := map[string]any{"items": syncw.DirectoryPageSize, "has next": true, "items[0].atlassianId": "", "items[0].pending": true}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("first page before the sync (-want +got):\n%s", d)
		}
		e.start()
		e.drain()
		page, err = e.w.Directory(ctx, e.site.ID, "users", "", "")
		if err != nil {
			t.Fatal(err)
		}
		a, _ := e.fs.Account("u000@example.com")
		first := page.Items[0]
		if d := cmp.Diff(map[string]any{"name": "u000@example.com", "atlassianId": a.AccountID, "state": models.SyncUserActive, "pending": false},
			map[string]any{"name": first.Name, "atlassianId": first.AtlassianID, "state": first.State, "pending": first.Pending}); d != "" {
			t.Errorf("first user (-want +got):\n%s", d)
		}
		rest, err := e.w.Directory(ctx, e.site.ID, "users", page.Next, "")
		if err != nil {
			t.Fatal(err)
		}
		restLast := ""
		if len(rest.Items) > 0 {
			restLast = rest.Items[len(rest.Items)-1].Name
		}
		if d := cmp.Diff(map[string]any{"items": 6, "next": "", "last": "Zed_%@example.com"},
			map[string]any{"items": len(rest.Items), "next": rest.Next, "last": restLast}); d != "" {
			t.Errorf("second page (-want +got):\n%s", d)
		}
		// The prefix is literal (LIKE's wildcards are not) and case-insensitive.
		for q, want := range map[string]int{"ZED_%": 1, "u05": 5, "_": 0, "%": 0, "nobody": 0} {
			got, err := e.w.Directory(ctx, e.site.ID, "users", "", q)
			if err != nil || len(got.Items) != want {
				t.Errorf("q=%q: %d items, want %d (%v)", q, len(got.Items), want, err)
			}
		}
		groups, err := e.w.Directory(ctx, e.site.ID, "groups", "", "")
		g, _ := e.fs.GroupByName("Engineering")
		if err != nil {
			t.Errorf("groups: %v", err)
		} else {
			var got [][2]string
			for _, it := range groups.Items {
				got = append(got, [2]string{it.Name, it.AtlassianID})
			}
			if d := cmp.Diff([][2]string{{"Engineering", g.ID}}, got); d != "" {
				t.Errorf("groups, name and Atlassian ID (-want +got):\n%s", d)
			}
		}
		// Bad input names its field.
		for _, c := range []struct{ kind, cursor, q, field string }{
			{"accounts", "", "", "type"},
			{"users", "not base64!", "", "cursor"},
			{"users", "", strings.Repeat("x", 201), "q"},
			{"users", "", "a\x00b", "q"},
		} {
			_, err := e.w.Directory(ctx, e.site.ID, c.kind, c.cursor, c.q)
			if me, ok := models.AsError(err); !ok {
				t.Errorf("%+v: %v, want a models.Error", c, err)
			} else if d := cmp.Diff(map[string]any{"code": models.CodeInvalid, "field": c.field}, map[string]any{"code": me.Code, "field": me.Field}); d != "" {
				t.Errorf("%+v: %v (-want +got):\n%s", c, err, d)
			}
		}
	})
}
