package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// columnsOf lists "table.column" of every table in a freshly migrated
// database, as the database itself reports them.
func columnsOf(tb testing.TB, st *store.Store) []string {
	tb.Helper()
	ctx := context.Background()
	var rows []struct {
		TableName  string
		ColumnName string
	}
	var err error
	if st.Dialect() == store.Postgres {
		err = store.ScanRaw(ctx, st, &rows, `SELECT table_name, column_name FROM information_schema.columns
			WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`)
	} else {
		err = store.ScanRaw(ctx, st, &rows, `SELECT m.name AS table_name, p.name AS column_name
			FROM sqlite_master m, pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`)
	}
	if err != nil {
		tb.Fatalf("list columns: %v", err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.TableName + "." + r.ColumnName
	}
	return out
}

// TestInventoryClassifiesEveryColumn is the privacy guard of SPEC 8: every
// column of every table is declared in models.Inventory() as personal data
// or not, and every declaration names a real column. A new column fails
// this test until it is classified.
func TestInventoryClassifiesEveryColumn(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		actual := columnsOf(t, st)
		if len(actual) < 10 {
			t.Fatalf("found only %d columns: %v", len(actual), actual)
		}
		declared := map[string]models.InventoryEntry{}
		for _, e := range models.Inventory() {
			key := e.Table + "." + e.Column
			if _, dup := declared[key]; dup {
				t.Errorf("models.Inventory() classifies %s twice: keep one entry", key)
			}
			declared[key] = e
		}
		for _, col := range actual {
			if _, ok := declared[col]; ok {
				continue
			}
			table, column, _ := strings.Cut(col, ".")
			t.Errorf("column %s is not classified in the data inventory (models/inventory.go). Add an entry to models.Inventory(), either\n"+
				"\t{Table: %q, Column: %q, Purpose: \"why idbridge keeps it\"}, // not personal data\n"+
				"or, when it can identify a person (names, emails, account IDs, IPs, free text about people, …):\n"+
				"\t{Table: %q, Column: %q, Personal: true, Category: \"what kind of personal data\", Purpose: \"why\",\n"+
				"\t\tLegalBasis: models.BasisContract, Source: \"where it comes from\", Retention: models.RetainWhileInstalled, Recipients: models.RecipientsNone},\n"+
				"and, for personal data, bump models.InventoryVersion and models.InventoryLastChanged (the /privacy page shows them).",
				col, table, column, table, column)
		}
		for key := range declared {
			if !slices.Contains(actual, key) {
				t.Errorf("models.Inventory() classifies %s, but no table has that column: remove or rename the entry", key)
			}
		}
	})
}

// TestInventoryEntriesComplete: personal data says what, why, on which
// basis, from where, how long and to whom; everything says why.
func TestInventoryEntriesComplete(t *testing.T) {
	t.Parallel()
	for _, e := range models.Inventory() {
		name := e.Table + "." + e.Column
		if e.Table == "" || e.Column == "" {
			t.Errorf("inventory entry without table or column: %+v", e)
		}
		if e.Purpose == "" {
			t.Errorf("%s: Purpose is empty", name)
		}
		if !e.Personal {
			continue
		}
		for field, v := range map[string]string{"Category": e.Category, "LegalBasis": e.LegalBasis, "Source": e.Source,
			"Retention": e.Retention, "Recipients": e.Recipients} {
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s is personal data but its %s is empty", name, field)
			}
		}
	}
	if models.InventoryVersion == "" || len(models.InventoryLastChanged) != len("2006-01-02") {
		t.Errorf("inventory version %q, last changed %q: want both set, the date as YYYY-MM-DD", models.InventoryVersion, models.InventoryLastChanged)
	}
	// The sealed (encrypted) columns hold secrets; they must be declared
	// like any other.
	for _, col := range store.SealedColumnNames() {
		found := false
		for _, e := range models.Inventory() {
			if e.Table+"."+e.Column == col {
				found = true
			}
		}
		if !found {
			t.Errorf("sealed column %s is not in the inventory", col)
		}
	}
}
