package sync

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/store"
	"idbridge/models"
)

// user brings a directory user's Atlassian account to the directory's
// state: created (found by email first) or brought back when active;
// deactivated by the site's mode when not; forgotten when deleted; its
// name changed where Atlassian allows it.
func (j *job) user() []store.SyncResult {
	siteID, uid := j.c.SiteID, j.c.ResourceID
	view := j.w.store.View(j.ctx)
	dir, err := view.FindDirectoryUser(siteID, uid, false)
	if err != nil && !models.IsNotFound(err) {
		return j.all(j.classify(err, "read the user", false))
	}
	if models.IsNotFound(err) {
		dir = nil
	}
	su, err := view.FindSyncUser(siteID, uid, false)
	if models.IsNotFound(err) {
		su, err = &models.SyncUser{SiteID: siteID, UserID: uid}, nil
	}
	if err != nil {
		return j.all(j.classify(err, "read the user", false))
	}
	if j.w.cfg.Restricted != nil {
		restricted, err := j.w.cfg.Restricted(j.ctx, siteID, uid)
		if err != nil {
			return j.all(j.classify(err, "check whether processing is restricted", false))
		}
		if restricted {
			return j.all(outcome{status: models.OutboxStatusPending, retryAt: j.w.now().Add(time.Hour),
				msg: "Waiting: processing is restricted for this person (GDPR Art. 18); the change is applied once the restriction is lifted."})
		}
	}

	wantActive := dir != nil && dir.Active
	if dir != nil && !dir.Active && su.KeepAccess && su.State == models.SyncUserActive {
		// An admin discarded this deactivation: the site keeps the access.
		wantActive = true
	}
	if j.recover && su.AccountID != "" && su.State != models.SyncUserNone {
		if o, ok := j.verifyUser(su); !ok {
			return j.all(o)
		}
	}
	losing := su.State == models.SyncUserActive && !wantActive
	if losing {
		if held, reason, err := j.brake(); err != nil {
			return j.all(j.classify(err, "check the accidental-deletion brake", false))
		} else if held {
			return j.all(outcome{status: models.OutboxStatusHeld, msg: reason})
		}
	}

	var access outcome
	switch {
	case wantActive:
		access = j.activate(dir, su)
	case dir != nil: // deactivated
		access = j.deactivate(su, false)
	default: // deleted
		access = j.deactivate(su, true)
	}
	attr := access
	if access.status == models.OutboxStatusApplied && wantActive {
		attr = j.attributes(dir, su)
	}
	if attr.status == models.OutboxStatusPending && access.status == models.OutboxStatusApplied {
		// The name still has to reach the site: the whole claim comes
		// back (its access is recorded, so only the name is left to do).
		return j.all(attr)
	}
	out := make([]store.SyncResult, 0, len(j.c.Items))
	for _, it := range j.c.Items {
		if it.Op == models.OutboxUserUpdated {
			out = append(out, result(it.ID, attr))
			continue
		}
		out = append(out, result(it.ID, access))
	}
	return out
}

// verifyUser reads the account from the site after a lost answer or a
// crash, and corrects what was recorded: a removal or suspension that
// happened without being recorded, or an account created again.
func (j *job) verifyUser(su *models.SyncUser) (outcome, bool) {
	var u *atlassian.User
	err := j.call(func(ctx context.Context) error {
		var err error
		u, err = j.g.prov.GetUser(ctx, su.AccountID)
		return err
	})
	state := su.State
	switch {
	case models.IsNotFound(err):
		if state == models.SyncUserActive || state == models.SyncUserSuspended {
			state = models.SyncUserRemoved
		}
	case err != nil:
		return j.classify(err, "look the account up", false), false
	case u.Active && (state == models.SyncUserRemoved || state == models.SyncUserSuspended):
		state = models.SyncUserActive
	case !u.Active && state == models.SyncUserActive && j.g.settings.Deactivation == models.DeactivateSuspend:
		state = models.SyncUserSuspended
	}
	changed := state != su.State
	if err == nil && u.DisplayName != "" && u.DisplayName != su.Name {
		// A name change that happened without its answer.
		su.Name, changed = u.DisplayName, true
	}
	if changed {
		su.State = state
		if err := j.record(func(tx *store.Tx) error { return tx.SaveSyncUser(su) }); err != nil {
			return j.classify(err, "record the account", false), false
		}
	}
	j.recover = false
	return outcome{}, true
}

// brake says whether the site's deactivations and deletions of the last
// hour exceed its threshold, and why in words.
func (j *job) brake() (bool, string, error) {
	pct := j.g.settings.DeletionThreshold
	if pct <= 0 {
		return false, "", nil
	}
	view := j.w.store.View(j.ctx)
	ss, err := view.FindSyncSite(j.c.SiteID)
	if err != nil {
		return false, "", err
	}
	since := j.w.now().Add(-time.Hour)
	if ss.BrakeReleasedAt != nil && ss.BrakeReleasedAt.After(since) {
		since = *ss.BrakeReleasedAt
	}
	n, first, err := view.CountSyncDeactivations(j.c.SiteID, since)
	if err != nil {
		return false, "", err
	}
	pop, err := view.CountProvisionedUsers(j.c.SiteID)
	if err != nil {
		return false, "", err
	}
	limit := max(models.MinDeletionThreshold, int(math.Ceil(float64(pop)*float64(pct)/100)))
	if n <= limit {
		return false, "", nil
	}
	return true, fmt.Sprintf("Held back: %d deactivations and deletions since %s UTC exceed this site's limit of %d within an hour "+
		"(%d%% of %d provisioned users, and at least %d). Nothing was changed in the site for them. Apply them or discard them.",
		n, first.UTC().Format("2006-01-02 15:04"), limit, pct, pop, models.MinDeletionThreshold), nil
}

// email is the address Atlassian finds and creates the account by.
func email(u *models.DirectoryUser) string {
	if u.Email != "" {
		return u.Email
	}
	if strings.Contains(u.UserName, "@") {
		return u.UserName
	}
	return ""
}

// displayName is what the site should call the user.
func displayName(u *models.DirectoryUser) string {
	if n := givenName(u); n != "" {
		return n
	}
	return u.UserName
}

// givenName is the name the identity provider gave the user (displayName,
// else given and family name); "" when it gave none, and the site's own
// choice stands.
func givenName(u *models.DirectoryUser) string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return strings.TrimSpace(u.GivenName + " " + u.FamilyName)
}

// activate gives the user access: find or create the account, or undo
// what its deactivation did.
func (j *job) activate(dir *models.DirectoryUser, su *models.SyncUser) outcome {
	wasKept := su.KeepAccess
	su.KeepAccess = false
	switch su.State {
	case models.SyncUserActive:
		if wasKept {
			if err := j.record(func(tx *store.Tx) error { return tx.SaveSyncUser(su) }); err != nil {
				return j.classify(err, "record the account", false)
			}
		}
		return applied()
	case models.SyncUserRemovedGroups:
		return j.granted(su, "user_reactivated")
	case models.SyncUserSuspended:
		if err := j.call(func(ctx context.Context) error { return j.g.prov.Restore(ctx, su.AccountID) }); err != nil {
			return j.classify(err, "restore the account's access", true)
		}
		return j.granted(su, "user_reactivated")
	}
	// No account yet, or removed from the site: find it or create it.
	addr := email(dir)
	if addr == "" {
		return failed("The user has no email address (nor an email as its userName): Atlassian finds and creates accounts by email. Add one in the identity provider.")
	}
	var u *atlassian.User
	if j.g.settings.ProvisionAs == models.ProvisionCustomer {
		var err error = models.Errorf(models.CodeNotFound, "not looked up")
		if j.recovering {
			// The create may have happened without its answer: look first.
			err = j.call(func(ctx context.Context) error {
				var err error
				u, err = j.g.prov.FindUserByEmail(ctx, addr)
				return err
			})
		}
		if models.IsNotFound(err) {
			err = j.call(func(ctx context.Context) error {
				var err error
				u, err = j.g.prov.CreateCustomer(ctx, addr, displayName(dir))
				return err
			})
		}
		if models.ErrorCode(err) == models.CodeConflict {
			err = j.call(func(ctx context.Context) error {
				var err error
				u, err = j.g.prov.FindUserByEmail(ctx, addr)
				return err
			})
			if models.IsNotFound(err) {
				return failed("Atlassian says an account with this email address exists, but the service account cannot see it: check that its email address is visible to the service account.")
			}
		}
		if err != nil {
			return j.classify(err, "create the customer", true)
		}
	} else {
		err := j.call(func(ctx context.Context) error {
			var err error
			u, err = j.g.prov.FindUserByEmail(ctx, addr)
			return err
		})
		if models.IsNotFound(err) {
			err = j.call(func(ctx context.Context) error {
				var err error
				u, err = j.g.prov.CreateUser(ctx, addr, j.g.settings.Products)
				return err
			})
			if err != nil {
				return j.classify(err, "create the account", true)
			}
		} else if err != nil {
			return j.classify(err, "look the account up by email", false)
		}
	}
	su.AccountID, su.State = u.AccountID, models.SyncUserActive
	if su.Name == "" {
		su.Name = u.DisplayName
		if su.Name == "" || j.g.settings.ProvisionAs == models.ProvisionCustomer {
			su.Name = displayName(dir)
		}
	}
	return j.granted(su, "user_created")
}

// granted records that the user has access and enqueues the check of its
// directory groups' memberships; memberships waiting for it wake up.
func (j *job) granted(su *models.SyncUser, reason string) outcome {
	su.State = models.SyncUserActive
	err := j.record(func(tx *store.Tx) error {
		if err := tx.LockSyncUser(su.SiteID, su.UserID); err != nil {
			return err
		}
		if err := tx.SaveSyncUser(su); err != nil {
			return err
		}
		groups, err := tx.DirectoryGroupsOfUser(su.SiteID, su.UserID)
		if err != nil {
			return err
		}
		names, err := groupNames(tx, su.SiteID, groups)
		if err != nil {
			return err
		}
		items, err := refreshItems(su.SiteID, su.UserID, names, reason, false)
		if err != nil {
			return err
		}
		if err := tx.AddOutboxItems(items...); err != nil {
			return err
		}
		return tx.WakeSyncWaiting(su.SiteID, su.UserID)
	})
	if err != nil {
		return j.classify(err, "record the account", false)
	}
	return applied()
}

// deactivate takes the user's access away by the site's deactivation mode
// (nothing when it has none), and with forget lets go of the account.
func (j *job) deactivate(su *models.SyncUser, forget bool) outcome {
	if su.State == models.SyncUserActive {
		switch j.g.settings.Deactivation {
		case models.DeactivateRemoveFromSite:
			if err := j.call(func(ctx context.Context) error { return j.g.prov.RemoveUser(ctx, su.AccountID) }); err != nil {
				return j.classify(err, "remove the user from the site", true)
			}
			su.State = models.SyncUserRemoved
		case models.DeactivateSuspend:
			if !j.g.prov.CanManageAccounts() {
				return failed("Deactivation is set to suspend the managed account, but the service account has no organization Admin API key and organization ID. Add both in the Service account section, then retry.")
			}
			if err := j.call(func(ctx context.Context) error { return j.g.prov.Suspend(ctx, su.AccountID) }); err != nil {
				return j.classify(err, "suspend the account", true)
			}
			su.State = models.SyncUserSuspended
		default:
			su.State = models.SyncUserRemovedGroups
		}
	}
	err := j.record(func(tx *store.Tx) error {
		// The user's memberships are read under the user's lock, which a
		// membership being recorded takes too: either that membership is
		// seen here (and refreshed), or it sees the new state. Those being
		// added count: the add may have happened before a crash kept its
		// record from being confirmed.
		if err := tx.LockSyncUser(su.SiteID, su.UserID); err != nil {
			return err
		}
		groups, err := tx.SyncGroupsOfUser(su.SiteID, su.UserID)
		if err != nil {
			return err
		}
		switch {
		case su.State == models.SyncUserRemoved:
			// Removing the user from the site took its memberships along.
			if err := tx.DeleteSyncMembersOfUser(su.SiteID, su.UserID); err != nil {
				return err
			}
		case su.State == models.SyncUserRemovedGroups && len(groups) > 0:
			names, err := groupNames(tx, su.SiteID, groups)
			if err != nil {
				return err
			}
			reason := "user_deactivated"
			if forget {
				reason = "user_deleted"
			}
			items, err := refreshItems(su.SiteID, su.UserID, names, reason, false)
			if err != nil {
				return err
			}
			if err := tx.AddOutboxItems(items...); err != nil {
				return err
			}
		}
		if forget {
			// The memberships of a user removed from its groups go with the
			// refresh items above; a suspended account keeps its groups in
			// the site, and idbridge lets go of them with the account.
			if su.State != models.SyncUserRemovedGroups {
				if err := tx.DeleteSyncMembersOfUser(su.SiteID, su.UserID); err != nil {
					return err
				}
			}
			return tx.DeleteSyncUser(su.SiteID, su.UserID)
		}
		if su.State == models.SyncUserNone && su.AccountID == "" {
			return nil // never in the site: nothing to remember
		}
		return tx.SaveSyncUser(su)
	})
	if err != nil {
		return j.classify(err, "record the deactivation", false)
	}
	return applied()
}

// attributes brings the account's name to the one the identity provider
// gave, where Atlassian allows it: a managed account's profile through the
// organization's key. Atlassian makes an account with a name of its own
// (the email's local part), so a new account gets its name here too; when
// that cannot be done the account still counts as created, and a later
// name change says why it does not apply.
func (j *job) attributes(dir *models.DirectoryUser, su *models.SyncUser) outcome {
	want := givenName(dir)
	changed := false
	for _, it := range j.c.Items {
		changed = changed || it.Op == models.OutboxUserUpdated
	}
	if want == su.Name || want == "" {
		return applied()
	}
	customer := j.g.settings.ProvisionAs == models.ProvisionCustomer || strings.HasPrefix(su.AccountID, "qm:")
	if customer || !j.g.prov.CanManageAccounts() {
		switch {
		case !changed:
			return applied()
		case customer:
			return notApplicable("Atlassian does not let apps change a customer's name; the customer changes it in the help center.")
		}
		return notApplicable("The name changed, but only the organization can change a managed account's name: add an organization Admin API key and organization ID in the Service account section to apply name changes.")
	}
	err := j.call(func(ctx context.Context) error { return j.g.prov.UpdateProfile(ctx, su.AccountID, want) })
	if err != nil {
		o := j.classify(err, "change the account's name", true)
		if !changed && o.status != models.OutboxStatusPending {
			// An account the organization does not manage (found by its
			// email, 403): it keeps the name it has; a later name change
			// says why it does not apply.
			return applied()
		}
		return o
	}
	su.Name = want
	if err := j.record(func(tx *store.Tx) error { return tx.SaveSyncUser(su) }); err != nil {
		return j.classify(err, "record the name", false)
	}
	return applied()
}
