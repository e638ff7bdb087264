package atlassian

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func newTestLimiter(clock *fakeClock, o LimiterOptions) *Limiter {
	o.Now, o.Sleep = clock.Now, clock.Sleep
	return NewLimiter(o)
}

func TestLimiterWaitsPerSite(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(clock, LimiterOptions{Rate: 2, Burst: 2})
	ctx := context.Background()
	for _, site := range []string{"a", "a", "b", "b", "a"} {
		if err := l.Wait(ctx, site); err != nil {
			t.Fatal(err)
		}
	}
	// Two each pass at once; a's third waits for one token at 2/s. b is not
	// slowed by a.
	if diff := cmp.Diff([]time.Duration{500 * time.Millisecond}, clock.Sleeps()); diff != "" {
		t.Errorf("sleeps (-want +got):\n%s", diff)
	}
}

func TestLimiterPauseHoldsTheSite(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(clock, LimiterOptions{})
	l.pause("a", clock.Now().Add(3*time.Second))
	ctx := context.Background()
	if err := l.Wait(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Duration{3 * time.Second}, clock.Sleeps()); diff != "" {
		t.Errorf("sleeps (-want +got):\n%s", diff)
	}
}

func TestLimiterRespectsContext(t *testing.T) {
	clock := newFakeClock()
	clock.now = time.Now() // ctx deadlines are on the real clock
	l := newTestLimiter(clock, LimiterOptions{Rate: 0.001, Burst: 1})
	if err := l.Wait(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(time.Second))
	defer cancel()
	if err := l.Wait(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := l.Wait(canceled, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want Canceled", err)
	}
	if len(clock.Sleeps()) != 0 {
		t.Errorf("slept %v, want not at all", clock.Sleeps())
	}
}

func TestLimiterEvictsIdleAndBoundsSize(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(clock, LimiterOptions{MaxSites: 3, IdleTimeout: time.Minute})
	ctx := context.Background()
	for i := range 5 {
		if err := l.Wait(ctx, fmt.Sprint("site", i)); err != nil {
			t.Fatal(err)
		}
		if n := l.len(); n > 3 {
			t.Fatalf("limiter holds %d sites, want at most 3", n)
		}
	}
	clock.mu.Lock()
	clock.now = clock.now.Add(2 * time.Minute)
	clock.mu.Unlock()
	if err := l.Wait(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	if n := l.len(); n != 1 {
		t.Errorf("after idle timeout the limiter holds %d sites, want 1", n)
	}
}

func TestTransportWaitsForLimiterBeforeEachAttempt(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(clock, LimiterOptions{Rate: 1, Burst: 1})
	tr := newTestTransport(clock, 0)
	tr.Limiter = l
	srv := newScriptedServer(t, status(http.StatusTooManyRequests, "Retry-After", "0"), ok)
	ctx := WithSiteID(context.Background(), "site-1")
	resp, err := send(t, tr, ctx, http.MethodGet, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	// Retry-After 0, then the limiter's one token per second.
	if diff := cmp.Diff([]time.Duration{0, time.Second}, clock.Sleeps()); diff != "" {
		t.Errorf("sleeps (-want +got):\n%s", diff)
	}
	if l.len() != 1 {
		t.Errorf("limiter holds %d sites, want 1 (keyed by site ID)", l.len())
	}
}

func TestTransportDoesNotPauseSiteForRefusedWait(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(clock, LimiterOptions{})
	tr := newTestTransport(clock, 0)
	tr.Limiter = l
	srv := newScriptedServer(t, status(http.StatusTooManyRequests, "Retry-After", "3600"))
	ctx := WithSiteID(context.Background(), "site-1")
	var later *RetryLaterError
	if _, err := send(t, tr, ctx, http.MethodGet, srv.URL, ""); !errors.As(err, &later) {
		t.Fatalf("err = %v, want a *RetryLaterError", err)
	}
	if err := l.Wait(ctx, "site-1"); err != nil {
		t.Fatal(err)
	}
	if len(clock.Sleeps()) != 0 {
		t.Errorf("slept %v, want the site not paused for a wait nobody honours", clock.Sleeps())
	}
}

// TestBudgetsDoNotShareABucket: requests made under a named budget draw on
// a bucket of their own, neither their host's nor a site's, and a
// Retry-After pauses only that budget.
func TestBudgetsDoNotShareABucket(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(clock, LimiterOptions{Rate: 1, Burst: 1})
	tr := newTestTransport(clock, 0)
	tr.Limiter = l
	srv := newScriptedServer(t, status(http.StatusTooManyRequests, "Retry-After", "20"), ok)
	busy := WithBudget(context.Background(), "on-demand")
	if resp, err := send(t, tr, busy, http.MethodGet, srv.URL, ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("on-demand request: %v", err)
	}
	// The busy budget waited out its Retry-After (and its bucket).
	if got := clock.Sleeps(); len(got) == 0 || got[0] != 20*time.Second {
		t.Fatalf("sleeps %v, want the 20 s Retry-After first", got)
	}
	slept := len(clock.Sleeps())
	l.pause("budget:on-demand", clock.Now().Add(time.Hour))
	// Another budget, the same host and a site are none of them held.
	for _, ctx := range []context.Context{WithBudget(context.Background(), "scheduled"), context.Background(), WithSiteID(context.Background(), "s_1")} {
		if resp, err := send(t, tr, ctx, http.MethodGet, srv.URL, ""); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request beside the paused budget: %v", err)
		}
	}
	if got := clock.Sleeps(); len(got) != slept {
		t.Errorf("other budgets slept %v, want no wait", got[slept:])
	}
	if l.len() != 4 {
		t.Errorf("limiter holds %d buckets, want 4 (two budgets, the host, the site)", l.len())
	}
}
