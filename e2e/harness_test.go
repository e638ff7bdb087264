// Package e2e_test drives the whole idbridge App from a real browser: the
// admin page in headless Chromium, framed by a test stand-in for Jira, on
// SQLite and on PostgreSQL.
//
// What is real: the App (config.Load, app.Open, the store, the key ring,
// the HTTP engine with its CSP), a signed install, the URL-bound and context
// JWTs (HS256 with the site's shared secret), the browser. What is fake is
// at the edges only: Atlassian's install-key server, and one "Jira" that
// serves the REST API idbridge calls and the host page that frames the
// admin page, as Jira's own page would.
package e2e_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idbridge/app"
	"idbridge/app/apptest"
	"idbridge/app/fakeatlassian"
	"idbridge/app/store/storetest"
	"idbridge/config"
)

const (
	appKey  = "idbridge-e2e"
	kid     = "e2e-key-1"
	adminID = "557058:e2e-admin"
	// svcEmail and the tokens are the service account the fake Jira knows.
	svcEmail = "svc-idbridge@example.com"
	// The Marketplace vendor account and the licence contact it reports.
	vendorID          = "1212"
	vendorUser        = "vendor@example.com"
	marketplaceName   = "Grace Hopper"
	marketplaceEmail  = "grace@example.com"
	marketplaceBuyer  = "Ada Byron"
	marketplaceCompay = "Analytical Engines Ltd"
)

// jiraMode is how the fake Jira answers the service account's calls.
type jiraMode int

const (
	jiraNormal jiraMode = iota
	jiraHang            // answer nothing until the caller gives up
)

// fakeJira is a Jira Cloud site: the REST API idbridge calls (the admin
// check with the app's JWT; /myself and /mypermissions as the service
// account with Basic auth) and the host page that frames idbridge's admin
// page, with the AP bridge the page talks to (fakeatlassian's HostPage,
// which the demo's simulated site serves too).
type fakeJira struct {
	*httptest.Server
	t         testing.TB
	clientKey string
	cloudID   string
	secret    string // the site's shared secret, sent at install
	vendorKey string // the Marketplace vendor API token
	goodToken string // the one API token it accepts for svcEmail
	appURL    string // idbridge's base URL, for the iframe
	release   chan struct{}

	mu       sync.Mutex
	mode     jiraMode
	problems []string
	calls    []string // "METHOD path" of the service account's calls
}

func newFakeJira(t testing.TB) *fakeJira {
	t.Helper()
	f := &fakeJira{
		t:         t,
		clientKey: "e2e-client-" + apptest.RandomHex(t, 4),
		cloudID:   "e2e-cloud-" + apptest.RandomHex(t, 4),
		secret:    apptest.RandomHex(t, 24),
		vendorKey: "vendor-token-" + apptest.RandomHex(t, 8),
		goodToken: "ATATT3x-good-" + apptest.RandomHex(t, 12),
		release:   make(chan struct{}),
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.release)
		f.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.problems {
			t.Errorf("fake Jira: %s", p)
		}
	})
	return f
}

func (f *fakeJira) host() string { return strings.TrimPrefix(f.URL, "http://") }

func (f *fakeJira) setMode(m jiraMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = m
}

func (f *fakeJira) problem(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

func (f *fakeJira) serviceCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeJira) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/plugins/servlet/ac/"+appKey+"/admin":
		f.serveHostPage(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/rest/api/3/permissions/check":
		f.serveAdminCheck(w, r)
	case r.Method == http.MethodGet && (r.URL.Path == "/rest/api/3/myself" || r.URL.Path == "/rest/api/3/mypermissions"):
		f.serveAsServiceAccount(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/rest/2/vendors/"+vendorID+"/reporting/licenses":
		f.serveLicenses(w, r)
	default:
		f.problem("unexpected call %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}

// serveAdminCheck answers Jira's permission check, after verifying the
// app's JWT as Jira would: HS256 with the shared secret, iss the app key,
// a qsh of exactly this request.
func (f *fakeJira) serveAdminCheck(w http.ResponseWriter, r *http.Request) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(f.secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuer(appKey))
	if scheme != "JWT" || err != nil || claims["qsh"] != apptest.QSH(r.Method, r.URL.EscapedPath(), r.URL.RawQuery) {
		f.problem("admin check with a bad app JWT: %v", err)
		http.Error(w, `{"message":"bad token"}`, http.StatusUnauthorized)
		return
	}
	var body struct {
		GlobalPermissions []string `json:"globalPermissions"`
		AccountID         string   `json:"accountId"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !slices.Equal(body.GlobalPermissions, []string{"ADMINISTER"}) {
		f.problem("permission check body %+v: %v", body, err)
		http.Error(w, `{}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if body.AccountID == adminID {
		_, _ = io.WriteString(w, `{"globalPermissions":["ADMINISTER"],"projectPermissions":[]}`)
		return
	}
	_, _ = io.WriteString(w, `{"globalPermissions":[],"projectPermissions":[]}`)
}

// serveAsServiceAccount is /myself and /mypermissions with Basic auth: the
// good token works (and the account administers Jira), anything else is
// 401, as Atlassian answers a revoked or mistyped token.
func (f *fakeJira) serveAsServiceAccount(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	mode := f.mode
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if mode == jiraHang {
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	}
	email, token, ok := r.BasicAuth()
	w.Header().Set("Content-Type", "application/json")
	if !ok || email != svcEmail || token != f.goodToken {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errorMessages":["Client must be authenticated to access this resource."],"errors":{}}`)
		return
	}
	if r.URL.Path == "/rest/api/3/myself" {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"accountId": "712020:e2e-service", "accountType": "atlassian", "active": true,
			"emailAddress": svcEmail, "displayName": "idbridge service account",
		})
		return
	}
	if got := r.URL.Query().Get("permissions"); !strings.Contains(got, "ADMINISTER") {
		f.problem("mypermissions without ADMINISTER: %q", got)
	}
	_, _ = io.WriteString(w, `{"permissions":{"ADMINISTER":{"id":"0","key":"ADMINISTER","name":"Administer Jira","type":"GLOBAL","havePermission":true}}}`)
}

// serveLicenses plays the Marketplace vendor reporting API (v2): one page
// with the licence of the site, found by its cloud ID.
func (f *fakeJira) serveLicenses(w http.ResponseWriter, r *http.Request) {
	user, token, ok := r.BasicAuth()
	if !ok || user != vendorUser || token != f.vendorKey {
		f.problem("licences without the vendor's credentials")
		http.Error(w, `{"message":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	licences := []map[string]any{}
	if text := r.URL.Query().Get("text"); text == "" || text == f.cloudID {
		licences = append(licences, map[string]any{
			"addonLicenseId": "SEN-1000001", "licenseId": "SEN-1000001", "appEntitlementNumber": "E-1000001",
			"cloudId": f.cloudID, "cloudSiteHostname": f.host(), "addonKey": appKey, "hosting": "Cloud",
			"licenseType": "COMMERCIAL", "status": "active", "tier": "Per Unit Pricing (10 users)", "lastUpdated": "2026-01-01",
			"contactDetails": map[string]any{
				"company": marketplaceCompay, "country": "United Kingdom", "region": "Europe",
				"technicalContact": map[string]any{"email": marketplaceEmail, "name": marketplaceName},
				"billingContact":   map[string]any{"email": "billing@example.com", "name": marketplaceBuyer},
			},
		})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"_links": map[string]any{}, "licenses": licences})
}

// contextToken is a context JWT as AP.context.getToken hands it out: HS256
// with the shared secret, qsh "context-qsh", sub the admin.
func (f *fakeJira) contextToken(sub string) string {
	now := time.Now()
	return apptest.SignJWT(f.t, jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": f.clientKey, "sub": sub, "qsh": "context-qsh",
		"iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
		"context": map[string]any{},
	}, "", []byte(f.secret))
}

// adminURL is the iframe URL Jira builds for the admin page: the module's
// URL with Connect's context parameters and a URL-bound JWT.
func (f *fakeJira) adminURL() string {
	q := url.Values{
		"xdm_e": {f.URL}, "xdm_c": {"channel-" + appKey + "__admin"}, "cp": {""},
		"xdm_deprecated_addon_key_do_not_use": {appKey}, "lic": {"none"}, "cv": {"1001.0.0-SNAPSHOT"},
		"tz": {"Europe/Berlin"}, "loc": {"en-GB"},
	}
	target := "/admin?" + q.Encode()
	now := time.Now()
	tok := apptest.SignJWT(f.t, jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": f.clientKey, "sub": adminID, "qsh": apptest.QSHOf(http.MethodGet, target),
		"iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix(),
	}, "", []byte(f.secret))
	return f.appURL + target + "&jwt=" + url.QueryEscape(tok)
}

func (f *fakeJira) serveHostPage(w http.ResponseWriter, r *http.Request) {
	u, _ := url.Parse(f.appURL)
	err := fakeatlassian.WriteHostPage(w, fakeatlassian.HostPage{
		Title:     "idbridge · Apps · Jira (test host)",
		Heading:   "Jira (test host) › Apps › idbridge",
		Src:       f.adminURL(),
		Token:     f.contextToken(adminID),
		AppOrigin: u.Scheme + "://" + u.Host,
	})
	if err != nil {
		f.problem("host page: %v", err)
	}
}

// stack is one idbridge with its fakes, installed on the fake Jira.
type stack struct {
	t      *testing.T
	app    *app.App
	appURL string
	jira   *fakeJira
	logs   *apptest.LockedBuffer
}

// serviceTimeout bounds how long idbridge waits for the fake Jira's
// headers, so a Jira that hangs fails fast enough for a test.
const serviceTimeout = 2 * time.Second

// newStack boots the App on backend b behind its own listener, with the
// fake Jira trusted (so the CSP lets it frame the admin page), and installs
// it with a signed install.
func newStack(t *testing.T, b storetest.Backend) *stack {
	t.Helper()
	logs := &apptest.LockedBuffer{}
	installKey, _ := apptest.RSAKeys(t)
	atl := fakeatlassian.New(fakeatlassian.Options{InstallKey: installKey, InstallKeyID: kid})
	t.Cleanup(atl.Close)
	keysURL, err := atl.InstallKeysURL()
	if err != nil {
		t.Fatal(err)
	}
	jira := newFakeJira(t)

	// The listener first: its address is the base URL the App is
	// configured with.
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	appURL := "http://" + srv.Listener.Addr().String()
	jira.appURL = appURL

	encKey := make([]byte, 32)
	if _, err := rand.Read(encKey); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"IDBRIDGE_ADDR":                  "127.0.0.1:0",
		"IDBRIDGE_BASE_URL":              appURL,
		"IDBRIDGE_APP_KEY":               appKey,
		"IDBRIDGE_DATA_DIR":              t.TempDir(),
		"IDBRIDGE_DATABASE_URL":          b.DatabaseURL(t),
		"IDBRIDGE_ENCRYPTION_KEYS":       "e2e1:" + base64.StdEncoding.EncodeToString(encKey),
		"IDBRIDGE_INSTALL_KEYS_URL":      keysURL,
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net," + jira.host(),
		"IDBRIDGE_ATLASSIAN_API_URL":     jira.URL,
		"IDBRIDGE_ATLASSIAN_AUTH_URL":    jira.URL,
		"IDBRIDGE_MARKETPLACE_URL":       jira.URL,
		"IDBRIDGE_MARKETPLACE_VENDOR_ID": vendorID,
		"IDBRIDGE_MARKETPLACE_USER":      vendorUser,
		"IDBRIDGE_MARKETPLACE_TOKEN":     jira.vendorKey,
		"IDBRIDGE_LOG_LEVEL":             "debug",
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	tmpl, err := os.ReadFile("../atlassian-connect.json")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, app.Options{
		Log:                newLogger(logs),
		DescriptorTemplate: tmpl,
		HTTPTransport:      &http.Transport{ResponseHeaderTimeout: serviceTimeout, DisableKeepAlives: true},
	})
	if err != nil {
		t.Fatalf("app.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("close app: %v", err)
		}
	})
	srv.Config.Handler = a.Handler()
	srv.Start()

	s := &stack{t: t, app: a, appURL: appURL, jira: jira, logs: logs}
	t.Cleanup(s.checkLogs)
	s.install(installKey)
	return s
}

// install posts Atlassian's signed install (RS256, kid, aud our base URL).
func (s *stack) install(key *rsa.PrivateKey) {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"key": appKey, "clientKey": s.jira.clientKey, "sharedSecret": s.jira.secret,
		"baseUrl": s.jira.URL, "displayUrl": s.jira.URL, "productType": "jira",
		"description": "e2e Jira", "eventType": "installed",
		"cloudId": s.jira.cloudID,
	})
	now := time.Now()
	signed := apptest.SignJWT(s.t, jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": s.jira.clientKey, "sub": "557058:installer", "aud": s.appURL,
		"qsh": apptest.QSHOf(http.MethodPost, "/lifecycle/installed"),
		"iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix(),
	}, kid, key)
	req, _ := http.NewRequest(http.MethodPost, s.appURL+"/lifecycle/installed", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "JWT "+signed)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(res.Body)
		s.t.Fatalf("signed install: %d %s", res.StatusCode, msg)
	}
}

// api calls the admin API directly, as the page would, with a fresh
// context token; it decodes a 2xx answer into out.
func (s *stack) api(method, path string, body, out any) (int, string) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, s.appURL+"/api/admin"+path, r)
	req.Header.Set("Authorization", "JWT "+s.jira.contextToken(adminID))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return res.StatusCode, string(data)
}

// checkLogs fails the test if a secret reached the App's logs.
func (s *stack) checkLogs() {
	logs := s.logs.String()
	for _, secret := range []string{s.jira.secret, s.jira.goodToken, s.jira.vendorKey} {
		if strings.Contains(logs, secret) {
			s.t.Errorf("the App's logs contain a secret: %.12s…", secret)
		}
	}
}
