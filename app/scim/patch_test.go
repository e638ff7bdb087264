package scim

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"idbridge/models"
)

func applyJSON(t testing.TB, rt ResourceType, doc map[string]any, body string) (*PatchResult, error) {
	t.Helper()
	req, err := DecodePatchRequest([]byte(body))
	if err != nil {
		return nil, err
	}
	return ApplyPatch(rt, doc, req)
}

func mustPatch(t testing.TB, rt ResourceType, doc map[string]any, body string) *PatchResult {
	t.Helper()
	res, err := applyJSON(t, rt, doc, body)
	if err != nil {
		t.Fatalf("patch %s: %v", body, err)
	}
	return res
}

func wantError(t *testing.T, err error, code models.Code, scimType string) {
	t.Helper()
	e := testError(err)
	if e == nil || e.Code != code || e.SCIMType != scimType {
		t.Errorf("err = %v, want %s %s", err, code, scimType)
	}
}

// testError is the models.Error in err's chain: nil for nil, an internal
// one for an error without it.
func testError(err error) *models.Error {
	if err == nil {
		return nil
	}
	if e, ok := models.AsError(err); ok {
		return e
	}
	return &models.Error{Code: models.CodeInternal, Message: err.Error()}
}

const (
	jane = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "id": "u1",
  "userName": "jane@contoso.com",
  "name": {"givenName": "Jane", "familyName": "Doe"},
  "active": true,
  "emails": [{"value": "jane@contoso.com", "type": "work", "primary": true}],
  "meta": {"resourceType": "User", "version": "W/\"1\""}
}`
	ops = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
  "id": "g1",
  "displayName": "Ops",
  "members": [{"value": "u1", "display": "jane@contoso.com"}, {"value": "u2"}],
  "meta": {"resourceType": "Group"}
}`
)

func op(o, path string, value any) string {
	m := map[string]any{"op": o}
	if path != "" {
		m["path"] = path
	}
	if value != nil {
		m["value"] = value
	}
	b, _ := json.Marshal(map[string]any{"schemas": []string{PatchOpSchema}, "Operations": []any{m}})
	return string(b)
}

// "op is matched case-insensitively (Entra sends Add, Replace, Remove)."
func TestPatchOpCaseInsensitive(t *testing.T) {
	for _, o := range []string{"Replace", "REPLACE", "replace", " Replace "} {
		res := mustPatch(t, Users, jsonDoc(t, jane), op(o, "displayName", "Jane D"))
		if res.Resource["displayName"] != "Jane D" {
			t.Errorf("op %q: displayName = %v", o, res.Resource["displayName"])
		}
	}
	res := mustPatch(t, Users, jsonDoc(t, jane), op("Add", "nickName", "JD"))
	if res.Resource["nickName"] != "JD" {
		t.Errorf("Add: %v", res.Resource)
	}
	res = mustPatch(t, Users, res.Resource, op("Remove", "nickName", nil))
	if _, ok := res.Resource["nickName"]; ok {
		t.Errorf("Remove: %v", res.Resource)
	}
	_, err := applyJSON(t, Users, jsonDoc(t, jane), op("move", "displayName", "x"))
	wantError(t, err, models.CodeInvalid, SCIMTypeInvalidSyntax)
}

// "Booleans may arrive as strings "True"/"False" (Entra without
// aadOptscim062020)."
func TestPatchBooleanStrings(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{op("Replace", "active", "False"), false},
		{op("Replace", "active", "false"), false},
		{op("Replace", "active", "True"), true},
		{op("replace", "", map[string]any{"active": "False"}), false},
	}
	for _, tt := range tests {
		res := mustPatch(t, Users, jsonDoc(t, jane), tt.body)
		if res.Resource["active"] != tt.want {
			t.Errorf("%s: active = %#v, want %v", tt.body, res.Resource["active"], tt.want)
		}
	}
	res := mustPatch(t, Users, jsonDoc(t, jane), op("Replace", `emails[type eq "work"].primary`, "False"))
	if got := res.Resource["emails"].([]any)[0].(map[string]any)["primary"]; got != false {
		t.Errorf("emails primary = %#v", got)
	}
	_, err := applyJSON(t, Users, jsonDoc(t, jane), op("Replace", "active", "maybe"))
	wantError(t, err, models.CodeInvalid, SCIMTypeInvalidValue)
}

// "Paths: simple (active), sub-attributes (name.givenName), filtered
// multi-valued (emails[type eq "work"].value, members[value eq "id"]),
// extension URNs (urn:…:enterprise:2.0:User:employeeNumber, …:manager)".
func TestPatchPathForms(t *testing.T) {
	res := mustPatch(t, Users, jsonDoc(t, jane), `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"replace","path":"active","value":false},
		{"op":"replace","path":"name.givenName","value":"Janet"},
		{"op":"replace","path":"emails[type eq \"work\"].value","value":"janet@contoso.com"},
		{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"701984"},
		{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"u9"},
		{"op":"add","path":"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:department","value":"Tours"}
	]}`)
	want := jsonDoc(t, `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "id": "u1",
  "userName": "jane@contoso.com",
  "name": {"givenName": "Janet", "familyName": "Doe"},
  "active": false,
  "emails": [{"value": "janet@contoso.com", "type": "work", "primary": true}],
  "meta": {"resourceType": "User", "version": "W/\"1\""},
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "701984", "department": "Tours", "manager": {"value": "u9"}
  }
}`)
	if d := cmp.Diff(want, res.Resource); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if !res.Changed {
		t.Error("Changed = false")
	}

	g := mustPatch(t, Groups, jsonDoc(t, ops), op("remove", `members[value eq "u1"]`, nil))
	if d := cmp.Diff([]string{"u1"}, g.MembersRemoved); d != "" || len(g.MembersAdded) != 0 {
		t.Errorf("members[value eq] remove: removed %v added %v", g.MembersRemoved, g.MembersAdded)
	}
}

// "no path at all with a value object whose keys may themselves be dotted
// ("name.givenName") or full URNs."
func TestPatchNoPathValueObject(t *testing.T) {
	res := mustPatch(t, Users, jsonDoc(t, jane), op("replace", "", map[string]any{
		"name.givenName": "Janet",
		"name":           map[string]any{"familyName": "Smith"},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":                map[string]any{"department": "Ops", "manager": map[string]any{"value": "u7"}},
		`emails[type eq "home"].value`:                                              "jane@home.example",
		"urn:ietf:params:scim:schemas:core:2.0:User:title":                          "CTO",
		"urn:ietf:params:scim:schemas:extension:custom:2.0:User":                    map[string]any{"worksiteId": "180"},
		"schemas": []any{"x"},
	}))
	want := jsonDoc(t, `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:extension:custom:2.0:User"],
  "id": "u1",
  "userName": "jane@contoso.com",
  "title": "CTO",
  "name": {"givenName": "Janet", "familyName": "Smith"},
  "active": true,
  "emails": [{"value": "jane@contoso.com", "type": "work", "primary": true}, {"type": "home", "value": "jane@home.example"}],
  "meta": {"resourceType": "User", "version": "W/\"1\""},
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "42", "department": "Ops", "manager": {"value": "u7"}},
  "urn:ietf:params:scim:schemas:extension:custom:2.0:User": {"worksiteId": "180"}
}`)
	if d := cmp.Diff(want, res.Resource); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// "remove with path: "members" and a value list removes only the listed
// members (Entra's shape). Removing all members happens only without a
// value."
func TestPatchRemoveMembersWithValueList(t *testing.T) {
	res := mustPatch(t, Groups, jsonDoc(t, ops), op("Remove", "members", []any{map[string]any{"value": "u2"}}))
	if d := cmp.Diff([]any{map[string]any{"value": "u1", "display": "jane@contoso.com"}}, res.Resource["members"]); d != "" {
		t.Errorf("members (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"u2"}, res.MembersRemoved); d != "" {
		t.Errorf("MembersRemoved (-want +got):\n%s", d)
	}
	all := mustPatch(t, Groups, jsonDoc(t, ops), op("remove", "members", nil))
	if _, ok := all.Resource["members"]; ok {
		t.Errorf("members left: %v", all.Resource["members"])
	}
	if d := cmp.Diff([]string{"u1", "u2"}, all.MembersRemoved); d != "" {
		t.Errorf("MembersRemoved (-want +got):\n%s", d)
	}
	none := mustPatch(t, Groups, jsonDoc(t, ops), op("remove", "members", []any{map[string]any{"value": "nobody"}}))
	if none.Changed || len(none.MembersRemoved) != 0 {
		t.Errorf("removing a non-member changed the group: %+v", none)
	}
}

// "replace with path: "members" replaces the whole list (Okta full push)."
func TestPatchReplaceMembersReplacesList(t *testing.T) {
	res := mustPatch(t, Groups, jsonDoc(t, ops), op("replace", "members", []any{
		map[string]any{"value": "u2"}, map[string]any{"value": "u3", "display": "c@x"}, map[string]any{"value": "u3"},
	}))
	want := []any{map[string]any{"value": "u2"}, map[string]any{"value": "u3", "display": "c@x"}}
	if d := cmp.Diff(want, res.Resource["members"]); d != "" {
		t.Errorf("members (-want +got):\n%s", d)
	}
	if !res.MembersReplaced || !cmp.Equal([]string{"u3"}, res.MembersAdded) || !cmp.Equal([]string{"u1"}, res.MembersRemoved) {
		t.Errorf("result = replaced %v added %v removed %v", res.MembersReplaced, res.MembersAdded, res.MembersRemoved)
	}
	empty := mustPatch(t, Groups, jsonDoc(t, ops), op("replace", "members", []any{}))
	if _, ok := empty.Resource["members"]; ok || len(empty.MembersRemoved) != 2 {
		t.Errorf("replace with [] = %v removed %v", empty.Resource["members"], empty.MembersRemoved)
	}
}

// "Okta's group rename puts the read-only id inside the value object:
// ignore id, never fail." (Okta SCIM 2.0 reference, verbatim body.)
func TestPatchOktaGroupRenameIgnoresID(t *testing.T) {
	res := mustPatch(t, Groups, jsonDoc(t, ops), `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "replace",
        "value": {
            "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
            "displayName": "Test SCIMv2"
        }
    }]
}`)
	if res.Resource["id"] != "g1" || res.Resource["displayName"] != "Test SCIMv2" {
		t.Errorf("id %v displayName %v", res.Resource["id"], res.Resource["displayName"])
	}
	if len(res.MembersAdded)+len(res.MembersRemoved) != 0 {
		t.Errorf("rename changed members: %+v", res)
	}
}

// "manager arrives as a string ("value": "<id>"), as a {value, $ref}
// object, or as a one-element array of those: store {value}."
func TestPatchManagerShapes(t *testing.T) {
	const path = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
	for name, v := range map[string]any{
		"string":        "m1",
		"object":        map[string]any{"value": "m1", "$ref": "https://x/scim/v2/s/Users/m1", "displayName": "Boss"},
		"array":         []any{map[string]any{"value": "m1", "$ref": "../Users/m1"}},
		"array of id":   []any{"m1"},
		"only $ref":     map[string]any{"$ref": "https://x/scim/v2/s/Users/m1"},
		"padded string": " m1 ",
	} {
		t.Run(name, func(t *testing.T) {
			res := mustPatch(t, Users, jsonDoc(t, jane), op("Replace", path, v))
			got := res.Resource[EnterpriseUserSchema]
			if d := cmp.Diff(map[string]any{"manager": map[string]any{"value": "m1"}}, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	res := mustPatch(t, Users, jsonDoc(t, jane), op("Add", path+".value", "m2"))
	if d := cmp.Diff(map[string]any{"manager": map[string]any{"value": "m2"}}, res.Resource[EnterpriseUserSchema]); d != "" {
		t.Errorf("manager.value (-want +got):\n%s", d)
	}
	res = mustPatch(t, Users, res.Resource, op("replace", "", map[string]any{EnterpriseUserSchema: map[string]any{"manager": ""}}))
	if _, ok := res.Resource[EnterpriseUserSchema]; ok {
		t.Errorf("empty manager kept: %v", res.Resource)
	}
	_, err := applyJSON(t, Users, jsonDoc(t, jane), op("Replace", path, []any{"a", "b"}))
	wantError(t, err, models.CodeInvalid, SCIMTypeInvalidValue)
}

// "Operations apply in order and atomically: all or nothing."
func TestPatchInOrderAndAtomic(t *testing.T) {
	doc := jsonDoc(t, jane)
	before := deepCopyMap(doc)
	_, err := applyJSON(t, Users, doc, `{"Operations":[
		{"op":"replace","path":"displayName","value":"changed"},
		{"op":"remove","path":"emails[type eq \"work\"]"},
		{"op":"replace","path":"id","value":"hijack"}
	]}`)
	wantError(t, err, models.CodeInvalid, SCIMTypeMutability)
	if d := cmp.Diff(before, doc); d != "" {
		t.Errorf("input modified (-want +got):\n%s", d)
	}
	if !strings.Contains(testError(err).Message, "operation 3") {
		t.Errorf("detail does not name the operation: %q", testError(err).Message)
	}
	res := mustPatch(t, Users, doc, `{"Operations":[
		{"op":"add","path":"nickName","value":"a"},
		{"op":"replace","path":"nickName","value":"b"},
		{"op":"remove","path":"title"},
		{"op":"add","path":"title","value":"c"}
	]}`)
	if res.Resource["nickName"] != "b" || res.Resource["title"] != "c" {
		t.Errorf("not applied in order: %v", res.Resource)
	}
}

// "replace of a missing attribute adds it."
func TestPatchReplaceMissingAddsIt(t *testing.T) {
	res := mustPatch(t, Users, jsonDoc(t, jane), `{"Operations":[
		{"op":"replace","path":"title","value":"Engineer"},
		{"op":"replace","path":"name.middleName","value":"Q"},
		{"op":"replace","path":"addresses","value":[{"type":"work","locality":"Sydney"}]},
		{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter","value":"4130"}
	]}`)
	r := res.Resource
	got := map[string]any{
		"title":           r["title"],
		"name.middleName": r["name"].(map[string]any)["middleName"],
		"costCenter":      r[EnterpriseUserSchema].(map[string]any)["costCenter"],
		"addresses":       len(r["addresses"].([]any)),
	}
	want := map[string]any{"title": "Engineer", "name.middleName": "Q", "costCenter": "4130", "addresses": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replace did not add (-want +got):\n%s", diff)
	}
}

// "replace on a filtered path that matches nothing (emails[type eq
// "work"].value on a user without a work email) adds a value of that type."
func TestPatchReplaceFilteredNoMatchAdds(t *testing.T) {
	doc := jsonDoc(t, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"u1","userName":"jane"}`)
	res := mustPatch(t, Users, doc, op("Replace", `emails[type eq "work"].value`, "jane@contoso.com"))
	if d := cmp.Diff([]any{map[string]any{"type": "work", "value": "jane@contoso.com"}}, res.Resource["emails"]); d != "" {
		t.Errorf("emails (-want +got):\n%s", d)
	}
	res = mustPatch(t, Users, res.Resource, op("Replace", `phoneNumbers[type eq "mobile" and primary eq true].value`, "+61 400 000 000"))
	if d := cmp.Diff([]any{map[string]any{"type": "mobile", "primary": true, "value": "+61 400 000 000"}}, res.Resource["phoneNumbers"]); d != "" {
		t.Errorf("phoneNumbers (-want +got):\n%s", d)
	}
	res = mustPatch(t, Users, res.Resource, op("replace", `addresses[type eq "work"]`, map[string]any{"locality": "Sydney"}))
	if d := cmp.Diff([]any{map[string]any{"type": "work", "locality": "Sydney"}}, res.Resource["addresses"]); d != "" {
		t.Errorf("addresses (-want +got):\n%s", d)
	}
	// A second replace updates the value it added, no duplicate.
	res = mustPatch(t, Users, res.Resource, op("Replace", `emails[type eq "work"].value`, "jane2@contoso.com"))
	if d := cmp.Diff([]any{map[string]any{"type": "work", "value": "jane2@contoso.com"}}, res.Resource["emails"]); d != "" {
		t.Errorf("emails (-want +got):\n%s", d)
	}
}

// "remove on a filtered path that matches nothing succeeds without change
// (identity providers retry removals)."
func TestPatchRemoveFilteredNoMatchSucceeds(t *testing.T) {
	for _, body := range []string{
		op("remove", `emails[type eq "home"]`, nil),
		op("remove", `emails[type eq "home"].value`, nil),
		op("remove", `phoneNumbers[type eq "work"].value`, nil),
		op("remove", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", nil),
		op("remove", "nickName", nil),
	} {
		res, err := applyJSON(t, Users, jsonDoc(t, jane), body)
		if err != nil || res.Changed {
			t.Errorf("%s: %v, changed %v", body, err, res != nil && res.Changed)
		}
	}
	g, err := applyJSON(t, Groups, jsonDoc(t, ops), op("remove", `members[value eq "gone"]`, nil))
	if err != nil || g.Changed || len(g.MembersRemoved) != 0 {
		t.Errorf("remove absent member: %v %+v", err, g)
	}
	// A matching filtered remove of the value drops the whole email.
	res := mustPatch(t, Users, jsonDoc(t, jane), op("remove", `emails[type eq "work"].value`, nil))
	if _, ok := res.Resource["emails"]; ok {
		t.Errorf("emails = %v", res.Resource["emails"])
	}
}

// "A remove without a path is 400 noTarget; an unparsable path is 400
// invalidPath; changing id or meta is ignored in a no-path value object and
// 400 mutability with an explicit path; an empty Operations list is 400
// invalidValue."
func TestPatchErrors(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		code     models.Code
		scimType string
	}{
		{"remove without path", op("remove", "", nil), models.CodeInvalid, SCIMTypeNoTarget},
		{"remove without path with value", op("Remove", "", map[string]any{"nickName": "x"}), models.CodeInvalid, SCIMTypeNoTarget},
		{"unparsable path", op("replace", `emails[type eq "work"`, "x"), models.CodeInvalid, SCIMTypeInvalidPath},
		{"unparsable filter", op("replace", `emails[type zz "work"].value`, "x"), models.CodeInvalid, SCIMTypeInvalidPath},
		{"unknown sub-attribute", op("replace", "name.nick", "x"), models.CodeInvalid, SCIMTypeInvalidPath},
		{"id with path", op("replace", "id", "x"), models.CodeInvalid, SCIMTypeMutability},
		{"meta with path", op("replace", "meta.lastModified", "2020-01-01T00:00:00Z"), models.CodeInvalid, SCIMTypeMutability},
		{"remove meta", op("remove", "meta", nil), models.CodeInvalid, SCIMTypeMutability},
		{"empty operations", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]}`, models.CodeInvalid, SCIMTypeInvalidValue},
		{"no operations", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`, models.CodeInvalid, SCIMTypeInvalidValue},
		{"not json", `{"Operations":[`, models.CodeInvalid, SCIMTypeInvalidSyntax},
		{"path not a string", `{"Operations":[{"op":"add","path":5,"value":1}]}`, models.CodeInvalid, SCIMTypeInvalidSyntax},
		{"value not an object", op("replace", "", "x"), models.CodeInvalid, SCIMTypeInvalidValue},
		{"wrong type", op("replace", "name", "x"), models.CodeInvalid, SCIMTypeInvalidValue},
		{"remove required", op("remove", "userName", nil), models.CodeInvalid, SCIMTypeInvalidValue},
		{"string gets object", op("replace", "displayName", map[string]any{"a": 1}), models.CodeInvalid, SCIMTypeInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := applyJSON(t, Users, jsonDoc(t, jane), tt.body)
			wantError(t, err, tt.code, tt.scimType)
		})
	}
	res := mustPatch(t, Users, jsonDoc(t, jane), op("replace", "", map[string]any{
		"id": "hijack", "meta": map[string]any{"version": "x"}, "displayName": "ok",
	}))
	got := map[string]any{"id": res.Resource["id"], "meta.version": res.Resource["meta"].(map[string]any)["version"], "displayName": res.Resource["displayName"]}
	if diff := cmp.Diff(map[string]any{"id": "u1", "meta.version": `W/"1"`, "displayName": "ok"}, got); diff != "" {
		t.Errorf("id/meta in a value object not ignored (-want +got):\n%s", diff)
	}
	if _, err := ApplyPatch(Users, jsonDoc(t, jane), nil); testError(err).SCIMType != SCIMTypeInvalidValue {
		t.Errorf("nil request: %v", err)
	}
}

// "Okta sends password and groups: [] … ignore both, never echo a
// password"; "groups on a user ignored (read-only)".
func TestPatchPasswordAndGroupsIgnored(t *testing.T) {
	res := mustPatch(t, Users, jsonDoc(t, jane), `{"Operations":[
		{"op":"replace","value":{"password":"1mz050nq","groups":[{"value":"g1"}]}},
		{"op":"replace","path":"password","value":"t1meMa$heen"},
		{"op":"add","path":"groups","value":[{"value":"g2"}]}
	]}`)
	if _, ok := res.Resource["password"]; ok {
		t.Error("password stored")
	}
	if _, ok := res.Resource["groups"]; ok {
		t.Error("groups stored")
	}
	if res.Changed {
		t.Error("ignored attributes changed the user")
	}
}

// "Deactivation is active=false (Okta: {"op":"replace","value":{"active":false}}
// without a path; Entra: {"op":"Replace","path":"active","value":"False"}
// with a string)."
func TestPatchDeactivation(t *testing.T) {
	okta := mustPatch(t, Users, jsonDoc(t, jane), `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "replace",
        "value": {
            "active": false
        }
    }]
}`)
	entra := mustPatch(t, Users, jsonDoc(t, jane), `{
  "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [
    {
      "op": "Replace",
      "path": "active",
      "value": "False"
    }
  ]
}`)
	for name, res := range map[string]*PatchResult{"okta": okta, "entra": entra} {
		if res.Resource["active"] != false || !res.Changed || IndexUser(res.Resource).Active {
			t.Errorf("%s: active = %#v", name, res.Resource["active"])
		}
	}
	if d := cmp.Diff(okta.Resource, entra.Resource); d != "" {
		t.Errorf("okta and entra differ (-okta +entra):\n%s", d)
	}
}

// The request examples of Microsoft's "Develop and plan provisioning for a
// SCIM endpoint" (section "Request and response examples"), verbatim.
func TestPatchEntraDocumentedRequests(t *testing.T) {
	user := jsonDoc(t, `{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
    "id": "6764549bef60420686bc",
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "meta": {"resourceType": "User","created": "2018-03-27T19:59:26.000Z","lastModified": "2018-03-27T19:59:26.000Z"},
    "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
    "name": {"formatted": "givenName familyName","familyName": "familyName","givenName": "givenName"},
    "active": true,
    "emails": [{"value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com","type": "work","primary": true}]
}`)
	t.Run("Update User [Multi-valued properties]", func(t *testing.T) {
		res := mustPatch(t, Users, user, `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [
            {
            "op": "Replace",
            "path": "emails[type eq \"work\"].value",
            "value": "updatedEmail@microsoft.com"
            },
            {
            "op": "Replace",
            "path": "name.familyName",
            "value": "updatedFamilyName"
            }
    ]
}`)
		if d := cmp.Diff([]any{map[string]any{"value": "updatedEmail@microsoft.com", "type": "work", "primary": true}}, res.Resource["emails"]); d != "" {
			t.Errorf("emails (-want +got):\n%s", d)
		}
		if got := res.Resource["name"].(map[string]any)["familyName"]; got != "updatedFamilyName" {
			t.Errorf("familyName = %v", got)
		}
	})
	t.Run("Update User [Single-valued properties]", func(t *testing.T) {
		res := mustPatch(t, Users, user, `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Replace",
        "path": "userName",
        "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    }]
}`)
		if got := IndexUser(res.Resource).UserName; got != "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com" {
			t.Errorf("userName = %v", got)
		}
	})
	t.Run("Disable User", func(t *testing.T) {
		res := mustPatch(t, Users, user, `{
    "Operations": [
        {
            "op": "Replace",
            "path": "active",
            "value": false
        }
    ],
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ]
}`)
		if res.Resource["active"] != false {
			t.Errorf("active = %v", res.Resource["active"])
		}
	})
	// The same multi-attribute update as Entra sends it without and with the
	// aadOptscim062020 flag (Microsoft's "Known issues and resolutions with
	// SCIM 2.0 protocol compliance").
	t.Run("multiple attributes with and without aadOptscim062020", func(t *testing.T) {
		without := mustPatch(t, Users, user, `{
  "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [
    {"op": "Replace", "path": "displayName", "value": "Pvlo"},
    {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "TestBcwqnm@test.microsoft.com"},
    {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
    {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
    {"op": "Replace", "path": "externalId", "value": "Eqpj"},
    {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "Eqpj"}
  ]
}`)
		with := mustPatch(t, Users, user, `{
  "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [
    {
      "op": "replace",
      "value": {
        "displayName": "Pvlo",
        "emails[type eq \"work\"].value": "TestBcwqnm@test.microsoft.com",
        "name.givenName": "Gtfd",
        "name.familyName": "Pkqf",
        "externalId": "Eqpj",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Eqpj"
      }
    }
  ]
}`)
		if d := cmp.Diff(without.Resource, with.Resource); d != "" {
			t.Errorf("flagged and unflagged requests differ (-without +with):\n%s", d)
		}
		ix := IndexUser(with.Resource)
		want := UserIndex{UserName: "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1", ExternalID: "Eqpj", DisplayName: "Pvlo",
			GivenName: "Gtfd", FamilyName: "Pkqf", Email: "TestBcwqnm@test.microsoft.com", Active: true}
		if d := cmp.Diff(want, ix); d != "" {
			t.Errorf("index (-want +got):\n%s", d)
		}
	})

	group := jsonDoc(t, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"40734ae655284ad3abcc","displayName":"displayName",
		"externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","meta":{"resourceType":"Group"}}`)
	t.Run("Update Group [Non-member attributes]", func(t *testing.T) {
		res := mustPatch(t, Groups, group, `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Replace",
        "path": "displayName",
        "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    }]
}`)
		if got := IndexGroup(res.Resource).DisplayName; got != "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName" {
			t.Errorf("displayName = %v", got)
		}
	})
	var withMember map[string]any
	t.Run("Update Group [Add Members]", func(t *testing.T) {
		res := mustPatch(t, Groups, group, `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Add",
        "path": "members",
        "value": [{
            "$ref": null,
            "value": "f648f8d5ea4e4cd38e9c"
        }]
    }]
}`)
		if d := cmp.Diff([]any{map[string]any{"value": "f648f8d5ea4e4cd38e9c"}}, res.Resource["members"]); d != "" {
			t.Errorf("members (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]string{"f648f8d5ea4e4cd38e9c"}, res.MembersAdded); d != "" {
			t.Errorf("MembersAdded (-want +got):\n%s", d)
		}
		withMember = res.Resource
	})
	t.Run("Update Group [Remove Members]", func(t *testing.T) {
		res := mustPatch(t, Groups, withMember, `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Remove",
        "path": "members",
        "value": [{
            "$ref": null,
            "value": "f648f8d5ea4e4cd38e9c"
        }]
    }]
}`)
		if _, ok := res.Resource["members"]; ok {
			t.Errorf("members = %v", res.Resource["members"])
		}
		if d := cmp.Diff([]string{"f648f8d5ea4e4cd38e9c"}, res.MembersRemoved); d != "" {
			t.Errorf("MembersRemoved (-want +got):\n%s", d)
		}
	})
}

// The PATCH requests of Okta's "SCIM 2.0 reference", verbatim.
func TestPatchOktaDocumentedRequests(t *testing.T) {
	group := jsonDoc(t, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
		"displayName":"Test SCIMv2","members":[{"value":"89bb1940-b905-4575-9e7f-6f887cfb368e","display":"test.user2@okta.local"}]}`)
	add := mustPatch(t, Groups, group, `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "add",
        "path": "members",
        "value": [{
            "value": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
            "display": "test.user@okta.local"
        }]
    }]
}`)
	if d := cmp.Diff([]string{"23a35c27-23d3-4c03-b4c5-6443c09e7173"}, add.MembersAdded); d != "" {
		t.Errorf("add: MembersAdded (-want +got):\n%s", d)
	}
	remove := mustPatch(t, Groups, add.Resource, `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "remove",
        "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"
    }]
}`)
	if d := cmp.Diff([]string{"89bb1940-b905-4575-9e7f-6f887cfb368e"}, remove.MembersRemoved); d != "" {
		t.Errorf("remove: MembersRemoved (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]any{map[string]any{"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}}, remove.Resource["members"]); d != "" {
		t.Errorf("remove: members (-want +got):\n%s", d)
	}
	replace := mustPatch(t, Groups, remove.Resource, `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "replace",
        "path": "members",
        "value": [
            {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "test.user2@okta.local"}
        ]
    }]
}`)
	if !cmp.Equal([]string{"89bb1940-b905-4575-9e7f-6f887cfb368e"}, replace.MembersAdded) ||
		!cmp.Equal([]string{"23a35c27-23d3-4c03-b4c5-6443c09e7173"}, replace.MembersRemoved) {
		t.Errorf("replace: added %v removed %v", replace.MembersAdded, replace.MembersRemoved)
	}
}

// "Group PATCH with many member changes in one request must be fast (Entra
// batches them)": adding 1,000 members to a group of 10,000 is linear.
func TestPatchManyMembersIsFast(t *testing.T) {
	group := groupWithMembers(10000)
	body := addMembersBody(1000, 9500) // 500 already members
	start := time.Now()
	res := mustPatch(t, Groups, group, body)
	elapsed := time.Since(start)
	if len(res.MembersAdded) != 500 || len(res.MembersRemoved) != 0 {
		t.Fatalf("added %d removed %d, want 500 and 0", len(res.MembersAdded), len(res.MembersRemoved))
	}
	if n := len(res.Resource["members"].([]any)); n != 10500 {
		t.Fatalf("%d members, want 10500", n)
	}
	// Generous bound: quadratic work here takes tens of seconds under -race.
	if elapsed > 5*time.Second {
		t.Errorf("adding 1,000 members took %v", elapsed)
	}
	// One remove operation per member (Okta's shape), 1,000 of them.
	var ops []string
	for i := range 1000 {
		ops = append(ops, fmt.Sprintf(`{"op":"remove","path":"members[value eq \"user-%05d\"]"}`, i))
	}
	start = time.Now()
	res = mustPatch(t, Groups, group, `{"Operations":[`+strings.Join(ops, ",")+`]}`)
	if len(res.MembersRemoved) != 1000 {
		t.Fatalf("removed %d, want 1000", len(res.MembersRemoved))
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("1,000 member removals took %v", elapsed)
	}
	// One add operation per member, 1,000 of them.
	ops = ops[:0]
	for i := range 1000 {
		ops = append(ops, fmt.Sprintf(`{"op":"Add","path":"members","value":[{"value":"new-%05d"}]}`, i))
	}
	start = time.Now()
	res = mustPatch(t, Groups, group, `{"Operations":[`+strings.Join(ops, ",")+`]}`)
	if len(res.MembersAdded) != 1000 {
		t.Fatalf("added %d, want 1000", len(res.MembersAdded))
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("1,000 member adds took %v", elapsed)
	}
}

// Merged runs of member operations give what applying them one by one
// gives, and an invalid operation in a run still reports its own index.
func TestPatchMemberRunsMatchOneByOne(t *testing.T) {
	body := `{"Operations":[
		{"op":"add","path":"members","value":[{"value":"u3"}]},
		{"op":"Add","path":"members","value":[{"value":"u1","display":"dup"},{"value":"u4"}]},
		{"op":"remove","path":"members[value eq \"u2\"]"},
		{"op":"Remove","path":"members","value":[{"value":"u3"}]},
		{"op":"remove","path":"members[value eq \"nobody\"]"},
		{"op":"add","path":"members","value":[{"value":"u2"}]},
		{"op":"replace","path":"displayName","value":"Ops2"}
	]}`
	merged := mustPatch(t, Groups, jsonDoc(t, ops), body)
	req, err := DecodePatchRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	doc := jsonDoc(t, ops)
	for _, o := range req.Operations {
		res, err := ApplyPatch(Groups, doc, &PatchRequest{Operations: []PatchOperation{o}})
		if err != nil {
			t.Fatal(err)
		}
		doc = res.Resource
	}
	if d := cmp.Diff(doc, merged.Resource); d != "" {
		t.Errorf("merged differs from one by one (-one +merged):\n%s", d)
	}
	want := []any{map[string]any{"value": "u1", "display": "jane@contoso.com"}, map[string]any{"value": "u4"}, map[string]any{"value": "u2"}}
	if d := cmp.Diff(want, merged.Resource["members"]); d != "" {
		t.Errorf("members (-want +got):\n%s", d)
	}
	if !cmp.Equal([]string{"u4"}, merged.MembersAdded) || len(merged.MembersRemoved) != 0 {
		t.Errorf("net change: added %v removed %v", merged.MembersAdded, merged.MembersRemoved)
	}
	_, err = applyJSON(t, Groups, jsonDoc(t, ops), `{"Operations":[
		{"op":"add","path":"members","value":[{"value":"u3"}]},
		{"op":"add","path":"members","value":[{"value":"u5"}]},
		{"op":"add","path":"members","value":[{"display":"no id"}]}
	]}`)
	if e := testError(err); e == nil || e.SCIMType != SCIMTypeInvalidValue || !strings.Contains(e.Message, "operation 3") {
		t.Errorf("err = %v, want invalidValue naming operation 3", err)
	}
}

func groupWithMembers(n int) map[string]any {
	members := make([]any, n)
	for i := range n {
		members[i] = map[string]any{"value": fmt.Sprintf("user-%05d", i)}
	}
	return map[string]any{"schemas": []any{GroupSchema}, "id": "g", "displayName": "Big", "members": members}
}

func addMembersBody(n, from int) string {
	vals := make([]string, n)
	for i := range n {
		vals[i] = fmt.Sprintf(`{"value":"user-%05d"}`, from+i)
	}
	return `{"Operations":[{"op":"Add","path":"members","value":[` + strings.Join(vals, ",") + `]}]}`
}

func BenchmarkPatchAdd1000Members(b *testing.B) {
	group := groupWithMembers(10000)
	req, err := DecodePatchRequest([]byte(addMembersBody(1000, 10000)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ApplyPatch(Groups, group, req); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPatchMultiValuedAddDeduplicatesAndPrimary(t *testing.T) {
	res := mustPatch(t, Users, jsonDoc(t, jane), `{"Operations":[
		{"op":"add","path":"emails","value":[{"value":"jane@contoso.com","type":"work","primary":true}]},
		{"op":"add","path":"emails","value":{"value":"j@home.example","type":"home","primary":"True"}}
	]}`)
	want := []any{
		map[string]any{"value": "jane@contoso.com", "type": "work", "primary": false},
		map[string]any{"value": "j@home.example", "type": "home", "primary": true},
	}
	if d := cmp.Diff(want, res.Resource["emails"]); d != "" {
		t.Errorf("emails (-want +got):\n%s", d)
	}
	if got := IndexUser(res.Resource).Email; got != "j@home.example" {
		t.Errorf("primary email = %q", got)
	}
	_, err := applyJSON(t, Groups, jsonDoc(t, ops), op("add", "members", []any{map[string]any{"display": "no value"}}))
	wantError(t, err, models.CodeInvalid, SCIMTypeInvalidValue)
}

func TestPatchUnknownAttributesKept(t *testing.T) {
	res := mustPatch(t, Users, jsonDoc(t, jane), `{"Operations":[
		{"op":"add","path":"urn:ietf:params:scim:schemas:extension:custom:2.0:User:worksiteId","value":"180"},
		{"op":"add","path":"favouriteColour","value":"teal"},
		{"op":"add","value":{"urn:ietf:params:scim:schemas:extension:custom:2.0:User:costCode":"7"}}
	]}`)
	if d := cmp.Diff(map[string]any{"worksiteId": "180", "costCode": "7"}, res.Resource["urn:ietf:params:scim:schemas:extension:custom:2.0:User"]); d != "" {
		t.Errorf("custom extension (-want +got):\n%s", d)
	}
	if res.Resource["favouriteColour"] != "teal" {
		t.Errorf("unknown attribute dropped: %v", res.Resource)
	}
}

func FuzzApplyPatch(f *testing.F) {
	// body is a whole PATCH body; opName/path/value build one more
	// operation, so the fuzzer reaches paths and values without having to
	// write JSON (value is used as JSON when it is, else as a string).
	seeds := []struct{ body, op, path, value string }{
		{op("Replace", `emails[type eq "work"].value`, "x@y"), "Add", `emails[type eq "work"].value`, `"a@b"`},
		{op("replace", "", map[string]any{"active": "False", "name.givenName": "a", EnterpriseUserSchema: map[string]any{"manager": "m"}}), "replace", "", `{"name.familyName":"x","id":"y"}`},
		{op("remove", `members[value eq "u1"]`, nil), "remove", `members[value eq "u2"].display`, ``},
		{op("Remove", "members", []any{map[string]any{"value": "u2"}}), "Remove", "members", `[{"value":"u1"}]`},
		{op("add", "members", []any{map[string]any{"value": "u3"}}), "replace", "members", `[{"value":"u9","$ref":null}]`},
		{op("replace", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", []any{map[string]any{"value": "m"}}), "add", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", `{"manager":["m"]}`},
		{`{"Operations":[{"op":"add","path":"emails","value":{"value":"a","primary":true}},{"op":"remove","path":"emails.value"}]}`, "add", "phoneNumbers[type eq mobile]", `{"value":"1"}`},
		{`{"Operations":[]}`, "replace", "active", `"True"`},
		{`[]`, "add", "urn:x:custom:User", `{"a":1}`},
		{`{"Operations":[{"op":"remove"}]}`, "replace", "name", `{"givenName":null}`},
	}
	for _, s := range seeds {
		f.Add(s.body, s.op, s.path, s.value, true)
		f.Add(s.body, s.op, s.path, s.value, false)
	}
	f.Fuzz(func(t *testing.T, body, opName, path, value string, group bool) {
		rt, doc := Users, jsonDoc(t, barbara)
		if group {
			rt, doc = Groups, jsonDoc(t, ops)
		}
		var v any = value
		if json.Valid([]byte(value)) {
			v = json.RawMessage(value)
		}
		built, _ := json.Marshal(map[string]any{"Operations": []any{map[string]any{"op": opName, "path": path, "value": v}}})
		for _, b := range []string{body, string(built)} {
			checkPatch(t, rt, doc, b)
		}
	})
}

// checkPatch applies body and checks what must hold for any input: no
// panic, the input untouched, a 4xx *Error or a normalised resource that
// kept its id and holds no password.
func checkPatch(t *testing.T, rt ResourceType, doc map[string]any, body string) {
	t.Helper()
	before := deepCopyMap(doc)
	res, err := applyJSON(t, rt, doc, body)
	if !cmp.Equal(before, doc) {
		t.Fatalf("input modified by %s", body)
	}
	if err != nil {
		if e := testError(err); e.Code == models.CodeInternal || e.Code == models.CodeUnavailable {
			t.Fatalf("%s: %v, want a 4xx *Error", body, err)
		}
		return
	}
	if res.Resource["id"] != before["id"] {
		t.Fatalf("%s changed id", body)
	}
	if _, ok := res.Resource["password"]; ok {
		t.Fatalf("%s stored a password", body)
	}
	again, err := normalize(rt, res.Resource, true)
	if err != nil {
		t.Fatalf("%s: result does not normalise: %v", body, err)
	}
	if d := cmp.Diff(res.Resource, again); d != "" {
		t.Fatalf("%s: result not normalised (-got +again):\n%s", body, d)
	}
	if _, err := json.Marshal(res.Resource); err != nil {
		t.Fatalf("%s: result does not marshal: %v", body, err)
	}
}
