package app_test

// End-to-end tests of the admin API's GDPR routes: the whole App on SQLite
// and PostgreSQL, through its HTTP engine, with context JWTs signed here.

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// raw sends method target as sub with a JSON body and returns the answer.
func (e *admEnv) raw(method, target, sub, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, admBaseURL+target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if sub != "" {
		r.Header.Set("Authorization", "JWT "+e.token(sub))
	}
	w := httptest.NewRecorder()
	e.app.Handler().ServeHTTP(w, r)
	return w
}

func TestAdminGDPRExportAndErase(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newAdmEnv(t, b)
		const ann = "557058:ann-customer"
		st := e.app.Store()
		// Ann signed in twice, and has a portal session; the admin saved
		// the service account.
		err := st.InTx(context.Background(), func(tx *store.Tx) error {
			for i := range 2 {
				if _, err := tx.CreateAuditEvent(e.site.ID, models.AuditEvent{ActorAccountID: ann, Event: models.AuditLoginSuccess,
					IP: "203.0.113.7", UserAgent: "Mozilla/5.0", IdP: "okta", Protocol: "oidc", OccurredAt: e.clock.Now().Add(-time.Duration(i) * time.Minute)}); err != nil {
					return err
				}
			}
			return tx.CreatePortalSession(e.site.ID, &models.PortalSession{SiteID: e.site.ID, ID: "h-" + strings.Repeat("a", 40), AccountID: ann,
				Email: "ann@example.com", DisplayName: "Ann", IdPID: "idp1", CreatedAt: e.clock.Now(), LastSeenAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(time.Hour)})
		})
		if err != nil {
			t.Fatal(err)
		}
		if code, _, raw := e.call("PUT", "/api/admin/service-account", admAdmin,
			`{"kind":"api_token","email":"bot@example.com","token":"`+admGoodToken+`"}`); code != 200 {
			t.Fatalf("PUT service account: %d %s", code, raw)
		}

		// The person's export: their rows with the inventory, no secret.
		w := e.raw("GET", "/api/admin/gdpr/export?accountId="+ann, admAdmin, "")
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") ||
			!strings.Contains(w.Header().Get("Content-Disposition"), "attachment") || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("export: %d %v", w.Code, w.Header())
		}
		var doc struct {
			Subject   map[string]string           `json:"subject"`
			Inventory []map[string]any            `json:"inventory"`
			Records   map[string][]map[string]any `json:"records"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatalf("export is not JSON: %v", err)
		}
		if d := cmp.Diff(map[string]any{"subject": ann, "audit_events": 2, "portal_sessions": 1},
			map[string]any{"subject": doc.Subject["accountId"], "audit_events": len(doc.Records["audit_events"]), "portal_sessions": len(doc.Records["portal_sessions"])}); d != "" {
			t.Fatalf("export: subject and records (-want +got):\n%s", d)
		}
		if d := cmp.Diff(map[string]any{"audit_events.0.ip": "203.0.113.7", "portal_sessions.0.email": "ann@example.com"},
			map[string]any{"audit_events.0.ip": doc.Records["audit_events"][0]["ip"], "portal_sessions.0.email": doc.Records["portal_sessions"][0]["email"]}); d != "" {
			t.Errorf("export rows (-want +got):\n%s", d)
		}
		if _, ok := doc.Records["portal_sessions"][0]["id"]; ok {
			t.Errorf("the export holds the session's hash")
		}
		for _, entry := range doc.Inventory {
			for _, k := range []string{"table", "column", "purpose"} {
				if entry[k] == "" || entry[k] == nil {
					t.Errorf("inventory entry without %s: %v", k, entry)
				}
			}
			if entry["personal"] == true && (entry["legalBasis"] == nil || entry["retention"] == nil || entry["recipients"] == nil || entry["source"] == nil || entry["category"] == nil) {
				t.Errorf("personal inventory entry incomplete: %v", entry)
			}
		}

		// The whole site: the admin is in it, the secrets are not.
		w = e.raw("GET", "/api/admin/gdpr/export", admAdmin, "")
		body := w.Body.String()
		if w.Code != 200 || !json.Valid(w.Body.Bytes()) || !strings.Contains(body, `"subject":null`) || !strings.Contains(body, admAdmin) {
			t.Fatalf("site export: %d %.300s", w.Code, body)
		}
		for _, secret := range []string{admGoodToken, string(e.secret), "shared_secret\":"} {
			if strings.Contains(body, secret) {
				t.Errorf("the site export holds a secret (%.12s…)", secret)
			}
		}
		code, got, _ := e.call("GET", "/api/admin/gdpr/export/count", admAdmin, "")
		if code != 200 || got["rows"].(float64) < 5 {
			t.Errorf("count: %d %v", code, got)
		}

		// Bad input: 400 naming the field, nothing written.
		for _, target := range []string{"/api/admin/gdpr/export?accountId=a%20b", "/api/admin/gdpr/export?accountId=", "/api/admin/gdpr/export/count?accountId=%27--"} {
			code, got, _ := e.call("GET", target, admAdmin, "")
			if d := answerDiff(fields{"http status": 400, "field": "accountId"}, code, got); d != "" {
				t.Errorf("GET %s (-want +got):\n%s", target, d)
			}
		}
		for _, body := range []string{`{}`, `{"accountId":""}`, `{"accountId":"x y"}`, `{"accountId":42}`, `[`} {
			code, got, _ := e.call("POST", "/api/admin/gdpr/erase", admAdmin, body)
			want := fields{"http status": 400}
			if body != `[` && body != `{"accountId":42}` {
				want["field"] = "accountId"
			}
			if d := answerDiff(want, code, got); d != "" {
				t.Errorf("erase %s (-want +got):\n%s", body, d)
			}
		}

		// An unknown account: records {}, and erasing it erases nothing (204).
		w = e.raw("GET", "/api/admin/gdpr/export?accountId=557058:nobody", admAdmin, "")
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"records":{}`) {
			t.Errorf("export of an unknown account: %d %s", w.Code, w.Body)
		}
		if w := e.raw("POST", "/api/admin/gdpr/erase", admAdmin, `{"accountId":"557058:nobody-else"}`); w.Code != http.StatusNoContent {
			t.Errorf("erase of an unknown account: %d %s", w.Code, w.Body)
		}

		// Erase Ann: 200 with what went, the audit rows pseudonymised.
		code, got, raw := e.call("POST", "/api/admin/gdpr/erase", admAdmin, `{"accountId":"`+ann+`"}`)
		if code != 200 || !strings.HasPrefix(got["pseudonym"].(string), models.ErasedTokenPrefix) || strings.Contains(raw, ann) {
			t.Fatalf("erase: %d %s", code, raw)
		}
		rows := got["rows"].(map[string]any)
		if rows["portal_sessions"] != 1.0 || rows["audit_events"].(float64) < 2 {
			t.Errorf("erase rows: %v", rows)
		}
		if w := e.raw("POST", "/api/admin/gdpr/erase", admAdmin, `{"accountId":"`+ann+`"}`); w.Code != http.StatusNoContent {
			t.Errorf("second erase: %d %s", w.Code, w.Body)
		}
		evs := e.audit()
		kinds := map[models.AuditEventType]int{}
		for _, ev := range evs {
			kinds[ev.Event]++
			if ev.ActorAccountID == ann || ev.TargetAccountID == ann {
				t.Errorf("after erasure an audit event names Ann: %+v", ev)
			}
			if ev.Event != models.AuditLoginSuccess {
				continue
			}
			if d := cmp.Diff(map[string]any{"ip": "", "userAgent": "", "actor pseudonymised": true},
				map[string]any{"ip": ev.IP, "userAgent": ev.UserAgent, "actor pseudonymised": strings.HasPrefix(ev.ActorAccountID, models.ErasedTokenPrefix)}); d != "" {
				t.Errorf("sign-in not pseudonymised (-want +got):\n%s", d)
			}
		}
		if d := cmp.Diff(map[string]int{"erased": 3, "exported": 3}, map[string]int{"erased": kinds[models.AuditDataErased], "exported": kinds[models.AuditDataExported]}); d != "" {
			t.Errorf("audit events %v (-want +got):\n%s", kinds, d)
		}
		w = e.raw("GET", "/api/admin/gdpr/export?accountId="+ann, admAdmin, "")
		if !strings.Contains(w.Body.String(), `"records":{}`) {
			t.Errorf("export after erasure: %s", w.Body)
		}

		// Restriction: set, listed, in the status, lifted; bad input 400.
		code, got, raw = e.call("POST", "/api/admin/gdpr/restrict", admAdmin, `{"accountId":"557058:bob","reason":"contested"}`)
		if d := answerDiff(fields{"http status": 200, "accountId": "557058:bob", "reason": "contested", "blockedCount": 0}, code, got); d != "" {
			t.Fatalf("restrict %s (-want +got):\n%s", raw, d)
		}
		code, got, _ = e.call("GET", "/api/admin/gdpr/restrictions", admAdmin, "")
		if list, _ := got["restrictions"].([]any); len(list) != 1 {
			t.Errorf("restrictions: %d %v, want one", code, got)
		} else if d := answerDiff(fields{"http status": 200, "next": nil}, code, got); d != "" {
			t.Errorf("restrictions (-want +got):\n%s", d)
		}
		code, got, _ = e.call("GET", "/api/admin/gdpr/status", admAdmin, "")
		if d := answerDiff(fields{"http status": 200, "restrictions": 1, "reporting.cyclePeriodDays": 7}, code, got); d != "" {
			t.Errorf("status (-want +got):\n%s", d)
		}
		// The audit log marks the restricted person.
		code, got, _ = e.call("GET", "/api/admin/audit?accountId=557058:bob", admAdmin, "")
		if evs, _ := got["events"].([]any); len(evs) != 1 {
			t.Errorf("audit of a restricted person: %d %v, want one event", code, got)
		} else if d := answerDiff(fields{"http status": 200, "events.0.restricted": true}, code, got); d != "" {
			t.Errorf("audit of a restricted person (-want +got):\n%s", d)
		}
		if w := e.raw("DELETE", "/api/admin/gdpr/restrict/557058:bob", admAdmin, ""); w.Code != http.StatusNoContent {
			t.Errorf("unrestrict: %d %s", w.Code, w.Body)
		}
		code, got, _ = e.call("GET", "/api/admin/audit?accountId=557058:bob", admAdmin, "")
		if evs, _ := got["events"].([]any); len(evs) != 2 {
			t.Errorf("audit after lifting: %d %v, want two events", code, got)
		} else if d := answerDiff(fields{"http status": 200, "events.0.restricted": nil}, code, got); d != "" {
			t.Errorf("audit after lifting (-want +got):\n%s", d)
		}
		if code, _, _ := e.call("DELETE", "/api/admin/gdpr/restrict/557058:bob", admAdmin, ""); code != http.StatusNotFound {
			t.Errorf("unrestrict again: %d", code)
		}
		for _, c := range []struct{ method, target, body, field string }{
			{"POST", "/api/admin/gdpr/restrict", `{"accountId":"no spaces"}`, "accountId"},
			{"POST", "/api/admin/gdpr/restrict", `{"reason":"x"}`, "accountId"},
			{"DELETE", "/api/admin/gdpr/restrict/bad%20id", "", "accountId"},
			{"GET", "/api/admin/gdpr/restrictions?limit=0", "", "limit"},
		} {
			code, got, _ := e.call(c.method, c.target, admAdmin, c.body)
			if d := answerDiff(fields{"http status": 400, "field": c.field}, code, got); d != "" {
				t.Errorf("%s %s (-want +got):\n%s", c.method, c.target, d)
			}
		}

		// Not an admin: 403; no token: 401.
		for _, r := range []struct{ method, target, body string }{
			{"GET", "/api/admin/gdpr/export", ""}, {"GET", "/api/admin/gdpr/export/count", ""},
			{"POST", "/api/admin/gdpr/erase", `{"accountId":"557058:x"}`}, {"POST", "/api/admin/gdpr/restrict", `{"accountId":"557058:x"}`},
			{"DELETE", "/api/admin/gdpr/restrict/557058:x", ""}, {"GET", "/api/admin/gdpr/restrictions", ""}, {"GET", "/api/admin/gdpr/status", ""},
			{"GET", "/api/admin/gdpr/reporting", ""},
		} {
			if w := e.raw(r.method, r.target, admNotAdmin, r.body); w.Code != http.StatusForbidden {
				t.Errorf("%s %s as a non-admin: %d", r.method, r.target, w.Code)
			}
			if w := e.raw(r.method, r.target, "", r.body); w.Code != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d", r.method, r.target, w.Code)
			}
		}
	})
}

// TestAdminGDPRReporting: GET /api/admin/gdpr/reporting (SPEC 4) answers
// the site's Personal Data Reporting cycle as stored, the same object
// GET /api/admin/gdpr/status nests under reporting; only for a site
// administrator with a context JWT.
func TestAdminGDPRReporting(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newAdmEnv(t, b)

		// Before any cycle: the default period, nothing reported, no times.
		w := e.raw("GET", "/api/admin/gdpr/reporting", admAdmin, "")
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("reporting: %d, not JSON: %s", w.Code, w.Body)
		}
		if d := answerDiff(fields{"http status": 200, "enabled": true, "accountsHeld": 0, "cyclePeriodDays": 7, "inProgress": false,
			"lastCycleAt": nil, "nextCycleAt": nil, "retryAt": nil, "accountsReported": 0, "accountsClosed": 0,
			"closedAccountsErased": 0, "accountsUpdated": 0, "answersIgnored": 0, "lastStatus": nil, "restrictions": nil,
		}, w.Code, got); d != "" {
			t.Errorf("before any cycle (-want +got):\n%s", d)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}

		// After a cycle: what the cycle stored, as stored.
		finished := e.clock.Now().Add(-time.Hour)
		next := finished.Add(72 * time.Hour)
		err := e.app.Store().InTx(context.Background(), func(tx *store.Tx) error {
			if err := tx.UpsertReportAccounts(e.site.ID, []string{"557058:a", "557058:b", "557058:c"}, finished.Add(-time.Minute)); err != nil {
				return err
			}
			return tx.SaveReportSite(&store.ReportSite{SiteID: e.site.ID, CyclePeriod: 3 * 24 * time.Hour,
				CycleFinishedAt: &finished, NextCycleAt: &next, Reported: 3, Closed: 2, Erased: 1, Updated: 1, Ignored: 1,
				LastStatus: "ok", LastMessage: "3 accounts reported in 1 requests; 2 closed (1 erased), 1 updated, 1 answers ignored"})
		})
		if err != nil {
			t.Fatal(err)
		}
		code, got, raw := e.call("GET", "/api/admin/gdpr/reporting", admAdmin, "")
		if d := answerDiff(fields{"http status": 200, "enabled": true, "accountsHeld": 3, "cyclePeriodDays": 3, "inProgress": false,
			"retryAt": nil, "accountsReported": 3, "accountsClosed": 2, "closedAccountsErased": 1, "accountsUpdated": 1,
			"answersIgnored": 1, "lastStatus": "ok", "lastMessage": "3 accounts reported in 1 requests; 2 closed (1 erased), 1 updated, 1 answers ignored",
		}, code, got); d != "" {
			t.Errorf("after a cycle %s (-want +got):\n%s", raw, d)
		}
		for name, want := range map[string]time.Time{"lastCycleAt": finished, "nextCycleAt": next} {
			s, _ := got[name].(string)
			if at, err := time.Parse(time.RFC3339Nano, s); err != nil || !at.Equal(want) {
				t.Errorf("%s = %q, want %s", name, got[name], want.Format(time.RFC3339Nano))
			}
		}
		// The admin page's /gdpr/status nests the same object.
		_, status, _ := e.call("GET", "/api/admin/gdpr/status", admAdmin, "")
		if d := cmp.Diff(got, status["reporting"]); d != "" {
			t.Errorf("status.reporting differs from /gdpr/reporting (-reporting +status):\n%s", d)
		}

		// Not an admin: 403; no token: 401; neither sees the facts.
		for _, c := range []struct {
			sub  string
			want int
		}{{admNotAdmin, http.StatusForbidden}, {"", http.StatusUnauthorized}} {
			code, got, raw := e.call("GET", "/api/admin/gdpr/reporting", c.sub, "")
			if code != c.want || got["error"] == nil || strings.Contains(raw, "accountsHeld") {
				t.Errorf("as %q: %d %s, want %d with an error", c.sub, code, raw, c.want)
			}
		}
	})
}

// TestAdminGDPRRectify: an administrator corrects a provisioned person's
// directory attributes by Atlassian account ID; the directory user
// changes as an identity provider's PATCH would change it (with an outbox
// item for the site), and the correction is audited by field name.
func TestAdminGDPRRectify(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newAdmEnv(t, b)
		base := "/scim/v2/" + e.site.ID
		_, got, _ := e.call("POST", "/api/admin/provisioning/token", admAdmin, "{}")
		token, _ := got["token"].(string)
		code, user := e.scimCall("POST", base+"/Users", token, `{"userName":"carol@example.com","displayName":"Carol Typo","name":{"givenName":"Carol","familyName":"Typo"},"emails":[{"value":"carol@exmaple.com","primary":true}],"active":true}`)
		if code != 201 {
			t.Fatalf("create user: %d %v", code, user)
		}
		id, _ := user["id"].(string)
		const carol = "557058:carol"
		if err := e.app.Store().InTx(context.Background(), func(tx *store.Tx) error {
			return tx.SaveSyncUser(&models.SyncUser{SiteID: e.site.ID, UserID: id, AccountID: carol, State: models.SyncUserActive})
		}); err != nil {
			t.Fatal(err)
		}
		pending := func() int {
			c, err := e.app.Store().View(context.Background()).CountSyncStatus(e.site.ID, e.clock.Now().Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return c.Pending
		}
		pendingBefore := pending()

		code, got, raw := e.call("POST", "/api/admin/gdpr/rectify", admAdmin, `{"accountId":"`+carol+`","displayName":"Carol Tyler","familyName":"Tyler","email":"carol@example.com"}`)
		users, _ := got["directoryUsers"].([]any)
		if d := cmp.Diff(map[string]any{"http status": 200, "has notice": true, "directoryUsers": 1},
			map[string]any{"http status": code, "has notice": got["notice"] != nil, "directoryUsers": len(users)}); d != "" {
			t.Fatalf("rectify %s (-want +got):\n%s", raw, d)
		}
		code, user = e.scimCall("GET", base+"/Users/"+id, token, "")
		emails, _ := user["emails"].([]any)
		if len(emails) != 1 {
			t.Errorf("the directory user after rectification: %v, want one email", user)
		}
		if d := answerDiff(fields{"http status": 200, "displayName": "Carol Tyler", "name.familyName": "Tyler", "name.givenName": "Carol",
			"emails.0.value": "carol@example.com"}, code, user); d != "" {
			t.Errorf("the directory user after rectification (-want +got):\n%s", d)
		}
		if pendingAfter := pending(); pendingAfter != pendingBefore+1 {
			t.Errorf("outbox items %d → %d, want one more for the sync", pendingBefore, pendingAfter)
		}
		found := false
		for _, ev := range e.audit() {
			if ev.Event == models.AuditRecordCorrected && ev.Section == "directory" && ev.TargetAccountID == carol && ev.ActorAccountID == admAdmin &&
				strings.Join(ev.Fields, ",") == "displayName,email,familyName" {
				found = true
			}
		}
		if !found {
			t.Errorf("no record_corrected event for the rectification: %+v", e.audit())
		}

		for _, c := range []struct {
			body  string
			code  int
			field string
		}{
			{`{"accountId":"557058:nobody","displayName":"X"}`, 404, ""},
			{`{"accountId":"` + carol + `","email":"not-an-email"}`, 400, "email"},
			{`{"accountId":"` + carol + `","displayName":""}`, 400, "displayName"},
			{`{"accountId":"` + carol + `"}`, 400, ""},
			{`{"accountId":"bad id","displayName":"X"}`, 400, "accountId"},
			{`{"displayName":"X"}`, 400, "accountId"},
			{`{"accountId":"` + carol + `","givenName":7}`, 400, "givenName"},
		} {
			code, got, _ := e.call("POST", "/api/admin/gdpr/rectify", admAdmin, c.body)
			want := fields{"http status": c.code}
			if c.field != "" {
				want["field"] = c.field
			}
			if d := answerDiff(want, code, got); d != "" {
				t.Errorf("rectify %s (-want +got):\n%s", c.body, d)
			}
		}
		if code, _, _ := e.call("POST", "/api/admin/gdpr/rectify", admNotAdmin, `{"accountId":"`+carol+`","displayName":"X"}`); code != 403 {
			t.Errorf("rectify as a non-admin: %d", code)
		}
	})
}

// TestAdminGDPRRectifyAllOrNothing: a person with two directory users is
// corrected in one transaction with the outbox items for the sync and the
// record_corrected event. When the database refuses the second user's
// write (after the first was written) or the audit event, nothing is left:
// no user changed, no outbox item, no event. Then the correction succeeds
// whole.
func TestAdminGDPRRectifyAllOrNothing(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newAdmEnv(t, b)
		base := "/scim/v2/" + e.site.ID
		_, got, _ := e.call("POST", "/api/admin/provisioning/token", admAdmin, "{}")
		token, _ := got["token"].(string)
		const carol, dave = "557058:carol", "557058:dave"
		var ids []string
		for _, u := range []struct{ userName, account string }{
			{"carol@example.com", carol}, {"carol.admin@example.com", carol}, {"dave@example.com", dave},
		} {
			code, user := e.scimCall("POST", base+"/Users", token, `{"userName":"`+u.userName+`","displayName":"Carol Typo","active":true}`)
			if code != 201 {
				t.Fatalf("create user: %d %v", code, user)
			}
			id, _ := user["id"].(string)
			ids = append(ids, id)
			if err := e.app.Store().InTx(context.Background(), func(tx *store.Tx) error {
				return tx.SaveSyncUser(&models.SyncUser{SiteID: e.site.ID, UserID: id, AccountID: u.account, State: models.SyncUserActive})
			}); err != nil {
				t.Fatal(err)
			}
		}
		// Carol's users in the order they are written.
		second := max(ids[0], ids[1])

		state := func() map[string]string {
			t.Helper()
			out := map[string]string{}
			for _, id := range ids {
				code, user := e.scimCall("GET", base+"/Users/"+id, token, "")
				meta, _ := user["meta"].(map[string]any)
				if code != 200 {
					t.Fatalf("GET user %s: %d %v", id, code, user)
				}
				out[id] = user["displayName"].(string) + " " + meta["version"].(string)
			}
			return out
		}
		pending := func() int {
			t.Helper()
			c, err := e.app.Store().View(context.Background()).CountSyncStatus(e.site.ID, e.clock.Now().Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return c.Pending
		}
		corrections := func() int {
			n := 0
			for _, ev := range e.audit() {
				if ev.Event == models.AuditRecordCorrected {
					n++
				}
			}
			return n
		}
		before, pendingBefore := state(), pending()
		rectify := `{"accountId":"` + carol + `","displayName":"Carol Tyler"}`

		for _, fail := range []struct{ what, table, op, when string }{
			{"the second directory user's write", "scim_users", "UPDATE", "NEW.id = '" + second + "'"},
			{"the audit event", "audit_events", "INSERT", "NEW.event = '" + string(models.AuditRecordCorrected) + "'"},
		} {
			remove := storetest.FailWrites(t, e.app.Store(), fail.table, fail.op, fail.when)
			if code, _, raw := e.call("POST", "/api/admin/gdpr/rectify", admAdmin, rectify); code != http.StatusInternalServerError {
				t.Errorf("rectify with %s refused: %d %s, want 500", fail.what, code, raw)
			}
			remove()
			if after := state(); !maps.Equal(after, before) {
				t.Errorf("rectify with %s refused: users %v, want %v", fail.what, after, before)
			}
			if n := pending(); n != pendingBefore {
				t.Errorf("rectify with %s refused: %d outbox items pending, want %d", fail.what, n, pendingBefore)
			}
			if n := corrections(); n != 0 {
				t.Errorf("rectify with %s refused: %d record_corrected events, want none", fail.what, n)
			}
		}

		code, got, raw := e.call("POST", "/api/admin/gdpr/rectify", admAdmin, rectify)
		users, _ := got["directoryUsers"].([]any)
		if d := cmp.Diff(map[string]int{"http status": 200, "directoryUsers": 2}, map[string]int{"http status": code, "directoryUsers": len(users)}); d != "" {
			t.Fatalf("rectify %s (-want +got):\n%s", raw, d)
		}
		after := state()
		for i, id := range ids {
			want := `Carol Tyler W/"2"`
			if i == 2 { // Dave's
				want = before[id]
			}
			if after[id] != want {
				t.Errorf("user %s after the correction: %s, want %s", id, after[id], want)
			}
		}
		if n := pending(); n != pendingBefore+2 {
			t.Errorf("%d outbox items pending after the correction, want %d", n, pendingBefore+2)
		}
		if n := corrections(); n != 1 {
			t.Errorf("%d record_corrected events after the correction, want 1", n)
		}
	})
}
