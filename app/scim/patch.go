package scim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"time"

	filter "github.com/scim2/filter-parser/v2"
)

// PatchRequest is the body of a SCIM PATCH (RFC 7644 section 3.5.2).
// Schemas is not checked: clients that omit or misspell the PatchOp URN
// still mean a PATCH.
type PatchRequest struct {
	Schemas    []string         `json:"schemas"`
	Operations []PatchOperation `json:"Operations"`
}

// PatchOperation is one operation. Op is matched case-insensitively
// ("Replace" from Entra); Value holds JSON decoded with json.Number for
// numbers.
type PatchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

// PatchResult is the outcome of ApplyPatch.
type PatchResult struct {
	// Resource is the patched, normalised document (a new map; the input is
	// never modified).
	Resource map[string]any
	// Changed reports whether Resource differs from the (normalised) input:
	// an unchanged resource needs no write, no version bump, no outbox item.
	Changed bool
	// MembersAdded and MembersRemoved are the net member IDs a group patch
	// added and removed, compared with the input, in document order; the
	// caller checks that added IDs are users of the site and updates the
	// membership table with exactly these.
	MembersAdded, MembersRemoved []string
	// MembersReplaced reports a replace of the whole members list (Okta's
	// full push); MembersAdded/MembersRemoved still hold the net change.
	MembersReplaced bool
}

// DecodePatchRequest decodes a PATCH body. Malformed JSON is 400
// invalidSyntax; an empty Operations list is 400 invalidValue.
func DecodePatchRequest(body []byte) (*PatchRequest, error) {
	if hasNUL(string(body)) {
		return nil, InvalidValue("the body holds the NUL character (\\u0000), which no attribute may hold")
	}
	if err := checkBody(body); err != nil {
		return nil, err
	}
	var req PatchRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return nil, InvalidSyntax("the PATCH body is not a valid PatchOp message")
	}
	if dec.More() {
		return nil, InvalidSyntax("the PATCH body has data after the message")
	}
	if len(req.Operations) == 0 {
		return nil, InvalidValue("the PATCH body has no Operations")
	}
	if len(req.Operations) > MaxPatchOperations {
		return nil, InvalidValue("the PATCH body has %d Operations; at most %d are taken in one request", len(req.Operations), MaxPatchOperations)
	}
	return &req, nil
}

// ApplyPatch applies the operations in order to a copy of resource and
// returns the result; on any error nothing is applied (the input is never
// modified). Behaviour beyond RFC 7644, from what Okta and Entra send
// (shared/SCIM.md):
//   - op is case-insensitive; "True"/"False" strings become booleans;
//   - without a path, value is an object whose keys may be attribute
//     names, dotted sub-attribute paths, filtered paths or URN-qualified
//     names, or an extension URN holding an object; id, meta, schemas,
//     password and a user's groups in it are ignored, unknown keys kept;
//   - replace of an absent attribute adds it; replace or add on a filtered
//     path that matches nothing adds a value built from the filter's eq
//     terms (emails[type eq "work"].value → {"type":"work","value":…});
//   - remove on a filtered path that matches nothing succeeds unchanged;
//     remove of a filtered ".value" removes the whole matching value;
//   - remove "members" with a value list removes only those members;
//     replace "members" replaces the list;
//   - manager as a string, a {value,$ref} object or a one-element array is
//     stored as {"value": id};
//   - password is never stored; a user's groups are read-only and ignored.
//
// Errors are *Error: remove without path noTarget, unparsable path
// invalidPath, an explicit path to id or meta mutability, a wrong value
// invalidValue, an empty Operations list invalidValue, an unknown op
// invalidSyntax.
func ApplyPatch(rt ResourceType, resource map[string]any, req *PatchRequest) (*PatchResult, error) {
	if req == nil || len(req.Operations) == 0 {
		return nil, InvalidValue("the PATCH body has no Operations")
	}
	p := &patcher{rt: rt, doc: deepCopyMap(resource)}
	defer p.ci.release()
	for i := 0; i < len(req.Operations); {
		if n := p.memberRun(req.Operations[i:]); n > 0 {
			i += n
			continue
		}
		op := req.Operations[i]
		if err := p.apply(op); err != nil {
			return nil, OperationError(i, op, err)
		}
		i++
	}
	out, err := normalize(rt, p.doc, true)
	if err != nil {
		return nil, err
	}
	before, err := normalize(rt, resource, true) // reads, never writes, its input
	if err != nil {
		before = resource
	}
	res := &PatchResult{Resource: out, Changed: !reflect.DeepEqual(before, out), MembersReplaced: p.membersReplaced}
	if rt.Schema.Attr("members") != nil {
		res.MembersAdded, res.MembersRemoved = diffIDs(memberIDs(before), memberIDs(out))
	}
	return res, nil
}

type patcher struct {
	rt              ResourceType
	doc             map[string]any
	membersReplaced bool
	// ci finds keys case-insensitively in constant time, whatever the
	// size of the document (it may carry up to MaxAttributes).
	ci ciIndex
}

func (p *patcher) get(m map[string]any, key string) any    { return p.ci.get(m, key) }
func (p *patcher) set(m map[string]any, key string, v any) { p.ci.set(m, key, v) }
func (p *patcher) del(m map[string]any, key string)        { p.ci.del(m, key) }

func (p *patcher) apply(op PatchOperation) error {
	kind := strings.ToLower(strings.TrimSpace(op.Op))
	switch kind {
	case "add", "replace", "remove":
	default:
		return InvalidSyntax("op %q is not add, replace or remove", op.Op)
	}
	if strings.TrimSpace(op.Path) == "" {
		if kind == "remove" {
			return NoTarget("remove needs a path")
		}
		obj, ok := op.Value.(map[string]any)
		if !ok {
			return InvalidValue("without a path, value must be an object of attributes")
		}
		return p.applyObject(kind, obj, nil)
	}
	path, err := ParsePath(p.rt, op.Path)
	if err != nil {
		return err
	}
	if path.Known() && isServerOwned(path.Attr) {
		return Mutability("%q is assigned by the server and cannot be changed", path.Attr.Name)
	}
	return p.applyPath(kind, path, op.Value)
}

// memberRun applies a run of two or more consecutive operations that all
// add members, or all remove members by id, in one pass over the members,
// and returns how many operations it applied (0 when ops does not start
// such a run). Entra and Okta send one operation per member; applying them
// one by one would be O(operations × members). Adds commute with adds and
// removes with removes, so the result is the same; an operation that might
// fail ends the run and is applied alone, to report its own error.
func (p *patcher) memberRun(ops []PatchOperation) int {
	a := p.rt.Schema.Attr("members")
	if a == nil || len(ops) < 2 {
		return 0
	}
	var (
		kind    string
		adds    []map[string]any
		removes []map[string]any
		n       int
	)
	for _, op := range ops {
		k, vals, ok := memberOperation(p.rt, a, op)
		if !ok || (n > 0 && k != kind) {
			break
		}
		kind = k
		n++
		if k == "add" {
			adds = append(adds, vals...)
		} else {
			removes = append(removes, vals...)
		}
	}
	if n < 2 {
		return 0
	}
	c := p.doc
	cur := AsList(p.get(c, a.Name))
	var list []any
	if kind == "add" {
		list = addElements(a, cur, adds)
	} else {
		list = removeElements(a, cur, removes)
	}
	if len(list) == 0 {
		p.del(c, a.Name)
	} else {
		p.set(c, a.Name, list)
	}
	return n
}

// memberOperation recognises an operation memberRun can merge: add of
// member values that all have an id, or remove of members by id (a value
// list, or members[value eq "id"]). vals are the values to add, or
// {"value": id} for each id to remove.
func memberOperation(rt ResourceType, a *Attribute, op PatchOperation) (string, []map[string]any, bool) {
	kind := strings.ToLower(strings.TrimSpace(op.Op))
	if kind != "add" && kind != "remove" || strings.TrimSpace(op.Path) == "" {
		return "", nil, false
	}
	path, err := ParsePath(rt, op.Path)
	if err != nil || path.Attr != a || path.Sub != nil {
		return "", nil, false
	}
	if path.Filter != nil {
		ae, ok := path.Filter.(*filter.AttributeExpression)
		if kind != "remove" || !ok || ae.Operator != filter.EQ || ae.AttributePath.AttributeName != "value" {
			return "", nil, false
		}
		id, ok := ae.CompareValue.(string)
		return kind, []map[string]any{{"value": id}}, ok
	}
	if op.Value == nil {
		return "", nil, false // remove of all members, or an add of nothing
	}
	vals, err := elements(a, op.Value)
	if err != nil {
		return "", nil, false
	}
	for _, v := range vals {
		if s, ok := v["value"].(string); !ok || strings.TrimSpace(s) == "" {
			return "", nil, false
		}
	}
	return kind, vals, true
}

// isServerOwned reports id and meta: ignored in value objects, a
// mutability error with an explicit path.
func isServerOwned(a *Attribute) bool { return a.Name == "id" || a.Name == "meta" }

// applyObject applies a no-path value object; ext is set when obj is the
// object of a schema extension.
func (p *patcher) applyObject(kind string, obj map[string]any, ext *Schema) error {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	// Sorted so that "name" applies before "name.givenName", whatever the
	// map order.
	slices.Sort(keys)
	for _, k := range keys {
		v := obj[k]
		if ext == nil {
			if strings.EqualFold(k, "schemas") {
				continue
			}
			if e := p.rt.Extension(k); e != nil {
				if err := p.applyExtension(kind, e, v); err != nil {
					return err
				}
				continue
			}
		}
		pathText := k
		if ext != nil {
			pathText = ext.ID + ":" + k
		}
		path, err := ParsePath(p.rt, pathText)
		if err != nil {
			// A key that is no attribute path at all: ignored, never an
			// error (unknown attributes are kept or ignored).
			continue
		}
		if path.Known() && isServerOwned(path.Attr) {
			continue // Okta's group rename sends the read-only id.
		}
		if err := p.applyPath(kind, path, v); err != nil {
			return err
		}
	}
	return nil
}

func (p *patcher) applyExtension(kind string, ext *Schema, v any) error {
	if kind == "remove" || v == nil {
		p.del(p.doc, ext.ID)
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return InvalidValue("the value of %q must be an object", ext.ID)
	}
	return p.applyObject(kind, obj, ext)
}

// applyPath applies one operation to a parsed path.
func (p *patcher) applyPath(kind string, path *Path, v any) error {
	if path.ExtensionOnly() {
		if ext := p.rt.Extension(path.Schema); ext != nil {
			return p.applyExtension(kind, ext, v)
		}
		return p.applyUnknownExtension(kind, path.Schema, v)
	}
	if !path.Known() {
		return p.applyUnknown(kind, path, v)
	}
	a := path.Attr
	switch {
	case a.Name == "password" && path.Schema == UserSchema:
		return nil // never stored
	case a.mutability() == MutabilityReadOnly:
		return nil // groups of a user: read-only, managed through /Groups
	case path.Sub != nil && path.Sub.mutability() == MutabilityReadOnly:
		return nil // manager.displayName and the like are ours to fill in
	}
	c := p.container(path.Schema, kind != "remove")
	if c == nil {
		return nil // removing from an absent extension: nothing to do
	}
	switch {
	case a.Name == "manager" && path.Schema == EnterpriseUserSchema:
		return p.setManager(c, kind, path, v)
	case a.MultiValued:
		return p.applyMulti(c, kind, path, v)
	case a.Type == TypeComplex:
		return p.applyComplex(c, kind, path, v)
	}
	if kind == "remove" || v == nil {
		p.del(c, a.Name)
		return nil
	}
	val, err := coerceScalar(a, v)
	if err != nil {
		return err
	}
	p.set(c, a.Name, val)
	return nil
}

// container returns the object attributes of schema live in: the resource
// itself or its extension object, created when create is set.
func (p *patcher) container(schema string, create bool) map[string]any {
	if schema == p.rt.Schema.ID {
		return p.doc
	}
	if m, ok := p.get(p.doc, schema).(map[string]any); ok {
		return m
	}
	if !create {
		return nil
	}
	m := map[string]any{}
	p.set(p.doc, schema, m)
	return m
}

// applyUnknownExtension keeps the object of an extension this server does
// not know, as sent; add and replace merge its attributes.
func (p *patcher) applyUnknownExtension(kind, urn string, v any) error {
	obj, isObj := v.(map[string]any)
	cur, _ := p.get(p.doc, urn).(map[string]any)
	switch {
	case kind == "remove" || v == nil:
		p.del(p.doc, urn)
	case isObj && cur != nil:
		for k, sv := range obj {
			if sv == nil {
				p.del(cur, k)
			} else {
				p.set(cur, k, sv)
			}
		}
	default:
		p.set(p.doc, urn, v)
	}
	return nil
}

// applyUnknown keeps an attribute the schema does not know, as sent.
func (p *patcher) applyUnknown(kind string, path *Path, v any) error {
	c := p.container(path.Schema, kind != "remove")
	if c == nil {
		return nil
	}
	if path.SubName == "" {
		if kind == "remove" || v == nil {
			p.del(c, path.Name)
		} else {
			p.set(c, path.Name, v)
		}
		return nil
	}
	obj, _ := p.get(c, path.Name).(map[string]any)
	if obj == nil {
		if kind == "remove" || v == nil {
			return nil
		}
		obj = map[string]any{}
		p.set(c, path.Name, obj)
	}
	if kind == "remove" || v == nil {
		p.del(obj, path.SubName)
		if len(obj) == 0 {
			p.del(c, path.Name)
		}
		return nil
	}
	p.set(obj, path.SubName, v)
	return nil
}

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

// setCI sets key in m, replacing any key equal to it case-insensitively.
func setCI(m map[string]any, key string, v any) {
	deleteCI(m, key)
	m[key] = v
}

// deleteCI deletes every key of m equal to key case-insensitively.
func deleteCI(m map[string]any, key string) {
	delete(m, key)
	for k := range m {
		if strings.EqualFold(k, key) {
			delete(m, k)
		}
	}
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// deepCopyMap copies the JSON-shaped document m (maps, slices, scalars).
func deepCopyMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return deepCopy(m).(map[string]any)
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	case []string:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = e
		}
		return out
	}
	return v
}

// memberIDs returns the member values of a group document in order.
func memberIDs(doc map[string]any) []string {
	var ids []string
	for _, el := range AsList(LookupCI(doc, "members")) {
		if em, ok := el.(map[string]any); ok {
			if s, ok := asString(LookupCI(em, "value")); ok && s != "" {
				ids = append(ids, s)
			}
		}
	}
	return ids
}

// diffIDs returns the IDs in after and not before, and in before and not
// after, each in its list's order.
func diffIDs(before, after []string) (added, removed []string) {
	inBefore := make(map[string]bool, len(before))
	for _, id := range before {
		inBefore[id] = true
	}
	inAfter := make(map[string]bool, len(after))
	for _, id := range after {
		inAfter[id] = true
		if !inBefore[id] {
			added = append(added, id)
		}
	}
	for _, id := range before {
		if !inAfter[id] {
			removed = append(removed, id)
		}
	}
	return added, removed
}
