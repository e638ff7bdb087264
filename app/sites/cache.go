package sites

import (
	"sync"
	"time"
)

// ttlCache is a small bounded map with per-entry expiry. When full it drops
// expired entries and, if still full, the oldest one; at the sizes used here
// (sites, admin answers) a linear sweep on the rare full insert is cheaper
// than keeping an LRU list on every hit.
type ttlCache[K comparable, V any] struct {
	mu      sync.RWMutex
	entries map[K]ttlEntry[V]
	max     int
	ttl     time.Duration
	now     func() time.Time
	// gen counts removals, so that a value read from the database before
	// a removal is not put back after it (putIfCurrent).
	gen uint64
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[K comparable, V any](max int, ttl time.Duration, now func() time.Time) *ttlCache[K, V] {
	return &ttlCache[K, V]{entries: make(map[K]ttlEntry[V]), max: max, ttl: ttl, now: now}
}

func (c *ttlCache[K, V]) get(k K) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// generation is the removal count to pass to putIfCurrent.
func (c *ttlCache[K, V]) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// putIfCurrent stores v unless something was removed since generation gen
// was read: the value may predate that removal (a reinstall announced while
// it was being loaded) and must not outlive it.
func (c *ttlCache[K, V]) putIfCurrent(gen uint64, k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.putLocked(k, v)
}

func (c *ttlCache[K, V]) putLocked(k K, v V) {
	now := c.now()
	if _, exists := c.entries[k]; !exists && len(c.entries) >= c.max {
		var oldestK K
		var oldest time.Time
		first := true
		for key, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, key)
				continue
			}
			if first || e.expires.Before(oldest) {
				oldestK, oldest, first = key, e.expires, false
			}
		}
		if len(c.entries) >= c.max && !first {
			delete(c.entries, oldestK)
		}
	}
	c.entries[k] = ttlEntry[V]{v: v, expires: now.Add(c.ttl)}
}

func (c *ttlCache[K, V]) delete(k K) {
	c.mu.Lock()
	delete(c.entries, k)
	c.gen++
	c.mu.Unlock()
}

// deleteWhere drops every entry whose key matches.
func (c *ttlCache[K, V]) deleteWhere(match func(K) bool) {
	c.mu.Lock()
	for k := range c.entries {
		if match(k) {
			delete(c.entries, k)
		}
	}
	c.gen++
	c.mu.Unlock()
}

func (c *ttlCache[K, V]) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.gen++
	c.mu.Unlock()
}

func (c *ttlCache[K, V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
