package fakeatlassian

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Options configures a Fake. Zero fields take defaults.
type Options struct {
	// Now is the clock of Retry-After dates, token expiry and the
	// early-retry check; time.Now when nil. Give it the clock the code under
	// test uses, so both agree on when a Retry-After runs out.
	Now func() time.Time
	// Seed makes probabilistic faults repeatable; 0 picks one at random.
	Seed uint64
	// InstallKey is the key Atlassian signs installs with, served by the
	// install-key server under InstallKeyID; one is generated when nil
	// (tests that sign installs themselves pass theirs: a 2048-bit key is
	// slow to make).
	InstallKey   *rsa.PrivateKey
	InstallKeyID string
}

// Fake is Atlassian for one test (or one demo): its sites and the shared
// API host. It is safe for concurrent use.
type Fake struct {
	api  *httptest.Server
	now  func() time.Time
	seed uint64
	opts Options
	// closing is closed by Close, ending hung requests.
	closing chan struct{}

	mu      sync.Mutex
	sites   []*Site
	byHost  map[string]*Site // "127.0.0.1:port" of the site's listener
	byCloud map[string]*Site
	byOrg   map[string]*Site
	bearers map[string]*bearer // OAuth access tokens handed out
	keys    *installKeys       // connect.go, started on first use
	closed  bool

	reporting *reportingAPI // reporting.go, made on first use
}

// bearer is an OAuth access token: which client of which site got it and
// until when it is valid.
type bearer struct {
	site     *Site
	clientID string
	expires  time.Time
	// app marks an app system token (IssueSystemToken): the app's bot
	// user, not a service account's client.
	app bool
	// scopes are the OAuth scopes of an app system token (the manifest's);
	// nil: unrestricted.
	scopes []string
}

// New starts the Fake's API host (gateway, OAuth, organization Admin API).
// Close stops it and every site.
func New(o Options) *Fake {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	seed := o.Seed
	if seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, x := range b {
			seed = seed<<8 | uint64(x)
		}
	}
	f := &Fake{
		now: now, seed: seed, opts: o, closing: make(chan struct{}),
		byHost: map[string]*Site{}, byCloud: map[string]*Site{}, byOrg: map[string]*Site{},
		bearers: map[string]*bearer{},
	}
	f.api = httptest.NewServer(f.apiMux())
	return f
}

// APIURL is the API host: IDBRIDGE_ATLASSIAN_API_URL and
// IDBRIDGE_ATLASSIAN_AUTH_URL both point here.
func (f *Fake) APIURL() string { return f.api.URL }

// Close stops every listener. It blocks until outstanding requests finish,
// so tests call it after the code under test stopped.
func (f *Fake) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	sites := append([]*Site(nil), f.sites...)
	keys := f.keys
	f.mu.Unlock()
	close(f.closing)
	if keys != nil {
		keys.srv.Close()
	}
	for _, s := range sites {
		s.srv.CloseClientConnections()
		s.srv.Close()
	}
	f.api.CloseClientConnections()
	f.api.Close()
}

// Sites lists the sites in the order they were made.
func (f *Fake) Sites() []*Site {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Site(nil), f.sites...)
}

func (f *Fake) siteByCloud(cloudID string) *Site {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byCloud[cloudID]
}

func (f *Fake) siteByOrg(orgID string) *Site {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byOrg[orgID]
}

// siteByAccount finds the site that holds accountID (account IDs are
// unique across the Fake, as across Atlassian).
func (f *Fake) siteByAccount(accountID string) *Site {
	for _, s := range f.Sites() {
		found := false
		s.Do(func() { _, found = s.accounts[accountID] })
		if found {
			return s
		}
	}
	return nil
}

// issueBearer records a new OAuth access token for a site's client.
func (f *Fake) issueBearer(s *Site, clientID string, ttl time.Duration) string {
	tok := "fake-oauth-" + randomHex(16)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bearers[tok] = &bearer{site: s, clientID: clientID, expires: f.now().Add(ttl)}
	return tok
}

// bearer returns a copy of a valid access token's record.
func (f *Fake) bearer(tok string) (bearer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.bearers[tok]
	if !ok || !f.now().Before(b.expires) {
		return bearer{}, false
	}
	return *b, true
}

// revokeBearers drops every OAuth access token of a site (its client
// secret changed or was revoked); app system tokens stay.
func (f *Fake) revokeBearers(s *Site) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, b := range f.bearers {
		if b.site == s && !b.app {
			delete(f.bearers, k)
		}
	}
}

// apiMux routes the API host: the gateway to each site's REST API, the
// OAuth token endpoint, and the organization Admin API.
func (f *Fake) apiMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", f.serveToken)
	mux.HandleFunc("POST /app/report-accounts/", f.serveReportAccounts)
	gateway := func(product string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s := f.siteByCloud(r.PathValue("cloudId"))
			if s == nil {
				writeJSON(w, http.StatusNotFound, map[string]any{"code": 404, "message": "Cloud id not found"})
				return
			}
			prefix := "/ex/" + product + "/" + r.PathValue("cloudId")
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
			r2.URL.RawPath = ""
			if r2.URL.Path == "" {
				r2.URL.Path = "/"
			}
			s.serve(w, r2, viaGateway)
		}
	}
	mux.HandleFunc("/ex/jira/{cloudId}/", gateway("jira"))
	mux.HandleFunc("/ex/confluence/{cloudId}/", gateway("confluence"))
	f.orgRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"code": 404, "message": "Not Found"})
	})
	return mux
}

// SiteOptions describes a new site.
type SiteOptions struct {
	// Product is "jira" (default) or "confluence" (a Confluence-only site,
	// whose base URL ends in /wiki and whose groups live under /wiki/rest).
	Product string
	// CloudID and OrgID are generated when empty.
	CloudID string
	OrgID   string
}

// NewSite starts a site on its own listener.
func (f *Fake) NewSite(o SiteOptions) *Site {
	if o.Product == "" {
		o.Product = "jira"
	}
	if o.CloudID == "" {
		o.CloudID = newUUID()
	}
	if o.OrgID == "" {
		o.OrgID = newUUID()
	}
	s := newSite(f, o)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveOrigin))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		s.srv.Close()
		panic("fakeatlassian: NewSite after Close")
	}
	f.sites = append(f.sites, s)
	f.byHost[strings.TrimPrefix(s.srv.URL, "http://")] = s
	f.byCloud[s.CloudID] = s
	f.byOrg[s.OrgID] = s
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
