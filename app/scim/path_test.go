package scim

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"idbridge/models"
)

// "Paths: simple (active), sub-attributes (name.givenName), filtered
// multi-valued (emails[type eq "work"].value, members[value eq "id"]),
// extension URNs (urn:…:enterprise:2.0:User:employeeNumber, …:manager)",
// case-insensitively.
func TestParsePathForms(t *testing.T) {
	type want struct {
		Schema, Attr, Sub, Filter, Name, SubName, Canonical string
	}
	tests := []struct {
		rt   ResourceType
		in   string
		want want
	}{
		{Users, "active", want{Schema: UserSchema, Attr: "active", Canonical: "active"}},
		{Users, "ACTIVE", want{Schema: UserSchema, Attr: "active", Canonical: "active"}},
		{Users, "name.givenName", want{Schema: UserSchema, Attr: "name", Sub: "givenName", Canonical: "name.givenName"}},
		{Users, `emails[type eq "work"].value`, want{Schema: UserSchema, Attr: "emails", Sub: "value",
			Filter: `type eq "work"`, Canonical: `emails[type eq "work"].value`}},
		{Users, `Emails[Type EQ "work"].Value`, want{Schema: UserSchema, Attr: "emails", Sub: "value",
			Filter: `type eq "work"`, Canonical: `emails[type eq "work"].value`}},
		{Users, `emails[type eq "work" and primary eq "True"]`, want{Schema: UserSchema, Attr: "emails",
			Filter: `type eq "work" and primary eq true`, Canonical: `emails[type eq "work" and primary eq true]`}},
		{Users, `addresses[type eq "work"].streetAddress`, want{Schema: UserSchema, Attr: "addresses", Sub: "streetAddress",
			Filter: `type eq "work"`, Canonical: `addresses[type eq "work"].streetAddress`}},
		{Users, `phoneNumbers[type eq mobile].value`, want{Schema: UserSchema, Attr: "phoneNumbers", Sub: "value",
			Filter: `type eq "mobile"`, Canonical: `phoneNumbers[type eq "mobile"].value`}},
		{Groups, `members[value eq "2819c223-7f76-453a-919d-413861904646"]`, want{Schema: GroupSchema, Attr: "members",
			Filter: `value eq "2819c223-7f76-453a-919d-413861904646"`, Canonical: `members[value eq "2819c223-7f76-453a-919d-413861904646"]`}},
		{Groups, `members[value eq "a]b"].display`, want{Schema: GroupSchema, Attr: "members", Sub: "display",
			Filter: `value eq "a]b"`, Canonical: `members[value eq "a]b"].display`}},
		{Users, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", want{Schema: EnterpriseUserSchema,
			Attr: "employeeNumber", Canonical: EnterpriseUserSchema + ":employeeNumber"}},
		{Users, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", want{Schema: EnterpriseUserSchema,
			Attr: "manager", Canonical: EnterpriseUserSchema + ":manager"}},
		{Users, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:MANAGER.value", want{Schema: EnterpriseUserSchema,
			Attr: "manager", Sub: "value", Canonical: EnterpriseUserSchema + ":manager.value"}},
		{Users, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", want{Schema: EnterpriseUserSchema,
			Canonical: EnterpriseUserSchema}},
		{Users, "urn:ietf:params:scim:schemas:core:2.0:User:displayName", want{Schema: UserSchema, Attr: "displayName", Canonical: "displayName"}},
		// Attributes the schema does not know are kept as sent.
		{Users, "nickname2", want{Schema: UserSchema, Name: "nickname2", Canonical: "nickname2"}},
		{Users, "urn:ietf:params:scim:schemas:extension:custom:2.0:User:worksiteId", want{
			Schema: "urn:ietf:params:scim:schemas:extension:custom:2.0:User", Name: "worksiteId",
			Canonical: "urn:ietf:params:scim:schemas:extension:custom:2.0:User:worksiteId"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePath(tt.rt, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := want{Schema: p.Schema, Name: p.Name, SubName: p.SubName, Canonical: p.Canonical}
			if p.Attr != nil {
				got.Attr = p.Attr.Name
			}
			if p.Sub != nil {
				got.Sub = p.Sub.Name
			}
			if p.Filter != nil {
				got.Filter = FormatFilter(p.Filter)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// "an unparsable path is 400 invalidPath".
func TestParsePathUnparsableIsInvalidPath(t *testing.T) {
	for _, in := range []string{
		"", " ", "emails[", `emails[type eq "work"`, `emails[type eq "work"]x`, `emails[type eq "work"].`,
		`emails[type eq "work"].foo`, `emails[foo eq "x"]`, `emails[type zz "x"]`, `name[givenName eq "x"]`,
		`userName[value eq "x"]`, `emails[type eq "work"][x]`, "name.foo", "name.givenName.x", "user name",
		`members[value eq "x"]`, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.foo",
		`nickname2[value eq "x"]`, "]", "a..b", `"userName"`,
	} {
		_, err := ParsePath(Users, in)
		if e := testError(err); e == nil || e.Code != models.CodeInvalid || e.SCIMType != SCIMTypeInvalidPath {
			t.Errorf("ParsePath(%q) = %v, want 400 invalidPath", in, err)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"active", "name.givenName", `emails[type eq "work"].value`, `members[value eq "x"]`,
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
		`emails[type eq "work" and (value co "a" or primary eq True)].display`, "urn:x:y:z", `members[value eq "a]b"]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, rt := range []ResourceType{Users, Groups} {
			p, err := ParsePath(rt, s)
			if err != nil {
				if e := testError(err); e.Code != models.CodeInvalid || e.SCIMType != SCIMTypeInvalidPath {
					t.Fatalf("ParsePath(%q) = %v, want 400 invalidPath", s, err)
				}
				continue
			}
			if p.Attr == nil && p.Sub != nil || p.Filter != nil && p.Attr == nil {
				t.Fatalf("ParsePath(%q) = inconsistent %+v", s, p)
			}
			if p.Known() {
				// The canonical spelling parses to the same path.
				q, err := ParsePath(rt, p.Canonical)
				if err != nil || q.Canonical != p.Canonical {
					t.Fatalf("canonical %q of %q: %v, %+v", p.Canonical, s, err, q)
				}
			}
		}
	})
}
