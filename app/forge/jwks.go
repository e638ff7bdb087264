package forge

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// DefaultJWKSURL is where Atlassian publishes the keys that sign Forge
// invocation tokens (IDBRIDGE_FORGE_JWKS_URL overrides it).
const DefaultJWKSURL = "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"

// JWKS bounds. Atlassian's document holds a handful of keys and rotates by
// adding new kids; these bounds only keep a broken or hostile document from
// costing more than a little memory and time.
const (
	// JWKSFetchTimeout bounds one fetch of the document.
	JWKSFetchTimeout = 5 * time.Second
	// DefaultJWKSTTL is how long a fetched document is used before the
	// next verification asks for a fresh one. A failed refresh keeps the
	// keys already known until DefaultJWKSMaxStale.
	DefaultJWKSTTL = time.Hour
	// DefaultJWKSMaxStale is how long known keys outlive their TTL while
	// refreshes fail (an outage of the CDN must not stop every request).
	DefaultJWKSMaxStale = 24 * time.Hour
	// DefaultJWKSMinRefresh is the least time between two fetches: a token
	// with a kid the cached document lacks triggers a fetch only if the
	// last one is older, so a flood of random kids costs at most one fetch
	// per interval, shared by every request that waits for it.
	DefaultJWKSMinRefresh = 10 * time.Second
	// MaxJWKSKeys bounds the keys kept from one document (the first ones
	// win) and maxJWKSBody the document's size.
	MaxJWKSKeys = 32
	maxJWKSBody = 64 << 10
)

// ErrJWKSUnavailable means no usable key document could be had: the fetch
// failed and nothing fresh enough is cached.
var ErrJWKSUnavailable = errors.New("forge key set unavailable")

// JWKS is the cached key set of Forge invocation tokens: RSA public keys by
// kid, from one JSON Web Key Set URL. Refreshes are single-flight (one
// fetch at a time; concurrent callers wait for it), spaced at least
// MinRefresh apart, and bounded in time and size. Safe for concurrent use;
// set the exported fields before the first call.
type JWKS struct {
	URL    string
	Client *http.Client
	Now    func() time.Time
	// TTL, MaxStale and MinRefresh: zero takes the defaults above.
	TTL, MaxStale, MinRefresh time.Duration
	// OnFetch, when set, is told the outcome of every fetch ("ok" or
	// "error"), for metrics. It must not block.
	OnFetch func(outcome string)

	mu        sync.Mutex
	keys      map[string]*rsa.PublicKey
	fetchedAt time.Time // of the keys held
	lastTry   time.Time // of the last fetch, good or bad
	inflight  chan struct{}
}

// NewJWKS returns a key set fetched from url with a client of its own
// (timeout, no redirects) unless client is given.
func NewJWKS(url string, client *http.Client, now func() time.Time) *JWKS {
	if client == nil {
		client = &http.Client{
			Timeout:       JWKSFetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if now == nil {
		now = time.Now
	}
	return &JWKS{URL: url, Client: client, Now: now}
}

func (j *JWKS) ttl() time.Duration        { return orDefault(j.TTL, DefaultJWKSTTL) }
func (j *JWKS) maxStale() time.Duration   { return orDefault(j.MaxStale, DefaultJWKSMaxStale) }
func (j *JWKS) minRefresh() time.Duration { return orDefault(j.MinRefresh, DefaultJWKSMinRefresh) }

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Key returns the key with that kid. A kid missing from a fresh document,
// or any kid once the document is older than its TTL, makes one refresh
// (unless the last fetch is more recent than MinRefresh); an unknown kid
// after that is ErrUnknownKid. ErrJWKSUnavailable when there are no keys
// young enough to trust.
func (j *JWKS) Key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	for {
		j.mu.Lock()
		now := j.Now()
		k, known := j.keys[kid]
		age := now.Sub(j.fetchedAt)
		fresh := j.keys != nil && age < j.ttl()
		usable := j.keys != nil && age < j.ttl()+j.maxStale()
		mayFetch := j.lastTry.IsZero() || now.Sub(j.lastTry) >= j.minRefresh()
		if known && fresh {
			j.mu.Unlock()
			return k, nil
		}
		if known && usable {
			// A stale but trusted key: answer at once, and refresh in the
			// background (one fetch, spaced as any other) so that no
			// request waits for the CDN once an hour.
			if mayFetch && j.inflight == nil {
				done := make(chan struct{})
				j.inflight, j.lastTry = done, now
				go j.refresh(context.WithoutCancel(ctx), done)
			}
			j.mu.Unlock()
			return k, nil
		}
		if wait := j.inflight; wait != nil {
			// Someone is fetching: share that fetch.
			j.mu.Unlock()
			select {
			case <-wait:
				continue // look again with what the fetch brought
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if !mayFetch {
			j.mu.Unlock()
			switch {
			case known && usable:
				return k, nil
			case !usable:
				return nil, ErrJWKSUnavailable
			}
			return nil, ErrUnknownKid
		}
		done := make(chan struct{})
		j.inflight = done
		j.lastTry = now
		j.mu.Unlock()

		err := j.refresh(ctx, done)

		j.mu.Lock()
		k, known = j.keys[kid]
		usable = j.keys != nil && j.Now().Sub(j.fetchedAt) < j.ttl()+j.maxStale()
		j.mu.Unlock()
		switch {
		case known && usable:
			return k, nil
		case !usable:
			return nil, fmt.Errorf("%w: %w", ErrJWKSUnavailable, err)
		}
		return nil, ErrUnknownKid
	}
}

// refresh fetches the document, keeps it if it is good, and ends the
// flight done (which the caller registered as j.inflight).
func (j *JWKS) refresh(ctx context.Context, done chan struct{}) error {
	keys, err := j.fetch(ctx)
	j.mu.Lock()
	if err == nil {
		// A key the new document still publishes unchanged stays the same
		// value, so that tokens it verified stay verified (Verifier's
		// cache compares keys by identity); a withdrawn or replaced key
		// ends them.
		for kid, k := range keys {
			if old, ok := j.keys[kid]; ok && old.Equal(k) {
				keys[kid] = old
			}
		}
		j.keys, j.fetchedAt = keys, j.Now()
	}
	j.inflight = nil
	close(done)
	j.mu.Unlock()
	if j.OnFetch != nil {
		if err != nil {
			j.OnFetch("error")
		} else {
			j.OnFetch("ok")
		}
	}
	return err
}

// ErrUnknownKid means the key set has no key with the token's kid.
var ErrUnknownKid = errors.New("no forge key with this kid")

type jwkDoc struct {
	Keys []struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		N   string `json:"n"`
		E   string `json:"e"`
	} `json:"keys"`
}

// fetch reads the document. It is shared by every waiter, so it runs on a
// context that the first caller leaving does not cancel, bounded by the
// fetch timeout.
func (j *JWKS) fetch(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), JWKSFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBody))
		return nil, fmt.Errorf("forge key set: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBody {
		return nil, fmt.Errorf("forge key set: document larger than %d bytes", maxJWKSBody)
	}
	return ParseJWKS(body)
}

// ParseJWKS reads the RSA signing keys of a JSON Web Key Set: kty RSA, use
// sig or unset, alg RS256 or unset, a kid of the shape tokens may name, a
// modulus of 2048 to 8192 bits. Other keys are skipped; at most
// MaxJWKSKeys are kept. A document with no usable key is an error.
func ParseJWKS(body []byte) (map[string]*rsa.PublicKey, error) {
	var doc jwkDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("forge key set: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range doc.Keys {
		if len(keys) == MaxJWKSKeys {
			break
		}
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") || !validKid(k.Kid) {
			continue
		}
		if _, dup := keys[k.Kid]; dup {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			continue
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if bits := pub.N.BitLen(); bits < 2048 || bits > 8192 || pub.E < 3 || pub.E%2 == 0 {
			continue
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("forge key set: no usable RS256 key")
	}
	return keys, nil
}

// validKid: 1 to 128 characters of [A-Za-z0-9._-], as for Connect's install
// keys; anything else never reaches the cache or a fetch.
func validKid(kid string) bool {
	if kid == "" || len(kid) > 128 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
