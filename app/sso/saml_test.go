package sso_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/google/go-cmp/cmp"
	dsig "github.com/russellhaering/goxmldsig"

	"idbridge/app/fakeidp"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

var bob = fakeidp.User{Email: "bob@customer.example", Name: "Bob Example", EmailVerified: true}

func TestSAMLSignIn(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		br := &browser{}
		relay, resp := e.beginSAML(br, bob)
		res, err := e.finishSAML(br, relay, resp)
		if err != nil {
			t.Fatalf("sign-in: %v", err)
		}
		acct, ok := e.jira.Account(bob.Email)
		if !ok || res.Session == nil {
			t.Fatalf("result %+v; customer %+v (found %v)", res, acct, ok)
		}
		if d := cmp.Diff(map[string]string{"account": acct.AccountID, "email": bob.Email}, map[string]string{"account": res.Session.AccountID, "email": res.Session.Email}); d != "" {
			t.Fatalf("session (-want +got):\n%s", d)
		}
		evs := e.events(models.AuditLoginSuccess)
		if len(evs) != 1 {
			t.Fatalf("login_success events %+v, want one", evs)
		}
		if d := cmp.Diff(map[string]string{"protocol": "saml", "idp": e.samlID, "actor": acct.AccountID},
			map[string]string{"protocol": evs[0].Protocol, "idp": evs[0].IdP, "actor": evs[0].ActorAccountID}); d != "" {
			t.Errorf("login_success event (-want +got):\n%s", d)
		}
		// The IdP fetched idbridge's SP metadata, as a real one would.
		if !contains(e.saml.Calls(), "GET /metadata") {
			t.Errorf("idbridge never read the IdP's metadata URL: %v", e.saml.Calls())
		}
	})
}

// TestSAMLSignInWithManyGroups: a genuine signed response for a person in
// 300 groups, each value declaring its own xsi namespace (as crewjam/saml's
// IdP writes them; Okta declares xs and xsi on each), signs in. A bound on
// the document's namespace declarations in all refused such a person.
func TestSAMLSignInWithManyGroups(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.saml.Tamper(func(a *saml.Assertion) {
			var vals []saml.AttributeValue
			for i := range 300 {
				vals = append(vals, saml.AttributeValue{Type: "xs:string", Value: fmt.Sprintf("group-%d", i)})
			}
			a.AttributeStatements[0].Attributes = append(a.AttributeStatements[0].Attributes, saml.Attribute{Name: "groups", Values: vals})
		})
		br := &browser{}
		relay, resp := e.beginSAML(br, bob)
		if raw, _ := base64.StdEncoding.DecodeString(resp); strings.Count(string(raw), "xmlns:xsi") < 300 {
			t.Fatalf("the IdP's response declares xsi %d times; the test wants one per value", strings.Count(string(raw), "xmlns:xsi"))
		}
		if res, err := e.finishSAML(br, relay, resp); err != nil || res.Session == nil {
			t.Fatalf("sign-in of a person in 300 groups: %+v, %v", res, err)
		}
	})
}

// resign re-signs the response's assertion and then the response itself
// with the IdP's key, after a change: what a compromised or buggy IdP
// would send, with valid signatures.
func resign(t *testing.T, idp *fakeidp.SAML, resp *etree.Element, change func(resp, assertion *etree.Element)) *etree.Element {
	t.Helper()
	a := fakeidp.Find(resp, "Assertion")
	change(resp, a)
	signedA, err := idp.SignElement(a)
	if err != nil {
		t.Fatal(err)
	}
	at := a.Index()
	resp.RemoveChild(a)
	resp.InsertChildAt(at, signedA)
	signed, err := idp.SignElement(resp)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestSAMLAttacks refuses every SAML attack of SPEC 7 / issue 14 against
// crewjam/saml's IdP side, each audited as login_failure with its reason.
func TestSAMLAttacks(t *testing.T) {
	t.Parallel()
	type attack struct {
		name   string
		reason string
		// anonymous: refused before any login state was taken (not audited)
		anonymous bool
		setup     func(t *testing.T, e *env)
		run       func(t *testing.T, e *env, br *browser, relay, resp string) (*models.LoginResult, error)
	}
	finish := func(_ *testing.T, e *env, br *browser, relay, resp string) (*models.LoginResult, error) {
		return e.finishSAML(br, relay, resp)
	}
	post := func(fn func(t *testing.T, e *env, resp *etree.Element) *etree.Element) func(t *testing.T, e *env) {
		return func(t *testing.T, e *env) {
			e.saml.PostProcess(func(resp *etree.Element) *etree.Element { return fn(t, e, resp) })
		}
	}
	attacks := []attack{
		{name: "unsigned response and assertion", reason: "saml_unsigned", setup: post(func(_ *testing.T, _ *env, resp *etree.Element) *etree.Element {
			fakeidp.RemoveSignatures(resp, true)
			return resp
		}), run: finish},
		{name: "signed by another key", reason: "saml_signature", setup: post(func(t *testing.T, _ *env, resp *etree.Element) *etree.Element {
			other := fakeidp.NewSAML()
			defer other.Close()
			return resign(t, other, resp, func(_, _ *etree.Element) {})
		}), run: finish},
		{name: "assertion changed after signing", reason: "saml_signature", setup: post(func(_ *testing.T, _ *env, resp *etree.Element) *etree.Element {
			fakeidp.RemoveSignatures(resp, false) // the response's own
			fakeidp.Find(resp, "NameID").SetText("mallory@customer.example")
			return resp
		}), run: finish},
		{name: "signature wrapping: a second assertion", reason: "saml_wrapping", setup: post(func(_ *testing.T, _ *env, resp *etree.Element) *etree.Element {
			evil := fakeidp.Find(resp, "Assertion").Copy()
			fakeidp.RemoveSignatures(evil, false)
			evil.CreateAttr("ID", "id-evil")
			fakeidp.Find(evil, "NameID").SetText("mallory@customer.example")
			resp.InsertChildAt(0, evil)
			return resp
		}), run: finish},
		{name: "signature wrapping: the signed assertion hidden in Extensions", reason: "saml_wrapping", setup: post(func(_ *testing.T, _ *env, resp *etree.Element) *etree.Element {
			fakeidp.RemoveSignatures(resp, false)
			signed := fakeidp.Find(resp, "Assertion")
			resp.RemoveChild(signed)
			ext := resp.CreateElement("samlp:Extensions")
			ext.AddChild(signed)
			evil := signed.Copy()
			fakeidp.RemoveSignatures(evil, false)
			fakeidp.Find(evil, "NameID").SetText("mallory@customer.example")
			resp.AddChild(evil)
			return resp
		}), run: finish},
		{name: "replayed assertion ID", reason: "saml_replay", setup: func(_ *testing.T, e *env) {
			e.saml.Tamper(func(a *saml.Assertion) { a.ID = "id-always-the-same" })
		}, run: func(t *testing.T, e *env, br *browser, relay, resp string) (*models.LoginResult, error) {
			if _, err := e.finishSAML(br, relay, resp); err != nil {
				t.Fatalf("first use: %v", err)
			}
			relay2, resp2 := e.beginSAML(br, bob)
			return e.finishSAML(br, relay2, resp2)
		}},
		{name: "replayed response", reason: "state_unknown", anonymous: true, run: func(t *testing.T, e *env, br *browser, relay, resp string) (*models.LoginResult, error) {
			if _, err := e.finishSAML(br, relay, resp); err != nil {
				t.Fatalf("first use: %v", err)
			}
			return e.finishSAML(br, relay, resp)
		}},
		{name: "wrong audience", reason: "saml_audience", setup: func(_ *testing.T, e *env) {
			e.saml.Tamper(func(a *saml.Assertion) {
				a.Conditions.AudienceRestrictions = []saml.AudienceRestriction{{Audience: saml.Audience{Value: "https://other.example/sp"}}}
			})
		}, run: finish},
		{name: "wrong destination", reason: "saml_destination", setup: post(func(t *testing.T, e *env, resp *etree.Element) *etree.Element {
			return resign(t, e.saml, resp, func(r, _ *etree.Element) { r.CreateAttr("Destination", "https://other.example/acs") })
		}), run: finish},
		{name: "InResponseTo unknown", reason: "saml_in_response_to", setup: post(func(t *testing.T, e *env, resp *etree.Element) *etree.Element {
			return resign(t, e.saml, resp, func(r, a *etree.Element) {
				r.CreateAttr("InResponseTo", "id-unknown")
				fakeidp.Find(a, "SubjectConfirmationData").CreateAttr("InResponseTo", "id-unknown")
			})
		}), run: finish},
		{name: "InResponseTo of another browser's sign-in", reason: "saml_in_response_to", run: func(t *testing.T, e *env, br *browser, relay, resp string) (*models.LoginResult, error) {
			// Mallory starts her own sign-in and posts the victim's
			// response with her own state and cookie.
			mallory := &browser{}
			relayM, _ := e.beginSAML(mallory, fakeidp.User{Email: "mallory@customer.example"})
			return e.finishSAML(mallory, relayM, resp)
		}},
		{name: "login finished in another browser", reason: "browser_mismatch", run: func(t *testing.T, e *env, _ *browser, relay, resp string) (*models.LoginResult, error) {
			return e.finishSAML(&browser{binding: strings.Repeat("C", 43)}, relay, resp)
		}},
		{name: "IdP-initiated (no RelayState)", reason: "saml_idp_initiated", anonymous: true, run: func(t *testing.T, e *env, br *browser, _, resp string) (*models.LoginResult, error) {
			return e.finishSAML(br, "", resp)
		}},
		{name: "IdP-initiated (no InResponseTo)", reason: "saml_idp_initiated", setup: post(func(t *testing.T, e *env, resp *etree.Element) *etree.Element {
			return resign(t, e.saml, resp, func(r, a *etree.Element) {
				r.RemoveAttr("InResponseTo")
				fakeidp.Find(a, "SubjectConfirmationData").RemoveAttr("InResponseTo")
			})
		}), run: finish},
		{name: "comment-injected NameID", reason: "saml_nameid_comment", setup: func(t *testing.T, e *env) {
			e.saml.PostProcess(func(resp *etree.Element) *etree.Element {
				// Signed for alice@customer.example.evil.example; a comment
				// keeps the signature valid (exclusive c14n drops it).
				n := fakeidp.Find(resp, "NameID")
				n.Child = nil
				n.CreateText("alice@customer.example")
				n.CreateComment("")
				n.CreateText(".evil.example")
				return resp
			})
		}, run: func(t *testing.T, e *env, br *browser, _, _ string) (*models.LoginResult, error) {
			relay, resp := e.beginSAML(br, fakeidp.User{Email: "alice@customer.example.evil.example"})
			return e.finishSAML(br, relay, resp)
		}},
		{name: "SHA-1 signature", reason: "saml_sha1", setup: func(_ *testing.T, e *env) {
			e.saml.SignWith(dsig.RSASHA1SignatureMethod)
		}, run: finish},
		{name: "expired assertion", reason: "saml_expired", run: func(t *testing.T, e *env, br *browser, relay, resp string) (*models.LoginResult, error) {
			e.clock.Advance(9 * time.Minute) // still within the state's TTL
			return e.finishSAML(br, relay, resp)
		}},
		{name: "email outside the allowed domains", reason: "domain_not_allowed", run: func(t *testing.T, e *env, br *browser, _, _ string) (*models.LoginResult, error) {
			relay, resp := e.beginSAML(br, fakeidp.User{Email: "mallory@evil.example"})
			return e.finishSAML(br, relay, resp)
		}},
		{name: "oversized response", reason: "saml_too_large", run: func(t *testing.T, e *env, br *browser, relay, _ string) (*models.LoginResult, error) {
			return e.finishSAML(br, relay, base64.StdEncoding.EncodeToString(make([]byte, 300<<10)))
		}},
		{name: "not base64", reason: "saml_malformed", run: func(t *testing.T, e *env, br *browser, relay, _ string) (*models.LoginResult, error) {
			return e.finishSAML(br, relay, "%%% not base64 %%%")
		}},
		{name: "not XML", reason: "saml_malformed", run: func(t *testing.T, e *env, br *browser, relay, _ string) (*models.LoginResult, error) {
			return e.finishSAML(br, relay, base64.StdEncoding.EncodeToString([]byte("<Response")))
		}},
		{name: "document type declaration", reason: "saml_malformed", run: func(t *testing.T, e *env, br *browser, relay, resp string) (*models.LoginResult, error) {
			raw, _ := base64.StdEncoding.DecodeString(resp)
			doc := `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "y">]>` + string(raw)
			return e.finishSAML(br, relay, base64.StdEncoding.EncodeToString([]byte(doc)))
		}},
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		for _, a := range attacks {
			t.Run(a.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, b)
				if a.setup != nil {
					a.setup(t, e)
				}
				br := &browser{}
				relay, resp := e.beginSAML(br, bob)
				res, err := a.run(t, e, br, relay, resp)
				e.expectRefused(res, err, a.reason, !a.anonymous)
			})
		}
	})
}

func TestSAMLMetadataAndManualIdP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		xml, err := e.svc.SPMetadata(context.Background(), e.site.ID)
		if err != nil {
			t.Fatal(err)
		}
		sp := e.svc.SP(e.site.ID)
		for _, want := range []string{sp.EntityID, sp.ACSURL, "X509Certificate", saml.HTTPPostBinding} {
			if !strings.Contains(string(xml), want) {
				t.Errorf("SP metadata lacks %q", want)
			}
		}
		// The same IdP entered by hand (entity ID, SSO URL, certificate)
		// signs in too.
		manual := e.mustIdP(models.IdentityProviderInput{Name: sp_("By hand"), Protocol: sp_("saml"), SAML: &models.SAMLInput{
			EntityID: sp_(e.saml.EntityID()), SSOURL: sp_(e.saml.SSOURL()), Certificate: sp_(e.saml.CertificateBase64())}})
		e.samlID = manual.ID
		br := &browser{}
		relay, resp := e.beginSAML(br, bob)
		if _, err := e.finishSAML(br, relay, resp); err != nil {
			t.Fatalf("sign-in through the hand-entered IdP: %v", err)
		}
	})
}

func sp_(s string) *string { return &s }
