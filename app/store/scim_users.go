package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"idbridge/models"
)

const userColumns = `site_id, id, user_name, external_id, display_name, given_name, family_name, email, active, doc, version, created_at, updated_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanUser(r rowScanner, extra ...any) (models.DirectoryUser, error) {
	var u models.DirectoryUser
	var ext, disp, given, family, email sql.NullString
	dest := append([]any{&u.SiteID, &u.ID, &u.UserName, &ext, &disp, &given, &family, &email,
		&u.Active, &u.Doc, &u.Version, &u.CreatedAt, &u.UpdatedAt}, extra...)
	if err := r.Scan(dest...); err != nil {
		return u, err
	}
	u.ExternalID, u.DisplayName, u.GivenName, u.FamilyName, u.Email = ext.String, disp.String, given.String, family.String, email.String
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, nil
}

// LowerUserName is the case-folded userName the uniqueness index holds.
func LowerUserName(s string) string { return strings.ToLower(s) }

// CreateDirectoryUser inserts a user; ID, Version and the timestamps are
// set here. A userName taken in the site (case-insensitively) is a conflict.
func (tx *Tx) CreateDirectoryUser(u *models.DirectoryUser) error {
	if u.SiteID == "" || u.UserName == "" {
		return &models.Error{Code: models.CodeInvalid, Message: "a directory user needs a site and a userName"}
	}
	now := tx.s.Now()
	u.ID = NewOrderedID("u", now)
	u.Version = 1
	u.CreatedAt, u.UpdatedAt = now, now
	err := tx.db.Exec(`INSERT INTO scim_users (`+userColumns+`, user_name_lower) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.SiteID, u.ID, u.UserName, nullString(u.ExternalID), nullString(u.DisplayName), nullString(u.GivenName),
		nullString(u.FamilyName), nullString(u.Email), u.Active, string(u.Doc), u.Version, now, now, LowerUserName(u.UserName)).Error
	if err != nil {
		return fmt.Errorf("create directory user: %w", translate(err))
	}
	return nil
}

// CreateDirectoryUserWithOutbox creates u (as CreateDirectoryUser) and its
// outbox item atomically, together with the creates that arrive meanwhile:
// on PostgreSQL in one statement committed on its own (scim_batch.go), on
// SQLite in one write transaction (sqlite_batch.go). It returns after the
// commit. The item's resource is the new user.
func (s *Store) CreateDirectoryUserWithOutbox(ctx context.Context, u *models.DirectoryUser, item *models.OutboxItem) error {
	c, err := s.newUserCreate(u, item)
	if err != nil {
		return err
	}
	c.ctx = ctx
	creates := s.liteCreates
	if s.batches != nil {
		creates = s.batches.creates
	}
	if err := creates.do(ctx, c); err != nil {
		return fmt.Errorf("create directory user: %w", translate(err))
	}
	s.outboxAdded([]string{u.SiteID})
	return nil
}

// FindDirectoryUser returns one user of the site. With forUpdate the row is
// locked until the transaction ends (PostgreSQL; SQLite's write
// transactions are serialised anyway).
func (tx *Tx) FindDirectoryUser(siteID, id string, forUpdate bool) (*models.DirectoryUser, error) {
	q := `SELECT ` + userColumns + ` FROM scim_users WHERE site_id = ? AND id = ?`
	if forUpdate && tx.s.dialect == Postgres {
		q += ` FOR UPDATE`
	}
	u, err := scanUser(tx.db.Raw(q, siteID, id).Row())
	if err != nil {
		if errors.Is(err, errNoRows) {
			return nil, &models.Error{Code: models.CodeNotFound, Message: fmt.Sprintf("no user %s", id)}
		}
		return nil, fmt.Errorf("find directory user: %w", translate(err))
	}
	return &u, nil
}

// UpdateDirectoryUser replaces the stored user (found by site and ID) with
// u, increments its version and sets UpdatedAt. A userName taken by another
// user of the site is a conflict.
func (tx *Tx) UpdateDirectoryUser(u *models.DirectoryUser) error {
	return tx.updateDirectoryUser(u, 0)
}

// UpdateDirectoryUserAt is UpdateDirectoryUser for a change computed from
// the user at version: when the stored user has another version (or is
// gone) nothing is written and the error is CodePrecondition, so that the
// caller computes the change again from what is stored now. The expensive
// part of a change thus happens before the write transaction, which only
// checks and writes (SQLite's write lock is held for milliseconds).
func (tx *Tx) UpdateDirectoryUserAt(u *models.DirectoryUser, version int64) error {
	return tx.updateDirectoryUser(u, version)
}

func (tx *Tx) updateDirectoryUser(u *models.DirectoryUser, version int64) error {
	now := tx.s.Now()
	q := `UPDATE scim_users SET user_name = ?, user_name_lower = ?, external_id = ?, display_name = ?,
		given_name = ?, family_name = ?, email = ?, active = ?, doc = ?, version = version + 1, updated_at = ?
		WHERE site_id = ? AND id = ?`
	args := []any{u.UserName, LowerUserName(u.UserName), nullString(u.ExternalID), nullString(u.DisplayName), nullString(u.GivenName),
		nullString(u.FamilyName), nullString(u.Email), u.Active, string(u.Doc), now, u.SiteID, u.ID}
	if version > 0 {
		q += ` AND version = ?`
		args = append(args, version)
	}
	res := tx.db.Exec(q, args...)
	if res.Error != nil {
		return fmt.Errorf("update directory user: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		if version > 0 {
			return errChangedMeanwhile()
		}
		return &models.Error{Code: models.CodeNotFound, Message: fmt.Sprintf("no user %s", u.ID)}
	}
	u.Version++
	u.UpdatedAt = now
	return nil
}

// errChangedMeanwhile is the answer to a versioned write whose row changed
// (or went) since the version was read.
func errChangedMeanwhile() error {
	return &models.Error{Code: models.CodePrecondition, Message: "the resource changed while the request was applied"}
}

// DeleteDirectoryUser deletes a user of the site for good, with its group
// memberships.
func (tx *Tx) DeleteDirectoryUser(siteID, id string) error {
	res := tx.db.Exec(`DELETE FROM scim_users WHERE site_id = ? AND id = ?`, siteID, id)
	if res.Error != nil {
		return fmt.Errorf("delete directory user: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return &models.Error{Code: models.CodeNotFound, Message: fmt.Sprintf("no user %s", id)}
	}
	return nil
}

// ListDirectoryUsers runs a compiled query over the site's users and
// returns one page and the total number of matches.
func (tx *Tx) ListDirectoryUsers(siteID string, q DirectoryQuery) ([]models.DirectoryUser, int, error) {
	if users, total, ok, err := tx.lookupUser(siteID, q); ok {
		return users, total, err
	}
	users := make([]models.DirectoryUser, 0, min(max(q.Limit, 0), 16))
	total, err := tx.EachDirectoryUser(siteID, q, func(u *models.DirectoryUser) bool {
		users = append(users, *u)
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	return users, total, nil
}

// EachDirectoryUser runs a compiled query over the site's users and hands
// each user of the page to fn as it is read, so that a caller can render
// the page without holding all of it twice; fn returns false to end the
// page early (an answer's byte budget reached). It returns the total number
// of matches. Unlike ListDirectoryUsers it never takes the coalesced path.
func (tx *Tx) EachDirectoryUser(siteID string, q DirectoryQuery, fn func(u *models.DirectoryUser) bool) (int, error) {
	where, args, deadline := tx.whereClause(siteID, q)
	if q.Limit <= 0 {
		n, err := tx.count("scim_users", where, args)
		return n, translate(pastDeadline(err, deadline))
	}
	order, err := orderClause(UsersDirectory(), q)
	if err != nil {
		return 0, err
	}
	cols := userColumns
	if q.WithGroups {
		cols += `, ` + tx.userGroupsColumn()
	}
	cols += `, ` + tx.userManagerColumn()
	rows, err := tx.queryRows(`SELECT `+cols+` FROM scim_users`+where+order+tx.limitOffset(),
		append(args, q.Limit, max(q.Offset, 0))...)
	if err != nil {
		return 0, fmt.Errorf("list directory users: %w", translate(pastDeadline(err, deadline)))
	}
	n, stopped := 0, false
	var groups, manager sql.NullString
	for rows.Next() {
		var extra []any
		if q.WithGroups {
			extra = append(extra, &groups)
		}
		extra = append(extra, &manager)
		u, err := scanUser(rows, extra...)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("list directory users: %w", translate(err))
		}
		if q.WithGroups {
			if u.Groups, err = parseUserGroups(groups.String); err != nil {
				rows.Close()
				return 0, fmt.Errorf("list directory users: %w", err)
			}
		}
		if u.Manager, err = parseUserRef(manager.String); err != nil {
			rows.Close()
			return 0, fmt.Errorf("list directory users: %w", err)
		}
		n++
		if !fn(&u) {
			stopped = true
			break
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("list directory users: %w", translate(pastDeadline(err, deadline)))
	}
	total := 0
	if stopped {
		total, err = tx.count("scim_users", where, args)
	} else {
		total, err = tx.total("scim_users", where, args, q, n)
	}
	return total, translate(pastDeadline(err, deadline))
}

// total is the number of matches of a list that returned n rows: known
// without counting when the page is not full (the identity providers'
// lookups by userName), counted otherwise.
func (tx *Tx) total(table, where string, args []any, q DirectoryQuery, n int) (int, error) {
	offset := max(q.Offset, 0)
	switch {
	case n > 0 && n < q.Limit:
		return offset + n, nil
	case n == 0 && offset == 0:
		return 0, nil
	}
	return tx.count(table, where, args)
}

func (tx *Tx) count(table, where string, args []any) (int, error) {
	var n int
	if err := tx.db.Raw(`SELECT count(*) FROM `+table+where, args...).Row().Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, translate(err))
	}
	return n, nil
}

// ExistingDirectoryUsers returns which of ids are users of the site.
func (tx *Tx) ExistingDirectoryUsers(siteID string, ids []string) (map[string]bool, error) {
	found := make(map[string]bool, len(ids))
	for _, part := range chunks(ids, 1000) {
		var got []string
		if err := tx.db.Raw(`SELECT id FROM scim_users WHERE site_id = ? AND id IN ?`, siteID, part).Scan(&got).Error; err != nil {
			return nil, fmt.Errorf("find directory users: %w", translate(err))
		}
		for _, id := range got {
			found[id] = true
		}
	}
	return found, nil
}

// DirectoryUserGroup is a group a user belongs to.
type DirectoryUserGroup struct {
	GroupID     string
	DisplayName string
}

// FindDirectoryUserGroups returns the groups each of the users belongs to,
// by user ID, ordered by group display name.
func (tx *Tx) FindDirectoryUserGroups(siteID string, userIDs []string) (map[string][]DirectoryUserGroup, error) {
	out := make(map[string][]DirectoryUserGroup, len(userIDs))
	for _, part := range chunks(userIDs, 1000) {
		rows, err := tx.db.Raw(`SELECT m.user_id, g.id, g.display_name FROM scim_group_members m
			JOIN scim_groups g ON g.site_id = m.site_id AND g.id = m.group_id
			WHERE m.site_id = ? AND m.user_id IN ? ORDER BY g.display_name_lower, g.id`, siteID, part).Rows()
		if err != nil {
			return nil, fmt.Errorf("find groups of users: %w", translate(err))
		}
		for rows.Next() {
			var uid string
			var g DirectoryUserGroup
			if err := rows.Scan(&uid, &g.GroupID, &g.DisplayName); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find groups of users: %w", err)
			}
			out[uid] = append(out[uid], g)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("find groups of users: %w", translate(err))
		}
	}
	return out, nil
}

// TimeArg converts a filter's date value the way the store writes times,
// so that app/scim can compare meta.created and meta.lastModified.
func TimeArg(t time.Time) any { return storedTime(t) }

// userGroupsColumn aggregates a user's groups as a JSON array of
// [id, displayName] pairs, ordered by name, in a correlated subquery on the
// (site_id, user_id) index.
func (tx *Tx) userGroupsColumn() string {
	if tx.s.dialect == Postgres {
		return pgUserGroups
	}
	return `(SELECT json_group_array(json_array(x.id, x.display_name)) FROM (SELECT g.id, g.display_name
			FROM scim_group_members m JOIN scim_groups g ON g.site_id = m.site_id AND g.id = m.group_id
			WHERE m.site_id = scim_users.site_id AND m.user_id = scim_users.id ORDER BY g.display_name_lower, g.id) x)`
}

const pgUserGroups = `(SELECT json_agg(json_build_array(g.id, g.display_name) ORDER BY g.display_name_lower, g.id)::text
			FROM scim_group_members m JOIN scim_groups g ON g.site_id = m.site_id AND g.id = m.group_id
			WHERE m.site_id = scim_users.site_id AND m.user_id = scim_users.id)`

// userManagerColumn is the user of the site that the document's
// enterprise manager names, as a JSON pair [id, displayName], read by the
// primary key; NULL when the document names no manager or no user of the
// site. A document that does not mention a manager costs a substring test.
func (tx *Tx) userManagerColumn() string {
	if tx.s.dialect == Postgres {
		return pgUserManager
	}
	return `(CASE WHEN instr(scim_users.doc, '"manager"') > 0 THEN (SELECT json_array(mu.id, mu.display_name)
			FROM scim_users mu WHERE mu.site_id = scim_users.site_id
			AND mu.id = json_extract(scim_users.doc, '$."` + EnterpriseUserSchema + `".manager.value')) END)`
}

const pgUserManager = `(CASE WHEN strpos(scim_users.doc, '"manager"') > 0 THEN (SELECT json_build_array(mu.id, mu.display_name)::text
			FROM scim_users mu WHERE mu.site_id = scim_users.site_id
			AND mu.id = (scim_users.doc::jsonb -> '` + EnterpriseUserSchema + `' -> 'manager' ->> 'value')) END)`

// parseUserRef reads a [id, displayName] pair; "" is none.
func parseUserRef(s string) (*models.DirectoryUserRef, error) {
	if s == "" {
		return nil, nil
	}
	var pair [2]*string
	if err := json.Unmarshal([]byte(s), &pair); err != nil || pair[0] == nil {
		return nil, fmt.Errorf("manager of a user: %q: %v", s, err)
	}
	ref := &models.DirectoryUserRef{ID: *pair[0]}
	if pair[1] != nil {
		ref.DisplayName = *pair[1]
	}
	return ref, nil
}

func parseUserGroups(s string) ([]models.DirectoryGroupRef, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal([]byte(s), &pairs); err != nil {
		return nil, fmt.Errorf("groups of a user: %w", err)
	}
	out := make([]models.DirectoryGroupRef, len(pairs))
	for i, p := range pairs {
		out[i] = models.DirectoryGroupRef{ID: p[0], DisplayName: p[1]}
	}
	return out, nil
}
