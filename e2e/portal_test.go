package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/golang-jwt/jwt/v5"

	"idbridge/app"
	"idbridge/app/apptest"
	"idbridge/app/fakeatlassian"
	"idbridge/app/fakeidp"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/config"
	"idbridge/models"
)

// portalStack is idbridge with customer SSO set up on a fake Atlassian
// site with JSM (a service desk, a request type, an organization), an
// OpenID provider and a SAML IdP, all with real state.
type portalStack struct {
	app    *app.App
	url    string
	portal string
	jira   *fakeatlassian.Site
	oidc   *fakeidp.OIDC
	saml   *fakeidp.SAML
	logs   *apptest.LockedBuffer
}

func newPortalStack(t *testing.T, b storetest.Backend) *portalStack {
	t.Helper()
	ps := &portalStack{logs: &apptest.LockedBuffer{}}
	fake := fakeatlassian.New(fakeatlassian.Options{})
	t.Cleanup(fake.Close)
	ps.jira = fake.NewSite(fakeatlassian.SiteOptions{})
	const svcToken = "ATATT3x-portal-e2e-token"
	ps.jira.AddServiceAccount(fakeatlassian.ServiceAccount{Email: "svc@example.com", APIToken: svcToken, Admin: true})
	desk := ps.jira.AddServiceDesk("IT", "IT help")
	ps.jira.AddRequestType(desk, fakeatlassian.RequestType{Name: "Report a problem", Description: "Something is broken.", Fields: []fakeatlassian.RequestTypeField{
		{FieldID: "summary", Name: "Summary", Required: true},
		{FieldID: "description", Name: "Description"},
	}})
	org := ps.jira.AddOrganization("Customer Inc")
	ps.oidc = fakeidp.NewOIDC()
	t.Cleanup(ps.oidc.Close)
	ps.saml = fakeidp.NewSAML()
	t.Cleanup(ps.saml.Close)

	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	ps.url = "http://" + srv.Listener.Addr().String()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := map[string]string{
		"IDBRIDGE_ADDR": "127.0.0.1:0", "IDBRIDGE_BASE_URL": ps.url, "IDBRIDGE_APP_KEY": appKey,
		"IDBRIDGE_DATA_DIR": t.TempDir(), "IDBRIDGE_DATABASE_URL": b.DatabaseURL(t),
		"IDBRIDGE_ENCRYPTION_KEYS":       "e2e1:" + base64.StdEncoding.EncodeToString(key),
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net," + ps.jira.Host(),
		"IDBRIDGE_ATLASSIAN_API_URL":     fake.APIURL(), "IDBRIDGE_ATLASSIAN_AUTH_URL": fake.APIURL(),
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	ps.app, err = app.Open(context.Background(), cfg, app.Options{Log: newLogger(ps.logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.app.Close() })
	srv.Config.Handler = ps.app.Handler()
	srv.Start()

	// The site, its service account and SSO: what the admin page sets up
	// (TestAdminPageSSOAndAudit drives that part in the browser).
	ctx := context.Background()
	var site *models.Site
	secret := apptest.RandomHex(t, 24)
	ps.jira.InstallApp(appKey, secret, adminID)
	err = ps.app.Store().InTx(ctx, func(tx *store.Tx) error {
		site, err = tx.SaveInstall(&models.Site{
			SiteFacts: models.SiteFacts{
				ClientKey:   "portal-" + apptest.RandomHex(t, 4),
				BaseURL:     ps.jira.BaseURL(),
				ProductType: "jira",
			},
			SharedSecret: []byte(secret),
		})
		if err != nil {
			return err
		}
		_, err = tx.SaveServiceAccount(site.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: "svc@example.com", Token: svcToken})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ps.portal = ps.url + "/portal/" + site.ID + "/"
	ps.oidc.AllowRedirectURI(ps.portal + "oidc/callback")
	admin := adminAPI{t: t, url: ps.url, site: site, secret: secret}
	admin.do("PUT", "/sso", map[string]any{"enabled": true, "allowedDomains": []string{"customer.example"}, "autoCreateCustomers": true,
		"serviceDeskIds": []string{desk}, "organizationsByDomain": map[string]string{"customer.example": org}})
	admin.do("POST", "/idps", map[string]any{"name": "Customer staff (OpenID)", "protocol": "oidc",
		"oidc": map[string]any{"issuer": ps.oidc.URL, "clientId": ps.oidc.ClientID, "clientSecret": ps.oidc.ClientSecret}})
	admin.do("POST", "/idps", map[string]any{"name": "Customer partners (SAML)", "protocol": "saml",
		"saml": map[string]any{"metadataUrl": ps.saml.MetadataURL()}})
	return ps
}

// portalPage is a top-level browser tab on the portal.
type portalPage struct {
	*tab
}

func (p portalPage) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.do(what, actions...)
}

// waitBody waits until the page's text contains want.
func (p portalPage) waitBody(want string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		if err == nil && strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the page never showed %q; it shows:\n%s", want, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p portalPage) evalString(expr string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

func (p portalPage) evalBool(expr string) bool {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		p.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// clickCSS and clickText click an element as a person would (the click
// runs after the evaluation returns, so a navigation does not cut it off).
func (p portalPage) clickCSS(sel string) {
	p.t.Helper()
	if !p.evalBool(fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false; setTimeout(() => el.click(), 0); return true; })()`, sel)) {
		p.t.Fatalf("no %s to click", sel)
	}
}

func (p portalPage) clickText(tag, text string) {
	p.t.Helper()
	if !p.evalBool(fmt.Sprintf(`(() => { const el = [...document.querySelectorAll(%q)].find((e) => e.textContent.includes(%q)); if (!el) return false; setTimeout(() => el.click(), 0); return true; })()`, tag, text)) {
		p.t.Fatalf("no %s with %q to click", tag, text)
	}
}

// fill types value into the field sel (as the input event says).
func (p portalPage) fill(sel, value string) {
	p.t.Helper()
	if !p.evalBool(fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false; el.focus(); el.value = %q; el.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`, sel, value)) {
		p.t.Fatalf("no field %s", sel)
	}
}

// shot writes a full-page screenshot at the given width.
func (p portalPage) shot(name string, width int64) {
	p.t.Helper()
	p.run("viewport", chromedp.EmulateViewport(width, 900))
	buf, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(p.shots, fmt.Sprintf("portal-%s-%d.png", name, width))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
	// At this width nothing may overflow sideways.
	over, _ := chromedp.Run(p.ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if over {
		p.t.Errorf("%s at %d px: the page is wider than the window", name, width)
	}
}

// TestPortalCustomerJourney: a customer signs in with OIDC, raises a
// request with formatted text, sees it, comments, signs out; another
// signs in with SAML. Screenshots at 1280 and 800 px; an empty console.
func TestPortalCustomerJourney(t *testing.T) {
	browser := newBrowser(t)
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ps := newPortalStack(t, b)
		p := portalPage{newTab(t, browser, nil, nil)}

		p.step("sign in with OIDC")
		p.run("open portal", chromedp.Navigate(ps.portal))
		p.waitBody("Choose how you sign in")
		p.shot("chooser", 800)
		p.clickText("a", "OpenID")
		p.waitBody("Fake OpenID provider")
		p.fill("#email", "carol@customer.example")
		p.fill("#name", "Carol Customer")
		p.clickCSS("button[type=submit]")
		p.waitBody("Welcome, Carol Customer")
		// The keyboard: the first Tab reaches "Skip to content", which
		// moves focus to the page's content.
		p.step("keyboard")
		p.press(kb.Tab)
		if got := p.evalString(`document.activeElement ? document.activeElement.textContent : ""`); got != "Skip to content" {
			t.Errorf("the first Tab focuses %q", got)
		}
		p.press(kb.Enter)
		if got := p.evalString(`document.activeElement ? document.activeElement.id : ""`); got != "main" {
			t.Errorf("skip to content focused %q", got)
		}
		p.step("sign in with OIDC")
		p.shot("home", 1280)
		p.shot("home", 800)

		p.step("raise a request")
		p.clickText("a", "Report a problem")
		p.waitBody("Send request")
		// The form answers 400 with the error next to the field; Chrome
		// logs a 400 page, which this step expects.
		p.step("bad input: no summary")
		p.clickText("button", "Send request")
		p.waitBody("Summary is required.")
		if !p.evalBool(`document.querySelector("#f-summary").getAttribute("aria-invalid") === "true"`) {
			t.Error("the summary field is not marked invalid")
		}
		p.step("raise a request")
		p.fill("#f-summary", "Printer on fire")
		p.fill("#f-description", "The **printer** is *on fire*:\n\n- since `09:00`\n- see [photo](https://photos.example/1)")
		p.shot("form", 800)
		p.clickText("button", "Send request")
		p.waitBody("Your request was sent.")
		if !p.evalBool(`!!document.querySelector(".markup strong") && document.querySelector(".markup strong").textContent === "printer" && !!document.querySelector(".markup li code") && !!document.querySelector('.markup a[href="https://photos.example/1"]')`) {
			t.Error("the request does not show the formatted description")
		}
		reqs := ps.jira.CustomerRequests()
		if len(reqs) != 1 || !strings.Contains(reqs[0].Fields["description"].(string), "*printer*") {
			t.Fatalf("JSM has %+v", reqs)
		}

		p.step("comment")
		p.fill("#comment", "It is **out** now.")
		p.clickText("button", "Comment")
		p.waitBody("Your comment was added.")
		p.waitBody("It is out now.")
		p.shot("request", 1280)
		p.shot("request", 800)
		p.run("my requests", chromedp.Navigate(ps.portal+"requests"))
		p.waitBody("Printer on fire")

		p.step("sign out")
		p.clickText("button", "Sign out")
		p.waitBody("You are signed out")
		p.run("portal again", chromedp.Navigate(ps.portal))
		p.waitBody("Choose how you sign in")

		p.step("sign in with SAML")
		p.clickText("a", "SAML")
		p.waitBody("Fake SAML identity provider")
		p.fill("#email", "dave@customer.example")
		p.fill("#name", "Dave Customer")
		p.clickCSS("button[type=submit]")
		p.waitBody("Welcome, Dave Customer")
		p.shot("home-saml", 1280)

		p.step("done")
		if errs := p.consoleErrors(); len(errs) > 0 {
			t.Errorf("the console has %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
		}
		for _, secret := range []string{ps.oidc.ClientSecret, "ATATT3x-portal-e2e-token"} {
			if strings.Contains(ps.logs.String(), secret) {
				t.Errorf("the logs contain a secret")
			}
		}
	})
}

// adminAPI calls the admin API as the site's admin, with a context JWT.
type adminAPI struct {
	t      *testing.T
	url    string
	site   *models.Site
	secret string
}

func (a adminAPI) do(method, path string, body any) {
	a.t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, a.url+"/api/admin"+path, bytes.NewReader(data))
	now := time.Now()
	req.Header.Set("Authorization", "JWT "+apptest.SignJWT(a.t, jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": a.site.ClientKey, "sub": adminID, "qsh": "context-qsh", "iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix(),
	}, "", []byte(a.secret)))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(res.Body)
		a.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, msg)
	}
}
