package store_test

import (
	"context"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// TestTranslateErrorDuplicate inserts a second row with an existing
// client_key at the SQL level: the unique index answers, and TranslateError
// turns the driver's error into a conflict, on both dialects.
func TestTranslateErrorDuplicate(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		site := install(t, st, newSite(1))
		err := store.ExecRaw(context.Background(), st,
			`INSERT INTO sites (id, client_key, base_url, state, installed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			store.NewID("s"), site.ClientKey, "https://dup.atlassian.net", "installed", epoch, epoch)
		if err == nil {
			t.Fatal("a duplicate client_key was accepted")
		}
		wantCode(t, store.TranslateError(err), models.CodeConflict)

		// The same error leaving InTx is translated too.
		err = st.InTx(context.Background(), func(*store.Tx) error { return err })
		wantCode(t, err, models.CodeConflict)

		if store.TranslateError(nil) != nil {
			t.Error("TranslateError(nil) is not nil")
		}
		if n := count(t, st, `SELECT count(*) FROM sites`); n != 1 {
			t.Errorf("%d site rows, want 1", n)
		}
	})
}

func TestInjectedClock(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now))
		if !st.Now().Equal(epoch) {
			t.Errorf("Store.Now = %v, want %v", st.Now(), epoch)
		}
		saved := install(t, st, newSite(1))
		got := findByID(t, st, saved.ID)
		for name, s := range map[string]*models.Site{"SaveInstall": saved, "FindSiteByID": got} {
			if !s.InstalledAt.Equal(epoch) || !s.UpdatedAt.Equal(epoch) {
				t.Errorf("%s: installed %v, updated %v; want the clock's %v", name, s.InstalledAt, s.UpdatedAt, epoch)
			}
			if s.InstalledAt.Location() != time.UTC {
				t.Errorf("%s: InstalledAt in %v, want UTC", name, s.InstalledAt.Location())
			}
		}
	})
}

// TestSavedTimesRoundTrip uses the real clock, which has nanoseconds that
// PostgreSQL cannot store: what SaveInstall returns must still be what a
// later read returns.
func TestSavedTimesRoundTrip(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC))
		st := b.Open(t, storetest.WithNow(clock.Now))
		saved := install(t, st, newSite(1))
		got := findByID(t, st, saved.ID)
		if !got.InstalledAt.Equal(saved.InstalledAt) || !got.UpdatedAt.Equal(saved.UpdatedAt) {
			t.Errorf("SaveInstall returned installed %v, updated %v; the database holds %v, %v",
				saved.InstalledAt, saved.UpdatedAt, got.InstalledAt, got.UpdatedAt)
		}
	})
}
