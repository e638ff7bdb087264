package scim

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"idbridge/models"
)

// "Okta sends password and groups: [] on create: ignore both, never echo a
// password." Okta's create-user body from its SCIM 2.0 reference, verbatim.
func TestNormalizeOktaCreateUser(t *testing.T) {
	in := jsonDoc(t, `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "userName": "test.user@okta.local",
  "name": {
    "givenName": "Test",
    "familyName": "User"
  },
  "emails": [{
    "primary": true,
    "value": "test.user@okta.local",
    "type": "work"
  }],
  "displayName": "Test User",
  "locale": "en-US",
  "externalId": "00ujl29u0le5T6Aj10h7",
  "groups": [],
  "password": "1mz050nq",
  "active": true
}`)
	before := deepCopyMap(in)
	got, err := Normalize(Users, in)
	if err != nil {
		t.Fatal(err)
	}
	want := jsonDoc(t, `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "userName": "test.user@okta.local",
  "name": {"givenName": "Test", "familyName": "User"},
  "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
  "displayName": "Test User",
  "locale": "en-US",
  "externalId": "00ujl29u0le5T6Aj10h7",
  "active": true
}`)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if d := cmp.Diff(before, in); d != "" {
		t.Errorf("input modified:\n%s", d)
	}
	wantIx := UserIndex{UserName: "test.user@okta.local", ExternalID: "00ujl29u0le5T6Aj10h7", DisplayName: "Test User",
		GivenName: "Test", FamilyName: "User", Email: "test.user@okta.local", Active: true}
	if d := cmp.Diff(wantIx, IndexUser(got)); d != "" {
		t.Errorf("index (-want +got):\n%s", d)
	}
}

// Entra's create-user body (Microsoft's request examples), verbatim.
func TestNormalizeEntraCreateUser(t *testing.T) {
	got, err := Normalize(Users, jsonDoc(t, `{
    "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
    "active": true,
    "emails": [{
        "primary": true,
        "type": "work",
        "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
    }],
    "meta": {
        "resourceType": "User"
    },
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName"
    },
    "roles": []
}`))
	if err != nil {
		t.Fatal(err)
	}
	want := jsonDoc(t, `{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
    "active": true,
    "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
    "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"}
}`)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// "Entra creates groups with an extra, non-standard schema URI: accept it."
// Entra's create-group body, verbatim; and Okta's.
func TestNormalizeGroupsFromEntraAndOkta(t *testing.T) {
	entra, err := Normalize(Groups, jsonDoc(t, `{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/Group"],
    "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
    "displayName": "displayName",
    "meta": {
        "resourceType": "Group"
    }
}`))
	if err != nil {
		t.Fatal(err)
	}
	want := jsonDoc(t, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"displayName"}`)
	if d := cmp.Diff(want, entra); d != "" {
		t.Errorf("entra (-want +got):\n%s", d)
	}
	okta, err := Normalize(Groups, jsonDoc(t, `{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
    "displayName": "Test SCIMv2",
    "members": []
}`))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(GroupIndex{DisplayName: "Test SCIMv2"}, IndexGroup(okta)); d != "" {
		t.Errorf("okta index (-want +got):\n%s", d)
	}
	withMembers, err := Normalize(Groups, jsonDoc(t, `{"displayName":"G","members":[
		{"value":"u1","display":"a","$ref":null,"type":"User"},{"value":"u2"},{"value":"u1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(GroupIndex{DisplayName: "G", MemberIDs: []string{"u1", "u2"}}, IndexGroup(withMembers)); d != "" {
		t.Errorf("members index (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]any{map[string]any{"value": "u1", "display": "a", "type": "User"}, map[string]any{"value": "u2"}}, withMembers["members"]); d != "" {
		t.Errorf("members (-want +got):\n%s", d)
	}
}

// "Unknown attributes and unknown schemas entries in a request are kept or
// ignored, never an error. Values are stored as sent."
func TestNormalizeUnknownKeptNeverAnError(t *testing.T) {
	got, err := Normalize(Users, jsonDoc(t, `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:unknown", "urn:ietf:params:scim:schemas:extension:custom:2.0:User"],
  "UserName": "jane",
  "Name": {"GivenName": "Jane", "nickname": "JJ"},
  "favouriteColour": "teal",
  "urn:ietf:params:scim:schemas:extension:custom:2.0:User": {"worksiteId": "180"},
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Tours",
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"Manager": {"value": "m1", "$ref": "../Users/m1", "displayName": "Boss"}, "employeeNumber": 701984},
  "emails": {"value": "jane@x", "primary": "True"},
  "active": "False",
  "nickName": null,
  "id": "client-chosen"
}`))
	if err != nil {
		t.Fatal(err)
	}
	want := jsonDoc(t, `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:extension:custom:2.0:User"],
  "userName": "jane",
  "name": {"givenName": "Jane", "nickname": "JJ"},
  "favouriteColour": "teal",
  "urn:ietf:params:scim:schemas:extension:custom:2.0:User": {"worksiteId": "180"},
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Tours", "manager": {"value": "m1"}, "employeeNumber": "701984"},
  "emails": [{"value": "jane@x", "primary": true}],
  "active": false
}`)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if IndexUser(got).Active {
		t.Error("active \"False\" indexed as active")
	}
}

// "validate required userName/displayName (invalidValue)" and wrong types.
func TestNormalizeInvalid(t *testing.T) {
	tests := []struct {
		rt   ResourceType
		name string
		doc  string
	}{
		{Users, "no userName", `{"displayName":"x"}`},
		{Users, "empty userName", `{"userName":"  "}`},
		{Users, "userName not a string", `{"userName":{"a":1}}`},
		{Users, "active not a boolean", `{"userName":"a","active":"yes"}`},
		{Users, "name not an object", `{"userName":"a","name":"Jane"}`},
		{Users, "emails not objects", `{"userName":"a","emails":[true]}`},
		{Users, "extension not an object", `{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":"x"}`},
		{Users, "two managers", `{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":["a","b"]}}`},
		{Groups, "no displayName", `{"members":[]}`},
		{Groups, "member without value", `{"displayName":"g","members":[{"display":"x"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Normalize(tt.rt, jsonDoc(t, tt.doc))
			wantError(t, err, models.CodeInvalid, SCIMTypeInvalidValue)
		})
	}
}

func TestIndexUserEmailChoice(t *testing.T) {
	ix := IndexUser(jsonDoc(t, `{"emails":[{"value":"a@x","type":"home"},{"value":"b@x","primary":true}]}`))
	if ix.Email != "b@x" || !ix.Active {
		t.Errorf("primary email: %+v", ix)
	}
	ix = IndexUser(jsonDoc(t, `{"emails":[{"type":"home"},{"value":"c@x"}]}`))
	if ix.Email != "c@x" {
		t.Errorf("first email with a value: %+v", ix)
	}
}
