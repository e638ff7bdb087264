package sso

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"idbridge/models"
)

// Provider discovery documents are cached per identity provider (and
// version of its settings) for providerTTL, at most maxProviders of them.
// A failed discovery is remembered for failureTTL, and concurrent
// discoveries of one provider are one request: anyone can start a
// sign-in, and an unreachable provider must not cost a request to it (and
// up to IdPTimeout) for each of theirs.
const (
	providerTTL  = time.Hour
	failureTTL   = 30 * time.Second
	maxProviders = 10000
)

type providerCache struct {
	now    func() time.Time
	mu     sync.Mutex
	m      map[string]cachedProvider
	flight singleflight.Group
}

type cachedProvider struct {
	p   *oidc.Provider
	err error // a failed discovery, kept for failureTTL
	at  time.Time
}

func newProviderCache(now func() time.Time) *providerCache {
	return &providerCache{now: now, m: map[string]cachedProvider{}}
}

// get answers the cached discovery of key while it is fresh: a provider,
// or the error of a recent failed discovery; ok is false otherwise.
func (c *providerCache) get(key string) (p *oidc.Provider, err error, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.m[key]
	if !found || !e.fresh(c.now()) {
		return nil, nil, false
	}
	return e.p, e.err, true
}

// fresh reports whether the entry may still be answered at now: a
// provider for providerTTL, a failure for failureTTL.
func (e cachedProvider) fresh(now time.Time) bool {
	ttl := providerTTL
	if e.err != nil {
		ttl = failureTTL
	}
	return now.Sub(e.at) <= ttl
}

func (c *providerCache) put(key string, p *oidc.Provider, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxProviders {
		now := c.now()
		for k, e := range c.m {
			if !e.fresh(now) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxProviders {
			clear(c.m)
		}
	}
	c.m[key] = cachedProvider{p: p, err: err, at: c.now()}
}

func (c *providerCache) forget(siteID, idpID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prefix := siteID + "/" + idpID + "@"
	for k := range c.m {
		if strings.HasPrefix(k, prefix) {
			delete(c.m, k)
		}
	}
}

var httpStatus = regexp.MustCompile(`^[1-5][0-9]{2} [A-Za-z ]{0,40}[A-Za-z]`)

// discover reads the issuer's discovery document (go-oidc checks that it
// names the same issuer).
func (s *Service) discover(ctx context.Context, issuer string) (*oidc.Provider, error) {
	ctx, cancel := context.WithTimeout(ctx, IdPTimeout)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.idpHTTP), issuer)
	if err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "did not match the issuer"):
			return nil, errors.New("the document names another issuer")
		case strings.Contains(msg, "failed to decode provider discovery"):
			return nil, errors.New("the document is not JSON")
		case httpStatus.MatchString(msg):
			// go-oidc reports a non-200 answer as "<status>: <body>".
			return nil, fmt.Errorf("it answered %s", httpStatus.FindString(msg))
		}
		return nil, reachError(err)
	}
	if p.Endpoint().AuthURL == "" || p.Endpoint().TokenURL == "" {
		return nil, errors.New("the document names no authorization or token endpoint")
	}
	return p, nil
}

// provider returns the IdP's discovered provider, from the cache when it
// is fresh.
func (s *Service) provider(ctx context.Context, idp *models.IdentityProvider) (*oidc.Provider, error) {
	key := fmt.Sprintf("%s/%s@%d", idp.SiteID, idp.ID, idp.UpdatedAt.UnixNano())
	if p, err, ok := s.providers.get(key); ok {
		return p, err
	}
	// One discovery for every caller that asks meanwhile; it runs to its
	// own deadline (IdPTimeout) whichever caller leaves first.
	ch := s.providers.flight.DoChan(key, func() (p any, err error) {
		// This runs on singleflight's goroutine, where no handler's
		// recovery reaches: a panic would end the process.
		defer func() {
			if r := recover(); r != nil {
				s.log.ErrorContext(ctx, "oidc discovery panicked", "panic", fmt.Sprint(r))
				p, err = nil, errors.New("it could not be read")
			}
		}()
		prov, err := s.discover(context.WithoutCancel(ctx), idp.OIDC.Issuer)
		s.providers.put(key, prov, err)
		return prov, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*oidc.Provider), nil
	case <-ctx.Done():
		return nil, reachError(ctx.Err())
	}
}

func (s *Service) oauthConfig(p *oidc.Provider, idp *models.IdentityProvider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: idp.OIDC.ClientID, ClientSecret: idp.OIDC.ClientSecret,
		Endpoint: p.Endpoint(), RedirectURL: s.RedirectURI(idp.SiteID), Scopes: idp.OIDC.Scopes,
	}
}

// oidcIdentity exchanges the code (with the PKCE verifier), verifies the ID
// token and returns who signed in. Every refusal carries a reason code;
// steps records what worked, for "Test sign-in".
func (s *Service) oidcIdentity(ctx context.Context, idp *models.IdentityProvider, st *models.LoginState, code string, steps *stepLog) (*models.Identity, *refusal) {
	ctx, cancel := context.WithTimeout(ctx, 2*IdPTimeout)
	defer cancel()
	p, err := s.provider(ctx, idp)
	if err != nil {
		return nil, refuse("discovery_failed", "The identity provider could not be reached: %s.", err.Error())
	}
	steps.ok("Discovery", "The identity provider's discovery document was reached.")
	if code == "" || len(code) > 4096 {
		return nil, refuse("code_missing", "The identity provider sent no authorization code.")
	}
	budget := idp.SiteID + "/" + idp.ID
	if !s.exchanges.left(budget) {
		return nil, refuse("idp_busy", "Too many sign-ins failed at this identity provider just now. Start again in a minute.")
	}
	cfg := s.oauthConfig(p, idp)
	hctx := oidc.ClientContext(ctx, s.idpHTTP)
	tok, err := cfg.Exchange(hctx, code, oauth2.VerifierOption(st.PKCEVerifier))
	if err != nil {
		s.exchanges.allow(budget)
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, refuse("code_rejected", "The identity provider did not accept the sign-in (%s). Start again.", truncate(re.ErrorCode, 60))
		}
		return nil, refuse("token_unavailable", "The identity provider's token endpoint could not be reached.")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, refuse("id_token_missing", "The identity provider sent no ID token.")
	}
	verifier := p.Verifier(&oidc.Config{ClientID: idp.OIDC.ClientID, Now: s.now})
	idt, err := verifier.Verify(hctx, raw)
	if err != nil {
		return nil, tokenRefusal(err)
	}
	// go-oidc accepts any token whose audiences include ours; with several
	// audiences, the authorized party must be us (OIDC Core 3.1.3.7).
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, refuse("token_invalid", "The ID token's claims could not be read.")
	}
	azp, _ := claims["azp"].(string)
	if len(idt.Audience) > 1 && azp == "" {
		return nil, refuse("azp_missing", "The ID token is for several audiences but names no authorized party.")
	}
	if azp != "" && azp != idp.OIDC.ClientID {
		return nil, refuse("azp_mismatch", "The ID token was issued to another client.")
	}
	// go-oidc does not check the nonce: it is ours to compare.
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 || st.Nonce == "" {
		return nil, refuse("nonce_mismatch", "The ID token does not belong to this sign-in.")
	}
	steps.ok("Token", "The ID token is signed by the identity provider, for idbridge, and not expired.")

	id := &models.Identity{Subject: idt.Subject}
	email, hasEmail := claims[idp.OIDC.EmailClaim].(string)
	verified, verifiedSet := claimBool(claims["email_verified"])
	name, _ := claims[idp.OIDC.NameClaim].(string)
	if !hasEmail || email == "" {
		// The ID token may leave profile claims to the userinfo endpoint.
		if p.UserInfoEndpoint() == "" {
			return nil, refuse("email_missing", "The identity provider did not say the email address (claim %q).", idp.OIDC.EmailClaim)
		}
		ui, err := p.UserInfo(hctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, refuse("userinfo_failed", "The identity provider's userinfo endpoint could not be read.")
		}
		if ui.Subject != idt.Subject {
			return nil, refuse("userinfo_subject", "The identity provider's userinfo is about someone else.")
		}
		var uc map[string]any
		if err := ui.Claims(&uc); err != nil {
			return nil, refuse("userinfo_failed", "The identity provider's userinfo could not be read.")
		}
		email, hasEmail = uc[idp.OIDC.EmailClaim].(string)
		verified, verifiedSet = claimBool(uc["email_verified"])
		if n, ok := uc[idp.OIDC.NameClaim].(string); ok && name == "" {
			name = n
		}
	}
	if !hasEmail || email == "" {
		return nil, refuse("email_missing", "The identity provider did not say the email address (claim %q).", idp.OIDC.EmailClaim)
	}
	if idp.OIDC.RequireVerifiedEmail && (!verifiedSet || !verified) {
		return nil, refuse("email_unverified", "The identity provider has not verified this email address.")
	}
	steps.ok("Email", "The email claim is present.")
	id.Email, id.DisplayName = email, name
	return id, nil
}

func claimBool(v any) (value, set bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string: // some providers send "true"
		return b == "true", true
	}
	return false, false
}

// tokenRefusal names why go-oidc refused an ID token.
func tokenRefusal(err error) *refusal {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return refuse("token_expired", "The ID token has expired. Sign in again.")
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "issued by a different provider"):
		return refuse("token_issuer", "The ID token was issued by another identity provider.")
	case strings.Contains(msg, "expected audience"):
		return refuse("token_audience", "The ID token is for another application.")
	case strings.Contains(msg, "signing algorithm") || strings.Contains(msg, "signature") || strings.Contains(msg, "malformed") || strings.Contains(msg, "jws"):
		return refuse("token_signature", "The ID token is not signed by the identity provider.")
	}
	return refuse("token_invalid", "The ID token is not valid.")
}
