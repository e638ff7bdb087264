package sync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"idbridge/app/store/storetest"
	syncw "idbridge/app/sync"
	"idbridge/models"
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
		if len(page.Items) != syncw.DirectoryPageSize || page.Next == "" || page.Items[0].AtlassianID != "" || !page.Items[0].Pending {
			t.Fatalf("first page before the sync: %d items, next %q, %+v", len(page.Items), page.Next, page.Items[0])
		}
		e.start()
		e.drain()
		page, err = e.w.Directory(ctx, e.site.ID, "users", "", "")
		if err != nil {
			t.Fatal(err)
		}
		a, _ := e.fs.Account("u000@example.com")
		if got := page.Items[0]; got.Name != "u000@example.com" || got.AtlassianID != a.AccountID || got.State != models.SyncUserActive || got.Pending {
			t.Errorf("first user: %+v, want account %s", got, a.AccountID)
		}
		rest, err := e.w.Directory(ctx, e.site.ID, "users", page.Next, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(rest.Items) != 6 || rest.Next != "" || rest.Items[5].Name != "Zed_%@example.com" {
			t.Errorf("second page: %+v next %q", rest.Items, rest.Next)
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
		if err != nil || len(groups.Items) != 1 || groups.Items[0].AtlassianID != g.ID || groups.Items[0].Name != "Engineering" {
			t.Errorf("groups: %+v %v", groups, err)
		}
		// Bad input names its field.
		for _, c := range []struct{ kind, cursor, q, field string }{
			{"accounts", "", "", "type"},
			{"users", "not base64!", "", "cursor"},
			{"users", "", strings.Repeat("x", 201), "q"},
			{"users", "", "a\x00b", "q"},
		} {
			_, err := e.w.Directory(ctx, e.site.ID, c.kind, c.cursor, c.q)
			if me, ok := models.AsError(err); !ok || me.Code != models.CodeInvalid || me.Field != c.field {
				t.Errorf("%+v: %v", c, err)
			}
		}
	})
}
