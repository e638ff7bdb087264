package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"regexp"
	"strings"
	"testing"

	"idbridge/models"
)

func TestPrivacyNoticeRendersTheInventory(t *testing.T) {
	h, _ := newTestServer(t, Deps{PrivacyContact: "privacy@example.com"})
	w := do(t, h, "GET", "/privacy", "", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /privacy: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	page := strings.Join(strings.Fields(html.UnescapeString(w.Body.String())), " ")
	for _, want := range []string{
		"version " + models.InventoryVersion, models.InventoryLastChanged,
		`href="mailto:privacy@example.com"`, "supervisory authority", "strictly necessary session cookie",
		"rectification", "erased", "restricted", "Personal Data Reporting",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the privacy notice lacks %q", want)
		}
	}
	for _, e := range models.Inventory() {
		if e.Personal && !strings.Contains(page, e.Category) {
			t.Errorf("the privacy notice lacks %s.%s (%q)", e.Table, e.Column, e.Category)
		}
		if !e.Personal && e.Category != "" && strings.Contains(page, e.Category) {
			t.Errorf("non-personal %s.%s is listed as personal data", e.Table, e.Column)
		}
	}
	// The inline style is allowed by its hash, and nothing else is.
	csp := w.Header().Get("Content-Security-Policy")
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(w.Body.String())
	if style == nil {
		t.Fatal("no style element")
	}
	sum := sha256.Sum256([]byte(style[1]))
	if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(csp, "default-src 'none'") ||
		strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q does not pin the page's style", csp)
	}
	if strings.Contains(w.Body.String(), "<script") {
		t.Error("the privacy notice has a script")
	}
}

func TestPrivacyNoticeContact(t *testing.T) {
	for _, c := range []struct{ contact, want string }{
		{"", "has not named a privacy contact"},
		{"https://example.com/privacy?x=<b>", `href="https://example.com/privacy?x=%3cb%3e"`},
		{"javascript:alert(1)", "has not named a privacy contact"},
	} {
		h, _ := newTestServer(t, Deps{PrivacyContact: c.contact})
		body := do(t, h, "GET", "/privacy", "", nil).Body.String()
		if !strings.Contains(strings.ToLower(body), strings.ToLower(c.want)) {
			t.Errorf("contact %q: the page lacks %q", c.contact, c.want)
		}
		if strings.Contains(body, "<b>") || strings.Contains(body, "javascript:") {
			t.Errorf("contact %q is not escaped", c.contact)
		}
	}
}
