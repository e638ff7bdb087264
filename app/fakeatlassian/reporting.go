package fakeatlassian

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The Personal Data Reporting API on the API host: POST
// /app/report-accounts/ with an app JWT (HS256 with the shared secret of
// an installation of the app, iss the app key, a qsh bound to the request)
// and {"accounts": [{"accountId", "updatedAt"}]}, at most 90 accounts.
// It answers 204 when nothing is to be done, or 200 with
// {"accounts": [{"accountId", "status": "closed"|"updated"}]} for the
// accounts it knows were closed or updated; a Cycle-Period header when
// one is set; and queued faults (429 or 503, with Retry-After in seconds,
// as an HTTP date, or none), malformed answers and answers about accounts
// not sent, for tests.

// ReportFault is one queued answer that is not an answer: Status 429 or
// 503, with RetryAfter as given ("" for none).
type ReportFault struct {
	Status     int
	RetryAfter string
}

// Report is one request the reporting API accepted.
type Report struct {
	SiteCloudID string   // the installation whose secret signed it
	Accounts    []string // in the order sent
	Body        []byte   // exactly as sent
	At          time.Time
}

type reportingAPI struct {
	mu          sync.Mutex
	closed      map[string]bool
	updated     map[string]bool
	cyclePeriod string
	faults      []ReportFault
	garbage     int      // answers that are not JSON, next
	strangers   []string // accounts not sent, named in the next 200
	keep        bool     // keep every Report (not for a million accounts)
	reports     []Report
	requests    int
	accounts    int
	maxBatch    int
	rejected    int // refused: bad JWT, bad qsh, bad body
	tooSoon     int // an account reported again within the cycle period
	lastReport  map[string]time.Time
}

func (f *Fake) reportingState() *reportingAPI {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reporting == nil {
		f.reporting = &reportingAPI{closed: map[string]bool{}, updated: map[string]bool{}, keep: true, lastReport: map[string]time.Time{}}
	}
	return f.reporting
}

// CloseAccounts marks accounts closed: the next report naming them is
// answered "closed".
func (f *Fake) CloseAccounts(ids ...string) {
	r := f.reportingState()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		r.closed[id] = true
	}
}

// UpdateAccounts marks accounts updated: the next report naming them is
// answered "updated" (once).
func (f *Fake) UpdateAccounts(ids ...string) {
	r := f.reportingState()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		r.updated[id] = true
	}
}

// SetCyclePeriod sets the Cycle-Period header of every answer ("" none).
func (f *Fake) SetCyclePeriod(v string) {
	r := f.reportingState()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cyclePeriod = v
}

// QueueReportFaults makes the next requests answer these faults, in order.
func (f *Fake) QueueReportFaults(faults ...ReportFault) {
	r := f.reportingState()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, faults...)
}

// QueueMalformedReportAnswers makes the next n answers 200 with a body
// that is not JSON.
func (f *Fake) QueueMalformedReportAnswers(n int) {
	r := f.reportingState()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.garbage += n
}

// QueueStrangerAccounts makes the next 200 answer also name these
// accounts, which were not in the request, as closed.
func (f *Fake) QueueStrangerAccounts(ids ...string) {
	r := f.reportingState()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.strangers = append(r.strangers, ids...)
}

// KeepReports says whether every request is kept for Reports (the
// default); a benchmark over a million accounts turns it off and reads
// the counts only.
func (f *Fake) KeepReports(keep bool) {
	r := f.reportingState()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keep = keep
	if !keep {
		r.lastReport = nil
	}
}

// Reports returns the requests accepted so far.
func (f *Fake) Reports() []Report {
	r := f.reportingState()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Report(nil), r.reports...)
}

// ReportCounts is what the reporting API saw.
type ReportCounts struct {
	Requests int // accepted requests (faults included)
	Accounts int // accounts in accepted requests
	MaxBatch int // the largest request
	Rejected int // requests refused (authentication, qsh, body)
	// TooSoon counts accounts reported again before the cycle period
	// (Cycle-Period, else 7 days) had passed since their last report.
	TooSoon int
}

// ReportCounts returns the counts.
func (f *Fake) ReportCounts() ReportCounts {
	r := f.reportingState()
	r.mu.Lock()
	defer r.mu.Unlock()
	return ReportCounts{Requests: r.requests, Accounts: r.accounts, MaxBatch: r.maxBatch, Rejected: r.rejected, TooSoon: r.tooSoon}
}

// reportQSH is the query string hash of the one request this API serves:
// POST, the path without its trailing slash, no query.
func reportQSH() string {
	sum := sha256.Sum256([]byte("POST&/app/report-accounts&"))
	return hex.EncodeToString(sum[:])
}

// reportingSite finds the installation whose shared secret signed tok,
// checking it as Atlassian does: HS256, iss the app key, exp, and a qsh
// bound to this request.
func (f *Fake) reportingSite(tok string) *Site {
	for _, s := range f.Sites() {
		appKey, secrets := s.appSecrets()
		for _, secret := range secrets {
			if site, ok := f.reportingToken(tok, s, appKey, secret); ok {
				return site
			}
		}
	}
	return nil
}

// reportingToken checks tok against one installation of s: ok says it is
// signed with secret, and site is s when its qsh is this request's.
func (f *Fake) reportingToken(tok string, s *Site, appKey, secret string) (site *Site, ok bool) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuer(appKey),
		jwt.WithTimeFunc(f.now), jwt.WithLeeway(30*time.Second))
	if err != nil {
		return nil, false
	}
	if q, _ := claims["qsh"].(string); q != reportQSH() {
		return nil, true
	}
	return s, true
}

func (f *Fake) serveReportAccounts(w http.ResponseWriter, req *http.Request) {
	r := f.reportingState()
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "JWT ")
	var site *Site
	if ok {
		site = f.reportingSite(tok)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	var in struct {
		Accounts []struct {
			AccountID string `json:"accountId"`
			UpdatedAt string `json:"updatedAt"`
		} `json:"accounts"`
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if site == nil {
		r.rejected++
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "Unauthorized"})
		return
	}
	if err != nil || json.Unmarshal(body, &in) != nil || len(in.Accounts) == 0 || len(in.Accounts) > 90 {
		r.rejected++
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 400, "message": "Between 1 and 90 accounts are required"})
		return
	}
	for _, a := range in.Accounts {
		if _, err := time.Parse(time.RFC3339, a.UpdatedAt); err != nil || a.AccountID == "" {
			r.rejected++
			writeJSON(w, http.StatusBadRequest, map[string]any{"code": 400, "message": "Each account needs an accountId and an ISO 8601 updatedAt"})
			return
		}
	}
	r.requests++
	if r.cyclePeriod != "" {
		w.Header().Set("Cycle-Period", r.cyclePeriod)
	}
	if len(r.faults) > 0 {
		fault := r.faults[0]
		r.faults = r.faults[1:]
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
		writeJSON(w, fault.Status, map[string]any{"code": fault.Status, "message": http.StatusText(fault.Status)})
		return
	}
	now := f.now()
	period := parsePeriod(r.cyclePeriod)
	ids := make([]string, len(in.Accounts))
	for i, a := range in.Accounts {
		ids[i] = a.AccountID
		if r.lastReport != nil {
			if last, ok := r.lastReport[a.AccountID]; ok && now.Sub(last) < period-time.Minute {
				r.tooSoon++
			}
			r.lastReport[a.AccountID] = now
		}
	}
	r.accounts += len(ids)
	r.maxBatch = max(r.maxBatch, len(ids))
	if r.keep {
		r.reports = append(r.reports, Report{SiteCloudID: site.CloudID, Accounts: ids, Body: body, At: now})
	}
	if r.garbage > 0 {
		r.garbage--
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "<html>Service temporarily degraded</html>")
		return
	}
	type status struct {
		AccountID string `json:"accountId"`
		Status    string `json:"status"`
	}
	var out []status
	for _, id := range ids {
		switch {
		case r.closed[id]:
			out = append(out, status{id, "closed"})
		case r.updated[id]:
			delete(r.updated, id)
			out = append(out, status{id, "updated"})
		}
	}
	for _, id := range r.strangers {
		out = append(out, status{id, "closed"})
	}
	r.strangers = nil
	if len(out) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": out})
}

// parsePeriod reads the Cycle-Period forms the fake sends: whole days,
// PnD, PnW or PTnH; 7 days otherwise.
func parsePeriod(v string) time.Duration {
	day := 24 * time.Hour
	var n int
	var unit string
	switch {
	case v == "":
		return 7 * day
	case strings.HasPrefix(v, "PT"):
		unit = v[len(v)-1:]
		_, _ = fmt.Sscanf(v[2:len(v)-1], "%d", &n)
	case strings.HasPrefix(v, "P"):
		unit = v[len(v)-1:]
		_, _ = fmt.Sscanf(v[1:len(v)-1], "%d", &n)
	default:
		unit = "D"
		_, _ = fmt.Sscanf(v, "%d", &n)
	}
	switch unit {
	case "H":
		return time.Duration(n) * time.Hour
	case "W":
		return time.Duration(n) * 7 * day
	}
	return time.Duration(n) * day
}
