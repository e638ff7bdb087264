package store_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"idbridge/app/secret"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)

func TestSaveInstallNewSite(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		in := newSite(1)
		in.DisplayURL = "https://example.atlassian.net"
		in.Description = "Atlassian JIRA at https://example.atlassian.net"
		in.EntitlementID = "e-1"
		in.EntitlementNumber = "E-1"
		in.ServiceEntitlementNumber = "SEN-1"
		in.DisplayURLServicedeskHelpCenter = "https://example.atlassian.net/servicedesk/customer"
		saved := install(t, st, in)

		if !strings.HasPrefix(saved.ID, "s_") {
			t.Errorf("ID = %q, want an opaque s_ ID", saved.ID)
		}
		if saved.State != models.SiteInstalled || !saved.Active() {
			t.Errorf("state = %q, want installed", saved.State)
		}
		byKey, err := st.View(context.Background()).FindSiteByClientKey(in.ClientKey)
		if err != nil {
			t.Fatalf("FindSiteByClientKey: %v", err)
		}
		byID := findByID(t, st, saved.ID)
		for name, got := range map[string]*models.Site{"SaveInstall": saved, "FindSiteByClientKey": byKey, "FindSiteByID": byID} {
			if got.ID != saved.ID {
				t.Errorf("%s: ID %q, want %q", name, got.ID, saved.ID)
			}
			if diff := cmp.Diff(in.SiteFacts, got.SiteFacts); diff != "" {
				t.Errorf("%s: site facts differ from the install's (-want +got):\n%s", name, diff)
			}
			if !bytes.Equal(got.SharedSecret, in.SharedSecret) {
				t.Errorf("%s: shared secret %q, want %q", name, got.SharedSecret, in.SharedSecret)
			}
			if got.UninstalledAt != nil || got.PurgeAfter != nil {
				t.Errorf("%s: uninstalled %v, purge %v; want nil", name, got.UninstalledAt, got.PurgeAfter)
			}
		}

		raw := rawSecret(t, st, saved.ID)
		if len(raw) == 0 || bytes.Contains(raw, in.SharedSecret) {
			t.Fatalf("sites.shared_secret = %q: want sealed bytes, not the plaintext", raw)
		}
		if kid, err := secret.KeyID(raw); err != nil || kid != "test1" {
			t.Errorf("stored value's key ID = %q, %v; want test1", kid, err)
		}
	})
}

func TestSaveInstallReinstall(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		first := install(t, st, newSite(1))
		firstRaw := rawSecret(t, st, first.ID)

		clock.Advance(time.Hour)
		again := newSite(1)
		again.SharedSecret = []byte("a-new-secret-after-reinstall")
		again.BaseURL = "https://renamed.atlassian.net"
		again.InstallationID, again.CloudID = "", "" // a later event may omit them
		second := install(t, st, again)

		got := findByID(t, st, first.ID)
		if d := cmp.Diff(map[string]string{"returned": first.ID, "stored": first.ID}, map[string]string{"returned": second.ID, "stored": got.ID}); d != "" {
			t.Fatalf("reinstall changed the ID (-want +got):\n%s", d)
		}
		if !bytes.Equal(got.SharedSecret, again.SharedSecret) {
			t.Errorf("secret after reinstall = %q, want the new one", got.SharedSecret)
		}
		if bytes.Equal(rawSecret(t, st, first.ID), firstRaw) {
			t.Error("the sealed secret was not replaced")
		}
		if got.BaseURL != again.BaseURL {
			t.Errorf("baseUrl = %q, want %q", got.BaseURL, again.BaseURL)
		}
		kept := newSite(1)
		if d := cmp.Diff(map[string]string{"installationId": kept.InstallationID, "cloudId": kept.CloudID},
			map[string]string{"installationId": got.InstallationID, "cloudId": got.CloudID}); d != "" {
			t.Errorf("installationId and cloudId not kept (-want +got):\n%s", d)
		}
		if n := count(t, st, `SELECT count(*) FROM sites`); n != 1 {
			t.Errorf("%d site rows after a reinstall, want 1", n)
		}

		// A later install that does carry new IDs replaces them.
		moved := newSite(1)
		moved.InstallationID, moved.CloudID = "inst-new", "cloud-new"
		install(t, st, moved)
		moved1 := findByID(t, st, first.ID)
		if d := cmp.Diff(map[string]string{"installationId": "inst-new", "cloudId": "cloud-new"},
			map[string]string{"installationId": moved1.InstallationID, "cloudId": moved1.CloudID}); d != "" {
			t.Errorf("installationId and cloudId, want the new ones (-want +got):\n%s", d)
		}
	})
}

func TestSaveInstallInvalid(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		for name, mutate := range map[string]func(*models.Site){
			"no clientKey":    func(s *models.Site) { s.ClientKey = "" },
			"no sharedSecret": func(s *models.Site) { s.SharedSecret = nil },
			"no baseUrl":      func(s *models.Site) { s.BaseURL = "" },
		} {
			in := newSite(1)
			mutate(in)
			err := st.InTx(context.Background(), func(tx *store.Tx) error {
				_, err := tx.SaveInstall(in)
				return err
			})
			if err == nil {
				t.Errorf("%s: SaveInstall succeeded", name)
				continue
			}
			wantCode(t, err, models.CodeInvalid)
		}
		if n := count(t, st, `SELECT count(*) FROM sites`); n != 0 {
			t.Errorf("%d sites written by invalid installs", n)
		}
	})
}

func TestSiteNotFound(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		install(t, st, newSite(1))
		tx := st.View(context.Background())
		_, err := tx.FindSiteByClientKey("no-such-client")
		wantCode(t, err, models.CodeNotFound)
		_, err = tx.FindSiteByID("s_nosuchsite")
		wantCode(t, err, models.CodeNotFound)
		wantCode(t, tx.SetSiteState("s_nosuchsite", models.SiteDisabled), models.CodeNotFound)
		wantCode(t, tx.MarkSiteUninstalled("s_nosuchsite", epoch), models.CodeNotFound)
	})
}

func TestSetSiteState(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		tx := st.View(context.Background())

		clock.Advance(time.Minute)
		if err := tx.SetSiteState(site.ID, models.SiteDisabled); err != nil {
			t.Fatalf("disable: %v", err)
		}
		got := findByID(t, st, site.ID)
		if got.State != models.SiteDisabled || !got.UpdatedAt.Equal(clock.Now()) || !got.InstalledAt.Equal(epoch) {
			t.Errorf("after disable: state %q, updated %v, installed %v", got.State, got.UpdatedAt, got.InstalledAt)
		}
		if err := tx.SetSiteState(site.ID, models.SiteInstalled); err != nil {
			t.Fatalf("enable: %v", err)
		}
		if got := findByID(t, st, site.ID); got.State != models.SiteInstalled {
			t.Errorf("after enable: state %q", got.State)
		}
		if err := tx.SetSiteState(site.ID, models.SiteUninstalled); err == nil {
			t.Error("SetSiteState(uninstalled) succeeded; uninstalling takes MarkSiteUninstalled")
		}

		if err := tx.MarkSiteUninstalled(site.ID, epoch.Add(30*24*time.Hour)); err != nil {
			t.Fatalf("MarkSiteUninstalled: %v", err)
		}
		for _, state := range []models.SiteState{models.SiteInstalled, models.SiteDisabled} {
			wantCode(t, tx.SetSiteState(site.ID, state), models.CodeNotFound)
		}
		if got := findByID(t, st, site.ID); got.State != models.SiteUninstalled || got.Active() {
			t.Errorf("SetSiteState revived an uninstalled site: state %q", got.State)
		}
	})
}

func TestMarkSiteUninstalled(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		tx := st.View(context.Background())

		clock.Advance(time.Hour)
		uninstalledAt := clock.Now()
		purge := uninstalledAt.Add(30 * 24 * time.Hour)
		if err := tx.MarkSiteUninstalled(site.ID, purge); err != nil {
			t.Fatalf("MarkSiteUninstalled: %v", err)
		}
		if n := count(t, st, `SELECT count(*) FROM sites WHERE id = ? AND shared_secret IS NULL`, site.ID); n != 1 {
			t.Error("the shared_secret column is not NULL after uninstall")
		}
		got := findByID(t, st, site.ID)
		if got.State != models.SiteUninstalled || got.SharedSecret != nil {
			t.Errorf("after uninstall: state %q, secret %q", got.State, got.SharedSecret)
		}
		if got.UninstalledAt == nil || !got.UninstalledAt.Equal(uninstalledAt) || got.PurgeAfter == nil || !got.PurgeAfter.Equal(purge) {
			t.Errorf("after uninstall: uninstalled %v, purge %v; want %v, %v", got.UninstalledAt, got.PurgeAfter, uninstalledAt, purge)
		}

		// Idempotent: a repeated uninstall keeps the first dates.
		clock.Advance(24 * time.Hour)
		if err := tx.MarkSiteUninstalled(site.ID, clock.Now().Add(30*24*time.Hour)); err != nil {
			t.Fatalf("second MarkSiteUninstalled: %v", err)
		}
		again := findByID(t, st, site.ID)
		if !again.UninstalledAt.Equal(uninstalledAt) || !again.PurgeAfter.Equal(purge) || !again.UpdatedAt.Equal(uninstalledAt) {
			t.Errorf("second uninstall moved the dates: uninstalled %v, purge %v, updated %v", again.UninstalledAt, again.PurgeAfter, again.UpdatedAt)
		}
		if o := findByID(t, st, other.ID); o.State != models.SiteInstalled || !bytes.Equal(o.SharedSecret, newSite(2).SharedSecret) {
			t.Errorf("another site was touched: %+v", o)
		}

		// A verified reinstall brings it back, with a new secret, under the same ID.
		re := install(t, st, newSite(1))
		got = findByID(t, st, site.ID)
		if d := cmp.Diff(map[string]any{"id": site.ID, "state": models.SiteInstalled, "uninstalledAt set": false, "purgeAfter set": false, "sharedSecret": newSite(1).SharedSecret},
			map[string]any{"id": re.ID, "state": got.State, "uninstalledAt set": got.UninstalledAt != nil, "purgeAfter set": got.PurgeAfter != nil, "sharedSecret": got.SharedSecret}); d != "" {
			t.Errorf("after reinstall (-want +got):\n%s", d)
		}
	})
}

// TestCopiedSealedValueDoesNotOpen copies site A's sealed secret into site
// B's row: the associated data binds it to A, so B's secret must not open.
func TestCopiedSealedValueDoesNotOpen(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		a := install(t, st, newSite(1))
		bSite := install(t, st, newSite(2))
		execRaw(t, st, `UPDATE sites SET shared_secret = (SELECT shared_secret FROM sites WHERE id = ?) WHERE id = ?`, a.ID, bSite.ID)
		if !bytes.Equal(rawSecret(t, st, a.ID), rawSecret(t, st, bSite.ID)) {
			t.Fatal("the copy did not happen")
		}

		tx := st.View(context.Background())
		_, err := tx.FindSiteByID(bSite.ID)
		if !errors.Is(err, secret.ErrDecrypt) {
			t.Fatalf("FindSiteByID of the row with a copied secret: %v; want an error wrapping secret.ErrDecrypt", err)
		}
		if !strings.Contains(err.Error(), bSite.ID) || models.ErrorCode(err) != models.CodeInternal {
			t.Errorf("error %q (code %s) should name the site and be internal", err, models.ErrorCode(err))
		}
		if _, err := tx.FindSiteByClientKey(bSite.ClientKey); !errors.Is(err, secret.ErrDecrypt) {
			t.Errorf("FindSiteByClientKey: %v; want secret.ErrDecrypt", err)
		}
		if got := findByID(t, st, a.ID); !bytes.Equal(got.SharedSecret, newSite(1).SharedSecret) {
			t.Errorf("site A's own secret = %q", got.SharedSecret)
		}
	})
}
