package e2e_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/go-cmp/cmp"

	"idbridge/app/apptest"
	"idbridge/app/fakeatlassian"
	"idbridge/app/store/storetest"
)

// TestAdminPage opens the admin page the way Jira does, in an iframe of a
// host page that hands out context tokens, and goes through it with the
// keyboard: the overview, saving a service account and testing it against
// the fake Jira (working, rejected, hanging), and correcting the customer
// record; bad input at every step. Every input must have a label, focus
// must reach every control, and the console must stay free of errors.
func TestAdminPage(t *testing.T) {
	browser := newBrowser(t)
	stub := fakeatlassian.AllJS
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := newStack(t, b)
		tb := newTab(t, browser, s, stub)
		tb.open()

		tb.step("labels")
		tb.checkLabels()
		tb.screenshots("overview")

		tb.step("keyboard")
		tb.checkKeyboard()

		tb.step("service account")
		tb.serviceAccount()

		tb.step("customer record")
		tb.customerRecord()

		// Jira in dark mode sets data-color-mode on the page (AP.theming):
		// the same page with Atlassian's dark tokens.
		tb.step("dark theme")
		tb.goTo("service-account")
		tb.mustEval(nil, `function () { document.documentElement.dataset.colorMode = "dark"; }`)
		tb.screenshots("service-account-dark")
		tb.mustEval(nil, `function () { delete document.documentElement.dataset.colorMode; }`)

		tb.step("done")
		if errs := tb.consoleErrors(); len(errs) > 0 {
			t.Errorf("the console has %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
		}
	})
}

// TestAdminPageOutsideAtlassian opens the admin page without all.js (the
// CDN unreachable, or the page opened outside Jira): it must say so in
// words instead of failing silently.
func TestAdminPageOutsideAtlassian(t *testing.T) {
	browser := newBrowser(t)
	s := newStack(t, storetest.Backends(t)[0])
	tb := newTab(t, browser, s, []byte("/* all.js did not load */"))
	tb.setViewport(1280, 900)
	tb.do("open the host page", chromedp.Navigate(s.hostPageURL()))
	got := tb.waitText("#app-banner", "only inside your Atlassian site", 15*time.Second)
	if !strings.Contains(tb.text("#overview-connection"), "Not connected") {
		t.Errorf("overview connection row: %q, want Not connected", tb.text("#overview-connection"))
	}
	t.Logf("banner: %s", got)
	if errs := tb.consoleErrors(); len(errs) > 0 {
		t.Errorf("the console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// open loads the host page and waits until the admin page reached the API.
func (tb *tab) open() {
	tb.t.Helper()
	tb.setViewport(1280, 900)
	tb.do("open the host page", chromedp.Navigate(tb.stack.hostPageURL()))
	tb.waitText("#overview-connection", "Connected", 20*time.Second)
}

// checkLabels: every form control has a label with text, every button a
// name, every aria-describedby points at elements that exist.
func (tb *tab) checkLabels() {
	tb.t.Helper()
	var problems []string
	tb.mustEval(&problems, `function () {
		const out = [];
		const name = (el) => el.id || el.name || el.outerHTML.slice(0, 60);
		for (const el of document.querySelectorAll("input, select, textarea")) {
			if (el.type === "hidden") continue;
			const labels = Array.from(el.labels || []).map((l) => l.textContent.trim()).filter(Boolean);
			const aria = (el.getAttribute("aria-label") || "").trim() ||
				(el.getAttribute("aria-labelledby") || "").split(/\s+/).map((id) => (document.getElementById(id) || {}).textContent || "").join("").trim();
			if (labels.length === 0 && !aria) out.push("input without a label: " + name(el));
		}
		for (const el of document.querySelectorAll("button, a[href], summary")) {
			if (!(el.textContent.trim() || el.getAttribute("aria-label"))) out.push("control without a name: " + el.outerHTML.slice(0, 80));
		}
		for (const el of document.querySelectorAll("fieldset")) {
			if (!el.querySelector("legend") || !el.querySelector("legend").textContent.trim()) out.push("fieldset without a legend: " + name(el));
		}
		for (const el of document.querySelectorAll("[aria-describedby]")) {
			for (const id of el.getAttribute("aria-describedby").split(/\s+/).filter(Boolean)) {
				if (!document.getElementById(id)) out.push(name(el) + " is described by a missing #" + id);
			}
		}
		const ids = new Set();
		for (const el of document.querySelectorAll("[id]")) {
			if (ids.has(el.id)) out.push("duplicate id " + el.id);
			ids.add(el.id);
		}
		return out;
	}`)
	for _, p := range problems {
		tb.t.Errorf("accessibility: %s", p)
	}
}

// tabStops returns the ids of the controls that Tab visits in the
// section, in order, as the page defines them: visible, enabled, focusable,
// and one stop per radio group (the checked radio).
func (tb *tab) tabStops(section string) []string {
	tb.t.Helper()
	var ids []string
	tb.mustEval(&ids, `function (section) {
		const root = document.getElementById("section-" + section);
		const seen = new Set();
		const out = [];
		for (const el of root.querySelectorAll("a[href], button, input, select, textarea, summary, [tabindex]")) {
			if (el.tabIndex < 0 || el.disabled || el.closest("[hidden]") || el.getClientRects().length === 0) continue;
			if (el.closest("details:not([open])") && el.tagName !== "SUMMARY") continue;
			if (el.type === "radio") {
				if (seen.has(el.name)) continue;
				seen.add(el.name);
				const checked = root.querySelector("input[type=radio][name=" + el.name + "]:checked");
				out.push((checked || el).id);
				continue;
			}
			out.push(el.id || (el.tagName.toLowerCase() + (el.dataset.clear ? "[data-clear=" + el.dataset.clear + "]" : "") + (el.getAttribute("href") ? "[href=" + el.getAttribute("href") + "]" : "")));
		}
		return out;
	}`, section)
	return ids
}

// tabThrough presses Tab from the current focus until focus leaves the
// section (or the iframe), at most n times, and returns the ids focused on
// the way. A control with several stops of its own (a date input's day,
// month and year) counts once.
func (tb *tab) tabThrough(section string, n int) []string {
	tb.t.Helper()
	var got []string
	for range n {
		tb.press(kb.Tab)
		var inside bool
		tb.mustEval(&inside, `function (s) { return document.hasFocus() && document.getElementById("section-" + s).contains(document.activeElement); }`, section)
		if !inside {
			break
		}
		id := tb.activeID()
		if len(got) > 0 && got[len(got)-1] == id {
			continue
		}
		got = append(got, id)
	}
	return got
}

// checkKeyboard: from the host page, Tab enters the admin page at its
// navigation, reaches every link, Enter opens a section and puts focus on
// its heading, and Tab then visits every control of the section in order.
func (tb *tab) checkKeyboard() {
	tb.t.Helper()
	sections := []string{"overview", "service-account", "customer-record", "provisioning", "sso", "audit", "privacy"}
	// Start with focus on the host page, as after a click on Jira's chrome.
	tb.do("focus the host page", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.focus();`))
	tb.press(kb.Tab)
	var nav []string
	for i := range sections {
		if i > 0 {
			tb.press(kb.Tab)
		}
		nav = append(nav, tb.activeID())
	}
	want := make([]string, len(sections))
	for i, s := range sections {
		want[i] = "nav-" + s
	}
	if !slices.Equal(nav, want) {
		tb.t.Fatalf("Tab from the host page visits %v; want the navigation %v", nav, want)
	}
	for _, section := range []string{"service-account", "customer-record", "overview"} {
		tb.focus("#nav-" + section)
		tb.press(kb.Enter)
		tb.waitFor("section "+section+" shown", 5*time.Second, nil, `function (s) {
			return !document.getElementById("section-" + s).hidden && document.activeElement === document.getElementById("heading-" + s);
		}`, section)
		var current string
		tb.mustEval(&current, `function () { const a = document.querySelector(".app-nav-link[aria-current=page]"); return a ? a.id : ""; }`)
		if current != "nav-"+section {
			tb.t.Errorf("after Enter on %s the current link is %q", section, current)
		}
		want := tb.tabStops(section)
		got := tb.tabThrough(section, 3*len(want)+5)
		if !slices.Equal(got, want) {
			tb.t.Errorf("Tab through %s visits\n  %v\nwant\n  %v", section, got, want)
		}
	}
}

// errorOf is the error text shown for the control id, checking that the
// control is marked invalid and described by it.
func (tb *tab) errorOf(id string) string {
	tb.t.Helper()
	var r struct {
		Text      string
		Invalid   bool
		Described bool
	}
	tb.mustEval(&r, `function (id) {
		const el = document.getElementById(id);
		const err = document.getElementById(id + "-error");
		return {
			text: err ? err.textContent.trim() : "",
			invalid: el.getAttribute("aria-invalid") === "true",
			described: (el.getAttribute("aria-describedby") || "").split(/\s+/).includes(id + "-error"),
		};
	}`, id)
	if r.Text != "" && (!r.Invalid || !r.Described) {
		tb.t.Errorf("#%s shows an error (%q) but is not marked aria-invalid (%v) and described by it (%v)", id, r.Text, r.Invalid, r.Described)
	}
	return r.Text
}

// waitError waits for an error next to the control id and returns it.
func (tb *tab) waitError(id string, timeout time.Duration) string {
	tb.t.Helper()
	tb.waitFor("an error next to #"+id, timeout, nil, `function (id) { const e = document.getElementById(id + "-error"); return e && e.textContent.trim() !== ""; }`, id)
	return tb.errorOf(id)
}

// submit presses Enter on the element sel (a button or an input of the
// form).
func (tb *tab) submit(sel string) {
	tb.t.Helper()
	tb.focus(sel)
	tb.press(kb.Enter)
}

// serviceAccountState is GET /api/admin/service-account as the page reads it.
type serviceAccountState struct {
	Configured bool   `json:"configured"`
	Kind       string `json:"kind"`
	Email      string `json:"email"`
	TokenHint  string `json:"tokenHint"`
	ExpiresAt  string `json:"expiresAt"`
	Status     string `json:"status"`
	UpdatedAt  string `json:"updatedAt"`
}

func (tb *tab) savedAccount() (int, serviceAccountState, string) {
	tb.t.Helper()
	var sa serviceAccountState
	code, body := tb.stack.api(http.MethodGet, "/service-account", nil, &sa)
	return code, sa, body
}

func (tb *tab) goTo(section string) {
	tb.t.Helper()
	tb.focus("#nav-" + section)
	tb.press(kb.Enter)
	tb.waitFor("section "+section, 5*time.Second, nil, `function (s) { return !document.getElementById("section-" + s).hidden; }`, section)
}

func (tb *tab) serviceAccount() {
	t := tb.t
	t.Helper()
	st := tb.stack
	tb.goTo("service-account")
	tb.waitText("#sa-current", "No service account yet", 10*time.Second)

	// The type is chosen with the arrow keys: from the first (OAuth) to
	// the classic API token.
	tb.focus("#sa-kind-oauth_client")
	tb.press(kb.ArrowDown)
	var kind string
	tb.mustEval(&kind, `function () { return document.querySelector("input[name=kind]:checked").value; }`)
	if kind != "api_token" {
		t.Fatalf("ArrowDown on the type selects %q, want api_token", kind)
	}

	tb.step("bad input: service account")
	// Empty email and token: errors next to both, from the page itself.
	tb.submit("#sa-email")
	if msg := tb.waitError("sa-email", 5*time.Second); !strings.Contains(msg, "email") {
		t.Errorf("empty email: %q", msg)
	}
	if msg := tb.errorOf("sa-token"); !strings.Contains(msg, "token") {
		t.Errorf("empty token: %q", msg)
	}
	var focused = tb.activeID()
	if focused != "sa-email" {
		t.Errorf("after a failed save focus is on %q, want the first invalid field", focused)
	}
	tb.screenshots("service-account-errors")

	// A malformed email.
	tb.typeInto("#sa-email", "not-an-email")
	tb.typeInto("#sa-token", st.goodToken)
	tb.submit("#sa-save")
	if msg := tb.waitError("sa-email", 5*time.Second); !strings.Contains(msg, "name@example.com") {
		t.Errorf("malformed email: %q", msg)
	}

	// Overlong email: the server refuses it, next to the field.
	tb.typeInto("#sa-email", strings.Repeat("a", 300)+"@example.com")
	tb.submit("#sa-save")
	if msg := tb.waitError("sa-email", 10*time.Second); msg == "" {
		t.Errorf("overlong email: no error")
	} else {
		t.Logf("overlong email: %s", msg)
	}

	// An unknown kind (as a modified page or an old one would send): the
	// server's answer lands next to the type.
	tb.typeInto("#sa-email", svcEmail)
	tb.mustEval(nil, `function () { document.getElementById("sa-kind-api_token").value = "bogus_kind"; }`)
	tb.submit("#sa-save")
	if msg := tb.waitError("sa-kind", 10*time.Second); msg == "" {
		t.Errorf("unknown kind: no error next to the type")
	} else {
		t.Logf("unknown kind: %s", msg)
	}
	tb.mustEval(nil, `function () { document.getElementById("sa-kind-api_token").value = "api_token"; }`)

	// Nothing of that was saved.
	code, sa, body := tb.savedAccount()
	if d := cmp.Diff(map[string]any{"status": http.StatusOK, "configured": false, "kind": ""},
		map[string]any{"status": code, "configured": sa.Configured, "kind": sa.Kind}); d != "" {
		t.Errorf("after rejected saves the service account is %s; want none (-want +got):\n%s", body, d)
	}

	tb.step("service account")
	// Save working credentials with the keyboard (Enter on Save).
	tb.typeInto("#sa-email", svcEmail)
	tb.typeInto("#sa-token", st.goodToken)
	tb.submit("#sa-save")
	tb.waitText("#sa-status", "Saved", 10*time.Second)
	last4 := st.goodToken[len(st.goodToken)-4:]
	tb.waitText("#sa-current", "••••"+last4, 5*time.Second)
	if v := tb.value("#sa-token"); v != "" {
		t.Errorf("the token field still holds %q after saving", v)
	}
	tb.checkNoSecretInPage(st.goodToken)
	code, sa, body = tb.savedAccount()
	if d := cmp.Diff(map[string]any{"status": http.StatusOK, "kind": "api_token", "email": svcEmail, "has tokenHint": true, "shows the token": false},
		map[string]any{"status": code, "kind": sa.Kind, "email": sa.Email, "has tokenHint": sa.TokenHint != "", "shows the token": strings.Contains(body, st.goodToken)}); d != "" {
		t.Errorf("GET service-account after save (-want +got):\n%s", d)
	}

	// Test connection, with Enter on the button.
	before := st.serviceCalls()
	tb.submit("#sa-test")
	got := tb.waitText("#sa-test-result", "The connection works", 30*time.Second)
	t.Logf("test connection: %s", got)
	for route, n := range st.serviceCalls() {
		if n == before[route] {
			t.Errorf("Test connection did not call %s on Jira; want /myself and /mypermissions (calls before %v, after %v)", route, before, st.serviceCalls())
		}
	}
	tb.waitText("#sa-current", "Working", 10*time.Second)
	tb.screenshots("service-account-working")

	// A rejected save changes nothing: not the email, not the stored token.
	tb.step("bad input: half a save")
	_, savedBefore, _ := tb.savedAccount()
	tb.typeInto("#sa-email", "svc@"+strings.Repeat("x", 260)+".example.com")
	tb.typeInto("#sa-token", "ATATT3x-other-"+apptest.RandomHex(t, 12))
	tb.submit("#sa-save")
	tb.waitError("sa-email", 10*time.Second)
	if _, after, body := tb.savedAccount(); after != savedBefore {
		t.Errorf("a rejected save changed the service account: %s, was %+v", body, savedBefore)
	}
	tb.typeInto("#sa-email", svcEmail)
	tb.typeInto("#sa-token", "")

	// A token Jira rejects: saved, but the test says so in words, and the
	// overview shows the credentials as invalid.
	tb.step("bad input: rejected token")
	badToken := "ATATT3x-bad-" + apptest.RandomHex(t, 12)
	tb.typeInto("#sa-token", badToken)
	tb.submit("#sa-save")
	tb.waitText("#sa-status", "Saved", 10*time.Second)
	tb.submit("#sa-test")
	got = tb.waitText("#sa-test-result", "does not fully work", 30*time.Second)
	t.Logf("rejected token: %s", got)
	code, sa, body = tb.savedAccount()
	if d := cmp.Diff(map[string]any{"status": http.StatusOK, "account status": "invalid"}, map[string]any{"status": code, "account status": sa.Status}); d != "" {
		t.Errorf("after a 401 from Jira the service account is %s (-want +got):\n%s", body, d)
	}
	tb.screenshots("service-account-rejected")
	tb.goTo("overview")
	tb.waitText("#overview-service-account", "Invalid", 10*time.Second)
	tb.waitText("#overview-alerts", "no longer work", 5*time.Second)
	tb.screenshots("overview-invalid")

	// A Jira that does not answer: the test gives up in time and says so.
	tb.step("bad input: Jira times out")
	tb.goTo("service-account")
	tb.typeInto("#sa-token", st.goodToken)
	tb.submit("#sa-save")
	tb.waitText("#sa-status", "Saved", 10*time.Second)
	for _, route := range []string{"GET /rest/api/3/myself", "GET /rest/api/3/mypermissions"} {
		st.jira.Inject(fakeatlassian.Fault{Route: route, Hang: true})
	}
	tb.submit("#sa-test")
	tb.waitText("#sa-test-result", "Testing the connection", 5*time.Second)
	var busy bool
	tb.mustEval(&busy, `function () { return document.getElementById("sa-test").getAttribute("aria-busy") === "true"; }`)
	if !busy {
		t.Errorf("Test connection shows no progress while it runs")
	}
	got = tb.waitFor2("#sa-test-result", []string{"does not fully work", "could not be tested"}, 80*time.Second)
	t.Logf("Jira times out: %s", got)
	st.jira.ClearFaults()
	tb.screenshots("service-account-timeout")

	// An expiry 10 days ahead: the overview warns.
	tb.step("service account expiry")
	expiry := time.Now().AddDate(0, 0, 10).Format("2006-01-02")
	tb.mustEval(nil, `function (d) { const el = document.getElementById("sa-expiresAt"); el.value = d; el.dispatchEvent(new Event("input", {bubbles: true})); }`, expiry)
	tb.submit("#sa-save")
	tb.waitText("#sa-status", "Saved", 10*time.Second)
	tb.submit("#sa-test")
	tb.waitText("#sa-test-result", "The connection works", 30*time.Second)
	tb.goTo("overview")
	tb.waitText("#overview-alerts", "expires in 10 days", 10*time.Second)
	tb.waitText("#overview-service-account", "Expires soon", 5*time.Second)
	tb.screenshots("overview-expiring")
}

// waitFor2 waits until sel shows one of wants.
func (tb *tab) waitFor2(sel string, wants []string, timeout time.Duration) string {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := tb.text(sel)
		for _, w := range wants {
			if strings.Contains(got, w) {
				return got
			}
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s shows %q; want one of %q", sel, got, wants)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (tb *tab) value(sel string) string {
	tb.t.Helper()
	var v string
	tb.mustEval(&v, `function (sel) { return document.querySelector(sel).value; }`, sel)
	return v
}

// checkNoSecretInPage: a saved secret is in no attribute, text or field of
// the page.
func (tb *tab) checkNoSecretInPage(secret string) {
	tb.t.Helper()
	var found bool
	tb.mustEval(&found, `function (s) {
		if (document.documentElement.outerHTML.includes(s)) return true;
		return Array.from(document.querySelectorAll("input")).some((i) => i.value.includes(s));
	}`, secret)
	if found {
		tb.t.Errorf("the page shows the saved secret")
	}
}

// profileState is GET /api/admin/profile as the page reads it.
type profileState struct {
	Name    string            `json:"name"`
	Email   string            `json:"email"`
	Company string            `json:"company"`
	Sources map[string]string `json:"sources"`
}

func (tb *tab) profile() profileState {
	tb.t.Helper()
	var p profileState
	if code, body := tb.stack.api(http.MethodGet, "/profile", nil, &p); code != http.StatusOK {
		tb.t.Fatalf("GET profile: %d %s", code, body)
	}
	return p
}

func (tb *tab) customerRecord() {
	t := tb.t
	t.Helper()
	tb.goTo("customer-record")
	tb.waitText("#cr-sync", "Not compared with your Marketplace licence yet", 10*time.Second)

	// Refresh from the Marketplace: the licence's contact, with its source.
	tb.submit("#cr-refresh")
	tb.waitText("#cr-refresh-status", "Refreshed from your Marketplace licence", 30*time.Second)
	if v := tb.value("#cr-name"); v != marketplaceName {
		t.Errorf("after the refresh the contact name is %q, want %q", v, marketplaceName)
	}
	tb.waitText("#cr-name-source", "Marketplace licence", 5*time.Second)
	if got := tb.text("#cr-purchaser-source"); !strings.Contains(got, "Marketplace licence") {
		t.Errorf("purchaser source: %q", got)
	}
	tb.screenshots("customer-record")

	// Correct the contact name: at once, with the admin as its source.
	tb.typeInto("#cr-name", "Ada Lovelace")
	tb.submit("#cr-name")
	tb.waitText("#cr-status", "Correction saved", 10*time.Second)
	tb.waitText("#cr-name-source", "Corrected by an admin", 5*time.Second)
	p := tb.profile()
	if d := cmp.Diff(map[string]any{"name": "Ada Lovelace", "source": "admin"}, map[string]any{"name": p.Name, "source": p.Sources["name"]}); d != "" {
		t.Errorf("after the correction the record's name (-want +got):\n%s", d)
	}

	// Pressed again within the minute: the cooldown, said in words, and
	// the correction stands. (That a later sync never undoes a correction
	// is profile.TestSyncAllMatchesEachSiteAndKeepsCorrections.)
	tb.step("bad input: refresh within the cooldown")
	tb.submit("#cr-refresh")
	tb.waitText("#cr-refresh-status", "try again in", 30*time.Second)
	v, p := tb.value("#cr-name"), tb.profile()
	if d := cmp.Diff(map[string]any{"shown": "Ada Lovelace", "name": "Ada Lovelace", "source": "admin"},
		map[string]any{"shown": v, "name": p.Name, "source": p.Sources["name"]}); d != "" {
		t.Errorf("after a second press, want the correction to stand (-want +got):\n%s", d)
	}

	tb.step("bad input: customer record")
	before := tb.profile()
	tb.typeInto("#cr-email", "nope")
	tb.typeInto("#cr-company", "Difference Engines Ltd")
	tb.submit("#cr-save")
	if msg := tb.waitError("cr-email", 5*time.Second); !strings.Contains(msg, "email") {
		t.Errorf("malformed contact email: %q", msg)
	}
	tb.typeInto("#cr-email", marketplaceEmail)
	tb.typeInto("#cr-company", strings.Repeat("Analytical Engines ", 60))
	tb.submit("#cr-save")
	if msg := tb.waitError("cr-company", 10*time.Second); msg == "" {
		t.Errorf("overlong company: no error")
	} else {
		t.Logf("overlong company: %s", msg)
	}
	if after := tb.profile(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("rejected corrections changed the record: %+v, was %+v", after, before)
	}
	tb.screenshots("customer-record-errors")
	tb.submit("#cr-undo")
	if v := tb.value("#cr-company"); v != marketplaceCompay {
		t.Errorf("Undo left the company at %q", v)
	}

	tb.step("customer record")
	// Clear the correction with the keyboard: the Marketplace value is back
	// at once, and focus lands on the field.
	tb.submit("button[data-clear=name]")
	tb.waitText("#cr-status", "cleared", 10*time.Second)
	if id := tb.activeID(); id != "cr-name" {
		t.Errorf("after clearing, focus is on %q; want the field", id)
	}
	v, p = tb.value("#cr-name"), tb.profile()
	if d := cmp.Diff(map[string]any{"shown": marketplaceName, "name": marketplaceName, "source": "marketplace"},
		map[string]any{"shown": v, "name": p.Name, "source": p.Sources["name"]}); d != "" {
		t.Errorf("after clearing, want the Marketplace's name (-want +got):\n%s", d)
	}
	if got := tb.text("#cr-name-source"); !strings.Contains(got, "Marketplace licence") {
		t.Errorf("after clearing the source shows %q", got)
	}
	tb.screenshots("customer-record-cleared")
}
