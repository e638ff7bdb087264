package fakeatlassian

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Jira Service Management: service desks with their request types and
// forms, the customers of each desk, organizations and their members,
// customer requests with participants and comments, and the JQL search
// the portal uses to list a customer's requests. Answers and errors follow
// the servicedeskapi's shapes ({"errorMessage": …}, paged {"values": …}).

// RequestTypeField is one field of a request type's form.
type RequestTypeField struct {
	FieldID     string
	Name        string
	Description string
	Required    bool
	Type        string   // jiraSchema type: "string", "option", …
	Values      []string // valid values of an "option" field
}

// RequestType is one way to raise a request on a service desk.
type RequestType struct {
	ID          string
	Name        string
	Description string
	Fields      []RequestTypeField
}

// ServiceDesk is a JSM project as the servicedeskapi shows it.
type ServiceDesk struct {
	ID           string
	ProjectID    string
	ProjectKey   string
	ProjectName  string
	RequestTypes []*RequestType
	Customers    map[string]bool // account IDs
}

// Organization is a JSM organization.
type Organization struct {
	ID      string
	Name    string
	Members map[string]bool
}

// Comment is a comment on a request.
type Comment struct {
	ID       string
	Body     string
	Public   bool
	AuthorID string
	Created  time.Time
}

// Request is a customer request (a Jira issue of a service desk).
type Request struct {
	IssueID       string
	Key           string
	ServiceDeskID string
	RequestTypeID string
	ReporterID    string
	Participants  map[string]bool
	Fields        map[string]any
	Status        string
	Created       time.Time
	Comments      []*Comment
}

type jsmState struct {
	desks    []*ServiceDesk
	orgs     map[string]*Organization
	requests map[string]*Request // by key
	issues   map[string]*Request // by issue ID
	nextID   int
}

func (s *Site) jsmRoutes(mux *http.ServeMux) {
	s.jsm = jsmState{orgs: map[string]*Organization{}, requests: map[string]*Request{}, issues: map[string]*Request{}, nextID: 10000}
	mux.HandleFunc("GET /rest/servicedeskapi/servicedesk", s.handleDesks)
	mux.HandleFunc("GET /rest/servicedeskapi/servicedesk/{id}", s.handleDesk)
	mux.HandleFunc("GET /rest/servicedeskapi/servicedesk/{id}/requesttype", s.handleRequestTypes)
	mux.HandleFunc("GET /rest/servicedeskapi/servicedesk/{id}/requesttype/{rt}/field", s.handleRequestTypeFields)
	mux.HandleFunc("POST /rest/servicedeskapi/servicedesk/{id}/customer", s.handleDeskCustomersAdd)
	mux.HandleFunc("POST /rest/servicedeskapi/organization/{id}/user", s.handleOrganizationUsersAdd)
	mux.HandleFunc("POST /rest/servicedeskapi/request", s.handleRequestCreate)
	mux.HandleFunc("GET /rest/servicedeskapi/request/{key}", s.handleRequestGet)
	mux.HandleFunc("GET /rest/servicedeskapi/request/{key}/participant", s.handleParticipants)
	mux.HandleFunc("GET /rest/servicedeskapi/request/{key}/comment", s.handleComments)
	mux.HandleFunc("POST /rest/servicedeskapi/request/{key}/comment", s.handleCommentAdd)
	mux.HandleFunc("POST /rest/api/3/search/jql", s.handleSearchJQL)
}

func sdError(msg string) map[string]any {
	return map[string]any{"errorMessage": msg, "i18nErrorMessage": map[string]any{"i18nKey": "sd.error", "parameters": []string{}}}
}

func (s *Site) newID() string {
	s.jsm.nextID++
	return strconv.Itoa(s.jsm.nextID)
}

// AddServiceDesk adds a service desk (a JSM project); it returns its ID.
func (s *Site) AddServiceDesk(key, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &ServiceDesk{ID: s.newID(), ProjectID: s.newID(), ProjectKey: key, ProjectName: name, Customers: map[string]bool{}}
	s.jsm.desks = append(s.jsm.desks, d)
	return d.ID
}

// AddRequestType adds a request type to a service desk; it returns its ID.
func (s *Site) AddRequestType(deskID string, rt RequestType) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.desk(deskID)
	if d == nil {
		panic("fakeatlassian: no service desk " + deskID)
	}
	rt.ID = s.newID()
	c := rt
	d.RequestTypes = append(d.RequestTypes, &c)
	return rt.ID
}

// AddOrganization adds a JSM organization; it returns its ID.
func (s *Site) AddOrganization(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &Organization{ID: s.newID(), Name: name, Members: map[string]bool{}}
	s.jsm.orgs[o.ID] = o
	return o.ID
}

// DeskCustomers returns the account IDs with access to the service desk.
func (s *Site) DeskCustomers(deskID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.desk(deskID)
	if d == nil {
		return nil
	}
	return sortedKeys(d.Customers)
}

// OrganizationMembers returns the account IDs in the organization.
func (s *Site) OrganizationMembers(orgID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.jsm.orgs[orgID]
	if o == nil {
		return nil
	}
	return sortedKeys(o.Members)
}

// CustomerRequests returns copies of every customer request, oldest first.
func (s *Site) CustomerRequests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.jsm.requests {
		c := *r
		c.Comments = slices.Clone(r.Comments)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IssueID < out[j].IssueID })
	return out
}

// AddRequest puts a request in the site directly (raised by someone else,
// for example); it returns its key.
func (s *Site) AddRequest(deskID, requestTypeID, reporterID, summary string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.desk(deskID)
	r := s.putRequest(d, requestTypeID, reporterID, map[string]any{"summary": summary})
	return r.Key
}

// AddComment adds a comment to a request as an agent (public or internal).
func (s *Site) AddComment(key, authorID, body string, public bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.jsm.requests[key]; r != nil {
		r.Comments = append(r.Comments, &Comment{ID: s.newID(), Body: body, Public: public, AuthorID: authorID, Created: s.f.now()})
	}
}

// AddParticipant makes an account a participant of a request.
func (s *Site) AddParticipant(key, accountID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.jsm.requests[key]; r != nil {
		r.Participants[accountID] = true
	}
}

func (s *Site) desk(id string) *ServiceDesk {
	for _, d := range s.jsm.desks {
		if d.ID == id {
			return d
		}
	}
	return nil
}

func (s *Site) putRequest(d *ServiceDesk, rtID, reporter string, fields map[string]any) *Request {
	id := s.newID()
	n := 1
	for _, r := range s.jsm.requests {
		if r.ServiceDeskID == d.ID {
			n++
		}
	}
	r := &Request{IssueID: id, Key: fmt.Sprintf("%s-%d", d.ProjectKey, n), ServiceDeskID: d.ID, RequestTypeID: rtID,
		ReporterID: reporter, Participants: map[string]bool{}, Fields: fields, Status: "Waiting for support", Created: s.f.now()}
	s.jsm.requests[r.Key] = r
	s.jsm.issues[r.IssueID] = r
	return r
}

func sdPage(r *http.Request, values []any) map[string]any {
	start, _ := strconv.Atoi(r.URL.Query().Get("start"))
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 || limit > 100 {
		limit = 50
	}
	start = max(start, 0)
	end := min(start+limit, len(values))
	page := []any{}
	if start < len(values) {
		page = values[start:end]
	}
	return map[string]any{"start": start, "limit": limit, "size": len(page), "isLastPage": end >= len(values), "values": page}
}

func (s *Site) deskJSON(d *ServiceDesk) map[string]any {
	return map[string]any{"id": d.ID, "projectId": d.ProjectID, "projectKey": d.ProjectKey, "projectName": d.ProjectName}
}

func (s *Site) handleDesks(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	values := []any{}
	for _, d := range s.jsm.desks {
		values = append(values, s.deskJSON(d))
	}
	writeJSON(w, http.StatusOK, sdPage(r, values))
}

func (s *Site) handleDesk(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.desk(pathParam(r, "servicedesk"))
	if d == nil {
		writeJSON(w, http.StatusNotFound, sdError("The service desk does not exist."))
		return
	}
	writeJSON(w, http.StatusOK, s.deskJSON(d))
}

func (s *Site) handleRequestTypes(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.desk(pathParam(r, "servicedesk"))
	if d == nil {
		writeJSON(w, http.StatusNotFound, sdError("The service desk does not exist."))
		return
	}
	values := []any{}
	for _, rt := range d.RequestTypes {
		values = append(values, map[string]any{"id": rt.ID, "name": rt.Name, "description": rt.Description,
			"helpText": "", "serviceDeskId": d.ID, "issueTypeId": "10001"})
	}
	writeJSON(w, http.StatusOK, sdPage(r, values))
}

func (s *Site) requestType(d *ServiceDesk, id string) *RequestType {
	for _, rt := range d.RequestTypes {
		if rt.ID == id {
			return rt
		}
	}
	return nil
}

func (s *Site) handleRequestTypeFields(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.desk(pathParam(r, "servicedesk"))
	var rt *RequestType
	if d != nil {
		rt = s.requestType(d, pathParam(r, "requesttype"))
	}
	if rt == nil {
		writeJSON(w, http.StatusNotFound, sdError("The request type does not exist."))
		return
	}
	fields := []any{}
	for _, f := range rt.Fields {
		typ := f.Type
		if typ == "" {
			typ = "string"
		}
		valid := []any{}
		for _, v := range f.Values {
			valid = append(valid, map[string]any{"value": v, "label": v, "children": []any{}})
		}
		fields = append(fields, map[string]any{"fieldId": f.FieldID, "name": f.Name, "description": f.Description,
			"required": f.Required, "validValues": valid, "jiraSchema": map[string]any{"type": typ, "system": f.FieldID}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"requestTypeFields": fields, "canRaiseOnBehalfOf": true, "canAddRequestParticipants": true})
}

type accountIDs struct {
	AccountIDs []string `json:"accountIds"`
}

func (s *Site) handleDeskCustomersAdd(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	var body accountIDs
	if !decodeBody(w, r, &body) {
		return
	}
	route := "POST /rest/servicedeskapi/servicedesk/{id}/customer"
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.desk(pathParam(r, "servicedesk"))
	if d == nil {
		writeJSON(w, http.StatusNotFound, sdError("The service desk does not exist."))
		return
	}
	for _, id := range body.AccountIDs {
		if a := s.accounts[id]; a == nil || !a.InSite {
			writeJSON(w, http.StatusBadRequest, sdError("The account "+id+" does not exist."))
			return
		}
	}
	for _, id := range body.AccountIDs {
		s.change(route, "servicedesk-customer", d.ID+"/"+id, "+", !d.Customers[id])
		d.Customers[id] = true
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Site) handleOrganizationUsersAdd(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	var body accountIDs
	if !decodeBody(w, r, &body) {
		return
	}
	route := "POST /rest/servicedeskapi/organization/{id}/user"
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.jsm.orgs[pathParam(r, "organization")]
	if o == nil {
		writeJSON(w, http.StatusNotFound, sdError("The organization does not exist."))
		return
	}
	for _, id := range body.AccountIDs {
		if a := s.accounts[id]; a == nil || !a.InSite {
			writeJSON(w, http.StatusBadRequest, sdError("The account "+id+" does not exist."))
			return
		}
	}
	for _, id := range body.AccountIDs {
		s.change(route, "organization-user", o.ID+"/"+id, "+", !o.Members[id])
		o.Members[id] = true
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Site) requestJSON(req *Request) map[string]any {
	values := []any{}
	d := s.desk(req.ServiceDeskID)
	var rt *RequestType
	if d != nil {
		rt = s.requestType(d, req.RequestTypeID)
	}
	if rt != nil {
		for _, f := range rt.Fields {
			if v, ok := req.Fields[f.FieldID]; ok {
				values = append(values, map[string]any{"fieldId": f.FieldID, "label": f.Name, "value": v})
			}
		}
	}
	rep := map[string]any{"accountId": req.ReporterID}
	if a := s.accounts[req.ReporterID]; a != nil {
		rep["displayName"], rep["emailAddress"] = a.DisplayName, a.Email
	}
	return map[string]any{
		"issueId": req.IssueID, "issueKey": req.Key, "requestTypeId": req.RequestTypeID, "serviceDeskId": req.ServiceDeskID,
		"createdDate":        map[string]any{"iso8601": req.Created.UTC().Format("2006-01-02T15:04:05-0700"), "epochMillis": req.Created.UnixMilli()},
		"reporter":           rep,
		"requestFieldValues": values,
		"currentStatus":      map[string]any{"status": req.Status, "statusCategory": "NEW"},
	}
}

// handleRequestCreate raises a request, on behalf of a customer of the
// desk when raiseOnBehalfOf is given; required fields must be present, and
// fields the request type does not have are refused.
func (s *Site) handleRequestCreate(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	var body struct {
		ServiceDeskID      string         `json:"serviceDeskId"`
		RequestTypeID      string         `json:"requestTypeId"`
		RequestFieldValues map[string]any `json:"requestFieldValues"`
		RaiseOnBehalfOf    string         `json:"raiseOnBehalfOf"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	route := "POST /rest/servicedeskapi/request"
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.desk(body.ServiceDeskID)
	if d == nil {
		writeJSON(w, http.StatusBadRequest, sdError("The service desk does not exist."))
		return
	}
	rt := s.requestType(d, body.RequestTypeID)
	if rt == nil {
		writeJSON(w, http.StatusBadRequest, sdError("The request type does not exist."))
		return
	}
	reporter := body.RaiseOnBehalfOf
	if reporter == "" {
		writeJSON(w, http.StatusBadRequest, sdError("The service account cannot raise requests for itself here."))
		return
	}
	if a := s.accounts[reporter]; a == nil || !a.InSite || !d.Customers[reporter] {
		writeJSON(w, http.StatusBadRequest, sdError("The user "+reporter+" is not a customer of this service desk."))
		return
	}
	known := map[string]bool{}
	for _, f := range rt.Fields {
		known[f.FieldID] = true
		v, ok := body.RequestFieldValues[f.FieldID]
		if f.Required && (!ok || v == nil || v == "") {
			writeJSON(w, http.StatusBadRequest, sdError("Field '"+f.Name+"' is required."))
			return
		}
	}
	for k := range body.RequestFieldValues {
		if !known[k] {
			writeJSON(w, http.StatusBadRequest, sdError("Field '"+k+"' is not on the request type."))
			return
		}
	}
	req := s.putRequest(d, rt.ID, reporter, body.RequestFieldValues)
	s.change(route, "request", req.Key, "+", true)
	writeJSON(w, http.StatusCreated, s.requestJSON(req))
}

func (s *Site) findRequest(key string) *Request {
	if r := s.jsm.requests[key]; r != nil {
		return r
	}
	return s.jsm.issues[key]
}

func (s *Site) handleRequestGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req := s.findRequest(pathParam(r, "request"))
	if req == nil {
		writeJSON(w, http.StatusNotFound, sdError("The request does not exist."))
		return
	}
	writeJSON(w, http.StatusOK, s.requestJSON(req))
}

func (s *Site) handleParticipants(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req := s.findRequest(pathParam(r, "request"))
	if req == nil {
		writeJSON(w, http.StatusNotFound, sdError("The request does not exist."))
		return
	}
	values := []any{}
	for _, id := range sortedKeys(req.Participants) {
		if a := s.accounts[id]; a != nil {
			values = append(values, s.userJSON(a))
		}
	}
	writeJSON(w, http.StatusOK, sdPage(r, values))
}

func (s *Site) commentJSON(c *Comment) map[string]any {
	author := map[string]any{"accountId": c.AuthorID}
	if a := s.accounts[c.AuthorID]; a != nil {
		author["displayName"] = a.DisplayName
	}
	return map[string]any{"id": c.ID, "body": c.Body, "public": c.Public, "author": author,
		"created": map[string]any{"iso8601": c.Created.UTC().Format("2006-01-02T15:04:05-0700"), "epochMillis": c.Created.UnixMilli()}}
}

func (s *Site) handleComments(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req := s.findRequest(pathParam(r, "request"))
	if req == nil {
		writeJSON(w, http.StatusNotFound, sdError("The request does not exist."))
		return
	}
	q := r.URL.Query()
	wantPublic, wantInternal := q.Get("public") != "false", q.Get("internal") != "false"
	values := []any{}
	for _, c := range req.Comments {
		if (c.Public && wantPublic) || (!c.Public && wantInternal) {
			values = append(values, s.commentJSON(c))
		}
	}
	writeJSON(w, http.StatusOK, sdPage(r, values))
}

func (s *Site) handleCommentAdd(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	var body struct {
		Body   string `json:"body"`
		Public bool   `json:"public"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if strings.TrimSpace(body.Body) == "" {
		writeJSON(w, http.StatusBadRequest, sdError("The comment is empty."))
		return
	}
	route := "POST /rest/servicedeskapi/request/{key}/comment"
	s.mu.Lock()
	defer s.mu.Unlock()
	req := s.findRequest(pathParam(r, "request"))
	if req == nil {
		writeJSON(w, http.StatusNotFound, sdError("The request does not exist."))
		return
	}
	author := ""
	if sa := callerOf(r).sa; sa != nil {
		if a := s.findByEmail(sa.Email); a != nil {
			author = a.AccountID
		}
	}
	c := &Comment{ID: s.newID(), Body: body.Body, Public: body.Public, AuthorID: author, Created: s.f.now()}
	req.Comments = append(req.Comments, c)
	s.change(route, "comment", req.Key+"/"+c.ID, "+", true)
	writeJSON(w, http.StatusCreated, s.commentJSON(c))
}

// customerJQL is the one JQL shape the fake understands: a customer's own
// requests by reporter or participant.
var customerJQL = regexp.MustCompile(`^reporter = "([^"\\]+)" OR "Request participants" = "([^"\\]+)" ORDER BY created DESC$`)

func (s *Site) handleSearchJQL(w http.ResponseWriter, r *http.Request) {
	var body struct {
		JQL        string   `json:"jql"`
		MaxResults int      `json:"maxResults"`
		Fields     []string `json:"fields"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	m := customerJQL.FindStringSubmatch(body.JQL)
	if m == nil || m[1] != m[2] {
		writeJSON(w, http.StatusBadRequest, jiraError("The fake understands only a customer's requests by reporter or participant."))
		return
	}
	account := m[1]
	limit := body.MaxResults
	if limit <= 0 || limit > 100 {
		limit = 50
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []*Request
	for _, req := range s.jsm.requests {
		if req.ReporterID == account || req.Participants[account] {
			found = append(found, req)
		}
	}
	sort.Slice(found, func(i, j int) bool {
		if !found[i].Created.Equal(found[j].Created) {
			return found[i].Created.After(found[j].Created)
		}
		return found[i].IssueID > found[j].IssueID
	})
	issues := []any{}
	for i := 0; i < len(found) && i < limit; i++ {
		req := found[i]
		summary, _ := req.Fields["summary"].(string)
		fields := map[string]any{
			"summary": summary, "created": req.Created.UTC().Format("2006-01-02T15:04:05.000-0700"),
			"status": map[string]any{"name": req.Status},
		}
		if a := s.accounts[req.ReporterID]; a != nil {
			fields["reporter"] = s.userJSON(a)
		}
		issues = append(issues, map[string]any{"id": req.IssueID, "key": req.Key, "fields": fields})
	}
	writeJSON(w, http.StatusOK, map[string]any{"issues": issues, "isLast": true})
}

// pathParam returns the path segment after the first segment named after
// (the pipeline routes with ServeMux.Handler, which sets no PathValue).
func pathParam(r *http.Request, after string) string {
	parts := strings.Split(r.URL.Path, "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == after {
			return parts[i+1]
		}
	}
	return ""
}
