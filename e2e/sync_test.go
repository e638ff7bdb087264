package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp/kb"
	"github.com/google/go-cmp/cmp"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// syncSeed is what the sync has done so far, as the worker records it:
// the stack runs no worker, so the page shows exactly this.
type syncSeed struct {
	s    *stack
	site *models.Site
	ids  map[string]string // userName or displayName → SCIM id
}

// scim sends a SCIM request with the site's bearer token.
func (sd *syncSeed) scim(token, method, path, body string) map[string]any {
	sd.s.t.Helper()
	req, _ := http.NewRequest(method, sd.s.appURL+"/scim/v2/"+sd.site.ID+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		sd.s.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode/100 != 2 {
		sd.s.t.Fatalf("SCIM %s %s: %d %v", method, path, res.StatusCode, out)
	}
	return out
}

// finish plays the worker: it claims the site's due subjects one by one
// and records for each the outcome decide gives it (nil: left alone, due
// in an hour).
func (sd *syncSeed) finish(decide func(tx *store.Tx, c *store.SyncClaim) []store.SyncResult) {
	t := sd.s.t
	t.Helper()
	ctx := context.Background()
	st := sd.s.app.Store()
	for range 100 {
		c, _, err := st.ClaimSyncSubject(ctx, sd.site.ID, "e2e-worker", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if c == nil {
			return
		}
		err = st.InTx(ctx, func(tx *store.Tx) error {
			results := decide(tx, c)
			if results == nil {
				for _, it := range c.Items {
					results = append(results, store.SyncResult{ID: it.ID, Status: models.OutboxStatusPending, NextAttemptAt: time.Now().Add(time.Hour)})
				}
			}
			_, err := tx.FinishSyncItems(c, "e2e-worker", results)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the outbox did not empty")
}

func all(c *store.SyncClaim, status, msg string) []store.SyncResult {
	var out []store.SyncResult
	for _, it := range c.Items {
		out = append(out, store.SyncResult{ID: it.ID, Status: status, Error: msg})
	}
	return out
}

// outbox is the site's outbox by status.
// outboxDiff compares the counts of the statuses want names (a status
// with no items counts 0) with want, as a go-cmp diff (-want +got).
func outboxDiff(want, byStatus map[string]int) string {
	got := map[string]int{}
	for status := range want {
		got[status] = byStatus[status]
	}
	return cmp.Diff(want, got)
}

func (sd *syncSeed) outbox() map[string]int {
	sd.s.t.Helper()
	items, err := sd.s.app.Store().View(context.Background()).ListSyncItems(sd.site.ID, 1000)
	if err != nil {
		sd.s.t.Fatal(err)
	}
	out := map[string]int{}
	for _, it := range items {
		out[it.Status]++
	}
	return out
}

// TestAdminPageSync drives the sync part of the User provisioning section
// in the browser, by keyboard: the paused banner with Resume, a failed
// change with its reason and Retry, the changes the accidental-deletion
// brake holds with Apply (confirmed) and Discard, the latest results, the
// provisioned users and groups with their Atlassian IDs, the brake's
// threshold, and the service account's organization ID.
func TestAdminPageSync(t *testing.T) {
	browser := newBrowser(t)
	stub, err := os.ReadFile("testdata/all.js")
	if err != nil {
		t.Fatal(err)
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := newStack(t, b)
		ctx := context.Background()
		sd := &syncSeed{s: s, ids: map[string]string{}}
		var acc *models.ServiceAccount
		err := s.app.Store().InTx(ctx, func(tx *store.Tx) error {
			var err error
			if sd.site, err = tx.FindSiteByClientKey(s.clientKey); err != nil {
				return err
			}
			acc, err = tx.SaveServiceAccount(sd.site.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: svcEmail, Token: s.goodToken})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var tok struct{ Token string }
		if code, body := s.api("POST", "/provisioning/token", map[string]any{}, &tok); code != http.StatusCreated {
			t.Fatalf("token: %d %s", code, body)
		}
		// The identity provider: 24 users and a group.
		var names []string
		for i := range 24 {
			names = append(names, fmt.Sprintf("user%02d@example.com", i))
		}
		names = append(names, "guest@partner.example")
		for _, n := range names {
			doc := sd.scim(tok.Token, "POST", "/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"active":true,"emails":[{"value":%q,"primary":true}]}`, n, n))
			sd.ids[n] = doc["id"].(string)
		}
		doc := sd.scim(tok.Token, "POST", "/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engineering","members":[{"value":%q},{"value":%q}]}`,
			sd.ids["user00@example.com"], sd.ids["user01@example.com"]))
		sd.ids["Engineering"] = doc["id"].(string)

		// The worker's first round: every user in the site but the guest
		// (403), the group too.
		const forbidden = "Atlassian refused to create the account (403 Forbidden): the service account may not do this for this account."
		sd.finish(func(tx *store.Tx, c *store.SyncClaim) []store.SyncResult {
			switch {
			case c.ResourceID == sd.ids["guest@partner.example"]:
				return all(c, models.OutboxStatusFailed, forbidden)
			case c.ResourceType == "Group":
				if err := tx.SaveSyncGroup(&models.SyncGroup{SiteID: sd.site.ID, GroupID: c.ResourceID, AtlassianID: "group-id-engineering", Name: "Engineering"}); err != nil {
					t.Fatal(err)
				}
			default:
				if err := tx.SaveSyncUser(&models.SyncUser{SiteID: sd.site.ID, UserID: c.ResourceID, AccountID: "712020:acct-" + c.ResourceID[len(c.ResourceID)-6:], State: models.SyncUserActive}); err != nil {
					t.Fatal(err)
				}
			}
			return all(c, models.OutboxStatusApplied, "")
		})
		// A misfire: 22 deactivations, held by the brake; then Atlassian
		// refuses the credentials and the sync pauses.
		deactivate := func(n string) {
			sd.scim(tok.Token, "PATCH", "/Users/"+sd.ids[n], `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
		}
		for _, n := range names[:22] {
			deactivate(n)
		}
		const heldReason = "Held back: 22 deactivations and deletions since 2026-12-06 10:00 UTC exceed this site's limit of 20 within an hour."
		hold := func(tx *store.Tx, c *store.SyncClaim) []store.SyncResult {
			if c.ResourceType != "User" {
				return all(c, models.OutboxStatusApplied, "")
			}
			return all(c, models.OutboxStatusHeld, heldReason)
		}
		sd.finish(hold)
		err = s.app.Store().InTx(ctx, func(tx *store.Tx) error {
			return tx.PauseSync(sd.site.ID, "Atlassian rejected the service account's credentials (401). Save working credentials in the Service account section, or press Resume once they work again.", acc.UpdatedAt)
		})
		if err != nil {
			t.Fatal(err)
		}

		tb := newTab(t, browser, s, stub)
		tb.open()
		tb.step("overview")
		tb.waitText("#overview-alerts", "User provisioning is paused", 10*time.Second)
		tb.waitText("#overview-alerts", "22 deactivations and deletions wait for you", 5*time.Second)
		tb.waitText("#overview-alerts", "1 change could not be applied", 5*time.Second)
		tb.screenshots("sync-overview")
		tb.goTo("provisioning")
		tb.step("paused")
		tb.waitText("#pv-sync-paused", "The sync to Jira is paused", 10*time.Second)
		tb.waitText("#pv-sync-paused", "rejected the service account", 5*time.Second)
		tb.waitText("#pv-sync-summary", "Paused", 5*time.Second)
		tb.waitText("#pv-sync-failed", "guest@partner.example", 5*time.Second)
		tb.waitText("#pv-sync-failed", "403 Forbidden", 5*time.Second)
		tb.waitText("#pv-sync-held", "22 deactivations and deletions are held back", 5*time.Second)
		tb.waitText("#pv-held-who", "user00@example.com", 5*time.Second)
		tb.waitText("#pv-sync-recent", "Applied", 5*time.Second)
		tb.checkLabels()
		tb.screenshots("sync-paused")

		tb.step("resume")
		tb.submit("#pv-sync-resume")
		tb.waitFor("the paused banner to go", 10*time.Second, nil, `function () { return !document.getElementById("pv-sync-paused"); }`)
		tb.waitText("#pv-sync-status", "goes on", 5*time.Second)
		if ss, err := s.app.Store().View(ctx).FindSyncSite(sd.site.ID); err != nil || ss.Paused {
			t.Errorf("after Resume: %+v %v", ss, err)
		}

		tb.step("retry")
		tb.focus(`[data-retry]`)
		tb.press(kb.Enter)
		tb.waitText("#pv-sync-failed", "No failed changes", 10*time.Second)
		tb.waitText("#pv-sync-status", "queued again", 5*time.Second)
		if d := outboxDiff(map[string]int{models.OutboxStatusFailed: 0, models.OutboxStatusPending: 1}, sd.outbox()); d != "" {
			t.Errorf("after Retry, outbox items by status (-want +got):\n%s", d)
		}

		tb.step("apply held")
		tb.submit("#pv-held-apply")
		tb.waitText("#pv-sync-held", "Really apply them?", 5*time.Second)
		if id := tb.activeID(); id != "pv-held-apply" {
			t.Errorf("focus after the first press of Apply: %q", id)
		}
		tb.screenshots("sync-held-confirm")
		tb.press(kb.Enter)
		tb.waitFor("the held changes to go", 10*time.Second, nil, `function () { return !document.getElementById("pv-sync-held"); }`)
		if d := outboxDiff(map[string]int{models.OutboxStatusHeld: 0, models.OutboxStatusPending: 23}, sd.outbox()); d != "" {
			t.Errorf("after Apply, outbox items by status (-want +got):\n%s", d)
		}

		tb.step("discard held")
		// The worker holds them again (a second misfire); the admin discards.
		sd.finish(func(tx *store.Tx, c *store.SyncClaim) []store.SyncResult {
			if c.ResourceID == sd.ids["guest@partner.example"] {
				return nil
			}
			return hold(tx, c)
		})
		tb.submit("#pv-sync-refresh")
		tb.waitText("#pv-sync-held", "held back", 10*time.Second)
		tb.submit("#pv-held-discard")
		tb.waitText("#pv-sync-status", "were discarded", 10*time.Second)
		if d := outboxDiff(map[string]int{models.OutboxStatusHeld: 0, models.OutboxStatusDiscarded: 22}, sd.outbox()); d != "" {
			t.Errorf("after Discard, outbox items by status (-want +got):\n%s", d)
		}
		tb.waitText("#pv-sync-recent", "Discarded", 5*time.Second)
		tb.waitText("#pv-sync-summary", "1 change, the oldest for", 5*time.Second)
		tb.screenshots("sync-after-discard")

		tb.step("directory")
		tb.waitText("#pv-dir-rows", "user00@example.com", 10*time.Second)
		want := "712020:acct-" + sd.ids["user00@example.com"][len(sd.ids["user00@example.com"])-6:]
		tb.waitText("#pv-dir-rows", want, 5*time.Second)
		tb.typeInto("#pv-dir-q", "GUEST")
		tb.submit("#pv-dir-show")
		tb.waitFor("only the guest", 10*time.Second, nil, `function () {
			const rows = document.querySelectorAll("#pv-dir-rows tr");
			return rows.length === 1 && rows[0].textContent.includes("guest@partner.example") && rows[0].textContent.includes("Being created");
		}`)
		tb.typeInto("#pv-dir-q", "")
		tb.focus("#pv-dir-type-users")
		tb.press(kb.ArrowDown)
		tb.waitText("#pv-dir-rows", "group-id-engineering", 10*time.Second)
		tb.waitText("#pv-dir-table", "Group name", 5*time.Second)
		tb.screenshots("sync-directory-groups")

		tb.step("bad input: brake threshold")
		tb.typeInto("#pv-deletionThreshold", "250")
		tb.submit("#pv-save")
		if msg := tb.waitError("pv-deletionThreshold", 5*time.Second); !strings.Contains(msg, "percentage") {
			t.Errorf("threshold 250: %q", msg)
		}
		tb.typeInto("#pv-deletionThreshold", "25")
		tb.submit("#pv-save")
		tb.waitText("#pv-status", "Saved", 10*time.Second)
		var prov struct {
			DeletionThreshold int `json:"deletionThreshold"`
		}
		code, body := s.api("GET", "/provisioning", nil, &prov)
		if d := cmp.Diff(map[string]int{"status": 200, "deletionThreshold": 25}, map[string]int{"status": code, "deletionThreshold": prov.DeletionThreshold}); d != "" {
			t.Errorf("threshold after saving 25: %s (-want +got):\n%s", body, d)
		}

		tb.step("bad input: organization ID")
		tb.goTo("service-account")
		tb.waitText("#sa-current", "Organization ID", 10*time.Second)
		tb.mustEval(nil, `function () { document.getElementById("sa-org").open = true; }`)
		tb.typeInto("#sa-orgId", "not an org id!")
		tb.submit("#sa-save")
		if msg := tb.waitError("sa-orgId", 10*time.Second); !strings.Contains(msg, "organization ID") {
			t.Errorf("bad organization ID: %q", msg)
		}
		tb.step("organization ID")
		const orgID = "4a5b6c7d-1234-4bcd-9876-0123456789ab"
		tb.typeInto("#sa-orgId", orgID)
		tb.submit("#sa-save")
		tb.waitText("#sa-status", "Saved", 10*time.Second)
		tb.waitText("#sa-current", orgID, 5*time.Second)
		var sa struct {
			OrgID string `json:"orgId"`
		}
		code, body = s.api("GET", "/service-account", nil, &sa)
		if d := cmp.Diff(map[string]any{"status": 200, "orgId": orgID}, map[string]any{"status": code, "orgId": sa.OrgID}); d != "" {
			t.Errorf("orgId after saving: %s (-want +got):\n%s", body, d)
		}
		tb.checkNoSecretInPage(s.goodToken)
		if errs := tb.consoleErrors(); len(errs) > 0 {
			t.Errorf("the console has %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
		}
	})
}
