package fakeatlassian

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// Marketplace is the Atlassian Marketplace vendor reporting API (v2) of one
// vendor, on its own listener: GET
// /rest/2/vendors/{vendorId}/reporting/licenses with Basic auth (the
// vendor's user and API token), paged by offset and limit (at most 50)
// with a relative _links.next, and the text filter matching a licence's
// IDs, entitlement number or cloud ID (with or without "SEN-"). Licences
// are JSON objects as the API answers them. It can refuse the vendor's
// credentials, hang until the caller gives up, or hold every request at a
// gate; it records every request's URI.
type Marketplace struct {
	srv                   *httptest.Server
	vendorID, user, token string

	mu       sync.Mutex
	licenses []map[string]any
	requests []string
	refuse   bool
	hang     bool
	gate     chan struct{}
	release  chan struct{}
}

// NewMarketplace starts the reporting API of vendorID, accepting user and
// token, with these licences.
func NewMarketplace(vendorID, user, token string, licenses ...map[string]any) *Marketplace {
	m := &Marketplace{vendorID: vendorID, user: user, token: token, licenses: licenses, release: make(chan struct{})}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	return m
}

// URL is the API's base URL (IDBRIDGE_MARKETPLACE_URL).
func (m *Marketplace) URL() string { return m.srv.URL }

// Close lets hanging requests go and stops the listener.
func (m *Marketplace) Close() {
	m.mu.Lock()
	select {
	case <-m.release:
	default:
		close(m.release)
	}
	m.mu.Unlock()
	m.srv.Close()
}

// Refuse makes the API answer 401 to the vendor's credentials (true) or
// accept them again.
func (m *Marketplace) Refuse(refuse bool) { m.mu.Lock(); m.refuse = refuse; m.mu.Unlock() }

// Hang makes every request wait until its caller gives up (true), or
// answer again.
func (m *Marketplace) Hang(hang bool) { m.mu.Lock(); m.hang = hang; m.mu.Unlock() }

// Gate holds every request until gate is closed (or its caller gives up);
// nil lets them through.
func (m *Marketplace) Gate(gate chan struct{}) { m.mu.Lock(); m.gate = gate; m.mu.Unlock() }

// Requests is the URI of every request received, in order.
func (m *Marketplace) Requests() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.requests...)
}

func (m *Marketplace) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.requests = append(m.requests, r.URL.RequestURI())
	gate, hang, refuse := m.gate, m.hang, m.refuse
	m.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if hang {
		select {
		case <-m.release:
		case <-r.Context().Done():
		}
		return
	}
	if u, p, ok := r.BasicAuth(); refuse || !ok || u != m.user || p != m.token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != "/rest/2/vendors/"+m.vendorID+"/reporting/licenses" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	offset, _ := strconv.Atoi(q.Get("offset"))
	limit, _ := strconv.Atoi(q.Get("limit"))
	limit = min(limit, 50)
	var all []map[string]any
	m.mu.Lock()
	for _, l := range m.licenses {
		if text := q.Get("text"); text != "" && !licenseMatches(l, text) {
			continue
		}
		all = append(all, l)
	}
	m.mu.Unlock()
	offset = max(offset, 0)
	end := min(offset+max(limit, 0), len(all))
	page := []map[string]any{}
	if offset < end {
		page = all[offset:end]
	}
	body := map[string]any{"licenses": page, "_links": map[string]any{}}
	if end < len(all) {
		q.Set("offset", strconv.Itoa(end))
		body["_links"] = map[string]any{"next": map[string]any{"href": r.URL.Path + "?" + q.Encode()}}
	}
	writeJSON(w, http.StatusOK, body)
}

// licenseMatches is the text filter: a licence ID, entitlement number or
// cloud ID, case-insensitively, with or without "SEN-".
func licenseMatches(l map[string]any, text string) bool {
	for _, k := range []string{"addonLicenseId", "licenseId", "appEntitlementNumber", "cloudId"} {
		if s, _ := l[k].(string); strings.EqualFold(s, text) || strings.EqualFold("SEN-"+s, text) {
			return true
		}
	}
	return false
}
