package store

import (
	"errors"
	"net/url"
	"strings"

	"github.com/ncruces/go-sqlite3"
	sqlitedriver "github.com/ncruces/go-sqlite3/driver"
	"gorm.io/gorm"
)

// This file is all that knows which SQLite engine idbridge links: how it
// opens a database, registers idbridge's SQL functions and reports error
// codes. bench/sqlite-engines/run.sh swaps it for the other candidates'
// (docs/PERFORMANCE.md, "The SQLite engine").
//
// The engine is github.com/ncruces/go-sqlite3 (SQLite compiled to
// WebAssembly, translated to Go: no cgo). The GORM side is idbridge's own
// dialector (sqlite_dialect.go) over the *sql.DB that ncruces' driver
// opens, so that no second engine is linked.

// sqliteTimeFormat is how the other engines write a time.Time, so that a
// database keeps one format whichever engine wrote it.
const sqliteTimeFormat = "2006-01-02 15:04:05.999999999-07:00"

func sqliteDialector(dsn string) (gorm.Dialector, error) {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	dsn += sep + "_timefmt=" + url.QueryEscape(sqliteTimeFormat)
	db, err := sqlitedriver.Open(dsn, func(c *sqlite3.Conn) error {
		return c.CreateFunction("idbridge_alive", 1, 0, func(ctx sqlite3.Context, arg ...sqlite3.Value) {
			if arg[0].Type() != sqlite3.INTEGER {
				ctx.ResultError(errPastDeadline)
				return
			}
			if err := sqliteAlive(arg[0].Int64()); err != nil {
				ctx.ResultError(err)
				return
			}
			ctx.ResultInt64(1)
		})
	})
	if err != nil {
		return nil, err
	}
	return sqliteDialect{db: db}, nil
}

func sqliteCode(err error) (int, bool) {
	var lite *sqlite3.Error
	if errors.As(err, &lite) {
		return int(lite.ExtendedCode()), true
	}
	return 0, false
}
