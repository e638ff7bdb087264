package sso

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/crewjam/saml"
	"golang.org/x/oauth2"

	"idbridge/app/atlassian"
	"idbridge/app/audit"
	"idbridge/app/store"
	"idbridge/models"
)

// refusal is why a sign-in was refused: a reason code for the audit log and
// a sentence for the person.
type refusal struct {
	reason  string
	message string
}

func refuse(reason, format string, args ...any) *refusal {
	return &refusal{reason: reason, message: fmt.Sprintf(format, args...)}
}

// stepLog collects what "Test sign-in" reports.
type stepLog struct{ steps []models.SignInStep }

func (l *stepLog) ok(name, msg string) {
	l.steps = append(l.steps, models.SignInStep{Name: name, OK: true, Message: msg})
}

func (l *stepLog) fail(name, msg string) {
	l.steps = append(l.steps, models.SignInStep{Name: name, OK: false, Message: msg})
}

var (
	tokenPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	returnPattern = regexp.MustCompile(`^[A-Za-z0-9/_.~%-]*$`)
)

func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken is the stored form of a state, binding or session token.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// ValidToken reports whether tok has the shape of a token idbridge made.
func ValidToken(tok string) bool { return tokenPattern.MatchString(tok) }

// cleanReturnTo accepts only a path under the site's portal; anything else
// (another host, a scheme, "//", "\", a path elsewhere) becomes the home.
func cleanReturnTo(siteID, raw string) string {
	home := "/portal/" + siteID + "/"
	if raw == "" || len(raw) > 512 {
		return home
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" {
		return home
	}
	if !returnPattern.MatchString(raw) || strings.Contains(raw, "//") || strings.Contains(raw, "..") || strings.Contains(strings.ToLower(raw), "%2f") || strings.Contains(raw, "%5c") || strings.Contains(raw, "%5C") {
		return home
	}
	if !strings.HasPrefix(raw, home) {
		return home
	}
	return raw
}

// BeginLogin picks the identity provider, records the login state bound to
// this browser, and returns where to send the browser.
func (s *Service) BeginLogin(ctx context.Context, req models.LoginRequest) (*models.LoginStart, error) {
	site, err := s.activeSite(ctx, req.SiteID)
	if err != nil {
		return nil, err
	}
	settings, err := s.Settings(ctx, site.ID)
	if err != nil {
		return nil, err
	}
	test := req.TestTicket != ""
	if test && !s.validTestTicket(site, req.IdPID, req.TestTicket) {
		return nil, &models.Error{Code: models.CodeForbidden, Message: "This test link is not valid or has expired. Open Test sign-in again from the app's admin page in Jira."}
	}
	if !settings.Enabled && !test {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "Single sign-on is not turned on for this help center."}
	}
	idps, err := s.store.View(ctx).FindIdentityProviders(site.ID)
	if err != nil {
		return nil, err
	}
	var idp *models.IdentityProvider
	switch {
	case req.IdPID != "":
		for _, p := range idps {
			if p.ID == req.IdPID && (p.Enabled || test) {
				idp = p
			}
		}
		if idp == nil {
			return nil, &models.Error{Code: models.CodeNotFound, Message: "This sign-in option does not exist (any more)."}
		}
	default:
		var enabled, byDomain []*models.IdentityProvider
		domain := models.EmailDomain(strings.TrimSpace(req.Email))
		for _, p := range idps {
			if !p.Enabled {
				continue
			}
			enabled = append(enabled, p)
			if domain != "" && len(p.EmailDomains) > 0 && p.Serves(domain) {
				byDomain = append(byDomain, p)
			}
		}
		switch {
		case len(byDomain) == 1:
			idp = byDomain[0]
		case len(enabled) == 1:
			idp = enabled[0]
		case len(enabled) == 0:
			return nil, &models.Error{Code: models.CodeNotFound, Message: "No sign-in option is set up for this help center yet."}
		default:
			return &models.LoginStart{Chooser: enabled, SiteName: siteName(site)}, nil
		}
	}

	browser := req.BrowserToken
	if !ValidToken(browser) {
		browser = newToken()
	}
	state := newToken()
	now := s.store.Now()
	ls := &models.LoginState{
		SiteID: site.ID, ID: HashToken(state), IdPID: idp.ID, Protocol: idp.Protocol,
		BrowserHash: HashToken(browser), ReturnTo: cleanReturnTo(site.ID, req.ReturnTo),
		CreatedAt: now, ExpiresAt: now.Add(models.LoginStateTTL),
	}
	if test {
		ls.ReturnTo = testReturn
	}
	var redirect string
	switch idp.Protocol {
	case models.ProtocolOIDC:
		p, err := s.provider(ctx, idp)
		if err != nil {
			return nil, &models.Error{Code: models.CodeUnavailable, Message: "The identity provider could not be reached: " + err.Error() + "."}
		}
		ls.Nonce = newToken()
		ls.PKCEVerifier = oauth2.GenerateVerifier()
		redirect = s.oauthConfig(p, idp).AuthCodeURL(state, oidcNonce(ls.Nonce), oauth2.S256ChallengeOption(ls.PKCEVerifier))
	case models.ProtocolSAML:
		sp, err := s.serviceProvider(ctx, idp)
		if err != nil {
			return nil, &models.Error{Code: models.CodeUnavailable, Message: "This sign-in option is not usable: " + err.Error()}
		}
		ar, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
		if err != nil {
			return nil, fmt.Errorf("make saml request: %w", err)
		}
		u, err := ar.Redirect(state, sp)
		if err != nil {
			return nil, fmt.Errorf("make saml redirect: %w", err)
		}
		ls.SAMLRequestID = ar.ID
		redirect = u.String()
	}
	if err := s.store.View(ctx).CreateLoginState(site.ID, ls); err != nil {
		return nil, err
	}
	return &models.LoginStart{RedirectURL: redirect, Protocol: idp.Protocol, BrowserToken: browser}, nil
}

const testReturn = "test"

func oidcNonce(n string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("nonce", n) }

func siteName(site *models.Site) string {
	if u, err := url.Parse(site.DisplayURL); err == nil && u.Host != "" {
		return u.Host
	}
	if u, err := url.Parse(site.BaseURL); err == nil {
		return u.Host
	}
	return "this help center"
}

// FinishOIDC completes an OIDC sign-in at /oidc/callback.
func (s *Service) FinishOIDC(ctx context.Context, cb models.LoginCallback) (*models.LoginResult, error) {
	return s.finish(ctx, cb, models.ProtocolOIDC, func(idp *models.IdentityProvider, st *models.LoginState, steps *stepLog) (*models.Identity, *refusal) {
		if cb.Error != "" {
			return nil, refuse("idp_error", "The identity provider did not sign you in (%s).", truncate(cb.Error, 60))
		}
		return s.oidcIdentity(ctx, idp, st, cb.Code, steps)
	})
}

// FinishSAML completes a SAML sign-in at /saml/acs.
func (s *Service) FinishSAML(ctx context.Context, cb models.LoginCallback) (*models.LoginResult, error) {
	return s.finish(ctx, cb, models.ProtocolSAML, func(idp *models.IdentityProvider, st *models.LoginState, steps *stepLog) (*models.Identity, *refusal) {
		return s.samlIdentity(ctx, idp, st, cb.SAMLResponse, steps)
	})
}

type identify func(idp *models.IdentityProvider, st *models.LoginState, steps *stepLog) (*models.Identity, *refusal)

// finish is what both protocols share: the login state (once, this
// browser), the identity, then what follows a sign-in.
func (s *Service) finish(ctx context.Context, cb models.LoginCallback, protocol string, who identify) (*models.LoginResult, error) {
	site, err := s.activeSite(ctx, cb.SiteID)
	if err != nil {
		return nil, err
	}
	steps := &stepLog{}
	ev := models.AuditEvent{SiteID: site.ID, Protocol: protocol, IP: truncate(cb.IP, 64), UserAgent: truncate(cb.UserAgent, 512)}
	fail := func(r *refusal, test bool) (*models.LoginResult, error) {
		ev.Event, ev.Reason = models.AuditLoginFailure, r.reason
		audited := s.failures.allow(site.ID)
		if audited {
			if err := s.store.InTx(ctx, func(tx *store.Tx) error { _, err := audit.Record(tx, ev); return err }); err != nil {
				return nil, err
			}
		}
		s.log.InfoContext(ctx, "sign-in refused", "site_id", site.ID, "idp", ev.IdP, "protocol", protocol, "reason", r.reason, "audited", audited)
		perr := &models.Error{Code: models.CodeUnauthorized, Message: r.message, Field: r.reason}
		if test {
			steps.fail("Result", r.message)
			return &models.LoginResult{Test: true, Steps: steps.steps}, perr
		}
		return nil, perr
	}
	// A callback that names no login state of this site (none, unknown,
	// expired or used) is anyone's request: it is refused and logged, but
	// not written to the audit log. Anyone can send such requests, as many
	// as they like, so writing each would let them fill the database and
	// the site's audit log; and such a request belongs to no sign-in and
	// no person. A refusal after a login state was taken is audited, within
	// the site's failure budget (failures.go).
	anonymous := func(r *refusal) (*models.LoginResult, error) {
		s.log.InfoContext(ctx, "sign-in refused", "site_id", site.ID, "protocol", protocol, "reason", r.reason)
		return nil, &models.Error{Code: models.CodeUnauthorized, Message: r.message, Field: r.reason}
	}
	if cb.State == "" {
		if protocol == models.ProtocolSAML {
			return anonymous(refuse("saml_idp_initiated", "Sign-ins started at the identity provider are not accepted; start at the help center."))
		}
		return anonymous(refuse("state_missing", "The sign-in came back without its state. Start again."))
	}
	if !ValidToken(cb.State) {
		return anonymous(refuse("state_unknown", "This sign-in is unknown, expired or already used. Start again."))
	}
	st, err := s.store.View(ctx).TakeLoginState(site.ID, HashToken(cb.State))
	if models.IsNotFound(err) {
		return anonymous(refuse("state_unknown", "This sign-in is unknown, expired or already used. Start again."))
	}
	if err != nil {
		return nil, err
	}
	ev.IdP = st.IdPID
	test := st.ReturnTo == testReturn
	if st.Protocol != protocol {
		return fail(refuse("protocol_mismatch", "This sign-in came back to the wrong address. Start again."), test)
	}
	if !ValidToken(cb.BrowserToken) || subtle.ConstantTimeCompare([]byte(HashToken(cb.BrowserToken)), []byte(st.BrowserHash)) != 1 {
		return fail(refuse("browser_mismatch", "This sign-in was started in another browser. Start again in this one."), test)
	}
	idp, err := s.store.View(ctx).FindIdentityProvider(site.ID, st.IdPID)
	if models.IsNotFound(err) {
		return fail(refuse("idp_unknown", "This sign-in option was removed. Start again."), test)
	}
	if err != nil {
		return nil, err
	}
	id, r := who(idp, st, steps)
	if r != nil {
		return fail(r, test)
	}
	settings, err := s.store.View(ctx).FindSSOSettings(site.ID)
	if models.IsNotFound(err) {
		settings, err = defaultSettings(site.ID), nil
	}
	if err != nil {
		return nil, err
	}
	if !test && (!settings.Enabled || !idp.Enabled) {
		return fail(refuse("sso_disabled", "Single sign-on was turned off for this help center."), test)
	}
	// The domain is exactly what follows the last "@", compared whole.
	domain := models.EmailDomain(id.Email)
	if domain == "" || !containsExact(settings.AllowedDomains, domain) {
		return fail(refuse("domain_not_allowed", "Email addresses of this domain may not sign in to this help center."), test)
	}
	if !idp.Serves(domain) {
		return fail(refuse("idp_domain_mismatch", "This identity provider does not sign in people of this email domain."), test)
	}
	steps.ok("Domain", "The email domain "+domain+" is allowed.")

	if test {
		// "Test sign-in" changes nothing: no customer is created or added
		// anywhere, no session starts, no sign-in is recorded (a failure
		// above is, like any other).
		if r := s.checkCustomer(ctx, site, settings, id, steps); r != nil {
			return fail(r, test)
		}
		steps.ok("Result", "The sign-in works. No session was started, because this was a test.")
		return &models.LoginResult{Test: true, Steps: steps.steps}, nil
	}
	events, acct, r := s.provisionCustomer(ctx, site, settings, id, steps)
	if r != nil {
		return fail(r, test)
	}
	if s.cfg.Restricted != nil {
		restricted, err := s.cfg.Restricted(ctx, site.ID, acct.AccountID)
		if err != nil {
			return nil, err
		}
		if restricted {
			// Processing is restricted: a marker only, no detail.
			marker := models.AuditEvent{SiteID: site.ID, ActorAccountID: acct.AccountID, Event: models.AuditAccessDenied, Reason: "processing_restricted"}
			if err := s.store.InTx(ctx, func(tx *store.Tx) error { _, err := audit.Record(tx, marker); return err }); err != nil {
				return nil, err
			}
			return nil, &models.Error{Code: models.CodeForbidden, Message: "Your account cannot sign in to this help center at the moment. Contact its administrators."}
		}
	}

	res := &models.LoginResult{ReturnTo: st.ReturnTo, SessionToken: newToken()}
	now := s.store.Now()
	sess := &models.PortalSession{
		SiteID: site.ID, ID: HashToken(res.SessionToken), AccountID: acct.AccountID,
		Email: id.Email, DisplayName: firstNonEmpty(id.DisplayName, acct.DisplayName), IdPID: idp.ID,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(settings.MaxAge()),
	}
	res.Session = sess
	ev.ActorAccountID, ev.Event = acct.AccountID, models.AuditLoginSuccess
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if ValidToken(cb.OldSessionToken) {
			if err := tx.DeletePortalSession(site.ID, HashToken(cb.OldSessionToken)); err != nil {
				return err
			}
		}
		if err := tx.CreatePortalSession(site.ID, sess); err != nil {
			return err
		}
		for _, e := range events {
			e.IdP, e.Protocol, e.IP, e.UserAgent = ev.IdP, ev.Protocol, ev.IP, ev.UserAgent
			if _, err := audit.Record(tx, e); err != nil {
				return err
			}
		}
		_, err := audit.Record(tx, ev)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// checkCustomer is "Test sign-in"'s look at the customer: found, or would
// be created at the first real sign-in, or may not sign in.
func (s *Service) checkCustomer(ctx context.Context, site *models.Site, settings *models.SSOSettings, id *models.Identity, steps *stepLog) *refusal {
	acc, err := s.store.View(ctx).FindServiceAccount(site.ID)
	if err != nil {
		return refuse("service_account_missing", "No service account is configured: idbridge cannot look customers up. Set one up first.")
	}
	client, err := s.accounts.Client(site, acc)
	if err != nil {
		return refuse("service_account_unusable", "The service account is not usable: %s", models.ErrorMessage(err))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = client.FindUserByEmail(ctx, id.Email)
	switch {
	case err == nil:
		steps.ok("Customer", "The customer account was found.")
	case models.IsNotFound(err) && settings.AutoCreateCustomers:
		steps.ok("Customer", "There is no customer account yet; the first real sign-in creates it.")
	case models.IsNotFound(err):
		return refuse("customer_not_found", "There is no customer account for this email address, and customers are not created automatically.")
	default:
		return refuse("customer_unavailable", "Atlassian could not be asked about the customer: %s", models.ErrorMessage(err))
	}
	return nil
}

func containsExact(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// provisionCustomer finds the JSM customer for the identity, or creates it
// when the site allows, and adds it to the configured service desks and to
// the organization of its domain. It returns the audit events to record
// with the sign-in.
func (s *Service) provisionCustomer(ctx context.Context, site *models.Site, settings *models.SSOSettings, id *models.Identity, steps *stepLog) ([]models.AuditEvent, *atlassian.User, *refusal) {
	// A customer provisioned a few minutes ago, under the same settings,
	// needs no call to Atlassian: the site's request budget (a few per
	// second) is not spent on every returning sign-in.
	key := customerKey(site.ID, settings.UpdatedAt, id.Email)
	if u, ok := s.customers.get(key); ok {
		steps.ok("Customer", "The customer account was found (recently).")
		return nil, u, nil
	}
	events, u, r := s.lookUpCustomer(ctx, site, settings, id, steps)
	if r == nil {
		s.customers.put(key, u)
	}
	return events, u, r
}

func (s *Service) lookUpCustomer(ctx context.Context, site *models.Site, settings *models.SSOSettings, id *models.Identity, steps *stepLog) ([]models.AuditEvent, *atlassian.User, *refusal) {
	acc, err := s.store.View(ctx).FindServiceAccount(site.ID)
	if err != nil {
		return nil, nil, refuse("service_account_missing", "This help center's sign-in is not fully set up (no service account). Contact its administrators.")
	}
	client, err := s.accounts.Client(site, acc)
	if err != nil {
		return nil, nil, refuse("service_account_unusable", "This help center's sign-in is not fully set up. Contact its administrators.")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var events []models.AuditEvent
	user, err := client.FindUserByEmail(ctx, id.Email)
	switch {
	case err == nil:
		steps.ok("Customer", "The customer account was found.")
	case models.IsNotFound(err) && settings.AutoCreateCustomers:
		user, err = client.CreateCustomer(ctx, id.Email, id.DisplayName)
		if models.ErrorCode(err) == models.CodeConflict {
			// Created meanwhile (or invisible to the search until now).
			user, err = client.FindUserByEmail(ctx, id.Email)
		} else if err == nil {
			events = append(events, models.AuditEvent{SiteID: site.ID, ActorAccountID: user.AccountID, Event: models.AuditCustomerCreated})
			steps.ok("Customer", "A customer account was created.")
		}
		if err != nil {
			s.log.WarnContext(ctx, "create customer", "site_id", site.ID, "error", err.Error())
			return nil, nil, refuse("customer_unavailable", "The help center could not create your customer account just now. Try again later.")
		}
		if len(steps.steps) == 0 || steps.steps[len(steps.steps)-1].Name != "Customer" {
			steps.ok("Customer", "The customer account was found.")
		}
	case models.IsNotFound(err):
		return nil, nil, refuse("customer_not_found", "There is no customer account for this email address, and this help center does not create them. Contact its administrators.")
	default:
		s.log.WarnContext(ctx, "find customer", "site_id", site.ID, "error", err.Error())
		return nil, nil, refuse("customer_unavailable", "The help center could not look up your customer account just now. Try again later.")
	}
	for _, desk := range settings.ServiceDeskIDs {
		if err := client.AddCustomersToServiceDesk(ctx, desk, []string{user.AccountID}); err != nil {
			s.log.WarnContext(ctx, "add customer to service desk", "site_id", site.ID, "service_desk", desk, "error", err.Error())
			continue
		}
		events = append(events, models.AuditEvent{SiteID: site.ID, ActorAccountID: user.AccountID, Event: models.AuditAddedToServiceDesk, Fields: []string{"serviceDesk:" + desk}})
	}
	if org := settings.OrganizationsByDomain[models.EmailDomain(id.Email)]; org != "" {
		if err := client.AddUsersToOrganization(ctx, org, []string{user.AccountID}); err != nil {
			s.log.WarnContext(ctx, "add customer to organization", "site_id", site.ID, "organization", org, "error", err.Error())
		} else {
			events = append(events, models.AuditEvent{SiteID: site.ID, ActorAccountID: user.AccountID, Event: models.AuditAddedToOrganization, Fields: []string{"organization:" + org}})
		}
	}
	return events, user, nil
}

// Session returns the live session of the browser's cookie on the site, and
// records the activity. An unknown, idle or expired session: unauthorized
// (an expired one is deleted).
func (s *Service) Session(ctx context.Context, siteID, token string) (*models.PortalSession, error) {
	none := &models.Error{Code: models.CodeUnauthorized, Message: "Sign in to continue."}
	if !ValidToken(token) {
		return nil, none
	}
	id := HashToken(token)
	sess, err := s.store.View(ctx).FindPortalSession(siteID, id)
	if models.IsNotFound(err) {
		return nil, none
	}
	if err != nil {
		return nil, err
	}
	settings, err := s.store.View(ctx).FindSSOSettings(siteID)
	if models.IsNotFound(err) {
		settings, err = defaultSettings(siteID), nil
	}
	if err != nil {
		return nil, err
	}
	now := s.store.Now()
	if !settings.Enabled || !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) >= settings.IdleTimeout() ||
		now.Sub(sess.CreatedAt) >= settings.MaxAge() {
		if err := s.store.View(ctx).DeletePortalSession(siteID, id); err != nil {
			return nil, err
		}
		return nil, none
	}
	// One write a minute at most, not one per request.
	if now.Sub(sess.LastSeenAt) >= time.Minute {
		if err := s.store.View(ctx).TouchPortalSession(siteID, id, now); err != nil {
			return nil, err
		}
		sess.LastSeenAt = now
	}
	return sess, nil
}

// Logout ends the session everywhere (it is a row: every replica sees it
// gone) and records it.
func (s *Service) Logout(ctx context.Context, siteID, token, ip, userAgent string) error {
	if !ValidToken(token) {
		return nil
	}
	id := HashToken(token)
	return s.store.InTx(ctx, func(tx *store.Tx) error {
		sess, err := tx.FindPortalSession(siteID, id)
		if models.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tx.DeletePortalSession(siteID, id); err != nil {
			return err
		}
		_, err = audit.Record(tx, models.AuditEvent{SiteID: siteID, ActorAccountID: sess.AccountID, Event: models.AuditLogout,
			IdP: sess.IdPID, IP: truncate(ip, 64), UserAgent: truncate(userAgent, 512)})
		return err
	})
}

// IsRefusal reports whether err is a refused sign-in, and its reason code.
func IsRefusal(err error) (string, bool) {
	var me *models.Error
	if errors.As(err, &me) && me.Code == models.CodeUnauthorized && me.Field != "" {
		return me.Field, true
	}
	return "", false
}
