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
	"strconv"
	"strings"
	"time"

	"idbridge/models"
)

// Marketplace paging: Atlassian serves at most 50 licences a page; the
// bound on pages stops a server that links in circles.
const (
	marketplacePageSize = 50
	marketplaceMaxPages = 20000
)

// MarketplaceConfig is the vendor's access to the Marketplace reporting
// API (SPEC 3).
type MarketplaceConfig struct {
	// URL is IDBRIDGE_MARKETPLACE_URL (vendor API v2).
	URL *url.URL
	// VendorID selects {URL}/rest/2/vendors/{VendorID}/reporting/licenses.
	VendorID string
	// DeveloperID, when set, selects the newer API instead:
	// {APIURL}/marketplace/rest/3/reporting/developer-space/{DeveloperID}/licenses.
	DeveloperID string
	APIURL      *url.URL
	// User and Token are the vendor account's email and API token (Basic).
	User, Token string
	// AppKey keeps the listing to this app's licences.
	AppKey string
}

// Configured reports whether the sync can run at all.
func (c MarketplaceConfig) Configured() bool {
	return c.User != "" && c.Token != "" && (c.DeveloperID != "" && c.APIURL != nil || c.VendorID != "" && c.URL != nil)
}

// License is one Marketplace licence, with the fields idbridge uses.
type License struct {
	AddonLicenseID       string         `json:"addonLicenseId"`
	LicenseID            string         `json:"licenseId"`
	AppEntitlementID     string         `json:"appEntitlementId"`
	AppEntitlementNumber string         `json:"appEntitlementNumber"`
	HostEntitlementID    string         `json:"hostEntitlementId"`
	CloudID              string         `json:"cloudId"`
	CloudSiteHostname    string         `json:"cloudSiteHostname"`
	AddonKey             string         `json:"addonKey"`
	Hosting              string         `json:"hosting"`
	LicenseType          string         `json:"licenseType"`
	Status               string         `json:"status"`
	Tier                 string         `json:"tier"`
	LastUpdated          string         `json:"lastUpdated"`
	ContactDetails       ContactDetails `json:"contactDetails"`
}

// ContactDetails is the customer part of a licence. A value Atlassian
// erased under GDPR reads "RTBF".
type ContactDetails struct {
	Company          string  `json:"company"`
	Country          string  `json:"country"`
	Region           string  `json:"region"`
	TechnicalContact Contact `json:"technicalContact"`
	BillingContact   Contact `json:"billingContact"`
}

// Contact is a person on a licence.
type Contact struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Marketplace reads licences from the Marketplace reporting API.
type Marketplace struct {
	hc  *http.Client
	cfg MarketplaceConfig
	now func() time.Time
}

// Marketplace returns a client for the reporting API.
func (c *Clients) Marketplace(cfg MarketplaceConfig) *Marketplace {
	hc := *c.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Marketplace{hc: &hc, cfg: cfg, now: c.now}
}

// Configured reports whether the vendor credentials are there.
func (m *Marketplace) Configured() bool { return m != nil && m.cfg.Configured() }

func (m *Marketplace) firstPage(text string) (*url.URL, error) {
	var raw string
	if m.cfg.DeveloperID != "" {
		raw = strings.TrimSuffix(m.cfg.APIURL.String(), "/") + "/marketplace/rest/3/reporting/developer-space/" +
			url.PathEscape(m.cfg.DeveloperID) + "/licenses"
	} else {
		raw = strings.TrimSuffix(m.cfg.URL.String(), "/") + "/rest/2/vendors/" + url.PathEscape(m.cfg.VendorID) + "/reporting/licenses"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("marketplace URL: %w", err)
	}
	q := url.Values{}
	if m.cfg.AppKey != "" {
		q.Set("addon", m.cfg.AppKey)
	}
	q.Set("hosting", "cloud")
	if text != "" {
		q.Set("text", text)
	}
	q.Set("offset", "0")
	q.Set("limit", strconv.Itoa(marketplacePageSize))
	u.RawQuery = q.Encode()
	return u, nil
}

// Licenses calls fn with every licence of the app, page by page, following
// _links.next. text, when not empty, is the API's free-text filter (a SEN,
// entitlement number, cloud ID or host name) for a single site's lookup.
// The credentials are only ever sent to the configured Marketplace origin.
func (m *Marketplace) Licenses(ctx context.Context, text string, fn func(License) error) error {
	if !m.Configured() {
		return &models.Error{Code: models.CodePrecondition, Message: "the Marketplace licence sync is not configured"}
	}
	next, err := m.firstPage(text)
	if err != nil {
		return err
	}
	origin0 := origin(next)
	seen := map[string]bool{}
	for page := 0; next != nil; page++ {
		if page >= marketplaceMaxPages || seen[next.String()] {
			return fmt.Errorf("marketplace licences: paging does not end (page %d)", page)
		}
		seen[next.String()] = true
		var body struct {
			Links struct {
				Next *struct {
					Href string `json:"href"`
				} `json:"next"`
			} `json:"_links"`
			Licenses []License `json:"licenses"`
		}
		if err := m.get(ctx, next, &body); err != nil {
			return err
		}
		for _, l := range body.Licenses {
			if err := fn(l); err != nil {
				return err
			}
		}
		if body.Links.Next == nil || body.Links.Next.Href == "" || len(body.Licenses) == 0 {
			return nil
		}
		ref, err := url.Parse(body.Links.Next.Href)
		if err != nil {
			return fmt.Errorf("marketplace licences: next link: %w", err)
		}
		next = next.ResolveReference(ref)
		if origin(next) != origin0 {
			return fmt.Errorf("marketplace licences: next link %s: %w", next.Redacted(), ErrForeignOrigin)
		}
	}
	return nil
}

func (m *Marketplace) get(ctx context.Context, u *url.URL, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("marketplace: %w", err)
	}
	req.SetBasicAuth(m.cfg.User, m.cfg.Token)
	req.Header.Set("Accept", "application/json")
	resp, err := m.hc.Do(req)
	if err != nil {
		return requestError(ctx, http.MethodGet, u.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return requestError(ctx, http.MethodGet, u.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return statusError(http.MethodGet, u.Path, resp, data, m.now())
	}
	if len(data) > MaxResponseBytes {
		return fmt.Errorf("marketplace GET %s: answer larger than %d bytes", u.Path, MaxResponseBytes)
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(out); err != nil {
		return fmt.Errorf("marketplace GET %s: decode answer: %w", u.Path, err)
	}
	return nil
}

// IsStatus reports whether err is a *StatusError with the given status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == status
}
