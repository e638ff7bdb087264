package store_test

import (
	"context"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// TestMigrationLinksForgeInstallations: the forge migration gives an
// installationId to one site only (the most recently updated keeps it when
// two rows share one), links every site that has one, and from then on a
// second site with the same installationId is refused. Not parallel: it
// changes the package's migration list.
func TestMigrationLinksForgeInstallations(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := b.Open(t, storetest.Unmigrated())
		restore := store.MigrationsBeforeForTest(t, "forge installations")
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, r := range []struct {
			id, clientKey, installation string
			updated                     time.Time
		}{
			{"s_old", "ck-old", "ari:cloud:ecosystem::installation/shared", old},
			{"s_new", "ck-new", "ari:cloud:ecosystem::installation/shared", old.Add(time.Hour)},
			{"s_one", "ck-one", "ari:cloud:ecosystem::installation/one", old},
			{"s_none", "ck-none", "", old},
		} {
			if err := store.ExecRaw(ctx, st, `INSERT INTO sites (id, client_key, base_url, installation_id, state, installed_at, updated_at)
				VALUES (?, ?, 'https://x.atlassian.net', ?, 'installed', ?, ?)`, r.id, r.clientKey, r.installation, r.updated, r.updated); err != nil {
				t.Fatal(err)
			}
		}
		restore()
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatalf("forge migration: %v", err)
		}
		want := map[string]string{
			"s_old": "", "s_new": "ari:cloud:ecosystem::installation/shared",
			"s_one": "ari:cloud:ecosystem::installation/one", "s_none": "",
		}
		for id, inst := range want {
			var got string
			if err := store.QueryRowRaw(ctx, st, `SELECT installation_id FROM sites WHERE id = ?`, []any{id}, &got); err != nil || got != inst {
				t.Errorf("%s: installation %q (%v), want %q", id, got, err, inst)
			}
		}
		if n := count(t, st, `SELECT count(*) FROM forge_installations`); n != 2 {
			t.Errorf("%d linked installations, want 2", n)
		}
		if n := count(t, st, `SELECT count(*) FROM forge_installations WHERE site_id IN ('s_new', 's_one')`); n != 2 {
			t.Errorf("the linked installations are not s_new and s_one")
		}
		err := store.ExecRaw(ctx, st, `UPDATE sites SET installation_id = 'ari:cloud:ecosystem::installation/one' WHERE id = 's_none'`)
		if models.ErrorCode(store.TranslateError(err)) != models.CodeConflict {
			t.Errorf("a second site with the same installationId: %v, want a conflict", err)
		}
	})
}

// TestSystemTokenKeepsTheNewest: an older token never replaces a newer
// one, an expired one is not found, and uninstall deletes it.
func TestSystemTokenKeepsTheNewest(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := b.Open(t)
		site := install(t, st, newSite(1))
		now := time.Now().UTC().Truncate(time.Second)
		save := func(tok string, exp time.Time) {
			t.Helper()
			if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.SaveSystemToken(site.ID, site.InstallationID, tok, exp) }); err != nil {
				t.Fatal(err)
			}
		}
		find := func(at time.Time) string {
			got, err := st.View(ctx).FindSystemToken(site.ID, at)
			if models.IsNotFound(err) {
				return ""
			}
			if err != nil {
				t.Fatal(err)
			}
			return got.Token
		}
		save("token-b", now.Add(10*time.Minute))
		save("token-a", now.Add(5*time.Minute)) // older: ignored
		if got := find(now); got != "token-b" {
			t.Errorf("token %q, want token-b", got)
		}
		if got := find(now.Add(11 * time.Minute)); got != "" {
			t.Errorf("expired token found: %q", got)
		}
		if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.MarkSiteUninstalled(site.ID, now.Add(time.Hour)) }); err != nil {
			t.Fatal(err)
		}
		if got := find(now); got != "" {
			t.Errorf("token after uninstall: %q", got)
		}
	})
}

// TestForgeInstallRevivesDisabledSite: a site disabled by Connect's
// disabled callback before the move to Forge (which sends no enabled) is
// installed again by Forge's installed event that links it, and by an
// upgraded event, as Connect's installed would make it; its shared secret,
// SCIM token and install time stay. A late upgraded still never revives
// an uninstalled site.
func TestForgeInstallRevivesDisabledSite(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := b.Open(t)
		in := newSite(1)
		installation := in.InstallationID
		in.InstallationID = "" // installed before the app was registered with Forge
		site := install(t, st, in)
		hash := make([]byte, 32)
		hash[0] = 7
		do := func(fn func(tx *store.Tx) error) {
			t.Helper()
			if err := st.InTx(ctx, fn); err != nil {
				t.Fatal(err)
			}
		}
		do(func(tx *store.Tx) error { return tx.SetSCIMToken(site.ID, hash) })
		do(func(tx *store.Tx) error { return tx.SetSiteState(site.ID, models.SiteDisabled) })
		forgeEvent := func(revive bool, linkTo string) *models.Site {
			t.Helper()
			var got *models.Site
			do(func(tx *store.Tx) error {
				var err error
				got, err = tx.SaveForgeInstall(store.ForgeInstall{
					InstallationID: installation, CloudID: site.CloudID, ProductType: "jira",
					AppVersion: "9.0.0", Revive: revive, LinkTo: linkTo,
				})
				return err
			})
			return got
		}
		wantKept := func(step string, got *models.Site, state models.SiteState) {
			t.Helper()
			if got.ID != site.ID || got.State != state || string(got.SharedSecret) != string(site.SharedSecret) ||
				!got.InstalledAt.Equal(site.InstalledAt) || got.InstallationID != installation || got.ClientKey != site.ClientKey {
				t.Errorf("%s: site %s state %s installed %v installation %q clientKey %q; want %s, state %s, the same secret, install time and clientKey, installation %q",
					step, got.ID, got.State, got.InstalledAt, got.InstallationID, got.ClientKey, site.ID, state, installation)
			}
			c, err := st.View(ctx).FindSCIMCredentials(site.ID)
			if err != nil || string(c.TokenHash) != string(hash) || c.Disabled != (state == models.SiteDisabled) {
				t.Errorf("%s: SCIM credentials %+v (%v), want the same token, disabled %v", step, c, err, state == models.SiteDisabled)
			}
		}

		wantKept("forge installed linking the disabled site", forgeEvent(true, site.ID), models.SiteInstalled)

		// Disabled again (a Connect disabled callback still in flight, say):
		// Forge's upgraded event installs it again too.
		do(func(tx *store.Tx) error { return tx.SetSiteState(site.ID, models.SiteDisabled) })
		wantKept("forge upgraded of a disabled site", forgeEvent(false, ""), models.SiteInstalled)

		// Upgraded never revives an uninstalled site; installed does.
		do(func(tx *store.Tx) error { return tx.MarkSiteUninstalled(site.ID, time.Now().Add(time.Hour)) })
		if got := forgeEvent(false, ""); got.State != models.SiteUninstalled {
			t.Errorf("forge upgraded revived an uninstalled site: %s", got.State)
		}
		if got := forgeEvent(true, ""); got.State != models.SiteInstalled {
			t.Errorf("forge installed of an uninstalled site: %s, want installed", got.State)
		}
	})
}

// TestStaleDisabledOfForgeSiteRefusesNothing: SCIM refuses the changes of
// a disabled site that Connect still serves (no installationId), never
// those of a site registered with Forge, whose disabled state can only be
// left over from before the move (no enabled would ever lift it).
func TestStaleDisabledOfForgeSiteRefusesNothing(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := b.Open(t)
		connectOnly := newSite(1)
		connectOnly.InstallationID = ""
		for _, c := range []struct {
			in           *models.Site
			wantDisabled bool
		}{
			{connectOnly, true},
			{newSite(2), false},
		} {
			site := install(t, st, c.in)
			err := st.InTx(ctx, func(tx *store.Tx) error {
				if err := tx.SetSCIMToken(site.ID, make([]byte, 32)); err != nil {
					return err
				}
				return tx.SetSiteState(site.ID, models.SiteDisabled)
			})
			if err != nil {
				t.Fatal(err)
			}
			cred, err := st.View(ctx).FindSCIMCredentials(site.ID)
			if err != nil || cred.Disabled != c.wantDisabled {
				t.Errorf("installation %q, disabled: SCIM credentials %+v (%v), want disabled %v", c.in.InstallationID, cred, err, c.wantDisabled)
			}
			if got := findByID(t, st, site.ID); got.State != models.SiteDisabled || got.Disabled() != c.wantDisabled {
				t.Errorf("installation %q: stored %s, Disabled() %v; want the disabled state kept, Disabled() %v", c.in.InstallationID, got.State, got.Disabled(), c.wantDisabled)
			}
		}
	})
}
