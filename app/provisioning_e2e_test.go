package app_test

// End to end: the admin page's User provisioning section (context JWT,
// site admin) makes the SCIM token, and the identity provider uses it on
// the whole App, on SQLite and PostgreSQL.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"

	"github.com/google/go-cmp/cmp"
)

// scimCall sends a SCIM request with a bearer token.
func (e *admEnv) scimCall(method, target, token, body string) (int, map[string]any) {
	e.t.Helper()
	r := httptest.NewRequest(method, admBaseURL+target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/scim+json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.app.Handler().ServeHTTP(w, r)
	var out map[string]any
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			e.t.Fatalf("%s %s: %d, not JSON: %s", method, target, w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/scim+json" {
			e.t.Errorf("%s %s: Content-Type %q", method, target, ct)
		}
	}
	return w.Code, out
}

// metrics is what /metrics answers.
func (e *admEnv) metrics() string {
	e.t.Helper()
	w := httptest.NewRecorder()
	e.app.Handler().ServeHTTP(w, httptest.NewRequest("GET", admBaseURL+"/metrics", nil))
	if w.Code != http.StatusOK {
		e.t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	return w.Body.String()
}

func TestProvisioningEndToEnd(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newAdmEnv(t, b)
		base := "/scim/v2/" + e.site.ID

		code, got, _ := e.call("GET", "/api/admin/provisioning", admAdmin, "")
		if d := answerDiff(fields{"http status": 200, "enabled": false, "baseUrl": admBaseURL + base, "deactivation": "remove_groups"}, code, got); d != "" {
			t.Fatalf("GET before a token (-want +got):\n%s", d)
		}
		if opts, _ := got["deactivationOptions"].([]any); len(opts) != 3 {
			t.Errorf("deactivation options: %v", got["deactivationOptions"])
		}
		// Nothing answers SCIM before a token exists.
		scimCode, scimBody := e.scimCall("GET", base+"/Users", "", "")
		if d := answerDiff(fields{"http status": 401, "status": "401"}, scimCode, scimBody); d != "" {
			t.Fatalf("SCIM before a token (-want +got):\n%s", d)
		}

		// Generate: answered once, with the base URL.
		code, got, raw := e.call("POST", "/api/admin/provisioning/token", admAdmin, "{}")
		token, _ := got["token"].(string)
		if d := answerDiff(fields{"http status": 201, "baseUrl": admBaseURL + base}, code, got); d != "" || len(token) < 40 {
			t.Fatalf("token %s, want at least 40 characters (-want +got):\n%s", raw, d)
		}
		_, got, raw = e.call("GET", "/api/admin/provisioning", admAdmin, "")
		if got["enabled"] != true || got["tokenCreatedAt"] == nil || strings.Contains(raw, token) {
			t.Fatalf("GET after a token: %s", raw)
		}
		code, body := e.scimCall("POST", base+"/Users", token, `{"userName":"e2e@example.com","active":true}`)
		if code != 201 {
			t.Fatalf("create user: %d %v", code, body)
		}
		if _, got, _ = e.call("GET", "/api/admin/provisioning", admAdmin, ""); got["directory"].(map[string]any)["users"] != float64(1) {
			t.Errorf("directory counts: %v", got["directory"])
		}
		// The change waits in the outbox, and /metrics says so.
		e.clock.Advance(90 * time.Second)
		metrics := e.metrics()
		for _, want := range []string{"\nidbridge_outbox_pending_items 1\n", "\nidbridge_outbox_oldest_pending_age_seconds 90\n"} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
			}
		}

		// Settings, validated field by field, audited by name.
		code, got, _ = e.call("PUT", "/api/admin/provisioning", admAdmin, `{"deactivation":"explode"}`)
		if d := answerDiff(fields{"http status": 400, "field": "deactivation"}, code, got); d != "" {
			t.Errorf("bad deactivation (-want +got):\n%s", d)
		}
		code, got, _ = e.call("PUT", "/api/admin/provisioning", admAdmin, `{"products":["jira-software","nope"]}`)
		if d := answerDiff(fields{"http status": 400, "field": "products"}, code, got); d != "" {
			t.Errorf("bad product (-want +got):\n%s", d)
		}
		code, got, raw = e.call("PUT", "/api/admin/provisioning", admAdmin, `{"deactivation":"suspend","provisionAs":"customer","products":["jira-servicedesk"]}`)
		if d := answerDiff(fields{"http status": 200, "deactivation": "suspend", "provisionAs": "customer", "enabled": true}, code, got); d != "" {
			t.Fatalf("PUT settings %s (-want +got):\n%s", raw, d)
		}

		// Rotate: the old token stops at once.
		_, got, _ = e.call("POST", "/api/admin/provisioning/token", admAdmin, "{}")
		newToken, _ := got["token"].(string)
		if code, _ := e.scimCall("GET", base+"/Users", token, ""); code != 401 {
			t.Errorf("old token after rotation: %d", code)
		}
		if code, _ := e.scimCall("GET", base+"/Users", newToken, ""); code != 200 {
			t.Errorf("new token: %d", code)
		}

		// Off: SCIM answers 401 and the directory stays.
		code, got, _ = e.call("PUT", "/api/admin/provisioning", admAdmin, `{"enabled":false}`)
		if d := answerDiff(fields{"http status": 200, "enabled": false, "directory.users": 1}, code, got); d != "" {
			t.Fatalf("turn off (-want +got):\n%s", d)
		}
		if code, _ := e.scimCall("GET", base+"/Users", newToken, ""); code != 401 {
			t.Errorf("token after turning off: %d", code)
		}
		code, got, _ = e.call("PUT", "/api/admin/provisioning", admAdmin, `{"enabled":true}`)
		if d := answerDiff(fields{"http status": 400, "field": "enabled"}, code, got); d != "" {
			t.Errorf("turn on without a token (-want +got):\n%s", d)
		}

		var kinds []string
		for _, ev := range e.audit() {
			if d := cmp.Diff(map[string]string{"actor": admAdmin, "section": "provisioning"}, map[string]string{"actor": ev.ActorAccountID, "section": ev.Section}); d != "" {
				t.Errorf("audit event %s (-want +got):\n%s", ev.Event, d)
			}
			kinds = append(kinds, string(ev.Event))
		}
		if len(kinds) != 4 {
			t.Errorf("audit events %v, want two token_rotated and two config_changed", kinds)
		}

		// Site admins only; a context token is required.
		for _, r := range []struct{ method, target, body string }{
			{"GET", "/api/admin/provisioning", ""}, {"PUT", "/api/admin/provisioning", `{}`}, {"POST", "/api/admin/provisioning/token", "{}"},
		} {
			if code, _, _ := e.call(r.method, r.target, admNotAdmin, r.body); code != http.StatusForbidden {
				t.Errorf("%s %s as a non-admin: %d", r.method, r.target, code)
			}
			if code, _, _ := e.call(r.method, r.target, "", r.body); code != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d", r.method, r.target, code)
			}
		}

		// Uninstall revokes it too.
		_, got, _ = e.call("POST", "/api/admin/provisioning/token", admAdmin, "{}")
		last, _ := got["token"].(string)
		if code, _ := e.scimCall("GET", base+"/Users", last, ""); code != 200 {
			t.Fatalf("token before uninstall: %d", code)
		}
		err := e.app.Store().InTx(context.Background(), func(tx *store.Tx) error {
			return tx.MarkSiteUninstalled(e.site.ID, time.Now().Add(time.Hour))
		})
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := e.scimCall("GET", base+"/Users", last, ""); code != 401 {
			t.Errorf("token after uninstall: %d", code)
		}
		if strings.Contains(e.logs.String(), last) || strings.Contains(e.logs.String(), "e2e@example.com") {
			t.Error("the logs contain a SCIM token or a provisioned email")
		}
	})
}
