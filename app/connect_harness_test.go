package app_test

// The end-to-end harness for the Connect layer: the whole App (real config,
// real store on SQLite and PostgreSQL, real key ring, real HTTP engine),
// driven through App.Handler() with JWTs signed here, and Atlassian only at
// the far edge: app/fakeatlassian's install-key server (serving
// apptest.RSAKeys' key under connectKid), a Jira site and a Confluence site
// (under /wiki). Each site accepts the app's JWT only when it verifies with
// the current shared secret of an installation made on it and its qsh is
// exactly the request's; a refused token or a call to a route the site does
// not have fails the test when it ends.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idbridge/app"
	"idbridge/app/apptest"
	"idbridge/app/fakeatlassian"
	"idbridge/app/store/storetest"
	"idbridge/config"
	"idbridge/models"
)

const (
	connectBaseURL = "https://idbridge.test"
	connectAppKey  = "idbridge-e2e"
	// connectKid names the key the fake's install-key server serves for
	// Atlassian's signing key (apptest.RSAKeys).
	connectKid = "k1"
	// connectFakeTimeout is how long the test transport waits for an
	// answer's headers: the fake answers at once unless told to hang.
	connectFakeTimeout = time.Second
)

// site is one Jira or Confluence site as the tests know it.
type connectSite struct {
	clientKey      string
	secret         string
	fake           *fakeatlassian.Site
	baseURL        string
	product        string
	installationID string
	cloudID        string
}

// harness is one App on one backend, with its fakes and clock.
type connectHarness struct {
	t       testing.TB
	backend storetest.Backend
	clock   *storetest.Clock
	env     map[string]string
	cfg     config.Config
	app     *app.App
	atl     *fakeatlassian.Fake
	jira    *fakeatlassian.Site
	wiki    *fakeatlassian.Site
	logs    *apptest.LockedBuffer
	tr      *http.Transport
	tmpl    []byte

	mu      sync.Mutex
	secrets []string // every token and shared secret used, never to be logged
}

// newHarness opens an App on a fresh database of backend b. extraEnv
// entries override the defaults.
func newConnectHarness(t testing.TB, b storetest.Backend, extraEnv ...string) *connectHarness {
	t.Helper()
	h := &connectHarness{t: t, backend: b, logs: &apptest.LockedBuffer{}}
	// Registered first, so it runs last: after every App has stopped.
	t.Cleanup(h.checkLogs)
	h.clock = storetest.NewClock(time.Now().UTC().Truncate(time.Second))
	atl, _ := apptest.RSAKeys(t)
	h.atl = fakeatlassian.New(fakeatlassian.Options{Now: h.clock.Now, InstallKey: atl, InstallKeyID: connectKid})
	h.jira = h.atl.NewSite(fakeatlassian.SiteOptions{Product: "jira"})
	h.wiki = h.atl.NewSite(fakeatlassian.SiteOptions{Product: "confluence"})
	// Registered before any App opens, so it runs after they closed.
	t.Cleanup(h.closeFake)
	keysURL, err := h.atl.InstallKeysURL()
	if err != nil {
		t.Fatal(err)
	}
	h.tr = &http.Transport{ResponseHeaderTimeout: connectFakeTimeout, DisableKeepAlives: true}
	t.Cleanup(h.tr.CloseIdleConnections)
	tmpl, err := os.ReadFile("../atlassian-connect.json")
	if err != nil {
		t.Fatal(err)
	}
	h.tmpl = tmpl
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	h.env = map[string]string{
		"IDBRIDGE_BASE_URL":              connectBaseURL,
		"IDBRIDGE_APP_KEY":               connectAppKey,
		"IDBRIDGE_INSTALL_KEYS_URL":      keysURL,
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net," + h.jira.Host() + "," + h.wiki.Host(),
		"IDBRIDGE_ADDR":                  "127.0.0.1:0",
		"IDBRIDGE_DATA_DIR":              t.TempDir(),
		"IDBRIDGE_DATABASE_URL":          b.DatabaseURL(t),
		"IDBRIDGE_ENCRYPTION_KEYS":       "e2e1:" + base64.StdEncoding.EncodeToString(key),
		"IDBRIDGE_LOG_LEVEL":             "debug",
	}
	for i := 0; i+1 < len(extraEnv); i += 2 {
		h.env[extraEnv[i]] = extraEnv[i+1]
	}
	h.cfg, err = config.Load(func(k string) string { return h.env[k] }, os.ReadFile)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	h.app = h.openApp()
	return h
}

// openApp opens another App with the harness's configuration (and so on
// its database), closed when the test ends.
func (h *connectHarness) openApp() *app.App {
	h.t.Helper()
	a, err := app.Open(context.Background(), h.cfg, app.Options{
		Log:                slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:                h.clock.Now,
		DescriptorTemplate: h.tmpl,
		HTTPTransport:      h.tr,
	})
	if err != nil {
		h.t.Fatalf("app.Open: %v", err)
	}
	h.t.Cleanup(func() {
		if err := a.Close(); err != nil {
			h.t.Errorf("close app: %v", err)
		}
	})
	return a
}

// closeFake fails the test if a site refused one of the app's JWTs or was
// called on a route it does not have, then stops the fake.
func (h *connectHarness) closeFake() {
	for _, site := range []*fakeatlassian.Site{h.jira, h.wiki} {
		for _, refused := range site.RefusedAppJWTs() {
			h.t.Errorf("fake %s refused the app's JWT: %s", site.Product, refused)
		}
		if n := site.RequestCount("unknown", -2); n != 0 {
			h.t.Errorf("fake %s: %d calls to routes it does not have (%v)", site.Product, n, site.Requests())
		}
	}
	h.atl.Close()
}

// checkLogs fails the test if a token or shared secret reached the logs.
func (h *connectHarness) checkLogs() {
	logs := h.logs.String()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.secrets {
		if strings.Contains(logs, s) {
			h.t.Errorf("the logs contain a token or secret: %.40s…", s)
		}
	}
}

// remember records a token or secret that must never be logged; for a
// token, its signature is what must never appear.
func (h *connectHarness) remember(s string) {
	if i := strings.LastIndexByte(s, '.'); i >= 0 && i+1 < len(s) {
		s = s[i+1:]
	}
	if len(s) < 16 {
		return
	}
	h.mu.Lock()
	h.secrets = append(h.secrets, s)
	h.mu.Unlock()
}

var connectSiteSeq atomic.Int64

// newSite makes a tenant on the fake site f (not installed yet): its own
// client key and secret, f's base URL.
func (h *connectHarness) newSite(f *fakeatlassian.Site) *connectSite {
	h.t.Helper()
	n := connectSiteSeq.Add(1)
	s := &connectSite{
		clientKey:      fmt.Sprintf("client-%d-%s", n, apptest.RandomHex(h.t, 4)),
		fake:           f,
		baseURL:        f.BaseURL(),
		product:        f.Product,
		installationID: "ari:cloud:ecosystem::installation/" + apptest.RandomHex(h.t, 8),
		cloudID:        apptest.RandomHex(h.t, 8),
	}
	h.newSecret(s)
	return s
}

// newSecret gives s a fresh shared secret (not yet sent).
func (h *connectHarness) newSecret(s *connectSite) {
	s.secret = apptest.RandomHex(h.t, 24)
	h.remember(s.secret)
}

// lifecycleBody is what Atlassian posts to every lifecycle URL.
func connectLifecycleBody(s *connectSite, event string) []byte {
	body := map[string]any{
		"key":            connectAppKey,
		"clientKey":      s.clientKey,
		"baseUrl":        s.baseURL,
		"displayUrl":     s.baseURL,
		"productType":    s.product,
		"description":    "test site",
		"eventType":      event,
		"installationId": s.installationID,
		"cloudId":        s.cloudID,
	}
	if event == "installed" {
		body["sharedSecret"] = s.secret
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return b
}

// installClaims are the claims of a valid signed install or uninstall.
func (h *connectHarness) installClaims(clientKey, method, target string) jwt.MapClaims {
	now := h.clock.Now()
	return jwt.MapClaims{
		"iss": clientKey,
		"sub": "557058:atlassian-user",
		"aud": connectBaseURL,
		"qsh": apptest.QSHOf(method, target),
		"iat": now.Unix(),
		"exp": now.Add(3 * time.Minute).Unix(),
	}
}

// siteClaims are the claims of a valid URL-bound token of s.
func (h *connectHarness) siteClaims(s *connectSite, method, target string) jwt.MapClaims {
	now := h.clock.Now()
	return jwt.MapClaims{
		"iss": s.clientKey,
		"sub": "557058:user",
		"qsh": apptest.QSHOf(method, target),
		"iat": now.Unix(),
		"exp": now.Add(3 * time.Minute).Unix(),
	}
}

// contextClaims are the claims of a valid context token of s for sub.
func (h *connectHarness) contextClaims(s *connectSite, sub string) jwt.MapClaims {
	now := h.clock.Now()
	return jwt.MapClaims{
		"iss":     s.clientKey,
		"sub":     sub,
		"qsh":     "context-qsh",
		"iat":     now.Unix(),
		"exp":     now.Add(3 * time.Minute).Unix(),
		"context": map[string]any{"license": map[string]any{"active": true}},
	}
}

// signRS256 signs claims with key; kid "" leaves the header without one.
func (h *connectHarness) signRS256(claims jwt.MapClaims, kid string, key *rsa.PrivateKey) string {
	h.t.Helper()
	s := apptest.SignJWT(h.t, jwt.SigningMethodRS256, claims, kid, key)
	h.remember(s)
	return s
}

// signHMAC signs claims with secret under method (HS256 unless a test
// says otherwise); kid, when not empty, goes into the header.
func (h *connectHarness) signHMAC(claims jwt.MapClaims, method jwt.SigningMethod, secret []byte, kid string) string {
	h.t.Helper()
	s := apptest.SignJWT(h.t, method, claims, kid, secret)
	h.remember(s)
	return s
}

// signNone is an unsigned token (alg "none").
func (h *connectHarness) signNone(claims jwt.MapClaims, kid string) string {
	h.t.Helper()
	return apptest.SignJWT(h.t, jwt.SigningMethodNone, claims, kid, jwt.UnsafeAllowNoneSignatureType)
}

// request builds a request to target (a path with optional query) on our
// base URL's host, so the engine sees the path the qsh was computed for.
// A token goes into the Authorization header.
func connectRequest(method, target string, body []byte, token string) *http.Request {
	var r *http.Request
	if body != nil {
		r = httptest.NewRequest(method, connectBaseURL+target, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, connectBaseURL+target, nil)
	}
	if token != "" {
		r.Header.Set("Authorization", "JWT "+token)
	}
	return r
}

// serve runs r through a's engine (the harness's App when a is nil).
func (h *connectHarness) serve(a *app.App, r *http.Request) *httptest.ResponseRecorder {
	if a == nil {
		a = h.app
	}
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	return w
}

// install posts a validly signed install of s (with its current secret)
// and, when it succeeds, records the installation (and its new secret) on
// the fake site, as a site does once the app accepted its install.
func (h *connectHarness) install(a *app.App, s *connectSite) *httptest.ResponseRecorder {
	h.t.Helper()
	const target = "/lifecycle/installed"
	atl, _ := apptest.RSAKeys(h.t)
	token := h.signRS256(h.installClaims(s.clientKey, http.MethodPost, target), connectKid, atl)
	w := h.serve(a, connectRequest(http.MethodPost, target, connectLifecycleBody(s, "installed"), token))
	if w.Code == http.StatusNoContent {
		s.fake.InstallAppFor(connectAppKey, s.clientKey, s.secret)
	}
	return w
}

// mustInstall installs s or fails the test.
func (h *connectHarness) mustInstall(s *connectSite) {
	h.t.Helper()
	if w := h.install(nil, s); w.Code != http.StatusNoContent {
		h.t.Fatalf("install %s: %d %s", s.clientKey, w.Code, w.Body)
	}
}

// reinstall installs s again with a new secret and returns the old one.
func (h *connectHarness) reinstall(a *app.App, s *connectSite) (oldSecret string) {
	h.t.Helper()
	oldSecret = s.secret
	h.newSecret(s)
	if w := h.install(a, s); w.Code != http.StatusNoContent {
		h.t.Fatalf("reinstall %s: %d %s", s.clientKey, w.Code, w.Body)
	}
	return oldSecret
}

// uninstall posts a validly signed uninstall of s.
func (h *connectHarness) uninstall(s *connectSite) *httptest.ResponseRecorder {
	h.t.Helper()
	const target = "/lifecycle/uninstalled"
	atl, _ := apptest.RSAKeys(h.t)
	token := h.signRS256(h.installClaims(s.clientKey, http.MethodPost, target), connectKid, atl)
	return h.serve(nil, connectRequest(http.MethodPost, target, connectLifecycleBody(s, "uninstalled"), token))
}

// toggle posts enabled or disabled for s, signed HS256 with secret.
func (h *connectHarness) toggle(s *connectSite, event, secret string) *httptest.ResponseRecorder {
	h.t.Helper()
	target := "/lifecycle/" + event
	token := h.signHMAC(h.siteClaims(s, http.MethodPost, target), jwt.SigningMethodHS256, []byte(secret), "")
	return h.serve(nil, connectRequest(http.MethodPost, target, connectLifecycleBody(s, event), token))
}

// adminSite calls GET /api/admin/site on a as sub, with a context token
// signed with secret.
func (h *connectHarness) adminSite(a *app.App, s *connectSite, sub, secret string) *httptest.ResponseRecorder {
	h.t.Helper()
	token := h.signHMAC(h.contextClaims(s, sub), jwt.SigningMethodHS256, []byte(secret), "")
	return h.serve(a, connectRequest(http.MethodGet, "/api/admin/site", nil, token))
}

// storedSite reads s from the database.
func (h *connectHarness) storedSite(s *connectSite) (*models.Site, error) {
	return h.app.Store().View(context.Background()).FindSiteByClientKey(s.clientKey)
}

// mustState fails unless s is stored in state want.
func (h *connectHarness) mustState(s *connectSite, want models.SiteState) *models.Site {
	h.t.Helper()
	got, err := h.storedSite(s)
	if err != nil {
		h.t.Fatalf("find %s: %v", s.clientKey, err)
	}
	if got.State != want {
		h.t.Fatalf("%s is %q, want %q", s.clientKey, got.State, want)
	}
	return got
}

// snapshot is every row of the sites table, raw (sealed secrets as hex),
// to show that a refused request stored or changed nothing.
func (h *connectHarness) snapshot() []map[string]string {
	h.t.Helper()
	rows, err := h.app.Store().SQLDB().QueryContext(context.Background(), `SELECT * FROM sites ORDER BY id`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		h.t.Fatal(err)
	}
	var out []map[string]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			h.t.Fatal(err)
		}
		row := map[string]string{}
		for i, c := range cols {
			switch v := vals[i].(type) {
			case nil:
				row[c] = "NULL"
			case []byte:
				row[c] = hex.EncodeToString(v)
			case time.Time:
				row[c] = v.UTC().Format(time.RFC3339Nano)
			default:
				row[c] = fmt.Sprint(v)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// jwtFailures reads idbridge_jwt_failures_total by reason from /metrics.
func (h *connectHarness) jwtFailures() map[string]float64 {
	h.t.Helper()
	w := h.serve(nil, connectRequest(http.MethodGet, "/metrics", nil, ""))
	if w.Code != http.StatusOK {
		h.t.Fatalf("/metrics: %d", w.Code)
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(w.Body.String(), "\n") {
		rest, ok := strings.CutPrefix(line, `idbridge_jwt_failures_total{reason="`)
		if !ok {
			continue
		}
		reason, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			h.t.Fatalf("metrics line %q", line)
		}
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			h.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[reason] = n
	}
	return out
}

// errorOf returns the "error" of a JSON error answer, failing the test if
// the answer is not one.
func connectErrorOf(tb testing.TB, w *httptest.ResponseRecorder) string {
	tb.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Fatalf("status %d, Content-Type %q, want JSON: %s", w.Code, ct, w.Body)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
		tb.Fatalf("status %d, body %s is not {\"error\": …}: %v", w.Code, w.Body, err)
	}
	return body.Error
}

// wantStatus fails unless w has the status.
func connectWantStatus(tb testing.TB, w *httptest.ResponseRecorder, status int, what string) {
	tb.Helper()
	if w.Code != status {
		tb.Fatalf("%s: status %d, want %d; body %s", what, w.Code, status, w.Body)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func connectWaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, timeout)
		}
		<-tick.C
	}
}
