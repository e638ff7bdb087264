package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"idbridge/app/apptest"
	"idbridge/app/store/storetest"

	"github.com/google/go-cmp/cmp"
)

// connectJunkRoutes are the Connect routes an anonymous caller can reach:
// the lifecycle hooks, the admin page, and every admin API route the
// OpenAPI document describes (so a route added later is covered), with
// junk in place of path parameters. Every one answers before any admin
// check when the token is junk.
func connectJunkRoutes(t *testing.T, h *connectHarness) []struct{ method, path string } {
	t.Helper()
	routes := []struct{ method, path string }{
		{http.MethodPost, "/lifecycle/installed"},
		{http.MethodPost, "/lifecycle/uninstalled"},
		{http.MethodPost, "/lifecycle/enabled"},
		{http.MethodPost, "/lifecycle/disabled"},
		{http.MethodGet, "/admin"},
	}
	w := h.serve(nil, connectRequest(http.MethodGet, "/api/admin/openapi.json", nil, ""))
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || len(doc.Paths) == 0 {
		t.Fatalf("the OpenAPI document: %v (%d)", err, w.Code)
	}
	for path, ops := range doc.Paths {
		if path == "/api/admin/openapi.json" {
			continue // public on purpose
		}
		for method := range ops {
			p := path
			for strings.Contains(p, "{") {
				i, j := strings.Index(p, "{"), strings.Index(p, "}")
				p = p[:i] + "junk\x00\xff" + p[j+1:]
			}
			routes = append(routes, struct{ method, path string }{strings.ToUpper(method), p})
		}
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].method+routes[i].path < routes[j].method+routes[j].path })
	if len(routes) < 15 {
		t.Fatalf("only %d routes", len(routes))
	}
	return routes
}

// junk makes the byte sequences of the junk test: random bytes, and the
// bytes that have broken servers before (NUL, invalid UTF-8, lone
// surrogates, control characters, very long runs).
type junk struct{ r *rand.Rand }

func (j junk) bytes(max int) []byte {
	special := [][]byte{{0}, {0xff}, {0xc3}, {0xed, 0xa0, 0x80}, {'\r', '\n'}, {0x7f}, []byte("%00"), []byte("\\u0000"), []byte("\\ud800"), []byte("../"), []byte("é")}
	var b []byte
	for n := j.r.IntN(max + 1); len(b) < n; {
		if j.r.IntN(4) == 0 {
			b = append(b, special[j.r.IntN(len(special))]...)
		} else {
			b = append(b, byte(j.r.IntN(256)))
		}
	}
	return b
}

func (j junk) b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// token is a junk Connect JWT: three random parts, or a well-formed header
// and payload whose iss (and other claims) hold junk, with a random
// signature or kid.
func (j junk) token() string {
	switch j.r.IntN(4) {
	case 0:
		return string(j.bytes(200))
	case 1:
		return j.b64(j.bytes(40)) + "." + j.b64(j.bytes(200)) + "." + j.b64(j.bytes(32))
	}
	alg := []string{"HS256", "RS256", "none", "HS512"}[j.r.IntN(4)]
	header := `{"alg":"` + alg + `","kid":"` + fmt.Sprintf("kid-%x", j.r.Uint64()) + `"}`
	var payload []byte
	payload = append(payload, `{"iss":"`...)
	payload = append(payload, j.bytes(40)...)
	payload = append(payload, `","sub":"`...)
	payload = append(payload, j.bytes(20)...)
	payload = append(payload, fmt.Sprintf(`","qsh":"context-qsh","iat":%d,"exp":%d,"aud":"https://idbridge.test"}`, j.r.Int64N(1<<40), j.r.Int64N(1<<40))...)
	return j.b64([]byte(header)) + "." + j.b64(payload) + "." + j.b64(j.bytes(32))
}

// request is one junk request to a Connect route: junk in the path, the
// query, the Authorization header, the Content-Type and the body.
func (j junk) request(method, path string) *http.Request {
	u := &url.URL{Path: path}
	switch j.r.IntN(4) {
	case 0:
		u.Path += string(j.bytes(20))
	case 1:
		u.RawQuery = "jwt=" + url.QueryEscape(j.token())
	case 2:
		u.RawQuery = string(j.bytes(40))
	}
	var body []byte
	switch j.r.IntN(3) {
	case 0:
		body = j.bytes(300)
	case 1:
		// A lifecycle body whose fields hold junk (escaped, so the JSON
		// itself is valid).
		fields := map[string]string{}
		for _, k := range []string{"key", "clientKey", "sharedSecret", "baseUrl", "displayUrl", "productType", "description", "installationId", "cloudId", "eventType"} {
			fields[k] = string(j.bytes(60))
		}
		body, _ = json.Marshal(fields)
	}
	r := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Host:       "idbridge.test",
		RemoteAddr: "192.0.2.1:1234",
		RequestURI: u.RequestURI(),
		Body:       io.NopCloser(bytes.NewReader(body)),
	}
	r.ContentLength = int64(len(body))
	if u.RawQuery == "" || j.r.IntN(2) == 0 {
		r.Header.Set("Authorization", "JWT "+j.token())
	}
	if j.r.IntN(3) == 0 {
		r.Header.Set("Content-Type", string(j.bytes(30)))
	} else {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// TestConnectJunkIsA4xx sends junk to every Connect route on both
// databases: whatever the bytes (NUL, invalid UTF-8, control characters in
// the path, the query, the token's issuer, the headers or the body), the
// answer is a 4xx JSON error, never a 500, and nothing is stored.
func TestConnectJunkIsA4xx(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newConnectHarness(t, b)
		s := h.newSite(h.jira)
		h.mustInstall(s)
		before := h.snapshot()
		seed := rand.Uint64()
		t.Logf("seed %d", seed)
		j := junk{rand.New(rand.NewPCG(seed, 1))}
		routes := connectJunkRoutes(t, h)
		for i := range 40 * len(routes) {
			route := routes[i%len(routes)]
			r := j.request(route.method, route.path)
			w := httptest.NewRecorder()
			h.app.Handler().ServeHTTP(w, r)
			if w.Code < 400 || w.Code > 499 {
				t.Fatalf("%s %q (Authorization %q, Content-Type %q): status %d, want 4xx; body %.300s",
					r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), w.Code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("%s %q: status %d with Content-Type %q", r.Method, r.URL.RequestURI(), w.Code, ct)
			}
		}
		if after := h.snapshot(); !connectEqualRows(before, after) {
			t.Errorf("junk changed the sites table:\nbefore %v\nafter  %v", before, after)
		}
		if strings.Contains(h.logs.String(), `"level":"ERROR"`) {
			t.Errorf("junk was logged as an internal error:\n%.2000s", h.logs.String())
		}
	})
}

// TestConnectInstallKidFlood: installs signed with random kids (as anyone
// can send them) make a bounded number of key-server fetches: a kid asked
// again is answered from the failure cache, new kids beyond the fetch
// rate are refused without a fetch (key_fetch_limited), and a real install
// with Atlassian's cached key goes through in the middle of it.
func TestConnectInstallKidFlood(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newConnectHarness(t, b)
		s := h.newSite(h.jira)
		h.mustInstall(s) // caches Atlassian's key k1
		atl, _ := apptest.RSAKeys(t)
		const target = "/lifecycle/installed"
		flood := func(kid string) *httptest.ResponseRecorder {
			evil := h.newSite(h.jira)
			token := h.signRS256(h.installClaims(evil.clientKey, http.MethodPost, target), kid, atl)
			return h.serve(nil, connectRequest(http.MethodPost, target, connectLifecycleBody(evil, "installed"), token))
		}
		start := time.Now()
		const n = 200
		for i := range n {
			w := flood(fmt.Sprintf("random-kid-%d-%s", i, apptest.RandomHex(t, 4)))
			connectWantStatus(t, w, http.StatusUnauthorized, "install with a random kid")
			if i == n/2 {
				h.newSecret(s)
				connectWantStatus(t, h.install(nil, s), http.StatusNoContent, "a real install during the flood")
			}
		}
		// One junk kid sent again and again is fetched once.
		for range 20 {
			connectWantStatus(t, flood("the-same-junk-kid"), http.StatusUnauthorized, "install with a repeated junk kid")
		}
		elapsed := time.Since(start)
		fetched := map[string]int{}
		for _, p := range h.atl.InstallKeyRequests() {
			fetched[p]++
		}
		if fetched["/the-same-junk-kid"] > 1 {
			t.Errorf("a repeated junk kid was fetched %d times, want at most once", fetched["/the-same-junk-kid"])
		}
		if fetched["/"+connectKid] != 1 {
			t.Errorf("Atlassian's key was fetched %d times, want once (cached)", fetched["/"+connectKid])
		}
		total := len(h.atl.InstallKeyRequests())
		// The App allows 2 fetches a second in bursts of 10.
		if limit := 10 + 2*int(elapsed.Seconds()+1) + 1; total > limit {
			t.Errorf("%d key-server fetches in %s, want at most %d", total, elapsed, limit)
		}
		failures := h.jwtFailures()
		if d := cmp.Diff(map[string]bool{"key_fetch_limited": true, "unknown_kid": true},
			map[string]bool{"key_fetch_limited": failures["key_fetch_limited"] > 0, "unknown_kid": failures["unknown_kid"] > 0}); d != "" {
			t.Errorf("jwt failures %v: want both unknown_kid and key_fetch_limited (-want +got):\n%s", failures, d)
		}
		if got := failures["key_fetch_limited"] + failures["unknown_kid"]; got != n+20 {
			t.Errorf("%v refusals counted, want %d", got, n+20)
		}
	})
}
