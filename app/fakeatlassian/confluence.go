package fakeatlassian

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// confluenceRoutes is Confluence's group API and its admin check, under
// /wiki as on every Confluence Cloud site.
func (s *Site) confluenceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /wiki/rest/api/user", s.handleConfluenceUser)
	mux.HandleFunc("GET /wiki/rest/api/group/picker", s.handleConfluenceGroupPicker)
	mux.HandleFunc("GET /wiki/rest/api/group/by-id", s.handleConfluenceGroupByID)
	mux.HandleFunc("POST /wiki/rest/api/group", s.handleConfluenceGroupCreate)
	mux.HandleFunc("DELETE /wiki/rest/api/group/by-id", s.handleConfluenceGroupDelete)
	mux.HandleFunc("GET /wiki/rest/api/group/{groupId}/membersByGroupId", s.handleConfluenceMembers)
	mux.HandleFunc("POST /wiki/rest/api/group/userByGroupId", s.handleConfluenceMemberAdd)
	mux.HandleFunc("DELETE /wiki/rest/api/group/userByGroupId", s.handleConfluenceMemberRemove)
}

func confluenceError(status int, msg string) map[string]any {
	return map[string]any{"statusCode": status, "message": msg, "data": map[string]any{"authorized": true, "valid": false}}
}

func confluenceGroupJSON(g *Group) map[string]any {
	return map[string]any{"type": "group", "name": g.Name, "id": g.ID}
}

// handleConfluenceUser is Confluence's Get user, which serves the admin
// check and the lookup of a display name: the user, with its operations
// only when asked for (expand=operations), as Confluence answers; a site
// admin may administer the application. Confluence's user has no
// "active" and, with the default profile visibility, no email address.
func (s *Site) handleConfluenceUser(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("accountId")
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[id]
	admin := s.admins[id]
	if a == nil && !admin {
		writeJSON(w, http.StatusNotFound, confluenceError(404, "No user found with accountId "+id))
		return
	}
	ops := []any{map[string]any{"operation": "read", "targetType": "application"}}
	if admin {
		ops = append(ops, map[string]any{"operation": "administer", "targetType": "application"})
	}
	out := map[string]any{"type": "known", "accountId": id}
	if slices.Contains(strings.Split(r.URL.Query().Get("expand"), ","), "operations") {
		out["operations"] = ops
	}
	if a != nil {
		out["displayName"], out["publicName"], out["accountType"] = a.DisplayName, a.DisplayName, a.Type
	}
	writeJSON(w, http.StatusOK, out)
}

// handleConfluenceGroupPicker finds groups whose name contains the query.
func (s *Site) handleConfluenceGroupPicker(w http.ResponseWriter, r *http.Request) {
	q := strings.ToLower(r.URL.Query().Get("query"))
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 {
		limit = 200
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	results := []any{}
	for _, g := range s.sortedGroups() {
		if strings.Contains(strings.ToLower(g.Name), q) && len(results) < limit {
			results = append(results, confluenceGroupJSON(g))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results, "start": 0, "limit": limit, "size": len(results)})
}

func (s *Site) handleConfluenceGroupByID(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[r.URL.Query().Get("id")]
	if g == nil {
		writeJSON(w, http.StatusNotFound, confluenceError(404, "No group found"))
		return
	}
	writeJSON(w, http.StatusOK, confluenceGroupJSON(g))
}

func (s *Site) handleConfluenceGroupCreate(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	var body struct {
		Name string `json:"name"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	name := strings.TrimSpace(body.Name)
	if name == "" {
		writeJSON(w, http.StatusBadRequest, confluenceError(400, "A group name is required."))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.findGroupByName(name) != nil {
		s.change("POST /wiki/rest/api/group", "group", strings.ToLower(name), "+", false)
		writeJSON(w, http.StatusBadRequest, confluenceError(400, "A group with this name already exists."))
		return
	}
	g := s.putGroup(name)
	s.change("POST /wiki/rest/api/group", "group", strings.ToLower(name), "+", true)
	writeJSON(w, http.StatusCreated, confluenceGroupJSON(g))
}

func (s *Site) handleConfluenceGroupDelete(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	id := r.URL.Query().Get("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[id]
	if g == nil {
		s.change("DELETE /wiki/rest/api/group/by-id", "group", s.deletedKey(id), "-", false)
		writeJSON(w, http.StatusNotFound, confluenceError(404, "No group found"))
		return
	}
	delete(s.groups, id)
	s.deleted[id] = strings.ToLower(g.Name)
	s.change("DELETE /wiki/rest/api/group/by-id", "group", strings.ToLower(g.Name), "-", true)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Site) handleConfluenceMembers(w http.ResponseWriter, r *http.Request) {
	start, _ := strconv.Atoi(r.URL.Query().Get("start"))
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 {
		limit = 200
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[pathParam(r, "group")]
	if g == nil {
		writeJSON(w, http.StatusNotFound, confluenceError(404, "No group found"))
		return
	}
	ids := sortedKeys(g.Members)
	results := []any{}
	for i := max(start, 0); i < len(ids) && len(results) < limit; i++ {
		if a := s.accounts[ids[i]]; a != nil {
			results = append(results, map[string]any{"type": "known", "accountId": a.AccountID, "accountType": a.Type,
				"email": a.Email, "displayName": a.DisplayName})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results, "start": start, "limit": limit, "size": len(results)})
}

func (s *Site) handleConfluenceMemberAdd(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	var body struct {
		AccountID string `json:"accountId"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addMember(w, r, "POST /wiki/rest/api/group/userByGroupId", body.AccountID, true)
}

func (s *Site) handleConfluenceMemberRemove(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removeMember(w, r, "DELETE /wiki/rest/api/group/userByGroupId") {
		w.WriteHeader(http.StatusNoContent)
	}
}
