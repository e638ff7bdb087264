package atlassian

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"idbridge/models"
)

// fakeClock is the injected clock and sleeper: sleeping records the duration
// and advances the clock at once, so no test waits for real.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// scriptedServer answers the i-th request with steps[i] (the last step
// repeats) and counts requests and the bodies it received.
type scriptedServer struct {
	*httptest.Server
	mu     sync.Mutex
	count  int
	bodies []string
}

type step func(w http.ResponseWriter, r *http.Request)

func newScriptedServer(tb testing.TB, steps ...step) *scriptedServer {
	tb.Helper()
	s := &scriptedServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		i := s.count
		s.count++
		s.bodies = append(s.bodies, string(body))
		s.mu.Unlock()
		steps[min(i, len(steps)-1)](w, r)
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *scriptedServer) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

func (s *scriptedServer) Bodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

func status(code int, headers ...string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"ok":false}`)
	}
}

func ok(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func newTestTransport(clock *fakeClock, random float64) *Transport {
	return &Transport{
		Now:    clock.Now,
		Sleep:  clock.Sleep,
		Random: func() float64 { return random },
	}
}

func send(tb testing.TB, rt http.RoundTripper, ctx context.Context, method, url, body string) (*http.Response, error) {
	tb.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if resp != nil {
		tb.Cleanup(func() { _ = resp.Body.Close() })
	}
	return resp, err
}

func TestTransportRetriesWithServerHints(t *testing.T) {
	clock := newFakeClock()
	httpDate := clock.Now().Add(7 * time.Second).Format(http.TimeFormat)
	tests := []struct {
		name    string
		headers []string
		want    time.Duration
	}{
		{"retry-after seconds", []string{"Retry-After", "1"}, time.Second},
		{"retry-after http date", []string{"Retry-After", httpDate}, 7 * time.Second},
		{"retry-after zero", []string{"Retry-After", "0"}, 0},
		{"reset iso minute", []string{"X-RateLimit-Reset", "2026-03-02T10:01Z"}, time.Minute - 0},
		{"reset rfc3339", []string{"X-RateLimit-Reset", "2026-03-02T10:00:12Z"}, 12 * time.Second},
		{"reset rfc3339 offset", []string{"X-RateLimit-Reset", "2026-03-02T11:00:05+01:00"}, 5 * time.Second},
		{"reset epoch seconds", []string{"X-RateLimit-Reset", "1772445609"}, 9 * time.Second},
		{"retry-after wins", []string{"Retry-After", "2", "X-RateLimit-Reset", "2026-03-02T10:00:20Z"}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			tr := newTestTransport(clock, 0.5)
			tr.MaxDelay = 2 * time.Minute
			srv := newScriptedServer(t, status(http.StatusTooManyRequests, tt.headers...), ok)
			resp, err := send(t, tr, context.Background(), http.MethodGet, srv.URL, "")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			if diff := cmp.Diff([]time.Duration{tt.want}, clock.Sleeps()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if srv.Count() != 2 {
				t.Errorf("requests = %d, want 2", srv.Count())
			}
		})
	}
}

func TestTransportBackoffWithFullJitter(t *testing.T) {
	clock := newFakeClock()
	tr := newTestTransport(clock, 0.5)
	tr.MaxAttempts = 5
	tr.BaseDelay = 500 * time.Millisecond
	tr.MaxDelay = 3 * time.Second
	// A reset already past is no hint; backoff decides.
	srv := newScriptedServer(t, status(http.StatusTooManyRequests, "X-RateLimit-Reset", "2026-03-02T09:59Z"))
	resp, err := send(t, tr, context.Background(), http.MethodGet, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status = %d, want the last 429", resp.StatusCode)
	}
	// Half of the ceilings 0.5 s, 1 s, 2 s, then 4 s capped at 3 s.
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond}
	if diff := cmp.Diff(want, clock.Sleeps()); diff != "" {
		t.Errorf("sleeps (-want +got):\n%s", diff)
	}
	if srv.Count() != 5 {
		t.Errorf("requests = %d, want 5", srv.Count())
	}
}

func TestTransportJitterSpansFullRange(t *testing.T) {
	for _, random := range []float64{0, 0.999} {
		tr := &Transport{Random: func() float64 { return random }, BaseDelay: time.Second, MaxDelay: 30 * time.Second}
		got := tr.backoff(3)
		want := time.Duration(random * float64(4*time.Second))
		if got != want {
			t.Errorf("backoff(3) with random %v = %s, want %s", random, got, want)
		}
	}
	tr := &Transport{Random: func() float64 { return 0.999999 }}
	if got := tr.backoff(200); got > DefaultMaxDelay {
		t.Errorf("backoff(200) = %s, want at most %s", got, DefaultMaxDelay)
	}
}

func TestTransport503ThenSuccessReplaysBody(t *testing.T) {
	clock := newFakeClock()
	tr := newTestTransport(clock, 0)
	srv := newScriptedServer(t, status(http.StatusServiceUnavailable), ok)
	resp, err := send(t, tr, context.Background(), http.MethodPut, srv.URL, `{"name":"x"}`)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	if diff := cmp.Diff([]string{`{"name":"x"}`, `{"name":"x"}`}, srv.Bodies()); diff != "" {
		t.Errorf("bodies (-want +got):\n%s", diff)
	}
}

func TestTransportPostPolicy(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		idempotent bool
		wantCount  int
		wantStatus int
	}{
		{"429 is retried", http.StatusTooManyRequests, false, 2, http.StatusOK},
		{"503 is not retried", http.StatusServiceUnavailable, false, 1, http.StatusServiceUnavailable},
		{"503 marked idempotent is retried", http.StatusServiceUnavailable, true, 2, http.StatusOK},
		{"500 is not retried", http.StatusInternalServerError, false, 1, http.StatusInternalServerError},
		{"500 marked idempotent is not retried", http.StatusInternalServerError, true, 1, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			tr := newTestTransport(clock, 0)
			srv := newScriptedServer(t, status(tt.status, "Retry-After", "1"), ok)
			ctx := context.Background()
			if tt.idempotent {
				ctx = WithIdempotent(ctx)
			}
			resp, err := send(t, tr, ctx, http.MethodPost, srv.URL, `{"a":1}`)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if srv.Count() != tt.wantCount {
				t.Errorf("requests = %d, want %d", srv.Count(), tt.wantCount)
			}
			for _, b := range srv.Bodies() {
				if b != `{"a":1}` {
					t.Errorf("body = %q, want the original", b)
				}
			}
		})
	}
}

// failingTransport fails the first n round trips, then delegates.
type failingTransport struct {
	n     atomic.Int32
	calls atomic.Int32
	next  http.RoundTripper
}

func (f *failingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f.calls.Add(1)
	if f.n.Add(-1) >= 0 {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, errors.New("connection reset by peer")
	}
	return f.next.RoundTrip(req)
}

func TestTransportErrors(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		wantCalls int32
		wantErr   bool
	}{
		{"GET retried after a transport error", http.MethodGet, 2, false},
		{"POST not retried after a transport error", http.MethodPost, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newScriptedServer(t, ok)
			base := &failingTransport{next: http.DefaultTransport}
			base.n.Store(1)
			tr := newTestTransport(clock, 0.5)
			tr.Base = base
			resp, err := send(t, tr, context.Background(), tt.method, srv.URL, "")
			if tt.wantErr != (err != nil) {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && resp.StatusCode != http.StatusOK {
				t.Errorf("status = %d, want 200", resp.StatusCode)
			}
			if got := base.calls.Load(); got != tt.wantCalls {
				t.Errorf("round trips = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestTransportUnreplayableBodyIsNotRetried(t *testing.T) {
	clock := newFakeClock()
	tr := newTestTransport(clock, 0)
	srv := newScriptedServer(t, status(http.StatusTooManyRequests, "Retry-After", "1"), ok)
	// An io.Reader net/http does not know gets no GetBody.
	req, err := http.NewRequest(http.MethodPut, srv.URL, io.MultiReader(strings.NewReader("x")))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if d := cmp.Diff(map[string]int{"status": http.StatusTooManyRequests, "requests": 1}, map[string]int{"status": resp.StatusCode, "requests": srv.Count()}); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestTransportGivesUpOnLongRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		want       time.Duration
	}{
		{"an hour", "3600", time.Hour},
		{"Long.MAX_VALUE", "9223372036854775807", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			tr := newTestTransport(clock, 0)
			srv := newScriptedServer(t, status(http.StatusTooManyRequests, "Retry-After", tt.retryAfter))
			_, err := send(t, tr, context.Background(), http.MethodGet, srv.URL, "")
			var later *RetryLaterError
			if !errors.As(err, &later) {
				t.Fatalf("err = %v, want a *RetryLaterError", err)
			}
			if tt.want > 0 && !later.RetryAt.Equal(clock.Now().Add(tt.want)) {
				t.Errorf("RetryAt = %s, want %s", later.RetryAt, clock.Now().Add(tt.want))
			}
			if models.ErrorCode(err) != models.CodeUnavailable {
				t.Errorf("code = %s, want unavailable", models.ErrorCode(err))
			}
			if !strings.Contains(err.Error(), "retry after") {
				t.Errorf("error %q does not say when to retry", err)
			}
			if d := cmp.Diff(map[string]int{"sleeps": 0, "requests": 1}, map[string]int{"sleeps": len(clock.Sleeps()), "requests": srv.Count()}); d != "" {
				t.Errorf("slept %v (-want +got):\n%s", clock.Sleeps(), d)
			}
		})
	}
}

func TestTransportBoundsTotalWait(t *testing.T) {
	clock := newFakeClock()
	tr := newTestTransport(clock, 0)
	tr.MaxAttempts = 10
	tr.MaxTotalWait = 50 * time.Second
	srv := newScriptedServer(t, status(http.StatusTooManyRequests, "Retry-After", "20"))
	_, err := send(t, tr, context.Background(), http.MethodGet, srv.URL, "")
	var later *RetryLaterError
	if !errors.As(err, &later) {
		t.Fatalf("err = %v, want a *RetryLaterError", err)
	}
	if diff := cmp.Diff([]time.Duration{20 * time.Second, 20 * time.Second}, clock.Sleeps()); diff != "" {
		t.Errorf("sleeps (-want +got):\n%s", diff)
	}
}

func TestTransportAttemptsCap(t *testing.T) {
	clock := newFakeClock()
	tr := newTestTransport(clock, 0)
	srv := newScriptedServer(t, status(http.StatusServiceUnavailable, "Retry-After", "1"))
	resp, err := send(t, tr, context.Background(), http.MethodGet, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", resp.StatusCode)
	}
	if srv.Count() != DefaultMaxAttempts {
		t.Errorf("requests = %d, want %d", srv.Count(), DefaultMaxAttempts)
	}
}

func TestTransportCancelDuringWait(t *testing.T) {
	srv := newScriptedServer(t, status(http.StatusTooManyRequests, "Retry-After", "10"))
	tr := &Transport{} // the real sleeper: the wait must end with ctx
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(10*time.Millisecond, cancel)
	start := time.Now()
	_, err := send(t, tr, ctx, http.MethodGet, srv.URL, "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("returned after %s, want promptly", elapsed)
	}
}

func TestTransportWillNotSleepPastDeadline(t *testing.T) {
	srv := newScriptedServer(t, status(http.StatusTooManyRequests, "Retry-After", "10"))
	tr := &Transport{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := send(t, tr, ctx, http.MethodGet, srv.URL, "")
	var later *RetryLaterError
	if !errors.As(err, &later) {
		t.Fatalf("err = %v, want a *RetryLaterError", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("returned after %s, want at once", elapsed)
	}
}

func TestParseResetTime(t *testing.T) {
	want := time.Date(2026, 3, 2, 10, 1, 0, 0, time.UTC)
	for _, v := range []string{"2026-03-02T10:01Z", "2026-03-02T10:01:00Z", "2026-03-02T10:01:00.000Z", "2026-03-02T11:01+01:00", "2026-03-02T10:01:00+0000", "1772445660", "1772445660000"} {
		got, ok := parseResetTime(v)
		if !ok || !got.Equal(want) {
			t.Errorf("parseResetTime(%q) = %s, %v; want %s", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "soon", "17", "2026-03-02"} {
		if _, ok := parseResetTime(v); ok {
			t.Errorf("parseResetTime(%q) ok, want not", v)
		}
	}
}
