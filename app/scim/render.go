package scim

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"idbridge/models"
)

// Projection is a request's attributes / excludedAttributes (RFC 7644
// 3.4.2.5).
type Projection struct {
	Attrs, Excluded []string
}

// None reports whether the request asks for the default attributes.
func (p Projection) None() bool { return len(p.Attrs) == 0 && len(p.Excluded) == 0 }

// Wants reports whether the answer includes the core attribute name, so
// that members and groups are only loaded when they will be shown.
func (p Projection) Wants(rt ResourceType, name string) bool {
	if len(p.Attrs) > 0 {
		for _, a := range p.Attrs {
			if ref, err := rt.Resolve(a); err == nil && !ref.Extension() && ref.Attr.Name == name {
				return true
			}
		}
		return false
	}
	for _, a := range p.Excluded {
		if ref, err := rt.Resolve(a); err == nil && !ref.Extension() && ref.Attr.Name == name && ref.Sub == nil {
			return false
		}
	}
	return true
}

// MaxListBytes is the byte budget of one list answer's resources: a page
// ends early when the next resource would pass it (at least one resource
// is always answered, so paging goes on), and itemsPerPage says how many
// it holds. Okta's pages of 100 users take a few hundred kilobytes; 20
// users of 1 MB made one 20 MB answer before.
const MaxListBytes = 4 << 20

// Page assembles the Resources of a ListResponse as JSON, each resource
// rendered once, straight into the answer: no list of documents, no list
// of rendered resources, no second copy to join them. The store's rows are
// read into it and closed before the answer is written, so a slow client
// never holds a database connection.
type Page struct {
	b    []byte
	n    int
	full bool
}

const pageHead = `{"schemas":["` + ListResponseSchema + `"],"Resources":[`

// NewPage starts an empty ListResponse.
func NewPage() *Page { return &Page{} }

// Full reports whether the page has reached its byte budget.
func (p *Page) Full() bool { return p.full }

// Len is the number of resources on the page.
func (p *Page) Len() int { return p.n }

// Add appends a rendered resource; false when the page is full and raw
// was left out.
func (p *Page) Add(raw json.RawMessage) bool {
	if p.full || p.n > 0 && len(p.b)+len(raw) > MaxListBytes {
		p.full = true
		return false
	}
	if p.b == nil {
		// Sized for the first resource: a lookup's answer is one.
		p.b = make([]byte, 0, len(pageHead)+len(raw)+96)
		p.b = append(p.b, pageHead...)
	}
	if p.n > 0 {
		p.b = append(p.b, ',')
	}
	p.b = append(p.b, raw...)
	p.n++
	return true
}

// Answer closes the ListResponse with its counts.
func (p *Page) Answer(total, startIndex int) json.RawMessage {
	b := p.b
	if b == nil {
		b = append(make([]byte, 0, len(pageHead)+96), pageHead...)
	}
	b = append(b, `],"totalResults":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"startIndex":`...)
	b = strconv.AppendInt(b, int64(startIndex), 10)
	b = append(b, `,"itemsPerPage":`...)
	b = strconv.AppendInt(b, int64(p.n), 10)
	return json.RawMessage(append(b, '}'))
}

// ETag is the weak ETag (and meta.version) of a resource version.
func ETag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func metaJSON(resourceType, location string, created, updated time.Time, version int64) map[string]any {
	return map[string]any{
		"resourceType": resourceType,
		"created":      formatTime(created),
		"lastModified": formatTime(updated),
		"location":     location,
		"version":      ETag(version),
	}
}

// RenderUser renders a stored user. Without Projection the stored JSON is
// spliced as is (the hot path of an identity provider's lookups); with
// one, the document is decoded and projected.
//
// A manager that names a user of the site (u.Manager, from the store) is
// answered in its RFC 7643 4.3 form: value, $ref and displayName.
func RenderUser(base string, u *models.DirectoryUser, p Projection) (json.RawMessage, error) {
	location := base + "/Users/" + u.ID
	doc := u.Doc
	if u.Manager != nil {
		var err error
		if doc, err = withManager(base, doc, u.Manager); err != nil {
			return nil, err
		}
	}
	if p.None() {
		b := make([]byte, 0, len(doc)+256+len(u.Groups)*160)
		b = appendHead(b, u.ID, "User", location, u.CreatedAt, u.UpdatedAt, u.Version)
		if len(u.Groups) > 0 {
			b = append(b, `,"groups":[`...)
			for i, g := range u.Groups {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendRef(b, g.ID, g.DisplayName, base+"/Groups/"+g.ID, "direct")
			}
			b = append(b, ']')
		}
		return spliceDoc(b, doc), nil
	}
	extra := map[string]any{
		"id":   u.ID,
		"meta": metaJSON("User", location, u.CreatedAt, u.UpdatedAt, u.Version),
	}
	if len(u.Groups) > 0 {
		groups := make([]any, len(u.Groups))
		for i, g := range u.Groups {
			groups[i] = map[string]any{"value": g.ID, "display": g.DisplayName, "$ref": base + "/Groups/" + g.ID, "type": "direct"}
		}
		extra["groups"] = groups
	}
	return project(Users, doc, extra, p)
}

// ManagerID is the ID the enterprise extension's manager names in a
// stored document, "" for none. Documents that do not mention a manager
// are not decoded.
func ManagerID(doc []byte) string {
	if !bytes.Contains(doc, []byte(`"manager"`)) {
		return ""
	}
	d, err := DecodeDoc(doc)
	if err != nil {
		return ""
	}
	ext, _ := d[EnterpriseUserSchema].(map[string]any)
	mgr, _ := ext["manager"].(map[string]any)
	id, _ := mgr["value"].(string)
	return id
}

// withManager returns the stored document with the enterprise manager m
// answered in full: {"value", "$ref", "displayName"} (displayName only when
// the manager has one).
func withManager(base string, doc []byte, m *models.DirectoryUserRef) ([]byte, error) {
	d, err := DecodeDoc(doc)
	if err != nil {
		return nil, err
	}
	ext, _ := d[EnterpriseUserSchema].(map[string]any)
	mgr, _ := ext["manager"].(map[string]any)
	if id, _ := mgr["value"].(string); mgr == nil || id != m.ID {
		return doc, nil
	}
	mgr["$ref"] = base + "/Users/" + m.ID
	if m.DisplayName != "" {
		mgr["displayName"] = m.DisplayName
	}
	return Marshal(d)
}

// RenderGroup renders a stored group with its members; a group without
// members answers none (RFC 7643 2.4: an empty multi-valued attribute is
// left out, not answered as []).
func RenderGroup(base string, g *models.DirectoryGroup, members []models.GroupMember, p Projection) (json.RawMessage, error) {
	location := base + "/Groups/" + g.ID
	if p.None() {
		b := make([]byte, 0, len(g.Doc)+256+len(members)*160)
		b = appendHead(b, g.ID, "Group", location, g.CreatedAt, g.UpdatedAt, g.Version)
		if len(members) > 0 {
			b = append(b, `,"members":[`...)
			for i, m := range members {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendRef(b, m.UserID, m.Display, base+"/Users/"+m.UserID, "User")
			}
			b = append(b, ']')
		}
		return spliceDoc(b, g.Doc), nil
	}
	extra := map[string]any{
		"id":   g.ID,
		"meta": metaJSON("Group", location, g.CreatedAt, g.UpdatedAt, g.Version),
	}
	if len(members) > 0 {
		list := make([]any, len(members))
		for i, m := range members {
			list[i] = map[string]any{"value": m.UserID, "display": m.Display, "$ref": base + "/Users/" + m.UserID, "type": "User"}
		}
		extra["members"] = list
	}
	return project(Groups, g.Doc, extra, p)
}

// appendHead starts a resource's JSON with the server's attributes: id and
// meta (same members as metaJSON).
func appendHead(b []byte, id, resourceType, location string, created, updated time.Time, version int64) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"meta":{"resourceType":`...)
	b = appendJSONString(b, resourceType)
	b = append(b, `,"created":"`...)
	b = created.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","lastModified":"`...)
	b = updated.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","location":`...)
	b = appendJSONString(b, location)
	b = append(b, `,"version":"W/\"`...)
	b = strconv.AppendInt(b, version, 10)
	b = append(b, `\""}`...)
	return b
}

// appendRef appends a member or group reference.
func appendRef(b []byte, value, display, ref, typ string) []byte {
	b = append(b, `{"value":`...)
	b = appendJSONString(b, value)
	b = append(b, `,"display":`...)
	b = appendJSONString(b, display)
	b = append(b, `,"$ref":`...)
	b = appendJSONString(b, ref)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, typ)
	return append(b, '}')
}

// spliceDoc closes a head built by appendHead with the members of the
// stored document (a JSON object).
func spliceDoc(head, doc []byte) json.RawMessage {
	doc = bytes.TrimSpace(doc)
	if len(doc) >= 2 && doc[0] == '{' {
		if inner := bytes.TrimSpace(doc[1 : len(doc)-1]); len(inner) > 0 {
			head = append(head, ',')
			head = append(head, inner...)
		}
	}
	return json.RawMessage(append(head, '}'))
}

// appendJSONString appends s as a JSON string, byte for byte as Marshal
// writes it (encoding/json without HTML escaping: invalid UTF-8 as
// \ufffd, U+2028 and U+2029 escaped), without Marshal's allocations: the
// heads and member lists of rendered resources are built with it.
func appendJSONString(b []byte, s string) []byte { return AppendJSONString(b, s, false) }

// AppendJSONString appends s as a JSON string without allocating: quotes,
// backslashes and control characters escaped, invalid UTF-8 as \ufffd,
// U+2028 and U+2029 escaped; with escapeHTML also <, > and & (as
// encoding/json's default does, for output that may be embedded in a
// page). It is idbridge's one hand-written JSON string encoder: SCIM
// rendering and the privacy export both write with it.
func AppendJSONString(b []byte, s string, escapeHTML bool) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!escapeHTML || (c != '<' && c != '>' && c != '&')) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// project decodes a stored document, adds the server's attributes,
// applies attributes / excludedAttributes and encodes the result.
func project(rt ResourceType, doc []byte, extra map[string]any, p Projection) (json.RawMessage, error) {
	m, err := DecodeDoc(doc)
	if err != nil {
		return nil, err
	}
	for k, v := range extra {
		m[k] = v
	}
	return Marshal(Project(rt, m, p.Attrs, p.Excluded))
}

// Marshal is json.Marshal without HTML escaping: values are stored and
// answered as sent ("R&D", not "R\u0026D").
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// DecodeDoc decodes a stored document, keeping numbers exact.
func DecodeDoc(doc []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(bytes.TrimSpace(doc)) == 0 {
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeStrict decodes one JSON value from body into v: malformed JSON or
// trailing data is 400 invalidSyntax.
func DecodeStrict(body []byte, v any) error {
	if hasNUL(string(body)) {
		return InvalidValue("the body holds the NUL character (\\u0000), which no attribute may hold")
	}
	if err := checkBody(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return InvalidSyntax("the body is not valid JSON for this request")
	}
	if dec.More() {
		return InvalidSyntax("the body has data after the JSON value")
	}
	return nil
}

// dropNulls removes null values and empty lists at every depth of v, in
// place: no answer ever carries a null (Entra sends "$ref": null; unknown
// attributes are kept as sent) or an empty multi-valued attribute (RFC 7643
// 2.4 leaves it out; "emails": [] in a PUT clears the emails).
func dropNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
				continue
			}
			if v[k] = dropNulls(e); isEmptyList(v[k]) {
				delete(v, k)
			}
		}
		return v
	case []any:
		out := v[:0]
		for _, e := range v {
			if e != nil {
				out = append(out, dropNulls(e))
			}
		}
		return out
	}
	return v
}

func isEmptyList(v any) bool {
	l, ok := v.([]any)
	return ok && len(l) == 0
}

// DecodeResource decodes a POST or PUT body: one JSON object.
func DecodeResource(body []byte) (map[string]any, error) {
	var doc map[string]any
	if err := DecodeStrict(body, &doc); err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, InvalidSyntax("the body must be a JSON object")
	}
	return doc, nil
}

// UserFromDoc fills the indexed columns of u from a normalised document.
func UserFromDoc(u *models.DirectoryUser, doc map[string]any) error {
	dropNulls(doc)
	if err := checkResource(Users, doc); err != nil {
		return err
	}
	ix := IndexUser(doc)
	b, err := Marshal(doc)
	if err != nil {
		return InvalidValue("the user cannot be stored: %v", err)
	}
	u.UserName, u.ExternalID, u.DisplayName = ix.UserName, ix.ExternalID, ix.DisplayName
	u.GivenName, u.FamilyName, u.Email, u.Active = ix.GivenName, ix.FamilyName, ix.Email, ix.Active
	u.Doc = b
	return nil
}

// GroupFromDoc fills the columns of g from a normalised document and
// returns the member IDs it lists; members are stored apart.
func GroupFromDoc(g *models.DirectoryGroup, doc map[string]any) ([]string, error) {
	dropNulls(doc)
	if err := checkResource(Groups, doc); err != nil {
		return nil, err
	}
	ix := IndexGroup(doc)
	for _, el := range AsList(LookupCI(doc, "members")) {
		if em, ok := el.(map[string]any); ok {
			if t, ok := LookupCI(em, "type").(string); ok && t != "" && !strings.EqualFold(t, "User") {
				return nil, InvalidValue("members must be users of this site: nested groups are not supported")
			}
		}
	}
	deleteCI(doc, "members")
	b, err := Marshal(doc)
	if err != nil {
		return nil, InvalidValue("the group cannot be stored: %v", err)
	}
	g.DisplayName, g.ExternalID, g.Doc = ix.DisplayName, ix.ExternalID, b
	return ix.MemberIDs, nil
}

// CheckIfMatch compares an If-Match header with the resource's version:
// "*" matches any, otherwise one of the listed ETags must (weakly) equal
// it. An empty header asks for nothing.
func CheckIfMatch(ifMatch string, version int64) error {
	ifMatch = strings.TrimSpace(ifMatch)
	if ifMatch == "" || ifMatch == "*" {
		return nil
	}
	for tag := range strings.SplitSeq(ifMatch, ",") {
		if ETagMatches(tag, version) {
			return nil
		}
	}
	return PreconditionFailed("the resource has changed: its version is %s", ETag(version))
}

// ETagMatches reports whether an entity tag (weak or strong, quoted or not)
// names the version.
func ETagMatches(tag string, version int64) bool {
	tag = strings.TrimSpace(tag)
	tag = strings.TrimPrefix(strings.TrimPrefix(tag, "W/"), "w/")
	tag = strings.Trim(tag, `"`)
	return tag == strconv.FormatInt(version, 10)
}
