package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"idbridge/app"
	"idbridge/app/apptest"
	"idbridge/app/demo"
	"idbridge/config"

	"github.com/google/go-cmp/cmp"
)

// TestDemoRefusesToBindElsewhere: the demo listens on loopback only, and
// says so in one line with exit 2 before it binds or creates anything.
func TestDemoRefusesToBindElsewhere(t *testing.T) {
	for _, addr := range []string{":8080", ":0", "0.0.0.0:0", "[::]:0", "192.0.2.10:0", "10.0.0.1:8080", "example.com:80", "8080", "127.0.0.1"} {
		dir := t.TempDir()
		code, out, errOut := runCLI(t, map[string]string{"IDBRIDGE_ADDR": addr}, "demo", "--data-dir", dir)
		if code != exitUsage {
			t.Errorf("IDBRIDGE_ADDR=%q: exit %d, want 2 (stdout %q, stderr %q)", addr, code, out, errOut)
		}
		if d := cmp.Diff(map[string]any{"stdout": "", "stderr lines": 1, "stderr names IDBRIDGE_ADDR": true},
			map[string]any{"stdout": out, "stderr lines": stderrLines(errOut), "stderr names IDBRIDGE_ADDR": strings.Contains(errOut, "IDBRIDGE_ADDR")}); d != "" {
			t.Errorf("IDBRIDGE_ADDR=%q: stderr %q (-want +got):\n%s", addr, errOut, d)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("IDBRIDGE_ADDR=%q: the demo wrote %d files before refusing", addr, len(entries))
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:8080", "[::1]:0", "localhost:0"} {
		if err := demo.CheckAddr(addr); err != nil {
			t.Errorf("CheckAddr(%q): %v, want nil", addr, err)
		}
	}
	if err := demo.CheckAddr("0.0.0.0:0"); !errors.Is(err, demo.ErrNotLoopback) {
		t.Errorf("CheckAddr(0.0.0.0:0) = %v, want ErrNotLoopback", err)
	}
	code, out, _ := runCLI(t, nil, "demo", "--help")
	if code != 0 || !strings.Contains(out, "loopback") {
		t.Errorf("demo --help: exit %d, %q", code, out)
	}
}

// demoPaths are the simulated site's UI routes and the stand-in all.js.
var demoPaths = []string{
	"/simulated-site", "/simulated-site/state", "/simulated-site/assets/site.js",
	"/plugins/servlet/ac/context-token", "/plugins/servlet/ac/" + demo.AppKey + "/idbridge-admin",
	"/connect/all.js",
}

// TestServeHasNoDemoRoutes: serve builds its App with the logger and the
// descriptor only (no listener or all.js of its own), and none of the
// demo's routes exist in it.
func TestServeHasNoDemoRoutes(t *testing.T) {
	opts := serveOptions(slog.New(slog.DiscardHandler))
	if opts.ConnectJS != "" || opts.Listener != nil || opts.HTTPTransport != nil || opts.IdPTransport != nil {
		t.Fatalf("serve's App options go beyond the logger and the descriptor: %+v", opts)
	}
	env := map[string]string{"IDBRIDGE_ADDR": "127.0.0.1:0", "IDBRIDGE_DATA_DIR": t.TempDir()}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, p := range demoPaths {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, _ := http.NewRequest(method, p, nil)
			w := httptest.NewRecorder()
			a.Handler().ServeHTTP(w, req)
			if w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed {
				t.Errorf("serve answers %s %s with %d, want 404", method, p, w.Code)
			}
		}
	}
}

// TestDemoEndToEnd runs `idbridge demo` and walks the printed URL as a
// browser would, without one (e2e/demo_test.go does it in Chromium): the
// host page frames the real admin page with a URL-bound JWT, the page
// loads the site's stand-in all.js, a context token from the site opens
// the admin API, a SCIM token creates a user, and the sync puts the user
// in the simulated site. Ctrl-C ends it and removes its data directory.
func TestDemoEndToEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &apptest.LockedBuffer{}, &apptest.LockedBuffer{}
	e := &cliEnv{stdout: stdout, stderr: stderr, readFile: os.ReadFile, ctx: ctx,
		getenv: func(k string) string { return map[string]string{"IDBRIDGE_LOG_LEVEL": "debug"}[k] }}
	exit := make(chan int, 1)
	go func() { exit <- e.dispatch([]string{"demo"}) }()

	hostURL := waitForURL(t, stdout, stderr, exit)
	site, _ := url.Parse(hostURL)
	origin := site.Scheme + "://" + site.Host

	page := get(t, hostURL, nil)
	src := regexp.MustCompile(`<iframe id="addon"[^>]* src="([^"]+)"`).FindStringSubmatch(page.body)
	if src == nil {
		t.Fatalf("the host page has no iframe:\n%s", page.body)
	}
	adminURL := strings.ReplaceAll(src[1], "&amp;", "&")
	if !strings.Contains(adminURL, "/admin?") || !strings.Contains(adminURL, "jwt=") {
		t.Fatalf("iframe src %q is not the admin page with a URL-bound JWT", adminURL)
	}
	admin := get(t, adminURL, nil)
	if admin.status != http.StatusOK || !strings.Contains(admin.body, `<script src="`+origin+`/connect/all.js"`) {
		t.Fatalf("the admin page: %d, and it does not load the site's all.js:\n%.600s", admin.status, admin.body)
	}
	app, _ := url.Parse(adminURL)
	appURL := app.Scheme + "://" + app.Host
	if csp := admin.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors "+origin) || !strings.Contains(csp, "script-src 'self' "+origin) {
		t.Errorf("admin page CSP %q: want the site as its only frame ancestor and script source", csp)
	}
	if js := get(t, origin+"/connect/all.js", nil); js.status != http.StatusOK || !strings.Contains(js.body, "window.AP") {
		t.Errorf("the site's all.js: %d", js.status)
	}

	// AP.context.getToken, as the host page asks for it; only the site's
	// own pages may.
	if res := post(t, origin+"/plugins/servlet/ac/context-token", nil, ""); res.status != http.StatusForbidden {
		t.Errorf("a token for a request without the site's Origin: %d, want 403", res.status)
	}
	token := func() string {
		return post(t, origin+"/plugins/servlet/ac/context-token", map[string]string{"Origin": origin}, "").body
	}
	// The site's admin passes the real admin check; a forged token is
	// refused.
	gen := post(t, appURL+"/api/admin/provisioning/token", map[string]string{"Authorization": "JWT " + token()}, "")
	if gen.status != http.StatusCreated {
		t.Fatalf("generate a SCIM token: %d %s", gen.status, gen.body)
	}
	if res := get(t, appURL+"/api/admin/site", map[string]string{"Authorization": "JWT e30.e30.x"}); res.status != http.StatusUnauthorized {
		t.Errorf("the admin API with a forged token: %d, want 401", res.status)
	}
	var scim struct{ Token, BaseURL string }
	if err := json.Unmarshal([]byte(gen.body), &scim); err != nil || scim.Token == "" {
		t.Fatalf("token answer %s: %v", gen.body, err)
	}
	sp := get(t, origin+"/simulated-site", nil)
	if sp.status != http.StatusOK || !strings.Contains(sp.body, scim.BaseURL+"/Users") {
		t.Errorf("the Simulated site page (%d) has no curl line for %s/Users", sp.status, scim.BaseURL)
	}
	created := post(t, scim.BaseURL+"/Users", map[string]string{"Authorization": "Bearer " + scim.Token, "Content-Type": "application/scim+json"},
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@demo.example","name":{"givenName":"Ada","familyName":"Lovelace"},"emails":[{"value":"ada@demo.example","primary":true}],"active":true}`)
	if created.status != http.StatusCreated {
		t.Fatalf("SCIM create: %d %s", created.status, created.body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		state := get(t, origin+"/simulated-site/state", nil)
		if strings.Contains(state.body, `"email":"ada@demo.example"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sync never put the user in the simulated site: %s\nlogs:\n%s", state.body, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	dir := regexp.MustCompile(`Data: (\S+) \(temporary`).FindStringSubmatch(stdout.String())
	cancel()
	if code := <-exit; code != 0 {
		t.Fatalf("demo exit %d after Ctrl-C; stderr:\n%s", code, stderr.String())
	}
	if dir == nil {
		t.Fatalf("the demo did not say where its data is:\n%s", stdout.String())
	}
	if _, err := os.Stat(dir[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the demo's temporary directory %s is still there: %v", dir[1], err)
	}
	for _, secret := range []string{scim.Token} {
		if strings.Contains(stderr.String(), secret) {
			t.Errorf("the demo's logs contain a secret: %.12s…", secret)
		}
	}
}

// waitForURL waits for the demo to print the URL to open.
func waitForURL(t *testing.T, stdout, stderr *apptest.LockedBuffer, exit <-chan int) string {
	t.Helper()
	re := regexp.MustCompile(`Open (http://\S+)`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-exit:
			t.Fatalf("demo exited %d before printing a URL:\n%s\n%s", code, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo printed no URL:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, u string, header map[string]string, body string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, header: res.Header, body: string(b)}
}

func get(t *testing.T, u string, header map[string]string) answer {
	t.Helper()
	return do(t, http.MethodGet, u, header, "")
}

func post(t *testing.T, u string, header map[string]string, body string) answer {
	t.Helper()
	return do(t, http.MethodPost, u, header, body)
}
