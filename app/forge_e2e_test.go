package app_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"idbridge/app/apptest"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

const (
	forgeAppID = "ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a"
	forgeKid   = "forge-e2e-1"
)

// forgeHarness is a connectHarness whose App accepts Forge invocation
// tokens signed by an in-test JWKS.
type forgeHarness struct {
	*connectHarness
	jwks *apptest.ForgeJWKS
	key  *rsa.PrivateKey
}

func newForgeHarness(t *testing.T, b storetest.Backend, extraEnv ...string) *forgeHarness {
	t.Helper()
	_, key := apptest.RSAKeys(t) // not the install key: Forge signs with its own
	jwks := apptest.NewForgeJWKS(t, forgeKid, &key.PublicKey)
	h := newConnectHarness(t, b, append([]string{"IDBRIDGE_FORGE_APP_ID", forgeAppID, "IDBRIDGE_FORGE_JWKS_URL", jwks.URL()}, extraEnv...)...)
	return &forgeHarness{connectHarness: h, jwks: jwks, key: key}
}

// claims are those of a valid FIT for s's installation.
func (h *forgeHarness) claims(s *connectSite) apptest.ForgeClaims {
	return apptest.ForgeClaims{
		AppID: forgeAppID, InstallationID: s.installationID, CloudID: s.cloudID, SiteURL: s.baseURL,
		APIBaseURL: "https://api.atlassian.com/ex/" + s.product + "/" + s.cloudID,
		IssuedAt:   h.clock.Now(),
	}
}

func (h *forgeHarness) token(c apptest.ForgeClaims) string {
	tok := apptest.SignForgeToken(h.t, h.key, forgeKid, c)
	h.remember(tok)
	return tok
}

// systemToken is an app system token as Forge hands it (a JWT with exp).
func (h *forgeHarness) systemToken(exp time.Time) string {
	tok := apptest.SignJWT(h.t, jwt.SigningMethodHS256, jwt.MapClaims{"exp": exp.Unix(), "sub": "app"}, "", []byte("atlassian-side-secret-of-32-bytes!"))
	h.remember(tok)
	return tok
}

func forgeRequest(method, target string, body []byte, token string) *http.Request {
	var r *http.Request
	if body != nil {
		r = httptest.NewRequest(method, connectBaseURL+target, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, connectBaseURL+target, nil)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func forgeEvent(event string, s *connectSite) []byte {
	b, _ := json.Marshal(map[string]any{
		"eventType":          event,
		"id":                 strings.TrimPrefix(s.installationID, "ari:cloud:ecosystem::installation/"),
		"installerAccountId": "557058:installer",
		"app":                map[string]any{"id": "406d303d-0393-4ec4-ad7c-1435be94583a", "version": "9.0.0"},
		"context":            "ari:cloud:" + s.product + "::site/" + s.cloudID,
	})
	return b
}

// forgeLifecycle posts a Forge lifecycle event for s with a valid FIT and,
// when not empty, an app system token.
func (h *forgeHarness) forgeLifecycle(s *connectSite, event, systemToken string) *httptest.ResponseRecorder {
	h.t.Helper()
	r := forgeRequest(http.MethodPost, "/forge/lifecycle", forgeEvent(event, s), h.token(h.claims(s)))
	if systemToken != "" {
		r.Header.Set("x-forge-oauth-system", systemToken)
	}
	return h.serve(nil, r)
}

// forgeFailures reads idbridge_forge_token_failures_total by reason.
func (h *forgeHarness) forgeFailures() map[string]float64 {
	h.t.Helper()
	return h.forgeCounter(`idbridge_forge_token_failures_total{reason="`)
}

// forgeCounter reads a counter of /metrics by its one label, given the
// line's beginning up to the label's value.
func (h *forgeHarness) forgeCounter(prefix string) map[string]float64 {
	h.t.Helper()
	w := h.serve(nil, connectRequest(http.MethodGet, "/metrics", nil, ""))
	out := map[string]float64{}
	for line := range strings.SplitSeq(w.Body.String(), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		reason, value, _ := strings.Cut(rest, `"} `)
		n, _ := strconv.ParseFloat(value, 64)
		out[reason] = n
	}
	return out
}

// TestForgeInstalledLinksConnectSite: a site Connect installed earlier is
// linked by Forge's installed event (same cloud site and product), not
// duplicated; the FIT then authenticates as that site, and the app system
// token that came along is kept sealed.
func TestForgeInstalledLinksConnectSite(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newForgeHarness(t, b)
		s := h.newSite(h.jira)
		connectInstallation := s.installationID
		s.installationID = "" // an install before the app was registered with Forge
		h.mustInstall(s)
		before := h.mustState(s, models.SiteInstalled)

		// Unknown installation: refused, counted.
		s.installationID = connectInstallation
		w := h.serve(nil, forgeRequest(http.MethodGet, "/forge/site", nil, h.token(h.claims(s))))
		connectWantStatus(t, w, http.StatusUnauthorized, "FIT of an installation no site has")
		if h.forgeFailures()["unknown_site"] != 1 {
			t.Errorf("unknown_site not counted: %v", h.forgeFailures())
		}

		sys := h.systemToken(h.clock.Now().Add(15 * time.Minute))
		w = h.forgeLifecycle(s, models.ForgeEventInstalled, sys)
		connectWantStatus(t, w, http.StatusNoContent, "forge installed")
		after := h.mustState(s, models.SiteInstalled)
		if d := cmp.Diff(map[string]string{"id": before.ID, "installationId": connectInstallation, "cloudId": s.cloudID},
			map[string]string{"id": after.ID, "installationId": after.InstallationID, "cloudId": after.CloudID}); d != "" {
			t.Fatalf("forge installed did not link the Connect site (-want +got):\n%s", d)
		}
		var n int
		if err := h.app.Store().SQLDB().QueryRow(`SELECT count(*) FROM sites`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d sites (%v), want 1", n, err)
		}

		// The FIT now names the site.
		w = h.serve(nil, forgeRequest(http.MethodGet, "/forge/site", nil, h.token(h.claims(s))))
		connectWantStatus(t, w, http.StatusOK, "GET /forge/site")
		got := connectDecodeAdmin(t, w)
		if d := cmp.Diff(map[string]string{"id": before.ID, "installationId": connectInstallation}, map[string]string{"id": got.ID, "installationId": got.InstallationID}); d != "" {
			t.Errorf("GET /forge/site (-want +got):\n%s", d)
		}

		// The system token is stored sealed, with its expiry.
		st, err := h.app.Store().View(context.Background()).FindSystemToken(before.ID, h.clock.Now())
		if err != nil || st.Token != sys {
			t.Fatalf("system token: %v", err)
		}
		var raw []byte
		if err := h.app.Store().SQLDB().QueryRow(`SELECT system_token FROM forge_installations WHERE site_id = `+placeholder(h.app.Store().Dialect()), before.ID).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(sys)) || len(raw) == 0 {
			t.Errorf("system token stored in clear")
		}

		// A busy site: every call brings a fresh token, but the kept one
		// is replaced only once it nears its end (one write per lifetime).
		h.clock.Advance(time.Minute)
		r := forgeRequest(http.MethodGet, "/forge/site", nil, h.token(h.claims(s)))
		r.Header.Set("x-forge-oauth-system", h.systemToken(h.clock.Now().Add(15*time.Minute)))
		connectWantStatus(t, h.serve(nil, r), http.StatusOK, "GET /forge/site with a fresh system token")
		if st, err := h.app.Store().View(context.Background()).FindSystemToken(before.ID, h.clock.Now()); err != nil || st.Token != sys {
			t.Errorf("a token far from its end was replaced (%v)", err)
		}
		h.clock.Advance(11 * time.Minute) // the kept one has 3 minutes left
		newer := h.systemToken(h.clock.Now().Add(15 * time.Minute))
		r = forgeRequest(http.MethodGet, "/forge/site", nil, h.token(h.claims(s)))
		r.Header.Set("x-forge-oauth-system", newer)
		connectWantStatus(t, h.serve(nil, r), http.StatusOK, "GET /forge/site near the kept token's end")
		if st, err := h.app.Store().View(context.Background()).FindSystemToken(before.ID, h.clock.Now()); err != nil || st.Token != newer {
			t.Errorf("the token near its end was not replaced (%v)", err)
		}

		// Upgraded: fine, idempotent, still one site.
		connectWantStatus(t, h.forgeLifecycle(s, models.ForgeEventUpgraded, ""), http.StatusNoContent, "forge upgraded")
		if err := h.app.Store().SQLDB().QueryRow(`SELECT count(*) FROM sites`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d sites after upgraded (%v), want 1", n, err)
		}
		// Connect's admin API keeps working for the same site.
		h.jira.AddAdmin("admin-1")
		connectWantStatus(t, h.adminSite(nil, s, "admin-1", s.secret), http.StatusOK, "admin API after linking")

		// Uninstall (Connect's callback: Forge has none) deletes the system
		// token with the other secrets, and the FIT no longer names a site.
		connectWantStatus(t, h.uninstall(s), http.StatusNoContent, "uninstall")
		if _, err := h.app.Store().View(context.Background()).FindSystemToken(before.ID, h.clock.Now()); !models.IsNotFound(err) {
			t.Errorf("system token after uninstall: %v", err)
		}
		w = h.serve(nil, forgeRequest(http.MethodGet, "/forge/site", nil, h.token(h.claims(s))))
		connectWantStatus(t, w, http.StatusUnauthorized, "FIT of an uninstalled site")
		if h.forgeFailures()["uninstalled_site"] != 1 {
			t.Errorf("uninstalled_site not counted: %v", h.forgeFailures())
		}
	})
}

// TestForgeInstalledFirstThenConnect: Forge's installed event for a site
// no one knows makes one (keyed by its installationId until Connect's
// installed callback adopts it), and Connect's install then completes the
// same site rather than adding a second.
func TestForgeInstalledFirstThenConnect(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newForgeHarness(t, b)
		s := h.newSite(h.wiki)
		connectWantStatus(t, h.forgeLifecycle(s, models.ForgeEventInstalled, ""), http.StatusNoContent, "forge installed first")
		first, err := h.app.Store().View(context.Background()).FindSiteByInstallationID(s.installationID)
		if err != nil {
			t.Fatalf("site made by forge installed: %v", err)
		}
		if d := cmp.Diff(map[string]any{"baseUrl": s.baseURL, "productType": "confluence", "state": models.SiteInstalled},
			map[string]any{"baseUrl": first.BaseURL, "productType": first.ProductType, "state": first.State}); d != "" {
			t.Fatalf("site made by forge installed (-want +got):\n%s", d)
		}
		connectWantStatus(t, h.serve(nil, forgeRequest(http.MethodGet, "/forge/site", nil, h.token(h.claims(s)))), http.StatusOK, "FIT after forge installed")

		h.mustInstall(s)
		got := h.mustState(s, models.SiteInstalled)
		if d := cmp.Diff(map[string]any{"id": first.ID, "secret is the install's": true}, map[string]any{"id": got.ID, "secret is the install's": string(got.SharedSecret) == s.secret}); d != "" {
			t.Errorf("Connect install made another site (-want +got):\n%s", d)
		}
		var n int
		if err := h.app.Store().SQLDB().QueryRow(`SELECT count(*) FROM sites`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d sites (%v), want 1", n, err)
		}
	})
}

// TestForgeTokenAttacks: the attack table through HTTP; each a 401 with
// its reason counted in /metrics, and nothing stored.
func TestForgeTokenAttacks(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newForgeHarness(t, b)
		s := h.newSite(h.jira)
		h.mustInstall(s)
		atl, _ := apptest.RSAKeys(t)
		good := h.claims(s)
		with := func(f func(*apptest.ForgeClaims)) apptest.ForgeClaims { c := good; f(&c); return c }
		valid := h.token(good)
		cases := []struct {
			name, reason string
			req          *http.Request
		}{
			{"wrong alg (HS256 with the public key's bytes)", "bad_alg", forgeRequest(http.MethodGet, "/forge/site", nil,
				apptest.SignJWT(t, jwt.SigningMethodHS256, good.MapClaims(), forgeKid, []byte("forge-public-key-material-0123456789")))},
			{"alg none", "bad_alg", forgeRequest(http.MethodGet, "/forge/site", nil,
				apptest.SignJWT(t, jwt.SigningMethodNone, good.MapClaims(), forgeKid, jwt.UnsafeAllowNoneSignatureType))},
			{"wrong key", "bad_signature", forgeRequest(http.MethodGet, "/forge/site", nil, apptest.SignForgeToken(t, atl, forgeKid, good))},
			{"expired", "expired", forgeRequest(http.MethodGet, "/forge/site", nil,
				h.token(with(func(c *apptest.ForgeClaims) { c.IssuedAt = h.clock.Now().Add(-5 * time.Minute) })))},
			{"other app", "bad_aud", forgeRequest(http.MethodGet, "/forge/site", nil,
				h.token(with(func(c *apptest.ForgeClaims) { c.AppID = "ari:cloud:ecosystem::app/another" })))},
			{"other cloud", "site_mismatch", forgeRequest(http.MethodGet, "/forge/site", nil,
				h.token(with(func(c *apptest.ForgeClaims) { c.CloudID = "another-cloud" })))},
			{"token in query string", "token_in_query", httptest.NewRequest(http.MethodGet, connectBaseURL+"/forge/site?jwt="+valid, nil)},
			{"Connect scheme", "bad_auth_scheme", connectRequest(http.MethodGet, "/forge/site", nil, valid)},
			{"no token", "missing_token", forgeRequest(http.MethodGet, "/forge/site", nil, "")},
			{"lifecycle, wrong key", "bad_signature", forgeRequest(http.MethodPost, "/forge/lifecycle", forgeEvent(models.ForgeEventInstalled, s), apptest.SignForgeToken(t, atl, forgeKid, good))},
		}
		snap := h.snapshot()
		for _, tc := range cases {
			w := h.serve(nil, tc.req)
			connectWantStatus(t, w, http.StatusUnauthorized, tc.name)
			if strings.Contains(w.Body.String(), valid) {
				t.Errorf("%s: the answer quotes the token", tc.name)
			}
		}
		got := h.forgeFailures()
		want := map[string]float64{}
		for _, tc := range cases {
			want[tc.reason]++
		}
		for reason, n := range want {
			if got[reason] != n {
				t.Errorf("reason %s counted %v times, want %v (all: %v)", reason, got[reason], n, got)
			}
		}

		// Unknown-kid flood: every token refused, at most one fetch of the
		// key set (the clock stands still), the good token still accepted.
		fetches := h.jwks.Fetches()
		for i := range 100 {
			tok := apptest.SignJWT(t, jwt.SigningMethodRS256, good.MapClaims(), fmt.Sprintf("flood-%d", i), h.key)
			connectWantStatus(t, h.serve(nil, forgeRequest(http.MethodGet, "/forge/site", nil, tok)), http.StatusUnauthorized, "unknown kid")
		}
		if d := h.jwks.Fetches() - fetches; d > 1 {
			t.Errorf("%d key-set fetches for 100 unknown kids, want at most 1", d)
		}
		if h.forgeFailures()["unknown_kid"] != 100 {
			t.Errorf("unknown_kid counted %v times, want 100", h.forgeFailures()["unknown_kid"])
		}
		// Connect's install carried the installationId: the FIT names the site.
		connectWantStatus(t, h.serve(nil, forgeRequest(http.MethodGet, "/forge/site", nil, valid)), http.StatusOK, "valid FIT")
		if diff := snapshotDiff(snap, h.snapshot()); diff != "" {
			t.Errorf("refused requests changed the sites: %s", diff)
		}
	})
}

func snapshotDiff(a, b []map[string]string) string {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		return string(ja) + " → " + string(jb)
	}
	return ""
}

// placeholder is the first bind parameter in the dialect's SQL.
func placeholder(dialect string) string {
	if dialect == store.Postgres {
		return "$1"
	}
	return "?"
}

// TestNothingWaitsForEnabled (issue 15, item 5): once an app is registered
// with Forge, Atlassian sends no enabled or disabled callback. A site that
// is installed (signed Connect install, then Forge's installed event) and
// never receives enabled must have every feature working: the admin page,
// every read of the admin API (all GET operations of openapi.json), user
// provisioning end to end over SCIM, the customer portal's entry, and the
// Forge route.
func TestNothingWaitsForEnabled(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newForgeHarness(t, b)
		s := h.newSite(h.jira)
		h.jira.AddAdmin("admin-1")
		h.mustInstall(s) // no enabled follows, ever
		connectWantStatus(t, h.forgeLifecycle(s, models.ForgeEventInstalled, ""), http.StatusNoContent, "forge installed")
		site := h.mustState(s, models.SiteInstalled)

		ctxToken := func() string {
			tok := h.signHMAC(h.contextClaims(s, "admin-1"), jwt.SigningMethodHS256, []byte(s.secret), "")
			h.remember(tok)
			return tok
		}
		call := func(method, target, body string) *httptest.ResponseRecorder {
			var b []byte
			if body != "" {
				b = []byte(body)
			}
			return h.serve(nil, connectRequest(method, target, b, ctxToken()))
		}

		// The admin page, with a URL-bound token.
		page := h.signHMAC(h.siteClaims(s, http.MethodGet, "/admin"), jwt.SigningMethodHS256, []byte(s.secret), "")
		h.jira.AddAdmin("557058:user")
		connectWantStatus(t, h.serve(nil, connectRequest(http.MethodGet, "/admin", nil, page)), http.StatusOK, "GET /admin")

		// Every read of the admin API.
		var doc struct {
			Paths map[string]map[string]json.RawMessage `json:"paths"`
		}
		w := h.serve(nil, connectRequest(http.MethodGet, "/api/admin/openapi.json", nil, ""))
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		reads := 0
		for path, ops := range doc.Paths {
			if _, ok := ops["get"]; !ok || strings.Contains(path, "{") || path == "/api/admin/openapi.json" {
				continue
			}
			reads++
			if w := call(http.MethodGet, path, ""); w.Code != http.StatusOK {
				t.Errorf("GET %s on a site that never got enabled: %d %s", path, w.Code, w.Body)
			}
		}
		if reads < 10 {
			t.Fatalf("only %d admin reads found in openapi.json", reads)
		}

		// Provisioning end to end: a token, a user over SCIM, the directory.
		w = call(http.MethodPost, "/api/admin/provisioning/token", "{}")
		connectWantStatus(t, w, http.StatusCreated, "provisioning token")
		var tok struct {
			Token string `json:"token"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &tok)
		h.remember(tok.Token)
		scim := func(method, target, body string) int {
			r := httptest.NewRequest(method, connectBaseURL+target, strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer "+tok.Token)
			if body != "" {
				r.Header.Set("Content-Type", "application/scim+json")
			}
			return h.serve(nil, r).Code
		}
		base := "/scim/v2/" + site.ID
		if code := scim(http.MethodPost, base+"/Users", `{"userName":"no-enabled@example.com","active":true}`); code != http.StatusCreated {
			t.Errorf("SCIM create user: %d", code)
		}
		if code := scim(http.MethodGet, base+"/Users", ""); code != http.StatusOK {
			t.Errorf("SCIM list users: %d", code)
		}

		// The portal's entry and the Forge route.
		if w := h.serve(nil, connectRequest(http.MethodGet, "/portal/"+site.ID+"/login", nil, "")); w.Code >= 500 || w.Code == http.StatusForbidden || w.Code == http.StatusConflict {
			t.Errorf("portal login: %d %s", w.Code, w.Body)
		}
		connectWantStatus(t, h.serve(nil, forgeRequest(http.MethodGet, "/forge/site", nil, h.token(h.claims(s)))), http.StatusOK, "GET /forge/site")

		h.mustState(s, models.SiteInstalled)
		if f := h.jwtFailures(); len(f) != 0 {
			t.Errorf("Connect JWTs refused along the way: %v", f)
		}
	})
}

// adminWithSCIMToken returns a caller of the site's admin API as the
// admin (a fresh context JWT each call) and a new SCIM token of the site.
func (h *forgeHarness) adminWithSCIMToken(t *testing.T, s *connectSite, adminID string) (func(method, target, body string) *httptest.ResponseRecorder, string) {
	t.Helper()
	admin := func(method, target, body string) *httptest.ResponseRecorder {
		t.Helper()
		tok := h.signHMAC(h.contextClaims(s, adminID), jwt.SigningMethodHS256, []byte(s.secret), "")
		h.remember(tok)
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		return h.serve(nil, connectRequest(method, target, b, tok))
	}
	w := admin(http.MethodPost, "/api/admin/provisioning/token", "{}")
	connectWantStatus(t, w, http.StatusCreated, "provisioning token")
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || tok.Token == "" {
		t.Fatalf("provisioning token answer %s (%v)", w.Body, err)
	}
	h.remember(tok.Token)
	return admin, tok.Token
}

// TestForgeInstalledEnablesDisabledSite: a site whose app was disabled
// (Connect's disabled callback) before the app was registered with Forge
// gets no enabled callback ever again. Forge's installed event, which links
// the site, makes it installed again: SCIM writes are accepted (with the
// same token; the replica's cached "disabled" is dropped at the commit),
// the sync no longer says the app is disabled, and the shared secret still
// signs the admin API.
func TestForgeInstalledEnablesDisabledSite(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newForgeHarness(t, b)
		s := h.newSite(h.jira)
		installation := s.installationID
		s.installationID = "" // installed before the app was registered with Forge
		h.mustInstall(s)
		h.jira.AddAdmin("admin-1")
		site := h.mustState(s, models.SiteInstalled)
		admin, scimToken := h.adminWithSCIMToken(t, s, "admin-1")
		n := 0
		createUser := func() *httptest.ResponseRecorder {
			t.Helper()
			n++
			body := fmt.Sprintf(`{"userName":"user-%d@example.com","active":true}`, n)
			r := httptest.NewRequest(http.MethodPost, connectBaseURL+"/scim/v2/"+site.ID+"/Users", strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer "+scimToken)
			r.Header.Set("Content-Type", "application/scim+json")
			return h.serve(nil, r)
		}
		pausedReason := func() string {
			t.Helper()
			w := admin(http.MethodGet, "/api/admin/sync", "")
			connectWantStatus(t, w, http.StatusOK, "GET /api/admin/sync")
			var st struct {
				PausedReason *string `json:"pausedReason"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
				t.Fatal(err)
			}
			if st.PausedReason == nil {
				return ""
			}
			return *st.PausedReason
		}
		connectWantStatus(t, createUser(), http.StatusCreated, "SCIM create before disabled")

		connectWantStatus(t, h.toggle(s, "disabled", s.secret), http.StatusNoContent, "disabled")
		h.mustState(s, models.SiteDisabled)
		connectWantStatus(t, createUser(), http.StatusForbidden, "SCIM create while disabled")
		if r := pausedReason(); !strings.Contains(r, "disabled") {
			t.Errorf("sync of a disabled site: paused reason %q, want it to say disabled", r)
		}

		// The app is registered with Forge: no enabled will come. Forge's
		// installed event links the site and installs it again.
		s.installationID = installation
		connectWantStatus(t, h.forgeLifecycle(s, models.ForgeEventInstalled, ""), http.StatusNoContent, "forge installed")
		after := h.mustState(s, models.SiteInstalled)
		if d := cmp.Diff(map[string]any{"id": site.ID, "installationId": installation, "secret": s.secret, "installedAt": site.InstalledAt},
			map[string]any{"id": after.ID, "installationId": after.InstallationID, "secret": string(after.SharedSecret), "installedAt": after.InstalledAt}); d != "" {
			t.Errorf("forge installed changed more than the state (-want +got):\n%s", d)
		}
		connectWantStatus(t, createUser(), http.StatusCreated, "SCIM create after forge installed")
		if r := pausedReason(); strings.Contains(r, "disabled") {
			t.Errorf("sync after forge installed: paused reason %q still says disabled", r)
		}
		connectWantStatus(t, h.adminSite(nil, s, "admin-1", s.secret), http.StatusOK, "admin API with the same secret")
		if f := h.jwtFailures(); len(f) != 0 {
			t.Errorf("Connect JWTs refused along the way: %v", f)
		}
	})
}

// TestForgeSiteIgnoresStaleDisabled: a site whose Connect install carried
// an installationId is registered with Forge, so Atlassian sends it no
// enabled: a disabled state it has (left over, or a disabled that still
// arrived) is recorded but holds nothing back. SCIM writes are taken, the
// sync does not call it disabled, and the admin API shows it installed.
func TestForgeSiteIgnoresStaleDisabled(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newForgeHarness(t, b)
		s := h.newSite(h.jira)
		h.mustInstall(s) // with its installationId: registered with Forge
		h.jira.AddAdmin("admin-1")
		site := h.mustState(s, models.SiteInstalled)
		admin, scimToken := h.adminWithSCIMToken(t, s, "admin-1")

		connectWantStatus(t, h.toggle(s, "disabled", s.secret), http.StatusNoContent, "disabled")
		h.mustState(s, models.SiteDisabled) // recorded as received

		r := httptest.NewRequest(http.MethodPost, connectBaseURL+"/scim/v2/"+site.ID+"/Users", strings.NewReader(`{"userName":"stale@example.com","active":true}`))
		r.Header.Set("Authorization", "Bearer "+scimToken)
		r.Header.Set("Content-Type", "application/scim+json")
		connectWantStatus(t, h.serve(nil, r), http.StatusCreated, "SCIM create in a Forge-registered site with a stale disabled")

		w := admin(http.MethodGet, "/api/admin/sync", "")
		connectWantStatus(t, w, http.StatusOK, "GET /api/admin/sync")
		if strings.Contains(w.Body.String(), "disabled") {
			t.Errorf("sync status of a Forge-registered site says disabled: %s", w.Body)
		}
		w = admin(http.MethodGet, "/api/admin/site", "")
		connectWantStatus(t, w, http.StatusOK, "GET /api/admin/site")
		var got struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.State != string(models.SiteInstalled) {
			t.Errorf("GET /api/admin/site state %q (%v), want installed", got.State, err)
		}
	})
}

// TestForgeSystemTokenReadsNames (issue 15, item 4): the audit log's
// account names are read as the app, with the app system token Forge
// handed over, through the API gateway; no service account is configured,
// so nothing else could have answered. Once the token has expired, no
// call is made with it.
func TestForgeSystemTokenReadsNames(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		var sysToken atomic.Pointer[string]
		var calls atomic.Int64
		gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			if want := sysToken.Load(); want == nil || r.Header.Get("Authorization") != "Bearer "+*want || !strings.HasPrefix(r.URL.Path, "/ex/jira/") ||
				!strings.HasSuffix(r.URL.Path, "/rest/api/3/user") {
				http.Error(w, `{"errorMessages":["unauthorized"]}`, http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"accountId":%q,"displayName":"Name of %s"}`, r.URL.Query().Get("accountId"), r.URL.Query().Get("accountId"))
		}))
		t.Cleanup(gateway.Close)
		h := newForgeHarness(t, b, "IDBRIDGE_ATLASSIAN_API_URL", gateway.URL)
		s := h.newSite(h.jira)
		h.jira.AddAdmin("admin-1")
		h.mustInstall(s)
		sys := h.systemToken(h.clock.Now().Add(15 * time.Minute))
		sysToken.Store(&sys)
		connectWantStatus(t, h.forgeLifecycle(s, models.ForgeEventInstalled, sys), http.StatusNoContent, "forge installed")

		names := func() string {
			tok := h.signHMAC(h.contextClaims(s, "admin-1"), jwt.SigningMethodHS256, []byte(s.secret), "")
			w := h.serve(nil, connectRequest(http.MethodGet, "/api/admin/accounts?accountId=557058:someone", nil, tok))
			connectWantStatus(t, w, http.StatusOK, "account names")
			return w.Body.String()
		}
		if got := names(); !strings.Contains(got, "Name of 557058:someone") {
			t.Errorf("names with the system token: %s", got)
		}
		if calls.Load() != 1 {
			t.Errorf("%d gateway calls, want 1", calls.Load())
		}
		h.clock.Advance(16 * time.Minute)
		if got := names(); strings.Contains(got, "Name of") {
			t.Errorf("names after the token expired: %s", got)
		}
		if calls.Load() != 1 {
			t.Errorf("the expired token was used: %d gateway calls", calls.Load())
		}
	})
}

// TestForgeInstallationIDChanges: an installationId can change (a site URL
// change); Forge's installed event with the new one links to the site of
// the same cloud and product instead of making a second one.
func TestForgeInstallationIDChanges(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newForgeHarness(t, b)
		s := h.newSite(h.jira)
		h.mustInstall(s)
		// The Confluence site of the same cloud must not be taken over.
		wiki := h.newSite(h.wiki)
		wiki.cloudID = s.cloudID
		h.mustInstall(wiki)
		before := h.mustState(s, models.SiteInstalled)
		s.installationID = "ari:cloud:ecosystem::installation/" + apptest.RandomHex(t, 8)
		connectWantStatus(t, h.forgeLifecycle(s, models.ForgeEventInstalled, ""), http.StatusNoContent, "forge installed, new installation ID")
		after := h.mustState(s, models.SiteInstalled)
		if d := cmp.Diff(map[string]string{"id": before.ID, "installationId": s.installationID}, map[string]string{"id": after.ID, "installationId": after.InstallationID}); d != "" {
			t.Errorf("want the same site with the installation (-want +got):\n%s", d)
		}
		if got := h.mustState(wiki, models.SiteInstalled); got.InstallationID != wiki.installationID {
			t.Errorf("the Confluence site's installation changed to %q", got.InstallationID)
		}
		var n int
		if err := h.app.Store().SQLDB().QueryRow(`SELECT count(*) FROM sites`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d sites (%v), want 2", n, err)
		}
	})
}

// TestForgeAndConnectTakeNoOtherSite: the installationId in a Connect
// install's body is not covered by its token, so it adopts only a site
// Forge made first, never a site Connect installed; a late upgraded event
// does not bring an uninstalled site back (only installed does); an app
// system token claiming to live for weeks is not kept.
func TestForgeAndConnectTakeNoOtherSite(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newForgeHarness(t, b)
		victim := h.newSite(h.jira)
		h.mustInstall(victim)
		before := h.mustState(victim, models.SiteInstalled)

		// Another clientKey's install naming the victim's installationId.
		other := h.newSite(h.jira)
		other.installationID = victim.installationID
		if w := h.install(nil, other); w.Code >= 500 {
			t.Fatalf("install naming another site's installationId: %d %s", w.Code, w.Body)
		}
		after := h.mustState(victim, models.SiteInstalled)
		if d := cmp.Diff(map[string]any{"id": before.ID, "secret is the victim's": true, "baseUrl": before.BaseURL},
			map[string]any{"id": after.ID, "secret is the victim's": string(after.SharedSecret) == victim.secret, "baseUrl": after.BaseURL}); d != "" {
			t.Fatalf("the victim's site changed (-want +got):\n%s", d)
		}
		if got, err := h.storedSite(other); err == nil && got.ID == before.ID {
			t.Fatalf("the other clientKey took the victim's site %s", got.ID)
		}

		// A late upgraded event keeps an uninstalled site uninstalled.
		connectWantStatus(t, h.uninstall(victim), http.StatusNoContent, "uninstall")
		w := h.forgeLifecycle(victim, models.ForgeEventUpgraded, "")
		if w.Code >= 500 {
			t.Fatalf("upgraded after uninstall: %d %s", w.Code, w.Body)
		}
		h.mustState(victim, models.SiteUninstalled)
		// Forge's installed event is a new install: the site is back.
		connectWantStatus(t, h.forgeLifecycle(victim, models.ForgeEventInstalled, ""), http.StatusNoContent, "installed again")
		h.mustState(victim, models.SiteInstalled)

		// A system token that claims to live for 30 days is not kept.
		far := h.systemToken(h.clock.Now().Add(30 * 24 * time.Hour))
		connectWantStatus(t, h.forgeLifecycle(victim, models.ForgeEventUpgraded, far), http.StatusNoContent, "upgraded with a far token")
		if tok, err := h.app.Store().View(context.Background()).FindSystemToken(before.ID, h.clock.Now()); err == nil && tok != nil {
			t.Errorf("a system token expiring in 30 days was kept (expires %s)", tok.ExpiresAt)
		}
	})
}

// TestForgeOtherEnvironmentIsRefused: with IDBRIDGE_FORGE_ENVIRONMENT set,
// an installation of the app's other environments on the same cloud site
// (development or staging, which only the app's contributors can make) is
// refused before anything is looked up: its installed event links no site,
// its calls name none. The configured environment links as before.
func TestForgeOtherEnvironmentIsRefused(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newForgeHarness(t, b, "IDBRIDGE_FORGE_ENVIRONMENT", "production")
		s := h.newSite(h.jira)
		installation := s.installationID
		s.installationID = "" // installed under Connect before Forge
		h.mustInstall(s)
		before := h.mustState(s, models.SiteInstalled)
		s.installationID = installation

		event := func(env string) *httptest.ResponseRecorder {
			c := h.claims(s)
			c.Environment = env
			return h.serve(nil, forgeRequest(http.MethodPost, "/forge/lifecycle", forgeEvent(models.ForgeEventInstalled, s), h.token(c)))
		}
		connectWantStatus(t, event("DEVELOPMENT"), http.StatusUnauthorized, "installed event of the development environment")
		connectWantStatus(t, event("STAGING"), http.StatusUnauthorized, "installed event of the staging environment")
		if got := h.forgeFailures()["other_environment"]; got != 2 {
			t.Errorf("other_environment counted %v times, want 2: %v", got, h.forgeFailures())
		}
		if after := h.mustState(s, models.SiteInstalled); after.InstallationID != "" {
			t.Fatalf("another environment's installation was linked: %+v", after)
		}

		connectWantStatus(t, event("PRODUCTION"), http.StatusNoContent, "installed event of the production environment")
		after := h.mustState(s, models.SiteInstalled)
		if diff := cmp.Diff(map[string]string{"site": before.ID, "installation": installation},
			map[string]string{"site": after.ID, "installation": after.InstallationID}); diff != "" {
			t.Fatalf("the production installation did not link the Connect site (-want +got):\n%s", diff)
		}

		// The same token again is taken from the verified-token cache,
		// and /metrics says so.
		h.clock.Advance(time.Second) // another token than the event's
		c := h.claims(s)
		c.Environment = "PRODUCTION"
		tok := h.token(c)
		for range 3 {
			connectWantStatus(t, h.serve(nil, forgeRequest(http.MethodGet, "/forge/site", nil, tok)), http.StatusOK, "GET /forge/site")
		}
		got := h.forgeCounter(`idbridge_forge_tokens_accepted_total{how="`)
		if diff := cmp.Diff(map[string]float64{"verified": 2, "cached": 2}, map[string]float64{"verified": got["verified"], "cached": got["cached"]}); diff != "" {
			t.Errorf("accepted tokens: want 2 verified (the event's, the first GET) and 2 cached (-want +got):\n%s", diff)
		}
	})
}

// TestForgeAdminShowsSystemToken (issue 15, item 4): the admin API's site
// and the admin page say whether an app system token is held for the site
// and until when, or that it expired, and never show the token: none
// before Forge hands one over, held with its expiry after, expired once
// that has passed, none again once uninstall deleted it.
func TestForgeAdminShowsSystemToken(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newForgeHarness(t, b)
		s := h.newSite(h.jira)
		h.jira.AddAdmin("admin-1", "557058:user")
		h.mustInstall(s)

		type tokenBody struct {
			State     string     `json:"state"`
			ExpiresAt *time.Time `json:"expiresAt"`
		}
		var sys string
		site := func() tokenBody {
			t.Helper()
			tok := h.signHMAC(h.contextClaims(s, "admin-1"), jwt.SigningMethodHS256, []byte(s.secret), "")
			w := h.serve(nil, connectRequest(http.MethodGet, "/api/admin/service-account", nil, tok))
			connectWantStatus(t, w, http.StatusOK, "GET /api/admin/service-account")
			if sys != "" && strings.Contains(w.Body.String(), sys) {
				t.Fatalf("the site's JSON carries the token: %s", w.Body)
			}
			var body struct {
				SystemToken *tokenBody `json:"systemToken"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.SystemToken == nil {
				t.Fatalf("GET /api/admin/service-account: no systemToken (%v): %s", err, w.Body)
			}
			return *body.SystemToken
		}
		page := func() string {
			t.Helper()
			tok := connectHS256(h.connectHarness, h.siteClaims(s, http.MethodGet, "/admin"), s.secret)
			w := h.serve(nil, connectRequest(http.MethodGet, "/admin?jwt="+tok, nil, ""))
			connectWantStatus(t, w, http.StatusOK, "GET /admin")
			if sys != "" && strings.Contains(w.Body.String(), sys) {
				t.Fatalf("the admin page carries the token")
			}
			return w.Body.String()
		}

		if got := site(); got.State != models.SystemTokenNone || got.ExpiresAt != nil {
			t.Errorf("before Forge's first call: %+v, want none", got)
		}
		if p := page(); !strings.Contains(p, `data-state="none"`) {
			t.Errorf("the page does not say no token is held")
		}

		exp := h.clock.Now().Add(15 * time.Minute).Truncate(time.Second)
		sys = h.systemToken(exp)
		connectWantStatus(t, h.forgeLifecycle(s, models.ForgeEventInstalled, sys), http.StatusNoContent, "forge installed")
		if got := site(); got.State != models.SystemTokenHeld || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) {
			t.Errorf("with a token: %+v, want held until %s", got, exp)
		}
		if p := page(); !strings.Contains(p, `data-state="held"`) || !strings.Contains(p, exp.UTC().Format("2006-01-02T15:04:05Z07:00")) {
			t.Errorf("the page does not say the token is held until %s", exp)
		}

		h.clock.Advance(16 * time.Minute)
		if got := site(); got.State != models.SystemTokenExpired || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) {
			t.Errorf("after its expiry: %+v, want expired at %s", got, exp)
		}
		if p := page(); !strings.Contains(p, `data-state="expired"`) {
			t.Errorf("the page does not say the token expired")
		}

		// Uninstall deletes it; a reinstall without Forge's call holds none.
		connectWantStatus(t, h.uninstall(s), http.StatusNoContent, "uninstall")
		h.reinstall(nil, s)
		if got := site(); got.State != models.SystemTokenNone {
			t.Errorf("after uninstall and reinstall: %+v, want none", got)
		}
	})
}
