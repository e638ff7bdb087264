package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp/kb"
	"github.com/google/go-cmp/cmp"

	"idbridge/app/fakeatlassian"
	"idbridge/app/store/storetest"
)

// TestAdminPageProvisioning drives the User provisioning section in the
// browser: generate a token (shown once) and use it for SCIM at once,
// choose what deactivation does, rotate (the old token stops), turn
// provisioning off (the token stops, the directory stays).
func TestAdminPageProvisioning(t *testing.T) {
	browser := newBrowser(t)
	stub := fakeatlassian.AllJS
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := newStack(t, b)
		tb := newTab(t, browser, s, stub)
		tb.open()
		tb.waitText("#overview-provisioning", "Off", 10*time.Second)

		tb.step("provisioning")
		tb.goTo("provisioning")
		tb.waitText("#pv-current", "Off", 10*time.Second)
		tb.checkLabels()
		base := tb.value("#pv-base-url")
		if !strings.HasPrefix(base, s.appURL+"/scim/v2/s_") {
			t.Fatalf("base URL %q", base)
		}
		scim := func(token string) int {
			req, _ := http.NewRequest("GET", base+"/Users?filter=userName%20eq%20%22nobody%22", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}

		tb.focus("#pv-generate")
		tb.press(kb.Enter)
		tb.waitText("#pv-token-status", "shown only this once", 10*time.Second)
		first := tb.value("#pv-token-value")
		if !strings.HasPrefix(first, "idbscim_") {
			t.Fatalf("token field shows %q", first)
		}
		if code := scim(first); code != http.StatusOK {
			t.Fatalf("SCIM with the new token: %d", code)
		}
		tb.waitText("#pv-current", "On", 10*time.Second)
		tb.screenshots("provisioning-token")
		tb.focus("#pv-token-done")
		tb.press(kb.Enter)
		if v := tb.value("#pv-token-value"); v != "" {
			t.Errorf("the token is still in the page after I have copied it: %q", v)
		}

		// What deactivation does, saved.
		tb.mustEval(nil, `function () { document.getElementById("pv-deactivation-suspend").click(); document.getElementById("pv-products-jira-servicedesk").click(); }`)
		tb.focus("#pv-save")
		tb.press(kb.Enter)
		tb.waitText("#pv-status", "Saved", 10*time.Second)
		var saved struct{ Deactivation, Products string }
		tb.mustEval(&saved, `function () { return {
			Deactivation: document.querySelector("input[name=deactivation]:checked").value,
			Products: Array.from(document.querySelectorAll("input[name=products]:checked")).map((i) => i.value).join(","),
		}; }`)
		if d := cmp.Diff(map[string]string{"deactivation": "suspend", "products": "jira-servicedesk"},
			map[string]string{"deactivation": saved.Deactivation, "products": saved.Products}); d != "" {
			t.Errorf("after saving (-want +got):\n%s", d)
		}

		// Rotate: the old token stops at once.
		tb.focus("#pv-generate")
		tb.press(kb.Enter)
		tb.waitFor("a second token", 10*time.Second, nil, `function (old) { const v = document.getElementById("pv-token-value").value; return v !== "" && v !== old; }`, first)
		second := tb.value("#pv-token-value")
		if code := scim(first); code != http.StatusUnauthorized {
			t.Errorf("the rotated token answers %d", code)
		}
		if code := scim(second); code != http.StatusOK {
			t.Errorf("the new token answers %d", code)
		}

		// Turn off: a confirmation, then the token stops.
		tb.focus("#pv-disable")
		tb.press(kb.Enter)
		tb.waitText("#pv-disable-status", "Turn provisioning off?", 5*time.Second)
		tb.focus("#pv-disable")
		tb.press(kb.Enter)
		tb.waitText("#pv-disable-status", "Provisioning is off", 10*time.Second)
		if code := scim(second); code != http.StatusUnauthorized {
			t.Errorf("the token after turning off answers %d", code)
		}
		tb.waitText("#pv-current", "Off", 10*time.Second)
		tb.screenshots("provisioning-off")
		if strings.Contains(s.logs.String(), second) || strings.Contains(s.logs.String(), first) {
			t.Error("the App's logs contain a SCIM token")
		}
		if errs := tb.consoleErrors(); len(errs) > 0 {
			t.Errorf("the console has %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
		}
	})
}
