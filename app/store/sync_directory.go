package store

import (
	"fmt"
	"strings"
)

// SyncDirectoryEntry is one directory user or group with its Atlassian
// side, as the admin page lists them.
type SyncDirectoryEntry struct {
	ID string
	// Name is the user's userName or the group's displayName; Key its
	// lower-cased form, by which the list is ordered and paged.
	Name string
	Key  string
	// Active is the directory user's flag (always true for a group).
	Active bool
	// AtlassianID is the account or group ID in the site, "" while none.
	AtlassianID string
	// State is what idbridge last did to a user's account (a
	// models.SyncUserState); "" for groups and users not in the site yet.
	State string
	// Open says changes of it still wait to be applied (pending or held).
	Open bool
}

// ListSyncDirectory lists the site's directory users (or groups) with
// their Atlassian account (group) IDs, ordered by lower-cased name, those
// after the key after, whose name starts with prefix (case-insensitive;
// "" for all), at most limit. Each page reads limit rows from the unique
// name index, whatever the directory's size.
func (tx *Tx) ListSyncDirectory(siteID string, groups bool, after, prefix string, limit int) ([]SyncDirectoryEntry, error) {
	q := `SELECT u.id, u.user_name, u.user_name_lower, u.active, COALESCE(s.account_id, ''), COALESCE(s.state, ''),
			EXISTS (SELECT 1 FROM outbox o WHERE o.site_id = u.site_id AND o.resource_id = u.id AND o.status IN ` + openStatuses + `)
		FROM scim_users u LEFT JOIN sync_users s ON s.site_id = u.site_id AND s.user_id = u.id
		WHERE u.site_id = ? AND u.user_name_lower > ?`
	key := "u.user_name_lower"
	if groups {
		q = `SELECT g.id, g.display_name, g.display_name_lower, TRUE, COALESCE(s.atlassian_id, ''), '',
			EXISTS (SELECT 1 FROM outbox o WHERE o.site_id = g.site_id AND o.resource_id = g.id AND o.status IN ` + openStatuses + `)
		FROM scim_groups g LEFT JOIN sync_groups s ON s.site_id = g.site_id AND s.group_id = g.id
		WHERE g.site_id = ? AND g.display_name_lower > ?`
		key = "g.display_name_lower"
	}
	args := []any{siteID, after}
	if prefix != "" {
		q += ` AND ` + key + ` LIKE ? ESCAPE '\'`
		args = append(args, likePrefix(strings.ToLower(prefix)))
	}
	q += ` ORDER BY ` + key + ` LIMIT ?`
	args = append(args, limit)
	rows, err := tx.db.Raw(q, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("list sync directory: %w", translate(err))
	}
	defer rows.Close()
	out := []SyncDirectoryEntry{}
	for rows.Next() {
		var e SyncDirectoryEntry
		if err := rows.Scan(&e.ID, &e.Name, &e.Key, &e.Active, &e.AtlassianID, &e.State, &e.Open); err != nil {
			return nil, fmt.Errorf("list sync directory: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sync directory: %w", translate(err))
	}
	return out, nil
}

// likePrefix is a LIKE pattern (with ESCAPE '\') matching what starts
// with s.
func likePrefix(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s) + "%"
}
