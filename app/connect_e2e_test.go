package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"idbridge/app"
	"idbridge/app/apptest"
	"idbridge/app/connect"
	"idbridge/app/fakeatlassian"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// adminBody is the JSON of GET /api/admin/site.
type connectAdminBody struct {
	ID             string    `json:"id"`
	BaseURL        string    `json:"baseUrl"`
	DisplayURL     string    `json:"displayUrl"`
	ProductType    string    `json:"productType"`
	State          string    `json:"state"`
	InstalledAt    time.Time `json:"installedAt"`
	InstallationID string    `json:"installationId"`
	CloudID        string    `json:"cloudId"`
}

func connectDecodeAdmin(tb testing.TB, w *httptest.ResponseRecorder) connectAdminBody {
	tb.Helper()
	var b connectAdminBody
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields() // a new field must be added here on purpose
	if err := dec.Decode(&b); err != nil {
		tb.Fatalf("GET /api/admin/site: %v in %s", err, w.Body)
	}
	return b
}

// TestConnectLifecycle walks one site through install, reinstall, toggles,
// uninstall and revival, checking the store and which secret works after
// each step.
func TestConnectLifecycle(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newConnectHarness(t, b)
		s := h.newSite(h.jira)
		h.jira.AddAdmin("admin-1")

		// A signed install creates the site with every fact it carries.
		h.mustInstall(s)
		got := h.mustState(s, models.SiteInstalled)
		if string(got.SharedSecret) != s.secret || got.BaseURL != s.baseURL || got.ProductType != "jira" ||
			got.InstallationID != s.installationID || got.CloudID != s.cloudID || got.DisplayURL != s.baseURL ||
			!got.InstalledAt.Equal(h.clock.Now()) {
			t.Fatalf("stored site %+v does not match the install", got)
		}
		siteID := got.ID
		raw := h.snapshot()
		if len(raw) != 1 {
			t.Fatalf("sites rows: %v, want one", raw)
		}
		if d := cmp.Diff(map[string]bool{"stored": true, "in clear": false}, map[string]bool{"stored": raw[0]["shared_secret"] != "NULL",
			"in clear": strings.Contains(raw[0]["shared_secret"], connectHex(s.secret))}); d != "" {
			t.Fatalf("shared secret is not stored sealed (-want +got):\n%s", d)
		}

		w := h.adminSite(nil, s, "admin-1", s.secret)
		connectWantStatus(t, w, http.StatusOK, "admin call after install")
		body := connectDecodeAdmin(t, w)
		if d := cmp.Diff(map[string]string{"id": siteID, "installationId": s.installationID, "cloudId": s.cloudID, "state": "installed"},
			map[string]string{"id": body.ID, "installationId": body.InstallationID, "cloudId": body.CloudID, "state": body.State}); d != "" {
			t.Fatalf("GET /api/admin/site (-want +got):\n%s", d)
		}

		// A reinstall replaces the secret at once; the site keeps its ID.
		h.clock.Advance(time.Minute)
		old := h.reinstall(nil, s)
		connectWantStatus(t, h.adminSite(nil, s, "admin-1", old), http.StatusUnauthorized, "old secret right after reinstall")
		connectWantStatus(t, h.adminSite(nil, s, "admin-1", s.secret), http.StatusOK, "new secret after reinstall")
		reinstalled := h.mustState(s, models.SiteInstalled)
		if d := cmp.Diff(map[string]any{"id": siteID, "secret is the new one": true},
			map[string]any{"id": reinstalled.ID, "secret is the new one": string(reinstalled.SharedSecret) == s.secret}); d != "" {
			t.Fatalf("after reinstall (-want +got):\n%s", d)
		}

		// enabled and disabled toggle the state.
		connectWantStatus(t, h.toggle(s, "disabled", s.secret), http.StatusNoContent, "disabled")
		h.mustState(s, models.SiteDisabled)
		connectWantStatus(t, h.toggle(s, "disabled", s.secret), http.StatusNoContent, "disabled twice")
		h.mustState(s, models.SiteDisabled)
		connectWantStatus(t, h.toggle(s, "enabled", s.secret), http.StatusNoContent, "enabled")
		h.mustState(s, models.SiteInstalled)

		// Uninstall: 204, the secret is gone, tokens stop working.
		connectWantStatus(t, h.uninstall(s), http.StatusNoContent, "uninstall")
		got = h.mustState(s, models.SiteUninstalled)
		if len(got.SharedSecret) != 0 || got.UninstalledAt == nil || got.PurgeAfter == nil ||
			!got.PurgeAfter.Equal(h.clock.Now().Add(30*24*time.Hour)) {
			t.Fatalf("after uninstall: %+v", got)
		}
		if raw := h.snapshot(); raw[0]["shared_secret"] != "NULL" {
			t.Fatalf("the sealed secret is still stored: %v", raw[0]["shared_secret"])
		}
		connectWantStatus(t, h.adminSite(nil, s, "admin-1", s.secret), http.StatusUnauthorized, "token after uninstall")
		before := h.snapshot()
		connectWantStatus(t, h.uninstall(s), http.StatusNoContent, "second uninstall")
		if after := h.snapshot(); !connectEqualRows(before, after) {
			t.Fatalf("a second uninstall changed the row:\n%v\n%v", before, after)
		}

		// Late enabled/disabled never revive the site.
		for _, ev := range []string{"enabled", "disabled"} {
			w := h.toggle(s, ev, s.secret)
			connectWantStatus(t, w, http.StatusUnauthorized, "late "+ev)
			connectErrorOf(t, w)
		}
		h.mustState(s, models.SiteUninstalled)

		// A new verified install revives it, with the new secret only.
		old = h.reinstall(nil, s)
		got = h.mustState(s, models.SiteInstalled)
		if got.ID != siteID || got.PurgeAfter != nil || got.UninstalledAt != nil {
			t.Fatalf("revived site: %+v", got)
		}
		connectWantStatus(t, h.adminSite(nil, s, "admin-1", old), http.StatusUnauthorized, "pre-uninstall secret after revival")
		connectWantStatus(t, h.adminSite(nil, s, "admin-1", s.secret), http.StatusOK, "new secret after revival")

		// A later install without installationId/cloudId keeps them.
		s.installationID, s.cloudID = "", ""
		h.reinstall(nil, s)
		body = connectDecodeAdmin(t, h.adminSite(nil, s, "admin-1", s.secret))
		if d := cmp.Diff(map[string]bool{"installationId": true, "cloudId": true}, map[string]bool{"installationId": body.InstallationID != "", "cloudId": body.CloudID != ""}); d != "" {
			t.Fatalf("installationId/cloudId kept on a reinstall without them (-want +got):\n%s", d)
		}
	})
}

func connectHex(s string) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&15])
	}
	return b.String()
}

func connectEqualRows(a, b []map[string]string) bool {
	return slices.EqualFunc(a, b, func(x, y map[string]string) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if y[k] != v {
				return false
			}
		}
		return true
	})
}

// attackFixture is the state every attack runs against: site A (Jira) and
// B (Confluence) installed, U uninstalled, R reinstalled (with its old
// secret kept).
type connectAttackFixture struct {
	a, b, u, r *connectSite
	uSecret    string // U's secret before it was uninstalled
	rOld       string // R's secret before the reinstall
}

// attack is one refused request: build returns the request and the token
// it carries; reason is the idbridge_jwt_failures_total label it must
// count under.
type connectAttack struct {
	name   string
	reason string
	build  func(h *connectHarness, f *connectAttackFixture) (*http.Request, string)
}

// installAttack is a signed install of A's clientKey with a new secret (so
// that success would change A's row), with the token from sign.
func connectInstallAttack(name, reason string, sign func(h *connectHarness, f *connectAttackFixture, claims jwt.MapClaims) string) connectAttack {
	return connectAttack{name: name, reason: reason, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
		const target = "/lifecycle/installed"
		evil := *f.a
		evil.secret = "attacker-chosen-secret-0123456789abcdef"
		token := sign(h, f, h.installClaims(f.a.clientKey, http.MethodPost, target))
		return connectRequest(http.MethodPost, target, connectLifecycleBody(&evil, "installed"), token), token
	}}
}

// contextAttack is GET /api/admin/site with the token from sign.
func connectContextAttack(name, reason string, sign func(h *connectHarness, f *connectAttackFixture) string) connectAttack {
	return connectAttack{name: name, reason: reason, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
		token := sign(h, f)
		return connectRequest(http.MethodGet, "/api/admin/site", nil, token), token
	}}
}

func connectHS256(h *connectHarness, claims jwt.MapClaims, secret string) string {
	return h.signHMAC(claims, jwt.SigningMethodHS256, []byte(secret), "")
}

// connectRawHS256 signs payload as it is (any bytes) under HS256.
func connectRawHS256(h *connectHarness, payload []byte, secret string) string {
	h.t.Helper()
	input := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := jwt.SigningMethodHS256.Sign(input, []byte(secret))
	if err != nil {
		h.t.Fatal(err)
	}
	token := input + "." + base64.RawURLEncoding.EncodeToString(sig)
	h.remember(token)
	return token
}

func connectAttacks() []connectAttack {
	rs := func(kid string) func(h *connectHarness, f *connectAttackFixture, c jwt.MapClaims) string {
		return func(h *connectHarness, f *connectAttackFixture, c jwt.MapClaims) string {
			atl, _ := apptest.RSAKeys(h.t)
			return h.signRS256(c, kid, atl)
		}
	}
	withClaims := func(edit func(h *connectHarness, c jwt.MapClaims)) func(h *connectHarness, f *connectAttackFixture, c jwt.MapClaims) string {
		return func(h *connectHarness, f *connectAttackFixture, c jwt.MapClaims) string {
			edit(h, c)
			return rs(connectKid)(h, f, c)
		}
	}
	return []connectAttack{
		// Where the token is.
		connectContextAttack("no token", connect.ReasonMissingToken, func(*connectHarness, *connectAttackFixture) string { return "" }),
		{name: "no token on the admin page", reason: connect.ReasonMissingToken, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			return connectRequest(http.MethodGet, "/admin", nil, ""), ""
		}},
		{name: "token in both query and header", reason: connect.ReasonTokenInQueryAndHeader, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			token := connectHS256(h, h.siteClaims(f.a, http.MethodGet, "/admin"), f.a.secret)
			return connectRequest(http.MethodGet, "/admin?jwt="+token, nil, token), token
		}},
		{name: "unsigned install", reason: connect.ReasonMissingToken, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			evil := *f.a
			evil.secret = "attacker-chosen-secret-0123456789abcdef"
			return connectRequest(http.MethodPost, "/lifecycle/installed", connectLifecycleBody(&evil, "installed"), ""), ""
		}},
		{name: "unsigned uninstall", reason: connect.ReasonMissingToken, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			return connectRequest(http.MethodPost, "/lifecycle/uninstalled", connectLifecycleBody(f.a, "uninstalled"), ""), ""
		}},
		{name: "install token in the query", reason: connect.ReasonMissingToken, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			atl, _ := apptest.RSAKeys(h.t)
			evil := *f.a
			evil.secret = "attacker-chosen-secret-0123456789abcdef"
			token := h.signRS256(h.installClaims(f.a.clientKey, http.MethodPost, "/lifecycle/installed"), connectKid, atl)
			return connectRequest(http.MethodPost, "/lifecycle/installed?jwt="+token, connectLifecycleBody(&evil, "installed"), ""), token
		}},

		// Algorithms.
		connectContextAttack("alg none", connect.ReasonBadAlg, func(h *connectHarness, f *connectAttackFixture) string {
			return h.signNone(h.contextClaims(f.a, "admin-1"), "")
		}),
		connectInstallAttack("install with alg none", connect.ReasonBadAlg, func(h *connectHarness, f *connectAttackFixture, c jwt.MapClaims) string {
			return h.signNone(c, connectKid)
		}),
		connectContextAttack("HS512 with the shared secret", connect.ReasonBadAlg, func(h *connectHarness, f *connectAttackFixture) string {
			return h.signHMAC(h.contextClaims(f.a, "admin-1"), jwt.SigningMethodHS512, []byte(f.a.secret), "")
		}),
		connectContextAttack("RS256 on a shared-secret route", connect.ReasonBadAlg, func(h *connectHarness, f *connectAttackFixture) string {
			atl, _ := apptest.RSAKeys(h.t)
			return h.signRS256(h.contextClaims(f.a, "admin-1"), connectKid, atl)
		}),
		connectInstallAttack("HS256 install signed with the public key's PEM", connect.ReasonBadAlg, func(h *connectHarness, f *connectAttackFixture, c jwt.MapClaims) string {
			atl, _ := apptest.RSAKeys(h.t)
			return h.signHMAC(c, jwt.SigningMethodHS256, apptest.PublicPEM(h.t, &atl.PublicKey), connectKid)
		}),
		connectInstallAttack("HS256 install signed with the shared secret", connect.ReasonBadAlg, func(h *connectHarness, f *connectAttackFixture, c jwt.MapClaims) string {
			return h.signHMAC(c, jwt.SigningMethodHS256, []byte(f.a.secret), connectKid)
		}),
		connectInstallAttack("install signed by another RSA key", connect.ReasonBadSignature, func(h *connectHarness, f *connectAttackFixture, c jwt.MapClaims) string {
			_, evil := apptest.RSAKeys(h.t)
			return h.signRS256(c, connectKid, evil)
		}),

		// Key IDs and the key server.
		connectInstallAttack("install without kid", connect.ReasonBadKid, rs("")),
		connectInstallAttack("unknown kid (key server 404)", connect.ReasonUnknownKid, rs("unknown")),
		connectInstallAttack("kid with a slash", connect.ReasonBadKid, rs("k1/../k1")),
		connectInstallAttack("kid of dots", connect.ReasonBadKid, rs("..")),
		connectInstallAttack("kid with dot-dot", connect.ReasonBadKid, rs("a..k1")),
		connectInstallAttack("kid with a percent", connect.ReasonBadKid, rs("k%2F1")),
		connectInstallAttack("key server 500", connect.ReasonKeyServerUnavailable, rs("boom")),
		connectInstallAttack("key server hangs past the timeout", connect.ReasonKeyServerUnavailable, rs("hang")),

		// Claims of the install token.
		connectInstallAttack("aud not ours", connect.ReasonBadAud, withClaims(func(_ *connectHarness, c jwt.MapClaims) { c["aud"] = "https://evil.test" })),
		connectInstallAttack("aud array without ours", connect.ReasonBadAud, withClaims(func(_ *connectHarness, c jwt.MapClaims) {
			c["aud"] = []string{"https://evil.test", "https://idbridge.test.evil.test"}
		})),
		connectInstallAttack("aud missing", connect.ReasonBadAud, withClaims(func(_ *connectHarness, c jwt.MapClaims) { delete(c, "aud") })),
		connectInstallAttack("iss not the body's clientKey", connect.ReasonBadIss, withClaims(func(_ *connectHarness, c jwt.MapClaims) { c["iss"] = "another-client" })),
		connectInstallAttack("install qsh of another method", connect.ReasonBadQSH, withClaims(func(_ *connectHarness, c jwt.MapClaims) {
			c["qsh"] = apptest.QSHOf(http.MethodGet, "/lifecycle/installed")
		})),
		connectInstallAttack("install qsh of another path", connect.ReasonBadQSH, withClaims(func(_ *connectHarness, c jwt.MapClaims) {
			c["qsh"] = apptest.QSHOf(http.MethodPost, "/lifecycle/uninstalled")
		})),
		connectInstallAttack("install with context-qsh", connect.ReasonContextQSHOnURLRoute, withClaims(func(_ *connectHarness, c jwt.MapClaims) { c["qsh"] = "context-qsh" })),
		connectInstallAttack("install expired beyond the leeway", connect.ReasonExpired, withClaims(func(h *connectHarness, c jwt.MapClaims) {
			c["exp"] = h.clock.Now().Add(-31 * time.Second).Unix()
		})),
		connectInstallAttack("install without exp", connect.ReasonNoExp, withClaims(func(_ *connectHarness, c jwt.MapClaims) { delete(c, "exp") })),
		{name: "qsh of another query", reason: connect.ReasonBadQSH, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			token := connectHS256(h, h.siteClaims(f.a, http.MethodGet, "/admin?a=1"), f.a.secret)
			return connectRequest(http.MethodGet, "/admin?a=2", nil, token), token
		}},
		{name: "qsh of another path", reason: connect.ReasonBadQSH, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			token := connectHS256(h, h.siteClaims(f.a, http.MethodPost, "/lifecycle/enabled"), f.a.secret)
			return connectRequest(http.MethodPost, "/lifecycle/disabled", connectLifecycleBody(f.a, "disabled"), token), token
		}},
		{name: "qsh of another method", reason: connect.ReasonBadQSH, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			token := connectHS256(h, h.siteClaims(f.a, http.MethodGet, "/lifecycle/disabled"), f.a.secret)
			return connectRequest(http.MethodPost, "/lifecycle/disabled", connectLifecycleBody(f.a, "disabled"), token), token
		}},

		// Context and URL-bound routes.
		{name: "context-qsh on a URL-bound route", reason: connect.ReasonContextQSHOnURLRoute, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			token := connectHS256(h, h.contextClaims(f.a, "admin-1"), f.a.secret)
			return connectRequest(http.MethodGet, "/admin", nil, token), token
		}},
		{name: "context-qsh on disabled", reason: connect.ReasonContextQSHOnURLRoute, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			token := connectHS256(h, h.contextClaims(f.a, "admin-1"), f.a.secret)
			return connectRequest(http.MethodPost, "/lifecycle/disabled", connectLifecycleBody(f.a, "disabled"), token), token
		}},
		connectContextAttack("URL-bound token on a context route", connect.ReasonURLQSHOnContextRoute, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.siteClaims(f.a, http.MethodGet, "/api/admin/site")
			c["sub"] = "admin-1"
			return connectHS256(h, c, f.a.secret)
		}),
		connectContextAttack("context token without sub", connect.ReasonNoSub, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			delete(c, "sub")
			return connectHS256(h, c, f.a.secret)
		}),
		connectContextAttack("token without qsh", connect.ReasonBadQSH, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			delete(c, "qsh")
			return connectHS256(h, c, f.a.secret)
		}),

		// Time.
		connectContextAttack("expired beyond the 30 s leeway", connect.ReasonExpired, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			c["exp"] = h.clock.Now().Add(-31 * time.Second).Unix()
			return connectHS256(h, c, f.a.secret)
		}),
		connectContextAttack("exactly at the leeway", connect.ReasonExpired, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			c["exp"] = h.clock.Now().Add(-30 * time.Second).Unix()
			return connectHS256(h, c, f.a.secret)
		}),
		connectContextAttack("no exp", connect.ReasonNoExp, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			delete(c, "exp")
			return connectHS256(h, c, f.a.secret)
		}),
		connectContextAttack("context token living an hour", connect.ReasonTooLongLived, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			c["exp"] = h.clock.Now().Add(time.Hour).Unix()
			return connectHS256(h, c, f.a.secret)
		}),
		connectContextAttack("iat a year ahead, exp ten years ahead", connect.ReasonIssuedInFuture, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			c["iat"] = h.clock.Now().AddDate(1, 0, 0).Unix()
			c["exp"] = h.clock.Now().AddDate(10, 0, 0).Unix()
			return connectHS256(h, c, f.a.secret)
		}),
		connectContextAttack("context token issued 16 minutes ago", connect.ReasonTooLongLived, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			c["iat"] = h.clock.Now().Add(-16 * time.Minute).Unix()
			return connectHS256(h, c, f.a.secret)
		}),
		{name: "page token living a day", reason: connect.ReasonTooLongLived, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			c := h.siteClaims(f.a, http.MethodGet, "/admin")
			c["exp"] = h.clock.Now().Add(24 * time.Hour).Unix()
			token := connectHS256(h, c, f.a.secret)
			return connectRequest(http.MethodGet, "/admin", nil, token), token
		}},
		connectInstallAttack("install token living an hour", connect.ReasonTooLongLived, withClaims(func(h *connectHarness, c jwt.MapClaims) {
			c["exp"] = h.clock.Now().Add(time.Hour).Unix()
		})),
		connectInstallAttack("install token issued in the future", connect.ReasonIssuedInFuture, withClaims(func(h *connectHarness, c jwt.MapClaims) {
			c["iat"] = h.clock.Now().Add(time.Hour).Unix()
			c["exp"] = h.clock.Now().Add(time.Hour + time.Minute).Unix()
		})),
		connectContextAttack("not valid yet", connect.ReasonNotYetValid, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			c["nbf"] = h.clock.Now().Add(5 * time.Minute).Unix()
			return connectHS256(h, c, f.a.secret)
		}),

		// Issuers and secrets.
		connectContextAttack("unknown iss", "unknown_site", func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			c["iss"] = "no-such-client"
			return connectHS256(h, c, f.a.secret)
		}),
		connectContextAttack("iss with a NUL", connect.ReasonBadIss, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			c["iss"] = f.a.clientKey + "\x00"
			return connectHS256(h, c, f.a.secret)
		}),
		connectContextAttack("iss with an invalid UTF-8 byte", connect.ReasonBadIss, func(h *connectHarness, f *connectAttackFixture) string {
			// Written by hand: a JSON encoder would replace the byte.
			return connectRawHS256(h, []byte(`{"iss":"`+f.a.clientKey+"\xff"+`","sub":"admin-1","qsh":"context-qsh","iat":`+
				strconv.FormatInt(h.clock.Now().Unix(), 10)+`,"exp":`+strconv.FormatInt(h.clock.Now().Add(time.Minute).Unix(), 10)+`}`), f.a.secret)
		}),
		connectContextAttack("iss with a space", connect.ReasonBadIss, func(h *connectHarness, f *connectAttackFixture) string {
			c := h.contextClaims(f.a, "admin-1")
			c["iss"] = "no such client"
			return connectHS256(h, c, f.a.secret)
		}),
		connectContextAttack("sub with a NUL", connect.ReasonBadSub, func(h *connectHarness, f *connectAttackFixture) string {
			return connectHS256(h, h.contextClaims(f.a, "admin-1\x00"), f.a.secret)
		}),
		connectContextAttack("site A's iss signed with site B's secret", connect.ReasonBadSignature, func(h *connectHarness, f *connectAttackFixture) string {
			return connectHS256(h, h.contextClaims(f.a, "admin-1"), f.b.secret)
		}),
		{name: "disabled for A signed with B's secret", reason: connect.ReasonBadSignature, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			token := connectHS256(h, h.siteClaims(f.a, http.MethodPost, "/lifecycle/disabled"), f.b.secret)
			return connectRequest(http.MethodPost, "/lifecycle/disabled", connectLifecycleBody(f.a, "disabled"), token), token
		}},
		{name: "disabled for A with B's own token", reason: connect.ReasonBadIss, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			token := connectHS256(h, h.siteClaims(f.b, http.MethodPost, "/lifecycle/disabled"), f.b.secret)
			return connectRequest(http.MethodPost, "/lifecycle/disabled", connectLifecycleBody(f.a, "disabled"), token), token
		}},
		{name: "uninstall signed with the shared secret", reason: connect.ReasonBadAlg, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			token := h.signHMAC(h.installClaims(f.a.clientKey, http.MethodPost, "/lifecycle/uninstalled"), jwt.SigningMethodHS256, []byte(f.a.secret), connectKid)
			return connectRequest(http.MethodPost, "/lifecycle/uninstalled", connectLifecycleBody(f.a, "uninstalled"), token), token
		}},
		connectContextAttack("an uninstalled site", "uninstalled_site", func(h *connectHarness, f *connectAttackFixture) string {
			return connectHS256(h, h.contextClaims(f.u, "admin-1"), f.uSecret)
		}),
		{name: "enabled for an uninstalled site", reason: "uninstalled_site", build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			token := connectHS256(h, h.siteClaims(f.u, http.MethodPost, "/lifecycle/enabled"), f.uSecret)
			return connectRequest(http.MethodPost, "/lifecycle/enabled", connectLifecycleBody(f.u, "enabled"), token), token
		}},
		connectContextAttack("old secret after reinstall", connect.ReasonBadSignature, func(h *connectHarness, f *connectAttackFixture) string {
			return connectHS256(h, h.contextClaims(f.r, "admin-1"), f.rOld)
		}),

		// The site's baseUrl.
		{name: "baseUrl outside the trusted hosts", reason: connect.ReasonUntrustedSite, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			return connectUntrustedInstall(h, f, "https://evil.example.com")
		}},
		{name: "baseUrl on a look-alike host", reason: connect.ReasonUntrustedSite, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			return connectUntrustedInstall(h, f, "https://evilatlassian.net")
		}},
		{name: "baseUrl over plain http", reason: connect.ReasonUntrustedSite, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			return connectUntrustedInstall(h, f, "http://a.atlassian.net")
		}},
		{name: "baseUrl an https IP literal", reason: connect.ReasonUntrustedSite, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			return connectUntrustedInstall(h, f, "https://"+h.jira.Host())
		}},
		{name: "baseUrl on another loopback port", reason: connect.ReasonUntrustedSite, build: func(h *connectHarness, f *connectAttackFixture) (*http.Request, string) {
			return connectUntrustedInstall(h, f, "http://127.0.0.1:1")
		}},
	}
}

// untrustedInstall is a validly signed install of a new site whose baseUrl
// is not trusted.
func connectUntrustedInstall(h *connectHarness, f *connectAttackFixture, baseURL string) (*http.Request, string) {
	const target = "/lifecycle/installed"
	evil := *f.a
	evil.clientKey = "evil-client"
	evil.baseURL = baseURL
	atl, _ := apptest.RSAKeys(h.t)
	token := h.signRS256(h.installClaims(evil.clientKey, http.MethodPost, target), connectKid, atl)
	return connectRequest(http.MethodPost, target, connectLifecycleBody(&evil, "installed"), token), token
}

// TestConnectAttacks sends every refused request of the attack table
// through the whole App: each is a 401 with a JSON error that does not
// carry the token, counted under the expected reason, and leaves the sites
// table exactly as it was.
func TestConnectAttacks(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newConnectHarness(t, b)
		if err := h.atl.FailInstallKey("boom", http.StatusInternalServerError); err != nil {
			t.Fatal(err)
		}
		if err := h.atl.HangInstallKey("hang"); err != nil {
			t.Fatal(err)
		}
		h.jira.AddAdmin("admin-1")
		h.wiki.AddAdmin("admin-1")

		f := &connectAttackFixture{a: h.newSite(h.jira), b: h.newSite(h.wiki), u: h.newSite(h.jira), r: h.newSite(h.jira)}
		for _, s := range []*connectSite{f.a, f.b, f.u, f.r} {
			h.mustInstall(s)
		}
		f.uSecret = f.u.secret
		connectWantStatus(t, h.uninstall(f.u), http.StatusNoContent, "uninstall U")
		// Cache R under its old secret before the reinstall.
		connectWantStatus(t, h.adminSite(nil, f.r, "admin-1", f.r.secret), http.StatusOK, "R before reinstall")
		f.rOld = h.reinstall(nil, f.r)
		// The valid forms of what the attacks bend are accepted.
		connectWantStatus(t, h.adminSite(nil, f.a, "admin-1", f.a.secret), http.StatusOK, "A with its own secret")
		connectWantStatus(t, h.adminSite(nil, f.b, "admin-1", f.b.secret), http.StatusOK, "B with its own secret")
		connectWantStatus(t, h.adminSite(nil, f.r, "admin-1", f.r.secret), http.StatusOK, "R with its new secret")

		for _, tc := range connectAttacks() {
			t.Run(tc.name, func(t *testing.T) {
				req, token := tc.build(h, f)
				before, failures := h.snapshot(), h.jwtFailures()
				w := h.serve(nil, req)
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401; body %s", w.Code, w.Body)
				}
				msg := connectErrorOf(t, w)
				if strings.ContainsAny(msg, "\r\n") {
					t.Errorf("error %q is not one line", msg)
				}
				if connectLeaksToken(w.Body.String(), token) {
					t.Errorf("the answer carries the token: %s", w.Body)
				}
				if after := h.snapshot(); !connectEqualRows(before, after) {
					t.Errorf("the sites table changed:\nbefore %v\nafter  %v", before, after)
				}
				if got := h.jwtFailures(); got[tc.reason] != failures[tc.reason]+1 {
					t.Errorf("jwt failures %v → %v: want one more %q (answer %q)", failures, got, tc.reason, msg)
				}
			})
		}

		// Nothing but the known kids reached the key server: a kid with
		// "/", ".." or "%" never becomes part of a URL.
		for _, path := range h.atl.InstallKeyRequests() {
			if !slices.Contains([]string{"/" + connectKid, "/unknown", "/boom", "/hang"}, path) {
				t.Errorf("key server was asked for %q", path)
			}
		}

		// Within the leeway is accepted, at both kinds of token.
		c := h.contextClaims(f.a, "admin-1")
		c["exp"] = h.clock.Now().Add(-29 * time.Second).Unix()
		w := h.serve(nil, connectRequest(http.MethodGet, "/api/admin/site", nil, connectHS256(h, c, f.a.secret)))
		connectWantStatus(t, w, http.StatusOK, "context token 29 s past exp")
		ic := h.installClaims(f.a.clientKey, http.MethodPost, "/lifecycle/installed")
		ic["exp"] = h.clock.Now().Add(-29 * time.Second).Unix()
		atl, _ := apptest.RSAKeys(t)
		w = h.serve(nil, connectRequest(http.MethodPost, "/lifecycle/installed", connectLifecycleBody(f.a, "installed"), h.signRS256(ic, connectKid, atl)))
		connectWantStatus(t, w, http.StatusNoContent, "install token 29 s past exp")
		// An aud array holding ours is accepted too.
		ic = h.installClaims(f.a.clientKey, http.MethodPost, "/lifecycle/installed")
		ic["aud"] = []string{"https://other.test", connectBaseURL}
		w = h.serve(nil, connectRequest(http.MethodPost, "/lifecycle/installed", connectLifecycleBody(f.a, "installed"), h.signRS256(ic, connectKid, atl)))
		connectWantStatus(t, w, http.StatusNoContent, "install with aud array holding ours")
		// The jwt query parameter is accepted alone (iframe pages).
		token := connectHS256(h, h.siteClaims(f.a, http.MethodGet, "/admin?a=1"), f.a.secret)
		connectWantStatus(t, h.serve(nil, connectRequest(http.MethodGet, "/admin?a=1&jwt="+token, nil, "")), http.StatusForbidden, "query token of a non-admin on /admin")
	})
}

// leaksToken reports whether text holds the token or its signature.
func connectLeaksToken(text, token string) bool {
	if token == "" {
		return false
	}
	sig := token[strings.LastIndexByte(token, '.')+1:]
	return strings.Contains(text, token) || sig != "" && strings.Contains(text, sig)
}

// TestConnectLifecycleBadBodies: what a client sends wrongly is a 4xx JSON
// error, never a 500, and stores nothing.
func TestConnectLifecycleBadBodies(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newConnectHarness(t, b)
		s := h.newSite(h.jira)
		h.mustInstall(s)
		atl, _ := apptest.RSAKeys(t)
		signed := func(path string) string {
			return h.signRS256(h.installClaims(s.clientKey, http.MethodPost, path), connectKid, atl)
		}
		short := *s
		short.secret = "short"
		tests := []struct {
			name        string
			path        string
			body        string
			contentType string
			chunked     bool
			want        []int
		}{
			{name: "not JSON", path: "/lifecycle/installed", body: "clientKey=x", want: []int{400}},
			{name: "truncated JSON", path: "/lifecycle/installed", body: `{"clientKey":`, want: []int{400}},
			{name: "empty", path: "/lifecycle/installed", body: "", want: []int{400}},
			{name: "array", path: "/lifecycle/uninstalled", body: `[1,2]`, want: []int{400}},
			{name: "wrong type", path: "/lifecycle/installed", body: `{"clientKey": 12}`, want: []int{400}},
			{name: "trailing data", path: "/lifecycle/installed", body: string(connectLifecycleBody(s, "installed")) + `{}`, want: []int{400}},
			{name: "form content type", path: "/lifecycle/installed", body: string(connectLifecycleBody(s, "installed")), contentType: "application/x-www-form-urlencoded", want: []int{400}},
			{name: "no clientKey", path: "/lifecycle/installed", body: `{"baseUrl":"` + s.baseURL + `","sharedSecret":"` + s.secret + `"}`, want: []int{400}},
			{name: "no baseUrl", path: "/lifecycle/uninstalled", body: `{"clientKey":"` + s.clientKey + `"}`, want: []int{400}},
			{name: "eventType of another callback", path: "/lifecycle/installed", body: string(connectLifecycleBody(s, "uninstalled")), want: []int{400}},
			{name: "another app's key", path: "/lifecycle/installed", body: strings.Replace(string(connectLifecycleBody(s, "installed")), connectAppKey, "other-app", 1), want: []int{400}},
			{name: "field too long", path: "/lifecycle/installed", body: connectWithField(connectLifecycleBody(s, "installed"), "description", strings.Repeat("x", 3000)), want: []int{400}},
			{name: "short shared secret", path: "/lifecycle/installed", body: string(connectLifecycleBody(&short, "installed")), want: []int{400}},
			{name: "clientKey with a NUL", path: "/lifecycle/installed", body: connectWithField(connectLifecycleBody(s, "installed"), "clientKey", s.clientKey+"\x00"), want: []int{400}},
			{name: "clientKey with a space", path: "/lifecycle/uninstalled", body: connectWithField(connectLifecycleBody(s, "uninstalled"), "clientKey", "a b"), want: []int{400}},
			{name: "clientKey not ASCII", path: "/lifecycle/installed", body: connectWithField(connectLifecycleBody(s, "installed"), "clientKey", "clé"), want: []int{400}},
			{name: "description with a NUL", path: "/lifecycle/installed", body: connectWithField(connectLifecycleBody(s, "installed"), "description", "a\x00b"), want: []int{400}},
			{name: "displayUrl with a NUL", path: "/lifecycle/installed", body: connectWithField(connectLifecycleBody(s, "installed"), "displayUrl", s.baseURL+"\x00"), want: []int{400}},
			{name: "invalid UTF-8 in a field", path: "/lifecycle/installed", body: strings.Replace(string(connectLifecycleBody(s, "installed")), "test site", "test \xff\xfe site", 1), want: []int{400}},
			{name: "NUL in the baseUrl", path: "/lifecycle/uninstalled", body: connectWithField(connectLifecycleBody(s, "uninstalled"), "baseUrl", s.baseURL+"\x00"), want: []int{400, 401}},
			{name: "over the body limit", path: "/lifecycle/installed", body: connectWithField(connectLifecycleBody(s, "installed"), "description", strings.Repeat("x", 2<<20)), want: []int{413}},
			{name: "over the body limit, chunked", path: "/lifecycle/installed", body: connectWithField(connectLifecycleBody(s, "installed"), "description", strings.Repeat("x", 2<<20)), chunked: true, want: []int{413, 400}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := h.snapshot()
				req := connectRequest(http.MethodPost, tc.path, []byte(tc.body), signed(tc.path))
				if tc.contentType != "" {
					req.Header.Set("Content-Type", tc.contentType)
				}
				if tc.chunked {
					req.ContentLength = -1
				}
				w := h.serve(nil, req)
				if !slices.Contains(tc.want, w.Code) {
					t.Fatalf("status %d, want %v; body %.300s", w.Code, tc.want, w.Body)
				}
				connectErrorOf(t, w)
				if after := h.snapshot(); !connectEqualRows(before, after) {
					t.Errorf("the sites table changed:\nbefore %v\nafter  %v", before, after)
				}
			})
		}
	})
}

// withField sets one field of a JSON object.
func connectWithField(body []byte, field, value string) string {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		panic(err)
	}
	m[field] = value
	out, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(out)
}

// TestConnectAdminCheck: /api/admin/site asks the site, server side,
// whether the caller is an admin, caches the answer for at most 60 s, drops
// it on reinstall, and turns a site that cannot answer into a 503.
func TestConnectAdminCheck(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newConnectHarness(t, b)
		jira := h.newSite(h.jira)
		h.mustInstall(jira)
		h.jira.AddAdmin("admin-1")

		// An admin gets the site's public facts and nothing secret.
		w := h.adminSite(nil, jira, "admin-1", jira.secret)
		connectWantStatus(t, w, http.StatusOK, "admin")
		if strings.Contains(w.Body.String(), jira.secret) || strings.Contains(strings.ToLower(w.Body.String()), "secret") {
			t.Fatalf("the answer carries the secret: %s", w.Body)
		}
		stored := h.mustState(jira, models.SiteInstalled)
		want := connectAdminBody{ID: stored.ID, BaseURL: jira.baseURL, DisplayURL: jira.baseURL, ProductType: "jira", State: "installed",
			InstalledAt: stored.InstalledAt, InstallationID: jira.installationID, CloudID: jira.cloudID}
		if got := connectDecodeAdmin(t, w); got != want {
			t.Fatalf("GET /api/admin/site = %+v, want %+v", got, want)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		if n := h.jira.TotalRequests(); n != 1 {
			t.Fatalf("the site was asked %d times, want 1", n)
		}

		// Cached: a second call within 60 s asks nothing; after 60 s it asks again.
		h.clock.Advance(59 * time.Second)
		connectWantStatus(t, h.adminSite(nil, jira, "admin-1", jira.secret), http.StatusOK, "admin again")
		if n := h.jira.TotalRequests(); n != 1 {
			t.Fatalf("a second call within 60 s asked the site (%d calls)", n)
		}
		h.clock.Advance(2 * time.Second)
		connectWantStatus(t, h.adminSite(nil, jira, "admin-1", jira.secret), http.StatusOK, "admin after 61 s")
		if n := h.jira.TotalRequests(); n != 2 {
			t.Fatalf("after 61 s the site was asked %d times in all, want 2", n)
		}

		// A non-admin is refused, as JSON.
		w = h.adminSite(nil, jira, "user-1", jira.secret)
		connectWantStatus(t, w, http.StatusForbidden, "non-admin")
		connectErrorOf(t, w)
		if n := h.jira.TotalRequests(); n != 3 {
			t.Fatalf("calls %d, want 3", n)
		}

		// A reinstall drops the cached answers: the next call asks again,
		// signed with the new secret (the fake accepts only that one).
		h.reinstall(nil, jira)
		connectWantStatus(t, h.adminSite(nil, jira, "admin-1", jira.secret), http.StatusOK, "admin after reinstall")
		if n := h.jira.TotalRequests(); n != 4 {
			t.Fatalf("after a reinstall the cached answer was used (calls %d, want 4)", n)
		}

		// A site that fails or hangs is a 503, not a 500, and not cached.
		for _, fault := range []fakeatlassian.Fault{{Status: http.StatusInternalServerError}, {Hang: true}} {
			h.clock.Advance(61 * time.Second)
			h.jira.Inject(fault)
			w = h.adminSite(nil, jira, "admin-1", jira.secret)
			connectWantStatus(t, w, http.StatusServiceUnavailable, "site failing")
			connectErrorOf(t, w)
			h.jira.ClearFaults()
			connectWantStatus(t, h.adminSite(nil, jira, "admin-1", jira.secret), http.StatusOK, "site back")
		}

		// Confluence under /wiki: the fake checks the qsh with /wiki stripped.
		h.wiki.AddAdmin("admin-2")
		wiki := h.newSite(h.wiki)
		h.mustInstall(wiki)
		w = h.adminSite(nil, wiki, "admin-2", wiki.secret)
		connectWantStatus(t, w, http.StatusOK, "Confluence admin")
		got := connectDecodeAdmin(t, w)
		if d := cmp.Diff(map[string]string{"baseUrl": h.wiki.BaseURL(), "productType": "confluence"}, map[string]string{"baseUrl": got.BaseURL, "productType": got.ProductType}); d != "" {
			t.Fatalf("Confluence site (-want +got):\n%s", d)
		}
		connectWantStatus(t, h.adminSite(nil, wiki, "user-2", wiki.secret), http.StatusForbidden, "Confluence non-admin")
		if n := h.wiki.TotalRequests(); n != 2 {
			t.Fatalf("Confluence asked %d times, want 2", n)
		}
		// Each site's answers are its own: admin-2 of Confluence is no
		// admin of the Jira site.
		connectWantStatus(t, h.adminSite(nil, jira, "admin-2", jira.secret), http.StatusForbidden, "Confluence admin on Jira")
	})
}

// TestConnectAdminPage: GET /admin with a URL-bound token renders the page
// for an admin, framable only by the site that opened it, and refuses
// others.
func TestConnectAdminPage(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newConnectHarness(t, b)
		s := h.newSite(h.jira)
		h.mustInstall(s)
		h.jira.AddAdmin("admin-1")
		page := func(sub string) *httptest.ResponseRecorder {
			const target = "/admin?lic=active&xdm_e=https%3A%2F%2Fx.atlassian.net"
			c := h.siteClaims(s, http.MethodGet, target)
			c["sub"] = sub
			return h.serve(nil, connectRequest(http.MethodGet, target+"&jwt="+connectHS256(h, c, s.secret), nil, ""))
		}

		w := page("admin-1")
		connectWantStatus(t, w, http.StatusOK, "admin page")
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type %q", ct)
		}
		if !strings.Contains(w.Body.String(), `<script src="https://connect-cdn.atl-paas.net/all.js"`) {
			t.Errorf("the page does not load all.js:\n%s", w.Body)
		}
		if xfo := w.Header().Values("X-Frame-Options"); len(xfo) != 0 {
			t.Errorf("X-Frame-Options %q would stop Atlassian from framing the page", xfo)
		}
		frameAncestors := func(csp string) []string {
			var ancestors []string
			for directive := range strings.SplitSeq(csp, ";") {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(directive), "frame-ancestors "); ok {
					ancestors = strings.Fields(rest)
				}
			}
			return ancestors
		}
		csp := w.Header().Get("Content-Security-Policy")
		ancestors := frameAncestors(csp)
		// Only this site's origin: not 'self', not the other trusted hosts
		// (the fake Confluence is one), not a wildcard.
		if wantAncestors := []string{h.jira.Origin()}; !slices.Equal(ancestors, wantAncestors) {
			t.Errorf("frame-ancestors %q, want %q (CSP %q)", ancestors, wantAncestors, csp)
		}
		// Another site's admin page names that site's origin instead.
		wiki := h.newSite(h.wiki)
		h.mustInstall(wiki)
		h.wiki.AddAdmin("admin-1")
		const wikiTarget = "/admin?lic=active"
		wc := h.siteClaims(wiki, http.MethodGet, wikiTarget)
		wc["sub"] = "admin-1"
		ww := h.serve(nil, connectRequest(http.MethodGet, wikiTarget+"&jwt="+connectHS256(h, wc, wiki.secret), nil, ""))
		connectWantStatus(t, ww, http.StatusOK, "Confluence admin page")
		if got := frameAncestors(ww.Header().Get("Content-Security-Policy")); !slices.Equal(got, []string{h.wiki.Origin()}) {
			t.Errorf("Confluence site's frame-ancestors %q, want %s only", got, h.wiki.Origin())
		}
		if !strings.Contains(csp, "script-src 'self' https://connect-cdn.atl-paas.net") {
			t.Errorf("CSP %q does not allow all.js", csp)
		}
		if d := cmp.Diff(map[string]any{"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Strict-Transport-Security a year": true},
			map[string]any{"Referrer-Policy": w.Header().Get("Referrer-Policy"), "X-Content-Type-Options": w.Header().Get("X-Content-Type-Options"),
				"Strict-Transport-Security a year": strings.HasPrefix(w.Header().Get("Strict-Transport-Security"), "max-age=31536000")}); d != "" {
			t.Errorf("security headers (-want +got):\n%s", d)
		}
		if strings.Contains(w.Body.String(), s.secret) {
			t.Error("the page carries the shared secret")
		}

		w = page("user-1")
		connectWantStatus(t, w, http.StatusForbidden, "non-admin on the admin page")
		connectErrorOf(t, w)
		if w.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("a refusal is framable: X-Frame-Options %q", w.Header().Get("X-Frame-Options"))
		}
		// Pages other than /admin may not be framed at all.
		w = h.serve(nil, connectRequest(http.MethodGet, "/atlassian-connect.json", nil, ""))
		if !strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") || w.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("descriptor framing headers: %v", w.Header())
		}
	})
}

// TestConnectDescriptorRoutes: the descriptor renders with the configured
// key and base URL, and every URL in it has a route.
func TestConnectDescriptorRoutes(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newConnectHarness(t, b)
		w := h.serve(nil, connectRequest(http.MethodGet, "/atlassian-connect.json", nil, ""))
		connectWantStatus(t, w, http.StatusOK, "descriptor")
		var d struct {
			Key            string `json:"key"`
			BaseURL        string `json:"baseUrl"`
			Authentication struct{ Type string }
			APIMigrations  map[string]bool `json:"apiMigrations"`
			Lifecycle      map[string]string
		}
		if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]any{"key": connectAppKey, "baseUrl": connectBaseURL, "authentication.type": "jwt",
			"apiMigrations.signed-install": true, "apiMigrations.context-qsh": true, "apiMigrations.gdpr": true},
			map[string]any{"key": d.Key, "baseUrl": d.BaseURL, "authentication.type": d.Authentication.Type,
				"apiMigrations.signed-install": d.APIMigrations["signed-install"], "apiMigrations.context-qsh": d.APIMigrations["context-qsh"], "apiMigrations.gdpr": d.APIMigrations["gdpr"]}); diff != "" {
			t.Fatalf("descriptor (-want +got):\n%s", diff)
		}
		for _, ev := range []string{"installed", "uninstalled", "enabled", "disabled"} {
			if d.Lifecycle[ev] != "/lifecycle/"+ev {
				t.Errorf("lifecycle %s = %q", ev, d.Lifecycle[ev])
			}
		}
		if strings.Contains(w.Body.String(), "{{") {
			t.Errorf("a placeholder is left: %s", w.Body)
		}

		urls, err := connect.DescriptorURLs(w.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		// Absolute URLs on our base URL (links.self, vendor.url) count too.
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for _, c := range v {
					walk(c)
				}
			case []any:
				for _, c := range v {
					walk(c)
				}
			case string:
				if rest, ok := strings.CutPrefix(v, connectBaseURL); ok && (rest == "" || rest[0] == '/') {
					urls = append(urls, "/"+strings.TrimPrefix(rest, "/"))
				}
			}
		}
		var doc any
		_ = json.Unmarshal(w.Body.Bytes(), &doc)
		walk(doc)
		if !slices.Contains(urls, "/admin") || !slices.Contains(urls, "/lifecycle/installed") {
			t.Fatalf("descriptor URLs %v miss /admin or the lifecycle", urls)
		}
		for _, u := range urls {
			path, _, _ := strings.Cut(u, "?")
			routed := false
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				w := h.serve(nil, connectRequest(method, path, nil, ""))
				if w.Code == http.StatusNotFound && strings.Contains(w.Body.String(), "no such route") {
					continue
				}
				if w.Code != http.StatusMethodNotAllowed {
					routed = true
				}
			}
			if !routed {
				t.Errorf("descriptor URL %s has no route", u)
			}
		}
		// The check itself can fail.
		if w := h.serve(nil, connectRequest(http.MethodGet, "/no-such-page", nil, "")); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "no such route") {
			t.Fatalf("an unknown path answers %d %s", w.Code, w.Body)
		}
	})
}

// TestConnectKeyRingCheckedAtOpen: an App refuses to start on a database
// whose sealed secrets its key ring cannot open (another key under the same
// ID, or the sealing key missing), and starts with a rotated ring that
// still holds the old key, whose sites keep working.
func TestConnectKeyRingCheckedAtOpen(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newConnectHarness(t, b)
		s := h.newSite(h.jira)
		h.jira.AddAdmin("admin-1")
		h.mustInstall(s)
		oldKeys := h.cfg.EncryptionKeys
		newKey := "e2e2:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
		sameIDOtherKey := "e2e1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))

		for name, keys := range map[string]string{
			"another key under the same ID": sameIDOtherKey,
			"the sealing key missing":       newKey,
		} {
			cfg := h.cfg
			cfg.EncryptionKeys = keys
			a, err := app.Open(context.Background(), cfg, app.Options{Now: h.clock.Now, DescriptorTemplate: h.tmpl})
			if err == nil {
				_ = a.Close()
				t.Fatalf("%s: App opened", name)
			}
			if strings.Contains(err.Error(), keys[5:]) {
				t.Fatalf("%s: the error shows the key: %v", name, err)
			}
		}

		h.cfg.EncryptionKeys = newKey + "," + oldKeys
		rotated := h.openApp()
		connectWantStatus(t, h.adminSite(rotated, s, "admin-1", s.secret), http.StatusOK, "site sealed under the old key, on a rotated ring")
	})
}
