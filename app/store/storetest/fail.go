package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"idbridge/app/store"
)

// FailMessage is the error the database raises for a write FailWrites
// refuses.
const FailMessage = "idbridge test: write refused"

var failCounter atomic.Int64

// FailWrites makes st's database refuse some writes, for tests of what a
// failure in the middle of a transaction leaves behind: a trigger raises
// FailMessage before every op ("INSERT", "UPDATE" or "DELETE") of a row
// of table for which when holds, an SQL condition on the row's NEW (for
// DELETE, OLD) columns that both dialects read alike
// (`NEW.id = 'u_…'`). The failure is the database's own, in the middle
// of the statement, as a constraint or a full disk would fail it. remove
// drops the trigger; it is dropped when the test ends anyway.
func FailWrites(tb testing.TB, st *store.Store, table, op, when string) (remove func()) {
	tb.Helper()
	name := fmt.Sprintf("idbridge_test_fail_%d", failCounter.Add(1))
	var create, drop []string
	switch st.Dialect() {
	case store.Postgres:
		create = []string{
			`CREATE FUNCTION ` + name + `() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '` + FailMessage + `'; END $$`,
			`CREATE TRIGGER ` + name + ` BEFORE ` + op + ` ON ` + table + ` FOR EACH ROW WHEN (` + when + `) EXECUTE FUNCTION ` + name + `()`,
		}
		drop = []string{`DROP TRIGGER IF EXISTS ` + name + ` ON ` + table, `DROP FUNCTION IF EXISTS ` + name + `()`}
	case store.SQLite:
		create = []string{`CREATE TRIGGER ` + name + ` BEFORE ` + op + ` ON ` + table + ` FOR EACH ROW WHEN (` + when + `) BEGIN SELECT RAISE(ABORT, '` + FailMessage + `'); END`}
		drop = []string{`DROP TRIGGER IF EXISTS ` + name}
	default:
		tb.Fatalf("storetest: FailWrites on %q", st.Dialect())
	}
	exec := func(stmts []string) error {
		for _, s := range stmts {
			if _, err := st.SQLDB().ExecContext(context.Background(), s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	if err := exec(create); err != nil {
		tb.Fatalf("storetest: FailWrites: %v", err)
	}
	var once sync.Once
	remove = func() {
		once.Do(func() {
			if err := exec(drop); err != nil {
				tb.Errorf("storetest: FailWrites: %v", err)
			}
		})
	}
	tb.Cleanup(remove)
	return remove
}
