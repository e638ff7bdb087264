package connect

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// keyServer is an httptest install-key server that counts requests per kid.
type keyServer struct {
	*httptest.Server
	mu      sync.Mutex
	hits    map[string]int
	keys    map[string][]byte // kid -> body answered with 200
	status  map[string]int    // kid -> status answered instead
	block   map[string]chan struct{}
	timeout map[string]bool // kid -> answer only when the client gives up
}

func newKeyServer(tb testing.TB) *keyServer {
	tb.Helper()
	ks := &keyServer{
		hits:    map[string]int{},
		keys:    map[string][]byte{},
		status:  map[string]int{},
		block:   map[string]chan struct{}{},
		timeout: map[string]bool{},
	}
	ks.Server = httptest.NewServer(http.HandlerFunc(ks.serve))
	tb.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) serve(w http.ResponseWriter, r *http.Request) {
	kid := strings.TrimPrefix(r.URL.Path, "/")
	ks.mu.Lock()
	ks.hits[kid]++
	body, ok := ks.keys[kid]
	status := ks.status[kid]
	block := ks.block[kid]
	slow := ks.timeout[kid]
	ks.mu.Unlock()
	if block != nil {
		<-block
	}
	if slow {
		// Longer than any test client's timeout: answer only after the
		// client has given up (or, as a bound, after 10 s).
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(body)
}

func (ks *keyServer) set(kid string, body []byte) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys[kid] = body
}

func (ks *keyServer) hitCount(kid string) int {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.hits[kid]
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestKeyFetcherCacheHitAndTTL(t *testing.T) {
	a, b := rsaKeys(t)
	ks := newKeyServer(t)
	ks.set("k1", publicPEM(t, &a.PublicKey))
	clock := &fakeClock{t: testNow}
	f := NewKeyFetcher(ks.Client(), time.Hour, 10, clock.Now)
	ctx := context.Background()

	for range 3 {
		k, err := f.PublicKey(ctx, ks.URL, "k1")
		if err != nil {
			t.Fatal(err)
		}
		if !k.Equal(&a.PublicKey) {
			t.Fatal("wrong key")
		}
	}
	if n := ks.hitCount("k1"); n != 1 {
		t.Fatalf("server hit %d times, want 1 (cache hits)", n)
	}
	// A trailing slash on the server names the same cache entry.
	if _, err := f.PublicKey(ctx, ks.URL+"/", "k1"); err != nil || ks.hitCount("k1") != 1 {
		t.Fatalf("trailing slash missed the cache: %v, hits %d", err, ks.hitCount("k1"))
	}

	clock.Advance(59 * time.Minute)
	if _, err := f.PublicKey(ctx, ks.URL, "k1"); err != nil || ks.hitCount("k1") != 1 {
		t.Fatalf("refetched before the TTL: %v, hits %d", err, ks.hitCount("k1"))
	}
	// After the TTL the key is fetched again, and a changed key is seen.
	ks.set("k1", publicPEM(t, &b.PublicKey))
	clock.Advance(2 * time.Minute)
	k, err := f.PublicKey(ctx, ks.URL, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if ks.hitCount("k1") != 2 || !k.Equal(&b.PublicKey) {
		t.Fatalf("after TTL: hits %d, new key %v", ks.hitCount("k1"), k.Equal(&b.PublicKey))
	}
}

func TestKeyFetcherBoundEvictsOldest(t *testing.T) {
	a, _ := rsaKeys(t)
	ks := newKeyServer(t)
	for _, kid := range []string{"k1", "k2", "k3"} {
		ks.set(kid, publicPEM(t, &a.PublicKey))
	}
	f := NewKeyFetcher(ks.Client(), time.Hour, 2, nil)
	ctx := context.Background()
	fetch := func(kid string) {
		t.Helper()
		if _, err := f.PublicKey(ctx, ks.URL, kid); err != nil {
			t.Fatal(err)
		}
	}
	fetch("k1")
	fetch("k2")
	fetch("k3") // evicts k1
	fetch("k2")
	fetch("k3")
	if d := cmp.Diff(map[string]int{"k2": 1, "k3": 1}, map[string]int{"k2": ks.hitCount("k2"), "k3": ks.hitCount("k3")}); d != "" {
		t.Fatalf("k2/k3 refetched: hits by kid (-want +got):\n%s", d)
	}
	fetch("k1")
	if ks.hitCount("k1") != 2 {
		t.Fatalf("k1 hits = %d, want 2 (evicted as oldest)", ks.hitCount("k1"))
	}
	f.mu.Lock()
	n := f.order.Len()
	f.mu.Unlock()
	if n != 2 {
		t.Fatalf("cache holds %d keys, want 2", n)
	}
}

func TestKeyFetcherSingleflight(t *testing.T) {
	a, _ := rsaKeys(t)
	ks := newKeyServer(t)
	ks.set("k1", publicPEM(t, &a.PublicKey))
	release := make(chan struct{})
	ks.block["k1"] = release
	f := NewKeyFetcher(ks.Client(), time.Hour, 10, nil)

	const callers = 8
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			k, err := f.PublicKey(context.Background(), ks.URL, "k1")
			if err == nil && !k.Equal(&a.PublicKey) {
				err = errors.New("wrong key")
			}
			errs <- err
		})
	}
	// Wait until every caller has joined the one fetch in flight.
	id := ks.URL + "\x00k1"
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		c := f.inflight[id]
		joined := c != nil && c.waiters == callers
		f.mu.Unlock()
		if joined {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("callers did not join one fetch")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := ks.hitCount("k1"); n != 1 {
		t.Fatalf("server hit %d times, want 1", n)
	}
}

func TestKeyFetcherCallerGivesUp(t *testing.T) {
	a, _ := rsaKeys(t)
	ks := newKeyServer(t)
	ks.set("k1", publicPEM(t, &a.PublicKey))
	release := make(chan struct{})
	ks.block["k1"] = release
	f := NewKeyFetcher(ks.Client(), time.Hour, 10, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.PublicKey(ctx, ks.URL, "k1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The shared fetch goes on and fills the cache for the next caller.
	close(release)
	if _, err := f.PublicKey(context.Background(), ks.URL, "k1"); err != nil {
		t.Fatal(err)
	}
	if n := ks.hitCount("k1"); n != 1 {
		t.Fatalf("hits = %d, want 1", n)
	}
}

func TestKeyFetcherFailures(t *testing.T) {
	a, _ := rsaKeys(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ks := newKeyServer(t)
	ks.status["gone"] = http.StatusGone
	ks.status["boom"] = http.StatusInternalServerError
	ks.status["unavailable"] = http.StatusServiceUnavailable
	ks.status["forbidden"] = http.StatusForbidden
	ks.timeout["slow"] = true
	ks.set("weak", publicPEM(t, &weak.PublicKey))
	ks.set("ec", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER}))
	ks.set("notpem", []byte("hello"))
	ks.set("private", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(a)}))
	ks.set("huge", append(publicPEM(t, &a.PublicKey), strings.Repeat("\n", maxKeyBody)...))
	ks.set("pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&a.PublicKey)}))

	client := ks.Client()
	client.Timeout = 200 * time.Millisecond
	clock := &fakeClock{t: testNow}
	f := NewKeyFetcher(client, time.Hour, 10, clock.Now)
	f.MaxConcurrent = 100 // every kid below is fetched once; no limit here
	tests := []struct {
		kid     string
		unknown bool // want ErrUnknownKid
		ok      bool
	}{
		{kid: "missing", unknown: true},
		{kid: "gone", unknown: true},
		{kid: "boom"},
		{kid: "unavailable"},
		{kid: "forbidden"},
		{kid: "slow"},
		{kid: "weak"},
		{kid: "ec"},
		{kid: "notpem"},
		{kid: "private"},
		{kid: "huge"},
		{kid: "pkcs1", ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.kid, func(t *testing.T) {
			k, err := f.PublicKey(context.Background(), ks.URL, tt.kid)
			if tt.ok {
				if err != nil || !k.Equal(&a.PublicKey) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrUnknownKid) != tt.unknown {
				t.Fatalf("err = %v, unknown kid = %v", err, tt.unknown)
			}
		})
	}

	// Failures are cached briefly: asking again within the failure TTL
	// answers the same error without a fetch; after it, a recovered server
	// is asked again and its key served.
	ks.mu.Lock()
	delete(ks.status, "boom")
	ks.keys["boom"] = publicPEM(t, &a.PublicKey)
	ks.keys["missing"] = publicPEM(t, &a.PublicKey)
	ks.mu.Unlock()
	for _, kid := range []string{"boom", "missing", "gone", "slow", "weak"} {
		if _, err := f.PublicKey(context.Background(), ks.URL, kid); err == nil || ks.hitCount(kid) != 1 {
			t.Fatalf("%s within the failure TTL: err %v, hits %d, want the cached failure and 1 hit", kid, err, ks.hitCount(kid))
		}
	}
	if _, err := f.PublicKey(context.Background(), ks.URL, "missing"); !errors.Is(err, ErrUnknownKid) {
		t.Fatalf("cached unknown kid: %v, want ErrUnknownKid", err)
	}
	clock.Advance(DefaultFailureTTL)
	if _, err := f.PublicKey(context.Background(), ks.URL, "boom"); err != nil || ks.hitCount("boom") != 2 {
		t.Fatalf("after the failure TTL and recovery: %v, hits %d", err, ks.hitCount("boom"))
	}
	// An unknown kid is remembered longer than other failures.
	if _, err := f.PublicKey(context.Background(), ks.URL, "missing"); !errors.Is(err, ErrUnknownKid) || ks.hitCount("missing") != 1 {
		t.Fatalf("unknown kid after %s: %v, hits %d, want still cached", DefaultFailureTTL, err, ks.hitCount("missing"))
	}
	clock.Advance(DefaultUnknownKidTTL - DefaultFailureTTL)
	if _, err := f.PublicKey(context.Background(), ks.URL, "missing"); err != nil || ks.hitCount("missing") != 2 {
		t.Fatalf("published kid after the unknown-kid TTL: %v, hits %d", err, ks.hitCount("missing"))
	}
}

// TestKeyFetcherFailureCacheBounded shows that a flood of unknown kids
// keeps at most MaxFailures failures and never pushes a good key out.
func TestKeyFetcherFailureCacheBounded(t *testing.T) {
	a, _ := rsaKeys(t)
	ks := newKeyServer(t)
	ks.set("good", publicPEM(t, &a.PublicKey))
	f := NewKeyFetcher(ks.Client(), time.Hour, 2, nil)
	f.MaxFailures = 8
	ctx := context.Background()
	if _, err := f.PublicKey(ctx, ks.URL, "good"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := f.PublicKey(ctx, ks.URL, fmt.Sprintf("junk-%d", i)); !errors.Is(err, ErrUnknownKid) {
			t.Fatalf("junk-%d: %v", i, err)
		}
	}
	keys, failures := f.cached()
	if d := cmp.Diff(map[string]int{"keys": 1, "failures": 8}, map[string]int{"keys": keys, "failures": failures}); d != "" {
		t.Fatalf("cache (-want +got):\n%s", d)
	}
	if _, err := f.PublicKey(ctx, ks.URL, "good"); err != nil || ks.hitCount("good") != 1 {
		t.Fatalf("good key after the flood: %v, hits %d", err, ks.hitCount("good"))
	}
	// The newest failures are the ones kept.
	if _, err := f.PublicKey(ctx, ks.URL, "junk-49"); err == nil || ks.hitCount("junk-49") != 1 {
		t.Fatalf("junk-49 refetched: hits %d", ks.hitCount("junk-49"))
	}
	if _, err := f.PublicKey(ctx, ks.URL, "junk-0"); err == nil || ks.hitCount("junk-0") != 2 {
		t.Fatalf("junk-0 (evicted) not refetched: hits %d", ks.hitCount("junk-0"))
	}
}

// countingLimiter allows n fetches, then none.
type countingLimiter struct {
	mu   sync.Mutex
	left int
}

func (l *countingLimiter) Allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.left <= 0 {
		return false
	}
	l.left--
	return true
}

// TestKeyFetcherRateLimited shows that misses beyond the rate limit fail at
// once without a fetch, while cached keys are still served.
func TestKeyFetcherRateLimited(t *testing.T) {
	a, _ := rsaKeys(t)
	ks := newKeyServer(t)
	ks.set("good", publicPEM(t, &a.PublicKey))
	ks.set("late", publicPEM(t, &a.PublicKey))
	f := NewKeyFetcher(ks.Client(), time.Hour, 10, nil)
	f.Limiter = &countingLimiter{left: 3}
	ctx := context.Background()
	if _, err := f.PublicKey(ctx, ks.URL, "good"); err != nil {
		t.Fatal(err)
	}
	for _, kid := range []string{"junk-1", "junk-2"} {
		if _, err := f.PublicKey(ctx, ks.URL, kid); !errors.Is(err, ErrUnknownKid) {
			t.Fatalf("%s: %v", kid, err)
		}
	}
	if _, err := f.PublicKey(ctx, ks.URL, "late"); !errors.Is(err, ErrKeyFetchLimited) {
		t.Fatalf("fetch beyond the limit: %v, want ErrKeyFetchLimited", err)
	}
	if ks.hitCount("late") != 0 {
		t.Fatal("the key server was asked beyond the limit")
	}
	// Limited misses are not cached as failures: the kid may be real.
	if _, failures := f.cached(); failures != 2 {
		t.Fatalf("%d failures cached, want 2", failures)
	}
	for range 3 {
		if _, err := f.PublicKey(ctx, ks.URL, "good"); err != nil {
			t.Fatalf("cached key while limited: %v", err)
		}
	}
	// A cached failure is answered too, without taking from the limit.
	if _, err := f.PublicKey(ctx, ks.URL, "junk-1"); !errors.Is(err, ErrUnknownKid) {
		t.Fatalf("cached failure while limited: %v", err)
	}
}

// TestKeyFetcherConcurrencyBounded shows that at most MaxConcurrent fetches
// run at once; a miss beyond them fails at once, while a caller asking for
// a key already being fetched joins that fetch.
func TestKeyFetcherConcurrencyBounded(t *testing.T) {
	a, _ := rsaKeys(t)
	ks := newKeyServer(t)
	release := make(chan struct{})
	for _, kid := range []string{"k1", "k2", "k3"} {
		ks.set(kid, publicPEM(t, &a.PublicKey))
		ks.block[kid] = release
	}
	f := NewKeyFetcher(ks.Client(), time.Hour, 10, nil)
	f.MaxConcurrent = 2
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, kid := range []string{"k1", "k2", "k1"} {
		wg.Go(func() {
			_, err := f.PublicKey(context.Background(), ks.URL, kid)
			errs <- err
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		c := f.inflight[ks.URL+"\x00k1"]
		ready := f.fetching == 2 && c != nil && c.waiters == 2
		f.mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fetches did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := f.PublicKey(context.Background(), ks.URL, "k3"); !errors.Is(err, ErrKeyFetchLimited) {
		t.Fatalf("third concurrent fetch: %v, want ErrKeyFetchLimited", err)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.PublicKey(context.Background(), ks.URL, "k3"); err != nil {
		t.Fatalf("k3 once the others finished: %v", err)
	}
	if d := cmp.Diff(map[string]int{"k1": 1, "k3": 1}, map[string]int{"k1": ks.hitCount("k1"), "k3": ks.hitCount("k3")}); d != "" {
		t.Fatalf("hits by kid (-want +got):\n%s", d)
	}
}

func TestKeyFetcherRefusesBadInput(t *testing.T) {
	ks := newKeyServer(t)
	f := NewKeyFetcher(ks.Client(), 0, 0, nil)
	for _, kid := range []string{"", "a/b", "..", "../x", ".x", "a..b", "a%2f", "a b", "a?b", "a#b", "é", strings.Repeat("a", 129)} {
		if _, err := f.PublicKey(context.Background(), ks.URL, kid); err == nil {
			t.Errorf("kid %q accepted", kid)
		}
	}
	for _, server := range []string{"", "ftp://x", "/relative", "https://x?q=1", "https://x#f"} {
		if _, err := f.PublicKey(context.Background(), server, "k1"); err == nil {
			t.Errorf("server %q accepted", server)
		}
	}
	ks.mu.Lock()
	hits := len(ks.hits)
	ks.mu.Unlock()
	if hits != 0 {
		t.Fatalf("the key server was asked %d times", hits)
	}
}

func TestKeyFetcherRedirects(t *testing.T) {
	a, _ := rsaKeys(t)
	ks := newKeyServer(t)
	ks.set("k1", publicPEM(t, &a.PublicKey))
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, ks.URL+"/k1", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/served", http.StatusFound)
		case "/served":
			_, _ = w.Write(publicPEM(t, &a.PublicKey))
		}
	}))
	t.Cleanup(other.Close)
	// The default client: same-origin redirects only.
	f := NewKeyFetcher(nil, 0, 0, nil)
	if _, err := f.PublicKey(context.Background(), other.URL, "here"); err != nil {
		t.Fatalf("same-origin redirect: %v", err)
	}
	if _, err := f.PublicKey(context.Background(), other.URL, "away"); err == nil {
		t.Fatal("followed a redirect to another origin")
	}
}

func TestValidKid(t *testing.T) {
	for kid, want := range map[string]bool{
		"0d5a5c4e-3c2b-4a1f-9e8d-7c6b5a4f3e2d": true,
		"key_1.pem":                            true,
		"A-z.0_9":                              true,
		"":                                     false,
		".":                                    false,
		"..":                                   false,
		".hidden":                              false,
		"a..b":                                 false,
		"a/b":                                  false,
		"/":                                    false,
		"%2e%2e":                               false,
		"a\\b":                                 false,
		"a\x00b":                               false,
		strings.Repeat("k", 128):               true,
		strings.Repeat("k", 129):               false,
	} {
		if got := ValidKid(kid); got != want {
			t.Errorf("ValidKid(%q) = %v, want %v", kid, got, want)
		}
	}
}
