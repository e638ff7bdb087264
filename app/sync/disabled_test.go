package sync_test

import (
	"context"
	"strings"
	"testing"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// TestDisabledSiteWaitsUnlessRegisteredWithForge: the changes of a site
// whose app is disabled wait, and the status says why; but a site with an
// installationId is registered with Forge, which sends neither enabled nor
// disabled, so a disabled state left over from before the move holds
// nothing back: its changes are applied and the status does not call it
// disabled (models.Site.EffectiveState).
func TestDisabledSiteWaitsUnlessRegisteredWithForge(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		ctx := context.Background()
		setState := func(state models.SiteState) {
			t.Helper()
			if err := e.st.InTx(ctx, func(tx *store.Tx) error { return tx.SetSiteState(e.site.ID, state) }); err != nil {
				t.Fatal(err)
			}
			e.w.SiteChanged(e.site.ClientKey)
		}
		setState(models.SiteDisabled)
		e.createUser("waits@example.com", true)
		e.start()
		e.waitFor("the worker to settle", e.idle)
		if st := e.status(); !st.Paused || st.Resumable || !strings.Contains(st.PausedReason, "disabled") || st.Pending != 1 {
			t.Errorf("status of a disabled site %+v, want paused because disabled, one change pending", st)
		}
		if n := len(e.fs.Snapshot().Users); n != 0 {
			t.Fatalf("%d accounts made in a disabled site", n)
		}

		// The app is registered with Forge: Connect's installed now carries
		// the installationId (it installs the site again, with its secret),
		// and a disabled state the site had, or gets, is left over.
		err := e.st.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.SaveInstall(&models.Site{SiteFacts: func() models.SiteFacts {
				f := e.site.SiteFacts
				f.InstallationID = "ari:cloud:ecosystem::installation/" + e.fs.CloudID
				return f
			}(), SharedSecret: e.site.SharedSecret})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		setState(models.SiteDisabled)
		e.w.Wake(nil)
		e.drain()
		if n := len(e.fs.Snapshot().Users); n != 1 {
			t.Errorf("%d accounts in the site registered with Forge, want 1", n)
		}
		if st := e.status(); strings.Contains(st.PausedReason, "disabled") {
			t.Errorf("status of a site registered with Forge says disabled: %+v", st)
		}
	})
}
