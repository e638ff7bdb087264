package store_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"idbridge/app/secret"
	"idbridge/app/store"
	"idbridge/app/store/storetest"

	"github.com/google/go-cmp/cmp"
)

type keyCheck struct {
	KeyID     string
	Sealed    []byte
	CreatedAt time.Time
	RetiredAt *time.Time
}

func keyChecks(tb testing.TB, st *store.Store) []keyCheck {
	tb.Helper()
	var rows []keyCheck
	if err := store.ScanRaw(context.Background(), st, &rows, `SELECT key_id, sealed, created_at, retired_at FROM key_checks ORDER BY key_id`); err != nil {
		tb.Fatalf("read key_checks: %v", err)
	}
	return rows
}

// keyCheckState is a key_checks row as tests compare it: which key, and
// whether it is retired.
type keyCheckState struct {
	KeyID   string
	Retired bool
}

func keyCheckStates(rows []keyCheck) []keyCheckState {
	out := make([]keyCheckState, 0, len(rows))
	for _, r := range rows {
		out = append(out, keyCheckState{KeyID: r.KeyID, Retired: r.RetiredAt != nil})
	}
	return out
}

func sameChecks(a, b []keyCheck) bool {
	return slices.EqualFunc(a, b, func(x, y keyCheck) bool {
		return x.KeyID == y.KeyID && bytes.Equal(x.Sealed, y.Sealed) && (x.RetiredAt == nil) == (y.RetiredAt == nil)
	})
}

// sealedKeyIDs counts the sites' sealed secrets by the key that sealed them.
func sealedKeyIDs(tb testing.TB, st *store.Store) map[string]int {
	tb.Helper()
	var rows []struct{ SharedSecret []byte }
	if err := store.ScanRaw(context.Background(), st, &rows, `SELECT shared_secret FROM sites WHERE shared_secret IS NOT NULL`); err != nil {
		tb.Fatalf("read sites.shared_secret: %v", err)
	}
	ids := map[string]int{}
	for _, r := range rows {
		kid, err := secret.KeyID(r.SharedSecret)
		if err != nil {
			tb.Fatalf("stored value: %v", err)
		}
		ids[kid]++
	}
	return ids
}

func TestCheckKeyRingRecordsPrimary(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(epoch)
		st := b.Open(t, storetest.WithNow(clock.Now)) // runs CheckKeyRing
		checks := keyChecks(t, st)
		if d := cmp.Diff([]keyCheckState{{KeyID: "test1", Retired: false}}, keyCheckStates(checks)); d != "" {
			t.Fatalf("key_checks, want one live row for test1 (-want +got):\n%s", d)
		}
		if !checks[0].CreatedAt.Equal(epoch) {
			t.Fatalf("key_checks row created at %v, want %v", checks[0].CreatedAt, epoch)
		}
		if kid, err := secret.KeyID(checks[0].Sealed); err != nil || kid != "test1" {
			t.Errorf("check value sealed with %q, %v", kid, err)
		}
		clock.Advance(time.Hour)
		if err := st.CheckKeyRing(context.Background()); err != nil {
			t.Fatalf("second CheckKeyRing: %v", err)
		}
		if again := keyChecks(t, st); !sameChecks(again, checks) || !again[0].CreatedAt.Equal(epoch) {
			t.Errorf("second CheckKeyRing changed key_checks: %+v", again)
		}
	})
}

func TestCheckKeyRingRefusesOtherKeyUnderSameID(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := b.Open(t)
		site := install(t, st, newSite(1))
		before := keyChecks(t, st)
		raw := rawSecret(t, st, site.ID)

		impostor := storetest.NewKey(t, "test1") // same ID, other bytes
		for name, ring := range map[string]*secret.Ring{
			"alone":          storetest.NewRing(t, impostor),
			"behind new key": storetest.NewRing(t, storetest.NewKey(t, "k2"), impostor),
		} {
			other := b.Open(t, storetest.SameDatabase(st), storetest.WithRing(ring), storetest.NoKeyCheck())
			err := other.CheckKeyRing(ctx)
			if err == nil {
				t.Fatalf("%s: CheckKeyRing accepted a different key under ID test1", name)
			}
			if !strings.Contains(err.Error(), `"test1"`) {
				t.Errorf("%s: error %q does not name key test1", name, err)
			}
			if after := keyChecks(t, st); !sameChecks(after, before) {
				t.Errorf("%s: key_checks changed: %+v, was %+v", name, after, before)
			}
		}
		if !bytes.Equal(rawSecret(t, st, site.ID), raw) {
			t.Error("the site's sealed secret changed")
		}
		if got := findByID(t, st, site.ID); !bytes.Equal(got.SharedSecret, newSite(1).SharedSecret) {
			t.Errorf("the right key no longer opens the site: %q", got.SharedSecret)
		}
	})
}

func TestCheckKeyRingRefusesMissingKey(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		install(t, st, newSite(1))
		before := keyChecks(t, st)

		other := b.Open(t, storetest.SameDatabase(st), storetest.WithRing(storetest.NewRing(t, storetest.NewKey(t, "k2"))), storetest.NoKeyCheck())
		err := other.CheckKeyRing(context.Background())
		if err == nil {
			t.Fatal("CheckKeyRing accepted a ring without the key the data is sealed with")
		}
		if !strings.Contains(err.Error(), `"test1"`) {
			t.Errorf("error %q does not name key test1", err)
		}
		if after := keyChecks(t, st); !sameChecks(after, before) {
			t.Errorf("key_checks changed: %+v, was %+v", after, before)
		}
	})
}

func TestRotateKeys(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		k1, k2 := storetest.NewKey(t, "k1"), storetest.NewKey(t, "k2")
		old := b.Open(t, storetest.WithRing(storetest.NewRing(t, k1)))
		const n = 1200
		sites := installMany(t, old, n)

		st := b.Open(t, storetest.SameDatabase(old), storetest.WithRing(storetest.NewRing(t, k2, k1)))
		var batches []int
		res, err := st.RotateKeys(ctx, 500, func(table string, rotated int) {
			if table != "sites" {
				t.Errorf("progress for table %q", table)
			}
			batches = append(batches, rotated)
		})
		if err != nil {
			t.Fatalf("RotateKeys: %v", err)
		}
		if !slices.Equal(batches, []int{500, 500, 200}) {
			t.Errorf("progress reported batches %v, want [500 500 200]", batches)
		}
		want := res
		want.Scanned, want.Rotated, want.PrimaryID, want.Retired = n, n, "k2", []string{"k1"}
		if d := cmp.Diff(want, res); d != "" {
			t.Errorf("RotateKeys (-want +got):\n%s", d)
		}
		if d := cmp.Diff(map[string]int{"k2": n}, sealedKeyIDs(t, st)); d != "" {
			t.Errorf("sealed values by key after rotation, want all under k2 (-want +got):\n%s", d)
		}
		checks := keyChecks(t, st)
		if d := cmp.Diff([]keyCheckState{{KeyID: "k1", Retired: true}, {KeyID: "k2", Retired: false}}, keyCheckStates(checks)); d != "" {
			t.Errorf("key_checks, want k1 retired and k2 live (-want +got):\n%s", d)
		}

		// Nothing left to do.
		if again, err := st.RotateKeys(ctx, 500, nil); err != nil {
			t.Errorf("second RotateKeys: %v", err)
		} else if d := cmp.Diff(map[string]int{"rotated": 0, "retired": 0}, map[string]int{"rotated": again.Rotated, "retired": len(again.Retired)}); d != "" {
			t.Errorf("second RotateKeys, want nothing rotated or retired (-want +got):\n%s", d)
		}

		// The old key may now leave the ring.
		onlyNew := b.Open(t, storetest.SameDatabase(old), storetest.WithRing(storetest.NewRing(t, k2))) // runs CheckKeyRing
		tx := onlyNew.View(ctx)
		for id, want := range sites {
			got, err := tx.FindSiteByID(id)
			if err != nil {
				t.Fatalf("FindSiteByID(%s) with ring [k2]: %v", id, err)
			}
			if !bytes.Equal(got.SharedSecret, want.SharedSecret) {
				t.Fatalf("site %s: secret %q, want %q", id, got.SharedSecret, want.SharedSecret)
			}
		}
	})
}

func TestRotateKeysResumes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		k1, k2 := storetest.NewKey(t, "k1"), storetest.NewKey(t, "k2")
		old := b.Open(t, storetest.WithRing(storetest.NewRing(t, k1)))
		const n = 1100
		installMany(t, old, n)
		st := b.Open(t, storetest.SameDatabase(old), storetest.WithRing(storetest.NewRing(t, k2, k1)))

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		calls := 0
		_, err := st.RotateKeys(ctx, 500, func(string, int) {
			calls++
			cancel() // stop after the first batch
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted RotateKeys: %v; want context.Canceled", err)
		}
		if calls != 1 {
			t.Errorf("progress called %d times, want 1", calls)
		}
		if d := cmp.Diff(map[string]int{"k2": 500, "k1": n - 500}, sealedKeyIDs(t, st)); d != "" {
			t.Errorf("sealed values by key after the interruption (-want +got):\n%s", d)
		}
		for _, c := range keyChecks(t, st) {
			if c.RetiredAt != nil {
				t.Errorf("key %s retired by an interrupted rotation", c.KeyID)
			}
		}

		res, err := st.RotateKeys(context.Background(), 500, nil)
		if err != nil {
			t.Fatalf("resumed RotateKeys: %v", err)
		}
		want := res
		want.Scanned, want.Rotated, want.Retired = n, n-500, []string{"k1"}
		if d := cmp.Diff(want, res); d != "" {
			t.Errorf("resumed RotateKeys (-want +got):\n%s", d)
		}
		if d := cmp.Diff(map[string]int{"k2": n}, sealedKeyIDs(t, st)); d != "" {
			t.Errorf("sealed values by key after resuming, want all under k2 (-want +got):\n%s", d)
		}
		b.Open(t, storetest.SameDatabase(old), storetest.WithRing(storetest.NewRing(t, k2))) // CheckKeyRing passes
	})
}

// TestCheckKeyRingRevivesRetiredPrimary puts a retired key back in front of
// the ring. It seals again from then on, so it must stop counting as
// retired: otherwise a later ring without it would pass CheckKeyRing and
// fail to open what it sealed.
func TestCheckKeyRingRevivesRetiredPrimary(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		k1, k2 := storetest.NewKey(t, "k1"), storetest.NewKey(t, "k2")
		old := b.Open(t, storetest.WithRing(storetest.NewRing(t, k1)))
		install(t, old, newSite(1))
		rotated := b.Open(t, storetest.SameDatabase(old), storetest.WithRing(storetest.NewRing(t, k2, k1)))
		if _, err := rotated.RotateKeys(ctx, 500, nil); err != nil {
			t.Fatalf("RotateKeys: %v", err)
		}

		back := b.Open(t, storetest.SameDatabase(old), storetest.WithRing(storetest.NewRing(t, k1, k2))) // CheckKeyRing passes
		site := install(t, back, newSite(2))
		if ids := sealedKeyIDs(t, back); ids["k1"] != 1 {
			t.Fatalf("sealed values by key: %v; want site 2 under k1", ids)
		}
		for _, c := range keyChecks(t, back) {
			if c.KeyID == "k1" && c.RetiredAt != nil {
				t.Error("k1 seals again but its check row is still retired")
			}
		}
		withoutK1 := b.Open(t, storetest.SameDatabase(old), storetest.WithRing(storetest.NewRing(t, k2)), storetest.NoKeyCheck())
		err := withoutK1.CheckKeyRing(ctx)
		if err == nil || !strings.Contains(err.Error(), `"k1"`) {
			_, ferr := withoutK1.View(ctx).FindSiteByID(site.ID)
			t.Fatalf("CheckKeyRing with ring [k2] = %v, want an error naming k1 (site 2 then fails with: %v)", err, ferr)
		}
	})
}
