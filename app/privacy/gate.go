package privacy

import (
	"sync"
	"time"

	"idbridge/models"
)

// Exports (and their counts) of one process are bounded: one at a time per
// site, MaxExports in all. An export holds no database connection while it
// writes (store.EachRow reads each batch whole), but it holds a goroutine,
// a batch of rows and the client's connection for as long as the client
// reads; without a bound, one site's administrator could start any number.
const (
	MaxExportsPerSite = 1
	MaxExports        = 16
)

// exportBusyRetry is the Retry-After of a refused export.
const exportBusyRetry = 10 * time.Second

type exportGate struct {
	mu     sync.Mutex
	total  int
	bySite map[string]int // only sites with an export running
}

// enter takes a slot for the site, or answers why not.
func (g *exportGate) enter(siteID string) (func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bySite[siteID] >= MaxExportsPerSite {
		return nil, &models.Error{Code: models.CodeTooMany, RetryAfter: exportBusyRetry,
			Message: "An export of this site is running already; try again when it has finished."}
	}
	if g.total >= MaxExports {
		return nil, &models.Error{Code: models.CodeTooMany, RetryAfter: exportBusyRetry,
			Message: "Too many exports are running at the moment; try again shortly."}
	}
	if g.bySite == nil {
		g.bySite = map[string]int{}
	}
	g.bySite[siteID]++
	g.total++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.total--
		if g.bySite[siteID]--; g.bySite[siteID] <= 0 {
			delete(g.bySite, siteID)
		}
	}, nil
}
