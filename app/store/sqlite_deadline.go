package store

import (
	"errors"
	"fmt"
	"time"

	"idbridge/models"
)

// SQLite's driver interrupts a statement whose context ends only while it
// is prepared and executed, not while a SELECT steps through its rows, and
// those steps are where a directory query over every user of a site spends
// its time. So directory queries on SQLite carry their deadline as an
// argument of idbridge_alive(deadline), a function SQLite calls for every
// row it considers: past the deadline it fails, and the statement with it.

var errPastDeadline = errors.New("idbridge: the statement ran past its deadline")

// sqliteAlive is the body of idbridge_alive(deadline), which the engine
// file (sqlite_engine.go) registers with the SQLite engine in its own way:
// nil while deadline, in Unix nanoseconds, is ahead.
func sqliteAlive(deadline int64) error {
	if time.Now().UnixNano() >= deadline {
		return errPastDeadline
	}
	return nil
}

// statementDeadline is when a directory query started now must end: the
// statement timeout, or the caller's deadline when that comes first.
func (tx *Tx) statementDeadline() time.Time {
	// Real time, not the store's clock (tests may fix that in the past).
	d := time.Now().Add(tx.s.stmtTimeout)
	if cd, ok := tx.ctx().Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}

// pastDeadline turns the failure of a statement that carried deadline into
// the timeout it is, once the deadline has passed.
func pastDeadline(err error, deadline time.Time) error {
	if err != nil && !deadline.IsZero() && !time.Now().Before(deadline) {
		return fmt.Errorf("%w: %w", &models.Error{Code: models.CodeUnavailable, Message: msgTimeout}, err)
	}
	return err
}
