package sites

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

func saveSite(tb testing.TB, st *store.Store, clientKey, secret string, notify bool) {
	tb.Helper()
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		if _, err := tx.SaveInstall(&models.Site{
			SiteFacts:    models.SiteFacts{ClientKey: clientKey, BaseURL: "https://a.atlassian.net"},
			SharedSecret: []byte(secret),
		}); err != nil {
			return err
		}
		if notify {
			return tx.Notify(NotifyChannel, clientKey)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// TestRunKeepsCachesTrue: Run closes ready (at once on SQLite, where there
// is no other replica; once listening on PostgreSQL), and on PostgreSQL a
// change announced by another store drops the cached site and its admin
// answers.
func TestRunKeepsCachesTrue(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Unix(1_700_000_000, 0))
		st := b.Open(t, storetest.WithNow(clock.Now))
		s := New(Config{}, st, nil, nil, clock.Now, nil)
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, ready) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			t.Fatal("ready not closed within 10 s")
		}
		if b.Name != store.Postgres {
			return
		}

		saveSite(t, st, "client-1", "secret-one-0123456789abcdef0123456789", false)
		site, err := s.siteByClientKey(ctx, "client-1")
		if err != nil {
			t.Fatal(err)
		}
		s.admins.putIfCurrent(s.admins.generation(), adminKey{"client-1", "acc"}, true)

		other := b.Open(t, storetest.SameDatabase(st))
		saveSite(t, other, "client-1", "secret-two-0123456789abcdef0123456789", false)
		if got, _ := s.siteByClientKey(ctx, "client-1"); string(got.SharedSecret) != string(site.SharedSecret) {
			t.Fatal("the site is not cached, so this test shows nothing")
		}
		saveSite(t, other, "client-1", "secret-three-0123456789abcdef012345678", true)
		deadline := time.Now().Add(5 * time.Second)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			got, err := s.siteByClientKey(ctx, "client-1")
			if err != nil {
				t.Fatal(err)
			}
			if string(got.SharedSecret) == "secret-three-0123456789abcdef012345678" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the announced change did not drop the cached site within 5 s")
			}
			<-tick.C
		}
		if _, ok := s.admins.get(adminKey{"client-1", "acc"}); ok {
			t.Error("the site's admin answers survived the change")
		}
	})
}

// TestForgetDropsAdminAnswersOfUncachedSite: a site's admin answers go
// with it even when the site itself has already left the cache.
func TestForgetDropsAdminAnswersOfUncachedSite(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := New(Config{}, nil, nil, nil, func() time.Time { return now }, nil)
	s.admins.putIfCurrent(s.admins.generation(), adminKey{"client-1", "acc"}, true)
	s.admins.putIfCurrent(s.admins.generation(), adminKey{"client-2", "acc"}, true)
	s.forget("client-1")
	if _, ok := s.admins.get(adminKey{"client-1", "acc"}); ok {
		t.Error("forget kept the admin answer of a site that was not cached")
	}
	if _, ok := s.admins.get(adminKey{"client-2", "acc"}); !ok {
		t.Error("forget dropped another site's admin answer")
	}
}

// TestUnknownIssuersLeaveNothingCached: a flood of tokens naming sites
// that do not exist (well-shaped issuers that need a lookup, and junk ones
// refused by shape) adds no entry to the site cache and no single-flight
// call that outlives its request, on either database.
func TestUnknownIssuersLeaveNothingCached(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Unix(1_700_000_000, 0))
		st := b.Open(t, storetest.WithNow(clock.Now))
		saveSite(t, st, "client-1", "secret-one-0123456789abcdef0123456789", false)
		var reasons []string
		s := New(Config{BaseURL: &url.URL{Scheme: "https", Host: "idbridge.test"}}, st, nil, nil, clock.Now, nil)
		s.OnAuthFailure = func(reason string) { reasons = append(reasons, reason) }
		for i := range 500 {
			iss := fmt.Sprintf("unknown-%d", i)
			if i%2 == 1 {
				iss = fmt.Sprintf("junk\x00%d\xff", i)
			}
			quoted, _ := json.Marshal(iss)
			token := hs256(t, fmt.Sprintf(`{"iss":%s,"sub":"acc","qsh":"context-qsh","iat":%d,"exp":%d}`,
				quoted, clock.Now().Unix(), clock.Now().Add(time.Minute).Unix()))
			r := httptest.NewRequest(http.MethodGet, "https://idbridge.test/api/admin/site", nil)
			r.Header.Set("Authorization", "JWT "+token)
			if _, err := s.AuthenticateContext(r); models.ErrorCode(err) != models.CodeUnauthorized {
				t.Fatalf("issuer %q: %v, want unauthorized", iss, err)
			}
		}
		if n := s.sites.len(); n != 0 {
			t.Errorf("the site cache holds %d entries after unknown issuers, want 0", n)
		}
		s.siteLoads.mu.Lock()
		inflight := len(s.siteLoads.calls)
		s.siteLoads.mu.Unlock()
		if inflight != 0 {
			t.Errorf("%d single-flight calls left behind", inflight)
		}
		counts := map[string]int{}
		for _, r := range reasons {
			counts[r]++
		}
		if d := cmp.Diff(map[string]int{"unknown_site": 250, "bad_iss": 250}, counts); d != "" {
			t.Errorf("failure reasons (-want +got):\n%s", d)
		}
	})
}

// hs256 signs payload with a secret no site has: enough for a token whose
// issuer is looked up and that never verifies.
func hs256(tb testing.TB, payload string) string {
	tb.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	input := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(input, []byte("not-any-site-secret"))
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + enc(sig)
}
