package app_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"idbridge/app/fakeidp"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// userAgentTransport sends every request with one User-Agent.
type userAgentTransport struct{ ua string }

func (u userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", u.ua)
	return http.DefaultTransport.RoundTrip(r)
}

// setUpOIDCSignIn turns SSO on with one OIDC identity provider that creates
// customers, and returns the portal's URL.
func (e *ssoEnv) setUpOIDCSignIn(t *testing.T) string {
	t.Helper()
	e.mustAdmin(http.MethodPut, "/service-account", map[string]any{"kind": "api_token", "email": ssoSvcEmail, "token": ssoSvcToken}, 200, nil)
	e.mustAdmin(http.MethodPut, "/sso", map[string]any{"enabled": true, "allowedDomains": []string{"customer.example"},
		"autoCreateCustomers": true, "serviceDeskIds": []string{e.desk}}, 200, nil)
	e.mustAdmin(http.MethodPost, "/idps", map[string]any{"name": "Customer staff", "protocol": "oidc", "enabled": true,
		"oidc": map[string]any{"issuer": e.oidc.URL, "clientId": e.oidc.ClientID, "clientSecret": e.oidc.ClientSecret}}, 201, nil)
	return e.base + "/portal/" + e.site.ID + "/"
}

// TestSSOUserAgentNotUTF8 signs in and out from a browser whose User-Agent
// holds a byte that is not UTF-8 (HTTP allows them). PostgreSQL refused the
// audit row, so the sign-in failed after the customer had been created at
// JSM; now the text is stored with the byte replaced.
func TestSSOUserAgentNotUTF8(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newSSOEnv(t, b)
		portal := e.setUpOIDCSignIn(t)
		c := newCustomer(t)
		c.client.Transport = userAgentTransport{"Mozilla/5.0 (Caf\xe9Browser)"}
		e.oidc.SignIn(&fakeidp.User{Email: "frank@customer.example", Name: "Frank Customer", EmailVerified: true})
		res, page := c.get(portal + "login")
		if res.StatusCode != http.StatusOK || !strings.Contains(page, "Frank Customer") {
			t.Fatalf("sign-in: %d %s", res.StatusCode, page)
		}
		var audit struct {
			Events []map[string]any `json:"events"`
		}
		e.mustAdmin(http.MethodGet, "/audit?event=login_success", nil, 200, &audit)
		var agents []any
		for _, ev := range audit.Events {
			agents = append(agents, ev["userAgent"])
		}
		if d := cmp.Diff([]any{"Mozilla/5.0 (Caf\uFFFDBrowser)"}, agents); d != "" {
			t.Errorf("login_success user agents (-want +got):\n%s", d)
		}
		n, err := e.app.Store().View(context.Background()).CountPortalSessions(e.site.ID)
		if err != nil || n != 1 {
			t.Errorf("%d sessions (%v), want 1", n, err)
		}
		csrf := csrfField.FindStringSubmatch(page)
		if csrf == nil {
			t.Fatalf("no CSRF field on the portal page: %s", page)
		}
		if res, page := c.post(portal+"logout", url.Values{"csrf": {html.UnescapeString(csrf[1])}}); res.StatusCode != http.StatusOK {
			t.Errorf("logout: %d %s", res.StatusCode, page)
		}
		e.mustAdmin(http.MethodGet, "/audit?event="+string(models.AuditLogout), nil, 200, &audit)
		if len(audit.Events) != 1 || audit.Events[0]["userAgent"] != "Mozilla/5.0 (Caf\uFFFDBrowser)" {
			t.Errorf("logout events %v", audit.Events)
		}
	})
}

// TestSSOTestSignInNeedsTheAdminLink: "Test sign-in" skips the checks that
// SSO and the IdP are turned on and reports each step; only the link the
// admin API hands out runs it, not ?test=1 from anyone.
func TestSSOTestSignInNeedsTheAdminLink(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newSSOEnv(t, b)
		e.mustAdmin(http.MethodPut, "/service-account", map[string]any{"kind": "api_token", "email": ssoSvcEmail, "token": ssoSvcToken}, 200, nil)
		e.mustAdmin(http.MethodPut, "/sso", map[string]any{"allowedDomains": []string{"customer.example"}, "autoCreateCustomers": true}, 200, nil) // SSO stays off
		var idp map[string]any
		e.mustAdmin(http.MethodPost, "/idps", map[string]any{"name": "Customer staff", "protocol": "oidc",
			"oidc": map[string]any{"issuer": e.oidc.URL, "clientId": e.oidc.ClientID, "clientSecret": e.oidc.ClientSecret}}, 201, &idp)
		portal := e.base + "/portal/" + e.site.ID + "/"
		e.oidc.SignIn(&fakeidp.User{Email: "gina@customer.example", Name: "Gina Customer", EmailVerified: true})
		calls := len(e.oidc.Calls())
		for _, q := range []string{"test=1", "test=" + url.QueryEscape(strings.Repeat("x", 70))} {
			res, page := newCustomer(t).get(portal + "login?idp=" + idp["id"].(string) + "&" + q)
			if res.StatusCode != http.StatusForbidden || !strings.Contains(page, "test link") {
				t.Errorf("%s: %d %s", q, res.StatusCode, page)
			}
		}
		if n := len(e.oidc.Calls()) - calls; n != 0 {
			t.Errorf("a refused test link made %d calls to the identity provider", n)
		}
		link, _ := idp["testSignInUrl"].(string)
		if !strings.HasPrefix(link, portal+"login?") || strings.Contains(link, "test=1") {
			t.Fatalf("testSignInUrl %q", link)
		}
		res, page := newCustomer(t).get(link)
		if res.StatusCode != http.StatusOK || !strings.Contains(page, "Test sign-in") || !strings.Contains(page, "The sign-in works") {
			t.Errorf("the admin's test link: %d %s", res.StatusCode, page)
		}
		n, err := e.app.Store().View(context.Background()).CountPortalSessions(e.site.ID)
		if err != nil || n != 0 {
			t.Errorf("%d sessions after a test (%v)", n, err)
		}
	})
}
