package sync

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"idbridge/app/audit"
	"idbridge/app/store"
	"idbridge/models"
)

// How many items the status lists.
const (
	statusFailed   = 50
	statusRecent   = 20
	statusHeldName = 20
)

// Status answers GET /api/admin/sync for the site (SPEC 6.1).
func (w *Worker) Status(ctx context.Context, siteID string) (*models.SyncStatus, error) {
	view := w.store.View(ctx)
	now := w.now()
	st := &models.SyncStatus{}
	var err error
	if st.Paused, st.PausedReason, st.Resumable, err = w.blocked(view, siteID); err != nil {
		return nil, err
	}
	counts, err := view.CountSyncStatus(siteID, now.Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	st.Pending, st.OldestPendingAt = counts.Pending, counts.OldestPendingAt
	st.Applied, st.Failed, st.NotApplicable = counts.Applied, counts.Failed, counts.NotApplicable
	failedItems, err := view.FailedSyncItems(siteID, statusFailed)
	if err != nil {
		return nil, err
	}
	recent, err := view.RecentSyncItems(siteID, statusRecent)
	if err != nil {
		return nil, err
	}
	held, err := view.SummarizeHeldSync(siteID, 200)
	if err != nil {
		return nil, err
	}
	ids, err := atlassianIDs(view, siteID, failedItems, recent)
	if err != nil {
		return nil, err
	}
	st.FailedItems = toItems(failedItems, ids)
	st.Recent = toItems(recent, ids)
	if held.Count > 0 {
		h := &models.SyncHeld{Count: held.Count, Since: held.Since, Reason: held.Reason}
		seen := map[string]bool{}
		for _, it := range held.First {
			if name := subjectOf(it.OutboxItem); name != "" && !seen[name] && len(h.Subjects) < statusHeldName {
				seen[name] = true
				h.Subjects = append(h.Subjects, name)
			}
		}
		st.Held = h
	}
	return st, nil
}

// blocked says whether the site's sync cannot run now, why in words, and
// whether Resume lifts it (a pause after Atlassian refused the
// credentials; the other reasons go away only with what they name).
func (w *Worker) blocked(view *store.Tx, siteID string) (paused bool, reason string, resumable bool, err error) {
	site, err := view.FindSiteByID(siteID)
	if err != nil {
		return false, "", false, err
	}
	if site.State == models.SiteUninstalled {
		return true, "The app is uninstalled from this site: nothing is applied, and the pending changes go with the site's data when it is purged.", false, nil
	}
	if site.Disabled() { // never a stale state of a Forge-registered site
		return true, "The app is disabled in this site: changes wait until it is enabled again.", false, nil
	}
	acc, err := view.FindServiceAccount(siteID)
	if models.IsNotFound(err) {
		return true, "No service account: changes wait until one is saved in the Service account section.", false, nil
	}
	if err != nil {
		return false, "", false, err
	}
	if !hasCredentials(acc) {
		return true, "No service account credentials: changes wait until they are entered again in the Service account section.", false, nil
	}
	ss, err := view.FindSyncSite(siteID)
	if err != nil {
		return false, "", false, err
	}
	if ss.Paused && (ss.AccountUpdatedAt == nil || !acc.UpdatedAt.After(*ss.AccountUpdatedAt)) {
		return true, ss.PausedReason, true, nil
	}
	return false, "", false, nil
}

func atlassianIDs(view *store.Tx, siteID string, lists ...[]store.SyncItem) (map[string]string, error) {
	var users, groups []string
	for _, l := range lists {
		for _, it := range l {
			if it.ResourceType == "User" {
				users = append(users, it.ResourceID)
			} else {
				groups = append(groups, it.ResourceID)
			}
		}
	}
	return view.SyncAtlassianIDs(siteID, users, groups)
}

func toItems(items []store.SyncItem, ids map[string]string) []models.SyncItem {
	out := make([]models.SyncItem, 0, len(items))
	for _, it := range items {
		out = append(out, models.SyncItem{ID: it.ID, Op: it.Op, Kind: it.ResourceType, Subject: subjectOf(it.OutboxItem),
			Outcome: it.Status, Attempts: it.Attempts, Error: it.LastError, AtlassianID: ids[it.ResourceID], At: it.UpdatedAt})
	}
	return out
}

// subjectOf names an item's user (userName) or group (displayName) from
// its payload.
func subjectOf(it models.OutboxItem) string {
	var p struct {
		UserName         string `json:"userName"`
		DisplayName      string `json:"displayName"`
		GroupDisplayName string `json:"groupDisplayName"`
	}
	_ = json.Unmarshal(it.Payload, &p)
	switch {
	case it.ResourceType == "User" && p.UserName != "":
		return p.UserName
	case p.DisplayName != "":
		return p.DisplayName
	case p.GroupDisplayName != "":
		return p.GroupDisplayName
	}
	return it.ResourceID
}

func requireCaller(caller *models.Caller) error {
	if caller == nil || caller.Site == nil {
		return &models.Error{Code: models.CodeForbidden, Message: "this is for site administrators"}
	}
	return nil
}

// adminAction runs fn with an audit event naming the action, then answers
// the new status.
func (w *Worker) adminAction(ctx context.Context, caller *models.Caller, action string, fn func(tx *store.Tx) error) (*models.SyncStatus, error) {
	if err := requireCaller(caller); err != nil {
		return nil, err
	}
	siteID := caller.Site.ID
	err := w.store.InTx(ctx, func(tx *store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := audit.Record(tx, audit.ConfigChanged(siteID, caller.AccountID, audit.SectionProvisioning, []string{action}))
		return err
	})
	if err != nil {
		return nil, err
	}
	w.Reopen(siteID)
	return w.Status(ctx, siteID)
}

// Retry requeues a failed item (POST /api/admin/sync/items/{id}/retry).
func (w *Worker) Retry(ctx context.Context, caller *models.Caller, id int64) (*models.SyncStatus, error) {
	if err := requireCaller(caller); err != nil {
		return nil, err
	}
	return w.adminAction(ctx, caller, "sync.retry", func(tx *store.Tx) error { return tx.RetrySyncItem(caller.Site.ID, id) })
}

// Resume lifts a pause (POST /api/admin/sync/resume). A site that is not
// paused answers its status unchanged.
func (w *Worker) Resume(ctx context.Context, caller *models.Caller) (*models.SyncStatus, error) {
	if err := requireCaller(caller); err != nil {
		return nil, err
	}
	return w.adminAction(ctx, caller, "sync.resume", func(tx *store.Tx) error { return tx.ResumeSync(caller.Site.ID) })
}

// ApplyHeld lets the changes the brake holds through
// (POST /api/admin/sync/held/apply).
func (w *Worker) ApplyHeld(ctx context.Context, caller *models.Caller) (*models.SyncStatus, error) {
	if err := requireCaller(caller); err != nil {
		return nil, err
	}
	return w.adminAction(ctx, caller, "sync.heldApply", func(tx *store.Tx) error {
		n, err := tx.ApplyHeldSync(caller.Site.ID)
		if err == nil && n == 0 {
			err = &models.Error{Code: models.CodeConflict, Message: "No changes are held back."}
		}
		return err
	})
}

// DiscardHeld discards the changes the brake holds: the directory keeps
// the identity provider's state, the site keeps its own
// (POST /api/admin/sync/held/discard).
func (w *Worker) DiscardHeld(ctx context.Context, caller *models.Caller) (*models.SyncStatus, error) {
	if err := requireCaller(caller); err != nil {
		return nil, err
	}
	reason := fmt.Sprintf("Discarded by a site administrator on %s UTC: the site keeps the account's access.", w.now().UTC().Format("2006-01-02 15:04"))
	return w.adminAction(ctx, caller, "sync.heldDiscard", func(tx *store.Tx) error {
		n, err := tx.DiscardHeldSync(caller.Site.ID, reason)
		if err == nil && n == 0 {
			err = &models.Error{Code: models.CodeConflict, Message: "No changes are held back."}
		}
		return err
	})
}
