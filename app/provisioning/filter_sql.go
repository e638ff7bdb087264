package provisioning

import (
	"fmt"
	"strings"
	"time"

	filter "github.com/scim2/filter-parser/v2"

	"idbridge/app/scim"
	"idbridge/app/store"
)

// The SQL compiler turns a canonical filter (from ParseFilter) into a WHERE
// fragment over scim_users or scim_groups for one dialect. Client values
// only ever travel as bound arguments; the SQL text is built from the
// schema's own names.
//
// Indexed columns answer the attributes identity providers query by
// (userName through its lower-cased copy, externalId, group displayName)
// and the other flat ones (displayName, name.givenName/familyName, active,
// id, meta.created/lastModified). Everything else is read from the stored
// JSON document: PostgreSQL's jsonb functions on doc::jsonb, SQLite's
// json_extract/json_each. Multi-valued attributes match when any value
// does (EXISTS over the array); members and groups use the membership
// table.
//
// Every leaf predicate is two-valued (never NULL), so NOT and ne mean
// "not eq", also for absent attributes, as MatchFilter evaluates them.

// sqlFilter is a compiled WHERE fragment with its arguments.
type sqlFilter struct {
	Where string
	Args  []any
	// Key is set when the filter is one equality on a user's unique key
	// (userName, id): it selects at most one user, and the store may
	// answer it through its coalesced lookup.
	Key *store.DirectoryKey
}

// sqlTarget is what the compiler needs of a resource type: its schema, the
// table its resources are stored in (as the store describes it), the type
// its memberships answer ("User" for a group's members, "direct" for a
// user's groups), and whether an equality on a unique key may be answered
// by the store's coalesced lookup (users).
type sqlTarget struct {
	rt         scim.ResourceType
	table      *store.DirectoryTable
	memberType string
	keyed      bool
}

type sqlCompiler struct {
	sqlTarget
	dialect string
	args    []any
}

// compileFilter compiles expr (canonical, from ParseFilter(rt, …)) for the
// dialect. A filter that cannot run in the database is 400 invalidFilter.
func compileFilter(t sqlTarget, dialect string, expr filter.Expression) (sqlFilter, error) {
	c := &sqlCompiler{sqlTarget: t, dialect: dialect}
	where, err := c.expr(expr)
	if err != nil {
		return sqlFilter{}, err
	}
	return sqlFilter{Where: where, Args: c.args, Key: c.uniqueKey(expr)}, nil
}

// uniqueKey is the user key an expression compiled to "key = value" asks
// for, or nil. The value is the one the compiled WHERE binds.
func (c *sqlCompiler) uniqueKey(expr filter.Expression) *store.DirectoryKey {
	e, ok := expr.(*filter.AttributeExpression)
	if !ok || !c.keyed || !strings.EqualFold(string(e.Operator), string(filter.EQ)) {
		return nil
	}
	v, ok := e.CompareValue.(string)
	if !ok {
		return nil
	}
	col, ok := c.column(e.AttributePath)
	switch {
	case !ok:
		return nil
	case col.sql == store.KeyUserName && col.lowered:
		return &store.DirectoryKey{Column: store.KeyUserName, Value: strings.ToLower(v)}
	case col.sql == store.KeyID && col.attr.CaseExact:
		return &store.DirectoryKey{Column: store.KeyID, Value: v}
	}
	return nil
}

// doc is the stored document's column, qualified by its table.
func (c *sqlCompiler) doc() string { return c.table.Name + "." + store.DocColumn }

func (c *sqlCompiler) pg() bool { return c.dialect == store.Postgres }

func (c *sqlCompiler) arg(v any) string {
	c.args = append(c.args, v)
	return "?"
}

// walkSQL compiles the and/or/not structure of a filter, once for every
// compiler: leaf compiles what is left (comparisons and value paths), and
// what it does not know is refused by its caller's words.
func walkSQL(e filter.Expression, leaf func(filter.Expression) (string, error)) (string, error) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		l, err := walkSQL(e.Left, leaf)
		if err != nil {
			return "", err
		}
		r, err := walkSQL(e.Right, leaf)
		if err != nil {
			return "", err
		}
		return "(" + l + " " + logical(e.Operator) + " " + r + ")", nil
	case *filter.NotExpression:
		in, err := walkSQL(e.Expression, leaf)
		if err != nil {
			return "", err
		}
		return "NOT (" + in + ")", nil
	}
	return leaf(e)
}

func (c *sqlCompiler) expr(e filter.Expression) (string, error) {
	return walkSQL(e, func(e filter.Expression) (string, error) {
		switch e := e.(type) {
		case *filter.ValuePath:
			return c.valuePath(e)
		case *filter.AttributeExpression:
			return c.attrExp(e)
		}
		return "", scim.InvalidFilter("the filter could not be compiled")
	})
}

// operand is something a comparison reads: a SQL expression, its schema
// attribute, and how to compare it.
type operand struct {
	sql  string
	attr *scim.Attribute
	// lowered: sql already holds a lower-cased copy (user_name_lower),
	// compared with a value lower-cased in Go.
	lowered bool
	// json: sql reads a JSON value as text (PostgreSQL ->>) or as SQLite
	// json_extract, which yields 1/0 for booleans.
	json bool
}

// column is the column an attribute is stored in, as the store describes
// its table; false for the attributes read from the document.
func (c *sqlCompiler) column(p filter.AttributePath) (operand, bool) {
	if p.URIPrefix != nil {
		return operand{}, false
	}
	ref, err := c.rt.Resolve(p.String())
	if err != nil {
		return operand{}, false
	}
	col, ok := c.table.Column(ref.Canonical)
	if !ok || col.Name == "" {
		return operand{}, false
	}
	return operand{sql: col.Name, attr: ref.Leaf(), lowered: col.Lowered}, true
}

func (c *sqlCompiler) attrExp(e *filter.AttributeExpression) (string, error) {
	p := e.AttributePath
	op := filter.CompareOperator(strings.ToLower(string(e.Operator)))
	ref, err := c.rt.Resolve(p.String())
	if err != nil {
		return "", scim.InvalidFilter("unknown attribute %q", p.String())
	}
	if !ref.Extension() && ref.Attr.Name == "meta" {
		switch {
		case ref.Sub != nil && ref.Sub.Name == "resourceType":
			// The same for every row of the table.
			return boolSQL(scim.MatchValues(ref.Sub, op, []any{c.rt.Name}, e.CompareValue)), nil
		case ref.Sub == nil || ref.Sub.Name == "location" || ref.Sub.Name == "version":
			return "", scim.InvalidFilter("%q cannot be filtered on", p.String())
		}
	}
	if col, ok := c.column(p); ok {
		if col.sql == "active" && op == filter.PR {
			return boolSQL(true), nil // NOT NULL column
		}
		return c.compare(col, op, e.CompareValue)
	}
	if !ref.Extension() && (ref.Attr.Name == "members" || ref.Attr.Name == "groups") {
		if ref.Sub == nil && op == filter.PR {
			return c.membership(ref.Attr, nil)
		}
		sub := "value"
		if ref.Sub != nil {
			sub = ref.Sub.Name
		}
		return c.membership(ref.Attr, relative(sub, op, e.CompareValue))
	}
	if ref.Attr.MultiValued {
		if ref.Sub == nil {
			if op != filter.PR {
				return "", scim.InvalidFilter("%q is multi-valued: compare one of its sub-attributes", p.String())
			}
			return c.elementsExist(ref, nil)
		}
		return c.elementsExist(ref, relative(ref.Sub.Name, op, e.CompareValue))
	}
	keys := docKeys(ref)
	if op == filter.PR {
		return c.jsonPresent(c.doc(), keys), nil
	}
	return c.compare(c.jsonValue(c.doc(), keys, ref.Leaf()), op, e.CompareValue)
}

func relative(sub string, op filter.CompareOperator, v any) *filter.AttributeExpression {
	return &filter.AttributeExpression{AttributePath: filter.AttributePath{AttributeName: sub}, Operator: op, CompareValue: v}
}

// docKeys is the JSON key path of an attribute in the stored document. The
// names come from the schema (Resolve spells them canonically), never from
// the client, so they may be written into SQL as quoted literals.
func docKeys(ref *scim.AttrRef) []string {
	var keys []string
	if ref.Extension() {
		keys = append(keys, ref.Schema)
	}
	keys = append(keys, ref.Attr.Name)
	if ref.Sub != nil {
		keys = append(keys, ref.Sub.Name)
	}
	return keys
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// sqlitePath renders keys as a SQLite JSON path with every key quoted
// ($."urn:…:User"."employeeNumber").
func sqlitePath(keys []string) string {
	var b strings.Builder
	b.WriteString("$")
	for _, k := range keys {
		b.WriteString(`."`)
		b.WriteString(strings.ReplaceAll(k, `"`, `\"`))
		b.WriteString(`"`)
	}
	return b.String()
}

func pgKeys(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = sqlString(k)
	}
	return strings.Join(q, ", ")
}

// jsonValue reads the scalar at keys of the JSON in expr (text, or jsonb on
// PostgreSQL) for comparison: text on PostgreSQL, SQLite's json_extract
// value (1/0 for booleans) on SQLite.
func (c *sqlCompiler) jsonValue(expr string, keys []string, a *scim.Attribute) operand {
	if c.pg() {
		return operand{sql: "jsonb_extract_path_text(" + c.jsonb(expr) + ", " + pgKeys(keys) + ")", attr: a, json: true}
	}
	return operand{sql: "json_extract(" + expr + ", " + sqlString(sqlitePath(keys)) + ")", attr: a, json: true}
}

// jsonb is expr as jsonb: the stored text column is cast, a jsonb value
// from jsonb_array_elements is used as is.
func (c *sqlCompiler) jsonb(expr string) string {
	if strings.HasSuffix(expr, "."+store.DocColumn) {
		return expr + "::jsonb"
	}
	return expr
}

// jsonPresent is "pr" on the value at keys: not null, not "", not an empty
// array or object.
func (c *sqlCompiler) jsonPresent(expr string, keys []string) string {
	if c.pg() {
		v := "jsonb_extract_path(" + c.jsonb(expr) + ", " + pgKeys(keys) + ")"
		return "COALESCE(" + v + ` NOT IN ('null'::jsonb, '""'::jsonb, '[]'::jsonb, '{}'::jsonb), FALSE)`
	}
	path := sqlString(sqlitePath(keys))
	t := "json_type(" + expr + ", " + path + ")"
	v := "json_extract(" + expr + ", " + path + ")"
	return "(CASE WHEN " + t + " IS NULL OR " + t + " = 'null' THEN 0" +
		" WHEN " + t + " = 'text' THEN " + v + " <> ''" +
		" WHEN " + t + " IN ('array', 'object') THEN " + v + " NOT IN ('[]', '{}')" +
		" ELSE 1 END)"
}

// elementsExist is EXISTS over the values of a multi-valued complex
// attribute in the document, with inner (relative paths) applied to each
// value; a nil inner asks for any object value.
func (c *sqlCompiler) elementsExist(ref *scim.AttrRef, inner filter.Expression) (string, error) {
	keys := []string{ref.Attr.Name}
	if ref.Extension() {
		keys = []string{ref.Schema, ref.Attr.Name}
	}
	var from, elem, anyObject string
	if c.pg() {
		arr := "jsonb_extract_path(" + c.doc() + "::jsonb, " + pgKeys(keys) + ")"
		from = "jsonb_array_elements(CASE WHEN jsonb_typeof(" + arr + ") = 'array' THEN " + arr + " ELSE '[]'::jsonb END) AS e(v)"
		elem = "e.v"
		anyObject = "jsonb_typeof(e.v) = 'object'"
	} else {
		from = "json_each(" + c.doc() + ", " + sqlString(sqlitePath(keys)) + ") AS e"
		elem = "(CASE WHEN e.type = 'object' THEN e.value END)"
		anyObject = "e.type = 'object'"
	}
	cond := anyObject
	if inner != nil {
		ec := &elementCompiler{c: c, attr: ref.Attr, elem: elem}
		w, err := ec.expr(inner)
		if err != nil {
			return "", err
		}
		cond = w
	}
	return "EXISTS (SELECT 1 FROM " + from + " WHERE " + cond + ")", nil
}

// valuePath compiles attr[filter].
func (c *sqlCompiler) valuePath(vp *filter.ValuePath) (string, error) {
	ref, err := c.rt.Resolve(vp.AttributePath.String())
	if err != nil {
		return "", scim.InvalidFilter("unknown attribute %q", vp.AttributePath.String())
	}
	if !ref.Extension() && (ref.Attr.Name == "members" || ref.Attr.Name == "groups") {
		return c.membership(ref.Attr, vp.ValueFilter)
	}
	if ref.Attr.MultiValued {
		return c.elementsExist(ref, vp.ValueFilter)
	}
	// A value path on a single-valued complex attribute (name[…]): the
	// object itself is the one value.
	ec := &elementCompiler{c: c, attr: ref.Attr}
	if c.pg() {
		ec.elem = "jsonb_extract_path(" + c.doc() + "::jsonb, " + pgKeys(docKeys(ref)) + ")"
	} else {
		ec.elem = "json_extract(" + c.doc() + ", " + sqlString(sqlitePath(docKeys(ref))) + ")"
	}
	return ec.expr(vp.ValueFilter)
}

// membership compiles a filter on members (of a group) or groups (of a
// user) as EXISTS over the membership table; inner is relative ("value",
// "display", "type"); nil asks for any membership.
func (c *sqlCompiler) membership(a *scim.Attribute, inner filter.Expression) (string, error) {
	cols := map[string]string{"value": c.table.MemberValue, "display": c.table.MemberDisplay, "type": sqlString(c.memberType)}
	cond := boolSQL(true)
	if inner != nil {
		mc := &memberCompiler{c: c, attr: a, cols: cols}
		w, err := mc.expr(inner)
		if err != nil {
			return "", err
		}
		cond = w
	}
	return "EXISTS (SELECT 1 FROM " + c.table.MembershipFrom + " WHERE " + c.table.MembershipOn + " AND " + cond + ")", nil
}

// compare builds a two-valued comparison of an operand with a value.
func (c *sqlCompiler) compare(o operand, op filter.CompareOperator, v any) (string, error) {
	a := o.attr
	if op == filter.PR {
		if a.Type == scim.TypeString || a.Type == scim.TypeReference {
			return "(" + o.sql + " IS NOT NULL AND " + o.sql + " <> '')", nil
		}
		return "(" + o.sql + " IS NOT NULL)", nil
	}
	if op == filter.NE {
		eq, err := c.compare(o, filter.EQ, v)
		if err != nil {
			return "", err
		}
		return "NOT " + eq, nil
	}
	notNull := o.sql + " IS NOT NULL AND "
	switch a.Type {
	case scim.TypeBoolean:
		b, ok := v.(bool)
		if !ok {
			return "", scim.InvalidFilter("%q is a boolean: compare it with true or false", a.Name)
		}
		if op != filter.EQ {
			return "", scim.InvalidFilter("%q is a boolean: only eq, ne and pr apply", a.Name)
		}
		switch {
		case !o.json:
			return "(" + notNull + o.sql + " = " + c.arg(b) + ")", nil
		case c.pg():
			return "(" + notNull + o.sql + " = " + c.arg(fmt.Sprint(b)) + ")", nil
		}
		n := 0
		if b {
			n = 1
		}
		return "(" + notNull + o.sql + " = " + c.arg(n) + ")", nil
	case scim.TypeDateTime:
		t, ok := v.(time.Time)
		if !ok {
			return "", scim.InvalidFilter("%q is a dateTime: compare it with an RFC 3339 date-time", a.Name)
		}
		if o.json {
			// A dateTime inside the document is RFC 3339 text: compared as
			// text in UTC, which orders the same way for one format.
			return c.stringCompare(o, op, t.UTC().Format(time.RFC3339Nano), true)
		}
		switch op {
		case filter.CO, filter.SW, filter.EW:
			return "", scim.InvalidFilter("%q is a dateTime: %s does not apply", a.Name, op)
		}
		return "(" + notNull + o.sql + " " + sqlOp(op) + " " + c.arg(store.TimeArg(t)) + ")", nil
	case scim.TypeInteger, scim.TypeDecimal, scim.TypeBinary, scim.TypeComplex:
		return "", scim.InvalidFilter("%q cannot be filtered on", a.Name)
	}
	s, ok := v.(string)
	if !ok {
		return "", scim.InvalidFilter("%q is a string: compare it with a string", a.Name)
	}
	return c.stringCompare(o, op, s, a.CaseExact)
}

func (c *sqlCompiler) stringCompare(o operand, op filter.CompareOperator, s string, caseExact bool) (string, error) {
	notNull := o.sql + " IS NOT NULL AND "
	left := o.sql
	if o.lowered {
		// Both sides folded the same way (Go's strings.ToLower).
		s = strings.ToLower(s)
		caseExact = true
	} else if !caseExact {
		left = "lower(" + o.sql + ")"
	}
	value := func(v string) string {
		if caseExact {
			return c.arg(v)
		}
		return "lower(CAST(" + c.arg(v) + " AS TEXT))"
	}
	switch op {
	case filter.EQ:
		return "(" + notNull + left + " = " + value(s) + ")", nil
	case filter.GT, filter.GE, filter.LT, filter.LE:
		if c.pg() {
			// Byte order, as on SQLite, not the database's collation.
			return "(" + notNull + left + ` COLLATE "C" ` + sqlOp(op) + " " + value(s) + ")", nil
		}
		return "(" + notNull + left + " " + sqlOp(op) + " " + value(s) + ")", nil
	case filter.CO, filter.SW, filter.EW:
	default:
		return "", scim.InvalidFilter("unknown operator %q", op)
	}
	if s == "" {
		return "(" + o.sql + " IS NOT NULL)", nil
	}
	if !caseExact || c.pg() {
		pattern := likeEscape(s)
		switch op {
		case filter.CO:
			pattern = "%" + pattern + "%"
		case filter.SW:
			pattern += "%"
		case filter.EW:
			pattern = "%" + pattern
		}
		return "(" + notNull + left + " LIKE " + value(pattern) + ` ESCAPE '\')`, nil
	}
	// SQLite's LIKE ignores ASCII case: compare exactly with instr/substr.
	switch op {
	case filter.CO:
		return "(" + notNull + "instr(" + left + ", " + c.arg(s) + ") > 0)", nil
	case filter.SW:
		return "(" + notNull + "substr(" + left + ", 1, " + c.arg(len([]rune(s))) + ") = " + c.arg(s) + ")", nil
	}
	return "(" + notNull + "substr(" + left + ", " + c.arg(-len([]rune(s))) + ") = " + c.arg(s) + ")", nil
}

// likeEscape escapes LIKE's wildcards and its escape character.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func sqlOp(op filter.CompareOperator) string {
	switch op {
	case filter.GT:
		return ">"
	case filter.GE:
		return ">="
	case filter.LT:
		return "<"
	case filter.LE:
		return "<="
	}
	return "="
}

func boolSQL(b bool) string {
	if b {
		return "(1 = 1)"
	}
	return "(1 = 0)"
}

func logical(op filter.LogicalOperator) string {
	if strings.EqualFold(string(op), "or") {
		return "OR"
	}
	return "AND"
}

// elementCompiler compiles a value filter against one JSON value of a
// multi-valued (or single complex) attribute; elem is the SQL expression of
// that value: jsonb on PostgreSQL, JSON text on SQLite.
type elementCompiler struct {
	c    *sqlCompiler
	attr *scim.Attribute
	elem string
}

func (ec *elementCompiler) expr(e filter.Expression) (string, error) {
	return walkSQL(e, func(e filter.Expression) (string, error) {
		switch e := e.(type) {
		case *filter.AttributeExpression:
			sub := ec.attr.Sub(e.AttributePath.AttributeName)
			if sub == nil || e.AttributePath.URIPrefix != nil || e.AttributePath.SubAttribute != nil {
				return "", scim.InvalidFilter("unknown attribute %q in a value filter of %q", e.AttributePath.String(), ec.attr.Name)
			}
			op := filter.CompareOperator(strings.ToLower(string(e.Operator)))
			if op == filter.PR {
				return ec.c.jsonPresent(ec.elem, []string{sub.Name}), nil
			}
			return ec.c.compare(ec.c.jsonValue(ec.elem, []string{sub.Name}, sub), op, e.CompareValue)
		case *filter.ValuePath:
			return "", scim.InvalidFilter("value paths do not nest")
		}
		return "", scim.InvalidFilter("the value filter could not be compiled")
	})
}

// memberCompiler compiles a filter on members or groups against the
// membership table's columns.
type memberCompiler struct {
	c    *sqlCompiler
	attr *scim.Attribute
	cols map[string]string
}

func (mc *memberCompiler) expr(e filter.Expression) (string, error) {
	return walkSQL(e, func(e filter.Expression) (string, error) {
		switch e := e.(type) {
		case *filter.AttributeExpression:
			sub := mc.attr.Sub(e.AttributePath.AttributeName)
			if sub == nil || e.AttributePath.URIPrefix != nil || e.AttributePath.SubAttribute != nil {
				return "", scim.InvalidFilter("unknown attribute %q of %q", e.AttributePath.String(), mc.attr.Name)
			}
			col := mc.cols[sub.Name]
			if col == "" {
				return "", scim.InvalidFilter("%s.%s cannot be filtered on", mc.attr.Name, sub.Name)
			}
			op := filter.CompareOperator(strings.ToLower(string(e.Operator)))
			return mc.c.compare(operand{sql: col, attr: sub}, op, e.CompareValue)
		case *filter.ValuePath:
			return "", scim.InvalidFilter("value paths do not nest")
		}
		return "", scim.InvalidFilter("the filter on %q could not be compiled", mc.attr.Name)
	})
}
