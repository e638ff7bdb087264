// Command noisy is the noisy-neighbour benchmark of idbridge's SCIM server
// (issue 10, docs/PERFORMANCE.md). In one process it starts idbridge
// (app.Open, on 127.0.0.1) on SQLite or on a fresh PostgreSQL database with
// two sites:
//
//   - the noisy site, whose identity provider sends, from many connections at
//     once, the most expensive requests the limits allow: filters with the
//     most multi-valued terms over users with the most emails, PATCHes with
//     the most operations on a user with the most attributes, list pages of
//     the largest users, and creates of the largest bodies;
//   - the quiet site, whose identity provider keeps looking users up by
//     userName (its hot path), from a few connections.
//
// It reports the quiet site's latency (the goal: p99 at most 50 ms and no
// request failing), what the noisy site got (200, 429, 503), and then the
// peak RSS while eight of the largest accepted requests run at once (the
// goal: under 200 MB).
//
//	go run ./bench/noisy -db sqlite -duration 20s
//	go run ./bench/noisy -db postgres -pg postgres://postgres@127.0.0.1:5432/test?sslmode=disable
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"idbridge/app"
	"idbridge/app/provisioning"
	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/bench/benchenv"
	"idbridge/config"
	"idbridge/models"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	db, pg        string
	duration      time.Duration
	quietUsers    int
	noisyUsers    int
	noisyWorkers  int
	quietWorkers  int
	memoryWorkers int
	serve         bool
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("noisy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.db, "db", "sqlite", "database: sqlite or postgres")
	fs.StringVar(&o.pg, "pg", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL server URL; a fresh database is created and dropped")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long the noisy and the quiet site run together")
	fs.IntVar(&o.quietUsers, "quiet-users", 10000, "users of the quiet site")
	fs.IntVar(&o.noisyUsers, "noisy-users", 1000, "users of the noisy site, each with the most emails allowed")
	fs.IntVar(&o.noisyWorkers, "noisy", 32, "concurrent connections of the noisy site")
	fs.IntVar(&o.quietWorkers, "quiet", 4, "concurrent connections of the quiet site")
	fs.IntVar(&o.memoryWorkers, "memory", 8, "concurrent largest requests of the memory check")
	fs.BoolVar(&o.serve, "serve", false, "run idbridge and seed it only, print what the load needs, serve until stdin closes (the parent runs this)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || (o.db != "sqlite" && o.db != "postgres") {
		fmt.Fprintln(stderr, "noisy: bad arguments (see -help)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.serve {
		if err := serve(ctx, o, stdout); err != nil {
			fmt.Fprintln(stderr, "noisy -serve:", err)
			return 1
		}
		return 0
	}
	if err := bench(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "noisy:", err)
		return 1
	}
	return 0
}

// serve is the server process: idbridge, seeded, until stdin closes.
func serve(ctx context.Context, o options, out io.Writer) error {
	a, base, cleanup, err := start(ctx, o)
	if err != nil {
		return err
	}
	defer cleanup()
	t0 := time.Now()
	noisy, quiet, fat, err := seed(ctx, a.Store(), base, o)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	fmt.Fprintf(out, "# idbridge on %s, %s, GOMAXPROCS=%d, %d cores; quiet site %d users, noisy site %d users with %d emails each; seeded in %s\n",
		o.db, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), o.quietUsers, o.noisyUsers, scim.MaxValues, time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(out, "READY %s %s %s %s %s %s\n", base, noisy.id, noisy.token, quiet.id, quiet.token, fat)
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// bench runs the server in a child process (so that its RSS is its own),
// then the load.
func bench(ctx context.Context, o options, out io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, exe, "-serve", "-db", o.db, "-pg", o.pg,
		"-quiet-users", fmt.Sprint(o.quietUsers), "-noisy-users", fmt.Sprint(o.noisyUsers))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	var base string
	var noisy, quiet site
	var fat string
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		if f := strings.Fields(line); len(f) == 7 && f[0] == "READY" {
			base, fat = f[1], f[6]
			noisy = site{id: f[2], token: f[3]}
			quiet = site{id: f[4], token: f[5]}
			break
		}
		fmt.Fprintln(out, line)
	}
	if base == "" {
		return errors.New("the server process did not get ready")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	pid := cmd.Process.Pid
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}

	// The noisy site's most expensive requests.
	var vps []string
	for i := range scim.MaxMultiValuedTerms {
		vps = append(vps, fmt.Sprintf(`emails[value co "zz%d" and type eq "work"]`, i))
	}
	expensiveFilter := "/Users?count=1000&filter=" + queryEscape(strings.Join(vps, " or "))
	var patch strings.Builder
	patch.WriteString(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`)
	for i := range scim.MaxPatchOperations {
		if i > 0 {
			patch.WriteByte(',')
		}
		fmt.Fprintf(&patch, `{"op":"replace","path":"custom%04d","value":"v%d"}`, i%(scim.MaxAttributes-50), i)
	}
	patch.WriteString(`]}`)
	largest := largestUser()
	noisyRequests := []func(i int) (string, string, []byte){
		func(int) (string, string, []byte) { return "GET", expensiveFilter, nil },
		func(int) (string, string, []byte) { return "PATCH", "/Users/" + fat, []byte(patch.String()) },
		func(int) (string, string, []byte) { return "GET", "/Users?count=1000&startIndex=1", nil },
		func(i int) (string, string, []byte) {
			return "POST", "/Users", bytes.Replace(largest, []byte("USERNAME"), []byte(fmt.Sprintf("big-%d-%s", i, benchenv.RandomHex(4))), 1)
		},
	}

	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var wg sync.WaitGroup
	var noisyStatus sync.Map // status → *atomic.Int64
	var noisyN atomic.Int64
	for w := range o.noisyWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; runCtx.Err() == nil; i += o.noisyWorkers {
				method, path, body := noisyRequests[i%len(noisyRequests)](i)
				code, _, _ := do(runCtx, client, method, base+"/scim/v2/"+noisy.id+path, noisy.token, body)
				if runCtx.Err() != nil {
					return
				}
				c, _ := noisyStatus.LoadOrStore(code, new(atomic.Int64))
				c.(*atomic.Int64).Add(1)
				noisyN.Add(1)
			}
		}()
	}
	// The quiet site's lookups; its first second is discarded (warm-up).
	var mu sync.Mutex
	var lat []time.Duration
	var quietFailed []string
	warm := time.Now().Add(time.Second)
	for w := range o.quietWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; runCtx.Err() == nil; i += o.quietWorkers {
				name := fmt.Sprintf("quiet%06d@example.com", i%o.quietUsers)
				t := time.Now()
				code, body, err := do(runCtx, client, "GET", base+"/scim/v2/"+quiet.id+"/Users?filter="+queryEscape(`userName eq "`+name+`"`), quiet.token, nil)
				d := time.Since(t)
				if runCtx.Err() != nil {
					return
				}
				mu.Lock()
				if code != http.StatusOK || !bytes.Contains(body, []byte(`"totalResults":1`)) {
					quietFailed = append(quietFailed, fmt.Sprintf("%d %v %.100s", code, err, body))
				} else if t.After(warm) {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	fmt.Fprintf(out, "quiet site: %d lookups (%.0f/s), p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, failed %d\n",
		len(lat), float64(len(lat))/(o.duration.Seconds()-1), pct(0.5), pct(0.9), pct(0.99), pct(1), len(quietFailed))
	for _, f := range quietFailed[:min(len(quietFailed), 5)] {
		fmt.Fprintln(out, "  failed:", f)
	}
	var statuses []string
	noisyStatus.Range(func(k, v any) bool {
		statuses = append(statuses, fmt.Sprintf("%d×%d", v.(*atomic.Int64).Load(), k))
		return true
	})
	slices.Sort(statuses)
	fmt.Fprintf(out, "noisy site: %d requests (%.0f/s) from %d connections: %s\n", noisyN.Load(), float64(noisyN.Load())/o.duration.Seconds(), o.noisyWorkers, strings.Join(statuses, ", "))

	// Memory: the largest accepted request, many at once.
	if err := resetPeakRSS(pid); err != nil {
		fmt.Fprintln(out, "memory: cannot reset the peak RSS:", err)
	}
	before := rssMB(pid, "VmRSS")
	var mwg sync.WaitGroup
	codes := make([]int, o.memoryWorkers)
	for w := range o.memoryWorkers {
		mwg.Add(1)
		go func() {
			defer mwg.Done()
			for r := range 4 {
				body := bytes.Replace(largest, []byte("USERNAME"), []byte(fmt.Sprintf("mem-%d-%d-%s", w, r, benchenv.RandomHex(4))), 1)
				codes[w], _, _ = do(ctx, client, "POST", base+"/scim/v2/"+quiet.id+"/Users", quiet.token, body)
			}
		}()
	}
	mwg.Wait()
	fmt.Fprintf(out, "memory: %d × 4 creates of %d KB bodies, %d at once: RSS before %d MB, peak %d MB (statuses %v)\n",
		o.memoryWorkers, len(largest)>>10, o.memoryWorkers, before, rssMB(pid, "VmHWM"), codes)
	return nil
}

func queryEscape(s string) string {
	return strings.NewReplacer(" ", "%20", `"`, "%22", "[", "%5B", "]", "%5D", "@", "%40").Replace(s)
}

func do(ctx context.Context, c *http.Client, method, target, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// largestUser is a user body just under the 1 MiB body limit and within
// every limit: 120 attributes of the longest strings.
func largestUser() []byte {
	var b strings.Builder
	b.WriteString(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"USERNAME"`)
	for i := range 120 {
		fmt.Fprintf(&b, `,"blob%03d":"%s"`, i, strings.Repeat(string(rune('a'+i%26)), scim.MaxStringBytes))
	}
	b.WriteString(`}`)
	return []byte(b.String())
}

// rssMB reads a VmRSS or VmHWM line of /proc/PID/status, in MB.
func rssMB(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kb int
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb >> 10
		}
	}
	return -1
}

// resetPeakRSS sets VmHWM to the current RSS (Linux: clear_refs 5).
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

type site struct {
	id, token string
}

func start(ctx context.Context, o options) (*app.App, string, func(), error) {
	var cleanups []func() error
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			_ = cleanups[i]()
		}
	}
	addr, err := benchenv.FreeAddr("127.0.0.1:0")
	if err != nil {
		return nil, "", cleanup, err
	}
	base := "http://" + addr
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := map[string]string{
		"IDBRIDGE_ADDR": addr, "IDBRIDGE_BASE_URL": base, "IDBRIDGE_APP_KEY": "idbridge-bench",
		"IDBRIDGE_LOG_LEVEL": "error", "IDBRIDGE_LOG_FORMAT": "text", "IDBRIDGE_SHUTDOWN_TIMEOUT": "5s",
		"IDBRIDGE_ENCRYPTION_KEYS": "bench1:" + base64.StdEncoding.EncodeToString(key),
	}
	if o.db == "sqlite" {
		dir, err := os.MkdirTemp("", "idbridge-noisy-bench-")
		if err != nil {
			return nil, "", cleanup, err
		}
		cleanups = append(cleanups, func() error { return os.RemoveAll(dir) })
		env["IDBRIDGE_DATA_DIR"] = dir
		env["IDBRIDGE_DATABASE_URL"] = "sqlite:" + filepath.Join(dir, "idbridge.db")
	} else {
		dsn, drop, err := benchenv.CreateDatabase(ctx, o.pg, "idbridge_noisy_bench")
		if err != nil {
			return nil, "", cleanup, err
		}
		cleanups = append(cleanups, drop)
		env["IDBRIDGE_DATABASE_URL"] = dsn
		env["IDBRIDGE_DATA_DIR"] = os.TempDir()
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		return nil, "", cleanup, err
	}
	app.TuneGC(os.Getenv)
	a, err := app.Open(ctx, cfg, app.Options{Log: app.NewLogger(io.Discard, cfg)})
	if err != nil {
		return nil, "", cleanup, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	cleanups = append(cleanups, a.Close, func() error { cancel(); return <-done })
	select {
	case <-a.WorkersReady():
	case err := <-done:
		return nil, "", cleanup, fmt.Errorf("idbridge stopped: %v", err)
	case <-time.After(10 * time.Second):
		return nil, "", cleanup, errors.New("idbridge did not start within 10 s")
	}
	return a, base, cleanup, nil
}

// seed installs the two sites with provisioning on and fills them: the
// quiet site's users as Okta creates them, the noisy site's with the most
// emails allowed each, and one user with nearly the most attributes (the
// target of the noisy PATCHes), whose ID it returns.
func seed(ctx context.Context, st *store.Store, base string, o options) (noisy, quiet site, fat string, err error) {
	svc := provisioning.NewService(provisioning.ServiceConfig{}, st, nil, nil)
	install := func(name string) (site, error) {
		var s *models.Site
		err := st.InTx(ctx, func(tx *store.Tx) error {
			var err error
			s, err = tx.SaveInstall(&models.Site{
				SiteFacts: models.SiteFacts{
					ClientKey:   name + "-" + benchenv.RandomHex(4),
					BaseURL:     "https://" + name + ".atlassian.net",
					ProductType: "jira",
				},
				SharedSecret: []byte(benchenv.RandomHex(32)),
			})
			return err
		})
		if err != nil {
			return site{}, err
		}
		token, err := svc.RotateToken(ctx, &models.Caller{Site: s, AccountID: "bench-admin"})
		return site{id: s.ID, token: token}, err
	}
	if noisy, err = install("noisy"); err != nil {
		return
	}
	if quiet, err = install("quiet"); err != nil {
		return
	}
	insert := func(siteID string, n int, doc func(i int) (string, []byte)) error {
		const batch = 2000
		for from := 0; from < n; from += batch {
			err := st.InTx(ctx, func(tx *store.Tx) error {
				for i := from; i < min(from+batch, n); i++ {
					name, d := doc(i)
					u := &models.DirectoryUser{SiteID: siteID, UserName: name, Email: name, Active: true, Doc: d}
					if err := tx.CreateDirectoryUser(u); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	err = insert(quiet.id, o.quietUsers, func(i int) (string, []byte) {
		name := fmt.Sprintf("quiet%06d@example.com", i)
		return name, fmt.Appendf(nil, `{"active":true,"emails":[{"primary":true,"type":"work","value":"%s"}],"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s"}`, name, name)
	})
	if err != nil {
		return
	}
	err = insert(noisy.id, o.noisyUsers, func(i int) (string, []byte) {
		name := fmt.Sprintf("noisy%06d@example.com", i)
		var b strings.Builder
		fmt.Fprintf(&b, `{"active":true,"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s","emails":[`, name)
		for e := range scim.MaxValues {
			if e > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":"work","value":"n%d.e%d@example.com"}`, i, e)
		}
		b.WriteString(`]}`)
		return name, []byte(b.String())
	})
	if err != nil {
		return
	}
	var attrs strings.Builder
	attrs.WriteString(`{"userName":"fat"`)
	for i := range scim.MaxAttributes - 50 {
		fmt.Fprintf(&attrs, `,"custom%04d":"v"`, i)
	}
	attrs.WriteString(`}`)
	code, body, err := do(ctx, http.DefaultClient, "POST", base+"/scim/v2/"+noisy.id+"/Users", noisy.token, []byte(attrs.String()))
	if err != nil || code != http.StatusCreated {
		return noisy, quiet, "", fmt.Errorf("create the fat user: %d %.200s %v", code, body, err)
	}
	i := bytes.Index(body, []byte(`"id":"`))
	fat = string(body[i+6 : i+6+bytes.IndexByte(body[i+6:], '"')])
	_, err = st.SQLDB().ExecContext(ctx, map[string]string{store.Postgres: "VACUUM ANALYZE", store.SQLite: "ANALYZE"}[st.Dialect()])
	return noisy, quiet, fat, err
}
