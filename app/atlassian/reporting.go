package atlassian

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"idbridge/app/connect"
	"idbridge/models"
)

// The Personal Data Reporting API (SPEC 8): an app tells Atlassian which
// accounts it holds personal data for, and learns which of them were
// closed (erase them) or updated (refresh or drop cached profile data).

// MaxReportAccounts is how many accounts one request may report.
const MaxReportAccounts = 90

// DefaultCyclePeriod is the reporting period when Atlassian names none.
const DefaultCyclePeriod = 7 * 24 * time.Hour

// maxReportAnswer bounds how much of an answer is read: 90 accounts with
// a status each is a few kilobytes.
const maxReportAnswer = 256 << 10

// ReportedAccount is one account of a report.
type ReportedAccount struct {
	AccountID string    `json:"accountId"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// ReportAnswer is what Atlassian answered one report with.
type ReportAnswer struct {
	Status int
	// Closed and Updated are the accounts Atlassian named, each one of
	// those reported; Ignored counts what was not applied: entries about
	// accounts not in the request, with an unknown status, or an answer
	// that is not JSON at all (Malformed).
	Closed, Updated []string
	Ignored         int
	Malformed       bool
	// CyclePeriod is the Cycle-Period header (0 when absent or unreadable).
	CyclePeriod time.Duration
	// RetryAt is when to send the batch again after a 429 or 503.
	RetryAt time.Time
}

// Reporting calls the reporting API as the app of one site.
type Reporting struct {
	hc     *http.Client
	appKey string
	apiURL *url.URL
	now    func() time.Time
}

// Reporting returns the reporting API client for the API at apiURL
// (IDBRIDGE_ATLASSIAN_API_URL). Requests go out once: the reporting cycle
// honours Retry-After itself and keeps its place.
func (c *Clients) Reporting(apiURL *url.URL) *Reporting {
	hc := *c.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u := *apiURL
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return &Reporting{hc: &hc, appKey: c.appKey, apiURL: &u, now: c.now}
}

// Report sends one batch of at most MaxReportAccounts accounts of the site,
// signed with the site's shared secret. A 204 or 200 is an answer; a 429
// or 503 is an answer with RetryAt; anything else is an error.
func (r *Reporting) Report(ctx context.Context, site *models.Site, accounts []ReportedAccount) (*ReportAnswer, error) {
	if len(accounts) == 0 || len(accounts) > MaxReportAccounts {
		return nil, fmt.Errorf("report accounts: %d accounts, want 1 to %d", len(accounts), MaxReportAccounts)
	}
	if len(site.SharedSecret) == 0 {
		return nil, errors.New("report accounts: the site has no shared secret")
	}
	target := *r.apiURL
	target.Path += "/app/report-accounts/"
	body, err := json.Marshal(struct {
		Accounts []ReportedAccount `json:"accounts"`
	}{accounts})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(WithSingleAttempt(WithSiteID(ctx, site.ID)), http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	now := r.now()
	token, err := connect.SignAppToken(r.appKey, site.SharedSecret, http.MethodPost, &target, r.apiURL.String(), now)
	if err != nil {
		return nil, fmt.Errorf("report accounts: %w", err)
	}
	req.Header.Set("Authorization", "JWT "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := r.hc.Do(req)
	if err != nil {
		var rl *RetryLaterError
		if errors.As(err, &rl) {
			return &ReportAnswer{Status: rl.StatusCode, RetryAt: rl.RetryAt}, nil
		}
		return nil, requestError(ctx, http.MethodPost, "/app/report-accounts/", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReportAnswer+1))
	if err != nil {
		return nil, requestError(ctx, http.MethodPost, "/app/report-accounts/", err)
	}
	ans := &ReportAnswer{Status: resp.StatusCode}
	ans.CyclePeriod, _ = ParseCyclePeriod(resp.Header.Get("Cycle-Period"))
	switch resp.StatusCode {
	case http.StatusNoContent:
		return ans, nil
	case http.StatusOK:
		readAnswer(ans, raw, accounts)
		return ans, nil
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		d, ok := serverDelay(resp.Header, r.now())
		if !ok {
			d = time.Minute
		}
		ans.RetryAt = r.now().Add(d)
		return ans, nil
	}
	return nil, statusError(http.MethodPost, "/app/report-accounts/", resp, raw, r.now())
}

// readAnswer applies only what names an account of the request with a
// known status; everything else is counted as ignored.
func readAnswer(ans *ReportAnswer, raw []byte, sent []ReportedAccount) {
	var body struct {
		Accounts []struct {
			AccountID string `json:"accountId"`
			Status    string `json:"status"`
		} `json:"accounts"`
	}
	if len(raw) > maxReportAnswer || json.Unmarshal(raw, &body) != nil {
		ans.Malformed = true
		return
	}
	asked := make(map[string]bool, len(sent))
	for _, a := range sent {
		asked[a.AccountID] = true
	}
	seen := map[string]bool{}
	for _, a := range body.Accounts {
		if !asked[a.AccountID] || seen[a.AccountID] {
			ans.Ignored++
			continue
		}
		seen[a.AccountID] = true
		switch a.Status {
		case "closed":
			ans.Closed = append(ans.Closed, a.AccountID)
		case "updated":
			ans.Updated = append(ans.Updated, a.AccountID)
		default:
			ans.Ignored++
		}
	}
}

var isoPeriod = regexp.MustCompile(`^P(?:(\d{1,4})Y)?(?:(\d{1,4})M)?(?:(\d{1,4})W)?(?:(\d{1,5})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,7})M)?(?:(\d{1,9})S)?)?$`)

// ParseCyclePeriod reads a Cycle-Period header: whole days ("7") or an
// ISO-8601 duration ("P7D", "P1W", "PT36H"; a year is 365 days and a
// month 30). ok is false for anything else, zero or over ten years.
func ParseCyclePeriod(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	const day = 24 * time.Hour
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 || n > 3650 {
			return 0, false
		}
		return time.Duration(n) * day, true
	}
	m := isoPeriod.FindStringSubmatch(strings.ToUpper(v))
	if m == nil || v == "P" || strings.HasSuffix(strings.ToUpper(v), "T") {
		return 0, false
	}
	units := []time.Duration{365 * day, 30 * day, 7 * day, day, time.Hour, time.Minute, time.Second}
	for i, u := range units {
		if m[i+1] == "" {
			continue
		}
		n, _ := strconv.Atoi(m[i+1])
		d += time.Duration(n) * u
	}
	if d <= 0 || d > 3650*day {
		return 0, false
	}
	return d, true
}
