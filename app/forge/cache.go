package forge

import (
	"crypto/rsa"
	"crypto/sha256"
	"sync"
	"time"
)

// VerifiedCacheSize bounds the verified-token cache: entries are a few
// hundred bytes, so the cache holds at most about 2 MiB.
const VerifiedCacheSize = 4096

// verifiedCache remembers tokens that verified, so that a token Forge
// sends again within its life (about a minute) costs a SHA-256 and a map
// lookup instead of an RSA verification (the technique of Envoy's
// jwt_authn jwt_cache). Only successes are kept, keyed by the SHA-256 of
// the whole compact token (header, claims and signature), each until the
// token's exp (never longer: the leeway past exp is left to a full
// verification), and only while the key that verified it is still the
// key set's key for its kid: a key withdrawn or replaced by a refresh of
// the key set ends every entry it verified.
//
// Bounded by VerifiedCacheSize; when full, the oldest insertion goes
// (first in, first out: no bookkeeping on a hit).
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]verifiedEntry
	order   [][sha256.Size]byte // ring of keys in insertion order
	next    int                 // slot of the next insertion
	max     int
}

type verifiedEntry struct {
	inv  Invocation
	kid  string
	key  *rsa.PublicKey
	slot int
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{entries: make(map[[sha256.Size]byte]verifiedEntry, max), order: make([][sha256.Size]byte, 0, max), max: max}
}

// get returns the entry of a token digest while now is before its exp.
func (c *verifiedCache) get(sum [sha256.Size]byte, now time.Time) (verifiedEntry, bool) {
	c.mu.RLock()
	e, ok := c.entries[sum]
	c.mu.RUnlock()
	if !ok || !now.Before(e.inv.ExpiresAt) {
		return verifiedEntry{}, false
	}
	return e, true
}

// put keeps a verified token, dropping the oldest insertion when full.
func (c *verifiedCache) put(sum [sha256.Size]byte, e verifiedEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[sum]; ok {
		return
	}
	if len(c.order) < c.max {
		e.slot = len(c.order)
		c.order = append(c.order, sum)
	} else {
		old := c.order[c.next]
		if o, ok := c.entries[old]; ok && o.slot == c.next {
			delete(c.entries, old)
		}
		e.slot = c.next
		c.order[c.next] = sum
		c.next = (c.next + 1) % c.max
	}
	c.entries[sum] = e
}

// drop forgets a token (its key is gone).
func (c *verifiedCache) drop(sum [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.entries, sum)
	c.mu.Unlock()
}

func (c *verifiedCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
