package models

// The customer portal's views of JSM (SPEC 7): what the portal shows and
// the handlers render.

// PortalRequestType is one way to raise a request.
type PortalRequestType struct {
	ID          string
	Name        string
	Description string
}

// PortalDesk is a service desk the portal offers, with its request types.
type PortalDesk struct {
	ID           string
	Name         string
	RequestTypes []PortalRequestType
}

// PortalField is one field of a request form, as the portal can show it.
type PortalField struct {
	ID          string
	Label       string
	Description string
	Required    bool
	Kind        string // "summary", "text", "textarea", "select"
	Options     []string
}

// PortalForm is a request type's form.
type PortalForm struct {
	Desk        PortalDesk
	RequestType PortalRequestType
	Fields      []PortalField
}

// PortalRequestSummary is one line of "My requests".
type PortalRequestSummary struct {
	Key     string
	Summary string
	Status  string
	Created string
}

// PortalComment is a public comment; Body is HTML the portal made from
// JSM's markup (only a handful of safe elements).
type PortalComment struct {
	Author  string
	Created string
	Body    string
}

// PortalRequest is one of the customer's requests; Description is HTML as
// for comments.
type PortalRequest struct {
	Key         string
	Summary     string
	Status      string
	Created     string
	Description string
	Comments    []PortalComment
}
