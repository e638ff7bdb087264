package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// TestSyncDirectoryPrefixSearch: a search by name prefix finds exactly
// the names that start with it (case-insensitively, LIKE's wildcards and
// the escape character literal, any script), in the order and pages of
// the whole list, whatever the database's collation.
func TestSyncDirectoryPrefixSearch(t *testing.T) {
	t.Parallel()
	names := []string{
		"ada", "Ada.Lovelace", "adam", "ad_a", "ad%a", `ad\a`, "ad", "adb", "ac", "ae",
		"Zed_%@example.com", "zed_x", "zedax", "100%sure", "a_b", "aXb", "a-b", "ab",
		"émile", "Émilie", "emile", "ñandú", "Ñu", "nu", "straße", "STRASSE", "ẞa",
		"日本語", "日本", "日", "🙂smile", "🙂", "x\U0010FFFFa", "x\U0010FFFF", "xa", "y",
		"\uD7FFz", "\uE000", "İstanbul", "istanbul2",
	}
	queries := []string{
		"", "a", "A", "ad", "AD_", "ad%", `ad\`, "ad_a", "%", "_", `\`, "zed_%", "ZED_", "100%",
		"é", "É", "e", "ñ", "Ñ", "stra", "STRAẞ", "ß", "日本", "日", "🙂", "x\U0010FFFF", "\U0010FFFF",
		"\uD7FF", "İ", "i", "nobody", "zz",
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		site := install(t, st, newSite(1))
		inTx(t, st, func(tx *store.Tx) error {
			for _, n := range names {
				if err := tx.CreateDirectoryUser(newDirectoryUser(site.ID, n)); err != nil {
					return fmt.Errorf("%q: %w", n, err)
				}
				if err := tx.CreateDirectoryGroup(&models.DirectoryGroup{SiteID: site.ID, DisplayName: n, Doc: []byte(`{}`)}); err != nil {
					return fmt.Errorf("%q: %w", n, err)
				}
			}
			return nil
		})
		view := st.View(context.Background())
		// list pages through the list, 3 at a time, as the admin page does.
		list := func(groups bool, prefix string) []string {
			var out []string
			after := ""
			for {
				page, err := view.ListSyncDirectory(site.ID, groups, after, prefix, 3)
				if err != nil {
					t.Fatalf("prefix %q: %v", prefix, err)
				}
				for _, e := range page {
					out = append(out, e.Name)
				}
				if len(page) < 3 {
					return out
				}
				after = page[len(page)-1].Key
			}
		}
		for _, groups := range []bool{false, true} {
			all := list(groups, "")
			if len(all) != len(names) {
				t.Fatalf("groups=%v: the whole list has %d names, want %d: %q", groups, len(all), len(names), all)
			}
			for _, q := range queries {
				want := []string{}
				for _, n := range all {
					if strings.HasPrefix(strings.ToLower(n), strings.ToLower(q)) {
						want = append(want, n)
					}
				}
				got := append([]string{}, list(groups, q)...)
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("groups=%v, prefix %q (-the whole list's names with it +found):\n%s", groups, q, d)
				}
			}
		}
	})
}
