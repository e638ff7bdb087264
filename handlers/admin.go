package handlers

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

//go:embed assets
var assetFS embed.FS

// adminPage is the shell (admin.html) with one template per section
// (section-*.html), rendered into it by handleAdminPage.
var adminPage = template.Must(template.ParseFS(assetFS, "assets/*.html"))

// assetVersion names the current set of embedded assets. Asset URLs carry
// it (/assets/<version>/admin.js), so a browser may cache them for good
// and a release can never mix an old script with a new page.
var assetVersion = hashAssets()

func hashAssets() string {
	h := sha256.New()
	_ = fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(p)
		if err != nil {
			return err
		}
		h.Write([]byte(p))
		h.Write([]byte{0})
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// allJSURL is the one script served from elsewhere: Atlassian's Connect
// JavaScript API, which a page in a Jira/Confluence iframe must load;
// allJSOrigin is its origin, which the admin page's CSP allows.
const (
	allJSURL    = "https://connect-cdn.atl-paas.net/all.js"
	allJSOrigin = "https://connect-cdn.atl-paas.net"
)

// adminSection is one entry of the admin page's navigation. Template names
// the section's template (section-<ID>.html); a section without one is
// not built yet and shows an empty state saying so. Later features add
// their section here, with a template and a script module of the same
// name (assets/<ID>.js).
type adminSection struct {
	ID       string
	Title    string
	Template string
	Body     template.HTML
}

// adminSections is the navigation, in SPEC section 4's order with the
// overview first.
var adminSections = []adminSection{
	{ID: "overview", Title: "Overview", Template: "section-overview.html"},
	{ID: "service-account", Title: "Service account", Template: "section-service-account.html"},
	{ID: "customer-record", Title: "Customer record", Template: "section-customer-record.html"},
	{ID: "provisioning", Title: "User provisioning", Template: "section-provisioning.html"},
	{ID: "sso", Title: "Customer SSO", Template: "section-sso.html"},
	{ID: "audit", Title: "Audit log", Template: "section-audit.html"},
	{ID: "privacy", Title: "Privacy", Template: "section-privacy.html"},
}

// adminPageData is what the admin templates see. Nothing secret: the page
// is framed by Atlassian and its source is visible to the admin.
type adminPageData struct {
	// Base is our base URL's path ("" at the root), for API calls.
	Base string
	// Assets is the versioned asset path: Base + "/assets/" + version.
	Assets   string
	Site     *models.Site
	Product  string // "Jira" or "Confluence", for sentences
	Sections []adminSection
	Fields   []recordField
	Version  string
	// AllJS is the URL of Atlassian's all.js.
	AllJS string
	// SystemToken is the state of the site's app system token; nil when
	// the server does not know it.
	SystemToken *models.SystemTokenStatus
}

// recordField is one row of the customer record form.
type recordField struct {
	Name  models.ProfileField
	Label string
	Type  string // the input type
}

// recordLabels are the customer record's field labels, in words a site
// admin knows from the Marketplace.
var recordLabels = map[models.ProfileField]string{
	models.ProfileName:      "Contact name",
	models.ProfileEmail:     "Contact email",
	models.ProfileLocation:  "Location (country or region)",
	models.ProfileCompany:   "Company",
	models.ProfilePurchaser: "Purchaser",
}

func recordFields() []recordField {
	var out []recordField
	for _, f := range models.ProfileFields() {
		label := recordLabels[f]
		if label == "" {
			label = strings.ToUpper(string(f[:1])) + string(f[1:])
		}
		typ := "text"
		if f == models.ProfileEmail {
			typ = "email"
		}
		out = append(out, recordField{Name: f, Label: label, Type: typ})
	}
	return out
}

// adminCSP allows the admin page to be framed only by the site whose token
// opened it, and to load only our own assets and all.js.
func (s *server) adminCSP(site *models.Site) string {
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self' " + s.allJSOrigin,
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors " + siteFrameAncestors(site),
	}, "; ")
}

// siteFrameAncestors is the CSP source list of the one site a page is for:
// the origin of its baseUrl (checked against the trusted product hosts at
// install), and the origin of its displayUrl when that differs: a site with
// a custom domain shows Jira or Confluence, and so our iframe, under the
// displayUrl (Atlassian: "the URL through which users will access the
// product"). Both come from the site's own verified install, so neither
// lets another site frame the page. The displayUrl counts only when it is
// https (or plain http beside a plain-http, loopback-only test baseUrl)
// with a plain host name; otherwise only the baseUrl's origin is named.
// Never 'self', never a wildcard (docs/SECURITY.md).
func siteFrameAncestors(site *models.Site) string {
	if site == nil {
		return "'none'"
	}
	// A plain-http baseUrl passed the install check only for a trusted
	// loopback test host.
	base, ok := cspOrigin(site.BaseURL, true)
	if !ok {
		return "'none'"
	}
	out := base
	if display, ok := cspOrigin(site.DisplayURL, strings.HasPrefix(base, "http://")); ok && display != base {
		out += " " + display
	}
	return out
}

// cspOrigin is scheme://host[:port] of raw for a CSP source list, lower
// case and without a default port, or false when raw is not an absolute
// https URL (or, with allowHTTP, an http one) whose host is made only of
// letters, digits, dots, dashes and colons (IPv6), so nothing from the URL
// can end a directive or add a source.
func cspOrigin(raw string, allowHTTP bool) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && (scheme != "http" || !allowHTTP) {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	for _, c := range host {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':') {
			return "", false
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	if port == "" || scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		return scheme + "://" + host, true
	}
	return scheme + "://" + host + ":" + port, true
}

func productName(site *models.Site) string {
	if strings.EqualFold(site.ProductType, "confluence") || strings.HasSuffix(strings.TrimSuffix(site.BaseURL, "/"), "/wiki") {
		return "Confluence"
	}
	return "Jira"
}

func (s *server) handleAdminPage(c *gin.Context) {
	caller := callerOf(c)
	base := strings.TrimSuffix(s.BaseURL.Path, "/")
	data := adminPageData{
		Base:    base,
		Assets:  base + "/assets/" + assetVersion,
		Site:    caller.Site,
		Product: productName(caller.Site),
		Fields:  recordFields(),
		Version: s.Version,
		AllJS:   s.allJS,
	}
	if s.SystemTokens != nil {
		st, err := s.SystemTokens.SystemTokenStatus(c.Request.Context(), caller.Site.ID)
		if err != nil {
			s.fail(c, err)
			return
		}
		data.SystemToken = &st
	}
	data.Sections = slices.Clone(adminSections)
	for i, sec := range data.Sections {
		if sec.Template == "" {
			continue
		}
		var b bytes.Buffer
		if err := adminPage.ExecuteTemplate(&b, sec.Template, data); err != nil {
			s.fail(c, err)
			return
		}
		// Output of html/template: already escaped for this context.
		data.Sections[i].Body = template.HTML(b.String()) //nolint:gosec
	}
	var page bytes.Buffer
	if err := adminPage.ExecuteTemplate(&page, "admin.html", data); err != nil {
		s.fail(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", s.adminCSP(caller.Site))
	h.Del("X-Frame-Options")
	h.Set("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/html; charset=utf-8", page.Bytes())
}

// assetHandler serves the embedded static files. Under the current
// version (/assets/<version>/file) they are immutable and cached for a
// year; under another version or none they are served but revalidated,
// so that during a rolling release a new page's URL never caches an old
// file for long.
func assetHandler() gin.HandlerFunc {
	sub, _ := fs.Sub(assetFS, "assets")
	files := http.FileServer(http.FS(sub))
	return func(c *gin.Context) {
		name := c.Param("file")
		cache := "no-cache"
		if first, rest, ok := strings.Cut(strings.TrimPrefix(name, "/"), "/"); ok && isVersion(first) {
			name = "/" + rest
			if first == assetVersion {
				cache = "public, max-age=31536000, immutable"
			}
		}
		if strings.HasSuffix(name, ".html") || strings.HasSuffix(name, "/") || path.Clean(name) != name {
			refuseWith(c, models.CodeNotFound, "no such asset")
			return
		}
		// Only files that exist reach the file server, which answers 500
		// to a name that is no valid path (invalid UTF-8, say) and plain
		// text to one that is missing.
		if rel := strings.TrimPrefix(name, "/"); !fs.ValidPath(rel) {
			refuseWith(c, models.CodeNotFound, "no such asset")
			return
		} else if st, err := fs.Stat(sub, rel); err != nil || st.IsDir() {
			refuseWith(c, models.CodeNotFound, "no such asset")
			return
		}
		c.Header("Cache-Control", cache)
		c.Request.URL.Path = name
		files.ServeHTTP(c.Writer, c.Request)
	}
}

// isVersion reports whether s looks like an asset version (12 hex digits).
func isVersion(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}
