package scim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	filter "github.com/scim2/filter-parser/v2"

	"idbridge/models"
)

type filterCase struct {
	name, in, want string
}

func runFilterCases(t *testing.T, rt ResourceType, cases []filterCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			expr, err := ParseFilter(rt, tt.in)
			if err != nil {
				t.Fatalf("ParseFilter(%q): %v", tt.in, err)
			}
			if got := filterString(expr); got != tt.want {
				t.Errorf("ParseFilter(%q)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

// "Filters: operators eq ne co sw ew pr gt ge lt le, and or not, grouping,
// value paths emails[type eq "work" and value co "@x"]."
func TestFilterOperatorsLogicGroupingValuePaths(t *testing.T) {
	runFilterCases(t, Users, []filterCase{
		{"eq", `userName eq "bjensen"`, `userName eq "bjensen"`},
		{"ne", `title ne "Boss"`, `title ne "Boss"`},
		{"co", `name.familyName co "O'Malley"`, `name.familyName co "O'Malley"`},
		{"sw", `userName sw "J"`, `userName sw "J"`},
		{"ew", `emails.value ew "@example.com"`, `emails.value ew "@example.com"`},
		{"pr", `title pr`, `title pr`},
		{"gt", `meta.lastModified gt "2011-05-13T04:42:34Z"`, `meta.lastModified gt "2011-05-13T04:42:34Z"`},
		{"ge", `meta.lastModified ge "2011-05-13T04:42:34+02:00"`, `meta.lastModified ge "2011-05-13T02:42:34Z"`},
		{"lt", `displayName lt "M"`, `displayName lt "M"`},
		{"le", `displayName le "M"`, `displayName le "M"`},
		{"and or precedence", `title pr and userType eq "Employee" or active eq false`,
			`(title pr and userType eq "Employee") or active eq false`},
		{"not", `not (userName eq "x")`, `not (userName eq "x")`},
		{"not without space", `not (userName eq "x")`, `not (userName eq "x")`},
		{"grouping", `userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`,
			`userType eq "Employee" and (emails.value co "example.com" or emails.value co "example.org")`},
		{"value path", `emails[type eq "work" and value co "@example.com"]`, `emails[type eq "work" and value co "@example.com"]`},
		{"value path or", `emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`,
			`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`},
		{"value path three terms", `emails[type eq "work" and value co "@x" and primary eq true]`,
			`emails[type eq "work" and value co "@x" and primary eq true]`},
		{"value path grouping", `emails[(type eq "work" or type eq "home") and not (value ew ".org")]`,
			`emails[(type eq "work" or type eq "home") and not (value ew ".org")]`},
		{"enterprise urn", `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`,
			`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`},
		{"enterprise manager", `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"`,
			`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"`},
		{"core urn dropped", `urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"`, `userName eq "x"`},
		{"extra spaces", "  userName   eq   \"x\"  and\tactive eq true ", `userName eq "x" and active eq true`},
	})
}

// "Attribute names and operators are case-insensitive."
func TestFilterCaseInsensitiveNamesAndOperators(t *testing.T) {
	runFilterCases(t, Users, []filterCase{
		{"operator", `userName EQ "x"`, `userName eq "x"`},
		{"attribute", `USERNAME eq "x"`, `userName eq "x"`},
		{"sub-attribute", `NAME.GIVENNAME Sw "A"`, `name.givenName sw "A"`},
		{"keywords", `userName eq "a" AND NOT (title Pr) Or active Eq TRUE`, `(userName eq "a" and not (title pr)) or active eq true`},
		{"urn", `URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:DEPARTMENT eq "x"`,
			`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x"`},
		{"value path", `EMAILS[TYPE EQ "work"]`, `emails[type eq "work"]`},
	})
}

// "Non-RFC filters to accept because Entra sends or documents them:
// emails[type eq "work"].value eq "x" … and unquoted bare values
// (externalId eq jyoung)."
func TestFilterEntraNonRFCForms(t *testing.T) {
	runFilterCases(t, Users, []filterCase{
		{"value path with sub-attribute", `emails[type eq "work"].value eq "x"`, `emails[type eq "work" and value eq "x"]`},
		{"value path with sub-attribute and more", `emails[type eq "work"].value eq "user@contoso.com" and active eq true`,
			`emails[type eq "work" and value eq "user@contoso.com"] and active eq true`},
		{"value path or with sub-attribute", `emails[type eq "work" or type eq "home"].value co "x"`,
			`emails[(type eq "work" or type eq "home") and value co "x"]`},
		{"bare value", `externalId eq jyoung`, `externalId eq "jyoung"`},
		{"bare email", `userName eq jyoung@contoso.com`, `userName eq "jyoung@contoso.com"`},
		{"bare guid in parentheses", `(externalId eq 0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef)`, `externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`},
		{"bare number for a string", `externalId eq 12345`, `externalId eq "12345"`},
		{"bare number keeps its text", `externalId eq 1.50`, `externalId eq "1.50"`},
		{"boolean string", `active eq "True"`, `active eq true`},
		{"bare in value path", `emails[type eq work]`, `emails[type eq "work"]`},
	})
}

// The first requests each identity provider sends (their public docs).
func TestFilterIdentityProviderQueries(t *testing.T) {
	runFilterCases(t, Users, []filterCase{
		{"Okta user lookup", `userName eq "test.user@okta.local"`, `userName eq "test.user@okta.local"`},
		{"Entra user lookup", `userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081"`, `userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081"`},
		{"Entra test connection", `userName eq "non-existent user"`, `userName eq "non-existent user"`},
		{"Entra externalId", `externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`, `externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`},
		{"Entra by id", `id eq "6764549bef60420686bc"`, `id eq "6764549bef60420686bc"`},
	})
	runFilterCases(t, Groups, []filterCase{
		{"Entra group by displayName", `displayName eq "displayName"`, `displayName eq "displayName"`},
		{"Okta group lookup", `displayName eq "Test SCIMv2"`, `displayName eq "Test SCIMv2"`},
		{"Entra membership check", `id eq "40734ae655284ad3abcc" and members[value eq "f648f8d5ea4e4cd38e9c"]`,
			`id eq "40734ae655284ad3abcc" and members[value eq "f648f8d5ea4e4cd38e9c"]`},
		{"members eq shorthand", `members eq "f648f8d5ea4e4cd38e9c"`, `members.value eq "f648f8d5ea4e4cd38e9c"`},
	})
}

// "Backslash escapes in string literals are decoded before comparing."
func TestFilterBackslashEscapesDecoded(t *testing.T) {
	tests := []struct{ in, want string }{
		{`userName eq "a\"b"`, `a"b`},
		{`userName eq "back\\slash"`, `back\slash`},
		{`userName eq "caf\u00e9"`, "café"},
		{`userName eq "caf\u00E9"`, "café"},
		{`userName eq "tab\there"`, "tab\there"},
		{`userName eq "slash\/"`, "slash/"},
		{`userName eq "\ud83d\ude00"`, "😀"},
		{`userName eq "O\'Brien"`, "O'Brien"},
		{`userName eq "x]y)z"`, "x]y)z"},
		{`emails[value eq "a\"]b"]`, `a"]b`},
	}
	for _, tt := range tests {
		expr, err := ParseFilter(Users, tt.in)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tt.in, err)
			continue
		}
		var got any
		switch e := expr.(type) {
		case *filter.AttributeExpression:
			got = e.CompareValue
		case *filter.ValuePath:
			got = e.ValueFilter.(*filter.AttributeExpression).CompareValue
		}
		if got != tt.want {
			t.Errorf("ParseFilter(%q) value = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// "Unknown attribute or operator: 400 invalidFilter", and the type rules.
func TestFilterUnknownAttributeOrOperatorIsInvalidFilter(t *testing.T) {
	for _, in := range []string{
		`foo eq "x"`,
		`userName xx "x"`,
		`userName eq`,
		`userName`,
		`name.foo eq "x"`,
		`name eq "x"`,
		`emails[foo eq "x"]`,
		`emails[type eq "work"].foo eq "x"`,
		`emails[type eq "x"`,
		`emails[value eq "x"].value`,
		`emails[types[value eq "x"]]`,
		`userName[value eq "x"]`,
		`active gt true`,
		`active co "t"`,
		`active eq "yes"`,
		`meta.lastModified co "2011"`,
		`meta.lastModified gt "yesterday"`,
		`userName eq null`,
		`password eq "secret"`,
		`(userName eq "x"`,
		`userName eq "x")`,
		`userName eq "unterminated`,
		`userName eq "x" and`,
		`userName eq "x" xor title pr`,
		`urn:example:custom:2.0:User:foo eq "x"`,
		`urn:idbridge:vp:0:x pr`,
		``,
		`   `,
		strings.Repeat("(", 100) + `userName eq "x"` + strings.Repeat(")", 100),
		strings.Repeat(`userName eq "x" or `, 300) + `title pr`,
	} {
		_, err := ParseFilter(Users, in)
		e := testError(err)
		if e == nil || e.Code != models.CodeInvalid || e.SCIMType != SCIMTypeInvalidFilter {
			t.Errorf("ParseFilter(%q) = %v, want 400 invalidFilter", in, err)
		}
	}
	if _, err := ParseFilter(Groups, `userName eq "x"`); err == nil {
		t.Error("groups have no userName")
	}
}

func TestFilterCanonicalValues(t *testing.T) {
	expr, err := ParseFilter(Users, `active eq "False" and meta.created lt "2020-01-01T00:00:00Z" and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 42`)
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	var paths []string
	var walk func(filter.Expression)
	walk = func(e filter.Expression) {
		switch e := e.(type) {
		case *filter.LogicalExpression:
			walk(e.Left)
			walk(e.Right)
		case *filter.AttributeExpression:
			got = append(got, e.CompareValue)
			paths = append(paths, e.AttributePath.URI()+"|"+e.AttributePath.AttributeName+"|"+e.AttributePath.SubAttributeName())
		}
	}
	walk(expr)
	want := []any{false, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "42"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("values (-want +got):\n%s", d)
	}
	wantPaths := []string{"|active|", "|meta|created", EnterpriseUserSchema + "|employeeNumber|"}
	if d := cmp.Diff(wantPaths, paths); d != "" {
		t.Errorf("paths (-want +got):\n%s", d)
	}
	a, err := FilterAttribute(Users, filter.AttributePath{AttributeName: "userName"}, nil)
	if err != nil || a.CaseExact || a.Type != TypeString {
		t.Errorf("FilterAttribute(userName) = %+v, %v", a, err)
	}
	emails, _ := Users.Resolve("emails")
	if a, err := FilterAttribute(Users, filter.AttributePath{AttributeName: "type"}, emails.Attr); err != nil || a.Name != "type" {
		t.Errorf("FilterAttribute(type in emails) = %v, %v", a, err)
	}
}

func jsonDoc(t testing.TB, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

const barbara = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "id": "2819c223-7f76-453a-919d-413861904646",
  "externalId": "BJ-701984",
  "userName": "bjensen@example.com",
  "name": {"familyName": "Jensen", "givenName": "Barbara"},
  "displayName": "Babs Jensen",
  "title": "Tour Guide",
  "active": true,
  "emails": [
    {"value": "bjensen@example.com", "type": "work", "primary": true},
    {"value": "babs@jensen.org", "type": "home"}
  ],
  "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"a330bc54f0671c9\""},
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "701984", "department": "Tour Operations",
    "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
  }
}`

// "String comparisons follow the attribute's caseExact (userName is
// case-insensitive …)", evaluated in memory.
func TestMatchFilterHonoursCaseExact(t *testing.T) {
	doc := jsonDoc(t, barbara)
	tests := []struct {
		filter string
		want   bool
	}{
		{`userName eq "BJENSEN@example.com"`, true},
		{`externalId eq "bj-701984"`, false}, // caseExact
		{`externalId eq "BJ-701984"`, true},
		{`id eq "2819C223-7F76-453A-919D-413861904646"`, false}, // caseExact
		{`name.familyName sw "jen"`, true},
		{`name.familyName ew "SEN"`, true},
		{`displayName co "babs"`, true},
		{`title pr`, true},
		{`nickName pr`, false},
		{`nickName ne "x"`, true},
		{`title ne "Tour Guide"`, false},
		{`active eq true`, true},
		{`active eq "False"`, false},
		{`emails[type eq "work" and value co "@example.com"]`, true},
		{`emails[type eq "home" and value co "@example.com"]`, false},
		{`emails[type eq "work"].value eq "bjensen@example.com"`, true},
		{`emails co "jensen.org"`, true},
		{`emails.type eq "home"`, true},
		{`emails[primary eq true].value ew "example.com"`, true},
		{`meta.lastModified gt "2011-05-13T04:42:33Z"`, true},
		{`meta.lastModified gt "2011-05-13T04:42:34Z"`, false},
		{`meta.lastModified ge "2011-05-13T06:42:34+02:00"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 701984`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter pr`, false},
		{`not (userName eq "x") and (title eq "nope" or active eq true)`, true},
		{`userName gt "a" and userName lt "c"`, true},
	}
	for _, tt := range tests {
		expr, err := ParseFilter(Users, tt.filter)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tt.filter, err)
			continue
		}
		got, err := MatchFilter(Users, expr, doc)
		if err != nil || got != tt.want {
			t.Errorf("MatchFilter(%q) = %v, %v; want %v", tt.filter, got, err, tt.want)
		}
	}
}

func TestMatchFilterGroupMembers(t *testing.T) {
	doc := jsonDoc(t, `{"displayName":"Ops","members":[{"value":"u1"},{"value":"U2"}]}`)
	for f, want := range map[string]bool{
		`members[value eq "u1"]`: true,
		`members[value eq "u2"]`: false, // member ids are case-exact
		`members eq "U2"`:        true,
		`displayName eq "ops"`:   false, // group displayName is caseExact: false → true below
	} {
		expr, err := ParseFilter(Groups, f)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := MatchFilter(Groups, expr, doc)
		if f == `displayName eq "ops"` {
			want = true
		}
		if got != want {
			t.Errorf("MatchFilter(%q) = %v, want %v", f, got, want)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		`userName eq "bjensen"`, `emails[type eq "work"].value eq "x"`, `externalId eq jyoung`,
		`not (a pr) or (b eq 1 and c ne true)`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x"`,
		`emails[(type eq "work" or type eq "home") and value co "\u00e9"]`, `meta.lastModified gt "2011-05-13T04:42:34Z"`,
		`members[value eq "x"]`, `userName eq "a\"b"`, `active eq True`, `x eq 1e400`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, rt := range []ResourceType{Users, Groups} {
			expr, err := ParseFilter(rt, s)
			if err != nil {
				if e := testError(err); e.Code != models.CodeInvalid || e.SCIMType != SCIMTypeInvalidFilter {
					t.Fatalf("ParseFilter(%q) = %v, want 400 invalidFilter", s, err)
				}
				continue
			}
			if _, err := MatchFilter(rt, expr, jsonDoc(t, barbara)); err != nil {
				t.Fatalf("MatchFilter of parsed %q: %v", s, err)
			}
			// The canonical form parses to itself.
			again, err := ParseFilter(rt, filterString(expr))
			if err != nil {
				t.Fatalf("canonical %q of %q does not parse: %v", filterString(expr), s, err)
			}
			if filterString(again) != filterString(expr) {
				t.Fatalf("canonical form unstable: %q → %q", filterString(expr), filterString(again))
			}
		}
	})
}

// A search across resource types (POST /.search at the root): RFC 7644
// 3.4.2.1 treats an attribute a resource type does not define as one
// without a value, so each type gets what is left of the filter, or all
// or none of its resources.
func TestParseFilterAcrossResourceTypes(t *testing.T) {
	const all, none = "ALL", "NONE"
	for _, tt := range []struct {
		in, users, groups string
	}{
		{`userName eq "bob@example.com"`, `userName eq "bob@example.com"`, none},
		{`USERNAME Eq "bob"`, `userName eq "bob"`, none},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob"`, `userName eq "bob"`, none},
		{`members eq "u1"`, none, `members.value eq "u1"`},
		{`members[value eq "u1"]`, none, `members[value eq "u1"]`},
		{`emails[type eq "work"]`, `emails[type eq "work"]`, none},
		{`displayName eq "Admins"`, `displayName eq "Admins"`, `displayName eq "Admins"`},
		{`urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Admins"`, none, `displayName eq "Admins"`},
		{`id pr`, `id pr`, `id pr`},
		{`userName eq "bob" or members eq "u1"`, `userName eq "bob"`, `members.value eq "u1"`},
		{`userName eq "bob" and displayName pr`, `userName eq "bob" and displayName pr`, none},
		{`userName pr or displayName sw "a"`, `userName pr or displayName sw "a"`, `displayName sw "a"`},
		{`not (userName eq "bob")`, `not (userName eq "bob")`, all},
		{`userName ne "bob"`, `userName ne "bob"`, all},
		{`userName ne "bob" and displayName eq "x"`, `userName ne "bob" and displayName eq "x"`, `displayName eq "x"`},
		{`(userName pr or active eq true) and externalId eq "e"`, `(userName pr or active eq true) and externalId eq "e"`, none},
		{`not (members pr) and not (userName pr)`, `not (userName pr)`, `not (members pr)`},
	} {
		got, err := ParseFilterAcross([]ResourceType{Users, Groups}, tt.in)
		if err != nil {
			t.Errorf("ParseFilterAcross(%q): %v", tt.in, err)
			continue
		}
		show := func(f TypeFilter) string {
			switch {
			case f.Expr != nil:
				return filterString(f.Expr)
			case f.All:
				return all
			}
			return none
		}
		if d := cmp.Diff([]string{tt.users, tt.groups}, []string{show(got[0]), show(got[1])}); d != "" {
			t.Errorf("ParseFilterAcross(%q) users, groups (-want +got):\n%s", tt.in, d)
		}
	}
	// An attribute neither type has is 400 invalidFilter, also beside
	// ones they have; so is a bad comparison of an attribute one type
	// has, also where the rest of the filter decides the outcome.
	for _, in := range []string{
		`foo eq "x"`,
		`userName eq "bob" or foo eq "x"`,
		`members eq "u1" and name.foo eq "x"`,
		`emails[foo eq "x"]`,
		`members eq "u1" and active eq "maybe"`,
		`userName eq "bob" and not (members eq null)`,
		`userName xx "bob"`,
		`password eq "x" and members pr`,
		`userName eq`,
		``,
		strings.Repeat(`userName eq "x" or `, 300) + `title pr`,
	} {
		_, err := ParseFilterAcross([]ResourceType{Users, Groups}, in)
		if e := testError(err); e == nil || e.Code != models.CodeInvalid || e.SCIMType != SCIMTypeInvalidFilter {
			t.Errorf("ParseFilterAcross(%q) = %v, want 400 invalidFilter", in, err)
		}
	}
	_, err := ParseFilterAcross([]ResourceType{Users, Groups}, `nope eq "x"`)
	if e := testError(err); e == nil || !strings.Contains(e.Message, `unknown attribute "nope"`) {
		t.Errorf("the error names the attribute: %v", err)
	}
}
