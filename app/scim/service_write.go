package scim

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"

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
	b, err := marshal(payload)
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

// decodeResource decodes a POST or PUT body: one JSON object.
func decodeResource(body []byte) (map[string]any, error) {
	var doc map[string]any
	if err := decodeStrict(body, &doc); err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, InvalidSyntax("the body must be a JSON object")
	}
	return doc, nil
}

// userFromDoc fills the indexed columns of u from a normalised document.
func userFromDoc(u *models.DirectoryUser, doc map[string]any) error {
	dropNulls(doc)
	ix := IndexUser(doc)
	b, err := marshal(doc)
	if err != nil {
		return InvalidValue("the user cannot be stored: %v", err)
	}
	u.UserName, u.ExternalID, u.DisplayName = ix.UserName, ix.ExternalID, ix.DisplayName
	u.GivenName, u.FamilyName, u.Email, u.Active = ix.GivenName, ix.FamilyName, ix.Email, ix.Active
	u.Doc = b
	return nil
}

// groupFromDoc fills the columns of g from a normalised document and
// returns the member IDs it lists; members are stored apart.
func groupFromDoc(g *models.DirectoryGroup, doc map[string]any) ([]string, error) {
	dropNulls(doc)
	ix := IndexGroup(doc)
	for _, el := range asList(lookupCI(doc, "members")) {
		if em, ok := el.(map[string]any); ok {
			if t, ok := lookupCI(em, "type").(string); ok && t != "" && !strings.EqualFold(t, "User") {
				return nil, InvalidValue("members must be users of this site: nested groups are not supported")
			}
		}
	}
	deleteCI(doc, "members")
	b, err := marshal(doc)
	if err != nil {
		return nil, InvalidValue("the group cannot be stored: %v", err)
	}
	g.DisplayName, g.ExternalID, g.Doc = ix.DisplayName, ix.ExternalID, b
	return ix.MemberIDs, nil
}

func uniquenessUser(err error, userName string) error {
	if models.ErrorCode(err) == models.CodeConflict {
		return Uniqueness("userName %q is already taken in this site", userName)
	}
	return err
}

func uniquenessGroup(err error, displayName string) error {
	if models.ErrorCode(err) == models.CodeConflict {
		return Uniqueness("displayName %q is already taken in this site", displayName)
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
	return InvalidValue("members must be users of this site; not found: %s", strings.Join(shown, ", "))
}

// checkIfMatch compares an If-Match header with the resource's version:
// "*" matches any, otherwise one of the listed ETags must (weakly) equal
// it. An empty header asks for nothing.
func checkIfMatch(ifMatch string, version int64) error {
	ifMatch = strings.TrimSpace(ifMatch)
	if ifMatch == "" || ifMatch == "*" {
		return nil
	}
	for tag := range strings.SplitSeq(ifMatch, ",") {
		if ETagMatches(tag, version) {
			return nil
		}
	}
	return PreconditionFailed("the resource has changed: its version is %s", etag(version))
}

// ETagMatches reports whether an entity tag (weak or strong, quoted or not)
// names the version.
func ETagMatches(tag string, version int64) bool {
	tag = strings.TrimSpace(tag)
	tag = strings.TrimPrefix(strings.TrimPrefix(tag, "W/"), "w/")
	tag = strings.Trim(tag, `"`)
	return tag == strconv.FormatInt(version, 10)
}

// Create answers POST /Users and POST /Groups.
func (s *Service) Create(ctx context.Context, siteID, endpoint string, body []byte, q url.Values) (*models.SCIMDocument, error) {
	rt, err := resourceType(endpoint)
	if err != nil {
		return nil, err
	}
	raw, err := decodeResource(body)
	if err != nil {
		return nil, err
	}
	doc, err := Normalize(rt, raw)
	if err != nil {
		return nil, err
	}
	base := s.BaseURL(siteID)
	p := projectionFrom(q)
	if rt.Name == Users.Name {
		u := &models.DirectoryUser{SiteID: siteID}
		if err := userFromDoc(u, doc); err != nil {
			return nil, err
		}
		// The user ID is not known yet: the store sets the item's resource.
		it, err := outboxItem(siteID, "User", "pending", models.OutboxUserCreated, userPayloadOf(u))
		if err != nil {
			return nil, err
		}
		if err := s.store.CreateDirectoryUserWithOutbox(ctx, u, it); err != nil {
			return nil, uniquenessUser(err, u.UserName)
		}
		body, err := renderUser(base, u, p)
		if err != nil {
			return nil, err
		}
		return &models.SCIMDocument{Body: body, Version: etag(u.Version), Location: base + "/Users/" + u.ID}, nil
	}
	g := &models.DirectoryGroup{SiteID: siteID}
	memberIDs, err := groupFromDoc(g, doc)
	if err != nil {
		return nil, err
	}
	var members []models.GroupMember
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := checkMembers(tx, siteID, memberIDs); err != nil {
			return err
		}
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
			if p.wants(Groups, "members") {
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
	if members == nil && p.wants(Groups, "members") {
		members = []models.GroupMember{}
	}
	out, err := renderGroup(base, g, members, p)
	if err != nil {
		return nil, err
	}
	return &models.SCIMDocument{Body: out, Version: etag(g.Version), Location: base + "/Groups/" + g.ID}, nil
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
	raw, err := decodeResource(body)
	if err != nil {
		return nil, err
	}
	doc, err := Normalize(rt, raw)
	if err != nil {
		return nil, err
	}
	if rt.Name == Users.Name {
		return s.updateUser(ctx, siteID, id, ifMatch, projectionFrom(q), func(*models.DirectoryUser, map[string]any) (map[string]any, bool, error) {
			return doc, true, nil
		})
	}
	// "members": null asserts nothing; "members": [] empties the group.
	hasMembers := lookupCI(raw, "members") != nil
	return s.updateGroup(ctx, siteID, id, ifMatch, q, func(tx *store.Tx, g *models.DirectoryGroup, stored map[string]any, mt *memberTracker) (map[string]any, error) {
		if hasMembers {
			ids := IndexGroup(doc).MemberIDs
			if err := checkMembers(tx, siteID, ids); err != nil {
				return nil, err
			}
			if err := mt.replace(tx, ids); err != nil {
				return nil, err
			}
		}
		return doc, nil
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
		return nil, NotFound("%s %s not found", kind, id)
	}
	if err != nil {
		return nil, err
	}
	version, _ := state(r)
	if err := checkIfMatch(ifMatch, version); err != nil {
		return nil, err
	}
	return r, nil
}

// lockForChange begins the read-modify-write of one user or group: the
// resource as lockVersion reads it, and its stored document, decoded.
func lockForChange[R any](tx *store.Tx, kind, siteID, id, ifMatch string,
	find func(tx *store.Tx, siteID, id string, forUpdate bool) (*R, error),
	state func(*R) (version int64, doc []byte)) (*R, map[string]any, error) {
	r, err := lockVersion(tx, kind, siteID, id, ifMatch, find, state)
	if err != nil {
		return nil, nil, err
	}
	_, doc := state(r)
	stored, err := decodeDoc(doc)
	if err != nil {
		return nil, nil, err
	}
	return r, stored, nil
}

// userState and groupState are the version and stored document of a
// resource, for lockVersion and lockForChange.
func userState(u *models.DirectoryUser) (int64, []byte)   { return u.Version, u.Doc }
func groupState(g *models.DirectoryGroup) (int64, []byte) { return g.Version, g.Doc }

// updateUser runs a read-modify-write of one user in a transaction: change
// gets the stored user and its document and returns the new document
// (normalised) and whether it may differ. Unchanged users are not written.
func (s *Service) updateUser(ctx context.Context, siteID, id, ifMatch string, p projection,
	change func(u *models.DirectoryUser, doc map[string]any) (map[string]any, bool, error)) (*models.SCIMDocument, error) {
	base := s.BaseURL(siteID)
	var after *models.DirectoryUser
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		before, stored, err := lockForChange(tx, "User", siteID, id, ifMatch, (*store.Tx).FindDirectoryUser, userState)
		if err != nil {
			return err
		}
		doc, changed, err := change(before, stored)
		if err != nil {
			return err
		}
		u := *before
		if err := userFromDoc(&u, doc); err != nil {
			return err
		}
		if changed && string(u.Doc) != string(before.Doc) {
			if err := tx.UpdateDirectoryUser(&u); err != nil {
				return uniquenessUser(err, u.UserName)
			}
			items, err := userChanges(before, &u)
			if err != nil {
				return err
			}
			if err := tx.AddOutboxItems(items...); err != nil {
				return err
			}
		}
		if p.wants(Users, "groups") {
			groups, err := tx.FindDirectoryUserGroups(siteID, []string{u.ID})
			if err != nil {
				return err
			}
			for _, g := range groups[u.ID] {
				u.Groups = append(u.Groups, models.DirectoryGroupRef{ID: g.GroupID, DisplayName: g.DisplayName})
			}
		}
		after = &u
		return nil
	})
	if err != nil {
		return nil, err
	}
	body, err := renderUser(base, after, p)
	if err != nil {
		return nil, err
	}
	return &models.SCIMDocument{Body: body, Version: etag(after.Version), Location: base + "/Users/" + after.ID}, nil
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

// updateGroup runs a read-modify-write of one group in a transaction.
// change gets the stored group, its document (without members) and a
// member tracker through which it changes membership in the database, and
// returns the new document (normalised; members in it are ignored).
func (s *Service) updateGroup(ctx context.Context, siteID, id, ifMatch string, q url.Values,
	change func(tx *store.Tx, g *models.DirectoryGroup, doc map[string]any, mt *memberTracker) (map[string]any, error)) (*models.SCIMDocument, error) {
	base := s.BaseURL(siteID)
	p := projectionFrom(q)
	var after *models.DirectoryGroup
	var members []models.GroupMember
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		before, stored, err := lockForChange(tx, "Group", siteID, id, ifMatch, (*store.Tx).FindDirectoryGroup, groupState)
		if err != nil {
			return err
		}
		mt := newMemberTracker(siteID, id)
		doc, err := change(tx, before, stored, mt)
		if err != nil {
			return err
		}
		g := *before
		if _, err := groupFromDoc(&g, doc); err != nil {
			return err
		}
		added, removed := mt.net()
		docChanged := string(g.Doc) != string(before.Doc)
		if docChanged || len(added) > 0 || len(removed) > 0 {
			if err := tx.UpdateDirectoryGroup(&g); err != nil {
				return uniquenessGroup(err, g.DisplayName)
			}
		}
		var items []*models.OutboxItem
		if docChanged {
			gp := groupPayload{DisplayName: g.DisplayName, ExternalID: g.ExternalID}
			if g.DisplayName != before.DisplayName {
				gp.PreviousDisplayName = before.DisplayName
			}
			it, err := outboxItem(siteID, "Group", id, models.OutboxGroupUpdated, gp)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		if len(removed) > 0 {
			it, err := outboxItem(siteID, "Group", id, models.OutboxMembersRemoved, membersPayload{GroupDisplayName: g.DisplayName, UserIDs: removed})
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		if len(added) > 0 {
			it, err := outboxItem(siteID, "Group", id, models.OutboxMembersAdded, membersPayload{GroupDisplayName: g.DisplayName, UserIDs: added})
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		if err := tx.AddOutboxItems(items...); err != nil {
			return err
		}
		after = &g
		if p.wants(Groups, "members") {
			m, err := tx.FindGroupMembers(siteID, []string{id})
			if err != nil {
				return err
			}
			members = m[id]
			if members == nil {
				members = []models.GroupMember{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	body, err := renderGroup(base, after, members, p)
	if err != nil {
		return nil, err
	}
	return &models.SCIMDocument{Body: body, Version: etag(after.Version), Location: base + "/Groups/" + after.ID}, nil
}

// Delete answers DELETE /Users/{id} (a hard delete: Entra sends it 30 days
// after a soft delete) and DELETE /Groups/{id}.
func (s *Service) Delete(ctx context.Context, siteID, endpoint, id, ifMatch string) error {
	rt, err := resource(endpoint, id)
	if err != nil {
		return err
	}
	return s.store.InTx(ctx, func(tx *store.Tx) error {
		if rt.Name == Users.Name {
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
