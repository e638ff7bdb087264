package provisioning

import (
	"context"

	"idbridge/app/scim"
	"idbridge/app/store"
)

// directory is one resource type's side of the service, what differs
// between users (users.go) and groups (groups.go): how a page of them is
// read and rendered, how one is read, created, replaced, PATCHed and
// deleted. Service's methods resolve the request's resource type to its
// directory once (directoryOf) and do the rest, which is common: request
// parsing, the site's work slots, filters compiled to SQL.
type directory interface {
	// target is what the SQL compiler needs of the resource type.
	target() sqlTarget
	// idPrefix is the prefix of the IDs the store issues for it.
	idPrefix() string
	// page renders the resources dq selects into pg (until it is full)
	// and returns how many match in all.
	page(view *store.Tx, siteID string, dq store.DirectoryQuery, p scim.Projection, pg *scim.Page) (int, error)
	// get reads one resource, under its own work slot.
	get(ctx context.Context, siteID, id string, p scim.Projection) (*scim.Answer, error)
	// create stores a normalised document as a new resource; held is
	// the work slot the caller took (a create the store coalesces gives
	// it back before waiting for its batch).
	create(ctx context.Context, held heldSlot, siteID string, doc map[string]any, p scim.Projection) (*scim.Answer, error)
	// replace replaces one resource by a normalised document (PUT); raw
	// is the body as decoded.
	replace(ctx context.Context, r *scim.Request, raw, doc map[string]any, p scim.Projection) (*scim.Answer, error)
	// patch applies a PATCH request to one resource.
	patch(ctx context.Context, r *scim.Request, req *scim.PatchRequest, p scim.Projection) (*scim.Answer, error)
	// remove deletes one resource in tx, with its outbox item.
	remove(tx *store.Tx, siteID, id, ifMatch string) error
}

// heldSlot is a work slot a request holds: release gives it back, outer is
// the request's context without the slot's deadline.
type heldSlot struct {
	release func()
	outer   context.Context
}

// Create answers POST /Users and POST /Groups.
func (s *Service) Create(ctx context.Context, r *scim.Request) (*scim.Answer, error) {
	d, err := s.directoryOf(r.Type)
	if err != nil {
		return nil, err
	}
	// The site's work slot covers decoding and normalising too.
	outer := ctx
	p := projectionFrom(r.Query)
	if err := scim.CheckProjection(p); err != nil {
		return nil, err
	}
	ctx, release, err := s.slot(ctx, r.SiteID)
	if err != nil {
		return nil, err
	}
	defer release()
	raw, err := scim.DecodeResource(r.Body)
	if err != nil {
		return nil, err
	}
	doc, err := scim.Normalize(d.target().rt, raw)
	if err != nil {
		return nil, err
	}
	return d.create(ctx, heldSlot{release: release, outer: outer}, r.SiteID, doc, p)
}

// Replace answers PUT /Users/{id} and PUT /Groups/{id} (Okta updates
// profiles this way).
func (s *Service) Replace(ctx context.Context, r *scim.Request) (*scim.Answer, error) {
	d, err := s.resource(r)
	if err != nil {
		return nil, err
	}
	p := projectionFrom(r.Query)
	if err := scim.CheckProjection(p); err != nil {
		return nil, err
	}
	ctx, release, err := s.slot(ctx, r.SiteID)
	if err != nil {
		return nil, err
	}
	defer release()
	raw, err := scim.DecodeResource(r.Body)
	if err != nil {
		return nil, err
	}
	doc, err := scim.Normalize(d.target().rt, raw)
	if err != nil {
		return nil, err
	}
	return d.replace(ctx, r, raw, doc, p)
}

// Patch answers PATCH /Users/{id} and PATCH /Groups/{id}. Operations apply
// in order and atomically, in one transaction with their outbox items.
func (s *Service) Patch(ctx context.Context, r *scim.Request) (*scim.Answer, error) {
	d, err := s.resource(r)
	if err != nil {
		return nil, err
	}
	p := projectionFrom(r.Query)
	if err := scim.CheckProjection(p); err != nil {
		return nil, err
	}
	ctx, release, err := s.slot(ctx, r.SiteID)
	if err != nil {
		return nil, err
	}
	defer release()
	req, err := scim.DecodePatchRequest(r.Body)
	if err != nil {
		return nil, err
	}
	return d.patch(ctx, r, req, p)
}

// Delete answers DELETE /Users/{id} (a hard delete: Entra sends it 30 days
// after a soft delete) and DELETE /Groups/{id}.
func (s *Service) Delete(ctx context.Context, r *scim.Request) error {
	d, err := s.resource(r)
	if err != nil {
		return err
	}
	ctx, release, err := s.slot(ctx, r.SiteID)
	if err != nil {
		return err
	}
	defer release()
	return s.store.InTx(ctx, func(tx *store.Tx) error {
		return d.remove(tx, r.SiteID, r.ID, r.IfMatch)
	})
}
