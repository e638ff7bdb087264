package fakeatlassian

import (
	"net/http"
	"strings"
	"time"
)

// oauthTokenTTL is how long an OAuth access token lives (Atlassian: an
// hour).
const oauthTokenTTL = time.Hour

// orgRoutes is the organization Admin API and the user management API on
// the API host, and the OAuth token endpoint's neighbours. Requests about
// a site's organization or accounts go through that site's pipeline.
func (f *Fake) orgRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/v1/orgs", f.handleOrgs)
	for _, action := range []string{"suspend-access", "restore-access"} {
		route := "POST /admin/v1/orgs/{orgId}/directory/users/{accountId}/" + action
		suspend := action == "suspend-access"
		mux.HandleFunc(route, func(w http.ResponseWriter, r *http.Request) {
			s := f.siteByOrg(r.PathValue("orgId"))
			if s == nil {
				writeJSON(w, http.StatusNotFound, orgError(404, "Organization not found"))
				return
			}
			s.pipeline(w, r, route, s.orgKeyAuth, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s.handleSuspension(w, r, route, suspend)
			}), viaGateway)
		})
	}
	profile := "PATCH /users/{accountId}/manage/profile"
	mux.HandleFunc(profile, func(w http.ResponseWriter, r *http.Request) {
		s := f.siteByAccount(r.PathValue("accountId"))
		if s == nil {
			writeJSON(w, http.StatusNotFound, orgError(404, "The account does not exist."))
			return
		}
		s.pipeline(w, r, profile, s.orgKeyAuth, http.HandlerFunc(s.handleProfile), viaGateway)
	})
}

func orgError(status int, msg string) map[string]any {
	return map[string]any{"code": status, "message": msg}
}

// orgKeyAuth accepts the organization's Admin API keys as Bearer tokens.
func (s *Site) orgKeyAuth(r *http.Request) (caller, bool) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return caller{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return caller{how: "orgkey"}, s.orgKeys[key]
}

// handleOrgs lists the organizations the key belongs to.
func (f *Fake) handleOrgs(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	data := []any{}
	for _, s := range f.Sites() {
		var has bool
		s.Do(func() { has = ok && s.orgKeys[key] })
		if has {
			data = append(data, map[string]any{"id": s.OrgID, "type": "orgs", "attributes": map[string]any{"name": "Organization " + s.OrgID[:8]}})
		}
	}
	if len(data) == 0 {
		writeJSON(w, http.StatusUnauthorized, orgError(401, "Unauthorized"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "links": map[string]any{}})
}

// manageable finds an account the organization may manage; it answers
// the error itself. s.mu is held.
func (s *Site) manageable(w http.ResponseWriter, id string) *Account {
	a := s.accounts[id]
	switch {
	case a == nil:
		writeJSON(w, http.StatusNotFound, orgError(404, "The user does not exist in this organization."))
		return nil
	case !a.Managed || a.Type != AccountAtlassian:
		writeJSON(w, http.StatusForbidden, orgError(403, "The user's account is not managed by this organization."))
		return nil
	}
	return a
}

func (s *Site) handleSuspension(w http.ResponseWriter, r *http.Request, route string, suspend bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.manageable(w, r.PathValue("accountId"))
	if a == nil {
		return
	}
	op := "-"
	if suspend {
		op = "+"
	}
	applied := a.Suspended != suspend
	a.Suspended = suspend
	s.change(route, "suspension", strings.ToLower(a.Email), op, applied)
	msg := "Your request to restore access for the user was successful."
	if suspend {
		msg = "Your request to suspend access for the user was successful."
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": msg})
}

// handleProfile changes a managed account's profile (the name; nickname
// and the other fields are accepted and ignored).
func (s *Site) handleProfile(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if !decodeBody(w, r, &body) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.manageable(w, r.PathValue("accountId"))
	if a == nil {
		return
	}
	if name, ok := body["name"].(string); ok {
		if strings.TrimSpace(name) == "" {
			writeJSON(w, http.StatusBadRequest, orgError(400, "The name must not be empty."))
			return
		}
		applied := a.DisplayName != name
		a.DisplayName = name
		s.change("PATCH /users/{accountId}/manage/profile", "profile", strings.ToLower(a.Email), "+", applied)
	}
	writeJSON(w, http.StatusOK, map[string]any{"account_id": a.AccountID, "name": a.DisplayName, "email": a.Email})
}

// serveToken is the OAuth 2.0 token endpoint for client credentials, as
// auth.atlassian.com answers it.
func (f *Fake) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("audience") != "api.atlassian.com" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "grant_type client_credentials and audience api.atlassian.com are required"})
		return
	}
	for _, s := range f.Sites() {
		var ok bool
		s.Do(func() {
			for _, sa := range s.service {
				if sa.ClientID != "" && sa.ClientID == id && sa.ClientSecret == secret {
					ok = true
				}
			}
		})
		if ok {
			tok := f.issueBearer(s, id, oauthTokenTTL)
			writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer",
				"expires_in": int(oauthTokenTTL.Seconds()), "scope": "manage:jira-configuration read:jira-user"})
			return
		}
	}
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "access_denied", "error_description": "Unauthorized"})
}
