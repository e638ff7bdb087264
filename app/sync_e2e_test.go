package app_test

// End to end: the whole App running (app.Run, so its sync worker too)
// against the stateful fake Atlassian, on SQLite and PostgreSQL. An
// identity provider provisions over SCIM, a site admin (context JWTs
// signed with the site's shared secret) watches and steers the sync
// through the admin API, and /metrics counts what happened.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"idbridge/app"
	"idbridge/app/apptest"
	"idbridge/app/fakeatlassian"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	syncworker "idbridge/app/sync"
	"idbridge/config"
	"idbridge/models"
)

const (
	syncAppKey   = "idbridge-sync-e2e"
	syncAdmin    = "557058:sync-admin"
	syncSvcEmail = "svc-sync@example.com"
	syncSvcToken = "ATATT3xFfGF0-sync-e2e-token-9z8y"
	syncOrgKey   = "org-admin-key-sync-e2e-0123456789"
)

type syncEnv struct {
	t      *testing.T
	app    *app.App
	fake   *fakeatlassian.Fake
	fs     *fakeatlassian.Site
	site   *models.Site
	secret []byte
	logs   *apptest.LockedBuffer
}

func newSyncEnv(t *testing.T, b storetest.Backend) *syncEnv {
	t.Helper()
	e := &syncEnv{t: t, logs: &apptest.LockedBuffer{}, secret: []byte(apptest.RandomHex(t, 24))}
	e.fake = fakeatlassian.New(fakeatlassian.Options{})
	t.Cleanup(e.fake.Close)
	e.fs = e.fake.NewSite(fakeatlassian.SiteOptions{})
	e.fs.AddServiceAccount(fakeatlassian.ServiceAccount{Email: syncSvcEmail, APIToken: syncSvcToken, Admin: true})
	e.fs.AddOrgKey(syncOrgKey)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := map[string]string{
		"IDBRIDGE_BASE_URL":              admBaseURL,
		"IDBRIDGE_APP_KEY":               syncAppKey,
		"IDBRIDGE_ADDR":                  "127.0.0.1:0",
		"IDBRIDGE_DATA_DIR":              t.TempDir(),
		"IDBRIDGE_DATABASE_URL":          b.DatabaseURL(t),
		"IDBRIDGE_ENCRYPTION_KEYS":       "sync1:" + base64.StdEncoding.EncodeToString(key),
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net," + e.fs.Host(),
		"IDBRIDGE_ATLASSIAN_API_URL":     e.fake.APIURL(),
		"IDBRIDGE_ATLASSIAN_AUTH_URL":    e.fake.APIURL(),
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	tmpl, err := os.ReadFile("../atlassian-connect.json")
	if err != nil {
		t.Fatal(err)
	}
	e.app, err = app.Open(context.Background(), cfg, app.Options{
		Log:                slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DescriptorTemplate: tmpl,
		// Quick retries, so that the 429 below is over soon.
		Sync: syncworker.Config{BaseBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, IdlePoll: 500 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("app.Open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := e.app.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	err = e.app.Store().InTx(ctx, func(tx *store.Tx) error {
		e.site, err = tx.SaveInstall(&models.Site{SharedSecret: e.secret, SiteFacts: models.SiteFacts{
			ClientKey: "sync-client-" + apptest.RandomHex(t, 4), BaseURL: e.fs.BaseURL(), ProductType: "jira", CloudID: e.fs.CloudID}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.fs.InstallApp(syncAppKey, string(e.secret), syncAdmin)
	return e
}

// call sends an admin API request with a context JWT of sub ("" for none).
func (e *syncEnv) call(method, target, sub, body string) (int, map[string]any, string) {
	e.t.Helper()
	r := httptest.NewRequest(method, admBaseURL+target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if sub != "" {
		now := time.Now()
		tok := apptest.SignJWT(e.t, jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": e.site.ClientKey, "sub": sub, "qsh": "context-qsh", "iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix(),
		}, "", e.secret)
		r.Header.Set("Authorization", "JWT "+tok)
	}
	w := httptest.NewRecorder()
	e.app.Handler().ServeHTTP(w, r)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		e.t.Fatalf("%s %s: %d, not a JSON object: %s", method, target, w.Code, w.Body)
	}
	return w.Code, out, w.Body.String()
}

func (e *syncEnv) scim(token, method, path, body string) map[string]any {
	e.t.Helper()
	r := httptest.NewRequest(method, admBaseURL+"/scim/v2/"+e.site.ID+path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/scim+json")
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	e.app.Handler().ServeHTTP(w, r)
	if w.Code/100 != 2 {
		e.t.Fatalf("SCIM %s %s: %d %s", method, path, w.Code, w.Body)
	}
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return out
}

func (e *syncEnv) metrics() string {
	e.t.Helper()
	w := httptest.NewRecorder()
	e.app.Handler().ServeHTTP(w, httptest.NewRequest("GET", admBaseURL+"/metrics", nil))
	return w.Body.String()
}

// metric is the value of one sample of /metrics (0 when absent).
func (e *syncEnv) metric(name string) float64 {
	e.t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(e.metrics())
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// status waits until the sync's status satisfies cond, and returns it.
func (e *syncEnv) status(what string, cond func(st map[string]any) bool) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, st, raw := e.call("GET", "/api/admin/sync", syncAdmin, "")
		if code != http.StatusOK {
			e.t.Fatalf("GET /api/admin/sync: %d %s", code, raw)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("waited in vain for %s: %s", what, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func num(v any) int { f, _ := v.(float64); return int(f) }

func TestSyncEndToEnd(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newSyncEnv(t, b)
		// A user the organization does not manage, there before idbridge.
		e.fs.AddAccount(fakeatlassian.Account{Email: "guest@partner.example", DisplayName: "Guest"})

		code, got, raw := e.call("POST", "/api/admin/provisioning/token", syncAdmin, "{}")
		token, _ := got["token"].(string)
		if d := cmp.Diff(map[string]any{"http status": http.StatusCreated, "has token": true}, map[string]any{"http status": code, "has token": token != ""}); d != "" {
			t.Fatalf("token %s (-want +got):\n%s", raw, d)
		}
		// Changes made before there is a service account wait, in words.
		var ids []string
		for i := range 6 {
			n := fmt.Sprintf("e2e%d@example.com", i)
			doc := e.scim(token, "POST", "/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"active":true,"emails":[{"value":%q,"primary":true}]}`, n, n))
			ids = append(ids, doc["id"].(string))
		}
		guest := e.scim(token, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"guest@partner.example","active":true}`)["id"].(string)
		e.scim(token, "POST", "/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engineering","members":[{"value":%q},{"value":%q}]}`, ids[0], ids[1]))
		st := e.status("the reason", func(st map[string]any) bool { return st["paused"] == true })
		reason, _ := st["pausedReason"].(string)
		if d := cmp.Diff(map[string]any{"reason says No service account": true, "resumable": false, "pending": 9},
			map[string]any{"reason says No service account": strings.Contains(reason, "No service account"), "resumable": st["resumable"], "pending": num(st["pending"])}); d != "" {
			t.Fatalf("without a service account: %v (-want +got):\n%s", st, d)
		}
		if n := e.metric("idbridge_outbox_pending_items"); n != 9 {
			t.Errorf("backlog gauge before the sync: %v", n)
		}

		// The service account arrives; Atlassian is busy once (429 with
		// Retry-After): everything reaches the site, and the backlog falls.
		e.fs.Inject(fakeatlassian.Fault{Route: "POST /rest/api/3/user", Status: 429, RetryAfter: "1", Times: 1})
		code, _, raw = e.call("PUT", "/api/admin/service-account", syncAdmin, fmt.Sprintf(`{"kind":"api_token","email":%q,"token":%q,"orgAdminKey":%q,"orgId":%q}`,
			syncSvcEmail, syncSvcToken, syncOrgKey, e.fs.OrgID))
		if code != http.StatusOK {
			t.Fatalf("service account: %d %s", code, raw)
		}
		st = e.status("the sync to finish", func(st map[string]any) bool { return num(st["pending"]) == 0 })
		failedItems, _ := st["failed"].([]any)
		if d := cmp.Diff(map[string]any{"paused": false, "applied at least 9": true, "failed": 0},
			map[string]any{"paused": st["paused"], "applied at least 9": num(lookupPath(st, "counts.applied")) >= 9, "failed": len(failedItems)}); d != "" {
			t.Errorf("after the sync: %v (-want +got):\n%s", st, d)
		}
		if _, ok := e.fs.Account("e2e5@example.com"); !ok {
			t.Error("a provisioned user is not in the site")
		}
		g, ok := e.fs.GroupByName("Engineering")
		if !ok || len(g.Members) != 2 {
			t.Errorf("group in the site: %+v", g)
		}
		for name, min := range map[string]float64{
			"idbridge_outbox_pending_items":                  0,
			`idbridge_sync_results_total{outcome="applied"}`: 9,
			`idbridge_sync_results_total{outcome="retry"}`:   1,
			`idbridge_sync_requests_total{answer="201"}`:     9,
			`idbridge_sync_requests_total{answer="429"}`:     1,
		} {
			v := e.metric(name)
			if (min == 0 && v != 0) || v < min {
				t.Errorf("%s = %v, want %v", name, v, min)
			}
		}
		if age := e.metric("idbridge_outbox_oldest_pending_age_seconds"); age != 0 {
			t.Errorf("oldest pending age after the sync: %v", age)
		}

		// The directory with the Atlassian IDs.
		code, got, raw = e.call("GET", "/api/admin/sync/directory?type=groups", syncAdmin, "")
		items, _ := got["items"].([]any)
		if len(items) != 1 {
			t.Errorf("groups: %d %s, want one", code, raw)
		} else if d := answerDiff(fields{"http status": 200, "items.0.atlassianId": g.ID, "next": nil}, code, got); d != "" {
			t.Errorf("groups (-want +got):\n%s", d)
		}
		code, got, raw = e.call("GET", "/api/admin/sync/directory?q=E2E0", syncAdmin, "")
		a, _ := e.fs.Account("e2e0@example.com")
		if items, _ := got["items"].([]any); len(items) != 1 {
			t.Errorf("users: %d %s, want one", code, raw)
		} else if d := answerDiff(fields{"http status": 200, "items.0.atlassianId": a.AccountID}, code, got); d != "" {
			t.Errorf("users (-want +got):\n%s", d)
		}
		for _, bad := range []struct{ q, field string }{{"type=people", "type"}, {"cursor=%00%FF", "cursor"}, {"q=" + strings.Repeat("x", 300), "q"}} {
			code, got, _ := e.call("GET", "/api/admin/sync/directory?"+bad.q, syncAdmin, "")
			if d := answerDiff(fields{"http status": http.StatusBadRequest, "field": bad.field}, code, got); d != "" {
				t.Errorf("%s (-want +got):\n%s", bad.q, d)
			}
		}

		// Suspending an account the organization does not manage: a 403,
		// a failed change in words, the site goes on; once the
		// organization manages it, Retry works.
		if code, _, raw := e.call("PUT", "/api/admin/provisioning", syncAdmin, `{"deactivation":"suspend"}`); code != 200 {
			t.Fatalf("deactivation mode: %d %s", code, raw)
		}
		for _, id := range []string{guest, ids[5]} {
			e.scim(token, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
		}
		st = e.status("the failed suspension", func(st map[string]any) bool { return num(st["pending"]) == 0 && len(st["failed"].([]any)) == 1 })
		failed := st["failed"].([]any)[0].(map[string]any)
		failedError, _ := failed["error"].(string)
		if d := cmp.Diff(map[string]any{"paused": false, "subject": "guest@partner.example", "error says 403": true},
			map[string]any{"paused": st["paused"], "subject": failed["subject"], "error says 403": strings.Contains(failedError, "403")}); d != "" {
			t.Fatalf("failed item: %v (-want +got):\n%s", st, d)
		}
		if a, _ := e.fs.Account("e2e5@example.com"); !a.Suspended {
			t.Error("the managed account was not suspended")
		}
		id := int(failed["id"].(float64))
		if code, _, _ := e.call("POST", fmt.Sprintf("/api/admin/sync/items/%d/retry", id), "557058:someone-else", ""); code != http.StatusForbidden {
			t.Errorf("retry by a non-admin: %d", code)
		}
		if code, _, _ := e.call("POST", fmt.Sprintf("/api/admin/sync/items/%d/retry", id), "", ""); code != http.StatusUnauthorized {
			t.Errorf("retry without a token: %d", code)
		}
		retryCode, retryGot, _ := e.call("POST", "/api/admin/sync/items/abc/retry", syncAdmin, "")
		if d := answerDiff(fields{"http status": http.StatusBadRequest, "field": "id"}, retryCode, retryGot); d != "" {
			t.Errorf("retry of a junk id (-want +got):\n%s", d)
		}
		e.fs.SetManaged("guest@partner.example", true)
		if code, _, raw := e.call("POST", fmt.Sprintf("/api/admin/sync/items/%d/retry", id), syncAdmin, ""); code != 200 {
			t.Fatalf("retry: %d %s", code, raw)
		}
		e.status("the retried suspension", func(st map[string]any) bool { return num(st["pending"]) == 0 && len(st["failed"].([]any)) == 0 })
		if a, _ := e.fs.Account("guest@partner.example"); !a.Suspended {
			t.Error("the retried suspension did not happen")
		}
		if code, got, _ := e.call("POST", fmt.Sprintf("/api/admin/sync/items/%d/retry", id), syncAdmin, ""); code != http.StatusConflict {
			t.Errorf("retry of an applied change: %d %v", code, got)
		}
		if v := e.metric(`idbridge_sync_results_total{outcome="failed"}`); v < 1 {
			t.Errorf("failed results: %v", v)
		}
		if v := e.metric(`idbridge_sync_requests_total{answer="403"}`); v < 1 {
			t.Errorf("403 answers: %v", v)
		}

		// No secret anywhere: not in the logs, the metrics or the status.
		_, _, status := e.call("GET", "/api/admin/sync", syncAdmin, "")
		if strings.Contains(e.logs.String(), "e2e0@example.com") {
			t.Error("the logs contain a provisioned email address")
		}
		for _, s := range []string{syncSvcToken, syncOrgKey, token, string(e.secret)} {
			for where, text := range map[string]string{"logs": e.logs.String(), "metrics": e.metrics(), "status": status} {
				if strings.Contains(text, s) {
					t.Errorf("the %s contain a secret: %.12s…", where, s)
				}
			}
		}
	})
}
