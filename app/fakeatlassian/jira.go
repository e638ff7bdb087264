package fakeatlassian

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// jiraProducts are the product keys POST /rest/api/3/user accepts.
var jiraProducts = []string{"jira-software", "jira-servicedesk", "jira-core", "jira-product-discovery"}

// jiraRoutes is Jira's REST API for users, groups and memberships, the
// service account's /myself and /mypermissions, and the admin check.
func (s *Site) jiraRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /rest/api/3/myself", s.handleMyself)
	mux.HandleFunc("GET /rest/api/3/mypermissions", s.handleMyPermissions)
	mux.HandleFunc("POST /rest/api/3/permissions/check", s.handlePermissionsCheck)
	mux.HandleFunc("GET /rest/api/3/user/search", s.handleUserSearch)
	mux.HandleFunc("GET /rest/api/3/user", s.handleUserGet)
	mux.HandleFunc("POST /rest/api/3/user", s.handleUserCreate)
	mux.HandleFunc("DELETE /rest/api/3/user", s.handleUserDelete)
	mux.HandleFunc("GET /rest/api/3/user/groups", s.handleUserGroups)
	mux.HandleFunc("GET /rest/api/3/group/bulk", s.handleGroupBulk)
	mux.HandleFunc("POST /rest/api/3/group", s.handleGroupCreate)
	mux.HandleFunc("DELETE /rest/api/3/group", s.handleGroupDelete)
	mux.HandleFunc("GET /rest/api/3/group/member", s.handleGroupMembers)
	mux.HandleFunc("POST /rest/api/3/group/user", s.handleMemberAdd)
	mux.HandleFunc("DELETE /rest/api/3/group/user", s.handleMemberRemove)
}

// userJSON is Jira's user object.
func (s *Site) userJSON(a *Account) map[string]any {
	return map[string]any{
		"self":         s.srv.URL + "/rest/api/3/user?accountId=" + a.AccountID,
		"accountId":    a.AccountID,
		"accountType":  a.Type,
		"emailAddress": a.Email,
		"displayName":  a.DisplayName,
		"active":       a.active(),
		"timeZone":     "Etc/UTC",
		"locale":       "en_US",
	}
}

func (s *Site) groupJSON(g *Group) map[string]any {
	return map[string]any{
		"name": g.Name, "groupId": g.ID,
		"self":   s.srv.URL + "/rest/api/3/group?groupId=" + g.ID,
		"users":  map[string]any{"size": len(g.Members), "items": []any{}, "max-results": 50, "start-index": 0, "end-index": 0},
		"expand": "users",
	}
}

// requireAdmin answers 403 unless the caller administers Jira.
func requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	c := callerOf(r)
	if c.sa != nil && c.sa.Admin {
		return true
	}
	writeJSON(w, http.StatusForbidden, jiraError("You do not have permission to perform this operation."))
	return false
}

// requireServiceAccount answers 401 to the app's JWT where only a user's
// credentials are accepted.
func requireServiceAccount(w http.ResponseWriter, r *http.Request) bool {
	if callerOf(r).sa != nil {
		return true
	}
	writeJSON(w, http.StatusUnauthorized, jiraError("Client must be authenticated to access this resource."))
	return false
}

func (s *Site) handleMyself(w http.ResponseWriter, r *http.Request) {
	if !requireServiceAccount(w, r) {
		return
	}
	sa := callerOf(r).sa
	s.mu.Lock()
	defer s.mu.Unlock()
	email := sa.Email
	if email == "" {
		email = sa.ClientID + "@connect.atlassian.com"
	}
	a := s.findByEmail(email)
	if a == nil {
		writeJSON(w, http.StatusNotFound, jiraError("The user does not exist."))
		return
	}
	writeJSON(w, http.StatusOK, s.userJSON(a))
}

func (s *Site) handleMyPermissions(w http.ResponseWriter, r *http.Request) {
	if !requireServiceAccount(w, r) {
		return
	}
	want := r.URL.Query().Get("permissions")
	if want == "" {
		writeJSON(w, http.StatusBadRequest, jiraError("The permissions parameter is required."))
		return
	}
	perms := map[string]any{}
	for _, p := range strings.Split(want, ",") {
		p = strings.TrimSpace(p)
		perms[p] = map[string]any{"id": "0", "key": p, "name": p, "type": "GLOBAL", "havePermission": p == "ADMINISTER" && callerOf(r).sa.Admin}
	}
	writeJSON(w, http.StatusOK, map[string]any{"permissions": perms})
}

// handlePermissionsCheck is the admin check the app makes with its JWT.
func (s *Site) handlePermissionsCheck(w http.ResponseWriter, r *http.Request) {
	var body struct {
		GlobalPermissions []string `json:"globalPermissions"`
		AccountID         string   `json:"accountId"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	s.mu.Lock()
	admin := s.admins[body.AccountID]
	s.mu.Unlock()
	granted := []string{}
	if admin && slices.Contains(body.GlobalPermissions, "ADMINISTER") {
		granted = append(granted, "ADMINISTER")
	}
	writeJSON(w, http.StatusOK, map[string]any{"globalPermissions": granted, "projectPermissions": []any{}})
}

// paging reads startAt and maxResults (default 50, at most 1000).
func paging(r *http.Request) (start, limit int) {
	start, _ = strconv.Atoi(r.URL.Query().Get("startAt"))
	limit, err := strconv.Atoi(r.URL.Query().Get("maxResults"))
	if err != nil || limit <= 0 {
		limit = 50
	}
	return max(start, 0), min(limit, 1000)
}

// handleUserSearch matches the query against the start of the email
// address and of the display name, case-insensitively, as Jira does;
// accounts removed from the site are not found.
func (s *Site) handleUserSearch(w http.ResponseWriter, r *http.Request) {
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("query")))
	if q == "" && r.URL.Query().Get("accountId") == "" {
		writeJSON(w, http.StatusBadRequest, jiraError("One of 'query' or 'accountId' query parameters must be provided."))
		return
	}
	start, limit := paging(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []*Account
	for _, a := range s.accounts {
		if !a.InSite {
			continue
		}
		if strings.HasPrefix(strings.ToLower(a.Email), q) || strings.HasPrefix(strings.ToLower(a.DisplayName), q) {
			found = append(found, a)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].AccountID < found[j].AccountID })
	out := []any{}
	for i := start; i < len(found) && len(out) < limit; i++ {
		out = append(out, s.userJSON(found[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Site) handleUserGet(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("accountId")
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[id]
	if a == nil || !a.InSite {
		writeJSON(w, http.StatusNotFound, jiraError("Specified user does not exist or you do not have required permissions"))
		return
	}
	writeJSON(w, http.StatusOK, s.userJSON(a))
}

// handleUserCreate creates an account with product access. An email that
// already has an account in the site answers 201 with it (Atlassian
// returns the existing user); one removed from the site is brought back.
func (s *Site) handleUserCreate(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	var body struct {
		EmailAddress *string  `json:"emailAddress"`
		DisplayName  string   `json:"displayName"`
		Products     []string `json:"products"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.EmailAddress == nil || !strings.Contains(*body.EmailAddress, "@") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"emailAddress": "You must specify a valid email address."}})
		return
	}
	if body.Products == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"products": "The products field is required: list the products the user gets access to, or [] for none."}})
		return
	}
	for _, p := range body.Products {
		if !slices.Contains(jiraProducts, p) {
			writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"products": fmt.Sprintf("%q is not a valid product key.", p)}})
			return
		}
	}
	email := *body.EmailAddress
	s.mu.Lock()
	defer s.mu.Unlock()
	route := "POST /rest/api/3/user"
	if a := s.findByEmail(email); a != nil {
		applied := !a.InSite
		a.InSite = true
		if applied {
			a.Products = slices.Clone(body.Products)
		}
		s.change(route, "user", strings.ToLower(email), "+", applied)
		writeJSON(w, http.StatusCreated, s.userJSON(a))
		return
	}
	name := body.DisplayName
	if name == "" {
		name, _, _ = strings.Cut(email, "@")
	}
	a := s.putAccount(&Account{Email: email, DisplayName: name, Type: AccountAtlassian, InSite: true, Managed: true, Products: slices.Clone(body.Products)})
	s.change(route, "user", strings.ToLower(email), "+", true)
	writeJSON(w, http.StatusCreated, s.userJSON(a))
}

// handleUserDelete removes the account from the site, with its group
// memberships; the account itself lives on in Atlassian.
func (s *Site) handleUserDelete(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	id := r.URL.Query().Get("accountId")
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[id]
	if a == nil || !a.InSite {
		key := id
		if a != nil {
			key = strings.ToLower(a.Email)
		}
		s.change("DELETE /rest/api/3/user", "user", key, "-", false)
		writeJSON(w, http.StatusNotFound, jiraError("The user with account ID '"+id+"' does not exist."))
		return
	}
	a.InSite = false
	a.Products = nil
	for _, g := range s.groups {
		delete(g.Members, id)
	}
	s.change("DELETE /rest/api/3/user", "user", strings.ToLower(a.Email), "-", true)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Site) handleUserGroups(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("accountId")
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[id]
	if a == nil || !a.InSite {
		writeJSON(w, http.StatusNotFound, jiraError("Specified user does not exist."))
		return
	}
	out := []any{}
	for _, g := range s.sortedGroups() {
		if g.Members[id] {
			out = append(out, map[string]any{"name": g.Name, "groupId": g.ID, "self": s.srv.URL + "/rest/api/3/group?groupId=" + g.ID})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// deletedKey names a group that is gone for the change log: its name when
// it was deleted here, else its ID; s.mu is held.
func (s *Site) deletedKey(id string) string {
	if name, ok := s.deleted[id]; ok {
		return name
	}
	return "id:" + id
}

func (s *Site) sortedGroups() []*Group {
	gs := make([]*Group, 0, len(s.groups))
	for _, g := range s.groups {
		gs = append(gs, g)
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].Name < gs[j].Name })
	return gs
}

// handleGroupBulk finds groups by ID or exact name (case-insensitive);
// without either it lists them all, paged.
func (s *Site) handleGroupBulk(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ids, names := q["groupId"], q["groupName"]
	start, limit := paging(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []*Group
	for _, g := range s.sortedGroups() {
		match := len(ids) == 0 && len(names) == 0 || slices.Contains(ids, g.ID)
		for _, n := range names {
			if strings.EqualFold(n, g.Name) {
				match = true
			}
		}
		if match {
			found = append(found, g)
		}
	}
	values := []any{}
	for i := start; i < len(found) && len(values) < limit; i++ {
		values = append(values, map[string]any{"name": found[i].Name, "groupId": found[i].ID})
	}
	writeJSON(w, http.StatusOK, map[string]any{"maxResults": limit, "startAt": start, "total": len(found),
		"isLast": start+len(values) >= len(found), "values": values})
}

func (s *Site) handleGroupCreate(w http.ResponseWriter, r *http.Request) {
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
	if name == "" || len(name) > 255 {
		writeJSON(w, http.StatusBadRequest, jiraError("You must specify a valid group name."))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.findGroupByName(name) != nil {
		s.change("POST /rest/api/3/group", "group", strings.ToLower(name), "+", false)
		writeJSON(w, http.StatusBadRequest, jiraError("A group with that name already exists."))
		return
	}
	g := s.putGroup(name)
	s.change("POST /rest/api/3/group", "group", strings.ToLower(name), "+", true)
	writeJSON(w, http.StatusCreated, s.groupJSON(g))
}

// groupParam finds the group named by groupId (or the legacy groupname);
// s.mu is held.
func (s *Site) groupParam(r *http.Request) (*Group, string) {
	q := r.URL.Query()
	if id := q.Get("groupId"); id != "" {
		return s.groups[id], id
	}
	if name := q.Get("groupname"); name != "" {
		return s.findGroupByName(name), name
	}
	return nil, ""
}

func (s *Site) handleGroupDelete(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, key := s.groupParam(r)
	if key == "" {
		writeJSON(w, http.StatusBadRequest, jiraError("Either groupName or groupId must be provided."))
		return
	}
	if g == nil {
		s.change("DELETE /rest/api/3/group", "group", s.deletedKey(key), "-", false)
		writeJSON(w, http.StatusNotFound, jiraError("Specified group does not exist."))
		return
	}
	delete(s.groups, g.ID)
	s.deleted[g.ID] = strings.ToLower(g.Name)
	s.change("DELETE /rest/api/3/group", "group", strings.ToLower(g.Name), "-", true)
	w.WriteHeader(http.StatusOK)
}

func (s *Site) handleGroupMembers(w http.ResponseWriter, r *http.Request) {
	start, limit := paging(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	g, _ := s.groupParam(r)
	if g == nil {
		writeJSON(w, http.StatusNotFound, jiraError("Specified group does not exist."))
		return
	}
	ids := make([]string, 0, len(g.Members))
	for id := range g.Members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	values := []any{}
	for i := start; i < len(ids) && len(values) < limit; i++ {
		if a := s.accounts[ids[i]]; a != nil {
			values = append(values, s.userJSON(a))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"maxResults": limit, "startAt": start, "total": len(ids),
		"isLast": start+len(values) >= len(ids), "values": values})
}

func (s *Site) handleMemberAdd(w http.ResponseWriter, r *http.Request) {
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
	s.addMember(w, r, "POST /rest/api/3/group/user", body.AccountID, false)
}

// addMember adds an account to the group the request names; s.mu is held.
// confluence selects Confluence's answers.
func (s *Site) addMember(w http.ResponseWriter, r *http.Request, route, accountID string, confluence bool) {
	g, key := s.groupParam(r)
	if key == "" || accountID == "" {
		writeJSON(w, http.StatusBadRequest, jiraError("Both a group and an accountId must be provided."))
		return
	}
	a := s.accounts[accountID]
	if g == nil || a == nil || !a.InSite {
		writeJSON(w, http.StatusNotFound, jiraError("Specified group or user does not exist."))
		return
	}
	memberKey := strings.ToLower(g.Name) + "/" + strings.ToLower(a.Email)
	if g.Members[accountID] {
		s.change(route, "member", memberKey, "+", false)
		writeJSON(w, http.StatusBadRequest, jiraError("Cannot add user. User is already a member of '"+g.Name+"'"))
		return
	}
	g.Members[accountID] = true
	s.change(route, "member", memberKey, "+", true)
	if confluence {
		w.WriteHeader(http.StatusCreated)
		return
	}
	writeJSON(w, http.StatusCreated, s.groupJSON(g))
}

func (s *Site) handleMemberRemove(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removeMember(w, r, "DELETE /rest/api/3/group/user") {
		w.WriteHeader(http.StatusOK)
	}
}

// removeMember removes the request's accountId from its group; s.mu is
// held. It answers the errors itself and reports whether it removed one.
func (s *Site) removeMember(w http.ResponseWriter, r *http.Request, route string) bool {
	g, key := s.groupParam(r)
	id := r.URL.Query().Get("accountId")
	if key == "" || id == "" {
		writeJSON(w, http.StatusBadRequest, jiraError("Both a group and an accountId must be provided."))
		return false
	}
	if g == nil {
		writeJSON(w, http.StatusNotFound, jiraError("Specified group does not exist."))
		return false
	}
	memberKey := strings.ToLower(g.Name) + "/" + id
	if a := s.accounts[id]; a != nil {
		memberKey = strings.ToLower(g.Name) + "/" + strings.ToLower(a.Email)
	}
	if !g.Members[id] {
		s.change(route, "member", memberKey, "-", false)
		writeJSON(w, http.StatusNotFound, jiraError("The user is not a member of '"+g.Name+"'."))
		return false
	}
	delete(g.Members, id)
	s.change(route, "member", memberKey, "-", true)
	return true
}
