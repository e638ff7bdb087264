package models

import "time"

// AccountKind is how a site's service account authenticates to Atlassian
// (SPEC section 5).
type AccountKind string

// Service-account kinds.
const (
	// AccountAPIToken is a classic API token: Basic email:token against the
	// site's own base URL.
	AccountAPIToken AccountKind = "api_token"
	// AccountScopedToken is a scoped API token: Basic email:token against
	// the API gateway, {api}/ex/jira/{cloudId}.
	AccountScopedToken AccountKind = "scoped_token"
	// AccountOAuthClient is the OAuth 2.0 client credentials of an
	// Atlassian service account: a Bearer token from the token endpoint,
	// against the API gateway.
	AccountOAuthClient AccountKind = "oauth_client"
)

// Valid reports whether k is a known kind.
func (k AccountKind) Valid() bool {
	switch k {
	case AccountAPIToken, AccountScopedToken, AccountOAuthClient:
		return true
	}
	return false
}

// UsesToken reports whether the kind authenticates with email and token
// (as opposed to client credentials).
func (k AccountKind) UsesToken() bool { return k == AccountAPIToken || k == AccountScopedToken }

// AccountStatus is what idbridge last learned about the credentials.
type AccountStatus string

// Service-account statuses.
const (
	AccountUntested AccountStatus = "untested" // saved, never tested since
	AccountOK       AccountStatus = "ok"       // the last test or call worked
	AccountInvalid  AccountStatus = "invalid"  // Atlassian refused them (401), or they were deleted
)

// ServiceAccount is a site's credentials for calling Atlassian as a
// service account. Token, ClientSecret and OrgAdminKey are secrets: sealed
// by the store, never logged, never returned by an API; the *Hint fields
// (the last four characters) are what may be shown.
type ServiceAccount struct {
	SiteID       string
	Kind         AccountKind
	Email        string // token kinds
	Token        string // secret; token kinds
	CloudID      string // scoped token and OAuth
	ClientID     string // OAuth
	ClientSecret string // secret; OAuth
	// TokenHint is the last four characters of the secret the kind uses:
	// Token, or ClientSecret for OAuth.
	TokenHint string
	// ExpiresAt is when the token or client secret expires, as the admin
	// entered it (Atlassian shows it when the credential is created).
	ExpiresAt *time.Time
	// OrgAdminKey is an optional organization Admin API key (Bearer), and
	// OrgID the organization it belongs to (for suspending accounts).
	OrgAdminKey          string // secret
	OrgID                string
	OrgAdminKeyHint      string
	OrgAdminKeyExpiresAt *time.Time

	Status        AccountStatus
	StatusMessage string
	CheckedAt     *time.Time
	UpdatedAt     time.Time
	// UpdatedBy is the Atlassian account ID of the admin who saved it.
	UpdatedBy string
}

// SecretHint returns the last four characters of a secret, for display as
// "••••" + hint; "" for secrets too short to give four away safely.
func SecretHint(secret string) string {
	r := []rune(secret)
	if len(r) < 12 {
		return ""
	}
	return string(r[len(r)-4:])
}

// ExpiryWarning is how long ahead of a credential's expiry the admin page
// warns.
const ExpiryWarning = 14 * 24 * time.Hour

// ServiceAccountInput is what an admin sends to save the service account.
// A nil secret keeps the stored one; ClearOrgAdminKey removes the key. The
// expiry dates change only when their *Set flag says the admin sent them
// (nil then clears the date).
type ServiceAccountInput struct {
	Kind                    AccountKind
	Email                   string
	Token                   *string
	CloudID                 string
	ClientID                string
	ClientSecret            *string
	ExpiresAt               *time.Time
	ExpiresAtSet            bool
	OrgAdminKey             *string
	ClearOrgAdminKey        bool
	OrgID                   *string // nil keeps the stored one
	OrgAdminKeyExpiresAt    *time.Time
	OrgAdminKeyExpiresAtSet bool
}

// Warnings says in words what an admin should know about the account at
// now: credentials rejected, or expiring within ExpiryWarning or expired.
func (a *ServiceAccount) Warnings(now time.Time) []string {
	var w []string
	if a.Status == AccountInvalid {
		msg := "Atlassian rejected these credentials; work that needs them is paused until they are fixed."
		if a.StatusMessage != "" {
			msg = a.StatusMessage
		}
		w = append(w, msg)
	}
	check := func(what string, t *time.Time) {
		if t == nil {
			return
		}
		day := t.UTC().Format("2006-01-02")
		switch left := t.Sub(now); {
		case left <= 0:
			w = append(w, "The "+what+" expired on "+day+". Create a new one and enter it.")
		case left <= ExpiryWarning:
			w = append(w, "The "+what+" expires on "+day+". Create a new one and enter it before then.")
		}
	}
	what := "API token"
	if a.Kind == AccountOAuthClient {
		what = "client secret"
	}
	check(what, a.ExpiresAt)
	if a.OrgAdminKey != "" || a.OrgAdminKeyHint != "" {
		check("organization Admin API key", a.OrgAdminKeyExpiresAt)
	}
	return w
}

// ExpiresSoon reports whether the credential expires within ExpiryWarning
// of now (or has expired).
func (a *ServiceAccount) ExpiresSoon(now time.Time) bool {
	return a.ExpiresAt != nil && a.ExpiresAt.Sub(now) <= ExpiryWarning
}

// ConnectionCheck is one line of a connection test's answer.
type ConnectionCheck struct {
	Name    string
	OK      bool
	Message string // a sentence a site admin understands
}

// ConnectionTest is the answer of "Test connection".
type ConnectionTest struct {
	OK      bool
	Checks  []ConnectionCheck
	Account *ServiceAccount // the account afterwards, with its new status
}
