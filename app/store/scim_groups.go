package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"idbridge/models"
)

const groupColumns = `site_id, id, display_name, external_id, doc, version, created_at, updated_at`

func scanGroup(r rowScanner, extra ...any) (models.DirectoryGroup, error) {
	var g models.DirectoryGroup
	var ext sql.NullString
	dest := append([]any{&g.SiteID, &g.ID, &g.DisplayName, &ext, &g.Doc, &g.Version, &g.CreatedAt, &g.UpdatedAt}, extra...)
	if err := r.Scan(dest...); err != nil {
		return g, err
	}
	g.ExternalID = ext.String
	g.CreatedAt, g.UpdatedAt = g.CreatedAt.UTC(), g.UpdatedAt.UTC()
	return g, nil
}

// LowerGroupName is the case-folded displayName the uniqueness index holds.
func LowerGroupName(s string) string { return strings.ToLower(s) }

// CreateDirectoryGroup inserts a group (without members; see
// AddGroupMembers). A displayName taken in the site is a conflict.
func (tx *Tx) CreateDirectoryGroup(g *models.DirectoryGroup) error {
	if g.SiteID == "" || g.DisplayName == "" {
		return &models.Error{Code: models.CodeInvalid, Message: "a directory group needs a site and a displayName"}
	}
	now := tx.s.Now()
	g.ID = NewOrderedID("g", now)
	g.Version = 1
	g.CreatedAt, g.UpdatedAt = now, now
	err := tx.db.Exec(`INSERT INTO scim_groups (`+groupColumns+`, display_name_lower) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.SiteID, g.ID, g.DisplayName, nullString(g.ExternalID), string(g.Doc), g.Version, now, now, LowerGroupName(g.DisplayName)).Error
	if err != nil {
		return fmt.Errorf("create directory group: %w", translate(err))
	}
	return nil
}

// FindDirectoryGroup returns one group of the site, locked with forUpdate.
func (tx *Tx) FindDirectoryGroup(siteID, id string, forUpdate bool) (*models.DirectoryGroup, error) {
	q := `SELECT ` + groupColumns + ` FROM scim_groups WHERE site_id = ? AND id = ?`
	if forUpdate && tx.s.dialect == Postgres {
		q += ` FOR UPDATE`
	}
	g, err := scanGroup(tx.db.Raw(q, siteID, id).Row())
	if err != nil {
		if errors.Is(err, errNoRows) {
			return nil, &models.Error{Code: models.CodeNotFound, Message: fmt.Sprintf("no group %s", id)}
		}
		return nil, fmt.Errorf("find directory group: %w", translate(err))
	}
	return &g, nil
}

// LockDirectoryGroupAt locks the group's row for the rest of the
// transaction (PostgreSQL; SQLite's write transaction excludes other
// writers already) and checks that it is still at version: otherwise the
// error is CodePrecondition (see UpdateDirectoryUserAt).
func (tx *Tx) LockDirectoryGroupAt(siteID, id string, version int64) error {
	q := `SELECT version FROM scim_groups WHERE site_id = ? AND id = ?`
	if tx.s.dialect == Postgres {
		q += ` FOR UPDATE`
	}
	var v int64
	if err := tx.db.Raw(q, siteID, id).Row().Scan(&v); err != nil {
		if errors.Is(err, errNoRows) {
			return errChangedMeanwhile()
		}
		return fmt.Errorf("lock directory group: %w", translate(err))
	}
	if v != version {
		return errChangedMeanwhile()
	}
	return nil
}

// UpdateDirectoryGroup stores g's attributes, increments its version and
// sets UpdatedAt. Members are not touched.
func (tx *Tx) UpdateDirectoryGroup(g *models.DirectoryGroup) error {
	now := tx.s.Now()
	res := tx.db.Exec(`UPDATE scim_groups SET display_name = ?, display_name_lower = ?, external_id = ?, doc = ?,
		version = version + 1, updated_at = ? WHERE site_id = ? AND id = ?`,
		g.DisplayName, LowerGroupName(g.DisplayName), nullString(g.ExternalID), string(g.Doc), now, g.SiteID, g.ID)
	if res.Error != nil {
		return fmt.Errorf("update directory group: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return &models.Error{Code: models.CodeNotFound, Message: fmt.Sprintf("no group %s", g.ID)}
	}
	g.Version++
	g.UpdatedAt = now
	return nil
}

// DeleteDirectoryGroup deletes a group of the site and its memberships.
func (tx *Tx) DeleteDirectoryGroup(siteID, id string) error {
	res := tx.db.Exec(`DELETE FROM scim_groups WHERE site_id = ? AND id = ?`, siteID, id)
	if res.Error != nil {
		return fmt.Errorf("delete directory group: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return &models.Error{Code: models.CodeNotFound, Message: fmt.Sprintf("no group %s", id)}
	}
	return nil
}

// ListDirectoryGroups runs a compiled query over the site's groups and
// returns one page and the total number of matches.
func (tx *Tx) ListDirectoryGroups(siteID string, q DirectoryQuery) ([]models.DirectoryGroup, int, error) {
	where, args, deadline := tx.whereClause(siteID, q)
	if q.Limit <= 0 {
		n, err := tx.count("scim_groups", where, args)
		return []models.DirectoryGroup{}, n, translate(pastDeadline(err, deadline))
	}
	order, err := orderClause(GroupsDirectory(), q)
	if err != nil {
		return nil, 0, err
	}
	rows, err := tx.queryRows(`SELECT `+groupColumns+` FROM scim_groups`+where+order+tx.limitOffset(),
		append(args, q.Limit, max(q.Offset, 0))...)
	if err != nil {
		return nil, 0, fmt.Errorf("list directory groups: %w", translate(pastDeadline(err, deadline)))
	}
	defer rows.Close()
	groups := make([]models.DirectoryGroup, 0, min(q.Limit, 16))
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list directory groups: %w", err)
		}
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list directory groups: %w", translate(pastDeadline(err, deadline)))
	}
	total, err := tx.total("scim_groups", where, args, q, len(groups))
	return groups, total, translate(pastDeadline(err, deadline))
}

// FindGroupMembers returns the members of each group, by group ID, ordered
// by user ID. Display is the user's displayName, else its userName.
func (tx *Tx) FindGroupMembers(siteID string, groupIDs []string) (map[string][]models.GroupMember, error) {
	out := make(map[string][]models.GroupMember, len(groupIDs))
	for _, part := range chunks(groupIDs, 1000) {
		rows, err := tx.db.Raw(`SELECT m.group_id, m.user_id, COALESCE(u.display_name, u.user_name) FROM scim_group_members m
			JOIN scim_users u ON u.site_id = m.site_id AND u.id = m.user_id
			WHERE m.site_id = ? AND m.group_id IN ? ORDER BY m.group_id, m.user_id`, siteID, part).Rows()
		if err != nil {
			return nil, fmt.Errorf("find group members: %w", translate(err))
		}
		for rows.Next() {
			var gid string
			var m models.GroupMember
			if err := rows.Scan(&gid, &m.UserID, &m.Display); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find group members: %w", err)
			}
			out[gid] = append(out[gid], m)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("find group members: %w", translate(err))
		}
	}
	return out, nil
}

// AddGroupMembers makes the users members of the group, in one statement
// per thousand users, and returns those that were not members before. Every
// user must exist in the site: call ExistingDirectoryUsers first to name
// the ones that do not; unknown IDs here are skipped.
func (tx *Tx) AddGroupMembers(siteID, groupID string, userIDs []string) ([]string, error) {
	var added []string
	for _, part := range chunks(dedupe(userIDs), 1000) {
		var got []string
		err := tx.db.Raw(`INSERT INTO scim_group_members (site_id, group_id, user_id)
			SELECT site_id, ?, id FROM scim_users WHERE site_id = ? AND id IN ?
			ON CONFLICT DO NOTHING RETURNING user_id`, groupID, siteID, part).Scan(&got).Error
		if err != nil {
			return nil, fmt.Errorf("add group members: %w", translate(err))
		}
		added = append(added, got...)
	}
	return added, nil
}

// RemoveGroupMembers removes the users from the group and returns those
// that were members. Users that were not are ignored.
func (tx *Tx) RemoveGroupMembers(siteID, groupID string, userIDs []string) ([]string, error) {
	var removed []string
	for _, part := range chunks(dedupe(userIDs), 1000) {
		var got []string
		err := tx.db.Raw(`DELETE FROM scim_group_members WHERE site_id = ? AND group_id = ? AND user_id IN ? RETURNING user_id`,
			siteID, groupID, part).Scan(&got).Error
		if err != nil {
			return nil, fmt.Errorf("remove group members: %w", translate(err))
		}
		removed = append(removed, got...)
	}
	return removed, nil
}

// RemoveAllGroupMembers empties the group and returns who was in it.
func (tx *Tx) RemoveAllGroupMembers(siteID, groupID string) ([]string, error) {
	var removed []string
	err := tx.db.Raw(`DELETE FROM scim_group_members WHERE site_id = ? AND group_id = ? RETURNING user_id`,
		siteID, groupID).Scan(&removed).Error
	if err != nil {
		return nil, fmt.Errorf("remove group members: %w", translate(err))
	}
	return removed, nil
}

// GroupMemberIDs returns the IDs of the group's members.
func (tx *Tx) GroupMemberIDs(siteID, groupID string) ([]string, error) {
	var ids []string
	err := tx.db.Raw(`SELECT user_id FROM scim_group_members WHERE site_id = ? AND group_id = ? ORDER BY user_id`,
		siteID, groupID).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("group members: %w", translate(err))
	}
	return ids, nil
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
