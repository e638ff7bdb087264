package provisioning_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"idbridge/app/provisioning"
	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/handlers"
	"idbridge/models"
)

// Fair sharing: a site whose requests are stuck in the database (here:
// waiting for a lock another process holds) has at most its share in
// flight (beyond it: 429 with Retry-After and a SCIM error body, at once)
// and at most its share of connections; meanwhile another site's lookups
// and lists answer, and so do health checks, from capacity of their own.
// Once the lock goes, the stuck requests finish. Eight expensive filters of
// one site made another site's 1 ms lookup take 15 s and /readyz answer 503
// before.
func TestServerFairSharing(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st := b.Open(t, storetest.WithStoreOptions(func(o *store.Options) {
				o.MaxOpenConns, o.MaxIdleConns = 8, 8
				o.StatementTimeout = time.Minute
			}))
			const siteRequests, siteWork, work = 6, 2, 4
			u, _ := url.Parse(testBaseURL)
			svc := provisioning.NewService(provisioning.ServiceConfig{BaseURL: u, Capacity: provisioning.CapacityConfig{SiteRequests: siteRequests, SiteWork: siteWork, Work: work, Wait: time.Minute}}, st, nil, nil)
			e := &scimEnv{t: t, st: st, svc: svc, h: handlers.New(handlers.Deps{BaseURL: u, SCIM: svc, Provisioning: svc, MaxBodyBytes: 4 << 20})}
			noisy, quiet := e.newSite(), e.newSite()
			uid := noisy.createUser("victim")
			quiet.createUser("bob")

			unlock := holdWriteLock(t, b, st, noisy.site.ID, uid)
			// The noisy site sends writes that get stuck, one after the
			// other, until one is refused: at once, when its share is in
			// flight.
			var wg sync.WaitGroup
			answers := make(chan *resp, 4*siteRequests)
			launched := 0
			var refused *resp
			deadline := time.Now().Add(30 * time.Second)
			for refused == nil {
				if time.Now().After(deadline) || launched > 3*siteRequests {
					t.Fatalf("the noisy site was never refused (%d requests sent)", launched)
				}
				launched++
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					answers <- noisy.do("PATCH", "/Users/"+uid, patchBody(map[string]any{"op": "replace", "path": "title", "value": fmt.Sprint(i)}))
				}(launched)
				select {
				case r := <-answers:
					if r.Code != 429 {
						t.Fatalf("a request answered while the lock is held: %d %s", r.Code, r.Raw)
					}
					refused = r
				case <-time.After(50 * time.Millisecond):
				}
			}
			if refused.Header.Get("Retry-After") == "" || !strings.Contains(refused.str("detail"), fmt.Sprint(siteRequests)) {
				t.Errorf("429 without Retry-After or the limit: %v %s", refused.Header, refused.Raw)
			}
			noisy.do("GET", "/Users/"+uid, nil).wantError(429, "")
			// The quiet site reads, lists and searches meanwhile.
			quiet.do("GET", "/Users?filter="+q(`userName eq "bob"`), nil).want(200)
			quiet.do("GET", "/Users?filter="+q(`userName sw "b"`), nil).want(200)
			quiet.do("POST", "/.search", map[string]any{"filter": `id pr`}).want(200)
			// Health checks get a connection: the SCIM share leaves some.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := st.Ping(ctx); err != nil {
				t.Errorf("/readyz's ping while one site is stuck: %v", err)
			}
			if _, err := st.PendingMigrations(ctx); err != nil {
				t.Errorf("/readyz's migration check while one site is stuck: %v", err)
			}
			// A lifecycle change of another site is written meanwhile (on
			// PostgreSQL; SQLite has one writer, held here by the lock).
			if b.Name == store.Postgres {
				if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.SetSiteState(quiet.site.ID, models.SiteDisabled) }); err != nil {
					t.Errorf("a lifecycle change while one site is stuck: %v", err)
				}
			}
			cancel()
			if inUse := st.SQLDB().Stats().InUse; inUse > siteWork+2 {
				t.Errorf("%d connections in use with one site stuck, want at most its share %d (and the lock holder's)", inUse, siteWork)
			}
			unlock()
			wg.Wait()
			close(answers)
			// Exactly the share was admitted (and finished once the lock
			// went); every other request was refused.
			ok, refusedN := 0, 1
			for r := range answers {
				switch r.Code {
				case 200:
					ok++
				case 429:
					refusedN++
				default:
					t.Errorf("a stuck request: %d %s", r.Code, r.Raw)
				}
			}
			if ok != siteRequests || ok+refusedN != launched {
				t.Errorf("%d of %d requests admitted and %d refused, want the share %d admitted", ok, launched, refusedN, siteRequests)
			}
			noisy.do("GET", "/Users/"+uid, nil).want(200)
		})
	}
}

// holdWriteLock makes the noisy site's user writes wait: on PostgreSQL a
// transaction holds the user's row lock, on SQLite another store on the
// same file (as another process would) holds the write lock. It returns the
// function that lets go.
func holdWriteLock(t *testing.T, b storetest.Backend, st *store.Store, siteID, uid string) func() {
	t.Helper()
	ctx := context.Background()
	db := st.SQLDB()
	if b.Name == store.SQLite {
		db = b.Open(t, storetest.SameDatabase(st)).SQLDB()
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{"BEGIN IMMEDIATE"}
	if b.Name == store.Postgres {
		stmts = []string{"BEGIN", "SELECT 1 FROM scim_users WHERE site_id = '" + siteID + "' AND id = '" + uid + "' FOR UPDATE"}
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			_, _ = conn.ExecContext(ctx, "ROLLBACK")
			_ = conn.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// List answers have a byte budget: a page ends early when the next
// resource would pass it (itemsPerPage says how many it holds, totalResults
// stays true), and paging on with startIndex reaches every resource. 20
// users of 1 MB each made one 20 MB answer before.
func TestServerListByteBudget(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		// Megabytes of JSON per request, decoded and projected under -race
		// on a shared machine: the budget is under test, not the deadline
		// (TestServerStatementDeadlineIs503 is).
		e := newSCIMEnv(t, b, func(o *store.Options) { o.StatementTimeout = time.Minute })
		s := e.newSite()
		const users = 7
		big := func(i int) map[string]any {
			m := map[string]any{"userName": fmt.Sprintf("big%d", i)}
			for a := range 100 {
				m[fmt.Sprintf("blob%03d", a)] = strings.Repeat(string(rune('a'+i)), scim.MaxStringBytes)
			}
			return m
		}
		for i := range users {
			s.do("POST", "/Users", big(i)).want(201)
		}
		g := s.createGroup("everyone")
		seen := map[string]bool{}
		start := 1
		for pages := 0; len(seen) < users; pages++ {
			if pages > users {
				t.Fatalf("paging does not progress: %d of %d seen", len(seen), users)
			}
			r := s.do("GET", fmt.Sprintf("/Users?count=100&startIndex=%d", start), nil).want(200)
			if len(r.Raw) > scim.MaxListBytes+4096 {
				t.Fatalf("answer of %d bytes, budget %d", len(r.Raw), scim.MaxListBytes)
			}
			n := r.num("itemsPerPage")
			if n != len(r.ids()) || n == 0 || n >= users && start == 1 {
				t.Fatalf("itemsPerPage %d with %d resources on a budgeted page from %d", n, len(r.ids()), start)
			}
			if r.num("totalResults") != users {
				t.Fatalf("totalResults %d, want %d", r.num("totalResults"), users)
			}
			for _, id := range r.ids() {
				seen[id] = true
			}
			start += n
		}
		// Projection and a search across resource types keep to it too.
		r := s.do("GET", "/Users?count=100&attributes=userName,blob001,blob002,blob003,blob004,blob005,blob006,blob007,blob008,blob009,blob010,blob011,blob012,blob013,blob014,blob015,blob016,blob017,blob018,blob019,blob020,blob021,blob022,blob023,blob024,blob025,blob026,blob027,blob028,blob029,blob030,blob031,blob032,blob033,blob034,blob035,blob036,blob037,blob038,blob039,blob040,blob041,blob042,blob043,blob044,blob045,blob046,blob047,blob048,blob049,blob050,blob051,blob052,blob053,blob054,blob055,blob056,blob057,blob058,blob059,blob060,blob061,blob062,blob063,blob064,blob065,blob066,blob067,blob068,blob069,blob070,blob071,blob072,blob073,blob074,blob075,blob076,blob077,blob078,blob079,blob080,blob081,blob082,blob083,blob084,blob085,blob086,blob087,blob088,blob089,blob090,blob091,blob092,blob093,blob094,blob095,blob096,blob097,blob098,blob099", nil).want(200)
		if n := r.num("itemsPerPage"); n == 0 || n >= users || len(r.Raw) > scim.MaxListBytes+4096 {
			t.Fatalf("projected page: itemsPerPage %d, %d bytes", n, len(r.Raw))
		}
		r = s.do("POST", "/.search", map[string]any{"count": 100}).want(200)
		if n := r.num("itemsPerPage"); n == 0 || n >= users+1 || r.num("totalResults") != users+1 {
			t.Fatalf("search across types: itemsPerPage %d, totalResults %d", n, r.num("totalResults"))
		}
		var last map[string]any
		for start := 1; ; {
			r := s.do("POST", "/.search", map[string]any{"count": 100, "startIndex": start}).want(200)
			list := r.get("Resources").([]any)
			if len(list) == 0 {
				break
			}
			last = list[len(list)-1].(map[string]any)
			start += r.num("itemsPerPage")
		}
		if last["id"] != g {
			raw, _ := json.Marshal(last)
			t.Fatalf("paging the search does not reach the group: last %.200s", raw)
		}
	})
}
