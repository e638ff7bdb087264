// Command scim is the load-test target of idbridge's SCIM server: in one
// process it starts idbridge (app.Open, on 127.0.0.1) on SQLite or on a
// fresh PostgreSQL database, installs 100 sites with provisioning on, and
// seeds one of them with 100,000 users (and the others with a few each).
// It then times, over HTTP, group PATCHes that add 1,000 members each, and
// prints what bench/scim/run.sh needs to load it with wrk:
//
//	BASE_URL=http://127.0.0.1:41234/scim/v2/s_…
//	TOKEN=idbscim_…
//	USERS=100000
//	PATCH_MS=41.2,39.8,…
//	READY
//
// It serves until SIGINT, SIGTERM or -duration. See docs/PERFORMANCE.md.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"idbridge/app"
	"idbridge/app/provisioning"
	"idbridge/app/store"
	"idbridge/bench/benchenv"
	"idbridge/config"
	"idbridge/models"
)

const (
	dbSQLite     = "sqlite"
	dbPostgres   = "postgres"
	defaultPGURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", dbSQLite, "database: sqlite or postgres")
	pg := fs.String("pg", defaultPGURL, "PostgreSQL server URL; a fresh database is created next to the one named and dropped on exit")
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only; port 0 picks a free one)")
	duration := fs.Duration("duration", 0, "stop this long after READY (0: at SIGINT/SIGTERM)")
	sites := fs.Int("sites", 100, "sites to install")
	users := fs.Int("users", 100_000, "users in the big site")
	patches := fs.Int("patches", 5, "group PATCHes of -members members to time")
	members := fs.Int("members", 1000, "members added by each timed group PATCH")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address (for profiling a run)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scim [-db sqlite|postgres] [-pg URL] [-addr 127.0.0.1:PORT] [-sites N] [-users N] [-duration D]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || (*db != dbSQLite && *db != dbPostgres) || *sites < 1 || *users < *members*(*patches) {
		fmt.Fprintln(stderr, "scim: bad arguments (see -help); -users must cover -patches × -members")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr); err != nil {
			fmt.Fprintln(stderr, "scim: -pprof:", err)
			return 2
		}
	}
	b, err := start(ctx, *db, *pg, *addr)
	if err != nil {
		fmt.Fprintln(stderr, "scim:", err)
		return 1
	}
	defer func() {
		if err := b.close(); err != nil {
			fmt.Fprintln(stderr, "scim: stop:", err)
		}
	}()
	t0 := time.Now()
	big, ids, err := b.seed(ctx, *sites, *users)
	if err != nil {
		fmt.Fprintln(stderr, "scim: seed:", err)
		return 1
	}
	fmt.Fprintf(stdout, "# idbridge on %s, %s, GOMAXPROCS=%d; %d sites, %d users in the big one, seeded in %s\n",
		*db, runtime.Version(), runtime.GOMAXPROCS(0), *sites, *users, time.Since(t0).Round(time.Millisecond))
	base := b.url + "/scim/v2/" + big.site.ID
	durations, err := timePatches(ctx, base, big.token, ids, *patches, *members)
	if err != nil {
		fmt.Fprintln(stderr, "scim: group PATCH:", err)
		return 1
	}
	ms := make([]string, len(durations))
	for i, d := range durations {
		ms[i] = fmt.Sprintf("%.1f", float64(d.Microseconds())/1000)
	}
	fmt.Fprintf(stdout, "DB=%s\n", *db)
	fmt.Fprintf(stdout, "BASE_URL=%s\n", base)
	fmt.Fprintf(stdout, "TOKEN=%s\n", big.token)
	fmt.Fprintf(stdout, "USERS=%d\n", *users)
	fmt.Fprintf(stdout, "PATCH_MS=%s\n", strings.Join(ms, ","))
	fmt.Fprintln(stdout, "READY")
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	var timeout <-chan time.Time
	if *duration > 0 {
		timeout = time.After(*duration)
	}
	select {
	case <-ctx.Done():
	case <-timeout:
	case <-b.done:
		return 1
	}
	return 0
}

type benchSite struct {
	site  *models.Site
	token string
}

type bench struct {
	app      *app.App
	url      string
	done     chan struct{}
	runErr   error
	cancel   context.CancelFunc
	cleanups []func() error
}

func start(ctx context.Context, db, pgURL, addr string) (b *bench, err error) {
	b = &bench{done: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = b.close()
		}
	}()
	addr, err = benchenv.FreeAddr(addr)
	if err != nil {
		return b, err
	}
	b.url = "http://" + addr
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := map[string]string{
		"IDBRIDGE_ADDR":             addr,
		"IDBRIDGE_BASE_URL":         b.url,
		"IDBRIDGE_APP_KEY":          "idbridge-bench",
		"IDBRIDGE_LOG_LEVEL":        "error",
		"IDBRIDGE_LOG_FORMAT":       "text",
		"IDBRIDGE_SHUTDOWN_TIMEOUT": "5s",
		"IDBRIDGE_ENCRYPTION_KEYS":  "bench1:" + base64.StdEncoding.EncodeToString(key),
	}
	switch db {
	case dbSQLite:
		dir, err := os.MkdirTemp("", "idbridge-scim-bench-")
		if err != nil {
			return b, err
		}
		b.cleanups = append(b.cleanups, func() error { return os.RemoveAll(dir) })
		env["IDBRIDGE_DATA_DIR"] = dir
		env["IDBRIDGE_DATABASE_URL"] = "sqlite:" + filepath.Join(dir, "idbridge.db")
	case dbPostgres:
		dsn, drop, err := benchenv.CreateDatabase(ctx, pgURL, "idbridge_scim_bench")
		if err != nil {
			return b, err
		}
		b.cleanups = append(b.cleanups, drop)
		env["IDBRIDGE_DATABASE_URL"] = dsn
		env["IDBRIDGE_DATA_DIR"] = os.TempDir()
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		return b, fmt.Errorf("configuration: %w", err)
	}
	app.TuneGC(os.Getenv) // as `idbridge serve` does
	a, err := app.Open(ctx, cfg, app.Options{Log: app.NewLogger(io.Discard, cfg)})
	if err != nil {
		return b, fmt.Errorf("open idbridge: %w", err)
	}
	b.app = a
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	go func() {
		b.runErr = a.Run(runCtx)
		close(b.done)
	}()
	select {
	case <-a.WorkersReady():
	case <-b.done:
		return b, fmt.Errorf("idbridge stopped: %v", b.runErr)
	case <-time.After(10 * time.Second):
		return b, errors.New("idbridge did not start within 10 s")
	}
	return b, nil
}

func (b *bench) close() error {
	var errs []error
	if b.cancel != nil {
		b.cancel()
		select {
		case <-b.done:
			if b.runErr != nil {
				errs = append(errs, b.runErr)
			}
		case <-time.After(15 * time.Second):
			errs = append(errs, errors.New("idbridge did not stop within 15 s"))
		}
		b.cancel = nil
	}
	if b.app != nil {
		errs = append(errs, b.app.Close())
		b.app = nil
	}
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		errs = append(errs, b.cleanups[i]())
	}
	return errors.Join(errs...)
}

// userDoc is a user as Okta creates one, stored the way the SCIM server
// stores it.
func userDoc(userName, given, family string, i int) []byte {
	return fmt.Appendf(nil, `{"active":true,"displayName":"%s %s","emails":[{"primary":true,"type":"work","value":"%s"}],`+
		`"externalId":"00u%08d","locale":"en-US","name":{"familyName":"%s","givenName":"%s"},`+
		`"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s"}`,
		given, family, userName, i, family, given, userName)
}

// seed installs the sites, turns provisioning on for each (a token made
// the way the admin page makes it), and fills the directories: n users in
// the first site, ten in every other. It returns the big site and its
// user IDs.
func (b *bench) seed(ctx context.Context, sites, n int) (*benchSite, []string, error) {
	st := b.app.Store()
	svc := provisioning.NewService(provisioning.ServiceConfig{}, st, nil, nil)
	var big *benchSite
	var ids []string
	for s := range sites {
		var site *models.Site
		err := st.InTx(ctx, func(tx *store.Tx) error {
			var err error
			site, err = tx.SaveInstall(&models.Site{
				SiteFacts: models.SiteFacts{
					ClientKey:   fmt.Sprintf("bench-%03d-%s", s, benchenv.RandomHex(4)),
					BaseURL:     fmt.Sprintf("https://bench-%03d.atlassian.net", s),
					ProductType: "jira",
				},
				SharedSecret: []byte(benchenv.RandomHex(32)),
			})
			return err
		})
		if err != nil {
			return nil, nil, err
		}
		token, err := svc.RotateToken(ctx, &models.Caller{Site: site, AccountID: "bench-admin"})
		if err != nil {
			return nil, nil, err
		}
		count := 10
		if s == 0 {
			big = &benchSite{site: site, token: token}
			count = n
		}
		const batch = 5000
		for from := 0; from < count; from += batch {
			err := st.InTx(ctx, func(tx *store.Tx) error {
				for i := from; i < min(from+batch, count); i++ {
					name := fmt.Sprintf("user%06d@example.com", i)
					u := &models.DirectoryUser{SiteID: site.ID, UserName: name, ExternalID: fmt.Sprintf("00u%08d", i),
						DisplayName: fmt.Sprintf("Given%d Family%d", i, i%977), GivenName: fmt.Sprintf("Given%d", i),
						FamilyName: fmt.Sprintf("Family%d", i%977), Email: name, Active: true,
						Doc: userDoc(name, fmt.Sprintf("Given%d", i), fmt.Sprintf("Family%d", i%977), i)}
					if err := tx.CreateDirectoryUser(u); err != nil {
						return err
					}
					if s == 0 {
						ids = append(ids, u.ID)
					}
				}
				return nil
			})
			if err != nil {
				return nil, nil, err
			}
		}
	}
	// Fresh statistics and visibility map, as a database that has been
	// running for a while has (and autovacuum does not start mid-run).
	if _, err := st.SQLDB().ExecContext(ctx, vacuumStatement(st.Dialect())); err != nil {
		return nil, nil, fmt.Errorf("vacuum: %w", err)
	}
	return big, ids, nil
}

func vacuumStatement(dialect string) string {
	if dialect == store.Postgres {
		return "VACUUM ANALYZE"
	}
	return "ANALYZE"
}

// timePatches creates groups and times PATCHes that each add members
// members to one (Entra's batch shape), over HTTP.
func timePatches(ctx context.Context, base, token string, ids []string, patches, members int) ([]time.Duration, error) {
	client := &http.Client{Timeout: 60 * time.Second}
	do := func(method, target, body string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, nil
	}
	var out []time.Duration
	for p := range patches {
		code, body, err := do("POST", base+"/Groups", fmt.Sprintf(`{"displayName":"bench-group-%d-%s"}`, p, benchenv.RandomHex(4)))
		if err != nil || code != http.StatusCreated {
			return nil, fmt.Errorf("create group: %d %s %v", code, body, err)
		}
		i := bytes.Index(body, []byte(`"id":"`))
		if i < 0 {
			return nil, fmt.Errorf("create group: no id in %s", body)
		}
		gid := string(body[i+6 : i+6+bytes.IndexByte(body[i+6:], '"')])
		var b strings.Builder
		b.WriteString(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[`)
		for k, id := range ids[p*members : (p+1)*members] {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"value":"%s"}`, id)
		}
		b.WriteString(`]}]}`)
		t0 := time.Now()
		code, body, err = do("PATCH", base+"/Groups/"+url.PathEscape(gid), b.String())
		d := time.Since(t0)
		if err != nil || code != http.StatusNoContent {
			return nil, fmt.Errorf("PATCH: %d %s %v", code, body, err)
		}
		out = append(out, d)
	}
	slices.Sort(out)
	return out, nil
}

// servePprof serves the profiler on a loopback address.
func servePprof(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: want a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}
