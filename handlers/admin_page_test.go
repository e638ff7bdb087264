package handlers

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

func adminPageBody(t *testing.T) (string, http.Header) {
	t.Helper()
	h, _ := newTestServer(t, Deps{Connect: &recordingConnect{auth: true}})
	w := do(t, h, http.MethodGet, "/admin?jwt=x", "", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /admin: %d %s", w.Code, w.Body)
	}
	return w.Body.String(), w.Header()
}

// The page is the shell with every section of the navigation, runs under
// a CSP without inline scripts or styles, and loads only versioned assets
// and Atlassian's all.js.
func TestAdminPageShell(t *testing.T) {
	body, header := adminPageBody(t)
	csp := header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self' https://connect-cdn.atl-paas.net;", "style-src 'self';", "connect-src 'self';",
		"; frame-ancestors https://a.atlassian.net"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if !strings.HasSuffix(csp, "; frame-ancestors https://a.atlassian.net") {
		t.Errorf("CSP %q: frame-ancestors is not exactly the site's origin", csp)
	}
	if d := cmp.Diff(map[string]string{"X-Frame-Options": "", "Cache-Control": "no-store"},
		map[string]string{"X-Frame-Options": header.Get("X-Frame-Options"), "Cache-Control": header.Get("Cache-Control")}); d != "" {
		t.Errorf("headers (-want +got):\n%s", d)
	}
	for _, sec := range adminSections {
		for _, want := range []string{`href="#` + sec.ID + `"`, `id="section-` + sec.ID + `"`, `id="heading-` + sec.ID + `"`} {
			if !strings.Contains(body, want) {
				t.Errorf("the page lacks %s", want)
			}
		}
	}
	scripts := regexp.MustCompile(`<script[^>]*>`).FindAllString(body, -1)
	want := []string{
		`<script src="https://connect-cdn.atl-paas.net/all.js" data-options="sizeToParent:true">`,
		`<script type="module" src="/assets/` + assetVersion + `/admin.js">`,
	}
	if !slices.Equal(scripts, want) {
		t.Errorf("scripts %q, want %q", scripts, want)
	}
	if strings.Contains(body, "<style") || regexp.MustCompile(`\sstyle=`).MatchString(body) || regexp.MustCompile(`\son[a-z]+=`).MatchString(body) {
		t.Error("the page has inline styles or event handlers, which its CSP refuses")
	}
}

// The admin page may be framed only by the origins of the site whose token
// opened it: its baseUrl's, and its displayUrl's when that is another
// (custom) domain; nothing a stored URL holds can add a source.
func TestSiteFrameAncestors(t *testing.T) {
	tests := []struct {
		name, base, display, want string
	}{
		{"Jira", "https://acme.atlassian.net", "https://acme.atlassian.net", "https://acme.atlassian.net"},
		{"Confluence under /wiki", "https://acme.atlassian.net/wiki", "", "https://acme.atlassian.net"},
		{"upper case and default port", "https://ACME.atlassian.net:443/wiki", "https://acme.atlassian.net/wiki", "https://acme.atlassian.net"},
		{"custom domain", "https://acme.atlassian.net", "https://jira.acme.example", "https://acme.atlassian.net https://jira.acme.example"},
		{"custom domain with a port", "https://acme.atlassian.net", "https://jira.acme.example:8443/x", "https://acme.atlassian.net https://jira.acme.example:8443"},
		{"plain-http displayUrl", "https://acme.atlassian.net", "http://jira.acme.example", "https://acme.atlassian.net"},
		{"displayUrl with a quote", "https://acme.atlassian.net", "https://a.example';script-src *", "https://acme.atlassian.net"},
		{"displayUrl with a space", "https://acme.atlassian.net", "https://a.example b.example", "https://acme.atlassian.net"},
		{"displayUrl with credentials", "https://acme.atlassian.net", "https://u:p@a.example", "https://acme.atlassian.net"},
		{"displayUrl not a URL", "https://acme.atlassian.net", "not a url", "https://acme.atlassian.net"},
		{"loopback test site", "http://127.0.0.1:8081", "http://127.0.0.1:8081", "http://127.0.0.1:8081"},
		{"IPv6 loopback test site", "http://[::1]:8081", "", "http://[::1]:8081"},
		{"no usable baseUrl", "ftp://x", "https://acme.atlassian.net", "'none'"},
		{"empty", "", "", "'none'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := siteFrameAncestors(&models.Site{
				SiteFacts: models.SiteFacts{BaseURL: tt.base, DisplayURL: tt.display},
			})
			if got != tt.want {
				t.Errorf("siteFrameAncestors(%q, %q) = %q, want %q", tt.base, tt.display, got, tt.want)
			}
		})
	}
	if got := siteFrameAncestors(nil); got != "'none'" {
		t.Errorf("no site: %q", got)
	}
}

// Every form control of the page has a label (or is inside a fieldset
// with a legend, for radios), and every aria-describedby names an element
// of the page.
func TestAdminPageLabels(t *testing.T) {
	body, _ := adminPageBody(t)
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`\sid="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		if ids[m[1]] {
			t.Errorf("duplicate id %q", m[1])
		}
		ids[m[1]] = true
	}
	labelled := map[string]bool{}
	for _, m := range regexp.MustCompile(`<label[^>]*\sfor="([^"]+)"[^>]*>([^<]*)`).FindAllStringSubmatch(body, -1) {
		if strings.TrimSpace(m[2]) != "" {
			labelled[m[1]] = true
		}
	}
	inputs := regexp.MustCompile(`<(input|select|textarea)\s[^>]*>`).FindAllString(body, -1)
	if len(inputs) < 10 {
		t.Fatalf("only %d form controls on the page", len(inputs))
	}
	for _, in := range inputs {
		id := regexp.MustCompile(`\sid="([^"]+)"`).FindStringSubmatch(in)
		if id == nil || !labelled[id[1]] {
			t.Errorf("control without a label: %s", in)
		}
		if d := regexp.MustCompile(`aria-describedby="([^"]+)"`).FindStringSubmatch(in); d != nil {
			for _, ref := range strings.Fields(d[1]) {
				if !ids[ref] {
					t.Errorf("%s is described by a missing #%s", in, ref)
				}
			}
		}
	}
	for _, f := range models.ProfileFields() {
		if recordLabels[f] == "" {
			t.Errorf("customer record field %q has no label", f)
		}
		if !labelled["cr-"+string(f)] {
			t.Errorf("customer record field %q is not on the page", f)
		}
	}
}

// Assets under the current version are immutable; anything else is served
// but revalidated; templates and directories are never served.
func TestAdminAssets(t *testing.T) {
	h, _ := newTestServer(t, Deps{})
	for _, tc := range []struct {
		path, cache string
		status      int
	}{
		{"/assets/" + assetVersion + "/admin.js", "public, max-age=31536000, immutable", 200},
		{"/assets/" + assetVersion + "/admin.css", "public, max-age=31536000, immutable", 200},
		{"/assets/admin.js", "no-cache", 200},
		{"/assets/000000000000/admin.js", "no-cache", 200},
		{"/assets/admin.html", "", 404},
		{"/assets/" + assetVersion + "/section-overview.html", "", 404},
		{"/assets/", "", 404},
		{"/assets/" + assetVersion + "/", "", 404},
		{"/assets/nope.js", "no-cache", 404},
	} {
		w := do(t, h, http.MethodGet, tc.path, "", nil)
		want := map[string]any{"status": tc.status}
		got := map[string]any{"status": w.Code}
		if tc.status == 200 {
			want["Cache-Control"], got["Cache-Control"] = tc.cache, w.Header().Get("Cache-Control")
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("GET %s (-want +got):\n%s", tc.path, d)
		}
	}
	// Names that are no valid path are a JSON 404 too, never the file
	// server's 500 or plain text.
	for _, p := range []string{"/assets/a\xffb.js", "/assets/a\xed\xa0\x80", "/assets/a\x00b", "/assets/" + assetVersion + "/\xc3", "/assets/nope.js"} {
		r := httptest.NewRequest(http.MethodGet, "/assets/x", nil)
		r.URL.Path = p
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNotFound || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Errorf("GET %q: %d %q %s; want a JSON 404", p, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
	if ct := do(t, h, http.MethodGet, "/assets/"+assetVersion+"/admin.js", "", nil).Header().Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("admin.js served as %q", ct)
	}

	// Every module a script imports is an asset.
	scripts, _ := fs.Glob(assetFS, "assets/*.js")
	for _, name := range scripts {
		src, _ := assetFS.ReadFile(name)
		for _, m := range regexp.MustCompile(`from "\./([^"]+)"`).FindAllStringSubmatch(string(src), -1) {
			if w := do(t, h, http.MethodGet, "/assets/"+assetVersion+"/"+m[1], "", nil); w.Code != 200 {
				t.Errorf("%s imports %s, which is not served (%d)", name, m[1], w.Code)
			}
		}
	}
}

// TestAdminPageCredentials: the overview says, per feature, which
// credential idbridge uses on this site: the app system token only where
// the site is installed through Forge (installationId and cloudId) and
// Atlassian accepts it for the calls, the service account otherwise.
func TestAdminPageCredentials(t *testing.T) {
	row := regexp.MustCompile(`(?s)<tr data-feature="([a-z-]+)"><th scope="row">[^<]*</th><td>([^<]*)</td></tr>`)
	const (
		app = "The app system token from Forge, otherwise the service account"
		sa  = "The service account"
	)
	for name, tc := range map[string]struct {
		facts models.SiteFacts
		want  map[string]string
	}{
		"Connect-only Jira site": {
			models.SiteFacts{ClientKey: "client-1", BaseURL: "https://a.atlassian.net", ProductType: "jira"},
			map[string]string{"audit-names": sa, "sync-reads": sa},
		},
		"Forge Jira site": {
			models.SiteFacts{ClientKey: "client-1", BaseURL: "https://a.atlassian.net", ProductType: "jira",
				InstallationID: "ari:cloud:ecosystem::installation/x", CloudID: "c1"},
			map[string]string{"audit-names": app, "sync-reads": app},
		},
		"Forge Confluence site": {
			models.SiteFacts{ClientKey: "client-1", BaseURL: "https://a.atlassian.net/wiki", ProductType: "confluence",
				InstallationID: "ari:cloud:ecosystem::installation/x", CloudID: "c1"},
			map[string]string{"audit-names": app, "sync-reads": "Groups and their members: the app system token from Forge, otherwise the service account. Users: the service account"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			facts := tc.facts
			h, _ := newTestServer(t, Deps{Connect: &recordingConnect{auth: true, facts: &facts}})
			w := do(t, h, http.MethodGet, "/admin?jwt=x", "", nil)
			if w.Code != http.StatusOK {
				t.Fatalf("GET /admin: %d %s", w.Code, w.Body)
			}
			got := map[string]string{}
			for _, m := range row.FindAllStringSubmatch(w.Body.String(), -1) {
				got[m[1]] = m[2]
			}
			for _, f := range []string{"admin-check", "audit-names", "sync-reads", "sync-writes", "org-admin", "customers"} {
				if got[f] == "" {
					t.Errorf("no credential row for %s", f)
				}
			}
			for f, want := range tc.want {
				if got[f] != want {
					t.Errorf("%s: %q, want %q", f, got[f], want)
				}
			}
			if !strings.HasPrefix(got["sync-writes"], sa) || !strings.HasPrefix(got["customers"], sa) {
				t.Errorf("writes or customers not on the service account: %q, %q", got["sync-writes"], got["customers"])
			}
		})
	}
}
