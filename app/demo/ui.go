package demo

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"idbridge/app/fakeatlassian"
)

// Paths of the simulated site's web UI, on the site's origin.
const (
	hostPagePath  = "/plugins/servlet/ac/" + AppKey + "/" + adminModuleKey
	tokenPath     = "/plugins/servlet/ac/context-token"
	allJSPath     = "/connect/all.js"
	sitePagePath  = "/simulated-site"
	siteStatePath = "/simulated-site/state"
	siteAssets    = "/simulated-site/assets/"
)

//go:embed assets
var assets embed.FS

var sitePage = template.Must(template.ParseFS(assets, "assets/site.html"))

// pageCSP is the Simulated site page's policy: its own script and style.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// siteUI is the simulated site's web UI: Jira's page around idbridge's
// admin page (the host page, its token endpoint and the stand-in all.js),
// and the Simulated site page that shows the site's state live.
type siteUI struct {
	site           *fakeatlassian.Site
	user           string // the visitor: the site's admin
	appBaseURL     string
	scimBaseURL    string
	portalURL      string
	customerDomain string
	serviceEmail   string
	serviceToken   string
	log            *slog.Logger
}

func (u *siteUI) mount() error {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		return err
	}
	s := u.site
	s.HandleUI("GET /{$}", http.RedirectHandler(hostPagePath, http.StatusFound))
	s.HandleUI("GET "+hostPagePath, http.HandlerFunc(u.serveHostPage))
	s.HandleUI("POST "+tokenPath, http.HandlerFunc(u.serveToken))
	s.HandleUI("GET "+allJSPath, http.HandlerFunc(fakeatlassian.ServeAllJS))
	s.HandleUI("GET "+sitePagePath, http.HandlerFunc(u.serveSitePage))
	s.HandleUI("GET "+siteStatePath, http.HandlerFunc(u.serveState))
	s.HandleUI("GET "+siteAssets, http.StripPrefix(strings.TrimSuffix(siteAssets, "/"), http.FileServerFS(sub)))
	return nil
}

var navLinks = []fakeatlassian.HostLink{
	{Text: "Apps › idbridge", Href: hostPagePath},
	{Text: "Simulated site", Href: sitePagePath},
}

// serveHostPage is Jira's page for idbridge's admin page module: the
// iframe with a fresh URL-bound JWT for the visitor.
func (u *siteUI) serveHostPage(w http.ResponseWriter, _ *http.Request) {
	src, err := u.site.ModuleURL(adminModuleKey, u.user)
	if err != nil {
		u.log.Error("demo host page", "error", err.Error())
		http.Error(w, "the simulated site could not build the admin page's URL", http.StatusInternalServerError)
		return
	}
	if err := fakeatlassian.WriteHostPage(w, fakeatlassian.HostPage{
		Title:     "idbridge · Apps · Simulated Jira (idbridge demo)",
		Heading:   "Simulated Jira › Apps › idbridge",
		Links:     navLinks,
		Src:       src,
		AppOrigin: u.appBaseURL,
		TokenURL:  tokenPath,
	}); err != nil {
		u.log.Error("demo host page", "error", err.Error())
	}
}

// serveToken hands the host page a fresh context JWT for the visitor, as
// Jira does for AP.context.getToken. Only the site's own pages may ask:
// the request must carry the site's origin (browsers send it with fetch).
func (u *siteUI) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != u.site.Origin() {
		http.Error(w, "only the simulated site's pages may ask for a token", http.StatusForbidden)
		return
	}
	tok, err := u.site.ContextToken(u.user)
	if err != nil {
		http.Error(w, "no token", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(tok))
}

// curlLine is one ready command on the Simulated site page.
type curlLine struct {
	Title, Command string
}

func (u *siteUI) curlLines() []curlLine {
	h := `-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/scim+json'`
	return []curlLine{
		{"1. Paste the token you generated on the admin page (User provisioning → Generate token)",
			`TOKEN='paste the token here'`},
		{"2. Create a user (the answer's \"id\" is idbridge's SCIM ID for it)",
			`curl -sS -X POST ` + h + ` \` + "\n" + `  ` + u.scimBaseURL + `/Users \` + "\n" +
				`  -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@demo.example","name":{"givenName":"Ada","familyName":"Lovelace"},"displayName":"Ada Lovelace","emails":[{"value":"ada@demo.example","type":"work","primary":true}],"active":true}'`},
		{"3. Keep that ID",
			`USER_ID=$(curl -sS ` + h + ` '` + u.scimBaseURL + `/Users?filter=userName%20eq%20%22ada@demo.example%22' | grep -o '"id":"[^"]*"' | head -n1 | cut -d'"' -f4); echo "$USER_ID"`},
		{"4. Create a group with her in it",
			`curl -sS -X POST ` + h + ` \` + "\n" + `  ` + u.scimBaseURL + `/Groups \` + "\n" +
				`  -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"analytical-engine","members":[{"value":"'"$USER_ID"'"}]}'`},
		{"5. Deactivate her, as Okta does",
			`curl -sS -X PATCH ` + h + ` \` + "\n" + `  ` + u.scimBaseURL + `/Users/$USER_ID \` + "\n" +
				`  -d '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}'`},
	}
}

func (u *siteUI) serveSitePage(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	err := sitePage.Execute(&b, map[string]any{
		"Links":          navLinks,
		"Curl":           u.curlLines(),
		"SCIMBaseURL":    u.scimBaseURL,
		"PortalURL":      u.portalURL,
		"CustomerDomain": u.customerDomain,
		"ServiceEmail":   u.serviceEmail,
		"ServiceToken":   u.serviceToken,
		"Assets":         siteAssets,
	})
	if err != nil {
		u.log.Error("demo site page", "error", err.Error())
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	_, _ = w.Write(b.Bytes())
}

// stateUser is one account on the Simulated site page.
type stateUser struct {
	Email       string   `json:"email"`
	DisplayName string   `json:"displayName"`
	AccountID   string   `json:"accountId"`
	Active      bool     `json:"active"`
	Products    []string `json:"products"`
}

type stateGroup struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

type stateRequest struct {
	Key      string `json:"key"`
	Summary  string `json:"summary"`
	Reporter string `json:"reporter"`
	Status   string `json:"status"`
}

type siteState struct {
	Users     []stateUser    `json:"users"`
	Customers []stateUser    `json:"customers"`
	Groups    []stateGroup   `json:"groups"`
	Requests  []stateRequest `json:"requests"`
}

// serveState is the site's users, customers, groups and requests now, for
// the Simulated site page to show.
func (u *siteUI) serveState(w http.ResponseWriter, _ *http.Request) {
	snap := u.site.Snapshot()
	st := siteState{Users: []stateUser{}, Customers: []stateUser{}, Groups: []stateGroup{}, Requests: []stateRequest{}}
	emailOf := map[string]string{}
	for email, a := range snap.Users {
		emailOf[a.AccountID] = email
		su := stateUser{Email: email, DisplayName: a.DisplayName, AccountID: a.AccountID, Active: a.InSite && !a.Suspended, Products: a.Products}
		if su.Products == nil {
			su.Products = []string{}
		}
		if a.Type == fakeatlassian.AccountCustomer {
			st.Customers = append(st.Customers, su)
		} else {
			st.Users = append(st.Users, su)
		}
	}
	for name, members := range snap.Groups {
		st.Groups = append(st.Groups, stateGroup{Name: name, Members: members})
	}
	for _, r := range u.site.CustomerRequests() {
		summary, _ := r.Fields["summary"].(string)
		reporter := emailOf[r.ReporterID]
		if reporter == "" {
			reporter = r.ReporterID
		}
		st.Requests = append(st.Requests, stateRequest{Key: r.Key, Summary: summary, Reporter: reporter, Status: r.Status})
	}
	sort.Slice(st.Users, func(i, j int) bool { return st.Users[i].Email < st.Users[j].Email })
	sort.Slice(st.Customers, func(i, j int) bool { return st.Customers[i].Email < st.Customers[j].Email })
	sort.Slice(st.Groups, func(i, j int) bool { return st.Groups[i].Name < st.Groups[j].Name })
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(st)
}
