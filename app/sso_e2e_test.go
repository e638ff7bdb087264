package app_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"idbridge/app"
	"idbridge/app/apptest"
	"idbridge/app/fakeatlassian"
	"idbridge/app/fakeidp"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/config"
	"idbridge/models"
)

const (
	ssoAppKey   = "idbridge-sso"
	ssoAdmin    = "557058:sso-admin"
	ssoSvcEmail = "svc-sso@example.com"
	ssoSvcToken = "ATATT3x-sso-service-token"
)

// ssoEnv is the whole App on a real listener (its URL is the base URL, so
// the SAML IdP can fetch the SP metadata), installed on a fake Atlassian
// site with JSM, with an in-test OpenID provider and SAML IdP.
type ssoEnv struct {
	t      *testing.T
	app    *app.App
	base   string
	site   *models.Site
	secret []byte
	jira   *fakeatlassian.Site
	oidc   *fakeidp.OIDC
	saml   *fakeidp.SAML
	logs   *apptest.LockedBuffer
	desk   string
	org    string
	rtype  string
}

func newSSOEnv(t *testing.T, b storetest.Backend) *ssoEnv {
	t.Helper()
	e := &ssoEnv{t: t, logs: &apptest.LockedBuffer{}}
	fake := fakeatlassian.New(fakeatlassian.Options{})
	t.Cleanup(fake.Close)
	e.jira = fake.NewSite(fakeatlassian.SiteOptions{})
	e.jira.AddServiceAccount(fakeatlassian.ServiceAccount{Email: ssoSvcEmail, APIToken: ssoSvcToken, Admin: true})
	e.desk = e.jira.AddServiceDesk("HELP", "Help desk")
	e.org = e.jira.AddOrganization("Customer Inc")
	e.rtype = e.jira.AddRequestType(e.desk, fakeatlassian.RequestType{Name: "Get IT help", Description: "Something is broken.", Fields: []fakeatlassian.RequestTypeField{
		{FieldID: "summary", Name: "Summary", Required: true},
		{FieldID: "description", Name: "Description"},
		{FieldID: "customfield_10010", Name: "Urgency", Type: "option", Values: []string{"Low", "High"}},
	}})
	e.oidc = fakeidp.NewOIDC()
	t.Cleanup(e.oidc.Close)
	e.saml = fakeidp.NewSAML()
	t.Cleanup(e.saml.Close)

	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	e.base = "http://" + srv.Listener.Addr().String()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := map[string]string{
		"IDBRIDGE_BASE_URL":              e.base,
		"IDBRIDGE_APP_KEY":               ssoAppKey,
		"IDBRIDGE_ADDR":                  "127.0.0.1:0",
		"IDBRIDGE_DATA_DIR":              t.TempDir(),
		"IDBRIDGE_DATABASE_URL":          b.DatabaseURL(t),
		"IDBRIDGE_ENCRYPTION_KEYS":       "sso1:" + base64.StdEncoding.EncodeToString(key),
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net," + e.jira.Host(),
		"IDBRIDGE_ATLASSIAN_API_URL":     fake.APIURL(),
		"IDBRIDGE_ATLASSIAN_AUTH_URL":    fake.APIURL(),
		"IDBRIDGE_LOG_LEVEL":             "debug",
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e.app, err = app.Open(context.Background(), cfg, app.Options{
		Log: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("app.Open: %v", err)
	}
	srv.Config.Handler = e.app.Handler()
	srv.Start()
	t.Cleanup(func() {
		if err := e.app.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		logs := e.logs.String()
		for _, s := range []string{ssoSvcToken, e.oidc.ClientSecret, string(e.secret)} {
			if strings.Contains(logs, s) {
				t.Errorf("the logs contain a secret: %.12s…", s)
			}
		}
		if strings.Contains(logs, "@customer.example") {
			t.Errorf("the logs contain a customer's email address")
		}
	})
	e.secret = []byte(apptest.RandomHex(t, 24))
	e.jira.InstallApp(ssoAppKey, string(e.secret), ssoAdmin)
	err = e.app.Store().InTx(context.Background(), func(tx *store.Tx) error {
		e.site, err = tx.SaveInstall(&models.Site{
			SiteFacts: models.SiteFacts{
				ClientKey:   "sso-client-" + apptest.RandomHex(t, 4),
				BaseURL:     e.jira.BaseURL(),
				ProductType: "jira",
			},
			SharedSecret: e.secret,
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.oidc.AllowRedirectURI(e.base + "/portal/" + e.site.ID + "/oidc/callback")
	return e
}

// admin calls the admin API with a context token of the site's admin.
func (e *ssoEnv) admin(method, target string, body any) (int, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, e.base+"/api/admin"+target, r)
	now := time.Now()
	req.Header.Set("Authorization", "JWT "+apptest.SignJWT(e.t, jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": e.site.ClientKey, "sub": ssoAdmin, "qsh": "context-qsh", "iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix(),
	}, "", e.secret))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

func (e *ssoEnv) mustAdmin(method, target string, body any, want int, out any) {
	e.t.Helper()
	st, data := e.admin(method, target, body)
	if st != want {
		e.t.Fatalf("%s %s: %d %s; want %d", method, target, st, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, target, err, data)
		}
	}
}

// customer is a browser: a cookie jar, redirects followed, except that
// every hop is recorded.
type customer struct {
	t      *testing.T
	client *http.Client
	hops   []*http.Response
}

func newCustomer(t *testing.T) *customer {
	jar, _ := cookiejar.New(nil)
	c := &customer{t: t}
	c.client = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		c.hops = append(c.hops, req.Response)
		if len(via) > 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return c
}

func (c *customer) get(u string) (*http.Response, string) {
	c.t.Helper()
	c.hops = nil
	res, err := c.client.Get(u)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (c *customer) post(u string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	c.hops = nil
	res, err := c.client.PostForm(u, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// setCookie finds the Set-Cookie of name among the hops.
func (c *customer) setCookie(name string) *http.Cookie {
	for _, h := range c.hops {
		for _, ck := range h.Cookies() {
			if ck.Name == name && ck.MaxAge >= 0 && ck.Value != "" {
				return ck
			}
		}
	}
	return nil
}

var formField = regexp.MustCompile(`name="(SAMLResponse|RelayState)" value="([^"]*)"`)

const strictCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func TestSSOEndToEnd(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newSSOEnv(t, b)
		portal := e.base + "/portal/" + e.site.ID + "/"

		// The admin sets up the service account, SSO and two IdPs.
		e.mustAdmin(http.MethodPut, "/service-account", map[string]any{"kind": "api_token", "email": ssoSvcEmail, "token": ssoSvcToken}, 200, nil)
		var settings map[string]any
		e.mustAdmin(http.MethodPut, "/sso", map[string]any{"enabled": true, "allowedDomains": []string{"customer.example"},
			"autoCreateCustomers": true, "serviceDeskIds": []string{e.desk}, "organizationsByDomain": map[string]string{"customer.example": e.org}}, 200, &settings)
		if d := answerDiff(fields{"portalUrl": portal, "acsUrl": portal + "saml/acs", "spEntityId": portal + "saml/metadata"}, 0, settings); d != "" {
			t.Errorf("settings (-want +got):\n%s", d)
		}
		st, body := e.admin(http.MethodPost, "/idps", map[string]any{"name": "Broken", "protocol": "saml", "saml": map[string]any{"metadataXml": "<EntityDescriptor"}})
		if st != 400 || !strings.Contains(string(body), `"field":"saml.metadataXml"`) {
			t.Errorf("malformed metadata: %d %s", st, body)
		}
		st, body = e.admin(http.MethodPost, "/idps", map[string]any{"name": "Broken", "protocol": "oidc",
			"oidc": map[string]any{"issuer": "http://127.0.0.1:1", "clientId": "c", "clientSecret": "s"}})
		if st != 400 || !strings.Contains(string(body), `"field":"oidc.issuer"`) {
			t.Errorf("unreachable discovery: %d %s", st, body)
		}
		var oidcIdP, samlIdP map[string]any
		e.mustAdmin(http.MethodPost, "/idps", map[string]any{"name": "Customer staff", "protocol": "oidc", "enabled": true,
			"oidc": map[string]any{"issuer": e.oidc.URL, "clientId": e.oidc.ClientID, "clientSecret": e.oidc.ClientSecret}}, 201, &oidcIdP)
		if strings.Contains(mustJSON(oidcIdP), e.oidc.ClientSecret) || oidcIdP["redirectUri"] != portal+"oidc/callback" {
			t.Errorf("created OIDC IdP %v", oidcIdP)
		}
		e.mustAdmin(http.MethodPost, "/idps", map[string]any{"name": "Customer SAML", "protocol": "saml",
			"saml": map[string]any{"metadataUrl": e.saml.MetadataURL()}}, 201, &samlIdP)

		// The customer opens the portal: sent to sign in, then chooses.
		c := newCustomer(t)
		res, page := c.get(portal)
		if res.Request.URL.Path != "/portal/"+e.site.ID+"/login" || !strings.Contains(page, "Customer staff") || !strings.Contains(page, "Customer SAML") {
			t.Fatalf("portal without a session: %s %s", res.Request.URL, page)
		}
		if got := res.Header.Get("Content-Security-Policy"); got != strictCSP {
			t.Errorf("chooser CSP %q", got)
		}
		e.oidc.SignIn(&fakeidp.User{Email: "carol@customer.example", Name: "Carol Customer", EmailVerified: true})
		res, page = c.get(portal + "login?idp=" + oidcIdP["id"].(string) + "&returnTo=" + url.QueryEscape("/portal/"+e.site.ID+"/"))
		if res.StatusCode != 200 || !strings.Contains(page, "Carol Customer") {
			t.Fatalf("after OIDC sign-in: %d %s", res.StatusCode, page)
		}
		login := c.setCookie("idbridge_login")
		if login == nil {
			t.Fatal("no login cookie")
		}
		// want is the cookie got, with the attributes this test expects set.
		want := *login
		want.HttpOnly, want.SameSite, want.MaxAge, want.Path = true, http.SameSiteLaxMode, 600, "/"
		if d := cmp.Diff(want, *login); d != "" {
			t.Errorf("login cookie (-want +got):\n%s", d)
		}
		session := c.setCookie("idbridge_portal")
		if session == nil {
			t.Fatal("no session cookie")
		}
		want = *session
		want.HttpOnly, want.SameSite, want.Path = true, http.SameSiteLaxMode, "/"
		if d := cmp.Diff(want, *session); d != "" {
			t.Errorf("session cookie (-want +got):\n%s", d)
		}
		if got := res.Header.Get("Content-Security-Policy"); got != strictCSP {
			t.Errorf("home CSP %q", got)
		}
		e.portalJourney(c, portal, page)
		// Sign out (with the form's CSRF token), and the session is gone.
		csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
		if csrf == nil {
			t.Fatal("no CSRF token on the page")
		}
		res, _ = c.post(portal+"logout", url.Values{"csrf": {"forged"}})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("logout with a forged token: %d", res.StatusCode)
		}
		res, page = c.post(portal+"logout", url.Values{"csrf": {html.UnescapeString(csrf[1])}})
		if res.StatusCode != 200 || !strings.Contains(page, "signed out") {
			t.Errorf("logout: %d %s", res.StatusCode, page)
		}
		res, _ = c.get(portal)
		if res.Request.URL.Path != "/portal/"+e.site.ID+"/login" {
			t.Errorf("after logout the portal is at %s", res.Request.URL)
		}

		// SAML: the IdP's auto-posting page, then the POST back.
		e.saml.SignIn(&fakeidp.User{Email: "dave@customer.example", Name: "Dave Customer"})
		_, page = c.get(portal + "login?idp=" + samlIdP["id"].(string))
		form := map[string]string{}
		for _, m := range formField.FindAllStringSubmatch(page, -1) {
			form[m[1]] = html.UnescapeString(m[2])
		}
		if d := cmp.Diff(map[string]bool{"SAMLResponse": true, "RelayState": true},
			map[string]bool{"SAMLResponse": form["SAMLResponse"] != "", "RelayState": form["RelayState"] != ""}); d != "" {
			t.Fatalf("the IdP page's form fields (-want +got):\n%s%s", d, page)
		}
		res, page = c.post(portal+"saml/acs", url.Values{"SAMLResponse": {form["SAMLResponse"]}, "RelayState": {form["RelayState"]}})
		if res.StatusCode != 200 || !strings.Contains(page, "Dave Customer") {
			t.Fatalf("after SAML sign-in: %d %s", res.StatusCode, page)
		}
		// The same POST again is refused; it names no login state any more,
		// so it is anyone's request and leaves no audit event.
		res, page = c.post(portal+"saml/acs", url.Values{"SAMLResponse": {form["SAMLResponse"]}, "RelayState": {form["RelayState"]}})
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "Start again") {
			t.Errorf("replayed POST: %d %s", res.StatusCode, page)
		}
		// A person of a domain the site does not allow: refused, audited.
		e.oidc.SignIn(&fakeidp.User{Email: "erin@elsewhere.example", Name: "Erin Elsewhere", EmailVerified: true})
		if res, page := newCustomer(t).get(portal + "login?idp=" + oidcIdP["id"].(string)); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("sign-in of a domain not allowed: %d %s", res.StatusCode, page)
		}
		// An oversized response is refused before it is read.
		big := strings.Repeat("A", 300<<10)
		res, page = c.post(portal+"saml/acs", url.Values{"SAMLResponse": {big}, "RelayState": {form["RelayState"]}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "too large") {
			t.Errorf("oversized: %d %s", res.StatusCode, page)
		}

		// Unknown site, SSO turned off: plain pages in words.
		res, page = c.get(e.base + "/portal/s_nosuchsite/login")
		if res.StatusCode != 404 || !strings.Contains(page, "There is no help center at this address.") {
			t.Errorf("unknown site: %d %s", res.StatusCode, page)
		}
		e.mustAdmin(http.MethodPut, "/sso", map[string]any{"enabled": false}, 200, nil)
		res, page = c.get(portal + "login")
		if res.StatusCode != 404 || !strings.Contains(page, "Single sign-on is not turned on") {
			t.Errorf("SSO off: %d %s", res.StatusCode, page)
		}
		res, _ = c.get(portal)
		if res.StatusCode != 404 {
			t.Errorf("the portal with SSO off: %d", res.StatusCode)
		}
		// The SP metadata is public.
		res, page = c.get(portal + "saml/metadata")
		if res.StatusCode != 200 || !strings.Contains(page, portal+"saml/acs") {
			t.Errorf("SP metadata: %d", res.StatusCode)
		}

		// The audit log: pages, filters, CSV, chart.
		var audit struct {
			Events []map[string]any `json:"events"`
			Next   *string          `json:"next"`
		}
		e.mustAdmin(http.MethodGet, "/audit?event=login_success", nil, 200, &audit)
		var protocols []any
		for _, ev := range audit.Events {
			protocols = append(protocols, ev["protocol"])
		}
		if d := cmp.Diff([]any{"saml", "oidc"}, protocols); d != "" {
			t.Errorf("login_success events' protocols (-want +got):\n%s", d)
		}
		var all []map[string]any
		cursor := ""
		for pages := 0; ; pages++ {
			audit.Events, audit.Next = nil, nil
			e.mustAdmin(http.MethodGet, "/audit?limit=3&cursor="+url.QueryEscape(cursor), nil, 200, &audit)
			all = append(all, audit.Events...)
			if audit.Next == nil {
				break
			}
			cursor = *audit.Next
			if pages > 50 {
				t.Fatal("paging does not end")
			}
		}
		stored, _ := e.app.Store().View(context.Background()).FindAuditEvents(e.site.ID, store.AuditQuery{Limit: 1000})
		if len(all) != len(stored) || len(all) < 10 {
			t.Errorf("paged %d events; %d stored", len(all), len(stored))
		}
		for i := 1; i < len(all); i++ {
			// Compared as times: RFC 3339 drops trailing zeros of the
			// fraction, so "…20.09Z" sorts after "…20.090062Z" as text.
			prev, err1 := time.Parse(time.RFC3339Nano, all[i-1]["at"].(string))
			at, err2 := time.Parse(time.RFC3339Nano, all[i]["at"].(string))
			if err1 != nil || err2 != nil || at.After(prev) {
				t.Errorf("events not newest first at %d: %v then %v", i, all[i-1], all[i])
			}
		}
		if st, body := e.admin(http.MethodGet, "/audit?event=bogus", nil); st != 400 || !strings.Contains(string(body), `"field":"event"`) {
			t.Errorf("bad filter: %d %s", st, body)
		}
		if st, body := e.admin(http.MethodGet, "/audit?cursor=zzz", nil); st != 400 {
			t.Errorf("bad cursor: %d %s", st, body)
		}
		st, body = e.admin(http.MethodGet, "/audit.csv?event=login_failure", nil)
		rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if st != 200 || err != nil || len(rows) != 2 || len(rows[1]) < 9 {
			t.Errorf("CSV: %d %v %q, want a header and one row", st, err, rows)
		} else if d := cmp.Diff(map[string]string{"header[0]": "id", "event": "login_failure", "reason": "domain_not_allowed"},
			map[string]string{"header[0]": rows[0][0], "event": rows[1][2], "reason": rows[1][8]}); d != "" {
			t.Errorf("CSV (-want +got):\n%s", d)
		}
		acct, _ := e.jira.Account("carol@customer.example")
		var names struct {
			Names map[string]string `json:"names"`
		}
		e.mustAdmin(http.MethodGet, "/accounts?accountId="+url.QueryEscape(acct.AccountID)+"&accountId=qm:nobody", nil, 200, &names)
		if d := cmp.Diff(map[string]string{acct.AccountID: "Carol Customer"}, names.Names); d != "" {
			t.Errorf("names (-want +got):\n%s", d)
		}
		var stats struct {
			Days []struct {
				Date      string `json:"date"`
				Successes int64  `json:"successes"`
				Failures  int64  `json:"failures"`
			} `json:"days"`
		}
		e.mustAdmin(http.MethodGet, "/audit/stats?days=30", nil, 200, &stats)
		if len(stats.Days) != 30 {
			t.Fatalf("stats for %d days, want 30", len(stats.Days))
		}
		today := stats.Days[len(stats.Days)-1]
		if d := cmp.Diff(map[string]any{"date": time.Now().UTC().Format(time.DateOnly), "successes": int64(2), "failures": int64(1)},
			map[string]any{"date": today.Date, "successes": today.Successes, "failures": today.Failures}); d != "" {
			t.Errorf("today's stats (-want +got):\n%s", d)
		}
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// portalJourney raises a request with formatted text, reads it, comments,
// and tries another customer's request.
func (e *ssoEnv) portalJourney(c *customer, portal, home string) {
	t := e.t
	t.Helper()
	if !strings.Contains(home, "Help desk") || !strings.Contains(home, "Get IT help") {
		t.Fatalf("home lists no desk or request type: %s", home)
	}
	formURL := portal + "create/" + e.desk + "/" + e.rtype
	res, page := c.get(formURL)
	if res.StatusCode != 200 || !strings.Contains(page, `name="f.summary"`) || !strings.Contains(page, "Urgency") || !strings.Contains(page, "(required)") {
		t.Fatalf("form: %d %s", res.StatusCode, page)
	}
	csrf := html.UnescapeString(csrfField.FindStringSubmatch(page)[1])
	// Required fields are enforced, and the form comes back with the error.
	res, page = c.post(formURL, url.Values{"csrf": {csrf}, "f.description": {"no summary"}})
	if res.StatusCode != 400 || !strings.Contains(page, "Summary is required.") || !strings.Contains(page, "no summary") {
		t.Errorf("missing summary: %d %s", res.StatusCode, page)
	}
	res, _ = c.post(formURL, url.Values{"csrf": {csrf}, "f.summary": {"VPN down"}, "f.customfield_10010": {"Urgent!"}})
	if res.StatusCode != 400 {
		t.Errorf("an option that is not offered: %d", res.StatusCode)
	}
	res, page = c.post(formURL, url.Values{"csrf": {csrf}, "f.summary": {"VPN down"}, "f.customfield_10010": {"High"},
		"f.description": {"The **VPN** drops:\n\n- at *9:00*\n- see [status](https://status.example/vpn)\n\n<script>alert(1)</script>"}})
	if res.StatusCode != 200 || !strings.Contains(page, "Your request was sent.") {
		t.Fatalf("raise: %d %s", res.StatusCode, page)
	}
	for _, want := range []string{"<strong>VPN</strong>", "<em>9:00</em>", `<a href="https://status.example/vpn" rel="noopener noreferrer nofollow">status</a>`, "&lt;script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("request page lacks %q", want)
		}
	}
	reqs := e.jira.CustomerRequests()
	acct, _ := e.jira.Account("carol@customer.example")
	if len(reqs) != 1 {
		t.Fatalf("JSM has %+v, want one request", reqs)
	}
	if d := cmp.Diff(map[string]any{"reporter": acct.AccountID, "description": "The *VPN* drops:\n\n* at _9:00_\n* see [status|https://status.example/vpn]\n\n<script>alert(1)</script>"},
		map[string]any{"reporter": reqs[0].ReporterID, "description": reqs[0].Fields["description"]}); d != "" {
		t.Fatalf("JSM's request (-want +got):\n%s", d)
	}
	key := reqs[0].Key
	// A comment, with formatting; an agent's public and internal comments.
	e.jira.AddComment(key, "712020:agent", "We are on it, *Carol*.", true)
	e.jira.AddComment(key, "712020:agent", "internal note: reboot the concentrator", false)
	res, page = c.post(portal+"requests/"+key+"/comment", url.Values{"csrf": {csrf}, "comment": {"Thanks, `ping` works now."}})
	if res.StatusCode != 200 || !strings.Contains(page, "Your comment was added.") || !strings.Contains(page, "<strong>Carol</strong>") ||
		!strings.Contains(page, "<code>ping</code>") || strings.Contains(page, "internal note") {
		t.Errorf("after comment: %d %s", res.StatusCode, page)
	}
	res, page = c.post(portal+"requests/"+key+"/comment", url.Values{"csrf": {csrf}, "comment": {"  "}})
	if res.StatusCode != 400 || !strings.Contains(page, "Write a comment first.") {
		t.Errorf("empty comment: %d", res.StatusCode)
	}
	res, _ = c.post(portal+"requests/"+key+"/comment", url.Values{"comment": {"no token"}})
	if res.StatusCode != 403 {
		t.Errorf("comment without the CSRF token: %d", res.StatusCode)
	}
	res, page = c.get(portal + "requests")
	if res.StatusCode != 200 || !strings.Contains(page, key) || !strings.Contains(page, "VPN down") {
		t.Errorf("my requests: %d %s", res.StatusCode, page)
	}
	// Another customer's request: not listed, not readable, not commentable.
	other := e.jira.AddAccount(fakeatlassian.Account{Email: "erin@customer.example", DisplayName: "Erin", Type: fakeatlassian.AccountCustomer})
	otherKey := e.jira.AddRequest(e.desk, e.rtype, other, "Erin's secret")
	_, page = c.get(portal + "requests")
	if strings.Contains(page, otherKey) {
		t.Errorf("my requests list another's request")
	}
	res, page = c.get(portal + "requests/" + otherKey)
	if res.StatusCode != 404 || strings.Contains(page, "Erin") {
		t.Errorf("another's request: %d %s", res.StatusCode, page)
	}
	res, _ = c.post(portal+"requests/"+otherKey+"/comment", url.Values{"csrf": {csrf}, "comment": {"hi"}})
	if res.StatusCode != 404 {
		t.Errorf("comment on another's request: %d", res.StatusCode)
	}
	// A participant may read it.
	e.jira.AddParticipant(otherKey, acct.AccountID)
	if res, _ = c.get(portal + "requests/" + otherKey); res.StatusCode != 200 {
		t.Errorf("as a participant: %d", res.StatusCode)
	}
	denied := 0
	created := 0
	evs, _ := e.app.Store().View(context.Background()).FindAuditEvents(e.site.ID, store.AuditQuery{Limit: 1000})
	for _, ev := range evs {
		if ev.Event == models.AuditAccessDenied && ev.ActorAccountID == acct.AccountID && ev.Reason == "not_own_request" {
			denied++
		}
		if ev.Event == models.AuditRequestCreated && ev.ActorAccountID == acct.AccountID {
			created++
		}
	}
	if d := cmp.Diff(map[string]int{"access_denied": 2, "request_created": 1}, map[string]int{"access_denied": denied, "request_created": created}); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}
