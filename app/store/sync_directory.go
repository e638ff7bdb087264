package store

import (
	"fmt"
	"strings"
	"unicode/utf8"
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
// name index, whatever the directory's size; a search reads the names
// that start with the prefix from an index (docs/PERFORMANCE.md).
func (tx *Tx) ListSyncDirectory(siteID string, groups bool, after, prefix string, limit int) ([]SyncDirectoryEntry, error) {
	table, cols, key := "scim_users", "id, site_id, user_name, user_name_lower, active", "user_name_lower"
	sel := `SELECT u.id, u.user_name, u.user_name_lower, u.active, COALESCE(s.account_id, ''), COALESCE(s.state, ''),
			EXISTS (SELECT 1 FROM outbox o WHERE o.site_id = u.site_id AND o.resource_id = u.id AND o.status IN ` + openStatuses + `)
		FROM %s u LEFT JOIN sync_users s ON s.site_id = u.site_id AND s.user_id = u.id`
	if groups {
		table, cols, key = "scim_groups", "id, site_id, display_name, display_name_lower", "display_name_lower"
		sel = `SELECT u.id, u.display_name, u.display_name_lower, TRUE, COALESCE(s.atlassian_id, ''), '',
			EXISTS (SELECT 1 FROM outbox o WHERE o.site_id = u.site_id AND o.resource_id = u.id AND o.status IN ` + openStatuses + `)
		FROM %s u LEFT JOIN sync_groups s ON s.site_id = u.site_id AND s.group_id = u.id`
	}
	from, where := table, ` WHERE u.site_id = ? AND u.`+key+` > ?`
	var fromArgs []any
	whereArgs := []any{siteID, after}
	if prefix != "" {
		// The names that start with the prefix are the range [lo, hi) in
		// code point order (UTF-8's byte order, Go's string order).
		lo := strings.ToLower(prefix)
		hi, bounded := prefixEnd(lo)
		if tx.s.dialect == Postgres {
			// A LIKE, or a range in the database's collation, seeks no
			// index unless that collation is C: the range in "C" is read
			// from migration 11's C index (by a generic plan too), then
			// sorted in the database's order, which the list keeps.
			// Unfenced (OFFSET 0), the planner would rather walk the name
			// index in order and filter, however late the prefix comes.
			rng := key + ` COLLATE "C" >= ?`
			fromArgs = []any{siteID, lo}
			if bounded {
				rng += ` AND ` + key + ` COLLATE "C" < ?`
				fromArgs = append(fromArgs, hi)
			}
			from = `(SELECT ` + cols + ` FROM ` + table + ` WHERE site_id = ? AND ` + rng + ` OFFSET 0)`
		} else {
			// SQLite's BINARY collation is that order: the name index
			// seeks the range and reads it in order. With one lower
			// bound: of two, SQLite seeks by the first and walks from
			// there.
			where, whereArgs = ` WHERE u.site_id = ? AND u.`+key+` >= ?`, []any{siteID, lo}
			if after >= lo {
				where, whereArgs = ` WHERE u.site_id = ? AND u.`+key+` > ?`, []any{siteID, after}
			}
			if bounded {
				where += ` AND u.` + key + ` < ?`
				whereArgs = append(whereArgs, hi)
			}
		}
	}
	q := fmt.Sprintf(sel, from) + where + ` ORDER BY u.` + key + ` LIMIT ?`
	args := append(append(fromArgs, whereArgs...), limit)
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

// prefixEnd is the least string after every string that starts with p,
// in code point order: p with its last character incremented (dropping
// trailing U+10FFFF, which has no next); false when there is none.
func prefixEnd(p string) (string, bool) {
	rs := []rune(p)
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i] + 1
		if r >= 0xD800 && r <= 0xDFFF {
			r = 0xE000 // surrogates are not characters
		}
		if r <= utf8.MaxRune {
			rs[i] = r
			return string(rs[:i+1]), true
		}
	}
	return "", false
}
