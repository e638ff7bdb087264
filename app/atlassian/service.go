package atlassian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"idbridge/models"
)

// Atlassian's OAuth 2.0 audience for its API gateway, and the gateway path
// of a Jira site.
const (
	oauthAudience   = "api.atlassian.com"
	oauthTokenPath  = "/oauth/token"
	maxCachedTokens = 10000
)

// ServiceAccounts builds clients that call Atlassian as a site's service
// account (SPEC 5), and caches OAuth access tokens until they expire. One
// per process, built by App; it starts no goroutine and is safe for
// concurrent use.
type ServiceAccounts struct {
	hc      *http.Client
	apiURL  *url.URL // IDBRIDGE_ATLASSIAN_API_URL
	authURL *url.URL // IDBRIDGE_ATLASSIAN_AUTH_URL
	now     func() time.Time

	mu     sync.Mutex
	tokens map[string]*cachedToken
}

type cachedToken struct {
	mu  sync.Mutex // one fetch at a time per credential
	tok *oauth2.Token
}

// NewServiceAccounts returns the builder. c supplies the retrying,
// rate-limited HTTP client; apiURL is the API gateway and authURL the OAuth
// server, without trailing slashes.
func NewServiceAccounts(c *Clients, apiURL, authURL *url.URL) *ServiceAccounts {
	hc := http.Client{}
	now := time.Now
	if c != nil && c.HTTP != nil {
		hc = *c.HTTP
	}
	if c != nil && c.now != nil {
		now = c.now
	}
	// Credentials must never follow a redirect to another host.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &ServiceAccounts{hc: &hc, apiURL: apiURL, authURL: authURL, now: now, tokens: map[string]*cachedToken{}}
}

// GatewayURL is the API gateway base of a Jira site for scoped tokens and
// OAuth: {api}/ex/jira/{cloudId}.
func (s *ServiceAccounts) GatewayURL(cloudID string) string {
	return s.gatewayURL(ProductJira, cloudID)
}

// gatewayURL is the API gateway base of a site's product:
// {api}/ex/{jira|confluence}/{cloudId}.
func (s *ServiceAccounts) gatewayURL(product, cloudID string) string {
	return strings.TrimSuffix(s.apiURL.String(), "/") + "/ex/" + product + "/" + url.PathEscape(cloudID)
}

// Client returns a client that calls the site's Jira REST API as the
// service account acc: Basic email:token against the site's origin
// (classic token) or the API gateway (scoped token), or a Bearer token from
// the OAuth client credentials against the gateway.
func (s *ServiceAccounts) Client(site *models.Site, acc *models.ServiceAccount) (*ServiceClient, error) {
	return s.client(site, acc, ProductJira)
}

// ConfluenceClient is Client for Confluence's REST API: the same origin
// for a classic token (paths start with /wiki), {api}/ex/confluence/{cloudId}
// through the gateway.
func (s *ServiceAccounts) ConfluenceClient(site *models.Site, acc *models.ServiceAccount) (*ServiceClient, error) {
	return s.client(site, acc, ProductConfluence)
}

func (s *ServiceAccounts) client(site *models.Site, acc *models.ServiceAccount, product string) (*ServiceClient, error) {
	if site == nil || acc == nil {
		return nil, errors.New("atlassian: service account client: no site or account")
	}
	c := &ServiceClient{hc: s.hc, siteID: site.ID, now: s.now}
	var base string
	switch acc.Kind {
	case models.AccountAPIToken:
		// The service account calls Jira's REST API, which lives at the
		// site's origin (a Confluence baseUrl ends in /wiki).
		u, err := parseBaseURL(site.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("atlassian: service account client: %w", err)
		}
		base = u.Scheme + "://" + u.Host
		c.auth = basicAuth(acc.Email, acc.Token)
	case models.AccountScopedToken:
		base = s.gatewayURL(product, acc.CloudID)
		c.auth = basicAuth(acc.Email, acc.Token)
	case models.AccountOAuthClient:
		base = s.gatewayURL(product, acc.CloudID)
		c.auth, c.onUnauthorized = s.oauthBearer(site.ID, acc.ClientID, acc.ClientSecret)
	default:
		return nil, models.FieldError("kind", "unknown service account kind %q", acc.Kind)
	}
	if (acc.Kind == models.AccountScopedToken || acc.Kind == models.AccountOAuthClient) && acc.CloudID == "" {
		return nil, models.FieldError("cloudId", "a cloud ID is required for this kind of service account")
	}
	u, err := parseBaseURL(base)
	if err != nil {
		return nil, fmt.Errorf("atlassian: service account client: %w", err)
	}
	c.baseURL = u
	return c, nil
}

// appClient returns a client that calls the site's product REST API as
// the app itself, with the app system token Forge handed idbridge
// (x-forge-oauth-system): a Bearer token against the product's API gateway
// {api}/ex/{jira|confluence}/{cloudId}. The site must have a cloudId.
func (s *ServiceAccounts) appClient(site *models.Site, systemToken, product string) (*ServiceClient, error) {
	if site == nil || site.CloudID == "" || systemToken == "" {
		return nil, errors.New("atlassian: app client: no site, cloud ID or token")
	}
	u, err := parseBaseURL(s.gatewayURL(product, site.CloudID))
	if err != nil {
		return nil, fmt.Errorf("atlassian: app client: %w", err)
	}
	return &ServiceClient{hc: s.hc, siteID: site.ID, baseURL: u, now: s.now, auth: func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+systemToken)
		return nil
	}}, nil
}

// OrgAdmin returns a client for the organization Admin API
// ({api}/admin/...) with the account's organization API key, or an error
// when none is configured.
func (s *ServiceAccounts) OrgAdmin(site *models.Site, acc *models.ServiceAccount) (*ServiceClient, error) {
	if acc == nil || acc.OrgAdminKey == "" {
		return nil, &models.Error{Code: models.CodePrecondition, Message: "no organization Admin API key is configured"}
	}
	u, err := parseBaseURL(s.apiURL.String())
	if err != nil {
		return nil, fmt.Errorf("atlassian: org admin client: %w", err)
	}
	key := acc.OrgAdminKey
	return &ServiceClient{hc: s.hc, siteID: site.ID, baseURL: u, now: s.now, auth: func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+key)
		return nil
	}}, nil
}

// Forget drops the cached OAuth tokens of a site (its credentials changed,
// or the app was uninstalled).
func (s *ServiceAccounts) Forget(siteID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.tokens {
		if strings.HasPrefix(k, siteID+"\x00") {
			delete(s.tokens, k)
		}
	}
}

func basicAuth(email, token string) func(context.Context, *http.Request) error {
	return func(_ context.Context, r *http.Request) error {
		r.SetBasicAuth(email, token)
		return nil
	}
}

// oauthBearer returns the request authoriser of an OAuth client, with its
// token cached (per site, client and secret) until it expires, and the hook
// that drops the cached token when Atlassian refuses it.
func (s *ServiceAccounts) oauthBearer(siteID, clientID, clientSecret string) (auth func(context.Context, *http.Request) error, drop func()) {
	sum := sha256.Sum256([]byte(clientSecret))
	key := siteID + "\x00" + clientID + "\x00" + hex.EncodeToString(sum[:])
	cfg := &clientcredentials.Config{
		ClientID:       clientID,
		ClientSecret:   clientSecret,
		TokenURL:       strings.TrimSuffix(s.authURL.String(), "/") + oauthTokenPath,
		EndpointParams: url.Values{"audience": {oauthAudience}},
		AuthStyle:      oauth2.AuthStyleInParams,
	}
	auth = func(ctx context.Context, r *http.Request) error {
		entry := s.tokenEntry(key)
		entry.mu.Lock()
		defer entry.mu.Unlock()
		if entry.tok == nil || !entry.tok.Valid() {
			tok, err := cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, s.hc))
			if err != nil {
				return tokenError(ctx, err)
			}
			entry.tok = tok
		}
		entry.tok.SetAuthHeader(r)
		return nil
	}
	drop = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.tokens, key)
	}
	return auth, drop
}

func (s *ServiceAccounts) tokenEntry(key string) *cachedToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.tokens[key]; ok {
		return e
	}
	if len(s.tokens) >= maxCachedTokens {
		for k, e := range s.tokens {
			if e.mu.TryLock() {
				expired := e.tok == nil || !e.tok.Valid()
				e.mu.Unlock()
				if expired {
					delete(s.tokens, k)
				}
			}
		}
		if len(s.tokens) >= maxCachedTokens {
			clear(s.tokens)
		}
	}
	e := &cachedToken{}
	s.tokens[key] = e
	return e
}

// tokenError maps a failure of the OAuth token endpoint to a models.Error:
// refused client credentials are unauthorized, the rest unavailable.
func tokenError(ctx context.Context, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		switch {
		case status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden ||
			re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client" || re.ErrorCode == "access_denied":
			return fmt.Errorf("atlassian oauth token: %d %s: %w", status, re.ErrorCode, &models.Error{
				Code: models.CodeUnauthorized, Message: "Atlassian refused the client ID and secret"})
		case status == http.StatusTooManyRequests || status >= 500:
			return fmt.Errorf("atlassian oauth token: %d: %w", status, &models.Error{
				Code: models.CodeUnavailable, Message: fmt.Sprintf("Atlassian's sign-in service answered %d %s", status, http.StatusText(status))})
		}
		return fmt.Errorf("atlassian oauth token: %d %s", status, re.ErrorCode)
	}
	return requestError(ctx, http.MethodPost, oauthTokenPath, err)
}

// ServiceClient calls one base URL (a site, the API gateway or the Admin
// API) with a service account's credentials. It refuses URLs off its base,
// follows no redirect, and maps answers like SiteClient does.
type ServiceClient struct {
	hc             *http.Client
	siteID         string
	baseURL        *url.URL
	auth           func(ctx context.Context, r *http.Request) error
	onUnauthorized func()
	now            func() time.Time
}

// BaseURL is the base the client calls, for messages.
func (c *ServiceClient) BaseURL() string { return c.baseURL.String() }

// Do sends method pathAndQuery (relative to the base) with the credentials.
// body, when not nil, is sent as JSON; a 2xx answer is decoded into out
// when out is not nil. Other answers are *StatusError (401 unauthorized,
// 403 forbidden, 404 not found, 429/5xx unavailable, …); no answer in time
// is unavailable.
func (c *ServiceClient) Do(ctx context.Context, method, pathAndQuery string, body, out any) error {
	ref, err := url.Parse(pathAndQuery)
	if err != nil || ref.IsAbs() || ref.Host != "" || !strings.HasPrefix(ref.Path, "/") {
		return fmt.Errorf("atlassian: request path %q must be relative to the base and start with /", pathAndQuery)
	}
	joined := c.baseURL.Scheme + "://" + c.baseURL.Host + c.baseURL.EscapedPath() + ref.EscapedPath()
	if ref.RawQuery != "" {
		joined += "?" + ref.RawQuery
	}
	call := jsonCall{
		hc: c.hc, siteID: c.siteID, now: c.now, auth: c.auth, onUnauthorized: c.onUnauthorized,
		allowed: func(u *url.URL) bool {
			return origin(u) == origin(c.baseURL) && strings.HasPrefix(u.EscapedPath(), c.baseURL.EscapedPath())
		},
	}
	return call.do(ctx, method, joined, ref.Path, body, out)
}

// IsTimeout reports whether err means Atlassian did not answer in time (as
// opposed to answering with an error).
func IsTimeout(err error) bool {
	var nerr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout()
}
