package sync

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"idbridge/app/atlassian"
	"idbridge/app/store"
	"idbridge/models"
)

// group brings a directory group to the site: created (found by name
// first), renamed (a new group, the members moved, the old one deleted:
// Atlassian has no rename), deleted; and its memberships, each once both
// its user and the group exist in the site.
func (j *job) group() []store.SyncResult {
	siteID, gid := j.c.SiteID, j.c.ResourceID
	view := j.w.store.View(j.ctx)
	dir, err := view.FindDirectoryGroup(siteID, gid, false)
	if models.IsNotFound(err) {
		dir, err = nil, nil
	}
	if err != nil {
		return j.all(j.classify(err, "read the group", false))
	}
	sg, err := view.FindSyncGroup(siteID, gid)
	if models.IsNotFound(err) {
		sg, err = &models.SyncGroup{SiteID: siteID, GroupID: gid}, nil
	}
	if err != nil {
		return j.all(j.classify(err, "read the group", false))
	}
	if dir == nil {
		return j.all(j.deleteGroup(sg))
	}

	considerAll := sg.PreviousID != ""
	switch {
	case sg.AtlassianID == "":
		if o, ok := j.ensureGroup(dir, sg); !ok {
			return j.all(o)
		}
		considerAll = true
	case sg.PreviousID == "" && !strings.EqualFold(sg.Name, dir.DisplayName):
		if o, ok := j.renameGroup(dir, sg); !ok {
			return j.all(o)
		}
		considerAll = true
	case sg.Name != dir.DisplayName:
		// Only the case changed: Atlassian's group names ignore case, so
		// the group in the site already has this name.
		sg.Name = dir.DisplayName
		if err := j.record(func(tx *store.Tx) error { return tx.SaveSyncGroup(sg) }); err != nil {
			return j.all(j.classify(err, "record the group", false))
		}
	case j.recover:
		var exists bool
		err := j.call(func(ctx context.Context) error {
			var err error
			exists, err = j.g.prov.GroupExists(ctx, sg.AtlassianID)
			return err
		})
		if err != nil {
			return j.all(j.classify(err, "look the group up", false))
		}
		if !exists {
			// Deleted in the site meanwhile: make it again.
			sg.AtlassianID = ""
			if err := j.record(func(tx *store.Tx) error { return tx.DeleteSyncGroup(siteID, gid) }); err != nil {
				return j.all(j.classify(err, "record the group", false))
			}
			if o, ok := j.ensureGroup(dir, sg); !ok {
				return j.all(o)
			}
			considerAll = true
		}
	}

	users, verify, err := j.memberSubjects(considerAll)
	if err != nil {
		return j.all(j.classify(err, "read the group's members", false))
	}
	if o := j.members(sg, users, verify || j.recover); o.status != models.OutboxStatusApplied {
		return j.all(o)
	}
	if sg.PreviousID != "" {
		old := &models.SyncGroup{SiteID: siteID, GroupID: gid, PreviousID: sg.PreviousID}
		if o := j.deleteGroupIDs(old); o.status != models.OutboxStatusApplied {
			return j.all(o)
		}
		sg.PreviousID = ""
		if err := j.record(func(tx *store.Tx) error { return tx.SaveSyncGroup(sg) }); err != nil {
			return j.all(j.classify(err, "record the group", false))
		}
	}
	return j.all(applied())
}

// ensureGroup finds the group in the site by name, or creates it.
func (j *job) ensureGroup(dir *models.DirectoryGroup, sg *models.SyncGroup) (outcome, bool) {
	g, o, ok := j.findOrCreateGroup(dir.DisplayName)
	if !ok {
		return o, false
	}
	sg.AtlassianID, sg.Name = g.ID, dir.DisplayName
	// The new group (made, found by name, or made again after it was
	// deleted in the site) needs every member, and this claim may stop
	// before it added them all (its call budget, a lost answer, a crash):
	// a members_refresh item for all of them, recorded with the group,
	// makes the claims after it consider every member too, not only
	// those their own items name.
	all, err := json.Marshal(memberPayload{GroupDisplayName: dir.DisplayName, All: true, Reason: "group_made"})
	if err != nil {
		return j.classify(err, "record the group", false), false
	}
	err = j.record(func(tx *store.Tx) error {
		if err := tx.SaveSyncGroup(sg); err != nil {
			return err
		}
		return tx.AddOutboxItems(&models.OutboxItem{SiteID: sg.SiteID, ResourceType: "Group", ResourceID: sg.GroupID,
			Op: models.OutboxMembersRefresh, Payload: all})
	})
	if err != nil {
		return j.classify(err, "record the group", false), false
	}
	return outcome{}, true
}

func (j *job) findOrCreateGroup(name string) (*atlassian.Group, outcome, bool) {
	var g *atlassian.Group
	find := func() error {
		return j.call(func(ctx context.Context) error {
			var err error
			g, err = j.g.prov.FindGroup(ctx, name)
			return err
		})
	}
	err := find()
	if models.IsNotFound(err) {
		err = j.call(func(ctx context.Context) error {
			var err error
			g, err = j.g.prov.CreateGroup(ctx, name)
			return err
		})
		if models.ErrorCode(err) == models.CodeInvalid {
			// Made meanwhile by someone else ("already exists"): use it.
			if ferr := find(); ferr == nil {
				err = nil
			}
		}
		if err != nil {
			return nil, j.classify(err, "create the group", true), false
		}
	} else if err != nil {
		return nil, j.classify(err, "look the group up by name", false), false
	}
	return g, outcome{}, true
}

// renameGroup makes the group under its new name; the members follow and
// the old group goes once they did (PreviousID remembers it meanwhile).
func (j *job) renameGroup(dir *models.DirectoryGroup, sg *models.SyncGroup) (outcome, bool) {
	g, o, ok := j.findOrCreateGroup(dir.DisplayName)
	if !ok {
		return o, false
	}
	if g.ID == sg.AtlassianID {
		sg.Name = dir.DisplayName
	} else {
		sg.PreviousID, sg.AtlassianID, sg.Name = sg.AtlassianID, g.ID, dir.DisplayName
	}
	err := j.record(func(tx *store.Tx) error {
		if err := tx.SaveSyncGroup(sg); err != nil {
			return err
		}
		if sg.PreviousID == "" {
			return nil
		}
		// The memberships recorded are the old group's: the new one starts
		// empty and gets every member.
		members, err := tx.SyncMembers(sg.SiteID, sg.GroupID, nil)
		if err != nil {
			return err
		}
		for u := range members {
			if err := tx.SetSyncMember(sg.SiteID, sg.GroupID, u, "", false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return j.classify(err, "record the group", false), false
	}
	return outcome{}, true
}

// deleteGroup deletes the group from the site (and, mid-rename, its old
// one) and forgets it.
func (j *job) deleteGroup(sg *models.SyncGroup) outcome {
	if o := j.deleteGroupIDs(sg); o.status != models.OutboxStatusApplied {
		return o
	}
	if err := j.record(func(tx *store.Tx) error { return tx.DeleteSyncGroup(sg.SiteID, sg.GroupID) }); err != nil {
		return j.classify(err, "record the group's deletion", false)
	}
	return applied()
}

// deleteGroupIDs deletes the group's IDs from the site; after a lost
// answer it looks each up first.
func (j *job) deleteGroupIDs(sg *models.SyncGroup) outcome {
	for _, id := range []string{sg.AtlassianID, sg.PreviousID} {
		if id == "" {
			continue
		}
		if j.recovering {
			// The delete may have happened without its answer: look first
			// (the membership lookups of this claim do not tell).
			var exists bool
			err := j.call(func(ctx context.Context) error {
				var err error
				exists, err = j.g.prov.GroupExists(ctx, id)
				return err
			})
			if err != nil {
				return j.classify(err, "look the group up", false)
			}
			if !exists {
				continue
			}
		}
		if err := j.call(func(ctx context.Context) error { return j.g.prov.DeleteGroup(ctx, id) }); err != nil {
			return j.classify(err, "delete the group", true)
		}
	}
	return applied()
}

// memberSubjects are the users whose membership the claim is about: every
// member (directory or site) when all is true, else those its items name.
// verify says an item asks to look the memberships up first.
func (j *job) memberSubjects(all bool) ([]string, bool, error) {
	set := map[string]bool{}
	verify := false
	for _, it := range j.c.Items {
		switch it.Op {
		case models.OutboxMembersAdded, models.OutboxMembersRemoved, models.OutboxMembersRefresh:
			var p memberPayload
			if err := json.Unmarshal(it.Payload, &p); err != nil {
				j.w.log.Warn("sync: unreadable membership change", "site_id", j.c.SiteID, "id", it.ID)
				continue
			}
			verify = verify || p.Verify
			all = all || p.All
			for _, u := range p.UserIDs {
				set[u] = true
			}
		}
	}
	if all {
		view := j.w.store.View(j.ctx)
		dir, err := view.GroupMemberIDs(j.c.SiteID, j.c.ResourceID)
		if err != nil {
			return nil, false, err
		}
		site, err := view.SyncMembers(j.c.SiteID, j.c.ResourceID, nil)
		if err != nil {
			return nil, false, err
		}
		for _, u := range dir {
			set[u] = true
		}
		for u := range site {
			set[u] = true
		}
	}
	users := make([]string, 0, len(set))
	for u := range set {
		users = append(users, u)
	}
	slices.Sort(users)
	return users, verify, nil
}

// members brings the memberships of users in the group to what the
// directory says, for users whose account has access in the site. A
// member whose user is not in the site yet waits for it.
func (j *job) members(sg *models.SyncGroup, users []string, verify bool) outcome {
	if len(users) == 0 {
		return applied()
	}
	siteID, gid := sg.SiteID, sg.GroupID
	view := j.w.store.View(j.ctx)
	inDir, err := view.DirectoryMembersAmong(siteID, gid, users)
	if err != nil {
		return j.classify(err, "read the group's members", false)
	}
	done, err := view.SyncMembers(siteID, gid, users)
	if err != nil {
		return j.classify(err, "read the group's members", false)
	}
	synced, err := view.FindSyncUsers(siteID, users)
	if err != nil {
		return j.classify(err, "read the members' accounts", false)
	}
	active, err := view.DirectoryUsersActive(siteID, users)
	if err != nil {
		return j.classify(err, "read the members", false)
	}
	if verify {
		if o, ok := j.verifyMembers(sg, users, synced, done); !ok {
			return o
		}
	}
	desired := make(map[string]bool, len(users))
	for _, u := range users {
		su, has := synced[u]
		desired[u] = inDir[u] && has && su.AccountID != "" && su.State.HasAccess()
	}
	if o, ok := j.recordAdding(sg, users, desired, synced, done); !ok {
		return o
	}
	// Membership changes applied in the site are recorded together, every
	// memberBatch of them and before the claim ends, in one transaction
	// (recordMembers). The adds were recorded before their calls, as
	// being added (recordAdding): a crash in between leaves the claim's
	// lease and those records, and the claim after it reads the group's
	// members from the site first.
	var batch []memberRecord
	flushed := func(o outcome) outcome {
		if len(batch) == 0 {
			return o
		}
		err := j.recordMembers(sg, batch)
		batch = batch[:0]
		if err != nil {
			r := j.classify(err, "record the memberships", false)
			// A call whose answer was lost still needs its lookup.
			r.recover = r.recover || o.recover
			return r
		}
		return o
	}
	waitingFor := ""
	for _, u := range users {
		su, has := synced[u]
		m, recorded := done[u]
		if inDir[u] && !desired[u] && (!has || su.State == models.SyncUserNone) && active[u] {
			// Its user is not in the site yet: wait while its creation is
			// on its way; a user whose creation failed gets the
			// membership when it is created (its own item says why not).
			if waitingFor != "" {
				continue // the claim waits for one user already
			}
			open, err := view.HasOpenSyncItems(siteID, u)
			if err != nil {
				return flushed(j.classify(err, "read the member's changes", false))
			}
			if open {
				waitingFor = u
			}
			continue
		}
		switch {
		case desired[u] && (!recorded || m.Adding):
			if !recorded {
				// Beyond the adds recorded before the calls (as many as
				// the claim had calls left): the next claim goes on.
				return flushed(j.classify(errBudget, "add a member to the group", true))
			}
			err := j.call(func(ctx context.Context) error { return j.g.prov.AddMember(ctx, sg.AtlassianID, su.AccountID) })
			if models.IsNotFound(err) {
				// Not added: the group or the account is gone.
				batch = append(batch, memberRecord{userID: u, account: su.AccountID, member: false, read: su, had: has})
				if o := flushed(outcome{status: models.OutboxStatusApplied}); o.status != models.OutboxStatusApplied {
					return o
				}
				if o, handled := j.memberNotFound(sg); handled {
					return o
				}
				continue // the account left the site: its own change follows
			}
			if err != nil {
				o := j.classify(err, "add a member to the group", true)
				if o.status == models.OutboxStatusFailed && refused(err) {
					// Atlassian refused it for good: no add happened.
					batch = append(batch, memberRecord{userID: u, account: su.AccountID, member: false, read: su, had: has})
				}
				// Otherwise the add may have happened without its
				// answer, or may still be made: its record as being
				// added stays, so that the user's deactivation or
				// deletion takes the account out of the group, and the
				// next claim looks the group's members up first or adds
				// it again.
				return flushed(o)
			}
			batch = append(batch, memberRecord{userID: u, account: su.AccountID, member: true, read: su, had: has})
		case !desired[u] && recorded:
			// Recorded as applied or being added: either way the
			// account may be in the group ("not a member" is done).
			if err := j.call(func(ctx context.Context) error { return j.g.prov.RemoveMember(ctx, sg.AtlassianID, m.AccountID) }); err != nil {
				return flushed(j.classify(err, "remove a member from the group", true))
			}
			batch = append(batch, memberRecord{userID: u, account: m.AccountID, member: false, read: su, had: has})
		}
		if len(batch) >= memberBatch {
			if o := flushed(outcome{status: models.OutboxStatusApplied}); o.status != models.OutboxStatusApplied {
				return o
			}
		}
	}
	if o := flushed(outcome{status: models.OutboxStatusApplied}); o.status != models.OutboxStatusApplied {
		return o
	}
	if waitingFor != "" {
		who := waitingFor
		if u, err := view.FindDirectoryUser(siteID, waitingFor, false); err == nil {
			who = u.UserName
		}
		return outcome{status: models.OutboxStatusPending, retryAt: j.w.now().Add(j.w.cfg.WaitRecheck), waitingFor: waitingFor,
			msg: "Waiting for " + who + " to be created in the site; the membership follows at once."}
	}
	return applied()
}

// recordAdding records the adds the claim is about to make, before it
// makes any, in one transaction: each membership as being added, with the
// account it adds (at most as many as the claim has calls left; the
// others wait for the next claim). A crash after an add and before its
// record (recordMembers) would otherwise leave no trace of it: a user
// deleted meanwhile is forgotten with its account, and nothing could take
// that account out of the group again. With the record, the user's
// deactivation or deletion takes it out like any recorded membership, and
// the claim after the crash looks it up in the site (verifyMembers).
// Claims that add nobody write nothing; adds already recorded as being
// added (an earlier claim stopped before their answer) are not written
// again. Unlike the records after the calls, this one is durable before
// the first call: lost with a crashed database, it would leave nothing to
// look up.
func (j *job) recordAdding(sg *models.SyncGroup, users []string, desired map[string]bool, synced map[string]models.SyncUser, done map[string]models.SyncMember) (outcome, bool) {
	adding := map[string]string{}
	left := j.w.cfg.CallsPerClaim - j.calls
	for _, u := range users {
		m, recorded := done[u]
		if !desired[u] || (recorded && !m.Adding) {
			continue
		}
		if left <= 0 {
			break
		}
		left--
		if account := synced[u].AccountID; !recorded || m.AccountID != account {
			adding[u] = account
		}
	}
	if len(adding) == 0 {
		return outcome{}, true
	}
	if err := j.recordAhead(func(tx *store.Tx) error { return tx.SetSyncMembersAdding(sg.SiteID, sg.GroupID, adding) }); err != nil {
		return j.classify(err, "record the memberships being added", false), false
	}
	for u, account := range adding {
		done[u] = models.SyncMember{AccountID: account, Adding: true}
	}
	return outcome{}, true
}

// refused says Atlassian answered a call with a refusal (a 4xx) or that
// it was not sent: unlike a 5xx or no answer, nothing changed.
func refused(err error) bool {
	var se *atlassian.StatusError
	if errors.As(err, &se) {
		return se.StatusCode >= 400 && se.StatusCode < 500
	}
	return models.ErrorCode(err) == models.CodePrecondition
}

// memberNotFound handles a 404 on adding a member: when the group itself
// is gone from the site, it is forgotten and made again in the next
// claim (handled); otherwise the account left the site.
func (j *job) memberNotFound(sg *models.SyncGroup) (outcome, bool) {
	var exists bool
	err := j.call(func(ctx context.Context) error {
		var err error
		exists, err = j.g.prov.GroupExists(ctx, sg.AtlassianID)
		return err
	})
	if err != nil {
		return j.classify(err, "look the group up", false), true
	}
	if exists {
		return outcome{}, false
	}
	if err := j.record(func(tx *store.Tx) error { return tx.DeleteSyncGroup(sg.SiteID, sg.GroupID) }); err != nil {
		return j.classify(err, "record the group", false), true
	}
	return outcome{status: models.OutboxStatusPending, retryAt: j.w.now(), countAttempt: true,
		msg: "The group was deleted in the site meanwhile; idbridge makes it again."}, true
}

// verifyMembers reads the group's members from the site and corrects what
// was recorded (after a crash or a lost answer, or when a user's access
// changed while its membership was being changed): a membership being
// added is confirmed when the site has it, and forgotten when not.
func (j *job) verifyMembers(sg *models.SyncGroup, users []string, synced map[string]models.SyncUser, done map[string]models.SyncMember) (outcome, bool) {
	var ids []string
	err := j.call(func(ctx context.Context) error {
		var err error
		ids, err = j.g.prov.GroupMemberIDs(ctx, sg.AtlassianID)
		return err
	})
	if err != nil {
		return j.classify(err, "look the group's members up", false), false
	}
	inSite := make(map[string]bool, len(ids))
	for _, id := range ids {
		inSite[id] = true
	}
	err = j.record(func(tx *store.Tx) error {
		for _, u := range users {
			m, recorded := done[u]
			account := m.AccountID
			if su, ok := synced[u]; ok && su.AccountID != "" {
				account = su.AccountID
			}
			if account == "" {
				continue
			}
			switch {
			case inSite[account] && (!recorded || m.Adding):
				done[u] = models.SyncMember{AccountID: account}
				if err := tx.SetSyncMember(sg.SiteID, sg.GroupID, u, account, true); err != nil {
					return err
				}
			case !inSite[account] && recorded:
				delete(done, u)
				if err := tx.SetSyncMember(sg.SiteID, sg.GroupID, u, "", false); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return j.classify(err, "record the group's members", false), false
	}
	j.recover = false
	return outcome{}, true
}

// memberBatch is how many membership changes a claim records in one
// transaction at most.
const memberBatch = 25

// memberRecord is a membership change applied in the site, to be
// recorded: the user's Atlassian side as it was read (had: it had one).
type memberRecord struct {
	userID, account string
	member          bool
	read            models.SyncUser
	had             bool
}

// recordMembers records membership changes: an add applied confirms its
// record as being added, a removal (or an add that did not happen)
// forgets it. Those of users whose access changed since they were read
// (another worker deactivated, reactivated or deleted them meanwhile) are
// looked up again in members_refresh items too: whatever their
// deactivation did or will do, the refresh brings the membership to what
// the directory says, with the account recorded here.
func (j *job) recordMembers(sg *models.SyncGroup, recs []memberRecord) error {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.userID
	}
	return j.record(func(tx *store.Tx) error {
		// Under the users' locks, as a change of a user's access reads its
		// memberships (deactivate): one of the two sees the other.
		cur, err := tx.LockSyncUsers(sg.SiteID, ids)
		if err != nil {
			return err
		}
		joined := map[string]string{}
		var left []string
		var refresh []*models.OutboxItem
		for _, r := range recs {
			c, exists := cur[r.userID]
			if exists != r.had || (exists && c.Gen != r.read.Gen) {
				// Recorded all the same, with the account: the user's
				// deactivation may have read its memberships before this
				// change was applied, and a deleted user's account is
				// known nowhere else. The refresh looks it up again.
				items, err := refreshItems(sg.SiteID, r.userID, map[string]string{sg.GroupID: sg.Name}, "user_changed", true)
				if err != nil {
					return err
				}
				refresh = append(refresh, items...)
			}
			if r.member {
				joined[r.userID] = r.account
			} else {
				left = append(left, r.userID)
			}
		}
		if err := tx.SetSyncMembers(sg.SiteID, sg.GroupID, joined, left); err != nil {
			return err
		}
		if len(refresh) == 0 {
			return nil
		}
		return tx.AddOutboxItems(refresh...)
	})
}
