package atlassian

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"idbridge/models"
)

// Retry defaults. Four attempts with 500 ms full-jitter backoff wait at most
// 3.5 s in total when Atlassian gives no hint; a hinted wait may be up to
// 30 s, and all waits of one request together up to a minute.
const (
	DefaultMaxAttempts  = 4
	DefaultBaseDelay    = 500 * time.Millisecond
	DefaultMaxDelay     = 30 * time.Second
	DefaultMaxTotalWait = time.Minute
)

// drainLimit bounds how much of a discarded response body is read so that
// its connection can be reused.
const drainLimit = 64 << 10

type contextKey int

const (
	idempotentKey contextKey = iota
	siteIDKey
	budgetKey
	singleAttemptKey
)

// WithIdempotent marks the requests made with ctx as safe to send twice (a
// read expressed as POST, such as Jira's permission check), so the transport
// may retry them after a 503 or a transport error like a GET.
func WithIdempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey, true)
}

// WithSingleAttempt makes the requests made with ctx go out once: a 429 or
// 503 comes back to the caller at once (with its RetryAt) instead of being
// retried here, and pauses nobody else. For callers that schedule their own
// retries, such as the sync worker, which never sleeps on an answer. The
// per-site rate limiter still paces them.
func WithSingleAttempt(ctx context.Context) context.Context {
	return context.WithValue(ctx, singleAttemptKey, true)
}

// WithSiteID names the site the requests made with ctx are for, which keys
// the per-site rate limiter. Without it the limiter keys by the URL's host.
func WithSiteID(ctx context.Context, siteID string) context.Context {
	return context.WithValue(ctx, siteIDKey, siteID)
}

// WithBudget makes the requests made with ctx draw on the named budget of
// the rate limiter instead of their site's or host's: work that must not
// starve other work calling the same host (the scheduled Marketplace sync,
// and admins' on-demand syncs) gets a bucket of its own, and a Retry-After
// pauses only that bucket.
func WithBudget(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, budgetKey, name)
}

// RetryLaterError reports that Atlassian asked for a wait longer than the
// transport may sleep. It unwraps to a models.Error with CodeUnavailable.
type RetryLaterError struct {
	StatusCode int
	RetryAt    time.Time
}

func (e *RetryLaterError) Error() string {
	return fmt.Sprintf("atlassian answered %d %s; retry after %s",
		e.StatusCode, http.StatusText(e.StatusCode), e.RetryAt.UTC().Format(time.RFC3339))
}

func (e *RetryLaterError) Unwrap() error {
	return models.Errorf(models.CodeUnavailable, "Atlassian is limiting requests to this site; try again after %s",
		e.RetryAt.UTC().Format(time.RFC3339))
}

// Transport is an http.RoundTripper that waits for the per-site rate limiter
// before each attempt and retries as the package documentation describes.
// Zero fields take the defaults, time.Now, a context-aware timer and
// math/rand/v2. A Transport is safe for concurrent use.
type Transport struct {
	Base         http.RoundTripper // nil: http.DefaultTransport
	Limiter      *Limiter          // nil: no rate limit
	MaxAttempts  int               // attempts in all, first included
	BaseDelay    time.Duration     // first backoff ceiling, doubled per attempt
	MaxDelay     time.Duration     // cap of one wait, computed or asked by the server
	MaxTotalWait time.Duration     // cap of all waits of one request
	Now          func() time.Time
	Sleep        func(ctx context.Context, d time.Duration) error
	Random       func() float64 // in [0, 1)
}

// RoundTrip sends req, retrying per the policy. Like any RoundTripper it
// closes req.Body, also on error.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	idempotent := isIdempotent(req)
	maxAttempts := t.maxAttempts()
	if single, _ := ctx.Value(singleAttemptKey).(bool); !replayable || single {
		maxAttempts = 1
	}
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		areq := req
		if attempt > 1 {
			areq = req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, fmt.Errorf("atlassian: replay request body: %w", err)
				}
				areq.Body = body
			}
		}
		if t.Limiter != nil {
			if err := t.Limiter.Wait(ctx, limiterKey(req)); err != nil {
				closeBody(areq)
				return nil, err
			}
		}
		resp, err := t.base().RoundTrip(areq)

		var delay time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil || !idempotent || attempt >= maxAttempts {
				return nil, err
			}
			delay = t.backoff(attempt)
		case resp.StatusCode == http.StatusTooManyRequests ||
			resp.StatusCode == http.StatusServiceUnavailable && idempotent:
			if attempt >= maxAttempts {
				return resp, nil
			}
			now := t.now()
			hinted, ok := serverDelay(resp.Header, now)
			if !ok {
				delay = t.backoff(attempt)
				break
			}
			if hinted > t.maxDelay() || waited+hinted > t.maxTotalWait() || passesDeadline(ctx, now, hinted) {
				drain(resp)
				return nil, &RetryLaterError{StatusCode: resp.StatusCode, RetryAt: now.Add(hinted)}
			}
			// The site's other requests wait too: Atlassian answers one sent
			// early with a longer Retry-After.
			if t.Limiter != nil {
				t.Limiter.pause(limiterKey(req), now.Add(hinted))
			}
			delay = hinted
		default:
			return resp, nil
		}

		if waited+delay > t.maxTotalWait() || passesDeadline(ctx, t.now(), delay) {
			if err != nil {
				return nil, err
			}
			return resp, nil
		}
		if resp != nil {
			drain(resp)
		}
		if err := t.sleep(ctx, delay); err != nil {
			return nil, err
		}
		waited += delay
	}
}

// backoff is the full-jitter wait before the attempt after the given one:
// uniform in [0, min(MaxDelay, BaseDelay·2^(attempt-1))).
func (t *Transport) backoff(attempt int) time.Duration {
	ceiling := t.maxDelay()
	if shift := attempt - 1; shift < 32 {
		if d := t.baseDelay() << shift; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	random := t.Random
	if random == nil {
		random = rand.Float64
	}
	return time.Duration(random() * float64(ceiling))
}

// serverDelay reads how long Atlassian asks to wait: Retry-After first
// (delta seconds or HTTP date), then X-RateLimit-Reset (a timestamp). ok is
// false when neither says anything usable.
func serverDelay(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
			// Atlassian has been seen sending Long.MAX_VALUE here.
			if secs > uint64(math.MaxInt64/int64(time.Second)) {
				return time.Duration(math.MaxInt64), true
			}
			return time.Duration(secs) * time.Second, true
		}
		if at, err := http.ParseTime(v); err == nil {
			return max(at.Sub(now), 0), true
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if at, ok := parseResetTime(v); ok && at.After(now) {
			// A reset already past (Atlassian rounds it to the minute) is no
			// hint; backoff decides.
			return at.Sub(now), true
		}
	}
	return 0, false
}

// resetLayouts are the ISO 8601 forms of X-RateLimit-Reset: Atlassian
// documents yyyy-MM-ddTHH:mmZ, and full RFC 3339 is accepted too.
var resetLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04Z0700",
}

// parseResetTime reads X-RateLimit-Reset as an ISO 8601 timestamp or as Unix
// epoch seconds (milliseconds when the number is that large).
func parseResetTime(v string) (time.Time, bool) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		switch {
		case n >= 1e12:
			return time.UnixMilli(n), true
		case n >= 1e9:
			return time.Unix(n, 0), true
		default:
			return time.Time{}, false
		}
	}
	for _, layout := range resetLayouts {
		if at, err := time.Parse(layout, v); err == nil {
			return at, true
		}
	}
	return time.Time{}, false
}

// isIdempotent reports whether sending req twice has the effect of sending
// it once: the methods RFC 9110 §9.2.2 calls idempotent, or a marked context.
func isIdempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	marked, _ := req.Context().Value(idempotentKey).(bool)
	return marked
}

func limiterKey(req *http.Request) string {
	if name, ok := req.Context().Value(budgetKey).(string); ok && name != "" {
		// Not a valid site ID (those are "s_…"), so never a site's bucket.
		return "budget:" + name
	}
	if id, ok := req.Context().Value(siteIDKey).(string); ok && id != "" {
		return id
	}
	return req.URL.Host
}

// passesDeadline reports whether waiting d from now would outlast ctx.
func passesDeadline(ctx context.Context, now time.Time, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return ok && now.Add(d).After(deadline)
}

func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	_ = resp.Body.Close()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) maxAttempts() int {
	if t.MaxAttempts > 0 {
		return t.MaxAttempts
	}
	return DefaultMaxAttempts
}

func (t *Transport) baseDelay() time.Duration {
	if t.BaseDelay > 0 {
		return t.BaseDelay
	}
	return DefaultBaseDelay
}

func (t *Transport) maxDelay() time.Duration {
	if t.MaxDelay > 0 {
		return t.MaxDelay
	}
	return DefaultMaxDelay
}

func (t *Transport) maxTotalWait() time.Duration {
	if t.MaxTotalWait > 0 {
		return t.MaxTotalWait
	}
	return DefaultMaxTotalWait
}

func (t *Transport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Transport) sleep(ctx context.Context, d time.Duration) error {
	if t.Sleep != nil {
		return t.Sleep(ctx, d)
	}
	return sleepContext(ctx, d)
}
