package provisioning

import (
	"context"
	"testing"
	"time"

	"idbridge/models"
)

// The shares themselves: a site's requests in flight are counted until they
// end; a request waits for its site's work slot (429 when it waited too
// long) and then for the process's (503); a lookup waits only for a slot
// of the process's lookup lane (503), whatever else runs; a request whose
// context ends while it waits is unavailable; nothing is kept for a site
// once its requests end.
func TestCapacityShares(t *testing.T) {
	c := newCapacity(CapacityConfig{SiteRequests: 3, SiteWork: 1, Work: 2, Lookups: 1, Wait: 20 * time.Millisecond}, nil)
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
	// Another site takes the process's second slot: a third site waits,
	// then 503.
	rel2, err := c.slot(ctx, "s2", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.slot(ctx, "s3", false); models.ErrorCode(err) != models.CodeUnavailable {
		t.Fatalf("work slot with the process's all taken: %v, want unavailable", err)
	}
	// A lookup waits neither for its site's slot nor for the process's
	// work slots: it has a lane of its own, of one slot here.
	rel3, err := c.slot(ctx, "s1", true)
	if err != nil {
		t.Fatalf("a lookup waits for the work slots: %v", err)
	}
	if _, err := c.slot(ctx, "s3", true); models.ErrorCode(err) != models.CodeUnavailable {
		t.Fatalf("a lookup with the lookup lane taken: %v, want unavailable", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.slot(cancelled, "s2", true); models.ErrorCode(err) != models.CodeUnavailable {
		t.Fatalf("a request that left while waiting: %v, want unavailable", err)
	}
	rel1()
	rel1() // twice is once
	rel2()
	rel3()
	for _, light := range []bool{false, true} {
		if rel, err := c.slot(ctx, "s2", light); err != nil {
			t.Fatalf("a slot (lookup %v) after release: %v", light, err)
		} else {
			rel()
		}
	}
	for _, end := range ends {
		end()
	}
	if n := c.inFlight(); n != 0 {
		t.Fatalf("%d sites kept after their requests ended", n)
	}
}
