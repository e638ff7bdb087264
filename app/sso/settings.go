package sso

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"time"

	"idbridge/app/audit"
	"idbridge/app/store"
	"idbridge/models"
)

// Bounds of the settings an admin enters.
const (
	maxDomains      = 100
	maxServiceDesks = 50
	minIdleMinutes  = 5
)

var (
	domainPattern  = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	numericPattern = regexp.MustCompile(`^[0-9]{1,18}$`)
)

// Settings returns the site's SSO settings; a site that never configured
// them gets the defaults (off, no domains). The SP key is never included.
func (s *Service) Settings(ctx context.Context, siteID string) (*models.SSOSettings, error) {
	st, err := s.store.View(ctx).FindSSOSettings(siteID)
	if models.IsNotFound(err) {
		return defaultSettings(siteID), nil
	}
	if err != nil {
		return nil, err
	}
	st.SPKey = ""
	return st, nil
}

func defaultSettings(siteID string) *models.SSOSettings {
	return &models.SSOSettings{
		SiteID: siteID, AllowedDomains: []string{}, ServiceDeskIDs: []string{},
		OrganizationsByDomain: map[string]string{},
		SessionIdleMinutes:    models.DefaultSessionIdleMinutes, SessionMaxHours: models.DefaultSessionMaxHours,
	}
}

// SaveSettings validates in, applies it over the stored settings and saves
// them with a config_changed event naming the changed fields, in one
// transaction. Nothing is saved when anything is invalid.
func (s *Service) SaveSettings(ctx context.Context, site *models.Site, actor string, in models.SSOSettingsInput) (*models.SSOSettings, error) {
	var saved *models.SSOSettings
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.LockSSOSettings(site.ID); err != nil {
			return err
		}
		old, err := tx.FindSSOSettings(site.ID)
		if models.IsNotFound(err) {
			old, err = defaultSettings(site.ID), nil
		}
		if err != nil {
			return err
		}
		next, fields, err := mergeSettings(old, in)
		if err != nil {
			return err
		}
		if len(fields) == 0 {
			saved = old
			return nil
		}
		next.UpdatedBy = actor
		if saved, err = tx.SaveSSOSettings(site.ID, next); err != nil {
			return err
		}
		_, err = audit.Record(tx, audit.ConfigChanged(site.ID, actor, audit.SectionSSO, fields))
		return err
	})
	if err != nil {
		return nil, err
	}
	out := *saved
	out.SPKey = ""
	return &out, nil
}

func mergeSettings(old *models.SSOSettings, in models.SSOSettingsInput) (*models.SSOSettings, []string, error) {
	next := *old
	var fields []string
	if in.Enabled != nil && *in.Enabled != old.Enabled {
		next.Enabled = *in.Enabled
		fields = append(fields, "enabled")
	}
	if in.AutoCreateCustomers != nil && *in.AutoCreateCustomers != old.AutoCreateCustomers {
		next.AutoCreateCustomers = *in.AutoCreateCustomers
		fields = append(fields, "autoCreateCustomers")
	}
	if in.AllowedDomains != nil {
		domains, err := normalizeDomains("allowedDomains", *in.AllowedDomains)
		if err != nil {
			return nil, nil, err
		}
		if !slices.Equal(domains, old.AllowedDomains) {
			next.AllowedDomains = domains
			fields = append(fields, "allowedDomains")
		}
	}
	if in.ServiceDeskIDs != nil {
		ids, err := normalizeIDs("serviceDeskIds", "service desk", *in.ServiceDeskIDs, maxServiceDesks)
		if err != nil {
			return nil, nil, err
		}
		if !slices.Equal(ids, old.ServiceDeskIDs) {
			next.ServiceDeskIDs = ids
			fields = append(fields, "serviceDeskIds")
		}
	}
	if in.OrganizationsByDomain != nil {
		orgs := map[string]string{}
		if len(*in.OrganizationsByDomain) > maxDomains {
			return nil, nil, models.FieldError("organizationsByDomain", "Map at most %d domains to organizations.", maxDomains)
		}
		for d, org := range *in.OrganizationsByDomain {
			domain, err := normalizeDomain("organizationsByDomain", d)
			if err != nil {
				return nil, nil, err
			}
			org = strings.TrimSpace(org)
			if !numericPattern.MatchString(org) {
				return nil, nil, models.FieldError("organizationsByDomain", "The organization for %s should be a JSM organization ID (digits), not %q.", domain, truncate(org, 40))
			}
			orgs[domain] = org
		}
		if !mapsEqual(orgs, old.OrganizationsByDomain) {
			next.OrganizationsByDomain = orgs
			fields = append(fields, "organizationsByDomain")
		}
	}
	if in.SessionIdleMinutes != nil {
		v := *in.SessionIdleMinutes
		if v < minIdleMinutes || v > models.MaxSessionIdleMinutes {
			return nil, nil, models.FieldError("sessionIdleMinutes", "The idle timeout must be between %d and %d minutes.", minIdleMinutes, models.MaxSessionIdleMinutes)
		}
		if v != old.SessionIdleMinutes {
			next.SessionIdleMinutes = v
			fields = append(fields, "sessionIdleMinutes")
		}
	}
	if in.SessionMaxHours != nil {
		v := *in.SessionMaxHours
		if v < 1 || v > models.MaxSessionMaxHours {
			return nil, nil, models.FieldError("sessionMaxHours", "The session length must be between 1 and %d hours.", models.MaxSessionMaxHours)
		}
		if v != old.SessionMaxHours {
			next.SessionMaxHours = v
			fields = append(fields, "sessionMaxHours")
		}
	}
	if next.IdleTimeout() > next.MaxAge() {
		return nil, nil, models.FieldError("sessionIdleMinutes", "The idle timeout cannot be longer than the session length (%d hours).", int(next.MaxAge().Hours()))
	}
	for d := range next.OrganizationsByDomain {
		if !slices.Contains(next.AllowedDomains, d) {
			return nil, nil, models.FieldError("organizationsByDomain", "%s is mapped to an organization but is not an allowed domain; add it to the allowed domains first.", d)
		}
	}
	return &next, fields, nil
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func normalizeDomain(field, d string) (string, error) {
	d = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(d), "@")))
	if len(d) > 253 || !domainPattern.MatchString(d) {
		return "", models.FieldError(field, "%q is not an email domain such as example.com.", truncate(d, 60))
	}
	return d, nil
}

func normalizeDomains(field string, in []string) ([]string, error) {
	if len(in) > maxDomains {
		return nil, models.FieldError(field, "Enter at most %d domains.", maxDomains)
	}
	out := make([]string, 0, len(in))
	for _, d := range in {
		nd, err := normalizeDomain(field, d)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, nd) {
			out = append(out, nd)
		}
	}
	slices.Sort(out)
	return out, nil
}

func normalizeIDs(field, what string, in []string, maxN int) ([]string, error) {
	if len(in) > maxN {
		return nil, models.FieldError(field, "Choose at most %d %ss.", maxN, what)
	}
	out := make([]string, 0, len(in))
	for _, id := range in {
		id = strings.TrimSpace(id)
		if !numericPattern.MatchString(id) {
			return nil, models.FieldError(field, "%q is not a %s ID (digits).", truncate(id, 40), what)
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// spKey returns the site's SAML SP key and certificate, made (RSA 2048,
// self-signed for ten years) and stored sealed the first time a site
// needs them.
func (s *Service) spKey(ctx context.Context, siteID string) (*rsa.PrivateKey, *x509.Certificate, error) {
	settings, err := s.store.View(ctx).FindSSOSettings(siteID)
	if err != nil && !models.IsNotFound(err) {
		return nil, nil, err
	}
	if err != nil || settings.SPKey == "" {
		// The key is made before the transaction: RSA key generation takes
		// a fifth of a second, which no lock (on SQLite, the database's
		// write lock) may be held for; and once per site at a time, for
		// every request that asks meanwhile (the metadata route is public).
		// Replicas may each make one; the first stored is kept.
		made, err, _ := s.spKeys.Do(siteID, func() (any, error) {
			k, c, err := newSPKey(siteID, s.now())
			return [2]string{k, c}, err
		})
		if err != nil {
			return nil, nil, err
		}
		keyPEM, certPEM := made.([2]string)[0], made.([2]string)[1]
		err = s.store.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.LockSSOSettings(siteID); err != nil {
				return err
			}
			cur, err := tx.FindSSOSettings(siteID)
			if models.IsNotFound(err) {
				cur, err = defaultSettings(siteID), nil
			}
			if err != nil {
				return err
			}
			if cur.SPKey != "" { // another request made it meanwhile
				settings = cur
				return nil
			}
			cur.SPKey, cur.SPCertificate = keyPEM, certPEM
			settings, err = tx.SaveSSOSettings(siteID, cur)
			return err
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return parseSPKey(settings.SPKey, settings.SPCertificate)
}

func newSPKey(siteID string, now time.Time) (keyPEM, certPEM string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", fmt.Errorf("make sp key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "idbridge SAML SP " + siteID},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("make sp certificate: %w", err)
	}
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return keyPEM, certPEM, nil
}

func parseSPKey(keyPEM, certPEM string) (*rsa.PrivateKey, *x509.Certificate, error) {
	kb, _ := pem.Decode([]byte(keyPEM))
	cb, _ := pem.Decode([]byte(certPEM))
	if kb == nil || cb == nil {
		return nil, nil, errors.New("sso: stored sp key or certificate is not PEM")
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("sso: parse sp key: %w", err)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("sso: parse sp certificate: %w", err)
	}
	return key, cert, nil
}

func truncate(s string, n int) string {
	// Text from a request (a User-Agent may carry any byte) is stored as
	// valid UTF-8: PostgreSQL refuses anything else in a text column.
	s = strings.ToValidUTF8(s, "\uFFFD")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
