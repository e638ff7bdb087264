package connect

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Atlassian's install-key servers.
const (
	// KeyServerProduction serves production sites; Atlassian documents it
	// ("Validating installation lifecycle requests").
	KeyServerProduction = "https://connect-install-keys.atlassian.com"
	// KeyServerStaging serves jira-dev.com sites. Atlassian's own
	// atlassian-connect-express and atlassian-connect-js use this us-west-1
	// host; the brief this package was written from said us-east-1, which
	// no Atlassian source confirms. Override with IDBRIDGE_INSTALL_KEYS_URL
	// if it moves.
	KeyServerStaging = "https://cs-migrations--cdn.us-west-1.staging.public.atl-paas.net"
	// KeyServerFedRAMP and KeyServerFedRAMPStaging serve Atlassian
	// Government Cloud. These follow the brief's table; no public Atlassian
	// source available while writing confirmed them.
	KeyServerFedRAMP        = "https://connect-install-keys.atlassian-us-gov-mod.com"
	KeyServerFedRAMPStaging = "https://connect-install-keys.atlassian-stg-fedm.com"
	// KeyServerFex serves Atlassian's FedRAMP sandbox (fex). Unconfirmed
	// too: it follows the pattern of the other FedRAMP hosts, on a domain
	// that Atlassian owns.
	KeyServerFex = "https://connect-install-keys.atlassian-fex.com"
)

// KeyServerFor returns the install-key server for a site: override when it
// is not empty (the operator's IDBRIDGE_INSTALL_KEYS_URL), otherwise the
// server of a fixed table chosen by the host of the site's https baseUrl. A
// site on any other host has no key server and is an error: the key server
// is never taken from the request or the token.
func KeyServerFor(siteBaseURL, override string) (string, error) {
	if override != "" {
		u, err := url.Parse(override)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return "", errors.New("install key server override is not an absolute http(s) URL")
		}
		return strings.TrimSuffix(override, "/"), nil
	}
	u, err := url.Parse(siteBaseURL)
	if err != nil || u.Scheme != "https" || u.User != nil {
		return "", errors.New("site baseUrl is not an https URL")
	}
	host := strings.ToLower(u.Hostname())
	for _, row := range []struct{ suffix, server string }{
		{".atlassian.net", KeyServerProduction},
		{".jira.com", KeyServerProduction},
		{".jira-dev.com", KeyServerStaging},
		{".atlassian-us-gov-mod.net", KeyServerFedRAMP},
		{".atlassian-stg-fedm.net", KeyServerFedRAMPStaging},
		{".atlassian-fex.net", KeyServerFex},
	} {
		if len(host) > len(row.suffix) && strings.HasSuffix(host, row.suffix) {
			return row.server, nil
		}
	}
	return "", fmt.Errorf("site host %q has no Atlassian install-key server", host)
}

// InstallVerifier verifies the RS256 tokens that sign the installed and
// uninstalled lifecycle callbacks.
type InstallVerifier struct {
	// Keys fetches and caches the public keys.
	Keys *KeyFetcher
	// AppBaseURL is our base URL: the expected aud, and the base of qsh.
	AppBaseURL string
	// KeyServerOverride replaces the key server table when not empty.
	KeyServerOverride string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify checks a signed install or uninstall callback: the token in the
// Authorization header (a query parameter is not accepted, and an unsigned
// callback is refused), alg exactly RS256, a kid of [A-Za-z0-9._-], the key
// from the key server chosen by KeyServerFor(bodyBaseURL, override), exp
// present and not past (with [Leeway]), aud our base URL (a string or an
// array holding it; a trailing slash is ignored on both sides), iss equal to
// the body's clientKey, and qsh the hash of this request relative to the
// path of our base URL.
func (v *InstallVerifier) Verify(ctx context.Context, r *http.Request, bodyClientKey, bodyBaseURL string) (*Claims, error) {
	if v == nil || v.Keys == nil {
		return nil, errors.New("verify install: no key fetcher")
	}
	appBase, err := url.Parse(v.AppBaseURL)
	if err != nil || !appBase.IsAbs() || appBase.Host == "" {
		return nil, fmt.Errorf("verify install: app base URL %q is not absolute", v.AppBaseURL)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}

	token, fromHeader, err := tokenFromRequest(r)
	if err != nil {
		if ReasonOf(err) == ReasonMissingToken {
			return nil, authErr(ReasonMissingToken, "install callbacks must be signed: no Authorization: JWT header")
		}
		return nil, err
	}
	if !fromHeader {
		return nil, authErr(ReasonMissingToken, "install callbacks must be signed in the Authorization header, not the query")
	}
	h, payload, aerr := splitToken(token)
	if aerr != nil {
		return nil, aerr
	}
	if h.alg != jwt.SigningMethodRS256.Alg() {
		return nil, authErr(ReasonBadAlg, "install token alg must be RS256")
	}
	if !h.hasKid || !ValidKid(h.kid) {
		return nil, authErr(ReasonBadKid, "install token kid is missing or not of [A-Za-z0-9._-]")
	}
	if bodyClientKey == "" {
		return nil, authErr(ReasonBadIss, "install payload has no clientKey")
	}
	if !ValidClientKey(bodyClientKey) {
		return nil, authErr(ReasonBadIss, "install payload's clientKey is not a client key")
	}
	server, err := KeyServerFor(bodyBaseURL, v.KeyServerOverride)
	if err != nil {
		return nil, authErr(ReasonUntrustedSite, "no Atlassian install-key server for the site's baseUrl")
	}
	// Every check that needs no key runs first, on the unverified claims,
	// so that junk (a random kid, an expired or foreign token) never
	// costs a call to the key server. The same checks run again on the
	// verified claims below.
	var unverified tokenClaims
	if err := json.Unmarshal(payload, &unverified); err != nil {
		return nil, authErr(ReasonMalformed, "install token payload is not a JSON object of claims")
	}
	if _, err := v.checkClaims(&unverified, h.kid, bodyClientKey, r, appBase, now); err != nil {
		return nil, err
	}
	key, err := v.Keys.PublicKey(ctx, server, h.kid)
	if errors.Is(err, ErrUnknownKid) {
		return nil, authErr(ReasonUnknownKid, "install token kid is unknown to Atlassian's key server")
	}
	if errors.Is(err, ErrKeyFetchLimited) {
		return nil, authErr(ReasonKeyFetchLimited, "too many install-key lookups at once; retry later")
	}
	if err != nil {
		return nil, authErr(ReasonKeyServerUnavailable, "Atlassian's install-key server could not be reached; retry later")
	}

	var tc tokenClaims
	_, err = newParser(jwt.SigningMethodRS256.Alg(), now).ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodRS256 {
			return nil, errWrongKeyAlg
		}
		return key, nil
	})
	if err != nil {
		return nil, classifyParseError(err)
	}
	return v.checkClaims(&tc, h.kid, bodyClientKey, r, appBase, now)
}

// checkClaims runs the claim checks of an install token: exp (required,
// with leeway), nbf, the lifetime bound, aud, iss and qsh.
func (v *InstallVerifier) checkClaims(tc *tokenClaims, kid, bodyClientKey string, r *http.Request, appBase *url.URL, now time.Time) (*Claims, error) {
	if err := newValidator(now).Validate(tc); err != nil {
		return nil, classifyParseError(err)
	}
	if err := checkLifetime(tc, now); err != nil {
		return nil, err
	}
	if !audienceHas(tc.Audience, v.AppBaseURL) {
		return nil, authErr(ReasonBadAud, "install token aud is not this app's base URL")
	}
	if subtle.ConstantTimeCompare([]byte(tc.Issuer), []byte(bodyClientKey)) != 1 {
		return nil, authErr(ReasonBadIss, "install token iss is not the payload's clientKey")
	}
	claims := tc.claims(kid)
	if err := checkURLQSH(claims, r, appBase.EscapedPath()); err != nil {
		return nil, err
	}
	return claims, nil
}

// audienceHas reports whether aud holds want, comparing exactly after
// removing one trailing slash from each.
func audienceHas(aud jwt.ClaimStrings, want string) bool {
	want = strings.TrimSuffix(want, "/")
	if want == "" {
		return false
	}
	for _, a := range aud {
		if strings.TrimSuffix(a, "/") == want {
			return true
		}
	}
	return false
}
