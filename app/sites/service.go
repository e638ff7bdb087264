package sites

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/connect"
	"idbridge/app/store"
	"idbridge/models"
)

// NotifyChannel is the PostgreSQL channel on which a site change is
// announced, with the site's clientKey as payload.
const NotifyChannel = "idbridge_sites"

// Cache bounds. The site cache's TTL is a backstop only: changes are
// invalidated at once, locally and (on PostgreSQL) on every replica.
const (
	siteCacheTTL   = 5 * time.Minute
	siteCacheMax   = 50_000
	adminCacheTTL  = 60 * time.Second
	adminCacheMax  = 100_000
	maxFieldLength = 2048

	adminCheckTimeout = 10 * time.Second
	siteLoadTimeout   = 10 * time.Second
)

// Config is what the service needs from configuration.
type Config struct {
	AppKey             string
	BaseURL            *url.URL
	TrustedHost        func(host string) bool
	AllowsPlainHTTP    func(host string) bool
	UninstallRetention time.Duration
}

// Service runs the lifecycle and authenticates Connect requests.
type Service struct {
	cfg      Config
	store    *store.Store
	verifier *connect.InstallVerifier
	clients  *atlassian.Clients
	now      func() time.Time
	log      *slog.Logger
	sites    *ttlCache[string, *models.Site]
	admins   *ttlCache[adminKey, bool]
	// siteLoads and adminChecks make concurrent misses for one key share
	// a single load or site call.
	siteLoads   flightGroup[siteFlight, *models.Site]
	adminChecks flightGroup[adminFlight, bool]
	// OnAuthFailure, when set, is told the reason of every refused token
	// (for metrics). It must not block.
	OnAuthFailure func(reason string)
	// OnSiteChanged, when set, is told the clientKey of every site whose
	// lifecycle changed, on this replica or (PostgreSQL) another one: the
	// sync stops an uninstalled site's work at once. It must not block.
	OnSiteChanged func(clientKey string)
	// forge is set by EnableForge; nil refuses every Forge token.
	forge *forgeState
}

// adminKey is keyed by clientKey, which forget is given, so that a site's
// answers go with it even when the site itself is no longer cached.
type adminKey struct{ clientKey, accountID string }

// siteFlight and adminFlight key the single-flights by the cache generation
// read before the miss: a request that starts after a removal (reinstall,
// uninstall) reads a newer generation and so never shares a load begun
// before it, and that load is not cached either (putIfCurrent).
type siteFlight struct {
	clientKey string
	gen       uint64
}

type adminFlight struct {
	key adminKey
	gen uint64
}

// New builds the service. It starts nothing; Run listens for changes made
// by other replicas.
func New(cfg Config, st *store.Store, verifier *connect.InstallVerifier, clients *atlassian.Clients, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		cfg: cfg, store: st, verifier: verifier, clients: clients, now: now, log: log,
		sites:  newTTLCache[string, *models.Site](siteCacheMax, siteCacheTTL, now),
		admins: newTTLCache[adminKey, bool](adminCacheMax, adminCacheTTL, now),
	}
}

// Run keeps the caches true across replicas until ctx is done: every site
// change announced on NotifyChannel drops that site, and a lost connection
// drops everything. ready, when not nil, is closed once listening.
func (s *Service) Run(ctx context.Context, ready chan<- struct{}) error {
	once := false
	if s.store.Dialect() != store.Postgres {
		// One process, nothing to listen for: the caches are already true.
		if ready != nil {
			close(ready)
		}
		return nil
	}
	return s.store.Listen(ctx, NotifyChannel,
		func(clientKey string) { s.forget(clientKey) },
		func() {
			s.sites.clear()
			s.admins.clear()
			if s.forge != nil {
				s.forge.sites.clear()
			}
		},
		func() {
			if ready != nil && !once {
				once = true
				close(ready)
			}
		})
}

// forget drops a site and its admin answers from the caches.
func (s *Service) forget(clientKey string) {
	s.admins.deleteWhere(func(k adminKey) bool { return k.clientKey == clientKey })
	s.sites.delete(clientKey)
	if s.forge != nil {
		// Keyed by installationId, which the clientKey does not give: a
		// lifecycle change is rare, so drop them all.
		s.forge.sites.clear()
	}
	if s.OnSiteChanged != nil {
		s.OnSiteChanged(clientKey)
	}
}

// siteByClientKey returns the site, from the cache when possible.
func (s *Service) siteByClientKey(ctx context.Context, clientKey string) (*models.Site, error) {
	if site, ok := s.sites.get(clientKey); ok {
		return site, nil
	}
	// One load per (clientKey, generation) at a time; waiters share it.
	gen := s.sites.generation()
	return s.siteLoads.do(ctx, siteFlight{clientKey, gen}, func() (*models.Site, error) {
		if site, ok := s.sites.get(clientKey); ok {
			return site, nil
		}
		// Shared by every waiter: not cancelled by the first caller
		// leaving, but bounded.
		loadCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), siteLoadTimeout)
		defer cancel()
		site, err := s.store.View(loadCtx).FindSiteByClientKey(clientKey)
		if err != nil {
			return nil, err
		}
		s.sites.putIfCurrent(gen, clientKey, site)
		return site, nil
	})
}

// authFail records the reason and returns err as a 401.
func (s *Service) authFail(err error) error {
	reason := connect.ReasonOf(err)
	if reason == "" {
		reason = "other"
	}
	if s.OnAuthFailure != nil {
		s.OnAuthFailure(reason)
	}
	if models.ErrorCode(err) == models.CodeUnauthorized {
		return err
	}
	return &models.Error{Code: models.CodeUnauthorized, Message: firstLine(err.Error())}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Authenticate verifies the Connect JWT of r for a route of the given kind
// and returns the caller. Unknown and uninstalled sites are refused.
func (s *Service) Authenticate(r *http.Request, kind connect.RouteKind) (*models.Caller, error) {
	token, err := connect.TokenFromRequest(r)
	if err != nil {
		return nil, s.authFail(err)
	}
	parsed, err := connect.ParseUnverified(token)
	if err != nil {
		return nil, s.authFail(err)
	}
	site, err := s.siteByClientKey(r.Context(), parsed.Issuer)
	if err != nil {
		if models.IsNotFound(err) {
			return nil, s.authFail(connect.Unauthorized(connect.ReasonUnknownSite, "the token's issuer is not an installed site"))
		}
		return nil, err
	}
	if !site.Active() || len(site.SharedSecret) == 0 {
		return nil, s.authFail(connect.Unauthorized(connect.ReasonUninstalledSite, "the app is not installed on this site"))
	}
	claims, err := parsed.VerifySite(site.ClientKey, site.SharedSecret, kind, r, s.cfg.BaseURL.Path, s.now())
	if err != nil {
		return nil, s.authFail(err)
	}
	return &models.Caller{Site: site, AccountID: claims.Subject}, nil
}

// RequireAdmin checks with the site, server side, that the account is a
// site administrator. Answers are cached per site and account for at most
// 60 seconds. Not an admin: forbidden.
func (s *Service) RequireAdmin(ctx context.Context, caller *models.Caller) error {
	if caller == nil || caller.Site == nil || caller.AccountID == "" {
		return &models.Error{Code: models.CodeForbidden, Message: "this page is for site administrators"}
	}
	k := adminKey{caller.Site.ClientKey, caller.AccountID}
	isAdmin, ok := s.admins.get(k)
	if !ok {
		var err error
		gen := s.admins.generation()
		isAdmin, err = s.adminChecks.do(ctx, adminFlight{k, gen}, func() (bool, error) {
			if isAdmin, ok := s.admins.get(k); ok {
				return isAdmin, nil
			}
			client, err := s.clients.Site(caller.Site)
			if err != nil {
				return false, fmt.Errorf("admin check: %w", err)
			}
			// An admin waits for this page: answer within seconds, not
			// after the client's full retry budget. Shared by every
			// waiter, so not cancelled by the first caller leaving.
			checkCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), adminCheckTimeout)
			isAdmin, err := client.IsSiteAdmin(checkCtx, productOf(caller.Site), caller.AccountID)
			cancel()
			if err != nil {
				if models.ErrorCode(err) == models.CodeInternal {
					// The site answered something we cannot read (a
					// redirect, a body of another shape): its fault, not
					// the caller's, so a 503 like any other failure, and
					// the detail for the operator in the log.
					s.log.Warn("admin check: unreadable answer from the site", "site_id", caller.Site.ID, "error", err.Error())
				}
				return false, &models.Error{Code: models.CodeUnavailable, Message: "could not confirm with the site that you are an administrator; try again shortly"}
			}
			s.admins.putIfCurrent(gen, k, isAdmin)
			return isAdmin, nil
		})
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				// This caller left while waiting for a shared check.
				return &models.Error{Code: models.CodeUnavailable, Message: "could not confirm with the site that you are an administrator; try again shortly"}
			}
			return err
		}
	}
	if !isAdmin {
		return &models.Error{Code: models.CodeForbidden, Message: "this page is for site administrators"}
	}
	return nil
}

// productOf tells Jira from Confluence: by productType, else by the /wiki
// path Confluence sites have.
func productOf(site *models.Site) string {
	switch strings.ToLower(site.ProductType) {
	case atlassian.ProductConfluence:
		return atlassian.ProductConfluence
	case atlassian.ProductJira:
		return atlassian.ProductJira
	}
	if strings.HasSuffix(strings.TrimSuffix(site.BaseURL, "/"), "/wiki") {
		return atlassian.ProductConfluence
	}
	return atlassian.ProductJira
}

// checkSiteURL refuses a baseUrl whose host is not a trusted product host,
// or that uses plain http outside loopback test hosts.
func (s *Service) checkSiteURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return connect.Unauthorized(connect.ReasonUntrustedSite, "baseUrl is not an absolute URL")
	}
	host := u.Host
	hostname := u.Hostname()
	switch u.Scheme {
	case "https":
	case "http":
		if s.cfg.AllowsPlainHTTP == nil || !s.cfg.AllowsPlainHTTP(host) {
			return connect.Unauthorized(connect.ReasonUntrustedSite, "baseUrl must use https")
		}
	default:
		return connect.Unauthorized(connect.ReasonUntrustedSite, "baseUrl must use https")
	}
	if net.ParseIP(hostname) != nil && u.Scheme == "https" {
		return connect.Unauthorized(connect.ReasonUntrustedSite, "baseUrl host is not a trusted Atlassian product host")
	}
	if s.cfg.TrustedHost == nil || !s.cfg.TrustedHost(host) {
		return connect.Unauthorized(connect.ReasonUntrustedSite, "baseUrl host is not a trusted Atlassian product host")
	}
	return nil
}

// checkEvent validates the parts of a lifecycle body every event needs.
func (s *Service) checkEvent(ev *models.InstallEvent, want Event) error {
	if ev.ClientKey == "" {
		return models.FieldError("clientKey", "clientKey is required")
	}
	if !connect.ValidClientKey(ev.ClientKey) {
		return models.FieldError("clientKey", "clientKey must be 1 to 256 printable ASCII characters without spaces")
	}
	if ev.BaseURL == "" {
		return models.FieldError("baseUrl", "baseUrl is required")
	}
	if ev.EventType != "" && ev.EventType != string(want) {
		return models.FieldError("eventType", "eventType %q does not match this callback (%s)", ev.EventType, want)
	}
	if ev.Key != "" && ev.Key != s.cfg.AppKey {
		return models.FieldError("key", "key %q is not this app's key", ev.Key)
	}
	for name, v := range map[string]string{
		"clientKey": ev.ClientKey, "baseUrl": ev.BaseURL, "displayUrl": ev.DisplayURL,
		"displayUrlServicedeskHelpCenter": ev.DisplayURLServicedeskHelpCenter, "productType": ev.ProductType,
		"description": ev.Description, "serviceEntitlementNumber": ev.ServiceEntitlementNumber,
		"entitlementId": ev.EntitlementID, "entitlementNumber": ev.EntitlementNumber,
		"installationId": ev.InstallationID, "cloudId": ev.CloudID, "sharedSecret": ev.SharedSecret,
	} {
		if len(v) > maxFieldLength {
			return models.FieldError(name, "%s is longer than %d characters", name, maxFieldLength)
		}
		// Neither database stores a NUL in text (PostgreSQL refuses it),
		// and no Atlassian field holds one.
		if strings.IndexByte(v, 0) >= 0 {
			return models.FieldError(name, "%s contains a NUL character", name)
		}
	}
	return nil
}

// Installed handles a signed install: verify, then create the site or
// replace its secret, and drop every cached copy of it.
func (s *Service) Installed(ctx context.Context, r *http.Request, ev *models.InstallEvent) error {
	if err := s.checkEvent(ev, EventInstalled); err != nil {
		return err
	}
	if len(ev.SharedSecret) < 32 {
		// Atlassian's shared secrets are long random strings; a short one
		// would make every HS256 token of the site guessable.
		return models.FieldError("sharedSecret", "sharedSecret is missing or too short")
	}
	if err := s.checkSiteURL(ev.BaseURL); err != nil {
		return s.authFail(err)
	}
	if _, err := s.verifier.Verify(ctx, r, ev.ClientKey, ev.BaseURL); err != nil {
		return s.authFail(err)
	}
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		facts := ev.SiteFacts
		facts.BaseURL = strings.TrimSuffix(facts.BaseURL, "/")
		if _, err := tx.SaveInstall(&models.Site{SiteFacts: facts, SharedSecret: []byte(ev.SharedSecret)}); err != nil {
			return err
		}
		return tx.Notify(NotifyChannel, ev.ClientKey)
	})
	s.forget(ev.ClientKey)
	if err != nil {
		return fmt.Errorf("installed: %w", err)
	}
	s.log.Info("site installed", "client_key", ev.ClientKey, "product", ev.ProductType)
	return nil
}

// Uninstalled handles a signed uninstall: the site's secrets go at once,
// the rest of its data is scheduled for purge. Idempotent.
func (s *Service) Uninstalled(ctx context.Context, r *http.Request, ev *models.InstallEvent) error {
	if err := s.checkEvent(ev, EventUninstalled); err != nil {
		return err
	}
	if err := s.checkSiteURL(ev.BaseURL); err != nil {
		return s.authFail(err)
	}
	if _, err := s.verifier.Verify(ctx, r, ev.ClientKey, ev.BaseURL); err != nil {
		return s.authFail(err)
	}
	purgeAfter := s.now().Add(s.cfg.UninstallRetention)
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		site, err := tx.FindSiteByClientKey(ev.ClientKey)
		if models.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		t, err := Next(site.State, EventUninstalled)
		if err != nil || !t.Write {
			return err
		}
		if err := tx.MarkSiteUninstalled(site.ID, purgeAfter); err != nil {
			return err
		}
		return tx.Notify(NotifyChannel, ev.ClientKey)
	})
	s.forget(ev.ClientKey)
	if err != nil {
		return fmt.Errorf("uninstalled: %w", err)
	}
	s.log.Info("site uninstalled", "client_key", ev.ClientKey, "purge_after", purgeAfter)
	return nil
}

// Toggle handles enabled and disabled: HS256 with the site's shared secret
// and a URL-bound qsh; the body's clientKey must be the token's issuer.
func (s *Service) Toggle(ctx context.Context, r *http.Request, ev *models.InstallEvent, event Event) error {
	if event != EventEnabled && event != EventDisabled {
		return fmt.Errorf("toggle: %q is not enabled or disabled", event)
	}
	caller, err := s.Authenticate(r, connect.URLBound)
	if err != nil {
		return err
	}
	if ev.ClientKey != caller.Site.ClientKey {
		return s.authFail(connect.Unauthorized(connect.ReasonBadIss, "the token's issuer is not the body's clientKey"))
	}
	if ev.EventType != "" && ev.EventType != string(event) {
		return models.FieldError("eventType", "eventType %q does not match this callback (%s)", ev.EventType, event)
	}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		site, err := tx.FindSiteByClientKey(ev.ClientKey)
		if err != nil {
			return err
		}
		t, err := Next(site.State, event)
		if err != nil || !t.Write {
			return err
		}
		if err := tx.SetSiteState(site.ID, t.Next); err != nil {
			return err
		}
		return tx.Notify(NotifyChannel, ev.ClientKey)
	})
	s.forget(ev.ClientKey)
	if err != nil {
		return fmt.Errorf("%s: %w", event, err)
	}
	if event == EventDisabled && caller.Site.InstallationID != "" {
		// Recorded, but a site registered with Forge is never held back by
		// it: no enabled could follow (models.Site.EffectiveState).
		s.log.Warn("disabled received for a site registered with Forge: not acted on", "client_key", ev.ClientKey)
	}
	return nil
}

// AuthenticateURL verifies a URL-bound token (iframe pages, webhooks).
func (s *Service) AuthenticateURL(r *http.Request) (*models.Caller, error) {
	return s.Authenticate(r, connect.URLBound)
}

// AuthenticateContext verifies a context token (the admin UI's JSON API).
func (s *Service) AuthenticateContext(r *http.Request) (*models.Caller, error) {
	return s.Authenticate(r, connect.ContextBound)
}

// Enabled handles the enabled callback.
func (s *Service) Enabled(ctx context.Context, r *http.Request, ev *models.InstallEvent) error {
	return s.Toggle(ctx, r, ev, EventEnabled)
}

// Disabled handles the disabled callback.
func (s *Service) Disabled(ctx context.Context, r *http.Request, ev *models.InstallEvent) error {
	return s.Toggle(ctx, r, ev, EventDisabled)
}
