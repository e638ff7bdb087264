package atlassian

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"idbridge/app/connect"
	"idbridge/models"
)

const testAppKey = "com.example.idbridge"

// fakeSite is a Jira (basePath "") or a Confluence (basePath "/wiki") that
// checks the app's JWT on every request before its handler runs: HS256 with
// the site's secret, iss the app key, and a qsh over this very request with
// the base path stripped.
type fakeSite struct {
	*httptest.Server
	site *models.Site

	mu       sync.Mutex
	requests int
	tokens   []string
	authErrs []string
}

func newFakeSite(tb testing.TB, clock *fakeClock, basePath, productType string, handler http.HandlerFunc) *fakeSite {
	tb.Helper()
	secret := []byte("shared-secret-of-the-test-site-0123456789")
	fs := &fakeSite{}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.requests++
		fs.mu.Unlock()
		token, err := fs.checkToken(r, secret, basePath, clock)
		fs.mu.Lock()
		fs.tokens = append(fs.tokens, token)
		if err != nil {
			fs.authErrs = append(fs.authErrs, err.Error())
		}
		fs.mu.Unlock()
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		handler(w, r)
	}))
	tb.Cleanup(fs.Close)
	tb.Cleanup(func() {
		for _, e := range fs.AuthErrors() {
			tb.Errorf("fake site refused a token: %s", e)
		}
	})
	fs.site = &models.Site{
		ID: "site-" + productType,
		SiteFacts: models.SiteFacts{
			ClientKey:   "client-key-" + productType,
			BaseURL:     fs.URL + basePath,
			ProductType: productType,
		},
		SharedSecret: secret,
		State:        models.SiteInstalled,
	}
	return fs
}

func (fs *fakeSite) checkToken(r *http.Request, secret []byte, basePath string, clock *fakeClock) (string, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "JWT ")
	if !ok {
		return "", errors.New("no Authorization: JWT header")
	}
	if r.URL.Query().Has("jwt") {
		return raw, errors.New("token also in the query")
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithIssuer(testAppKey), jwt.WithTimeFunc(clock.Now))
	if err != nil {
		return raw, err
	}
	if !strings.HasPrefix(r.URL.Path, basePath+"/") {
		return raw, fmt.Errorf("path %q outside base path %q", r.URL.Path, basePath)
	}
	// The qsh is over the path relative to the site's baseUrl.
	rel := *r.URL
	rel.Path = strings.TrimPrefix(r.URL.Path, basePath)
	rel.RawPath = strings.TrimPrefix(r.URL.RawPath, basePath)
	want := connect.QSH(connect.CanonicalRequest(r.Method, &rel, ""))
	if got, _ := claims["qsh"].(string); got != want {
		return raw, fmt.Errorf("qsh %q, want %q for %s %s", got, want, r.Method, r.URL.RequestURI())
	}
	return raw, nil
}

func (fs *fakeSite) Requests() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.requests
}

func (fs *fakeSite) Tokens() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.tokens...)
}

func (fs *fakeSite) AuthErrors() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.authErrs...)
}

func newTestClients(clock *fakeClock, o Options) *Clients {
	o.AppKey = testAppKey
	o.Now, o.Sleep = clock.Now, clock.Sleep
	if o.Random == nil {
		o.Random = func() float64 { return 0.5 }
	}
	return New(o)
}

func siteClient(tb testing.TB, c *Clients, fs *fakeSite) *SiteClient {
	tb.Helper()
	sc, err := c.Site(fs.site)
	if err != nil {
		tb.Fatal(err)
	}
	return sc
}

func writeJSON(w http.ResponseWriter, status int, v string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, v)
}

func TestIsSiteAdminJira(t *testing.T) {
	clock := newFakeClock()
	fs := newFakeSite(t, clock, "", ProductJira, func(w http.ResponseWriter, r *http.Request) {
		if d := cmp.Diff("POST /rest/api/3/permissions/check", r.Method+" "+r.URL.Path); d != "" {
			t.Errorf("request (-want +got):\n%s", d)
		}
		var body struct {
			GlobalPermissions []string `json:"globalPermissions"`
			AccountID         string   `json:"accountId"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("decode body: %v", err)
		}
		if diff := cmp.Diff([]string{"ADMINISTER"}, body.GlobalPermissions); diff != "" {
			t.Errorf("globalPermissions (-want +got):\n%s", diff)
		}
		switch body.AccountID {
		case "admin-1":
			writeJSON(w, 200, `{"globalPermissions":["ADMINISTER"],"projectPermissions":[]}`)
		case "user-1":
			writeJSON(w, 200, `{"globalPermissions":[],"projectPermissions":[]}`)
		case "gone-1":
			writeJSON(w, 404, `{"errorMessages":["The user does not exist."]}`)
		case "revoked":
			writeJSON(w, 401, `{"errorMessages":["Client must be authenticated"]}`)
		}
	})
	sc := siteClient(t, newTestClients(clock, Options{}), fs)
	for account, want := range map[string]bool{"admin-1": true, "user-1": false, "gone-1": false} {
		got, err := sc.IsSiteAdmin(context.Background(), ProductJira, account)
		if err != nil || got != want {
			t.Errorf("IsSiteAdmin(%q) = %v, %v; want %v", account, got, err, want)
		}
	}
	_, err := sc.IsSiteAdmin(context.Background(), "", "revoked")
	if models.ErrorCode(err) != models.CodeUnauthorized {
		t.Errorf("401: err = %v, want code unauthorized", err)
	}
	for _, tok := range fs.Tokens() {
		if strings.Contains(err.Error(), tok) {
			t.Errorf("error %q contains the token", err)
		}
	}
}

func TestIsSiteAdminConfluenceUnderWiki(t *testing.T) {
	clock := newFakeClock()
	const odd = "557058:f00d/b+a r&x=1"
	fs := newFakeSite(t, clock, "/wiki", ProductConfluence, func(w http.ResponseWriter, r *http.Request) {
		if d := cmp.Diff("GET /wiki/rest/api/user", r.Method+" "+r.URL.Path); d != "" {
			t.Errorf("request (-want +got):\n%s", d)
		}
		q := r.URL.Query()
		if d := cmp.Diff(map[string]any{"expand": "operations", "parameters": 2}, map[string]any{"expand": q.Get("expand"), "parameters": len(q)}); d != "" {
			t.Errorf("query %q (-want +got):\n%s", r.URL.RawQuery, d)
		}
		switch q.Get("accountId") {
		case "admin-1", odd:
			writeJSON(w, 200, `{"accountId":"x","operations":[{"operation":"use","targetType":"application"},{"operation":"administer","targetType":"application"}]}`)
		case "user-1":
			writeJSON(w, 200, `{"accountId":"x","operations":[{"operation":"use","targetType":"application"},{"operation":"administer","targetType":"space"}]}`)
		case "revoked":
			writeJSON(w, 401, `{"statusCode":401,"message":"unauthorized"}`)
		default:
			t.Errorf("accountId %q", q.Get("accountId"))
			writeJSON(w, 404, `{}`)
		}
	})
	sc := siteClient(t, newTestClients(clock, Options{}), fs)
	for account, want := range map[string]bool{"admin-1": true, "user-1": false, odd: true} {
		got, err := sc.IsSiteAdmin(context.Background(), "", account)
		if err != nil || got != want {
			t.Errorf("IsSiteAdmin(%q) = %v, %v; want %v", account, got, err, want)
		}
	}
	if _, err := sc.IsSiteAdmin(context.Background(), ProductConfluence, "revoked"); models.ErrorCode(err) != models.CodeUnauthorized {
		t.Errorf("401: err = %v, want code unauthorized", err)
	}
}

func TestIsSiteAdminRejectsBadInput(t *testing.T) {
	clock := newFakeClock()
	fs := newFakeSite(t, clock, "", ProductJira, func(w http.ResponseWriter, r *http.Request) {})
	sc := siteClient(t, newTestClients(clock, Options{}), fs)
	if _, err := sc.IsSiteAdmin(context.Background(), "bitbucket", "a"); models.ErrorCode(err) != models.CodeInvalid {
		t.Errorf("unknown product: err = %v, want invalid", err)
	}
	if _, err := sc.IsSiteAdmin(context.Background(), "", ""); models.ErrorCode(err) != models.CodeInvalid {
		t.Errorf("no account: err = %v, want invalid", err)
	}
	if fs.Requests() != 0 {
		t.Errorf("requests = %d, want 0", fs.Requests())
	}
}

func TestSiteClientRetries(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		steps      []step
		wantCode   models.Code // "" for success
		wantCount  int
		wantSleeps []time.Duration
	}{
		{
			name: "429 retry-after seconds on a POST", method: http.MethodPost,
			steps:     []step{status(429, "Retry-After", "1"), ok},
			wantCount: 2, wantSleeps: []time.Duration{time.Second},
		},
		{
			name: "429 with X-RateLimit-Reset", method: http.MethodGet,
			steps:     []step{status(429, "X-RateLimit-Reset", "2026-03-02T10:00:20Z"), ok},
			wantCount: 2, wantSleeps: []time.Duration{20 * time.Second},
		},
		{
			name: "503 then success", method: http.MethodGet,
			steps:     []step{status(503), status(503), ok},
			wantCount: 3, wantSleeps: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond},
		},
		{
			name: "500 on a POST is not retried", method: http.MethodPost,
			steps:    []step{status(500), ok},
			wantCode: models.CodeUnavailable, wantCount: 1,
		},
		{
			name: "503 on a POST is not retried", method: http.MethodPost,
			steps:    []step{status(503), ok},
			wantCode: models.CodeUnavailable, wantCount: 1,
		},
		{
			name: "retry cap reached", method: http.MethodGet,
			steps:     []step{status(429)},
			wantCode:  models.CodeUnavailable,
			wantCount: DefaultMaxAttempts, wantSleeps: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second},
		},
		{
			name: "retry-after beyond the cap", method: http.MethodGet,
			steps:    []step{status(429, "Retry-After", "3600")},
			wantCode: models.CodeUnavailable, wantCount: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			var mu sync.Mutex
			n := 0
			var bodies []string
			fs := newFakeSite(t, clock, "", ProductJira, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				i := n
				n++
				bodies = append(bodies, string(b))
				mu.Unlock()
				tt.steps[min(i, len(tt.steps)-1)](w, r)
			})
			sc := siteClient(t, newTestClients(clock, Options{}), fs)
			var body any
			if tt.method == http.MethodPost {
				body = map[string]string{"name": "x"}
			}
			var out struct{ OK bool }
			err := sc.Do(context.Background(), tt.method, "/rest/api/3/thing?b=2&a=1", body, &out)
			if tt.wantCode == "" {
				if err != nil || !out.OK {
					t.Fatalf("err = %v, out = %+v; want success", err, out)
				}
			} else if models.ErrorCode(err) != tt.wantCode {
				t.Fatalf("err = %v, want code %s", err, tt.wantCode)
			}
			if fs.Requests() != tt.wantCount {
				t.Errorf("requests = %d, want %d", fs.Requests(), tt.wantCount)
			}
			if diff := cmp.Diff(tt.wantSleeps, clock.Sleeps()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if tt.method == http.MethodPost {
				for _, b := range bodies {
					if b != `{"name":"x"}` {
						t.Errorf("body %q, want the original on every attempt", b)
					}
				}
			}
			if err != nil {
				for _, tok := range fs.Tokens() {
					if strings.Contains(err.Error(), tok) {
						t.Errorf("error %q contains the token", err)
					}
				}
			}
		})
	}
}

func TestSiteClientRetryAfterBeyondCapSaysWhen(t *testing.T) {
	clock := newFakeClock()
	fs := newFakeSite(t, clock, "", ProductJira, http.HandlerFunc(status(429, "Retry-After", "3600")))
	sc := siteClient(t, newTestClients(clock, Options{}), fs)
	err := sc.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", nil, nil)
	if want := "2026-03-02T11:00:00Z"; !strings.Contains(models.ErrorMessage(err), want) {
		t.Errorf("message %q does not say to retry after %s", models.ErrorMessage(err), want)
	}
}

func TestSiteClientMapsStatuses(t *testing.T) {
	tests := []struct {
		status    int
		body      string
		wantCode  models.Code
		wantMsg   string
		wantField string
	}{
		{400, `{"errorMessages":["Bad JQL"],"errors":{"accountId":"Not a valid account"}}`, models.CodeInvalid, "Atlassian rejected the request: Bad JQL; accountId: Not a valid account", "accountId"},
		{400, `{"statusCode":400,"message":"com.atlassian.confluence.api.service.exceptions.BadRequestException: bad"}`, models.CodeInvalid, "Atlassian rejected the request: com.atlassian.confluence.api.service.exceptions.BadRequestException: bad", ""},
		{400, `not json`, models.CodeInvalid, "Atlassian answered 400 Bad Request", ""},
		{401, `{}`, models.CodeUnauthorized, "Atlassian answered 401 Unauthorized", ""},
		{403, `{}`, models.CodeForbidden, "Atlassian answered 403 Forbidden", ""},
		{404, `{}`, models.CodeNotFound, "Atlassian answered 404 Not Found", ""},
		{409, `{}`, models.CodeConflict, "Atlassian answered 409 Conflict", ""},
		{502, `{}`, models.CodeUnavailable, "Atlassian answered 502 Bad Gateway", ""},
		{302, ``, models.CodeInternal, "Atlassian answered 302 Found", ""},
		{405, `{}`, models.CodeInternal, "Atlassian answered 405 Method Not Allowed", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			clock := newFakeClock()
			fs := newFakeSite(t, clock, "", ProductJira, func(w http.ResponseWriter, r *http.Request) {
				if tt.status == 302 {
					w.Header().Set("Location", "https://elsewhere.example/")
				}
				writeJSON(w, tt.status, tt.body)
			})
			sc := siteClient(t, newTestClients(clock, Options{}), fs)
			err := sc.Do(context.Background(), http.MethodDelete, "/rest/api/3/group?groupId=1", nil, nil)
			var me *models.Error
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a models.Error", err)
			}
			if diff := cmp.Diff(models.Error{Code: tt.wantCode, Message: tt.wantMsg, Field: tt.wantField}, *me); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != tt.status {
				t.Errorf("err = %v, want a *StatusError with %d", err, tt.status)
			}
			if fs.Requests() != 1 {
				t.Errorf("requests = %d, want 1", fs.Requests())
			}
		})
	}
}

func TestSiteClientSendsJSONAndDecodes(t *testing.T) {
	clock := newFakeClock()
	fs := newFakeSite(t, clock, "/wiki", ProductConfluence, func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		b, _ := io.ReadAll(r.Body)
		writeJSON(w, 201, `{"echo":`+string(b)+`}`)
	})
	sc := siteClient(t, newTestClients(clock, Options{}), fs)
	var out struct {
		Echo map[string]int `json:"echo"`
	}
	if err := sc.Do(context.Background(), http.MethodPost, "/rest/api/content", map[string]int{"n": 7}, &out); err != nil {
		t.Fatal(err)
	}
	if out.Echo["n"] != 7 {
		t.Errorf("out = %+v", out)
	}
}

func TestSiteClientBoundsResponseSize(t *testing.T) {
	clock := newFakeClock()
	fs := newFakeSite(t, clock, "", ProductJira, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"x":"`+strings.Repeat("a", MaxResponseBytes)+`"}`)
	})
	sc := siteClient(t, newTestClients(clock, Options{}), fs)
	var out map[string]string
	err := sc.Do(context.Background(), http.MethodGet, "/rest/api/3/users", nil, &out)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v, want a size error", err)
	}
}

func TestSiteClientRefusesOtherOrigins(t *testing.T) {
	clock := newFakeClock()
	handler := func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{}`) }
	fs := newFakeSite(t, clock, "/wiki", ProductConfluence, handler)
	other := newFakeSite(t, clock, "/wiki", ProductConfluence, handler)
	sc := siteClient(t, newTestClients(clock, Options{}), fs)
	u, _ := url.Parse(fs.URL)
	for _, target := range []string{
		other.URL + "/wiki/rest/api/user",                              // another port
		"https://" + u.Host + "/wiki/rest/api/user",                    // another scheme
		"//" + strings.TrimPrefix(other.URL, "http://") + "/wiki/rest", // scheme-relative
		fs.URL + "/rest/api/user",                                      // outside /wiki
		fs.URL + "/wikix/rest/api/user",                                // not a segment of /wiki
		"http://user@" + u.Host + "/wiki/rest/api/user",                // user info
		"rest/api/user",      // relative without a slash
		"@evil.example/rest", // would become userinfo
	} {
		err := sc.Do(context.Background(), http.MethodGet, target, nil, nil)
		if err == nil {
			t.Errorf("Do(%q) succeeded, want refused", target)
		}
		if strings.HasPrefix(target, "http") && !errors.Is(err, ErrForeignOrigin) {
			t.Errorf("Do(%q) = %v, want ErrForeignOrigin", target, err)
		}
	}
	if fs.Requests()+other.Requests() != 0 {
		t.Errorf("requests sent: %d to the site, %d to the other, want none", fs.Requests(), other.Requests())
	}
	// An absolute URL on the site itself (a pagination link) is fine.
	if err := sc.Do(context.Background(), http.MethodGet, fs.URL+"/wiki/rest/api/user?start=25", nil, nil); err != nil {
		t.Errorf("absolute on-site URL: %v", err)
	}
	if err := sc.Do(context.Background(), http.MethodGet, strings.ToUpper("http://")+strings.TrimPrefix(fs.URL, "http://")+"/wiki/rest/api/space", nil, nil); err != nil {
		t.Errorf("upper-case scheme: %v", err)
	}
}

func TestSiteClientTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	clock := newFakeClock()
	fs := newFakeSite(t, clock, "", ProductJira, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	sc := siteClient(t, newTestClients(clock, Options{Timeout: 50 * time.Millisecond}), fs)
	start := time.Now()
	err := sc.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", nil, nil)
	if models.ErrorCode(err) != models.CodeUnavailable {
		t.Errorf("err = %v, want unavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("returned after %s, want about 50ms", elapsed)
	}
	if fs.Requests() != 1 {
		t.Errorf("requests = %d, want 1 (no retry once the call's time is up)", fs.Requests())
	}
}

func TestSiteClientCancelDuringWait(t *testing.T) {
	clock := newFakeClock()
	fs := newFakeSite(t, clock, "", ProductJira, http.HandlerFunc(status(429, "Retry-After", "10")))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newTestClients(clock, Options{})
	// The transport's sleeper blocks until ctx ends, as the real one would.
	c.HTTP.Transport.(*Transport).Sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	sc := siteClient(t, c, fs)
	err := sc.Do(ctx, http.MethodGet, "/rest/api/3/myself", nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if fs.Requests() != 1 {
		t.Errorf("requests = %d, want 1", fs.Requests())
	}
}

func TestNewSiteClientValidates(t *testing.T) {
	good := models.Site{
		ID:           "s",
		SiteFacts:    models.SiteFacts{ClientKey: "k", BaseURL: "https://a.atlassian.net/"},
		SharedSecret: []byte("x"),
	}
	if _, err := NewSiteClient(nil, testAppKey, &good, nil); err != nil {
		t.Errorf("good site: %v", err)
	}
	for name, mutate := range map[string]func(*models.Site){
		"no secret":   func(s *models.Site) { s.SharedSecret = nil },
		"ftp":         func(s *models.Site) { s.BaseURL = "ftp://a.atlassian.net" },
		"no host":     func(s *models.Site) { s.BaseURL = "/wiki" },
		"query":       func(s *models.Site) { s.BaseURL = "https://a.atlassian.net?x=1" },
		"user info":   func(s *models.Site) { s.BaseURL = "https://u:p@a.atlassian.net" },
		"unparseable": func(s *models.Site) { s.BaseURL = "https://a b/%zz" },
	} {
		s := good
		mutate(&s)
		if _, err := NewSiteClient(nil, testAppKey, &s, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := NewSiteClient(nil, "", &good, nil); err == nil {
		t.Error("no app key: no error")
	}
}

// The fake site's check is what makes the other tests meaningful: it must
// refuse a token bound to another request, or with the /wiki left in.
func TestFakeSiteRefusesMisboundTokens(t *testing.T) {
	clock := newFakeClock()
	fs := newFakeSite(t, clock, "/wiki", ProductConfluence, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{}`) })
	target, _ := url.Parse(fs.URL + "/wiki/rest/api/user?accountId=a")
	other, _ := url.Parse(fs.URL + "/wiki/rest/api/user?accountId=b")
	withWiki := connect.QSH(connect.CanonicalRequest(http.MethodGet, target, ""))
	tokens := map[string]string{}
	var err error
	if tokens["other query"], err = connect.SignAppToken(testAppKey, fs.site.SharedSecret, http.MethodGet, other, fs.site.BaseURL, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if tokens["other method"], err = connect.SignAppToken(testAppKey, fs.site.SharedSecret, http.MethodPost, target, fs.site.BaseURL, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if tokens["wrong secret"], err = connect.SignAppToken(testAppKey, []byte("not the secret"), http.MethodGet, target, fs.site.BaseURL, clock.Now()); err != nil {
		t.Fatal(err)
	}
	tokens["qsh with /wiki"], err = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": testAppKey, "iat": clock.Now().Unix(), "exp": clock.Now().Add(time.Minute).Unix(), "qsh": withWiki,
	}).SignedString(fs.site.SharedSecret)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range tokens {
		req, _ := http.NewRequest(http.MethodGet, target.String(), nil)
		req.Header.Set("Authorization", "JWT "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
		}
	}
	fs.mu.Lock()
	if len(fs.authErrs) != len(tokens) {
		t.Errorf("fake site refused %d tokens, want %d", len(fs.authErrs), len(tokens))
	}
	fs.authErrs = nil // expected refusals
	fs.mu.Unlock()
}

func TestIsSiteAdminJiraRetriesMarkedPost(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	n := 0
	fs := newFakeSite(t, clock, "", ProductJira, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			writeJSON(w, 503, `{}`)
			return
		}
		writeJSON(w, 200, `{"globalPermissions":["ADMINISTER"]}`)
	})
	sc := siteClient(t, newTestClients(clock, Options{}), fs)
	admin, err := sc.IsSiteAdmin(context.Background(), ProductJira, "admin-1")
	if err != nil || !admin {
		t.Errorf("IsSiteAdmin = %v, %v; want true after a retried 503", admin, err)
	}
	if fs.Requests() != 2 {
		t.Errorf("requests = %d, want 2", fs.Requests())
	}
}
