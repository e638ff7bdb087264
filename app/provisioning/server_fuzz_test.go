package provisioning_test

// Fuzz targets over the HTTP handlers (go test -fuzz=FuzzServer…): whatever
// an identity provider sends as a filter, a PATCH path or a PATCH body, the
// answer is a SCIM 2xx or 4xx, never a panic or a 500. They run on SQLite;
// without -fuzz they run their seeds as ordinary tests.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"idbridge/app/store/storetest"
)

func fuzzSite(f *testing.F) (*scimSite, string, string) {
	f.Helper()
	env := newSCIMEnv(f, storetest.Backends(f)[0])
	s := env.newSite()
	u := s.createUser("fuzz@example.com", map[string]any{"title": "T",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"employeeNumber": "1", "manager": map[string]any{"value": "m"}}})
	g := s.createGroup("fuzz-group", u)
	return s, u, g
}

// raw sends a request without the harness's checks, which fail the fuzz
// target on their own terms; checkAnswer applies the fuzz property.
func (s *scimSite) raw(method, target string, body []byte) *resp {
	return s.env.request(method, target, body, "Authorization: Bearer "+s.token)
}

func checkAnswer(t *testing.T, what string, r *resp, allowed ...int) {
	t.Helper()
	if r.Code >= 500 {
		t.Fatalf("%s: %d %s", what, r.Code, r.Raw)
	}
	for _, a := range allowed {
		if r.Code == a {
			return
		}
	}
	t.Fatalf("%s: unexpected status %d %s", what, r.Code, r.Raw)
}

var filterSeeds = []string{
	`userName eq "bjensen"`, `userName Eq "x" and not (active eq false)`, `emails[type eq "work"].value eq "x"`,
	`externalId eq jyoung`, `emails[type eq "work" and value co "@x"] or title pr`, `members[value eq "x"]`,
	`meta.lastModified gt "2011-05-13T04:42:34Z"`, `name.givenName sw "\"\\u00e9"`, `((((userName pr))))`,
	`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"`, `groups[display co "a"]`,
	`userName eq`, `[`, `"`, `not`, `emails[`, `id eq 1e999`, `active eq "True"`, `title gt 5`, `a.b.c.d eq 1`,
}

func FuzzServerFilter(f *testing.F) {
	s, _, _ := fuzzSite(f)
	for _, seed := range filterSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		s.env.t = t
		for _, p := range []string{"/Users", "/Groups"} {
			r := s.raw("GET", s.base+p+"?filter="+url.QueryEscape(filter)+"&sortBy=userName", nil)
			checkAnswer(t, "GET "+p+" filter "+filter, r, http.StatusOK, http.StatusBadRequest)
		}
		body, _ := json.Marshal(map[string]any{"filter": filter, "attributes": []string{filter}})
		r := s.raw("POST", s.base+"/.search", body)
		checkAnswer(t, ".search filter "+filter, r, http.StatusOK, http.StatusBadRequest)
	})
}

func FuzzServerPatchPath(f *testing.F) {
	s, u, g := fuzzSite(f)
	for _, seed := range []string{"active", "name.givenName", `emails[type eq "work"].value`, `members[value eq "x"]`,
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
		"id", "meta.version", `emails[type eq "work"`, "members", "a.b.c", "", "[", `x[y eq "z"].w`, "members.display"} {
		f.Add(seed, `"v"`)
		f.Add(seed, `{"value":"x"}`)
	}
	f.Fuzz(func(t *testing.T, path, value string) {
		s.env.t = t
		if !json.Valid([]byte(value)) {
			value = `"` + value + `"`
			if !json.Valid([]byte(value)) {
				value = "null"
			}
		}
		for _, op := range []string{"add", "replace", "remove"} {
			pathJSON, _ := json.Marshal(path)
			body := []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"` + op + `","path":` + string(pathJSON) + `,"value":` + value + `}]}`)
			r := s.raw("PATCH", s.base+"/Users/"+u, body)
			checkAnswer(t, op+" "+path+" on a user", r, http.StatusOK, http.StatusBadRequest, http.StatusConflict)
			r = s.raw("PATCH", s.base+"/Groups/"+g, body)
			checkAnswer(t, op+" "+path+" on a group", r, http.StatusNoContent, http.StatusBadRequest, http.StatusConflict)
		}
	})
}

func FuzzServerPatchBody(f *testing.F) {
	s, u, g := fuzzSite(f)
	for _, seed := range []string{
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`,
		`{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
		`{"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"x"}]}]}`,
		`{"Operations":[{"op":"remove","path":"members","value":[{"value":"x"}]}]}`,
		`{"Operations":[{"op":"replace","value":{"id":"x","displayName":"n","name.givenName":"g","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"d"}}]}`,
		`{"Operations":[]}`, `{"Operations":[{"op":"remove"}]}`, `{"Operations":[{"op":"move","path":"x"}]}`,
		`{"Operations":[{"op":"add","value":[1,2]}]}`, `[]`, `null`, `{`, `{"Operations":null}`, `{"Operations":[null]}`,
		`{"Operations":[{"op":"replace","path":"members","value":"x"}]}`, `{"Operations":[{"op":"add","value":{"members":[{"value":"` + u + `"}]}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s.env.t = t
		r := s.raw("PATCH", s.base+"/Users/"+u, body)
		checkAnswer(t, "PATCH user "+string(body), r, http.StatusOK, http.StatusBadRequest, http.StatusConflict)
		r = s.raw("PATCH", s.base+"/Groups/"+g, body)
		checkAnswer(t, "PATCH group "+string(body), r, http.StatusNoContent, http.StatusBadRequest, http.StatusConflict)
		r = s.raw("PUT", s.base+"/Users/"+u, body)
		checkAnswer(t, "PUT user "+string(body), r, http.StatusOK, http.StatusBadRequest, http.StatusConflict)
		r = s.raw("POST", s.base+"/Groups", body)
		checkAnswer(t, "POST group "+string(body), r, http.StatusCreated, http.StatusBadRequest, http.StatusConflict)
	})
}
