package profile

import (
	"strings"
	"unicode"

	"idbridge/app/atlassian"
	"idbridge/models"
)

// erased is how the Marketplace shows a value erased under GDPR.
const erased = "RTBF"

// maxSyncedLength bounds a value taken from the Marketplace.
const maxSyncedLength = 500

// Match ranks, strongest first: the app entitlement number, the app
// entitlement ID, the SEN, then the cloud ID (a site has one licence of an
// app at a time, but old cancelled ones may linger).
const (
	rankCloudID = 1 + iota
	rankSEN
	rankEntitlementID
	rankEntitlementNumber
)

type candidate struct {
	license atlassian.License
	rank    int
}

// matchRank says how strongly l belongs to site: 0 not at all.
func matchRank(site *models.Site, l atlassian.License) int {
	switch {
	case site.EntitlementNumber != "" && strings.EqualFold(site.EntitlementNumber, l.AppEntitlementNumber):
		return rankEntitlementNumber
	case site.EntitlementID != "" && strings.EqualFold(site.EntitlementID, l.AppEntitlementID):
		return rankEntitlementID
	case site.ServiceEntitlementNumber != "" && (sameSEN(site.ServiceEntitlementNumber, l.AddonLicenseID) || sameSEN(site.ServiceEntitlementNumber, l.LicenseID)):
		return rankSEN
	case site.CloudID != "" && strings.EqualFold(site.CloudID, l.CloudID):
		return rankCloudID
	}
	return 0
}

// sameSEN compares SENs with or without their "SEN-" prefix.
func sameSEN(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSpace(s)
		if len(s) > 4 && strings.EqualFold(s[:4], "SEN-") {
			s = s[4:]
		}
		return strings.ToUpper(s)
	}
	return b != "" && norm(a) == norm(b)
}

// better picks the better of two candidates: the stronger match, then an
// active licence, then the more recently updated.
func better(a, b *candidate) *candidate {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.rank != b.rank:
		if b.rank > a.rank {
			return b
		}
		return a
	}
	aActive, bActive := strings.EqualFold(a.license.Status, "active"), strings.EqualFold(b.license.Status, "active")
	if aActive != bActive {
		if bActive {
			return b
		}
		return a
	}
	if b.license.LastUpdated > a.license.LastUpdated { // ISO dates compare as strings
		return b
	}
	return a
}

// index finds a site's best licence among many without scanning them all
// per site.
type index struct {
	byNumber, byEntID, bySEN, byCloud map[string][]atlassian.License
}

func newIndex(licenses []atlassian.License) *index {
	ix := &index{
		byNumber: map[string][]atlassian.License{}, byEntID: map[string][]atlassian.License{},
		bySEN: map[string][]atlassian.License{}, byCloud: map[string][]atlassian.License{},
	}
	add := func(m map[string][]atlassian.License, key string, l atlassian.License) {
		if key = strings.ToUpper(strings.TrimSpace(key)); key != "" {
			m[key] = append(m[key], l)
		}
	}
	for _, l := range licenses {
		add(ix.byNumber, l.AppEntitlementNumber, l)
		add(ix.byEntID, l.AppEntitlementID, l)
		add(ix.bySEN, strings.TrimPrefix(strings.ToUpper(l.AddonLicenseID), "SEN-"), l)
		if !sameSEN(l.AddonLicenseID, l.LicenseID) {
			add(ix.bySEN, strings.TrimPrefix(strings.ToUpper(l.LicenseID), "SEN-"), l)
		}
		add(ix.byCloud, l.CloudID, l)
	}
	return ix
}

func (ix *index) find(site *models.Site) *candidate {
	var best *candidate
	look := func(m map[string][]atlassian.License, key string) {
		if key = strings.ToUpper(strings.TrimSpace(key)); key == "" {
			return
		}
		for _, l := range m[key] {
			if rank := matchRank(site, l); rank > 0 {
				best = better(best, &candidate{license: l, rank: rank})
			}
		}
	}
	look(ix.byNumber, site.EntitlementNumber)
	look(ix.byEntID, site.EntitlementID)
	look(ix.bySEN, strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(site.ServiceEntitlementNumber)), "SEN-"))
	look(ix.byCloud, site.CloudID)
	return best
}

// searchTerms are the site's identifiers to try as the Marketplace's text
// filter, strongest first.
func searchTerms(site *models.Site) []string {
	var terms []string
	for _, t := range []string{site.EntitlementNumber, site.ServiceEntitlementNumber, site.CloudID} {
		if t = strings.TrimSpace(t); t != "" {
			terms = append(terms, t)
		}
	}
	return terms
}

// ContactOf maps a licence's contact details to the customer record: name
// and email from the technical contact, the purchaser from the billing
// contact, the company, and the location from country and region. A value
// erased under GDPR ("RTBF") clears the field; a missing value leaves it.
func ContactOf(l atlassian.License) models.LicenseContact {
	v := map[models.ProfileField]string{}
	set := func(f models.ProfileField, raw string) {
		raw = clean(raw)
		switch {
		case raw == "":
		case strings.EqualFold(raw, erased):
			v[f] = ""
		default:
			v[f] = raw
		}
	}
	cd := l.ContactDetails
	set(models.ProfileName, cd.TechnicalContact.Name)
	set(models.ProfileEmail, cd.TechnicalContact.Email)
	set(models.ProfilePurchaser, cd.BillingContact.Name)
	set(models.ProfileCompany, cd.Company)
	country, region := clean(cd.Country), clean(cd.Region)
	switch {
	case strings.EqualFold(country, erased) || strings.EqualFold(region, erased):
		v[models.ProfileLocation] = ""
	case country != "" && region != "":
		v[models.ProfileLocation] = country + ", " + region
	case country != "" || region != "":
		v[models.ProfileLocation] = country + region
	}
	return models.LicenseContact{Values: v}
}

// clean trims a value from the Marketplace, drops control characters and
// bounds its length: it is shown to admins and kept.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > maxSyncedLength {
		s = string(r[:maxSyncedLength])
	}
	return s
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
