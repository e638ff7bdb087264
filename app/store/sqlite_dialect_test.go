package store

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"idbridge/app/secret"
)

func TestSQLiteDialectQuotesIdentifiers(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`users`, `"users"`},
		{`users.user_name`, `"users"."user_name"`},
		{`main.users.id`, `"main"."users"."id"`},
		{`we"ird`, `"we""ird"`},
		{`a""b`, `"a""""b"`},
		{`t.co"l`, `"t"."co""l"`},
		// Already quoted: one identifier, dots and doubled quotes kept.
		{`"a.b"`, `"a.b"`},
		{`"a.b".c`, `"a.b"."c"`},
		{`t."x""y.z"`, `"t"."x""y.z"`},
		{`"say ""hi"""`, `"say ""hi"""`},
		// Not a whole quoted identifier: quoted as it is, up to each dot.
		{`"open.x`, `"""open"."x"`},
		{`"a"b.c`, `"""a""b"."c"`},
		{`.x`, `""."x"`},
		{``, `""`},
	} {
		var b strings.Builder
		sqliteDialect{}.QuoteTo(&b, tc.in)
		if b.String() != tc.want {
			t.Errorf("QuoteTo(%s) = %s, want %s", tc.in, b.String(), tc.want)
		}
	}
}

// openDialectStore opens an unmigrated SQLite store for the dialect's
// tests, which make tables of their own.
func openDialectStore(t *testing.T) *Store {
	t.Helper()
	keys, err := secret.ParseKeys("t1:" + base64.StdEncoding.EncodeToString([]byte("idbridge-dialect-test-key-32-byt")))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := secret.NewRing(keys)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Options{Driver: SQLite, DSN: filepath.Join(t.TempDir(), "dialect.db"), Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// dialectRow's table has quotes and a space in its name, and so has its
// name column: every statement GORM builds for it goes through QuoteTo.
// (Not a dot: GORM itself reads a dot in a model's table name as schema.table.)
type dialectRow struct {
	ID   int64
	Name string `gorm:"column:na\"me"`
}

func (dialectRow) TableName() string { return `dialect "rows"` }

const dialectTable = `CREATE TABLE "dialect ""rows""" (id INTEGER PRIMARY KEY, "na""me" TEXT NOT NULL)`

func dialectNames(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var rows []dialectRow
	if err := db.Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
	}
	return strings.Join(names, ",")
}

// The statements GORM builds through the dialect run on SQLite: quoted
// names with quotes and dots, RETURNING of a generated key, a default in a
// multi-row INSERT, OFFSET without LIMIT, and a locking clause.
func TestSQLiteDialectStatementsRun(t *testing.T) {
	s := openDialectStore(t)
	db := s.db.WithContext(context.Background())
	if err := db.Exec(dialectTable).Error; err != nil {
		t.Fatal(err)
	}

	one := dialectRow{Name: "one"}
	if err := db.Create(&one).Error; err != nil {
		t.Fatal(err)
	}
	if one.ID != 1 {
		t.Errorf("created row has ID %d, want 1 (RETURNING)", one.ID)
	}
	// The first row's ID is left to the database (DefaultValueOf), the
	// second's is given.
	more := []dialectRow{{Name: "two"}, {ID: 10, Name: "ten"}}
	if err := db.Create(&more).Error; err != nil {
		t.Fatal(err)
	}
	if more[0].ID != 2 || more[1].ID != 10 {
		t.Errorf("multi-row create IDs %d, %d; want 2, 10", more[0].ID, more[1].ID)
	}
	if got, want := dialectNames(t, db), "one,two,ten"; got != want {
		t.Errorf("names %s, want %s", got, want)
	}

	var rows []dialectRow
	if err := db.Order("id").Offset(1).Find(&rows).Error; err != nil {
		t.Fatalf("OFFSET without LIMIT: %v", err)
	}
	if len(rows) != 2 || rows[0].Name != "two" {
		t.Errorf("OFFSET 1 found %v, want two and ten", rows)
	}
	rows = nil
	if err := db.Order("id").Limit(1).Offset(1).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Name != "two" {
		t.Errorf("LIMIT 1 OFFSET 1 found %v, want two", rows)
	}

	// A column qualified by its table: "table"."column".
	nameCol := clause.Column{Table: clause.CurrentTable, Name: `na"me`}
	err := db.Transaction(func(tx *gorm.DB) error {
		var r dialectRow
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where(clause.Eq{Column: nameCol, Value: "ten"}).Take(&r).Error; err != nil {
			return err
		}
		if r.ID != 10 {
			t.Errorf("found %v, want ID 10", r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a locking clause: %v", err)
	}

	got := s.db.ToSQL(func(tx *gorm.DB) *gorm.DB {
		var r []dialectRow
		return tx.Table(`t.we"ird`).Clauses(clause.Locking{Strength: "UPDATE"}).Where(clause.Eq{Column: nameCol, Value: "it's"}).Find(&r)
	})
	// The dropped locking clause leaves the separator GORM wrote before it.
	if want := `SELECT * FROM "t"."we""ird" WHERE "we""ird"."na""me" = 'it''s'`; strings.TrimSpace(got) != want {
		t.Errorf("ToSQL = %s, want %s", got, want)
	}
}

// A GORM transaction nested in another runs in a savepoint: its rollback
// undoes only its own writes.
func TestSQLiteDialectNestedTransactions(t *testing.T) {
	s := openDialectStore(t)
	db := s.db.WithContext(context.Background())
	if err := db.Exec(dialectTable).Error; err != nil {
		t.Fatal(err)
	}
	errInner := errors.New("inner fails")
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&dialectRow{Name: "outer"}).Error; err != nil {
			return err
		}
		err := tx.Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&dialectRow{Name: "rolled back"}).Error; err != nil {
				return err
			}
			return errInner
		})
		if !errors.Is(err, errInner) {
			t.Errorf("inner transaction returned %v, want its own error", err)
		}
		return tx.Transaction(func(tx *gorm.DB) error {
			return tx.Create(&dialectRow{Name: "inner kept"}).Error
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dialectNames(t, db), "outer,inner kept"; got != want {
		t.Errorf("after commit: %s, want %s", got, want)
	}

	// A savepoint that cannot be rolled back to reports it.
	err = db.Transaction(func(tx *gorm.DB) error {
		return sqliteDialect{}.RollbackTo(tx, "never made")
	})
	if err == nil || !strings.Contains(err.Error(), "never made") {
		t.Errorf("ROLLBACK TO an unknown savepoint: %v, want SQLite's error", err)
	}
}
