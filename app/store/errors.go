package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"idbridge/models"
)

// Messages of the errors translate makes from database failures; they are
// safe to show to a client.
const (
	msgUnavailable = "the database is not available right now; try again shortly"
	msgTimeout     = "the database did not answer in time; try again shortly"
	msgUnstorable  = "a value in the request cannot be stored by the database"
)

// unavailableError classifies err, a failure of the database rather than of
// the request: a lost or refused connection, a server that is shutting down
// or starting up, a statement that ran past its deadline, a lock that could
// not be had in time. It returns the client-safe message, or "" when err is
// none of these. Identity providers retry a 503 with Retry-After; they
// treat a 500 as a failed change.
func unavailableError(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return msgTimeout
	}
	if errors.Is(err, context.Canceled) {
		// The caller went away: nobody reads the answer, but it is no
		// fault of the server's either.
		return msgUnavailable
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case strings.HasPrefix(pg.Code, "08"), // connection exception
			strings.HasPrefix(pg.Code, "53"),       // insufficient resources (too many connections)
			strings.HasPrefix(pg.Code, "57P"),      // admin/crash shutdown, cannot connect now
			pg.Code == "40001", pg.Code == "40P01", // serialization failure, deadlock: try again
			pg.Code == "55P03", // lock not available
			pg.Code == "25P03": // idle-in-transaction timeout
			return msgUnavailable
		case pg.Code == "57014": // query_canceled: statement_timeout
			return msgTimeout
		}
		return ""
	}
	if code, ok := sqliteCode(err); ok {
		switch code & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return msgUnavailable
		case 9: // SQLITE_INTERRUPT: the statement's context ended
			return msgTimeout
		}
		return ""
	}
	var connect *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connect), pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &netErr):
		return msgUnavailable
	}
	return ""
}

// unstorableError reports a value the database refused to hold: PostgreSQL's
// data exceptions (invalid UTF-8, a number out of range, an unsupported
// Unicode escape) and its program limits (an index row too large), and
// SQLite's "string or blob too big". The boundary checks of app/scim refuse
// such values first; this keeps a value that slips past them a 400, not a 500.
func unstorableError(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return strings.HasPrefix(pg.Code, "22") || pg.Code == "54000" || pg.Code == "54001"
	}
	if code, ok := sqliteCode(err); ok {
		return code&0xff == 18 // SQLITE_TOOBIG
	}
	return false
}

// classify wraps err in the models.Error its cause calls for, keeping the
// cause in the chain (for logs and errors.Is), or returns nil when err is
// neither a database outage nor an unstorable value.
func classify(err error) error {
	if msg := unavailableError(err); msg != "" {
		return fmt.Errorf("%w: %w", &models.Error{Code: models.CodeUnavailable, Message: msg}, err)
	}
	if unstorableError(err) {
		return fmt.Errorf("%w: %w", &models.Error{Code: models.CodeInvalid, Message: msgUnstorable}, err)
	}
	return nil
}
