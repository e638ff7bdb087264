package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"idbridge/models"
)

type readyFunc func(ctx context.Context) error

func (f readyFunc) Ready(ctx context.Context) error { return f(ctx) }

func newTestServer(t *testing.T, d Deps) (*gin.Engine, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	d.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	if d.BaseURL == nil {
		d.BaseURL, _ = url.Parse("https://idbridge.example.com")
	}
	return New(d), &logs
}

func do(t *testing.T, h http.Handler, method, target string, body string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	for k, vs := range header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func jsonError(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON; body %s", ct, w.Body)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
		t.Fatalf("body %s is not {\"error\": ...}: %v", w.Body, err)
	}
	return body.Error
}

func TestNotFoundAndMethodNotAllowedAreJSON(t *testing.T) {
	h, _ := newTestServer(t, Deps{})
	if w := do(t, h, "GET", "/no/such/route", "", nil); w.Code != 404 {
		t.Errorf("unknown route: status %d, want 404", w.Code)
	} else {
		jsonError(t, w)
	}
	if w := do(t, h, "DELETE", "/healthz", "", nil); w.Code != 405 {
		t.Errorf("wrong method: status %d, want 405", w.Code)
	} else {
		jsonError(t, w)
	}
}

func TestRequestIDHonouredOrGenerated(t *testing.T) {
	h, logs := newTestServer(t, Deps{})
	w := do(t, h, "GET", "/healthz", "", http.Header{"X-Request-Id": {"abc-123"}})
	if got := w.Header().Get("X-Request-ID"); got != "abc-123" {
		t.Errorf("X-Request-ID = %q, want the caller's abc-123", got)
	}
	if !strings.Contains(logs.String(), `"request_id":"abc-123"`) {
		t.Errorf("access log lacks the request ID: %s", logs)
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", 200), "<script>"} {
		w := do(t, h, "GET", "/healthz", "", http.Header{"X-Request-Id": {bad}})
		got := w.Header().Get("X-Request-ID")
		if got == bad || len(got) != 24 {
			t.Errorf("X-Request-ID for %q = %q, want a generated 24-hex ID", bad, got)
		}
	}
}

func TestAccessLogOmitsQueryString(t *testing.T) {
	h, logs := newTestServer(t, Deps{})
	do(t, h, "GET", "/healthz?jwt=eyJsecret.token.value&x=1", "", nil)
	if strings.Contains(logs.String(), "eyJsecret") || strings.Contains(logs.String(), "jwt=") {
		t.Fatalf("access log contains the query string: %s", logs)
	}
	if !strings.Contains(logs.String(), `"path":"/healthz"`) || !strings.Contains(logs.String(), `"route":"/healthz"`) {
		t.Fatalf("access log lacks path or route: %s", logs)
	}
}

func TestPanicIsA500WithoutDetailsLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	s := &server{Deps: Deps{Log: slog.New(slog.NewJSONHandler(&logs, nil)), Now: time.Now}}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(s.requireRequestID, s.logAccess, s.recoverPanic)
	e.GET("/boom", func(*gin.Context) { panic("secret detail from deep inside") })
	w := do(t, e, "GET", "/boom", "", nil)
	if w.Code != 500 {
		t.Fatalf("status %d, want 500", w.Code)
	}
	if msg := jsonError(t, w); strings.Contains(msg, "secret detail") || strings.Contains(w.Body.String(), "goroutine") {
		t.Fatalf("500 body leaks details: %s", w.Body)
	}
	if n := strings.Count(logs.String(), `"msg":"panic"`); n != 1 {
		t.Fatalf("panic logged %d times, want once: %s", n, logs.String())
	}
}

func TestSecurityHeaders(t *testing.T) {
	h, _ := newTestServer(t, Deps{})
	w := do(t, h, "GET", "/healthz", "", nil)
	want := map[string]string{
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "no-referrer",
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
	}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q does not forbid framing", csp)
	}

	plain, _ := url.Parse("http://localhost:8080")
	h2, _ := newTestServer(t, Deps{BaseURL: plain})
	if got := do(t, h2, "GET", "/healthz", "", nil).Header().Get("Strict-Transport-Security"); got != "" {
		t.Errorf("HSTS on a plain-http base URL: %q", got)
	}
}

func TestBodyLimit(t *testing.T) {
	h, _ := newTestServer(t, Deps{MaxBodyBytes: 16})
	w := do(t, h, "POST", "/healthz", strings.Repeat("x", 17), nil)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", w.Code)
	}
	jsonError(t, w)
}

func TestReadyz(t *testing.T) {
	var down error
	h, _ := newTestServer(t, Deps{Ready: readyFunc(func(context.Context) error { return down })})
	if w := do(t, h, "GET", "/readyz", "", nil); w.Code != 200 {
		t.Fatalf("ready: status %d", w.Code)
	}
	down = fmt.Errorf("%w: %w", models.Errorf(models.CodeUnavailable, "database unreachable"), errors.New("dial tcp 10.0.0.1:5432: password=hunter2"))
	w := do(t, h, "GET", "/readyz", "", nil)
	if w.Code != 503 {
		t.Fatalf("down: status %d, want 503", w.Code)
	}
	if strings.Contains(w.Body.String(), "hunter2") || !strings.Contains(w.Body.String(), "database unreachable") {
		t.Fatalf("down body %s: want the reason, not the error", w.Body)
	}
	down = nil
	if w := do(t, h, "GET", "/readyz", "", nil); w.Code != 200 {
		t.Fatalf("back up: status %d", w.Code)
	}
}

func TestMetricsUseRouteTemplates(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, _ := newTestServer(t, Deps{Registry: reg})
	do(t, h, "GET", "/healthz", "", nil)
	do(t, h, "GET", "/nothing/here/12345", "", nil)
	body := do(t, h, "GET", "/metrics", "", nil).Body.String()
	for _, want := range []string{
		`idbridge_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`idbridge_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`idbridge_http_request_duration_seconds_bucket{method="GET",route="/healthz"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "12345") {
		t.Errorf("metrics carry a raw path")
	}
}
