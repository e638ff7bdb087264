package sites

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"idbridge/app/atlassian"
	"idbridge/models"
)

// blockingSite answers every admin check with ADMINISTER once released,
// counting the calls that reach it.
type blockingSite struct {
	calls   atomic.Int32
	first   chan struct{}
	once    sync.Once
	release chan struct{}
}

func (b *blockingSite) RoundTrip(r *http.Request) (*http.Response, error) {
	b.calls.Add(1)
	b.once.Do(func() { close(b.first) })
	select {
	case <-b.release:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(`{"globalPermissions":["ADMINISTER"]}`)),
		Request:    r,
	}, nil
}

// TestRequireAdminSingleFlight: when the cached answer has expired, 32
// concurrent checks for one (site, account) make exactly one site call; a
// removal (reinstall) makes the next check call the site again.
func TestRequireAdminSingleFlight(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	fake := &blockingSite{first: make(chan struct{}), release: make(chan struct{})}
	clients := atlassian.New(atlassian.Options{AppKey: "idbridge", Base: fake, MaxAttempts: 1})
	s := New(Config{}, nil, nil, clients, clock, nil)
	caller := &models.Caller{
		Site: &models.Site{
			SiteFacts: models.SiteFacts{
				ClientKey:   "client-1",
				BaseURL:     "https://a.atlassian.net",
				ProductType: "jira",
			},
			SharedSecret: []byte("secret-0123456789abcdef0123456789abcdef"),
		},
		AccountID: "acc",
	}
	k := adminKey{"client-1", "acc"}
	s.admins.putIfCurrent(s.admins.generation(), k, true)
	mu.Lock()
	now = now.Add(adminCacheTTL)
	mu.Unlock()

	const n = 32
	errs := make(chan error, n)
	var started sync.WaitGroup
	for range n {
		started.Add(1)
		go func() {
			started.Done()
			errs <- s.RequireAdmin(context.Background(), caller)
		}()
	}
	started.Wait()
	<-fake.first
	// Every other caller joins the running check before it is answered.
	for deadline := time.Now().Add(10 * time.Second); s.adminChecks.waiting() < n-1; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d callers joined the running check", s.adminChecks.waiting(), n-1)
		}
		time.Sleep(time.Millisecond)
	}
	close(fake.release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("RequireAdmin: %v", err)
		}
	}
	if got := fake.calls.Load(); got != 1 {
		t.Fatalf("site calls after expiry = %d, want 1", got)
	}

	s.forget("client-1")
	if err := s.RequireAdmin(context.Background(), caller); err != nil {
		t.Fatal(err)
	}
	if got := fake.calls.Load(); got != 2 {
		t.Fatalf("site calls after a removal = %d, want 2", got)
	}
}

// TestFlightKeyedByGeneration: a caller that starts after a removal does
// not share a load that started before it.
func TestFlightKeyedByGeneration(t *testing.T) {
	var g flightGroup[siteFlight, int]
	inFlight, release := make(chan struct{}), make(chan struct{})
	done := make(chan int)
	go func() {
		v, _ := g.do(context.Background(), siteFlight{"k", 1}, func() (int, error) {
			close(inFlight)
			<-release
			return 1, nil
		})
		done <- v
	}()
	<-inFlight
	v, err := g.do(context.Background(), siteFlight{"k", 2}, func() (int, error) { return 2, nil })
	if err != nil || v != 2 {
		t.Fatalf("a newer generation shared an older load: %d %v", v, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.do(ctx, siteFlight{"k", 1}, func() (int, error) { return 3, nil }); err == nil {
		t.Fatal("a waiter whose context is done kept waiting")
	}
	close(release)
	if v := <-done; v != 1 {
		t.Fatalf("leader got %d", v)
	}
}

// waiting is how many callers wait for a running call, over all keys.
func (g *flightGroup[K, V]) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		n += c.waiters
	}
	return n
}
