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
	// nested wraps body in depth elements that each declare n namespaces.
	nested := func(depth, n int, body string) string {
		open, end := "", ""
		for d := range depth {
			open += fmt.Sprintf(`<x%d`, d) + strings.ReplaceAll(decls(n), "xmlns:p", fmt.Sprintf("xmlns:d%dp", d)) + `>`
			end = fmt.Sprintf(`</x%d>`, d) + end
		}
		return open + body + end
	}
	for _, tc := range []struct {
		name  string
		raw   []byte
		want  string
		under int // the document must fit the posted size limit
	}{
		{"the most declarations on one element", response(as+decls(maxSAMLElementDeclarations-2), assertion+leaves(maxSAMLElements-2)), "", MaxSAMLResponseBytes},
		{"one declaration too many on one element", response(as+decls(maxSAMLElementDeclarations-1), assertion), "saml_malformed", MaxSAMLResponseBytes},
		{"the most declarations in scope", response(as, assertion+nested(4, 15, "<a/>")+`<y`+decls(2)+`/>`), "", MaxSAMLResponseBytes},
		{"one declaration too many in scope", response(as, assertion+nested(4, 15, `<y`+decls(3)+`/>`)), "saml_malformed", MaxSAMLResponseBytes},
		{"16 declarations on each of 200 elements, side by side", response(as, assertion+strings.Repeat(`<y`+decls(16)+`/>`, 200)), "", MaxSAMLResponseBytes},
		{"6,000 declarations on the root", response(as+decls(6000), assertion+leaves(2000)), "saml_malformed", MaxSAMLResponseBytes},
		{"one element too many", response(as, assertion+leaves(maxSAMLElements-1)), "saml_too_large", MaxSAMLResponseBytes},
		{"markup for more elements than allowed, refused before parsing", response(as, assertion+leaves(2*maxSAMLElements+16)), "saml_too_large", MaxSAMLResponseBytes},
		{"the reviewer's document (6,000 declarations, 18,000 elements): its markup alone", response(as+decls(6000), assertion+leaves(18000)), "saml_too_large", MaxSAMLResponseBytes},
		{"Okta's shape: xs and xsi on each of 1,000 attribute values", []byte(oktaShaped(1000)), "", MaxSAMLResponseBytes},
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

// oktaShaped is a response in the shape Okta sends (saml2 declared again on
// the Issuer, the Assertion and each statement; xs and xsi declared on
// every AttributeValue) for a user in groups groups.
func oktaShaped(groups int) string {
	const s2 = `xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion"`
	av := func(v string) string {
		return `<saml2:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">` + v + `</saml2:AttributeValue>`
	}
	var b strings.Builder
	for i := range groups {
		b.WriteString(av(fmt.Sprintf("group-%d", i)))
	}
	return `<saml2p:Response xmlns:saml2p="urn:oasis:names:tc:SAML:2.0:protocol" InResponseTo="id-1"><saml2:Issuer ` + s2 + `>http://www.okta.com/x</saml2:Issuer>` +
		`<saml2:Assertion ` + s2 + ` xmlns:xs="http://www.w3.org/2001/XMLSchema"><saml2:Issuer ` + s2 + `>http://www.okta.com/x</saml2:Issuer>` +
		`<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:Reference><ds:Transforms><ds:Transform><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/></ds:Transform></ds:Transforms></ds:Reference></ds:SignedInfo></ds:Signature>` +
		`<saml2:Subject ` + s2 + `><saml2:NameID>ops@example.com</saml2:NameID></saml2:Subject><saml2:Conditions ` + s2 + `/><saml2:AuthnStatement ` + s2 + `/>` +
		`<saml2:AttributeStatement ` + s2 + `><saml2:Attribute Name="email">` + av("ops@example.com") + `</saml2:Attribute><saml2:Attribute Name="groups">` + b.String() + `</saml2:Attribute></saml2:AttributeStatement></saml2:Assertion></saml2p:Response>`
}
