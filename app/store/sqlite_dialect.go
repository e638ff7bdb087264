package store

import (
	"context"
	"database/sql"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"gorm.io/gorm/migrator"
	"gorm.io/gorm/schema"
)

// sqliteDialect is idbridge's GORM dialector for SQLite, over a *sql.DB
// that sqlite_engine.go opened. It is ours, and small, so that the binary
// links one SQLite engine only (a third-party dialector imports its own
// driver, and with it a second engine: docs/PERFORMANCE.md, "The SQLite
// engine"). It covers what GORM does with it at run time here: build
// statements (quoting, bind variables, the clauses SQLite has), run
// transactions and savepoints. idbridge's schema is written by its own SQL
// migrations (migrate.go), so nothing asks GORM to create or inspect
// tables; the migrator is GORM's generic one, which SQLite cannot answer
// (it reads information_schema), and nothing calls it.
//
// Errors are not translated here: translate (store.go) reads the engine's
// extended result codes through sqliteCode, for GORM's statements and the
// prepared ones of stmts.go alike.
type sqliteDialect struct {
	db *sql.DB
}

func (sqliteDialect) Name() string { return SQLite }

// Initialize installs GORM's default callbacks with the clauses SQLite
// understands: RETURNING (SQLite 3.35 and later; the engine is newer) and
// ON CONFLICT for upserts, UPDATE … FROM. SQLite's last_insert_rowid is the
// last row of a multi-row INSERT, hence LastInsertIDReversed.
func (d sqliteDialect) Initialize(db *gorm.DB) error {
	db.ConnPool = d.db
	callbacks.RegisterDefaultCallbacks(db, &callbacks.Config{
		CreateClauses:        []string{"INSERT", "VALUES", "ON CONFLICT", "RETURNING"},
		UpdateClauses:        []string{"UPDATE", "SET", "FROM", "WHERE", "RETURNING"},
		DeleteClauses:        []string{"DELETE", "FROM", "WHERE", "RETURNING"},
		LastInsertIDReversed: true,
	})
	db.ClauseBuilders["LIMIT"] = sqliteLimit
	db.ClauseBuilders["FOR"] = sqliteFor
	return nil
}

// sqliteLimit writes LIMIT and OFFSET. SQLite has no OFFSET without a
// LIMIT: an offset alone is written with LIMIT -1 (no limit).
func sqliteLimit(c clause.Clause, b clause.Builder) {
	l, ok := c.Expression.(clause.Limit)
	if !ok {
		c.Build(b)
		return
	}
	limited := l.Limit != nil && *l.Limit >= 0
	if limited {
		b.WriteString("LIMIT ")
		b.AddVar(b, *l.Limit)
	}
	if l.Offset > 0 {
		if limited {
			b.WriteString(" OFFSET ")
		} else {
			b.WriteString("LIMIT -1 OFFSET ")
		}
		b.AddVar(b, l.Offset)
	}
}

// sqliteFor drops row-locking clauses (FOR UPDATE, FOR SHARE): SQLite has
// none, and needs none here, as every write transaction begins IMMEDIATE
// and holds the database's one write lock until it ends.
func sqliteFor(c clause.Clause, b clause.Builder) {
	if _, ok := c.Expression.(clause.Locking); ok {
		return
	}
	c.Build(b)
}

func (d sqliteDialect) Migrator(db *gorm.DB) gorm.Migrator {
	return migrator.Migrator{Config: migrator.Config{DB: db, Dialector: d, CreateIndexAfterCreateTable: true}}
}

// DataTypeOf names a column type with the affinity SQLite gives it.
func (sqliteDialect) DataTypeOf(f *schema.Field) string {
	switch f.DataType {
	case schema.Bool:
		return "boolean"
	case schema.Int, schema.Uint:
		if f.AutoIncrement {
			return "integer PRIMARY KEY AUTOINCREMENT"
		}
		return "integer"
	case schema.Float:
		return "real"
	case schema.String:
		return "text"
	case schema.Time:
		if t, ok := f.TagSettings["TYPE"]; ok {
			return t
		}
		return "datetime"
	case schema.Bytes:
		return "blob"
	}
	return string(f.DataType)
}

// DefaultValueOf is what a multi-row INSERT writes for a row that leaves a
// column with a database default unset. SQLite has no DEFAULT keyword in
// VALUES: NULL makes an INTEGER PRIMARY KEY take the next rowid; any other
// default is written as its expression.
func (sqliteDialect) DefaultValueOf(f *schema.Field) clause.Expression {
	if f.AutoIncrement || f.DefaultValue == "" {
		return clause.Expr{SQL: "NULL"}
	}
	return clause.Expr{SQL: "(" + f.DefaultValue + ")"}
}

func (sqliteDialect) BindVarTo(w clause.Writer, _ *gorm.Statement, _ any) {
	_ = w.WriteByte('?')
}

// QuoteTo writes name as a quoted identifier: each part of a dotted name
// (table.column) in double quotes, a double quote inside doubled. A part
// that arrives already quoted ("a.b") is one identifier, dots included.
func (sqliteDialect) QuoteTo(w clause.Writer, name string) {
	for first := true; ; first = false {
		part, rest, more := cutIdentifier(name)
		if !first {
			_ = w.WriteByte('.')
		}
		_ = w.WriteByte('"')
		_, _ = w.WriteString(strings.ReplaceAll(part, `"`, `""`))
		_ = w.WriteByte('"')
		if !more {
			return
		}
		name = rest
	}
}

// cutIdentifier splits the first part off a dotted name. A part that
// starts with a double quote and is a whole quoted identifier (its inner
// quotes doubled, followed by a dot or the end) is returned unquoted;
// otherwise the part runs to the first dot.
func cutIdentifier(name string) (part, rest string, more bool) {
	if ident, n, ok := unquoteIdentifier(name); ok {
		switch {
		case n == len(name):
			return ident, "", false
		case name[n] == '.':
			return ident, name[n+1:], true
		}
	}
	return strings.Cut(name, ".")
}

// unquoteIdentifier reads the quoted identifier that name starts with: its
// text, and the length of name it took (both quotes included).
func unquoteIdentifier(name string) (ident string, n int, ok bool) {
	if !strings.HasPrefix(name, `"`) {
		return "", 0, false
	}
	var b strings.Builder
	for i := 1; i < len(name); i++ {
		switch {
		case name[i] != '"':
			_ = b.WriteByte(name[i])
		case i+1 < len(name) && name[i+1] == '"':
			_ = b.WriteByte('"')
			i++
		default:
			return b.String(), i + 1, true
		}
	}
	return "", 0, false // no closing quote
}

// Explain renders a statement with its arguments inlined, for logs.
func (sqliteDialect) Explain(sql string, vars ...any) string {
	return logger.ExplainSQL(sql, nil, `'`, vars...)
}

// SavePoint and RollbackTo let a GORM transaction nest (db.Transaction
// inside a transaction). They run on the transaction's connection directly,
// so that a failure is reported once, as their result.
func (d sqliteDialect) SavePoint(tx *gorm.DB, name string) error {
	return d.execOnTx(tx, "SAVEPOINT ", name)
}

func (d sqliteDialect) RollbackTo(tx *gorm.DB, name string) error {
	return d.execOnTx(tx, "ROLLBACK TO SAVEPOINT ", name)
}

func (d sqliteDialect) execOnTx(tx *gorm.DB, verb, name string) error {
	var b strings.Builder
	b.WriteString(verb)
	d.QuoteTo(&b, name)
	ctx := tx.Statement.Context
	if ctx == nil {
		ctx = context.Background()
	}
	_, err := tx.Statement.ConnPool.ExecContext(ctx, b.String())
	return err
}
