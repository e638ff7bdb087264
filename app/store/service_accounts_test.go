package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"idbridge/app/secret"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

func saveAccount(tb testing.TB, st *store.Store, siteID string, a *models.ServiceAccount) *models.ServiceAccount {
	tb.Helper()
	var out *models.ServiceAccount
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		out, err = tx.SaveServiceAccount(siteID, a)
		return err
	})
	if err != nil {
		tb.Fatalf("SaveServiceAccount: %v", err)
	}
	return out
}

type rawAccount struct {
	Token, ClientSecret, OrgAdminKey []byte
	TokenHint, Status                string
}

func rawAccountOf(tb testing.TB, st *store.Store, siteID string) rawAccount {
	tb.Helper()
	var rows []rawAccount
	if err := store.ScanRaw(context.Background(), st, &rows, `SELECT token, client_secret, org_admin_key, token_hint, status FROM service_accounts WHERE site_id = ?`, siteID); err != nil || len(rows) != 1 {
		tb.Fatalf("read service_accounts of %s: %d rows, %v", siteID, len(rows), err)
	}
	return rows[0]
}

func TestServiceAccountSealedAndRoundTrips(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		exp := epoch.Add(30 * 24 * time.Hour).Truncate(time.Second)
		in := &models.ServiceAccount{
			Kind: models.AccountAPIToken, Email: "bot@example.com", Token: "ATATT3xFfGF0-token-value-1a2b", TokenHint: "1a2b",
			ExpiresAt: &exp, OrgAdminKey: "org-admin-key-value-9f8e", OrgAdminKeyHint: "9f8e", UpdatedBy: "557058:admin",
		}
		got := saveAccount(t, st, site.ID, in)
		if got.Token != in.Token || got.OrgAdminKey != in.OrgAdminKey || got.Email != in.Email || got.TokenHint != "1a2b" ||
			got.Status != models.AccountUntested || got.UpdatedBy != "557058:admin" || !got.UpdatedAt.Equal(clock.Now().UTC().Truncate(time.Microsecond)) ||
			got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) {
			t.Fatalf("saved account = %+v", got)
		}
		raw := rawAccountOf(t, st, site.ID)
		for name, v := range map[string][]byte{"token": raw.Token, "org_admin_key": raw.OrgAdminKey} {
			if len(v) == 0 || bytes.Contains(v, []byte("value")) {
				t.Errorf("service_accounts.%s = %q: want sealed bytes", name, v)
			}
			if kid, err := secret.KeyID(v); err != nil || kid != "test1" {
				t.Errorf("service_accounts.%s key ID = %q, %v", name, kid, err)
			}
		}
		if raw.ClientSecret != nil {
			t.Errorf("client_secret = %q, want NULL for a token account", raw.ClientSecret)
		}

		// Switching kind writes every column: the token is gone.
		saveAccount(t, st, site.ID, &models.ServiceAccount{Kind: models.AccountOAuthClient, ClientID: "cid", ClientSecret: "client-secret-value-7777", TokenHint: "7777", CloudID: "c-1"})
		raw = rawAccountOf(t, st, site.ID)
		if raw.Token != nil || raw.OrgAdminKey != nil || len(raw.ClientSecret) == 0 {
			t.Errorf("after switching to OAuth: token %q, org key %q, client secret %d bytes", raw.Token, raw.OrgAdminKey, len(raw.ClientSecret))
		}
		got, err := st.View(context.Background()).FindServiceAccount(site.ID)
		if err != nil {
			t.Fatalf("FindServiceAccount: %v", err)
		}
		if d := cmp.Diff(map[string]any{"clientSecret": "client-secret-value-7777", "token": "", "kind": models.AccountOAuthClient},
			map[string]any{"clientSecret": got.ClientSecret, "token": got.Token, "kind": got.Kind}); d != "" {
			t.Fatalf("FindServiceAccount (-want +got):\n%s", d)
		}
	})
}

func TestServiceAccountBoundToItsRow(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		a := install(t, st, newSite(1))
		c := install(t, st, newSite(2))
		saveAccount(t, st, a.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "a@example.com", Token: "token-of-site-a-000000"})
		saveAccount(t, st, c.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "c@example.com", Token: "token-of-site-c-000000"})
		// A sealed value copied to another site's row does not open there.
		execRaw(t, st, `UPDATE service_accounts SET token = (SELECT token FROM service_accounts WHERE site_id = ?) WHERE site_id = ?`, a.ID, c.ID)
		if _, err := st.View(context.Background()).FindServiceAccount(c.ID); err == nil {
			t.Fatal("a token sealed for site a opened as site c's")
		}
		// Nor in another column of the same row.
		execRaw(t, st, `UPDATE service_accounts SET org_admin_key = token WHERE site_id = ?`, a.ID)
		if _, err := st.View(context.Background()).FindServiceAccount(a.ID); err == nil {
			t.Fatal("a token opened as the org admin key")
		}
	})
}

func TestServiceAccountNotFoundAndStatus(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		ctx := context.Background()
		if _, err := st.View(ctx).FindServiceAccount(site.ID); !models.IsNotFound(err) {
			t.Fatalf("FindServiceAccount of a site without one: %v, want not found", err)
		}
		err := st.InTx(ctx, func(tx *store.Tx) error {
			return tx.SetServiceAccountStatus(site.ID, models.AccountInvalid, "rejected", clock.Now())
		})
		wantCode(t, err, models.CodeNotFound)

		saveAccount(t, st, site.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "a@example.com", Token: "token-0123456789"})
		clock.Advance(time.Minute)
		if err := st.InTx(ctx, func(tx *store.Tx) error {
			return tx.SetServiceAccountStatus(site.ID, models.AccountInvalid, "Atlassian rejected the token.", clock.Now())
		}); err != nil {
			t.Fatal(err)
		}
		got, _ := st.View(ctx).FindServiceAccount(site.ID)
		if got.CheckedAt == nil {
			t.Fatalf("after SetServiceAccountStatus: %+v, not checked", got)
		}
		if d := cmp.Diff(map[string]any{"status": models.AccountInvalid, "statusMessage": "Atlassian rejected the token.", "checkedAt": clock.Now(), "token kept": true},
			map[string]any{"status": got.Status, "statusMessage": got.StatusMessage, "checkedAt": *got.CheckedAt, "token kept": got.Token != ""}); d != "" {
			t.Errorf("after SetServiceAccountStatus (-want +got):\n%s", d)
		}
		err = st.InTx(ctx, func(tx *store.Tx) error { return tx.SetServiceAccountStatus(site.ID, "bogus", "", clock.Now()) })
		wantCode(t, err, models.CodeInvalid)
		_, err = saveAccountErr(st, site.ID, &models.ServiceAccount{Kind: "bogus"})
		wantCode(t, err, models.CodeInvalid)
	})
}

func saveAccountErr(st *store.Store, siteID string, a *models.ServiceAccount) (*models.ServiceAccount, error) {
	var out *models.ServiceAccount
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		out, err = tx.SaveServiceAccount(siteID, a)
		return err
	})
	return out, err
}

// TestUninstallDeletesServiceAccountSecrets: SPEC 2.2, the secrets go at
// once with the site's shared secret, in the same transaction; the rest
// waits for the purge.
func TestUninstallDeletesServiceAccountSecrets(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		for _, id := range []string{site.ID, other.ID} {
			saveAccount(t, st, id, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "a@example.com", Token: "token-0123456789",
				TokenHint: "6789", OrgAdminKey: "org-key-0123456789", OrgAdminKeyHint: "6789"})
		}
		ctx := context.Background()
		// A transaction that fails after the uninstall leaves the secrets.
		boom := errors.New("boom")
		err := st.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.MarkSiteUninstalled(site.ID, clock.Now().Add(time.Hour)); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v", err)
		}
		if raw := rawAccountOf(t, st, site.ID); raw.Token == nil {
			t.Fatal("a rolled-back uninstall deleted the token")
		}
		if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.MarkSiteUninstalled(site.ID, clock.Now().Add(time.Hour)) }); err != nil {
			t.Fatal(err)
		}
		raw := rawAccountOf(t, st, site.ID)
		if d := cmp.Diff(map[string]any{"token": false, "clientSecret": false, "orgAdminKey": false, "tokenHint": "", "status": string(models.AccountInvalid)},
			map[string]any{"token": raw.Token != nil, "clientSecret": raw.ClientSecret != nil, "orgAdminKey": raw.OrgAdminKey != nil, "tokenHint": raw.TokenHint, "status": raw.Status}); d != "" {
			t.Errorf("after uninstall, want no secrets, no hint, status invalid (-want +got):\n%s", d)
		}
		acc, err := st.View(ctx).FindServiceAccount(site.ID)
		if err != nil {
			t.Errorf("after uninstall FindServiceAccount: %v", err)
		} else if d := cmp.Diff(map[string]string{"email": "a@example.com", "token": ""}, map[string]string{"email": acc.Email, "token": acc.Token}); d != "" {
			t.Errorf("after uninstall FindServiceAccount, want the row without secrets (-want +got):\n%s", d)
		}
		if raw := rawAccountOf(t, st, other.ID); raw.Token == nil || raw.OrgAdminKey == nil {
			t.Error("uninstalling one site deleted another's secrets")
		}
		// Idempotent.
		if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.MarkSiteUninstalled(site.ID, clock.Now().Add(time.Hour)) }); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRotateKeysReachesServiceAccounts(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		k1 := storetest.NewKey(t, "k1")
		st := b.Open(t, storetest.WithRing(storetest.NewRing(t, k1)))
		site := install(t, st, newSite(1))
		saveAccount(t, st, site.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "a@example.com", Token: "token-0123456789", OrgAdminKey: "org-key-0123456789"})

		k2 := storetest.NewKey(t, "k2")
		st2 := b.Open(t, storetest.SameDatabase(st), storetest.WithRing(storetest.NewRing(t, k2, k1)))
		if _, err := st2.RotateKeys(context.Background(), 1, nil); err != nil {
			t.Fatal(err)
		}
		raw := rawAccountOf(t, st2, site.ID)
		for name, v := range map[string][]byte{"token": raw.Token, "org_admin_key": raw.OrgAdminKey} {
			if kid, err := secret.KeyID(v); err != nil || kid != "k2" {
				t.Errorf("%s sealed with %q after rotation, %v; want k2", name, kid, err)
			}
		}
		st3 := b.Open(t, storetest.SameDatabase(st), storetest.WithRing(storetest.NewRing(t, k2)), storetest.NoKeyCheck())
		acc, err := st3.View(context.Background()).FindServiceAccount(site.ID)
		if err != nil {
			t.Fatalf("after rotation, with k2 alone: %v", err)
		}
		if d := cmp.Diff(map[string]string{"token": "token-0123456789", "orgAdminKey": "org-key-0123456789"},
			map[string]string{"token": acc.Token, "orgAdminKey": acc.OrgAdminKey}); d != "" {
			t.Fatalf("after rotation, with k2 alone (-want +got):\n%s", d)
		}
	})
}
