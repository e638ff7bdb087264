package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
)

// stmtCacheMax bounds the prepared statements kept per store. SCIM lists
// compile one SQL text per filter shape; identity providers use a handful.
const stmtCacheMax = 256

// stmtCache holds prepared statements of hot read queries by SQL text, so
// that SQLite does not parse them again on every request and neither
// dialect goes through GORM's statement builder for them. database/sql
// prepares a statement lazily on each connection it runs on.
type stmtCache struct {
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	closed bool // the store closed: nothing is cached any more
}

// queryRows runs a read query (placeholders "?") with a cached prepared
// statement, on the transaction when tx is one. It falls back to GORM when
// the cache is full or the handle is neither pool nor transaction.
func (tx *Tx) queryRows(query string, args ...any) (*sql.Rows, error) {
	ctx := tx.db.Statement.Context
	if ctx == nil {
		ctx = context.Background()
	}
	stmt := tx.s.prepared(ctx, query)
	if stmt != nil {
		switch pool := tx.db.Statement.ConnPool.(type) {
		case *sql.DB:
			defer tx.s.statementRan(ctx)
			return stmt.QueryContext(ctx, args...)
		case *sql.Tx:
			defer tx.s.statementRan(ctx)
			return pool.StmtContext(ctx, stmt).QueryContext(ctx, args...)
		}
	}
	return tx.db.Raw(query, args...).Rows()
}

// prepared returns the cached statement for query, preparing it on first
// use; nil when it cannot be cached. The cache's lock is never held while
// a statement is prepared: on PostgreSQL that is a round trip, which waits
// for the table's lock when an INSERT is prepared behind a lock another
// transaction holds, and every other statement of the process would wait
// behind it (TestCreatesWaitForTheirBatchWithoutAWorkSlot). Two callers
// may prepare the same query at once; the second to finish closes its
// own and uses the first's.
func (s *Store) prepared(ctx context.Context, query string) *sql.Stmt {
	s.stmts.mu.Lock()
	st, ok := s.stmts.m[query]
	full := len(s.stmts.m) >= stmtCacheMax
	s.stmts.mu.Unlock()
	if ok {
		return st
	}
	if full {
		return nil
	}
	st, err := s.sqlDB.PrepareContext(ctx, s.native(query))
	if err != nil {
		return nil // GORM runs it and reports the error
	}
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	if prev, ok := s.stmts.m[query]; ok {
		_ = st.Close()
		return prev
	}
	if s.stmts.closed || len(s.stmts.m) >= stmtCacheMax {
		_ = st.Close()
		return nil
	}
	if s.stmts.m == nil {
		s.stmts.m = make(map[string]*sql.Stmt)
	}
	s.stmts.m[query] = st
	return st
}

// native rewrites "?" placeholders as the driver wants them: $1, $2, … on
// PostgreSQL. The store's SQL never has "?" inside a literal.
func (s *Store) native(query string) string {
	if s.dialect != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (s *Store) closeStatements() {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	for _, st := range s.stmts.m {
		_ = st.Close()
	}
	s.stmts.m = nil
	s.stmts.closed = true
}

// execStmt runs a write statement (placeholders "?") with a cached
// prepared statement, on the transaction when tx is one, and translates
// driver errors as GORM would (unique violations become conflicts).
func (tx *Tx) execStmt(query string, args ...any) (sql.Result, error) {
	ctx := tx.db.Statement.Context
	if ctx == nil {
		ctx = context.Background()
	}
	stmt := tx.s.prepared(ctx, query)
	if stmt == nil {
		res := tx.db.Exec(query, args...)
		return rowsResult(res.RowsAffected), translate(res.Error)
	}
	var res sql.Result
	var err error
	switch pool := tx.db.Statement.ConnPool.(type) {
	case *sql.DB:
		res, err = stmt.ExecContext(ctx, args...)
	case *sql.Tx:
		res, err = pool.StmtContext(ctx, stmt).ExecContext(ctx, args...)
	default:
		r := tx.db.Exec(query, args...)
		return rowsResult(r.RowsAffected), translate(r.Error)
	}
	if err != nil {
		if t, ok := tx.s.db.Dialector.(interface{ Translate(error) error }); ok {
			err = t.Translate(err)
		}
		return nil, translate(err)
	}
	return res, nil
}

type rowsResult int64

func (r rowsResult) LastInsertId() (int64, error) { return 0, nil }
func (r rowsResult) RowsAffected() (int64, error) { return int64(r), nil }

// statementRan tells Options.OnStatement of a statement run outside GORM.
func (s *Store) statementRan(ctx context.Context) {
	if s.onStatement != nil {
		s.onStatement(ctx)
	}
}
