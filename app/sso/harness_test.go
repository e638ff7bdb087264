package sso_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/fakeatlassian"
	"idbridge/app/fakeidp"
	"idbridge/app/sso"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

const (
	admin      = "557058:admin"
	svcEmail   = "svc@example.com"
	svcToken   = "ATATT3x-service-token-0001"
	goodDomain = "customer.example"
)

// env is one idbridge sso.Service on a real store, with a fake Atlassian
// site (JSM included), an in-test OpenID provider and a SAML IdP, and a
// tiny server for the SP metadata (the SAML IdP fetches it, as a real one
// would).
type env struct {
	t        *testing.T
	accounts *atlassian.ServiceAccounts
	st       *store.Store
	svc      *sso.Service
	site     *models.Site
	clock    *storetest.Clock
	jira     *fakeatlassian.Site
	oidc     *fakeidp.OIDC
	saml     *fakeidp.SAML
	oidcID   string
	samlID   string
	desk     string
	org      string
	base     string
}

func newEnv(t *testing.T, b storetest.Backend) *env {
	t.Helper()
	clock := storetest.NewClock(time.Now().UTC().Truncate(time.Second))
	st := b.Open(t, storetest.WithNow(clock.Now))
	fake := fakeatlassian.New(fakeatlassian.Options{Now: clock.Now})
	t.Cleanup(fake.Close)
	jira := fake.NewSite(fakeatlassian.SiteOptions{})
	jira.AddServiceAccount(fakeatlassian.ServiceAccount{Email: svcEmail, APIToken: svcToken, Admin: true})
	e := &env{t: t, st: st, clock: clock, jira: jira}
	e.desk = jira.AddServiceDesk("HELP", "Help desk")
	e.org = jira.AddOrganization("Customer Inc")

	// The SP metadata server: its URL is idbridge's base URL.
	mux := http.NewServeMux()
	meta := httptest.NewServer(mux)
	t.Cleanup(meta.Close)
	e.base = meta.URL
	base, _ := url.Parse(meta.URL)
	clients := atlassian.New(atlassian.Options{AppKey: "idbridge", MaxAttempts: 1, Now: clock.Now})
	api, _ := url.Parse(fake.APIURL())
	e.accounts = atlassian.NewServiceAccounts(clients, api, api)
	e.svc = sso.New(sso.Config{BaseURL: base, AllowLoopbackIdPs: true}, st, e.accounts, clock.Now, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	mux.HandleFunc("GET /portal/{site}/saml/metadata", func(w http.ResponseWriter, r *http.Request) {
		xml, err := e.svc.SPMetadata(r.Context(), r.PathValue("site"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(xml)
	})

	ctx := context.Background()
	err := st.InTx(ctx, func(tx *store.Tx) error {
		var err error
		e.site, err = tx.SaveInstall(&models.Site{
			SiteFacts: models.SiteFacts{
				ClientKey:   "client-" + t.Name(),
				BaseURL:     jira.BaseURL(),
				ProductType: "jira",
			},
			SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
		})
		if err != nil {
			return err
		}
		_, err = tx.SaveServiceAccount(e.site.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: svcEmail, Token: svcToken})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	e.oidc = fakeidp.NewOIDC()
	e.oidc.Now = clock.Now
	t.Cleanup(e.oidc.Close)
	e.saml = fakeidp.NewSAML()
	e.saml.Now = clock.Now
	t.Cleanup(e.saml.Close)
	e.oidc.AllowRedirectURI(e.svc.RedirectURI(e.site.ID))

	yes := true
	e.mustSettings(models.SSOSettingsInput{Enabled: &yes, AutoCreateCustomers: &yes,
		AllowedDomains: &[]string{goodDomain, "other.example"}, ServiceDeskIDs: &[]string{e.desk},
		OrganizationsByDomain: &map[string]string{goodDomain: e.org}})
	e.oidcID = e.mustIdP(models.IdentityProviderInput{Name: sp("Customer OIDC"), Protocol: sp("oidc"),
		EmailDomains: &[]string{goodDomain, "other.example"},
		OIDC:         &models.OIDCInput{Issuer: sp(e.oidc.URL), ClientID: sp(e.oidc.ClientID), ClientSecret: sp(e.oidc.ClientSecret)}}).ID
	e.samlID = e.mustIdP(models.IdentityProviderInput{Name: sp("Customer SAML"), Protocol: sp("saml"),
		SAML: &models.SAMLInput{MetadataURL: sp(e.saml.MetadataURL())}}).ID
	return e
}

func sp(s string) *string { return &s }

func (e *env) mustSettings(in models.SSOSettingsInput) *models.SSOSettings {
	e.t.Helper()
	s, err := e.svc.SaveSettings(context.Background(), e.site, admin, in)
	if err != nil {
		e.t.Fatalf("save settings: %v", err)
	}
	return s
}

func (e *env) mustIdP(in models.IdentityProviderInput) *models.IdentityProvider {
	e.t.Helper()
	p, err := e.svc.CreateIdentityProvider(context.Background(), e.site, admin, in)
	if err != nil {
		e.t.Fatalf("create identity provider: %v", err)
	}
	return p
}

// browser is what a browser carries through a sign-in: the binding cookie.
type browser struct{ binding string }

// beginOIDC starts an OIDC sign-in and follows the provider's redirect back:
// it returns the callback's state and code.
func (e *env) beginOIDC(b *browser, returnTo string) (state, code string) {
	e.t.Helper()
	start, err := e.svc.BeginLogin(context.Background(), models.LoginRequest{SiteID: e.site.ID, IdPID: e.oidcID, ReturnTo: returnTo, BrowserToken: b.binding})
	if err != nil {
		e.t.Fatalf("begin login: %v", err)
	}
	b.binding = start.BrowserToken
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(start.RedirectURL)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		e.t.Fatalf("authorize: %d", res.StatusCode)
	}
	loc, _ := url.Parse(res.Header.Get("Location"))
	if !strings.HasPrefix(loc.String(), e.svc.RedirectURI(e.site.ID)) {
		e.t.Fatalf("authorize redirected to %s", loc)
	}
	return loc.Query().Get("state"), loc.Query().Get("code")
}

func (e *env) finishOIDC(b *browser, state, code string) (*models.LoginResult, error) {
	return e.svc.FinishOIDC(context.Background(), models.LoginCallback{SiteID: e.site.ID, State: state, Code: code,
		BrowserToken: b.binding, IP: "203.0.113.9", UserAgent: "test-browser/1.0"})
}

// beginSAML starts a SAML sign-in and plays the IdP: it returns the form the
// IdP's page would post.
func (e *env) beginSAML(b *browser, u fakeidp.User) (relayState, samlResponse string) {
	e.t.Helper()
	start, err := e.svc.BeginLogin(context.Background(), models.LoginRequest{SiteID: e.site.ID, IdPID: e.samlID, BrowserToken: b.binding})
	if err != nil {
		e.t.Fatalf("begin login: %v", err)
	}
	b.binding = start.BrowserToken
	form, err := e.saml.Respond(start.RedirectURL, u)
	if err != nil {
		e.t.Fatalf("IdP: %v", err)
	}
	if form.URL != e.svc.SP(e.site.ID).ACSURL {
		e.t.Fatalf("IdP posts to %s", form.URL)
	}
	return form.RelayState, form.SAMLResponse
}

func (e *env) finishSAML(b *browser, relayState, response string) (*models.LoginResult, error) {
	return e.svc.FinishSAML(context.Background(), models.LoginCallback{SiteID: e.site.ID, State: relayState, SAMLResponse: response,
		BrowserToken: b.binding, IP: "203.0.113.9", UserAgent: "test-browser/1.0"})
}

// audit returns the site's audit events, newest first.
func (e *env) audit() []models.AuditEvent {
	e.t.Helper()
	evs, err := e.st.View(context.Background()).FindAuditEvents(e.site.ID, store.AuditQuery{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) events(kind models.AuditEventType) []models.AuditEvent {
	var out []models.AuditEvent
	for _, ev := range e.audit() {
		if ev.Event == kind {
			out = append(out, ev)
		}
	}
	return out
}

func (e *env) sessions() int {
	e.t.Helper()
	n, err := e.st.View(context.Background()).CountPortalSessions(e.site.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// expectRefused checks a refused sign-in: the error carries the reason,
// exactly one login_failure with that reason and no account or email was
// recorded, and no session was started by it.
func (e *env) expectRefused(res *models.LoginResult, err error, reason string, audited bool) {
	e.t.Helper()
	got, ok := sso.IsRefusal(err)
	if !ok || got != reason {
		e.t.Fatalf("sign-in: %v (reason %q); want refused with %q", err, got, reason)
	}
	if res != nil && res.Session != nil {
		e.t.Fatalf("a refused sign-in has a session")
	}
	fails := e.events(models.AuditLoginFailure)
	if !audited {
		// A callback that names no login state of the site is anyone's:
		// refused, not written to the audit log.
		if len(fails) != 0 {
			e.t.Fatalf("%d login_failure events for a refusal before any login state; want none: %+v", len(fails), fails)
		}
		return
	}
	if len(fails) != 1 {
		e.t.Fatalf("%d login_failure events; want 1", len(fails))
	}
	last := fails[0]
	if d := cmp.Diff(map[string]string{"reason": reason, "actor": "", "target": "", "ip": "203.0.113.9", "userAgent": "test-browser/1.0"},
		map[string]string{"reason": last.Reason, "actor": last.ActorAccountID, "target": last.TargetAccountID, "ip": last.IP, "userAgent": last.UserAgent}); d != "" {
		e.t.Errorf("login_failure: want the reason, no account, the request's IP and user agent (-want +got):\n%s", d)
	}
	for _, ev := range e.audit() {
		for _, v := range []string{ev.ActorAccountID, ev.TargetAccountID, ev.Reason, ev.Section, strings.Join(ev.Fields, ",")} {
			if strings.Contains(v, "@") {
				e.t.Errorf("an audit event holds an email address: %+v", ev)
			}
		}
	}
	if n, ok := e.sessions(), len(e.events(models.AuditLoginSuccess)); n != ok {
		e.t.Errorf("%d sessions after %d successful sign-ins and a refused one", n, ok)
	}
}

// oidcCalls counts the OpenID provider's requests so far that match.
func (e *env) oidcCalls(match func(call string) bool) int {
	n := 0
	for _, c := range e.oidc.Calls() {
		if match(c) {
			n++
		}
	}
	return n
}

func contains(list []string, v string) bool { return slices.Contains(list, v) }

// testWriter sends the service's log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
