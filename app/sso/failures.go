package sso

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Anyone can start sign-ins and finish them at once, so what finishing one
// costs is bounded in time, per process, by budgets (token buckets):
//
//   - A refused sign-in is a login_failure in the audit log once it took
//     its login state, within its site's failure budget: a burst of 120,
//     then one a second. Beyond it a failure is refused as always and
//     logged ("audited": false), but not written, and not counted in the
//     audit log's chart.
//   - An OIDC callback exchanges its code at the identity provider's
//     token endpoint with the site's client secret (twice when the IdP
//     refuses it: x/oauth2 tries the other way to send the secret). Real
//     sign-ins' codes are accepted; junk codes, which anyone can send after
//     a free /login, are refused. So an IdP's failed exchanges have a
//     ceiling: a burst of 300, then 50 a second. While it is spent,
//     callbacks are refused without a call ("idp_busy"). It is a ceiling
//     on what idbridge sends an IdP on anyone's behalf, set above what an
//     IdP's own rate limits let through (Okta's token endpoint allows some
//     tens a second per org), so that it is not the easier way to shut a
//     site's customers out. Successful exchanges take nothing of it
//     (issue 14 measured 500 sign-ins a second on one IdP).
const (
	failureRate       = rate.Limit(1)
	failureBurst      = 120
	exchangeFailRate  = rate.Limit(50)
	exchangeFailBurst = 300
	maxBudgetEntries  = 10000
)

type budgets struct {
	now   func() time.Time
	rate  rate.Limit
	burst int
	mu    sync.Mutex
	m     map[string]*rate.Limiter
}

func newBudgets(now func() time.Time, r rate.Limit, burst int) *budgets {
	return &budgets{now: now, rate: r, burst: burst, m: map[string]*rate.Limiter{}}
}

// allow takes one of key's budget; false when it is spent.
func (b *budgets) allow(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limiter(key).AllowN(b.now(), 1)
}

// left reports whether key's budget has one to take, taking none.
func (b *budgets) left(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limiter(key).TokensAt(b.now()) >= 1
}

// limiter is key's bucket, made when first asked for; b.mu is held.
func (b *budgets) limiter(key string) *rate.Limiter {
	now := b.now()
	l := b.m[key]
	if l == nil {
		if len(b.m) >= maxBudgetEntries {
			// A full bucket is what a new one would be: forget those.
			for k, l := range b.m {
				if l.TokensAt(now) >= float64(b.burst) {
					delete(b.m, k)
				}
			}
			if len(b.m) >= maxBudgetEntries {
				clear(b.m)
			}
		}
		l = rate.NewLimiter(b.rate, b.burst)
		b.m[key] = l
	}
	return l
}
