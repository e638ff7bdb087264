package scim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"sync/atomic"
	"time"

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

// tokenCache holds, per site, the token hash the database has (nil for
// none), on PostgreSQL only and only while the change notifications are
// being received: without them a cached hash could outlive a rotation on
// another replica. On SQLite (one process) every check reads the database.
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
	hash    []byte
	expires time.Time
}

func (c *tokenCache) get(siteID string) ([]byte, bool) {
	if !c.listening.Load() {
		return nil, false
	}
	c.mu.RLock()
	e, ok := c.entries[siteID]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return nil, false
	}
	return e.hash, true
}

func (c *tokenCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

func (c *tokenCache) put(gen uint64, siteID string, hash []byte) {
	if !c.listening.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.entries) > 100_000 {
		clear(c.entries)
	}
	c.entries[siteID] = tokenEntry{hash: hash, expires: c.now().Add(tokenCacheTTL)}
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
// unknown site, a site without provisioning, an uninstalled site and a
// wrong token all answer the same 401. The comparison of the SHA-256
// hashes takes constant time.
func (s *Service) Authenticate(ctx context.Context, siteID, token string) error {
	if token == "" {
		return Unauthorized("a bearer token is required")
	}
	hash, ok := s.tokens.get(siteID)
	if !ok {
		gen := s.tokens.generation()
		h, err := s.store.View(ctx).SCIMTokenHash(siteID)
		switch {
		case models.IsNotFound(err):
			h = nil
		case err != nil:
			return err
		}
		s.tokens.put(gen, siteID, h)
		hash = h
	}
	sum := sha256.Sum256([]byte(token))
	if len(hash) != len(sum) || subtle.ConstantTimeCompare(sum[:], hash) != 1 {
		return Unauthorized("the bearer token is not valid for this site")
	}
	return nil
}

// Run keeps cached token hashes true across replicas until ctx is done: on
// PostgreSQL it listens for token changes and drops what changed (all of
// it when the connection drops). On SQLite it returns at once.
func (s *Service) Run(ctx context.Context) error {
	if s.store.Dialect() != store.Postgres {
		return nil
	}
	defer s.tokens.reset(false)
	return s.store.Listen(ctx, store.SCIMNotifyChannel,
		func(siteID string) { s.tokens.forget(siteID) },
		func() { s.tokens.reset(false) },
		func() { s.tokens.reset(true) })
}
