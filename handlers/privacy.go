package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/mail"
	"net/url"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// privacyCSS is the privacy notice's only style, inline so the page stands
// alone; the CSP allows exactly this text by its hash.
const privacyCSS = `body{font:16px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#172b4d;max-width:60rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.75rem;margin-bottom:.25rem}h2{font-size:1.25rem;margin-top:2rem}h3{font-size:1rem;margin-bottom:.25rem}
.meta{color:#44546f;margin-top:0}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border:1px solid #dcdfe4;padding:.4rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f7f8f9}a{color:#0c66e4}code{font-size:.85em}`

var privacyCSP = "default-src 'none'; style-src 'sha256-" + hashBase64(privacyCSS) + "'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

func hashBase64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

var privacyPage = template.Must(template.New("privacy").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>idbridge privacy notice</title>
<style>` + privacyCSS + `</style>
</head>
<body>
<main>
<h1>Privacy notice</h1>
<p class="meta">idbridge, version {{.Version}} of this notice, last changed on <time datetime="{{.LastChanged}}">{{.LastChanged}}</time>.</p>

<p>idbridge is an app for Atlassian Jira and Confluence Cloud sites. It provisions users from a
site's identity provider, lets help-center customers sign in with their own company's identity
provider, and keeps the personal data listed below for that, and for nothing else. This notice is
generated from idbridge's data inventory: the same declaration that its export, erasure and
retention work from, so it lists everything idbridge keeps.</p>

<h2>Who to contact</h2>
{{if .ContactURL}}<p>Write about your data to <a href="{{.ContactURL}}">{{.Contact}}</a>.</p>
{{else}}<p>The operator of this idbridge server has not named a privacy contact yet. Ask the
administrator of your Atlassian site, who can see, export, correct and erase what idbridge keeps
about you.</p>{{end}}

<h2>What idbridge keeps, why, and for how long</h2>
{{range .Groups}}
<h3>{{.Title}}</h3>
<p>{{.About}}</p>
<table>
<thead><tr><th scope="col">What</th><th scope="col">Why</th><th scope="col">Legal basis</th><th scope="col">Where it comes from</th><th scope="col">How long it is kept</th><th scope="col">Who receives it</th></tr></thead>
<tbody>
{{range .Entries}}<tr><td>{{.Category}}</td><td>{{.Purpose}}</td><td>{{.LegalBasis}}</td><td>{{.Source}}</td><td>{{.Retention}}</td><td>{{.Recipients}}</td></tr>
{{end}}</tbody>
</table>
{{end}}
<p>Everything else idbridge stores ({{.Technical}} fields in all) is not personal data: settings,
identifiers of installations, times, hashes and encrypted secrets of organizations. Secrets
(API tokens, client secrets, keys) are encrypted with AES-256-GCM, are never shown again after they
are entered, and are deleted at once when the app is uninstalled. No data is sold or used for
advertising or analytics.</p>

<p>idbridge reports the Atlassian account IDs it keeps data about to Atlassian's Personal Data
Reporting API, as Atlassian requires of apps, to learn when an account is closed or changed; data
about a closed account is then erased.</p>

<h2>Your rights</h2>
<p>You may ask for a copy of the data idbridge keeps about you (access), have it corrected
(rectification; corrections apply at once, and at the latest within 72 hours of your request),
have it erased, or have its processing restricted, and you may object to processing based on
legitimate interests. Ask the administrator of your Atlassian site or the contact above.</p>
<p>You also have the right to lodge a complaint with a data protection supervisory authority, in
particular in the country where you live or work or where you think your rights were infringed
(GDPR Art. 77).</p>

<h2>Cookies</h2>
<p>The customer portal sets one strictly necessary session cookie, which keeps you signed in. It is
<code>HttpOnly</code>, <code>Secure</code> and <code>SameSite=Lax</code>, holds a random session
identifier and nothing else, and ends when you sign out or the session times out. While you sign in,
and only then, a second strictly necessary cookie ties the sign-in to your browser, so that nobody can
finish it in another one: it holds a random value, lasts ten minutes at most and is deleted when the
sign-in completes. So the portal keeps one cookie at a time. idbridge sets no
analytics, advertising or tracking cookies, and the admin pages inside Jira and Confluence set no
cookies at all. Because the cookie is strictly necessary it needs no consent; you can block it in
your browser, but you then cannot sign in to the portal.</p>

<h2>Changes to this notice</h2>
<p>When what idbridge keeps, or why, changes, this notice changes with it: its version and date at
the top tell you when it last did.</p>
</main>
</body>
</html>
`))

// tableTitles name the inventory's tables for people, with a sentence
// about each; tables not listed use their name.
var tableTitles = map[string][2]string{
	"customer_profiles":  {"The customer record of each installation", "Kept on install, as the privacy policy says: who the customer of the installation is."},
	"service_accounts":   {"The service account a site administrator configures", "The credentials idbridge uses to act on the site for user provisioning and customer sign-in."},
	"audit_events":       {"The audit log", "Who did what: sign-ins to the customer portal and administrators' changes, which the site's administrators read."},
	"scim_users":         {"The user directory (user provisioning)", "The users the site's identity provider sends, mirrored into the Atlassian site."},
	"scim_group_members": {"Group memberships (user provisioning)", "Which provisioned users belong to which groups."},
	"portal_sessions":    {"Customer portal sessions", "Who is signed in to a site's customer portal, while they are signed in."},
	"sso_settings":       {"Customer sign-in settings", "Which administrator last changed the customer sign-in settings."},
	"identity_providers": {"Customer identity providers", "Which administrator last changed an identity provider."},
	"outbox":             {"Changes on their way to the site (user provisioning)", "What the site's identity provider changed and idbridge has still to apply, or has applied, in the Atlassian site."},
}

type privacyGroup struct {
	Title, About string
	Entries      []models.InventoryEntry
}

func (s *server) handlePrivacy(c *gin.Context) {
	inv := models.Inventory()
	byTable := map[string][]models.InventoryEntry{}
	technical := 0
	for _, e := range inv {
		if !e.Personal {
			technical++
			continue
		}
		byTable[e.Table] = append(byTable[e.Table], e)
	}
	tables := make([]string, 0, len(byTable))
	for t := range byTable {
		tables = append(tables, t)
	}
	sort.Slice(tables, func(i, j int) bool { return titleOf(tables[i])[0] < titleOf(tables[j])[0] })
	groups := make([]privacyGroup, 0, len(tables))
	for _, t := range tables {
		title := titleOf(t)
		groups = append(groups, privacyGroup{Title: title[0], About: title[1], Entries: byTable[t]})
	}
	contact, contactURL := privacyContact(s.PrivacyContact)
	data := struct {
		Version, LastChanged string
		Contact              string
		ContactURL           template.URL
		Groups               []privacyGroup
		Technical            int
	}{models.InventoryVersion, models.InventoryLastChanged, contact, contactURL, groups, technical}

	h := c.Writer.Header()
	h.Set("Content-Security-Policy", privacyCSP)
	h.Set("Cache-Control", "public, max-age=300")
	c.Status(http.StatusOK)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := privacyPage.Execute(c.Writer, data); err != nil {
		s.Log.ErrorContext(c.Request.Context(), "render privacy notice", "error", err.Error())
	}
}

func titleOf(table string) [2]string {
	if t, ok := tableTitles[table]; ok {
		return t
	}
	return [2]string{strings.ReplaceAll(table, "_", " "), ""}
}

// privacyContact turns IDBRIDGE_PRIVACY_CONTACT (an email address or an
// https URL; config validates it) into link text and a safe href.
func privacyContact(contact string) (string, template.URL) {
	contact = strings.TrimSpace(contact)
	if contact == "" {
		return "", ""
	}
	if a, err := mail.ParseAddress(contact); err == nil && a.Address == contact {
		return contact, template.URL("mailto:" + url.PathEscape(contact))
	}
	if u, err := url.Parse(contact); err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil {
		return contact, template.URL(u.String())
	}
	return "", ""
}
