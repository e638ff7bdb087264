package scim

import (
	"strings"

	filter "github.com/scim2/filter-parser/v2"

	"idbridge/models"
)

const maxPathLength = 2048

// Path is a parsed PATCH path (RFC 7644 section 3.5.2):
//
//	attr | attr.sub | attr[filter] | attr[filter].sub
//
// each optionally URN-qualified, plus a schema extension URN alone
// ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User") whose value
// is an object of that extension's attributes.
//
// For a known attribute, Attr is set (and Sub for a sub-attribute). For an
// extension URN alone, Attr is nil and Name is empty. For an attribute the
// schema does not know — kept as sent, never an error (shared/SCIM.md) —
// Attr is nil and Name (and SubName) hold the names as given, with Schema
// the URN it was qualified with ("" for none).
type Path struct {
	// Schema is the URN the target lives under: the core schema for core
	// and common attributes, an extension URN, or an unknown URN.
	Schema string
	Attr   *Attribute
	// Filter selects values of a multi-valued attribute; its attribute
	// paths are relative to Attr ("type", "value"). Nil when absent.
	Filter filter.Expression
	Sub    *Attribute
	// Name and SubName are set only for attributes the schema does not
	// know.
	Name, SubName string
	// Canonical is the path spelled as the schema spells it.
	Canonical string
}

// ExtensionOnly reports whether the path is a schema extension URN alone
// (Schema holds it; it may be an extension this server does not know).
func (p *Path) ExtensionOnly() bool { return p.Attr == nil && p.Name == "" }

// Known reports whether the path names an attribute of the schema.
func (p *Path) Known() bool { return p.Attr != nil }

// ref returns the path as an AttrRef (known attributes only).
func (p *Path) ref() *AttrRef { return &AttrRef{Schema: p.Schema, Attr: p.Attr, Sub: p.Sub} }

// ParsePath parses a PATCH path case-insensitively against the resource
// type. A path that does not parse, or that filters or sub-selects an
// attribute that cannot be, is a 400 invalidPath *Error. Value filters take
// the same dialect as ParseFilter.
func ParsePath(rt ResourceType, s string) (*Path, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, InvalidPath("the path is empty")
	}
	if len(s) > maxPathLength {
		return nil, InvalidPath("the path is longer than %d bytes", maxPathLength)
	}
	open := strings.IndexByte(s, '[')
	if open < 0 {
		return parseAttrPath(rt, s)
	}
	closing := closingBracket(s, open+1)
	if closing < 0 {
		return nil, InvalidPath("path %q: missing ]", s)
	}
	attrText := strings.TrimSpace(s[:open])
	p, err := parseAttrPath(rt, attrText)
	if err != nil {
		return nil, err
	}
	if !p.Known() {
		return nil, InvalidPath("path %q: unknown attribute %q cannot be filtered", s, attrText)
	}
	if p.Sub != nil || p.Attr.Type != TypeComplex || !p.Attr.MultiValued {
		return nil, InvalidPath("path %q: %q has no values to filter", s, attrText)
	}
	expr, err := parseValueFilter(rt, p.ref(), s[open+1:closing])
	if err != nil {
		return nil, InvalidPath("path %q: %s", s, detail(err))
	}
	p.Filter = expr
	p.Canonical += "[" + filterString(expr) + "]"
	rest := strings.TrimSpace(s[closing+1:])
	if rest == "" {
		return p, nil
	}
	subName, ok := strings.CutPrefix(rest, ".")
	if !ok || subName == "" || !isAttrName(subName) {
		return nil, InvalidPath("path %q: unexpected %q after ]", s, rest)
	}
	p.Sub = p.Attr.Sub(subName)
	if p.Sub == nil {
		return nil, InvalidPath("path %q: %q has no sub-attribute %q", s, p.Attr.Name, subName)
	}
	p.Canonical += "." + p.Sub.Name
	return p, nil
}

// parseAttrPath parses a path without filter.
func parseAttrPath(rt ResourceType, s string) (*Path, error) {
	if s == "" || strings.ContainsAny(s, "[] \t\"") {
		return nil, InvalidPath("%q is not a valid attribute path", s)
	}
	if ref, err := rt.Resolve(s); err == nil {
		return &Path{Schema: ref.Schema, Attr: ref.Attr, Sub: ref.Sub, Canonical: ref.Canonical}, nil
	}
	if ext := rt.Extension(s); ext != nil {
		return &Path{Schema: ext.ID, Canonical: ext.ID}, nil
	}
	ap, ok := plainAttrPath(s)
	if !ok {
		var err error
		if ap, err = filter.ParseAttrPath([]byte(s)); err != nil {
			return nil, InvalidPath("%q is not a valid attribute path", s)
		}
	}
	if uri := ap.URI(); uri != "" && ap.SubAttribute == nil && rt.schemaFor(uri) == nil && strings.EqualFold(ap.AttributeName, rt.Name) {
		// "urn:…:custom:2.0:User": an extension this server does not know,
		// as a whole (schema URNs end in the resource type's name).
		return &Path{Schema: s, Canonical: s}, nil
	}
	p := &Path{Name: ap.AttributeName, SubName: ap.SubAttributeName(), Canonical: s}
	switch uri := ap.URI(); {
	case uri == "":
		p.Schema = rt.Schema.ID
	case rt.schemaFor(uri) != nil:
		p.Schema = rt.schemaFor(uri).ID
	default:
		p.Schema = uri
	}
	if p.Schema == rt.Schema.ID || rt.Extension(p.Schema) != nil {
		// A known schema with an unknown attribute: refuse a sub-attribute
		// of a known attribute ("name.nickname") rather than invent one.
		sch := rt.schemaFor(p.Schema)
		if a := sch.Attr(p.Name); a != nil || (p.Schema == rt.Schema.ID && findAttr(commonAttributes, p.Name) != nil) {
			return nil, InvalidPath("%q: unknown sub-attribute %q", s, p.SubName)
		}
	}
	return p, nil
}

// plainAttrPath reads the common form "name" or "name.sub" (RFC 7644
// ATTRNAME: a letter, then letters, digits, "-" and "_") without the
// general parser, which costs tens of microseconds per path: a PATCH may
// name thousands of attributes the schema does not know.
func plainAttrPath(s string) (filter.AttributePath, bool) {
	name, sub, dotted := strings.Cut(s, ".")
	if !isAttrName(name) || dotted && !isAttrName(sub) {
		return filter.AttributePath{}, false
	}
	ap := filter.AttributePath{AttributeName: name}
	if dotted {
		ap.SubAttribute = &sub
	}
	return ap, true
}

// parseValueFilter parses the text between brackets as a value filter of
// the attribute ref.
func parseValueFilter(rt ResourceType, ref *AttrRef, text string) (expr filter.Expression, err error) {
	defer func() {
		if r := recover(); r != nil {
			expr, err = nil, InvalidFilter("the value filter could not be parsed")
		}
	}()
	n := &normalizer{src: text, inBracket: true}
	e, err := n.parseFilter()
	if err != nil {
		return nil, err
	}
	v := validator{rt: rt}
	return v.expr(e, ref)
}

// closingBracket returns the index of the "]" that closes a bracket opened
// before i, skipping string literals, or -1.
func closingBracket(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case '"':
			_, end, ok := decodeString(s, i+1)
			if !ok {
				return -1
			}
			i = end
			continue
		case ']':
			return i
		}
		i++
	}
	return -1
}

func isAttrName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isLetter(c) || c == '$' && i == 0 || i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// filterString renders a canonical filter for messages and Canonical.
func filterString(e filter.Expression) string { return FormatFilter(e) }

// detail returns the client-safe detail of err.
func detail(err error) string {
	if e, ok := models.AsError(err); ok {
		return e.Message
	}
	return "invalid"
}
