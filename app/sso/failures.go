package sso

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// A refused sign-in is a login_failure in the audit log once it took its
// login state; anyone can start sign-ins and refuse them at once (an
// ?error= at the OIDC callback), so the rows one site's failures write are
// bounded in time too: a burst of failureBurst, then failureRate a second,
// per site and process. Beyond it a failure is refused as always and
// logged ("audited": false), but not written, and not counted in the
// audit log's chart.
const (
	failureRate       = rate.Limit(1)
	failureBurst      = 120
	maxFailureBudgets = 10000
)

type failureBudgets struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*rate.Limiter
}

func newFailureBudgets(now func() time.Time) *failureBudgets {
	return &failureBudgets{now: now, m: map[string]*rate.Limiter{}}
}

// allow takes one failure of the site's budget; false when it is spent.
func (b *failureBudgets) allow(siteID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	l := b.m[siteID]
	if l == nil {
		if len(b.m) >= maxFailureBudgets {
			// A full bucket is what a new one would be: forget those.
			for k, l := range b.m {
				if l.TokensAt(now) >= failureBurst {
					delete(b.m, k)
				}
			}
			if len(b.m) >= maxFailureBudgets {
				clear(b.m)
			}
		}
		l = rate.NewLimiter(failureRate, failureBurst)
		b.m[siteID] = l
	}
	return l.AllowN(now, 1)
}
