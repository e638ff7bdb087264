package e2e_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"idbridge/app/audit"
	"idbridge/app/fakeatlassian"
	"idbridge/app/fakeidp"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// TestAdminPageSSOAndAudit: in the admin page, the admin adds an OpenID
// provider (a wrong issuer is refused in words next to the field), turns
// customer sign-in on, then reads the audit log and its chart, in both
// themes, at 1280 and 800 px.
func TestAdminPageSSOAndAudit(t *testing.T) {
	browser := newBrowser(t)
	stub := fakeatlassian.AllJS
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := newStack(t, b)
		idp := fakeidp.NewOIDC()
		t.Cleanup(idp.Close)
		tb := newTab(t, browser, s, stub)
		tb.open()

		tb.step("sso")
		tb.goTo("sso")
		tb.waitText("#sso-facts", "Give your identity provider these addresses.", 10*time.Second)
		tb.waitFor("the add form open", 10*time.Second, nil, `function () { return document.getElementById("sso-add").open; }`)
		tb.checkLabels()
		if v := tb.value("#sso-redirect-uri"); !strings.HasSuffix(v, "/oidc/callback") || !strings.HasPrefix(v, s.appURL+"/portal/s_") {
			t.Errorf("redirect URI %q", v)
		}

		tb.step("bad input: unreachable issuer")
		tb.typeInto("#sso-idp-name", "Customer staff")
		tb.typeInto("#sso-oidc-issuer", "http://127.0.0.1:1")
		tb.typeInto("#sso-oidc-clientId", idp.ClientID)
		tb.typeInto("#sso-oidc-clientSecret", idp.ClientSecret)
		tb.submit("#sso-idp-save")
		if msg := tb.waitError("sso-oidc-issuer", 20*time.Second); !strings.Contains(msg, "could not use the discovery document") {
			t.Errorf("issuer error %q", msg)
		}

		tb.step("add an identity provider")
		tb.typeInto("#sso-oidc-issuer", idp.URL)
		tb.typeInto("#sso-oidc-clientSecret", idp.ClientSecret)
		tb.submit("#sso-idp-save")
		tb.waitText("#sso-idp-status", "is saved", 20*time.Second)
		tb.waitText("#sso-idps", "Customer staff", 10*time.Second)
		tb.checkNoSecretInPage(idp.ClientSecret)
		var idps struct {
			IdentityProviders []struct {
				Name     string `json:"name"`
				Protocol string `json:"protocol"`
			} `json:"identityProviders"`
		}
		code, body := s.api(http.MethodGet, "/idps", nil, &idps)
		var protocols []string
		for _, p := range idps.IdentityProviders {
			protocols = append(protocols, p.Protocol)
		}
		if d := cmp.Diff(map[string]any{"status": 200, "protocols": []string{"oidc"}}, map[string]any{"status": code, "protocols": protocols}); d != "" {
			t.Fatalf("stored identity providers %s (-want +got):\n%s", body, d)
		}

		tb.step("turn sign-in on")
		tb.mustEval(nil, `function () { document.getElementById("sso-enabled").click(); }`)
		tb.typeInto("#sso-allowedDomains", "customer.example, partner.example")
		tb.submit("#sso-save")
		tb.waitText("#sso-status", "Saved", 10*time.Second)
		tb.screenshots("sso")

		// Sign-ins of the last weeks, as the portal records them.
		site, err := s.app.Store().View(context.Background()).FindSiteByClientKey(s.clientKey)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		err = s.app.Store().InTx(context.Background(), func(tx *store.Tx) error {
			for d := 0; d < 30; d += 2 {
				for i := 0; i < 3+d%7; i++ {
					ev := models.AuditEvent{SiteID: site.ID, Event: models.AuditLoginSuccess, ActorAccountID: "qm:customer-" + strconv.Itoa(i),
						Protocol: "oidc", OccurredAt: now.AddDate(0, 0, -d).Add(-time.Duration(i) * time.Minute)}
					if i%4 == 3 {
						ev.Event, ev.ActorAccountID, ev.Reason = models.AuditLoginFailure, "", "domain_not_allowed"
					}
					if _, err := audit.Record(tx, ev); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		tb.step("audit log")
		tb.goTo("audit")
		tb.waitFor("the chart", 10*time.Second, nil, `function () { return document.querySelector("#audit-chart svg rect"); }`)
		tb.waitText("#audit-rows", "Settings changed", 10*time.Second)
		var chart struct {
			Bars   int    `json:"bars"`
			Filled int    `json:"filled"`
			Title  string `json:"title"`
			Desc   string `json:"desc"`
		}
		tb.mustEval(&chart, `function () {
			const rects = Array.from(document.querySelectorAll("#audit-chart svg rect"));
			return { bars: rects.length, filled: rects.filter((r) => Number(r.getAttribute("height")) > 0).length,
				title: document.querySelector("#audit-chart svg title").textContent,
				desc: document.querySelector("#audit-chart svg desc").textContent };
		}`)
		if chart.Bars != 60 || chart.Filled < 15 || !strings.Contains(chart.Title, "last 30 days") || !strings.Contains(chart.Desc, "successful and") {
			t.Errorf("chart %+v", chart)
		}
		tb.checkLabels()
		tb.screenshots("audit")
		tb.step("dark theme")
		tb.mustEval(nil, `function () { document.documentElement.dataset.colorMode = "dark"; }`)
		var colours struct{ Success, Failure, Label string }
		tb.mustEval(&colours, `function () {
			const f = (sel) => getComputedStyle(document.querySelector(sel)).fill;
			return { Success: f(".chart-success"), Failure: f(".chart-failure"), Label: f(".chart-label") };
		}`)
		if colours.Success == colours.Failure || colours.Label == "" {
			t.Errorf("chart colours in the dark theme: %+v", colours)
		}
		tb.screenshots("audit-dark")
		tb.mustEval(nil, `function () { delete document.documentElement.dataset.colorMode; }`)

		tb.step("filter")
		tb.mustEval(nil, `function () { document.getElementById("audit-event").value = "login_failure"; }`)
		tb.submit("#audit-apply")
		tb.waitFor("only failed sign-ins", 10*time.Second, nil, `function () {
			const rows = Array.from(document.querySelectorAll("#audit-rows tr"));
			return rows.length > 0 && rows.every((r) => r.textContent.includes("Failed sign-in") && r.textContent.includes("reason: domain_not_allowed"));
		}`)

		tb.step("done")
		if errs := tb.consoleErrors(); len(errs) > 0 {
			t.Errorf("the console has %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
		}
	})
}
