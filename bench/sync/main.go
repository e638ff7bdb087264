// Command sync measures the outbox sync (issue 11, item 7;
// docs/PERFORMANCE.md): how fast idbridge brings Atlassian sites to the
// directory's state through a rate-limited, sometimes refusing Atlassian.
//
// One run, per site: an identity provider's changes (-changes of them:
// users created, groups created, memberships added and removed, names
// changed, users deactivated, reactivated and deleted, groups renamed)
// are accepted over SCIM while the sync is stopped; then the App starts
// and the sync drains them against the stateful fake Atlassian, which
// allows -rate requests a second per site (beyond it: 429 with
// Retry-After) and refuses -p429 of the requests at random (429 with
// Retry-After: 1). The fake counts the fewest requests that lead to the
// site's final state ("needed"); the goal is a drain within 10% of
// needed ÷ rate, with nothing lost (the site equals the directory, every
// change applied), nothing applied twice, and no retry before its
// Retry-After ran out.
//
// First one site with -changes changes over -users users and -groups
// groups, then -sites sites at once with -site-changes each (every site
// under its own limit): the total throughput should grow with the sites.
//
// idbridge's own per-site request rate is set to -rate for the run (its
// default is 10 a second). Everything runs in this process on loopback.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"idbridge/app"
	"idbridge/app/atlassian"
	"idbridge/app/fakeatlassian"
	"idbridge/app/store"
	syncworker "idbridge/app/sync"
	"idbridge/bench/benchenv"
	"idbridge/config"
	"idbridge/models"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// orgKey is the organization Admin API key every fake site's organization
// accepts: with it (and the organization ID) names reach the accounts.
const orgKey = "bench-org-admin-key-0123456789abcdef"

type options struct {
	pg, db                string
	changes, users, grps  int
	sites, siteChanges    int
	rate                  float64
	p429                  float64
	timeout               time.Duration
	skipSingle, skipScale bool
	seed                  uint64
	perSite               int
	verbose               bool
	cpuProfile, trace     string
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.pg, "pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server URL; a fresh database is created next to the one named and dropped on exit")
	fs.StringVar(&o.db, "db", "postgres", "postgres or sqlite (a file in a temporary directory)")
	fs.IntVar(&o.changes, "changes", 10_000, "directory changes of the one-site run")
	fs.IntVar(&o.users, "users", 1_000, "users of the one-site run")
	fs.IntVar(&o.grps, "groups", 50, "groups of the one-site run")
	fs.IntVar(&o.sites, "sites", 20, "sites of the scaling run")
	fs.IntVar(&o.siteChanges, "site-changes", 2_000, "directory changes per site of the scaling run (over a tenth as many users and a two-hundredth as many groups)")
	fs.Float64Var(&o.rate, "rate", 100, "requests a second each fake site allows (R)")
	fs.Float64Var(&o.p429, "p429", 0.05, "share of requests the fake refuses with 429 at random")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up a run after this long")
	fs.BoolVar(&o.skipSingle, "skip-single", false, "skip the one-site run")
	fs.BoolVar(&o.skipScale, "skip-scale", false, "skip the scaling run")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the workload and of the fake's faults")
	fs.IntVar(&o.perSite, "per-site", 0, "subjects of one site the sync applies at once (0: the default)")
	fs.BoolVar(&o.verbose, "v", false, "print the backlog every 5 seconds while it drains")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&o.trace, "trace", "", "write an execution trace of the drains to this file (go tool trace)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.db != "postgres" && o.db != "sqlite" {
		fmt.Fprintln(stderr, "sync: -db must be postgres or sqlite")
		return 2
	}
	if o.changes < o.users+o.grps || o.users < 2 || o.grps < 1 || o.rate <= 0 || o.p429 < 0 || o.p429 >= 1 {
		fmt.Fprintln(stderr, "sync: want -changes ≥ -users + -groups, -users ≥ 2, -groups ≥ 1, -rate > 0, 0 ≤ -p429 < 1")
		return 2
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "sync:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "sync:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	ok := true
	var single *result
	if !o.skipSingle {
		res, err := measure(ctx, stdout, o, []workload{{changes: o.changes, users: o.users, groups: o.grps}})
		if err != nil {
			fmt.Fprintln(stderr, "sync: one site:", err)
			return 1
		}
		single = res
		ok = ok && res.ok
	}
	if !o.skipScale && o.sites > 0 {
		ws := make([]workload, o.sites)
		for i := range ws {
			ws[i] = workload{changes: o.siteChanges, users: max(2, o.siteChanges/10), groups: max(1, o.siteChanges/200)}
		}
		res, err := measure(ctx, stdout, o, ws)
		if err != nil {
			fmt.Fprintln(stderr, "sync: scaling:", err)
			return 1
		}
		ok = ok && res.ok
		if single != nil {
			fmt.Fprintf(stdout, "scaling: %d sites made %.0f requests/s in all, %.1f× the one-site run's %.0f requests/s (each site is limited to %.0f/s)\n",
				o.sites, res.throughput, res.throughput/single.throughput, single.throughput, o.rate)
		}
	}
	if !ok {
		fmt.Fprintln(stdout, "RESULT: a goal was missed (see above)")
		return 1
	}
	fmt.Fprintln(stdout, "RESULT: every goal met")
	return 0
}

// workload is one site's share of a run.
type workload struct{ changes, users, groups int }

// result is what a run measured.
type result struct {
	ok         bool
	throughput float64 // requests a second over all sites while draining
}

// siteRig is one fake site with its idbridge site and SCIM token.
type siteRig struct {
	fs    *fakeatlassian.Site
	site  *models.Site
	token string
	w     workload
	// the directory as the workload left it, for the report
	changes int
}

func measure(ctx context.Context, out io.Writer, o options, ws []workload) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	fake := fakeatlassian.New(fakeatlassian.Options{Seed: o.seed})
	defer fake.Close()
	rigs := make([]*siteRig, len(ws))
	hosts := []string{"*.atlassian.net"}
	for i, w := range ws {
		fs := fake.NewSite(fakeatlassian.SiteOptions{})
		fs.AddServiceAccount(fakeatlassian.ServiceAccount{Email: "svc@bench.example", APIToken: "ATATT3x-bench-sync-token", Admin: true})
		fs.AddOrgKey(orgKey)
		fs.SetRateLimit(o.rate, burst(o.rate))
		if o.p429 > 0 {
			fs.Inject(fakeatlassian.Fault{Status: http.StatusTooManyRequests, RetryAfterIn: time.Second, Probability: o.p429})
		}
		rigs[i] = &siteRig{fs: fs, w: w}
		hosts = append(hosts, fs.Host())
	}

	var dsn string
	switch o.db {
	case "postgres":
		url, drop, err := benchenv.CreateDatabase(ctx, o.pg, "bench_sync")
		if err != nil {
			return nil, err
		}
		defer func() { _ = drop() }()
		dsn = url
	default:
		dir, err := os.MkdirTemp("", "bench-sync-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		dsn = "sqlite:" + filepath.Join(dir, "idbridge.db")
	}
	addr, err := benchenv.FreeAddr("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := map[string]string{
		"IDBRIDGE_ADDR": addr, "IDBRIDGE_BASE_URL": "http://" + addr, "IDBRIDGE_DATABASE_URL": dsn, "IDBRIDGE_DATA_DIR": os.TempDir(),
		"IDBRIDGE_ENCRYPTION_KEYS":       "b1:" + base64.StdEncoding.EncodeToString(key),
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": strings.Join(hosts, ","),
		"IDBRIDGE_ATLASSIAN_API_URL":     fake.APIURL(), "IDBRIDGE_ATLASSIAN_AUTH_URL": fake.APIURL(),
		"IDBRIDGE_LOG_LEVEL": "error",
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	var statements atomic.Int64
	a, err := app.Open(ctx, cfg, app.Options{
		Log:         logger,
		OnStatement: func(context.Context) { statements.Add(1) },
		// idbridge paces each site exactly as the fake limits it (its
		// default is 10 a second, bursts of 20).
		AtlassianLimiter: atlassian.LimiterOptions{Rate: rate.Limit(o.rate), Burst: burst(o.rate)},
		Sync:             syncworker.Config{PerSite: o.perSite},
	})
	if err != nil {
		return nil, err
	}
	defer a.Close()

	// The sites, their service accounts, provisioning with the brake off
	// (a bench deactivates far more than 10% within the hour).
	const secret = "0123456789abcdef0123456789abcdef"
	h := a.Handler()
	for i, r := range rigs {
		r.fs.InstallApp("idbridge", secret, "557058:bench-admin")
		err := a.Store().InTx(ctx, func(tx *store.Tx) error {
			var err error
			r.site, err = tx.SaveInstall(&models.Site{SharedSecret: []byte(secret), SiteFacts: models.SiteFacts{
				ClientKey: fmt.Sprintf("bench-sync-%02d", i), BaseURL: r.fs.BaseURL(), ProductType: "jira", CloudID: r.fs.CloudID}})
			if err != nil {
				return err
			}
			_, err = tx.SaveServiceAccount(r.site.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "svc@bench.example", Token: "ATATT3x-bench-sync-token",
				OrgAdminKey: orgKey, OrgID: r.fs.OrgID})
			return err
		})
		if err != nil {
			return nil, err
		}
		var tok struct{ Token string }
		if err := adminCall(h, r.site.ClientKey, secret, "POST", "/provisioning/token", map[string]any{}, &tok); err != nil {
			return nil, err
		}
		r.token = tok.Token
		if err := adminCall(h, r.site.ClientKey, secret, "PUT", "/provisioning", map[string]any{"deletionThreshold": 0}, nil); err != nil {
			return nil, err
		}
	}

	// The identity providers' changes, accepted while the sync is stopped.
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(rigs))
	for i, r := range rigs {
		wg.Add(1)
		go func(i int, r *siteRig) {
			defer wg.Done()
			n, err := r.generate(h, o.seed+uint64(i))
			r.changes = n
			if err != nil {
				errs <- err
			}
		}(i, r)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	total := 0
	for _, r := range rigs {
		total += r.changes
		r.fs.MarkBaseline() // the SCIM phase made no calls; this only resets the counters
	}
	fmt.Fprintf(out, "%s: %d changes accepted over SCIM for %d site(s) in %s\n", o.db, total, len(rigs), time.Since(t0).Round(time.Millisecond))

	// The sync: start the App and wait until every site's outbox is done.
	if o.trace != "" {
		f, err := os.Create(o.trace)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return nil, err
		}
		defer trace.Stop()
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	stmts0 := statements.Load()
	cpu0 := readCPU(o.db == "postgres")
	start := time.Now()
	go func() { done <- a.Run(runCtx) }()
	defer func() { stop(); <-done }()
	finished := make([]time.Duration, len(rigs))
	left := len(rigs)
	lastShown := time.Now()
	for left > 0 {
		if o.verbose && time.Since(lastShown) > 5*time.Second {
			lastShown = time.Now()
			showBacklog(ctx, out, a.Store(), rigs, start)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("not drained within -timeout %s", o.timeout)
		}
		time.Sleep(100 * time.Millisecond)
		for i, r := range rigs {
			if finished[i] != 0 {
				continue
			}
			drained, err := a.Store().View(ctx).SyncDrained(r.site.ID)
			if err != nil {
				return nil, err
			}
			if drained {
				finished[i] = time.Since(start)
				left--
			}
		}
	}
	wall := time.Since(start)
	stmts := statements.Load() - stmts0
	cpu1 := readCPU(o.db == "postgres")

	// The report.
	res := &result{ok: true}
	made := 0
	var ratios []float64
	for i, r := range rigs {
		needed := r.fs.MinRequests()
		sent := r.fs.TotalRequests()
		made += sent
		ideal := time.Duration(float64(needed) / o.rate * float64(time.Second))
		ratio := float64(finished[i]) / float64(ideal)
		ratios = append(ratios, ratio)
		lost, err := r.lost(ctx, a.Store())
		if err != nil {
			return nil, err
		}
		twice, early := len(r.fs.AppliedTwice()), len(r.fs.EarlyRetries())
		// The drain goal is the one-site run's; with many sites at once
		// the goal is the total throughput (below).
		siteOK := lost == 0 && twice == 0 && early == 0 && (len(rigs) > 1 || ratio <= 1.10)
		res.ok = res.ok && siteOK
		if len(rigs) == 1 || !siteOK {
			fmt.Fprintf(out, "site %d: %d changes (%d users, %d groups), R=%.0f/s, %.0f%% injected 429s: requests needed %d, made %d (429: %d); drained in %.1f s, needed/R %.1f s, ratio %.3f (goal ≤ 1.10: %s); lost %d, applied twice %d, early retries %d\n",
				i, r.changes, r.w.users, r.w.groups, o.rate, o.p429*100, needed, sent, r.fs.RequestCount("", http.StatusTooManyRequests),
				finished[i].Seconds(), ideal.Seconds(), ratio, verdict(ratio <= 1.10), lost, twice, early)
		}
	}
	res.throughput = float64(made) / wall.Seconds()
	if len(rigs) > 1 {
		share := res.throughput / (float64(len(rigs)) * o.rate)
		fmt.Fprintf(out, "%d sites at once: %.0f requests/s in all, %.0f%% of %d × R (goal ≥ 80%%: %s)\n",
			len(rigs), res.throughput, share*100, len(rigs), verdict(share >= 0.8))
		res.ok = res.ok && share >= 0.8
	}
	sort.Float64s(ratios)
	fmt.Fprintf(out, "%s, %d site(s): all drained in %.1f s, %d requests, %.0f requests/s in all; drain ÷ (needed/R): best %.3f, median %.3f, worst %.3f; %.1f database statements a request; peak RSS of this process %.0f MB\n",
		o.db, len(rigs), wall.Seconds(), made, res.throughput, ratios[0], ratios[len(ratios)/2], ratios[len(ratios)-1], float64(stmts)/float64(max(made, 1)), peakRSS()/1e6)
	if cpu0.ok && cpu1.ok && made > 0 {
		self, pg := (cpu1.self-cpu0.self)/float64(made), (cpu1.postgres-cpu0.postgres)/float64(made)
		fmt.Fprintf(out, "CPU a request: this process (idbridge, the fake, the driver) %.2f ms, PostgreSQL's local processes %.2f ms; at that cost %d cores serve at most %.0f requests/s\n",
			self*1000, pg*1000, runtime.NumCPU(), float64(runtime.NumCPU())/(self+pg))
	}
	return res, nil
}

// cpuTimes is CPU time used so far, in seconds: by this process, and by
// the local PostgreSQL server's processes (all of them: the benchmark's
// database is the only busy one on a machine kept quiet for it).
type cpuTimes struct {
	self, postgres float64
	ok             bool
}

func readCPU(postgres bool) cpuTimes {
	var c cpuTimes
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return c
	}
	c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	c.ok = true
	if !postgres {
		return c
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		c.ok = false
		return c
	}
	const ticks = 100 // USER_HZ on Linux
	for _, e := range ents {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // not a process, or gone meanwhile
		}
		// pid (comm) state … utime stime are fields 14 and 15.
		line := string(stat)
		end := strings.LastIndexByte(line, ')')
		if end < 0 || !strings.HasSuffix(line[:end], "(postgres") {
			continue
		}
		f := strings.Fields(line[end+1:])
		if len(f) < 13 {
			continue
		}
		u, err1 := strconv.ParseFloat(f[11], 64)
		st, err2 := strconv.ParseFloat(f[12], 64)
		if err1 == nil && err2 == nil {
			c.postgres += (u + st) / ticks
		}
	}
	return c
}

// burst is the bursts a site allows at rate: a tenth of a second's worth.
func burst(rate float64) int { return max(1, int(rate/10)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// adminCall calls the admin API in process with a context JWT of the
// site's admin.
func adminCall(h http.Handler, clientKey, secret, method, path string, body, out any) error {
	data, _ := json.Marshal(body)
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": clientKey, "sub": "557058:bench-admin", "qsh": "context-qsh", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		return err
	}
	req := httptest.NewRequest(method, "/api/admin"+path, bytes.NewReader(data))
	req.Header.Set("Authorization", "JWT "+tok)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
	if out != nil {
		return json.Unmarshal(w.Body.Bytes(), out)
	}
	return nil
}

// scim sends one SCIM request in process and returns the new id, if any.
func (r *siteRig) scim(h http.Handler, method, path, body string) (string, error) {
	req := httptest.NewRequest(method, "/scim/v2/"+r.site.ID+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/scim+json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code/100 != 2 {
		return "", fmt.Errorf("SCIM %s %s: %d %s", method, path, w.Code, w.Body)
	}
	var doc struct{ ID string }
	_ = json.Unmarshal(w.Body.Bytes(), &doc)
	return doc.ID, nil
}

const patchOp = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[%s]}`

// generate sends the site's changes: its users and groups first, then a
// mix of what identity providers do day to day. It returns how many.
func (r *siteRig) generate(h http.Handler, seed uint64) (int, error) {
	rnd := mrand.New(mrand.NewPCG(seed, seed*0x9e3779b97f4a7c15))
	type user struct {
		id     string
		active bool
	}
	var users []*user
	groups := []string{}
	members := map[string]map[int]bool{} // group id → user indexes
	n := 0
	domain := strings.ToLower(r.site.ID) + ".bench.example"
	for i := range r.w.users {
		name := fmt.Sprintf("u%05d@%s", i, domain)
		id, err := r.scim(h, "POST", "/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"active":true,
			"name":{"givenName":"User","familyName":"%05d"},"emails":[{"value":%q,"type":"work","primary":true}]}`, name, i, name))
		if err != nil {
			return n, err
		}
		users = append(users, &user{id: id, active: true})
		n++
	}
	for i := range r.w.groups {
		id, err := r.scim(h, "POST", "/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"g%03d"}`, i))
		if err != nil {
			return n, err
		}
		groups = append(groups, id)
		members[id] = map[int]bool{}
		n++
	}
	alive := func() int {
		for {
			if u := rnd.IntN(len(users)); users[u] != nil {
				return u
			}
		}
	}
	renames := 0
	for n < r.w.changes {
		g := groups[rnd.IntN(len(groups))]
		var err error
		switch p := rnd.Float64(); {
		case p < 0.62: // a member added
			u := alive()
			if members[g][u] {
				continue
			}
			members[g][u] = true
			_, err = r.scim(h, "PATCH", "/Groups/"+g, fmt.Sprintf(patchOp, fmt.Sprintf(`{"op":"add","path":"members","value":[{"value":%q}]}`, users[u].id)))
		case p < 0.72: // a member removed
			var in []int
			for u := range members[g] {
				in = append(in, u)
			}
			if len(in) == 0 {
				continue
			}
			sort.Ints(in)
			u := in[rnd.IntN(len(in))]
			delete(members[g], u)
			_, err = r.scim(h, "PATCH", "/Groups/"+g, fmt.Sprintf(patchOp, fmt.Sprintf(`{"op":"remove","path":"members[value eq \"%s\"]"}`, users[u].id)))
		case p < 0.82: // a name changed
			u := alive()
			_, err = r.scim(h, "PATCH", "/Users/"+users[u].id, fmt.Sprintf(patchOp, fmt.Sprintf(`{"op":"replace","path":"displayName","value":"Renamed %05d-%d"}`, u, n)))
		case p < 0.90: // deactivated
			u := alive()
			if !users[u].active {
				continue
			}
			users[u].active = false
			_, err = r.scim(h, "PATCH", "/Users/"+users[u].id, fmt.Sprintf(patchOp, `{"op":"replace","path":"active","value":false}`))
		case p < 0.96: // reactivated
			u := alive()
			if users[u].active {
				continue
			}
			users[u].active = true
			_, err = r.scim(h, "PATCH", "/Users/"+users[u].id, fmt.Sprintf(patchOp, `{"op":"replace","path":"active","value":true}`))
		case p < 0.98: // a group renamed
			renames++
			_, err = r.scim(h, "PATCH", "/Groups/"+g, fmt.Sprintf(patchOp, fmt.Sprintf(`{"op":"replace","path":"displayName","value":"g-renamed-%d"}`, renames)))
		default: // a user deleted (kept at least two)
			if len(users) < 3 {
				continue
			}
			u := alive()
			id := users[u].id
			users[u] = nil
			for _, m := range members {
				delete(m, u)
			}
			err = nil
			if e := r.deleteUser(h, id); e != nil {
				err = e
			}
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (r *siteRig) deleteUser(h http.Handler, id string) error {
	_, err := r.scim(h, "DELETE", "/Users/"+id, "")
	return err
}

// lost counts what did not reach the site: outbox items not applied, and
// users and memberships in which the site differs from the directory.
func (r *siteRig) lost(ctx context.Context, st *store.Store) (int, error) {
	view := st.View(ctx)
	n := 0
	items, err := view.ListSyncItems(r.site.ID, 1_000_000)
	if err != nil {
		return 0, err
	}
	for _, it := range items {
		if it.Status != models.OutboxStatusApplied {
			if n < 5 {
				fmt.Fprintf(os.Stderr, "not applied: #%d %s %s %s: %s\n", it.ID, it.ResourceType, it.Op, it.Status, it.LastError)
			}
			n++
		}
	}
	users, _, err := view.ListDirectoryUsers(r.site.ID, store.DirectoryQuery{Limit: 1_000_000})
	if err != nil {
		return 0, err
	}
	groups, _, err := view.ListDirectoryGroups(r.site.ID, store.DirectoryQuery{Limit: 1_000_000})
	if err != nil {
		return 0, err
	}
	snap := r.fs.Snapshot()
	email := map[string]string{}
	active := map[string]bool{}
	for _, u := range users {
		e := strings.ToLower(u.Email)
		email[u.ID], active[u.ID] = e, u.Active
		a, ok := snap.Users[e]
		want := u.DisplayName
		if want == "" {
			want = strings.TrimSpace(u.GivenName + " " + u.FamilyName)
		}
		if u.Active && (!ok || !a.InSite || a.Suspended || a.DisplayName != want) {
			if n < 10 {
				fmt.Fprintf(os.Stderr, "user %s: site has %+v (found %v), want name %q\n", u.UserName, a, ok, want)
			}
			n++
		}
	}
	for _, g := range groups {
		ids, err := view.GroupMemberIDs(r.site.ID, g.ID)
		if err != nil {
			return 0, err
		}
		want := map[string]bool{}
		for _, id := range ids {
			if active[id] {
				want[email[id]] = true
			}
		}
		have, ok := snap.Groups[g.DisplayName]
		if !ok {
			n += 1 + len(want)
			continue
		}
		for _, m := range have {
			if !want[m] {
				n++
			}
			delete(want, m)
		}
		n += len(want)
	}
	if len(snap.Groups) != len(groups) {
		n += abs(len(snap.Groups) - len(groups))
	}
	return n, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// peakRSS is this process's peak resident set size in bytes (Linux).
func peakRSS() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			_, _ = fmt.Sscanf(strings.TrimSpace(rest), "%f kB", &kb)
			return kb * 1000
		}
	}
	return 0
}

// showBacklog prints, per site, what waits and why (-v).
func showBacklog(ctx context.Context, out io.Writer, st *store.Store, rigs []*siteRig, start time.Time) {
	for i, r := range rigs {
		items, err := st.View(ctx).ListSyncItems(r.site.ID, 1_000_000)
		if err != nil {
			return
		}
		pending, waiting, leased, retrying := 0, 0, 0, 0
		var soonest time.Time
		for _, it := range items {
			if it.Status != models.OutboxStatusPending {
				continue
			}
			pending++
			switch {
			case it.WaitingFor != "":
				waiting++
			case it.LeaseOwner != "":
				leased++
			case it.Attempts > 0:
				retrying++
			}
			if soonest.IsZero() || it.NextAttemptAt.Before(soonest) {
				soonest = it.NextAttemptAt
			}
		}
		fmt.Fprintf(out, "  %5.1f s site %d: %d pending (%d waiting for a user, %d leased, %d retrying), next due in %s, %d requests\n",
			time.Since(start).Seconds(), i, pending, waiting, leased, retrying, time.Until(soonest).Round(time.Millisecond), r.fs.TotalRequests())
	}
}
