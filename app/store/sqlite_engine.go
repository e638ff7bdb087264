package store

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"

	sqlitedriver "github.com/glebarez/go-sqlite"
	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
)

// This file is all that knows which SQLite engine idbridge links: how it
// opens a database, registers idbridge's SQL functions and reports error
// codes. bench/sqlite-engines/run.sh swaps it for the other candidates'
// (docs/PERFORMANCE.md, "The SQLite engine").

// sqliteFuncs registers idbridge_alive with the driver once per process
// (the driver keeps its functions for every connection it opens afterwards).
var sqliteFuncs sync.Once

// sqliteDialector opens the SQLite database of dsn (from sqliteDSN) with
// idbridge's functions on every connection.
func sqliteDialector(dsn string) (gorm.Dialector, error) {
	var err error
	sqliteFuncs.Do(func() {
		err = sqlitedriver.RegisterScalarFunction("idbridge_alive", 1, func(_ *sqlitedriver.FunctionContext, args []driver.Value) (driver.Value, error) {
			deadline, ok := args[0].(int64)
			if !ok {
				return nil, errPastDeadline
			}
			if err := sqliteAlive(deadline); err != nil {
				return nil, err
			}
			return int64(1), nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("register SQLite functions: %w", err)
	}
	return sqlite.Open(dsn), nil
}

// sqliteCode is the extended result code of err when SQLite reported it.
func sqliteCode(err error) (int, bool) {
	var lite *sqlitedriver.Error
	if errors.As(err, &lite) {
		return lite.Code(), true
	}
	return 0, false
}
