package provisioning

import (
	"context"
	"net/url"
	"slices"
	"strings"

	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/models"
)

// userPayload is the outbox payload of a user change: what the sync worker
// needs to mirror the user into the Atlassian site.
type userPayload struct {
	UserName    string `json:"userName"`
	ExternalID  string `json:"externalId,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	GivenName   string `json:"givenName,omitempty"`
	FamilyName  string `json:"familyName,omitempty"`
	Email       string `json:"email,omitempty"`
	Active      bool   `json:"active"`
}

// groupPayload is the outbox payload of a group change.
type groupPayload struct {
	DisplayName         string `json:"displayName"`
	PreviousDisplayName string `json:"previousDisplayName,omitempty"`
	ExternalID          string `json:"externalId,omitempty"`
}

// membersPayload is the outbox payload of a membership change.
type membersPayload struct {
	GroupDisplayName string   `json:"groupDisplayName"`
	UserIDs          []string `json:"userIds"`
}

func outboxItem(siteID, resourceType, id string, op models.OutboxOp, payload any) (*models.OutboxItem, error) {
	b, err := scim.Marshal(payload)
	if err != nil {
		return nil, err
	}
	return &models.OutboxItem{SiteID: siteID, ResourceType: resourceType, ResourceID: id, Op: op, Payload: b}, nil
}

func userPayloadOf(u *models.DirectoryUser) userPayload {
	return userPayload{UserName: u.UserName, ExternalID: u.ExternalID, DisplayName: u.DisplayName,
		GivenName: u.GivenName, FamilyName: u.FamilyName, Email: u.Email, Active: u.Active}
}

// userChanges returns the outbox items for a user that went from before to
// after: an update of what the site mirrors, then a deactivation or after
// a reactivation, as the case may be.
func userChanges(before, after *models.DirectoryUser) ([]*models.OutboxItem, error) {
	p := userPayloadOf(after)
	was := userPayloadOf(before)
	was.Active = p.Active
	fieldsChanged := was != p
	var ops []models.OutboxOp
	switch {
	case before.Active && !after.Active:
		if fieldsChanged {
			ops = append(ops, models.OutboxUserUpdated)
		}
		ops = append(ops, models.OutboxUserDeactivated)
	case !before.Active && after.Active:
		ops = append(ops, models.OutboxUserReactivated)
		if fieldsChanged {
			ops = append(ops, models.OutboxUserUpdated)
		}
	default:
		// Attributes the site does not mirror (title, phone numbers) are
		// changes too: every accepted change has its outbox item.
		ops = append(ops, models.OutboxUserUpdated)
	}
	items := make([]*models.OutboxItem, 0, len(ops))
	for _, op := range ops {
		it, err := outboxItem(after.SiteID, "User", after.ID, op, p)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

func uniquenessUser(err error, userName string) error {
	if models.ErrorCode(err) == models.CodeConflict {
		return scim.Uniqueness("userName %q is already taken in this site", userName)
	}
	return err
}

func uniquenessGroup(err error, displayName string) error {
	if models.ErrorCode(err) == models.CodeConflict {
		return scim.Uniqueness("displayName %q is already taken in this site", displayName)
	}
	return err
}

// checkMembers fails with 400 invalidValue unless every id is a user of
// the site.
func checkMembers(tx *store.Tx, siteID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	found, err := tx.ExistingDirectoryUsers(siteID, ids)
	if err != nil {
		return err
	}
	var missing []string
	for _, id := range ids {
		if !found[id] && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	shown := missing
	if len(shown) > 5 {
		shown = shown[:5]
	}
	return scim.InvalidValue("members must be users of this site; not found: %s", strings.Join(shown, ", "))
}

// Create answers POST /Users and POST /Groups.
func (s *Service) Create(ctx context.Context, siteID, endpoint string, body []byte, q url.Values) (*models.SCIMDocument, error) {
	rt, err := resourceType(endpoint)
	if err != nil {
		return nil, err
	}
	// The site's work slot covers decoding and normalising too; a user
	// create that the store coalesces (PostgreSQL) gives it back before
	// waiting for its batch, which holds no connection of its own.
	reqCtx := ctx
	if err := scim.CheckProjection(projectionFrom(q)); err != nil {
		return nil, err
	}
	ctx, release, err := s.slot(ctx, siteID)
	if err != nil {
		return nil, err
	}
	defer release()
	raw, err := scim.DecodeResource(body)
	if err != nil {
		return nil, err
	}
	doc, err := scim.Normalize(rt, raw)
	if err != nil {
		return nil, err
	}
	base := s.BaseURL(siteID)
	p := projectionFrom(q)
	if rt.Name == scim.Users.Name {
		u := &models.DirectoryUser{SiteID: siteID}
		if err := scim.UserFromDoc(u, doc); err != nil {
			return nil, err
		}
		// The user ID is not known yet: the store sets the item's resource.
		it, err := outboxItem(siteID, "User", "pending", models.OutboxUserCreated, userPayloadOf(u))
		if err != nil {
			return nil, err
		}
		if s.coalesced() {
			release()
			ctx = reqCtx
		}
		if err := s.store.CreateDirectoryUserWithOutbox(ctx, u, it); err != nil {
			return nil, uniquenessUser(err, u.UserName)
		}
		body, err := scim.RenderUser(base, u, p)
		if err != nil {
			return nil, err
		}
		return &models.SCIMDocument{Body: body, Version: scim.ETag(u.Version), Location: base + "/Users/" + u.ID}, nil
	}
	g := &models.DirectoryGroup{SiteID: siteID}
	memberIDs, err := scim.GroupFromDoc(g, doc)
	if err != nil {
		return nil, err
	}
	// Checked before the write transaction, which holds only writes; a
	// user deleted meanwhile is skipped by AddGroupMembers.
	if err := checkMembers(s.store.View(ctx), siteID, memberIDs); err != nil {
		return nil, err
	}
	var members []models.GroupMember
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
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
	out, err := scim.RenderGroup(base, g, members, p)
	if err != nil {
		return nil, err
	}
	return &models.SCIMDocument{Body: out, Version: scim.ETag(g.Version), Location: base + "/Groups/" + g.ID}, nil
}

// Replace answers PUT /Users/{id} and PUT /Groups/{id} (Okta updates
// profiles this way). A group's members are replaced when the body has a
// members attribute and kept when it has none (RFC 7644 3.5.1 leaves that
// to the server; keeping them never loses a membership by accident).
func (s *Service) Replace(ctx context.Context, siteID, endpoint, id string, body []byte, ifMatch string, q url.Values) (*models.SCIMDocument, error) {
	rt, err := resource(endpoint, id)
	if err != nil {
		return nil, err
	}
	if err := scim.CheckProjection(projectionFrom(q)); err != nil {
		return nil, err
	}
	ctx, release, err := s.slot(ctx, siteID)
	if err != nil {
		return nil, err
	}
	defer release()
	raw, err := scim.DecodeResource(body)
	if err != nil {
		return nil, err
	}
	doc, err := scim.Normalize(rt, raw)
	if err != nil {
		return nil, err
	}
	if rt.Name == scim.Users.Name {
		return s.updateUser(ctx, siteID, id, ifMatch, projectionFrom(q), func(*models.DirectoryUser, map[string]any) (map[string]any, bool, error) {
			return doc, true, nil
		})
	}
	// "members": null asserts nothing; "members": [] empties the group.
	hasMembers := scim.LookupCI(raw, "members") != nil
	var ids []string
	if hasMembers {
		ids = scim.IndexGroup(doc).MemberIDs
		if err := checkMembers(s.store.View(ctx), siteID, ids); err != nil {
			return nil, err
		}
	}
	return s.updateGroup(ctx, siteID, id, ifMatch, q, func(*store.Tx, *models.DirectoryGroup, map[string]any) (map[string]any, []memberOp, error) {
		if !hasMembers {
			return doc, nil, nil
		}
		return doc, []memberOp{{kind: "replace", ids: ids}}, nil
	})
}

// lockVersion reads one user or group (kind "User" or "Group") in tx FOR
// UPDATE, so that concurrent changes take turns: a missing resource is a
// 404, and an If-Match naming another version a 412. state tells it the
// version and document of an R.
func lockVersion[R any](tx *store.Tx, kind, siteID, id, ifMatch string,
	find func(tx *store.Tx, siteID, id string, forUpdate bool) (*R, error),
	state func(*R) (version int64, doc []byte)) (*R, error) {
	r, err := find(tx, siteID, id, true)
	if models.IsNotFound(err) {
		return nil, scim.NotFound("%s %s not found", kind, id)
	}
	if err != nil {
		return nil, err
	}
	version, _ := state(r)
	if err := scim.CheckIfMatch(ifMatch, version); err != nil {
		return nil, err
	}
	return r, nil
}

// userState and groupState are the version and stored document of a
// resource, for lockVersion.
func userState(u *models.DirectoryUser) (int64, []byte)   { return u.Version, u.Doc }
func groupState(g *models.DirectoryGroup) (int64, []byte) { return g.Version, g.Doc }

// maxWriteAttempts bounds how often a change is computed again because the
// resource changed between reading it and writing (identity providers
// rarely change one resource from two requests at once).
const maxWriteAttempts = 5

// readForChange reads one user or group for a change computed outside the
// write transaction: a missing resource is a 404, an If-Match naming
// another version a 412. It returns the resource and its stored document,
// decoded.
func readForChange[R any](view *store.Tx, kind, siteID, id, ifMatch string,
	find func(tx *store.Tx, siteID, id string, forUpdate bool) (*R, error),
	state func(*R) (version int64, doc []byte)) (*R, map[string]any, error) {
	r, err := find(view, siteID, id, false)
	if models.IsNotFound(err) {
		return nil, nil, scim.NotFound("%s %s not found", kind, id)
	}
	if err != nil {
		return nil, nil, err
	}
	version, doc := state(r)
	if err := scim.CheckIfMatch(ifMatch, version); err != nil {
		return nil, nil, err
	}
	stored, err := scim.DecodeDoc(doc)
	if err != nil {
		return nil, nil, err
	}
	return r, stored, nil
}

// writeComputed runs attempt (read, compute, write) until it writes or
// fails for good: an attempt whose write found the resource changed since
// the version it computed from is run again (see changedMeanwhile). An
// attempt returns version 0 when it failed before writing.
func writeComputed(ifMatch string, attempt func() (version int64, err error)) error {
	for n := 0; ; n++ {
		version, err := attempt()
		if version == 0 {
			return err
		}
		retry, err := changedMeanwhile(err, ifMatch, n, version)
		if !retry {
			return err
		}
	}
}

// changedMeanwhile reports whether a write found its resource changed since
// the change was computed, and what to do: compute it again (retry), or
// answer err: 412 when the client named the version it changes (If-Match),
// 503 with Retry-After when the resource kept changing.
func changedMeanwhile(err error, ifMatch string, attempt int, version int64) (retry bool, out error) {
	if models.ErrorCode(err) != models.CodePrecondition {
		return false, err
	}
	if ifMatch = strings.TrimSpace(ifMatch); ifMatch != "" && ifMatch != "*" {
		return false, scim.PreconditionFailed("the resource has changed: its version is no longer %s", scim.ETag(version))
	}
	if attempt+1 < maxWriteAttempts {
		return true, nil
	}
	return false, &models.Error{Code: models.CodeUnavailable, Message: "the resource kept changing while this request was applied; try again"}
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
	change func(u *models.DirectoryUser, doc map[string]any) (map[string]any, bool, error)) (*models.SCIMDocument, error) {
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
	body, err := scim.RenderUser(base, after, p)
	if err != nil {
		return nil, err
	}
	return &models.SCIMDocument{Body: body, Version: scim.ETag(after.Version), Location: base + "/Users/" + after.ID}, nil
}

// memberTracker applies membership changes to the database in order and
// keeps their net effect: a member added and removed again in one request
// is no change.
type memberTracker struct {
	siteID, groupID string
	added, removed  map[string]bool
	order           []string
}

func newMemberTracker(siteID, groupID string) *memberTracker {
	return &memberTracker{siteID: siteID, groupID: groupID, added: map[string]bool{}, removed: map[string]bool{}}
}

func (mt *memberTracker) noteAdded(ids []string) {
	for _, id := range ids {
		if mt.removed[id] {
			delete(mt.removed, id)
			continue
		}
		mt.added[id] = true
		mt.order = append(mt.order, id)
	}
}

func (mt *memberTracker) noteRemoved(ids []string) {
	for _, id := range ids {
		if mt.added[id] {
			delete(mt.added, id)
			continue
		}
		mt.removed[id] = true
		mt.order = append(mt.order, id)
	}
}

func (mt *memberTracker) add(tx *store.Tx, ids []string) error {
	added, err := tx.AddGroupMembers(mt.siteID, mt.groupID, ids)
	if err != nil {
		return err
	}
	mt.noteAdded(added)
	return nil
}

func (mt *memberTracker) remove(tx *store.Tx, ids []string) error {
	removed, err := tx.RemoveGroupMembers(mt.siteID, mt.groupID, ids)
	if err != nil {
		return err
	}
	mt.noteRemoved(removed)
	return nil
}

func (mt *memberTracker) removeAll(tx *store.Tx) error {
	removed, err := tx.RemoveAllGroupMembers(mt.siteID, mt.groupID)
	if err != nil {
		return err
	}
	mt.noteRemoved(removed)
	return nil
}

// replace makes ids the members: it removes the others and adds the new.
func (mt *memberTracker) replace(tx *store.Tx, ids []string) error {
	current, err := tx.GroupMemberIDs(mt.siteID, mt.groupID)
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var gone []string
	for _, id := range current {
		if !want[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		if err := mt.remove(tx, gone); err != nil {
			return err
		}
	}
	return mt.add(tx, ids)
}

// net returns the members added and removed overall, in the order first seen.
func (mt *memberTracker) net() (added, removed []string) {
	seen := map[string]bool{}
	for _, id := range mt.order {
		if seen[id] {
			continue
		}
		seen[id] = true
		switch {
		case mt.added[id]:
			added = append(added, id)
		case mt.removed[id]:
			removed = append(removed, id)
		}
	}
	return added, removed
}

// apply runs a plan of membership changes in order.
func (mt *memberTracker) apply(tx *store.Tx, ops []memberOp) error {
	for _, op := range ops {
		var err error
		switch op.kind {
		case "add":
			err = mt.add(tx, op.ids)
		case "remove":
			err = mt.remove(tx, op.ids)
		case "clear":
			err = mt.removeAll(tx)
		case "replace":
			err = mt.replace(tx, op.ids)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// updateGroup runs a read-modify-write of one group. plan gets the stored
// group and its document (without members) and returns the new document
// (normalised; members in it are ignored) and the membership changes, in
// order, with every member to add already checked; it runs before the
// write transaction, which checks that the group is still at the version
// the plan was made from (else the plan is made again) and then only
// writes: the membership rows, the group, the outbox items.
func (s *Service) updateGroup(ctx context.Context, siteID, id, ifMatch string, q url.Values,
	plan func(view *store.Tx, g *models.DirectoryGroup, doc map[string]any) (map[string]any, []memberOp, error)) (*models.SCIMDocument, error) {
	base := s.BaseURL(siteID)
	p := projectionFrom(q)
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
	body, err := scim.RenderGroup(base, after, members, p)
	if err != nil {
		return nil, err
	}
	return &models.SCIMDocument{Body: body, Version: scim.ETag(after.Version), Location: base + "/Groups/" + after.ID}, nil
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

// Delete answers DELETE /Users/{id} (a hard delete: Entra sends it 30 days
// after a soft delete) and DELETE /Groups/{id}.
func (s *Service) Delete(ctx context.Context, siteID, endpoint, id, ifMatch string) error {
	rt, err := resource(endpoint, id)
	if err != nil {
		return err
	}
	ctx, release, err := s.slot(ctx, siteID)
	if err != nil {
		return err
	}
	defer release()
	return s.store.InTx(ctx, func(tx *store.Tx) error {
		if rt.Name == scim.Users.Name {
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
	})
}
