package forge

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idbridge/models"
)

// Forge invocation tokens (FIT): how Forge authenticates its calls to a
// remote. Atlassian's Forge remote documentation: `Authorization: Bearer
// <FIT>`, a JWT signed RS256 with a key of the published JWKS, iss
// "forge/invocation-token", aud the app's ARI, a lifetime of about a
// minute; its app claim names the installation, its context claim the
// site.
const (
	// Issuer is the iss of every Forge invocation token.
	Issuer = "forge/invocation-token"
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway = 30 * time.Second
	// MaxTokenLifetime bounds exp beyond now: Forge's tokens live about a
	// minute, so one valid for longer was not minted as documented.
	MaxTokenLifetime = 10 * time.Minute
	// MaxTokenSize bounds a token before anything decodes it.
	MaxTokenSize = 16 << 10

	// InstallationPrefix starts every installationId (an ARI).
	InstallationPrefix = "ari:cloud:ecosystem::installation/"
	maxClaimLen        = 512
)

// Reasons of a refused Forge token, counted by the metrics
// (idbridge_forge_token_failures_total). Where Connect has the same
// failure the name is the same.
const (
	ReasonMissingToken    = "missing_token"
	ReasonBadAuthScheme   = "bad_auth_scheme"
	ReasonTokenInQuery    = "token_in_query"
	ReasonMalformed       = "malformed"
	ReasonBadAlg          = "bad_alg"
	ReasonBadKid          = "bad_kid"
	ReasonUnknownKid      = "unknown_kid"
	ReasonKeysUnavailable = "key_server_unavailable"
	ReasonBadSignature    = "bad_signature"
	ReasonBadIss          = "bad_iss"
	ReasonBadAud          = "bad_aud"
	ReasonExpired         = "expired"
	ReasonNoExp           = "no_exp"
	ReasonNotYetValid     = "not_yet_valid"
	ReasonTooLongLived    = "too_long_lived"
	ReasonBadInstallation = "bad_installation"
	ReasonUnknownSite     = "unknown_site"
	ReasonUninstalledSite = "uninstalled_site"
	ReasonSiteMismatch    = "site_mismatch"
	ReasonNotConfigured   = "forge_not_configured"
	ReasonOtherEnv        = "other_environment"
)

// Unauthorized is the error of every refused token: code unauthorized (a
// 401), a stable reason, a one-line message that never holds the token.
func Unauthorized(reason, message string) *models.Error {
	return &models.Error{Code: models.CodeUnauthorized, Reason: reason, Message: message}
}

// Invocation is what a verified Forge invocation token says.
type Invocation struct {
	AppID          string
	InstallationID string
	CloudID        string
	SiteURL        string
	APIBaseURL     string
	Environment    string
	ModuleKey      string
	ModuleType     string
	// Principal is the account the call acts for; empty for events.
	Principal string
	ExpiresAt time.Time
}

// fitClaims is the JSON shape of a FIT.
type fitClaims struct {
	jwt.RegisteredClaims
	App struct {
		InstallationID string `json:"installationId"`
		APIBaseURL     string `json:"apiBaseUrl"`
		ID             string `json:"id"`
		Environment    struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"environment"`
		Module struct {
			Type string `json:"type"`
			Key  string `json:"key"`
		} `json:"module"`
	} `json:"app"`
	Context struct {
		CloudID string `json:"cloudId"`
		SiteURL string `json:"siteUrl"`
	} `json:"context"`
	Principal string `json:"principal"`
}

// KeySource gives the public key of a kid (JWKS is one).
type KeySource interface {
	Key(ctx context.Context, kid string) (*rsa.PublicKey, error)
}

// Verifier checks Forge invocation tokens for one app. Set the fields
// before the first Verify and do not copy it after.
type Verifier struct {
	// AppID is the app's ARI (IDBRIDGE_FORGE_APP_ID), the token's aud.
	// Empty refuses every token: no Forge app is configured.
	AppID string
	// Environment, when set (IDBRIDGE_FORGE_ENVIRONMENT), is the only
	// Forge environment type (DEVELOPMENT, STAGING, PRODUCTION) whose
	// tokens are accepted: an installation of the app's other environments
	// on the same site then never reaches this deployment's sites.
	Environment string
	Keys        KeySource
	Now         func() time.Time
	// OnVerified, when set, is told how each accepted token was accepted:
	// "cached" (the verified-token cache) or "verified" (an RSA
	// verification), for metrics. It must not block.
	OnVerified func(how string)

	once      sync.Once
	validator *jwt.Validator
	cache     *verifiedCache
}

// init builds, once, what every verification shares: the claims validator
// and the verified-token cache.
func (v *Verifier) init() {
	if v.Now == nil {
		v.Now = time.Now
	}
	v.validator = jwt.NewValidator(
		jwt.WithLeeway(Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.Now),
	)
	v.cache = newVerifiedCache(VerifiedCacheSize)
}

// TokenFromRequest returns the FIT of "Authorization: Bearer <token>". A
// request that carries a token-like query parameter is refused whatever
// its header says: tokens in URLs end up in logs and referrers, and Forge
// never sends one there.
func TokenFromRequest(r *http.Request) (string, error) {
	if r.URL != nil && r.URL.RawQuery != "" {
		q := r.URL.Query()
		for _, name := range []string{"jwt", "token", "access_token", "fit"} {
			if q.Has(name) {
				return "", Unauthorized(ReasonTokenInQuery, "a token in the query string is refused: send it in the Authorization header")
			}
		}
	}
	hs := r.Header.Values("Authorization")
	switch {
	case len(hs) == 0:
		return "", Unauthorized(ReasonMissingToken, "no token: expected an Authorization: Bearer header")
	case len(hs) > 1:
		return "", Unauthorized(ReasonMalformed, "more than one Authorization header")
	}
	scheme, token, _ := strings.Cut(hs[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", Unauthorized(ReasonBadAuthScheme, `the Authorization header is not of the "Bearer" scheme`)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", Unauthorized(ReasonMissingToken, "the Authorization header holds no token")
	}
	return token, nil
}

// Verify checks a FIT: size and shape, alg exactly RS256, a kid the JWKS
// holds, the signature, iss, aud equal to the app ID, exp (required) and
// nbf with Leeway, a lifetime within MaxTokenLifetime, and an app claim
// naming an installation.
//
// A token that verified is remembered (verifiedCache) until its exp, while
// the key that verified it is still the key set's: the same token again
// costs a SHA-256 and two map lookups. Refusals are never remembered.
func (v *Verifier) Verify(ctx context.Context, token string) (*Invocation, error) {
	if v.AppID == "" {
		return nil, Unauthorized(ReasonNotConfigured, "this server accepts no Forge invocations (IDBRIDGE_FORGE_APP_ID is unset)")
	}
	if len(token) > MaxTokenSize {
		return nil, Unauthorized(ReasonMalformed, "the token is too large")
	}
	v.once.Do(v.init)
	sum := sha256.Sum256([]byte(token))
	if e, ok := v.cache.get(sum, v.Now()); ok {
		if key, err := v.Keys.Key(ctx, e.kid); err == nil && key == e.key {
			inv := e.inv
			v.verified("cached")
			return &inv, nil
		}
		// The key was withdrawn or replaced, or the key set is
		// unavailable: verify afresh, which says why it fails.
		v.cache.drop(sum)
	}
	inv, kid, key, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	v.cache.put(sum, verifiedEntry{inv: *inv, kid: kid, key: key})
	v.verified("verified")
	return inv, nil
}

func (v *Verifier) verified(how string) {
	if v.OnVerified != nil {
		v.OnVerified(how)
	}
}

// verify is Verify without the cache; it also returns the kid and the key
// that verified the token.
func (v *Verifier) verify(ctx context.Context, token string) (*Invocation, string, *rsa.PublicKey, error) {
	fail := func(reason, message string) (*Invocation, string, *rsa.PublicKey, error) {
		return nil, "", nil, Unauthorized(reason, message)
	}
	// Each part is decoded once: the header (alg and kid), then the
	// signature over the first two parts, and only a token whose signature
	// verified has its claims parsed.
	head, rest, ok := strings.Cut(token, ".")
	payload, sigPart, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(sigPart, ".") {
		return fail(ReasonMalformed, "the token is not a signed JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return fail(ReasonMalformed, "the token header is not base64url")
	}
	var h struct {
		Alg string  `json:"alg"`
		Kid *string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return fail(ReasonMalformed, "the token header is not JSON")
	}
	if h.Alg != "RS256" {
		return fail(ReasonBadAlg, "the token must be signed RS256")
	}
	if h.Kid == nil || !validKid(*h.Kid) {
		return fail(ReasonBadKid, "the token's kid is missing or malformed")
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigPart)
	if err != nil {
		return fail(ReasonMalformed, "the token signature is not base64url")
	}
	key, err := v.Keys.Key(ctx, *h.Kid)
	switch {
	case errors.Is(err, ErrUnknownKid):
		return fail(ReasonUnknownKid, "the token's kid is not one of Forge's keys")
	case err != nil && ctx.Err() != nil:
		return fail(ReasonKeysUnavailable, "the request ended while Forge's keys were fetched")
	case err != nil:
		return fail(ReasonKeysUnavailable, "Forge's signing keys are unavailable; try again shortly")
	}
	if jwt.SigningMethodRS256.Verify(token[:len(head)+1+len(payload)], sig, key) != nil {
		return fail(ReasonBadSignature, "the token's signature does not verify")
	}

	raw, err = base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return fail(ReasonMalformed, "the token's claims are not base64url")
	}
	var c fitClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return fail(ReasonMalformed, "the token's claims are malformed")
	}
	err = v.validator.Validate(c)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fail(ReasonNoExp, "the token has no exp")
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(ReasonExpired, "the token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fail(ReasonNotYetValid, "the token is not valid yet")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail(ReasonNotYetValid, "the token was issued in the future")
	default:
		return fail(ReasonMalformed, "the token's claims are malformed")
	}
	if c.Issuer != Issuer {
		return fail(ReasonBadIss, "the token is not a Forge invocation token")
	}
	if len(c.Audience) != 1 || c.Audience[0] != v.AppID {
		return fail(ReasonBadAud, "the token is for another app")
	}
	if c.ExpiresAt.Sub(v.Now()) > MaxTokenLifetime {
		return fail(ReasonTooLongLived, "the token lives longer than Forge's tokens do")
	}
	inv := &Invocation{
		AppID:          v.AppID,
		InstallationID: c.App.InstallationID,
		CloudID:        c.Context.CloudID,
		SiteURL:        c.Context.SiteURL,
		APIBaseURL:     c.App.APIBaseURL,
		Environment:    c.App.Environment.Type,
		ModuleKey:      c.App.Module.Key,
		ModuleType:     c.App.Module.Type,
		Principal:      c.Principal,
		ExpiresAt:      c.ExpiresAt.Time,
	}
	if !ValidInstallationID(inv.InstallationID) {
		return fail(ReasonBadInstallation, "the token names no valid installation")
	}
	if v.Environment != "" && !strings.EqualFold(inv.Environment, v.Environment) {
		return fail(ReasonOtherEnv, "the token is from another Forge environment than this server's")
	}
	for _, s := range []string{inv.CloudID, inv.SiteURL, inv.APIBaseURL, inv.Environment, inv.ModuleKey, inv.ModuleType, inv.Principal} {
		if !boundedText(s) {
			return fail(ReasonMalformed, "the token's claims are malformed")
		}
	}
	return inv, *h.Kid, key, nil
}

// ValidInstallationID reports whether s is an installation ARI of a
// bounded, printable shape.
func ValidInstallationID(s string) bool {
	return strings.HasPrefix(s, InstallationPrefix) && len(s) > len(InstallationPrefix) && boundedText(s)
}

// boundedText: at most maxClaimLen printable ASCII characters, no spaces.
func boundedText(s string) bool {
	if len(s) > maxClaimLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
