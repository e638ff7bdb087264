package app_test

// End-to-end tests of the admin API's service account and customer record:
// the whole App on SQLite and PostgreSQL, driven through its HTTP engine
// with context JWTs signed here, against fakes of a Jira site (admin check,
// /myself, /mypermissions), and of the Marketplace reporting API.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"idbridge/app"
	"idbridge/app/apptest"
	"idbridge/app/fakeatlassian"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/config"
	"idbridge/models"
)

const (
	admBaseURL   = "https://idbridge.test"
	admAppKey    = "idbridge-admin-e2e"
	admAdmin     = "557058:site-admin"
	admNotAdmin  = "557058:someone-else"
	admBotEmail  = "bot@example.com"
	admGoodToken = "ATATT3xFfGF0-e2e-good-token-1a2b"
)

// admMarketplace is the vendor reporting API (the shared fake of
// Atlassian) with one licence.
func admMarketplace(t *testing.T) *fakeatlassian.Marketplace {
	m := fakeatlassian.NewMarketplace("1234", "vendor@example.com", "vendor-token", map[string]any{
		"addonLicenseId": "777", "licenseId": "SEN-L777", "appEntitlementNumber": "E-777",
		"cloudId": "cloud-777", "addonKey": admAppKey, "status": "active", "lastUpdated": "2026-10-01",
		"contactDetails": map[string]any{"company": "Acme", "country": "Germany", "region": "EMEA",
			"technicalContact": map[string]any{"name": "Ann Tech", "email": "ann@acme.example"},
			"billingContact":   map[string]any{"name": "Bob Buyer", "email": "bob@acme.example"}},
	})
	t.Cleanup(m.Close)
	return m
}

type admEnv struct {
	t      *testing.T
	app    *app.App
	clock  *storetest.Clock
	jira   *fakeatlassian.Site
	site   *models.Site
	secret []byte
	logs   *apptest.LockedBuffer
}

func newAdmEnv(t *testing.T, b storetest.Backend) *admEnv {
	t.Helper()
	e := &admEnv{t: t, clock: storetest.NewClock(time.Now().UTC().Truncate(time.Second)), logs: &apptest.LockedBuffer{}}
	// The site (the shared fake of Atlassian): the app installed with
	// admAdmin as an administrator, the service account's API token.
	fake := fakeatlassian.New(fakeatlassian.Options{Now: e.clock.Now})
	t.Cleanup(fake.Close)
	e.jira = fake.NewSite(fakeatlassian.SiteOptions{})
	e.secret = []byte(apptest.RandomHex(t, 24))
	e.jira.InstallApp(admAppKey, string(e.secret), admAdmin)
	e.jira.AddAccount(fakeatlassian.Account{Email: admBotEmail, DisplayName: "Automation Bot"})
	e.jira.AddServiceAccount(fakeatlassian.ServiceAccount{Email: admBotEmail, APIToken: admGoodToken, Admin: true})
	mp := admMarketplace(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := map[string]string{
		"IDBRIDGE_BASE_URL":              admBaseURL,
		"IDBRIDGE_APP_KEY":               admAppKey,
		"IDBRIDGE_ADDR":                  "127.0.0.1:0",
		"IDBRIDGE_DATA_DIR":              t.TempDir(),
		"IDBRIDGE_DATABASE_URL":          b.DatabaseURL(t),
		"IDBRIDGE_ENCRYPTION_KEYS":       "adm1:" + base64.StdEncoding.EncodeToString(key),
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net," + e.jira.Host(),
		"IDBRIDGE_ATLASSIAN_API_URL":     fake.APIURL(),
		"IDBRIDGE_ATLASSIAN_AUTH_URL":    fake.APIURL(),
		"IDBRIDGE_MARKETPLACE_URL":       mp.URL(),
		"IDBRIDGE_MARKETPLACE_VENDOR_ID": "1234",
		"IDBRIDGE_MARKETPLACE_USER":      "vendor@example.com",
		"IDBRIDGE_MARKETPLACE_TOKEN":     "vendor-token",
		"IDBRIDGE_LOG_LEVEL":             "debug",
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	tmpl, err := os.ReadFile("../atlassian-connect.json")
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{ResponseHeaderTimeout: 300 * time.Millisecond}
	t.Cleanup(tr.CloseIdleConnections)
	e.app, err = app.Open(context.Background(), cfg, app.Options{
		Log: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: e.clock.Now, DescriptorTemplate: tmpl, HTTPTransport: tr,
	})
	if err != nil {
		t.Fatalf("app.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := e.app.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		logs := e.logs.String()
		for _, s := range []string{admGoodToken, "revoked-token-", string(e.secret)} {
			if strings.Contains(logs, s) {
				t.Errorf("the logs contain a secret: %.12s…", s)
			}
		}
	})
	err = e.app.Store().InTx(context.Background(), func(tx *store.Tx) error {
		e.site, err = tx.SaveInstall(&models.Site{
			SiteFacts: models.SiteFacts{
				ClientKey:         "adm-client-" + apptest.RandomHex(t, 4),
				BaseURL:           e.jira.BaseURL(),
				ProductType:       "jira",
				EntitlementNumber: "E-777",
			},
			SharedSecret: e.secret,
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// token is a context JWT of the site for sub, as AP.context.getToken()
// gives the admin page.
func (e *admEnv) token(sub string) string {
	e.t.Helper()
	now := e.clock.Now()
	return apptest.SignJWT(e.t, jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": e.site.ClientKey, "sub": sub, "qsh": "context-qsh", "iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix(),
	}, "", e.secret)
}

// call sends method target with a context token of sub (none when sub is
// "") and a JSON body, and decodes the JSON answer into a map.
func (e *admEnv) call(method, target, sub, body string) (int, map[string]any, string) {
	e.t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, admBaseURL+target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, admBaseURL+target, nil)
	}
	if sub != "" {
		r.Header.Set("Authorization", "JWT "+e.token(sub))
	}
	w := httptest.NewRecorder()
	e.app.Handler().ServeHTTP(w, r)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		e.t.Fatalf("%s %s: %d, body is not a JSON object: %s", method, target, w.Code, w.Body)
	}
	return w.Code, out, w.Body.String()
}

func (e *admEnv) audit() []models.AuditEvent {
	e.t.Helper()
	evs, err := e.app.Store().View(context.Background()).FindAuditEvents(e.site.ID, store.AuditQuery{Limit: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func TestAdminServiceAccountEndToEnd(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newAdmEnv(t, b)
		code, got, _ := e.call("GET", "/api/admin/service-account", admAdmin, "")
		if d := answerDiff(fields{"http status": 200, "configured": false}, code, got); d != "" {
			t.Fatalf("GET before any save (-want +got):\n%s", d)
		}

		exp := e.clock.Now().Add(10 * 24 * time.Hour).Format("2006-01-02")
		code, got, raw := e.call("PUT", "/api/admin/service-account", admAdmin,
			`{"kind":"api_token","email":"bot@example.com","token":"`+admGoodToken+`","expiresAt":"`+exp+`"}`)
		if d := answerDiff(fields{"http status": 200, "tokenHint": "••••1a2b", "status": "untested", "expiresSoon": true}, code, got); d != "" {
			t.Fatalf("PUT (-want +got):\n%s", d)
		}
		if strings.Contains(raw, admGoodToken) {
			t.Fatal("PUT answered the token")
		}
		evs := e.audit()
		if len(evs) != 1 {
			t.Fatalf("audit after save: %+v, want one event", evs)
		}
		if d := cmp.Diff(map[string]any{"event": models.AuditConfigChanged, "actor": admAdmin, "section": "service_account"},
			map[string]any{"event": evs[0].Event, "actor": evs[0].ActorAccountID, "section": evs[0].Section}); d != "" {
			t.Fatalf("audit after save (-want +got):\n%s", d)
		}

		code, got, raw = e.call("POST", "/api/admin/service-account/test", admAdmin, "{}")
		if d := answerDiff(fields{"http status": 200, "ok": true}, code, got); d != "" {
			t.Fatalf("test %s (-want +got):\n%s", raw, d)
		}
		if strings.Contains(raw, admGoodToken) {
			t.Fatal("test answered the token")
		}
		if sa, _ := got["serviceAccount"].(map[string]any); sa["status"] != "ok" {
			t.Errorf("after a good test: %v", got["serviceAccount"])
		}

		// Jira times out: 503 in words, nothing changed.
		e.clock.Advance(time.Minute)
		_, before, _ := e.call("GET", "/api/admin/service-account", admAdmin, "")
		e.jira.Inject(fakeatlassian.Fault{Route: "GET /rest/api/3/myself", Delay: time.Minute})
		code, got, _ = e.call("POST", "/api/admin/service-account/test", admAdmin, "{}")
		e.jira.ClearFaults()
		if msg, _ := got["error"].(string); code != http.StatusServiceUnavailable || !strings.Contains(msg, "did not answer") || !strings.Contains(msg, "Nothing was changed") {
			t.Fatalf("hanging Jira: %d %v", code, got)
		}
		_, after, _ := e.call("GET", "/api/admin/service-account", admAdmin, "")
		if d := cmp.Diff(fields{"status": before["status"], "checkedAt": before["checkedAt"]}, fields{"status": after["status"], "checkedAt": after["checkedAt"]}); d != "" {
			t.Errorf("a timed-out test changed the account (-before +after):\n%s", d)
		}

		// Jira rejects the token (revoked): invalid, and the overview says so.
		e.jira.RevokeCredentials()
		code, got, _ = e.call("POST", "/api/admin/service-account/test", admAdmin, "{}")
		if d := answerDiff(fields{"http status": 200, "ok": false}, code, got); d != "" {
			t.Fatalf("rejected token (-want +got):\n%s", d)
		}
		checks, _ := got["checks"].([]any)
		rejected := false
		for _, c := range checks {
			c := c.(map[string]any)
			if c["name"] == "Credentials" && c["ok"] == false && strings.Contains(c["message"].(string), "rejected the email and API token (401)") {
				rejected = true
			}
		}
		if !rejected {
			t.Errorf("checks = %v, want the credentials check to say the token was rejected", checks)
		}
		_, got, _ = e.call("GET", "/api/admin/service-account", admAdmin, "")
		warnings, _ := got["warnings"].([]any)
		if got["status"] != "invalid" || len(warnings) == 0 || !strings.Contains(warnings[0].(string), "rejected") {
			t.Errorf("GET after a 401: %v", got)
		}
		if len(e.audit()) != 1 {
			t.Errorf("a connection test wrote audit events: %+v", e.audit())
		}

		// Not an admin: 403, and no token: 401, on every new route.
		for _, r := range []struct{ method, target, body string }{
			{"GET", "/api/admin/service-account", ""}, {"PUT", "/api/admin/service-account", `{"kind":"api_token"}`},
			{"POST", "/api/admin/service-account/test", "{}"}, {"GET", "/api/admin/profile", ""},
			{"PUT", "/api/admin/profile", `{"name":"x"}`}, {"POST", "/api/admin/profile/sync", "{}"},
		} {
			if code, _, _ := e.call(r.method, r.target, admNotAdmin, r.body); code != http.StatusForbidden {
				t.Errorf("%s %s as a non-admin: %d, want 403", r.method, r.target, code)
			}
			if code, _, _ := e.call(r.method, r.target, "", r.body); code != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d, want 401", r.method, r.target, code)
			}
		}
	})
}

// TestAdminServiceAccountBadInput: every kind of bad input is a 400 that
// names the field, and nothing is half-saved.
func TestAdminServiceAccountBadInput(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newAdmEnv(t, b)
		long := strings.Repeat("x", 300)
		for _, c := range []struct{ name, body, field string }{
			{"malformed email", `{"kind":"api_token","email":"bot@@example","token":"` + admGoodToken + `"}`, "email"},
			{"empty token", `{"kind":"api_token","email":"bot@example.com","token":""}`, "token"},
			{"unknown kind", `{"kind":"password","email":"bot@example.com","token":"x"}`, "kind"},
			{"overlong email", `{"kind":"api_token","email":"` + long + `@example.com","token":"x"}`, "email"},
			{"overlong token", `{"kind":"api_token","email":"bot@example.com","token":"` + strings.Repeat("t", 5000) + `"}`, "token"},
			{"overlong client ID", `{"kind":"oauth_client","clientId":"` + long + `","clientSecret":"s3cret-0123456789","cloudId":"c-1"}`, "clientId"},
			{"bad cloud ID", `{"kind":"scoped_token","email":"bot@example.com","token":"x","cloudId":"a/b"}`, "cloudId"},
			{"bad date", `{"kind":"api_token","email":"bot@example.com","token":"x","expiresAt":"soon"}`, "expiresAt"},
			{"wrong type", `{"kind":["api_token"]}`, "kind"},
		} {
			code, got, _ := e.call("PUT", "/api/admin/service-account", admAdmin, c.body)
			msg, _ := got["error"].(string)
			if d := answerDiff(fields{"http status": http.StatusBadRequest, "field": c.field}, code, got); d != "" || len(msg) < 10 {
				t.Errorf("%s: error %q, want 400 naming %q with a sentence (-want +got):\n%s", c.name, msg, c.field, d)
			}
		}
		code, got, _ := e.call("PUT", "/api/admin/service-account", admAdmin, `{"kind":`)
		if d := answerDiff(fields{"http status": 400, "has error": true}, code, map[string]any{"has error": got["error"] != nil && got["error"] != ""}); d != "" {
			t.Errorf("broken JSON: %v (-want +got):\n%s", got, d)
		}
		if _, got, _ := e.call("GET", "/api/admin/service-account", admAdmin, ""); got["configured"] != false {
			t.Errorf("bad input was saved: %v", got)
		}
		if evs := e.audit(); len(evs) != 0 {
			t.Errorf("bad input wrote audit events: %+v", evs)
		}
		// Testing before anything is saved says what to do.
		code, got, _ = e.call("POST", "/api/admin/service-account/test", admAdmin, "{}")
		if code != http.StatusPreconditionFailed || !strings.Contains(got["error"].(string), "Save a service account first") {
			t.Errorf("test before save: %d %v", code, got)
		}
		if n := e.jira.RequestCount("GET /rest/api/3/myself", -2) + e.jira.RequestCount("GET /rest/api/3/mypermissions", -2); n != 0 {
			t.Errorf("Jira was called %d times for bad input", n)
		}
	})
}

func TestAdminProfileEndToEnd(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newAdmEnv(t, b)
		code, got, _ := e.call("GET", "/api/admin/profile", admAdmin, "")
		if d := answerDiff(fields{"http status": 200, "name": "", "updatedAt": nil, "syncConfigured": true}, code, got); d != "" {
			t.Fatalf("empty profile (-want +got):\n%s", d)
		}

		code, got, raw := e.call("PUT", "/api/admin/profile", admAdmin, `{"company":"ACME GmbH","email":"jane@acme.example"}`)
		if d := answerDiff(fields{"http status": 200, "company": "ACME GmbH", "sources.company": "admin"}, code, got); d != "" {
			t.Fatalf("correction %s (-want +got):\n%s", raw, d)
		}
		evs := e.audit()
		if len(evs) != 1 {
			t.Fatalf("audit: %+v, want one event", evs)
		}
		if d := cmp.Diff(map[string]any{"event": models.AuditRecordCorrected, "actor": admAdmin, "fields": []string{"company", "email"}},
			map[string]any{"event": evs[0].Event, "actor": evs[0].ActorAccountID, "fields": evs[0].Fields}); d != "" {
			t.Fatalf("audit (-want +got):\n%s", d)
		}

		// Sync now: the licence fills the rest; corrections still win.
		code, got, raw = e.call("POST", "/api/admin/profile/sync", admAdmin, "")
		if d := answerDiff(fields{"http status": 200, "name": "Ann Tech", "purchaser": "Bob Buyer", "location": "Germany, EMEA",
			"company": "ACME GmbH", "email": "jane@acme.example", "sources.name": "marketplace"}, code, got); d != "" {
			t.Fatalf("sync %s (-want +got):\n%s", raw, d)
		}
		// Clearing the correction: the Marketplace value applies at once.
		code, got, _ = e.call("PUT", "/api/admin/profile", admAdmin, `{"company":null}`)
		if d := answerDiff(fields{"http status": 200, "company": "Acme", "sources.company": "marketplace"}, code, got); d != "" {
			t.Fatalf("clear (-want +got):\n%s", d)
		}
		if n := len(e.audit()); n != 2 {
			t.Errorf("%d audit events, want 2 (sync writes none)", n)
		}

		for _, c := range []struct{ body, field string }{
			{`{"email":"jane@"}`, "email"},
			{`{"name":"` + strings.Repeat("n", 201) + `"}`, "name"},
			{`{"location":"a\nb"}`, "location"},
			{`{"phone":"123"}`, "phone"},
			{`{"purchaser":7}`, "purchaser"},
		} {
			code, got, _ := e.call("PUT", "/api/admin/profile", admAdmin, c.body)
			if d := answerDiff(fields{"http status": 400, "field": c.field}, code, got); d != "" {
				t.Errorf("%s, want 400 naming %s (-want +got):\n%s", c.body, c.field, d)
			}
		}
		if n := len(e.audit()); n != 2 {
			t.Errorf("bad input wrote audit events: %d", n)
		}
	})
}

func TestPrivacyAndOpenAPIArePublic(t *testing.T) {
	t.Parallel()
	e := newAdmEnv(t, storetest.Backends(t)[0])
	for _, target := range []string{"/privacy", "/api/admin/openapi.json"} {
		r := httptest.NewRequest("GET", admBaseURL+target, nil)
		w := httptest.NewRecorder()
		e.app.Handler().ServeHTTP(w, r)
		if w.Code != 200 {
			t.Errorf("GET %s: %d", target, w.Code)
		}
	}
}
