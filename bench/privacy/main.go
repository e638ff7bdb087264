// Command privacy measures the privacy features (issue 13, SPEC 8) on
// PostgreSQL (or SQLite with -sqlite, for a quick check):
//
//   - export: a site with N audit events exported whole, by a child
//     process running the same code as `idbridge export`; rows per second,
//     and the child's peak RSS (getrusage) — goal ≥ 200,000 rows/s and
//     ≤ 64 MB;
//   - erase: a person with E audit rows (among as many of others) erased
//     in one transaction — goal < 2 s;
//   - report: a Personal Data Reporting cycle over N accounts against the
//     fake reporting API (JWT and qsh verified), by a child process —
//     exactly ceil(N/90) requests, the child's peak RSS bounded.
//
// The numbers go in docs/PERFORMANCE.md. Run it on a quiet machine:
//
//	go run ./bench/privacy -pg 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/fakeatlassian"
	"idbridge/app/privacy"
	"idbridge/app/secret"
	"idbridge/app/store"
	"idbridge/bench/benchenv"
	"idbridge/models"
)

const appKey = "idbridge-bench-privacy"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("privacy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pg := fs.String("pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server URL; a fresh database is created next to the one named and dropped on exit")
	sqlite := fs.Bool("sqlite", false, "use a SQLite file in a temporary directory instead of PostgreSQL")
	n := fs.Int("n", 1_000_000, "audit events of the exported site, and accounts of the reported site")
	eraseRows := fs.Int("erase-rows", 100_000, "audit rows of the erased person (as many again of other people)")
	only := fs.String("only", "", "run one scenario: export, erase or report (default: all)")
	child := fs.String("child", "", "internal: run a scenario in this process (export or report) and print its result")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the export and report children to FILE.export and FILE.report")
	dsn := fs.String("dsn", "", "internal: the child's database")
	siteID := fs.String("site", "", "internal: the child's site")
	apiURL := fs.String("api", "", "internal: the child's reporting API")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx := context.Background()
	if *child != "" {
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile + "." + *child)
			if err != nil {
				fmt.Fprintln(stderr, "privacy child:", err)
				return 1
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(stderr, "privacy child:", err)
				return 1
			}
			defer pprof.StopCPUProfile()
		}
		if err := runChild(ctx, stdout, *child, *dsn, *siteID, *apiURL); err != nil {
			fmt.Fprintln(stderr, "privacy child:", err)
			return 1
		}
		return 0
	}
	if *only != "" && *only != "export" && *only != "erase" && *only != "report" {
		fmt.Fprintln(stderr, "privacy: -only is export, erase or report")
		return 2
	}
	if err := bench(ctx, stdout, stderr, *pg, *sqlite, *n, *eraseRows, *only, *cpuProfile); err != nil {
		fmt.Fprintln(stderr, "privacy:", err)
		return 1
	}
	return 0
}

// env is what parent and child share: the key ring travels in the
// environment of the child (never on its command line).
const keysEnv = "IDBRIDGE_BENCH_PRIVACY_KEYS"

func openStore(ctx context.Context, dsn string, keys []secret.Key) (*store.Store, error) {
	ring, err := secret.NewRing(keys)
	if err != nil {
		return nil, err
	}
	driver := store.Postgres
	if !strings.HasPrefix(dsn, "postgres") {
		driver = store.SQLite
	}
	st, err := store.Open(ctx, store.Options{Driver: driver, DSN: dsn, Ring: ring, StatementTimeout: time.Minute})
	if err != nil {
		return nil, err
	}
	if _, err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	return st, st.CheckKeyRing(ctx)
}

func bench(ctx context.Context, out, stderr io.Writer, pg string, useSQLite bool, n, eraseRows int, only, cpuProfile string) error {
	var dsn string
	if useSQLite {
		dir, err := os.MkdirTemp("", "idbridge-bench-privacy-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dsn = filepath.Join(dir, "bench.db")
	} else {
		d, drop, err := benchenv.CreateDatabase(ctx, pg, "bench_privacy")
		if err != nil {
			return err
		}
		defer func() { _ = drop() }()
		dsn = d
	}
	key, err := secret.GenerateKey("bench")
	if err != nil {
		return err
	}
	keys := []secret.Key{key}
	st, err := openStore(ctx, dsn, keys)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(out, "privacy: database %s, N = %d, erased person's rows = %d\n", st.Dialect(), n, eraseRows)

	fake := fakeatlassian.New(fakeatlassian.Options{})
	defer fake.Close()
	fake.KeepReports(false)
	install := func(name string) (*models.Site, error) {
		fsite := fake.NewSite(fakeatlassian.SiteOptions{})
		secretValue := "bench-secret-" + benchenv.RandomHex(16)
		fsite.InstallApp(appKey, secretValue)
		in := &models.Site{SharedSecret: []byte(secretValue)}
		in.ClientKey, in.BaseURL, in.ProductType = "bench-"+name, fsite.BaseURL(), "jira"
		var site *models.Site
		err := st.InTx(ctx, func(tx *store.Tx) error {
			var err error
			site, err = tx.SaveInstall(in)
			return err
		})
		return site, err
	}
	// seed writes count audit events of the site, actor(i) acting.
	seed := func(site *models.Site, count int, actor func(i int) string) error {
		now := time.Now().UTC()
		step := 59 * 24 * time.Hour / time.Duration(max(count, 1))
		const batch = 20_000
		for done := 0; done < count; done += batch {
			evs := make([]models.AuditEvent, 0, batch)
			for i := done; i < min(count, done+batch); i++ {
				evs = append(evs, models.AuditEvent{Event: models.AuditLoginSuccess, ActorAccountID: actor(i), IdP: "idp_bench", Protocol: "oidc",
					IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (bench)", OccurredAt: now.Add(-time.Duration(i) * step)})
			}
			if err := st.InTx(ctx, func(tx *store.Tx) error { return tx.CreateAuditEvents(site.ID, evs) }); err != nil {
				return err
			}
		}
		return st.Analyze(ctx)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	childRun := func(scenario string, site *models.Site) (childResult, error) {
		cmd := exec.CommandContext(ctx, self, "-child", scenario, "-dsn", dsn, "-site", site.ID, "-api", fake.APIURL(), "-cpuprofile", cpuProfile)
		cmd.Env = append(os.Environ(), keysEnv+"="+secret.FormatKeys(keys))
		cmd.Stderr = stderr
		raw, err := cmd.Output()
		var res childResult
		if err != nil {
			return res, fmt.Errorf("%s child: %w", scenario, err)
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			return res, fmt.Errorf("%s child said %q", scenario, raw)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSSKiB = ru.Maxrss
		}
		return res, nil
	}

	// The reporting cycle covers every installed site: it runs first, while
	// its site is the only one.
	if only == "" || only == "report" {
		site, err := install("report")
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := seed(site, n, func(i int) string { return fmt.Sprintf("557058:account-%07d", i) }); err != nil {
			return err
		}
		fmt.Fprintf(out, "report: %d accounts written in %s\n", n, time.Since(t0).Round(time.Millisecond))
		before := fake.ReportCounts()
		res, err := childRun("report", site)
		if err != nil {
			return err
		}
		c := fake.ReportCounts()
		requests, accounts := c.Requests-before.Requests, c.Accounts-before.Accounts
		want := (n + 89) / 90
		verdict := "exactly ceil(N/90)"
		if requests != want {
			verdict = fmt.Sprintf("WRONG: want %d", want)
		}
		fmt.Fprintf(out, "report: a cycle over %d accounts: %d requests (%s), %d accounts sent, largest batch %d, %d refused, in %s; child peak RSS %.1f MiB\n",
			n, requests, verdict, accounts, c.MaxBatch, c.Rejected, time.Duration(res.Nanos).Round(time.Millisecond), float64(res.MaxRSSKiB)/1024)
		if requests != want || accounts != n || c.Rejected != 0 {
			return errors.New("the reporting cycle did not send exactly one report per account")
		}
	}
	if only == "" || only == "export" {
		site, err := install("export")
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := seed(site, n, func(i int) string { return fmt.Sprintf("557058:customer-%05d", i%5000) }); err != nil {
			return err
		}
		fmt.Fprintf(out, "export: %d audit events written in %s\n", n, time.Since(t0).Round(time.Millisecond))
		res, err := childRun("export", site)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "export: %d rows (%d MiB of JSON) in %s: %.0f rows/s; child peak RSS %.1f MiB (goals: >= 200000 rows/s, <= 64 MiB)\n",
			res.Rows, res.Bytes>>20, time.Duration(res.Nanos).Round(time.Millisecond), float64(res.Rows)/time.Duration(res.Nanos).Seconds(), float64(res.MaxRSSKiB)/1024)
	}

	if only == "" || only == "erase" {
		site, err := install("erase")
		if err != nil {
			return err
		}
		const person = "557058:erase-me"
		t0 := time.Now()
		if err := seed(site, 2*eraseRows, func(i int) string {
			if i%2 == 0 {
				return person
			}
			return fmt.Sprintf("557058:other-%05d", i%5000)
		}); err != nil {
			return err
		}
		fmt.Fprintf(out, "erase: %d audit events written (%d of the person) in %s\n", 2*eraseRows, eraseRows, time.Since(t0).Round(time.Millisecond))
		svc := privacy.New(privacy.Config{}, st, nil, nil)
		t0 = time.Now()
		e, err := svc.Erase(ctx, site, "557058:bench-admin", person)
		d := time.Since(t0)
		if err != nil {
			return err
		}
		if got := e.Rows[models.TableAuditEvents]; got != int64(eraseRows) {
			return fmt.Errorf("erased %d audit rows, want %d", got, eraseRows)
		}
		fmt.Fprintf(out, "erase: %d audit rows pseudonymised in one transaction in %s (goal: < 2 s on PostgreSQL)\n", eraseRows, d.Round(time.Millisecond))
	}

	return nil
}

// childResult is what a child prints.
type childResult struct {
	Rows      int64 `json:"rows"`
	Bytes     int64 `json:"bytes"`
	Nanos     int64 `json:"nanos"`
	Requests  int   `json:"requests"`
	MaxRSSKiB int64 `json:"-"`
}

// runChild runs one scenario in a process of its own, so that its peak RSS
// is the feature's, not the seeding's.
func runChild(ctx context.Context, out io.Writer, scenario, dsn, siteID, apiURL string) error {
	keys, err := secret.ParseKeys(os.Getenv(keysEnv))
	if err != nil {
		return err
	}
	st, err := openStore(ctx, dsn, keys)
	if err != nil {
		return err
	}
	defer st.Close()
	site, err := st.View(ctx).FindSiteByID(siteID)
	if err != nil {
		return err
	}
	var res childResult
	switch scenario {
	case "export":
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer devnull.Close()
		cw := &countingWriter{w: devnull}
		bw := bufio.NewWriterSize(cw, 64<<10)
		svc := privacy.New(privacy.Config{}, st, nil, nil)
		t0 := time.Now()
		sum, err := svc.Export(ctx, site, "", "", bw)
		if err == nil {
			err = bw.Flush()
		}
		res.Nanos = int64(time.Since(t0))
		if err != nil {
			return err
		}
		res.Rows, res.Bytes = sum.Rows, cw.n
	case "report":
		api, err := url.Parse(apiURL)
		if err != nil {
			return err
		}
		// Atlassian's own pace is not measured here: the per-site limiter
		// is opened wide (in production it keeps 10 requests a second).
		clients := atlassian.New(atlassian.Options{AppKey: appKey, Limiter: atlassian.LimiterOptions{Rate: 1e9, Burst: 1 << 30}})
		svc := privacy.New(privacy.Config{Reporting: clients.Reporting(api)}, st, nil, nil)
		t0 := time.Now()
		sums, ran, err := svc.ReportAll(ctx, true)
		res.Nanos = int64(time.Since(t0))
		if err != nil {
			return err
		}
		if !ran {
			return errors.New("the cycle did not run")
		}
		for _, s := range sums {
			if s.SiteID == site.ID {
				res.Rows, res.Requests = int64(s.Reported), s.Requests
			}
		}
	default:
		return fmt.Errorf("unknown scenario %q", scenario)
	}
	return json.NewEncoder(out).Encode(res)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
