package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"idbridge/app/apptest"
	"idbridge/app/demo"
)

// TestDemoInTheBrowser runs `idbridge demo` (its Run, as the subcommand
// does), opens the URL it prints in Chromium, generates a SCIM token on the
// admin page in the simulated site's iframe, creates a user over SCIM and
// watches the Simulated site page show it once the sync applied it, with
// screenshots at 1280 and 800 px; then signs in to the portal through the
// demo identity provider and raises a request, which the site shows.
func TestDemoInTheBrowser(t *testing.T) {
	browser := newBrowser(t)
	tmpl, err := os.ReadFile("../atlassian-connect.json")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &apptest.LockedBuffer{}, &apptest.LockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, demo.Options{DataDir: t.TempDir(), DescriptorTemplate: tmpl, Stdout: stdout, Stderr: stderr})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo.Run: %v\n%s", err, stderr.String())
		}
	})
	hostURL := demoURL(t, stdout, stderr, done)

	// The demo loads all.js from its simulated site: a request for
	// Atlassian's would run this and fail the test on the console.
	tb := newTab(t, browser, nil, []byte(`throw new Error("the demo loaded all.js from Atlassian's CDN");`))
	tb.setViewport(1280, 900)
	tb.step("open the printed URL")
	tb.do("open "+hostURL, chromedp.Navigate(hostURL))
	tb.waitText("#overview-connection", "Connected", 30*time.Second)

	tb.step("generate a token")
	tb.goTo("provisioning")
	tb.focus("#pv-generate")
	tb.press(kb.Enter)
	tb.waitText("#pv-token-status", "shown only this once", 10*time.Second)
	token, base := tb.value("#pv-token-value"), tb.value("#pv-base-url")
	if !strings.HasPrefix(token, "idbscim_") || !strings.Contains(base, "/scim/v2/") {
		t.Fatalf("token %q, base URL %q", token, base)
	}
	tb.screenshots("demo-admin-page")

	tb.step("create a user over SCIM")
	req, _ := http.NewRequest(http.MethodPost, base+"/Users", strings.NewReader(
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@demo.example","name":{"givenName":"Ada","familyName":"Lovelace"},"emails":[{"value":"ada@demo.example","primary":true}],"active":true}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("SCIM create: %d %s", res.StatusCode, body)
	}

	tb.step("the simulated site")
	tb.do("follow the Simulated site link", chromedp.Click(`header a[href="/simulated-site"]`))
	waitTop(t, tb, `document.querySelector('#users tr[data-key="ada@demo.example"]') !== null`, 30*time.Second)
	if !strings.Contains(pageText(t, tb), base+"/Users") {
		t.Errorf("the Simulated site page has no curl line for %s/Users", base)
	}
	for _, w := range []int64{1280, 800} {
		pageScreenshot(t, tb, "demo-simulated-site", w)
	}

	// The portal, through the demo identity provider: the customer is
	// created in the site, and the request raised there.
	tb.step("sign in to the portal")
	p := portalPage{tb}
	p.clickCSS("#portal-link") // one identity provider: straight to it
	p.waitBody("Fake OpenID provider")
	p.fill("#email", "ada@customer.example")
	p.fill("#name", "Ada Customer")
	p.clickCSS("button[type=submit]")
	p.waitBody("Welcome, Ada Customer")
	p.clickText("a", "Report a problem")
	p.waitBody("Send request")
	p.fill("#f-summary", "The analytical engine jams")
	p.clickText("button", "Send request")
	p.waitBody("Your request was sent.")
	tb.do("back to the simulated site", chromedp.Navigate(strings.TrimSuffix(hostURL, "/plugins/servlet/ac/idbridge-demo/idbridge-admin")+"/simulated-site"))
	waitTop(t, tb, `document.querySelector('#customers tr[data-key="ada@customer.example"]') !== null && document.querySelector('#requests tbody').textContent.includes("The analytical engine jams")`, 30*time.Second)
	pageScreenshot(t, tb, "demo-simulated-site-after-portal", 1280)

	if errs := tb.consoleErrors(); len(errs) > 0 {
		t.Errorf("the console has %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	if strings.Contains(stderr.String(), token) {
		t.Error("the demo's logs contain the SCIM token")
	}
}

// demoURL waits for the URL the demo prints.
func demoURL(t *testing.T, stdout, stderr *apptest.LockedBuffer, done <-chan error) string {
	t.Helper()
	re := regexp.MustCompile(`Open (http://\S+)`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("the demo stopped before printing a URL: %v\n%s\n%s", err, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo printed no URL:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitTop waits until the JavaScript expression is true in the top-level
// page (not the admin page's iframe).
func waitTop(t *testing.T, tb *tab, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s (last error %v); the page shows:\n%s", timeout, expr, err, pageText(t, tb))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pageText(t *testing.T, tb *tab) string {
	t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		t.Fatalf("read the page: %v", err)
	}
	return s
}

// pageScreenshot writes the whole top-level page at width as
// <name>-<width>.png in the test's screenshot directory.
func pageScreenshot(t *testing.T, tb *tab, name string, width int64) {
	t.Helper()
	tb.setViewport(width, 900)
	height, err := chromedp.Run(tb.ctx, chromedp.Evaluate[int64](`Math.ceil(document.documentElement.scrollHeight)`))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	settled := chromedp.Evaluate[chromedp.Void](`new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))`, chromedp.EvalAwaitPromise)
	tb.do("grow the viewport", chromedp.EmulateViewport(width, max(900, height)), settled)
	buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(tb.shots, fmt.Sprintf("%s-%d.png", name, width))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	tb.setViewport(width, 900)
}
