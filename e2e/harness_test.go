// Package e2e_test drives the whole idbridge App from a real browser: the
// admin page in headless Chromium, framed by a test stand-in for Jira, on
// SQLite and on PostgreSQL.
//
// What is real: the App (config.Load, app.Open, the store, the key ring,
// the HTTP engine with its CSP), a signed install, the URL-bound and context
// JWTs (HS256 with the site's shared secret), the browser. What is fake is
// at the edges only, and it is the shared stateful fake
// (app/fakeatlassian): Atlassian's install-key server, one Jira site that
// installs the App from its descriptor, serves the REST API idbridge calls
// and the page that frames the admin page, as Jira's own page would, and
// the Marketplace vendor reporting API.
package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

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
	// adminModule is the descriptor's admin page module.
	adminModule = "idbridge-admin"
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

// stack is one idbridge with its fakes, installed on the fake Jira.
type stack struct {
	t      *testing.T
	app    *app.App
	appURL string
	jira   *fakeatlassian.Site
	market *fakeatlassian.Marketplace
	logs   *apptest.LockedBuffer

	clientKey string // the install's client key
	secret    string // the shared secret the install sent
	goodToken string // the one API token the site accepts for svcEmail
	vendorKey string // the Marketplace vendor API token
}

// serviceTimeout bounds how long idbridge waits for the fake Jira's
// headers, so a Jira that hangs fails fast enough for a test.
const serviceTimeout = 2 * time.Second

// jiraRoutes are the only routes of the site idbridge may call in these
// tests: the admin check with the app's JWT, and Test connection as the
// service account. Any other call fails the test.
var jiraRoutes = []string{
	"POST /rest/api/3/permissions/check",
	"GET /rest/api/3/myself",
	"GET /rest/api/3/mypermissions",
}

// newStack boots the App on backend b behind its own listener, with the
// fake Jira trusted (so the CSP lets it frame the admin page), and lets the
// site install it, as Jira does: the descriptor read from the App, a
// signed install.
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
	jira := atl.NewSite(fakeatlassian.SiteOptions{})
	s := &stack{
		t: t, jira: jira, logs: logs,
		goodToken: "ATATT3x-good-" + apptest.RandomHex(t, 12),
		vendorKey: "vendor-token-" + apptest.RandomHex(t, 8),
	}
	jira.AddServiceAccount(fakeatlassian.ServiceAccount{Email: svcEmail, APIToken: s.goodToken, Admin: true})
	s.market = fakeatlassian.NewMarketplace(vendorID, vendorUser, s.vendorKey, map[string]any{
		"addonLicenseId": "SEN-1000001", "licenseId": "SEN-1000001", "appEntitlementNumber": "E-1000001",
		"cloudId": jira.CloudID, "cloudSiteHostname": jira.Host(), "addonKey": appKey, "hosting": "Cloud",
		"licenseType": "COMMERCIAL", "status": "active", "tier": "Per Unit Pricing (10 users)", "lastUpdated": "2026-01-01",
		"contactDetails": map[string]any{
			"company": marketplaceCompay, "country": "United Kingdom", "region": "Europe",
			"technicalContact": map[string]any{"email": marketplaceEmail, "name": marketplaceName},
			"billingContact":   map[string]any{"email": "billing@example.com", "name": marketplaceBuyer},
		},
	})
	t.Cleanup(s.market.Close)

	// The listener first: its address is the base URL the App is
	// configured with.
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	s.appURL = "http://" + srv.Listener.Addr().String()

	encKey := make([]byte, 32)
	if _, err := rand.Read(encKey); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"IDBRIDGE_ADDR":                  "127.0.0.1:0",
		"IDBRIDGE_BASE_URL":              s.appURL,
		"IDBRIDGE_APP_KEY":               appKey,
		"IDBRIDGE_DATA_DIR":              t.TempDir(),
		"IDBRIDGE_DATABASE_URL":          b.DatabaseURL(t),
		"IDBRIDGE_ENCRYPTION_KEYS":       "e2e1:" + base64.StdEncoding.EncodeToString(encKey),
		"IDBRIDGE_INSTALL_KEYS_URL":      keysURL,
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net," + jira.Host(),
		"IDBRIDGE_ATLASSIAN_API_URL":     atl.APIURL(),
		"IDBRIDGE_ATLASSIAN_AUTH_URL":    atl.APIURL(),
		"IDBRIDGE_MARKETPLACE_URL":       s.market.URL(),
		"IDBRIDGE_MARKETPLACE_VENDOR_ID": vendorID,
		"IDBRIDGE_MARKETPLACE_USER":      vendorUser,
		"IDBRIDGE_MARKETPLACE_TOKEN":     s.vendorKey,
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
	s.app = a

	t.Cleanup(s.checkLogs)
	t.Cleanup(s.checkCalls)
	if s.clientKey, err = jira.InstallConnectApp(context.Background(), nil, s.appURL+"/atlassian-connect.json", adminID); err != nil {
		t.Fatalf("install: %v", err)
	}
	if s.secret, err = jira.SharedSecret(); err != nil {
		t.Fatal(err)
	}
	jira.ServeConnectPages(adminID)
	return s
}

// hostPageURL is Jira's page that frames the admin page.
func (s *stack) hostPageURL() string {
	s.t.Helper()
	u, err := s.jira.ConnectPageURL(adminModule)
	if err != nil {
		s.t.Fatal(err)
	}
	return u
}

// contextToken is a context JWT for sub, as AP.context.getToken hands it
// out.
func (s *stack) contextToken(sub string) string {
	s.t.Helper()
	tok, err := s.jira.ContextToken(sub)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// serviceCalls is how many times idbridge called Jira as the service
// account, by route.
func (s *stack) serviceCalls() map[string]int {
	return map[string]int{
		"GET /rest/api/3/myself":        s.jira.RequestCount("GET /rest/api/3/myself", -2),
		"GET /rest/api/3/mypermissions": s.jira.RequestCount("GET /rest/api/3/mypermissions", -2),
	}
}

// checkCalls fails the test on a call idbridge was not expected to make:
// a route of the site other than jiraRoutes, an app JWT the site refused,
// a Marketplace request that is not the vendor's licence report.
func (s *stack) checkCalls() {
	for _, rc := range s.jira.Requests() {
		if !slices.Contains(jiraRoutes, rc.Route) {
			s.t.Errorf("fake Jira: unexpected call %s (%d times, answered %d)", rc.Route, rc.N, rc.Status)
		}
	}
	for _, why := range s.jira.RefusedAppJWTs() {
		s.t.Errorf("fake Jira: refused the app's JWT: %s", why)
	}
	for _, uri := range s.market.Requests() {
		if !strings.HasPrefix(uri, "/rest/2/vendors/"+vendorID+"/reporting/licenses") {
			s.t.Errorf("Marketplace: unexpected call %s", uri)
		}
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
	req.Header.Set("Authorization", "JWT "+s.contextToken(adminID))
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
	for _, secret := range []string{s.secret, s.goodToken, s.vendorKey} {
		if strings.Contains(logs, secret) {
			s.t.Errorf("the App's logs contain a secret: %.12s…", secret)
		}
	}
}
