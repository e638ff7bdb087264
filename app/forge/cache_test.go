package forge

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"idbridge/app/apptest"
)

// keyMap is a key set the test changes at will.
type keyMap struct {
	mu   sync.Mutex
	keys map[string]*rsa.PublicKey
}

func (m *keyMap) Key(_ context.Context, kid string) (*rsa.PublicKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKid
}

func (m *keyMap) set(kid string, k *rsa.PublicKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k == nil {
		delete(m.keys, kid)
		return
	}
	m.keys[kid] = k
}

// TestVerifiedTokenCache: a token that verified is taken again from the
// cache, but only while its key is still the key set's and never past its
// exp; refusals are not kept.
func TestVerifiedTokenCache(t *testing.T) {
	key, other := apptest.RSAKeys(t)
	clk := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	ks := &keyMap{keys: map[string]*rsa.PublicKey{testKid: &key.PublicKey}}
	var mu sync.Mutex
	how := map[string]int{}
	v := &Verifier{AppID: testAppID, Keys: ks, Now: clk.now, OnVerified: func(h string) { mu.Lock(); how[h]++; mu.Unlock() }}
	ctx := context.Background()
	tok := apptest.SignForgeToken(t, key, testKid, goodClaims(clk.now()))

	first, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	again, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("the same token again: %v", err)
	}
	if *again != *first || again == first {
		t.Errorf("cached invocation %+v (same pointer %v), want a copy of %+v", again, again == first, first)
	}
	if n := v.cache.len(); n != 1 {
		t.Errorf("%d cached tokens, want 1", n)
	}
	if diff := cmp.Diff(map[string]int{"verified": 1, "cached": 1}, map[string]int{"verified": how["verified"], "cached": how["cached"]}); diff != "" {
		t.Errorf("accepted tokens (-want +got):\n%s", diff)
	}

	// Refusals are never kept.
	forged := apptest.SignForgeToken(t, other, testKid, goodClaims(clk.now()))
	for range 2 {
		if _, err := v.Verify(ctx, forged); reasonOf(err) != ReasonBadSignature {
			t.Errorf("forged token: %v", err)
		}
	}
	if n := v.cache.len(); n != 1 {
		t.Errorf("%d cached tokens after refusals, want 1", n)
	}

	// The key set replaces the key of that kid: the cached token is
	// verified afresh, and fails.
	ks.set(testKid, &other.PublicKey)
	if _, err := v.Verify(ctx, tok); reasonOf(err) != ReasonBadSignature {
		t.Errorf("cached token after its key was replaced: %v", err)
	}
	if n := v.cache.len(); n != 0 {
		t.Errorf("%d cached tokens after the key changed, want 0", n)
	}
	// Withdrawn: the same.
	ks.set(testKid, &key.PublicKey)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	ks.set(testKid, nil)
	if _, err := v.Verify(ctx, tok); reasonOf(err) != ReasonUnknownKid {
		t.Errorf("cached token after its key was withdrawn: %v", err)
	}

	// Never past exp: within the leeway a full verification accepts it,
	// beyond it the token is expired although it was cached.
	ks.set(testKid, &key.PublicKey)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute + 10*time.Second)
	if _, ok := v.cache.get(sha256.Sum256([]byte(tok)), clk.now()); ok {
		t.Error("a cache entry outlived its token's exp")
	}
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("10 s past exp (within the leeway): %v", err)
	}
	clk.add(Leeway)
	if _, err := v.Verify(ctx, tok); reasonOf(err) != ReasonExpired {
		t.Errorf("past exp and leeway, once cached: %v", err)
	}
}

// TestVerifiedCacheIsBounded: the cache never holds more than its bound;
// the oldest insertion goes first, so a cycle over more distinct tokens
// than the bound never hits (what the benchmark's fresh-token case
// relies on).
func TestVerifiedCacheIsBounded(t *testing.T) {
	c := newVerifiedCache(8)
	exp := time.Date(2026, 12, 6, 12, 1, 0, 0, time.UTC)
	now := exp.Add(-time.Minute)
	sum := func(i int) (s [sha256.Size]byte) {
		binary.BigEndian.PutUint64(s[:], uint64(i))
		return s
	}
	for i := range 20 {
		c.put(sum(i), verifiedEntry{inv: Invocation{ExpiresAt: exp}})
		if c.len() > 8 {
			t.Fatalf("%d entries after %d puts, bound 8", c.len(), i+1)
		}
	}
	for i := range 20 {
		_, ok := c.get(sum(i), now)
		if want := i >= 12; ok != want {
			t.Errorf("token %d cached = %v, want %v", i, ok, want)
		}
	}
	// A dropped entry frees its place without disturbing the order.
	c.drop(sum(15))
	c.put(sum(100), verifiedEntry{inv: Invocation{ExpiresAt: exp}})
	if _, ok := c.get(sum(12), now); ok {
		t.Error("the oldest entry stayed")
	}
	if _, ok := c.get(sum(100), now); !ok || c.len() > 8 {
		t.Errorf("newest entry missing or bound broken (%d entries)", c.len())
	}
}

// TestRefreshKeepsUnchangedKeys: refreshing the key set keeps a key that
// is published unchanged (its verified tokens stay cached) and replaces
// one whose kid now names another key.
func TestRefreshKeepsUnchangedKeys(t *testing.T) {
	key, other := apptest.RSAKeys(t)
	srv := apptest.NewForgeJWKS(t, testKid, &key.PublicKey)
	j := NewJWKS(srv.URL(), nil, nil)
	ctx := context.Background()
	refresh := func() {
		t.Helper()
		done := make(chan struct{})
		j.mu.Lock()
		j.inflight = done
		j.mu.Unlock()
		if err := j.refresh(ctx, done); err != nil {
			t.Fatal(err)
		}
	}
	k1, err := j.Key(ctx, testKid)
	if err != nil {
		t.Fatal(err)
	}
	refresh()
	if k2, _ := j.Key(ctx, testKid); k2 != k1 {
		t.Error("an unchanged key became another value on refresh")
	}
	srv.Publish(testKid, &other.PublicKey)
	refresh()
	if k3, _ := j.Key(ctx, testKid); k3 == k1 || !k3.Equal(&other.PublicKey) {
		t.Error("a replaced key was kept")
	}
}
