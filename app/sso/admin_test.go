package sso_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/sso"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// TestIdentityProviderBadInput: what an admin gets wrong is a 400 in words
// on save, naming the field, and nothing is stored.
func TestIdentityProviderBadInput(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) }))
		defer notJSON.Close()
		down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }))
		defer down.Close()
		closed := httptest.NewServer(http.NotFoundHandler())
		closedURL := closed.URL
		closed.Close()
		oidc := func(issuer string) models.IdentityProviderInput {
			return models.IdentityProviderInput{Name: sp("X"), Protocol: sp("oidc"),
				OIDC: &models.OIDCInput{Issuer: sp(issuer), ClientID: sp("c"), ClientSecret: sp("s")}}
		}
		samlXML := func(x string) models.IdentityProviderInput {
			return models.IdentityProviderInput{Name: sp("X"), Protocol: sp("saml"), SAML: &models.SAMLInput{MetadataXML: sp(x)}}
		}
		cases := []struct {
			name  string
			in    models.IdentityProviderInput
			field string
			words string
		}{
			{"no protocol", models.IdentityProviderInput{Name: sp("X")}, "protocol", "oidc or saml"},
			{"unknown protocol", models.IdentityProviderInput{Name: sp("X"), Protocol: sp("ldap")}, "protocol", "not a protocol"},
			{"no name", models.IdentityProviderInput{Protocol: sp("oidc"), OIDC: &models.OIDCInput{}}, "name", "name"},
			{"name with markup", func() models.IdentityProviderInput { i := oidc(e.oidc.URL); i.Name = sp("<b>x</b>"); return i }(), "name", "without < or >"},
			{"no oidc settings", models.IdentityProviderInput{Name: sp("X"), Protocol: sp("oidc")}, "oidc", "issuer"},
			{"issuer not a URL", oidc("login.example.com"), "oidc.issuer", "full URL"},
			{"unreachable discovery", oidc(closedURL), "oidc.issuer", "connection was refused"},
			{"discovery answers 503", oidc(down.URL), "oidc.issuer", "503"},
			{"discovery not JSON", oidc(notJSON.URL), "oidc.issuer", "not JSON"},
			{"issuer mismatch", oidc(e.oidc.URL + "/other"), "oidc.issuer", "discovery"},
			{"no client secret", models.IdentityProviderInput{Name: sp("X"), Protocol: sp("oidc"),
				OIDC: &models.OIDCInput{Issuer: sp(e.oidc.URL), ClientID: sp("c")}}, "oidc.clientSecret", "client secret"},
			{"scopes without openid", models.IdentityProviderInput{Name: sp("X"), Protocol: sp("oidc"),
				OIDC: &models.OIDCInput{Issuer: sp(e.oidc.URL), ClientID: sp("c"), ClientSecret: sp("s"), Scopes: &[]string{"email"}}}, "oidc.scopes", "openid"},
			{"malformed metadata XML", samlXML("<EntityDescriptor"), "saml.metadataXml", "not valid SAML metadata"},
			{"metadata of no IdP", samlXML(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"></EntityDescriptor>`), "saml.metadataXml", "no identity provider"},
			{"unreachable metadata URL", models.IdentityProviderInput{Name: sp("X"), Protocol: sp("saml"), SAML: &models.SAMLInput{MetadataURL: sp(closedURL + "/md")}}, "saml.metadataUrl", "could not read"},
			{"metadata URL answers 503", models.IdentityProviderInput{Name: sp("X"), Protocol: sp("saml"), SAML: &models.SAMLInput{MetadataURL: sp(down.URL)}}, "saml.metadataUrl", "503"},
			{"two metadata sources", models.IdentityProviderInput{Name: sp("X"), Protocol: sp("saml"), SAML: &models.SAMLInput{MetadataURL: sp(e.saml.MetadataURL()), EntityID: sp("x")}}, "saml", "one of"},
			{"bad certificate", models.IdentityProviderInput{Name: sp("X"), Protocol: sp("saml"), SAML: &models.SAMLInput{
				EntityID: sp("x"), SSOURL: sp(e.saml.SSOURL()), Certificate: sp("not a cert")}}, "saml.certificate", "certificate"},
			{"bad email domain", models.IdentityProviderInput{Name: sp("X"), Protocol: sp("oidc"), EmailDomains: &[]string{"not a domain"},
				OIDC: &models.OIDCInput{Issuer: sp(e.oidc.URL), ClientID: sp("c"), ClientSecret: sp("s")}}, "emailDomains", "email domain"},
		}
		before, _ := e.svc.IdentityProviders(context.Background(), e.site.ID)
		for _, c := range cases {
			_, err := e.svc.CreateIdentityProvider(context.Background(), e.site, admin, c.in)
			var me *models.Error
			if err == nil || models.ErrorCode(err) != models.CodeInvalid {
				t.Errorf("%s: %v; want invalid", c.name, err)
				continue
			}
			if asErr(err, &me); me.Field != c.field || !strings.Contains(me.Message, c.words) {
				t.Errorf("%s: field %q, %q; want field %q and words %q", c.name, me.Field, me.Message, c.field, c.words)
			}
		}
		after, _ := e.svc.IdentityProviders(context.Background(), e.site.ID)
		if len(after) != len(before) {
			t.Errorf("refused identity providers were stored: %d then %d", len(before), len(after))
		}
	})
}

func asErr(err error, out **models.Error) bool {
	for err != nil {
		if me, ok := err.(*models.Error); ok {
			*out = me
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// TestIdentityProviderLifecycle: secrets are kept when left out, sealed at
// rest, changes are audited by field name, delete drops pending sign-ins.
func TestIdentityProviderLifecycle(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		ctx := context.Background()
		p, err := e.svc.UpdateIdentityProvider(ctx, e.site, admin, e.oidcID, models.IdentityProviderInput{Name: sp("Renamed"),
			OIDC: &models.OIDCInput{ClientID: sp(e.oidc.ClientID)}})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]any{"name": "Renamed", "secret kept": true}, map[string]any{"name": p.Name, "secret kept": p.OIDC.ClientSecret == e.oidc.ClientSecret}); d != "" {
			t.Errorf("after update (-want +got):\n%s", d)
		}
		if _, err := e.svc.UpdateIdentityProvider(ctx, e.site, admin, e.oidcID, models.IdentityProviderInput{Protocol: sp("saml")}); models.ErrorCode(err) != models.CodeInvalid {
			t.Errorf("protocol change: %v", err)
		}
		changes := e.events(models.AuditConfigChanged)
		renamed := 0
		for _, ev := range changes {
			if len(ev.Fields) == 1 && ev.Fields[0] == "identityProvider.name" && ev.ActorAccountID == admin && ev.Section == "sso" {
				renamed++
			}
		}
		if renamed != 1 {
			t.Errorf("config_changed = %+v; want one naming identityProvider.name", changes)
		}
		for _, ev := range changes {
			for _, f := range ev.Fields {
				if strings.Contains(f, e.oidc.ClientSecret) {
					t.Errorf("an audit event holds the client secret")
				}
			}
		}
		// A pending sign-in of the IdP goes with it.
		e.oidc.SignIn(&alice)
		br := &browser{}
		state, code := e.beginOIDC(br, "")
		if err := e.svc.DeleteIdentityProvider(ctx, e.site, admin, e.oidcID); err != nil {
			t.Fatal(err)
		}
		_, err = e.finishOIDC(br, state, code)
		if r, _ := sso.IsRefusal(err); r != "state_unknown" {
			t.Errorf("sign-in of a deleted IdP: %v", err)
		}
		if err := e.svc.DeleteIdentityProvider(ctx, e.site, admin, e.oidcID); !models.IsNotFound(err) {
			t.Errorf("second delete: %v", err)
		}
		// Another site sees none of this site's providers.
		var other *models.Site
		_ = e.st.InTx(ctx, func(tx *store.Tx) error {
			other, err = tx.SaveInstall(&models.Site{
				SiteFacts:    models.SiteFacts{ClientKey: "other-" + t.Name(), BaseURL: "https://other.atlassian.net"},
				SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
			})
			return err
		})
		if got, _ := e.svc.IdentityProviders(ctx, other.ID); len(got) != 0 {
			t.Errorf("site B sees %d of site A's identity providers", len(got))
		}
		if _, err := e.svc.IdentityProvider(ctx, other.ID, e.samlID); !models.IsNotFound(err) {
			t.Errorf("site B reads site A's IdP: %v", err)
		}
	})
}

func TestSettingsValidation(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		ctx := context.Background()
		n := func(i int) *int { return &i }
		bad := []struct {
			in    models.SSOSettingsInput
			field string
		}{
			{models.SSOSettingsInput{AllowedDomains: &[]string{"exa mple.com"}}, "allowedDomains"},
			{models.SSOSettingsInput{ServiceDeskIDs: &[]string{"HELP"}}, "serviceDeskIds"},
			{models.SSOSettingsInput{OrganizationsByDomain: &map[string]string{"unlisted.example": "1"}}, "organizationsByDomain"},
			{models.SSOSettingsInput{OrganizationsByDomain: &map[string]string{goodDomain: "x"}}, "organizationsByDomain"},
			{models.SSOSettingsInput{SessionIdleMinutes: n(1)}, "sessionIdleMinutes"},
			{models.SSOSettingsInput{SessionMaxHours: n(0)}, "sessionMaxHours"},
			{models.SSOSettingsInput{SessionIdleMinutes: n(600), SessionMaxHours: n(2)}, "sessionIdleMinutes"},
		}
		for _, c := range bad {
			_, err := e.svc.SaveSettings(ctx, e.site, admin, c.in)
			var me *models.Error
			if !asErr(err, &me) {
				t.Errorf("%+v: %v; want invalid %s", c.in, err, c.field)
			} else if d := cmp.Diff(map[string]any{"code": models.CodeInvalid, "field": c.field}, map[string]any{"code": me.Code, "field": me.Field}); d != "" {
				t.Errorf("%+v: %v (-want +got):\n%s", c.in, err, d)
			}
		}
		got := e.mustSettings(models.SSOSettingsInput{AllowedDomains: &[]string{"@Customer.EXAMPLE", "other.example", "customer.example"}})
		if strings.Join(got.AllowedDomains, ",") != "customer.example,other.example" {
			t.Errorf("domains %v", got.AllowedDomains)
		}
		if got.SPKey != "" {
			t.Error("settings answer carries the SP key")
		}
	})
}

// TestSessionTimeouts: idle and absolute timeouts end a session; turning
// SSO off ends them all; another site's cookie is nobody here.
func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		ctx := context.Background()
		idle, maxH := 30, 2
		e.mustSettings(models.SSOSettingsInput{SessionIdleMinutes: &idle, SessionMaxHours: &maxH})
		e.oidc.SignIn(&alice)
		login := func() string {
			br := &browser{}
			state, code := e.beginOIDC(br, "")
			res, err := e.finishOIDC(br, state, code)
			if err != nil {
				t.Fatal(err)
			}
			return res.SessionToken
		}
		tok := login()
		e.clock.Advance(29 * time.Minute)
		if _, err := e.svc.Session(ctx, e.site.ID, tok); err != nil {
			t.Fatalf("at 29 idle minutes: %v", err)
		}
		e.clock.Advance(29 * time.Minute) // active 29 minutes ago: still fine
		if _, err := e.svc.Session(ctx, e.site.ID, tok); err != nil {
			t.Fatalf("after activity: %v", err)
		}
		e.clock.Advance(30 * time.Minute)
		if _, err := e.svc.Session(ctx, e.site.ID, tok); models.ErrorCode(err) != models.CodeUnauthorized {
			t.Fatalf("after 30 idle minutes: %v", err)
		}
		// Absolute: active every 20 minutes, still over after 2 hours.
		tok = login()
		for i := 0; i < 5; i++ {
			e.clock.Advance(20 * time.Minute)
			if _, err := e.svc.Session(ctx, e.site.ID, tok); err != nil {
				t.Fatalf("at %d minutes: %v", 20*(i+1), err)
			}
		}
		e.clock.Advance(20 * time.Minute)
		if _, err := e.svc.Session(ctx, e.site.ID, tok); models.ErrorCode(err) != models.CodeUnauthorized {
			t.Fatalf("after 2 hours: %v", err)
		}
		tok = login()
		if _, err := e.svc.Session(ctx, "s_other", tok); models.ErrorCode(err) != models.CodeUnauthorized {
			t.Errorf("another site accepts the session: %v", err)
		}
		off := false
		e.mustSettings(models.SSOSettingsInput{Enabled: &off})
		if _, err := e.svc.Session(ctx, e.site.ID, tok); models.ErrorCode(err) != models.CodeUnauthorized {
			t.Errorf("session works with SSO turned off: %v", err)
		}
		// Purge removes what expired.
		e.clock.Advance(24 * time.Hour)
		if _, err := e.svc.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.sessions(); n != 0 {
			t.Errorf("%d sessions after the purge", n)
		}
	})
}

// TestTestSignIn: "Test sign-in" reports each step in words and starts
// no session, also while SSO is off.
func TestTestSignIn(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		off := false
		e.mustSettings(models.SSOSettingsInput{Enabled: &off})
		e.oidc.SignIn(&alice)
		link, err := url.Parse(e.svc.TestSignInURL(e.site, e.oidcID))
		if err != nil || link.Query().Get("idp") != e.oidcID {
			t.Fatalf("test sign-in link %v: %v", link, err)
		}
		ticket := link.Query().Get("test")
		otherSite, _ := url.Parse(e.svc.TestSignInURL(&models.Site{ID: "s_other", SharedSecret: []byte("another site's shared secret")}, e.oidcID))
		// Only the admin page's link runs a test: anyone else's, another
		// IdP's or an expired one is refused before anything happens.
		for name, req := range map[string]models.LoginRequest{
			"no ticket":           {SiteID: e.site.ID, IdPID: e.oidcID, TestTicket: "1"},
			"a forged ticket":     {SiteID: e.site.ID, IdPID: e.oidcID, TestTicket: ticket[:strings.Index(ticket, ".")+1] + strings.Repeat("A", 43)},
			"another IdP's link":  {SiteID: e.site.ID, IdPID: e.samlID, TestTicket: ticket},
			"another site's link": {SiteID: e.site.ID, IdPID: e.oidcID, TestTicket: otherSite.Query().Get("test")},
		} {
			if _, err := e.svc.BeginLogin(context.Background(), req); models.ErrorCode(err) != models.CodeForbidden {
				t.Errorf("%s: %v, want forbidden", name, err)
			}
		}
		run := func() (*models.LoginResult, error) {
			start, err := e.svc.BeginLogin(context.Background(), models.LoginRequest{SiteID: e.site.ID, IdPID: e.oidcID, TestTicket: ticket})
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			res, err := client.Get(start.RedirectURL)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			loc, _ := url.Parse(res.Header.Get("Location"))
			return e.svc.FinishOIDC(context.Background(), models.LoginCallback{SiteID: e.site.ID, State: loc.Query().Get("state"),
				Code: loc.Query().Get("code"), BrowserToken: start.BrowserToken})
		}
		res, err := run()
		if err != nil || !res.Test || res.Session != nil || e.sessions() != 0 {
			t.Fatalf("test sign-in: %+v, %v", res, err)
		}
		var names []string
		for _, s := range res.Steps {
			names = append(names, s.Name)
			if !s.OK || s.Message == "" {
				t.Errorf("step %+v", s)
			}
		}
		if got := strings.Join(names, ","); got != "Discovery,Token,Email,Domain,Customer,Result" {
			t.Errorf("steps %s", got)
		}
		// A test changes nothing: no customer, no sign-in recorded.
		if _, ok := e.jira.Account(alice.Email); ok {
			t.Error("a test sign-in created the customer")
		}
		if n := len(e.events(models.AuditLoginSuccess)) + len(e.events(models.AuditCustomerCreated)); n != 0 {
			t.Errorf("a test sign-in recorded %d events", n)
		}
		// A failing step is reported as the last one.
		e.mustSettings(models.SSOSettingsInput{AllowedDomains: &[]string{"other.example"}, OrganizationsByDomain: &map[string]string{}})
		res, err = run()
		if err == nil || res == nil || len(res.Steps) == 0 || res.Steps[len(res.Steps)-1].OK ||
			!strings.Contains(res.Steps[len(res.Steps)-1].Message, "domain") {
			t.Fatalf("failing test sign-in: %+v, %v", res, err)
		}
		// The link lives an hour.
		e.clock.Advance(time.Hour)
		if _, err := e.svc.BeginLogin(context.Background(), models.LoginRequest{SiteID: e.site.ID, IdPID: e.oidcID, TestTicket: ticket}); models.ErrorCode(err) != models.CodeForbidden {
			t.Errorf("an expired link: %v, want forbidden", err)
		}
	})
}

// TestNoLoopbackIdPsInProduction: with an https base URL, idbridge refuses
// to call an identity provider on a loopback or private address.
func TestNoLoopbackIdPsInProduction(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		base, _ := url.Parse("https://idbridge.example.com")
		svc := sso.New(sso.Config{BaseURL: base}, e.st, atlassian.NewServiceAccounts(nil, base, base), e.clock.Now, nil)
		calls := len(e.oidc.Calls())
		for _, issuer := range []string{e.oidc.URL, strings.Replace(e.oidc.URL, "http://", "https://", 1), "https://169.254.169.254/latest"} {
			_, err := svc.CreateIdentityProvider(context.Background(), e.site, admin, models.IdentityProviderInput{Name: sp("X"), Protocol: sp("oidc"),
				OIDC: &models.OIDCInput{Issuer: sp(issuer), ClientID: sp("c"), ClientSecret: sp("s")}})
			if models.ErrorCode(err) != models.CodeInvalid {
				t.Errorf("issuer %s: %v", issuer, err)
			}
		}
		if got := e.oidc.Calls(); len(got) != calls {
			t.Errorf("the loopback provider was called: %v", got[calls:])
		}
	})
}

// TestRestrictedPersonCannotSignIn: while processing of a person's data is
// restricted (GDPR Art. 18, the privacy feature's guard), their sign-in is
// refused and leaves only a marker: no session, no IP, no browser.
func TestRestrictedPersonCannotSignIn(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		base, _ := url.Parse(e.base)
		var asked []string
		e.svc = sso.New(sso.Config{BaseURL: base, AllowLoopbackIdPs: true, Restricted: func(_ context.Context, siteID, accountID string) (bool, error) {
			asked = append(asked, accountID)
			return true, nil
		}}, e.st, e.accounts, e.clock.Now, nil)
		e.oidc.SignIn(&alice)
		br := &browser{}
		state, code := e.beginOIDC(br, "")
		_, err := e.finishOIDC(br, state, code)
		if models.ErrorCode(err) != models.CodeForbidden {
			t.Fatalf("restricted sign-in: %v", err)
		}
		acct, _ := e.jira.Account(alice.Email)
		if d := cmp.Diff([]string{acct.AccountID}, asked); d != "" {
			t.Errorf("the guard was asked about (-want +got):\n%s", d)
		}
		if d := cmp.Diff(map[string]int{"sessions": 0, "login_success": 0}, map[string]int{"sessions": e.sessions(), "login_success": len(e.events(models.AuditLoginSuccess))}); d != "" {
			t.Errorf("a restricted person signed in (-want +got):\n%s", d)
		}
		marks := e.events(models.AuditAccessDenied)
		if len(marks) != 1 {
			t.Fatalf("markers %+v, want one", marks)
		}
		if d := cmp.Diff(map[string]string{"reason": "processing_restricted", "ip": "", "userAgent": ""},
			map[string]string{"reason": marks[0].Reason, "ip": marks[0].IP, "userAgent": marks[0].UserAgent}); d != "" {
			t.Errorf("marker (-want +got):\n%s", d)
		}
	})
}

// TestSignInAcrossReplicas: a sign-in started on one replica finishes on
// another (the login state is in the database, not in a process), and a
// logout on one ends the session on the other at once.
func TestSignInAcrossReplicas(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		base, _ := url.Parse(e.base)
		other := sso.New(sso.Config{BaseURL: base, AllowLoopbackIdPs: true}, b.Open(t, storetest.SameDatabase(e.st)), e.accounts, e.clock.Now, nil)
		e.oidc.SignIn(&alice)
		br := &browser{}
		state, code := e.beginOIDC(br, "")
		res, err := other.FinishOIDC(context.Background(), models.LoginCallback{SiteID: e.site.ID, State: state, Code: code, BrowserToken: br.binding})
		if err != nil {
			t.Fatalf("finish on the other replica: %v", err)
		}
		if _, err := e.svc.Session(context.Background(), e.site.ID, res.SessionToken); err != nil {
			t.Fatalf("the first replica does not know the session: %v", err)
		}
		if err := other.Logout(context.Background(), e.site.ID, res.SessionToken, "", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Session(context.Background(), e.site.ID, res.SessionToken); models.ErrorCode(err) != models.CodeUnauthorized {
			t.Errorf("after logout on the other replica: %v", err)
		}
	})
}
