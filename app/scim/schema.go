package scim

import (
	"errors"
	"fmt"
	"strings"
)

// Schema and message URNs (RFC 7643 section 8.7, RFC 7644 section 3).
const (
	UserSchema           = "urn:ietf:params:scim:schemas:core:2.0:User"
	EnterpriseUserSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	GroupSchema          = "urn:ietf:params:scim:schemas:core:2.0:Group"
	ListResponseSchema   = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	PatchOpSchema        = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	ErrorSchema          = "urn:ietf:params:scim:api:messages:2.0:Error"
	SearchRequestSchema  = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
	BulkRequestSchema    = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"

	ServiceProviderConfigSchema = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	ResourceTypeSchema          = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	SchemaSchema                = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// Attribute types (RFC 7643 section 2.3).
const (
	TypeString    = "string"
	TypeBoolean   = "boolean"
	TypeDecimal   = "decimal"
	TypeInteger   = "integer"
	TypeDateTime  = "dateTime"
	TypeBinary    = "binary"
	TypeReference = "reference"
	TypeComplex   = "complex"
)

// Attribute characteristics (RFC 7643 section 7).
const (
	MutabilityReadOnly  = "readOnly"
	MutabilityReadWrite = "readWrite"
	MutabilityImmutable = "immutable"
	MutabilityWriteOnly = "writeOnly"

	ReturnedAlways  = "always"
	ReturnedNever   = "never"
	ReturnedDefault = "default"
	ReturnedRequest = "request"

	UniquenessNone   = "none"
	UniquenessServer = "server"
	UniquenessGlobal = "global"
)

// Attribute describes one attribute of a schema (RFC 7643 section 7).
// Empty Mutability, Returned and Uniqueness mean readWrite, default and
// none.
type Attribute struct {
	Name            string
	Type            string
	MultiValued     bool
	Required        bool
	CaseExact       bool
	Mutability      string
	Returned        string
	Uniqueness      string
	SubAttributes   []Attribute
	CanonicalValues []string
	ReferenceTypes  []string
	Description     string
}

// Sub returns the sub-attribute named name (case-insensitively), or nil.
func (a *Attribute) Sub(name string) *Attribute {
	for i := range a.SubAttributes {
		if strings.EqualFold(a.SubAttributes[i].Name, name) {
			return &a.SubAttributes[i]
		}
	}
	return nil
}

func (a *Attribute) mutability() string { return or(a.Mutability, MutabilityReadWrite) }
func (a *Attribute) returned() string   { return or(a.Returned, ReturnedDefault) }
func (a *Attribute) uniqueness() string { return or(a.Uniqueness, UniquenessNone) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Schema is a SCIM schema: its URN and its attributes.
type Schema struct {
	ID          string
	Name        string
	Description string
	Attributes  []Attribute
}

// Attr returns the attribute named name (case-insensitively), or nil.
func (s *Schema) Attr(name string) *Attribute { return findAttr(s.Attributes, name) }

func findAttr(attrs []Attribute, name string) *Attribute {
	for i := range attrs {
		if strings.EqualFold(attrs[i].Name, name) {
			return &attrs[i]
		}
	}
	return nil
}

// ResourceType is a SCIM resource type: its endpoint, core schema and
// schema extensions (RFC 7643 section 6).
type ResourceType struct {
	Name       string
	Endpoint   string
	Schema     Schema
	Extensions []Schema
}

// Extension returns the extension schema with the URN id
// (case-insensitively), or nil.
func (rt *ResourceType) Extension(id string) *Schema {
	for i := range rt.Extensions {
		if strings.EqualFold(rt.Extensions[i].ID, id) {
			return &rt.Extensions[i]
		}
	}
	return nil
}

// AttrRef is an attribute path resolved against a resource type.
//
// Schema is the URN the attribute belongs to (the core schema URN for
// common attributes such as id, externalId and meta). Attr is the top-level
// attribute, Sub the sub-attribute or nil. Canonical is the path spelled as
// the schema spells it, without URN for core and common attributes
// ("name.givenName", "emails.value", "meta.lastModified") and with it for
// extension attributes
// ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value").
type AttrRef struct {
	Schema    string
	Attr      *Attribute
	Sub       *Attribute
	Canonical string
}

// Extension reports whether the attribute lives in a schema extension, that
// is, under the extension URN key of the resource document.
func (r *AttrRef) Extension() bool {
	return r.Schema != UserSchema && r.Schema != GroupSchema
}

// Leaf returns the attribute the path ends at: Sub if set, else Attr.
func (r *AttrRef) Leaf() *Attribute {
	if r.Sub != nil {
		return r.Sub
	}
	return r.Attr
}

// ErrUnknownAttribute is wrapped by Resolve's errors. Resolve does not
// choose the scimType: a filter maps it to invalidFilter, a PATCH path to
// invalidPath, a Projection ignores it.
var ErrUnknownAttribute = errors.New("unknown attribute")

// Resolve resolves an attribute path — "userName", "name.givenName",
// "emails.value", "meta.lastModified", "id", or a URN-qualified form such
// as "urn:ietf:params:scim:schemas:core:2.0:User:userName" or
// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
// — case-insensitively against the resource type. It accepts no filters
// ("emails[type eq …]"); see ParsePath for those. Errors wrap
// ErrUnknownAttribute.
func (rt ResourceType) Resolve(path string) (*AttrRef, error) {
	schema, rest, ok := rt.splitURN(path)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownAttribute, path)
	}
	name, subName, hasSub := strings.Cut(rest, ".")
	if name == "" || (hasSub && (subName == "" || strings.Contains(subName, "."))) {
		return nil, fmt.Errorf("%w %q", ErrUnknownAttribute, path)
	}
	ref := &AttrRef{Schema: schema.ID}
	ref.Attr = schema.Attr(name)
	if ref.Attr == nil && schema.ID == rt.Schema.ID {
		ref.Attr = findAttr(commonAttributes, name)
	}
	if ref.Attr == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownAttribute, path)
	}
	canonical := ref.Attr.Name
	if hasSub {
		ref.Sub = ref.Attr.Sub(subName)
		if ref.Sub == nil {
			return nil, fmt.Errorf("%w %q", ErrUnknownAttribute, path)
		}
		canonical += "." + ref.Sub.Name
	}
	if schema.ID != rt.Schema.ID {
		canonical = schema.ID + ":" + canonical
	}
	ref.Canonical = canonical
	return ref, nil
}

// splitURN splits a URN-qualified path into its schema and the attribute
// part. A path without a known URN prefix belongs to the core schema; a
// path that starts with "urn:" but names no schema of rt is unknown.
func (rt *ResourceType) splitURN(path string) (*Schema, string, bool) {
	if !hasPrefixFold(path, "urn:") {
		return &rt.Schema, path, true
	}
	for i := range rt.Extensions {
		if rest, ok := cutPrefixFold(path, rt.Extensions[i].ID+":"); ok {
			return &rt.Extensions[i], rest, true
		}
	}
	if rest, ok := cutPrefixFold(path, rt.Schema.ID+":"); ok {
		return &rt.Schema, rest, true
	}
	return nil, "", false
}

// schemaFor returns the schema with the URN id: the core schema or an
// extension, or nil.
func (rt *ResourceType) schemaFor(id string) *Schema {
	if strings.EqualFold(rt.Schema.ID, id) {
		return &rt.Schema
	}
	return rt.Extension(id)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if !hasPrefixFold(s, prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// commonAttributes are the attributes every resource has (RFC 7643
// section 3.1); they belong to no schema and are listed in no /Schemas
// document.
var commonAttributes = []Attribute{
	{Name: "id", Type: TypeString, CaseExact: true, Mutability: MutabilityReadOnly,
		Returned: ReturnedAlways, Uniqueness: UniquenessServer,
		Description: "Unique identifier for the resource, assigned by the service provider."},
	{Name: "externalId", Type: TypeString, CaseExact: true,
		Description: "Identifier of the resource as defined by the provisioning client; at most 1024 bytes (UTF-8)."},
	{Name: "meta", Type: TypeComplex, Mutability: MutabilityReadOnly,
		Description: "Resource metadata.",
		SubAttributes: []Attribute{
			{Name: "resourceType", Type: TypeString, CaseExact: true, Mutability: MutabilityReadOnly,
				Description: "Name of the resource type of the resource."},
			{Name: "created", Type: TypeDateTime, Mutability: MutabilityReadOnly,
				Description: "When the resource was added to the service provider."},
			{Name: "lastModified", Type: TypeDateTime, Mutability: MutabilityReadOnly,
				Description: "When the resource was last changed."},
			{Name: "location", Type: TypeReference, CaseExact: true, Mutability: MutabilityReadOnly,
				ReferenceTypes: []string{"uri"}, Description: "URI of the resource."},
			{Name: "version", Type: TypeString, CaseExact: true, Mutability: MutabilityReadOnly,
				Description: "Version of the resource; the ETag."},
		}},
}

// multiValuedSubs returns the usual sub-attributes of a multi-valued
// attribute (RFC 7643 section 2.4) with the given canonical types.
func multiValuedSubs(valueDesc string, valueRef []string, types ...string) []Attribute {
	value := Attribute{Name: "value", Type: TypeString, Description: valueDesc}
	if len(valueRef) > 0 {
		value.Type = TypeReference
		value.ReferenceTypes = valueRef
	}
	return []Attribute{
		value,
		{Name: "display", Type: TypeString, Description: "A human-readable name, primarily used for display purposes."},
		{Name: "type", Type: TypeString, CanonicalValues: types, Description: "A label indicating the attribute's function."},
		{Name: "primary", Type: TypeBoolean, Description: "Indicates the primary or preferred value."},
	}
}

// UserCore is the core User schema (RFC 7643 section 4.1).
var UserCore = Schema{
	ID:          UserSchema,
	Name:        "User",
	Description: "User Account",
	Attributes: []Attribute{
		{Name: "userName", Type: TypeString, Required: true, Uniqueness: UniquenessServer,
			Description: "Unique identifier for the User, used to sign in; unique case-insensitively per site; at most 1024 bytes (UTF-8)."},
		{Name: "name", Type: TypeComplex, Description: "The components of the user's real name.",
			SubAttributes: []Attribute{
				{Name: "formatted", Type: TypeString, Description: "The full name, formatted for display."},
				{Name: "familyName", Type: TypeString, Description: "The family name of the User."},
				{Name: "givenName", Type: TypeString, Description: "The given name of the User."},
				{Name: "middleName", Type: TypeString, Description: "The middle name(s) of the User."},
				{Name: "honorificPrefix", Type: TypeString, Description: "The honorific prefix(es) of the User."},
				{Name: "honorificSuffix", Type: TypeString, Description: "The honorific suffix(es) of the User."},
			}},
		{Name: "displayName", Type: TypeString, Description: "The name of the User, suitable for display to end-users; at most 1024 bytes (UTF-8)."},
		{Name: "nickName", Type: TypeString, Description: "The casual way to address the user."},
		{Name: "profileUrl", Type: TypeReference, ReferenceTypes: []string{"external"},
			Description: "A fully qualified URL pointing to a page representing the User's online profile."},
		{Name: "title", Type: TypeString, Description: "The user's title, such as \"Vice President\"."},
		{Name: "userType", Type: TypeString, Description: "The relationship between the organization and the user."},
		{Name: "preferredLanguage", Type: TypeString, Description: "The User's preferred written or spoken language."},
		{Name: "locale", Type: TypeString, Description: "The User's default location for localization."},
		{Name: "timezone", Type: TypeString, Description: "The User's time zone in the IANA Time Zone database format."},
		{Name: "active", Type: TypeBoolean, Description: "The User's administrative status."},
		{Name: "password", Type: TypeString, CaseExact: true, Mutability: MutabilityWriteOnly, Returned: ReturnedNever,
			Description: "The User's cleartext password; accepted and never stored by this server."},
		{Name: "emails", Type: TypeComplex, MultiValued: true, Description: "Email addresses for the user.",
			SubAttributes: multiValuedSubs("Email address for the User.", nil, "work", "home", "other")},
		{Name: "phoneNumbers", Type: TypeComplex, MultiValued: true, Description: "Phone numbers for the User.",
			SubAttributes: multiValuedSubs("Phone number of the User.", nil, "work", "home", "mobile", "fax", "pager", "other")},
		{Name: "ims", Type: TypeComplex, MultiValued: true, Description: "Instant messaging addresses for the User.",
			SubAttributes: multiValuedSubs("Instant messaging address for the User.", nil, "aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")},
		{Name: "photos", Type: TypeComplex, MultiValued: true, Description: "URLs of photos of the User.",
			SubAttributes: multiValuedSubs("URL of a photo of the User.", []string{"external"}, "photo", "thumbnail")},
		{Name: "addresses", Type: TypeComplex, MultiValued: true, Description: "A physical mailing address for this User.",
			SubAttributes: []Attribute{
				{Name: "formatted", Type: TypeString, Description: "The full mailing address, formatted for display."},
				{Name: "streetAddress", Type: TypeString, Description: "The full street address component."},
				{Name: "locality", Type: TypeString, Description: "The city or locality component."},
				{Name: "region", Type: TypeString, Description: "The state or region component."},
				{Name: "postalCode", Type: TypeString, Description: "The zip code or postal code component."},
				{Name: "country", Type: TypeString, Description: "The country name component."},
				{Name: "type", Type: TypeString, CanonicalValues: []string{"work", "home", "other"},
					Description: "A label indicating the attribute's function."},
				{Name: "primary", Type: TypeBoolean, Description: "Indicates the primary or preferred address."},
			}},
		{Name: "groups", Type: TypeComplex, MultiValued: true, Mutability: MutabilityReadOnly,
			Description: "Groups to which the user belongs; read-only, managed through /Groups.",
			SubAttributes: []Attribute{
				{Name: "value", Type: TypeString, Mutability: MutabilityReadOnly, Description: "The identifier of the User's group."},
				{Name: "$ref", Type: TypeReference, Mutability: MutabilityReadOnly, ReferenceTypes: []string{"Group"},
					Description: "The URI of the corresponding Group resource."},
				{Name: "display", Type: TypeString, Mutability: MutabilityReadOnly, Description: "The display name of the group."},
				{Name: "type", Type: TypeString, Mutability: MutabilityReadOnly, CanonicalValues: []string{"direct", "indirect"},
					Description: "The membership type."},
			}},
		{Name: "entitlements", Type: TypeComplex, MultiValued: true, Description: "A list of entitlements for the User.",
			SubAttributes: multiValuedSubs("The value of an entitlement.", nil)},
		{Name: "roles", Type: TypeComplex, MultiValued: true, Description: "A list of roles for the User.",
			SubAttributes: multiValuedSubs("The value of a role.", nil)},
		{Name: "x509Certificates", Type: TypeComplex, MultiValued: true, Description: "A list of certificates issued to the User.",
			SubAttributes: []Attribute{
				{Name: "value", Type: TypeBinary, Description: "The value of an X.509 certificate."},
				{Name: "display", Type: TypeString, Description: "A human-readable name, primarily used for display purposes."},
				{Name: "type", Type: TypeString, Description: "A label indicating the attribute's function."},
				{Name: "primary", Type: TypeBoolean, Description: "Indicates the primary certificate."},
			}},
	},
}

// EnterpriseUser is the enterprise User extension (RFC 7643 section 4.3).
var EnterpriseUser = Schema{
	ID:          EnterpriseUserSchema,
	Name:        "EnterpriseUser",
	Description: "Enterprise User",
	Attributes: []Attribute{
		{Name: "employeeNumber", Type: TypeString, Description: "Numeric or alphanumeric identifier assigned to a person."},
		{Name: "costCenter", Type: TypeString, Description: "Identifies the name of a cost center."},
		{Name: "organization", Type: TypeString, Description: "Identifies the name of an organization."},
		{Name: "division", Type: TypeString, Description: "Identifies the name of a division."},
		{Name: "department", Type: TypeString, Description: "Identifies the name of a department."},
		{Name: "manager", Type: TypeComplex, Description: "The User's manager.",
			SubAttributes: []Attribute{
				{Name: "value", Type: TypeString, Description: "The id of the SCIM resource representing the User's manager."},
				{Name: "$ref", Type: TypeReference, ReferenceTypes: []string{"User"},
					Description: "The URI of the SCIM resource representing the User's manager."},
				{Name: "displayName", Type: TypeString, Mutability: MutabilityReadOnly,
					Description: "The displayName of the User's manager."},
			}},
	},
}

// GroupCore is the core Group schema (RFC 7643 section 4.2).
var GroupCore = Schema{
	ID:          GroupSchema,
	Name:        "Group",
	Description: "Group",
	Attributes: []Attribute{
		{Name: "displayName", Type: TypeString, Required: true, Uniqueness: UniquenessServer,
			Description: "A human-readable name for the Group; unique per site; at most 1024 bytes (UTF-8)."},
		{Name: "members", Type: TypeComplex, MultiValued: true, Returned: ReturnedDefault,
			Description: "A list of members of the Group; a request may list at most 10000.",
			SubAttributes: []Attribute{
				{Name: "value", Type: TypeString, CaseExact: true, Mutability: MutabilityImmutable,
					Description: "Identifier of the member of this Group."},
				{Name: "$ref", Type: TypeReference, Mutability: MutabilityImmutable, ReferenceTypes: []string{"User"},
					Description: "The URI of the member resource."},
				{Name: "display", Type: TypeString, Mutability: MutabilityReadOnly,
					Description: "The display name of the member."},
				{Name: "type", Type: TypeString, Mutability: MutabilityImmutable, CanonicalValues: []string{"User"},
					Description: "The type of the member; this server has users only (no nested groups)."},
			}},
	},
}

// Users and Groups are the two resource types this server offers. They are
// read-only data: never modify them.
var (
	Users = ResourceType{
		Name:       "User",
		Endpoint:   "/Users",
		Schema:     UserCore,
		Extensions: []Schema{EnterpriseUser},
	}
	Groups = ResourceType{
		Name:     "Group",
		Endpoint: "/Groups",
		Schema:   GroupCore,
	}
)

// ResourceTypes lists the resource types in the order /ResourceTypes
// answers them.
func ResourceTypes() []ResourceType { return []ResourceType{Users, Groups} }

// ResourceTypeByEndpoint returns the resource type whose endpoint (without
// the slash) is name, case-insensitively: "Users", "users", "/Groups".
func ResourceTypeByEndpoint(name string) (ResourceType, bool) {
	name = strings.TrimPrefix(name, "/")
	for _, rt := range ResourceTypes() {
		if strings.EqualFold(rt.Endpoint[1:], name) {
			return rt, true
		}
	}
	return ResourceType{}, false
}

// schemas lists every schema /Schemas answers, in order.
func schemas() []Schema { return []Schema{UserCore, EnterpriseUser, GroupCore} }

// SchemaDocuments returns the bodies of GET /Schemas' Resources: one RFC
// 7643 section 7 document per schema, with meta.location under baseURL
// (the site's SCIM base, without trailing slash).
func SchemaDocuments(baseURL string) []map[string]any {
	var docs []map[string]any
	for _, s := range schemas() {
		docs = append(docs, schemaDocument(baseURL, s))
	}
	return docs
}

// SchemaDocument returns the body of GET /Schemas/{id}; an unknown id is a
// 404 *Error.
func SchemaDocument(baseURL, id string) (map[string]any, error) {
	for _, s := range schemas() {
		if strings.EqualFold(s.ID, id) {
			return schemaDocument(baseURL, s), nil
		}
	}
	return nil, NotFound("schema %q not found", id)
}

func schemaDocument(baseURL string, s Schema) map[string]any {
	attrs := make([]map[string]any, 0, len(s.Attributes))
	for i := range s.Attributes {
		attrs = append(attrs, attributeDocument(&s.Attributes[i]))
	}
	return map[string]any{
		"schemas":     []string{SchemaSchema},
		"id":          s.ID,
		"name":        s.Name,
		"description": s.Description,
		"attributes":  attrs,
		"meta": map[string]any{
			"resourceType": "Schema",
			"location":     baseURL + "/Schemas/" + s.ID,
		},
	}
}

func attributeDocument(a *Attribute) map[string]any {
	doc := map[string]any{
		"name":        a.Name,
		"type":        a.Type,
		"multiValued": a.MultiValued,
		"required":    a.Required,
		"caseExact":   a.CaseExact,
		"mutability":  a.mutability(),
		"returned":    a.returned(),
		"uniqueness":  a.uniqueness(),
	}
	if a.Description != "" {
		doc["description"] = a.Description
	}
	if len(a.CanonicalValues) > 0 {
		doc["canonicalValues"] = a.CanonicalValues
	}
	if len(a.ReferenceTypes) > 0 {
		doc["referenceTypes"] = a.ReferenceTypes
	}
	if len(a.SubAttributes) > 0 {
		subs := make([]map[string]any, 0, len(a.SubAttributes))
		for i := range a.SubAttributes {
			subs = append(subs, attributeDocument(&a.SubAttributes[i]))
		}
		doc["subAttributes"] = subs
	}
	return doc
}

// ResourceTypeDocuments returns the bodies of GET /ResourceTypes'
// Resources (RFC 7643 section 6).
func ResourceTypeDocuments(baseURL string) []map[string]any {
	var docs []map[string]any
	for _, rt := range ResourceTypes() {
		docs = append(docs, rt.document(baseURL))
	}
	return docs
}

// ResourceTypeDocument returns the body of GET /ResourceTypes/{name}
// ("User" or "Group", case-insensitively); an unknown name is a 404 *Error.
func ResourceTypeDocument(baseURL, name string) (map[string]any, error) {
	for _, rt := range ResourceTypes() {
		if strings.EqualFold(rt.Name, name) {
			return rt.document(baseURL), nil
		}
	}
	return nil, NotFound("resource type %q not found", name)
}

func (rt ResourceType) document(baseURL string) map[string]any {
	doc := map[string]any{
		"schemas":     []string{ResourceTypeSchema},
		"id":          rt.Name,
		"name":        rt.Name,
		"endpoint":    rt.Endpoint,
		"description": rt.Schema.Description,
		"schema":      rt.Schema.ID,
		"meta": map[string]any{
			"resourceType": "ResourceType",
			"location":     baseURL + "/ResourceTypes/" + rt.Name,
		},
	}
	if len(rt.Extensions) > 0 {
		exts := make([]map[string]any, 0, len(rt.Extensions))
		for _, e := range rt.Extensions {
			exts = append(exts, map[string]any{"schema": e.ID, "required": false})
		}
		doc["schemaExtensions"] = exts
	}
	return doc
}

// ServiceProviderOptions are the server's capabilities that
// ServiceProviderConfigDocument advertises.
type ServiceProviderOptions struct {
	// MaxResults is the most resources a list answers (filter.maxResults).
	MaxResults int
	// DocumentationURI is the help page for admins; omitted when empty.
	DocumentationURI string
	// ETag says whether ETag/If-Match/If-None-Match are honoured.
	ETag bool
	// Sort says whether sortBy/sortOrder are honoured.
	Sort bool
	// Created and LastModified stamp meta; omitted when zero.
	Created, LastModified string
	// Version is the document's meta.version; omitted when empty.
	Version string
	// MaxPayloadSize is the largest request body accepted, in bytes
	// (DefaultMaxPayloadSize when zero).
	MaxPayloadSize int
	// Limits adds to (or overrides) the server's own limits in the
	// LimitsSchema extension, such as the per-site concurrency.
	Limits map[string]any
}

// DefaultMaxPayloadSize is the request body limit of the HTTP layer unless
// configured otherwise (1 MiB).
const DefaultMaxPayloadSize = 1 << 20

// LimitsSchema is the URN under which /ServiceProviderConfig lists the
// limits RFC 7643 has no attribute for: PATCH operations, attributes,
// values, nesting, string lengths, filter cost, concurrency, answer size
// (docs/SECURITY.md gives each with its reason).
const LimitsSchema = "urn:idbridge:params:scim:schemas:extension:limits:2.0:ServiceProviderConfig"

// DefaultMaxResults is the filter.maxResults this server advertises unless
// configured otherwise.
const DefaultMaxResults = 1000

// ServiceProviderConfigDocument returns the body of GET
// /ServiceProviderConfig (RFC 7643 section 5): PATCH supported, bulk not,
// filter with maxResults, no password change, sort and ETag as configured,
// OAuth bearer token authentication.
func ServiceProviderConfigDocument(baseURL string, opts ServiceProviderOptions) map[string]any {
	maxResults := opts.MaxResults
	if maxResults <= 0 {
		maxResults = DefaultMaxResults
	}
	scheme := map[string]any{
		"type":        "oauthbearertoken",
		"name":        "OAuth Bearer Token",
		"description": "Authentication with the per-site bearer token generated on the idbridge admin page.",
		"primary":     true,
	}
	meta := map[string]any{
		"resourceType": "ServiceProviderConfig",
		"location":     baseURL + "/ServiceProviderConfig",
	}
	if opts.Created != "" {
		meta["created"] = opts.Created
	}
	if opts.LastModified != "" {
		meta["lastModified"] = opts.LastModified
	}
	if opts.Version != "" {
		meta["version"] = opts.Version
	}
	maxPayload := opts.MaxPayloadSize
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayloadSize
	}
	limits := map[string]any{
		"maxPayloadSize":            maxPayload,
		"maxPatchOperations":        MaxPatchOperations,
		"maxAttributes":             MaxAttributes,
		"maxValuesPerAttribute":     MaxValues,
		"maxMembersPerRequest":      MaxMembers,
		"maxDepth":                  MaxDepth,
		"maxStringBytes":            MaxStringBytes,
		"maxIndexedStringBytes":     MaxIndexedBytes,
		"maxFilterTerms":            MaxFilterTerms,
		"maxFilterMultiValuedTerms": MaxMultiValuedTerms,
		"maxProjectionAttributes":   MaxProjectionAttributes,
	}
	for k, v := range opts.Limits {
		limits[k] = v
	}
	doc := map[string]any{
		"schemas":               []string{ServiceProviderConfigSchema, LimitsSchema},
		LimitsSchema:            limits,
		"patch":                 map[string]any{"supported": true},
		"bulk":                  map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": maxPayload},
		"filter":                map[string]any{"supported": true, "maxResults": maxResults},
		"changePassword":        map[string]any{"supported": false},
		"sort":                  map[string]any{"supported": opts.Sort},
		"etag":                  map[string]any{"supported": opts.ETag},
		"authenticationSchemes": []map[string]any{scheme},
		"meta":                  meta,
	}
	if opts.DocumentationURI != "" {
		doc["documentationUri"] = opts.DocumentationURI
		scheme["documentationUri"] = opts.DocumentationURI
	}
	return doc
}

// ListResponse returns an RFC 7644 section 3.4.2 ListResponse body.
// resources may be nil: "Resources" is then an empty array, never null.
func ListResponse(resources []map[string]any, totalResults, startIndex int) map[string]any {
	if resources == nil {
		resources = []map[string]any{}
	}
	return map[string]any{
		"schemas":      []string{ListResponseSchema},
		"totalResults": totalResults,
		"startIndex":   max(startIndex, 1),
		"itemsPerPage": len(resources),
		"Resources":    resources,
	}
}
