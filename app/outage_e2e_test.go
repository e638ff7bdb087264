package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"idbridge/app/apptest"
	"idbridge/app/provisioning"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// While PostgreSQL is unreachable (a proxy in front of it cuts every
// connection and refuses new ones), the whole App answers 503 with
// Retry-After, never 500: SCIM with a SCIM error body, the admin API with
// {"error"}; /readyz says so too; and once the database is back everything
// answers again without a restart. 722 SCIM requests were 500s during a
// 1.5 s restart before.
func TestDatabaseOutageIs503Everywhere(t *testing.T) {
	pgURL, _ := url.Parse(storetest.PostgresURL(t))
	proxy := newTCPProxy(t, pgURL.Host)
	env := map[string]string{
		"IDBRIDGE_ADDR":            "127.0.0.1:0",
		"IDBRIDGE_DATABASE_URL":    freshPostgresDSN(t, proxy.ln.Addr().String()),
		"IDBRIDGE_ENCRYPTION_KEYS": "k1:" + strings.Repeat("A", 43) + "=",
	}
	a, base, _ := runApp(t, loadConfig(t, env))
	ctx := context.Background()
	secret := []byte(strings.Repeat("s", 40))
	var site *models.Site
	if err := a.Store().InTx(ctx, func(tx *store.Tx) error {
		var err error
		site, err = tx.SaveInstall(&models.Site{
			SiteFacts:    models.SiteFacts{ClientKey: "outage-client", BaseURL: "https://outage.atlassian.net"},
			SharedSecret: secret,
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	token, err := provisioning.NewService(provisioning.ServiceConfig{}, a.Store(), nil, nil).RotateToken(ctx, &models.Caller{Site: site, AccountID: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	scimBase := base + "/scim/v2/" + site.ID
	do := func(method, target, auth, body string) (int, http.Header, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var doc map[string]any
		_ = json.Unmarshal(raw, &doc)
		return res.StatusCode, res.Header, doc
	}
	code, _, doc := do("POST", scimBase+"/Users", "Bearer "+token, `{"userName":"alice"}`)
	if code != 201 {
		t.Fatalf("create before the outage: %d %v", code, doc)
	}
	uid, _ := doc["id"].(string)
	contextJWT := apptest.SignJWT(t, jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": site.ClientKey, "sub": "admin-account", "qsh": "context-qsh",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
	}, "", secret)

	proxy.setDown(true)
	for _, r := range []struct{ method, target, auth, body string }{
		{"GET", scimBase + "/Users?filter=userName%20eq%20%22alice%22", "Bearer " + token, ""},
		{"GET", scimBase + "/Users/" + uid, "Bearer " + token, ""},
		{"POST", scimBase + "/Users", "Bearer " + token, `{"userName":"bob"}`},
		{"PATCH", scimBase + "/Users/" + uid, "Bearer " + token, `{"Operations":[{"op":"replace","path":"title","value":"x"}]}`},
		{"GET", base + "/api/admin/site", "JWT " + contextJWT, ""},
	} {
		code, h, doc := do(r.method, r.target, r.auth, r.body)
		if d := cmp.Diff(map[string]any{"status": 503, "has Retry-After": true}, map[string]any{"status": code, "has Retry-After": h.Get("Retry-After") != ""}); d != "" {
			t.Errorf("%s %s during the outage: %v (-want +got):\n%s", r.method, r.target, doc, d)
			continue
		}
		if strings.Contains(r.target, "/scim/") {
			if doc["status"] != "503" || doc["schemas"] == nil {
				t.Errorf("%s %s: not a SCIM error body: %v", r.method, r.target, doc)
			}
		} else if msg, _ := doc["error"].(string); msg == "" {
			t.Errorf("%s %s: not a JSON error body: %v", r.method, r.target, doc)
		}
	}
	if code, _, _ := do("GET", base+"/readyz", "", ""); code != 503 {
		t.Errorf("readyz during the outage: %d", code)
	}

	proxy.setDown(false)
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _, doc := do("GET", scimBase+"/Users/"+uid, "Bearer "+token, "")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SCIM after the outage: %d %v", code, doc)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _, doc := do("POST", scimBase+"/Users", "Bearer "+token, `{"userName":"bob"}`); code != 201 {
		t.Fatalf("create after the outage: %d %v", code, doc)
	}
}
