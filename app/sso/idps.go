package sso

//lint:file-ignore ST1005 the errors of this file are sentences that the admin page shows as they are

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"

	"idbridge/app/audit"
	"idbridge/app/store"
	"idbridge/models"
)

// Bounds of an identity provider's settings.
const (
	maxName      = 100
	maxClaimName = 100
	maxURL       = 2048
	maxSecret    = 4096
	maxScopes    = 20
	maxCertBytes = 16 << 10
)

// IdentityProviders lists the site's identity providers (secrets included:
// callers map them to answers that show only hints).
func (s *Service) IdentityProviders(ctx context.Context, siteID string) ([]*models.IdentityProvider, error) {
	return s.store.View(ctx).FindIdentityProviders(siteID)
}

// IdentityProvider returns one of the site's identity providers.
func (s *Service) IdentityProvider(ctx context.Context, siteID, id string) (*models.IdentityProvider, error) {
	return s.store.View(ctx).FindIdentityProvider(siteID, id)
}

// CreateIdentityProvider validates in, reaches the provider (OIDC discovery,
// SAML metadata URL) so that a wrong address is a 400 now rather than a
// broken sign-in later, and stores it with an audit event.
func (s *Service) CreateIdentityProvider(ctx context.Context, site *models.Site, actor string, in models.IdentityProviderInput) (*models.IdentityProvider, error) {
	p := &models.IdentityProvider{SiteID: site.ID, ID: store.NewID("idp"), Enabled: true}
	if in.Protocol == nil {
		return nil, models.FieldError("protocol", "Choose the protocol of the identity provider: oidc or saml.")
	}
	switch strings.TrimSpace(*in.Protocol) {
	case models.ProtocolOIDC:
		p.Protocol = models.ProtocolOIDC
		p.OIDC = &models.OIDCConfig{Scopes: []string{"openid", "email", "profile"}, EmailClaim: "email", NameClaim: "name", RequireVerifiedEmail: true}
		if in.OIDC == nil {
			return nil, models.FieldError("oidc", "Enter the OpenID Connect settings: issuer, clientId and clientSecret.")
		}
	case models.ProtocolSAML:
		p.Protocol = models.ProtocolSAML
		p.SAML = &models.SAMLConfig{}
		if in.SAML == nil {
			return nil, models.FieldError("saml", "Enter the SAML settings: metadataXml, metadataUrl, or entityId, ssoUrl and certificate.")
		}
	default:
		return nil, models.FieldError("protocol", "%q is not a protocol idbridge speaks; use oidc or saml.", truncate(*in.Protocol, 20))
	}
	if in.Name == nil {
		return nil, models.FieldError("name", "Give the identity provider a name customers recognise, such as \"Acme staff\".")
	}
	fields, err := s.mergeIdP(ctx, p, in, true)
	if err != nil {
		return nil, err
	}
	var saved *models.IdentityProvider
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.LockSSOSettings(site.ID); err != nil {
			return err
		}
		n, err := tx.CountIdentityProviders(site.ID)
		if err != nil {
			return err
		}
		if n >= store.MaxIdentityProviders {
			return models.Errorf(models.CodeConflict, "A site can have at most %d identity providers; delete one first.", store.MaxIdentityProviders)
		}
		p.UpdatedBy = actor
		if saved, err = tx.SaveIdentityProvider(site.ID, p); err != nil {
			return err
		}
		_, err = audit.Record(tx, audit.ConfigChanged(site.ID, actor, audit.SectionSSO, prefixed("identityProvider.", append(fields, "created"))))
		return err
	})
	if err != nil {
		return nil, err
	}
	if p.Protocol == models.ProtocolSAML {
		// Make the SP key now, so the SP metadata the admin copies next is
		// the one sign-ins use.
		if _, _, err := s.spKey(ctx, site.ID); err != nil {
			return nil, err
		}
	}
	return saved, nil
}

// UpdateIdentityProvider applies in over the stored provider; a secret left
// out keeps the stored one; the protocol cannot change.
func (s *Service) UpdateIdentityProvider(ctx context.Context, site *models.Site, actor, id string, in models.IdentityProviderInput) (*models.IdentityProvider, error) {
	cur, err := s.store.View(ctx).FindIdentityProvider(site.ID, id)
	if err != nil {
		return nil, err
	}
	if in.Protocol != nil && strings.TrimSpace(*in.Protocol) != cur.Protocol {
		return nil, models.FieldError("protocol", "The protocol of an identity provider cannot change; add a new one instead.")
	}
	fields, err := s.mergeIdP(ctx, cur, in, false)
	if err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return cur, nil
	}
	var saved *models.IdentityProvider
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.FindIdentityProvider(site.ID, id); err != nil {
			return err
		}
		cur.UpdatedBy = actor
		if saved, err = tx.SaveIdentityProvider(site.ID, cur); err != nil {
			return err
		}
		_, err = audit.Record(tx, audit.ConfigChanged(site.ID, actor, audit.SectionSSO, prefixed("identityProvider.", fields)))
		return err
	})
	if err != nil {
		return nil, err
	}
	s.providers.forget(site.ID, id)
	return saved, nil
}

// DeleteIdentityProvider removes the provider and its pending sign-ins.
func (s *Service) DeleteIdentityProvider(ctx context.Context, site *models.Site, actor, id string) error {
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.DeleteIdentityProvider(site.ID, id); err != nil {
			return err
		}
		_, err := audit.Record(tx, audit.ConfigChanged(site.ID, actor, audit.SectionSSO, []string{"identityProvider.deleted"}))
		return err
	})
	if err == nil {
		s.providers.forget(site.ID, id)
	}
	return err
}

func prefixed(prefix string, fields []string) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = prefix + f
	}
	return out
}

// mergeIdP validates in and applies it to p; it returns the names of the
// fields that changed.
func (s *Service) mergeIdP(ctx context.Context, p *models.IdentityProvider, in models.IdentityProviderInput, creating bool) ([]string, error) {
	var fields []string
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		switch {
		case name == "":
			return nil, models.FieldError("name", "Give the identity provider a name customers recognise, such as \"Acme staff\".")
		case utf8.RuneCountInString(name) > maxName || strings.ContainsAny(name, "\r\n\t<>"):
			return nil, models.FieldError("name", "The name must be at most %d characters, on one line, without < or >.", maxName)
		}
		if name != p.Name {
			p.Name = name
			fields = append(fields, "name")
		}
	}
	if in.Enabled != nil && *in.Enabled != p.Enabled {
		p.Enabled = *in.Enabled
		fields = append(fields, "enabled")
	}
	if in.EmailDomains != nil {
		domains, err := normalizeDomains("emailDomains", *in.EmailDomains)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(domains, p.EmailDomains) {
			p.EmailDomains = domains
			fields = append(fields, "emailDomains")
		}
	}
	if p.EmailDomains == nil {
		p.EmailDomains = []string{}
	}
	switch p.Protocol {
	case models.ProtocolOIDC:
		if in.SAML != nil {
			return nil, models.FieldError("saml", "This is an OpenID Connect identity provider; send oidc settings, not saml.")
		}
		f, err := s.mergeOIDC(ctx, p.OIDC, in.OIDC, creating)
		if err != nil {
			return nil, err
		}
		fields = append(fields, f...)
	case models.ProtocolSAML:
		if in.OIDC != nil {
			return nil, models.FieldError("oidc", "This is a SAML identity provider; send saml settings, not oidc.")
		}
		f, err := s.mergeSAML(ctx, p.SAML, in.SAML, creating)
		if err != nil {
			return nil, err
		}
		fields = append(fields, f...)
	}
	return fields, nil
}

func (s *Service) mergeOIDC(ctx context.Context, o *models.OIDCConfig, in *models.OIDCInput, creating bool) ([]string, error) {
	if in == nil {
		return nil, nil
	}
	var fields []string
	issuerChanged := false
	if in.Issuer != nil {
		issuer := strings.TrimRight(strings.TrimSpace(*in.Issuer), "/")
		if err := s.checkURL("oidc.issuer", "issuer", issuer); err != nil {
			return nil, err
		}
		if issuer != o.Issuer {
			o.Issuer, issuerChanged = issuer, true
			fields = append(fields, "oidc.issuer")
		}
	}
	if in.ClientID != nil {
		id := strings.TrimSpace(*in.ClientID)
		if id == "" || len(id) > 512 || strings.ContainsAny(id, " \r\n\t") {
			return nil, models.FieldError("oidc.clientId", "Enter the client ID the identity provider gave idbridge (one line, no spaces, at most 512 characters).")
		}
		if id != o.ClientID {
			o.ClientID = id
			fields = append(fields, "oidc.clientId")
		}
	}
	if in.ClientSecret != nil {
		sec := strings.TrimSpace(*in.ClientSecret)
		if sec == "" || len(sec) > maxSecret || strings.ContainsAny(sec, "\r\n") {
			return nil, models.FieldError("oidc.clientSecret", "Enter the client secret the identity provider gave idbridge (one line, at most %d characters).", maxSecret)
		}
		if sec != o.ClientSecret {
			o.ClientSecret, o.ClientSecretHint = sec, models.SecretHint(sec)
			fields = append(fields, "oidc.clientSecret")
		}
	}
	if in.Scopes != nil {
		scopes := []string{}
		for _, sc := range *in.Scopes {
			sc = strings.TrimSpace(sc)
			if sc == "" {
				continue
			}
			if len(sc) > 100 || strings.ContainsAny(sc, " \"\\\r\n\t") {
				return nil, models.FieldError("oidc.scopes", "%q is not a scope name.", truncate(sc, 40))
			}
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
		if len(scopes) == 0 {
			scopes = []string{"openid", "email", "profile"}
		}
		if len(scopes) > maxScopes || !slices.Contains(scopes, "openid") {
			return nil, models.FieldError("oidc.scopes", "The scopes must include openid (at most %d scopes).", maxScopes)
		}
		if !slices.Equal(scopes, o.Scopes) {
			o.Scopes = scopes
			fields = append(fields, "oidc.scopes")
		}
	}
	for _, c := range []struct {
		in    *string
		out   *string
		field string
		def   string
	}{{in.EmailClaim, &o.EmailClaim, "oidc.emailClaim", "email"}, {in.NameClaim, &o.NameClaim, "oidc.nameClaim", "name"}} {
		if c.in == nil {
			continue
		}
		v := strings.TrimSpace(*c.in)
		if v == "" {
			v = c.def
		}
		if len(v) > maxClaimName || strings.ContainsAny(v, " \r\n\t") {
			return nil, models.FieldError(c.field, "%q is not a claim name.", truncate(v, 40))
		}
		if v != *c.out {
			*c.out = v
			fields = append(fields, c.field)
		}
	}
	if in.RequireVerifiedEmail != nil && *in.RequireVerifiedEmail != o.RequireVerifiedEmail {
		o.RequireVerifiedEmail = *in.RequireVerifiedEmail
		fields = append(fields, "oidc.requireVerifiedEmail")
	}
	switch {
	case o.Issuer == "":
		return nil, models.FieldError("oidc.issuer", "Enter the identity provider's issuer URL, such as https://login.example.com.")
	case o.ClientID == "":
		return nil, models.FieldError("oidc.clientId", "Enter the client ID the identity provider gave idbridge.")
	case o.ClientSecret == "":
		return nil, models.FieldError("oidc.clientSecret", "Enter the client secret the identity provider gave idbridge.")
	}
	if creating || issuerChanged {
		if _, err := s.discover(ctx, o.Issuer); err != nil {
			return nil, models.FieldError("oidc.issuer", "idbridge could not use the discovery document of %s: %s. Check the issuer URL.", o.Issuer, err.Error())
		}
	}
	return fields, nil
}

// checkURL accepts an absolute https URL (plain http and private addresses
// only when loopback identity providers are allowed).
func (s *Service) checkURL(field, what, raw string) error {
	u, err := url.Parse(raw)
	if raw == "" || err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || len(raw) > maxURL {
		return models.FieldError(field, "Enter the %s as a full URL such as https://login.example.com.", what)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && s.cfg.AllowLoopbackIdPs) {
		return models.FieldError(field, "The %s must start with https://.", what)
	}
	return nil
}

func (s *Service) mergeSAML(ctx context.Context, c *models.SAMLConfig, in *models.SAMLInput, creating bool) ([]string, error) {
	if in == nil {
		return nil, nil
	}
	var fields []string
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	xmlIn, urlIn := str(in.MetadataXML), str(in.MetadataURL)
	entityIn, ssoIn, certIn := str(in.EntityID), str(in.SSOURL), str(in.Certificate)
	manual := entityIn != "" || ssoIn != "" || certIn != ""
	sources := 0
	for _, b := range []bool{xmlIn != "", urlIn != "", manual} {
		if b {
			sources++
		}
	}
	if sources > 1 {
		return nil, models.FieldError("saml", "Send one of: metadataXml, metadataUrl, or entityId with ssoUrl and certificate.")
	}
	switch {
	case xmlIn != "":
		if len(xmlIn) > MaxMetadataBytes {
			return nil, models.FieldError("saml.metadataXml", "The metadata is larger than %d bytes.", MaxMetadataBytes)
		}
		if _, err := idpDescriptor(&models.SAMLConfig{MetadataXML: xmlIn}); err != nil {
			return nil, models.FieldError("saml.metadataXml", "%s", err.Error())
		}
		if xmlIn != c.MetadataXML || c.MetadataURL != "" || c.EntityID != "" {
			c.MetadataXML, c.MetadataURL, c.EntityID, c.SSOURL, c.Certificate = xmlIn, "", "", "", ""
			fields = append(fields, "saml.metadataXml")
		}
	case urlIn != "":
		if err := s.checkURL("saml.metadataUrl", "metadata URL", urlIn); err != nil {
			return nil, err
		}
		data, err := s.fetchMetadata(ctx, urlIn)
		if err != nil {
			return nil, models.FieldError("saml.metadataUrl", "idbridge could not read the metadata at %s: %s.", truncate(urlIn, 200), err.Error())
		}
		if _, err := idpDescriptor(&models.SAMLConfig{MetadataXML: string(data)}); err != nil {
			return nil, models.FieldError("saml.metadataUrl", "The metadata at %s is not usable: %s", truncate(urlIn, 200), err.Error())
		}
		c.MetadataXML, c.MetadataURL, c.EntityID, c.SSOURL, c.Certificate = string(data), urlIn, "", "", ""
		fields = append(fields, "saml.metadataUrl")
	case manual:
		if entityIn == "" || len(entityIn) > maxURL {
			return nil, models.FieldError("saml.entityId", "Enter the identity provider's entity ID (its issuer).")
		}
		if err := s.checkURL("saml.ssoUrl", "single sign-on URL", ssoIn); err != nil {
			return nil, err
		}
		cert, err := normalizeCertificate(certIn)
		if err != nil {
			return nil, models.FieldError("saml.certificate", "%s", err.Error())
		}
		if entityIn != c.EntityID || ssoIn != c.SSOURL || cert != c.Certificate || c.MetadataXML != "" {
			c.MetadataXML, c.MetadataURL, c.EntityID, c.SSOURL, c.Certificate = "", "", entityIn, ssoIn, cert
			fields = append(fields, "saml.entityId")
		}
	}
	for _, a := range []struct {
		in    *string
		out   *string
		field string
	}{{in.EmailAttribute, &c.EmailAttribute, "saml.emailAttribute"}, {in.NameAttribute, &c.NameAttribute, "saml.nameAttribute"}} {
		if a.in == nil {
			continue
		}
		v := strings.TrimSpace(*a.in)
		if len(v) > 512 || strings.ContainsAny(v, "\r\n\t") {
			return nil, models.FieldError(a.field, "%q is not an attribute name.", truncate(v, 40))
		}
		if v != *a.out {
			*a.out = v
			fields = append(fields, a.field)
		}
	}
	if c.MetadataXML == "" && c.EntityID == "" {
		return nil, models.FieldError("saml", "Send one of: metadataXml, metadataUrl, or entityId with ssoUrl and certificate.")
	}
	_ = creating
	return fields, nil
}

// fetchMetadata reads SAML metadata from an admin-given URL, bounded.
func (s *Service) fetchMetadata(ctx context.Context, raw string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, IdPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, errors.New("the URL is not valid")
	}
	resp, err := s.idpHTTP.Do(req)
	if err != nil {
		return nil, reachError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("it answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxMetadataBytes+1))
	if err != nil {
		return nil, reachError(err)
	}
	if len(data) > MaxMetadataBytes {
		return nil, fmt.Errorf("it is larger than %d bytes", MaxMetadataBytes)
	}
	return data, nil
}

// reachError says in words why an identity provider could not be reached.
func reachError(err error) error {
	switch {
	case errors.Is(err, errPrivateAddress):
		return errors.New("the address is on a private network, which idbridge does not call")
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout"):
		return fmt.Errorf("it did not answer within %s", IdPTimeout)
	case strings.Contains(err.Error(), "no such host"):
		return errors.New("no such host")
	case strings.Contains(err.Error(), "connection refused"):
		return errors.New("the connection was refused")
	case strings.Contains(err.Error(), "certificate"):
		return errors.New("its TLS certificate is not trusted")
	}
	return errors.New("it could not be reached")
}

// normalizeCertificate accepts a PEM certificate or its base64 DER, and
// returns the base64 DER.
func normalizeCertificate(in string) (string, error) {
	if in == "" {
		return "", errors.New("Enter the identity provider's signing certificate (PEM, or the base64 inside it).")
	}
	if len(in) > maxCertBytes {
		return "", errors.New("The certificate is too large.")
	}
	var der []byte
	if blk, _ := pem.Decode([]byte(in)); blk != nil {
		der = blk.Bytes
	} else {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(in), ""))
		if err != nil {
			return "", errors.New("The certificate is neither PEM nor base64.")
		}
		der = b
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return "", errors.New("The certificate could not be read as an X.509 certificate.")
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// idpDescriptor builds the IdP's metadata from what is stored: the XML, or
// entity ID, SSO URL and certificate. It also checks that the metadata
// names an HTTP-Redirect SSO endpoint and a signing certificate.
func idpDescriptor(c *models.SAMLConfig) (*saml.EntityDescriptor, error) {
	var ed *saml.EntityDescriptor
	if c.MetadataXML != "" {
		var err error
		ed, err = samlsp.ParseMetadata([]byte(c.MetadataXML))
		if err != nil {
			return nil, errors.New("The metadata is not valid SAML metadata XML.")
		}
	} else {
		ed = &saml.EntityDescriptor{
			EntityID: c.EntityID,
			IDPSSODescriptors: []saml.IDPSSODescriptor{{
				SSODescriptor: saml.SSODescriptor{RoleDescriptor: saml.RoleDescriptor{
					ProtocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol",
					KeyDescriptors: []saml.KeyDescriptor{{Use: "signing", KeyInfo: saml.KeyInfo{
						X509Data: saml.X509Data{X509Certificates: []saml.X509Certificate{{Data: c.Certificate}}},
					}}},
				}},
				SingleSignOnServices: []saml.Endpoint{{Binding: saml.HTTPRedirectBinding, Location: c.SSOURL}},
			}},
		}
	}
	if len(ed.IDPSSODescriptors) == 0 {
		return nil, errors.New("The metadata describes no identity provider (no IDPSSODescriptor).")
	}
	redirect := false
	certs := 0
	for _, d := range ed.IDPSSODescriptors {
		for _, ep := range d.SingleSignOnServices {
			if ep.Binding == saml.HTTPRedirectBinding && ep.Location != "" {
				redirect = true
			}
		}
		for _, kd := range d.KeyDescriptors {
			if kd.Use == "" || kd.Use == "signing" {
				certs += len(kd.KeyInfo.X509Data.X509Certificates)
			}
		}
	}
	if !redirect {
		return nil, errors.New("The metadata has no single sign-on URL with the HTTP-Redirect binding.")
	}
	if certs == 0 {
		return nil, errors.New("The metadata has no signing certificate.")
	}
	if ed.EntityID == "" {
		return nil, errors.New("The metadata has no entity ID.")
	}
	return ed, nil
}
