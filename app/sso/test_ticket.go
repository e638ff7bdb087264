package sso

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"

	"idbridge/models"
)

// "Test sign-in" runs a sign-in past the checks that SSO and the identity
// provider are turned on, and reports each step (the service account, what
// Atlassian answered). Only the site's admins may run it: the admin page's
// link carries a ticket, an HMAC of the site, the IdP and an expiry under a
// key derived from the site's shared secret, which only idbridge and the
// site hold. It grants nothing but a test (no session ever starts) and
// lives an hour.
const testTicketTTL = time.Hour

// TestSignInURL is the "Test sign-in" link of an identity provider of the
// site, for its admin page.
func (s *Service) TestSignInURL(site *models.Site, idpID string) string {
	exp := strconv.FormatInt(s.now().Add(testTicketTTL).Unix(), 36)
	ticket := exp + "." + testTicketMAC(site, idpID, exp)
	return s.PortalURL(site.ID) + "login?" + url.Values{"idp": {idpID}, "test": {ticket}}.Encode()
}

func (s *Service) validTestTicket(site *models.Site, idpID, ticket string) bool {
	if len(ticket) > 64 || len(site.SharedSecret) == 0 {
		return false
	}
	exp, mac, ok := strings.Cut(ticket, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 36, 64)
	if err != nil || !s.now().Before(time.Unix(unix, 0)) {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(testTicketMAC(site, idpID, exp)))
}

func testTicketMAC(site *models.Site, idpID, exp string) string {
	// A key of its own, derived from the shared secret, which also signs
	// Connect's JWTs: no ticket is ever a MAC those could share.
	k := hmac.New(sha256.New, site.SharedSecret)
	k.Write([]byte("idbridge test sign-in ticket key"))
	h := hmac.New(sha256.New, k.Sum(nil))
	h.Write([]byte("idbridge test sign-in\x00" + site.ID + "\x00" + idpID + "\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}
