package provisioning

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// The SCIM token cache holds entries only for sites that exist, have a
// token and were asked for: requests for unknown sites (well-formed random
// IDs) or malformed ones (long random paths: 571 MB in 8 s before) add no
// entry, and the cache never holds more than tokenCacheMax entries,
// dropping expired ones first.
func TestTokenCacheBoundedNoMisses(t *testing.T) {
	t.Parallel()
	b := postgresBackend(t)
	st := b.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := NewService(ServiceConfig{}, st, nil, nil)
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the cache listens", func() bool { return svc.tokens.listening.Load() })

	var site *models.Site
	if err := st.InTx(ctx, func(tx *store.Tx) error {
		var err error
		site, err = tx.SaveInstall(&models.Site{
			SiteFacts:    models.SiteFacts{ClientKey: "c", BaseURL: "https://a.atlassian.net"},
			SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	token, err := svc.RotateToken(ctx, &models.Caller{Site: site, AccountID: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		var b [16]byte
		_, _ = rand.Read(b[:])
		ids := []string{store.NewID("s"), "s_" + hex.EncodeToString(b[:]), strings.Repeat(fmt.Sprint(i), 5000)}
		for _, id := range ids {
			if _, err := svc.Admit(ctx, id, token, false); models.ErrorCode(err) != models.CodeUnauthorized {
				t.Fatalf("site %.40q: %v, want unauthorized", id, err)
			}
		}
	}
	if n := svc.tokens.len(); n != 0 {
		t.Fatalf("%d cache entries after requests for sites that do not exist", n)
	}
	if n := svc.cap.inFlight(); n != 0 {
		t.Fatalf("%d sites counted in flight after requests for sites that do not exist", n)
	}
	waitFor(t, "the site's credentials are cached", func() bool {
		end, err := svc.Admit(ctx, site.ID, token, true)
		if err != nil {
			t.Fatal(err)
		}
		end()
		return svc.tokens.len() == 1
	})
	// A site's share is counted while its requests are in flight only.
	end, err := svc.Admit(ctx, site.ID, token, false)
	if err != nil || svc.cap.inFlight() != 1 {
		t.Fatalf("admit: %v, %d sites in flight", err, svc.cap.inFlight())
	}
	end()
	if n := svc.cap.inFlight(); n != 0 {
		t.Fatalf("%d sites in flight after the request ended", n)
	}

	// The bound, on the cache itself: full of live entries, one more
	// makes room; expired ones go first.
	clock := storetest.NewClock(time.Now())
	c := &tokenCache{entries: map[string]tokenEntry{}, now: clock.Now}
	c.listening.Store(true)
	for i := range tokenCacheMax + 100 {
		c.put(c.generation(), fmt.Sprintf("s%d", i), store.SCIMCredentials{})
	}
	if n := c.len(); n != tokenCacheMax {
		t.Fatalf("%d entries, want the bound %d", n, tokenCacheMax)
	}
	clock.Advance(tokenCacheTTL + time.Second)
	c.put(c.generation(), "fresh", store.SCIMCredentials{})
	if n := c.len(); n != 1 {
		t.Fatalf("%d entries after expiry, want only the fresh one", n)
	}
}

// postgresBackend returns the PostgreSQL backend or skips: the token cache
// exists on PostgreSQL only.
func postgresBackend(t *testing.T) storetest.Backend {
	t.Helper()
	for _, be := range storetest.Backends(t) {
		if be.Name == store.Postgres {
			return be
		}
	}
	t.Skip(storetest.EnvDatabaseURL + " is not set: the token cache exists on PostgreSQL only")
	return storetest.Backend{}
}
