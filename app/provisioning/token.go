package provisioning

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"sync/atomic"
	"time"

	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/models"
)

// tokenPrefix marks idbridge SCIM tokens, so that secret scanners and
// people recognise one.
const tokenPrefix = "idbscim_"

// tokenCacheTTL bounds how long a replica trusts a cached token hash if a
// notification were ever missed; changes are announced at once.
const tokenCacheTTL = 30 * time.Second

// newToken returns a fresh bearer token (256 random bits) and its SHA-256.
func newToken() (string, []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	return token, sum[:]
}

// tokenCacheMax bounds the token cache by entries: one per site whose
// identity provider called this replica within tokenCacheTTL. Misses are
// never cached, so requests for sites that do not exist (or malformed IDs,
// refused before any lookup) add nothing.
const tokenCacheMax = 50_000

// tokenCache holds, per site, the token hash the database has and whether
// the site is disabled, only while the change notifications are being
// received (Run): without them a cached hash could outlive a rotation on
// another replica. On SQLite the notifications are this process's own
// commits (store.Listen); a rotation or a site's change made by another
// process on the same file (none in idbridge) would be seen within
// tokenCacheTTL.
type tokenCache struct {
	listening atomic.Bool
	mu        sync.RWMutex
	entries   map[string]tokenEntry
	now       func() time.Time
	// gen counts removals, so that a hash read before a removal is not
	// put back after it.
	gen uint64
}

type tokenEntry struct {
	cred    store.SCIMCredentials
	expires time.Time
}

func (c *tokenCache) get(siteID string) (store.SCIMCredentials, bool) {
	if !c.listening.Load() {
		return store.SCIMCredentials{}, false
	}
	c.mu.RLock()
	e, ok := c.entries[siteID]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return store.SCIMCredentials{}, false
	}
	return e.cred, true
}

func (c *tokenCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

func (c *tokenCache) put(gen uint64, siteID string, cred store.SCIMCredentials) {
	if !c.listening.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	now := c.now()
	if _, ok := c.entries[siteID]; !ok && len(c.entries) >= tokenCacheMax {
		c.evictLocked(now)
	}
	c.entries[siteID] = tokenEntry{cred: cred, expires: now.Add(tokenCacheTTL)}
}

// evictLocked makes room for one entry: expired entries go first; when
// none has expired, an arbitrary one (map order) makes room.
func (c *tokenCache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < tokenCacheMax {
			return
		}
		delete(c.entries, k)
	}
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

func (c *tokenCache) forget(siteID string) {
	c.mu.Lock()
	delete(c.entries, siteID)
	c.gen++
	c.mu.Unlock()
}

func (c *tokenCache) reset(listening bool) {
	c.mu.Lock()
	clear(c.entries)
	c.gen++
	c.listening.Store(listening)
	c.mu.Unlock()
}

// Authenticate checks the bearer token of a SCIM request for the site. An
// unknown site, a malformed site ID, a site without provisioning, an
// uninstalled site and a wrong token all answer the same 401. A malformed
// site ID is refused by its shape alone (no lookup, no cache entry); the
// comparison of the SHA-256 hashes takes constant time.
func (s *Service) Authenticate(ctx context.Context, siteID, token string) error {
	_, err := s.credentials(ctx, siteID, token)
	return err
}

func (s *Service) credentials(ctx context.Context, siteID, token string) (store.SCIMCredentials, error) {
	if token == "" {
		return store.SCIMCredentials{}, scim.Unauthorized("a bearer token is required")
	}
	invalid := scim.Unauthorized("the bearer token is not valid for this site")
	if !store.ValidID("s", siteID) || len(token) > maxTokenLength {
		return store.SCIMCredentials{}, invalid
	}
	cred, ok := s.tokens.get(siteID)
	if !ok {
		gen := s.tokens.generation()
		c, err := s.store.View(ctx).FindSCIMCredentials(siteID)
		switch {
		case models.IsNotFound(err):
			return store.SCIMCredentials{}, invalid
		case err != nil:
			return store.SCIMCredentials{}, err
		}
		s.tokens.put(gen, siteID, *c)
		cred = *c
	}
	sum := sha256.Sum256([]byte(token))
	if len(cred.TokenHash) != len(sum) || subtle.ConstantTimeCompare(sum[:], cred.TokenHash) != 1 {
		return store.SCIMCredentials{}, invalid
	}
	return cred, nil
}

// maxTokenLength bounds the bearer token hashed per request; idbridge's
// tokens are 51 characters.
const maxTokenLength = 512

// Admit authenticates a SCIM request (see Authenticate) and admits it: a
// disabled site's changes (write) are refused in words, its reads go on, so
// that the identity provider's lookups keep answering and the admin page
// can show why. A site with its share of requests in flight already is
// refused with 429 (capacity.go). done must be called when the request ends.
func (s *Service) Admit(ctx context.Context, siteID, token string, write bool) (done func(), err error) {
	cred, err := s.credentials(ctx, siteID, token)
	if err != nil {
		return nil, err
	}
	if write && cred.Disabled {
		return nil, scim.Forbidden("the idbridge app is disabled in this site: changes are refused until a site admin enables it again; reads still work")
	}
	return s.cap.admit(siteID)
}

// Run keeps cached token hashes true until ctx is done: it listens for
// token and site changes and drops what changed (on PostgreSQL, every
// replica's, and all of it when the connection drops; on SQLite, this
// process's commits). Without it nothing is cached.
func (s *Service) Run(ctx context.Context) error {
	defer s.tokens.reset(false)
	return s.store.Listen(ctx, store.SCIMNotifyChannel,
		func(siteID string) { s.tokens.forget(siteID) },
		func() { s.tokens.reset(false) },
		func() { s.tokens.reset(true) })
}
