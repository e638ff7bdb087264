package provisioning_test

import (
	"slices"
	"testing"

	"idbridge/app/store/storetest"
)

// TestServerRootSearchAcrossResourceTypes: POST /.search at the root
// (RFC 7644 3.4.3) applies its filter to users and to groups, and a type
// that lacks an attribute the filter compares treats it as absent
// (3.4.2.1): userName finds users and no groups, members finds groups and
// no users; an attribute neither has is still 400 invalidFilter. Paging
// and totalResults count both types.
func TestServerRootSearchAcrossResourceTypes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env := newSCIMEnv(t, b)
		s := env.newSite()
		bob := s.createUser("bob@example.com")
		carol := s.createUser("carol@example.com", map[string]any{"displayName": "Shared Name",
			"emails": []any{map[string]any{"value": "carol@example.com", "type": "work", "primary": true}}})
		admins := s.createGroup("admins", bob)
		staff := s.createGroup("staff", bob, carol)
		shared := s.createGroup("Shared Name")
		search := func(body map[string]any) *resp {
			t.Helper()
			body["schemas"] = []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}
			return s.do("POST", "/.search", body).want(200)
		}
		for _, c := range []struct {
			name, filter string
			want         []string
		}{
			{"user-only attribute", `userName eq "bob@example.com"`, []string{bob}},
			{"user-only attribute, URN-qualified", `urn:ietf:params:scim:schemas:core:2.0:User:userName eq "BOB@example.com"`, []string{bob}},
			{"user-only value path", `emails[type eq "work" and value eq "carol@example.com"]`, []string{carol}},
			{"group-only attribute", `members eq "` + bob + `"`, []string{admins, staff}},
			{"group-only value path", `members[value eq "` + carol + `"]`, []string{staff}},
			{"shared attribute", `displayName eq "Shared Name"`, []string{carol, shared}},
			{"group's displayName, URN-qualified", `urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Shared Name"`, []string{shared}},
			{"one term for each type", `userName eq "carol@example.com" or members eq "` + carol + `"`, []string{carol, staff}},
			{"ne of a user-only attribute is true of every group", `userName ne "bob@example.com"`, []string{carol, admins, staff, shared}},
			{"nothing matches", `userName eq "nobody@example.com"`, nil},
		} {
			r := search(map[string]any{"filter": c.filter})
			if d := r.diff(fields{"totalResults": len(c.want), "startIndex": 1, "itemsPerPage": len(c.want)}); d != "" {
				t.Errorf("%s: %s (-want +got):\n%s", c.name, c.filter, d)
			}
			if got := r.ids(); !slices.Equal(got, c.want) {
				t.Errorf("%s: %s found %v, want %v", c.name, c.filter, got, c.want)
			}
		}

		// An attribute neither type has: 400 invalidFilter, as a SCIM error.
		for _, f := range []string{`nickName2 eq "x"`, `userName eq "bob@example.com" or nope eq "x"`, `members eq "x" and name.nope eq "y"`} {
			r := s.do("POST", "/.search", map[string]any{"filter": f}).wantError(400, "invalidFilter")
			if d := r.diff(fields{"schemas.0": "urn:ietf:params:scim:api:messages:2.0:Error", "status": "400", "Resources": nil}); d != "" {
				t.Errorf("%s (-want +got):\n%s", f, d)
			}
		}
		// A bad comparison of an attribute one type has is still refused.
		s.do("POST", "/.search", map[string]any{"filter": `members eq "x" and active eq "maybe"`}).wantError(400, "invalidFilter")
		// The typed searches keep refusing the other type's attributes.
		s.do("POST", "/Groups/.search", map[string]any{"filter": `userName eq "bob@example.com"`}).wantError(400, "invalidFilter")
		s.do("POST", "/Users/.search", map[string]any{"filter": `members eq "x"`}).wantError(400, "invalidFilter")

		// Paging: users first, then groups; totalResults counts every match
		// of both, whichever page.
		both := `userName ew "@example.com" or displayName pr`
		wantAll := []string{bob, carol, admins, staff, shared}
		var paged []string
		for start := 1; start <= len(wantAll); start += 2 {
			r := search(map[string]any{"filter": both, "startIndex": start, "count": 2})
			n := min(2, len(wantAll)-start+1)
			if d := r.diff(fields{"totalResults": len(wantAll), "startIndex": start, "itemsPerPage": n}); d != "" {
				t.Errorf("page at %d (-want +got):\n%s", start, d)
			}
			paged = append(paged, r.ids()...)
		}
		if !slices.Equal(paged, wantAll) {
			t.Errorf("pages %v, want %v", paged, wantAll)
		}
		r := search(map[string]any{"filter": both, "count": 0})
		if d := r.diff(fields{"totalResults": len(wantAll), "itemsPerPage": 0}); d != "" || len(r.ids()) != 0 {
			t.Errorf("count 0 (-want +got):\n%s %s", d, r.Raw)
		}
		// A type that can match nothing is skipped without moving the page:
		// the second group is the second match.
		r = search(map[string]any{"filter": `members eq "` + bob + `"`, "startIndex": 2, "count": 1})
		if d := r.diff(fields{"totalResults": 2, "startIndex": 2, "itemsPerPage": 1, "Resources.0.id": staff}); d != "" {
			t.Errorf("group-only filter, second page (-want +got):\n%s", d)
		}
		r = search(map[string]any{"filter": `userName ew "@example.com"`, "startIndex": 2, "count": 5})
		if d := r.diff(fields{"totalResults": 2, "itemsPerPage": 1, "Resources.0.id": carol}); d != "" {
			t.Errorf("user-only filter, second page (-want +got):\n%s", d)
		}
	})
}
