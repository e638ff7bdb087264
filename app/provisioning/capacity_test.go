package provisioning

import (
	"context"
	"testing"
	"time"

	"idbridge/models"
)

// The shares themselves: a site's requests in flight are counted until they
// end; a request waits for its site's work slot (429 when it waited too
// long) and then for the process's (503); a request whose context ends
// while it waits is unavailable; nothing is kept for a site once its
// requests end.
func TestCapacityShares(t *testing.T) {
	c := newCapacity(CapacityConfig{SiteRequests: 3, SiteWork: 1, Work: 2, Wait: 20 * time.Millisecond}, nil)
	ctx := context.Background()
	var ends []func()
	for range 3 {
		end, err := c.admit("s1")
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, end)
	}
	if _, err := c.admit("s1"); models.ErrorCode(err) != models.CodeTooMany {
		t.Fatalf("4th request of a site with 3 in flight: %v, want too many", err)
	}
	if end, err := c.admit("s2"); err != nil {
		t.Fatalf("another site is refused: %v", err)
	} else {
		end()
	}
	// Site work: one slot; the second waits and is refused with 429.
	rel1, err := c.slot(ctx, "s1", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.slot(ctx, "s1", false); models.ErrorCode(err) != models.CodeTooMany {
		t.Fatalf("second work slot of a site with one: %v, want too many", err)
	}
	// A lookup takes only the process's slot.
	rel2, err := c.slot(ctx, "s1", true)
	if err != nil {
		t.Fatalf("a lookup waits for its site's slot: %v", err)
	}
	// The process's two slots are taken: another site waits, then 503.
	if _, err := c.slot(ctx, "s2", false); models.ErrorCode(err) != models.CodeUnavailable {
		t.Fatalf("work slot with the process's all taken: %v, want unavailable", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.slot(cancelled, "s2", true); models.ErrorCode(err) != models.CodeUnavailable {
		t.Fatalf("a request that left while waiting: %v, want unavailable", err)
	}
	rel1()
	rel1() // twice is once
	rel2()
	if rel, err := c.slot(ctx, "s2", false); err != nil {
		t.Fatalf("a slot after release: %v", err)
	} else {
		rel()
	}
	for _, end := range ends {
		end()
	}
	if n := c.inFlight(); n != 0 {
		t.Fatalf("%d sites kept after their requests ended", n)
	}
}
