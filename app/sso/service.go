// Package sso owns customer SSO for Jira Service Management (SPEC 7): a
// site's SSO settings and identity providers (OIDC with go-oidc and
// x/oauth2, SAML 2.0 with crewjam/saml), sign-ins from start to finish with
// their state in the database, what follows a sign-in (domain check, the
// JSM customer, service desks, organization), the portal sessions it
// starts, and the audit events of all of it. The protocol libraries do not
// check everything a relying party must: this package checks nonce, state,
// azp, replayed assertion IDs, comment-split NameIDs and SHA-1 itself.
package sso

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"

	"idbridge/app/atlassian"
	"idbridge/app/store"
	"idbridge/models"
)

// Bounds of what the identity providers send and how long they may take.
const (
	// IdPTimeout bounds one call to an identity provider (discovery,
	// metadata, token, userinfo).
	IdPTimeout = 10 * time.Second
	// MaxMetadataBytes bounds SAML metadata, given or fetched.
	MaxMetadataBytes = 1 << 20
	// MaxSAMLResponseBytes bounds a posted SAMLResponse (base64), refused
	// before anything is decoded or parsed.
	MaxSAMLResponseBytes = 256 << 10
	// purgeInterval is how often expired login state, assertion records
	// and sessions are deleted.
	purgeInterval = time.Minute
	purgeBatch    = 1000
)

// Config is what the service needs from configuration.
type Config struct {
	BaseURL *url.URL
	// AllowLoopbackIdPs lets identity providers live on loopback or private
	// addresses, and over plain http. App sets it only when the base URL
	// itself is plain-http loopback (tests, the demo): in production an
	// admin-entered URL may never reach the service's own network.
	AllowLoopbackIdPs bool
	// IdPTransport, when set, is the base transport for calls to identity
	// providers (tests).
	IdPTransport http.RoundTripper
	// Restricted, when set, says whether processing of the person's data is
	// restricted (GDPR Art. 18); a restricted person's sign-in is refused
	// with only a marker in the audit log. Nil: nobody is restricted.
	Restricted func(ctx context.Context, siteID, accountID string) (bool, error)
}

// Service is customer SSO for every site of this process.
type Service struct {
	cfg       Config
	store     *store.Store
	accounts  *atlassian.ServiceAccounts
	now       func() time.Time
	log       *slog.Logger
	idpHTTP   *http.Client
	providers *providerCache
	failures  *budgets           // audited failures, by site
	exchanges *budgets           // OIDC code exchanges, by site and IdP
	spKeys    singleflight.Group // SP keys being made, by site
	customers *customerCache
}

// New builds the service; it starts nothing.
func New(cfg Config, st *store.Store, accounts *atlassian.ServiceAccounts, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, store: st, accounts: accounts, now: now, log: log}
	s.idpHTTP = &http.Client{
		Timeout:   IdPTimeout,
		Transport: s.idpTransport(),
		// An identity provider's redirect could lead anywhere; none is
		// followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.providers = newProviderCache(now)
	s.failures = newBudgets(now, failureRate, failureBurst)
	s.exchanges = newBudgets(now, exchangeFailRate, exchangeFailBurst)
	s.customers = newCustomerCache(now)
	return s
}

// idpTransport is the transport for calls to identity providers: unless
// loopback IdPs are allowed, it refuses to connect to loopback, private,
// link-local and unspecified addresses, checked on the address actually
// dialled (so a DNS name cannot point it at the service's own network).
func (s *Service) idpTransport() http.RoundTripper {
	if s.cfg.IdPTransport != nil {
		return s.cfg.IdPTransport
	}
	dialer := &net.Dialer{Timeout: IdPTimeout}
	if !s.cfg.AllowLoopbackIdPs {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() {
				return errPrivateAddress
			}
			return nil
		}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = dialer.DialContext
	t.Proxy = nil
	t.ResponseHeaderTimeout = IdPTimeout
	t.MaxResponseHeaderBytes = 64 << 10
	return t
}

var errPrivateAddress = errors.New("the address is on a private network")

// Run deletes expired login state, used-assertion records and sessions
// every minute until ctx is done. Several replicas may run it: each delete
// is bounded and idempotent.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(purgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.Purge(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("purge expired sso state", "error", err.Error())
		}
	}
}

// Purge deletes what expired, in bounded batches, and returns how much.
func (s *Service) Purge(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.store.View(ctx).PurgeExpiredSSO(s.store.Now(), purgeBatch)
		total += n
		if err != nil || n < purgeBatch {
			return total, err
		}
	}
}

// portalBase is {base}/portal/{siteID}.
func (s *Service) portalBase(siteID string) string {
	return s.cfg.BaseURL.String() + "/portal/" + url.PathEscape(siteID)
}

// PortalURL is the portal's home page for the site.
func (s *Service) PortalURL(siteID string) string { return s.portalBase(siteID) + "/" }

// RedirectURI is the OIDC redirect URI of the site.
func (s *Service) RedirectURI(siteID string) string { return s.portalBase(siteID) + "/oidc/callback" }

// SP returns the site's SAML service provider facts.
func (s *Service) SP(siteID string) models.SPFacts {
	base := s.portalBase(siteID)
	return models.SPFacts{EntityID: base + "/saml/metadata", ACSURL: base + "/saml/acs", MetadataURL: base + "/saml/metadata"}
}

// activeSite returns the site when it exists and is installed; otherwise a
// not-found error in words, for the portal's plain page.
func (s *Service) activeSite(ctx context.Context, siteID string) (*models.Site, error) {
	site, err := s.store.View(ctx).FindSiteByID(siteID)
	if models.IsNotFound(err) || (err == nil && !site.Active()) {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "There is no help center at this address."}
	}
	if err != nil {
		return nil, fmt.Errorf("find site: %w", err)
	}
	return site, nil
}
