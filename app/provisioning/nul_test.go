package provisioning_test

import (
	"testing"

	"idbridge/app/store/storetest"
)

// The NUL character, which PostgreSQL's text cannot hold, is a 400 in a
// filter, a resource body or a PATCH, on both dialects, and never a 500;
// a literal backslash-u0000 text is an ordinary value.
func TestServerRefusesNUL(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newSCIMEnv(t, b)
		s := e.newSite()
		id := s.createUser("alice")
		for _, f := range []string{`userName eq "a\u0000b"`, "userName eq \"a\x00b\"", `displayName eq "a\u0000b"`} {
			s.do("GET", "/Users?filter="+q(f), nil).wantError(400, "invalidFilter")
		}
		s.do("POST", "/Users", map[string]any{"userName": "x\u0000y"}).wantError(400, "invalidValue")
		s.do("PUT", "/Users/"+id, map[string]any{"userName": "alice", "displayName": "a\u0000"}).wantError(400, "invalidValue")
		s.do("PATCH", "/Users/"+id, map[string]any{
			"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
			"Operations": []any{map[string]any{"op": "replace", "path": "displayName", "value": "a\u0000"}},
		}).wantError(400, "invalidValue")
		s.do("POST", "/Users", map[string]any{"userName": `back\u0000slash`}).want(201)
		if r := s.do("GET", "/Users?filter="+q(`userName eq "back\\u0000slash"`), nil).want(200); r.num("totalResults") != 1 {
			t.Errorf("a literal backslash-u0000 userName is not found: %v", r.Body)
		}
	})
}
