package scim

import (
	"slices"
	"strings"
)

// Normalize prepares a User or Group document from a POST or PUT body for
// storage and returns a new map (the input is not modified):
//   - known attribute and sub-attribute names are spelled as the schema
//     spells them; an extension may also arrive flattened
//     ("urn:…:enterprise:2.0:User:department" as a top-level key);
//   - unknown attributes and unknown extension objects are kept as sent,
//     never an error;
//   - id and meta are dropped (the server assigns them), and so are
//     password (never stored) and a user's groups (read-only);
//   - booleans may be "True"/"False" strings; numbers sent for string
//     attributes become strings; nulls are dropped (no response ever has a
//     null);
//   - a multi-valued attribute sent as one object becomes a one-element
//     array; members are de-duplicated by value and each needs a value;
//   - manager is stored as {"value": id} whatever shape it arrives in;
//   - schemas lists the core schema, the extensions present, and the
//     unknown extension URNs that carry data (kept as sent); other unknown
//     URNs (Entra's extra group schema) are accepted and dropped.
//
// A missing userName (users) or displayName (groups), or a value of the
// wrong type, is a 400 invalidValue *Error.
func Normalize(rt ResourceType, doc map[string]any) (map[string]any, error) {
	return normalize(rt, deepCopyMap(doc), false) // the copy: no sharing with the caller's map
}

// normalize does Normalize's work. It never modifies doc, but the result
// may share unchanged values (strings, kept unknown attributes) with it;
// keepServer keeps id and meta (PATCH results).
func normalize(rt ResourceType, doc map[string]any, keepServer bool) (map[string]any, error) {
	out := make(map[string]any, len(doc))
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic when two spellings of a key collide
	var schemas []string
	for _, k := range keys {
		v := doc[k]
		if strings.EqualFold(k, "schemas") {
			for _, s := range AsList(v) {
				if str, ok := s.(string); ok && str != "" {
					schemas = append(schemas, str)
				}
			}
			continue
		}
		if v == nil {
			continue
		}
		if ext := rt.Extension(k); ext != nil {
			obj, ok := v.(map[string]any)
			if !ok {
				return nil, InvalidValue("%q must be an object", ext.ID)
			}
			cur, _ := out[ext.ID].(map[string]any)
			if cur == nil {
				cur = map[string]any{}
			}
			if err := normalizeAttrs(ext, nil, obj, cur); err != nil {
				return nil, err
			}
			out[ext.ID] = cur
			continue
		}
		if ext, name := rt.flattenedExtension(k); ext != nil {
			cur, _ := out[ext.ID].(map[string]any)
			if cur == nil {
				cur = map[string]any{}
			}
			if err := normalizeAttrs(ext, nil, map[string]any{name: v}, cur); err != nil {
				return nil, err
			}
			out[ext.ID] = cur
			continue
		}
		if err := normalizeAttrs(&rt.Schema, &normalizeOptions{rt: rt, keepServer: keepServer}, map[string]any{k: v}, out); err != nil {
			return nil, err
		}
	}
	for _, ext := range rt.Extensions {
		if m, ok := out[ext.ID].(map[string]any); ok && len(m) == 0 {
			delete(out, ext.ID)
		}
	}
	out["schemas"] = resourceSchemas(rt, schemas, out)
	if err := validateRequired(rt, out); err != nil {
		return nil, err
	}
	return out, nil
}

type normalizeOptions struct {
	rt         ResourceType
	keepServer bool
}

// flattenedExtension recognises "urn:…:enterprise:2.0:User:department" as a
// top-level key.
func (rt ResourceType) flattenedExtension(k string) (*Schema, string) {
	for i := range rt.Extensions {
		if rest, ok := cutPrefixFold(k, rt.Extensions[i].ID+":"); ok && rest != "" {
			return &rt.Extensions[i], rest
		}
	}
	return nil, ""
}

// normalizeAttrs normalises the attributes of obj that belong to schema
// into out. core is set for the core schema (common attributes and the
// core-URN-qualified spelling apply there).
func normalizeAttrs(schema *Schema, core *normalizeOptions, obj, out map[string]any) error {
	for k, v := range obj {
		if v == nil {
			continue
		}
		name := k
		if core != nil {
			if rest, ok := cutPrefixFold(k, schema.ID+":"); ok && rest != "" {
				name = rest
			}
		}
		a := schema.Attr(name)
		if a == nil && core != nil {
			a = findAttr(commonAttributes, name)
		}
		if a == nil {
			out[k] = v // unknown: kept as sent
			continue
		}
		if core != nil && isServerOwned(a) {
			if core.keepServer {
				out[a.Name] = v
			}
			continue
		}
		if a.Name == "password" && schema.ID == UserSchema {
			continue
		}
		if a.mutability() == MutabilityReadOnly {
			continue // groups of a user
		}
		val, err := normalizeValue(schema, a, v)
		if err != nil {
			return err
		}
		if val == nil {
			delete(out, a.Name)
			continue
		}
		out[a.Name] = val
	}
	return nil
}

// normalizeValue returns the canonical value of attribute a, or nil when
// nothing is left to store.
func normalizeValue(schema *Schema, a *Attribute, v any) (any, error) {
	if a.Name == "manager" && schema.ID == EnterpriseUserSchema {
		id, err := managerID(v)
		if err != nil || id == "" {
			return nil, err
		}
		return map[string]any{"value": id}, nil
	}
	if !a.MultiValued {
		val, err := coerceScalar(a, v)
		if err != nil {
			return nil, err
		}
		if m, ok := val.(map[string]any); ok && len(m) == 0 {
			return nil, nil
		}
		return val, nil
	}
	if a.Type != TypeComplex {
		var out []any
		for _, e := range AsList(v) {
			if e == nil {
				continue
			}
			val, err := coerceScalar(a, e)
			if err != nil {
				return nil, err
			}
			out = append(out, val)
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	vals, err := elements(a, v)
	if err != nil {
		return nil, err
	}
	if a.Name == "members" {
		for _, m := range vals {
			if s, _ := m["value"].(string); strings.TrimSpace(s) == "" {
				return nil, InvalidValue("every member needs a value (the member's id)")
			}
		}
	}
	list := addElements(a, nil, vals)
	if len(list) == 0 {
		return nil, nil
	}
	return list, nil
}

// resourceSchemas returns the schemas list of a normalised document.
func resourceSchemas(rt ResourceType, sent []string, doc map[string]any) []any {
	out := []any{rt.Schema.ID}
	for _, ext := range rt.Extensions {
		if _, ok := doc[ext.ID]; ok {
			out = append(out, ext.ID)
		}
	}
	// Unknown extensions with data, kept as sent, are listed too: in the
	// order the client listed them, then any others sorted.
	var unknown []string
	for k, v := range doc {
		if _, ok := v.(map[string]any); ok && hasPrefixFold(k, "urn:") && rt.schemaFor(k) == nil {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, s := range sent {
		if i := slices.Index(unknown, s); i >= 0 {
			out = append(out, s)
			unknown = slices.Delete(unknown, i, i+1)
		}
	}
	for _, s := range unknown {
		out = append(out, s)
	}
	return out
}

func validateRequired(rt ResourceType, doc map[string]any) error {
	for i := range rt.Schema.Attributes {
		a := &rt.Schema.Attributes[i]
		if !a.Required {
			continue
		}
		s, ok := doc[a.Name].(string)
		if !ok || strings.TrimSpace(s) == "" {
			return InvalidValue("%s is required", a.Name)
		}
	}
	return nil
}

// UserIndex holds the fields of a user document the store indexes and the
// sync worker reads.
type UserIndex struct {
	UserName    string
	ExternalID  string
	DisplayName string
	GivenName   string
	FamilyName  string
	// Email is the primary email's value, else the first email's.
	Email string
	// Active is true unless active is false: a user created without it is
	// active (RFC 7643 leaves the default to the service provider).
	Active bool
}

// IndexUser extracts the indexed fields of a (normalised) user document.
func IndexUser(doc map[string]any) UserIndex {
	ix := UserIndex{
		UserName:    str(LookupCI(doc, "userName")),
		ExternalID:  str(LookupCI(doc, "externalId")),
		DisplayName: str(LookupCI(doc, "displayName")),
		Active:      true,
	}
	if b, ok := asBool(LookupCI(doc, "active")); ok {
		ix.Active = b
	}
	if name, ok := LookupCI(doc, "name").(map[string]any); ok {
		ix.GivenName = str(LookupCI(name, "givenName"))
		ix.FamilyName = str(LookupCI(name, "familyName"))
	}
	for _, el := range AsList(LookupCI(doc, "emails")) {
		em, ok := el.(map[string]any)
		if !ok {
			continue
		}
		value := str(LookupCI(em, "value"))
		if value == "" {
			continue
		}
		if primary, _ := asBool(LookupCI(em, "primary")); primary {
			ix.Email = value
			break
		}
		if ix.Email == "" {
			ix.Email = value
		}
	}
	return ix
}

// GroupIndex holds the fields of a group document the store indexes.
type GroupIndex struct {
	DisplayName string
	ExternalID  string
	// MemberIDs are the members' values in document order, de-duplicated.
	MemberIDs []string
}

// IndexGroup extracts the indexed fields of a (normalised) group document.
func IndexGroup(doc map[string]any) GroupIndex {
	ix := GroupIndex{
		DisplayName: str(LookupCI(doc, "displayName")),
		ExternalID:  str(LookupCI(doc, "externalId")),
	}
	seen := map[string]bool{}
	for _, id := range memberIDs(doc) {
		if !seen[id] {
			seen[id] = true
			ix.MemberIDs = append(ix.MemberIDs, id)
		}
	}
	return ix
}

func str(v any) string {
	s, _ := asString(v)
	return s
}
