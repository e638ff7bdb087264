package provisioning_test

// The request sequences Microsoft Entra ID and Okta document for SCIM
// servers, replayed in order with their documented answers:
//   - Microsoft, "Tutorial: Develop and plan provisioning for a SCIM
//     endpoint in Microsoft Entra ID", section "SCIM protocol requests and
//     responses" (learn.microsoft.com/entra/identity/app-provisioning/
//     use-scim-to-provision-users-and-groups);
//   - Okta, "Okta and SCIM Version 2.0" (developer.okta.com/docs/api/
//     openapi/okta-scim/guides/scim-20).
//
// The documented answers are checked as subsets: every member they show
// must be there with that value, "*" standing for a server-assigned value
// (ids, times). Where a documented example shows something this server
// deliberately does not do, the test says so next to it.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"idbridge/app/store/storetest"
)

// wantDoc fails unless the answer's body contains the documented JSON
// (after substituting {{name}} placeholders from vars).
func (r *resp) wantDoc(doc string, vars map[string]string) *resp {
	r.t.Helper()
	for k, v := range vars {
		doc = strings.ReplaceAll(doc, "{{"+k+"}}", v)
	}
	var want any
	if err := json.Unmarshal([]byte(doc), &want); err != nil {
		r.t.Fatalf("documented answer is not JSON: %v\n%s", err, doc)
	}
	if err := contains(r.Body, want, "$"); err != nil {
		r.t.Fatalf("%v\nanswer: %s", err, r.Raw)
	}
	return r
}

func contains(got, want any, at string) error {
	if s, ok := want.(string); ok && s == "*" {
		if got == nil {
			return fmt.Errorf("%s: missing", at)
		}
		return nil
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: got %#v, want an object", at, got)
		}
		for k, wv := range w {
			if err := contains(g[k], wv, at+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: got %#v, want %d elements", at, got, len(w))
		}
		for i := range w {
			if err := contains(g[i], w[i], fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("%s: got %#v, want %#v", at, got, want)
	}
	return nil
}

func TestServerEntraDocumentedSequence(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := newSCIMEnv(t, b).newSite()
		v := map[string]string{}

		// Test connection: a random user and group that do not exist.
		s.do("GET", "/Users?filter="+q(`userName eq "b5b4e8a9-0f7e-4a9f-9ab6-3c1b2f3e4d5c"`), nil).want(200).
			wantDoc(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[],"startIndex":1}`, nil)
		s.do("GET", "/Groups?excludedAttributes=members&filter="+q(`displayName eq "0f0d2c4e-44f3-4a9b-8d3f-1c9b3a2e6f70"`), nil).want(200).
			wantDoc(`{"totalResults":0,"Resources":[]}`, nil)

		// Create User.
		r := s.do("POST", "/Users", `{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
			"userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
			"active": true,
			"emails": [{"primary": true, "type": "work", "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"}],
			"meta": {"resourceType": "User"},
			"name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
			"roles": []
		}`).want(201).wantDoc(`{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
			"id": "*",
			"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
			"meta": {"resourceType": "User", "created": "*", "lastModified": "*"},
			"userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
			"name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
			"active": true,
			"emails": [{"value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com", "type": "work", "primary": true}]
		}`, nil)
		v["id"] = r.str("id")

		// Get User; and one that does not exist (only the status matters).
		s.do("GET", "/Users/"+v["id"], nil).want(200).wantDoc(`{"id":"{{id}}","userName":"Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee","active":true}`, v)
		s.do("GET", "/Users/5171a35d82074e068ce2", nil).wantError(404, "").
			wantDoc(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404","detail":"*"}`, nil)

		// Get User by query, and with zero results. (The documented
		// itemsPerPage of 20 is the example server's page size; this one
		// answers the number of resources on the page, as RFC 7644 3.4.2
		// defines it.)
		s.do("GET", "/Users?filter="+q(`userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"`), nil).want(200).wantDoc(`{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
			"totalResults": 1,
			"Resources": [{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "{{id}}",
				"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef", "meta": {"resourceType": "User", "created": "*", "lastModified": "*"},
				"userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee", "name": {"familyName": "familyName", "givenName": "givenName"},
				"active": true, "emails": [{"value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com", "type": "work", "primary": true}]}],
			"startIndex": 1
		}`, v)
		s.do("GET", "/Users?filter="+q(`userName eq "non-existent user"`), nil).want(200).
			wantDoc(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[],"startIndex":1}`, nil)
		// The matching attributes Entra documents besides userName.
		s.do("GET", "/Users?filter="+q(`emails[type eq "work"].value eq "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"`), nil).want(200).
			wantDoc(`{"totalResults":1,"Resources":[{"id":"{{id}}"}]}`, v)
		s.do("GET", "/Users?filter="+q(`externalId eq 0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef`), nil).want(200).
			wantDoc(`{"totalResults":1,"Resources":[{"id":"{{id}}"}]}`, v)

		// Update User [Multi-valued properties]. (The documented answer
		// also recomputes name.formatted; values are stored as sent here,
		// so formatted stays what Entra last sent.)
		s.do("PATCH", "/Users/"+v["id"], `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
				{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
			]
		}`).want(200).wantDoc(`{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "{{id}}",
			"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
			"meta": {"resourceType": "User", "created": "*", "lastModified": "*"},
			"userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
			"name": {"familyName": "updatedFamilyName", "givenName": "givenName"},
			"active": true,
			"emails": [{"value": "updatedEmail@microsoft.com", "type": "work", "primary": true}]
		}`, v)

		// Update User [Single-valued properties].
		s.do("PATCH", "/Users/"+v["id"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]}`).
			want(200).wantDoc(`{"id": "{{id}}", "userName": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com", "active": true}`, v)

		// Disable User.
		s.do("PATCH", "/Users/"+v["id"], `{"Operations": [{"op": "Replace", "path": "active", "value": false}],
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`).
			want(200).wantDoc(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "{{id}}", "active": false,
			"meta": {"resourceType": "User", "location": "*"}}`, v)
		// Without aadOptscim062020 the flag arrives as a string.
		s.do("PATCH", "/Users/"+v["id"], `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Replace","path":"active","value":"True"}]}`).want(200).wantDoc(`{"active":true}`, nil)

		// A member for the group operations below.
		v["member"] = s.createUser("member@testuser.com")

		// Create Group: Entra's extra schema URI, an empty members list.
		r = s.do("POST", "/Groups", `{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
			"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
			"displayName": "displayName",
			"meta": {"resourceType": "Group"}
		}`).want(201).wantDoc(`{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "*",
			"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
			"meta": {"resourceType": "Group", "created": "*", "lastModified": "*"},
			"displayName": "displayName"
		}`, nil)
		// Entra's documented answer shows "members": []; RFC 7643 2.4
		// leaves an empty multi-valued attribute out, and Entra takes both.
		if r.get("members") != nil {
			t.Errorf("an empty group answers members: %s", r.Raw)
		}
		v["group"] = r.str("id")

		// Get Group, and by displayName, always without members.
		r = s.do("GET", "/Groups/"+v["group"]+"?excludedAttributes=members", nil).want(200).wantDoc(`{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "{{group}}",
			"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
			"meta": {"resourceType": "Group", "created": "*", "lastModified": "*"}, "displayName": "displayName"
		}`, v)
		if r.get("members") != nil {
			t.Errorf("members despite excludedAttributes: %s", r.Raw)
		}
		s.do("GET", "/Groups?excludedAttributes=members&filter="+q(`displayName eq "displayName"`), nil).want(200).wantDoc(`{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1,
			"Resources": [{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "{{group}}",
				"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "meta": {"resourceType": "Group", "created": "*", "lastModified": "*"},
				"displayName": "displayName"}],
			"startIndex": 1
		}`, v)

		// Update Group [Non-member attributes], [Add Members], [Remove Members]: 204 each.
		s.do("PATCH", "/Groups/"+v["group"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]}`).want(204)
		s.do("PATCH", "/Groups/"+v["group"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "`+v["member"]+`"}]}]}`).want(204)
		s.do("GET", "/Groups/"+v["group"], nil).want(200).wantDoc(`{"displayName":"1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName",
			"members":[{"value":"{{member}}"}]}`, v)
		// Entra asks whether a user is a member by filtering on members.
		s.do("GET", "/Groups?excludedAttributes=members&filter="+q(`id eq "`+v["group"]+`" and members eq "`+v["member"]+`"`), nil).want(200).
			wantDoc(`{"totalResults":1}`, nil)
		s.do("PATCH", "/Groups/"+v["group"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "`+v["member"]+`"}]}]}`).want(204)
		s.do("GET", "/Groups?excludedAttributes=members&filter="+q(`id eq "`+v["group"]+`" and members eq "`+v["member"]+`"`), nil).want(200).
			wantDoc(`{"totalResults":0,"Resources":[]}`, nil)

		// Delete Group, Delete User.
		s.do("DELETE", "/Groups/"+v["group"], nil).want(204)
		s.do("DELETE", "/Users/"+v["id"], nil).want(204)

		// Discover schema.
		s.do("GET", "/Schemas", nil).want(200).wantDoc(`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "startIndex": 1, "totalResults": 3,
			"Resources": [
				{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": "urn:ietf:params:scim:schemas:core:2.0:User", "name": "User", "description": "User Account", "meta": {"resourceType": "Schema", "location": "*"}},
				{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "name": "EnterpriseUser", "description": "Enterprise User", "meta": {"resourceType": "Schema", "location": "*"}},
				{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": "urn:ietf:params:scim:schemas:core:2.0:Group", "name": "Group", "description": "Group", "meta": {"resourceType": "Schema", "location": "*"}}
			]}`, nil)
	})
}

func TestServerOktaDocumentedSequence(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := newSCIMEnv(t, b).newSite()
		v := map[string]string{}

		// Determine if the User already exists: the documented empty answer.
		s.do("GET", "/Users?filter="+q(`userName eq "test.user@okta.local"`)+"&startIndex=1&count=100", nil, "User-Agent: Okta SCIM Client 1.0.0").
			want(200).wantDoc(`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []}`, nil)

		// Create the User: password and groups are dropped, never echoed.
		// (The documented answer shows "groups": []; this server leaves an
		// empty groups attribute out, which Okta accepts.)
		r := s.do("POST", "/Users", `{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
			"userName": "test.user@okta.local",
			"name": {"givenName": "Test", "familyName": "User"},
			"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
			"displayName": "Test User",
			"locale": "en-US",
			"externalId": "00ujl29u0le5T6Aj10h7",
			"groups": [],
			"password": "1mz050nq",
			"active": true
		}`).want(201).wantDoc(`{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "*",
			"userName": "test.user@okta.local", "name": {"givenName": "Test", "familyName": "User"},
			"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
			"displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7", "active": true,
			"meta": {"resourceType": "User"}
		}`, nil)
		if strings.Contains(string(r.Raw), "1mz050nq") {
			t.Fatalf("password echoed: %s", r.Raw)
		}
		v["id"] = r.str("id")

		// The same user again: 409 stops the provisioning job.
		s.do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local","password":"x","active":true}`).
			wantError(409, "uniqueness")

		// The lookup now finds it; retrieve users page by page.
		s.do("GET", "/Users?filter="+q(`userName eq "test.user@okta.local"`)+"&startIndex=1&count=100", nil).want(200).
			wantDoc(`{"totalResults": 1, "startIndex": 1, "itemsPerPage": 1, "Resources": [{"id": "{{id}}"}]}`, v)
		s.do("GET", "/Users?startIndex=1&count=100", nil).want(200).wantDoc(`{"totalResults": 1, "startIndex": 1, "itemsPerPage": 1}`, nil)

		// Update the user: GET, then PUT of the whole object.
		s.do("GET", "/Users/"+v["id"], nil).want(200).wantDoc(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "{{id}}",
			"userName": "test.user@okta.local", "active": true, "meta": {"resourceType": "User"}}`, v)
		s.do("PUT", "/Users/"+v["id"], `{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
			"id": "`+v["id"]+`",
			"userName": "test.user@okta.local",
			"name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
			"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work", "display": "test.user@okta.local"}],
			"active": true,
			"groups": [],
			"meta": {"resourceType": "User"}
		}`).want(200).wantDoc(`{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "{{id}}", "userName": "test.user@okta.local",
			"name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
			"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work", "display": "test.user@okta.local"}],
			"active": true, "meta": {"resourceType": "User"}
		}`, v)

		// Deactivate: PATCH with a value object and no path.
		s.do("PATCH", "/Users/"+v["id"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "value": {"active": false}}]}`).want(200).wantDoc(`{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "{{id}}", "userName": "test.user@okta.local",
			"name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"}, "active": false, "meta": {"resourceType": "User"}
		}`, v)
		// Reactivate.
		s.do("PATCH", "/Users/"+v["id"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "value": {"active": true}}]}`).want(200).wantDoc(`{"active": true}`, nil)

		v["other"] = s.createUser("other.user@okta.local")

		// Push a group.
		r = s.do("POST", "/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Test SCIMv2", "members": []}`).
			want(201).wantDoc(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "*", "displayName": "Test SCIMv2",
			"meta": {"resourceType": "Group"}}`, nil)
		v["group"] = r.str("id")
		s.do("GET", "/Groups?startIndex=1&count=100", nil).want(200).wantDoc(`{"totalResults": 1, "startIndex": 1, "itemsPerPage": 1,
			"Resources": [{"id": "{{group}}", "displayName": "Test SCIMv2"}]}`, v)

		// Rename: the value object carries the read-only id. Okta accepts
		// 200 with the group or 204; Entra needs 204, which this answers.
		s.do("PATCH", "/Groups/"+v["group"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "value": {"id": "`+v["group"]+`", "displayName": "Test SCIMv20"}}]}`).want(204)

		// Membership: remove by filter and add, then a full push.
		s.do("PATCH", "/Groups/"+v["group"], strings.NewReplacer("{{id}}", v["id"], "{{other}}", v["other"]).Replace(`{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{"op": "remove", "path": "members[value eq \"{{other}}\"]"},
				{"op": "add", "path": "members", "value": [{"value": "{{id}}", "display": "test.user@okta.local"}]}
			]}`)).want(204)
		s.do("GET", "/Groups/"+v["group"], nil).want(200).wantDoc(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "{{group}}",
			"displayName": "Test SCIMv20", "members": [{"value": "{{id}}", "display": "test.user@okta.local"}], "meta": {"resourceType": "Group"}}`, v)
		s.do("PATCH", "/Groups/"+v["group"], strings.NewReplacer("{{id}}", v["id"], "{{other}}", v["other"]).Replace(`{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "path": "members", "value": [
				{"value": "{{id}}", "display": "test.user@okta.local"},
				{"value": "{{other}}", "display": "test.user@okta.local"}]}]}`)).want(204)
		if got := memberIDs(s, v["group"]); len(got) != 2 {
			t.Errorf("members after a full push: %v", got)
		}

		// Unlink with delete.
		s.do("DELETE", "/Groups/"+v["group"], nil).want(204)
		s.do("GET", "/Groups/"+v["group"], nil).wantError(404, "")
	})
}
