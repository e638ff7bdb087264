package provisioning

import (
	"context"

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
	if d.s.coalesced() {
		// The batch holds no connection of its own: the slot goes back
		// before waiting for it.
		held.release()
		ctx = held.outer
	}
	if err := d.s.store.CreateDirectoryUserWithOutbox(ctx, u, it); err != nil {
		return nil, uniquenessUser(err, u.UserName)
	}
	if err := d.s.fillManager(ctx, u); err != nil {
		return nil, err
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
	return d.s.updateUser(ctx, r.SiteID, r.ID, r.IfMatch, p, func(_ *models.DirectoryUser, doc map[string]any) (map[string]any, bool, error) {
		res, err := scim.ApplyPatch(scim.Users, doc, req)
		if err != nil {
			return nil, false, err
		}
		return res.Resource, res.Changed, nil
	})
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

// updateUser runs a read-modify-write of one user: change gets the stored
// user and its document and returns the new document (normalised) and
// whether it may differ. Everything that costs (decoding, the PATCH,
// normalising, rendering the document) happens before the write
// transaction, which only checks that the user is still at the version the
// change was computed from and writes it with its outbox items; when the
// user changed meanwhile the change is computed again. Unchanged users are
// not written.
func (s *Service) updateUser(ctx context.Context, siteID, id, ifMatch string, p scim.Projection,
	change func(u *models.DirectoryUser, doc map[string]any) (map[string]any, bool, error)) (*scim.Answer, error) {
	base := s.BaseURL(siteID)
	view := s.store.View(ctx)
	var after *models.DirectoryUser
	err := writeComputed(ifMatch, func() (int64, error) {
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
		after = &u
		if !changed || string(u.Doc) == string(before.Doc) {
			return before.Version, nil
		}
		items, err := userChanges(before, &u)
		if err != nil {
			return 0, err
		}
		return before.Version, s.store.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.UpdateDirectoryUserAt(&u, before.Version); err != nil {
				return uniquenessUser(err, u.UserName)
			}
			return tx.AddOutboxItems(items...)
		})
	})
	if err != nil {
		return nil, err
	}
	if p.Wants(scim.Users, "groups") {
		groups, err := view.FindDirectoryUserGroups(siteID, []string{after.ID})
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
	return userAnswer(base, after, p)
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
