package fakeatlassian

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// Pseudo statuses in the request counters for requests that got no answer.
const (
	// StatusDropped: the fake closed the connection (DropBefore or
	// DropAfterApply).
	StatusDropped = 0
	// StatusGone: the caller gave up before a slow answer came (Delay), or
	// a hung request ended (Hang).
	StatusGone = -1
)

// Fault is an injected misbehaviour of a site. The first fault (in the
// order injected) that matches a request and still has Times left decides
// how it is answered.
type Fault struct {
	// Route is a route of the site ("POST /rest/api/3/user", as the
	// counters name it) or of the organization Admin API; "" matches all.
	Route string
	// Status, when set, answers with this status without applying anything
	// (429, 500, 502, 503, 401, 403, …).
	Status int
	// RetryAfter is sent with Status as it is ("2", an HTTP date, or
	// garbage). RetryAfterIn computes it at answer time instead: whole
	// seconds from now (rounded up), or an HTTP date when AsDate.
	RetryAfter   string
	RetryAfterIn time.Duration
	AsDate       bool
	// Body replaces the answer body of Status (JSON).
	Body string
	// Delay answers only after this long (then as usual, or with Status).
	Delay time.Duration
	// Hold, when set, keeps the request, before anything is applied,
	// until the channel is closed (then as usual) or the caller gives up
	// (counted as StatusGone): a test decides what happens meanwhile.
	Hold <-chan struct{}
	// Hang answers nothing, leaving the connection open, until the caller
	// gives up or the Fake closes (counted as StatusGone).
	Hang bool
	// DropBefore closes the connection without applying or answering.
	DropBefore bool
	// DropAfterApply applies the change, then closes the connection
	// without an answer: the caller cannot know whether it happened.
	DropAfterApply bool
	// HangAfterApply applies the change, then answers nothing, leaving the
	// connection open, until the caller gives up or the Fake closes
	// (counted as StatusGone): a test can kill the caller after the site
	// applied its change and before the caller learnt of it.
	HangAfterApply bool
	// Times is how many matching requests it affects; 0 means every one
	// until ClearFaults.
	Times int
	// Probability, between 0 and 1 exclusive, affects only that share of
	// the matching requests, chosen at random (Options.Seed); 0 means all.
	Probability float64
}

type faultRule struct {
	Fault
	used int
}

// retryAfterValue is the Retry-After header the fault sends at now.
func (f *Fault) retryAfterValue(now time.Time) string {
	if f.RetryAfter != "" {
		return f.RetryAfter
	}
	if f.RetryAfterIn <= 0 {
		return ""
	}
	if f.AsDate {
		// An HTTP date has whole seconds: round up so the wait is never
		// shorter than asked.
		return now.Add(f.RetryAfterIn + time.Second - 1).UTC().Truncate(time.Second).Format(http.TimeFormat)
	}
	return strconv.Itoa(int(math.Ceil(f.RetryAfterIn.Seconds())))
}

// Inject adds a fault to the site.
func (s *Site) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultRule{Fault: f})
}

// ClearFaults removes every injected fault.
func (s *Site) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// matchFault picks the fault for a request to route, using it up.
func (s *Site) matchFault(route string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fr := range s.faults {
		if fr.Route != "" && fr.Route != route {
			continue
		}
		if fr.Times > 0 && fr.used >= fr.Times {
			continue
		}
		if fr.Probability > 0 && fr.Probability < 1 && s.rec.rnd.Float64() >= fr.Probability {
			continue
		}
		fr.used++
		f := fr.Fault
		return &f
	}
	return nil
}

// rateLimit is a token bucket: the site's own request rate.
type rateLimit struct {
	perSecond float64
	burst     float64
	tokens    float64
	last      time.Time
}

// SetRateLimit limits the site to perSecond requests a second with bursts
// of burst (at least 1); beyond it the site answers 429 with Retry-After,
// as Atlassian's rate limiter does. perSecond 0 lifts the limit.
func (s *Site) SetRateLimit(perSecond float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if perSecond <= 0 {
		s.rate = nil
		return
	}
	b := float64(max(burst, 1))
	s.rate = &rateLimit{perSecond: perSecond, burst: b, tokens: b, last: s.f.now()}
}

// takeRate takes one request from the bucket; limited says it is empty,
// and wait how long until a request would pass.
func (s *Site) takeRate(now time.Time) (wait time.Duration, limited bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rl := s.rate
	if rl == nil {
		return 0, false
	}
	if now.After(rl.last) {
		rl.tokens = math.Min(rl.burst, rl.tokens+now.Sub(rl.last).Seconds()*rl.perSecond)
		rl.last = now
	}
	if rl.tokens >= 1 {
		rl.tokens--
		return 0, false
	}
	return time.Duration((1 - rl.tokens) / rl.perSecond * float64(time.Second)), true
}
