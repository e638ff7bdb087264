package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

func strp(s string) *string { return &s }

func correct(tb testing.TB, st *store.Store, siteID string, changes ...models.ProfileChange) (*models.CustomerProfile, []models.ProfileField) {
	tb.Helper()
	var p *models.CustomerProfile
	var changed []models.ProfileField
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		p, changed, err = tx.CorrectCustomerProfile(siteID, changes)
		return err
	})
	if err != nil {
		tb.Fatalf("CorrectCustomerProfile: %v", err)
	}
	return p, changed
}

func syncProfile(tb testing.TB, st *store.Store, siteID string, values map[models.ProfileField]string) *models.CustomerProfile {
	tb.Helper()
	var p *models.CustomerProfile
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		p, err = tx.ApplyProfileSync(siteID, values, models.SourceMarketplace, "Matched.")
		return err
	})
	if err != nil {
		tb.Fatalf("ApplyProfileSync: %v", err)
	}
	return p
}

func TestCustomerProfileCorrectionsWinUntilCleared(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		ctx := context.Background()
		if _, err := st.View(ctx).FindCustomerProfile(site.ID); !models.IsNotFound(err) {
			t.Fatalf("profile of a new site: %v, want not found", err)
		}

		t1 := clock.Now()
		p := syncProfile(t, st, site.ID, map[models.ProfileField]string{models.ProfileName: "Ann Market", models.ProfileEmail: "ann@market.example"})
		if d := profileValueDiff(map[string]any{"value": "Ann Market", "source": models.SourceMarketplace, "updatedAt": t1}, p.Field(models.ProfileName)); d != "" {
			t.Fatalf("after sync: name (-want +got):\n%s", d)
		}
		if p.LastSyncAt == nil || p.SyncStatus != "Matched." {
			t.Errorf("sync status: %v %q", p.LastSyncAt, p.SyncStatus)
		}

		clock.Advance(time.Hour)
		t2 := clock.Now()
		p, changed := correct(t, st, site.ID, models.ProfileChange{Field: models.ProfileName, Value: strp("Ann Admin")},
			models.ProfileChange{Field: models.ProfileCompany, Value: strp("")})
		if !slices.Equal(changed, []models.ProfileField{models.ProfileName, models.ProfileCompany}) {
			t.Errorf("changed = %v", changed)
		}
		if d := profileValueDiff(map[string]any{"value": "Ann Admin", "source": models.SourceAdmin, "updatedAt": t2, "synced": "Ann Market"},
			p.Field(models.ProfileName)); d != "" {
			t.Fatalf("after correction: name (-want +got):\n%s", d)
		}
		if d := profileValueDiff(map[string]any{"value": "", "source": models.SourceAdmin}, p.Field(models.ProfileCompany)); d != "" {
			t.Errorf("a correction to empty, want empty with source admin (-want +got):\n%s", d)
		}

		// A later sync updates the synced value, the correction still wins.
		clock.Advance(time.Hour)
		p = syncProfile(t, st, site.ID, map[models.ProfileField]string{models.ProfileName: "Ann Renamed"})
		if d := profileValueDiff(map[string]any{"value": "Ann Admin", "source": models.SourceAdmin, "synced": "Ann Renamed"}, p.Field(models.ProfileName)); d != "" {
			t.Fatalf("after a later sync, want the correction to win (-want +got):\n%s", d)
		}
		if v := p.Field(models.ProfileEmail); v.Value() != "ann@market.example" || !v.UpdatedAt().Equal(t1) {
			t.Errorf("a field the sync left out changed: %+v", v)
		}

		// The same correction again changes nothing.
		if _, changed := correct(t, st, site.ID, models.ProfileChange{Field: models.ProfileName, Value: strp("Ann Admin")}); len(changed) != 0 {
			t.Errorf("repeating a correction changed %v", changed)
		}
		// Clearing it brings back the latest synced value.
		p, changed = correct(t, st, site.ID, models.ProfileChange{Field: models.ProfileName})
		if !slices.Equal(changed, []models.ProfileField{models.ProfileName}) {
			t.Errorf("changed = %v", changed)
		}
		if d := profileValueDiff(map[string]any{"value": "Ann Renamed", "source": models.SourceMarketplace, "corrected": false}, p.Field(models.ProfileName)); d != "" {
			t.Errorf("after clearing: name (-want +got):\n%s", d)
		}
		// Clearing what is not corrected changes nothing.
		if _, changed := correct(t, st, site.ID, models.ProfileChange{Field: models.ProfileLocation}); len(changed) != 0 {
			t.Errorf("clearing nothing changed %v", changed)
		}
	})
}

func TestCustomerProfileSyncErasesRTBF(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		site := install(t, st, newSite(1))
		syncProfile(t, st, site.ID, map[models.ProfileField]string{models.ProfileEmail: "gone@example.com", models.ProfileName: "Gone"})
		// The sync maps "RTBF" to "": the field is cleared, source too.
		p := syncProfile(t, st, site.ID, map[models.ProfileField]string{models.ProfileEmail: ""})
		if d := profileValueDiff(map[string]any{"value": "", "source": models.ProfileSource(""), "synced": ""}, p.Field(models.ProfileEmail)); d != "" {
			t.Errorf("erased email (-want +got):\n%s", d)
		}
		if v := p.Field(models.ProfileName); v.Value() != "Gone" {
			t.Errorf("name: %+v", v)
		}
	})
}

func TestCustomerProfilesAreSeparatePerSite(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		a := install(t, st, newSite(1))
		c := install(t, st, newSite(2))
		correct(t, st, a.ID, models.ProfileChange{Field: models.ProfileName, Value: strp("Site A")})
		if _, err := st.View(context.Background()).FindCustomerProfile(c.ID); !models.IsNotFound(err) {
			t.Errorf("site c sees a profile after a's correction: %v", err)
		}
		// A correction for a site that does not exist is refused.
		err := st.InTx(context.Background(), func(tx *store.Tx) error {
			_, _, err := tx.CorrectCustomerProfile("s_nope", []models.ProfileChange{{Field: models.ProfileName, Value: strp("x")}})
			return err
		})
		if err == nil {
			t.Error("a correction for an unknown site was stored")
		}
	})
}

func TestConcurrentCorrectionsSerialise(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		site := install(t, st, newSite(1))
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				v := string(rune('A' + i))
				errs <- st.InTx(context.Background(), func(tx *store.Tx) error {
					_, _, err := tx.CorrectCustomerProfile(site.ID, []models.ProfileChange{{Field: models.ProfileName, Value: &v}})
					return err
				})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent correction: %v", err)
			}
		}
	})
}

func TestAuditEventsRecordAndRollBack(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		site := install(t, st, newSite(1))
		other := install(t, st, newSite(2))
		ctx := context.Background()
		err := st.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.CreateAuditEvent(site.ID, models.AuditEvent{ActorAccountID: "557058:admin", Event: models.AuditConfigChanged,
				Section: "service_account", Fields: []string{"email", "token"}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err = st.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.CreateAuditEvent(site.ID, models.AuditEvent{ActorAccountID: "557058:admin", Event: models.AuditRecordCorrected}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		evs, err := st.View(ctx).FindAuditEvents(site.ID, store.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1 (the rolled-back one must not be there): %+v", len(evs), evs)
		}
		ev := evs[0]
		if d := cmp.Diff(map[string]any{"event": models.AuditConfigChanged, "actor": "557058:admin", "section": "service_account",
			"fields": []string{"email", "token"}, "occurredAt": clock.Now(), "has id": true, "siteId": site.ID},
			map[string]any{"event": ev.Event, "actor": ev.ActorAccountID, "section": ev.Section,
				"fields": ev.Fields, "occurredAt": ev.OccurredAt, "has id": ev.ID != "", "siteId": ev.SiteID}); d != "" {
			t.Errorf("event (-want +got):\n%s", d)
		}
		if evs, _ := st.View(ctx).FindAuditEvents(other.ID, store.AuditQuery{}); len(evs) != 0 {
			t.Errorf("another site sees %d events", len(evs))
		}
		if evs, _ := st.View(ctx).FindAuditEvents(site.ID, store.AuditQuery{AccountID: "557058:other"}); len(evs) != 0 {
			t.Errorf("filter by another account found %d events", len(evs))
		}
		if evs, _ := st.View(ctx).FindAuditEvents(site.ID, store.AuditQuery{Event: models.AuditConfigChanged, From: clock.Now(), To: clock.Now().Add(time.Second)}); len(evs) != 1 {
			t.Errorf("filter by event and time found %d events, want 1", len(evs))
		}
		err = st.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.CreateAuditEvent(site.ID, models.AuditEvent{Event: "made_up"})
			return err
		})
		wantCode(t, err, models.CodeInvalid)
	})
}

func TestJobRunsAndTryLock(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		ctx := context.Background()
		if _, err := st.View(ctx).FindJobRun("sync"); !models.IsNotFound(err) {
			t.Fatalf("FindJobRun of a job that never ran: %v", err)
		}
		if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.StartJobRun("sync") }); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.FinishJobRun("sync", "ok", "3 sites") }); err != nil {
			t.Fatal(err)
		}
		run, err := st.View(ctx).FindJobRun("sync")
		if err != nil || run.LastStartedAt == nil || !run.LastStartedAt.Equal(epoch) || run.LastFinishedAt == nil ||
			!run.LastFinishedAt.Equal(clock.Now()) || run.LastStatus != "ok" || run.LastMessage != "3 sites" {
			t.Fatalf("FindJobRun = %+v, %v", run, err)
		}

		release, ok, err := st.TryLock(ctx, "sync")
		if err != nil || !ok {
			t.Fatalf("TryLock = %v, %v", ok, err)
		}
		if b.Name == store.Postgres {
			other := b.Open(t, storetest.SameDatabase(st))
			if _, ok, err := other.TryLock(ctx, "sync"); err != nil || ok {
				t.Fatalf("a second replica took the held lock: %v, %v", ok, err)
			}
			if rel, ok, err := other.TryLock(ctx, "another job"); err != nil || !ok {
				t.Fatalf("another lock name: %v, %v", ok, err)
			} else {
				rel()
			}
			release()
			rel, ok, err := other.TryLock(ctx, "sync")
			if err != nil || !ok {
				t.Fatalf("after release the other replica cannot lock: %v, %v", ok, err)
			}
			rel()
		} else {
			release()
		}
	})
}

// profileValueDiff compares the parts of v that want names ("value",
// "source", "synced", "updatedAt", "corrected") with want, as a go-cmp diff
// (-want +got); "" when they are equal.
func profileValueDiff(want map[string]any, v models.ProfileValue) string {
	all := map[string]any{"value": v.Value(), "source": v.Source(), "synced": v.Synced, "corrected": v.Correction != nil, "updatedAt": nil}
	if at := v.UpdatedAt(); at != nil {
		all["updatedAt"] = *at
	}
	got := map[string]any{}
	for k := range want {
		got[k] = all[k]
	}
	return cmp.Diff(want, got)
}
