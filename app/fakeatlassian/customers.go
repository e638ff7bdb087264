package fakeatlassian

import (
	"net/http"
	"strings"
)

// customerRoutes is Jira Service Management's customer API.
func (s *Site) customerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /rest/servicedeskapi/customer", s.handleCustomerCreate)
}

// handleCustomerCreate creates a help-center customer. An email that
// already has an account answers 409 with strictConflictStatusCode=true and
// 400 without, as JSM does; one removed from the site is brought back.
func (s *Site) handleCustomerCreate(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	var body struct {
		Email       string `json:"email"`
		DisplayName string `json:"displayName"`
		FullName    string `json:"fullName"` // the older name of displayName
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if !strings.Contains(body.Email, "@") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessage": "The email address is not valid.",
			"i18nErrorMessage": map[string]any{"i18nKey": "sd.customer.error.email.invalid", "parameters": []string{}}})
		return
	}
	name := body.DisplayName
	if name == "" {
		name = body.FullName
	}
	if name == "" {
		name, _, _ = strings.Cut(body.Email, "@")
	}
	route := "POST /rest/servicedeskapi/customer"
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.findByEmail(body.Email); a != nil {
		if !a.InSite {
			a.InSite = true
			s.change(route, "user", strings.ToLower(body.Email), "+", true)
			writeJSON(w, http.StatusCreated, s.customerJSON(a))
			return
		}
		s.change(route, "user", strings.ToLower(body.Email), "+", false)
		status := http.StatusBadRequest
		if r.URL.Query().Get("strictConflictStatusCode") == "true" {
			status = http.StatusConflict
		}
		writeJSON(w, status, map[string]any{"errorMessage": "An account already exists for this email.",
			"i18nErrorMessage": map[string]any{"i18nKey": "sd.customer.error.email.exists", "parameters": []string{}}})
		return
	}
	a := s.putAccount(&Account{Email: body.Email, DisplayName: name, Type: AccountCustomer, InSite: true})
	s.change(route, "user", strings.ToLower(body.Email), "+", true)
	writeJSON(w, http.StatusCreated, s.customerJSON(a))
}

func (s *Site) customerJSON(a *Account) map[string]any {
	return map[string]any{
		"accountId": a.AccountID, "emailAddress": a.Email, "displayName": a.DisplayName,
		"active": a.active(), "timeZone": "Etc/UTC",
		"_links": map[string]any{"self": s.srv.URL + "/rest/api/2/user?accountId=" + a.AccountID},
	}
}
