package store

import (
	"fmt"
	"strings"
	"time"

	"idbridge/models"
)

// The privacy features' generic access to tables (SPEC 8): reading the rows
// an export holds, erasing a person, purging a site, all driven by the
// declarations in models.Tables() and models.Inventory(). Table and column
// names come from those declarations (code), never from a request; values
// are always bound parameters.

// TableRows selects the rows of one table that an export holds: every row
// of the site, or only those about one person.
type TableRows struct {
	Table     models.TableDecl
	Columns   []string // the columns to read, after the key columns
	AccountID string   // "": every row of the site
}

// personWhere is the condition that selects a person's rows of t (its
// columns prefixed with alias, "t." or ""), and its arguments; ok is false
// when t has no person link.
func personWhere(t models.TableDecl, alias, siteID, accountID string) (string, []any, bool) {
	return personWhereOf(t, alias, siteID, accountID, true)
}

// ownRowsWhere finds the rows that are the person's own (not those where
// the person only acted): what erasure deletes and what cached profile
// data is dropped from.
func ownRowsWhere(t models.TableDecl, siteID, accountID string) (string, []any, bool) {
	return personWhereOf(t, "", siteID, accountID, false)
}

func personWhereOf(t models.TableDecl, alias, siteID, accountID string, actors bool) (string, []any, bool) {
	p := t.Person
	if p == nil {
		return "", nil, false
	}
	cols := p.AccountColumns
	if actors {
		cols = append(append([]string{}, cols...), p.ActorColumns...)
	}
	var b strings.Builder
	var args []any
	switch {
	case p.Via != nil:
		v := p.Via
		fmt.Fprintf(&b, "%s%s IN (SELECT j.%s FROM %s j WHERE j.site_id = ? AND j.%s = ?)", alias, v.Column, v.TableColumn, v.Table, v.AccountColumn)
		args = append(args, siteID, accountID)
	case len(cols) > 0:
		b.WriteString("(")
		for i, c := range cols {
			if i > 0 {
				b.WriteString(" OR ")
			}
			fmt.Fprintf(&b, "%s%s = ?", alias, c)
			args = append(args, accountID)
		}
		b.WriteString(")")
	default:
		return "", nil, false
	}
	if p.Where != "" {
		b.WriteString(" AND " + alias + p.Where)
	}
	return b.String(), args, true
}

// EachRow calls fn with the values of every selected row of the site's
// table, key columns first and then q.Columns, in key order, reading a
// bounded batch at a time (keyset paging: every batch costs the same,
// however far in). Each batch is read whole before fn sees its rows (see
// scanBudget). Values are as the driver
// gives them: string, int64, float64, bool, []byte, time.Time or nil.
func (tx *Tx) EachRow(siteID string, q TableRows, batch int, fn func(vals []any) error) error {
	t := q.Table
	if t.SiteColumn == "" {
		return fmt.Errorf("each row of %s: not a site's table", t.Name)
	}
	cols := make([]string, 0, len(t.Key)+len(q.Columns))
	for _, k := range t.Key {
		cols = append(cols, "t."+k)
	}
	for _, c := range q.Columns {
		cols = append(cols, "t."+c)
	}
	where := "t." + t.SiteColumn + " = ?"
	args := []any{siteID}
	if q.AccountID != "" {
		w, a, ok := personWhere(t, "t.", siteID, q.AccountID)
		if !ok {
			return nil // the table holds nothing found by person
		}
		where += " AND " + w
		args = append(args, a...)
	}
	base := "SELECT " + strings.Join(cols, ", ") + " FROM " + t.Name + " t WHERE " + where
	if len(t.Key) == 0 {
		_, err := tx.scanRows(base, args, len(cols), fn)
		return err
	}
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = "t." + k
	}
	order := " ORDER BY " + strings.Join(keys, ", ") + fmt.Sprintf(" LIMIT %d", batch)
	var after []any
	for {
		query, qargs := base, args
		if after != nil {
			query += " AND " + keyAfter(keys)
			qargs = append(append([]any{}, args...), after...)
		}
		last, err := tx.scanRows(query+order, qargs, len(cols), fn)
		if err != nil {
			return err
		}
		if last == nil || (int(last.n) < batch && !last.cut) {
			return nil
		}
		after = last.key[:len(keys)]
	}
}

// keyAfter is the keyset condition "key > (?, …)".
func keyAfter(keys []string) string {
	if len(keys) == 1 {
		return keys[0] + " > ?"
	}
	return "(" + strings.Join(keys, ", ") + ") > (" + strings.TrimSuffix(strings.Repeat("?, ", len(keys)), ", ") + ")"
}

type scanned struct {
	n   int64
	key []any // the last row's values
	// cut: the batch stopped at the byte budget, not at its end.
	cut bool
}

// scanBudget bounds the bytes of one batch held in memory. A batch is read
// whole and its cursor closed before fn sees a row, so a caller that
// writes to a slow client never holds a database connection while it
// waits.
const scanBudget = 4 << 20

func (tx *Tx) scanRows(query string, args []any, ncols int, fn func([]any) error) (*scanned, error) {
	batch, cut, err := tx.readRows(query, args, ncols)
	if err != nil {
		return nil, err
	}
	if len(batch) == 0 {
		return nil, nil
	}
	for _, vals := range batch {
		if err := fn(vals); err != nil {
			return nil, err
		}
	}
	return &scanned{n: int64(len(batch)), key: batch[len(batch)-1], cut: cut}, nil
}

// readRows reads the rows of query into memory, up to scanBudget bytes
// (at least one row), and closes the cursor.
func (tx *Tx) readRows(query string, args []any, ncols int) ([][]any, bool, error) {
	rows, err := tx.db.Raw(query, args...).Rows()
	if err != nil {
		return nil, false, fmt.Errorf("read rows: %w", translate(err))
	}
	defer rows.Close()
	var out [][]any
	size := 0
	for rows.Next() {
		vals := make([]any, ncols)
		dest := make([]any, ncols)
		for i := range vals {
			dest[i] = &vals[i]
		}
		// Scan into *any copies []byte values: they outlive the cursor.
		if err := rows.Scan(dest...); err != nil {
			return nil, false, fmt.Errorf("read rows: %w", translate(err))
		}
		out = append(out, vals)
		for _, v := range vals {
			switch v := v.(type) {
			case string:
				size += len(v)
			case []byte:
				size += len(v)
			}
			size += 16
		}
		if size >= scanBudget {
			return out, true, nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read rows: %w", translate(err))
	}
	return out, false, nil
}

// eraseStatementTimeout bounds each statement of an erasure on
// PostgreSQL, instead of the request's statement timeout.
const eraseStatementTimeout = "120s"

// ErasureCounts says, per table, how many rows an erasure deleted or
// changed.
type ErasureCounts map[string]int64

// Total is the number of rows deleted or changed in all.
func (c ErasureCounts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// ErasePerson erases one person from the site, in the caller's
// transaction, as every table's declaration says: rows about the person
// alone are deleted, configuration rows lose the account ID, shared rows
// (the audit log) get token in its place with their ClearColumns emptied.
// Tables reached through another table go first, while that table still
// knows the person. Repeating it finds nothing and changes nothing.
func (tx *Tx) ErasePerson(siteID, accountID, token string) (ErasureCounts, error) {
	if siteID == "" || accountID == "" {
		return nil, &models.Error{Code: models.CodeInvalid, Message: "an erasure needs a site and an account"}
	}
	if tx.s.dialect == Postgres && tx.inTx {
		// A person with hundreds of thousands of audit rows is erased in
		// one transaction: its statements may take longer than a request's
		// (bounded all the same; only administrators erase).
		if err := tx.db.Exec(`SET LOCAL statement_timeout = '` + eraseStatementTimeout + `'`).Error; err != nil {
			return nil, fmt.Errorf("erase: %w", translate(err))
		}
	}
	counts := ErasureCounts{}
	tables := models.Tables()
	var via, direct []models.TableDecl
	for _, t := range tables {
		switch {
		case t.Person == nil:
		case t.Person.Via != nil:
			via = append(via, t)
		default:
			direct = append(direct, t)
		}
	}
	for _, t := range append(via, direct...) {
		p := t.Person
		switch p.Erase {
		case models.EraseDelete:
			w, args, _ := ownRowsWhere(t, siteID, accountID)
			res := tx.db.Exec("DELETE FROM "+t.Name+" WHERE "+t.SiteColumn+" = ? AND "+w, append([]any{siteID}, args...)...)
			if res.Error != nil {
				return nil, fmt.Errorf("erase from %s: %w", t.Name, translate(res.Error))
			}
			counts[t.Name] += res.RowsAffected
		case models.EraseClear, models.ErasePseudonymise:
			value := ""
			if p.Erase == models.ErasePseudonymise {
				value = token
			}
			for _, c := range p.AccountColumns {
				set := c + " = ?"
				for _, cc := range p.ClearColumns {
					set += ", " + cc + " = ''"
				}
				res := tx.db.Exec("UPDATE "+t.Name+" SET "+set+" WHERE "+t.SiteColumn+" = ? AND "+c+" = ?", value, siteID, accountID)
				if res.Error != nil {
					return nil, fmt.Errorf("erase from %s: %w", t.Name, translate(res.Error))
				}
				counts[t.Name] += res.RowsAffected
			}
		default:
			return nil, fmt.Errorf("erase from %s: unknown erase action %q", t.Name, p.Erase)
		}
		// Rows about someone else that the person acted on keep their
		// subject; the person's ID in them becomes the pseudonym.
		for _, c := range p.ActorColumns {
			res := tx.db.Exec("UPDATE "+t.Name+" SET "+c+" = ? WHERE "+t.SiteColumn+" = ? AND "+c+" = ?", token, siteID, accountID)
			if res.Error != nil {
				return nil, fmt.Errorf("erase from %s: %w", t.Name, translate(res.Error))
			}
			counts[t.Name] += res.RowsAffected
		}
	}
	for k, v := range counts {
		if v == 0 {
			delete(counts, k)
		}
	}
	return counts, nil
}

// DropCachedProfile empties the columns declared Cached for the person (a
// copy of Atlassian profile data), after Atlassian reported the account
// updated. It returns how many rows changed.
func (tx *Tx) DropCachedProfile(siteID, accountID string) (int64, error) {
	var n int64
	for _, t := range models.Tables() {
		if t.Person == nil || len(t.Person.Cached) == 0 {
			continue
		}
		w, args, _ := ownRowsWhere(t, siteID, accountID)
		set := make([]string, len(t.Person.Cached))
		for i, c := range t.Person.Cached {
			set[i] = c + " = ''"
		}
		res := tx.db.Exec("UPDATE "+t.Name+" SET "+strings.Join(set, ", ")+" WHERE "+t.SiteColumn+" = ? AND "+w, append([]any{siteID}, args...)...)
		if res.Error != nil {
			return n, fmt.Errorf("drop cached profile in %s: %w", t.Name, translate(res.Error))
		}
		n += res.RowsAffected
	}
	return n, nil
}

// DeleteSiteRows deletes up to limit rows of the site's table and returns
// how many; the purge calls it until it returns less than limit.
func (tx *Tx) DeleteSiteRows(siteID string, t models.TableDecl, limit int) (int, error) {
	if t.SiteColumn == "" {
		return 0, fmt.Errorf("purge %s: not a site's table", t.Name)
	}
	query := "DELETE FROM " + t.Name + " WHERE " + t.SiteColumn + " = ?"
	args := []any{siteID}
	if len(t.Key) > 0 {
		keys := strings.Join(t.Key, ", ")
		if len(t.Key) > 1 {
			keys = "(" + keys + ")"
		}
		query += fmt.Sprintf(" AND %s IN (SELECT %s FROM %s WHERE %s = ? LIMIT %d)", keys, strings.Join(t.Key, ", "), t.Name, t.SiteColumn, limit)
		args = append(args, siteID)
	}
	res := tx.db.Exec(query, args...)
	if res.Error != nil {
		return 0, fmt.Errorf("purge %s: %w", t.Name, translate(res.Error))
	}
	return int(res.RowsAffected), nil
}

// DeleteAuditEventsBefore deletes up to limit of the site's audit events
// that happened before before, and returns how many.
func (tx *Tx) DeleteAuditEventsBefore(siteID string, before time.Time, limit int) (int, error) {
	res := tx.db.Exec(`DELETE FROM audit_events WHERE site_id = ? AND id IN (
		SELECT id FROM audit_events WHERE site_id = ? AND occurred_at < ? LIMIT ?)`, siteID, siteID, before.UTC(), limit)
	if res.Error != nil {
		return 0, fmt.Errorf("purge audit events: %w", translate(res.Error))
	}
	return int(res.RowsAffected), nil
}

// SiteIDsAfter lists up to limit site IDs after after, in order, whatever
// their state: the purge visits every site a page at a time.
func (tx *Tx) SiteIDsAfter(after string, limit int) ([]string, error) {
	var ids []string
	err := tx.db.Raw(`SELECT id FROM sites WHERE id > ? ORDER BY id LIMIT ?`, after, limit).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", translate(err))
	}
	return ids, nil
}

// SitesDueForPurge lists up to limit uninstalled sites whose retention
// ended at or before now.
func (tx *Tx) SitesDueForPurge(now time.Time, limit int) ([]string, error) {
	var ids []string
	err := tx.db.Raw(`SELECT id FROM sites WHERE state = ? AND purge_after IS NOT NULL AND purge_after <= ? ORDER BY id LIMIT ?`,
		string(models.SiteUninstalled), now.UTC(), limit).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("list sites due for purge: %w", translate(err))
	}
	return ids, nil
}

// SiteStillDueForPurge says whether the site is still uninstalled with its
// retention ended (a reinstall revives it; the purge stops then).
func (tx *Tx) SiteStillDueForPurge(siteID string, now time.Time) (bool, error) {
	var n int64
	err := tx.db.Raw(`SELECT count(*) FROM sites WHERE id = ? AND state = ? AND purge_after IS NOT NULL AND purge_after <= ?`,
		siteID, string(models.SiteUninstalled), now.UTC()).Scan(&n).Error
	if err != nil {
		return false, fmt.Errorf("check site purge: %w", translate(err))
	}
	return n > 0, nil
}

// DeletePurgedSite deletes the site row itself, if it is still due for
// purge, with whatever its tables still hold (ON DELETE CASCADE).
func (tx *Tx) DeletePurgedSite(siteID string, now time.Time) (bool, error) {
	res := tx.db.Exec(`DELETE FROM sites WHERE id = ? AND state = ? AND purge_after IS NOT NULL AND purge_after <= ?`,
		siteID, string(models.SiteUninstalled), now.UTC())
	if res.Error != nil {
		return false, fmt.Errorf("purge site: %w", translate(res.Error))
	}
	return res.RowsAffected > 0, nil
}

// CountRows counts the rows EachRow would read.
func (tx *Tx) CountRows(siteID string, q TableRows) (int64, error) {
	t := q.Table
	if t.SiteColumn == "" {
		return 0, fmt.Errorf("count rows of %s: not a site's table", t.Name)
	}
	where := "t." + t.SiteColumn + " = ?"
	args := []any{siteID}
	if q.AccountID != "" {
		w, a, ok := personWhere(t, "t.", siteID, q.AccountID)
		if !ok {
			return 0, nil
		}
		where += " AND " + w
		args = append(args, a...)
	}
	var n int64
	if err := tx.db.Raw("SELECT count(*) FROM "+t.Name+" t WHERE "+where, args...).Row().Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", t.Name, translate(err))
	}
	return n, nil
}
