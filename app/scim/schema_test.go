package scim

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"idbridge/models"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		rt        ResourceType
		path      string
		schema    string
		attr, sub string
		canonical string
	}{
		{Users, "userName", UserSchema, "userName", "", "userName"},
		{Users, "USERNAME", UserSchema, "userName", "", "userName"},
		{Users, "name.givenName", UserSchema, "name", "givenName", "name.givenName"},
		{Users, "Name.GivenName", UserSchema, "name", "givenName", "name.givenName"},
		{Users, "emails", UserSchema, "emails", "", "emails"},
		{Users, "emails.value", UserSchema, "emails", "value", "emails.value"},
		{Users, "meta.lastModified", UserSchema, "meta", "lastModified", "meta.lastModified"},
		{Users, "id", UserSchema, "id", "", "id"},
		{Users, "externalId", UserSchema, "externalId", "", "externalId"},
		{Users, "urn:ietf:params:scim:schemas:core:2.0:User:userName", UserSchema, "userName", "", "userName"},
		{Users, "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:name.familyName", UserSchema, "name", "familyName", "name.familyName"},
		{Users, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", EnterpriseUserSchema, "employeeNumber", "",
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"},
		{Users, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", EnterpriseUserSchema, "manager", "value",
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"},
		{Groups, "displayName", GroupSchema, "displayName", "", "displayName"},
		{Groups, "members.value", GroupSchema, "members", "value", "members.value"},
		{Groups, "urn:ietf:params:scim:schemas:core:2.0:Group:members", GroupSchema, "members", "", "members"},
	}
	for _, tt := range tests {
		t.Run(tt.rt.Name+" "+tt.path, func(t *testing.T) {
			ref, err := tt.rt.Resolve(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			sub := ""
			if ref.Sub != nil {
				sub = ref.Sub.Name
			}
			got := []string{ref.Schema, ref.Attr.Name, sub, ref.Canonical}
			want := []string{tt.schema, tt.attr, tt.sub, tt.canonical}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestResolveUnknown(t *testing.T) {
	for _, p := range []string{
		"", "foo", "name.foo", "userName.value", "name.givenName.x", "name.", ".name",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:foo",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
		"urn:example:custom:userName",
		"emails[type eq \"work\"]",
	} {
		if _, err := Users.Resolve(p); !errors.Is(err, ErrUnknownAttribute) {
			t.Errorf("Resolve(%q) = %v, want ErrUnknownAttribute", p, err)
		}
	}
	if _, err := Groups.Resolve("userName"); !errors.Is(err, ErrUnknownAttribute) {
		t.Errorf("Groups.Resolve(userName) = %v", err)
	}
	if _, err := Groups.Resolve("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"); err == nil {
		t.Error("groups have no enterprise extension")
	}
}

// walkJSON calls f on every value of a JSON-decoded document.
func walkJSON(v any, path string, f func(path string, v any)) {
	f(path, v)
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			walkJSON(e, path+"."+k, f)
		}
	case []any:
		for _, e := range v {
			walkJSON(e, path+"[]", f)
		}
	}
}

// roundTrip marshals v and decodes it as JSON, as a client would see it.
func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// "Never an empty documentationUri or a null value in any response."
func assertNoEmpty(t *testing.T, doc map[string]any) {
	t.Helper()
	walkJSON(doc, "", func(path string, v any) {
		switch v := v.(type) {
		case nil:
			t.Errorf("%s is null", path)
		case string:
			if v == "" {
				t.Errorf("%s is an empty string", path)
			}
		}
	})
}

func TestDiscoveryDocuments(t *testing.T) {
	const base = "https://idbridge.example/scim/v2/s1"
	schemas := roundTrip(t, ListResponse(SchemaDocuments(base), 3, 1))
	assertNoEmpty(t, schemas)
	res := schemas["Resources"].([]any)
	if len(res) != 3 {
		t.Fatalf("%d schemas, want 3", len(res))
	}
	var ids []string
	for _, r := range res {
		ids = append(ids, r.(map[string]any)["id"].(string))
	}
	if d := cmp.Diff([]string{UserSchema, EnterpriseUserSchema, GroupSchema}, ids); d != "" {
		t.Errorf("schema ids (-want +got):\n%s", d)
	}
	user := res[0].(map[string]any)
	if got := user["meta"].(map[string]any)["location"]; got != base+"/Schemas/"+UserSchema {
		t.Errorf("location = %v", got)
	}
	for _, a := range user["attributes"].([]any) {
		am := a.(map[string]any)
		for _, k := range []string{"name", "type", "multiValued", "required", "caseExact", "mutability", "returned", "uniqueness"} {
			if _, ok := am[k]; !ok {
				t.Errorf("attribute %v lacks %s", am["name"], k)
			}
		}
		if am["name"] == "password" && am["returned"] != "never" {
			t.Errorf("password returned = %v", am["returned"])
		}
	}
	one, err := SchemaDocument(base, "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:GROUP")
	if err != nil || one["id"] != GroupSchema {
		t.Errorf("SchemaDocument(group) = %v, %v", one["id"], err)
	}
	if _, err := SchemaDocument(base, "urn:nope"); testError(err).Code != models.CodeNotFound {
		t.Errorf("unknown schema: %v", err)
	}

	rts := roundTrip(t, ListResponse(ResourceTypeDocuments(base), 2, 1))
	assertNoEmpty(t, rts)
	userRT := rts["Resources"].([]any)[0].(map[string]any)
	want := map[string]any{
		"schemas":          []any{ResourceTypeSchema},
		"id":               "User",
		"name":             "User",
		"endpoint":         "/Users",
		"description":      "User Account",
		"schema":           UserSchema,
		"schemaExtensions": []any{map[string]any{"schema": EnterpriseUserSchema, "required": false}},
		"meta":             map[string]any{"resourceType": "ResourceType", "location": base + "/ResourceTypes/User"},
	}
	if d := cmp.Diff(want, userRT); d != "" {
		t.Errorf("User resource type (-want +got):\n%s", d)
	}
	if g, err := ResourceTypeDocument(base, "group"); err != nil || g["endpoint"] != "/Groups" {
		t.Errorf("ResourceTypeDocument(group) = %v, %v", g, err)
	}
	if _, hasExt := roundTrip(t, Groups.document(base))["schemaExtensions"]; hasExt {
		t.Error("groups list schemaExtensions without any")
	}
}

// "/Bulk not supported (advertise bulk.supported=false)", filter.maxResults,
// sort "advertised truthfully", no empty documentationUri.
func TestServiceProviderConfig(t *testing.T) {
	doc := roundTrip(t, ServiceProviderConfigDocument("https://x/scim/v2/s1", ServiceProviderOptions{MaxResults: 200, ETag: true, Sort: true}))
	assertNoEmpty(t, doc)
	checks := map[string]any{
		"patch":          map[string]any{"supported": true},
		"bulk":           map[string]any{"supported": false, "maxOperations": 0.0, "maxPayloadSize": float64(1 << 20)},
		"filter":         map[string]any{"supported": true, "maxResults": 200.0},
		"changePassword": map[string]any{"supported": false},
		"sort":           map[string]any{"supported": true},
		"etag":           map[string]any{"supported": true},
	}
	for k, want := range checks {
		if d := cmp.Diff(want, doc[k]); d != "" {
			t.Errorf("%s (-want +got):\n%s", k, d)
		}
	}
	// The limits RFC 7643 has no attribute for, under their own URN.
	if d := cmp.Diff([]any{ServiceProviderConfigSchema, LimitsSchema}, doc["schemas"]); d != "" {
		t.Errorf("schemas (-want +got):\n%s", d)
	}
	limits, _ := doc[LimitsSchema].(map[string]any)
	for k, want := range map[string]float64{
		"maxPayloadSize": 1 << 20, "maxPatchOperations": MaxPatchOperations, "maxAttributes": MaxAttributes,
		"maxValuesPerAttribute": MaxValues, "maxMembersPerRequest": MaxMembers, "maxDepth": MaxDepth,
		"maxStringBytes": MaxStringBytes, "maxIndexedStringBytes": MaxIndexedBytes,
		"maxFilterTerms": MaxFilterTerms, "maxFilterMultiValuedTerms": MaxMultiValuedTerms,
	} {
		if limits[k] != want {
			t.Errorf("%s.%s = %v, want %v", LimitsSchema, k, limits[k], want)
		}
	}
	schemes := doc["authenticationSchemes"].([]any)
	if len(schemes) != 1 || schemes[0].(map[string]any)["type"] != "oauthbearertoken" {
		t.Errorf("authenticationSchemes = %v", schemes)
	}
	if _, ok := doc["documentationUri"]; ok {
		t.Error("documentationUri present although not configured")
	}
	withDoc := ServiceProviderConfigDocument("https://x", ServiceProviderOptions{DocumentationURI: "https://help.example/scim"})
	if withDoc["documentationUri"] != "https://help.example/scim" {
		t.Error("documentationUri missing")
	}
	if withDoc["filter"].(map[string]any)["maxResults"] != DefaultMaxResults {
		t.Error("default maxResults not applied")
	}
}

// "A query always answers 200 with a ListResponse … also when nothing
// matches: "totalResults":0,"Resources":[]".
func TestListResponseEmpty(t *testing.T) {
	b, err := json.Marshal(ListResponse(nil, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Resources":[],"itemsPerPage":0,"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"startIndex":1,"totalResults":0}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestResourceTypeByEndpoint(t *testing.T) {
	for _, name := range []string{"Users", "users", "/Users", "USERS"} {
		if rt, ok := ResourceTypeByEndpoint(name); !ok || rt.Name != "User" {
			t.Errorf("ResourceTypeByEndpoint(%q) = %v, %v", name, rt.Name, ok)
		}
	}
	if _, ok := ResourceTypeByEndpoint("Me"); ok {
		t.Error("Me is no resource type")
	}
}
