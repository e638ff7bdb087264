package sso

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"idbridge/app/atlassian"
)

// Customers found (or created) and added to their service desks and
// organization are remembered for customerTTL, at most maxCustomers of
// them, keyed by site, settings version and a hash of the email (no
// address is kept in memory as such). A returning customer then signs in
// without a call to Atlassian; a change of the SSO settings (other desks,
// another organization) provisions everyone again.
const (
	customerTTL  = 10 * time.Minute
	maxCustomers = 100000
)

type customerCache struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]cachedCustomer
}

type cachedCustomer struct {
	user atlassian.User
	at   time.Time
}

func newCustomerCache(now func() time.Time) *customerCache {
	return &customerCache{now: now, m: map[string]cachedCustomer{}}
}

func customerKey(siteID string, settingsVersion time.Time, email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	return siteID + "|" + settingsVersion.UTC().Format(time.RFC3339Nano) + "|" + hex.EncodeToString(sum[:16])
}

func (c *customerCache) get(key string) (*atlassian.User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || c.now().Sub(e.at) > customerTTL {
		return nil, false
	}
	u := e.user
	return &u, true
}

func (c *customerCache) put(key string, u *atlassian.User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCustomers {
		for k, e := range c.m {
			if c.now().Sub(e.at) > customerTTL {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCustomers {
			clear(c.m)
		}
	}
	c.m[key] = cachedCustomer{user: *u, at: c.now()}
}
