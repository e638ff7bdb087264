// Package account owns a site's service account (SPEC section 5): the
// credentials idbridge uses to call Atlassian for user provisioning and
// customer SSO. It validates what an admin enters, keeps the secrets
// write-only (sealed by the store, shown only as a four-character hint),
// records every change in the audit log in the same transaction, and tests
// the credentials against the site, saying in words what works and what
// is missing.
package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"idbridge/app/atlassian"
	"idbridge/app/audit"
	"idbridge/app/store"
	"idbridge/models"
)

// Input bounds. Atlassian's API tokens are about 200 characters; the
// bounds leave room without accepting megabytes.
const (
	maxEmail    = 254
	maxClientID = 256
	maxSecret   = 4096
	maxYears    = 5

	// DefaultTestTimeout bounds "Test connection": an admin waits for it.
	DefaultTestTimeout = 20 * time.Second
)

// Names of the checks of "Test connection", shown to admins.
const (
	CheckExpiry      = "Expiry"
	CheckCredentials = "Credentials"
	CheckAdmin       = "Jira administrator"
	CheckOrgKey      = "Organization Admin API key"
)

// cloudIDPattern is a cloud ID as Atlassian issues them (a UUID); it goes
// into a URL path.
var cloudIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// Service manages service accounts.
type Service struct {
	store       *store.Store
	accounts    *atlassian.ServiceAccounts
	now         func() time.Time
	log         *slog.Logger
	TestTimeout time.Duration
}

// New builds the service; it starts nothing.
func New(st *store.Store, accounts *atlassian.ServiceAccounts, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: st, accounts: accounts, now: now, log: log, TestTimeout: DefaultTestTimeout}
}

// Get returns the site's service account (secrets included: callers map it
// to a response that never shows them). None configured: not found.
func (s *Service) Get(ctx context.Context, siteID string) (*models.ServiceAccount, error) {
	acc, err := s.store.View(ctx).FindServiceAccount(siteID)
	if models.IsNotFound(err) {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "no service account is configured"}
	}
	return acc, err
}

// Save validates in against what is stored and saves the result, with a
// config_changed audit event naming the changed fields (never values) in
// the same transaction. A secret left out keeps the stored one, if the
// kind still uses it. Nothing is saved when anything is invalid.
func (s *Service) Save(ctx context.Context, site *models.Site, actorAccountID string, in models.ServiceAccountInput) (*models.ServiceAccount, error) {
	if site == nil || site.ID == "" {
		return nil, errors.New("save service account: no site")
	}
	var saved *models.ServiceAccount
	var changed []string
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.LockServiceAccount(site.ID); err != nil {
			return err
		}
		old, err := tx.FindServiceAccount(site.ID)
		if err != nil && !models.IsNotFound(err) {
			return err
		}
		next, fields, err := s.merge(site, old, in)
		if err != nil {
			return err
		}
		changed = fields
		if len(fields) == 0 {
			saved = old
			return nil
		}
		next.UpdatedBy = actorAccountID
		if saved, err = tx.SaveServiceAccount(site.ID, next); err != nil {
			return err
		}
		_, err = audit.Record(tx, audit.ConfigChanged(site.ID, actorAccountID, audit.SectionServiceAccount, fields))
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(changed) > 0 {
		s.accounts.Forget(site.ID)
		s.log.InfoContext(ctx, "service account saved", "site_id", site.ID, "kind", string(saved.Kind), "fields", strings.Join(changed, ","))
	}
	return saved, nil
}

// credentialFields are the fields whose change makes the stored status
// meaningless until the next test.
var credentialFields = map[string]bool{
	"kind": true, "email": true, "token": true, "cloudId": true, "clientId": true, "clientSecret": true, "orgAdminKey": true,
}

// merge validates in and applies it over old (nil: none yet). It returns
// the account to store and the names of the fields that change.
func (s *Service) merge(site *models.Site, old *models.ServiceAccount, in models.ServiceAccountInput) (*models.ServiceAccount, []string, error) {
	now := s.now()
	kind := models.AccountKind(strings.TrimSpace(string(in.Kind)))
	if kind == "" {
		return nil, nil, models.FieldError("kind", "Choose the kind of service account: api_token, scoped_token or oauth_client.")
	}
	if !kind.Valid() {
		return nil, nil, models.FieldError("kind", "%q is not a kind of service account; use api_token, scoped_token or oauth_client.", truncate(string(kind), 40))
	}
	prev := models.ServiceAccount{}
	if old != nil {
		prev = *old
	}
	sameKind := old != nil && old.Kind == kind
	next := &models.ServiceAccount{
		SiteID: site.ID, Kind: kind,
		Status: prev.Status, StatusMessage: prev.StatusMessage, CheckedAt: prev.CheckedAt,
		OrgAdminKey: prev.OrgAdminKey, OrgAdminKeyHint: prev.OrgAdminKeyHint, OrgAdminKeyExpiresAt: prev.OrgAdminKeyExpiresAt,
		OrgID: prev.OrgID,
	}
	if sameKind {
		next.ExpiresAt = prev.ExpiresAt
	}

	// Email: the account the token belongs to.
	email := strings.TrimSpace(in.Email)
	switch {
	case email == "" && kind.UsesToken():
		return nil, nil, models.FieldError("email", "Enter the email address of the account the API token belongs to.")
	case email != "":
		if err := checkEmail(email); err != nil {
			return nil, nil, err
		}
	}
	next.Email = email

	var credentialChanged bool
	switch kind {
	case models.AccountAPIToken, models.AccountScopedToken:
		token, err := secretInput("token", "API token", in.Token, sameKind && prev.Token != "", prev.Token)
		if err != nil {
			return nil, nil, err
		}
		next.Token = token
		next.TokenHint = models.SecretHint(token)
		credentialChanged = token != prev.Token || !sameKind
	case models.AccountOAuthClient:
		clientID := strings.TrimSpace(in.ClientID)
		switch {
		case clientID == "":
			return nil, nil, models.FieldError("clientId", "Enter the client ID of the service account's OAuth 2.0 credential.")
		case utf8.RuneCountInString(clientID) > maxClientID:
			return nil, nil, models.FieldError("clientId", "The client ID is longer than %d characters; copy it again from Atlassian Administration.", maxClientID)
		case hasSpaceOrControl(clientID):
			return nil, nil, models.FieldError("clientId", "The client ID contains spaces or line breaks; copy it again from Atlassian Administration.")
		}
		next.ClientID = clientID
		secret, err := secretInput("clientSecret", "client secret", in.ClientSecret, sameKind && prev.ClientSecret != "", prev.ClientSecret)
		if err != nil {
			return nil, nil, err
		}
		next.ClientSecret = secret
		next.TokenHint = models.SecretHint(secret)
		credentialChanged = secret != prev.ClientSecret || !sameKind
	}

	// Cloud ID: scoped tokens and OAuth go through the API gateway.
	if kind == models.AccountScopedToken || kind == models.AccountOAuthClient {
		cloudID := strings.TrimSpace(in.CloudID)
		if cloudID == "" {
			cloudID = site.CloudID
		}
		switch {
		case cloudID == "":
			return nil, nil, models.FieldError("cloudId", "Enter the site's cloud ID (https://<your-site>.atlassian.net/_edge/tenant_info shows it).")
		case !cloudIDPattern.MatchString(cloudID):
			return nil, nil, models.FieldError("cloudId", "The cloud ID should look like 1a2b3c4d-…: letters, digits and dashes, at most 64.")
		}
		next.CloudID = cloudID
	} else if strings.TrimSpace(in.CloudID) != "" && !cloudIDPattern.MatchString(strings.TrimSpace(in.CloudID)) {
		return nil, nil, models.FieldError("cloudId", "The cloud ID should look like 1a2b3c4d-…: letters, digits and dashes, at most 64.")
	}

	// Expiry of the token or client secret.
	if in.ExpiresAtSet {
		if err := checkExpiry("expiresAt", in.ExpiresAt, now, !credentialChanged && sameKind && sameTime(in.ExpiresAt, prev.ExpiresAt)); err != nil {
			return nil, nil, err
		}
		next.ExpiresAt = utc(in.ExpiresAt)
	} else if credentialChanged {
		// A new token has its own expiry; an old date would mislead.
		next.ExpiresAt = nil
	}

	// Optional organization Admin API key.
	switch {
	case in.ClearOrgAdminKey:
		next.OrgAdminKey, next.OrgAdminKeyHint, next.OrgAdminKeyExpiresAt = "", "", nil
	case in.OrgAdminKey != nil:
		key, err := secretInput("orgAdminKey", "organization Admin API key", in.OrgAdminKey, false, "")
		if err != nil {
			return nil, nil, err
		}
		next.OrgAdminKey, next.OrgAdminKeyHint = key, models.SecretHint(key)
		if key != prev.OrgAdminKey {
			next.OrgAdminKeyExpiresAt = nil
		}
	}
	// The organization's ID, for suspending managed accounts (SPEC 6.1).
	if in.OrgID != nil {
		orgID := strings.TrimSpace(*in.OrgID)
		if orgID != "" && !cloudIDPattern.MatchString(orgID) {
			return nil, nil, models.FieldError("orgId", "The organization ID should look like 1a2b3c4d-…: letters, digits and dashes, at most 64 (Atlassian Administration shows it in the address of your organization).")
		}
		next.OrgID = orgID
	}
	if in.OrgAdminKeyExpiresAtSet {
		if next.OrgAdminKey == "" && in.OrgAdminKeyExpiresAt != nil {
			return nil, nil, models.FieldError("orgAdminKeyExpiresAt", "There is no organization Admin API key to give an expiry date to.")
		}
		if err := checkExpiry("orgAdminKeyExpiresAt", in.OrgAdminKeyExpiresAt, now, sameTime(in.OrgAdminKeyExpiresAt, prev.OrgAdminKeyExpiresAt)); err != nil {
			return nil, nil, err
		}
		next.OrgAdminKeyExpiresAt = utc(in.OrgAdminKeyExpiresAt)
	}

	fields := diff(old, next)
	for _, f := range fields {
		if credentialFields[f] {
			next.Status, next.StatusMessage, next.CheckedAt = models.AccountUntested, "", nil
			break
		}
	}
	if next.Status == "" {
		next.Status = models.AccountUntested
	}
	return next, fields, nil
}

// secretInput validates a write-only secret: nil keeps the stored one when
// there is one; an empty or blank value is refused.
func secretInput(field, what string, v *string, canKeep bool, stored string) (string, error) {
	if v == nil {
		if canKeep {
			return stored, nil
		}
		return "", models.FieldError(field, "Enter the %s.", what)
	}
	s := strings.TrimSpace(*v)
	switch {
	case s == "":
		return "", models.FieldError(field, "The %s is empty. Paste it again, or leave the field out to keep the stored one.", what)
	case len(s) > maxSecret:
		return "", models.FieldError(field, "The %s is longer than %d characters; copy it again.", what, maxSecret)
	case hasSpaceOrControl(s):
		return "", models.FieldError(field, "The %s contains spaces or line breaks; copy it again.", what)
	}
	return s, nil
}

func checkEmail(email string) error {
	if utf8.RuneCountInString(email) > maxEmail {
		return models.FieldError("email", "The email address is longer than %d characters.", maxEmail)
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		return models.FieldError("email", "%q is not an email address such as automation@example.com.", truncate(email, 60))
	}
	return nil
}

// checkExpiry refuses an expiry in the past (unless unchanged, so that an
// admin can still save other fields) or implausibly far ahead.
func checkExpiry(field string, t *time.Time, now time.Time, unchanged bool) error {
	if t == nil {
		return nil
	}
	if t.Before(now) && !unchanged {
		return models.FieldError(field, "The expiry date %s is in the past: that credential has expired. Create a new one and enter it.", t.UTC().Format("2006-01-02"))
	}
	if t.After(now.AddDate(maxYears, 0, 0)) {
		return models.FieldError(field, "The expiry date %s is more than %d years ahead; Atlassian credentials expire within a year.", t.UTC().Format("2006-01-02"), maxYears)
	}
	return nil
}

func hasSpaceOrControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
}

// diff names the API fields that differ between old (nil: nothing) and
// next. Secrets are compared, never reported beyond their field name.
func diff(old, next *models.ServiceAccount) []string {
	o := models.ServiceAccount{}
	if old != nil {
		o = *old
	}
	var fields []string
	add := func(name string, changed bool) {
		if changed {
			fields = append(fields, name)
		}
	}
	add("kind", o.Kind != next.Kind)
	add("email", o.Email != next.Email)
	add("token", o.Token != next.Token)
	add("cloudId", o.CloudID != next.CloudID)
	add("clientId", o.ClientID != next.ClientID)
	add("clientSecret", o.ClientSecret != next.ClientSecret)
	add("expiresAt", !sameTime(o.ExpiresAt, next.ExpiresAt))
	add("orgAdminKey", o.OrgAdminKey != next.OrgAdminKey)
	add("orgAdminKeyExpiresAt", !sameTime(o.OrgAdminKeyExpiresAt, next.OrgAdminKeyExpiresAt))
	add("orgId", o.OrgID != next.OrgID)
	return fields
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// Test calls GET /rest/api/3/myself and GET /rest/api/3/mypermissions
// (and the organization Admin API when a key is configured) with the
// stored credentials, and says in words what works and what is missing.
// A 401 marks the credentials invalid; any answer records the status. When
// Atlassian does not answer in time (or is unavailable), nothing changes
// and the error says so.
func (s *Service) Test(ctx context.Context, site *models.Site) (*models.ConnectionTest, error) {
	acc, err := s.Get(ctx, site.ID)
	if models.IsNotFound(err) {
		return nil, &models.Error{Code: models.CodePrecondition, Message: "Save a service account first, then test it.", Field: "kind"}
	}
	if err != nil {
		return nil, err
	}
	if acc.Kind.UsesToken() && acc.Token == "" || acc.Kind == models.AccountOAuthClient && acc.ClientSecret == "" {
		return nil, &models.Error{Code: models.CodePrecondition, Message: "No credentials are stored; enter them again, save, then test.", Field: secretField(acc.Kind)}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()

	res := &models.ConnectionTest{OK: true}
	invalid := false
	add := func(c models.ConnectionCheck) {
		res.Checks = append(res.Checks, c)
		if !c.OK {
			res.OK = false
		}
	}
	now := s.now()
	if c, ok := expiryCheck(acc, now); ok {
		add(c)
	}

	client, err := s.accounts.Client(site, acc)
	if err != nil {
		return nil, err
	}
	var me struct {
		AccountID    string `json:"accountId"`
		EmailAddress string `json:"emailAddress"`
		DisplayName  string `json:"displayName"`
		Active       *bool  `json:"active"`
	}
	err = client.Do(ctx, http.MethodGet, "/rest/api/3/myself", nil, &me)
	authenticated := false
	switch code := models.ErrorCode(err); {
	case err == nil:
		authenticated = true
		who := me.DisplayName
		if who == "" {
			who = me.EmailAddress
		}
		if who == "" {
			who = "the service account"
		}
		if me.Active != nil && !*me.Active {
			add(models.ConnectionCheck{Name: CheckCredentials, OK: false, Message: fmt.Sprintf("Signed in as %s, but that account is deactivated: activate it, or use another account.", who)})
		} else {
			add(models.ConnectionCheck{Name: CheckCredentials, OK: true, Message: fmt.Sprintf("%s valid: signed in to Atlassian as %s.", credentialNoun(acc.Kind), who)})
		}
	case code == models.CodeUnauthorized:
		invalid = true
		add(models.ConnectionCheck{Name: CheckCredentials, OK: false, Message: rejectedMessage(acc)})
	case code == models.CodeForbidden:
		authenticated = true
		add(models.ConnectionCheck{Name: CheckCredentials, OK: false, Message: fmt.Sprintf("%s accepted, but it may not read its own account (403): give it the read:jira-user scope.", credentialNoun(acc.Kind))})
	case code == models.CodeNotFound:
		invalid = true
		add(models.ConnectionCheck{Name: CheckCredentials, OK: false, Message: notFoundMessage(acc, client.BaseURL())})
	default:
		return nil, s.unreachable(err, acc, site)
	}

	if authenticated {
		var perms struct {
			Permissions map[string]struct {
				HavePermission bool `json:"havePermission"`
			} `json:"permissions"`
		}
		err = client.Do(ctx, http.MethodGet, "/rest/api/3/mypermissions?permissions=ADMINISTER", nil, &perms)
		switch code := models.ErrorCode(err); {
		case err == nil && perms.Permissions["ADMINISTER"].HavePermission:
			add(models.ConnectionCheck{Name: CheckAdmin, OK: true, Message: "The account is a Jira administrator: it can create customers and manage users and groups."})
		case err == nil:
			add(models.ConnectionCheck{Name: CheckAdmin, OK: false, Message: fmt.Sprintf("%s valid, but the account is not a Jira administrator: customers cannot be created and users cannot be provisioned. Add it to the jira-admins group (or give it the Administer Jira global permission).", credentialNoun(acc.Kind))})
		case code == models.CodeUnauthorized:
			invalid = true
			add(models.ConnectionCheck{Name: CheckAdmin, OK: false, Message: rejectedMessage(acc)})
		case code == models.CodeForbidden || code == models.CodeNotFound:
			add(models.ConnectionCheck{Name: CheckAdmin, OK: false, Message: fmt.Sprintf("%s valid, but it may not read its permissions (%s): give it the read:jira-work scope.", credentialNoun(acc.Kind), httpStatusOf(err))})
		case code == models.CodeInvalid || code == models.CodeInternal:
			add(models.ConnectionCheck{Name: CheckAdmin, OK: false, Message: "The site did not understand the permission check; the account's permissions are unknown."})
		default:
			return nil, s.unreachable(err, acc, site)
		}
	}

	if acc.OrgAdminKey != "" {
		org, err := s.accounts.OrgAdmin(site, acc)
		if err != nil {
			return nil, err
		}
		var orgs struct {
			Data []struct {
				Attributes struct {
					Name string `json:"name"`
				} `json:"attributes"`
			} `json:"data"`
		}
		err = org.Do(ctx, http.MethodGet, "/admin/v1/orgs", nil, &orgs)
		switch code := models.ErrorCode(err); {
		case err == nil:
			msg := "The organization Admin API key works: managed accounts can be suspended and restored."
			if len(orgs.Data) > 0 && orgs.Data[0].Attributes.Name != "" {
				msg = fmt.Sprintf("The organization Admin API key works (organization %s): managed accounts can be suspended and restored.", orgs.Data[0].Attributes.Name)
			}
			add(models.ConnectionCheck{Name: CheckOrgKey, OK: true, Message: msg})
		case code == models.CodeUnauthorized:
			invalid = true
			add(models.ConnectionCheck{Name: CheckOrgKey, OK: false, Message: "Atlassian rejected the organization Admin API key (401): managed accounts cannot be suspended or restored. Create a new key in Atlassian Administration and enter it."})
		case code == models.CodeForbidden:
			add(models.ConnectionCheck{Name: CheckOrgKey, OK: false, Message: "The organization Admin API key was accepted but may not list organizations (403): managed accounts may not be suspended or restored."})
		case code == models.CodeUnavailable:
			return nil, s.unreachable(err, acc, site)
		default:
			add(models.ConnectionCheck{Name: CheckOrgKey, OK: false, Message: fmt.Sprintf("The organization Admin API answered %s; the key could not be checked.", httpStatusOf(err))})
		}
	}

	status, message := models.AccountOK, "All checks passed."
	if invalid {
		status = models.AccountInvalid
	}
	for _, c := range res.Checks {
		if !c.OK {
			message = c.Message
			break
		}
	}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		return tx.SetServiceAccountStatus(site.ID, status, message, s.now())
	})
	if err != nil {
		return nil, err
	}
	if res.Account, err = s.Get(ctx, site.ID); err != nil {
		return nil, err
	}
	return res, nil
}

func (s *Service) timeout() time.Duration {
	if s.TestTimeout > 0 {
		return s.TestTimeout
	}
	return DefaultTestTimeout
}

// unreachable is the error of a test that got no usable answer: a 503
// that says what happened and that nothing changed.
func (s *Service) unreachable(err error, acc *models.ServiceAccount, site *models.Site) error {
	s.log.Warn("service account test: no answer from Atlassian", "site_id", site.ID, "kind", string(acc.Kind), "error", err.Error())
	where := "The site"
	if acc.Kind != models.AccountAPIToken {
		where = "Atlassian's API gateway"
	}
	if atlassian.IsTimeout(err) {
		return fmt.Errorf("test connection: %w", &models.Error{Code: models.CodeUnavailable, Message: fmt.Sprintf(
			"%s did not answer within %d seconds, so the connection could not be tested. Nothing was changed; try again in a minute.",
			where, int(s.timeout().Seconds()))})
	}
	return fmt.Errorf("test connection: %w", &models.Error{Code: models.CodeUnavailable, Message: fmt.Sprintf(
		"%s is not answering properly right now (%s), so the connection could not be tested. Nothing was changed; try again in a minute.",
		where, models.ErrorMessage(err))})
}

func secretField(k models.AccountKind) string {
	if k == models.AccountOAuthClient {
		return "clientSecret"
	}
	return "token"
}

func credentialNoun(k models.AccountKind) string {
	switch k {
	case models.AccountOAuthClient:
		return "Client credentials"
	case models.AccountScopedToken:
		return "Scoped token"
	}
	return "Token"
}

func rejectedMessage(acc *models.ServiceAccount) string {
	switch acc.Kind {
	case models.AccountOAuthClient:
		return "Atlassian rejected the client ID and secret (401). Check that the credential exists, has not expired and belongs to this organization; then enter it again."
	case models.AccountScopedToken:
		return fmt.Sprintf("Atlassian rejected the scoped token (401). Check that it belongs to %s, has not expired or been revoked, and was made for this site.", acc.Email)
	}
	return fmt.Sprintf("Atlassian rejected the email and API token (401). Check that the token belongs to %s and has not expired or been revoked.", acc.Email)
}

func notFoundMessage(acc *models.ServiceAccount, base string) string {
	if acc.Kind == models.AccountAPIToken {
		return fmt.Sprintf("The site at %s has no Jira REST API (404); the service account needs a Jira site.", base)
	}
	return fmt.Sprintf("No Jira site answers for cloud ID %s (404). Check the cloud ID.", acc.CloudID)
}

func httpStatusOf(err error) string {
	var se *atlassian.StatusError
	if errors.As(err, &se) {
		return fmt.Sprintf("%d %s", se.StatusCode, http.StatusText(se.StatusCode))
	}
	return "an error"
}

// daysUntil says in words how many calendar days (UTC, as the admin page
// counts them) lie between now and t: "today", "tomorrow", "in 10 days".
func daysUntil(now, t time.Time) string {
	day := func(x time.Time) time.Time {
		y, m, d := x.UTC().Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	switch n := int(day(t).Sub(day(now)).Hours() / 24); n {
	case 0:
		return "today"
	case 1:
		return "tomorrow"
	default:
		return fmt.Sprintf("in %d days", n)
	}
}

// expiryCheck is the check of the credential's expiry date, when known.
func expiryCheck(acc *models.ServiceAccount, now time.Time) (models.ConnectionCheck, bool) {
	if acc.ExpiresAt == nil {
		return models.ConnectionCheck{}, false
	}
	day := acc.ExpiresAt.UTC().Format("2006-01-02")
	left := acc.ExpiresAt.Sub(now)
	switch {
	case left <= 0:
		return models.ConnectionCheck{Name: CheckExpiry, OK: false, Message: fmt.Sprintf("The %s expired on %s. Create a new one and enter it.", strings.ToLower(credentialNoun(acc.Kind)), day)}, true
	case left <= models.ExpiryWarning:
		return models.ConnectionCheck{Name: CheckExpiry, OK: true, Message: fmt.Sprintf("The %s expires on %s, %s: create a new one and enter it before then.", strings.ToLower(credentialNoun(acc.Kind)), day, daysUntil(now, *acc.ExpiresAt))}, true
	}
	return models.ConnectionCheck{Name: CheckExpiry, OK: true, Message: fmt.Sprintf("The %s expires on %s.", strings.ToLower(credentialNoun(acc.Kind)), day)}, true
}
