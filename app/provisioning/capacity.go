package provisioning

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"idbridge/app/store"
	"idbridge/models"
)

// Fair sharing of one process among many sites. Each site may have at most
// SiteRequests SCIM requests in flight (beyond that: 429 with Retry-After),
// and at most SiteWork of them doing database work that holds a connection
// at once; all sites together hold at most Work connections for SCIM, so
// that the rest of the pool stays free for health checks, lifecycle calls,
// the admin API and the workers. Coalesced lookups on PostgreSQL and
// creates on both databases (app/store/coalesce.go, sqlite_batch.go) share
// one statement or transaction per batch and take no work slot: the batch
// holds the connection for all of them.
type capacity struct {
	siteRequests int
	siteWork     int
	work         chan struct{}
	lookups      chan struct{}
	wait         time.Duration

	mu    sync.Mutex
	sites map[string]*siteLoad // sites with requests in flight only
}

type siteLoad struct {
	requests int
	work     chan struct{}
}

// CapacityConfig sizes the fair share of SCIM work; zero values are derived
// from the store's connection pool (see defaults).
type CapacityConfig struct {
	// SiteRequests bounds one site's SCIM requests in flight.
	SiteRequests int
	// SiteWork bounds one site's requests holding a database connection.
	SiteWork int
	// Work bounds all sites' SCIM requests holding a database connection.
	Work int
	// Lookups bounds the lookups by a unique key running at once, all
	// sites together, where they take a slot (SQLite: PostgreSQL's are
	// coalesced). A SQLite lookup is CPU work in this process, so more of
	// them than cores only share the cores while each holds its
	// connection: the default is GOMAXPROCS. They have their own lane,
	// apart from Work, so that they never queue behind other requests.
	Lookups int
	// Wait bounds how long a request waits for a work slot before it is
	// answered 429 (its site's slots) or 503 (all sites' slots).
	Wait time.Duration
}

// DefaultSiteRequests is a site's SCIM requests in flight unless
// configured: Entra calls at about 25 requests per second, Okta with a
// handful of connections; the SCIM load test uses 32.
const DefaultSiteRequests = 64

// reservedConns are the pool's connections SCIM never takes: /readyz, the
// lifecycle, the admin API and the background workers have them (fewer on
// SQLite, whose readers do not wait for writers and whose pool is small).
const (
	reservedConnsPostgres = 4
	reservedConnsSQLite   = 2
)

func newCapacity(cfg CapacityConfig, st *store.Store) *capacity {
	if cfg.Lookups <= 0 {
		cfg.Lookups = runtime.GOMAXPROCS(0)
		if st != nil && st.Dialect() == store.SQLite {
			// Never the reserved connections, the create batch's, nor
			// the last one of the other SCIM work.
			cfg.Lookups = min(cfg.Lookups, st.MaxOpenConns()-reservedConnsSQLite-store.SQLiteCreateSlots-1)
		}
		cfg.Lookups = max(cfg.Lookups, 1)
	}
	if cfg.Work <= 0 {
		pool := st.MaxOpenConns()
		// PostgreSQL: 20 connections, of which the coalesced lookups and
		// creates take up to 3: 13 for SCIM work; SQLite (2 cores): 8, of
		// which the create batch takes 1 and the lookups 2: 3 for other
		// SCIM work.
		cfg.Work = pool - reservedConnsSQLite - store.SQLiteCreateSlots - cfg.Lookups
		if st.Dialect() == store.Postgres {
			cfg.Work = pool - reservedConnsPostgres - 3
		}
		cfg.Work = max(cfg.Work, 1)
	}
	if cfg.SiteWork <= 0 {
		// A third of the connections, and half of the cores: a site's
		// most expensive requests (PATCHes of thousands of operations,
		// filters over every email of every user) are CPU work in this
		// process or in the database, and the other sites' lookups need
		// cores to answer within milliseconds.
		cfg.SiteWork = max(min(cfg.Work/3, runtime.NumCPU()/2), 1)
	}
	if cfg.SiteRequests <= 0 {
		cfg.SiteRequests = DefaultSiteRequests
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 2 * time.Second
	}
	return &capacity{
		siteRequests: cfg.SiteRequests,
		siteWork:     cfg.SiteWork,
		work:         make(chan struct{}, cfg.Work),
		lookups:      make(chan struct{}, cfg.Lookups),
		wait:         cfg.Wait,
		sites:        map[string]*siteLoad{},
	}
}

// admit counts a request of the site in flight until done is called, or
// refuses it with 429 when the site has its share in flight already.
func (c *capacity) admit(siteID string) (done func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sl := c.sites[siteID]
	if sl == nil {
		sl = &siteLoad{work: make(chan struct{}, c.siteWork)}
		c.sites[siteID] = sl
	}
	if sl.requests >= c.siteRequests {
		return nil, &models.Error{Code: models.CodeTooMany, Message: tooManyRequests(c.siteRequests)}
	}
	sl.requests++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if sl.requests--; sl.requests == 0 {
				delete(c.sites, siteID)
			}
		})
	}, nil
}

func tooManyRequests(n int) string {
	return "this site has " + strconv.Itoa(n) + " SCIM requests in flight, the most one site may have at once; try again shortly"
}

// slot waits for a work slot of the site and of the process; release gives
// both back. A request that was not admitted (a direct call of the
// service) is counted for the duration of the slot.
//
// A light slot (a lookup by a unique key: an index probe, microseconds)
// takes only a slot of the process's lookup lane (CapacityConfig.Lookups),
// so that a site's lookups queue neither behind its own expensive requests
// nor behind other sites'.
func (c *capacity) slot(ctx context.Context, siteID string, light bool) (release func(), err error) {
	if c == nil {
		return func() {}, nil
	}
	c.mu.Lock()
	sl := c.sites[siteID]
	c.mu.Unlock()
	var done func()
	if sl == nil {
		if done, err = c.admit(siteID); err != nil {
			return nil, err
		}
		c.mu.Lock()
		sl = c.sites[siteID]
		c.mu.Unlock()
	}
	giveUp := func() {
		if done != nil {
			done()
		}
	}
	siteWork, work := sl.work, c.work
	if light {
		siteWork, work = nil, c.lookups
	}
	leaveSite := func() {
		if siteWork != nil {
			<-siteWork
		}
	}
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	if siteWork != nil {
		select {
		case siteWork <- struct{}{}:
		case <-timer.C:
			giveUp()
			return nil, &models.Error{Code: models.CodeTooMany, Message: "this site's SCIM requests are using all of its share of the server; try again shortly"}
		case <-ctx.Done():
			giveUp()
			return nil, waitEnded(ctx)
		}
	}
	select {
	case work <- struct{}{}:
	case <-timer.C:
		leaveSite()
		giveUp()
		return nil, &models.Error{Code: models.CodeUnavailable, Message: "the server is busy with other sites' SCIM requests; try again shortly"}
	case <-ctx.Done():
		leaveSite()
		giveUp()
		return nil, waitEnded(ctx)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-work
			leaveSite()
			giveUp()
		})
	}, nil
}

// inFlight reports how many sites have requests in flight (tests).
func (c *capacity) inFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sites)
}

// waitEnded is the error of a request whose context ended while it waited
// for its turn (its client left, or its deadline passed): unavailable, not
// internal.
func waitEnded(ctx context.Context) error {
	return fmt.Errorf("%w: %w", &models.Error{Code: models.CodeUnavailable, Message: "the request ended while it waited for its turn; try again shortly"}, ctx.Err())
}
