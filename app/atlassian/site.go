package atlassian

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"idbridge/app/connect"
	"idbridge/models"
)

// MaxResponseBytes bounds how much of a site's answer is read.
const MaxResponseBytes = 4 << 20

// maxErrorMessage bounds how much of Atlassian's error text is passed on.
const maxErrorMessage = 500

// ErrForeignOrigin is returned, before anything is sent, for a URL that is
// not on the site's own origin (scheme, host and port of its baseUrl) or not
// under its base path: the site's token must never reach another host.
var ErrForeignOrigin = errors.New("atlassian: URL is not on the site's origin")

// StatusError is a non-2xx answer from a site. It unwraps to the
// models.Error its status maps to.
type StatusError struct {
	Method     string
	Path       string
	StatusCode int
	Err        *models.Error
	// RetryAt is when the answer (a 429 or 5xx) asked to be asked again
	// (Retry-After or X-RateLimit-Reset); zero when it did not say.
	RetryAt time.Time
	// Body is the start of Atlassian's error text, for telling answers
	// apart that share a status ("already a member").
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("atlassian %s %s: %d: %s", e.Method, e.Path, e.StatusCode, e.Err.Message)
}

func (e *StatusError) Unwrap() error { return e.Err }

// SiteClient calls one site's REST API as the Connect app: every request
// carries an HS256 JWT signed with the site's shared secret and bound to
// that request's method, path and query.
type SiteClient struct {
	hc          *http.Client
	appKey      string
	siteID      string
	productType string
	secret      []byte
	baseURL     *url.URL // no trailing slash, no query
	now         func() time.Time
}

// NewSiteClient returns a client for site. hc is normally Clients.HTTP (with
// the retry transport and the rate limiter); it is copied so that redirects
// are never followed with the site's token. now nil means time.Now.
func NewSiteClient(hc *http.Client, appKey string, site *models.Site, now func() time.Time) (*SiteClient, error) {
	if site == nil {
		return nil, errors.New("atlassian: new site client: no site")
	}
	if appKey == "" {
		return nil, errors.New("atlassian: new site client: no app key")
	}
	if len(site.SharedSecret) == 0 {
		return nil, fmt.Errorf("atlassian: new site client for %q: no shared secret", site.ClientKey)
	}
	base, err := parseBaseURL(site.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("atlassian: new site client for %q: %w", site.ClientKey, err)
	}
	client := http.Client{}
	if hc != nil {
		client = *hc
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if now == nil {
		now = time.Now
	}
	siteID := site.ID
	if siteID == "" {
		siteID = site.ClientKey
	}
	return &SiteClient{
		hc:          &client,
		appKey:      appKey,
		siteID:      siteID,
		productType: site.ProductType,
		secret:      bytes.Clone(site.SharedSecret),
		baseURL:     base,
		now:         now,
	}, nil
}

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("base URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("base URL %q: want http(s)://host[/path]", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return u, nil
}

// Do sends method pathAndQuery to the site. pathAndQuery is relative to the
// site's baseUrl ("/rest/api/3/myself", which becomes ".../wiki/rest/..." on
// Confluence) or an absolute URL on the site (a pagination link). body, when
// not nil, is sent as JSON; a 2xx answer is decoded into out when out is not
// nil. Any other answer is a *StatusError whose models.Error code follows the
// status: 400 invalid (with Atlassian's messages), 401 unauthorized, 403
// forbidden, 404 not_found, 409 conflict, 412 precondition, 429 and 5xx
// (after the transport's retries) and network failures unavailable.
func (c *SiteClient) Do(ctx context.Context, method, pathAndQuery string, body, out any) error {
	target, err := c.resolve(pathAndQuery)
	if err != nil {
		return err
	}
	call := jsonCall{
		hc: c.hc, siteID: c.siteID, now: c.now, allowed: c.onSite,
		auth: func(_ context.Context, req *http.Request) error {
			token, err := connect.SignAppToken(c.appKey, c.secret, req.Method, req.URL, c.baseURL.String(), c.now())
			if err != nil {
				return fmt.Errorf("atlassian %s %s: sign: %w", req.Method, req.URL.Path, err)
			}
			req.Header.Set("Authorization", "JWT "+token)
			return nil
		},
	}
	return call.do(ctx, method, target.String(), target.Path, body, out)
}

// resolve turns pathAndQuery into the URL to call, refusing anything that
// would leave the site.
func (c *SiteClient) resolve(pathAndQuery string) (*url.URL, error) {
	ref, err := url.Parse(pathAndQuery)
	if err != nil {
		return nil, fmt.Errorf("atlassian: request path: %w", err)
	}
	ref.Fragment, ref.RawFragment = "", ""
	if ref.IsAbs() || ref.Host != "" || ref.User != nil {
		if !c.onSite(ref) {
			return nil, fmt.Errorf("atlassian: %s: %w", ref.Redacted(), ErrForeignOrigin)
		}
		return ref, nil
	}
	if !strings.HasPrefix(ref.Path, "/") {
		return nil, fmt.Errorf("atlassian: request path %q must start with /", ref.Path)
	}
	joined := c.baseURL.Scheme + "://" + c.baseURL.Host + c.baseURL.EscapedPath() + ref.EscapedPath()
	if ref.RawQuery != "" {
		joined += "?" + ref.RawQuery
	}
	u, err := url.Parse(joined)
	if err != nil {
		return nil, fmt.Errorf("atlassian: request path: %w", err)
	}
	if !c.onSite(u) {
		return nil, fmt.Errorf("atlassian: %s: %w", u.Redacted(), ErrForeignOrigin)
	}
	return u, nil
}

// onSite reports whether u has the site's origin, no user info, and a path
// under the site's base path.
func (c *SiteClient) onSite(u *url.URL) bool {
	if u.User != nil || origin(u) != origin(c.baseURL) {
		return false
	}
	base := c.baseURL.EscapedPath()
	path := u.EscapedPath()
	return base == "" || path == base || strings.HasPrefix(path, base+"/")
}

// origin is scheme://host:port in lower case with the default port made
// explicit, so that https://x and https://X:443 compare equal.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// requestError classifies a failure to get an answer. The text names the
// method and path only: never the query, never a header.
func requestError(ctx context.Context, method, path string, err error) error {
	var later *RetryLaterError
	if errors.As(err, &later) {
		return fmt.Errorf("atlassian %s %s: %w", method, path, later)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("atlassian %s %s: %w", method, path, ctxErr)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("atlassian %s %s: %w: %w", method, path,
			models.Errorf(models.CodeUnavailable, "Atlassian did not answer in time"), err)
	}
	return fmt.Errorf("atlassian %s %s: %w: %w", method, path,
		models.Errorf(models.CodeUnavailable, "cannot reach Atlassian"), err)
}

// statusError maps a non-2xx answer to a *StatusError.
func statusError(method, path string, resp *http.Response, body []byte, now time.Time) error {
	status := resp.StatusCode
	e := &models.Error{Message: fmt.Sprintf("Atlassian answered %d %s", status, http.StatusText(status))}
	se := &StatusError{Method: method, Path: path, StatusCode: status, Err: e}
	if msg, _ := errorMessages(body); msg != "" {
		se.Body = msg
	}
	switch {
	case status == http.StatusBadRequest:
		e.Code = models.CodeInvalid
		if msg, field := errorMessages(body); msg != "" {
			e.Message = "Atlassian rejected the request: " + msg
			e.Field = field
		}
	case status == http.StatusUnauthorized:
		e.Code = models.CodeUnauthorized
	case status == http.StatusForbidden:
		e.Code = models.CodeForbidden
	case status == http.StatusNotFound:
		e.Code = models.CodeNotFound
	case status == http.StatusConflict:
		e.Code = models.CodeConflict
	case status == http.StatusPreconditionFailed:
		e.Code = models.CodePrecondition
	case status == http.StatusTooManyRequests || status >= 500:
		e.Code = models.CodeUnavailable
		if wait, ok := serverDelay(resp.Header, now); ok {
			se.RetryAt = now.Add(wait)
			e.Message += "; try again after " + se.RetryAt.UTC().Format(time.RFC3339)
		}
	default:
		// 3xx (redirects are not followed) and other 4xx mean this client
		// asked wrongly: ours to fix, so internal.
		e.Code = models.CodeInternal
	}
	return se
}

// errorMessages extracts the text of an Atlassian error body: Jira's
// {"errorMessages":[...],"errors":{"field":"message"}} or Confluence's
// {"message":"..."}. field is set when exactly one field is named.
func errorMessages(body []byte) (msg, field string) {
	var parsed struct {
		ErrorMessages []string        `json:"errorMessages"`
		Errors        json.RawMessage `json:"errors"`
		Message       string          `json:"message"`
		ErrorMessage  string          `json:"errorMessage"` // servicedeskapi
	}
	if json.Unmarshal(body, &parsed) != nil {
		return "", ""
	}
	parts := slices.Clone(parsed.ErrorMessages)
	var fields map[string]string
	if json.Unmarshal(parsed.Errors, &fields) == nil {
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			parts = append(parts, k+": "+fields[k])
		}
		if len(keys) == 1 {
			field = keys[0]
		}
	}
	if len(parts) == 0 && parsed.Message != "" {
		parts = append(parts, parsed.Message)
	}
	if len(parts) == 0 && parsed.ErrorMessage != "" {
		parts = append(parts, parsed.ErrorMessage)
	}
	return truncate(strings.Join(parts, "; "), maxErrorMessage), field
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
