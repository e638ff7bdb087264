package sso

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"idbridge/models"
)

const (
	samlProtocolNS  = "urn:oasis:names:tc:SAML:2.0:protocol"
	samlAssertionNS = "urn:oasis:names:tc:SAML:2.0:assertion"
)

// serviceProvider builds the site's SAML service provider for one IdP,
// with the clock of this service and every check crewjam/saml offers on:
// no IdP-initiated responses, SHA-1 refused, HTTP-POST only.
func (s *Service) serviceProvider(ctx context.Context, idp *models.IdentityProvider) (*saml.ServiceProvider, error) {
	ed, err := idpDescriptor(idp.SAML)
	if err != nil {
		return nil, err
	}
	key, cert, err := s.spKey(ctx, idp.SiteID)
	if err != nil {
		return nil, err
	}
	facts := s.SP(idp.SiteID)
	acs, _ := url.Parse(facts.ACSURL)
	meta, _ := url.Parse(facts.MetadataURL)
	return &saml.ServiceProvider{
		EntityID:                         facts.EntityID,
		Key:                              key,
		Certificate:                      cert,
		AcsURL:                           *acs,
		MetadataURL:                      *meta,
		IDPMetadata:                      ed,
		AuthnNameIDFormat:                saml.UnspecifiedNameIDFormat,
		AllowIDPInitiated:                false,
		RejectSHA1Signatures:             true,
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		MetadataValidDuration:            7 * 24 * time.Hour,
		SignatureMethod:                  dsig.RSASHA256SignatureMethod,
		Clock:                            dsig.NewFakeClockAt(s.now()),
	}, nil
}

// SPMetadata returns the site's SAML SP metadata XML (its entity ID, ACS
// URL and signing certificate).
func (s *Service) SPMetadata(ctx context.Context, siteID string) ([]byte, error) {
	if _, err := s.activeSite(ctx, siteID); err != nil {
		return nil, err
	}
	key, cert, err := s.spKey(ctx, siteID)
	if err != nil {
		return nil, err
	}
	facts := s.SP(siteID)
	acs, _ := url.Parse(facts.ACSURL)
	meta, _ := url.Parse(facts.MetadataURL)
	sp := &saml.ServiceProvider{
		EntityID: facts.EntityID, Key: key, Certificate: cert, AcsURL: *acs, MetadataURL: *meta,
		AuthnNameIDFormat: saml.UnspecifiedNameIDFormat, AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		MetadataValidDuration: 7 * 24 * time.Hour, Clock: dsig.NewFakeClockAt(s.now()),
		SignatureMethod: dsig.RSASHA256SignatureMethod,
	}
	ed := sp.Metadata()
	// idbridge publishes a signing key only: assertions come signed over
	// TLS, never encrypted (an encrypted one is refused).
	for i := range ed.SPSSODescriptors {
		var keep []saml.KeyDescriptor
		for _, kd := range ed.SPSSODescriptors[i].KeyDescriptors {
			if kd.Use != "encryption" {
				keep = append(keep, kd)
			}
		}
		ed.SPSSODescriptors[i].KeyDescriptors = keep
		ed.SPSSODescriptors[i].WantAssertionsSigned = ptrBool(true)
	}
	out, err := xml.MarshalIndent(ed, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode sp metadata: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}

// samlIdentity verifies a posted SAMLResponse for the login state st and
// returns who signed in, with the assertion's ID recorded so it is never
// accepted again.
func (s *Service) samlIdentity(ctx context.Context, idp *models.IdentityProvider, st *models.LoginState, encoded string, steps *stepLog) (*models.Identity, *refusal) {
	if len(encoded) > MaxSAMLResponseBytes {
		return nil, refuse("saml_too_large", "The identity provider's answer is too large.")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil || len(raw) == 0 {
		return nil, refuse("saml_malformed", "The identity provider's answer could not be read.")
	}
	// What crewjam/saml does not check, idbridge checks on the document
	// as received, before the library reads it.
	if r := inspectResponse(raw); r != nil {
		return nil, r
	}
	sp, err := s.serviceProvider(ctx, idp)
	if err != nil {
		return nil, refuse("idp_misconfigured", "This identity provider's settings are not usable: %s", err.Error())
	}
	steps.ok("Metadata", "The identity provider's metadata is usable.")
	acs := sp.AcsURL
	assertion, err := sp.ParseXMLResponse(raw, []string{st.SAMLRequestID}, acs)
	if err != nil {
		s.log.DebugContext(ctx, "saml response refused", "detail", SAMLDetail(err))
		return nil, samlRefusal(err)
	}
	steps.ok("Signature", "The response is signed by the identity provider, for idbridge, in time, and answers this sign-in.")
	if assertion.ID == "" {
		return nil, refuse("saml_malformed", "The identity provider's assertion has no ID.")
	}
	// crewjam/saml accepts an assertion ID it has seen before: record each
	// one until it could no longer be accepted anyway.
	until := s.now().Add(models.LoginStateTTL)
	if c := assertion.Conditions; c != nil && c.NotOnOrAfter.After(until) {
		until = c.NotOnOrAfter
	}
	if err := s.store.View(ctx).ConsumeSAMLAssertion(idp.SiteID, idp.ID, assertion.ID, until); err != nil {
		if models.ErrorCode(err) == models.CodeConflict {
			return nil, refuse("saml_replay", "This sign-in was already used. Start again.")
		}
		return nil, refuse("internal", "The sign-in could not be recorded.")
	}
	id := &models.Identity{}
	if assertion.Subject != nil && assertion.Subject.NameID != nil {
		id.Subject = assertion.Subject.NameID.Value
	}
	email := ""
	if attr := idp.SAML.EmailAttribute; attr != "" {
		email = attributeValue(assertion, attr)
	} else if a, err := mail.ParseAddress(id.Subject); err == nil && a.Address == id.Subject {
		email = id.Subject
	}
	if email == "" {
		return nil, refuse("email_missing", "The identity provider did not say the email address.")
	}
	steps.ok("Email", "The email address is present.")
	id.Email = email
	if attr := idp.SAML.NameAttribute; attr != "" {
		id.DisplayName = attributeValue(assertion, attr)
	} else {
		// The names identity providers commonly use for a display name.
		for _, attr := range []string{"displayName", "name", "cn", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"} {
			if id.DisplayName = attributeValue(assertion, attr); id.DisplayName != "" {
				break
			}
		}
	}
	return id, nil
}

func attributeValue(a *saml.Assertion, name string) string {
	for _, st := range a.AttributeStatements {
		for _, attr := range st.Attributes {
			if attr.Name == name || attr.FriendlyName == name {
				for _, v := range attr.Values {
					if v.Value != "" {
						return v.Value
					}
				}
			}
		}
	}
	return ""
}

// inspectResponse refuses what the library would accept but idbridge must
// not: a NameID or attribute value split by a comment or by markup (the
// signature does not cover comments, so "alice@customer.example<!---->.evil.example"
// keeps a valid signature), more than one assertion (signature wrapping
// keeps a signed assertion beside the one that is read), and any
// assertion that is not directly inside the Response.
func inspectResponse(raw []byte) *refusal {
	// Each element is at most two tags: more markup than the elements
	// allowed is refused before the document is parsed at all.
	if bytes.Count(raw, []byte("<")) > 2*maxSAMLElements+16 {
		return refuse("saml_too_large", "The identity provider's answer has too many elements.")
	}
	doc := etree.NewDocument()
	doc.ReadSettings.PreserveCData = true
	if err := doc.ReadFromBytes(raw); err != nil || doc.Root() == nil {
		return refuse("saml_malformed", "The identity provider's answer is not valid XML.")
	}
	root := doc.Root()
	if root.Tag != "Response" || root.NamespaceURI() != samlProtocolNS {
		return refuse("saml_malformed", "The identity provider's answer is not a SAML response.")
	}
	// An answer to no request is IdP-initiated: refused (crewjam/saml
	// would accept one with AllowIDPInitiated; idbridge never does).
	if root.SelectAttrValue("InResponseTo", "") == "" {
		return refuse("saml_idp_initiated", "Sign-ins started at the identity provider are not accepted; start at the help center.")
	}
	assertions, elements := 0, 0
	// Namespaces are resolved on the way down, one scope per element that
	// declares any: etree's NamespaceURI scans every ancestor's attributes
	// on each call, which a wide document with thousands of declarations
	// on its root turns into seconds of CPU.
	var walk func(el *etree.Element, scope *nsScope, depth int) *refusal
	walk = func(el *etree.Element, scope *nsScope, depth int) *refusal {
		if depth > 64 {
			return refuse("saml_malformed", "The identity provider's answer is nested too deeply.")
		}
		if elements++; elements > maxSAMLElements {
			return refuse("saml_too_large", "The identity provider's answer has too many elements.")
		}
		var decl map[string]string
		for _, a := range el.Attr {
			var prefix string // "" declares the default namespace
			switch {
			case a.Space == "xmlns":
				prefix = a.Key
			case a.Space == "" && a.Key == "xmlns":
			default:
				continue
			}
			if decl == nil {
				decl = map[string]string{}
			}
			decl[prefix] = a.Value // etree keeps one attribute of a name: the last
		}
		if decl != nil {
			scope = scope.with(decl)
			if len(decl) > maxSAMLElementDeclarations || scope.inScope > maxSAMLScopeDeclarations {
				return refuse("saml_malformed", "The identity provider's answer declares too many namespaces.")
			}
		}
		ns := scope.lookup(el.Space)
		if ns == samlAssertionNS && (el.Tag == "EncryptedAssertion" || el.Tag == "EncryptedID" || el.Tag == "EncryptedAttribute") {
			return refuse("saml_encrypted", "The identity provider encrypted its answer; idbridge accepts signed, unencrypted assertions (over TLS). Turn assertion encryption off at the identity provider.")
		}
		if ns == samlAssertionNS && el.Tag == "Assertion" {
			assertions++
			if el.Parent() != root {
				return refuse("saml_wrapping", "The identity provider's answer carries an assertion in an unexpected place.")
			}
		}
		if ns == samlAssertionNS && (el.Tag == "NameID" || el.Tag == "AttributeValue") {
			texts := 0
			for _, tok := range el.Child {
				switch tok.(type) {
				case *etree.Comment:
					return refuse("saml_nameid_comment", "The identity provider's answer has a comment inside a name or attribute.")
				case *etree.CharData:
					texts++
				case *etree.Element, *etree.ProcInst:
					if el.Tag == "NameID" {
						return refuse("saml_nameid_comment", "The identity provider's answer has markup inside a name.")
					}
				}
			}
			if texts > 1 && el.Tag == "NameID" {
				return refuse("saml_nameid_comment", "The identity provider's answer has a split name.")
			}
		}
		for _, c := range el.Child {
			if c, ok := c.(*etree.Element); ok {
				if r := walk(c, scope, depth+1); r != nil {
					return r
				}
			}
		}
		return nil
	}
	if r := walk(root, nil, 0); r != nil {
		return r
	}
	if assertions == 0 {
		return refuse("saml_malformed", "The identity provider's answer has no assertion.")
	}
	if assertions > 1 {
		return refuse("saml_wrapping", "The identity provider's answer has more than one assertion.")
	}
	if bytes.Contains(raw, []byte("<!DOCTYPE")) {
		return refuse("saml_malformed", "The identity provider's answer has a document type declaration.")
	}
	return nil
}

// What a SAML response may hold: a real one has tens of elements (a few
// hundred with many groups). Identity providers declare namespaces on many
// elements (Okta declares xs and xsi on every AttributeValue, crewjam/saml
// xsi), so declarations are bounded per element and in scope (along one
// element's ancestors), not per document. Beyond these, the answer is
// refused before crewjam/saml reads it, so that neither idbridge's walk
// nor the library's canonicalization (which copies the namespaces in scope
// at each element) does work out of proportion to a sign-in.
const (
	maxSAMLElements            = 5000
	maxSAMLElementDeclarations = 16
	maxSAMLScopeDeclarations   = 64
)

// nsScope is the namespace declarations of one element, over its parent's.
type nsScope struct {
	decl    map[string]string
	parent  *nsScope
	inScope int // declarations here and in every ancestor's scope
}

// with is the scope of an element that declares decl, inside s.
func (s *nsScope) with(decl map[string]string) *nsScope {
	n := &nsScope{decl: decl, parent: s, inScope: len(decl)}
	if s != nil {
		n.inScope += s.inScope
	}
	return n
}

// lookup is the URI that prefix names ("" the default namespace) where the
// scope is; "" when none is declared.
func (s *nsScope) lookup(prefix string) string {
	for ; s != nil; s = s.parent {
		if uri, ok := s.decl[prefix]; ok {
			return uri
		}
	}
	return ""
}

// samlRefusal names why crewjam/saml refused a response.
func samlRefusal(err error) *refusal {
	var ire *saml.InvalidResponseError
	detail := err
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		detail = ire.PrivateErr
	}
	msg := detail.Error()
	switch {
	case errors.Is(detail, saml.ErrUnsupported) && strings.Contains(strings.ToLower(msg), "sha"):
		return refuse("saml_sha1", "The identity provider signed with SHA-1, which idbridge does not accept. Ask for SHA-256.")
	case errors.Is(detail, saml.ErrRequestIDMismatch) || strings.Contains(msg, "InResponseTo"):
		if strings.Contains(msg, "InResponseTo") && strings.Contains(msg, "missing") {
			return refuse("saml_idp_initiated", "Sign-ins started at the identity provider are not accepted; start at the help center.")
		}
		return refuse("saml_in_response_to", "The identity provider's answer is for another sign-in.")
	case errors.Is(detail, saml.ErrAudienceMismatch):
		return refuse("saml_audience", "The identity provider's answer is for another application.")
	case errors.Is(detail, saml.ErrDestinationMismatch):
		return refuse("saml_destination", "The identity provider's answer was sent to another address.")
	case errors.Is(detail, saml.ErrExpired) || errors.Is(detail, saml.ErrNotYetValid):
		return refuse("saml_expired", "The identity provider's answer is outside its validity window.")
	case errors.Is(detail, saml.ErrIssuerMismatch):
		return refuse("saml_issuer", "The identity provider's answer comes from another identity provider.")
	case errors.Is(detail, saml.ErrInvalidSignature) || errors.Is(detail, saml.ErrUntrustedCertificate) || errors.Is(detail, saml.ErrCertificateNotValidNow):
		if strings.Contains(msg, "must be signed") || strings.Contains(msg, "not signed") || strings.Contains(msg, "Signature element not present") {
			return refuse("saml_unsigned", "The identity provider's answer is not signed.")
		}
		return refuse("saml_signature", "The identity provider's signature does not verify.")
	case strings.Contains(msg, "must be signed") || strings.Contains(msg, "not signed") || strings.Contains(msg, "signature element not present"):
		return refuse("saml_unsigned", "The identity provider's answer is not signed.")
	case errors.Is(detail, saml.ErrMissingElement) || errors.Is(detail, saml.ErrMalformedMessage):
		return refuse("saml_malformed", "The identity provider's answer is incomplete.")
	}
	return refuse("saml_invalid", "The identity provider's answer is not valid.")
}

// SAMLDetail is for tests: the library's private reason.
func SAMLDetail(err error) string {
	var ire *saml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		return ire.PrivateErr.Error()
	}
	return err.Error()
}

func ptrBool(b bool) *bool { return &b }
