package scim

import "testing"

// TestFilterCacheMatchesParseFilter: the shape cache gives exactly
// what ParseFilter gives, for every value, and errors alike.
func TestFilterCacheMatchesParseFilter(t *testing.T) {
	t.Parallel()
	var c FilterCache
	filters := []string{
		`userName eq "a@example.com"`, `userName eq "b@example.com"`, `USERNAME Eq "C@Example.com"`,
		`userName eq "quo\"te" and displayName co "x\\y"`, `emails[type eq "work"].value eq "x@y"`,
		`emails[type eq "home" and value co "@z"] or not (title pr)`, `externalId eq jyoung`, `externalId eq "jyoung"`,
		`active eq "true"`, `active eq true`, `meta.created gt "2011-05-13T04:42:34Z"`, `meta.created gt "not a date"`,
		`userName eq "` + placeholderPrefix + `0"`, `title eq "\u00e9"`, `userName eq "unterminated`, `nope eq "x"`,
		`members[value eq "u1"]`, `displayName eq "Admins"`,
	}
	for _, rt := range []ResourceType{Users, Groups} {
		for round := range 2 { // the second round hits the cache
			for _, f := range filters {
				want, wantErr := ParseFilter(rt, f)
				got, gotErr := c.Parse(rt, f)
				if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
					t.Errorf("round %d, %s %s: error %v, want %v", round, rt.Name, f, gotErr, wantErr)
					continue
				}
				if wantErr == nil && filterString(got) != filterString(want) {
					t.Errorf("round %d, %s %s:\n got %s\nwant %s", round, rt.Name, f, filterString(got), filterString(want))
				}
			}
		}
	}
}
