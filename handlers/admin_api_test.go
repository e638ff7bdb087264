package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// adminConnect authenticates every request as an admin of one site.
type adminConnect struct{ site *models.Site }

func (a adminConnect) Installed(context.Context, *http.Request, *models.InstallEvent) error {
	return nil
}
func (a adminConnect) Uninstalled(context.Context, *http.Request, *models.InstallEvent) error {
	return nil
}
func (a adminConnect) Enabled(context.Context, *http.Request, *models.InstallEvent) error { return nil }
func (a adminConnect) Disabled(context.Context, *http.Request, *models.InstallEvent) error {
	return nil
}
func (a adminConnect) AuthenticateURL(*http.Request) (*models.Caller, error) {
	return &models.Caller{Site: a.site, AccountID: "557058:admin"}, nil
}
func (a adminConnect) AuthenticateContext(*http.Request) (*models.Caller, error) {
	return &models.Caller{Site: a.site, AccountID: "557058:admin"}, nil
}
func (a adminConnect) RequireAdmin(context.Context, *models.Caller) error { return nil }

// stubAccounts records what the handler passed and answers a fixed account.
type stubAccounts struct {
	acc   *models.ServiceAccount
	in    *models.ServiceAccountInput
	actor string
	err   error
}

func (s *stubAccounts) Get(context.Context, string) (*models.ServiceAccount, error) {
	if s.acc == nil {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "none"}
	}
	return s.acc, nil
}

func (s *stubAccounts) Save(_ context.Context, _ *models.Site, actor string, in models.ServiceAccountInput) (*models.ServiceAccount, error) {
	s.in, s.actor = &in, actor
	if s.err != nil {
		return nil, s.err
	}
	return s.acc, nil
}

func (s *stubAccounts) Test(context.Context, *models.Site) (*models.ConnectionTest, error) {
	if s.err != nil {
		return nil, s.err
	}
	return &models.ConnectionTest{OK: false, Checks: []models.ConnectionCheck{{Name: "Jira administrator", OK: false, Message: "Token valid, but the account is not a Jira administrator: customers cannot be created."}}, Account: s.acc}, nil
}

type stubProfiles struct {
	p       *models.CustomerProfile
	changes []models.ProfileChange
	err     error
}

func (s *stubProfiles) Get(context.Context, string) (*models.CustomerProfile, error) { return s.p, nil }
func (s *stubProfiles) Correct(_ context.Context, _ *models.Site, _ string, ch []models.ProfileChange) (*models.CustomerProfile, error) {
	s.changes = ch
	if s.err != nil {
		return nil, s.err
	}
	return s.p, nil
}
func (s *stubProfiles) SyncSite(context.Context, *models.Site) (*models.CustomerProfile, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.p, nil
}
func (s *stubProfiles) SyncConfigured() bool { return true }

var testNow = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

func adminServer(t *testing.T, acc *stubAccounts, prof *stubProfiles) http.Handler {
	t.Helper()
	h, _ := newTestServer(t, Deps{
		Connect: adminConnect{site: &models.Site{
			ID:        "s_1",
			SiteFacts: models.SiteFacts{ClientKey: "c", BaseURL: "https://x.atlassian.net"},
			State:     models.SiteInstalled,
		}},
		ServiceAccounts: acc, Profiles: prof, Now: func() time.Time { return testNow },
	})
	return h
}

func jsonReq(t *testing.T, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	var header http.Header
	if body != "" {
		header = http.Header{"Content-Type": {"application/json"}}
	}
	return do(t, h, method, target, body, header)
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) (msg, field string) {
	t.Helper()
	var b struct{ Error, Field string }
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Error == "" {
		t.Fatalf("body %s is not an error", w.Body)
	}
	return b.Error, b.Field
}

func TestServiceAccountNeverShowsASecret(t *testing.T) {
	exp := testNow.Add(5 * 24 * time.Hour)
	acc := &models.ServiceAccount{SiteID: "s_1", Kind: models.AccountAPIToken, Email: "bot@example.com", Token: "ATATT-super-secret-1a2b",
		TokenHint: "1a2b", OrgAdminKey: "org-super-secret-9f8e", OrgAdminKeyHint: "9f8e", ClientSecret: "never-client-secret",
		ExpiresAt: &exp, Status: models.AccountOK, UpdatedAt: testNow}
	h := adminServer(t, &stubAccounts{acc: acc}, &stubProfiles{})
	for _, r := range []struct{ method, target, body string }{
		{"GET", "/api/admin/service-account", ""},
		{"PUT", "/api/admin/service-account", `{"kind":"api_token","email":"bot@example.com","token":"ATATT-super-secret-1a2b"}`},
		{"POST", "/api/admin/service-account/test", "{}"},
	} {
		w := jsonReq(t, h, r.method, r.target, r.body)
		if w.Code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", r.method, r.target, w.Code, w.Body)
		}
		body := w.Body.String()
		for _, secret := range []string{"super-secret", "never-client-secret"} {
			if strings.Contains(body, secret) {
				t.Errorf("%s %s answers a secret: %s", r.method, r.target, body)
			}
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: Cache-Control %q", r.method, r.target, w.Header().Get("Cache-Control"))
		}
	}
	w := jsonReq(t, h, "GET", "/api/admin/service-account", "")
	var got map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &got)
	wantFields := map[string]any{"tokenHint": "••••1a2b", "orgAdminKeyHint": "••••9f8e", "kind": "api_token", "status": "ok", "configured": true, "expiresSoon": true}
	gotFields := map[string]any{}
	for k := range wantFields {
		gotFields[k] = got[k]
	}
	if d := cmp.Diff(wantFields, gotFields); d != "" {
		t.Errorf("GET (-want +got):\n%s", d)
	}
	if w, _ := got["warnings"].([]any); len(w) != 1 || !strings.Contains(w[0].(string), "expires on") {
		t.Errorf("warnings = %v, want the 14-day expiry warning", got["warnings"])
	}
	w = jsonReq(t, h, "POST", "/api/admin/service-account/test", "{}")
	var test struct {
		OK     bool
		Checks []struct {
			Name, Message string
			OK            bool
		}
		ServiceAccount map[string]any
	}
	_ = json.Unmarshal(w.Body.Bytes(), &test)
	if len(test.Checks) != 1 {
		t.Fatalf("test answer %s, want one check", w.Body)
	}
	if d := cmp.Diff(map[string]any{"ok": false, "check says not a Jira administrator": true, "serviceAccount.status": "ok"},
		map[string]any{"ok": test.OK, "check says not a Jira administrator": strings.Contains(test.Checks[0].Message, "not a Jira administrator"),
			"serviceAccount.status": test.ServiceAccount["status"]}); d != "" {
		t.Errorf("test answer %s (-want +got):\n%s", w.Body, d)
	}
}

func TestServiceAccountNotConfigured(t *testing.T) {
	h := adminServer(t, &stubAccounts{}, &stubProfiles{})
	w := jsonReq(t, h, "GET", "/api/admin/service-account", "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"configured":false`) || !strings.Contains(w.Body.String(), `"kind":""`) {
		t.Errorf("not configured: %d %s", w.Code, w.Body)
	}
}

func TestServiceAccountInputMapping(t *testing.T) {
	stub := &stubAccounts{acc: &models.ServiceAccount{Kind: models.AccountAPIToken}}
	h := adminServer(t, stub, &stubProfiles{})
	w := jsonReq(t, h, "PUT", "/api/admin/service-account", `{"kind":"oauth_client","clientId":"cid","clientSecret":null,"expiresAt":"2027-01-31","orgAdminKey":null,"orgAdminKeyExpiresAt":"2027-02-01T12:00:00Z"}`)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	in := stub.in
	if in.Kind != models.AccountOAuthClient || in.ClientID != "cid" || in.ClientSecret != nil || in.Token != nil || !in.ClearOrgAdminKey ||
		!in.ExpiresAtSet || in.ExpiresAt == nil || in.ExpiresAt.Format(time.RFC3339) != "2027-01-31T23:59:59Z" ||
		!in.OrgAdminKeyExpiresAtSet || in.OrgAdminKeyExpiresAt == nil || stub.actor != "557058:admin" {
		t.Errorf("input = %+v, actor %q", in, stub.actor)
	}
	w = jsonReq(t, h, "PUT", "/api/admin/service-account", `{"kind":"api_token","token":""}`)
	if d := cmp.Diff(map[string]any{"status": http.StatusOK, "token": ptr(""), "expiresAtSet": false},
		map[string]any{"status": w.Code, "token": stub.in.Token, "expiresAtSet": stub.in.ExpiresAtSet}); d != "" {
		t.Errorf("an empty token must reach the service (which refuses it) (-want +got):\n%s", d)
	}

	for _, c := range []struct{ body, field string }{
		{`{"kind":5}`, "kind"},
		{`{"kind":"api_token","token":42}`, "token"},
		{`{"kind":"api_token","expiresAt":"next tuesday"}`, "expiresAt"},
		{`{"kind":"api_token","orgAdminKeyExpiresAt":true}`, "orgAdminKeyExpiresAt"},
		{`{"kind":"api_token","orgAdminKey":"k-0123456789ab","clearOrgAdminKey":true}`, "orgAdminKey"},
	} {
		stub.in = nil
		w := jsonReq(t, h, "PUT", "/api/admin/service-account", c.body)
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", c.body, w.Code)
			continue
		}
		if _, field := errorOf(t, w); field != c.field {
			t.Errorf("%s: field %q, want %q", c.body, field, c.field)
		}
		if stub.in != nil {
			t.Errorf("%s reached the service", c.body)
		}
	}
	for _, body := range []string{`not json`, `{"kind":"api_token"} {}`, ``} {
		if w := jsonReq(t, h, "PUT", "/api/admin/service-account", body); w.Code != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", body, w.Code)
		}
	}
	// A field error from the service is rendered with its field.
	stub.err = models.FieldError("email", "\"x\" is not an email address.")
	w = jsonReq(t, h, "PUT", "/api/admin/service-account", `{"kind":"api_token","email":"x"}`)
	msg, field := errorOf(t, w)
	if d := cmp.Diff(map[string]any{"status": http.StatusBadRequest, "field": "email", "says not an email": true},
		map[string]any{"status": w.Code, "field": field, "says not an email": strings.Contains(msg, "not an email")}); d != "" {
		t.Errorf("service field error %s (-want +got):\n%s", w.Body, d)
	}
	stub.err = models.Errorf(models.CodeUnavailable, "The site did not answer within 20 seconds. Nothing was changed.")
	w = jsonReq(t, h, "POST", "/api/admin/service-account/test", `{}`)
	if msg, _ := errorOf(t, w); w.Code != http.StatusServiceUnavailable || !strings.Contains(msg, "did not answer") {
		t.Errorf("timeout: %d %s", w.Code, w.Body)
	}
}

func TestProfileShapes(t *testing.T) {
	synced := testNow.Add(-time.Hour)
	corr := "Jane Admin"
	p := &models.CustomerProfile{SiteID: "s_1", UpdatedAt: testNow, LastSyncAt: &synced, SyncStatus: "Matched.", Fields: map[models.ProfileField]models.ProfileValue{
		models.ProfileName:  {Synced: "Jane Market", SyncedSource: models.SourceMarketplace, SyncedAt: &synced, Correction: &corr, CorrectedAt: &testNow},
		models.ProfileEmail: {Synced: "jane@example.com", SyncedSource: models.SourceMarketplace, SyncedAt: &synced},
	}}
	stub := &stubProfiles{p: p}
	h := adminServer(t, &stubAccounts{}, stub)
	w := jsonReq(t, h, "GET", "/api/admin/profile", "")
	var got struct {
		Name, Email, Location, Company, Purchaser string
		Sources                                   map[string]string
		FieldUpdatedAt                            map[string]time.Time
		Synced                                    map[string]string
		UpdatedAt                                 *time.Time
		SyncConfigured                            bool
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got.Name != "Jane Admin" || got.Email != "jane@example.com" || got.Location != "" || got.Sources["name"] != "admin" ||
		got.Sources["email"] != "marketplace" || len(got.Sources) != 2 || got.Synced["name"] != "Jane Market" ||
		!got.FieldUpdatedAt["name"].Equal(testNow) || !got.FieldUpdatedAt["email"].Equal(synced) || got.UpdatedAt == nil || !got.SyncConfigured {
		t.Errorf("GET profile = %s", w.Body)
	}
	for _, f := range []string{`"name"`, `"email"`, `"location"`, `"company"`, `"purchaser"`, `"sources"`, `"updatedAt"`} {
		if !strings.Contains(w.Body.String(), f+":") {
			t.Errorf("GET profile lacks %s", f)
		}
	}

	w = jsonReq(t, h, "PUT", "/api/admin/profile", `{"name":"New","company":null}`)
	if w.Code != http.StatusOK {
		t.Errorf("PUT profile: %d %s", w.Code, w.Body)
	}
	if d := cmp.Diff([]models.ProfileChange{{Field: models.ProfileName, Value: ptr("New")}, {Field: models.ProfileCompany}}, stub.changes); d != "" {
		t.Errorf("PUT profile's changes (-want +got):\n%s", d)
	}
	for _, c := range []struct{ body, field string }{
		{`{"phone":"1"}`, "phone"},
		{`{"name":5}`, "name"},
		{`{"email":["a"]}`, "email"},
	} {
		stub.changes = nil
		w := jsonReq(t, h, "PUT", "/api/admin/profile", c.body)
		_, field := errorOf(t, w)
		if d := cmp.Diff(map[string]any{"status": 400, "field": c.field, "changes passed on": 0},
			map[string]any{"status": w.Code, "field": field, "changes passed on": len(stub.changes)}); d != "" {
			t.Errorf("%s: want 400 on %q and nothing passed on (-want +got):\n%s", c.body, c.field, d)
		}
	}
	if w := jsonReq(t, h, "PUT", "/api/admin/profile", `[1]`); w.Code != 400 {
		t.Errorf("an array body: %d", w.Code)
	}
	if w := jsonReq(t, h, "PUT", "/api/admin/profile", `null`); w.Code != 400 {
		t.Errorf("a null body: %d", w.Code)
	}
	stub.err = &models.Error{Code: models.CodePrecondition, Message: "not set up"}
	if w := jsonReq(t, h, "POST", "/api/admin/profile/sync", ``); w.Code != http.StatusPreconditionFailed {
		t.Errorf("sync not configured: %d %s", w.Code, w.Body)
	}
}

// openAPIDoc is the part of the OpenAPI document the route test reads.
type openAPIDoc struct {
	OpenAPI string                                 `json:"openapi"`
	Paths   map[string]map[string]openAPIOperation `json:"paths"`
}

type openAPIOperation struct {
	Summary   string                     `json:"summary"`
	Responses map[string]json.RawMessage `json:"responses"`
	Security  *[]map[string][]string     `json:"security"`
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIDescribesEveryAdminRoute keeps /api/admin/openapi.json true:
// every route of the engine under /api/admin is in the document, and every
// operation of the document is a route.
func TestOpenAPIDescribesEveryAdminRoute(t *testing.T) {
	h, _ := newTestServer(t, everyRouteDeps(t))
	var doc openAPIDoc
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	var routes, documented []string
	for _, r := range h.Routes() {
		if r.Path == "/api/admin" || strings.HasPrefix(r.Path, "/api/admin/") {
			routes = append(routes, r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}"))
		}
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
			if d := cmp.Diff(map[string]bool{"summary": true, "responses": true}, map[string]bool{"summary": op.Summary != "", "responses": len(op.Responses) > 0}); d != "" {
				t.Errorf("%s %s: an operation needs a summary and responses (-want +got):\n%s", method, path, d)
			}
		}
	}
	sort.Strings(routes)
	sort.Strings(documented)
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in handlers/openapi.json: describe it there (paths → %q → %q)", r, strings.SplitN(r, " ", 2)[1], strings.ToLower(strings.SplitN(r, " ", 2)[0]))
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("handlers/openapi.json describes %s, which is no route", d)
		}
	}
	if len(routes) < 7 {
		t.Errorf("only %d admin routes: %v", len(routes), routes)
	}
	// Only the document itself is public.
	for path, ops := range doc.Paths {
		for method, op := range ops {
			public := op.Security != nil && len(*op.Security) == 0
			if public != (path == "/api/admin/openapi.json") {
				t.Errorf("%s %s: public = %v", method, path, public)
			}
		}
	}
	checkRefs(t, doc, openAPIDocument)
}

// provisioningService names Provisioning for embedding: embedded under its
// own name, the field would hide the interface's Provisioning method.
type provisioningService = Provisioning

// everyRouteDeps sets every optional service of Deps, so that the engine
// has every route. A service embedded in an empty struct is enough: the
// routes register, nothing is called. A Deps interface this function does
// not set fails the test, so a new one cannot hide its routes.
func everyRouteDeps(t *testing.T) Deps {
	t.Helper()
	d := Deps{
		Connect:         adminConnect{site: &models.Site{ID: "s_1"}},
		Ready:           struct{ Readiness }{},
		ServiceAccounts: &stubAccounts{},
		Profiles:        &stubProfiles{},
		SCIM:            struct{ SCIMServer }{},
		Provisioning:    struct{ provisioningService }{},
		SSO:             struct{ SSO }{},
		Audit:           struct{ AuditLog }{},
		Sync:            struct{ Sync }{},
		Portal:          struct{ Portal }{},
		Privacy:         struct{ Privacy }{},
		Forge:           struct{ Forge }{},
		SystemTokens:    struct{ SystemTokens }{},
		Descriptor:      []byte(`{}`),
	}
	v := reflect.ValueOf(d)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Type.Kind() == reflect.Interface && v.Field(i).IsNil() {
			t.Errorf("Deps.%[1]s is not set in everyRouteDeps (handlers/admin_api_test.go): add %[1]s: struct{ %[2]s }{}, so its routes are checked against openapi.json", f.Name, f.Type.Name())
		}
	}
	return d
}

// checkRefs fails for a $ref that names nothing in the document.
func checkRefs(t *testing.T, _ openAPIDoc, raw []byte) {
	t.Helper()
	var all map[string]any
	_ = json.Unmarshal(raw, &all)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if k == "$ref" {
					ref, _ := c.(string)
					var cur any = all
					for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
						m, _ := cur.(map[string]any)
						cur = m[part]
					}
					if cur == nil {
						t.Errorf("$ref %q resolves to nothing", ref)
					}
				}
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(all)
}

func TestOpenAPIIsServedPublicly(t *testing.T) {
	h, _ := newTestServer(t, Deps{})
	w := do(t, h, "GET", "/api/admin/openapi.json", "", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || !json.Valid(w.Body.Bytes()) {
		t.Fatalf("GET /api/admin/openapi.json: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
}

// A sync pressed within its cooldown is a 429 whose Retry-After is the
// cooldown's rest, rounded up to whole seconds, with the sentence.
func TestProfileSyncCooldownIsA429WithRetryAfter(t *testing.T) {
	msg := "This record was refreshed from the Marketplace moments ago; try again in 43 seconds."
	h := adminServer(t, &stubAccounts{}, &stubProfiles{err: &models.Error{Code: models.CodeTooMany, Message: msg, RetryAfter: 42*time.Second + time.Millisecond}})
	w := jsonReq(t, h, http.MethodPost, "/api/admin/profile/sync", "")
	if d := cmp.Diff(map[string]any{"status": http.StatusTooManyRequests, "Retry-After": "43"},
		map[string]any{"status": w.Code, "Retry-After": w.Header().Get("Retry-After")}); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if got, _ := errorOf(t, w); got != msg {
		t.Errorf("error %q", got)
	}
}

// A database outage (the store's CodeUnavailable) is a 503 with Retry-After
// and the JSON error body on the admin API, logged as a warning, never a
// 500; a site over its share of requests is a 429 with Retry-After.
func TestAdminAPIUnavailableIs503WithRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		code   models.Code
		status int
	}{{models.CodeUnavailable, 503}, {models.CodeTooMany, 429}} {
		stub := &stubProfiles{err: fmt.Errorf("find profile: %w", &models.Error{Code: tc.code, Message: "the database is not available right now; try again shortly"})}
		h := adminServer(t, &stubAccounts{}, stub)
		for _, m := range []string{"PUT", "POST"} {
			body, target := `{"name":"x"}`, "/api/admin/profile"
			if m == "POST" {
				body, target = "", "/api/admin/profile/sync"
			}
			w := jsonReq(t, h, m, target, body)
			if d := cmp.Diff(map[string]any{"status": tc.status, "has Retry-After": true},
				map[string]any{"status": w.Code, "has Retry-After": w.Header().Get("Retry-After") != ""}); d != "" {
				t.Fatalf("%s profile (-want +got):\n%s", m, d)
			}
			if msg, _ := errorOf(t, w); !strings.Contains(msg, "try again") {
				t.Errorf("%s profile: error %q", m, msg)
			}
		}
	}
}

// ptr is a pointer to v, for the optional fields of a want value.
func ptr[T any](v T) *T { return &v }
