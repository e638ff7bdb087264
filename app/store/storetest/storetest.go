// Package storetest is the test harness for code that uses app/store: it
// opens a fresh, migrated store on every backend under test (SQLite always,
// PostgreSQL when IDBRIDGE_TEST_DATABASE_URL is set), with a fixed clock and
// a test key ring, and cleans up after the test.
//
// PostgreSQL tests share one database: each Open creates its own schema
// t_<random> and connects with search_path set to it (pgx sends unknown URL
// parameters as run-time parameters), and the schema is dropped with CASCADE
// when the test ends.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	// The pgx database/sql driver, for the admin connection that creates and
	// drops the per-test schemas.
	_ "github.com/jackc/pgx/v5/stdlib"

	"idbridge/app/secret"
	"idbridge/app/store"
)

// EnvDatabaseURL names the variable holding the PostgreSQL test database URL.
const EnvDatabaseURL = "IDBRIDGE_TEST_DATABASE_URL"

// Backend opens stores on one database engine. Name is "sqlite" or
// "postgres", suitable as a subtest name.
type Backend struct {
	Name string
	// Open returns a fresh store, closed (and its database removed) when the
	// test ends. Unless an option says otherwise it is migrated, its key ring
	// is checked, it uses a fresh ring from Ring and the real clock.
	Open func(tb testing.TB, opts ...Option) *store.Store
}

// Option changes what Backend.Open does.
type Option func(*options)

type options struct {
	now      func() time.Time
	ring     *secret.Ring
	migrate  bool
	checkKey bool
	same     *store.Store
	tune     []func(*store.Options)
}

// WithNow injects the store's clock, for example (*Clock).Now.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithStoreOptions changes the store.Options the store is opened with
// (pool size, timeouts) after the harness has set its own.
func WithStoreOptions(fn func(*store.Options)) Option {
	return func(o *options) { o.tune = append(o.tune, fn) }
}

// WithRing opens the store with ring instead of a fresh one from Ring.
func WithRing(ring *secret.Ring) Option { return func(o *options) { o.ring = ring } }

// Unmigrated returns the store as Open leaves it: neither migrated nor key
// checked, for tests of Migrate itself.
func Unmigrated() Option { return func(o *options) { o.migrate, o.checkKey = false, false } }

// NoKeyCheck migrates but skips CheckKeyRing, for tests that expect it to fail.
func NoKeyCheck() Option { return func(o *options) { o.checkKey = false } }

// SameDatabase opens another store on the database (PostgreSQL: the schema)
// of st, which must come from the same Backend. Unless WithRing or WithNow
// say otherwise it shares st's ring and clock. The database stays until the
// test that created it ends.
func SameDatabase(st *store.Store) Option { return func(o *options) { o.same = st } }

// opened remembers how each store of a backend was opened, so SameDatabase
// can open another one on the same database. It lives in the Backend's
// closure, never at package level.
type opened struct {
	mu     sync.Mutex
	stores map[*store.Store]openedStore
}

type openedStore struct {
	dsn  string
	ring *secret.Ring
	now  func() time.Time
}

func (o *opened) add(st *store.Store, rec openedStore) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stores[st] = rec
}

func (o *opened) get(st *store.Store) (openedStore, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rec, ok := o.stores[st]
	return rec, ok
}

// Backends returns SQLite and, when IDBRIDGE_TEST_DATABASE_URL is set,
// PostgreSQL. With CI=true a missing URL fails the test instead of
// quietly testing SQLite alone.
func Backends(tb testing.TB) []Backend {
	tb.Helper()
	backends := []Backend{sqliteBackend()}
	if u, ok := postgresURL(tb); ok {
		backends = append(backends, postgresBackend(u))
	}
	return backends
}

// ForEach runs fn as a subtest per backend.
func ForEach(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// PostgresURL returns IDBRIDGE_TEST_DATABASE_URL. When it is unset the test
// is skipped, or fails when CI=true.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	u, ok := postgresURL(tb)
	if !ok {
		tb.Skipf("%s is not set: skipping a PostgreSQL-only test", EnvDatabaseURL)
	}
	return u
}

func postgresURL(tb testing.TB) (string, bool) {
	tb.Helper()
	u := strings.TrimSpace(os.Getenv(EnvDatabaseURL))
	if u == "" && os.Getenv("CI") == "true" {
		tb.Fatalf("%s is not set, but CI=true: CI must run the store tests on PostgreSQL too (for example postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", EnvDatabaseURL)
	}
	return u, u != ""
}

// Ring returns a ring holding one fresh random key with ID "test1".
func Ring(tb testing.TB) *secret.Ring {
	tb.Helper()
	return NewRing(tb, NewKey(tb, "test1"))
}

// NewKey returns a fresh random key with the given ID.
func NewKey(tb testing.TB, id string) secret.Key {
	tb.Helper()
	k, err := secret.GenerateKey(id)
	if err != nil {
		tb.Fatalf("generate key %q: %v", id, err)
	}
	return k
}

// NewRing builds a ring from keys, the first one sealing.
func NewRing(tb testing.TB, keys ...secret.Key) *secret.Ring {
	tb.Helper()
	r, err := secret.NewRing(keys)
	if err != nil {
		tb.Fatalf("new key ring: %v", err)
	}
	return r
}

func sqliteBackend() Backend {
	reg := &opened{stores: map[*store.Store]openedStore{}}
	return Backend{Name: store.SQLite, Open: func(tb testing.TB, opts ...Option) *store.Store {
		tb.Helper()
		o, base := resolve(tb, reg, opts)
		dsn := base.dsn
		if o.same == nil {
			dsn = filepath.Join(tb.TempDir(), "idbridge.db")
		}
		return open(tb, reg, store.SQLite, dsn, o)
	}}
}

func postgresBackend(adminURL string) Backend {
	reg := &opened{stores: map[*store.Store]openedStore{}}
	return Backend{Name: store.Postgres, Open: func(tb testing.TB, opts ...Option) *store.Store {
		tb.Helper()
		o, base := resolve(tb, reg, opts)
		dsn := base.dsn
		if o.same == nil {
			schema := createSchema(tb, adminURL)
			var err error
			if dsn, err = withSearchPath(adminURL, schema); err != nil {
				tb.Fatalf("%s: %v", EnvDatabaseURL, err)
			}
		}
		return open(tb, reg, store.Postgres, dsn, o)
	}}
}

// resolve applies opts over the defaults, which for SameDatabase are the
// ring and clock of the store it names.
func resolve(tb testing.TB, reg *opened, opts []Option) (options, openedStore) {
	tb.Helper()
	o := options{migrate: true, checkKey: true}
	for _, opt := range opts {
		opt(&o)
	}
	var base openedStore
	if o.same != nil {
		var ok bool
		if base, ok = reg.get(o.same); !ok {
			tb.Fatal("storetest.SameDatabase: the store was not opened by this backend")
		}
		if o.ring == nil {
			o.ring = base.ring
		}
		if o.now == nil {
			o.now = base.now
		}
	}
	if o.ring == nil {
		o.ring = Ring(tb)
	}
	return o, base
}

func open(tb testing.TB, reg *opened, driver, dsn string, o options) *store.Store {
	tb.Helper()
	ctx := context.Background()
	so := store.Options{
		Driver: driver,
		DSN:    dsn,
		Ring:   o.ring,
		Now:    o.now,
		// Small pools: many tests, and other packages' tests, share one
		// PostgreSQL server. Migrate needs two connections at once.
		MaxOpenConns: 4,
		MaxIdleConns: 2,
	}
	for _, fn := range o.tune {
		fn(&so)
	}
	st, err := store.Open(ctx, so)
	if err != nil {
		tb.Fatalf("open %s store: %v", driver, err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close %s store: %v", driver, err)
		}
	})
	reg.add(st, openedStore{dsn: dsn, ring: o.ring, now: o.now})
	if o.migrate {
		if _, err := st.Migrate(ctx); err != nil {
			tb.Fatalf("migrate %s store: %v", driver, err)
		}
	}
	if o.checkKey {
		if err := st.CheckKeyRing(ctx); err != nil {
			tb.Fatalf("check key ring of %s store: %v", driver, err)
		}
	}
	return st
}

// createSchema creates a fresh schema over a separate admin connection and
// drops it when the test ends (after the stores on it are closed, since
// cleanups run last-registered first).
func createSchema(tb testing.TB, adminURL string) string {
	tb.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if err := adminExec(adminURL, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		if err := adminExec(adminURL, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

func adminExec(adminURL, stmt string) error {
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

// withSearchPath adds search_path to a PostgreSQL URL or keyword/value DSN.
func withSearchPath(dsn, schema string) (string, error) {
	if !strings.Contains(dsn, "://") {
		return dsn + " search_path=" + schema, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("not a valid URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Clock is a fixed clock that moves only when told to. It is safe for
// concurrent use; pass its Now method to WithNow.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d (backward when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
