package atlassian

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// fakeMarketplace serves n licences of the vendor API v2, pageSize a page,
// with relative _links.next as the real API does; Basic auth required.
func fakeMarketplace(t *testing.T, n, pageSize int, mutate func(w http.ResponseWriter, r *http.Request) bool) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RequestURI())
		mu.Unlock()
		if mutate != nil && mutate(w, r) {
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != "vendor@example.com" || p != "vendor-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/rest/2/vendors/1234/reporting/licenses" || r.URL.Query().Get("addon") != "idbridge" || r.URL.Query().Get("hosting") != "cloud" {
			http.NotFound(w, r)
			return
		}
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		limit = min(limit, pageSize)
		var page []map[string]any
		for i := offset; i < min(offset+limit, n); i++ {
			page = append(page, map[string]any{
				"addonLicenseId": fmt.Sprint(1000 + i), "licenseId": fmt.Sprintf("SEN-L%d", 1000+i),
				"appEntitlementNumber": fmt.Sprintf("E-%d", i), "cloudId": fmt.Sprintf("cloud-%d", i), "addonKey": "idbridge",
				"status": "active", "lastUpdated": "2026-01-02",
				"contactDetails": map[string]any{"company": fmt.Sprintf("Co %d", i), "country": "Germany", "region": "EMEA",
					"technicalContact": map[string]any{"email": fmt.Sprintf("tech%d@example.com", i), "name": "Tech"},
					"billingContact":   map[string]any{"email": "bill@example.com", "name": "Bill"}},
			})
		}
		body := map[string]any{"licenses": page, "_links": map[string]any{"self": map[string]any{"href": r.URL.RequestURI()}}}
		if offset+limit < n {
			q := r.URL.Query()
			q.Set("offset", strconv.Itoa(offset+limit))
			body["_links"].(map[string]any)["next"] = map[string]any{"href": r.URL.Path + "?" + q.Encode()}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func testMarketplace(t *testing.T, srvURL string) *Marketplace {
	c := New(Options{AppKey: "idbridge", MaxAttempts: 1})
	return c.Marketplace(MarketplaceConfig{URL: mustURL(t, srvURL), VendorID: "1234", User: "vendor@example.com", Token: "vendor-token", AppKey: "idbridge"})
}

func TestMarketplacePagesThroughEveryLicence(t *testing.T) {
	srv, seen := fakeMarketplace(t, 123, 50, nil)
	m := testMarketplace(t, srv.URL)
	var got []License
	if err := m.Licenses(context.Background(), "", func(l License) error { got = append(got, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 123 {
		t.Fatalf("read %d licences, want 123", len(got))
	}
	if len(*seen) != 3 {
		t.Errorf("%d pages requested, want 3: %v", len(*seen), *seen)
	}
	l := got[7]
	got7 := map[string]string{"appEntitlementNumber": l.AppEntitlementNumber,
		"technicalContact.email": l.ContactDetails.TechnicalContact.Email, "billingContact.name": l.ContactDetails.BillingContact.Name}
	want7 := map[string]string{"appEntitlementNumber": "E-7", "technicalContact.email": "tech7@example.com", "billingContact.name": "Bill"}
	if d := cmp.Diff(want7, got7); d != "" {
		t.Errorf("licence 7 (-want +got):\n%s", d)
	}
}

func TestMarketplaceTextFilterAndErrors(t *testing.T) {
	srv, seen := fakeMarketplace(t, 3, 50, nil)
	m := testMarketplace(t, srv.URL)
	_ = m.Licenses(context.Background(), "E-2", func(License) error { return nil })
	if !strings.Contains((*seen)[0], "text=E-2") {
		t.Errorf("text filter not sent: %s", (*seen)[0])
	}

	bad := New(Options{AppKey: "idbridge", MaxAttempts: 1}).Marketplace(MarketplaceConfig{URL: mustURL(t, srv.URL), VendorID: "1234", User: "vendor@example.com", Token: "wrong", AppKey: "idbridge"})
	err := bad.Licenses(context.Background(), "", func(License) error { return nil })
	if !IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("wrong vendor token: %v, want a 401 StatusError", err)
	}
	if strings.Contains(fmt.Sprint(err), "wrong") {
		t.Errorf("the error shows the token: %v", err)
	}

	unconfigured := New(Options{}).Marketplace(MarketplaceConfig{})
	if err := unconfigured.Licenses(context.Background(), "", nil); models.ErrorCode(err) != models.CodePrecondition {
		t.Errorf("unconfigured: %v", err)
	}
}

func TestMarketplaceRefusesForeignNextLink(t *testing.T) {
	srv, _ := fakeMarketplace(t, 0, 50, func(w http.ResponseWriter, r *http.Request) bool {
		_, _ = fmt.Fprint(w, `{"licenses":[{"addonLicenseId":"1"}],"_links":{"next":{"href":"https://evil.example/steal"}}}`)
		return true
	})
	m := testMarketplace(t, srv.URL)
	err := m.Licenses(context.Background(), "", func(License) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "origin") {
		t.Fatalf("err = %v, want the foreign next link refused", err)
	}
}

func TestMarketplaceStopsCircularPaging(t *testing.T) {
	srv, seen := fakeMarketplace(t, 0, 50, func(w http.ResponseWriter, r *http.Request) bool {
		_, _ = fmt.Fprintf(w, `{"licenses":[{"addonLicenseId":"1"}],"_links":{"next":{"href":"%s"}}}`, "/rest/2/vendors/1234/reporting/licenses?offset=0")
		return true
	})
	m := testMarketplace(t, srv.URL)
	if err := m.Licenses(context.Background(), "", func(License) error { return nil }); err == nil {
		t.Fatal("a next link pointing back did not stop")
	}
	if len(*seen) > 3 {
		t.Errorf("%d requests before stopping", len(*seen))
	}
}
