// Command flood is the unauthenticated flood benchmark of issue 10: it runs
// `idbridge serve` as a child process on loopback, sends it junk that anyone
// on the internet could send (random SCIM site IDs and paths, Connect JWTs
// with random issuers, signed-looking installs with random key IDs, random
// bytes in paths, headers and bodies), and reports how much the server's
// resident memory grew, what it answered, and how fast.
//
//	flood -idbridge PATH [-db sqlite|postgres] [-n 100000] [-c 16] [-max-growth-mb 50]
//
// It exits 1 when the server answered anything but a 4xx, when a request
// failed at the transport, or when RSS grew by more than -max-growth-mb
// over the baseline taken after a warm-up. Only loopback addresses are
// used; the Atlassian install-key server and the Jira site are fakes in
// this process (the key server knows no key, as for any random kid).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"idbridge/app/connect"
	"idbridge/bench/benchenv"
)

const defaultPGURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("idbridge", "", "path of the idbridge binary to run (required)")
	db := fs.String("db", "sqlite", "database: sqlite or postgres")
	pg := fs.String("pg", defaultPGURL, "PostgreSQL server URL; a fresh database is created next to the one named and dropped on exit")
	n := fs.Int("n", 100_000, "junk requests to send")
	warmup := fs.Int("warmup", 2_000, "junk requests sent before the baseline is taken")
	conc := fs.Int("c", 16, "concurrent connections")
	maxGrowth := fs.Float64("max-growth-mb", 50, "fail when RSS grows by more than this (MB, 10^6 bytes) over the baseline")
	seed := fs.Uint64("seed", 0, "random seed (0: a random one, printed)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: flood -idbridge PATH [-db sqlite|postgres] [-n N] [-c C] [-max-growth-mb MB]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *bin == "" || fs.NArg() > 0 || (*db != "sqlite" && *db != "postgres") || *n < 1 || *conc < 1 {
		fs.Usage()
		return 2
	}
	if *seed == 0 {
		*seed = mrand.Uint64()
	}
	ctx := context.Background()
	srv, err := startServer(ctx, *bin, *db, *pg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "flood:", err)
		return 1
	}
	defer srv.stop()

	idle := srv.rss()
	fmt.Fprintf(stdout, "# idbridge %s on %s (pid %d), seed %d, %d connections\n", *bin, *db, srv.cmd.Process.Pid, *seed, *conc)
	fmt.Fprintf(stdout, "idle RSS after start: %.1f MB\n", mb(idle))

	gen := &junk{base: srv.baseURL, jira: srv.jiraURL}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc, DisableCompression: true,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	warm := send(ctx, client, gen, *warmup, *conc, *seed^0x5eed, nil)
	if warm.bad() {
		// Measured all the same: how memory behaves matters either way.
		fmt.Fprintf(stdout, "warm-up: %s\n", warm.summary())
	}
	baseline := srv.rss()
	fmt.Fprintf(stdout, "baseline RSS after %d warm-up requests: %.1f MB\n", *warmup, mb(baseline))

	var peak atomic.Int64
	peak.Store(baseline)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				if r := srv.rss(); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	start := time.Now()
	res := send(ctx, client, gen, *n, *conc, *seed, srv)
	elapsed := time.Since(start)
	close(stopSampling)
	<-sampled
	if r := srv.rss(); r > peak.Load() {
		peak.Store(r)
	}
	client.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	after := srv.rss()
	growth := mb(peak.Load() - baseline)

	fmt.Fprintf(stdout, "requests: %d in %s (%.0f/s)\n", *n, elapsed.Round(time.Millisecond), float64(*n)/elapsed.Seconds())
	fmt.Fprintf(stdout, "answers: %s\n", res.summary())
	for _, k := range kinds {
		fmt.Fprintf(stdout, "  %-8s %s\n", k, res.kindSummary(k))
	}
	fmt.Fprintf(stdout, "RSS: baseline %.1f MB, peak %.1f MB (growth %.1f MB, limit %.0f), 2 s after %.1f MB; VmHWM %.1f MB\n",
		mb(baseline), mb(peak.Load()), growth, *maxGrowth, mb(after), mb(srv.hwm()))
	code := 0
	if res.bad() || warm.bad() {
		fmt.Fprintln(stdout, "FAIL: an answer was not a 4xx, or a request failed")
		code = 1
	}
	if growth > *maxGrowth {
		fmt.Fprintf(stdout, "FAIL: RSS grew by %.1f MB, more than %.0f MB\n", growth, *maxGrowth)
		code = 1
	}
	if code == 0 {
		fmt.Fprintln(stdout, "PASS")
	}
	return code
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// server is idbridge serve running as a child process with its fakes.
type server struct {
	cmd      *exec.Cmd
	baseURL  string
	jiraURL  string
	cleanups []func()
}

func startServer(ctx context.Context, bin, db, pgURL string, stderr io.Writer) (s *server, err error) {
	s = &server{}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	// Atlassian's install-key server, for a flood of random kids: it knows
	// none of them.
	keys := loopbackServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	s.cleanups = append(s.cleanups, keys.Close)
	// The "Jira" site the installs name: lifecycle handlers never call it.
	jira := loopbackServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	s.cleanups = append(s.cleanups, jira.Close)
	s.jiraURL = jira.URL

	addr, err := benchenv.FreeAddr("127.0.0.1:0")
	if err != nil {
		return s, err
	}
	s.baseURL = "http://" + addr
	dir, err := os.MkdirTemp("", "idbridge-flood-")
	if err != nil {
		return s, err
	}
	s.cleanups = append(s.cleanups, func() { _ = os.RemoveAll(dir) })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := append(os.Environ(),
		"IDBRIDGE_ADDR="+addr,
		"IDBRIDGE_BASE_URL="+s.baseURL,
		"IDBRIDGE_APP_KEY=idbridge-flood",
		"IDBRIDGE_INSTALL_KEYS_URL="+keys.URL,
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS="+strings.TrimPrefix(jira.URL, "http://"),
		"IDBRIDGE_LOG_LEVEL=error",
		"IDBRIDGE_LOG_FORMAT=text",
		"IDBRIDGE_DATA_DIR="+dir,
		"IDBRIDGE_ENCRYPTION_KEYS=flood1:"+base64.StdEncoding.EncodeToString(key),
	)
	switch db {
	case "sqlite":
		env = append(env, "IDBRIDGE_DATABASE_URL=sqlite:"+filepath.Join(dir, "idbridge.db"))
	case "postgres":
		dsn, drop, err := benchenv.CreateDatabase(ctx, pgURL, "idbridge_flood")
		if err != nil {
			return s, err
		}
		s.cleanups = append(s.cleanups, func() { _ = drop() })
		env = append(env, "IDBRIDGE_DATABASE_URL="+dsn)
	}
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Env = env
	s.cmd.Stdout = io.Discard
	s.cmd.Stderr = &prefixWriter{w: stderr, prefix: "idbridge: "}
	if err := s.cmd.Start(); err != nil {
		return s, fmt.Errorf("start %s: %w", bin, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.baseURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("idbridge not ready within 30 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
		s.cmd = nil
	}
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
}

// rss and hwm read VmRSS and VmHWM of the server, in bytes.
func (s *server) rss() int64 { return s.status("VmRSS:") }
func (s *server) hwm() int64 { return s.status("VmHWM:") }

func (s *server) status(field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func loopbackServer(h http.Handler) *httptest.Server {
	s := httptest.NewUnstartedServer(h)
	if ln, err := net.Listen("tcp4", "127.0.0.1:0"); err == nil {
		_ = s.Listener.Close()
		s.Listener = ln
	}
	s.Start()
	return s
}

// prefixWriter prefixes each write (idbridge's log lines) for the operator.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := fmt.Fprintf(p.w, "%s%s", p.prefix, b)
	return len(b), err
}

// The kinds of junk, sent in turn.
var kinds = []string{"scim", "jwt", "install", "bytes", "page"}

// junk builds junk requests for a server.
type junk struct {
	base, jira string
}

// text is n random characters: mostly printable, with NULs, invalid UTF-8,
// control characters and long runs mixed in (a path or a JSON string).
func text(r *mrand.Rand, max int) string {
	special := []string{"\x00", "\xff", "\xc3", "\xed\xa0\x80", "\r\n", "\x7f", "%00", "..", "/", "é", "\\u0000"}
	var b strings.Builder
	n := r.IntN(max + 1)
	for b.Len() < n {
		if r.IntN(5) == 0 {
			b.WriteString(special[r.IntN(len(special))])
		} else {
			b.WriteByte(byte(33 + r.IntN(94)))
		}
	}
	return b.String()
}

// headerValue is text a client may put in a header (no control characters).
func headerValue(r *mrand.Rand, max int) string {
	var b strings.Builder
	for n := r.IntN(max + 1); b.Len() < n; {
		if c := byte(r.IntN(256)); c >= 0x20 && c != 0x7f {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomBytes(r *mrand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func (j *junk) request(r *mrand.Rand, kind string) (*http.Request, error) {
	var method, path, rawQuery string
	var body []byte
	header := http.Header{}
	switch kind {
	case "scim":
		// A random site ID (of any length and bytes) and a random resource.
		method = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}[r.IntN(5)]
		resource := []string{"Users", "Groups", "Users/" + text(r, 40), "Groups/" + text(r, 40), ".search", "ServiceProviderConfig", text(r, 30)}[r.IntN(7)]
		path = "/scim/v2/" + text(r, 1+r.IntN(200)) + "/" + resource
		if r.IntN(2) == 0 {
			rawQuery = "filter=" + url.QueryEscape(`userName eq "`+text(r, 30)+`"`)
		}
		header.Set("Authorization", "Bearer "+hex.EncodeToString(randomBytes(r, 32)))
		header.Set("Content-Type", "application/scim+json")
		if method != "GET" && method != "DELETE" {
			body = []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":` + strconv.Quote(text(r, 60)) + `}`)
		}
	case "jwt":
		// A context token whose issuer no site has (sometimes junk bytes),
		// signed with a random secret.
		method, path = "GET", []string{"/api/admin/site", "/api/admin/profile", "/api/admin/provisioning"}[r.IntN(3)]
		iss := "client-" + hex.EncodeToString(randomBytes(r, 8))
		if r.IntN(3) == 0 {
			iss = text(r, 60)
		}
		now := time.Now()
		claims, _ := json.Marshal(map[string]any{"iss": iss, "sub": "557058:" + hex.EncodeToString(randomBytes(r, 6)),
			"qsh": "context-qsh", "iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix()})
		input := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64(claims)
		mac := hmac.New(sha256.New, randomBytes(r, 32))
		mac.Write([]byte(input))
		header.Set("Authorization", "JWT "+input+"."+b64(mac.Sum(nil)))
	case "install":
		// What Atlassian would send, for a new clientKey and a random kid:
		// every check that needs no key passes, so each one costs a key
		// lookup (cache, failure cache, rate limit); the signature is junk.
		method, path = "POST", "/lifecycle/installed"
		clientKey := "flood-" + hex.EncodeToString(randomBytes(r, 12))
		target, _ := url.Parse(j.base + path)
		now := time.Now()
		claims, _ := json.Marshal(map[string]any{"iss": clientKey, "aud": j.base, "iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix(),
			"qsh": connect.QSH(connect.CanonicalRequest(method, target, ""))})
		head, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "kid-" + hex.EncodeToString(randomBytes(r, 10))})
		header.Set("Authorization", "JWT "+b64(head)+"."+b64(claims)+"."+b64(randomBytes(r, 256)))
		header.Set("Content-Type", "application/json")
		body, _ = json.Marshal(map[string]string{"key": "idbridge-flood", "clientKey": clientKey, "sharedSecret": hex.EncodeToString(randomBytes(r, 32)),
			"baseUrl": j.jira, "productType": "jira", "description": "flood site " + hex.EncodeToString(randomBytes(r, 8)), "eventType": "installed"})
	case "bytes":
		// Random bytes wherever a client may put them.
		method = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}[r.IntN(6)]
		path = []string{"/lifecycle/", "/api/admin/", "/scim/v2/", "/admin/", "/admin", "/assets/"}[r.IntN(6)] + text(r, 100)
		rawQuery = url.QueryEscape(text(r, 60)) + "=" + url.QueryEscape(text(r, 60))
		header.Set("Authorization", headerValue(r, 200))
		header.Set("Content-Type", headerValue(r, 40))
		header.Set("X-Request-ID", headerValue(r, 40))
		body = randomBytes(r, r.IntN(2000))
	case "page":
		// Junk tokens on the admin page and the HS256 lifecycle hooks.
		method, path = "GET", "/admin"
		token := b64(randomBytes(r, 20)) + "." + b64([]byte(`{"iss":`+strconv.Quote(text(r, 40))+`}`)) + "." + b64(randomBytes(r, 32))
		if r.IntN(2) == 0 {
			method, path = "POST", []string{"/lifecycle/enabled", "/lifecycle/disabled", "/lifecycle/uninstalled"}[r.IntN(3)]
			header.Set("Authorization", "JWT "+token)
			header.Set("Content-Type", "application/json")
			body = []byte(`{"clientKey":` + strconv.Quote(text(r, 40)) + `,"baseUrl":` + strconv.Quote(j.jira) + `}`)
		} else {
			rawQuery = "jwt=" + url.QueryEscape(token)
		}
	}
	u, err := url.Parse(j.base)
	if err != nil {
		return nil, err
	}
	u.Path, u.RawQuery = path, rawQuery
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = header
	return req, nil
}

// results counts answers by kind and status.
type results struct {
	mu       sync.Mutex
	byKind   map[string]map[int]int
	errs     map[string]int
	firstBad string
}

func (r *results) add(kind string, status int, err error, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs[err.Error()]++
		if r.firstBad == "" {
			r.firstBad = what + ": " + err.Error()
		}
		return
	}
	if r.byKind[kind] == nil {
		r.byKind[kind] = map[int]int{}
	}
	r.byKind[kind][status]++
	if (status < 400 || status > 499) && r.firstBad == "" {
		r.firstBad = fmt.Sprintf("%s: %d", what, status)
	}
}

func (r *results) bad() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstBad != ""
}

func countsText(m map[int]int) string {
	var codes []int
	for c := range m {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", c, m[c]))
	}
	return strings.Join(parts, " ")
}

func (r *results) kindSummary(kind string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return countsText(r.byKind[kind])
}

func (r *results) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := map[int]int{}
	for _, m := range r.byKind {
		for c, n := range m {
			all[c] += n
		}
	}
	s := countsText(all)
	if len(r.errs) > 0 {
		s += fmt.Sprintf("; transport errors: %v", r.errs)
	}
	if r.firstBad != "" {
		s += "; first bad: " + r.firstBad
	}
	return s
}

// send sends n junk requests over conc connections and counts the answers.
func send(ctx context.Context, client *http.Client, gen *junk, n, conc int, seed uint64, _ *server) *results {
	res := &results{byKind: map[string]map[int]int{}, errs: map[string]int{}}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			r := mrand.New(mrand.NewPCG(seed, uint64(w)))
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				kind := kinds[i%int64(len(kinds))]
				req, err := gen.request(r, kind)
				if err != nil {
					res.add(kind, 0, err, kind+" (building the request)")
					continue
				}
				req = req.WithContext(ctx)
				what := kind + " " + req.Method + " " + req.URL.RequestURI()
				resp, err := client.Do(req)
				if err != nil {
					res.add(kind, 0, err, what)
					continue
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				res.add(kind, resp.StatusCode, nil, what)
			}
		})
	}
	wg.Wait()
	return res
}
