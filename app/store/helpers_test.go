package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"idbridge/app/store"
	"idbridge/models"
)

// newSite returns an install payload with a clientKey and secret derived from n.
func newSite(n int) *models.Site {
	return &models.Site{
		SiteFacts: models.SiteFacts{
			ClientKey:      fmt.Sprintf("client-%04d", n),
			BaseURL:        fmt.Sprintf("https://site-%04d.atlassian.net", n),
			ProductType:    "jira",
			InstallationID: fmt.Sprintf("ari:cloud:ecosystem::installation/%04d", n),
			CloudID:        fmt.Sprintf("cloud-%04d", n),
		},
		SharedSecret: fmt.Appendf(nil, "shared-secret-%04d-0123456789abcdef", n),
	}
}

// install saves an install in its own transaction or fails the test.
func install(tb testing.TB, st *store.Store, in *models.Site) *models.Site {
	tb.Helper()
	var site *models.Site
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		site, err = tx.SaveInstall(in)
		return err
	})
	if err != nil {
		tb.Fatalf("SaveInstall(%q): %v", in.ClientKey, err)
	}
	return site
}

// installMany saves n sites in one transaction and returns them by ID.
func installMany(tb testing.TB, st *store.Store, n int) map[string]*models.Site {
	tb.Helper()
	sites := make(map[string]*models.Site, n)
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		for i := range n {
			site, err := tx.SaveInstall(newSite(i))
			if err != nil {
				return err
			}
			sites[site.ID] = site
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("install %d sites: %v", n, err)
	}
	return sites
}

func findByID(tb testing.TB, st *store.Store, id string) *models.Site {
	tb.Helper()
	site, err := st.View(context.Background()).FindSiteByID(id)
	if err != nil {
		tb.Fatalf("FindSiteByID(%s): %v", id, err)
	}
	return site
}

// rawSecret reads the sealed shared_secret column of a site as stored.
func rawSecret(tb testing.TB, st *store.Store, id string) []byte {
	tb.Helper()
	var b []byte
	if err := store.QueryRowRaw(context.Background(), st, `SELECT shared_secret FROM sites WHERE id = ?`, []any{id}, &b); err != nil {
		tb.Fatalf("read sites.shared_secret of %s: %v", id, err)
	}
	return b
}

func execRaw(tb testing.TB, st *store.Store, query string, args ...any) {
	tb.Helper()
	if err := store.ExecRaw(context.Background(), st, query, args...); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
}

func count(tb testing.TB, st *store.Store, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := store.QueryRowRaw(context.Background(), st, query, args, &n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

func tableExists(tb testing.TB, st *store.Store, table string) bool {
	tb.Helper()
	if st.Dialect() == store.Postgres {
		return count(tb, st, `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`, table) > 0
	}
	return count(tb, st, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table) > 0
}

// wantCode fails unless err carries a *models.Error with code.
func wantCode(tb testing.TB, err error, code models.Code) {
	tb.Helper()
	var me *models.Error
	if !errors.As(err, &me) || me.Code != code {
		tb.Fatalf("error = %v, want a models.Error with code %q", err, code)
	}
}
