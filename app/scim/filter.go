package scim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	filter "github.com/scim2/filter-parser/v2"
)

// Limits that keep a hostile filter from costing more than a real one
// (and see MaxFilterTerms, MaxMultiValuedTerms).
const (
	maxFilterLength = 4096
	maxFilterDepth  = 32
)

// placeholderURN prefixes the stand-in attribute paths the normaliser puts
// where a value path was (see normalizer).
const placeholderURN = "urn:idbridge:vp:"

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
		// The third-party parser is fuzzed here, not trusted: a panic in it
		// is a bad filter, not a crashed request.
		if r := recover(); r != nil {
			expr, err = nil, InvalidFilter("the filter could not be parsed")
		}
	}()
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
	text, err := n.parseFilter()
	if err != nil {
		return nil, err
	}
	expr, err = n.parse(text)
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

// --- normaliser -----------------------------------------------------------

// normalizer rewrites the filter dialects identity providers send into the
// RFC grammar filter-parser reads: single spaces, lower-case operators,
// quoted and re-escaped strings. Each value path `attr[inner]` is taken out
// and replaced by a stand-in `urn:idbridge:vp:N:x pr`, because
// filter-parser's value-filter grammar is narrower than the RFC's (no
// parentheses, at most one and/or): the inner filter is parsed on its own
// with the full grammar and spliced back in.
type normalizer struct {
	src       string
	pos       int
	depth     int
	inBracket bool
	vps       []valuePathText
}

type valuePathText struct{ path, inner string }

func (n *normalizer) errorf(format string, args ...any) error {
	return InvalidFilter("%s at offset %d", fmt.Sprintf(format, args...), n.pos)
}

func (n *normalizer) parseFilter() (string, error) {
	out, err := n.parseOr()
	if err != nil {
		return "", err
	}
	n.skipSpace()
	if n.pos < len(n.src) {
		return "", n.errorf("unexpected %q", n.src[n.pos:min(n.pos+10, len(n.src))])
	}
	return out, nil
}

func (n *normalizer) parseOr() (string, error) {
	left, err := n.parseAnd()
	if err != nil {
		return "", err
	}
	for {
		save := n.pos
		n.skipSpace()
		if !n.keyword("or") {
			n.pos = save
			return left, nil
		}
		right, err := n.parseAnd()
		if err != nil {
			return "", err
		}
		left += " or " + right
	}
}

func (n *normalizer) parseAnd() (string, error) {
	left, err := n.parseUnary()
	if err != nil {
		return "", err
	}
	for {
		save := n.pos
		n.skipSpace()
		if !n.keyword("and") {
			n.pos = save
			return left, nil
		}
		right, err := n.parseUnary()
		if err != nil {
			return "", err
		}
		left += " and " + right
	}
}

func (n *normalizer) parseUnary() (string, error) {
	n.skipSpace()
	if n.depth >= maxFilterDepth {
		return "", n.errorf("the filter nests deeper than %d", maxFilterDepth)
	}
	n.depth++
	defer func() { n.depth-- }()
	if n.peek() == '(' {
		return n.parenthesised("")
	}
	save := n.pos
	if n.word("not") {
		n.skipSpace()
		if n.peek() == '(' {
			return n.parenthesised("not ")
		}
		n.pos = save
	}
	return n.attrExp()
}

func (n *normalizer) parenthesised(prefix string) (string, error) {
	n.pos++ // (
	inner, err := n.parseOr()
	if err != nil {
		return "", err
	}
	n.skipSpace()
	if n.peek() != ')' {
		return "", n.errorf("missing )")
	}
	n.pos++
	return prefix + "(" + inner + ")", nil
}

func (n *normalizer) attrExp() (string, error) {
	path := n.readPath()
	if path == "" {
		return "", n.errorf("expected an attribute name")
	}
	if hasPrefixFold(path, placeholderURN) {
		return "", InvalidFilter("unknown attribute %q", path)
	}
	n.skipSpace()
	if n.peek() != '[' {
		op, value, err := n.opAndValue()
		if err != nil {
			return "", err
		}
		return path + " " + op + value, nil
	}
	if n.inBracket {
		return "", n.errorf("value paths do not nest")
	}
	if len(n.vps) >= MaxMultiValuedTerms {
		return "", InvalidFilter("the filter has more than %d terms over multi-valued attributes (value paths, emails, members, …), the most this server evaluates in one filter", MaxMultiValuedTerms)
	}
	n.pos++ // [
	n.inBracket = true
	inner, err := n.parseOr()
	n.inBracket = false
	if err != nil {
		return "", err
	}
	n.skipSpace()
	if n.peek() != ']' {
		return "", n.errorf("missing ]")
	}
	n.pos++
	if n.peek() == '.' {
		// Entra: emails[type eq "work"].value eq "x"
		n.pos++
		sub := n.readPath()
		if sub == "" || strings.ContainsAny(sub, ".:") {
			return "", n.errorf("expected a sub-attribute name after ].")
		}
		n.skipSpace()
		op, value, err := n.opAndValue()
		if err != nil {
			return "", err
		}
		inner = "(" + inner + ") and " + sub + " " + op + value
	}
	n.vps = append(n.vps, valuePathText{path: path, inner: inner})
	return fmt.Sprintf("%s%d:x pr", placeholderURN, len(n.vps)-1), nil
}

var compareOperators = map[string]bool{
	"eq": true, "ne": true, "co": true, "sw": true, "ew": true,
	"gt": true, "ge": true, "lt": true, "le": true, "pr": true,
}

// opAndValue reads a comparison operator and, unless it is pr, a value;
// value comes back with its leading space.
func (n *normalizer) opAndValue() (string, string, error) {
	start := n.pos
	for n.pos < len(n.src) && isLetter(n.src[n.pos]) {
		n.pos++
	}
	op := strings.ToLower(n.src[start:n.pos])
	if op == "" {
		return "", "", n.errorf("expected an operator")
	}
	if !compareOperators[op] {
		return "", "", InvalidFilter("unknown operator %q", n.src[start:n.pos])
	}
	if op == "pr" {
		return op, "", nil
	}
	n.skipSpace()
	value, err := n.readValue()
	if err != nil {
		return "", "", err
	}
	return op, " " + value, nil
}

func (n *normalizer) readValue() (string, error) {
	if n.peek() == '"' {
		n.pos++
		s, end, ok := decodeString(n.src, n.pos)
		if !ok {
			return "", n.errorf("unterminated string")
		}
		n.pos = end
		return quoteString(s), nil
	}
	start := n.pos
	for n.pos < len(n.src) {
		c := n.src[n.pos]
		if isSpace(c) || c == ')' || c == ']' {
			break
		}
		n.pos++
	}
	word := n.src[start:n.pos]
	if word == "" {
		return "", n.errorf("expected a value")
	}
	switch lw := strings.ToLower(word); lw {
	case "true", "false", "null":
		return lw, nil
	}
	if isJSONNumber(word) {
		return word, nil
	}
	// A bare word (Entra documents `externalId eq jyoung`) is a string.
	return quoteString(word), nil
}

func (n *normalizer) readPath() string {
	start := n.pos
	for n.pos < len(n.src) && isPathChar(n.src[n.pos]) {
		n.pos++
	}
	return n.src[start:n.pos]
}

// keyword consumes the case-insensitive word k when it stands alone
// (followed by a space or a parenthesis).
func (n *normalizer) keyword(k string) bool {
	end := n.pos + len(k)
	if end >= len(n.src) || !strings.EqualFold(n.src[n.pos:end], k) {
		return false
	}
	if c := n.src[end]; !isSpace(c) && c != '(' {
		return false
	}
	n.pos = end
	return true
}

// word consumes the case-insensitive word k when no path character follows.
func (n *normalizer) word(k string) bool {
	end := n.pos + len(k)
	if end > len(n.src) || !strings.EqualFold(n.src[n.pos:end], k) {
		return false
	}
	if end < len(n.src) && isPathChar(n.src[end]) {
		return false
	}
	n.pos = end
	return true
}

func (n *normalizer) peek() byte {
	if n.pos < len(n.src) {
		return n.src[n.pos]
	}
	return 0
}

func (n *normalizer) skipSpace() {
	for n.pos < len(n.src) && isSpace(n.src[n.pos]) {
		n.pos++
	}
}

// parse hands the normalised text to filter-parser and splices the value
// paths back in.
func (n *normalizer) parse(text string) (filter.Expression, error) {
	expr, err := filter.ParseFilterNumber([]byte(text))
	if err != nil {
		return nil, InvalidFilter("the filter is not valid SCIM filter syntax")
	}
	vps := make([]*filter.ValuePath, len(n.vps))
	for i, vp := range n.vps {
		ap, err := filter.ParseAttrPath([]byte(vp.path))
		if err != nil {
			return nil, InvalidFilter("%q is not a valid attribute path", vp.path)
		}
		inner, err := filter.ParseFilterNumber([]byte(vp.inner))
		if err != nil {
			return nil, InvalidFilter("the value filter of %q is not valid SCIM filter syntax", vp.path)
		}
		vps[i] = &filter.ValuePath{AttributePath: ap, ValueFilter: inner}
	}
	return splice(expr, vps)
}

func splice(e filter.Expression, vps []*filter.ValuePath) (filter.Expression, error) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		l, err := splice(e.Left, vps)
		if err != nil {
			return nil, err
		}
		r, err := splice(e.Right, vps)
		if err != nil {
			return nil, err
		}
		return &filter.LogicalExpression{Left: l, Right: r, Operator: e.Operator}, nil
	case *filter.NotExpression:
		in, err := splice(e.Expression, vps)
		if err != nil {
			return nil, err
		}
		return &filter.NotExpression{Expression: in}, nil
	case *filter.AttributeExpression:
		if uri, ok := cutPrefixFold(e.AttributePath.URI()+":", placeholderURN); ok {
			i, err := strconv.Atoi(strings.TrimSuffix(uri, ":"))
			if err != nil || i < 0 || i >= len(vps) {
				return nil, InvalidFilter("the filter could not be parsed")
			}
			return vps[i], nil
		}
		return e, nil
	}
	return e, nil
}

// --- validation -------------------------------------------------------------

type validator struct{ rt ResourceType }

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
		return decodeFilterString(s), nil
	}
	s, ok := asString(v)
	if !ok {
		return nil, InvalidFilter("%q is a string: compare it with a string", a.Name)
	}
	return s, nil
}

// decodeFilterString decodes the escapes filter-parser leaves in string
// values (it only strips the quotes).
func decodeFilterString(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	out, _, _ := decodeString(s+`"`, 0)
	return out
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

// --- in-memory evaluation -------------------------------------------------

// MatchFilter evaluates a filter from ParseFilter (or ParsePath's value
// filter) against a resource document, honouring each attribute's
// caseExact. A multi-valued attribute matches when any of its values does;
// ne is the negation of eq; pr is true for a value that is not null, not
// "", not an empty array and not an empty object. The database compiles the
// same semantics for lists; this serves PATCH value filters and tests.
func MatchFilter(rt ResourceType, expr filter.Expression, resource map[string]any) (bool, error) {
	m := matcher{rt: rt}
	return m.eval(expr, resource, nil)
}

type matcher struct{ rt ResourceType }

// eval evaluates e on obj: the resource when parent is nil, else one value
// of the multi-valued complex attribute parent.
func (m matcher) eval(e filter.Expression, obj map[string]any, parent *Attribute) (bool, error) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		l, err := m.eval(e.Left, obj, parent)
		if err != nil {
			return false, err
		}
		switch strings.ToLower(string(e.Operator)) {
		case "and":
			if !l {
				return false, nil
			}
		case "or":
			if l {
				return true, nil
			}
		default:
			return false, InvalidFilter("unknown logical operator %q", e.Operator)
		}
		return m.eval(e.Right, obj, parent)
	case *filter.NotExpression:
		b, err := m.eval(e.Expression, obj, parent)
		return !b, err
	case *filter.ValuePath:
		if parent != nil {
			return false, InvalidFilter("value paths do not nest")
		}
		ref, err := m.rt.Resolve(e.AttributePath.String())
		if err != nil || ref.Sub != nil {
			return false, InvalidFilter("unknown attribute %q", e.AttributePath.String())
		}
		for _, el := range AsList(LookupCI(container(obj, ref), ref.Attr.Name)) {
			em, ok := el.(map[string]any)
			if !ok {
				continue
			}
			b, err := m.eval(e.ValueFilter, em, ref.Attr)
			if err != nil || b {
				return b, err
			}
		}
		return false, nil
	case *filter.AttributeExpression:
		leaf, values, err := m.values(e.AttributePath, obj, parent)
		if err != nil {
			return false, err
		}
		op := filter.CompareOperator(strings.ToLower(string(e.Operator)))
		if leaf.Type == TypeComplex && op != filter.PR {
			value := leaf.Sub("value")
			if value == nil {
				return false, InvalidFilter("%q is complex: compare one of its sub-attributes", e.AttributePath.String())
			}
			var subs []any
			for _, v := range values {
				if vm, ok := v.(map[string]any); ok {
					subs = append(subs, AsList(LookupCI(vm, "value"))...)
				}
			}
			leaf, values = value, subs
		}
		want, err := compareValue(leaf, op, e.CompareValue)
		if err != nil {
			return false, err
		}
		return MatchValues(leaf, op, values, want), nil
	}
	return false, InvalidFilter("the filter could not be parsed")
}

// values returns the attribute a path compares and the values it has in
// obj, with multi-valued attributes flattened.
func (m matcher) values(p filter.AttributePath, obj map[string]any, parent *Attribute) (*Attribute, []any, error) {
	if parent != nil {
		sub := parent.Sub(p.AttributeName)
		if sub == nil || p.URIPrefix != nil || p.SubAttribute != nil {
			return nil, nil, InvalidFilter("unknown attribute %q in the value filter of %q", p.String(), parent.Name)
		}
		return sub, AsList(LookupCI(obj, sub.Name)), nil
	}
	ref, err := m.rt.Resolve(p.String())
	if err != nil {
		return nil, nil, InvalidFilter("unknown attribute %q", p.String())
	}
	top := AsList(LookupCI(container(obj, ref), ref.Attr.Name))
	if ref.Sub == nil {
		return ref.Attr, top, nil
	}
	var out []any
	for _, v := range top {
		if vm, ok := v.(map[string]any); ok {
			out = append(out, AsList(LookupCI(vm, ref.Sub.Name))...)
		}
	}
	return ref.Sub, out, nil
}

func MatchValues(a *Attribute, op filter.CompareOperator, values []any, want any) bool {
	if op == filter.PR {
		for _, v := range values {
			if present(v) {
				return true
			}
		}
		return false
	}
	if op == filter.NE {
		return !MatchValues(a, filter.EQ, values, want)
	}
	for _, v := range values {
		if v != nil && compareOne(a, op, v, want) {
			return true
		}
	}
	return false
}

func compareOne(a *Attribute, op filter.CompareOperator, have, want any) bool {
	switch a.Type {
	case TypeBoolean:
		h, ok := asBool(have)
		return ok && h == want.(bool)
	case TypeDateTime:
		h, ok := asTime(have)
		if !ok {
			return false
		}
		return ordered(op, h.Compare(want.(time.Time)))
	case TypeInteger, TypeDecimal:
		h, ok := asFloat(have)
		if !ok {
			return false
		}
		w := want.(float64)
		c := 0
		if h < w {
			c = -1
		} else if h > w {
			c = 1
		}
		return ordered(op, c)
	}
	h, ok := asString(have)
	if !ok {
		return false
	}
	w := want.(string)
	if !a.CaseExact {
		h, w = strings.ToLower(h), strings.ToLower(w)
	}
	switch op {
	case filter.CO:
		return strings.Contains(h, w)
	case filter.SW:
		return strings.HasPrefix(h, w)
	case filter.EW:
		return strings.HasSuffix(h, w)
	}
	return ordered(op, strings.Compare(h, w))
}

func ordered(op filter.CompareOperator, c int) bool {
	switch op {
	case filter.EQ:
		return c == 0
	case filter.GT:
		return c > 0
	case filter.GE:
		return c >= 0
	case filter.LT:
		return c < 0
	case filter.LE:
		return c <= 0
	}
	return false
}

// --- value helpers shared by filter, patch and resource code ---------------

// container returns the object an attribute lives in: the resource for
// core and common attributes, the extension object for extension ones.
func container(resource map[string]any, ref *AttrRef) map[string]any {
	if !ref.Extension() {
		return resource
	}
	m, _ := LookupCI(resource, ref.Schema).(map[string]any)
	return m
}

// LookupCI returns m[key], or the value of the first key equal to key
// case-insensitively.
func LookupCI(m map[string]any, key string) any {
	if m == nil {
		return nil
	}
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func AsList(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	case []map[string]any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = v[i]
		}
		return out
	}
	return []any{v}
}

func present(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		for _, e := range v {
			if present(e) {
				return true
			}
		}
		return false
	case map[string]any:
		for _, e := range v {
			if present(e) {
				return true
			}
		}
		return false
	}
	return true
}

func asBool(v any) (bool, bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

func asString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}

func asFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	}
	return 0, false
}

func asTime(v any) (time.Time, bool) {
	switch v := v.(type) {
	case time.Time:
		return v.UTC(), true
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, false
		}
		return t.UTC(), true
	}
	return time.Time{}, false
}

// --- lexical helpers ----------------------------------------------------------

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isPathChar(c byte) bool {
	return isLetter(c) || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '$' || c == '.' || c == ':'
}

func isJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	var n json.Number
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		return false
	}
	return true
}

// decodeString decodes a JSON-style string body starting at src[i] (after
// the opening quote) up to the closing quote. It is lenient where
// identity providers are sloppy: \u takes hex digits in either case, and an
// unknown escape stands for the character itself. It returns the decoded
// text, the index after the closing quote, and false when the string does
// not end.
func decodeString(src string, i int) (string, int, bool) {
	var b strings.Builder
	for i < len(src) {
		c := src[i]
		switch {
		case c == '"':
			return strings.ToValidUTF8(b.String(), "\uFFFD"), i + 1, true
		case c != '\\':
			b.WriteByte(c)
			i++
			continue
		}
		i++ // backslash
		if i >= len(src) {
			return "", i, false
		}
		e := src[i]
		i++
		switch e {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, n := hex4(src, i)
			if n == 0 {
				b.WriteByte('u')
				continue
			}
			i += n
			if utf16.IsSurrogate(r) {
				if i+1 < len(src) && src[i] == '\\' && src[i+1] == 'u' {
					if r2, n2 := hex4(src, i+2); n2 > 0 {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							r = d
							i += 2 + n2
						}
					}
				}
				if utf16.IsSurrogate(r) {
					r = utf8.RuneError
				}
			}
			b.WriteRune(r)
		default:
			b.WriteByte(e)
		}
	}
	return "", i, false
}

func hex4(s string, i int) (rune, int) {
	if i+4 > len(s) {
		return 0, 0
	}
	v, err := strconv.ParseUint(s[i:i+4], 16, 32)
	if err != nil {
		return 0, 0
	}
	return rune(v), 4
}

// quoteString writes s as a string literal filter-parser reads: quotes,
// backslashes and control characters escaped, everything else as UTF-8.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
