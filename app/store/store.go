// Package store owns idbridge's persistence: the GORM connection to SQLite
// or PostgreSQL, the versioned migrations, transactions, and one file per
// aggregate. It is the only package that imports GORM. Every tenant-scoped
// call takes the site explicitly.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"idbridge/app/secret"
	"idbridge/models"
)

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Options configure Open.
type Options struct {
	Driver string // SQLite or Postgres
	DSN    string // file path for SQLite, URL for PostgreSQL
	Ring   *secret.Ring
	Now    func() time.Time // injected clock; time.Now when nil
	Logger *slog.Logger

	// Pool settings for PostgreSQL; zero values pick defaults.
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration

	// StatementTimeout bounds every statement (DefaultStatementTimeout
	// when zero): on PostgreSQL it is each connection's statement_timeout
	// (set when the connection opens: no round trip), on SQLite the busy
	// timeout a writer waits for the lock; callers that let clients choose
	// what runs (SCIM) also end their context after WorkTimeout, which
	// interrupts a SQLite statement. A statement past its deadline is
	// CodeUnavailable: the HTTP layer answers 503 with Retry-After.
	StatementTimeout time.Duration

	// OnStatement, when set, is called after every statement a Tx runs
	// (through GORM or a cached prepared statement), with the statement's
	// context. Tests count the statements of a request with it, so that a
	// change that makes one request run a statement per member or per
	// operation fails, with no timing involved.
	OnStatement func(ctx context.Context)
}

// DefaultStatementTimeout is the deadline of one statement unless
// configured: far above what any of idbridge's statements needs on a
// healthy database (milliseconds), short enough that a connection is never
// held long by one request.
const DefaultStatementTimeout = 5 * time.Second

// Store is the database handle. It is safe for concurrent use.
type Store struct {
	db      *gorm.DB
	sqlDB   *sql.DB
	dialect string
	dsn     string
	ring    *secret.Ring
	now     func() time.Time
	log     *slog.Logger

	// afterPlan, set only by tests, runs in Migrate between reading the
	// applied versions and applying the rest, to force races.
	afterPlan func()

	// stmts caches prepared statements of hot read queries (stmts.go).
	stmts stmtCache

	// batches coalesces the SCIM hot paths on PostgreSQL (scim_batch.go);
	// nil on SQLite.
	batches *scimBatches

	// liteCreates batches SCIM creates into one write transaction on
	// SQLite (sqlite_batch.go); nil on PostgreSQL.
	liteCreates *coalescer[*userCreate]
	// writeTurn (SQLite) gives this process's write transactions SQLite's
	// one write lock in the order they asked (sqlite_batch.go).
	writeTurn chan struct{}

	// stmtTimeout is Options.StatementTimeout.
	stmtTimeout time.Duration
	maxOpen     int

	// local delivers Notify's payloads to this process's Listen calls on
	// SQLite (notify.go).
	local localListeners

	// outboxHook, set once by OnOutbox before use, hears of committed
	// outbox items (sync_wake.go).
	outboxHook func(siteIDs []string)

	// onStatement is Options.OnStatement.
	onStatement func(ctx context.Context)
}

// registerStatementHook calls onStatement after each statement GORM runs
// (queries, raw statements, creates, updates, deletes, row scans).
func (s *Store) registerStatementHook() error {
	if s.onStatement == nil {
		return nil
	}
	after := func(db *gorm.DB) { s.onStatement(db.Statement.Context) }
	cb := s.db.Callback()
	for _, err := range []error{
		cb.Create().After("*").Register("idbridge:statement", after),
		cb.Query().After("*").Register("idbridge:statement", after),
		cb.Update().After("*").Register("idbridge:statement", after),
		cb.Delete().After("*").Register("idbridge:statement", after),
		cb.Row().After("*").Register("idbridge:statement", after),
		cb.Raw().After("*").Register("idbridge:statement", after),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Open connects to the database and checks that it answers. It does not
// migrate; call Migrate.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Ring == nil {
		return nil, errors.New("open store: no key ring")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stmtTimeout := orDefaultDuration(opts.StatementTimeout, DefaultStatementTimeout)
	var dialector gorm.Dialector
	switch opts.Driver {
	case SQLite:
		dsn, err := sqliteDSN(opts.DSN, stmtTimeout)
		if err != nil {
			return nil, err
		}
		if dialector, err = sqliteDialector(dsn); err != nil {
			return nil, err
		}
	case Postgres:
		dialector = postgres.New(postgres.Config{DSN: postgresDSN(opts.DSN, stmtTimeout)})
	default:
		return nil, fmt.Errorf("open store: unknown driver %q", opts.Driver)
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		NowFunc:                func() time.Time { return storedTime(now()) },
		TranslateError:         true,
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		PrepareStmt:            false,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", opts.Driver, scrubDSN(err, opts.DSN))
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", opts.Driver, err)
	}
	var maxOpen int
	if opts.Driver == Postgres {
		// As many idle connections as open ones: under load, a pool that
		// closes what it cannot keep idle reconnects all the time, and a
		// new PostgreSQL backend costs milliseconds (SCIM load test,
		// docs/PERFORMANCE.md).
		maxOpen = orDefault(opts.MaxOpenConns, 20)
		sqlDB.SetMaxOpenConns(maxOpen)
		sqlDB.SetMaxIdleConns(orDefault(opts.MaxIdleConns, maxOpen))
		sqlDB.SetConnMaxLifetime(orDefaultDuration(opts.ConnMaxLifetime, 30*time.Minute))
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	} else {
		// SQLite serialises writers; a handful of connections lets readers
		// proceed in WAL mode while a writer holds the lock. Readers are
		// CPU work in this process: two a core (8 on up to 2 cores).
		maxOpen = orDefault(opts.MaxOpenConns, max(8, 4+2*runtime.GOMAXPROCS(0)))
		sqlDB.SetMaxOpenConns(maxOpen)
		sqlDB.SetMaxIdleConns(orDefault(opts.MaxIdleConns, maxOpen))
	}
	s := &Store{db: db, sqlDB: sqlDB, dialect: opts.Driver, dsn: opts.DSN, ring: opts.Ring, now: now, log: log,
		stmtTimeout: stmtTimeout, maxOpen: maxOpen, onStatement: opts.OnStatement}
	if err := s.registerStatementHook(); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open %s database: %w", opts.Driver, err)
	}
	s.initBatches()
	s.initSQLiteBatches()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Ping(pingCtx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open %s database: %w", opts.Driver, scrubDSN(err, opts.DSN))
	}
	return s, nil
}

// sqliteDSN turns a file path into a DSN with the pragmas idbridge relies
// on: WAL for concurrent readers, enforced foreign keys, a busy timeout
// instead of immediate "database is locked" errors, and BEGIN IMMEDIATE so a
// read that becomes a write cannot deadlock against another writer.
func sqliteDSN(path string, busy time.Duration) (string, error) {
	if path == "" {
		return "", errors.New("open store: empty SQLite path")
	}
	memory := path == ":memory:" || strings.HasPrefix(path, "file::memory:")
	if !memory {
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return "", fmt.Errorf("create data directory: %w", err)
			}
		}
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if !memory {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
	}
	q.Set("_txlock", "immediate")
	if strings.HasPrefix(path, "file:") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		return path + sep + q.Encode(), nil
	}
	return "file:" + path + "?" + q.Encode(), nil
}

// postgresDSN adds the server-side deadlines to a PostgreSQL URL or
// keyword/value DSN, as run-time parameters sent when each connection
// opens, unless the operator set them: statement_timeout, and
// idle_in_transaction_session_timeout so that a transaction left open by a
// stuck caller cannot hold its locks.
func postgresDSN(dsn string, stmt time.Duration) string {
	params := [][2]string{
		{"statement_timeout", strconv.FormatInt(stmt.Milliseconds(), 10)},
		{"idle_in_transaction_session_timeout", strconv.FormatInt((6 * stmt).Milliseconds(), 10)},
	}
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		for _, p := range params {
			if !q.Has(p[0]) {
				q.Set(p[0], p[1])
			}
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for _, p := range params {
		if !strings.Contains(dsn, p[0]+"=") {
			dsn += " " + p[0] + "=" + p[1]
		}
	}
	return dsn
}

// scrubDSN removes the DSN (which may hold a password) from driver errors.
func scrubDSN(err error, dsn string) error {
	if err == nil || dsn == "" {
		return err
	}
	msg := err.Error()
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "****")
		}
	}
	msg = strings.ReplaceAll(msg, dsn, "(database URL)")
	return errors.New(msg)
}

func orDefault(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

func orDefaultDuration(v, d time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return d
}

// Dialect names the database in use.
func (s *Store) Dialect() string { return s.dialect }

// Now is the store's clock, in UTC and truncated to the microsecond that
// PostgreSQL keeps, so that a time returned by a write equals what a later
// read of the same row returns.
func (s *Store) Now() time.Time { return storedTime(s.now()) }

// storedTime is t as both databases hold it: UTC, whole microseconds
// (PostgreSQL's resolution), so that a time written and read back, or
// compared in a filter, is the same time on SQLite too.
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.sqlDB.PingContext(ctx)
}

// Stats reports connection pool statistics for metrics.

// Close closes the connection pool.
func (s *Store) Close() error {
	s.closeStatements()
	return s.sqlDB.Close()
}

// Tx is a handle for store calls: inside a transaction when it comes from
// InTx, on the pool when it comes from View. Aggregate methods live on Tx so
// that feature packages can compose several of them (and an audit event)
// into one transaction.
type Tx struct {
	db *gorm.DB
	s  *Store
	// inTx says the handle is a transaction (InTx), not the pool (View).
	inTx bool
	// outboxSites are the sites this transaction added outbox items for,
	// announced to the outbox hook once it commits.
	outboxSites []string
	// notes are Notify's payloads, delivered once it commits (SQLite).
	notes []note
}

// View returns a non-transactional handle bound to ctx.
func (s *Store) View(ctx context.Context) *Tx {
	return &Tx{db: s.db.WithContext(ctx), s: s}
}

// InTx runs fn in one transaction, committed when fn returns nil and rolled
// back otherwise. Nested calls are not supported: pass the *Tx down instead.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	var t *Tx
	err := func() error {
		if s.writeTurn != nil {
			done, err := s.takeWriteTurn(ctx)
			if err != nil {
				return err
			}
			defer done()
		}
		return translate(s.db.WithContext(ctx).Transaction(func(db *gorm.DB) error {
			t = &Tx{db: db, s: s, inTx: true}
			return fn(t)
		}))
	}()
	if err == nil && t != nil {
		s.outboxAdded(t.outboxSites)
		s.local.deliver(t.notes)
	}
	return err
}

// InTxLazyCommit is InTx for bookkeeping that can be recovered: on
// PostgreSQL its commit does not wait for the WAL to reach the disk
// (synchronous_commit off, for this transaction only). An idbridge crash
// loses nothing; a crash of the PostgreSQL server (or of its machine) may
// lose the last such commits, at most about three wal_writer_delay
// (600 ms by default), and always as a suffix of the WAL, never one
// without those before it. The sync worker records what Atlassian
// answered this way: a lost record leaves its claim's lease (claims are
// committed as usual), and the claim after it looks the changes up in
// the site before acting (docs/OPERATIONS.md). SQLite commits in WAL mode
// with synchronous=NORMAL already, so nothing changes there.
func (s *Store) InTxLazyCommit(ctx context.Context, fn func(tx *Tx) error) error {
	return s.InTx(ctx, func(tx *Tx) error {
		if s.dialect == Postgres {
			if err := tx.db.Exec(`SET LOCAL synchronous_commit = off`).Error; err != nil {
				return fmt.Errorf("lazy commit: %w", translate(err))
			}
		}
		return fn(tx)
	})
}

// WorkTimeout is how long a request's database work may take in all
// (twice the statement timeout): SCIM ends its context then.
func (s *Store) WorkTimeout() time.Duration { return 2 * s.stmtTimeout }

// MaxOpenConns is the size of the connection pool.
func (s *Store) MaxOpenConns() int { return s.maxOpen }

// translate maps database errors to models.Error codes: not found, unique
// violations (conflict), foreign-key violations and values the database
// cannot hold (invalid), and a database that is unreachable, restarting,
// overloaded or past a statement's deadline (unavailable, which the HTTP
// layer answers 503 with Retry-After). Other errors pass through unchanged
// and are internal.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*models.Error)):
		return err
	case errors.Is(err, gorm.ErrRecordNotFound):
		return &models.Error{Code: models.CodeNotFound, Message: "not found"}
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return &models.Error{Code: models.CodeConflict, Message: "already exists"}
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		return &models.Error{Code: models.CodeInvalid, Message: "refers to something that does not exist"}
	}
	if code, ok := sqliteCode(err); ok {
		// The engine's own constraint codes, for an engine whose GORM
		// dialector does not translate them.
		switch code {
		case 1555, 2067: // SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
			return &models.Error{Code: models.CodeConflict, Message: "already exists"}
		case 787: // SQLITE_CONSTRAINT_FOREIGNKEY
			return &models.Error{Code: models.CodeInvalid, Message: "refers to something that does not exist"}
		}
	}
	if c := classify(err); c != nil {
		return c
	}
	return err
}

// SQLDB exposes the connection pool for pool metrics only.
func (s *Store) SQLDB() *sql.DB { return s.sqlDB }
