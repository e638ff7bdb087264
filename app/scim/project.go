package scim

import (
	"strings"
)

// ParseAttributeList splits the value of an attributes or
// excludedAttributes query parameter ("userName,name.givenName") into
// trimmed, non-empty names.
func ParseAttributeList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// Project applies attributes / excludedAttributes (RFC 7644 section
// 3.4.2.5) to a resource document and returns a new document; doc is not
// modified. When attributes is non-empty it wins and excludedAttributes is
// ignored.
//
// Names are matched case-insensitively and may be sub-attributes
// ("name.givenName", "emails.value", "meta.lastModified"), URN-qualified
// ("urn:…:enterprise:2.0:User:manager"), or an extension URN alone (the
// whole extension). Names the schema does not know select or exclude
// top-level keys of that spelling (kept unknown attributes) and are
// otherwise ignored, as RFC 7644 asks.
//
// Characteristics are honoured: returned "always" (id, and schemas) is
// always present, "never" (password) never, "request" only when asked for
// in attributes, "default" unless left out.
func Project(rt ResourceType, doc map[string]any, attributes, excludedAttributes []string) map[string]any {
	include := len(attributes) > 0
	names := excludedAttributes
	if include {
		names = attributes
	}
	sel := newSelection(rt, names)
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		if strings.EqualFold(k, "schemas") {
			out[k] = v
			continue
		}
		if ext := rt.Extension(k); ext != nil {
			obj, ok := v.(map[string]any)
			if !ok {
				continue
			}
			if p := projectObject(ext.Attributes, obj, sel.under(ext.ID), include, sel.whole[ext.ID]); len(p) > 0 {
				out[k] = p
			}
			continue
		}
		a := rt.Schema.Attr(k)
		if a == nil {
			a = findAttr(commonAttributes, k)
		}
		if a == nil {
			// Unknown, kept as sent: selected or excluded by its own name.
			if sel.unknown[strings.ToLower(k)] == include {
				out[k] = v
			}
			continue
		}
		if pv, ok := projectAttr(a, v, sel.under(rt.Schema.ID)[strings.ToLower(a.Name)], include); ok {
			out[k] = pv
		}
	}
	return out
}

// selection is the parsed list of names: per schema URN, per lower-case
// attribute name, the lower-case sub-attribute names ("" = the whole
// attribute).
type selection struct {
	attrs   map[string]map[string]map[string]bool
	whole   map[string]bool // extension URNs named alone
	unknown map[string]bool
}

func newSelection(rt ResourceType, names []string) *selection {
	s := &selection{
		attrs:   map[string]map[string]map[string]bool{},
		whole:   map[string]bool{},
		unknown: map[string]bool{},
	}
	for _, n := range names {
		if ext := rt.Extension(n); ext != nil {
			s.whole[ext.ID] = true
			continue
		}
		ref, err := rt.Resolve(n)
		if err != nil {
			s.unknown[strings.ToLower(n)] = true
			continue
		}
		schema := ref.Schema
		byAttr := s.attrs[schema]
		if byAttr == nil {
			byAttr = map[string]map[string]bool{}
			s.attrs[schema] = byAttr
		}
		an := strings.ToLower(ref.Attr.Name)
		if byAttr[an] == nil {
			byAttr[an] = map[string]bool{}
		}
		sub := ""
		if ref.Sub != nil {
			sub = strings.ToLower(ref.Sub.Name)
		}
		byAttr[an][sub] = true
	}
	return s
}

func (s *selection) under(schema string) map[string]map[string]bool { return s.attrs[schema] }

// projectObject projects the attributes of an extension object. whole
// means the extension URN itself was named.
func projectObject(attrs []Attribute, obj map[string]any, sel map[string]map[string]bool, include, whole bool) map[string]any {
	out := map[string]any{}
	for k, v := range obj {
		a := findAttr(attrs, k)
		if a == nil {
			if whole == include {
				out[k] = v
			}
			continue
		}
		subs := sel[strings.ToLower(a.Name)]
		if whole {
			if !include {
				continue // the whole extension is excluded
			}
			subs = map[string]bool{"": true}
		}
		if pv, ok := projectAttr(a, v, subs, include); ok {
			out[k] = pv
		}
	}
	return out
}

// projectAttr decides whether attribute a with value v appears, and with
// which sub-attributes. subs holds the named sub-attributes ("" for the
// attribute itself); include says whether the names are attributes (true)
// or excludedAttributes (false).
func projectAttr(a *Attribute, v any, subs map[string]bool, include bool) (any, bool) {
	switch a.returned() {
	case ReturnedNever:
		return nil, false
	case ReturnedAlways:
		return v, true
	case ReturnedRequest:
		if !include || len(subs) == 0 {
			return nil, false
		}
	}
	if include {
		switch {
		case len(subs) == 0:
			return nil, false
		case subs[""] || a.Type != TypeComplex:
			return projectSubs(a, v, nil, true), true
		}
		return projectSubs(a, v, subs, true), true
	}
	switch {
	case subs[""]:
		return nil, false
	case len(subs) == 0 || a.Type != TypeComplex:
		return projectSubs(a, v, nil, false), true
	}
	return projectSubs(a, v, subs, false), true
}

// projectSubs keeps (include) or drops the named sub-attributes of a
// complex value, single or multi-valued; nil names keeps all of them
// except those never returned.
func projectSubs(a *Attribute, v any, names map[string]bool, include bool) any {
	if a.Type != TypeComplex {
		return v
	}
	one := func(el any) any {
		m, ok := el.(map[string]any)
		if !ok {
			return el
		}
		out := make(map[string]any, len(m))
		for k, sv := range m {
			sub := a.Sub(k)
			if sub != nil && sub.returned() == ReturnedNever {
				continue
			}
			if names != nil && sub != nil && sub.returned() != ReturnedAlways {
				if names[strings.ToLower(sub.Name)] != include {
					continue
				}
			} else if names != nil && sub == nil && include {
				continue
			}
			out[k] = sv
		}
		return out
	}
	if list, ok := v.([]any); ok {
		out := make([]any, 0, len(list))
		for _, el := range list {
			out = append(out, one(el))
		}
		return out
	}
	return one(v)
}
