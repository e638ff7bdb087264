package provisioning_test

// The HTTP harness of the SCIM server tests: the real HTTP engine
// (handlers.New) over the real service and store, on SQLite and on
// PostgreSQL, with real per-site bearer tokens made the way the admin page
// makes them. Nothing is faked: the admin API is not under test here (see
// app's end-to-end test for it, with Connect JWTs).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"idbridge/app/provisioning"
	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/handlers"
	"idbridge/models"
)

const testBaseURL = "https://idbridge.test"

// scimEnv is one database with an HTTP engine and any number of sites.
type scimEnv struct {
	t   testing.TB
	st  *store.Store
	svc *provisioning.Service
	h   http.Handler
	// statements counts the statements the store ran (store.Options.
	// OnStatement), so that a test can bound a request's work by count.
	statements *atomic.Int64
}

// scimSite is an installed site with provisioning on.
type scimSite struct {
	env   *scimEnv
	site  *models.Site
	token string
	base  string // the SCIM base path, /scim/v2/{siteID}
}

var siteCounter atomic.Int64

// tune, when given, changes the store's options (a test about answer
// sizes, say, that must not meet the statement deadline under -race on a
// loaded machine).
func newSCIMEnv(t testing.TB, b storetest.Backend, tune ...func(*store.Options)) *scimEnv {
	t.Helper()
	statements := new(atomic.Int64)
	st := b.Open(t, storetest.WithStoreOptions(func(o *store.Options) {
		o.OnStatement = func(context.Context) { statements.Add(1) }
		for _, fn := range tune {
			fn(o)
		}
	}))
	u, _ := url.Parse(testBaseURL)
	svc := provisioning.NewService(provisioning.ServiceConfig{BaseURL: u}, st, nil, nil)
	h := handlers.New(handlers.Deps{BaseURL: u, SCIM: svc, Provisioning: svc, MaxBodyBytes: 4 << 20})
	return &scimEnv{t: t, st: st, svc: svc, h: h, statements: statements}
}

// newSite installs a site and generates its SCIM token.
func (e *scimEnv) newSite() *scimSite {
	e.t.Helper()
	n := siteCounter.Add(1)
	var site *models.Site
	err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		site, err = tx.SaveInstall(&models.Site{
			SiteFacts: models.SiteFacts{
				ClientKey: fmt.Sprintf("client-%d", n),
				BaseURL:   fmt.Sprintf("https://site-%d.atlassian.net", n),
			},
			SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
		})
		return err
	})
	if err != nil {
		e.t.Fatalf("install: %v", err)
	}
	s := &scimSite{env: e, site: site, base: "/scim/v2/" + site.ID}
	s.rotate()
	return s
}

// rotate makes a new token, as the admin page's button does.
func (s *scimSite) rotate() string {
	s.env.t.Helper()
	token, err := s.env.svc.RotateToken(context.Background(), &models.Caller{Site: s.site, AccountID: "admin-1"})
	if err != nil {
		s.env.t.Fatalf("rotate token: %v", err)
	}
	s.token = token
	return token
}

// resp is an answer, with its body decoded when it is JSON.
type resp struct {
	t      testing.TB
	Code   int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

// do sends a request with the site's token. header holds "Name: value"
// pairs; "Authorization:" (empty) sends none.
func (s *scimSite) do(method, path string, body any, header ...string) *resp {
	s.env.t.Helper()
	return s.env.request(method, s.base+path, body, append([]string{"Authorization: Bearer " + s.token}, header...)...)
}

func (e *scimEnv) request(method, target string, body any, header ...string) *resp {
	e.t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	r := httptest.NewRequest(method, target, rd)
	if body != nil {
		r.Header.Set("Content-Type", "application/scim+json")
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ":")
		v = strings.TrimSpace(v)
		if v == "" {
			r.Header.Del(k)
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	out := &resp{t: e.t, Code: w.Code, Header: w.Header(), Raw: w.Body.Bytes()}
	if len(out.Raw) > 0 {
		if err := json.Unmarshal(out.Raw, &out.Body); err != nil {
			e.t.Fatalf("%s %s: answer is not a JSON object: %v\n%s", method, target, err, out.Raw)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/scim+json" {
			e.t.Errorf("%s %s: Content-Type %q, want application/scim+json", method, target, ct)
		}
		checkNoNulls(e.t, method+" "+target, out.Body)
	}
	if out.Code >= 400 {
		checkSCIMError(e.t, method+" "+target, out)
	}
	return out
}

// checkNoNulls fails on a null or an empty documentationUri anywhere in an
// answer.
func checkNoNulls(t testing.TB, where string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				t.Errorf("%s: %q is null", where, k)
			}
			if k == "documentationUri" && e == "" {
				t.Errorf("%s: empty documentationUri", where)
			}
			checkNoNulls(t, where, e)
		}
	case []any:
		for _, e := range v {
			if e == nil {
				t.Errorf("%s: null in an array", where)
			}
			checkNoNulls(t, where, e)
		}
	}
}

// checkSCIMError checks the RFC 7644 error shape of a non-2xx answer.
func checkSCIMError(t testing.TB, where string, r *resp) {
	t.Helper()
	if r.Body == nil {
		t.Errorf("%s: %d without a SCIM error body", where, r.Code)
		return
	}
	schemas, _ := r.Body["schemas"].([]any)
	if len(schemas) != 1 || schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		t.Errorf("%s: error schemas %v", where, r.Body["schemas"])
	}
	if st, ok := r.Body["status"].(string); !ok || st != fmt.Sprint(r.Code) {
		t.Errorf("%s: error status %#v, want the string %q", where, r.Body["status"], fmt.Sprint(r.Code))
	}
}

// want fails unless the answer has the status.
func (r *resp) want(code int) *resp {
	r.t.Helper()
	if r.Code != code {
		r.t.Fatalf("status %d, want %d; body %s", r.Code, code, r.Raw)
	}
	return r
}

// wantError fails unless the answer is a SCIM error with status and
// scimType ("" for none).
func (r *resp) wantError(code int, scimType string) *resp {
	r.t.Helper()
	r.want(code)
	got, _ := r.Body["scimType"].(string)
	if got != scimType {
		r.t.Fatalf("scimType %q, want %q; body %s", got, scimType, r.Raw)
	}
	return r
}

// str reads a string at a dotted path of the body ("meta.version",
// "Resources.0.id").
func (r *resp) str(path string) string {
	r.t.Helper()
	v := lookup(r.Body, path)
	s, _ := v.(string)
	return s
}

func (r *resp) get(path string) any { return lookup(r.Body, path) }

// fields are a body's values at some paths ("meta.version",
// "Resources.0.id"), nil for an absent one.
type fields map[string]any

// diff compares the body's values at want's paths with want, as a go-cmp
// diff (-want +got) that names each path that differs; "" when they are
// equal. Numbers in want may be ints (JSON numbers decode as float64).
func (r *resp) diff(want fields) string {
	got, norm := fields{}, fields{}
	for path, w := range want {
		got[path] = r.get(path)
		if n, ok := w.(int); ok {
			w = float64(n)
		}
		norm[path] = w
	}
	return cmp.Diff(norm, got)
}

func (r *resp) num(path string) int {
	r.t.Helper()
	f, ok := lookup(r.Body, path).(float64)
	if !ok {
		r.t.Fatalf("%s is %#v, not a number; body %s", path, lookup(r.Body, path), r.Raw)
	}
	return int(f)
}

func lookup(v any, path string) any {
	for part := range strings.SplitSeq(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[part]
		case []any:
			var i int
			if _, err := fmt.Sscan(part, &i); err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// createUser posts a user and returns its id.
func (s *scimSite) createUser(userName string, extra ...map[string]any) string {
	s.env.t.Helper()
	body := map[string]any{
		"schemas":  []string{scim.UserSchema},
		"userName": userName,
		"name":     map[string]any{"givenName": "Given " + userName, "familyName": "Family"},
		"emails":   []any{map[string]any{"value": userName + "@example.com", "type": "work", "primary": true}},
		"active":   true,
	}
	for _, e := range extra {
		for k, v := range e {
			body[k] = v
		}
	}
	return s.do("POST", "/Users", body).want(201).str("id")
}

// createGroup posts a group with members and returns its id.
func (s *scimSite) createGroup(name string, memberIDs ...string) string {
	s.env.t.Helper()
	members := []any{}
	for _, id := range memberIDs {
		members = append(members, map[string]any{"value": id})
	}
	return s.do("POST", "/Groups", map[string]any{
		"schemas": []string{scim.GroupSchema}, "displayName": name, "members": members,
	}).want(201).str("id")
}

// outbox returns the site's outbox items.
func (s *scimSite) outbox() []models.OutboxItem {
	s.env.t.Helper()
	items, err := s.env.st.View(context.Background()).FindOutboxItems(s.site.ID, 0, 100000)
	if err != nil {
		s.env.t.Fatal(err)
	}
	return items
}

// ops lists the outbox ops after the first skip items.
func ops(items []models.OutboxItem, skip int) []string {
	var out []string
	for _, it := range items[min(skip, len(items)):] {
		out = append(out, string(it.Op))
	}
	return out
}

// ids returns the ids of a list answer's Resources.
func (r *resp) ids() []string {
	var out []string
	list, _ := r.get("Resources").([]any)
	for _, res := range list {
		if m, ok := res.(map[string]any); ok {
			id, _ := m["id"].(string)
			out = append(out, id)
		}
	}
	return out
}

func q(s string) string { return url.QueryEscape(s) }
