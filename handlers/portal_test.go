package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// cookieSSO answers sign-ins without any protocol: enough to see which
// cookies the portal sets and how.
type cookieSSO struct {
	SSO
	protocol string
	token    string
}

func (c *cookieSSO) BeginLogin(_ context.Context, req models.LoginRequest) (*models.LoginStart, error) {
	return &models.LoginStart{RedirectURL: "https://idp.example/authorize", Protocol: c.protocol, BrowserToken: strings.Repeat("b", 43)}, nil
}

func (c *cookieSSO) FinishOIDC(_ context.Context, cb models.LoginCallback) (*models.LoginResult, error) {
	c.token = cb.BrowserToken
	return &models.LoginResult{SessionToken: strings.Repeat("s", 43), ReturnTo: "/portal/s_1/"}, nil
}

func setCookie(t *testing.T, w interface{ Result() *http.Response }, name string) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no Set-Cookie %s", name)
	return nil
}

// TestPortalCookies: on an https base URL the cookies are __Host- cookies
// (Secure, Path=/, no Domain); the sign-in binding is SameSite=Lax for
// OIDC and None for SAML (the IdP posts back cross-site); the session is
// HttpOnly and SameSite=Lax. On a plain-http loopback base URL the names
// lose the prefix and Secure, and None falls back to Lax.
func TestPortalCookies(t *testing.T) {
	for _, c := range []struct {
		base, protocol, login, session string
		secure                         bool
		loginSameSite                  http.SameSite
	}{
		{"https://idbridge.example.com", models.ProtocolOIDC, "__Host-idbridge_login", "__Host-idbridge_portal", true, http.SameSiteLaxMode},
		{"https://idbridge.example.com", models.ProtocolSAML, "__Host-idbridge_login", "__Host-idbridge_portal", true, http.SameSiteNoneMode},
		{"http://127.0.0.1:8080", models.ProtocolSAML, "idbridge_login", "idbridge_portal", false, http.SameSiteLaxMode},
	} {
		t.Run(c.base+" "+c.protocol, func(t *testing.T) {
			base, _ := url.Parse(c.base)
			sso := &cookieSSO{protocol: c.protocol}
			h, _ := newTestServer(t, Deps{BaseURL: base, SSO: sso})
			w := do(t, h, http.MethodGet, "/portal/s_1/login?idp=x", "", nil)
			if w.Code != http.StatusFound {
				t.Fatalf("login: %d %s", w.Code, w.Body)
			}
			login := setCookie(t, w, c.login)
			// want is the cookie got, with the attributes this test expects set.
			want := *login
			want.Secure, want.HttpOnly, want.Path, want.Domain, want.SameSite, want.MaxAge = c.secure, true, "/", "", c.loginSameSite, 600
			if d := cmp.Diff(want, *login); d != "" {
				t.Errorf("login cookie (-want +got):\n%s", d)
			}
			r := http.Header{"Cookie": {c.login + "=" + login.Value}}
			w = do(t, h, http.MethodGet, "/portal/s_1/oidc/callback?state=x&code=y", "", r)
			if d := cmp.Diff(map[string]any{"status": http.StatusSeeOther, "Location": "/portal/s_1/"},
				map[string]any{"status": w.Code, "Location": w.Header().Get("Location")}); d != "" {
				t.Fatalf("callback (-want +got):\n%s", d)
			}
			if sso.token != login.Value {
				t.Errorf("the callback did not pass the binding cookie on")
			}
			sess := setCookie(t, w, c.session)
			want = *sess
			want.Secure, want.HttpOnly, want.Path, want.SameSite, want.Value = c.secure, true, "/", http.SameSiteLaxMode, strings.Repeat("s", 43)
			if d := cmp.Diff(want, *sess); d != "" {
				t.Errorf("session cookie (-want +got):\n%s", d)
			}
			if gone := setCookie(t, w, c.login); gone.MaxAge >= 0 {
				t.Errorf("the login cookie was not removed: %+v", gone)
			}
		})
	}
}
