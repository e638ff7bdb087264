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

// TestTablesDeclareHowToFindAPerson is the other half of the privacy
// guard (SPEC 8): every table is declared in models.Tables() (how its
// rows are reached, by site and key), every column a declaration names
// exists, and every table with a personal column declares how the rows
// about one person are found (or, with NotByPerson, why they cannot be).
// Export, erasure, restriction, reporting and purge work from these
// declarations alone, so a table that declares nothing would silently
// escape all of them.
func TestTablesDeclareHowToFindAPerson(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		actual := map[string]bool{}
		tables := map[string]bool{}
		for _, col := range columnsOf(t, st) {
			actual[col] = true
			table, _, _ := strings.Cut(col, ".")
			tables[table] = true
		}
		personal := map[string][]string{}
		for _, e := range models.Inventory() {
			if e.Personal {
				personal[e.Table] = append(personal[e.Table], e.Column)
			}
		}
		declared := map[string]bool{}
		has := func(table, column, what string) {
			if !actual[table+"."+column] {
				t.Errorf("models.Tables(): %s of %s names column %q, which the table does not have", what, table, column)
			}
		}
		for _, d := range models.Tables() {
			if declared[d.Name] {
				t.Errorf("models.Tables() declares %s twice", d.Name)
			}
			declared[d.Name] = true
			if !tables[d.Name] {
				t.Errorf("models.Tables() declares %s, but there is no such table: remove the declaration", d.Name)
				continue
			}
			if d.SiteColumn != "" {
				has(d.Name, d.SiteColumn, "the site column")
			}
			for _, k := range d.Key {
				has(d.Name, k, "the key")
			}
			if d.SiteColumn == "" && len(personal[d.Name]) > 0 {
				t.Errorf("%s holds personal data (%v) but declares no site column: every personal row belongs to a site", d.Name, personal[d.Name])
			}
			if p := d.Person; p != nil {
				if len(p.AccountColumns) == 0 && p.Via == nil {
					t.Errorf("%s: its PersonLink names neither AccountColumns nor Via", d.Name)
				}
				for _, c := range p.AccountColumns {
					has(d.Name, c, "an account column")
				}
				for _, c := range p.ActorColumns {
					has(d.Name, c, "an actor column")
				}
				if v := p.Via; v != nil {
					has(d.Name, v.Column, "the join column")
					has(v.Table, v.TableColumn, "the joined column")
					has(v.Table, v.AccountColumn, "the joined account column")
				}
				for _, c := range append(append([]string{}, p.ClearColumns...), p.Cached...) {
					has(d.Name, c, "a cleared or cached column")
				}
				switch p.Erase {
				case models.EraseDelete, models.EraseClear, models.ErasePseudonymise:
				default:
					t.Errorf("%s: unknown erase action %q", d.Name, p.Erase)
				}
				if p.Erase != models.EraseDelete && p.Via != nil {
					t.Errorf("%s: a table reached through another can only be erased by deleting its rows", d.Name)
				}
			}
			// Every column that holds an account ID is one the person's
			// rows are found by, or one the person acted through: else
			// export, erasure and reporting would miss it.
			for _, e := range models.Inventory() {
				if e.Table != d.Name || !strings.Contains(e.Category, "Atlassian account ID") {
					continue
				}
				if d.Person == nil || (!slices.Contains(d.Person.AccountColumns, e.Column) && !slices.Contains(d.Person.ActorColumns, e.Column)) {
					t.Errorf("%s.%s holds an account ID but is neither an account nor an actor column of the table's PersonLink", d.Name, e.Column)
				}
			}
			if len(personal[d.Name]) > 0 && d.Person == nil && d.NotByPerson == "" {
				t.Errorf("table %s holds personal data (%v) but models.Tables() declares no way to find a person's rows in it.\n"+
					"Add a PersonLink to its declaration: the column that holds the Atlassian account ID\n"+
					"\twith(site(%q, \"id\"), byAccount(\"account_id\")),\n"+
					"or the join that reaches it (PersonLink{Via: &PersonJoin{…}}), or, when its rows are about someone who has no\n"+
					"Atlassian account ID, NotByPerson with the reason. Export, erasure and reporting find people from this alone.",
					d.Name, personal[d.Name], d.Name)
			}
		}
		for table := range tables {
			if !declared[table] {
				t.Errorf("table %s is not declared in models.Tables() (models/privacy.go): declare how its rows are reached (site column, key) and, if it holds personal data, how a person's rows are found", table)
			}
		}
		// Every sealed column is a secret: never exported.
		secret := map[string]bool{}
		for _, e := range models.Inventory() {
			if e.Secret {
				secret[e.Table+"."+e.Column] = true
			}
		}
		for _, col := range store.SealedColumnNames() {
			if !secret[col] {
				t.Errorf("sealed column %s is not marked Secret in the inventory: an export would include it", col)
			}
		}
	})
}
