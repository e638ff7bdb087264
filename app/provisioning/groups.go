package provisioning

import (
	"context"

	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/models"
)

// groups is the directory of /Groups. A group's members are rows of the
// membership table, not part of its stored document.
type groups struct{ s *Service }

func (groups) target() sqlTarget {
	return sqlTarget{rt: scim.Groups, table: store.GroupsDirectory(), memberType: "User"}
}

func (groups) idPrefix() string { return "g" }

func (d groups) page(view *store.Tx, siteID string, dq store.DirectoryQuery, p scim.Projection, pg *scim.Page) (int, error) {
	base := d.s.BaseURL(siteID)
	list, total, err := view.ListDirectoryGroups(siteID, dq)
	if err != nil {
		return 0, err
	}
	withMembers := p.Wants(scim.Groups, "members")
	// Members are loaded a few groups at a time, so that a full page stops
	// loading them too.
	const membersChunk = 16
	for start := 0; start < len(list) && !pg.Full(); start += membersChunk {
		chunk := list[start:min(start+membersChunk, len(list))]
		var members map[string][]models.GroupMember
		if withMembers {
			ids := make([]string, len(chunk))
			for i := range chunk {
				ids[i] = chunk[i].ID
			}
			if members, err = view.FindGroupMembers(siteID, ids); err != nil {
				return 0, err
			}
		}
		for i := range chunk {
			r, err := scim.RenderGroup(base, &chunk[i], members[chunk[i].ID], p)
			if err != nil {
				return 0, err
			}
			if !pg.Add(r) {
				break
			}
		}
	}
	return total, nil // counted over the whole page read, however much of it fits
}

func (d groups) get(ctx context.Context, siteID, id string, p scim.Projection) (*scim.Answer, error) {
	ctx, release, err := d.s.slot(ctx, siteID)
	if err != nil {
		return nil, err
	}
	defer release()
	view := d.s.store.View(ctx)
	g, err := view.FindDirectoryGroup(siteID, id, false)
	if models.IsNotFound(err) {
		return nil, scim.NotFound("Group %s not found", id)
	}
	if err != nil {
		return nil, err
	}
	return d.answer(view, siteID, g, p)
}

// answer renders a group, with its members when the projection asks for
// them.
func (d groups) answer(view *store.Tx, siteID string, g *models.DirectoryGroup, p scim.Projection) (*scim.Answer, error) {
	var members []models.GroupMember
	if p.Wants(scim.Groups, "members") {
		m, err := view.FindGroupMembers(siteID, []string{g.ID})
		if err != nil {
			return nil, err
		}
		members = m[g.ID]
	}
	return groupAnswer(d.s.BaseURL(siteID), g, members, p)
}

func groupAnswer(base string, g *models.DirectoryGroup, members []models.GroupMember, p scim.Projection) (*scim.Answer, error) {
	body, err := scim.RenderGroup(base, g, members, p)
	if err != nil {
		return nil, err
	}
	return &scim.Answer{Body: body, ETag: scim.ETag(g.Version), Location: base + "/Groups/" + g.ID}, nil
}

func (d groups) create(ctx context.Context, _ heldSlot, siteID string, doc map[string]any, p scim.Projection) (*scim.Answer, error) {
	g := &models.DirectoryGroup{SiteID: siteID}
	memberIDs, err := scim.GroupFromDoc(g, doc)
	if err != nil {
		return nil, err
	}
	// Checked before the write transaction, which holds only writes; a
	// user deleted meanwhile is skipped by AddGroupMembers.
	if err := checkMembers(d.s.store.View(ctx), siteID, memberIDs); err != nil {
		return nil, err
	}
	var members []models.GroupMember
	err = d.s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.CreateDirectoryGroup(g); err != nil {
			return uniquenessGroup(err, g.DisplayName)
		}
		created, err := outboxItem(siteID, "Group", g.ID, models.OutboxGroupCreated, groupPayload{DisplayName: g.DisplayName, ExternalID: g.ExternalID})
		if err != nil {
			return err
		}
		items := []*models.OutboxItem{created}
		if len(memberIDs) > 0 {
			added, err := tx.AddGroupMembers(siteID, g.ID, memberIDs)
			if err != nil {
				return err
			}
			it, err := outboxItem(siteID, "Group", g.ID, models.OutboxMembersAdded, membersPayload{GroupDisplayName: g.DisplayName, UserIDs: added})
			if err != nil {
				return err
			}
			items = append(items, it)
			if p.Wants(scim.Groups, "members") {
				m, err := tx.FindGroupMembers(siteID, []string{g.ID})
				if err != nil {
					return err
				}
				members = m[g.ID]
			}
		}
		return tx.AddOutboxItems(items...)
	})
	if err != nil {
		return nil, err
	}
	return groupAnswer(d.s.BaseURL(siteID), g, members, p)
}

// replace replaces the group's attributes. Its members are replaced when
// the body has a members attribute and kept when it has none (RFC 7644
// 3.5.1 leaves that to the server; keeping them never loses a membership
// by accident).
func (d groups) replace(ctx context.Context, r *scim.Request, raw, doc map[string]any, p scim.Projection) (*scim.Answer, error) {
	// "members": null asserts nothing; "members": [] empties the group.
	hasMembers := scim.LookupCI(raw, "members") != nil
	var ids []string
	if hasMembers {
		ids = scim.IndexGroup(doc).MemberIDs
		if err := checkMembers(d.s.store.View(ctx), r.SiteID, ids); err != nil {
			return nil, err
		}
	}
	return d.s.updateGroup(ctx, r.SiteID, r.ID, r.IfMatch, p, func(*store.Tx, *models.DirectoryGroup, map[string]any) (map[string]any, []memberOp, error) {
		if !hasMembers {
			return doc, nil, nil
		}
		return doc, []memberOp{{kind: "replace", ids: ids}}, nil
	})
}

// patch answers 204, as Entra expects, unless attributes or
// excludedAttributes ask for the group: then 200 with it.
func (d groups) patch(ctx context.Context, r *scim.Request, req *scim.PatchRequest, p scim.Projection) (*scim.Answer, error) {
	a, err := d.s.updateGroup(ctx, r.SiteID, r.ID, r.IfMatch, p, func(view *store.Tx, g *models.DirectoryGroup, stored map[string]any) (map[string]any, []memberOp, error) {
		return planGroupPatch(view, g, stored, req)
	})
	if err != nil {
		return nil, err
	}
	if _, ok := param(r.Query, "attributes"); !ok {
		if _, ok := param(r.Query, "excludedAttributes"); !ok {
			a.Body = nil // 204 No Content
		}
	}
	return a, nil
}

func (groups) remove(tx *store.Tx, siteID, id, ifMatch string) error {
	g, err := lockVersion(tx, "Group", siteID, id, ifMatch, (*store.Tx).FindDirectoryGroup, groupState)
	if err != nil {
		return err
	}
	if err := tx.DeleteDirectoryGroup(siteID, id); err != nil {
		return err
	}
	it, err := outboxItem(siteID, "Group", id, models.OutboxGroupDeleted, groupPayload{DisplayName: g.DisplayName, ExternalID: g.ExternalID})
	if err != nil {
		return err
	}
	return tx.AddOutboxItems(it)
}

// updateGroup runs a read-modify-write of one group. plan gets the stored
// group and its document (without members) and returns the new document
// (normalised; members in it are ignored) and the membership changes, in
// order, with every member to add already checked; it runs before the
// write transaction, which checks that the group is still at the version
// the plan was made from (else the plan is made again) and then only
// writes: the membership rows, the group, the outbox items.
func (s *Service) updateGroup(ctx context.Context, siteID, id, ifMatch string, p scim.Projection,
	plan func(view *store.Tx, g *models.DirectoryGroup, doc map[string]any) (map[string]any, []memberOp, error)) (*scim.Answer, error) {
	base := s.BaseURL(siteID)
	view := s.store.View(ctx)
	var after *models.DirectoryGroup
	err := writeComputed(ifMatch, func() (int64, error) {
		before, stored, err := readForChange(view, "Group", siteID, id, ifMatch, (*store.Tx).FindDirectoryGroup, groupState)
		if err != nil {
			return 0, err
		}
		doc, ops, err := plan(view, before, stored)
		if err != nil {
			return 0, err
		}
		g := *before
		if _, err := scim.GroupFromDoc(&g, doc); err != nil {
			return 0, err
		}
		after = &g
		docChanged := string(g.Doc) != string(before.Doc)
		if !docChanged && len(ops) == 0 {
			return before.Version, nil
		}
		return before.Version, s.store.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.LockDirectoryGroupAt(siteID, id, before.Version); err != nil {
				return err
			}
			mt := newMemberTracker(siteID, id)
			if err := mt.apply(tx, ops); err != nil {
				return err
			}
			added, removed := mt.net()
			if !docChanged && len(added) == 0 && len(removed) == 0 {
				return nil
			}
			if err := tx.UpdateDirectoryGroup(&g); err != nil {
				return uniquenessGroup(err, g.DisplayName)
			}
			items, err := groupChanges(before, &g, docChanged, added, removed)
			if err != nil {
				return err
			}
			return tx.AddOutboxItems(items...)
		})
	})
	if err != nil {
		return nil, err
	}
	var members []models.GroupMember
	if p.Wants(scim.Groups, "members") {
		m, err := view.FindGroupMembers(siteID, []string{id})
		if err != nil {
			return nil, err
		}
		members = m[id]
	}
	return groupAnswer(base, after, members, p)
}

// groupChanges returns the outbox items of a group change: an update of
// its attributes (with the previous name on a rename), then the members
// removed, then those added.
func groupChanges(before, g *models.DirectoryGroup, docChanged bool, added, removed []string) ([]*models.OutboxItem, error) {
	var items []*models.OutboxItem
	if docChanged {
		gp := groupPayload{DisplayName: g.DisplayName, ExternalID: g.ExternalID}
		if g.DisplayName != before.DisplayName {
			gp.PreviousDisplayName = before.DisplayName
		}
		it, err := outboxItem(g.SiteID, "Group", g.ID, models.OutboxGroupUpdated, gp)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	if len(removed) > 0 {
		it, err := outboxItem(g.SiteID, "Group", g.ID, models.OutboxMembersRemoved, membersPayload{GroupDisplayName: g.DisplayName, UserIDs: removed})
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	if len(added) > 0 {
		it, err := outboxItem(g.SiteID, "Group", g.ID, models.OutboxMembersAdded, membersPayload{GroupDisplayName: g.DisplayName, UserIDs: added})
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}
