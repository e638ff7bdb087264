// Command sso measures customer SSO and its audit log (issue 14, item 8;
// docs/PERFORMANCE.md) on a fresh PostgreSQL database:
//
//   - the audit log of one site with -events events (1,000,000 by default)
//     spread over 60 days: the 30-day chart (audit.Log.Stats), a filtered
//     page (by event, by account, and deep in the log), and the CSV export
//     streamed through the admin API's own handler code path, in rows per
//     second with the process's peak heap sampled while it runs;
//   - the whole OIDC sign-in round trip over HTTP against idbridge on
//     127.0.0.1 with an in-process OpenID provider and fake Atlassian site
//     (login → provider → callback → session), with -workers concurrent
//     browsers for -duration, in sign-ins per second.
//
// Only loopback addresses are used; every loop is bounded by -duration or
// a count.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idbridge/app"
	"idbridge/app/audit"
	"idbridge/app/fakeatlassian"
	"idbridge/app/fakeidp"
	"idbridge/app/secret"
	"idbridge/app/store"
	"idbridge/bench/benchenv"
	"idbridge/config"
	"idbridge/models"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sso", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pg := fs.String("pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server URL; a fresh database is created next to the one named and dropped on exit")
	events := fs.Int("events", 1_000_000, "audit events of the site")
	rounds := fs.Int("rounds", 30, "repetitions of each audit query")
	workers := fs.Int("workers", 8, "concurrent browsers signing in")
	duration := fs.Duration("duration", 10*time.Second, "how long to sign in")
	skipAudit := fs.Bool("skip-audit", false, "skip the audit log measurements")
	skipSignIn := fs.Bool("skip-signin", false, "skip the sign-in measurement")
	idpAlg := fs.String("idp-alg", "ES256", "how the in-process OpenID provider signs ID tokens: ES256, or RS256 (about a millisecond of the provider's CPU per token, on the same cores)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *idpAlg != "ES256" && *idpAlg != "RS256" {
		fmt.Fprintln(stderr, "sso: -idp-alg must be ES256 or RS256")
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "sso:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "sso:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	if !*skipAudit {
		if err := auditBench(ctx, stdout, *pg, *events, *rounds); err != nil {
			fmt.Fprintln(stderr, "sso: audit:", err)
			return 1
		}
	}
	if !*skipSignIn {
		if err := signInBench(ctx, stdout, *pg, *workers, *duration, *idpAlg); err != nil {
			fmt.Fprintln(stderr, "sso: sign-in:", err)
			return 1
		}
	}
	return 0
}

func openStore(ctx context.Context, dsn string) (*store.Store, error) {
	k, err := secret.GenerateKey("bench")
	if err != nil {
		return nil, err
	}
	ring, err := secret.NewRing([]secret.Key{k})
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Options{Driver: store.Postgres, DSN: dsn, Ring: ring})
	if err != nil {
		return nil, err
	}
	if _, err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	return st, st.CheckKeyRing(ctx)
}

func auditBench(ctx context.Context, out io.Writer, pg string, n, rounds int) error {
	dsn, drop, err := benchenv.CreateDatabase(ctx, pg, "bench_sso_audit")
	if err != nil {
		return err
	}
	defer func() { _ = drop() }()
	st, err := openStore(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	var site *models.Site
	err = st.InTx(ctx, func(tx *store.Tx) error {
		site, err = tx.SaveInstall(&models.Site{
			SiteFacts:    models.SiteFacts{ClientKey: "bench-audit", BaseURL: "https://bench.atlassian.net"},
			SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
		})
		return err
	})
	if err != nil {
		return err
	}

	// The history: 60 days, mostly sign-ins (one in ten failing) by 5,000
	// customers, with the other events of a portal mixed in.
	start := time.Now()
	now := time.Now().UTC()
	kinds := []models.AuditEventType{models.AuditLoginSuccess, models.AuditLoginSuccess, models.AuditLoginSuccess, models.AuditLoginSuccess,
		models.AuditLoginSuccess, models.AuditLoginSuccess, models.AuditLogout, models.AuditRequestCreated, models.AuditAddedToServiceDesk, models.AuditLoginFailure}
	const batch = 20_000
	step := 60 * 24 * time.Hour / time.Duration(n)
	for done := 0; done < n; done += batch {
		evs := make([]models.AuditEvent, 0, batch)
		for i := done; i < min(n, done+batch); i++ {
			ev := models.AuditEvent{Event: kinds[i%len(kinds)], ActorAccountID: fmt.Sprintf("qm:bench-%04d", i%5000), IdP: "idp_bench",
				Protocol: "oidc", IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (bench)",
				OccurredAt: now.Add(-time.Duration(i) * step)}
			if ev.Event == models.AuditLoginFailure {
				ev.ActorAccountID, ev.Reason = "", "domain_not_allowed"
			}
			evs = append(evs, ev)
		}
		if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.CreateAuditEvents(site.ID, evs) }); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "audit: %d events written in %s\n", n, time.Since(start).Round(time.Millisecond))
	if err := st.Analyze(ctx); err != nil {
		return err
	}

	log := audit.NewLog(st, time.Now)
	measure := func(name string, fn func() error) error {
		var ds []time.Duration
		for i := 0; i < rounds; i++ {
			t0 := time.Now()
			if err := fn(); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			ds = append(ds, time.Since(t0))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		fmt.Fprintf(out, "audit: %-44s p50 %7.2f ms  p95 %7.2f ms  max %7.2f ms\n", name, ms(ds[len(ds)/2]), ms(ds[len(ds)*95/100]), ms(ds[len(ds)-1]))
		return nil
	}
	if err := measure("30-day chart (stats)", func() error {
		days, err := log.Stats(ctx, site.ID, 30)
		if err == nil && len(days) != 30 {
			err = fmt.Errorf("%d days", len(days))
		}
		return err
	}); err != nil {
		return err
	}
	page := func(q models.AuditQuery) func() error {
		return func() error {
			p, err := log.Page(ctx, site.ID, q)
			if err == nil && len(p.Events) == 0 {
				err = fmt.Errorf("empty page")
			}
			return err
		}
	}
	first, err := log.Page(ctx, site.ID, models.AuditQuery{Limit: 50})
	if err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		q    models.AuditQuery
	}{
		{"first page, no filter", models.AuditQuery{Limit: 50}},
		{"page filtered by event (login_failure)", models.AuditQuery{Event: models.AuditLoginFailure, Limit: 50}},
		{"page filtered by account", models.AuditQuery{AccountID: "qm:bench-0042", Limit: 50}},
		{"page filtered by time (one week)", models.AuditQuery{From: now.AddDate(0, 0, -20), To: now.AddDate(0, 0, -13), Limit: 50}},
		{"page filtered by event and time, 2nd page", models.AuditQuery{Event: models.AuditLogout, From: now.AddDate(0, 0, -40), Cursor: first.Next, Limit: 50}},
	} {
		if err := measure(c.name, page(c.q)); err != nil {
			return err
		}
	}

	// The CSV export: every event, through the handler's writer, with the
	// heap sampled while it streams.
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	var bytes countingWriter
	cw := csv.NewWriter(&bytes)
	rows := 0
	t0 := time.Now()
	row := make([]string, 13)
	err = log.Stream(ctx, site.ID, models.AuditQuery{}, func(e models.AuditEvent) error {
		row[0], row[1], row[2], row[3], row[4], row[5] = e.ID, e.OccurredAt.Format(time.RFC3339Nano), string(e.Event), e.ActorAccountID, e.IdP, e.Protocol
		row[6], row[7], row[8], row[9], row[10], row[11], row[12] = e.IP, e.UserAgent, e.Reason, e.ActorAccountID, e.TargetAccountID, e.Section, strings.Join(e.Fields, " ")
		rows++
		if rows%2000 == 0 {
			cw.Flush()
		}
		return cw.Write(row)
	})
	cw.Flush()
	elapsed := time.Since(t0)
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "audit: CSV export of %d rows (%d MiB) in %s: %.0f rows/s; heap %.1f MiB before, peak %.1f MiB while streaming\n",
		rows, bytes.n>>20, elapsed.Round(time.Millisecond), float64(rows)/elapsed.Seconds(), float64(base.HeapAlloc)/(1<<20), float64(peak.Load())/(1<<20))
	return nil
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// signInBench runs idbridge on PostgreSQL with an OpenID provider and a
// fake Atlassian site in this process, and signs in with -workers browsers
// for -duration.
func signInBench(ctx context.Context, out io.Writer, pg string, workers int, duration time.Duration, idpAlg string) error {
	dsn, drop, err := benchenv.CreateDatabase(ctx, pg, "bench_sso_signin")
	if err != nil {
		return err
	}
	defer func() { _ = drop() }()
	fake := fakeatlassian.New(fakeatlassian.Options{})
	defer fake.Close()
	jira := fake.NewSite(fakeatlassian.SiteOptions{})
	const token = "ATATT3x-bench-token"
	jira.AddServiceAccount(fakeatlassian.ServiceAccount{Email: "svc@bench.example", APIToken: token, Admin: true})
	desk := jira.AddServiceDesk("B", "Bench desk")
	newIdP := fakeidp.NewOIDC
	if idpAlg == "ES256" {
		newIdP = fakeidp.NewOIDCES256
	}
	idp := newIdP()
	defer idp.Close()

	addr, err := benchenv.FreeAddr("127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + addr
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := map[string]string{
		"IDBRIDGE_ADDR": addr, "IDBRIDGE_BASE_URL": base, "IDBRIDGE_DATABASE_URL": dsn, "IDBRIDGE_DATA_DIR": os.TempDir(),
		"IDBRIDGE_ENCRYPTION_KEYS":       "b1:" + base64.StdEncoding.EncodeToString(key),
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net," + jira.Host(),
		"IDBRIDGE_ATLASSIAN_API_URL":     fake.APIURL(), "IDBRIDGE_ATLASSIAN_AUTH_URL": fake.APIURL(),
		"IDBRIDGE_LOG_LEVEL": "error",
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		return err
	}
	a, err := app.Open(ctx, cfg, app.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer a.Close()
	runCtx, stopApp := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() { stopApp(); <-done }()
	for i := 0; ; i++ {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			break
		}
		if i > 100 {
			return fmt.Errorf("idbridge did not start: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var site *models.Site
	const sharedSecret = "0123456789abcdef0123456789abcdef"
	jira.InstallApp("idbridge", sharedSecret, "557058:bench-admin")
	err = a.Store().InTx(ctx, func(tx *store.Tx) error {
		site, err = tx.SaveInstall(&models.Site{
			SiteFacts:    models.SiteFacts{ClientKey: "bench-signin", BaseURL: jira.BaseURL()},
			SharedSecret: []byte(sharedSecret),
		})
		if err != nil {
			return err
		}
		_, err = tx.SaveServiceAccount(site.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "svc@bench.example", Token: token})
		return err
	})
	if err != nil {
		return err
	}
	portal := base + "/portal/" + site.ID + "/"
	idp.AllowRedirectURI(portal + "oidc/callback")
	admin := adminAPI{base: base, clientKey: site.ClientKey, secret: sharedSecret}
	if err := admin.do("PUT", "/sso", map[string]any{"enabled": true, "autoCreateCustomers": true, "allowedDomains": []string{"bench.example"},
		"serviceDeskIds": []string{desk}}, nil); err != nil {
		return err
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := admin.do("POST", "/idps", map[string]any{"name": "Bench", "protocol": "oidc",
		"oidc": map[string]any{"issuer": idp.URL, "clientId": idp.ClientID, "clientSecret": idp.ClientSecret}}, &created); err != nil {
		return err
	}
	// The customers exist already, and each signed in once before the
	// measurement (a first sign-in looks the customer up in Atlassian and
	// adds them to the service desk, within the site's request budget of
	// 10 a second; returning customers need no call to Atlassian).
	const customers = 40
	for i := 0; i < customers; i++ {
		jira.AddAccount(fakeatlassian.Account{Email: fmt.Sprintf("c%04d@bench.example", i), DisplayName: fmt.Sprintf("Customer %d", i), Type: fakeatlassian.AccountCustomer})
	}
	idpID := created.ID
	warm := time.Now()
	for i := 0; i < customers; i++ {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if err := signInOnce(c, portal+"login?idp="+idpID, fmt.Sprintf("c%04d@bench.example", i), base); err != nil {
			return fmt.Errorf("warm-up sign-in: %w", err)
		}
	}
	fmt.Fprintf(out, "sign-in: %d first sign-ins (with Atlassian calls) took %s\n", customers, time.Since(warm).Round(time.Millisecond))

	var ok, failed atomic.Int64
	var lat sync.Mutex
	var latencies []time.Duration
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	transport := &http.Transport{MaxIdleConnsPerHost: workers * 2}
	defer transport.CloseIdleConnections()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar, Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				err := signInOnce(c, portal+"login?idp="+idpID, fmt.Sprintf("c%04d@bench.example", (w*7919+i)%customers), base)
				d := time.Since(t0)
				if err != nil {
					failed.Add(1)
					if failed.Load() <= 3 {
						fmt.Fprintln(out, "sign-in failed:", err)
					}
					continue
				}
				ok.Add(1)
				lat.Lock()
				latencies = append(latencies, d)
				lat.Unlock()
			}
		}(w)
	}
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	n := ok.Load()
	if n == 0 {
		return fmt.Errorf("no sign-in succeeded (%d failed)", failed.Load())
	}
	fmt.Fprintf(out, "sign-in (provider signs %s): %d OIDC round trips in %s with %d browsers: %.0f/s; %d failed; latency p50 %.1f ms p95 %.1f ms (GOMAXPROCS %d)\n",
		idpAlg, n, duration, workers, float64(n)/duration.Seconds(), failed.Load(), ms(latencies[len(latencies)/2]), ms(latencies[len(latencies)*95/100]), runtime.GOMAXPROCS(0))
	return nil
}

// signInOnce is one browser's sign-in: idbridge's login redirect, the
// provider's form post for email, idbridge's callback, the session cookie.
func signInOnce(c *http.Client, loginURL, email, appURL string) error {
	res, err := c.Get(loginURL)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		return fmt.Errorf("login: %d", res.StatusCode)
	}
	authorize := res.Header.Get("Location")
	res, err = c.PostForm(authorize, url.Values{"email": {email}, "name": {"Bench"}})
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		return fmt.Errorf("provider: %d", res.StatusCode)
	}
	res, err = c.Get(res.Header.Get("Location"))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("callback: %d %s", res.StatusCode, body)
	}
	u, _ := url.Parse(appURL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "idbridge_portal" && ck.Value != "" {
			return nil
		}
	}
	return fmt.Errorf("no session cookie")
}

// adminAPI calls idbridge's admin API as the fake site's admin.
type adminAPI struct {
	base, clientKey, secret string
}

func (a adminAPI) do(method, path string, body, out any) error {
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, a.base+"/api/admin"+path, bytes.NewReader(data))
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": a.clientKey, "sub": "557058:bench-admin", "qsh": "context-qsh", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}).SignedString([]byte(a.secret))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "JWT "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, answer)
	}
	if out != nil {
		return json.Unmarshal(answer, out)
	}
	return nil
}
