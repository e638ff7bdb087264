package provisioning

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// TestServerFiltersUseIndexes checks that the identity providers' hot
// filters compile to SQL the database answers from the per-site indexes:
// lower(userName), externalId, group displayName (shared/SCIM.md, "Filters
// run in the database, with indexes").
func TestServerFiltersUseIndexes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		rt     scim.ResourceType
		filter string
		index  string
	}{
		{scim.Users, `userName eq "Alice@Example.com"`, "scim_users_user_name"},
		{scim.Users, `externalId eq "00ujl29u0le5T6Aj10h7"`, "scim_users_external_id"},
		{scim.Users, `id eq "u_x"`, "PRIMARY KEY|scim_users_pkey|sqlite_autoindex_scim_users"},
		{scim.Groups, `displayName eq "Admins"`, "scim_groups_display_name"},
		{scim.Groups, `externalId eq "8aa1a0c0"`, "scim_groups_external_id"},
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		// Enough rows in two sites for the planner to prefer a selective
		// index, and fresh statistics.
		var siteID string
		err := st.InTx(ctx, func(tx *store.Tx) error {
			for s := range 2 {
				site, err := tx.SaveInstall(&models.Site{
					SiteFacts:    models.SiteFacts{ClientKey: fmt.Sprintf("c%d", s), BaseURL: "https://a.atlassian.net"},
					SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
				})
				if err != nil {
					return err
				}
				siteID = site.ID
				for i := range 1500 {
					u := &models.DirectoryUser{SiteID: site.ID, UserName: fmt.Sprintf("user%d@example.com", i), ExternalID: fmt.Sprintf("ext%d", i), Active: true, Doc: []byte(`{}`)}
					if err := tx.CreateDirectoryUser(u); err != nil {
						return err
					}
					if i%10 == 0 {
						if err := tx.CreateDirectoryGroup(&models.DirectoryGroup{SiteID: site.ID, DisplayName: fmt.Sprintf("g%d", i), ExternalID: fmt.Sprintf("gx%d", i), Doc: []byte(`{}`)}); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.SQLDB().ExecContext(ctx, "ANALYZE"); err != nil {
			t.Fatal(err)
		}
		conn, err := st.SQLDB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		explain := "EXPLAIN QUERY PLAN "
		if st.Dialect() == store.Postgres {
			// Small tables: forbid sequential scans so that the plan shows
			// which index answers.
			if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
				t.Fatal(err)
			}
			explain = "EXPLAIN "
		}
		for _, tc := range cases {
			expr, err := scim.ParseFilter(tc.rt, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			f, err := compileFilter(targetOf(t, tc.rt), st.Dialect(), expr)
			if err != nil {
				t.Fatal(err)
			}
			query := "SELECT id FROM " + targetOf(t, tc.rt).table.Name + " WHERE site_id = ? AND (" + f.Where + ")"
			args := append([]any{siteID}, f.Args...)
			if st.Dialect() == store.Postgres {
				query = dollarPlaceholders(query)
			}
			rows, err := conn.QueryContext(ctx, explain+query, args...)
			if err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			var plan []string
			for rows.Next() {
				cols, _ := rows.Columns()
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, fmt.Sprint(vals...))
			}
			rows.Close()
			text := strings.Join(plan, "\n")
			ok := false
			for _, idx := range strings.Split(tc.index, "|") {
				ok = ok || strings.Contains(text, idx)
			}
			if !ok || strings.Contains(text, "Seq Scan") || strings.Contains(text, "SCAN "+targetOf(t, tc.rt).table.Name) {
				t.Errorf("%s: plan does not use %s:\n%s", tc.filter, tc.index, text)
			}
		}
	})
}

func dollarPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// TestServerTokenCacheAcrossReplicas: on PostgreSQL a replica caches the
// token hash only while it hears change notifications, and a rotation on
// another replica revokes the old token there too.
func TestServerTokenCacheAcrossReplicas(t *testing.T) {
	t.Parallel()
	b := storetest.Backend{}
	for _, be := range storetest.Backends(t) {
		if be.Name == store.Postgres {
			b = be
		}
	}
	if b.Open == nil {
		t.Skip(storetest.EnvDatabaseURL + " is not set: the token cache exists on PostgreSQL only")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st1 := b.Open(t)
	st2 := b.Open(t, storetest.SameDatabase(st1))
	one := NewService(ServiceConfig{}, st1, nil, nil)
	two := NewService(ServiceConfig{}, st2, nil, nil)
	runListening(t, ctx, two)

	site := installSite(t, st1)
	caller := &models.Caller{Site: site, AccountID: "admin"}
	oldToken, err := one.RotateToken(ctx, caller)
	if err != nil {
		t.Fatal(err)
	}
	if err := two.Authenticate(ctx, site.ID, oldToken); err != nil {
		t.Fatalf("replica two refuses the token: %v", err)
	}
	// The rotation's own notification may still be on its way; once it is
	// in, the hash stays cached.
	waitFor(t, "replica two caches the hash", func() bool {
		_ = two.Authenticate(ctx, site.ID, oldToken)
		_, ok := two.tokens.get(site.ID)
		return ok
	})
	newToken, err := one.RotateToken(ctx, caller)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica two drops the old hash", func() bool {
		_, ok := two.tokens.get(site.ID)
		return !ok
	})
	if err := two.Authenticate(ctx, site.ID, oldToken); err == nil {
		t.Fatal("replica two still accepts the rotated token")
	}
	if err := two.Authenticate(ctx, site.ID, newToken); err != nil {
		t.Fatalf("replica two refuses the new token: %v", err)
	}
	// A site disabled on replica one has its writes refused on replica two,
	// which had its credentials cached; reads go on; enabled, it writes.
	setState := func(state models.SiteState) {
		t.Helper()
		if err := st1.InTx(ctx, func(tx *store.Tx) error { return tx.SetSiteState(site.ID, state) }); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "replica two caches the new hash", func() bool {
		_ = two.Authenticate(ctx, site.ID, newToken)
		_, ok := two.tokens.get(site.ID)
		return ok
	})
	// admit asks replica two to admit a request, which ends at once.
	admit := func(write bool) error {
		end, err := two.Admit(ctx, site.ID, newToken, write)
		if err == nil {
			end()
		}
		return err
	}
	setState(models.SiteDisabled)
	waitFor(t, "replica two refuses writes of the disabled site", func() bool {
		return models.ErrorCode(admit(true)) == models.CodeForbidden
	})
	if err := admit(false); err != nil {
		t.Fatalf("replica two refuses reads of the disabled site: %v", err)
	}
	setState(models.SiteInstalled)
	waitFor(t, "replica two takes writes again", func() bool { return admit(true) == nil })
	// An uninstall on replica one revokes it on replica two too.
	if err := st1.InTx(ctx, func(tx *store.Tx) error { return tx.MarkSiteUninstalled(site.ID, time.Now().Add(time.Hour)) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica two refuses after uninstall", func() bool { return two.Authenticate(ctx, site.ID, newToken) != nil })
}

// installSite installs a site in st through a (verified) install.
func installSite(t *testing.T, st *store.Store) *models.Site {
	t.Helper()
	var site *models.Site
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		site, err = tx.SaveInstall(&models.Site{
			SiteFacts:    models.SiteFacts{ClientKey: "c", BaseURL: "https://a.atlassian.net"},
			SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return site
}

// runListening runs svc's change listener until ctx ends (the caller
// cancels it; the test waits for Run to return) and waits until it
// listens, so that its token cache is in use.
func runListening(t *testing.T, ctx context.Context, svc *Service) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { <-done })
	waitFor(t, "the service listens", func() bool { return svc.tokens.listening.Load() })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestServerTokenCacheOnSQLite: on SQLite the token cache hears this
// process's commits (store.Listen), so a rotation, a disabled site and an
// uninstall take effect at the commit, with no wait, while unchanged
// credentials are answered from the cache.
func TestServerTokenCacheOnSQLite(t *testing.T) {
	t.Parallel()
	b := storetest.Backends(t)[0]
	if b.Name != store.SQLite {
		t.Fatalf("first backend %s, want SQLite", b.Name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := b.Open(t)
	svc := NewService(ServiceConfig{}, st, nil, nil)
	runListening(t, ctx, svc)

	site := installSite(t, st)
	caller := &models.Caller{Site: site, AccountID: "admin"}
	oldToken, err := svc.RotateToken(ctx, caller)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Authenticate(ctx, site.ID, oldToken); err != nil {
		t.Fatalf("refuses the token: %v", err)
	}
	if _, ok := svc.tokens.get(site.ID); !ok {
		t.Fatal("the hash was not cached")
	}
	newToken, err := svc.RotateToken(ctx, caller)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Authenticate(ctx, site.ID, oldToken); err == nil {
		t.Fatal("still accepts the rotated token")
	}
	if err := svc.Authenticate(ctx, site.ID, newToken); err != nil {
		t.Fatalf("refuses the new token: %v", err)
	}
	admit := func(write bool) error {
		end, err := svc.Admit(ctx, site.ID, newToken, write)
		if err == nil {
			end()
		}
		return err
	}
	if err := admit(true); err != nil {
		t.Fatal(err)
	}
	if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.SetSiteState(site.ID, models.SiteDisabled) }); err != nil {
		t.Fatal(err)
	}
	if err := admit(true); models.ErrorCode(err) != models.CodeForbidden {
		t.Fatalf("a write of the disabled site: %v, want forbidden", err)
	}
	if err := admit(false); err != nil {
		t.Fatalf("a read of the disabled site: %v", err)
	}
	// A rolled-back change tells nobody: the cache keeps the hash.
	_ = st.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.RevokeSCIMToken(site.ID); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if _, ok := svc.tokens.get(site.ID); !ok {
		t.Fatal("a rolled-back revocation dropped the cached hash")
	}
	if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.MarkSiteUninstalled(site.ID, time.Now().Add(time.Hour)) }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Authenticate(ctx, site.ID, newToken); err == nil {
		t.Fatal("accepts the token of an uninstalled site")
	}
}

// TestServerTokenCacheInstallEnablesDisabledSite: a disabled site's
// credentials, cached with "disabled", are dropped when Connect's installed
// or Forge's installed event (the only word a site moved to Forge still
// sends) installs the site again, so its writes are taken at once, not
// after the cache's 30 s.
func TestServerTokenCacheInstallEnablesDisabledSite(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := b.Open(t)
		svc := NewService(ServiceConfig{}, st, nil, nil)
		runListening(t, ctx, svc)
		site := installSite(t, st)
		token, err := svc.RotateToken(ctx, &models.Caller{Site: site, AccountID: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		admit := func() error {
			end, err := svc.Admit(ctx, site.ID, token, true)
			if err == nil {
				end()
			}
			return err
		}
		disable := func() {
			t.Helper()
			if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.SetSiteState(site.ID, models.SiteDisabled) }); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the disabled site's writes are refused from the cache", func() bool {
				_, cached := svc.tokens.get(site.ID)
				return models.ErrorCode(admit()) == models.CodeForbidden && cached
			})
		}
		disable()
		err = st.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.SaveInstall(&models.Site{SiteFacts: site.SiteFacts, SharedSecret: site.SharedSecret})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the site's writes are taken after Connect installed it", func() bool { return admit() == nil })
		disable()
		err = st.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.SaveForgeInstall(store.ForgeInstall{
				InstallationID: "ari:cloud:ecosystem::installation/1", CloudID: "cloud-1", LinkTo: site.ID, Revive: true,
			})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the site's writes are taken after Forge installed it", func() bool { return admit() == nil })
	})
}
