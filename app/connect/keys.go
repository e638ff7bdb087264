package connect

import (
	"container/list"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ErrUnknownKid means the key server does not know the key ID (it answered
// 404 or 410).
var ErrUnknownKid = errors.New("install key server does not know this key id")

// ErrKeyFetchLimited means the key was neither cached nor fetched because
// outbound key fetches are at their rate or concurrency bound.
var ErrKeyFetchLimited = errors.New("install key fetches are at their limit")

// Allower is a rate limit that answers at once (golang.org/x/time/rate's
// *rate.Limiter is one).
type Allower interface{ Allow() bool }

const (
	// KeyFetchTimeout bounds one fetch of an install key, whatever the
	// client: Atlassian retries a failed install, a stuck one helps no one.
	KeyFetchTimeout = 5 * time.Second
	// DefaultKeyTTL is how long a fetched key is trusted without asking
	// again. Atlassian rotates by issuing new kids, so keys may be cached
	// by kid; the TTL only bounds how long a withdrawn key is believed.
	DefaultKeyTTL = time.Hour
	// DefaultMaxKeys bounds the cache.
	DefaultMaxKeys = 256
	// DefaultUnknownKidTTL is how long a kid the key server does not know
	// stays known as unknown, and DefaultFailureTTL how long any other
	// failure is remembered: long enough that repeating a junk kid costs
	// no fetch, short enough that a key published late or a key server
	// back from an outage is seen soon.
	DefaultUnknownKidTTL = time.Minute
	DefaultFailureTTL    = 10 * time.Second
	// DefaultMaxFailures bounds the cache of failures (separately from the
	// keys, so failures never push a good key out).
	DefaultMaxFailures = 4096
	// DefaultMaxConcurrentFetches bounds key fetches in flight at once.
	DefaultMaxConcurrentFetches = 4

	maxKeyBody      = 16 << 10
	minRSABits      = 2048
	maxRSABits      = 8192
	maxKidLen       = 128
	maxRedirects    = 3
	pemPublicKey    = "PUBLIC KEY"
	pemRSAPublicKey = "RSA PUBLIC KEY"
)

// KeyFetcher fetches the PEM public keys that sign install callbacks from
// <server>/<kid>, and caches them by (server, kid) with a TTL and a bounded
// size (the oldest entry goes first). Concurrent misses for the same key
// share one fetch. Failures are cached briefly in a bounded cache of their
// own, and fetches are bounded in rate (Limiter) and in number at once, so
// that a flood of installs with random kids costs Atlassian's key server
// (and this process) a bounded amount. It is safe for concurrent use; set
// the exported fields before the first call.
type KeyFetcher struct {
	// Limiter, when set, bounds the rate of outbound fetches; a miss
	// beyond it fails at once with ErrKeyFetchLimited.
	Limiter Allower
	// MaxConcurrent bounds fetches in flight (of different keys);
	// DefaultMaxConcurrentFetches when zero. A miss beyond it fails at
	// once with ErrKeyFetchLimited.
	MaxConcurrent int
	// UnknownKidTTL, FailureTTL and MaxFailures shape the failure cache;
	// zero takes the defaults above.
	UnknownKidTTL time.Duration
	FailureTTL    time.Duration
	MaxFailures   int

	client     *http.Client
	ttl        time.Duration
	maxEntries int
	now        func() time.Time

	mu       sync.Mutex
	entries  map[string]*list.Element // values are *keyEntry
	order    *list.List               // oldest first
	failures map[string]*list.Element // values are *keyEntry with err set
	failOrd  *list.List               // oldest first
	inflight map[string]*keyFetch
	fetching int // fetches in flight, bounded by MaxConcurrent
}

type keyEntry struct {
	id      string
	key     *rsa.PublicKey
	err     error     // failures only
	fetched time.Time // keys: when fetched; failures: until when remembered
}

type keyFetch struct {
	done    chan struct{}
	key     *rsa.PublicKey
	err     error
	waiters int // guarded by KeyFetcher.mu; read by tests
}

// NewKeyFetcher returns a KeyFetcher. A nil client means one with a 5 s
// timeout that follows redirects only within the key server's own origin;
// ttl <= 0 means DefaultKeyTTL, maxEntries <= 0 DefaultMaxKeys, and a nil
// now time.Now.
func NewKeyFetcher(client *http.Client, ttl time.Duration, maxEntries int, now func() time.Time) *KeyFetcher {
	if client == nil {
		client = &http.Client{Timeout: KeyFetchTimeout, CheckRedirect: sameOriginRedirects}
	}
	if ttl <= 0 {
		ttl = DefaultKeyTTL
	}
	if maxEntries <= 0 {
		maxEntries = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	return &KeyFetcher{
		client:     client,
		ttl:        ttl,
		maxEntries: maxEntries,
		now:        now,
		entries:    map[string]*list.Element{},
		order:      list.New(),
		failures:   map[string]*list.Element{},
		failOrd:    list.New(),
		inflight:   map[string]*keyFetch{},
	}
}

// sameOriginRedirects keeps a redirect from taking the key fetch to a host
// other than the one chosen from the fixed table.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return errors.New("too many redirects")
	}
	from, err := origin(via[0].URL)
	if err != nil {
		return err
	}
	to, err := origin(req.URL)
	if err != nil || to != from {
		return errors.New("redirect to another origin")
	}
	return nil
}

// PublicKey returns the RSA public key with ID kid from server. It returns
// ErrUnknownKid (wrapped) when the server does not know the kid,
// ErrKeyFetchLimited (wrapped) when the key is not cached and no fetch may
// start now, and another error when the server cannot be reached, answers
// anything but 200, or sends something that is not an RSA public key of 2048
// to 8192 bits in PEM. A failure is answered from the failure cache, without
// a fetch, for a short while.
func (f *KeyFetcher) PublicKey(ctx context.Context, server, kid string) (*rsa.PublicKey, error) {
	if !ValidKid(kid) {
		return nil, errors.New("fetch install key: invalid key id")
	}
	server = strings.TrimSuffix(server, "/")
	su, err := url.Parse(server)
	if err != nil || (su.Scheme != "https" && su.Scheme != "http") || su.Host == "" || su.RawQuery != "" || su.Fragment != "" {
		return nil, fmt.Errorf("fetch install key: key server %q is not an absolute http(s) URL", server)
	}
	id := server + "\x00" + kid

	f.mu.Lock()
	if el, ok := f.entries[id]; ok {
		e := el.Value.(*keyEntry)
		if f.now().Sub(e.fetched) < f.ttl {
			f.mu.Unlock()
			return e.key, nil
		}
		f.order.Remove(el)
		delete(f.entries, id)
	}
	if el, ok := f.failures[id]; ok {
		e := el.Value.(*keyEntry)
		if f.now().Before(e.fetched) {
			f.mu.Unlock()
			return nil, e.err
		}
		f.failOrd.Remove(el)
		delete(f.failures, id)
	}
	call, ok := f.inflight[id]
	if !ok {
		if f.fetching >= f.maxConcurrent() || f.Limiter != nil && !f.Limiter.Allow() {
			f.mu.Unlock()
			return nil, fmt.Errorf("fetch install key: %w", ErrKeyFetchLimited)
		}
		f.fetching++
		call = &keyFetch{done: make(chan struct{})}
		f.inflight[id] = call
		// The fetch runs on its own so that one caller giving up does not
		// fail the others waiting for the same key; KeyFetchTimeout bounds
		// it.
		go f.fetchShared(context.WithoutCancel(ctx), id, server, kid, call)
	}
	call.waiters++
	f.mu.Unlock()

	select {
	case <-call.done:
		return call.key, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("fetch install key: %w", ctx.Err())
	}
}

func (f *KeyFetcher) fetchShared(ctx context.Context, id, server, kid string, call *keyFetch) {
	key, err := f.fetch(ctx, server, kid)
	f.mu.Lock()
	delete(f.inflight, id)
	f.fetching--
	if err == nil {
		f.entries[id] = f.order.PushBack(&keyEntry{id: id, key: key, fetched: f.now()})
		for f.order.Len() > f.maxEntries {
			oldest := f.order.Front()
			f.order.Remove(oldest)
			delete(f.entries, oldest.Value.(*keyEntry).id)
		}
	} else {
		ttl := f.FailureTTL
		if ttl <= 0 {
			ttl = DefaultFailureTTL
		}
		if errors.Is(err, ErrUnknownKid) {
			ttl = f.UnknownKidTTL
			if ttl <= 0 {
				ttl = DefaultUnknownKidTTL
			}
		}
		f.failures[id] = f.failOrd.PushBack(&keyEntry{id: id, err: err, fetched: f.now().Add(ttl)})
		maxFailures := f.MaxFailures
		if maxFailures <= 0 {
			maxFailures = DefaultMaxFailures
		}
		for f.failOrd.Len() > maxFailures {
			oldest := f.failOrd.Front()
			f.failOrd.Remove(oldest)
			delete(f.failures, oldest.Value.(*keyEntry).id)
		}
	}
	f.mu.Unlock()
	call.key, call.err = key, err
	close(call.done)
}

func (f *KeyFetcher) maxConcurrent() int {
	if f.MaxConcurrent > 0 {
		return f.MaxConcurrent
	}
	return DefaultMaxConcurrentFetches
}

// cached reports how many keys and failures the caches hold, for tests and
// the flood benchmark's checks.
func (f *KeyFetcher) cached() (keys, failures int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.order.Len(), f.failOrd.Len()
}

func (f *KeyFetcher) fetch(ctx context.Context, server, kid string) (*rsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, KeyFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/"+kid, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch install key: %w", err)
	}
	req.Header.Set("Accept", "application/x-pem-file, text/plain, */*")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch install key: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("fetch install key: %w", ErrUnknownKid)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("fetch install key: key server answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyBody+1))
	if err != nil {
		return nil, fmt.Errorf("fetch install key: read: %w", err)
	}
	if len(body) > maxKeyBody {
		return nil, errors.New("fetch install key: answer too large")
	}
	key, err := ParseRSAPublicKeyPEM(body)
	if err != nil {
		return nil, fmt.Errorf("fetch install key: %w", err)
	}
	return key, nil
}

// ParseRSAPublicKeyPEM parses a PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY"
// (PKCS #1) block holding an RSA key of 2048 to 8192 bits.
func ParseRSAPublicKeyPEM(b []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("not a PEM public key")
	}
	var key *rsa.PublicKey
	switch block.Type {
	case pemPublicKey:
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, not RSA", k)
		}
		key = rk
	case pemRSAPublicKey:
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		key = k
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if bits := key.N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("RSA key of %d bits, want %d to %d", bits, minRSABits, maxRSABits)
	}
	return key, nil
}

// ValidKid reports whether kid may name an install key: 1 to 128 of
// [A-Za-z0-9._-], not starting with "." and without "..", so that appending
// it to the key server URL can never leave the key server's root.
func ValidKid(kid string) bool {
	if kid == "" || len(kid) > maxKidLen || kid[0] == '.' || strings.Contains(kid, "..") {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
