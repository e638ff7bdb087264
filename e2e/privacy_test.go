package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// TestAdminPagePrivacy drives the Privacy section in the browser: export
// a person's data with a progress bar that reaches the row count, refuse a
// malformed account ID beside the field, erase the person after a
// confirmation (and find nothing of them left), restrict another person
// and lift it, and read the reporting cycle's status, in both themes.
func TestAdminPagePrivacy(t *testing.T) {
	browser := newBrowser(t)
	stub, err := os.ReadFile("testdata/all.js")
	if err != nil {
		t.Fatal(err)
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := newStack(t, b)
		const ann, bob = "557058:ann-privacy", "557058:bob-privacy"
		site, err := s.app.Store().View(context.Background()).FindSiteByClientKey(s.clientKey)
		if err != nil {
			t.Fatal(err)
		}
		// Ann signed in 40 times and has a portal session.
		err = s.app.Store().InTx(context.Background(), func(tx *store.Tx) error {
			evs := make([]models.AuditEvent, 40)
			for i := range evs {
				evs[i] = models.AuditEvent{ActorAccountID: ann, Event: models.AuditLoginSuccess, IP: "203.0.113.9", UserAgent: "Firefox",
					Protocol: "oidc", OccurredAt: time.Now().Add(-time.Duration(i) * time.Hour)}
			}
			if err := tx.CreateAuditEvents(site.ID, evs); err != nil {
				return err
			}
			now := time.Now()
			return tx.CreatePortalSession(site.ID, &models.PortalSession{SiteID: site.ID, ID: "e2e-session-hash", AccountID: ann,
				Email: "ann@customer.example", DisplayName: "Ann", IdPID: "idp", CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)})
		})
		if err != nil {
			t.Fatal(err)
		}
		tb := newTab(t, browser, s, stub)
		tb.open()

		tb.step("privacy")
		tb.goTo("privacy")
		tb.waitText("#privacy-reporting", "Reporting cycle", 10*time.Second)
		tb.waitText("#privacy-restriction-rows", "Nobody", 10*time.Second)
		tb.checkLabels()
		tb.screenshots("privacy")

		tb.step("bad input")
		tb.typeInto("#privacy-export-accountId", "not an id")
		tb.submit("#privacy-export")
		if msg := tb.waitError("privacy-export-accountId", 5*time.Second); !strings.Contains(msg, "account ID") {
			t.Errorf("error beside the field: %q", msg)
		}

		tb.step("export")
		tb.typeInto("#privacy-export-accountId", ann)
		tb.submit("#privacy-export")
		tb.waitText("#privacy-export-status", "The person’s data is exported.", 20*time.Second)
		var progress struct {
			Value, Max float64
			Count      string
		}
		tb.mustEval(&progress, `function () {
			const p = document.getElementById("privacy-export-progress");
			return { value: p.value, max: p.max, count: document.getElementById("privacy-export-count").textContent };
		}`)
		if d := cmp.Diff(map[string]any{"max": float64(41), "value": float64(41), "count": "41 of 41 rows"},
			map[string]any{"max": progress.Max, "value": progress.Value, "count": progress.Count}); d != "" {
			t.Errorf("progress, want 41 of 41 rows: 40 events and a session (-want +got):\n%s", d)
		}
		if errText := tb.errorOf("privacy-export-accountId"); errText != "" {
			t.Errorf("the field still shows %q", errText)
		}

		tb.step("erase")
		tb.typeInto("#privacy-erase-accountId", ann)
		tb.submit("#privacy-erase")
		tb.waitText("#privacy-erase-question", ann, 5*time.Second)
		tb.screenshots("privacy-erase-confirm")
		if id := tb.activeID(); id != "privacy-erase-yes" {
			t.Errorf("focus on %q, want the confirmation", id)
		}
		tb.submit("#privacy-erase-yes")
		tb.waitText("#privacy-erase-status", "Erased.", 20*time.Second)
		evs, err := s.app.Store().View(context.Background()).FindAuditEvents(site.ID, store.AuditQuery{AccountID: ann, Limit: 100})
		if err != nil || len(evs) != 0 {
			t.Errorf("after erasure, %d events name Ann (%v)", len(evs), err)
		}
		if n, _ := s.app.Store().View(context.Background()).CountPortalSessions(site.ID); n != 0 {
			t.Errorf("Ann's portal session is still there")
		}
		tb.submit("#privacy-erase")
		tb.typeInto("#privacy-erase-accountId", ann)
		tb.submit("#privacy-erase")
		tb.waitText("#privacy-erase-question", ann, 5*time.Second)
		tb.submit("#privacy-erase-yes")
		tb.waitText("#privacy-erase-status", "Nothing to erase.", 20*time.Second)

		tb.step("rectify")
		var tok struct {
			Token string `json:"token"`
		}
		if code, body := s.api(http.MethodPost, "/provisioning/token", map[string]any{}, &tok); code != 201 {
			t.Fatalf("provisioning token: %d %s", code, body)
		}
		req, _ := http.NewRequest(http.MethodPost, s.appURL+"/scim/v2/"+site.ID+"/Users",
			strings.NewReader(`{"userName":"carol@customer.example","displayName":"Carol Typo","active":true}`))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Content-Type", "application/scim+json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var user struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(res.Body).Decode(&user)
		res.Body.Close()
		if d := cmp.Diff(map[string]any{"status": 201, "has id": true}, map[string]any{"status": res.StatusCode, "has id": user.ID != ""}); d != "" {
			t.Fatalf("SCIM create (-want +got):\n%s", d)
		}
		const carol = "557058:carol-privacy"
		if err := s.app.Store().InTx(context.Background(), func(tx *store.Tx) error {
			return tx.SaveSyncUser(&models.SyncUser{SiteID: site.ID, UserID: user.ID, AccountID: carol, State: models.SyncUserActive})
		}); err != nil {
			t.Fatal(err)
		}
		tb.typeInto("#privacy-rectify-accountId", carol)
		tb.submit("#privacy-rectify")
		if msg := tb.waitError("privacy-rectify-displayName", 5*time.Second); !strings.Contains(msg, "at least one") {
			t.Errorf("rectify without a detail: %q", msg)
		}
		tb.typeInto("#privacy-rectify-displayName", "Carol Tyler")
		tb.submit("#privacy-rectify")
		tb.waitText("#privacy-rectify-status", "Corrected displayName of "+carol, 10*time.Second)
		u, err := s.app.Store().View(context.Background()).FindDirectoryUser(site.ID, user.ID, false)
		if err != nil || u.DisplayName != "Carol Tyler" {
			t.Errorf("directory user after rectification: %+v %v", u, err)
		}

		tb.step("restrict")
		tb.typeInto("#privacy-restrict-accountId", bob)
		tb.typeInto("#privacy-restrict-reason", "contests the accuracy of his data")
		tb.submit("#privacy-restrict")
		tb.waitText("#privacy-restriction-rows", bob, 10*time.Second)
		tb.waitText("#privacy-restriction-rows", "Restricted", 5*time.Second)
		tb.waitText("#privacy-restricted-count", "1", 5*time.Second)
		tb.screenshots("privacy-restricted")
		tb.mustEval(nil, `function () { document.documentElement.dataset.colorMode = "dark"; }`)
		tb.screenshots("privacy-dark")
		tb.mustEval(nil, `function () { delete document.documentElement.dataset.colorMode; }`)
		tb.step("the audit log marks the restricted person")
		tb.goTo("audit")
		tb.typeInto("#audit-accountId", bob)
		tb.submit("#audit-apply")
		tb.waitText("#audit-rows", "Processing restricted", 10*time.Second)
		tb.waitText("#audit-rows", "Restricted", 5*time.Second)
		tb.goTo("privacy")
		tb.submit(`#privacy-restriction-rows button[data-lift]`)
		tb.waitText("#privacy-restriction-rows", "Nobody", 10*time.Second)
		tb.waitText("#privacy-restrict-status", "Restriction lifted.", 5*time.Second)

		tb.step("done")
		if errs := tb.consoleErrors(); len(errs) > 0 {
			t.Errorf("the console has %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
		}
	})
}
