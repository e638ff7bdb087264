package atlassian

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Default request rate per site. Atlassian publishes no numbers; these keep
// one replica well inside the burst limits seen in practice, and a 429 still
// slows the site down through Retry-After.
const (
	DefaultSiteRate        rate.Limit = 10
	DefaultSiteBurst                  = 20
	DefaultMaxSites                   = 10000
	DefaultSiteIdleTimeout            = 10 * time.Minute
)

// LimiterOptions configures a Limiter; zero fields take the defaults above,
// time.Now and a context-aware timer.
type LimiterOptions struct {
	Rate        rate.Limit
	Burst       int
	MaxSites    int
	IdleTimeout time.Duration
	Now         func() time.Time
	Sleep       func(ctx context.Context, d time.Duration) error
}

// Limiter keeps each site under a request rate. It is keyed by site ID, holds
// at most MaxSites entries, and forgets a site idle for IdleTimeout (by then
// its bucket is full again, so forgetting it changes nothing).
type Limiter struct {
	rate     rate.Limit
	burst    int
	maxSites int
	idle     time.Duration
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error

	mu        sync.Mutex
	sites     map[string]*siteLimit
	lastSweep time.Time
}

type siteLimit struct {
	limiter     *rate.Limiter
	lastUsed    time.Time
	pausedUntil time.Time // set from a Retry-After so the site's other requests wait too
}

// NewLimiter returns a Limiter; it starts no goroutine.
func NewLimiter(o LimiterOptions) *Limiter {
	l := &Limiter{
		rate:     o.Rate,
		burst:    o.Burst,
		maxSites: o.MaxSites,
		idle:     o.IdleTimeout,
		now:      o.Now,
		sleep:    o.Sleep,
		sites:    make(map[string]*siteLimit),
	}
	if l.rate <= 0 {
		l.rate = DefaultSiteRate
	}
	if l.burst <= 0 {
		l.burst = DefaultSiteBurst
	}
	if l.maxSites <= 0 {
		l.maxSites = DefaultMaxSites
	}
	if l.idle <= 0 {
		l.idle = DefaultSiteIdleTimeout
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.sleep == nil {
		l.sleep = sleepContext
	}
	return l
}

// Wait blocks until the site may send one more request, or ctx ends. It
// refuses at once a wait that would outlast ctx's deadline.
func (l *Limiter) Wait(ctx context.Context, siteID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := l.now()
	l.mu.Lock()
	s := l.site(siteID, now)
	r := s.limiter.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if pause := s.pausedUntil.Sub(now); pause > delay {
		delay = pause
	}
	l.mu.Unlock()
	if !r.OK() {
		return fmt.Errorf("atlassian: site request rate allows no request")
	}
	if delay <= 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && now.Add(delay).After(deadline) {
		r.CancelAt(now)
		return fmt.Errorf("atlassian: waiting %s for the site's request rate would pass the deadline: %w", delay, context.DeadlineExceeded)
	}
	if err := l.sleep(ctx, delay); err != nil {
		r.CancelAt(l.now())
		return err
	}
	return nil
}

// pause holds every request of the site until the given time, because
// Atlassian answers requests sent before Retry-After with a longer wait.
func (l *Limiter) pause(siteID string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.site(siteID, l.now())
	if until.After(s.pausedUntil) {
		s.pausedUntil = until
	}
}

// len reports how many sites the limiter remembers.
func (l *Limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sites)
}

// site returns the site's entry, creating it; l.mu is held.
func (l *Limiter) site(siteID string, now time.Time) *siteLimit {
	if s, ok := l.sites[siteID]; ok {
		s.lastUsed = now
		return s
	}
	if len(l.sites) >= l.maxSites || now.Sub(l.lastSweep) >= l.idle {
		l.sweep(now)
	}
	if len(l.sites) >= l.maxSites {
		l.evictOldest()
	}
	s := &siteLimit{limiter: rate.NewLimiter(l.rate, l.burst), lastUsed: now}
	l.sites[siteID] = s
	return s
}

// sweep forgets sites idle for the idle timeout and not paused; l.mu is held.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for id, s := range l.sites {
		if now.Sub(s.lastUsed) >= l.idle && !s.pausedUntil.After(now) {
			delete(l.sites, id)
		}
	}
}

// evictOldest forgets the least recently used site; l.mu is held. Reached
// only when more than MaxSites sites were active within the idle timeout.
func (l *Limiter) evictOldest() {
	var oldestID string
	var oldest time.Time
	for id, s := range l.sites {
		if oldestID == "" || s.lastUsed.Before(oldest) {
			oldestID, oldest = id, s.lastUsed
		}
	}
	delete(l.sites, oldestID)
}

// sleepContext waits for d or until ctx ends, whichever comes first.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
