package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"idbridge/models"
)

// recordingConnect is a Connect that records what the engine asks of it.
// Authentication succeeds only when auth says so; RequireAdmin answers
// admin. Methods it does not define (added to Connect later) panic, which
// the engine turns into a 500 that the tests catch.
type recordingConnect struct {
	Connect
	auth  bool
	admin error

	// facts, when set, are the authenticated site's instead of the
	// default ones.
	facts *models.SiteFacts

	mu     sync.Mutex
	calls  []string
	caller *models.Caller
}

func (f *recordingConnect) record(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
}

func (f *recordingConnect) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

var errConnectUnauthorized = &models.Error{Code: models.CodeUnauthorized, Message: "no valid token"}

func (f *recordingConnect) lifecycle(name string) error {
	f.record(name)
	return errConnectUnauthorized
}

func (f *recordingConnect) Installed(context.Context, *http.Request, *models.InstallEvent) error {
	return f.lifecycle("Installed")
}

func (f *recordingConnect) Uninstalled(context.Context, *http.Request, *models.InstallEvent) error {
	return f.lifecycle("Uninstalled")
}

func (f *recordingConnect) Enabled(context.Context, *http.Request, *models.InstallEvent) error {
	return f.lifecycle("Enabled")
}

func (f *recordingConnect) Disabled(context.Context, *http.Request, *models.InstallEvent) error {
	return f.lifecycle("Disabled")
}

func (f *recordingConnect) authenticate(name string) (*models.Caller, error) {
	f.record(name)
	if !f.auth {
		return nil, errConnectUnauthorized
	}
	f.caller = &models.Caller{Site: &models.Site{
		ID:        "s1",
		SiteFacts: models.SiteFacts{ClientKey: "client-1", BaseURL: "https://a.atlassian.net"},
		State:     models.SiteInstalled,
	}, AccountID: "acc-1"}
	if f.facts != nil {
		f.caller.Site.SiteFacts = *f.facts
	}
	return f.caller, nil
}

func (f *recordingConnect) AuthenticateURL(*http.Request) (*models.Caller, error) {
	return f.authenticate("AuthenticateURL")
}

func (f *recordingConnect) AuthenticateContext(*http.Request) (*models.Caller, error) {
	return f.authenticate("AuthenticateContext")
}

func (f *recordingConnect) RequireAdmin(_ context.Context, caller *models.Caller) error {
	f.record("RequireAdmin")
	if caller != f.caller || caller == nil {
		return &models.Error{Code: models.CodeInternal, Message: "RequireAdmin got another caller than the one authenticated"}
	}
	return f.admin
}

// connectPublicRoutes are the routes that are public on purpose (SPEC section 9).
// A new public route (an SSO endpoint, say) must be added here
// deliberately.
var connectPublicRoutes = map[string]bool{
	"GET /":                       true,
	"GET /healthz":                true,
	"GET /readyz":                 true,
	"GET /metrics":                true,
	"GET /assets/*file":           true,
	"GET /atlassian-connect.json": true,
	"GET /api/admin/openapi.json": true,
	"GET /privacy":                true,
}

// connectRoutePath turns a route template into a path that matches it.
func connectRoutePath(template string) string {
	parts := strings.Split(template, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = "x"
		}
	}
	return strings.Join(parts, "/")
}

// TestConnectEveryRouteAuthenticates walks every route of the engine: each
// one not public on purpose answers 401 JSON to a request without a token,
// after asking Connect to authenticate it.
func TestConnectEveryRouteAuthenticates(t *testing.T) {
	c := &recordingConnect{}
	h, _ := newTestServer(t, Deps{Connect: c, Descriptor: []byte(`{"key":"idbridge"}`), Registry: prometheus.NewRegistry()})
	routes := h.Routes()
	if len(routes) < 8 {
		t.Fatalf("only %d routes", len(routes))
	}
	seen := map[string]bool{}
	for _, r := range routes {
		name := r.Method + " " + r.Path
		seen[name] = true
		if connectPublicRoutes[name] {
			continue
		}
		t.Run(name, func(t *testing.T) {
			c.mu.Lock()
			c.calls = nil
			c.mu.Unlock()
			body := ""
			var header http.Header
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				body = "{}"
				header = http.Header{"Content-Type": {"application/json"}}
			}
			w := do(t, h, r.Method, connectRoutePath(r.Path), body, header)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d without a token, want 401; body %s", w.Code, w.Body)
			}
			jsonError(t, w)
			if len(c.called()) == 0 {
				t.Fatalf("answered 401 without asking Connect")
			}
		})
	}
	for _, want := range []string{"POST /lifecycle/installed", "POST /lifecycle/uninstalled", "POST /lifecycle/enabled",
		"POST /lifecycle/disabled", "GET /admin", "GET /api/admin/site"} {
		if !seen[want] {
			t.Errorf("route %s is missing", want)
		}
	}
}

// TestConnectAdminRoutesRequireAdmin: every route of the admin page and its
// API asks RequireAdmin, with the caller authentication returned, after
// authenticating with the right kind of token; a refusal is final.
func TestConnectAdminRoutesRequireAdmin(t *testing.T) {
	c := &recordingConnect{auth: true, admin: &models.Error{Code: models.CodeForbidden, Message: "admins only"}}
	h, _ := newTestServer(t, Deps{Connect: c})
	n := 0
	for _, r := range h.Routes() {
		name := r.Method + " " + r.Path
		if connectPublicRoutes[name] || (r.Path != "/admin" && !strings.HasPrefix(r.Path, "/admin/") && !strings.HasPrefix(r.Path, "/api/admin/")) {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			c.mu.Lock()
			c.calls = nil
			c.mu.Unlock()
			body := ""
			var header http.Header
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				body = "{}"
				header = http.Header{"Content-Type": {"application/json"}}
			}
			w := do(t, h, r.Method, connectRoutePath(r.Path), body, header)
			if w.Code != http.StatusForbidden {
				t.Fatalf("status %d for a non-admin, want 403; body %s", w.Code, w.Body)
			}
			jsonError(t, w)
			wantAuth := "AuthenticateContext"
			if !strings.HasPrefix(r.Path, "/api/") {
				wantAuth = "AuthenticateURL" // pages are framed with URL-bound tokens
			}
			if got := strings.Join(c.called(), ","); got != wantAuth+",RequireAdmin" {
				t.Fatalf("calls %s, want %s,RequireAdmin", got, wantAuth)
			}
		})
	}
	if n < 2 {
		t.Fatalf("only %d admin routes found", n)
	}
}

// TestConnectLifecycleBodies: what a client sends wrongly to a lifecycle
// URL is a 4xx JSON error, never a 500, and never reaches Connect.
func TestConnectLifecycleBodies(t *testing.T) {
	c := &recordingConnect{}
	h, _ := newTestServer(t, Deps{Connect: c, MaxBodyBytes: 4096})
	big := `{"clientKey":"` + strings.Repeat("x", 5000) + `"}`
	tests := []struct {
		name, body, contentType string
		chunked                 bool
		want                    int
	}{
		{name: "not JSON", body: "clientKey=x", want: 400},
		{name: "truncated", body: `{"clientKey":`, want: 400},
		{name: "empty", body: "", want: 400},
		{name: "array", body: "[]", want: 400},
		{name: "wrong type", body: `{"clientKey":12}`, want: 400},
		{name: "trailing data", body: `{"clientKey":"a"} {}`, want: 400},
		{name: "form content type", body: `{"clientKey":"a"}`, contentType: "application/x-www-form-urlencoded", want: 400},
		{name: "over the limit", body: big, want: 413},
		{name: "over the limit, chunked", body: big, chunked: true, want: 400},
	}
	for _, path := range []string{"/lifecycle/installed", "/lifecycle/uninstalled", "/lifecycle/enabled", "/lifecycle/disabled"} {
		for _, tc := range tests {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				c.mu.Lock()
				c.calls = nil
				c.mu.Unlock()
				ct := "application/json"
				if tc.contentType != "" {
					ct = tc.contentType
				}
				r := connectBodyRequest(http.MethodPost, path, tc.body, ct, tc.chunked)
				w := connectServe(h, r)
				if w.Code != tc.want {
					t.Fatalf("status %d, want %d; body %.200s", w.Code, tc.want, w.Body)
				}
				jsonError(t, w)
				if calls := c.called(); len(calls) != 0 {
					t.Fatalf("Connect was called: %v", calls)
				}
			})
		}
	}
}

func connectBodyRequest(method, target, body, contentType string, chunked bool) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	if chunked {
		r.ContentLength = -1
	}
	return r
}

func connectServe(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
