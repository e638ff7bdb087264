package atlassian

import (
	"context"
	"net/http"
	"time"

	"idbridge/models"
)

// Timeout defaults: one attempt may wait this long for response headers, and
// one call, retries and waits included, this long in all.
const (
	DefaultResponseHeaderTimeout = 20 * time.Second
	DefaultTimeout               = 90 * time.Second
)

// Options configures Clients. Zero fields take the package defaults.
type Options struct {
	AppKey string

	// Timeout bounds one call, retries and waits included.
	Timeout time.Duration
	// Base sends single attempts; nil is a clone of http.DefaultTransport
	// with DefaultResponseHeaderTimeout.
	Base http.RoundTripper

	Limiter      LimiterOptions
	MaxAttempts  int
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	MaxTotalWait time.Duration

	// For tests: the clock, the sleeper and the jitter source, shared by
	// the transport and the limiter.
	Now    func() time.Time
	Sleep  func(ctx context.Context, d time.Duration) error
	Random func() float64
}

// Clients holds what every call to Atlassian shares in one process: the HTTP
// client with the retrying, rate-limited transport. Build one in App and
// derive a SiteClient per site and call.
type Clients struct {
	HTTP    *http.Client
	Limiter *Limiter

	appKey string
	now    func() time.Time
}

// New builds Clients; it starts no goroutine.
func New(o Options) *Clients {
	base := o.Base
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
		base = t
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	lo := o.Limiter
	if lo.Now == nil {
		lo.Now = o.Now
	}
	if lo.Sleep == nil {
		lo.Sleep = o.Sleep
	}
	limiter := NewLimiter(lo)
	transport := &Transport{
		Base:         base,
		Limiter:      limiter,
		MaxAttempts:  o.MaxAttempts,
		BaseDelay:    o.BaseDelay,
		MaxDelay:     o.MaxDelay,
		MaxTotalWait: o.MaxTotalWait,
		Now:          o.Now,
		Sleep:        o.Sleep,
		Random:       o.Random,
	}
	return &Clients{
		HTTP:    &http.Client{Transport: transport, Timeout: timeout},
		Limiter: limiter,
		appKey:  o.AppKey,
		now:     now,
	}
}

// Site returns a client that calls site's REST API as the app.
func (c *Clients) Site(site *models.Site) (*SiteClient, error) {
	return NewSiteClient(c.HTTP, c.appKey, site, c.now)
}
