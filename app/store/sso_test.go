package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

func ssoFixture(t *testing.T, st *store.Store, site *models.Site) {
	t.Helper()
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		if _, err := tx.SaveSSOSettings(site.ID, &models.SSOSettings{Enabled: true, SPKey: "-----BEGIN RSA PRIVATE KEY-----\nsecret\n", SPCertificate: "cert"}); err != nil {
			return err
		}
		_, err := tx.SaveIdentityProvider(site.ID, &models.IdentityProvider{ID: "idp_1", Name: "X", Protocol: models.ProtocolOIDC, Enabled: true,
			OIDC: &models.OIDCConfig{Issuer: "https://x", ClientID: "c", ClientSecret: "client-secret-value", ClientSecretHint: "alue"}})
		if err != nil {
			return err
		}
		now := st.Now()
		if err := tx.CreateLoginState(site.ID, &models.LoginState{ID: "state1", IdPID: "idp_1", Protocol: "oidc", BrowserHash: "b", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
			return err
		}
		return tx.CreatePortalSession(site.ID, &models.PortalSession{ID: "sess1", AccountID: "acc", CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSSOSecretsSealedRotatedAndDeletedAtUninstall: the SP key and client
// secrets are sealed at rest, reached by key rotation, and gone (with login
// state and sessions) as soon as the site is uninstalled.
func TestSSOSecretsSealedRotatedAndDeletedAtUninstall(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		k1, k2 := storetest.NewKey(t, "k1"), storetest.NewKey(t, "k2")
		st := b.Open(t, storetest.WithRing(storetest.NewRing(t, k1)))
		site := install(t, st, newSite(1))
		ssoFixture(t, st, site)
		if n := count(t, st, `SELECT count(*) FROM identity_providers WHERE oidc_client_secret IS NOT NULL AND oidc_client_secret <> ?`, []byte("client-secret-value")); n != 1 {
			t.Errorf("client secret stored in clear or not at all (%d)", n)
		}
		rotated := b.Open(t, storetest.SameDatabase(st), storetest.WithRing(storetest.NewRing(t, k2, k1)))
		res, err := rotated.RotateKeys(ctx, 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rotated != 3 { // shared secret, SP key, client secret
			t.Errorf("rotated %d values; want 3", res.Rotated)
		}
		only := b.Open(t, storetest.SameDatabase(st), storetest.WithRing(storetest.NewRing(t, k2)))
		p, err := only.View(ctx).FindIdentityProvider(site.ID, "idp_1")
		if err != nil || p.OIDC.ClientSecret != "client-secret-value" {
			t.Fatalf("after rotation: %+v, %v", p, err)
		}
		if s, err := only.View(ctx).FindSSOSettings(site.ID); err != nil || s.SPKey == "" {
			t.Fatalf("SP key after rotation: %v", err)
		}
		err = only.InTx(ctx, func(tx *store.Tx) error { return tx.MarkSiteUninstalled(site.ID, time.Now().Add(time.Hour)) })
		if err != nil {
			t.Fatal(err)
		}
		for q, want := range map[string]int{
			`SELECT count(*) FROM identity_providers WHERE oidc_client_secret IS NOT NULL`: 0,
			`SELECT count(*) FROM sso_settings WHERE sp_key IS NOT NULL OR enabled`:        0,
			`SELECT count(*) FROM login_states`:                                            0,
			`SELECT count(*) FROM portal_sessions`:                                         0,
		} {
			if n := count(t, only, q); n != want {
				t.Errorf("after uninstall %s = %d", q, n)
			}
		}
	})
}

// TestTakeLoginStateOnce: of concurrent takes of one login state, exactly
// one gets it; an expired one is not found.
func TestTakeLoginStateOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		clock := storetest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		ssoFixture(t, st, site)
		var wg sync.WaitGroup
		got := make(chan bool, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := st.InTx(ctx, func(tx *store.Tx) error { _, err := tx.TakeLoginState(site.ID, "state1"); return err })
				got <- err == nil
			}()
		}
		wg.Wait()
		close(got)
		n := 0
		for ok := range got {
			if ok {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d takes got the state; want 1", n)
		}
		now := st.Now()
		_ = st.View(ctx).CreateLoginState(site.ID, &models.LoginState{ID: "state2", IdPID: "idp_1", Protocol: "oidc", BrowserHash: "b", CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
		clock.Advance(time.Minute)
		if _, err := st.View(ctx).TakeLoginState(site.ID, "state2"); !models.IsNotFound(err) {
			t.Errorf("expired state: %v", err)
		}
		// Another site cannot take this site's state.
		other := install(t, st, newSite(2))
		_ = st.View(ctx).CreateLoginState(site.ID, &models.LoginState{ID: "state3", IdPID: "idp_1", Protocol: "oidc", BrowserHash: "b", CreatedAt: st.Now(), ExpiresAt: st.Now().Add(time.Minute)})
		if _, err := st.View(ctx).TakeLoginState(other.ID, "state3"); !models.IsNotFound(err) {
			t.Errorf("site B took site A's state: %v", err)
		}
		// Used assertion IDs: once per IdP.
		if err := st.View(ctx).ConsumeSAMLAssertion(site.ID, "idp_1", "a1", st.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		wantCode(t, st.View(ctx).ConsumeSAMLAssertion(site.ID, "idp_1", "a1", st.Now().Add(time.Hour)), models.CodeConflict)
		if err := st.View(ctx).ConsumeSAMLAssertion(site.ID, "idp_2", "a1", st.Now().Add(time.Hour)); err != nil {
			t.Errorf("another IdP's assertion with the same ID: %v", err)
		}
	})
}

// TestLoginStatesBoundedPerSite: anyone may start a sign-in, so a site's
// sign-ins in flight are bounded. At the bound the site gives up its
// expired states, then its oldest: new sign-ins always start (refusing
// them would let a flood keep every customer out), the oldest in flight
// is the one that must start again, and another site is not touched.
func TestLoginStatesBoundedPerSite(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		clock := storetest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
		st := b.Open(t, storetest.WithNow(clock.Now))
		site, other := install(t, st, newSite(1)), install(t, st, newSite(2))
		state := func(i int) *models.LoginState {
			now := st.Now()
			return &models.LoginState{ID: fmt.Sprintf("state-%05d", i), IdPID: "idp_1", Protocol: "oidc", BrowserHash: "b", CreatedAt: now, ExpiresAt: now.Add(models.LoginStateTTL)}
		}
		create := func(siteID string, i int) {
			t.Helper()
			if err := st.View(ctx).CreateLoginState(siteID, state(i)); err != nil {
				t.Fatalf("state %d: %v", i, err)
			}
		}
		live := func(siteID string) int {
			return count(t, st, `SELECT count(*) FROM login_states WHERE site_id = ?`, siteID)
		}
		if err := st.View(ctx).CreateLoginState(other.ID, state(0)); err != nil {
			t.Fatal(err)
		}
		// The site's first half, then (a minute later, each a millisecond
		// apart) the second: the bound is reached.
		err := st.InTx(ctx, func(tx *store.Tx) error {
			for i := range store.MaxLoginStates / 2 {
				if err := tx.CreateLoginState(site.ID, state(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		for i := store.MaxLoginStates / 2; i < store.MaxLoginStates; i++ {
			clock.Advance(time.Millisecond)
			create(site.ID, i)
		}
		if n := live(site.ID); n != store.MaxLoginStates {
			t.Fatalf("%d states, want %d", n, store.MaxLoginStates)
		}
		// Beyond it, each new one makes room by dropping the oldest.
		for i := store.MaxLoginStates; i < store.MaxLoginStates+3; i++ {
			create(site.ID, i)
		}
		if n := live(site.ID); n != store.MaxLoginStates {
			t.Errorf("%d states after three more, want %d", n, store.MaxLoginStates)
		}
		for _, i := range []int{0, 1, 2} {
			if _, err := st.View(ctx).TakeLoginState(site.ID, state(i).ID); !models.IsNotFound(err) {
				t.Errorf("the oldest state %d: %v, want it given up", i, err)
			}
		}
		for _, i := range []int{3, store.MaxLoginStates - 1, store.MaxLoginStates + 2} {
			if _, err := st.View(ctx).TakeLoginState(site.ID, state(i).ID); err != nil {
				t.Errorf("state %d: %v, want it kept", i, err)
			}
		}
		if _, err := st.View(ctx).TakeLoginState(other.ID, state(0).ID); err != nil {
			t.Errorf("another site's state: %v", err)
		}
		// Expired states go first: back at the bound (three taken, three
		// more made), the first half expires (996 of it is left: three
		// given up, one taken), and a new state leaves every state of the
		// second half in place.
		for i := store.MaxLoginStates + 3; i < store.MaxLoginStates+6; i++ {
			create(site.ID, i)
		}
		clock.Advance(models.LoginStateTTL - time.Minute)
		create(site.ID, store.MaxLoginStates+10)
		if want := store.MaxLoginStates - (store.MaxLoginStates/2 - 4) + 1; live(site.ID) != want {
			t.Errorf("%d states after the first half expired, want %d", live(site.ID), want)
		}
		if _, err := st.View(ctx).TakeLoginState(site.ID, state(store.MaxLoginStates/2).ID); err != nil {
			t.Errorf("the oldest state of the second half: %v, want it kept", err)
		}
	})
}

// TestLoginStatesEvictedConcurrently: many sign-ins starting at once at a
// site at its bound each give up an oldest state; on PostgreSQL two such
// deletes locking rows in different orders deadlocked (a 503 for a real
// customer, and a connection held for the deadlock timeout).
func TestLoginStatesEvictedConcurrently(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := b.Open(t, storetest.WithStoreOptions(func(o *store.Options) { o.MaxOpenConns = 16 }))
		site := install(t, st, newSite(1))
		state := func(i int) *models.LoginState {
			now := st.Now()
			return &models.LoginState{ID: fmt.Sprintf("state-%05d", i), IdPID: "idp_1", Protocol: "oidc", BrowserHash: "b", CreatedAt: now, ExpiresAt: now.Add(models.LoginStateTTL)}
		}
		err := st.InTx(ctx, func(tx *store.Tx) error {
			for i := range store.MaxLoginStates {
				if err := tx.CreateLoginState(site.ID, state(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16*20)
		for w := range 16 {
			wg.Go(func() {
				for i := range 20 {
					if err := st.View(ctx).CreateLoginState(site.ID, state(10000+w*100+i)); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("a sign-in starting at the bound: %v", err)
		}
		if n := count(t, st, `SELECT count(*) FROM login_states WHERE site_id = ?`, site.ID); n > store.MaxLoginStates+16 || n < store.MaxLoginStates-16*16 {
			t.Errorf("%d states after the concurrent starts, want about %d", n, store.MaxLoginStates)
		}
	})
}

// TestAuditPagesAndDayCounts: keyset pages cover every event once, newest
// first, also among events of the same microsecond; the day counts follow
// every recorded event.
func TestAuditPagesAndDayCounts(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		clock := storetest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		const n = 57
		err := st.InTx(ctx, func(tx *store.Tx) error {
			for i := range n {
				ev := models.AuditEvent{SiteID: site.ID, Event: models.AuditLoginSuccess, ActorAccountID: fmt.Sprintf("acc-%d", i%3)}
				if i%5 == 0 {
					ev.Event, ev.ActorAccountID, ev.Reason = models.AuditLoginFailure, "", "state_unknown"
				}
				if i%10 == 0 {
					clock.Advance(25 * time.Hour)
				}
				if _, err := tx.CreateAuditEvent(site.ID, ev); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var after *store.AuditCursor
		var last time.Time
		for {
			page, err := st.View(ctx).FindAuditPage(site.ID, store.AuditPageQuery{Limit: 7, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range page {
				if seen[ev.ID] {
					t.Fatalf("event %s on two pages", ev.ID)
				}
				if !last.IsZero() && ev.OccurredAt.After(last) {
					t.Fatalf("not newest first")
				}
				seen[ev.ID], last = true, ev.OccurredAt
			}
			if len(page) < 7 {
				break
			}
			after = &store.AuditCursor{OccurredAt: page[len(page)-1].OccurredAt, ID: page[len(page)-1].ID}
		}
		if len(seen) != n {
			t.Errorf("pages covered %d of %d events", len(seen), n)
		}
		page, _ := st.View(ctx).FindAuditPage(site.ID, store.AuditPageQuery{Limit: 100, Event: models.AuditLoginFailure})
		if len(page) != 12 {
			t.Errorf("%d failures; want 12", len(page))
		}
		page, _ = st.View(ctx).FindAuditPage(site.ID, store.AuditPageQuery{Limit: 100, AccountID: "acc-1"})
		for _, ev := range page {
			if ev.ActorAccountID != "acc-1" {
				t.Errorf("account filter let %+v through", ev)
			}
		}
		// A bulk load counts its days too.
		bulk := make([]models.AuditEvent, 2500)
		for i := range bulk {
			bulk[i] = models.AuditEvent{Event: models.AuditLoginSuccess, ActorAccountID: "bulk", OccurredAt: clock.Now().Add(-time.Duration(i) * time.Hour)}
		}
		if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.CreateAuditEvents(site.ID, bulk) }); err != nil {
			t.Fatal(err)
		}
		if page, _ := st.View(ctx).FindAuditPage(site.ID, store.AuditPageQuery{Limit: 5000, AccountID: "bulk"}); len(page) != 2500 {
			t.Errorf("bulk load stored %d events; want 2500", len(page))
		}
		counts, err := st.View(ctx).AuditDayCounts(site.ID, "2026-01-01", "2027-01-01", []models.AuditEventType{models.AuditLoginSuccess, models.AuditLoginFailure})
		if err != nil {
			t.Fatal(err)
		}
		total := int64(0)
		for _, c := range counts {
			total += c.Count
		}
		if total != n+2500 {
			t.Errorf("day counts add up to %d; want %d", total, n+2500)
		}
	})
}
