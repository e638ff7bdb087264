package provisioning

import (
	"context"
	"slices"

	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/models"
)

// users is the directory of /Users.
type users struct{ s *Service }

func (users) target() sqlTarget {
	return sqlTarget{rt: scim.Users, table: store.UsersDirectory(), memberType: "direct", keyed: true}
}

func (users) idPrefix() string { return "u" }

func (d users) page(view *store.Tx, siteID string, dq store.DirectoryQuery, p scim.Projection, pg *scim.Page) (int, error) {
	base := d.s.BaseURL(siteID)
	dq.WithGroups = p.Wants(scim.Users, "groups")
	if dq.Key != nil {
		list, total, err := view.ListDirectoryUsers(siteID, dq)
		if err != nil {
			return 0, err
		}
		for i := range list {
			r, err := scim.RenderUser(base, &list[i], p)
			if err != nil {
				return 0, err
			}
			pg.Add(r)
		}
		return total, nil
	}
	var renderErr error
	total, err := view.EachDirectoryUser(siteID, dq, func(u *models.DirectoryUser) bool {
		r, err := scim.RenderUser(base, u, p)
		if err != nil {
			renderErr = err
			return false
		}
		return pg.Add(r)
	})
	if renderErr != nil {
		return 0, renderErr
	}
	return total, err
}

// get reads a user by ID: a lookup by a unique key, which the store
// coalesces on PostgreSQL.
func (d users) get(ctx context.Context, siteID, id string, p scim.Projection) (*scim.Answer, error) {
	ctx, release, err := d.s.lookupSlot(ctx, siteID)
	if err != nil {
		return nil, err
	}
	defer release()
	list, _, err := d.s.store.View(ctx).ListDirectoryUsers(siteID, store.DirectoryQuery{
		Where: "id = ?", Args: []any{id}, Key: &store.DirectoryKey{Column: store.KeyID, Value: id},
		Limit: 1, WithGroups: p.Wants(scim.Users, "groups"),
	})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, scim.NotFound("User %s not found", id)
	}
	return userAnswer(d.s.BaseURL(siteID), &list[0], p)
}

func userAnswer(base string, u *models.DirectoryUser, p scim.Projection) (*scim.Answer, error) {
	body, err := scim.RenderUser(base, u, p)
	if err != nil {
		return nil, err
	}
	return &scim.Answer{Body: body, ETag: scim.ETag(u.Version), Location: base + "/Users/" + u.ID}, nil
}

// create reads the user's manager under the work slot (ctx), then gives the
// slot back and waits for its batch under the request's own context
// (held.outer) with the same deadline a slot's work has.
func (d users) create(ctx context.Context, held heldSlot, siteID string, doc map[string]any, p scim.Projection) (*scim.Answer, error) {
	u := &models.DirectoryUser{SiteID: siteID}
	if err := scim.UserFromDoc(u, doc); err != nil {
		return nil, err
	}
	// The user ID is not known yet: the store sets the item's resource.
	it, err := outboxItem(siteID, "User", "pending", models.OutboxUserCreated, userPayloadOf(u))
	if err != nil {
		return nil, err
	}
	// The manager (another user, named in the document) is read first,
	// while the slot is held: every read of a request is within its
	// site's share of the connections.
	if err := d.s.fillManager(ctx, u); err != nil {
		return nil, err
	}
	// The store batches creates on both databases (PostgreSQL: one
	// statement; SQLite: one write transaction), and a batch holds one
	// connection for all of its creates: the slot goes back before
	// waiting for it. Holding it would leave one create per batch on a
	// site with a single work slot (SQLite's creates were all batches of
	// one, docs/PERFORMANCE.md).
	held.release()
	// The wait for the batch is bounded like the slot's work: a batch
	// that cannot take SQLite's write lock (another process holds it)
	// waits its busy timeout, and the creates queued behind it would
	// otherwise wait for each batch in turn.
	ctx, cancel := context.WithTimeout(held.outer, d.s.store.WorkTimeout())
	defer cancel()
	if err := d.s.store.CreateDirectoryUserWithOutbox(ctx, u, it); err != nil {
		return nil, uniquenessUser(err, u.UserName)
	}
	return userAnswer(d.s.BaseURL(siteID), u, p)
}

func (d users) replace(ctx context.Context, r *scim.Request, _, doc map[string]any, p scim.Projection) (*scim.Answer, error) {
	return d.s.updateUser(ctx, r.SiteID, r.ID, r.IfMatch, p, func(*models.DirectoryUser, map[string]any) (map[string]any, bool, error) {
		return doc, true, nil
	})
}

// patch answers 200 with the user.
func (d users) patch(ctx context.Context, r *scim.Request, req *scim.PatchRequest, p scim.Projection) (*scim.Answer, error) {
	return d.s.updateUser(ctx, r.SiteID, r.ID, r.IfMatch, p, patchUser(req))
}

// patchUser is the change a PATCH request makes to a user, for updateUser
// and writeUsers.
func patchUser(req *scim.PatchRequest) userChange {
	return func(_ *models.DirectoryUser, doc map[string]any) (map[string]any, bool, error) {
		res, err := scim.ApplyPatch(scim.Users, doc, req)
		if err != nil {
			return nil, false, err
		}
		return res.Resource, res.Changed, nil
	}
}

// PatchUsers applies one SCIM PatchOp (body, as an identity provider sends
// it) to several users of a site as one change, for a feature that corrects
// users on the site's behalf (privacy's rectification). Each user's change
// is what an identity provider's PATCH of it would be: under the site's
// work slot, the body checked against the same limits, computed before the
// write and written only at the version it was computed from (computed
// again when a user changed meanwhile), with its outbox items. But all of
// them are written in one transaction, and within (nil: nothing) runs in
// it after them, so that the caller's own writes (its audit event) commit
// with the users or not at all: an error anywhere, from within too, writes
// nothing. within runs even when no user changes, and runs again, in a new
// transaction, when the change is computed again. An ID that is not a
// user of the site is a 404, and nothing is written.
func (s *Service) PatchUsers(ctx context.Context, siteID string, ids []string, body []byte, within func(tx *store.Tx) error) error {
	// One order for every caller, so that two transactions that write the
	// same users lock them in the same order; a user named twice is
	// written once.
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for _, id := range ids {
		if !store.ValidID(users{}.idPrefix(), id) {
			return scim.NotFound("User %s not found", shown(id))
		}
	}
	ctx, release, err := s.slot(ctx, siteID)
	if err != nil {
		return err
	}
	defer release()
	req, err := scim.DecodePatchRequest(body)
	if err != nil {
		return err
	}
	_, err = s.writeUsers(ctx, siteID, ids, "", patchUser(req), within)
	return err
}

func (users) remove(tx *store.Tx, siteID, id, ifMatch string) error {
	u, err := lockVersion(tx, "User", siteID, id, ifMatch, (*store.Tx).FindDirectoryUser, userState)
	if err != nil {
		return err
	}
	if err := tx.DeleteDirectoryUser(siteID, id); err != nil {
		return err
	}
	it, err := outboxItem(siteID, "User", id, models.OutboxUserDeleted, userPayloadOf(u))
	if err != nil {
		return err
	}
	return tx.AddOutboxItems(it)
}

// userChange computes a change of one user: it gets the stored user and
// its document and returns the new document (normalised) and whether it
// may differ.
type userChange func(u *models.DirectoryUser, doc map[string]any) (map[string]any, bool, error)

// updateUser runs a read-modify-write of one user (writeUsers) and answers
// with the user as written.
func (s *Service) updateUser(ctx context.Context, siteID, id, ifMatch string, p scim.Projection, change userChange) (*scim.Answer, error) {
	written, err := s.writeUsers(ctx, siteID, []string{id}, ifMatch, change, nil)
	if err != nil {
		return nil, err
	}
	after := written[0]
	if p.Wants(scim.Users, "groups") {
		groups, err := s.store.View(ctx).FindDirectoryUserGroups(siteID, []string{after.ID})
		if err != nil {
			return nil, err
		}
		for _, g := range groups[after.ID] {
			after.Groups = append(after.Groups, models.DirectoryGroupRef{ID: g.GroupID, DisplayName: g.DisplayName})
		}
	}
	if err := s.fillManager(ctx, after); err != nil {
		return nil, err
	}
	return userAnswer(s.BaseURL(siteID), after, p)
}

// userWrite is one user's share of a write transaction: the user as it
// will be stored, the version it was computed from, its outbox items.
type userWrite struct {
	user    *models.DirectoryUser
	version int64
	items   []*models.OutboxItem
}

// writeUsers runs a read-modify-write of users of a site (one for a SCIM
// request, several for PatchUsers) as one change. Everything that costs
// (decoding, the PATCH, normalising, rendering the documents) happens
// before the write transaction, which only checks that each user is still
// at the version its change was computed from and writes it with its
// outbox items, then runs within (nil: nothing); when a user changed
// meanwhile every change is computed again. Unchanged users are not
// written, and a change that changes nobody opens no transaction unless
// there is a within to run. It returns the users as written, in the order
// of ids.
func (s *Service) writeUsers(ctx context.Context, siteID string, ids []string, ifMatch string, change userChange,
	within func(tx *store.Tx) error) ([]*models.DirectoryUser, error) {
	view := s.store.View(ctx)
	after := make([]*models.DirectoryUser, len(ids))
	err := writeComputed(ifMatch, func() (int64, error) {
		var version int64
		var writes []userWrite
		for i, id := range ids {
			before, stored, err := readForChange(view, "User", siteID, id, ifMatch, (*store.Tx).FindDirectoryUser, userState)
			if err != nil {
				return 0, err
			}
			doc, changed, err := change(before, stored)
			if err != nil {
				return 0, err
			}
			u := *before
			if err := scim.UserFromDoc(&u, doc); err != nil {
				return 0, err
			}
			after[i] = &u
			version = before.Version
			if !changed || string(u.Doc) == string(before.Doc) {
				continue
			}
			items, err := userChanges(before, &u)
			if err != nil {
				return 0, err
			}
			writes = append(writes, userWrite{user: &u, version: before.Version, items: items})
		}
		if len(writes) == 0 && within == nil {
			return version, nil
		}
		var withinErr error
		err := s.store.InTx(ctx, func(tx *store.Tx) error {
			for _, w := range writes {
				if err := tx.UpdateDirectoryUserAt(w.user, w.version); err != nil {
					return uniquenessUser(err, w.user.UserName)
				}
				if err := tx.AddOutboxItems(w.items...); err != nil {
					return err
				}
			}
			if within != nil {
				withinErr = within(tx)
			}
			return withinErr
		})
		if withinErr != nil {
			// The caller's own writes failed, whatever their code: no
			// user changed meanwhile, so nothing is computed again.
			return 0, err
		}
		return version, err
	})
	if err != nil {
		return nil, err
	}
	return after, nil
}

// fillManager sets u.Manager after a write (reads get it from the store's
// own statement): the user the document's enterprise manager names, when
// it is a user of the site.
func (s *Service) fillManager(ctx context.Context, u *models.DirectoryUser) error {
	u.Manager = nil
	id := scim.ManagerID(u.Doc)
	if id == "" || !store.ValidID("u", id) {
		return nil
	}
	m, err := s.store.View(ctx).FindDirectoryUser(u.SiteID, id, false)
	if models.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	u.Manager = &models.DirectoryUserRef{ID: m.ID, DisplayName: m.DisplayName}
	return nil
}
