package scim

import (
	"strings"
	"time"

	filter "github.com/scim2/filter-parser/v2"
)

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
