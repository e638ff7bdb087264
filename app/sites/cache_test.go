package sites

import (
	"testing"
	"time"
)

// TestCacheLoadBeforeRemovalIsNotKept: a value read before a removal (a
// reinstall announced while the old site was being loaded) must not be
// cached after it; one read after is.
func TestCacheLoadBeforeRemovalIsNotKept(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newTTLCache[string, string](10, time.Minute, func() time.Time { return now })

	gen := c.generation()
	c.delete("site") // the invalidation overtakes the load
	c.putIfCurrent(gen, "site", "old secret")
	if v, ok := c.get("site"); ok {
		t.Fatalf("a load from before the removal was cached: %q", v)
	}

	for name, remove := range map[string]func(){
		"deleteWhere": func() { c.deleteWhere(func(string) bool { return false }) },
		"clear":       c.clear,
	} {
		gen := c.generation()
		remove()
		c.putIfCurrent(gen, "site", "old secret")
		if _, ok := c.get("site"); ok {
			t.Fatalf("%s: a load from before it was cached", name)
		}
	}

	gen = c.generation()
	c.putIfCurrent(gen, "site", "new secret")
	if v, ok := c.get("site"); !ok || v != "new secret" {
		t.Fatalf("a current load was not cached: %q %v", v, ok)
	}
	now = now.Add(time.Minute)
	if _, ok := c.get("site"); ok {
		t.Fatal("an entry outlived its TTL")
	}
}

// TestCacheBounded: when full, expired entries go first, then the oldest.
func TestCacheBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newTTLCache[int, int](3, time.Minute, func() time.Time { return now })
	for i := range 3 {
		c.putIfCurrent(c.generation(), i, i)
		now = now.Add(time.Second)
	}
	c.putIfCurrent(c.generation(), 3, 3)
	if _, ok := c.get(0); ok || c.len() != 3 {
		t.Fatalf("the oldest entry was not evicted (len %d)", c.len())
	}
	now = now.Add(time.Minute)
	c.putIfCurrent(c.generation(), 4, 4)
	if c.len() != 1 {
		t.Fatalf("expired entries were not dropped first: len %d", c.len())
	}
}
