package sites

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"idbridge/app/forge"
	"idbridge/app/store"
	"idbridge/models"
)

// SystemTokenHeader carries the app system token Forge hands the remote
// when the endpoint asks for auth.appSystemToken.
const SystemTokenHeader = "x-forge-oauth-system"

// maxSystemTokenLen bounds a system token kept from a header, and
// systemTokenRenewal is how close to its end a kept token must be before
// a newer one replaces it.
const (
	maxSystemTokenLen  = 8 << 10
	systemTokenRenewal = 5 * time.Minute
)

// forgeState is the Forge side of the service, built by EnableForge.
type forgeState struct {
	verifier *forge.Verifier
	// sites caches sites by installationId; tokens remembers the expiry of
	// the system token last stored per site, so a token is written only
	// when it is newer.
	sites  *ttlCache[string, *models.Site]
	tokens *ttlCache[string, time.Time]
	loads  flightGroup[siteFlight, *models.Site]
	// onFailure, when set, is told the reason of every refused token.
	onFailure func(reason string)
}

// EnableForge makes the service accept Forge invocation tokens verified by
// v; onFailure (may be nil) counts refusals by reason. Call it before
// serving.
func (s *Service) EnableForge(v *forge.Verifier, onFailure func(reason string)) {
	s.forge = &forgeState{
		verifier:  v,
		sites:     newTTLCache[string, *models.Site](siteCacheMax, siteCacheTTL, s.now),
		tokens:    newTTLCache[string, time.Time](siteCacheMax, siteCacheTTL, s.now),
		onFailure: onFailure,
	}
}

// forgeFail records the reason and returns err as a 401.
func (s *Service) forgeFail(err error) error {
	e, ok := models.AsError(err)
	reason := "other"
	if ok && e.Reason != "" {
		reason = e.Reason
	}
	if s.forge != nil && s.forge.onFailure != nil {
		s.forge.onFailure(reason)
	}
	if ok && e.Code == models.CodeUnauthorized {
		return err
	}
	return forge.Unauthorized(reason, firstLine(err.Error()))
}

// verifyForge reads and verifies the request's Forge invocation token.
func (s *Service) verifyForge(r *http.Request) (*forge.Invocation, error) {
	if s.forge == nil {
		return nil, s.forgeFail(forge.Unauthorized(forge.ReasonNotConfigured, "this server accepts no Forge invocations"))
	}
	token, err := forge.TokenFromRequest(r)
	if err != nil {
		return nil, s.forgeFail(err)
	}
	inv, err := s.forge.verifier.Verify(r.Context(), token)
	if err != nil {
		return nil, s.forgeFail(err)
	}
	return inv, nil
}

// siteByInstallation returns the site of an installation, from the cache
// when possible; concurrent misses share one load.
func (s *Service) siteByInstallation(ctx context.Context, installationID string) (*models.Site, error) {
	f := s.forge
	if site, ok := f.sites.get(installationID); ok {
		return site, nil
	}
	gen := f.sites.generation()
	return f.loads.do(ctx, siteFlight{installationID, gen}, func() (*models.Site, error) {
		if site, ok := f.sites.get(installationID); ok {
			return site, nil
		}
		loadCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), siteLoadTimeout)
		defer cancel()
		site, err := s.store.View(loadCtx).FindSiteByInstallationID(installationID)
		if err != nil {
			return nil, err
		}
		f.sites.putIfCurrent(gen, installationID, site)
		return site, nil
	})
}

// AuthenticateForge verifies the Forge invocation token of r (RS256 with a
// key of Forge's JWKS, iss, aud = the app, exp/nbf) and returns the caller:
// the site of the token's installationId, which must be installed, and
// whose cloudId must be the token's. The principal, when there is one, is
// the account. An app system token that comes along is kept.
func (s *Service) AuthenticateForge(r *http.Request) (*models.Caller, error) {
	inv, err := s.verifyForge(r)
	if err != nil {
		return nil, err
	}
	site, err := s.siteByInstallation(r.Context(), inv.InstallationID)
	if err != nil {
		if models.IsNotFound(err) {
			return nil, s.forgeFail(forge.Unauthorized(forge.ReasonUnknownSite, "the token's installation is not a known site"))
		}
		return nil, err
	}
	if !site.Active() {
		return nil, s.forgeFail(forge.Unauthorized(forge.ReasonUninstalledSite, "the app is not installed on this site"))
	}
	if inv.CloudID != "" && site.CloudID != "" && inv.CloudID != site.CloudID {
		return nil, s.forgeFail(forge.Unauthorized(forge.ReasonSiteMismatch, "the token's cloudId is not its installation's"))
	}
	s.keepSystemToken(r, site)
	return &models.Caller{Site: site, AccountID: inv.Principal}, nil
}

// ForgeLifecycle handles a Forge lifecycle event (installed, upgraded): the
// token is verified like any other, and the site of its installation is
// found, or linked to the site Connect installed earlier for the same cloud
// site and product, or created. Answers must be fast (Forge gives events 5
// seconds): nothing calls out to the site.
func (s *Service) ForgeLifecycle(ctx context.Context, r *http.Request, ev *models.ForgeEvent) error {
	inv, err := s.verifyForge(r)
	if err != nil {
		return err
	}
	switch ev.EventType {
	case models.ForgeEventInstalled, models.ForgeEventUpgraded:
	default:
		return models.FieldError("eventType", "eventType must be %s or %s", models.ForgeEventInstalled, models.ForgeEventUpgraded)
	}
	for name, v := range map[string]string{"id": ev.ID, "app.version": ev.AppVersion, "context": ev.Context} {
		if len(v) > maxFieldLength || strings.IndexByte(v, 0) >= 0 {
			return models.FieldError(name, "%s is too long or holds a NUL", name)
		}
	}
	product := productOfAPIBase(inv.APIBaseURL)
	in := store.ForgeInstall{
		InstallationID: inv.InstallationID, CloudID: inv.CloudID, ProductType: product,
		AppVersion: ev.AppVersion, EnvironmentType: inv.Environment,
		Revive: ev.EventType == models.ForgeEventInstalled,
	}
	if inv.SiteURL != "" {
		if err := s.checkSiteURL(inv.SiteURL); err != nil {
			return s.forgeFail(err)
		}
		in.BaseURL = inv.SiteURL
	}
	var site *models.Site
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.FindSiteByInstallationID(inv.InstallationID); models.IsNotFound(err) {
			// A site Connect installed before the app was registered with
			// Forge: the same cloud site and product.
			candidates, err := tx.FindSitesByCloudID(inv.CloudID)
			if err != nil {
				return err
			}
			// One app key, one Forge app ID: a cloud site has at most one
			// installation of this app per product. A site of that cloud
			// and product with another installationId is the same site
			// whose installation ID changed (a site URL change, say).
			var match []*models.Site
			for _, c := range candidates {
				if product == "" || productOf(c) == product {
					match = append(match, c)
				}
			}
			if len(match) == 1 {
				in.LinkTo = match[0].ID
			}
		} else if err != nil {
			return err
		}
		var err error
		site, err = tx.SaveForgeInstall(in)
		if err != nil {
			return err
		}
		return tx.Notify(NotifyChannel, site.ClientKey)
	})
	if err != nil {
		if models.ErrorCode(err) == models.CodeInvalid {
			return err
		}
		return fmt.Errorf("forge %s: %w", ev.EventType, err)
	}
	s.forget(site.ClientKey)
	s.keepSystemToken(r, site)
	s.log.Info("forge lifecycle", "event", ev.EventType, "site_id", site.ID, "linked", in.LinkTo != "")
	return nil
}

// productOfAPIBase reads the product from a FIT's apiBaseUrl
// (https://api.atlassian.com/ex/jira/<cloudId>); "" when it names neither.
func productOfAPIBase(u string) string {
	switch {
	case strings.Contains(u, "/ex/jira/"):
		return "jira"
	case strings.Contains(u, "/ex/confluence/"):
		return "confluence"
	}
	return ""
}

// keepSystemToken stores the app system token of the request, if there is
// one and it expires later than the one stored: at most one write per
// token. Failures are logged (never the token) and do not fail the
// request: the token is a convenience, the request stands on the FIT.
func (s *Service) keepSystemToken(r *http.Request, site *models.Site) {
	token := strings.TrimSpace(r.Header.Get(SystemTokenHeader))
	if token == "" || s.forge == nil {
		return
	}
	exp, ok := tokenExpiry(token)
	// An expiry further ahead than any app system token lives would keep
	// the token, and keep newer ones out, for ever.
	if !ok || len(token) > maxSystemTokenLen || !exp.After(s.now()) || exp.After(s.now().Add(maxSystemTokenLife)) {
		s.log.Warn("forge: unusable app system token ignored", "site_id", site.ID)
		return
	}
	// Forge hands a fresh token with every call: keep the one we have
	// until it nears its end, so that a busy site costs one write per
	// token lifetime, not one per call.
	if known, ok := s.forge.tokens.get(site.ID); ok && (!exp.After(known) || known.Sub(s.now()) > systemTokenRenewal) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), siteLoadTimeout)
	defer cancel()
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		return tx.SaveSystemToken(site.ID, site.InstallationID, token, exp)
	})
	if err != nil {
		s.log.Warn("forge: could not keep the app system token", "site_id", site.ID, "error", err.Error())
		return
	}
	s.forge.tokens.putIfCurrent(s.forge.tokens.generation(), site.ID, exp)
}

// maxSystemTokenLife bounds how far ahead a kept app system token may
// expire (Forge's live for minutes to an hour).
const maxSystemTokenLife = 24 * time.Hour

// tokenExpiry reads the exp of a JWT without verifying it: the system
// token is Atlassian's credential for Atlassian, which checks it; idbridge
// only needs to know until when to use it.
func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return time.Time{}, false
	}
	n, err := c.Exp.Int64()
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}

// SystemTokenStatus says whether the site's app system token is held and
// until when, or has expired, for the admin page; never the token.
func (s *Service) SystemTokenStatus(ctx context.Context, siteID string) (models.SystemTokenStatus, error) {
	exp, err := s.store.View(ctx).FindSystemTokenExpiry(siteID)
	switch {
	case models.IsNotFound(err):
		return models.SystemTokenStatus{State: models.SystemTokenNone}, nil
	case err != nil:
		return models.SystemTokenStatus{}, err
	case !exp.After(s.now()):
		return models.SystemTokenStatus{State: models.SystemTokenExpired, ExpiresAt: exp}, nil
	}
	return models.SystemTokenStatus{State: models.SystemTokenHeld, ExpiresAt: exp}, nil
}
