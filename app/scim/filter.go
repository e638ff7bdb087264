package scim

import (
	"strconv"
	"strings"
	"time"

	filter "github.com/scim2/filter-parser/v2"
)

// Limits that keep a hostile filter from costing more than a real one
// (and see MaxFilterTerms, MaxMultiValuedTerms).
const (
	maxFilterLength = 4096
	maxFilterDepth  = 32
)

// ParseFilter parses a SCIM filter (RFC 7644 section 3.4.2.2) for the
// resource type and returns it in canonical form, or a 400 invalidFilter
// *Error.
//
// It accepts what identity providers really send besides the RFC grammar:
// operators, keywords, booleans and attribute names in any case; unquoted
// bare values (`externalId eq jyoung`); Entra's
// `emails[type eq "work"].value eq "x"` (read as
// `emails[type eq "work" and value eq "x"]`); any and/or/not/parentheses
// inside a value path; JSON escapes in string literals (decoded).
//
// The returned tree uses the filter-parser types (*filter.AttributeExpression,
// *filter.LogicalExpression, *filter.NotExpression, *filter.ValuePath) and is
// canonical, so a compiler needs no schema knowledge beyond it:
//   - every attribute path is spelled as the schema spells it; core and common
//     attributes (id, externalId, meta) have URIPrefix nil, extension
//     attributes carry the extension URN as URIPrefix;
//   - a comparison of a multi-valued complex attribute itself
//     (`emails co "x"`, `members eq "id"`) targets its "value" sub-attribute;
//   - paths inside a ValuePath's ValueFilter are relative to it
//     (AttributeName only: "type", "value");
//   - Operator is lower case; CompareValue is nil for pr, a bool for
//     boolean attributes (a "true"/"false" string is converted), a
//     time.Time (UTC) for dateTime attributes, and a string otherwise
//     (numbers and bare words compared with string attributes become
//     strings);
//   - co/sw/ew apply to string attributes only, gt/ge/lt/le to strings and
//     dateTimes, booleans take eq/ne/pr only; null and password are refused.
//
// String comparisons follow the leaf attribute's CaseExact (see
// FilterAttribute); ne means "not eq", also when the attribute is absent.
func ParseFilter(rt ResourceType, s string) (expr filter.Expression, err error) {
	defer func() {
		// A panic while reading a filter (fuzzed here) is a bad filter, not
		// a crashed request.
		if r := recover(); r != nil {
			expr, err = nil, InvalidFilter("the filter could not be parsed")
		}
	}()
	expr, err = readFilter(s)
	if err != nil {
		return nil, err
	}
	v := validator{rt: rt}
	if expr, err = v.expr(expr, nil); err != nil {
		return nil, err
	}
	if err := checkFilterCost(rt, expr); err != nil {
		return nil, err
	}
	return expr, nil
}

// readFilter reads s into a filter tree, not yet checked against a
// resource type.
func readFilter(s string) (filter.Expression, error) {
	if strings.TrimSpace(s) == "" {
		return nil, InvalidFilter("the filter is empty")
	}
	if hasNUL(s) {
		return nil, InvalidFilter("the filter holds the NUL character, which no attribute may hold")
	}
	if len(s) > maxFilterLength {
		return nil, InvalidFilter("the filter is longer than %d bytes", maxFilterLength)
	}
	n := &normalizer{src: s}
	return n.parseFilter()
}

// TypeFilter is a search filter as it applies to one resource type.
type TypeFilter struct {
	// Expr is the canonical filter, as ParseFilter returns it; nil when
	// the outcome depends on no attribute the type has, and then All says
	// whether every resource of the type matches or none does.
	Expr filter.Expression
	All  bool
}

// ParseFilterAcross parses the filter of a search across resource types
// (POST /.search at the root) for each of rts, in their order.
//
// RFC 7644 3.4.2.1: "For filtered attributes that are not part of a
// particular resource type, the service provider SHALL treat the attribute
// as if there is no attribute value." So, for one type, a comparison of an
// attribute the type does not define is false, as a comparison of an
// absent attribute is: pr, eq, co, gt and the others are false, ne (not
// eq) is true, and a value path over it (members[…] for a user) is false;
// and/or/not then decide what is left. userName eq "bob" matches no group;
// members eq "id" no user. Every comparison of an attribute that a type
// does define is checked as ParseFilter checks it, also where the rest of
// the filter decides the outcome. An attribute that no type of rts defines
// is 400 invalidFilter, as in ParseFilter.
func ParseFilterAcross(rts []ResourceType, s string) (out []TypeFilter, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, InvalidFilter("the filter could not be parsed")
		}
	}()
	raw, err := readFilter(s)
	if err != nil {
		return nil, err
	}
	out = make([]TypeFilter, len(rts))
	// undefined counts, for each attribute path the filter names, the
	// types that do not define it; order keeps the filter's order.
	undefined := map[string]int{}
	var order []string
	for i, rt := range rts {
		seen := map[string]bool{}
		v := validator{rt: rt, undefined: func(path string) {
			key := strings.ToLower(path)
			if seen[key] {
				return
			}
			seen[key] = true
			if undefined[key] == 0 {
				order = append(order, path)
			}
			undefined[key]++
		}}
		expr, value, constant, err := v.across(raw)
		if err != nil {
			return nil, err
		}
		if constant {
			out[i] = TypeFilter{All: value}
			continue
		}
		if err := checkFilterCost(rt, expr); err != nil {
			return nil, err
		}
		out[i] = TypeFilter{Expr: expr}
	}
	for _, path := range order {
		if undefined[strings.ToLower(path)] == len(rts) {
			return nil, InvalidFilter("unknown attribute %q", path)
		}
	}
	return out, nil
}

// checkFilterCost bounds what one filter makes the database do per
// resource it visits: at most MaxFilterTerms comparisons, of which at most
// MaxMultiValuedTerms read a multi-valued attribute (every value of it).
func checkFilterCost(rt ResourceType, e filter.Expression) error {
	terms, multi := 0, 0
	var walk func(e filter.Expression, inValuePath bool)
	walk = func(e filter.Expression, inValuePath bool) {
		switch e := e.(type) {
		case *filter.LogicalExpression:
			walk(e.Left, inValuePath)
			walk(e.Right, inValuePath)
		case *filter.NotExpression:
			walk(e.Expression, inValuePath)
		case *filter.ValuePath:
			multi++
			walk(e.ValueFilter, true)
		case *filter.AttributeExpression:
			terms++
			if inValuePath {
				return
			}
			if ref, err := rt.Resolve(e.AttributePath.String()); err == nil && ref.Attr.MultiValued {
				multi++
			}
		}
	}
	walk(e, false)
	switch {
	case terms > MaxFilterTerms:
		return InvalidFilter("the filter has more than %d comparisons, the most this server evaluates in one filter", MaxFilterTerms)
	case multi > MaxMultiValuedTerms:
		return InvalidFilter("the filter has more than %d terms over multi-valued attributes (value paths, emails, members, …), the most this server evaluates in one filter", MaxMultiValuedTerms)
	}
	return nil
}

// FilterAttribute returns the schema attribute a canonical filter path
// (from ParseFilter) compares, so a compiler can read its Type and
// CaseExact. parent is the value path's attribute for paths inside a
// ValueFilter, else nil.
func FilterAttribute(rt ResourceType, p filter.AttributePath, parent *Attribute) (*Attribute, error) {
	if parent != nil {
		if a := parent.Sub(p.AttributeName); a != nil {
			return a, nil
		}
		return nil, InvalidFilter("unknown attribute %q in a value filter of %q", p.AttributeName, parent.Name)
	}
	ref, err := rt.Resolve(p.String())
	if err != nil {
		return nil, InvalidFilter("unknown attribute %q", p.String())
	}
	return ref.Leaf(), nil
}

// --- validation -------------------------------------------------------------

type validator struct {
	rt ResourceType
	// undefined, when set, is told each top-level attribute path that rt
	// does not define (see across).
	undefined func(path string)
}

// across is expr for a search across resource types (ParseFilterAcross):
// it validates e and returns its canonical copy with every comparison of
// an attribute that v.rt does not define replaced by its truth value and
// folded away. constant is true when nothing is left: then value is the
// filter's outcome for every resource of the type.
func (v validator) across(e filter.Expression) (out filter.Expression, value, constant bool, err error) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		l, lv, lc, err := v.across(e.Left)
		if err != nil {
			return nil, false, false, err
		}
		r, rv, rc, err := v.across(e.Right)
		if err != nil {
			return nil, false, false, err
		}
		op := filter.LogicalOperator(strings.ToLower(string(e.Operator)))
		and := op == filter.AND
		switch {
		case lc && rc:
			if and {
				return nil, lv && rv, true, nil
			}
			return nil, lv || rv, true, nil
		case lc:
			if lv != and { // false and x, true or x
				return nil, lv, true, nil
			}
			return r, false, false, nil // true and x, false or x
		case rc:
			if rv != and {
				return nil, rv, true, nil
			}
			return l, false, false, nil
		}
		return &filter.LogicalExpression{Left: l, Right: r, Operator: op}, false, false, nil
	case *filter.NotExpression:
		in, iv, ic, err := v.across(e.Expression)
		if err != nil {
			return nil, false, false, err
		}
		if ic {
			return nil, !iv, true, nil
		}
		return &filter.NotExpression{Expression: in}, false, false, nil
	case *filter.ValuePath:
		if _, err := v.rt.Resolve(e.AttributePath.String()); err != nil {
			v.undefined(e.AttributePath.String())
			return nil, false, true, nil // no value, so no value matches
		}
	case *filter.AttributeExpression:
		if _, err := v.rt.Resolve(e.AttributePath.String()); err != nil {
			v.undefined(e.AttributePath.String())
			// ne is "not eq", true of an absent attribute.
			return nil, strings.EqualFold(string(e.Operator), string(filter.NE)), true, nil
		}
	}
	out, err = v.expr(e, nil)
	return out, false, false, err
}

// expr validates e and returns its canonical copy. parent is the value
// path's attribute reference inside a ValueFilter.
func (v validator) expr(e filter.Expression, parent *AttrRef) (filter.Expression, error) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		l, err := v.expr(e.Left, parent)
		if err != nil {
			return nil, err
		}
		r, err := v.expr(e.Right, parent)
		if err != nil {
			return nil, err
		}
		op := filter.LogicalOperator(strings.ToLower(string(e.Operator)))
		return &filter.LogicalExpression{Left: l, Right: r, Operator: op}, nil
	case *filter.NotExpression:
		in, err := v.expr(e.Expression, parent)
		if err != nil {
			return nil, err
		}
		return &filter.NotExpression{Expression: in}, nil
	case *filter.ValuePath:
		if parent != nil {
			return nil, InvalidFilter("value paths do not nest")
		}
		ref, err := v.rt.Resolve(e.AttributePath.String())
		if err != nil {
			return nil, InvalidFilter("unknown attribute %q", e.AttributePath.String())
		}
		if ref.Sub != nil || ref.Attr.Type != TypeComplex {
			return nil, InvalidFilter("%q has no sub-attributes to filter on", ref.Canonical)
		}
		inner, err := v.expr(e.ValueFilter, ref)
		if err != nil {
			return nil, err
		}
		return &filter.ValuePath{AttributePath: canonicalAttrPath(ref), ValueFilter: inner}, nil
	case *filter.AttributeExpression:
		return v.attrExp(e, parent)
	}
	return nil, InvalidFilter("the filter could not be parsed")
}

func (v validator) attrExp(e *filter.AttributeExpression, parent *AttrRef) (filter.Expression, error) {
	var ref *AttrRef
	if parent == nil {
		r, err := v.rt.Resolve(e.AttributePath.String())
		if err != nil {
			return nil, InvalidFilter("unknown attribute %q", e.AttributePath.String())
		}
		ref = r
	} else {
		if e.AttributePath.URIPrefix != nil || e.AttributePath.SubAttribute != nil {
			return nil, InvalidFilter("%q is not a sub-attribute of %q", e.AttributePath.String(), parent.Canonical)
		}
		sub := parent.Attr.Sub(e.AttributePath.AttributeName)
		if sub == nil {
			return nil, InvalidFilter("unknown attribute %q in the value filter of %q", e.AttributePath.AttributeName, parent.Canonical)
		}
		ref = &AttrRef{Schema: parent.Schema, Attr: parent.Attr, Sub: sub}
	}
	op := filter.CompareOperator(strings.ToLower(string(e.Operator)))
	if !compareOperators[string(op)] {
		return nil, InvalidFilter("unknown operator %q", e.Operator)
	}
	leaf := ref.Leaf()
	if leaf.Type == TypeComplex && op != filter.PR {
		// RFC 7644 3.4.2.2: `emails co "x"` compares the "value" sub-attribute.
		value := leaf.Sub("value")
		if value == nil || ref.Sub != nil {
			return nil, InvalidFilter("%q is complex: compare one of its sub-attributes", e.AttributePath.String())
		}
		ref = &AttrRef{Schema: ref.Schema, Attr: ref.Attr, Sub: value}
		leaf = value
	}
	if leaf.returned() == ReturnedNever {
		return nil, InvalidFilter("%q cannot be filtered on", leaf.Name)
	}
	cv, err := compareValue(leaf, op, e.CompareValue)
	if err != nil {
		return nil, err
	}
	path := canonicalAttrPath(ref)
	if parent != nil {
		path = filter.AttributePath{AttributeName: ref.Sub.Name}
	}
	return &filter.AttributeExpression{AttributePath: path, Operator: op, CompareValue: cv}, nil
}

// compareValue checks that op applies to the attribute's type and converts
// the value to the attribute's canonical Go type.
func compareValue(a *Attribute, op filter.CompareOperator, v any) (any, error) {
	if op == filter.PR {
		return nil, nil
	}
	if v == nil {
		return nil, InvalidFilter("comparing %q with null is not supported; use pr", a.Name)
	}
	switch a.Type {
	case TypeBoolean:
		if op != filter.EQ && op != filter.NE {
			return nil, InvalidFilter("%q is a boolean: only eq, ne and pr apply", a.Name)
		}
		b, ok := asBool(v)
		if !ok {
			return nil, InvalidFilter("%q is a boolean: compare it with true or false", a.Name)
		}
		return b, nil
	case TypeDateTime:
		switch op {
		case filter.CO, filter.SW, filter.EW:
			return nil, InvalidFilter("%q is a dateTime: %s does not apply", a.Name, op)
		}
		t, ok := asTime(v)
		if !ok {
			return nil, InvalidFilter("%q is a dateTime: compare it with an RFC 3339 date-time", a.Name)
		}
		return t, nil
	case TypeInteger, TypeDecimal:
		switch op {
		case filter.CO, filter.SW, filter.EW:
			return nil, InvalidFilter("%q is a number: %s does not apply", a.Name, op)
		}
		f, ok := asFloat(v)
		if !ok {
			return nil, InvalidFilter("%q is a number: compare it with a number", a.Name)
		}
		return f, nil
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	s, ok := asString(v)
	if !ok {
		return nil, InvalidFilter("%q is a string: compare it with a string", a.Name)
	}
	return s, nil
}

func canonicalAttrPath(ref *AttrRef) filter.AttributePath {
	p := filter.AttributePath{AttributeName: ref.Attr.Name}
	if ref.Extension() {
		u := ref.Schema
		p.URIPrefix = &u
	}
	if ref.Sub != nil {
		s := ref.Sub.Name
		p.SubAttribute = &s
	}
	return p
}

// FormatFilter renders a filter as RFC 7644 text that ParseFilter reads
// back to the same tree: strings JSON-quoted, dateTimes as quoted RFC 3339,
// parentheses where precedence needs them.
func FormatFilter(e filter.Expression) string {
	var b strings.Builder
	formatFilter(&b, e)
	return b.String()
}

func formatFilter(b *strings.Builder, e filter.Expression) {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		b.WriteString(e.AttributePath.String())
		b.WriteByte(' ')
		b.WriteString(string(e.Operator))
		if e.Operator == filter.PR {
			return
		}
		b.WriteByte(' ')
		switch v := e.CompareValue.(type) {
		case string:
			b.WriteString(quoteString(v))
		case time.Time:
			b.WriteString(quoteString(v.Format(time.RFC3339Nano)))
		case nil:
			b.WriteString("null")
		case bool:
			b.WriteString(strconv.FormatBool(v))
		default:
			s, _ := asString(v)
			b.WriteString(s)
		}
	case *filter.LogicalExpression:
		side := func(x filter.Expression) {
			if l, ok := x.(*filter.LogicalExpression); ok && l.Operator != e.Operator {
				b.WriteByte('(')
				formatFilter(b, x)
				b.WriteByte(')')
				return
			}
			formatFilter(b, x)
		}
		side(e.Left)
		b.WriteByte(' ')
		b.WriteString(string(e.Operator))
		b.WriteByte(' ')
		side(e.Right)
	case *filter.NotExpression:
		b.WriteString("not (")
		formatFilter(b, e.Expression)
		b.WriteByte(')')
	case *filter.ValuePath:
		b.WriteString(e.AttributePath.String())
		b.WriteByte('[')
		formatFilter(b, e.ValueFilter)
		b.WriteByte(']')
	}
}
