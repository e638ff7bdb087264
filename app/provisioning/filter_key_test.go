package provisioning

import (
	"testing"

	"idbridge/app/scim"
	"idbridge/app/store"
)

// A filter that is one equality on a user's unique key carries the key, so
// that the store may answer it through its coalesced lookup; nothing else
// does.
func TestCompileFilterUniqueKey(t *testing.T) {
	cases := []struct {
		rt     scim.ResourceType
		filter string
		want   *store.DirectoryKey
	}{
		{scim.Users, `userName eq "Alice@Example.COM"`, &store.DirectoryKey{Column: store.KeyUserName, Value: "alice@example.com"}},
		{scim.Users, `USERNAME EQ "bob"`, &store.DirectoryKey{Column: store.KeyUserName, Value: "bob"}},
		{scim.Users, `id eq "u_Abc"`, &store.DirectoryKey{Column: store.KeyID, Value: "u_Abc"}},
		{scim.Users, `userName ne "bob"`, nil},
		{scim.Users, `userName sw "bob"`, nil},
		{scim.Users, `userName eq "bob" and active eq true`, nil},
		{scim.Users, `not (userName eq "bob")`, nil},
		{scim.Users, `externalId eq "00u1"`, nil},
		{scim.Users, `emails[value eq "bob@example.com"]`, nil},
		{scim.Groups, `displayName eq "Admins"`, nil},
		{scim.Groups, `id eq "g_1"`, nil},
	}
	for _, dialect := range []string{store.SQLite, store.Postgres} {
		for _, tc := range cases {
			expr, err := scim.ParseFilter(tc.rt, tc.filter)
			if err != nil {
				t.Fatalf("%s: %v", tc.filter, err)
			}
			f, err := compileFilter(targetOf(t, tc.rt), dialect, expr)
			if err != nil {
				t.Fatalf("%s: %v", tc.filter, err)
			}
			switch {
			case tc.want == nil && f.Key != nil:
				t.Errorf("%s %s: key %+v, want none", dialect, tc.filter, *f.Key)
			case tc.want != nil && (f.Key == nil || *f.Key != *tc.want):
				t.Errorf("%s %s: key %+v, want %+v", dialect, tc.filter, f.Key, *tc.want)
			case tc.want != nil && (len(f.Args) != 1 || f.Args[0] != tc.want.Value):
				t.Errorf("%s %s: the WHERE binds %v, the key %q", dialect, tc.filter, f.Args, tc.want.Value)
			}
		}
	}
}

// targetOf is what the SQL compiler is given for rt.
func targetOf(tb testing.TB, rt scim.ResourceType) sqlTarget {
	tb.Helper()
	d, err := (&Service{}).directoryOf(&rt)
	if err != nil {
		tb.Fatal(err)
	}
	return d.target()
}

// The store reads the manager from documents app/scim writes: both spell
// the enterprise extension's URN alike.
func TestEnterpriseSchemaSpelledAlike(t *testing.T) {
	if store.EnterpriseUserSchema != scim.EnterpriseUserSchema {
		t.Errorf("store.EnterpriseUserSchema = %q, scim's is %q", store.EnterpriseUserSchema, scim.EnterpriseUserSchema)
	}
}
