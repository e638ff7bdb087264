package fakeatlassian

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Account types, as Atlassian's user objects name them.
const (
	AccountAtlassian = "atlassian"
	AccountCustomer  = "customer"
	AccountApp       = "app"
)

// Account is an Atlassian account as one site sees it.
type Account struct {
	AccountID   string
	Email       string
	DisplayName string
	Type        string // AccountAtlassian, AccountCustomer or AccountApp
	// InSite is false once the account was removed from the site
	// (DELETE /rest/api/3/user); creating it again brings it back with the
	// same account ID, as Atlassian does.
	InSite bool
	// Suspended is the organization's suspension of a managed account.
	Suspended bool
	// Managed says the site's organization manages the account: only then
	// may the organization Admin API suspend it or change its profile.
	Managed  bool
	Products []string
}

// active is what Atlassian's "active" field says.
func (a *Account) active() bool { return a.InSite && !a.Suspended }

// Group is a site's group. Members are account IDs.
type Group struct {
	ID      string
	Name    string
	Members map[string]bool
}

// ServiceAccount is a set of credentials the site accepts, and the
// account they act as.
type ServiceAccount struct {
	Email       string
	APIToken    string // classic: Basic email:token against the site
	ScopedToken string // scoped: Basic email:token through the gateway only
	// OAuth client credentials of an Atlassian service account: a Bearer
	// from POST {api}/oauth/token, valid through the gateway only.
	ClientID     string
	ClientSecret string
	// Admin grants Jira's ADMINISTER: without it, creating users, customers
	// and groups is 403.
	Admin bool
}

// Site is one Jira or Confluence Cloud site. Its state is guarded by mu;
// other areas of the package keep theirs in fields here too.
type Site struct {
	f   *Fake
	srv *httptest.Server
	mux *http.ServeMux

	Product string
	CloudID string
	OrgID   string

	mu       sync.Mutex
	accounts map[string]*Account // by account ID
	groups   map[string]*Group   // by group ID
	// deleted names the groups deleted, by ID, so that a repeated delete
	// is logged against the same group.
	deleted map[string]string
	service []ServiceAccount
	orgKeys map[string]bool
	// Connect: the app's key, the shared secret of each installation by
	// client key, and who administers the site, for the admin check the
	// app makes with its own JWT. refused lists the app JWTs the site
	// refused, with why (RefusedAppJWTs).
	appKey  string
	secrets map[string]string
	admins  map[string]bool
	refused []string
	// clientKey is the site's Connect client key, made at its first
	// install; connect is the app installed with InstallConnectApp; ui
	// holds the routes of the site's web UI (HandleUI). See connect.go.
	clientKey string
	connect   *connectApp
	ui        *http.ServeMux

	faults []*faultRule
	rate   *rateLimit
	rec    recorder
	// appCalls counts requests the site accepted with an app system token.
	appCalls int

	jsm jsmState // jsm.go
}

// via says how a request reached a site.
type via int

const (
	viaSite    via = iota // the site's own origin
	viaGateway            // {api}/ex/jira/{cloudId} or /ex/confluence/{cloudId}
)

func newSite(f *Fake, o SiteOptions) *Site {
	s := &Site{
		f: f, Product: o.Product, CloudID: o.CloudID, OrgID: o.OrgID,
		accounts: map[string]*Account{}, groups: map[string]*Group{}, deleted: map[string]string{},
		orgKeys: map[string]bool{}, admins: map[string]bool{}, secrets: map[string]string{},
	}
	s.rec.init(f.seed ^ uint64(len(o.CloudID))*0x9e3779b97f4a7c15)
	s.mux = http.NewServeMux()
	s.routes()
	return s
}

// routes registers every area's routes on the site's mux. An area added
// in another file adds its line here.
func (s *Site) routes() {
	s.jiraRoutes(s.mux)
	s.customerRoutes(s.mux)
	s.confluenceRoutes(s.mux)
	s.jsmRoutes(s.mux)
}

// BaseURL is the site's baseUrl as Connect's install payload carries it:
// the origin, plus /wiki for a Confluence-only site.
func (s *Site) BaseURL() string {
	if s.Product == "confluence" {
		return s.srv.URL + "/wiki"
	}
	return s.srv.URL
}

// Origin is the site's scheme://host:port.
func (s *Site) Origin() string { return s.srv.URL }

// Host is the site's host:port, for IDBRIDGE_TRUSTED_PRODUCT_HOSTS.
func (s *Site) Host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// Do runs fn with the site's state locked: the way for another area of the
// package, or a test, to read or change it consistently.
func (s *Site) Do(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

// AddServiceAccount makes the site accept a set of credentials. Its
// account exists in the site (type app for an OAuth client, else
// atlassian), so /rest/api/3/myself answers with it.
func (s *Site) AddServiceAccount(sa ServiceAccount) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.service = append(s.service, sa)
	typ := AccountAtlassian
	if sa.ClientID != "" && sa.Email == "" {
		typ = AccountApp
		sa.Email = sa.ClientID + "@connect.atlassian.com"
	}
	if s.findByEmail(sa.Email) == nil {
		s.putAccount(&Account{Email: sa.Email, DisplayName: "Service account " + sa.Email, Type: typ, InSite: true})
	}
}

// RevokeCredentials makes the site refuse every credential it accepted
// (401), as when the tokens expired or were revoked. OAuth access tokens
// already handed out stop working too.
func (s *Site) RevokeCredentials() {
	s.mu.Lock()
	s.service = nil
	s.mu.Unlock()
	s.f.revokeBearers(s)
}

// AddOrgKey makes the site's organization accept an Admin API key.
func (s *Site) AddOrgKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orgKeys[key] = true
}

// InstallApp tells the site the Connect app's key and shared secret, so it
// accepts the app's JWT (HS256, iss the app key) on its REST API; admins
// are the account IDs the admin check answers yes for.
func (s *Site) InstallApp(appKey, sharedSecret string, admins ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appKey = appKey
	s.secrets = map[string]string{s.clientKey: sharedSecret}
	for _, a := range admins {
		s.admins[a] = true
	}
}

// InstallAppFor records one more Connect installation of appKey on the
// site, under clientKey with its shared secret, as the signed install
// that tests post themselves (instead of InstallConnectApp) leaves it. A
// real site has one installation per app; tests that run many tenants on
// one site's listener install several, and the site accepts a JWT signed
// with the current secret of any of them. Installing a client key again
// (a reinstall) replaces its secret, so the old one stops working.
func (s *Site) InstallAppFor(appKey, clientKey, sharedSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appKey = appKey
	s.secrets[clientKey] = sharedSecret
}

// AddAdmin makes the admin check answer yes for the account IDs.
func (s *Site) AddAdmin(accountIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range accountIDs {
		s.admins[a] = true
	}
}

// appSecrets is the app key and the shared secrets of the site's
// installations.
func (s *Site) appSecrets() (appKey string, secrets []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range sortedKeys(s.secrets) {
		if s.secrets[k] != "" {
			secrets = append(secrets, s.secrets[k])
		}
	}
	return s.appKey, secrets
}

// RefusedAppJWTs lists the app JWTs the site refused with 401, each as
// "METHOD path: why" (a wrong secret or issuer, expired, a qsh that is not
// this request's, the token in the query): what a test that expects none
// checks when it ends.
func (s *Site) RefusedAppJWTs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.refused)
}

// AddAccount puts an account in the site's state directly (an account
// that existed before the test). Empty AccountID and Type are filled in;
// InSite is set. It returns the account ID.
func (s *Site) AddAccount(a Account) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.InSite = true
	return s.putAccount(&a).AccountID
}

// AddGroup puts a group in the site's state directly; it returns its ID.
func (s *Site) AddGroup(name string, memberIDs ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.putGroup(name)
	for _, id := range memberIDs {
		g.Members[id] = true
	}
	return g.ID
}

// DeleteGroupByName deletes the group named name (any case) as a site
// admin does in the site itself, not through the app: the app learns it
// only when a call finds the group gone. False when there is none.
func (s *Site) DeleteGroupByName(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, g := range s.groups {
		if strings.EqualFold(g.Name, name) {
			delete(s.groups, id)
			s.deleted[id] = strings.ToLower(g.Name)
			return true
		}
	}
	return false
}

// SetManaged says whether the organization manages the account of email.
func (s *Site) SetManaged(email string, managed bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.findByEmail(email)
	if a == nil {
		return false
	}
	a.Managed = managed
	return true
}

// Account returns a copy of the account with the email (case-insensitive),
// in the site or removed from it.
func (s *Site) Account(email string) (Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.findByEmail(email)
	if a == nil {
		return Account{}, false
	}
	c := *a
	c.Products = slices.Clone(a.Products)
	return c, true
}

// GroupByName returns a copy of the group with the name (case-insensitive).
func (s *Site) GroupByName(name string) (Group, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.findGroupByName(name)
	if g == nil {
		return Group{}, false
	}
	return Group{ID: g.ID, Name: g.Name, Members: maps.Clone(g.Members)}, true
}

// UserState is one account in a State.
type UserState struct {
	AccountID   string
	DisplayName string
	Type        string
	InSite      bool
	Suspended   bool
	Products    []string
}

// State is the site's users and groups in a form tests compare: users by
// lower-cased email (service accounts left out), groups by name with the
// sorted lower-cased emails of their members.
type State struct {
	Users  map[string]UserState
	Groups map[string][]string
}

// Snapshot returns the site's State.
func (s *Site) Snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

func (s *Site) snapshotLocked() State {
	st := State{Users: map[string]UserState{}, Groups: map[string][]string{}}
	service := map[string]bool{}
	for _, sa := range s.service {
		service[strings.ToLower(sa.Email)] = true
	}
	for _, a := range s.accounts {
		if service[strings.ToLower(a.Email)] || a.Type == AccountApp {
			continue
		}
		p := slices.Clone(a.Products)
		sort.Strings(p)
		st.Users[strings.ToLower(a.Email)] = UserState{AccountID: a.AccountID, DisplayName: a.DisplayName, Type: a.Type,
			InSite: a.InSite, Suspended: a.Suspended, Products: p}
	}
	for _, g := range s.groups {
		members := []string{}
		for id := range g.Members {
			if a := s.accounts[id]; a != nil {
				members = append(members, strings.ToLower(a.Email))
			} else {
				members = append(members, id)
			}
		}
		sort.Strings(members)
		st.Groups[g.Name] = members
	}
	return st
}

// --- state helpers; s.mu is held ---------------------------------------

func (s *Site) putAccount(a *Account) *Account {
	if a.AccountID == "" {
		if a.Type == AccountCustomer {
			a.AccountID = "qm:" + newUUID() + ":" + newUUID()
		} else {
			a.AccountID = "712020:" + newUUID()
		}
	}
	if a.Type == "" {
		a.Type = AccountAtlassian
	}
	s.accounts[a.AccountID] = a
	return a
}

func (s *Site) findByEmail(email string) *Account {
	for _, a := range s.accounts {
		if strings.EqualFold(a.Email, email) {
			return a
		}
	}
	return nil
}

func (s *Site) putGroup(name string) *Group {
	g := &Group{ID: newUUID(), Name: name, Members: map[string]bool{}}
	s.groups[g.ID] = g
	return g
}

func (s *Site) findGroupByName(name string) *Group {
	for _, g := range s.groups {
		if strings.EqualFold(g.Name, name) {
			return g
		}
	}
	return nil
}

// serviceAccountFor returns the credentials the request authenticated
// with, if any, and how: "basic", "scoped", "oauth", "app", "jwt". route
// is the route pattern the request matched (an app token's scopes are
// checked against it).
func (s *Site) serviceAccountFor(r *http.Request, how via, route string) (*ServiceAccount, string) {
	if how == viaGateway {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			b, valid := s.f.bearer(tok)
			if !valid || b.site != s {
				return nil, ""
			}
			clientID := b.clientID
			if b.app {
				// An app system token: the app's bot user, which reads
				// users and groups but administers nothing, and only
				// within its scopes.
				if b.scopes != nil && !slices.Contains(b.scopes, AppScopeOf(route)) {
					return nil, ""
				}
				s.mu.Lock()
				s.appCalls++
				s.mu.Unlock()
				return &ServiceAccount{Email: AppBotEmail}, "app"
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			for i := range s.service {
				if s.service[i].ClientID == clientID {
					sa := s.service[i]
					return &sa, "oauth"
				}
			}
			return nil, ""
		}
	}
	email, token, ok := r.BasicAuth()
	if !ok || token == "" {
		return nil, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.service {
		sa := s.service[i]
		if !strings.EqualFold(sa.Email, email) {
			continue
		}
		if how == viaSite && sa.APIToken != "" && sa.APIToken == token {
			return &sa, "basic"
		}
		if how == viaGateway && sa.ScopedToken != "" && sa.ScopedToken == token {
			return &sa, "scoped"
		}
	}
	return nil, ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// AppBotEmail is the email of the app's bot user, as whom a request with
// an app system token acts.
const AppBotEmail = "app-bot@connect.atlassian.com"

// IssueSystemToken mints an app system token for the site, as Forge hands
// one to a remote in x-forge-oauth-system: a JWT (unsigned here) whose exp
// says until when it is valid. Through the gateway, as a Bearer, it acts as
// the app's bot user until then: it reads users and groups, and every
// write that needs an administrator is a 403, as for any account without
// Jira's ADMINISTER. RevokeSystemTokens ends it early.
//
// scopes are the OAuth scopes the app's manifest asked for, which the
// token carries: a route that needs another scope (AppScopeOf) answers
// 401 "scope does not match", as the gateway does. No scopes: the token
// may call every route (the bot's permissions still apply).
func (s *Site) IssueSystemToken(ttl time.Duration, scopes ...string) string {
	exp := s.f.now().Add(ttl)
	enc := base64.RawURLEncoding
	tok := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(fmt.Sprintf(`{"iss":"forge","sub":"app-bot","exp":%d}`, exp.Unix()))) + "." + randomHex(16)
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.bearers[tok] = &bearer{site: s, expires: exp, app: true, scopes: slices.Clone(scopes)}
	return tok
}

// appScopes is the classic OAuth scope each route needs of an app token,
// as Atlassian's REST API references list them: reading users and groups
// in Jira (read:jira-user), users (read:confluence-user) and groups
// (read:confluence-groups) in Confluence. A route not listed needs a scope
// the app never asks for (writes, the admin checks).
var appScopes = map[string]string{
	"GET /rest/api/3/user":                                "read:jira-user",
	"GET /rest/api/3/user/search":                         "read:jira-user",
	"GET /rest/api/3/user/groups":                         "read:jira-user",
	"GET /rest/api/3/group/bulk":                          "read:jira-user",
	"GET /rest/api/3/group/member":                        "read:jira-user",
	"GET /wiki/rest/api/user":                             "read:confluence-user",
	"GET /wiki/rest/api/user/memberof":                    "read:confluence-user",
	"GET /wiki/rest/api/group/picker":                     "read:confluence-groups",
	"GET /wiki/rest/api/group/by-id":                      "read:confluence-groups",
	"GET /wiki/rest/api/group/{groupId}/membersByGroupId": "read:confluence-groups",
}

// AppScopeOf is the scope an app system token needs for a route pattern
// ("GET /wiki/rest/api/user"); "" when the app may not call it.
func AppScopeOf(route string) string { return appScopes[route] }

// RevokeSystemTokens makes the site refuse every app system token issued
// so far (401), as when the app's access is revoked.
func (s *Site) RevokeSystemTokens() {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	for k, b := range s.f.bearers {
		if b.site == s && b.app {
			delete(s.f.bearers, k)
		}
	}
}

// AppCalls is how many requests the site accepted with an app system
// token.
func (s *Site) AppCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appCalls
}
