package fakeatlassian

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

// TestAppJWTBoundToInstallAndRequest: a site accepts the app's JWT only
// when it verifies with the current secret of one of its installations and
// its qsh is this request's; every refusal is listed with its reason.
func TestAppJWTBoundToInstallAndRequest(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	f := New(Options{Now: func() time.Time { return now }})
	t.Cleanup(f.Close)
	s := f.NewSite(SiteOptions{Product: "confluence"})
	s.InstallAppFor("app", "client-a", "secret-a-0123456789")
	s.InstallAppFor("app", "client-b", "secret-b-0123456789")
	s.AddAdmin("admin-1")
	target := s.BaseURL() + "/rest/api/user?accountId=admin-1&expand=operations"
	call := func(secret, qshTarget string) (int, map[string]any) {
		t.Helper()
		qsh, err := QSH(http.MethodGet, qshTarget, s.BaseURL())
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "app", "qsh": qsh, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "JWT "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, body
	}
	for _, secret := range []string{"secret-a-0123456789", "secret-b-0123456789"} {
		code, body := call(secret, target)
		if d := cmp.Diff(map[string]any{"status": http.StatusOK, "has operations": true},
			map[string]any{"status": code, "has operations": body["operations"] != nil}); d != "" {
			t.Errorf("signed with an installation's secret (-want +got):\n%s", d)
		}
	}
	s.InstallAppFor("app", "client-a", "secret-a2-0123456789") // a reinstall
	if code, _ := call("secret-a-0123456789", target); code != http.StatusUnauthorized {
		t.Errorf("the secret a reinstall replaced: %d, want 401", code)
	}
	if code, _ := call("secret-a2-0123456789", s.BaseURL()+"/rest/api/user?accountId=someone-else"); code != http.StatusUnauthorized {
		t.Errorf("a qsh of another request: %d, want 401", code)
	}
	refused := s.RefusedAppJWTs()
	if len(refused) != 2 {
		t.Fatalf("refusals %q, want a stale secret then a qsh", refused)
	}
	for i, why := range []string{"no current shared secret", "qsh"} {
		if !strings.Contains(refused[i], why) {
			t.Errorf("refusal %d: %q, want it to say %q", i, refused[i], why)
		}
	}
}

// TestInstallKeyServerFaults: the install-key server serves the key it
// was given under its kid, answers an injected status or nothing for other
// kids, and records every path asked for.
func TestInstallKeyServerFaults(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	f := New(Options{InstallKey: key, InstallKeyID: "k1"})
	t.Cleanup(f.Close)
	base, err := f.InstallKeysURL()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.FailInstallKey("boom", http.StatusBadGateway); err != nil {
		t.Fatal(err)
	}
	if err := f.HangInstallKey("hang"); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 200 * time.Millisecond}
	got := map[string]int{}
	for _, kid := range []string{"k1", "boom", "nope", "hang"} {
		res, err := client.Get(base + "/" + kid)
		if err != nil {
			got[kid] = 0 // no answer
			continue
		}
		_ = res.Body.Close()
		got[kid] = res.StatusCode
	}
	want := map[string]int{"k1": http.StatusOK, "boom": http.StatusBadGateway, "nope": http.StatusNotFound, "hang": 0}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("answers by kid (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"/k1", "/boom", "/nope", "/hang"}, f.InstallKeyRequests()); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
}

// TestConnectPages: once the app is installed, the site serves Jira's page
// around each of the app's page modules, framing the module's URL with a
// JWT bound to it and handing out a context JWT, both signed with the
// secret the install sent; another app or module is a 404.
func TestConnectPages(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	f := New(Options{InstallKey: key, InstallKeyID: "k1"})
	t.Cleanup(f.Close)
	s := f.NewSite(SiteOptions{})
	var sentSecret string
	app := httptest.NewServer(nil)
	t.Cleanup(app.Close)
	app.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/atlassian-connect.json":
			_, _ = io.WriteString(w, `{"key":"the-app","baseUrl":"`+app.URL+`","lifecycle":{"installed":"/installed"},
				"modules":{"adminPages":[{"key":"admin-page","url":"/admin"}]}}`)
		case "/installed":
			var body struct{ SharedSecret string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			sentSecret = body.SharedSecret
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	})
	if _, err := s.ConnectPageURL("admin-page"); err == nil {
		t.Errorf("ConnectPageURL before an install: no error")
	}
	if _, err := s.InstallConnectApp(context.Background(), nil, app.URL+"/atlassian-connect.json", "admin-1"); err != nil {
		t.Fatal(err)
	}
	s.ServeConnectPages("admin-1")
	secret, err := s.SharedSecret()
	if err != nil || secret != sentSecret || secret == "" {
		t.Fatalf("SharedSecret() = %q, %v; the install sent %q", secret, err, sentSecret)
	}
	page, err := s.ConnectPageURL("admin-page")
	if err != nil {
		t.Fatal(err)
	}
	get := func(u string) (int, string) {
		t.Helper()
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := get(page)
	src := regexp.MustCompile(`<iframe id="addon" title="[^"]*" src="([^"]+)"`).FindStringSubmatch(body)
	tok := regexp.MustCompile(`var token = "([^"]+)";`).FindStringSubmatch(body)
	if code != http.StatusOK || src == nil || tok == nil {
		t.Fatalf("the page: %d, want 200 with an iframe and a token:\n%s", code, body)
	}
	frame, err := url.Parse(html.UnescapeString(src[1]))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(frame.Query().Get("jwt"), claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatalf("the iframe's JWT: %v", err)
	}
	qsh, _ := QSH(http.MethodGet, frame.String(), app.URL)
	ctxClaims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok[1], ctxClaims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatalf("the context JWT: %v", err)
	}
	if d := cmp.Diff(map[string]any{"frame": app.URL + "/admin", "sub": "admin-1", "qsh": qsh, "context sub": "admin-1", "context qsh": "context-qsh"},
		map[string]any{"frame": frame.Scheme + "://" + frame.Host + frame.Path, "sub": claims["sub"], "qsh": claims["qsh"],
			"context sub": ctxClaims["sub"], "context qsh": ctxClaims["qsh"]}); d != "" {
		t.Errorf("the page's iframe and token (-want +got):\n%s", d)
	}
	for _, other := range []string{"/plugins/servlet/ac/other-app/admin-page", "/plugins/servlet/ac/the-app/no-such-page", "/plugins/servlet/ac/the-app"} {
		if code, _ := get(s.Origin() + other); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", other, code)
		}
	}
}
