package provisioning_test

import (
	"fmt"
	"strings"
	"testing"

	"idbridge/app/scim"
	"idbridge/app/store/storetest"
)

// wantLimit fails unless the answer is a 400 of scimType whose detail
// names the number of the limit.
func (r *resp) wantLimit(scimType string, limit int) *resp {
	r.t.Helper()
	r.wantError(400, scimType)
	if d := r.str("detail"); !strings.Contains(d, fmt.Sprint(limit)) {
		r.t.Fatalf("detail %q does not name the limit %d", d, limit)
	}
	return r
}

func patchBody(ops ...map[string]any) map[string]any {
	list := make([]any, len(ops))
	for i, op := range ops {
		list[i] = op
	}
	return map[string]any{"schemas": []string{scim.PatchOpSchema}, "Operations": list}
}

// nested returns a JSON object nested depth levels deep.
func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `{"a":1}` + strings.Repeat("}", depth-1)
}

// Work per request is bounded: PATCH operations, attributes per resource,
// values per multi-valued attribute, members per request, nesting, string
// lengths (indexed ones shorter, below PostgreSQL's btree row limit),
// numbers both databases hold. Each limit is a 400 naming it, the request
// at the limit succeeds, and the reproductions (a 25,000 operation
// PATCH on 30,000 attributes, a user nested 2,100 deep, a 2,700 character
// userName, 1e1000000) are refused at the boundary the same on both
// databases, leaving nothing stored.
func TestServerWorkPerRequestIsBounded(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newSCIMEnv(t, b)
		s := e.newSite()
		uid := s.createUser("alice")
		before := len(s.outbox())

		// PATCH operations.
		ops := func(n int) map[string]any {
			list := make([]map[string]any, n)
			for i := range list {
				list[i] = map[string]any{"op": "add", "path": fmt.Sprintf("x%d", i%50), "value": "v"}
			}
			return patchBody(list...)
		}
		s.do("PATCH", "/Users/"+uid, ops(scim.MaxPatchOperations+1)).wantLimit("invalidValue", scim.MaxPatchOperations)
		// The 25,000 operations pass no list of a body.
		s.do("PATCH", "/Users/"+uid, ops(25000)).wantLimit("invalidValue", scim.MaxMembers)
		s.do("PATCH", "/Users/"+uid, ops(scim.MaxPatchOperations)).want(200)

		// Attributes per resource: in a body, and grown by PATCH.
		attrs := func(n int) map[string]any {
			m := map[string]any{"userName": fmt.Sprintf("many%d", n)}
			for i := range n {
				m[fmt.Sprintf("custom%05d", i)] = "v"
			}
			return m
		}
		s.do("POST", "/Users", attrs(30000)).wantLimit("invalidValue", scim.MaxAttributes)
		s.do("POST", "/Users", attrs(scim.MaxAttributes)).wantLimit("invalidValue", scim.MaxAttributes)
		big := s.do("POST", "/Users", attrs(scim.MaxAttributes-10)).want(201).str("id")
		grow := make([]map[string]any, 20)
		for i := range grow {
			grow[i] = map[string]any{"op": "add", "path": fmt.Sprintf("more%d", i), "value": "v"}
		}
		s.do("PATCH", "/Users/"+big, patchBody(grow...)).wantLimit("invalidValue", scim.MaxAttributes)

		// Values per multi-valued attribute, and members per request.
		emails := func(n int) []any {
			list := make([]any, n)
			for i := range list {
				list[i] = map[string]any{"value": fmt.Sprintf("a%d@example.com", i)}
			}
			return list
		}
		s.do("POST", "/Users", map[string]any{"userName": "mails", "emails": emails(scim.MaxValues + 1)}).wantLimit("invalidValue", scim.MaxValues)
		s.do("PATCH", "/Users/"+uid, patchBody(map[string]any{"op": "add", "path": "emails", "value": emails(scim.MaxValues + 1)})).
			wantLimit("invalidValue", scim.MaxValues)
		s.do("POST", "/Users", map[string]any{"userName": "mails", "emails": emails(scim.MaxValues)}).want(201)
		members := make([]any, scim.MaxMembers+1)
		for i := range members {
			members[i] = map[string]any{"value": uid}
		}
		s.do("POST", "/Groups", map[string]any{"displayName": "huge", "members": members}).wantLimit("invalidValue", scim.MaxMembers)

		// Nesting: 2,100 deep broke SQLite's JSON functions for the site.
		for _, depth := range []int{2100, scim.MaxDepth + 1} {
			s.do("POST", "/Users", `{"userName":"deep","x":`+nested(depth)+`}`).wantLimit("invalidValue", scim.MaxDepth)
		}
		s.do("POST", "/Users", `{"userName":"deep","x":`+nested(scim.MaxDepth-1)+`}`).want(201)
		s.do("PATCH", "/Users/"+uid, `{"Operations":[{"op":"add","path":"x","value":`+nested(scim.MaxDepth-3)+`}]}`).want(200)
		s.do("PATCH", "/Users/"+uid, patchBody(map[string]any{"op": "add", "value": map[string]any{"x.y": "z"}})).want(200)
		// Filters on stored attributes still answer after the deepest
		// accepted documents.
		s.do("GET", "/Users?filter="+q(`title pr or nickName eq "x" or emails[value co "a"]`), nil).want(200)

		// Indexed strings: below what the indexes take (PostgreSQL's btree
		// refused a 2,700 character userName with a 500).
		long := strings.Repeat("é", scim.MaxIndexedBytes/2+1)
		s.do("POST", "/Users", map[string]any{"userName": strings.Repeat("u", 2700)}).wantLimit("invalidValue", scim.MaxIndexedBytes)
		s.do("POST", "/Users", map[string]any{"userName": long}).wantLimit("invalidValue", scim.MaxIndexedBytes)
		s.do("POST", "/Users", map[string]any{"userName": "ext", "externalId": long}).wantLimit("invalidValue", scim.MaxIndexedBytes)
		s.do("POST", "/Users", map[string]any{"userName": "disp", "displayName": long}).wantLimit("invalidValue", scim.MaxIndexedBytes)
		s.do("POST", "/Groups", map[string]any{"displayName": long}).wantLimit("invalidValue", scim.MaxIndexedBytes)
		s.do("PATCH", "/Users/"+uid, patchBody(map[string]any{"op": "replace", "path": "userName", "value": long})).wantLimit("invalidValue", scim.MaxIndexedBytes)
		atLimit := strings.Repeat("ü", scim.MaxIndexedBytes/2)
		s.do("POST", "/Users", map[string]any{"userName": atLimit, "externalId": atLimit, "displayName": atLimit}).want(201)
		s.do("POST", "/Groups", map[string]any{"displayName": atLimit}).want(201)
		s.do("GET", "/Users?filter="+q(`userName eq "`+atLimit+`"`), nil).want(200)

		// Any other string: a 1 MB userName took the process to 682 MB.
		s.do("POST", "/Users", map[string]any{"userName": "s", "title": strings.Repeat("t", scim.MaxStringBytes+1)}).wantLimit("invalidValue", scim.MaxStringBytes)
		s.do("POST", "/Users", map[string]any{"userName": strings.Repeat("u", 1<<20)}).wantLimit("invalidValue", scim.MaxStringBytes)
		s.do("POST", "/Users", map[string]any{"userName": "k", strings.Repeat("k", scim.MaxKeyBytes+1): "v"}).wantLimit("invalidValue", scim.MaxKeyBytes)

		// Numbers JSON and PostgreSQL's jsonb both hold: 1e1000000 used to
		// make the site's later filters on PostgreSQL answer 500.
		for _, n := range []string{"1e1000000", "-1e309", "1" + strings.Repeat("0", 400)} {
			s.do("POST", "/Users", `{"userName":"num","score":`+n+`}`).wantError(400, "invalidValue")
			s.do("PATCH", "/Users/"+uid, `{"Operations":[{"op":"add","path":"score","value":`+n+`}]}`).wantError(400, "invalidValue")
		}
		s.do("POST", "/Users", `{"userName":"num","score":1e308,"tiny":1e-400,"n":[-0.5,12345678901234567890]}`).want(201)
		s.do("GET", "/Users?filter="+q(`title pr or emails[type eq "work"] or nickName sw "n"`), nil).want(200)

		// Nothing refused was stored, and no outbox item was written for it.
		if r := s.do("GET", "/Users?count=0&filter="+q(`userName eq "many30000" or userName eq "deep" or userName eq "huge"`), nil).want(200); r.num("totalResults") != 1 {
			t.Errorf("refused users were stored: %s", r.Raw)
		}
		want := before + 1 /* 2,000 ops */ + 1 /* many1990 */ + 1 /* mails */ + 1 /* deep */ + 2 /* deep PATCHes */ + 2 /* at limit */ + 1 /* num */
		if n := len(s.outbox()); n != want {
			t.Errorf("%d outbox items, want %d", n, want)
		}
	})
}

// Filter cost is bounded: at most MaxFilterTerms comparisons, of which at
// most MaxMultiValuedTerms over multi-valued attributes (64 value paths
// over users with thousands of emails cost 10 s per request before). The
// filters identity providers send are far inside.
func TestServerFilterCostIsBounded(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newSCIMEnv(t, b)
		s := e.newSite()
		s.createUser("alice")
		vps := func(n int) string {
			parts := make([]string, n)
			for i := range parts {
				parts[i] = fmt.Sprintf(`emails[value co "%d"]`, i)
			}
			return strings.Join(parts, " or ")
		}
		s.do("GET", "/Users?filter="+q(vps(64)), nil).wantLimit("invalidFilter", scim.MaxMultiValuedTerms)
		s.do("GET", "/Users?filter="+q(vps(scim.MaxMultiValuedTerms+1)), nil).wantLimit("invalidFilter", scim.MaxMultiValuedTerms)
		s.do("POST", "/Users/.search", map[string]any{"filter": vps(scim.MaxMultiValuedTerms + 1)}).wantLimit("invalidFilter", scim.MaxMultiValuedTerms)
		mv := make([]string, scim.MaxMultiValuedTerms+1)
		for i := range mv {
			mv[i] = fmt.Sprintf(`emails.value eq "%d"`, i)
		}
		s.do("GET", "/Users?filter="+q(strings.Join(mv, " or ")), nil).wantLimit("invalidFilter", scim.MaxMultiValuedTerms)
		s.do("GET", "/Groups?filter="+q(strings.Replace(strings.Join(mv, " or "), "emails.value", "members.value", -1)), nil).
			wantLimit("invalidFilter", scim.MaxMultiValuedTerms)
		terms := make([]string, scim.MaxFilterTerms+1)
		for i := range terms {
			terms[i] = fmt.Sprintf(`title eq "%d"`, i)
		}
		s.do("GET", "/Users?filter="+q(strings.Join(terms, " or ")), nil).wantLimit("invalidFilter", scim.MaxFilterTerms)
		s.do("GET", "/Users?filter="+q(strings.Join(terms[:scim.MaxFilterTerms], " or ")), nil).want(200)
		s.do("GET", "/Users?filter="+q(vps(scim.MaxMultiValuedTerms)), nil).want(200)
		// attributes and excludedAttributes are applied to every resource:
		// bounded too.
		many := make([]string, scim.MaxProjectionAttributes+1)
		for i := range many {
			many[i] = fmt.Sprintf("a%d", i)
		}
		s.do("GET", "/Users?attributes="+strings.Join(many, ","), nil).wantLimit("invalidValue", scim.MaxProjectionAttributes)
		s.do("GET", "/Groups?excludedAttributes="+strings.Join(many, ","), nil).wantLimit("invalidValue", scim.MaxProjectionAttributes)
		s.do("POST", "/.search", map[string]any{"attributes": many}).wantLimit("invalidValue", scim.MaxProjectionAttributes)
		s.do("POST", "/Users?attributes="+strings.Join(many, ","), map[string]any{"userName": "p"}).wantLimit("invalidValue", scim.MaxProjectionAttributes)
		s.do("GET", "/Users?attributes="+strings.Join(many[:scim.MaxProjectionAttributes], ","), nil).want(200)
		// What Entra and Okta send.
		for _, f := range []string{`userName eq "alice"`, `emails[type eq "work"].value eq "alice@example.com"`,
			`externalId eq "x" and emails[type eq "work" and primary eq true]`} {
			s.do("GET", "/Users?filter="+q(f), nil).want(200)
		}
	})
}
