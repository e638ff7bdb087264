package scim

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAttributeList(t *testing.T) {
	if d := cmp.Diff([]string{"userName", "name.givenName", "urn:x:y"}, ParseAttributeList(" userName, name.givenName ,,urn:x:y,")); d != "" {
		t.Error(d)
	}
	if ParseAttributeList("") != nil {
		t.Error("empty list not nil")
	}
}

// "attributes and excludedAttributes are honoured on every GET, list and
// search (Entra always sends excludedAttributes=members on groups). id and
// schemas are always returned; password never."
func TestProjectAttributesAndExcluded(t *testing.T) {
	user := jsonDoc(t, barbara)
	user["password"] = "must never show"
	user["favouriteColour"] = "teal"
	tests := []struct {
		name               string
		attributes, exclud []string
		want               string
	}{
		{"attributes userName", []string{"userName"}, nil,
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id":"2819c223-7f76-453a-919d-413861904646","userName":"bjensen@example.com"}`},
		{"sub-attributes, case-insensitive", []string{"NAME.givenname", "emails.VALUE", "meta.lastModified"}, nil,
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id":"2819c223-7f76-453a-919d-413861904646","name":{"givenName":"Barbara"},
			  "emails":[{"value":"bjensen@example.com"},{"value":"babs@jensen.org"}],"meta":{"lastModified":"2011-05-13T04:42:34Z"}}`},
		{"urn-qualified", []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "urn:ietf:params:scim:schemas:core:2.0:User:displayName"}, nil,
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id":"2819c223-7f76-453a-919d-413861904646","displayName":"Babs Jensen",
			  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"26118915-6090-4610-87e4-49d8ca9f808d"}}}`},
		{"whole extension", []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}, nil,
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id":"2819c223-7f76-453a-919d-413861904646",
			  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984","department":"Tour Operations",
			    "manager":{"value":"26118915-6090-4610-87e4-49d8ca9f808d"}}}`},
		{"password and id asked for", []string{"password", "id", "favouriteColour"}, nil,
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id":"2819c223-7f76-453a-919d-413861904646","favouriteColour":"teal"}`},
		{"unknown names ignored", []string{"nope", "name.nope", "userName"}, nil,
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id":"2819c223-7f76-453a-919d-413861904646","userName":"bjensen@example.com"}`},
		{"excluded", nil, []string{"emails", "name.familyName", "meta", "id", "schemas",
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "favouriteColour"},
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id":"2819c223-7f76-453a-919d-413861904646","externalId":"BJ-701984","userName":"bjensen@example.com",
			  "name":{"givenName":"Barbara"},"displayName":"Babs Jensen","title":"Tour Guide","active":true,
			  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984","department":"Tour Operations"}}`},
		{"excluded whole extension", nil, []string{"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER", "emails", "meta", "name", "favouriteColour"},
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id":"2819c223-7f76-453a-919d-413861904646","externalId":"BJ-701984","userName":"bjensen@example.com",
			  "displayName":"Babs Jensen","title":"Tour Guide","active":true}`},
		{"attributes win over excluded", []string{"userName"}, []string{"userName"},
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id":"2819c223-7f76-453a-919d-413861904646","userName":"bjensen@example.com"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := deepCopyMap(user)
			got := Project(Users, user, tt.attributes, tt.exclud)
			if d := cmp.Diff(jsonDoc(t, tt.want), got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if d := cmp.Diff(before, user); d != "" {
				t.Errorf("input modified:\n%s", d)
			}
		})
	}
	all := Project(Users, user, nil, nil)
	if _, ok := all["password"]; ok {
		t.Error("password returned by default")
	}
	if all["favouriteColour"] != "teal" || all["emails"] == nil {
		t.Errorf("default projection lost attributes: %v", all)
	}
}

func TestProjectEntraExcludesMembers(t *testing.T) {
	group := jsonDoc(t, ops)
	got := Project(Groups, group, nil, ParseAttributeList("members"))
	want := jsonDoc(t, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"g1","displayName":"Ops","meta":{"resourceType":"Group"}}`)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	got = Project(Groups, group, ParseAttributeList("members.value,displayName"), nil)
	want = jsonDoc(t, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"g1","displayName":"Ops","members":[{"value":"u1"},{"value":"u2"}]}`)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
