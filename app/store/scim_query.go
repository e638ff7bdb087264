package store

import (
	"database/sql"
	"fmt"
	"strings"
	"time"
)

var errNoRows = sql.ErrNoRows

// DirectoryQuery is a compiled list query over scim_users or scim_groups:
// a WHERE fragment with "?" placeholders built by app/provisioning from a SCIM
// filter (never from raw client text: values travel only in Args), a sort
// column, and paging. The site condition is added by the store.
type DirectoryQuery struct {
	Where   string // "" matches everything
	Args    []any
	OrderBy string // a DirectoryColumn.Sort of the table; "" is creation order
	Desc    bool
	Offset  int // rows to skip (SCIM startIndex-1)
	Limit   int // rows to return; 0 answers only the total
	// WithGroups fills DirectoryUser.Groups (users only), in the same
	// statement.
	WithGroups bool
	// Key, when set, says that Where and Args select exactly the user
	// with this unique key (users only): such a list may be answered by
	// the coalesced lookup (scim_batch.go). Where and Args must still be
	// set: they answer it otherwise.
	Key *DirectoryKey
}

// orderClause is ORDER BY for q: the sort column with missing values last
// when ascending and first when descending (RFC 7644 3.4.2.3), then
// creation time and id, so that paging is stable.
func orderClause(table *DirectoryTable, q DirectoryQuery) (string, error) {
	stable := "created_at, id"
	if q.OrderBy == "" || q.OrderBy == "created_at" {
		if q.Desc {
			return " ORDER BY created_at DESC, id DESC", nil
		}
		return " ORDER BY " + stable, nil
	}
	if !table.sortable(q.OrderBy) {
		return "", fmt.Errorf("list %s: cannot sort by %q", table.Name, q.OrderBy)
	}
	col := q.OrderBy
	if q.Desc {
		return fmt.Sprintf(" ORDER BY (%s IS NULL) DESC, %s DESC, %s", col, col, stable), nil
	}
	return fmt.Sprintf(" ORDER BY (%s IS NULL), %s, %s", col, col, stable), nil
}

// whereClause joins the site condition and the compiled filter. On SQLite
// it also carries the statement's deadline (sqlite_deadline.go), returned
// for pastDeadline; on PostgreSQL statement_timeout ends the statement.
func (tx *Tx) whereClause(siteID string, q DirectoryQuery) (string, []any, time.Time) {
	args := make([]any, 0, len(q.Args)+2)
	args = append(args, siteID)
	where := " WHERE site_id = ?"
	var deadline time.Time
	if tx.s.dialect == SQLite {
		deadline = tx.statementDeadline()
		where += " AND idbridge_alive(?)"
		args = append(args, deadline.UnixNano())
	}
	if strings.TrimSpace(q.Where) == "" {
		return where, args, deadline
	}
	return where + " AND (" + q.Where + ")", append(args, q.Args...), deadline
}

// limitOffset is a list's page clause, for the limit and the offset bound
// after the query's arguments. SQLite plans with a value bound to LIMIT and
// compiles the statement again whenever that value is bound anew, which
// is every run (100 µs of a 280 µs SCIM filter GET); on an expression it
// does not, and the cached statement stays compiled
// (TestSQLiteHotStatementsAreCompiledOnce). PostgreSQL plans a prepared
// statement's LIMIT generically after five runs anyway.
func (tx *Tx) limitOffset() string {
	if tx.s.dialect == SQLite {
		return ` LIMIT (? + 0) OFFSET ?`
	}
	return ` LIMIT ? OFFSET ?`
}

// chunks splits ids into runs of at most n, so that IN lists stay well
// under both dialects' limits on bound parameters.
func chunks(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > n {
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
