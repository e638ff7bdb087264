package scim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"

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
