package scim

import (
	"encoding/json"
	"net/url"
)

// Request is one request to a resource endpoint (/Users…, /Groups…,
// /.search) as the HTTP layer resolved it: the resource type is known, the
// rest is as received.
type Request struct {
	SiteID string
	// Type is the resource type addressed; nil for a search at the root
	// (POST /.search), which covers every resource type.
	Type *ResourceType
	// ID names one resource (GET, PUT, PATCH and DELETE of /{type}/{id}).
	ID string
	// Query holds the URL's parameters (attributes, excludedAttributes,
	// filter, sortBy, sortOrder, startIndex, count), whose names match
	// case-insensitively.
	Query url.Values
	// Body is the request body as received (POST, PUT, PATCH, .search).
	Body []byte
	// IfMatch is the If-Match header; "" when there is none.
	IfMatch string
}

// Answer is a SCIM answer: its JSON body (nil for none: 204 No Content),
// rendered with Marshal or from stored documents, and the headers that
// describe the resource.
type Answer struct {
	Body     json.RawMessage
	ETag     string // W/"n"; "" when the answer has none
	Location string // the resource's URL, for 201 Created
}

// Document answers v (a discovery document or a ListResponse) as JSON.
func Document(v any) (*Answer, error) {
	b, err := Marshal(v)
	if err != nil {
		return nil, err
	}
	return &Answer{Body: b}, nil
}
