package provisioning_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"idbridge/app/provisioning"
	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/handlers"
	"idbridge/models"
)

// Any bytes in a SCIM path, header or body are a 4xx, the same on both
// databases: a site ID or resource ID that idbridge cannot have issued
// (NUL, invalid UTF-8, 60 KB long, the wrong kind) is refused by its shape
// before any lookup. On PostgreSQL a NUL or invalid UTF-8 byte in the site
// ID, /Users/{id} or /Groups/{id} used to be a 500.
func TestServerAnyBytesAre4xx(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newSCIMEnv(t, b)
		s := e.newSite()
		uid := s.createUser("alice")
		gid := s.createGroup("admins", uid)
		long := strings.Repeat("x", 60<<10)
		badSites := []string{"%00", "s_%00", "%FF%FE", "s_" + strings.Repeat("a", 25) + "%FF", long, "s_" + long,
			strings.Replace(s.site.ID, "s_", "u_", 1), strings.ToUpper(s.site.ID), s.site.ID + "a", "s_" + strings.Repeat("a", 26)}
		for _, site := range badSites {
			for _, path := range []string{"/Users", "/Users/" + uid, "/Groups", "/ServiceProviderConfig"} {
				r := e.request("GET", "/scim/v2/"+site+path, nil, "Authorization: Bearer "+s.token)
				r.wantError(401, "")
			}
		}
		badIDs := []string{"%00", "u_%00", "%FF%FE", "u_" + strings.Repeat("a", 25) + "%FF", long,
			"u_" + strings.Repeat("A", 26), uid + "%00", gid}
		for _, endpoint := range []string{"Users", "Groups"} {
			for _, id := range badIDs {
				if endpoint == "Groups" {
					id = strings.Replace(strings.Replace(id, "u_", "g_", 1), gid, uid, 1)
				}
				patch := map[string]any{"Operations": []any{map[string]any{"op": "replace", "path": "displayName", "value": "x"}}}
				s.do("GET", "/"+endpoint+"/"+id, nil).wantError(404, "")
				s.do("PUT", "/"+endpoint+"/"+id, map[string]any{"userName": "x", "displayName": "x"}).wantError(404, "")
				s.do("PATCH", "/"+endpoint+"/"+id, patch).wantError(404, "")
				s.do("DELETE", "/"+endpoint+"/"+id, nil).wantError(404, "")
			}
		}
		// Bytes in headers, query parameters and bodies: answered, never a 500.
		odd := "a\xff\xfe\x00b\u2028" + strings.Repeat("é", 10)
		for _, h := range []string{"If-Match: " + odd, "If-None-Match: " + odd, "Content-Type: " + odd, "Accept: " + odd} {
			if r := s.do("GET", "/Users/"+uid, nil, h); r.Code >= 500 {
				t.Errorf("header %q: %d", h, r.Code)
			}
			if r := s.do("PATCH", "/Users/"+uid, map[string]any{"Operations": []any{map[string]any{"op": "replace", "path": "title", "value": "t"}}}, h); r.Code >= 500 {
				t.Errorf("PATCH with header %q: %d", h, r.Code)
			}
		}
		s.do("GET", "/Users/"+uid, nil, "Authorization: Bearer "+odd).wantError(401, "")
		for _, f := range []string{"userName eq \"a\xff\"", "userName eq a\xffb", "emails[value co \"\xfe\"]", "\xff eq \"x\"", "title sw \"\xc3\""} {
			if r := s.do("GET", "/Users?filter="+url.QueryEscape(f), nil); r.Code >= 500 || r.Code == 0 {
				t.Errorf("filter %q: %d", f, r.Code)
			}
		}
		for _, p := range []string{"attributes=\xff", "sortBy=\xff", "excludedAttributes=a%00b", "count=\xff", "startIndex=%00"} {
			if r := s.do("GET", "/Users?"+p, nil); r.Code >= 500 {
				t.Errorf("query %q: %d", p, r.Code)
			}
		}
		for i, body := range []string{
			"{\"userName\":\"bad\xffutf8\",\"title\":\"\xfe\"}",
			"{\"userName\":\"k\",\"\xff\":\"v\"}",
			"{\"userName\":\"k2\",\"emails\":[{\"value\":\"\xc3\"}]}",
			"\xff\xfe",
			"{\"userName\":\"" + strings.Repeat("\\ud800", 100) + "\"}",
		} {
			if r := s.do("POST", "/Users", body); r.Code >= 500 {
				t.Errorf("body %d: %d %s", i, r.Code, r.Raw)
			}
		}
	})
}

// A disabled site (the app switched off in Jira or Confluence) may read its
// directory but not change it: writes are 403 in words, reads and .search
// go on, and once enabled again writes work. Nothing waits for "enabled":
// a site that never received "disabled" writes as any other.
func TestServerDisabledSiteRefusesWrites(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newSCIMEnv(t, b)
		s := e.newSite()
		uid := s.createUser("alice")
		gid := s.createGroup("admins")
		setState := func(state models.SiteState) {
			t.Helper()
			if err := e.st.InTx(context.Background(), func(tx *store.Tx) error { return tx.SetSiteState(s.site.ID, state) }); err != nil {
				t.Fatal(err)
			}
		}
		setState(models.SiteDisabled)
		patch := map[string]any{"Operations": []any{map[string]any{"op": "replace", "path": "displayName", "value": "x"}}}
		for _, w := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/Users", map[string]any{"userName": "bob"}},
			{"PUT", "/Users/" + uid, map[string]any{"userName": "alice"}},
			{"PATCH", "/Users/" + uid, patch},
			{"DELETE", "/Users/" + uid, nil},
			{"POST", "/Groups", map[string]any{"displayName": "ops"}},
			{"PATCH", "/Groups/" + gid, patch},
			{"DELETE", "/groups/" + gid + "/", nil},
		} {
			r := s.do(w.method, w.path, w.body).wantError(403, "")
			if d := r.str("detail"); !strings.Contains(d, "disabled") || !strings.Contains(d, "site admin") {
				t.Errorf("%s %s: detail %q does not say why", w.method, w.path, d)
			}
		}
		s.do("GET", "/Users/"+uid, nil).want(200)
		s.do("GET", "/Users?filter="+q(`userName eq "alice"`), nil).want(200)
		s.do("POST", "/Users/.search", map[string]any{"filter": `userName eq "alice"`}).want(200)
		s.do("POST", "/.search", map[string]any{}).want(200)
		s.do("GET", "/Schemas", nil).want(200)
		// A wrong token learns nothing about the site's state.
		e.request("POST", s.base+"/Users", map[string]any{"userName": "x"}, "Authorization: Bearer nope").wantError(401, "")
		setState(models.SiteInstalled)
		s.do("POST", "/Users", map[string]any{"userName": "bob"}).want(201)
		s.do("PATCH", "/Users/"+uid, patch).want(200)
	})
}

// A database that is unavailable (restarting, connections cut, a lock held
// past the deadline) is a 503 with Retry-After and a SCIM error body for
// every SCIM request, never a 500; once it is back, requests succeed again
// without a restart. On PostgreSQL the test puts a proxy in front of the
// server that cuts every connection and answers new ones as a starting
// server does (57P03); during a 1.5 s restart 722 requests used to be 500s.
func TestServerDatabaseUnavailableIs503(t *testing.T) {
	t.Parallel()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		st, proxy := storetest.OpenBehindProxy(t)
		e := newSCIMEnvOn(t, st)
		s := e.newSite()
		uid := s.createUser("alice")
		gid := s.createGroup("admins", uid)
		proxy.Down()
		for _, r := range unavailableRequests(s, uid, gid) {
			r.wantError(503, "")
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After: %s", r.Raw)
			}
		}
		proxy.Up()
		s.do("GET", "/Users/"+uid, nil).want(200)
		s.do("POST", "/Users", map[string]any{"userName": "after"}).want(201)
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "idbridge.db")
		st := storetest.Backends(t)[0].Open(t, storetest.WithStoreOptions(func(o *store.Options) {
			o.DSN = path
			o.StatementTimeout = 500 * time.Millisecond
		}))
		e := newSCIMEnvOn(t, st)
		s := e.newSite()
		uid := s.createUser("alice")
		// Another process holds the write lock past the deadline: a
		// connection of its own, opened with the store's SQLite engine.
		raw, err := st.SQLDB().Driver().Open("file:" + path + "?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		conn := raw.(driver.ExecerContext)
		if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE", nil); err != nil {
			t.Fatal(err)
		}
		for _, w := range []*resp{
			s.do("POST", "/Users", map[string]any{"userName": "bob"}),
			s.do("PATCH", "/Users/"+uid, map[string]any{"Operations": []any{map[string]any{"op": "replace", "path": "title", "value": "t"}}}),
			s.do("DELETE", "/Users/"+uid, nil),
		} {
			w.wantError(503, "")
			if w.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After: %s", w.Raw)
			}
		}
		// Readers are not blocked by a writer (WAL).
		s.do("GET", "/Users/"+uid, nil).want(200)
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK", nil); err != nil {
			t.Fatal(err)
		}
		s.do("POST", "/Users", map[string]any{"userName": "bob"}).want(201)
	})
}

// unavailableRequests sends one of every kind of SCIM request.
func unavailableRequests(s *scimSite, uid, gid string) []*resp {
	patch := map[string]any{"Operations": []any{map[string]any{"op": "replace", "path": "displayName", "value": "x"}}}
	return []*resp{
		s.do("GET", "/Users?filter="+q(`userName eq "alice"`), nil),
		s.do("GET", "/Users?filter="+q(`emails[type eq "work"]`), nil),
		s.do("GET", "/Users/"+uid, nil),
		s.do("GET", "/Groups/"+gid, nil),
		s.do("GET", "/Groups", nil),
		s.do("POST", "/Users/.search", map[string]any{"filter": `userName sw "a"`}),
		s.do("POST", "/Users", map[string]any{"userName": "bob"}),
		s.do("POST", "/Groups", map[string]any{"displayName": "ops"}),
		s.do("PUT", "/Users/"+uid, map[string]any{"userName": "alice"}),
		s.do("PATCH", "/Users/"+uid, patch),
		s.do("PATCH", "/Groups/"+gid, patch),
		s.do("DELETE", "/Users/"+uid, nil),
	}
}

// newSCIMEnvOn is newSCIMEnv over a store the test opened itself.
func newSCIMEnvOn(t testing.TB, st *store.Store) *scimEnv {
	t.Helper()
	u, _ := url.Parse(testBaseURL)
	svc := provisioning.NewService(provisioning.ServiceConfig{BaseURL: u}, st, nil, nil)
	h := handlers.New(handlers.Deps{BaseURL: u, SCIM: svc, Provisioning: svc, MaxBodyBytes: 4 << 20})
	return &scimEnv{t: t, st: st, svc: svc, h: h}
}

// A statement past its deadline is a 503 with Retry-After, never a 500, on
// both databases: here the costliest filter the limits allow, over users
// with the most emails, with a statement timeout of 50 ms. On SQLite the
// query is stopped while it steps through its rows (idbridge_alive), which
// the driver's own interruption does not reach.
func TestServerStatementDeadlineIs503(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		// Seeded with the usual deadline; served by a second store on the
		// same database whose statements have 50 ms.
		st := b.Open(t)
		s := newSCIMEnvOn(t, st).newSite()
		short := b.Open(t, storetest.SameDatabase(st), storetest.WithStoreOptions(func(o *store.Options) { o.StatementTimeout = 50 * time.Millisecond }))
		hurried := &scimSite{env: newSCIMEnvOn(t, short), site: s.site, token: s.token, base: s.base}
		var emails strings.Builder
		for i := range scim.MaxValues {
			if i > 0 {
				emails.WriteByte(',')
			}
			emails.WriteString(`{"type":"work","value":"user.` + strings.Repeat("x", i%7) + `@example.com"}`)
		}
		doc := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"emails":[` + emails.String() + `]}`
		ctx := context.Background()
		for from := 0; from < 3000; from += 500 {
			err := st.InTx(ctx, func(tx *store.Tx) error {
				for i := from; i < from+500; i++ {
					name := "u" + strings.Repeat("0", 6-len(itoa(i))) + itoa(i)
					if err := tx.CreateDirectoryUser(&models.DirectoryUser{SiteID: s.site.ID, UserName: name, Active: true, Doc: []byte(doc)}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		var vps []string
		for i := range scim.MaxMultiValuedTerms {
			vps = append(vps, `emails[value co "nomatch`+itoa(i)+`" and type eq "work"]`)
		}
		r := hurried.do("GET", "/Users?filter="+q(strings.Join(vps, " or ")), nil).wantError(503, "")
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After: %s", r.Raw)
		}
		s.do("GET", "/Users?filter="+q(`userName eq "u000001"`), nil).want(200)
	})
}

func itoa(i int) string { return fmt.Sprint(i) }
