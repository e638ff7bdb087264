package provisioning

import (
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
// attempt returns version 0 when it failed otherwise: before writing, or in
// the writes of PatchUsers' caller.
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
