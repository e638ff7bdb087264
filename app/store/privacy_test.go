package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"idbridge/app/privacy"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// The export and erasure tests seed every table the declarations name,
// generically: the columns come from the database itself, so a table
// added later is seeded (and checked) without touching these tests, and a
// personal table without a way to find a person fails
// TestTablesDeclareHowToFindAPerson first.

type column struct{ Name, Type string }

// columnTypes lists each table's columns with their declared types.
func columnTypes(tb testing.TB, st *store.Store) map[string][]column {
	tb.Helper()
	var rows []struct{ TableName, ColumnName, DataType string }
	var err error
	if st.Dialect() == store.Postgres {
		err = store.ScanRaw(context.Background(), st, &rows, `SELECT table_name, column_name, data_type FROM information_schema.columns
			WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`)
	} else {
		err = store.ScanRaw(context.Background(), st, &rows, `SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type
			FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`)
	}
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]column{}
	for _, r := range rows {
		out[r.TableName] = append(out[r.TableName], column{r.ColumnName, strings.ToLower(r.DataType)})
	}
	return out
}

// person is whom a seeded row is about.
type person struct {
	accountID, userID, groupID string
}

type seeder struct {
	tb    testing.TB
	st    *store.Store
	cols  map[string][]column
	n     int
	clock time.Time
}

func (s *seeder) unique(prefix string) string {
	s.n++
	return fmt.Sprintf("%s-%06d", prefix, s.n)
}

// row inserts one row of t for the site, about p (nil: about nobody),
// every column filled: the site, the person's account ID where the
// declaration says it is, the join columns, and a unique value elsewhere.
func (s *seeder) row(t models.TableDecl, siteID string, p *person, set map[string]any) {
	s.tb.Helper()
	var names []string
	var args []any
	for _, c := range s.cols[t.Name] {
		var v any
		switch {
		case set[c.Name] != nil:
			v = set[c.Name]
		case c.Name == t.SiteColumn:
			v = siteID
		case p != nil && t.Person != nil && slices.Contains(t.Person.AccountColumns, c.Name):
			v = p.accountID
		case p != nil && t.Person != nil && t.Person.Via != nil && c.Name == t.Person.Via.Column:
			v = p.userID
		case p != nil && c.Name == "user_id":
			v = p.userID
		case p != nil && c.Name == "group_id":
			v = p.groupID
		case c.Name == "resource_type":
			v = "User"
		case c.Name == "fields":
			v = "[]"
		case c.Name == "doc" || c.Name == "payload":
			v = `{"note":"seeded"}`
		case strings.Contains(c.Type, "time") || strings.Contains(c.Type, "date"):
			v = s.clock
		case strings.Contains(c.Type, "bool"):
			v = false
		case strings.Contains(c.Type, "int") || strings.Contains(c.Type, "serial"):
			s.n++
			v = s.n
		case strings.Contains(c.Type, "bytea") || strings.Contains(c.Type, "blob"):
			v = []byte(s.unique("bytes"))
		default:
			v = s.unique(c.Name)
		}
		names = append(names, c.Name)
		args = append(args, v)
	}
	q := "INSERT INTO " + t.Name + " (" + strings.Join(names, ", ") + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ") + ")"
	if err := store.ExecRaw(context.Background(), s.st, q, args...); err != nil {
		s.tb.Fatalf("seed %s: %v", t.Name, err)
	}
}

// seedSite fills every declared table of the site: one row per person in
// each keyed table (so the people's rows sit side by side), and the
// one-row-per-site tables about the first person.
func (s *seeder) seedSite(siteID string, people ...*person) {
	s.tb.Helper()
	tables := models.Tables()
	// Parents before children: the declarations list children first.
	for i := len(tables) - 1; i >= 0; i-- {
		t := tables[i]
		if t.SiteColumn == "" || t.Name == models.TableSites {
			continue
		}
		if len(s.cols[t.Name]) == 0 {
			s.tb.Fatalf("no columns for %s", t.Name)
		}
		if len(t.Key) == 0 {
			s.row(t, siteID, people[0], nil)
			continue
		}
		for _, p := range people {
			var set map[string]any
			if t.Name == "scim_groups" || t.Name == "sync_groups" {
				set = map[string]any{"id": p.groupID, "group_id": p.groupID}
			}
			if t.Name == "scim_users" {
				set = map[string]any{"id": p.userID}
			}
			s.row(t, siteID, p, set)
		}
	}
}

// snapshot reads every row of the site's tables (or only those about
// accountID), every column, through the store's generic reader.
func snapshot(tb testing.TB, st *store.Store, cols map[string][]column, siteID, accountID string, only func(models.TableDecl) bool) map[string][]string {
	tb.Helper()
	out := map[string][]string{}
	for _, t := range models.Tables() {
		if t.SiteColumn == "" || (only != nil && !only(t)) {
			continue
		}
		names := make([]string, len(cols[t.Name]))
		for i, c := range cols[t.Name] {
			names[i] = c.Name
		}
		err := st.View(context.Background()).EachRow(siteID, store.TableRows{Table: t, Columns: names, AccountID: accountID}, 3, func(vals []any) error {
			out[t.Name] = append(out[t.Name], fmt.Sprint(vals))
			return nil
		})
		if err != nil {
			tb.Fatalf("read %s: %v", t.Name, err)
		}
	}
	return out
}

type exportDoc struct {
	Subject   *struct{ AccountID string } `json:"subject"`
	Site      map[string]any              `json:"site"`
	Inventory []map[string]any            `json:"inventory"`
	Records   map[string][]map[string]any `json:"records"`
}

func export(tb testing.TB, svc *privacy.Service, site *models.Site, accountID string) (exportDoc, string) {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := svc.Export(context.Background(), site, "557058:admin", accountID, &buf); err != nil {
		tb.Fatalf("export %q: %v", accountID, err)
	}
	var doc exportDoc
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		tb.Fatalf("export is not JSON: %v\n%s", err, buf.String())
	}
	return doc, buf.String()
}

// TestExportAndEraseEveryPersonalTable seeds every declared table on two
// sites for two people, then checks that a person's export holds exactly
// their rows of every personal table and no secret, and that erasing them
// leaves nothing (no column of any table holds their account ID, the
// export is empty), pseudonymises the audit rows by or about them, and
// touches nothing of the other person or the other site. Erasing again
// changes nothing.
func TestExportAndEraseEveryPersonalTable(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
		st := b.Open(t, storetest.WithNow(clock.Now))
		site1, site2 := install(t, st, newSite(1)), install(t, st, newSite(2))
		svc := privacy.New(privacy.Config{}, st, clock.Now, nil)
		cols := columnTypes(t, st)
		s := &seeder{tb: t, st: st, cols: cols, clock: clock.Now().Add(-time.Hour)}
		ann := &person{accountID: "557058:ann-0001", userID: "u-ann", groupID: "g-ann"}
		bob := &person{accountID: "557058:bob-0002", userID: "u-bob", groupID: "g-bob"}
		s.seedSite(site1.ID, ann, bob)
		s.seedSite(site2.ID, ann, bob)
		// An admin action by Bob about Ann: Ann is only its target.
		audit, _ := models.TableByName(models.TableAuditEvents)
		s.row(audit, site1.ID, nil, map[string]any{"actor_account_id": bob.accountID, "target_account_id": ann.accountID,
			"ip": "10.0.0.9", "user_agent": "Firefox", "event": string(models.AuditConfigChanged), "idp": "shared-row"})

		// Ann, an administrator, restricted Carl: the row is Carl's, Ann
		// only acted on it.
		restrictions, _ := models.TableByName(models.TableRestrictions)
		s.row(restrictions, site1.ID, nil, map[string]any{"account_id": "557058:carl-0003", "restricted_by": ann.accountID})

		personal := func(t models.TableDecl) bool { return t.Person != nil }
		other := func(t models.TableDecl) bool {
			return t.Person == nil && t.Name != models.TableAuditEvents && t.Name != "audit_daily"
		}
		bobBefore := snapshot(t, st, cols, site1.ID, bob.accountID, personal)
		site1Other := snapshot(t, st, cols, site1.ID, "", other)
		site2Before := snapshot(t, st, cols, site2.ID, "", nil)

		// The export holds Ann's rows of every personal table, and no secret.
		doc, raw := export(t, svc, site1, ann.accountID)
		if doc.Subject == nil {
			t.Fatalf("no subject; site %v", doc.Site)
		}
		if d := cmp.Diff(map[string]any{"subject.accountId": ann.accountID, "site.id": site1.ID},
			map[string]any{"subject.accountId": doc.Subject.AccountID, "site.id": doc.Site["id"]}); d != "" {
			t.Fatalf("export (-want +got):\n%s", d)
		}
		for _, d := range models.Tables() {
			if d.Person == nil {
				if _, ok := doc.Records[d.Name]; ok {
					t.Errorf("a person's export holds %s, which has no person link", d.Name)
				}
				continue
			}
			want := 1
			if d.Name == models.TableAuditEvents || d.Name == models.TableRestrictions {
				want = 2 // also the row of the person Ann acted on
			}
			if got := len(doc.Records[d.Name]); got != want {
				t.Errorf("export of Ann: %d rows of %s, want %d", got, d.Name, want)
			}
			for _, row := range doc.Records[d.Name] {
				if strings.Contains(fmt.Sprint(row), bob.userID) && d.Name != models.TableAuditEvents {
					t.Errorf("export of Ann holds Bob's row of %s: %v", d.Name, row)
				}
			}
		}
		for _, e := range models.Inventory() {
			for _, row := range doc.Records[e.Table] {
				if _, ok := row[e.Column]; ok == e.Secret {
					t.Errorf("%s.%s (secret %v) present = %v in the export", e.Table, e.Column, e.Secret, ok)
				}
			}
		}
		if len(doc.Inventory) == 0 || doc.Inventory[0]["purpose"] == "" {
			t.Errorf("inventory %v", doc.Inventory)
		}
		if strings.Contains(raw, "bytes-") {
			t.Errorf("the export holds a sealed value")
		}

		// Erase Ann.
		e, err := svc.Erase(context.Background(), site1, "557058:admin", ann.accountID)
		if err != nil {
			t.Fatal(err)
		}
		if e.Nothing() || !strings.HasPrefix(e.Pseudonym, models.ErasedTokenPrefix) || e.DirectoryUsers != 1 {
			t.Fatalf("erasure %+v", e)
		}
		// No column of any table of site 1 holds Ann's account ID.
		for table, cs := range cols {
			for _, c := range cs {
				if !strings.Contains(c.Type, "text") && !strings.Contains(c.Type, "char") {
					continue
				}
				if n := count(t, st, "SELECT count(*) FROM "+table+" WHERE "+c.Name+" = ?", ann.accountID); n > 0 {
					site := count(t, st, "SELECT count(*) FROM "+table+" WHERE "+c.Name+" = ? AND "+siteColumnOf(table)+" = ?", ann.accountID, site1.ID)
					if site > 0 {
						t.Errorf("after erasure %s.%s still holds Ann's account ID in %d rows of site 1", table, c.Name, site)
					}
				}
			}
		}
		// Carl's restriction stays, restricted by the pseudonym.
		if n := count(t, st, `SELECT count(*) FROM privacy_restrictions WHERE site_id = ? AND account_id = ? AND restricted_by = ?`,
			site1.ID, "557058:carl-0003", e.Pseudonym); n != 1 {
			t.Errorf("Carl's restriction by Ann: %d rows restricted by the pseudonym, want 1", n)
		}
		if n := count(t, st, `SELECT count(*) FROM scim_users WHERE site_id = ? AND id = ?`, site1.ID, ann.userID); n != 0 {
			t.Errorf("Ann's directory user is still there")
		}
		// The audit rows by or about Ann name the pseudonym, without IP or
		// user agent; Bob's part of the shared row stays.
		if n := count(t, st, `SELECT count(*) FROM audit_events WHERE site_id = ? AND actor_account_id = ? AND target_account_id = ? AND ip = '' AND user_agent = ''`,
			site1.ID, bob.accountID, e.Pseudonym); n != 1 {
			t.Errorf("the admin action about Ann: %d rows with Bob as actor and the pseudonym as target, want 1", n)
		}
		if n := count(t, st, `SELECT count(*) FROM audit_events WHERE site_id = ? AND (actor_account_id = ? OR target_account_id = ?)`,
			site1.ID, e.Pseudonym, e.Pseudonym); n != 4 { // seeded, shared, data_exported, data_erased
			t.Errorf("%d audit rows name the pseudonym, want 4", n)
		}
		evs, err := st.View(context.Background()).FindAuditEvents(site1.ID, store.AuditQuery{Event: models.AuditDataErased})
		if err != nil || len(evs) != 1 {
			t.Fatalf("data_erased events %+v %v, want one", evs, err)
		}
		if d := cmp.Diff(map[string]string{"target": e.Pseudonym, "actor": "557058:admin"},
			map[string]string{"target": evs[0].TargetAccountID, "actor": evs[0].ActorAccountID}); d != "" {
			t.Fatalf("data_erased event (-want +got):\n%s", d)
		}

		// Nothing of Bob, nothing else of site 1, nothing of site 2 changed.
		if got := snapshot(t, st, cols, site1.ID, bob.accountID, personal); !reflect.DeepEqual(withoutShared(got), withoutShared(bobBefore)) {
			t.Errorf("Bob's rows changed:\nbefore %v\nafter  %v", bobBefore, got)
		}
		if got := snapshot(t, st, cols, site1.ID, "", other); !reflect.DeepEqual(got, site1Other) {
			t.Errorf("site 1's other rows changed:\nbefore %v\nafter  %v", site1Other, got)
		}
		if got := snapshot(t, st, cols, site2.ID, "", nil); !reflect.DeepEqual(got, site2Before) {
			t.Errorf("site 2 changed:\nbefore %v\nafter  %v", site2Before, got)
		}

		// Erasing again erases nothing, and says so; Ann's export is now empty.
		again, err := svc.Erase(context.Background(), site1, "557058:admin", ann.accountID)
		if err != nil || !again.Nothing() {
			t.Errorf("second erasure: %+v %v", again, err)
		}
		evs, _ = st.View(context.Background()).FindAuditEvents(site1.ID, store.AuditQuery{Event: models.AuditDataErased})
		nothing := 0
		for _, ev := range evs {
			if ev.Reason == "nothing_held" && len(ev.Fields) == 0 && ev.TargetAccountID != ann.accountID {
				nothing++
			}
		}
		if d := cmp.Diff(map[string]int{"events": 2, "nothing held": 1}, map[string]int{"events": len(evs), "nothing held": nothing}); d != "" {
			t.Errorf("the second erasure is recorded as nothing held: %+v (-want +got):\n%s", evs, d)
		}
		doc, raw = export(t, svc, site1, ann.accountID)
		if len(doc.Records) != 0 || !strings.Contains(raw, `"records":{}`) {
			t.Errorf("export after erasure: %v", doc.Records)
		}
	})
}

// withoutShared leaves out the audit row Bob and Ann share, which the
// erasure of Ann changes on purpose.
func withoutShared(m map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, rows := range m {
		for _, r := range rows {
			if !strings.Contains(r, "shared-row") {
				out[k] = append(out[k], r)
			}
		}
	}
	return out
}

func siteColumnOf(table string) string {
	if d, ok := models.TableByName(table); ok && d.SiteColumn != "" {
		return d.SiteColumn
	}
	return "'none'"
}

// TestExportOfTheWholeSite holds every site table, none of another site,
// and reads a large table in several batches (keyset paging).
func TestExportOfTheWholeSite(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
		st := b.Open(t, storetest.WithNow(clock.Now))
		site1, site2 := install(t, st, newSite(1)), install(t, st, newSite(2))
		svc := privacy.New(privacy.Config{}, st, clock.Now, nil)
		cols := columnTypes(t, st)
		s := &seeder{tb: t, st: st, cols: cols, clock: clock.Now()}
		s.seedSite(site1.ID, &person{accountID: "557058:ann", userID: "u1", groupID: "g1"})
		s.seedSite(site2.ID, &person{accountID: "557058:zed", userID: "u9", groupID: "g9"})
		evs := make([]models.AuditEvent, 12000)
		for i := range evs {
			evs[i] = models.AuditEvent{Event: models.AuditLoginSuccess, ActorAccountID: fmt.Sprintf("557058:c%05d", i), IP: "10.1.1.1", OccurredAt: clock.Now().Add(-time.Duration(i) * time.Second)}
		}
		if err := st.InTx(context.Background(), func(tx *store.Tx) error { return tx.CreateAuditEvents(site1.ID, evs) }); err != nil {
			t.Fatal(err)
		}
		n, err := svc.Count(context.Background(), site1, "")
		if err != nil {
			t.Fatal(err)
		}
		doc, raw := export(t, svc, site1, "")
		if doc.Subject != nil {
			t.Errorf("subject %v, want null", doc.Subject)
		}
		var rows int64
		for table, rs := range doc.Records {
			rows += int64(len(rs))
			if table == models.TableSites {
				var ids []any
				for _, r := range rs {
					ids = append(ids, r["id"])
				}
				if d := cmp.Diff([]any{site1.ID}, ids); d != "" {
					t.Errorf("exported sites' IDs (-want +got):\n%s", d)
				}
			}
		}
		if d := cmp.Diff(map[string]int64{"rows": n, "audit events": 12001},
			map[string]int64{"rows": rows, "audit events": int64(len(doc.Records[models.TableAuditEvents]))}); d != "" {
			t.Errorf("export, rows against the count (-want +got):\n%s", d)
		}
		if strings.Contains(raw, "557058:zed") || strings.Contains(raw, site2.ID) {
			t.Errorf("the export holds site 2's data")
		}
		seen := map[string]bool{}
		for _, r := range doc.Records[models.TableAuditEvents] {
			id, _ := r["id"].(string)
			if seen[id] {
				t.Fatalf("event %s exported twice", id)
			}
			seen[id] = true
		}
		for _, d := range models.Tables() {
			if d.SiteColumn != "" && len(doc.Records[d.Name]) == 0 {
				t.Errorf("the site export has no rows of %s", d.Name)
			}
		}
	})
}

// TestExportBadAccountID: a malformed account ID fails before a byte is
// written, naming the field.
func TestExportBadAccountID(t *testing.T) {
	t.Parallel()
	st := storetest.Backends(t)[0].Open(t)
	site := install(t, st, newSite(1))
	svc := privacy.New(privacy.Config{}, st, nil, nil)
	for _, id := range []string{"a b", strings.Repeat("x", 129), "x'--", "é"} {
		var buf bytes.Buffer
		_, err := svc.Export(context.Background(), site, "", id, &buf)
		var me *models.Error
		if !asModelsError(err, &me) {
			t.Errorf("export %q: %v, want a models.Error", id, err)
		} else if d := cmp.Diff(map[string]any{"code": models.CodeInvalid, "field": "accountId", "bytes written": 0},
			map[string]any{"code": me.Code, "field": me.Field, "bytes written": buf.Len()}); d != "" {
			t.Errorf("export %q: %v (-want +got):\n%s", id, err, d)
		}
		if _, err := svc.Erase(context.Background(), site, "", id); !asModelsError(err, &me) || me.Field != "accountId" {
			t.Errorf("erase %q: %v", id, err)
		}
	}
}

func asModelsError(err error, me **models.Error) bool { return errors.As(err, me) }

// TestPurgeRemovesEveryTableOfAnUninstalledSite: the retention purge
// deletes every declared table's rows of a site uninstalled longer than
// the uninstall retention, and the site; audit events past the audit
// retention on every site; and nothing else. The scheduled purge runs
// once per interval, whichever process asks.
func TestPurgeRemovesEveryTableOfAnUninstalledSite(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
		st := b.Open(t, storetest.WithNow(clock.Now))
		gone, kept, revived := install(t, st, newSite(1)), install(t, st, newSite(2)), install(t, st, newSite(3))
		cols := columnTypes(t, st)
		s := &seeder{tb: t, st: st, cols: cols, clock: clock.Now()}
		for i, site := range []*models.Site{gone, kept, revived} {
			s.seedSite(site.ID, &person{accountID: fmt.Sprintf("557058:p%d", i), userID: "u1", groupID: "g1"}, &person{accountID: fmt.Sprintf("557058:q%d", i), userID: "u2", groupID: "g2"})
		}
		old := make([]models.AuditEvent, 7000)
		for i := range old {
			old[i] = models.AuditEvent{Event: models.AuditLoginSuccess, ActorAccountID: "557058:old", OccurredAt: clock.Now().Add(-61 * 24 * time.Hour)}
		}
		err := st.InTx(context.Background(), func(tx *store.Tx) error {
			if err := tx.CreateAuditEvents(kept.ID, old); err != nil {
				return err
			}
			if err := tx.MarkSiteUninstalled(gone.ID, clock.Now().Add(-time.Hour)); err != nil {
				return err
			}
			return tx.MarkSiteUninstalled(revived.ID, clock.Now().Add(time.Hour)) // not yet due
		})
		if err != nil {
			t.Fatal(err)
		}
		keptBefore := snapshot(t, st, cols, kept.ID, "", nil)
		revivedBefore := snapshot(t, st, cols, revived.ID, "", nil)
		svc := privacy.New(privacy.Config{AuditRetention: 60 * 24 * time.Hour, UninstallRetention: 30 * 24 * time.Hour}, st, clock.Now, nil)
		res, ran, err := svc.PurgeDue(context.Background())
		if err != nil || !ran {
			t.Fatalf("PurgeDue: %v %v", ran, err)
		}
		want := res
		want.Sites, want.AuditEvents = 1, 7000
		if d := cmp.Diff(want, res); d != "" {
			t.Errorf("purge result (-want +got):\n%s", d)
		}
		for _, d := range models.Tables() {
			if d.SiteColumn == "" {
				continue
			}
			if n := count(t, st, "SELECT count(*) FROM "+d.Name+" WHERE "+d.SiteColumn+" = ?", gone.ID); n != 0 {
				t.Errorf("%d rows of %s left for the purged site", n, d.Name)
			}
		}
		keptAfter := snapshot(t, st, cols, kept.ID, "", nil)
		if len(keptAfter[models.TableAuditEvents]) != len(keptBefore[models.TableAuditEvents])-7000 {
			t.Errorf("audit events of the kept site: %d before, %d after", len(keptBefore[models.TableAuditEvents]), len(keptAfter[models.TableAuditEvents]))
		}
		delete(keptBefore, models.TableAuditEvents)
		delete(keptAfter, models.TableAuditEvents)
		if !reflect.DeepEqual(keptBefore, keptAfter) {
			t.Errorf("the installed site's other data changed")
		}
		if got := snapshot(t, st, cols, revived.ID, "", nil); !reflect.DeepEqual(got, revivedBefore) {
			t.Errorf("a site whose retention has not ended was touched")
		}
		// Once per interval: a second process finds it done.
		other := privacy.New(privacy.Config{}, st, clock.Now, nil)
		if _, ran, err := other.PurgeDue(context.Background()); err != nil || ran {
			t.Errorf("second PurgeDue within the interval ran=%v err=%v", ran, err)
		}
		clock.Advance(privacy.PurgeInterval)
		if _, ran, err := other.PurgeDue(context.Background()); err != nil || !ran {
			t.Errorf("PurgeDue a day later ran=%v err=%v", ran, err)
		}
		run, err := st.View(context.Background()).FindJobRun(privacy.PurgeJobName)
		if err != nil || run.LastStatus != "ok" || !strings.Contains(run.LastMessage, "audit events") {
			t.Errorf("job run %+v %v", run, err)
		}
	})
}

// blockingWriter holds the first write until released.
type blockingWriter struct {
	wrote   chan struct{}
	release chan struct{}
	once    bool
	n       int
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if !w.once {
		w.once = true
		close(w.wrote)
		<-w.release
	}
	w.n += len(p)
	return len(p), nil
}

// TestExportWaitingOnItsClientHoldsNoConnection: an export whose client
// does not read holds no database connection (each batch is read whole
// before it is written), a second export of the same site meanwhile is a
// 429 in words while another site's is not, and rows larger than one
// batch's byte budget all arrive.
func TestExportWaitingOnItsClientHoldsNoConnection(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := b.Open(t)
		site1, site2 := install(t, st, newSite(1)), install(t, st, newSite(2))
		svc := privacy.New(privacy.Config{}, st, nil, nil)
		// Six audit events of 1 MiB each: more than one batch's budget.
		big := strings.Repeat("x", 1<<20)
		for i := range 6 {
			err := store.ExecRaw(ctx, st, `INSERT INTO audit_events (id, site_id, occurred_at, actor_account_id, target_account_id, event, section, fields, ip, user_agent, idp, protocol, reason)
				VALUES (?, ?, ?, '557058:a', '', 'login_success', '', '[]', '', ?, '', '', '')`, fmt.Sprintf("ev-%d", i), site1.ID, time.Now().UTC(), big)
			if err != nil {
				t.Fatal(err)
			}
		}
		w := &blockingWriter{wrote: make(chan struct{}), release: make(chan struct{})}
		done := make(chan error, 1)
		var sum models.ExportSummary
		go func() {
			var err error
			sum, err = svc.Export(ctx, site1, "557058:admin", "", w)
			done <- err
		}()
		<-w.wrote
		// The export now waits on its client, between batches or in one.
		if inUse := st.SQLDB().Stats().InUse; inUse != 0 {
			t.Errorf("%d database connections in use while the export waits on its client, want 0", inUse)
		}
		_, err := svc.Export(ctx, site1, "557058:admin", "", &bytes.Buffer{})
		if models.ErrorCode(err) != models.CodeTooMany {
			t.Errorf("a second export of the same site: %v, want too many", err)
		}
		if _, err := svc.Count(ctx, site1, ""); models.ErrorCode(err) != models.CodeTooMany {
			t.Errorf("a count during the export: %v, want too many", err)
		}
		if _, err := svc.Export(ctx, site2, "557058:admin", "", &bytes.Buffer{}); err != nil {
			t.Errorf("another site's export: %v", err)
		}
		close(w.release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := sum.Tables[models.TableAuditEvents]; got != 6 {
			t.Errorf("the export held %d of the 6 large audit events", got)
		}
		if w.n < 6<<20 {
			t.Errorf("the export wrote %d bytes, want more than 6 MiB", w.n)
		}
		if _, err := svc.Count(ctx, site1, ""); err != nil {
			t.Errorf("a count after the export: %v", err)
		}
	})
}
