package privacy

import (
	"context"
	"fmt"
	"time"

	"idbridge/app/store"
	"idbridge/models"
)

// The retention purge (SPEC 8): audit events after the audit retention,
// an uninstalled site's data after the uninstall retention (every declared
// table, in bounded batches, then the site itself), login state after its
// TTL, and sync results after 30 days. Nothing is soft-deleted: rows go.
// `idbridge purge` runs it now; the scheduled purge runs it once a day per
// deployment (scheduled_jobs, under an advisory lock on PostgreSQL).

// PurgeJobName names the scheduled purge in scheduled_jobs, and its lock.
const PurgeJobName = "retention purge"

// Purge bounds and periods.
const (
	purgeBatch = 5000
	// SyncResultRetention is how long the outcome of an applied, failed or
	// discarded directory change is kept.
	SyncResultRetention = 30 * 24 * time.Hour
	// PurgeInterval is how often the scheduled purge runs.
	PurgeInterval = 24 * time.Hour
	// Default retentions when configuration sets none (SPEC 1).
	defaultAuditRetention     = 60 * 24 * time.Hour
	defaultUninstallRetention = 30 * 24 * time.Hour
)

// PurgeResult says what a purge removed.
type PurgeResult struct {
	AuditEvents int            // events past the audit retention, all sites
	Sites       int            // uninstalled sites purged
	SiteRows    map[string]int // their rows, by table
	LoginState  int            // expired login state, assertion records, sessions
	SyncResults int            // outbox items whose outcome is past 30 days
}

// Purge removes everything past its retention, now.
func (s *Service) Purge(ctx context.Context) (PurgeResult, error) {
	res := PurgeResult{SiteRows: map[string]int{}}
	now := s.now()
	auditBefore := now.Add(-orDuration(s.cfg.AuditRetention, defaultAuditRetention))
	after := ""
	for {
		ids, err := s.store.View(ctx).SiteIDsAfter(after, 500)
		if err != nil {
			return res, err
		}
		for _, id := range ids {
			for {
				n, err := s.store.View(ctx).DeleteAuditEventsBefore(id, auditBefore, purgeBatch)
				if err != nil {
					return res, err
				}
				res.AuditEvents += n
				if n < purgeBatch {
					break
				}
			}
		}
		if len(ids) < 500 {
			break
		}
		after = ids[len(ids)-1]
	}
	for {
		ids, err := s.store.View(ctx).SitesDueForPurge(now, 100)
		if err != nil {
			return res, err
		}
		purged := 0
		for _, id := range ids {
			ok, err := s.purgeSite(ctx, id, now, res.SiteRows)
			if err != nil {
				return res, err
			}
			if ok {
				res.Sites++
				purged++
				s.log.Info("uninstalled site purged", "site_id", id)
			}
		}
		if len(ids) < 100 || purged == 0 {
			break
		}
	}
	for {
		n, err := s.store.View(ctx).PurgeExpiredSSO(now, 1000)
		if err != nil {
			return res, err
		}
		res.LoginState += n
		if n < 1000 {
			break
		}
	}
	for {
		n, err := s.store.PurgeSyncedItems(ctx, now.Add(-SyncResultRetention), []string{"applied", "not_applicable", "discarded", "failed"}, 1000)
		if err != nil {
			return res, err
		}
		res.SyncResults += n
		if n < 1000 {
			break
		}
	}
	return res, nil
}

// purgeSite deletes every declared table's rows of an uninstalled site
// whose retention ended, children before parents, a batch per statement,
// then the site itself. A site reinstalled meanwhile is left alone from
// that moment on.
func (s *Service) purgeSite(ctx context.Context, siteID string, now time.Time, rows map[string]int) (bool, error) {
	for _, t := range models.Tables() {
		if t.SiteColumn == "" || t.Name == models.TableSites {
			continue
		}
		if due, err := s.store.View(ctx).SiteStillDueForPurge(siteID, now); err != nil || !due {
			return false, err
		}
		for {
			n, err := s.store.View(ctx).DeleteSiteRows(siteID, t, purgeBatch)
			if err != nil {
				return false, err
			}
			rows[t.Name] += n
			if n < purgeBatch {
				break
			}
		}
	}
	var gone bool
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		gone, err = tx.DeletePurgedSite(siteID, now)
		return err
	})
	if gone {
		rows[models.TableSites]++
	}
	return gone, err
}

// PurgeDue runs the purge when it is due (it never ran, or last started
// PurgeInterval ago), on one replica at a time: the scheduled_jobs
// pattern. ran is false when it was not due or another replica runs it.
func (s *Service) PurgeDue(ctx context.Context) (res PurgeResult, ran bool, err error) {
	release, ok, err := s.store.TryLock(ctx, PurgeJobName)
	if err != nil || !ok {
		return res, false, err
	}
	defer release()
	last, err := s.store.View(ctx).FindJobRun(PurgeJobName)
	if err != nil && !models.IsNotFound(err) {
		return res, false, err
	}
	if err == nil && last.LastStartedAt != nil && s.now().Sub(*last.LastStartedAt) < PurgeInterval {
		return res, false, nil
	}
	if err := s.store.InTx(ctx, func(tx *store.Tx) error { return tx.StartJobRun(PurgeJobName) }); err != nil {
		return res, false, err
	}
	res, err = s.Purge(ctx)
	status, msg := "ok", res.String()
	if err != nil {
		status, msg = "failed", models.ErrorMessage(err)
		s.log.Warn("retention purge failed", "error", err.Error())
	} else {
		s.log.Info("retention purge done", "audit_events", res.AuditEvents, "sites", res.Sites, "login_state", res.LoginState, "sync_results", res.SyncResults)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if ferr := s.store.InTx(fctx, func(tx *store.Tx) error { return tx.FinishJobRun(PurgeJobName, status, msg) }); ferr != nil && err == nil {
		err = ferr
	}
	return res, true, err
}

// String says what the purge removed, in one line.
func (r PurgeResult) String() string {
	rows := 0
	for _, n := range r.SiteRows {
		rows += n
	}
	return fmt.Sprintf("%d audit events past retention; %d uninstalled sites (%d rows); %d expired login states, assertion records and sessions; %d sync results older than 30 days",
		r.AuditEvents, r.Sites, rows, r.LoginState, r.SyncResults)
}

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
