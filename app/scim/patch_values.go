package scim

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"time"

	filter "github.com/scim2/filter-parser/v2"
)

// applyComplex handles a single-valued complex attribute such as name.
// RFC 7644 3.5.2.3: replacing a complex attribute with an object replaces
// the sub-attributes given and leaves the others.
func (p *patcher) applyComplex(c map[string]any, kind string, path *Path, v any) error {
	a := path.Attr
	cur, _ := p.get(c, a.Name).(map[string]any)
	if path.Sub == nil {
		if kind == "remove" || v == nil {
			p.del(c, a.Name)
			return nil
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return InvalidValue("%q is complex: its value must be an object", a.Name)
		}
		val, err := coerceComplex(a, obj)
		if err != nil {
			return err
		}
		if cur == nil {
			cur = map[string]any{}
		}
		for k, sv := range val {
			p.set(cur, k, sv)
		}
		if len(cur) > 0 {
			p.set(c, a.Name, cur)
		}
		return nil
	}
	if kind == "remove" || v == nil {
		if cur != nil {
			p.del(cur, path.Sub.Name)
			if len(cur) == 0 {
				p.del(c, a.Name)
			}
		}
		return nil
	}
	val, err := coerceScalar(path.Sub, v)
	if err != nil {
		return err
	}
	if cur == nil {
		cur = map[string]any{}
		p.set(c, a.Name, cur)
	}
	p.set(cur, path.Sub.Name, val)
	return nil
}

// setManager stores the enterprise manager as {"value": id}, whichever of
// the shapes identity providers use it arrives in.
func (p *patcher) setManager(c map[string]any, kind string, path *Path, v any) error {
	if kind == "remove" {
		if path.Sub == nil || path.Sub.Name == "value" {
			p.del(c, "manager")
		}
		return nil
	}
	if path.Sub != nil && path.Sub.Name != "value" {
		return nil // $ref is derived from value when answering
	}
	id, err := managerID(v)
	if err != nil {
		return err
	}
	if id == "" {
		p.del(c, "manager")
		return nil
	}
	p.set(c, "manager", map[string]any{"value": id})
	return nil
}

// managerID extracts the manager's id from a string, a {value, $ref}
// object or a one-element array of those; "" means no manager.
func managerID(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(v), nil
	case json.Number:
		return v.String(), nil
	case map[string]any:
		if id := LookupCI(v, "value"); id != nil {
			return managerID(id)
		}
		if ref, ok := LookupCI(v, "$ref").(string); ok && ref != "" {
			// Only a $ref: its last segment is the id.
			return ref[strings.LastIndexByte(ref, '/')+1:], nil
		}
		return "", nil
	case []any:
		switch len(v) {
		case 0:
			return "", nil
		case 1:
			return managerID(v[0])
		}
	}
	return "", InvalidValue("manager must be an id, an object with value, or one such object in an array")
}

// applyMulti handles multi-valued complex attributes: emails, members, …
func (p *patcher) applyMulti(c map[string]any, kind string, path *Path, v any) error {
	a := path.Attr
	cur := AsList(p.get(c, a.Name))
	isMembers := a.Name == "members"
	set := func(list []any) {
		if len(list) == 0 {
			p.del(c, a.Name)
		} else {
			p.set(c, a.Name, list)
		}
	}

	if path.Filter == nil && path.Sub == nil {
		switch {
		case kind == "remove" && v == nil:
			set(nil)
			return nil
		case kind == "remove":
			// Entra: remove path "members" with a value list removes those.
			targets, err := elements(a, v)
			if err != nil {
				return err
			}
			set(removeElements(a, cur, targets))
			return nil
		case kind == "replace":
			vals, err := elements(a, v)
			if err == nil {
				err = checkMemberValues(a, vals...)
			}
			if err != nil {
				return err
			}
			if isMembers {
				p.membersReplaced = true
			}
			set(addElements(a, nil, vals))
			return nil
		}
		vals, err := elements(a, v)
		if err == nil {
			err = checkMemberValues(a, vals...)
		}
		if err != nil {
			return err
		}
		set(addElements(a, cur, vals))
		return nil
	}

	var match func(map[string]any) (bool, error)
	if path.Filter != nil {
		match = p.elementMatcher(a, path.Filter)
	} else {
		match = func(map[string]any) (bool, error) { return true, nil }
	}
	out := make([]any, 0, len(cur))
	matched := 0
	for _, el := range cur {
		em, ok := el.(map[string]any)
		if !ok {
			out = append(out, el)
			continue
		}
		m, err := match(em)
		if err != nil {
			return err
		}
		if !m {
			out = append(out, el)
			continue
		}
		matched++
		switch {
		case kind == "remove" || v == nil:
			if path.Sub == nil || path.Sub.Name == "value" {
				continue // the value goes with its identity
			}
			em = cloneMap(em)
			p.del(em, path.Sub.Name)
		case path.Sub != nil:
			val, err := coerceScalar(path.Sub, v)
			if err != nil {
				return err
			}
			em = cloneMap(em)
			p.set(em, path.Sub.Name, val)
		default:
			val, err := singleElement(a, v)
			if err != nil {
				return err
			}
			if kind == "add" {
				merged := cloneMap(em)
				for k, sv := range val {
					p.set(merged, k, sv)
				}
				val = merged
			} else {
				// replace keeps what the filter pinned down (type "work").
				for k, sv := range filterEquals(path.Filter) {
					if p.get(val, k) == nil {
						val[k] = sv
					}
				}
			}
			if err := checkMemberValues(a, val); err != nil {
				return err
			}
			em = val
		}
		if len(em) > 0 {
			out = append(out, em)
		}
	}
	if matched == 0 && kind != "remove" && v != nil {
		// Entra: a filtered path that matches nothing gets a new value of
		// that kind, e.g. the first work email.
		el := filterEquals(path.Filter)
		if path.Sub != nil {
			val, err := coerceScalar(path.Sub, v)
			if err != nil {
				return err
			}
			el[path.Sub.Name] = val
		} else {
			val, err := singleElement(a, v)
			if err != nil {
				return err
			}
			for k, sv := range val {
				el[k] = sv
			}
		}
		if err := checkMemberValues(a, el); err != nil {
			return err
		}
		out = addElements(a, out, []map[string]any{el})
	}
	set(out)
	return nil
}

// checkMemberValues requires an id (value) in every member value added.
func checkMemberValues(a *Attribute, vals ...map[string]any) error {
	if a.Name != "members" {
		return nil
	}
	for _, v := range vals {
		if s, ok := v["value"].(string); !ok || strings.TrimSpace(s) == "" {
			return InvalidValue("every member needs a value (the member's id)")
		}
	}
	return nil
}

// elementMatcher returns a predicate for one value of a. The common
// `value eq "id"` filter on members takes a direct comparison: Okta sends
// one such remove per member, and a group may have thousands.
func (p *patcher) elementMatcher(a *Attribute, f filter.Expression) func(map[string]any) (bool, error) {
	if ae, ok := f.(*filter.AttributeExpression); ok && ae.Operator == filter.EQ && ae.AttributePath.URIPrefix == nil && ae.AttributePath.SubAttribute == nil {
		sub := a.Sub(ae.AttributePath.AttributeName)
		want, isString := ae.CompareValue.(string)
		if sub != nil && isString && (sub.Type == TypeString || sub.Type == TypeReference) {
			return func(el map[string]any) (bool, error) {
				have, ok := asString(LookupCI(el, sub.Name))
				if !ok {
					return false, nil
				}
				if sub.CaseExact {
					return have == want, nil
				}
				return strings.EqualFold(have, want), nil
			}
		}
	}
	m := matcher{rt: p.rt}
	return func(el map[string]any) (bool, error) { return m.eval(f, el, a) }
}

// filterEquals returns the sub-attribute values a value filter pins down
// with eq in its top-level and-chain: `type eq "work" and primary eq true`
// gives {"type":"work","primary":true}.
func filterEquals(f filter.Expression) map[string]any {
	out := map[string]any{}
	var walk func(filter.Expression)
	walk = func(e filter.Expression) {
		switch e := e.(type) {
		case *filter.LogicalExpression:
			if e.Operator == filter.AND {
				walk(e.Left)
				walk(e.Right)
			}
		case *filter.AttributeExpression:
			if e.Operator != filter.EQ || e.CompareValue == nil {
				return
			}
			switch cv := e.CompareValue.(type) {
			case time.Time:
				out[e.AttributePath.AttributeName] = cv.Format(time.RFC3339Nano)
			default:
				out[e.AttributePath.AttributeName] = cv
			}
		}
	}
	walk(f)
	return out
}

// elements turns the value of an operation on a whole multi-valued
// attribute into its values: an array, or one object standing for itself.
func elements(a *Attribute, v any) ([]map[string]any, error) {
	var list []any
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []any:
		list = v
	default:
		list = []any{v}
	}
	out := make([]map[string]any, 0, len(list))
	for _, el := range list {
		if el == nil {
			continue
		}
		m, err := singleElement(a, el)
		if err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, m)
		}
	}
	return out, nil
}

// singleElement coerces one value of a multi-valued complex attribute: an
// object, a one-element array of one, or a bare string standing for
// {"value": …}.
func singleElement(a *Attribute, v any) (map[string]any, error) {
	switch x := v.(type) {
	case []any:
		if len(x) == 1 {
			return singleElement(a, x[0])
		}
		return nil, InvalidValue("%q: expected one value, got %d", a.Name, len(x))
	case string, json.Number:
		if a.Sub("value") != nil {
			s, _ := asString(x)
			return map[string]any{"value": s}, nil
		}
	case map[string]any:
		return coerceComplex(a, x)
	}
	return nil, InvalidValue("%q: each value must be an object", a.Name)
}

// addElements appends the values not already present (RFC 7644 3.5.2.1),
// in O(len(cur)+len(vals)). A new value with primary true takes primary
// from the others.
func addElements(a *Attribute, cur []any, vals []map[string]any) []any {
	seen := make(map[string]bool, len(cur)+len(vals))
	out := make([]any, 0, len(cur)+len(vals))
	for _, el := range cur {
		seen[elementKey(a, el)] = true
		out = append(out, el)
	}
	for _, el := range vals {
		k := elementKey(a, el)
		if seen[k] {
			continue
		}
		seen[k] = true
		if b, _ := el["primary"].(bool); b {
			for i, o := range out {
				if om, ok := o.(map[string]any); ok {
					if ob, _ := om["primary"].(bool); ob {
						om = cloneMap(om)
						om["primary"] = false
						out[i] = om
					}
				}
			}
		}
		out = append(out, el)
	}
	return out
}

// removeElements drops the values of cur that match a target: by value
// when the target has one, else by equality.
func removeElements(a *Attribute, cur []any, targets []map[string]any) []any {
	if len(targets) == 0 {
		return cur
	}
	valueSub := a.Sub("value")
	byValue := map[string]bool{}
	var whole []map[string]any
	for _, t := range targets {
		if s, ok := asString(t["value"]); ok && valueSub != nil {
			byValue[foldUnless(valueSub.CaseExact, s)] = true
		} else {
			whole = append(whole, t)
		}
	}
	out := make([]any, 0, len(cur))
	for _, el := range cur {
		em, _ := el.(map[string]any)
		if em != nil && valueSub != nil {
			if s, ok := asString(LookupCI(em, "value")); ok && byValue[foldUnless(valueSub.CaseExact, s)] {
				continue
			}
		}
		if em != nil && slices.ContainsFunc(whole, func(t map[string]any) bool { return reflect.DeepEqual(t, em) }) {
			continue
		}
		out = append(out, el)
	}
	return out
}

// elementKey identifies a value for de-duplication: members by value (a
// member is in a group once), other attributes by their whole content.
func elementKey(a *Attribute, el any) string {
	em, ok := el.(map[string]any)
	if a.Name == "members" && ok {
		if s, ok := asString(LookupCI(em, "value")); ok {
			return "v\x00" + s
		}
	}
	b, _ := json.Marshal(el) // map keys are sorted: a stable key
	return "j\x00" + string(b)
}

func foldUnless(caseExact bool, s string) string {
	if caseExact {
		return s
	}
	return strings.ToLower(s)
}

// coerceComplex returns a canonical copy of a complex value: known
// sub-attribute names spelled as the schema spells them, booleans from
// "True"/"False", nulls dropped, unknown sub-attributes kept as sent.
func coerceComplex(a *Attribute, obj map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		if v == nil {
			continue
		}
		sub := a.Sub(k)
		if sub == nil {
			out[k] = v
			continue
		}
		val, err := coerceScalar(sub, v)
		if err != nil {
			return nil, err
		}
		out[sub.Name] = val
	}
	return out, nil
}

// coerceScalar converts a value to the attribute's type where the intent is
// plain ("True" → true, 42 → "42" for a string) and refuses the rest.
func coerceScalar(a *Attribute, v any) (any, error) {
	switch a.Type {
	case TypeBoolean:
		b, ok := asBool(v)
		if !ok {
			return nil, InvalidValue("%q must be a boolean", a.Name)
		}
		return b, nil
	case TypeComplex:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, InvalidValue("%q must be an object", a.Name)
		}
		return coerceComplex(a, obj)
	case TypeInteger, TypeDecimal:
		if _, ok := asFloat(v); !ok {
			return nil, InvalidValue("%q must be a number", a.Name)
		}
		return v, nil
	}
	switch v.(type) {
	case map[string]any, []any:
		return nil, InvalidValue("%q must be a string", a.Name)
	}
	s, ok := asString(v)
	if !ok {
		return nil, InvalidValue("%q must be a string", a.Name)
	}
	return s, nil
}
