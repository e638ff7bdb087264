package store

// The directory tables as the SQL that app/provisioning compiles from SCIM
// filters and sortBy sees them: their names, the document column, the
// columns attributes are stored in, and the membership join. The store is
// the one place that knows them, and a list's sort column is checked
// against the same description.

// Names of the directory tables and of the column that holds each
// resource's document as sent (JSON text).
const (
	UsersTable        = "scim_users"
	GroupsTable       = "scim_groups"
	GroupMembersTable = "scim_group_members"
	DocColumn         = "doc"
)

// EnterpriseUserSchema is the URN of SCIM's enterprise user extension,
// under whose key a user's document holds its manager as {"value": id}
// (app/scim writes it so; a test holds the two spellings together).
const EnterpriseUserSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// DirectoryColumn is how a SCIM attribute is stored in a column of its own.
type DirectoryColumn struct {
	// Name is the column a filter compares; "" when the attribute is only
	// sortable (a user's emails: the column holds the primary one).
	Name string
	// Lowered says that Name holds a lower-cased copy, compared with a
	// value lower-cased in Go.
	Lowered bool
	// Sort is what a sortBy on the attribute orders by; "" when it is not
	// sortable.
	Sort string
}

// DirectoryTable describes scim_users or scim_groups.
type DirectoryTable struct {
	Name string
	// columns maps canonical SCIM attribute paths ("userName",
	// "name.givenName", "meta.created") to their columns.
	columns map[string]DirectoryColumn
	// MembershipFrom and MembershipOn are the FROM and the join condition
	// of a subquery over a row's memberships (the membership row is m);
	// MemberValue and MemberDisplay are the ID and display name of the
	// resource on the membership's other side.
	MembershipFrom, MembershipOn string
	MemberValue, MemberDisplay   string
}

// Column returns the column of the attribute with the canonical path attr.
func (t *DirectoryTable) Column(attr string) (DirectoryColumn, bool) {
	c, ok := t.columns[attr]
	return c, ok
}

// sortable reports whether a list of t may be ordered by expr. Nothing
// else is allowed: OrderBy is spliced into SQL.
func (t *DirectoryTable) sortable(expr string) bool {
	for _, c := range t.columns {
		if c.Sort != "" && c.Sort == expr {
			return true
		}
	}
	return false
}

// commonColumns are the columns of the attributes every resource has.
func commonColumns() map[string]DirectoryColumn {
	return map[string]DirectoryColumn{
		"id":                {Name: "id", Sort: "id"},
		"externalId":        {Name: "external_id", Sort: "external_id"},
		"meta.created":      {Name: "created_at", Sort: "created_at"},
		"meta.lastModified": {Name: "updated_at", Sort: "updated_at"},
	}
}

func with(m map[string]DirectoryColumn, more map[string]DirectoryColumn) map[string]DirectoryColumn {
	for k, v := range more {
		m[k] = v
	}
	return m
}

// directoryTables are read-only after package initialisation.
var directoryTables = struct{ users, groups DirectoryTable }{
	users: DirectoryTable{
		Name: UsersTable,
		columns: with(commonColumns(), map[string]DirectoryColumn{
			"userName":        {Name: KeyUserName, Lowered: true, Sort: KeyUserName},
			"displayName":     {Name: "display_name", Sort: "lower(display_name)"},
			"name.givenName":  {Name: "given_name", Sort: "lower(given_name)"},
			"name.familyName": {Name: "family_name", Sort: "lower(family_name)"},
			"active":          {Name: "active", Sort: "active"},
			"emails":          {Sort: "lower(email)"},
			"emails.value":    {Sort: "lower(email)"},
		}),
		MembershipFrom: GroupMembersTable + " m JOIN " + GroupsTable + " g ON g.site_id = m.site_id AND g.id = m.group_id",
		MembershipOn:   "m.site_id = " + UsersTable + ".site_id AND m.user_id = " + UsersTable + ".id",
		MemberValue:    "m.group_id",
		MemberDisplay:  "g.display_name",
	},
	groups: DirectoryTable{
		Name: GroupsTable,
		columns: with(commonColumns(), map[string]DirectoryColumn{
			"displayName": {Name: "display_name_lower", Lowered: true, Sort: "display_name_lower"},
		}),
		MembershipFrom: GroupMembersTable + " m JOIN " + UsersTable + " u ON u.site_id = m.site_id AND u.id = m.user_id",
		MembershipOn:   "m.site_id = " + GroupsTable + ".site_id AND m.group_id = " + GroupsTable + ".id",
		MemberValue:    "m.user_id",
		MemberDisplay:  "COALESCE(u.display_name, u.user_name)",
	},
}

// UsersDirectory and GroupsDirectory describe the directory tables. The
// description is shared: never modify it.
func UsersDirectory() *DirectoryTable  { return &directoryTables.users }
func GroupsDirectory() *DirectoryTable { return &directoryTables.groups }
