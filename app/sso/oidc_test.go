package sso_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"idbridge/app/fakeidp"
	"idbridge/app/sso"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

var alice = fakeidp.User{Email: "Alice@Customer.Example", Name: "Alice Example", EmailVerified: true}

func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.oidc.SignIn(&alice)
		br := &browser{}
		state, code := e.beginOIDC(br, "/portal/"+e.site.ID+"/requests")
		res, err := e.finishOIDC(br, state, code)
		if err != nil {
			t.Fatalf("sign-in: %v", err)
		}
		if res.Session == nil || !sso.ValidToken(res.SessionToken) || res.ReturnTo != "/portal/"+e.site.ID+"/requests" {
			t.Fatalf("result = %+v", res)
		}
		acct, ok := e.jira.Account(alice.Email)
		if !ok {
			t.Fatalf("no customer %s in the site", alice.Email)
		}
		if d := cmp.Diff(map[string]string{"type": "customer", "session account": acct.AccountID},
			map[string]string{"type": acct.Type, "session account": res.Session.AccountID}); d != "" {
			t.Fatalf("customer %+v (-want +got):\n%s", acct, d)
		}
		if got := e.jira.DeskCustomers(e.desk); !contains(got, acct.AccountID) {
			t.Errorf("desk customers %v lack %s", got, acct.AccountID)
		}
		if got := e.jira.OrganizationMembers(e.org); !contains(got, acct.AccountID) {
			t.Errorf("organization members %v lack %s", got, acct.AccountID)
		}
		for _, kind := range []models.AuditEventType{models.AuditLoginSuccess, models.AuditCustomerCreated, models.AuditAddedToServiceDesk, models.AuditAddedToOrganization} {
			evs := e.events(kind)
			if len(evs) != 1 {
				t.Errorf("%s events = %+v, want one", kind, evs)
				continue
			}
			if d := cmp.Diff(map[string]string{"actor": acct.AccountID, "idp": e.oidcID, "protocol": "oidc", "ip": "203.0.113.9"},
				map[string]string{"actor": evs[0].ActorAccountID, "idp": evs[0].IdP, "protocol": evs[0].Protocol, "ip": evs[0].IP}); d != "" {
				t.Errorf("%s event (-want +got):\n%s", kind, d)
			}
		}
		// The session works, and the login state is gone.
		sess, err := e.svc.Session(context.Background(), e.site.ID, res.SessionToken)
		if err != nil {
			t.Fatalf("session: %v", err)
		}
		if d := cmp.Diff(map[string]string{"account": acct.AccountID, "email": alice.Email}, map[string]string{"account": sess.AccountID, "email": sess.Email}); d != "" {
			t.Fatalf("session (-want +got):\n%s", d)
		}
		if _, err := e.finishOIDC(br, state, code); err == nil {
			t.Fatal("the same callback worked twice")
		}

		// A second sign-in finds the customer (no second creation) and
		// replaces the browser's old session with a new ID.
		state, code = e.beginOIDC(br, "")
		res2, err := e.svc.FinishOIDC(context.Background(), models.LoginCallback{SiteID: e.site.ID, State: state, Code: code,
			BrowserToken: br.binding, OldSessionToken: res.SessionToken})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]any{"new token": true, "customers created": 1},
			map[string]any{"new token": res2.SessionToken != res.SessionToken, "customers created": len(e.events(models.AuditCustomerCreated))}); d != "" {
			t.Errorf("second sign-in (-want +got):\n%s", d)
		}
		if _, err := e.svc.Session(context.Background(), e.site.ID, res.SessionToken); err == nil {
			t.Error("the old session still works after a new sign-in")
		}
		if res2.ReturnTo != "/portal/"+e.site.ID+"/" {
			t.Errorf("return to %q", res2.ReturnTo)
		}
		// Logout ends it; the event is recorded.
		if err := e.svc.Logout(context.Background(), e.site.ID, res2.SessionToken, "203.0.113.9", "ua"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Session(context.Background(), e.site.ID, res2.SessionToken); err == nil {
			t.Error("the session works after logout")
		}
		var loggedOut []string
		for _, ev := range e.events(models.AuditLogout) {
			loggedOut = append(loggedOut, ev.ActorAccountID)
		}
		if d := cmp.Diff([]string{acct.AccountID}, loggedOut); d != "" {
			t.Errorf("logout events' actors (-want +got):\n%s", d)
		}
	})
}

func TestOIDCSignInReadsUserinfo(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.oidc.SignIn(&alice)
		e.oidc.IDTokenWithoutEmail(true)
		br := &browser{}
		state, code := e.beginOIDC(br, "")
		res, err := e.finishOIDC(br, state, code)
		if err != nil {
			t.Fatalf("sign-in: %v", err)
		}
		if res.Session.Email != alice.Email {
			t.Errorf("email %q", res.Session.Email)
		}
		if !contains(e.oidc.Calls(), "GET /userinfo") {
			t.Error("userinfo was not read")
		}
	})
}

// TestOIDCAttacks refuses every attack of SPEC 7 / issue 14 against a real
// OpenID provider, each audited as login_failure with its reason.
func TestOIDCAttacks(t *testing.T) {
	t.Parallel()
	type attack struct {
		name   string
		reason string
		// anonymous: refused before any login state was taken (not audited)
		anonymous bool
		// setup changes the provider before the sign-in; run finishes it.
		setup func(e *env)
		run   func(e *env, br *browser, state, code string) (*models.LoginResult, error)
	}
	finish := func(e *env, br *browser, state, code string) (*models.LoginResult, error) {
		return e.finishOIDC(br, state, code)
	}
	tamper := func(fn func(c jwt.MapClaims, h map[string]any)) func(e *env) {
		return func(e *env) { e.oidc.Tamper(fn) }
	}
	attacks := []attack{
		{name: "missing state", reason: "state_missing", anonymous: true, run: func(e *env, br *browser, _, code string) (*models.LoginResult, error) {
			return e.finishOIDC(br, "", code)
		}},
		{name: "wrong state", reason: "state_unknown", anonymous: true, run: func(e *env, br *browser, _, code string) (*models.LoginResult, error) {
			return e.finishOIDC(br, strings.Repeat("A", 43), code)
		}},
		{name: "malformed state", reason: "state_unknown", anonymous: true, run: func(e *env, br *browser, _, code string) (*models.LoginResult, error) {
			return e.finishOIDC(br, "<script>", code)
		}},
		{name: "replayed callback", reason: "state_unknown", anonymous: true, run: func(e *env, br *browser, state, code string) (*models.LoginResult, error) {
			if _, err := e.finishOIDC(br, state, code); err != nil {
				return nil, err
			}
			return e.finishOIDC(br, state, code)
		}},
		{name: "replayed authorization code", reason: "code_rejected", run: func(e *env, br *browser, state, code string) (*models.LoginResult, error) {
			if _, err := e.finishOIDC(br, state, code); err != nil {
				return nil, err
			}
			state2, _ := e.beginOIDC(br, "")
			return e.finishOIDC(br, state2, code)
		}},
		{name: "code of another sign-in (PKCE)", reason: "code_rejected", run: func(e *env, br *browser, _, code string) (*models.LoginResult, error) {
			state2, _ := e.beginOIDC(br, "")
			return e.finishOIDC(br, state2, code)
		}},
		{name: "replayed nonce", reason: "nonce_mismatch", run: func(e *env, br *browser, state, code string) (*models.LoginResult, error) {
			// The provider puts the first sign-in's nonce into the second's
			// ID token.
			old := nonceOf(e, br)
			e.oidc.Tamper(func(c jwt.MapClaims, _ map[string]any) { c["nonce"] = old })
			state2, code2 := e.beginOIDC(br, "")
			return e.finishOIDC(br, state2, code2)
		}},
		{name: "no nonce", reason: "nonce_mismatch", setup: tamper(func(c jwt.MapClaims, _ map[string]any) { delete(c, "nonce") }), run: finish},
		{name: "another audience", reason: "token_audience", setup: tamper(func(c jwt.MapClaims, _ map[string]any) { c["aud"] = "someone-else" }), run: finish},
		{name: "another issuer", reason: "token_issuer", setup: tamper(func(c jwt.MapClaims, _ map[string]any) { c["iss"] = "https://evil.example" }), run: finish},
		{name: "expired", reason: "token_expired", setup: tamper(func(c jwt.MapClaims, _ map[string]any) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		}), run: finish},
		{name: "alg none", reason: "token_signature", setup: tamper(func(_ jwt.MapClaims, h map[string]any) { h["alg"] = "none" }), run: finish},
		{name: "extra audience without azp", reason: "azp_missing", setup: func(e *env) {
			e.oidc.Tamper(func(c jwt.MapClaims, _ map[string]any) { c["aud"] = []string{e.oidc.ClientID, "other-client"} })
		}, run: finish},
		{name: "azp of another client", reason: "azp_mismatch", setup: func(e *env) {
			e.oidc.Tamper(func(c jwt.MapClaims, _ map[string]any) {
				c["aud"] = []string{e.oidc.ClientID, "other"}
				c["azp"] = "other"
			})
		}, run: finish},
		{name: "email not verified", reason: "email_unverified", setup: tamper(func(c jwt.MapClaims, _ map[string]any) { c["email_verified"] = false }), run: finish},
		{name: "email outside the allowed domains", reason: "domain_not_allowed", setup: tamper(func(c jwt.MapClaims, _ map[string]any) {
			c["email"] = "mallory@evil.example"
		}), run: finish},
		{name: "allowed domain as a suffix", reason: "domain_not_allowed", setup: tamper(func(c jwt.MapClaims, _ map[string]any) {
			c["email"] = "mallory@notcustomer.example"
		}), run: finish},
		{name: "allowed domain before the last @", reason: "domain_not_allowed", setup: tamper(func(c jwt.MapClaims, _ map[string]any) {
			c["email"] = "mallory@customer.example@evil.example"
		}), run: finish},
		{name: "allowed domain as a subdomain", reason: "domain_not_allowed", setup: tamper(func(c jwt.MapClaims, _ map[string]any) {
			c["email"] = "mallory@customer.example.evil.example"
		}), run: finish},
		{name: "no email, in the token or userinfo", reason: "email_missing", setup: func(e *env) {
			e.oidc.SignIn(&fakeidp.User{Name: "No Mail", EmailVerified: true})
		}, run: finish},
		{name: "login finished in another browser", reason: "browser_mismatch", run: func(e *env, _ *browser, state, code string) (*models.LoginResult, error) {
			return e.finishOIDC(&browser{binding: strings.Repeat("B", 43)}, state, code)
		}},
		{name: "login finished without the binding cookie", reason: "browser_mismatch", run: func(e *env, _ *browser, state, code string) (*models.LoginResult, error) {
			return e.finishOIDC(&browser{}, state, code)
		}},
		{name: "error from the provider", reason: "idp_error", run: func(e *env, br *browser, state, _ string) (*models.LoginResult, error) {
			return e.svc.FinishOIDC(context.Background(), models.LoginCallback{SiteID: e.site.ID, State: state, Error: "access_denied",
				BrowserToken: br.binding, IP: "203.0.113.9", UserAgent: "test-browser/1.0"})
		}},
		{name: "state older than ten minutes", reason: "state_unknown", anonymous: true, run: func(e *env, br *browser, state, code string) (*models.LoginResult, error) {
			e.clock.Advance(models.LoginStateTTL + time.Second)
			return e.finishOIDC(br, state, code)
		}},
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		for _, a := range attacks {
			t.Run(a.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, b)
				e.oidc.SignIn(&alice)
				if a.setup != nil {
					a.setup(e)
				}
				br := &browser{}
				state, code := e.beginOIDC(br, "")
				res, err := a.run(e, br, state, code)
				e.expectRefused(res, err, a.reason, !a.anonymous)
			})
		}
	})
}

// nonceOf starts a sign-in and returns the nonce idbridge sent the
// provider (as an eavesdropper on the first sign-in would have it).
func nonceOf(e *env, br *browser) string {
	e.t.Helper()
	start, err := e.svc.BeginLogin(context.Background(), models.LoginRequest{SiteID: e.site.ID, IdPID: e.oidcID, BrowserToken: br.binding})
	if err != nil {
		e.t.Fatal(err)
	}
	u, _ := url.Parse(start.RedirectURL)
	if d := cmp.Diff(map[string]any{"code_challenge_method": "S256", "has code_challenge": true},
		map[string]any{"code_challenge_method": u.Query().Get("code_challenge_method"), "has code_challenge": u.Query().Get("code_challenge") != ""}); d != "" {
		e.t.Errorf("authorization request without PKCE S256 (-want +got):\n%s", d)
	}
	return u.Query().Get("nonce")
}

func TestReturnToStaysInThePortal(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.oidc.SignIn(&alice)
		home := "/portal/" + e.site.ID + "/"
		for _, rt := range []string{
			"https://evil.example/", "//evil.example/portal/" + e.site.ID + "/", "/\\evil.example", "/portal/other/",
			home + "../../admin", home + "%2f%2fevil.example", "javascript:alert(1)", home + "x?next=https://evil.example",
			"/portal/" + e.site.ID + "evil/", home + "requests#frag", " " + home,
		} {
			br := &browser{}
			state, code := e.beginOIDC(br, rt)
			res, err := e.finishOIDC(br, state, code)
			if err != nil {
				t.Fatalf("returnTo %q: %v", rt, err)
			}
			if res.ReturnTo != home {
				t.Errorf("returnTo %q led to %q; want %q", rt, res.ReturnTo, home)
			}
		}
	})
}

// A provider that signs its ID tokens with ES256 (announced in discovery
// and its JWKS) is accepted as well as RS256; the benchmark uses one so the
// provider's RSA signing does not count as idbridge's cost.
func TestOIDCSignInES256(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		es := fakeidp.NewOIDCES256()
		es.Now = e.oidc.Now
		t.Cleanup(es.Close)
		es.AllowRedirectURI(e.svc.RedirectURI(e.site.ID))
		e.oidc = es
		e.oidcID = e.mustIdP(models.IdentityProviderInput{Name: sp("Customer OIDC (ES256)"), Protocol: sp("oidc"),
			EmailDomains: &[]string{goodDomain},
			OIDC:         &models.OIDCInput{Issuer: sp(es.URL), ClientID: sp(es.ClientID), ClientSecret: sp(es.ClientSecret)}}).ID
		es.SignIn(&alice)
		br := &browser{}
		state, code := e.beginOIDC(br, "")
		res, err := e.finishOIDC(br, state, code)
		if err != nil {
			t.Fatalf("sign-in with an ES256 provider: %v", err)
		}
		acct, ok := e.jira.Account(alice.Email)
		if !ok || res.Session == nil || res.Session.AccountID != acct.AccountID {
			t.Fatalf("result %+v; customer %+v (found %v)", res, acct, ok)
		}
	})
}

// TestDiscoveryFailuresAreRemembered: anyone can start a sign-in, so an
// unreachable provider is asked once for all the sign-ins started at the
// same moment, and not again for failureTTL (30 s); then once more; and
// when it is back, sign-ins work again.
func TestDiscoveryFailuresAreRemembered(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		discoveries := func() int {
			return e.oidcCalls(func(c string) bool { return strings.HasSuffix(c, "/.well-known/openid-configuration") })
		}
		begin := func() error {
			_, err := e.svc.BeginLogin(context.Background(), models.LoginRequest{SiteID: e.site.ID, IdPID: e.oidcID})
			return err
		}
		e.oidc.SetDown(true)
		before := discoveries()
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 16 {
			wg.Go(func() { errs <- begin() })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if models.ErrorCode(err) != models.CodeUnavailable {
				t.Fatalf("sign-in with the provider down: %v", err)
			}
		}
		for range 10 {
			if models.ErrorCode(begin()) != models.CodeUnavailable {
				t.Fatal("a sign-in with the provider down did not fail")
			}
		}
		if n := discoveries() - before; n != 1 {
			t.Errorf("%d discoveries for 26 sign-ins with the provider down; want 1", n)
		}
		e.clock.Advance(30*time.Second + time.Second)
		if models.ErrorCode(begin()) != models.CodeUnavailable {
			t.Fatal("a sign-in with the provider still down did not fail")
		}
		if n := discoveries() - before; n != 2 {
			t.Errorf("%d discoveries after the failure was forgotten; want 2", n)
		}
		e.oidc.SetDown(false)
		e.clock.Advance(30*time.Second + time.Second)
		if err := begin(); err != nil {
			t.Errorf("sign-in with the provider back: %v", err)
		}
	})
}

// TestAuditedFailuresBoundedPerSite: anyone can start sign-ins and refuse
// them at once (?error= at the callback), each a login_failure with an IP
// and browser of their choosing. A site's failures write at most a burst
// of 120 rows and then one a second; the rest are refused all the same.
func TestAuditedFailuresBoundedPerSite(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		refuseOne := func(i int) {
			t.Helper()
			start, err := e.svc.BeginLogin(context.Background(), models.LoginRequest{SiteID: e.site.ID, IdPID: e.oidcID})
			if err != nil {
				t.Fatalf("begin %d: %v", i, err)
			}
			u, _ := url.Parse(start.RedirectURL)
			_, err = e.svc.FinishOIDC(context.Background(), models.LoginCallback{SiteID: e.site.ID, State: u.Query().Get("state"),
				Error: "access_denied", BrowserToken: start.BrowserToken, IP: "203.0.113.9", UserAgent: fmt.Sprintf("junk-%d", i)})
			if r, _ := sso.IsRefusal(err); r != "idp_error" {
				t.Fatalf("callback %d: %v, want refused idp_error", i, err)
			}
		}
		for i := range 300 {
			refuseOne(i)
		}
		if n := len(e.events(models.AuditLoginFailure)); n != 120 {
			t.Errorf("%d login_failure rows after 300 failures at once; want the burst, 120", n)
		}
		e.clock.Advance(30 * time.Second)
		for i := range 100 {
			refuseOne(300 + i)
		}
		if n := len(e.events(models.AuditLoginFailure)); n != 150 {
			t.Errorf("%d login_failure rows 30 s later; want 150", n)
		}
		// A real sign-in is not held back.
		e.oidc.SignIn(&alice)
		br := &browser{}
		state, code := e.beginOIDC(br, "")
		if res, err := e.finishOIDC(br, state, code); err != nil || res.Session == nil {
			t.Fatalf("a sign-in during the flood: %+v, %v", res, err)
		}
	})
}

// panicTransport panics on every request: a bug in a transport or a
// library under discovery.
type panicTransport struct{}

func (panicTransport) RoundTrip(*http.Request) (*http.Response, error) { panic("transport bug") }

// TestDiscoveryPanicIsAnError: discovery runs on singleflight's goroutine,
// where no handler's recovery reaches; a panic there is the sign-in's
// error, not the end of the process.
func TestDiscoveryPanicIsAnError(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		base, _ := url.Parse(e.base)
		svc := sso.New(sso.Config{BaseURL: base, AllowLoopbackIdPs: true, IdPTransport: panicTransport{}}, e.st, e.accounts, e.clock.Now,
			slog.New(slog.NewTextHandler(testWriter{t}, nil)))
		_, err := svc.BeginLogin(context.Background(), models.LoginRequest{SiteID: e.site.ID, IdPID: e.oidcID})
		if models.ErrorCode(err) != models.CodeUnavailable {
			t.Fatalf("sign-in whose discovery panicked: %v, want unavailable", err)
		}
	})
}

// TestTokenExchangesBoundedPerIdP: anyone can start sign-ins and come back
// with junk codes, each exchanged at the IdP's token endpoint with the
// site's client secret. An IdP's failed exchanges are a burst of 300 and
// then 50 a second; while that is spent, callbacks are refused without a
// call. Successful exchanges take nothing of it.
func TestTokenExchangesBoundedPerIdP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		tokenCalls := func() int { return e.oidcCalls(func(c string) bool { return c == "POST /token" }) }
		junk := func(i int) string {
			t.Helper()
			start, err := e.svc.BeginLogin(context.Background(), models.LoginRequest{SiteID: e.site.ID, IdPID: e.oidcID})
			if err != nil {
				t.Fatalf("begin %d: %v", i, err)
			}
			u, _ := url.Parse(start.RedirectURL)
			_, err = e.svc.FinishOIDC(context.Background(), models.LoginCallback{SiteID: e.site.ID, State: u.Query().Get("state"),
				Code: fmt.Sprintf("junk-%d", i), BrowserToken: start.BrowserToken, IP: "203.0.113.9", UserAgent: "flood"})
			r, _ := sso.IsRefusal(err)
			return r
		}
		before := tokenCalls()
		reasons := map[string]int{}
		for i := range 350 {
			reasons[junk(i)]++
		}
		if d := cmp.Diff(map[string]int{"code_rejected": 300, "idp_busy": 50}, reasons); d != "" {
			t.Errorf("350 junk codes at once (-want +got):\n%s", d)
		}
		calls := tokenCalls() - before
		if calls < 300 || calls > 600 {
			t.Errorf("%d token endpoint calls for 300 exchanges", calls)
		}
		e.clock.Advance(time.Second / 50)
		if r := junk(350); r != "code_rejected" {
			t.Errorf("a second later: %q, want the code exchanged (and rejected)", r)
		}
		// Real sign-ins, many more than the budget, take nothing of it.
		e.clock.Advance(10 * time.Second)
		e.oidc.SignIn(&alice)
		for i := range 120 {
			br := &browser{}
			state, code := e.beginOIDC(br, "")
			if res, err := e.finishOIDC(br, state, code); err != nil || res.Session == nil {
				t.Fatalf("sign-in %d: %+v, %v", i, res, err)
			}
		}
	})
}
