package privacy

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"idbridge/app/audit"
	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/models"
)

// exportBatch is how many rows one statement of an export reads.
const exportBatch = 5000

// exportFlushRows is how often (in rows) an export flushes what it wrote,
// so a reader sees progress and the writer's buffer stays small.
const exportFlushRows = 2000

// exportPlan is what an export reads: the tables and their exported
// columns, in declaration order.
type exportTable struct {
	decl    models.TableDecl
	columns []string
	entries []models.InventoryEntry
}

func plan(person bool) []exportTable {
	byTable := map[string][]models.InventoryEntry{}
	for _, e := range models.Inventory() {
		if e.Secret {
			continue
		}
		byTable[e.Table] = append(byTable[e.Table], e)
	}
	var out []exportTable
	for _, t := range models.Tables() {
		if t.SiteColumn == "" || (person && t.Person == nil) {
			continue
		}
		et := exportTable{decl: t, entries: byTable[t.Name]}
		for _, e := range et.entries {
			et.columns = append(et.columns, e.Column)
		}
		if len(et.columns) > 0 {
			out = append(out, et)
		}
	}
	return out
}

// Count says how many rows an export of the site (accountID "") or of one
// person would hold, for the admin page's progress bar.
func (s *Service) Count(ctx context.Context, site *models.Site, accountID string) (int64, error) {
	if accountID != "" && !models.ValidAccountID(accountID) {
		return 0, badAccountID()
	}
	leave, err := s.exports.enter(site.ID)
	if err != nil {
		return 0, err
	}
	defer leave()
	var n int64
	for _, t := range plan(accountID != "") {
		c, err := s.store.View(ctx).CountRows(site.ID, store.TableRows{Table: t.decl, AccountID: accountID})
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

func badAccountID() error {
	return models.FieldError("accountId", "An account ID is letters, digits, colons, dashes and underscores (at most 128), such as 557058:f1e2d3c4-….")
}

// Export writes everything held about one person (accountID) or, with
// accountID "", everything held for the site, as SPEC 8's JSON, row by row
// at constant memory: one statement reads a bounded batch, and rows are
// written as they are read. Secret columns are never read. Each row is on
// a line of its own, so that a reader can count progress. The export is
// recorded in the audit log (data_exported) once it is complete. Nothing
// is written before the account ID is checked, so a bad one is an error
// the caller can answer with a 400.
func (s *Service) Export(ctx context.Context, site *models.Site, actorAccountID, accountID string, out io.Writer) (models.ExportSummary, error) {
	sum := models.ExportSummary{Tables: map[string]int64{}}
	if accountID != "" && !models.ValidAccountID(accountID) {
		return sum, badAccountID()
	}
	leave, err := s.exports.enter(site.ID)
	if err != nil {
		return sum, err
	}
	defer leave()
	person := accountID != ""
	tables := plan(person)
	w := bufio.NewWriterSize(out, 64<<10)
	var b []byte
	b = append(b, `{"subject":`...)
	if person {
		b = append(b, `{"accountId":`...)
		b = appendString(b, accountID)
		b = append(b, '}')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, ",\n"...)
	b = appendSite(b, site)
	b = append(b, `,"generatedAt":`...)
	b = appendString(b, s.now().UTC().Format(time.RFC3339))
	b = append(b, `,"inventoryVersion":`...)
	b = appendString(b, models.InventoryVersion)
	b = append(b, ",\n\"inventory\":["...)
	first := true
	for _, t := range tables {
		for _, e := range t.entries {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendEntry(b, e)
		}
	}
	b = append(b, "],\n\"records\":{"...)
	if _, err := w.Write(b); err != nil {
		return sum, err
	}
	firstTable := true
	for _, t := range tables {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		nkey := len(t.decl.Key)
		var n int64
		err := s.store.View(ctx).EachRow(site.ID, store.TableRows{Table: t.decl, Columns: t.columns, AccountID: accountID}, exportBatch, func(vals []any) error {
			b = b[:0]
			if n == 0 {
				if !firstTable {
					b = append(b, "],"...)
				}
				firstTable = false
				b = append(b, '\n')
				b = appendString(b, t.decl.Name)
				b = append(b, ":["...)
			} else {
				b = append(b, ',')
			}
			b = append(b, "\n{"...)
			for i, c := range t.columns {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, c)
				b = append(b, ':')
				b = appendValue(b, vals[nkey+i])
			}
			b = append(b, '}')
			n++
			sum.Rows++
			if _, err := w.Write(b); err != nil {
				return err
			}
			if sum.Rows%exportFlushRows == 0 {
				return w.Flush()
			}
			return nil
		})
		if err != nil {
			return sum, err
		}
		if n > 0 {
			sum.Tables[t.decl.Name] = n
		}
	}
	b = b[:0]
	if !firstTable {
		b = append(b, ']')
	}
	b = append(b, "}}\n"...)
	if _, err := w.Write(b); err != nil {
		return sum, err
	}
	if err := w.Flush(); err != nil {
		return sum, err
	}
	ev := models.AuditEvent{SiteID: site.ID, ActorAccountID: actorAccountID, TargetAccountID: accountID, Event: models.AuditDataExported,
		Section: "gdpr", Reason: exportReason(person, sum.Rows)}
	// The export is out: its record must not depend on the caller's
	// context (a client that disconnects right after the last byte).
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.store.InTx(actx, func(tx *store.Tx) error { _, err := audit.Record(tx, ev); return err }); err != nil {
		return sum, fmt.Errorf("record the export: %w", err)
	}
	return sum, nil
}

func exportReason(person bool, rows int64) string {
	switch {
	case !person:
		return "whole_site"
	case rows == 0:
		return "nothing_held"
	}
	return ""
}

func appendSite(b []byte, site *models.Site) []byte {
	b = append(b, `"site":{"id":`...)
	b = appendString(b, site.ID)
	b = append(b, `,"clientKey":`...)
	b = appendString(b, site.ClientKey)
	b = append(b, `,"baseUrl":`...)
	b = appendString(b, site.BaseURL)
	b = append(b, `,"productType":`...)
	b = appendString(b, site.ProductType)
	b = append(b, `,"state":`...)
	b = appendString(b, string(site.State))
	b = append(b, '}')
	return b
}

func appendEntry(b []byte, e models.InventoryEntry) []byte {
	b = append(b, "{\"table\":"...)
	b = appendString(b, e.Table)
	b = append(b, `,"column":`...)
	b = appendString(b, e.Column)
	b = append(b, `,"personal":`...)
	b = strconv.AppendBool(b, e.Personal)
	for _, kv := range [...][2]string{{"category", e.Category}, {"purpose", e.Purpose}, {"legalBasis", e.LegalBasis},
		{"source", e.Source}, {"retention", e.Retention}, {"recipients", e.Recipients}} {
		if kv[1] == "" {
			continue
		}
		b = append(b, ',')
		b = appendString(b, kv[0])
		b = append(b, ':')
		b = appendString(b, kv[1])
	}
	return append(b, '}')
}

// appendValue writes one database value as JSON.
func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, x)
	case []byte:
		if utf8.Valid(x) {
			return appendString(b, string(x))
		}
		return appendString(b, base64.StdEncoding.EncodeToString(x))
	case int64:
		return strconv.AppendInt(b, x, 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, x)
	case time.Time:
		b = append(b, '"')
		b = x.UTC().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	default:
		return appendString(b, fmt.Sprint(x))
	}
}

// appendString writes s as a JSON string with <, > and & escaped as
// encoding/json does, so an export is safe to embed (scim's one encoder).
func appendString(b []byte, s string) []byte { return scim.AppendJSONString(b, s, true) }
