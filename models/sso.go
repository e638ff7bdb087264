package models

import (
	"strings"
	"time"
)

// SSO protocols of an identity provider.
const (
	ProtocolOIDC = "oidc"
	ProtocolSAML = "saml"
)

// SSOSettings is a site's customer SSO configuration (SPEC 7.1, PUT
// /api/admin/sso). SPKey is the SAML service provider's private key (PEM):
// a secret, sealed by the store, never returned by an API.
type SSOSettings struct {
	SiteID                string
	Enabled               bool
	AllowedDomains        []string // lower case, compared exactly
	AutoCreateCustomers   bool
	ServiceDeskIDs        []string
	OrganizationsByDomain map[string]string // lower-case domain → organization ID
	SessionIdleMinutes    int
	SessionMaxHours       int
	SPKey                 string // secret (PEM)
	SPCertificate         string // PEM, public
	UpdatedAt             time.Time
	UpdatedBy             string
}

// Session defaults and bounds (minutes and hours).
const (
	DefaultSessionIdleMinutes = 30
	DefaultSessionMaxHours    = 8
	MaxSessionIdleMinutes     = 24 * 60
	MaxSessionMaxHours        = 30 * 24
)

// IdleTimeout is how long a portal session lives without a request.
func (s *SSOSettings) IdleTimeout() time.Duration {
	if s == nil || s.SessionIdleMinutes <= 0 {
		return DefaultSessionIdleMinutes * time.Minute
	}
	return time.Duration(s.SessionIdleMinutes) * time.Minute
}

// MaxAge is how long a portal session lives at most.
func (s *SSOSettings) MaxAge() time.Duration {
	if s == nil || s.SessionMaxHours <= 0 {
		return DefaultSessionMaxHours * time.Hour
	}
	return time.Duration(s.SessionMaxHours) * time.Hour
}

// SSOSettingsInput is what an admin sends; nil fields stay as they are.
type SSOSettingsInput struct {
	Enabled               *bool
	AllowedDomains        *[]string
	AutoCreateCustomers   *bool
	ServiceDeskIDs        *[]string
	OrganizationsByDomain *map[string]string
	SessionIdleMinutes    *int
	SessionMaxHours       *int
}

// OIDCConfig is an OpenID Connect identity provider. ClientSecret is a
// secret: sealed by the store, never returned by an API.
type OIDCConfig struct {
	Issuer               string
	ClientID             string
	ClientSecret         string
	ClientSecretHint     string
	Scopes               []string
	EmailClaim           string
	NameClaim            string
	RequireVerifiedEmail bool
}

// SAMLConfig is a SAML 2.0 identity provider: its metadata (as given, or
// fetched from MetadataURL at save time), or an entity ID, SSO URL and
// signing certificate entered by hand.
type SAMLConfig struct {
	MetadataXML    string
	MetadataURL    string
	EntityID       string
	SSOURL         string
	Certificate    string // PEM or base64 DER
	EmailAttribute string // empty: the NameID, when it is an email
	NameAttribute  string
}

// IdentityProvider is one of a site's customer identity providers.
type IdentityProvider struct {
	SiteID       string
	ID           string
	Name         string
	Protocol     string
	Enabled      bool
	EmailDomains []string // lower case; empty: any allowed domain
	OIDC         *OIDCConfig
	SAML         *SAMLConfig
	CreatedAt    time.Time
	UpdatedAt    time.Time
	UpdatedBy    string
}

// Serves reports whether the IdP signs in people of the email domain.
func (p *IdentityProvider) Serves(domain string) bool {
	if len(p.EmailDomains) == 0 {
		return true
	}
	for _, d := range p.EmailDomains {
		if d == domain {
			return true
		}
	}
	return false
}

// IdentityProviderInput is what an admin sends to create or change an IdP.
// Nil fields keep the stored value; a nil ClientSecret keeps the stored one.
type IdentityProviderInput struct {
	Name         *string
	Protocol     *string
	Enabled      *bool
	EmailDomains *[]string
	OIDC         *OIDCInput
	SAML         *SAMLInput
}

// OIDCInput is the OIDC part of IdentityProviderInput.
type OIDCInput struct {
	Issuer               *string
	ClientID             *string
	ClientSecret         *string
	Scopes               *[]string
	EmailClaim           *string
	NameClaim            *string
	RequireVerifiedEmail *bool
}

// SAMLInput is the SAML part of IdentityProviderInput.
type SAMLInput struct {
	MetadataXML    *string
	MetadataURL    *string
	EntityID       *string
	SSOURL         *string
	Certificate    *string
	EmailAttribute *string
	NameAttribute  *string
}

// LoginState is what a sign-in in progress needs when the browser comes
// back from the identity provider (SPEC 7). ID is the SHA-256 of the state
// token the browser carries (OIDC state, SAML RelayState); BrowserHash the
// SHA-256 of the binding cookie of the browser that started it.
type LoginState struct {
	SiteID        string
	ID            string
	IdPID         string
	Protocol      string
	BrowserHash   string
	Nonce         string
	PKCEVerifier  string
	SAMLRequestID string
	ReturnTo      string
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

// LoginStateTTL is how long a sign-in may take.
const LoginStateTTL = 10 * time.Minute

// PortalSession is a customer's signed-in session on the portal. ID is the
// SHA-256 of the cookie's value; the value itself is never stored.
type PortalSession struct {
	SiteID      string
	ID          string
	AccountID   string
	Email       string
	DisplayName string
	IdPID       string
	CreatedAt   time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time // absolute
}

// Identity is who an identity provider says signed in.
type Identity struct {
	Email       string
	DisplayName string
	Subject     string
}

// EmailDomain returns the lower-cased domain after the last "@" of email,
// or "" when there is none.
func EmailDomain(email string) string {
	i := strings.LastIndexByte(email, '@')
	if i < 1 || i == len(email)-1 {
		return ""
	}
	return strings.ToLower(email[i+1:])
}

// SignInStep is one line of "Test sign-in": what was checked, and how it went.
type SignInStep struct {
	Name    string
	OK      bool
	Message string
}

// SPFacts are what an admin copies into a SAML identity provider.
type SPFacts struct {
	EntityID    string
	ACSURL      string
	MetadataURL string
}

// LoginRequest starts a sign-in: GET /portal/{siteID}/login.
type LoginRequest struct {
	SiteID   string
	IdPID    string // ?idp=
	Email    string // ?email=, picks the IdP by its domain
	ReturnTo string
	// TestTicket is the ?test= of a "Test sign-in" link: what the admin
	// page was given (sso.Service.TestSignInURL), for the site and the IdP.
	// Set, the request is a test: report each step, start no session.
	TestTicket string
	// BrowserToken is the binding cookie the browser already has, if any.
	BrowserToken string
}

// LoginStart says where the browser goes next: to RedirectURL (the IdP), or,
// when Chooser is set, to a page that lets the person choose.
type LoginStart struct {
	RedirectURL  string
	Protocol     string
	BrowserToken string // the binding cookie to set (10 minutes)
	Chooser      []*IdentityProvider
	SiteName     string
}

// LoginCallback is what the browser brings back from the identity provider.
type LoginCallback struct {
	SiteID string
	// OIDC: ?state, ?code, ?error; SAML: RelayState, SAMLResponse.
	State        string
	Code         string
	Error        string
	SAMLResponse string
	BrowserToken string
	// OldSessionToken is the portal cookie the browser had, ended at login.
	OldSessionToken string
	IP              string
	UserAgent       string
}

// LoginResult is a finished sign-in: a new session (and its cookie value),
// or, for "Test sign-in", the steps.
type LoginResult struct {
	Session      *PortalSession
	SessionToken string
	ReturnTo     string
	Test         bool
	Steps        []SignInStep
}
