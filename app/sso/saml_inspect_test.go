package sso

import (
	"fmt"
	"strings"
	"testing"
)

// response is a SAML response shell: the root's extra attributes, then body.
func response(rootAttrs, body string) []byte {
	return []byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" InResponseTo="id-1"` + rootAttrs + `>` + body + `</samlp:Response>`)
}

// TestInspectResponseResolvesNamespacesInScope checks the walk's own
// namespace resolution against what etree would answer: prefixes declared
// on the root or on the element, default namespaces, redeclarations.
func TestInspectResponseResolvesNamespacesInScope(t *testing.T) {
	const as = `urn:oasis:names:tc:SAML:2.0:assertion`
	for _, tc := range []struct {
		name, attrs, body, want string // want: refusal reason, "" for none
	}{
		{"prefix declared on the root", ` xmlns:saml="` + as + `"`, `<saml:Assertion><saml:Subject><saml:NameID>a@b.example</saml:NameID></saml:Subject></saml:Assertion>`, ""},
		{"prefix declared on the assertion", ``, `<a:Assertion xmlns:a="` + as + `"><a:Subject><a:NameID>a@b.example</a:NameID></a:Subject></a:Assertion>`, ""},
		{"default namespace on the assertion", ``, `<Assertion xmlns="` + as + `"><Subject><NameID>a@b.example<!---->.evil.example</NameID></Subject></Assertion>`, "saml_nameid_comment"},
		{"comment in a NameID under a root prefix", ` xmlns:saml="` + as + `"`, `<saml:Assertion><saml:Subject><saml:NameID>a@b.example<!---->.evil.example</saml:NameID></saml:Subject></saml:Assertion>`, "saml_nameid_comment"},
		{"a prefix redeclared below hides the assertion namespace", ` xmlns:saml="` + as + `"`, `<saml:Assertion><x xmlns:saml="urn:other"><saml:NameID>a<!---->b</saml:NameID></x></saml:Assertion>`, ""},
		{"the default namespace redeclared below", ``, `<Assertion xmlns="` + as + `"><x xmlns="urn:other"><NameID>a<!---->b</NameID></x></Assertion>`, ""},
		{"of two declarations of a prefix the last counts, as in etree", ``, `<a:Assertion xmlns:a="` + as + `" xmlns:a="urn:other"></a:Assertion>`, "saml_malformed"},
		{"an assertion below another element", ` xmlns:saml="` + as + `"`, `<x><saml:Assertion></saml:Assertion></x><saml:Assertion></saml:Assertion>`, "saml_wrapping"},
		{"an encrypted assertion", ` xmlns:saml="` + as + `"`, `<saml:EncryptedAssertion></saml:EncryptedAssertion>`, "saml_encrypted"},
		{"an assertion of another namespace is none", ` xmlns:saml="urn:other"`, `<saml:Assertion></saml:Assertion>`, "saml_malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if r := inspectResponse(response(tc.attrs, tc.body)); r != nil {
				got = r.reason
			}
			if got != tc.want {
				t.Fatalf("refusal %q, want %q", got, tc.want)
			}
		})
	}
}

// TestInspectResponseBoundsItsWork: a wide document with thousands of
// namespace declarations made the walk quadratic (etree's NamespaceURI
// scans every ancestor's attributes on each call: 0.6 s of CPU for one
// anonymous 230 KB post). The walk now resolves namespaces in scope, and
// answers beyond what a real response holds are refused before any
// library reads them.
func TestInspectResponseBoundsItsWork(t *testing.T) {
	const as = ` xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"`
	assertion := `<saml:Assertion></saml:Assertion>`
	decls := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, ` xmlns:p%d="urn:x"`, i)
		}
		return b.String()
	}
	leaves := func(n int) string { return strings.Repeat("<a/>", n) }
	for _, tc := range []struct {
		name  string
		raw   []byte
		want  string
		under int // the document must fit the posted size limit
	}{
		{"the most declarations", response(as+decls(maxSAMLNamespaceDeclarations-2), assertion+leaves(maxSAMLElements-2)), "", MaxSAMLResponseBytes},
		{"one declaration too many", response(as+decls(maxSAMLNamespaceDeclarations-1), assertion), "saml_malformed", MaxSAMLResponseBytes},
		{"6,000 declarations on the root", response(as+decls(6000), assertion+leaves(2000)), "saml_malformed", MaxSAMLResponseBytes},
		{"declarations on an inner element count too", response(as, assertion+`<x`+decls(maxSAMLNamespaceDeclarations)+`/>`), "saml_malformed", MaxSAMLResponseBytes},
		{"one element too many", response(as, assertion+leaves(maxSAMLElements-1)), "saml_too_large", MaxSAMLResponseBytes},
		{"markup for more elements than allowed, refused before parsing", response(as, assertion+leaves(2*maxSAMLElements+16)), "saml_too_large", MaxSAMLResponseBytes},
		{"the reviewer's document (6,000 declarations, 18,000 elements): its markup alone", response(as+decls(6000), assertion+leaves(18000)), "saml_too_large", MaxSAMLResponseBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := (len(tc.raw) + 2) / 3 * 4; n > tc.under {
				t.Fatalf("test document is %d bytes in base64, over the %d a post may carry", n, tc.under)
			}
			got := ""
			if r := inspectResponse(tc.raw); r != nil {
				got = r.reason
			}
			if got != tc.want {
				t.Fatalf("refusal %q, want %q", got, tc.want)
			}
		})
	}
}
