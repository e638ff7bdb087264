package atlassian

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// fakeGateway is api.atlassian.com and auth.atlassian.com in one: the
// OAuth token endpoint, the Jira gateway under /ex/jira/{cloudId}, and the
// organization Admin API. It answers like them: 401 for a wrong
// credential, the token's Bearer only while it lives.
type fakeGateway struct {
	*httptest.Server
	t            testing.TB
	clientID     string
	clientSecret string
	expiresIn    int
	tokenCalls   atomic.Int64
	apiCalls     atomic.Int64
	mu           sync.Mutex
	tokens       map[string]bool
	lastForm     url.Values
	lastPath     string
	lastAuth     string
}

func newFakeGateway(t *testing.T) *fakeGateway {
	g := &fakeGateway{t: t, clientID: "cid", clientSecret: "client-secret-0123456789", expiresIn: 3600, tokens: map[string]bool{}}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Close)
	return g
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/oauth/token" {
		g.tokenCalls.Add(1)
		_ = r.ParseForm()
		g.mu.Lock()
		g.lastForm = r.PostForm
		g.mu.Unlock()
		if r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("audience") != "api.atlassian.com" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_request"}`)
			return
		}
		if r.PostForm.Get("client_id") != g.clientID || r.PostForm.Get("client_secret") != g.clientSecret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"access_denied","error_description":"Unauthorized"}`)
			return
		}
		tok := fmt.Sprintf("access-%d", g.tokenCalls.Load())
		g.mu.Lock()
		g.tokens[tok] = true
		g.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": g.expiresIn, "scope": "read:jira-user"})
		return
	}
	g.apiCalls.Add(1)
	g.mu.Lock()
	g.lastPath, g.lastAuth = r.URL.RequestURI(), r.Header.Get("Authorization")
	bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	valid := g.tokens[bearer]
	g.mu.Unlock()
	user, pass, basic := r.BasicAuth()
	if !valid && !(basic && user == "bot@example.com" && pass == "good-token-0123456789") {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":401,"message":"Unauthorized; scope does not match"}`)
		return
	}
	_, _ = io.WriteString(w, `{"accountId":"712020:bot","displayName":"Automation"}`)
}

func (g *fakeGateway) revokeAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.tokens)
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func testServiceAccounts(t *testing.T, g *fakeGateway, clock *fakeClock) *ServiceAccounts {
	c := New(Options{AppKey: "idbridge", Now: clock.Now, Sleep: clock.Sleep})
	return NewServiceAccounts(c, mustURL(t, g.URL), mustURL(t, g.URL))
}

func TestServiceAccountOAuthTokenIsCachedUntilExpiry(t *testing.T) {
	g := newFakeGateway(t)
	sa := testServiceAccounts(t, g, newFakeClock())
	site := &models.Site{ID: "s_1", SiteFacts: models.SiteFacts{BaseURL: "https://x.atlassian.net"}}
	acc := &models.ServiceAccount{Kind: models.AccountOAuthClient, ClientID: "cid", ClientSecret: g.clientSecret, CloudID: "cloud-1"}
	ctx := context.Background()
	for range 3 {
		c, err := sa.Client(site, acc)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, http.MethodGet, "/rest/api/3/myself", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.tokenCalls.Load(); n != 1 {
		t.Errorf("token endpoint called %d times for 3 calls, want 1 (cached)", n)
	}
	if d := cmp.Diff(map[string]string{"path": "/ex/jira/cloud-1/rest/api/3/myself", "Authorization": "Bearer access-1"},
		map[string]string{"path": g.lastPath, "Authorization": g.lastAuth}); d != "" {
		t.Errorf("the call (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"client_secret": g.clientSecret, "audience": "api.atlassian.com"},
		map[string]string{"client_secret": g.lastForm.Get("client_secret"), "audience": g.lastForm.Get("audience")}); d != "" {
		t.Errorf("token request form (-want +got):\n%s", d)
	}

	// A revoked token: the 401 drops it, and the next call fetches anew.
	g.revokeAll()
	c, _ := sa.Client(site, acc)
	if err := c.Do(ctx, http.MethodGet, "/rest/api/3/myself", nil, nil); models.ErrorCode(err) != models.CodeUnauthorized {
		t.Fatalf("with a revoked token: %v, want unauthorized", err)
	}
	if err := c.Do(ctx, http.MethodGet, "/rest/api/3/myself", nil, nil); err != nil {
		t.Fatalf("after the 401 the token is not fetched again: %v", err)
	}
	if n := g.tokenCalls.Load(); n != 2 {
		t.Errorf("token endpoint called %d times, want 2", n)
	}

	// A new secret is a new cache entry; Forget drops the site's.
	sa.Forget("s_1")
	if len(sa.tokens) != 0 {
		t.Errorf("Forget left %d cached tokens", len(sa.tokens))
	}
}

func TestServiceAccountOAuthExpiredTokenIsRefreshed(t *testing.T) {
	g := newFakeGateway(t)
	g.expiresIn = 5 // within oauth2's 10 s expiry margin: never reused
	sa := testServiceAccounts(t, g, newFakeClock())
	site := &models.Site{ID: "s_1", SiteFacts: models.SiteFacts{BaseURL: "https://x.atlassian.net"}}
	acc := &models.ServiceAccount{Kind: models.AccountOAuthClient, ClientID: "cid", ClientSecret: g.clientSecret, CloudID: "cloud-1"}
	for range 2 {
		c, _ := sa.Client(site, acc)
		if err := c.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.tokenCalls.Load(); n != 2 {
		t.Errorf("token endpoint called %d times, want 2 (the token expires at once)", n)
	}
}

func TestServiceAccountOAuthRefusedCredentials(t *testing.T) {
	g := newFakeGateway(t)
	sa := testServiceAccounts(t, g, newFakeClock())
	c, err := sa.Client(&models.Site{ID: "s_1", SiteFacts: models.SiteFacts{BaseURL: "https://x.atlassian.net"}},
		&models.ServiceAccount{Kind: models.AccountOAuthClient, ClientID: "cid", ClientSecret: "wrong-secret-000000", CloudID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", nil, nil)
	if models.ErrorCode(err) != models.CodeUnauthorized || !strings.Contains(models.ErrorMessage(err), "client ID and secret") {
		t.Fatalf("err = %v, want unauthorized naming the client credentials", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("the error shows the secret: %v", err)
	}
	if g.apiCalls.Load() != 0 {
		t.Error("the API was called without a token")
	}
}

func TestServiceAccountBasicKinds(t *testing.T) {
	g := newFakeGateway(t)
	sa := testServiceAccounts(t, g, newFakeClock())
	ctx := context.Background()

	// Scoped token: Basic, through the gateway.
	c, err := sa.Client(&models.Site{ID: "s_1", SiteFacts: models.SiteFacts{BaseURL: "https://x.atlassian.net"}},
		&models.ServiceAccount{Kind: models.AccountScopedToken, Email: "bot@example.com", Token: "good-token-0123456789", CloudID: "abc-123"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, http.MethodGet, "/rest/api/3/mypermissions?permissions=ADMINISTER", nil, nil); err != nil {
		t.Fatal(err)
	}
	if g.lastPath != "/ex/jira/abc-123/rest/api/3/mypermissions?permissions=ADMINISTER" || !strings.HasPrefix(g.lastAuth, "Basic ") {
		t.Errorf("scoped call: %s with %q", g.lastPath, g.lastAuth)
	}

	// Classic token: Basic against the site's origin, /wiki dropped.
	c, err = sa.Client(&models.Site{ID: "s_1", SiteFacts: models.SiteFacts{BaseURL: g.URL + "/wiki"}},
		&models.ServiceAccount{Kind: models.AccountAPIToken, Email: "bot@example.com", Token: "good-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, http.MethodGet, "/rest/api/3/myself", nil, nil); err != nil {
		t.Fatal(err)
	}
	if g.lastPath != "/rest/api/3/myself" {
		t.Errorf("classic call went to %s", g.lastPath)
	}
	// A wrong token is a 401, mapped to unauthorized.
	c, _ = sa.Client(&models.Site{
		ID:        "s_1",
		SiteFacts: models.SiteFacts{BaseURL: g.URL},
	}, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "bot@example.com", Token: "bad"})
	if err := c.Do(ctx, http.MethodGet, "/rest/api/3/myself", nil, nil); models.ErrorCode(err) != models.CodeUnauthorized {
		t.Errorf("wrong token: %v", err)
	}
	// Paths off the base are refused before anything is sent.
	if err := c.Do(ctx, http.MethodGet, "https://evil.example/rest", nil, nil); err == nil {
		t.Error("an absolute URL was accepted")
	}
	// Scoped and OAuth need a cloud ID.
	if _, err := sa.Client(&models.Site{ID: "s_1"}, &models.ServiceAccount{Kind: models.AccountScopedToken, Token: "x"}); models.ErrorCode(err) != models.CodeInvalid {
		t.Errorf("scoped without cloud ID: %v", err)
	}
}

func TestServiceAccountRetriesRateLimitAndMapsOutages(t *testing.T) {
	clock := newFakeClock()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			_, _ = io.WriteString(w, `{"accountId":"x"}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	c := New(Options{AppKey: "idbridge", Now: clock.Now, Sleep: clock.Sleep, MaxAttempts: 2})
	sa := NewServiceAccounts(c, mustURL(t, srv.URL), mustURL(t, srv.URL))
	client, _ := sa.Client(&models.Site{
		ID:        "s_1",
		SiteFacts: models.SiteFacts{BaseURL: srv.URL},
	}, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "a@example.com", Token: "t"})
	var out struct{ AccountID string }
	if err := client.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", nil, &out); err != nil || out.AccountID != "x" {
		t.Fatalf("after a 429: %v, %+v", err, out)
	}
	if sleeps := clock.Sleeps(); len(sleeps) == 0 || sleeps[0] != 2*time.Second {
		t.Errorf("slept %v, want the 2 s of Retry-After first", sleeps)
	}
	if err := client.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", nil, nil); models.ErrorCode(err) != models.CodeUnavailable {
		t.Errorf("a 502: %v, want unavailable", err)
	}
}

func TestServiceAccountTimeoutIsUnavailable(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	c := New(Options{AppKey: "idbridge", Base: &http.Transport{ResponseHeaderTimeout: 50 * time.Millisecond}, MaxAttempts: 1})
	sa := NewServiceAccounts(c, mustURL(t, srv.URL), mustURL(t, srv.URL))
	client, _ := sa.Client(&models.Site{
		ID:        "s_1",
		SiteFacts: models.SiteFacts{BaseURL: srv.URL},
	}, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "a@example.com", Token: "t"})
	err := client.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", nil, nil)
	if models.ErrorCode(err) != models.CodeUnavailable || !IsTimeout(err) {
		t.Fatalf("err = %v, want an unavailable timeout", err)
	}
}
