package profile_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/fakeatlassian"
	"idbridge/app/profile"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// fullListings counts the readings of the whole licence list the fake
// Marketplace served (first pages without a text filter).
func fullListings(m *fakeatlassian.Marketplace) int {
	n := 0
	for _, r := range m.Requests() {
		if !strings.Contains(r, "text=") && strings.HasSuffix(r, "&offset=0") {
			n++
		}
	}
	return n
}

// TestSyncSiteCooldown: a site syncs on demand at most once a minute,
// failed attempts included; sooner is a too_many_requests error in words
// with the wait; other sites are not held by it.
func TestSyncSiteCooldown(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, license("3001", "E-31", "cloud-31", "Ann", "ann@example.com", "Bob", "Acme", "", ""))
		ctx := context.Background()
		site := e.install(t, func(s *models.Site) { s.EntitlementNumber = "E-31" })
		other := e.install(t, func(s *models.Site) { s.EntitlementNumber = "E-31" })
		if _, err := e.svc.SyncSite(ctx, site); err != nil {
			t.Fatal(err)
		}
		calls := len(e.mp.Requests())
		e.clock.Advance(SiteSyncCooldownMinus(time.Second))
		_, err := e.svc.SyncSite(ctx, site)
		var me *models.Error
		if !errors.As(err, &me) {
			t.Fatalf("second press within the cooldown: %v, want a models.Error", err)
		}
		if d := cmp.Diff(map[string]any{"code": models.CodeTooMany, "retryAfter": time.Second, "says try again in 1 seconds": true},
			map[string]any{"code": me.Code, "retryAfter": me.RetryAfter, "says try again in 1 seconds": strings.Contains(me.Message, "try again in 1 seconds")}); d != "" {
			t.Fatalf("second press within the cooldown: %v (-want +got):\n%s", err, d)
		}
		if len(e.mp.Requests()) != calls {
			t.Error("a press within the cooldown called the Marketplace")
		}
		if _, err := e.svc.SyncSite(ctx, other); err != nil {
			t.Errorf("another site is held by this one's cooldown: %v", err)
		}
		e.clock.Advance(time.Second)
		if _, err := e.svc.SyncSite(ctx, site); err != nil {
			t.Fatalf("after the cooldown: %v", err)
		}

		// A failed attempt starts the cooldown too.
		e.clock.Advance(profile.SiteSyncCooldown)
		e.mp.Refuse(true)
		if _, err := e.svc.SyncSite(ctx, site); models.ErrorCode(err) != models.CodeUnavailable {
			t.Fatalf("refused credentials: %v", err)
		}
		e.mp.Refuse(false)
		if _, err := e.svc.SyncSite(ctx, site); models.ErrorCode(err) != models.CodeTooMany {
			t.Fatalf("right after a failed attempt: %v, want too_many_requests", err)
		}
	})
}

// SiteSyncCooldownMinus is the cooldown less d.
func SiteSyncCooldownMinus(d time.Duration) time.Duration { return profile.SiteSyncCooldown - d }

// TestSyncSiteSharesTheLicenceList: twenty admins pressing "sync now" at
// once for sites the text search does not find read the whole licence
// list once between them, and a press within the list's short life reads
// it not at all.
func TestSyncSiteSharesTheLicenceList(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		var lics []map[string]any
		for i := range 120 { // three pages
			lics = append(lics, license(strconv.Itoa(7000+i), "E-7"+strconv.Itoa(i), "cloud-7"+strconv.Itoa(i), "T", "t@example.com", "B", "C", "", ""))
		}
		e := newEnv(t, b, lics...)
		ctx := context.Background()
		var sites []*models.Site
		for i := range 21 {
			// Found by no text search (the SEN is unlisted), nor at all.
			sites = append(sites, e.install(t, func(s *models.Site) { s.ServiceEntitlementNumber = "SEN-none-" + strconv.Itoa(i) }))
		}
		gate := make(chan struct{})
		e.mp.Gate(gate)
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for _, site := range sites[:20] {
			wg.Go(func() {
				p, err := e.svc.SyncSite(ctx, site)
				if err == nil && !strings.Contains(p.SyncStatus, "No Marketplace licence") {
					err = errors.New("status " + p.SyncStatus)
				}
				errs <- err
			})
		}
		// Every press is at the Marketplace (its text search) before any
		// answer comes.
		deadline := time.Now().Add(10 * time.Second)
		for len(e.mp.Requests()) < 20 {
			if time.Now().After(deadline) {
				t.Fatalf("only %d presses reached the Marketplace", len(e.mp.Requests()))
			}
			time.Sleep(2 * time.Millisecond)
		}
		e.mp.Gate(nil)
		close(gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := fullListings(e.mp); n != 1 {
			t.Errorf("20 presses read the whole list %d times, want once", n)
		}
		// Within the list's life: no reading at all.
		if _, err := e.svc.SyncSite(ctx, sites[20]); err != nil || fullListings(e.mp) != 1 {
			t.Errorf("a press within the list's life: %v, %d readings", err, fullListings(e.mp))
		}
		// Later, a new reading.
		e.clock.Advance(5 * time.Minute)
		if _, err := e.svc.SyncSite(ctx, sites[0]); err != nil || fullListings(e.mp) != 2 {
			t.Errorf("a press after the list's life: %v, %d readings, want 2", err, fullListings(e.mp))
		}
	})
}

// sleepRecorder is the transport's sleeper: it records each wait and
// returns at once, without moving the clock, so a wait the limiter asks
// for shows how far behind the budget is.
type sleepRecorder struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (r *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sleeps = append(r.sleeps, d)
	return ctx.Err()
}

func (r *sleepRecorder) take() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sleeps
	r.sleeps = nil
	return out
}

// TestScheduledSyncHasItsOwnBudget: admins pressing "sync now" for twenty
// sites drain the on-demand rate budget (one request a second here, the
// clock standing still), and the scheduled sync that follows waits only on
// its own budget, not behind them.
func TestScheduledSyncHasItsOwnBudget(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		var lics []map[string]any
		for i := range 120 { // three pages for the scheduled sync
			lics = append(lics, license(strconv.Itoa(8000+i), "E-8"+strconv.Itoa(i), "cloud-8"+strconv.Itoa(i), "T", "t@example.com", "B", "C", "", ""))
		}
		mp := newFakeMarketplace(t, lics...)
		rec := &sleepRecorder{}
		clients := atlassian.New(atlassian.Options{AppKey: "idbridge", MaxAttempts: 1, Now: clock.Now, Sleep: rec.Sleep,
			Limiter: atlassian.LimiterOptions{Rate: 1, Burst: 1},
			Base:    &http.Transport{ResponseHeaderTimeout: 2 * time.Second}})
		u, _ := url.Parse(mp.URL())
		svc := profile.New(st, clients.Marketplace(atlassian.MarketplaceConfig{URL: u, VendorID: "1234", User: "vendor@example.com", Token: "vendor-token", AppKey: "idbridge"}), clock.Now, nil)
		e := &env{st: st, svc: svc, mp: mp, clock: clock}
		ctx := context.Background()
		for i := range 20 {
			site := e.install(t, func(s *models.Site) { s.EntitlementNumber = "E-8" + strconv.Itoa(i) })
			if _, err := svc.SyncSite(ctx, site); err != nil {
				t.Fatalf("press %d: %v", i, err)
			}
		}
		pressWaits := rec.take()
		if len(pressWaits) == 0 || pressWaits[len(pressWaits)-1] < 15*time.Second {
			t.Fatalf("the presses waited %v: the on-demand budget is not drained, so this test shows nothing", pressWaits)
		}
		res, ran, err := svc.SyncAll(ctx)
		if err != nil || !ran || res.Matched != 20 {
			t.Fatalf("scheduled sync: %+v, ran %v, %v", res, ran, err)
		}
		for _, d := range rec.take() {
			if d > 3*time.Second {
				t.Errorf("the scheduled sync waited %s behind the on-demand presses; want only its own pace (≤ 2 s for three pages)", d)
			}
		}
	})
}
