package privacy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/store"
	"idbridge/models"
)

// The Personal Data Reporting cycle (SPEC 8). Per site: collect every
// account ID the declarations mark as reported into report_accounts (new
// ones added, the ones no longer held swept out), then report the due
// accounts (never reported, or last reported a cycle period ago) to
// Atlassian, at most 90 per request, in account-ID order, and apply the
// answer: closed accounts are erased everywhere, updated ones lose their
// cached profile data. Every step is persisted (report_sites, and each
// account's reported_at), so a crash resumes the cycle where it stopped;
// on PostgreSQL an advisory lock keeps it on one replica at a time.

// ReportLockName is the advisory lock of the reporting cycle.
const ReportLockName = "personal data reporting"

// Bounds of the cycle.
const (
	collectBatch = 1000
	sweepBatch   = 5000
	// maxInlineWait is the longest Retry-After the cycle sleeps through;
	// a longer one ends the run, to resume at retry_at.
	maxInlineWait = 5 * time.Minute
	// maxRetries bounds the 429s and 503s of one batch in one run.
	maxRetries = 5
)

// ReportSummary is what one run of the cycle did for one site.
type ReportSummary struct {
	SiteID    string
	Ran       bool   // false: not due (or waiting for Retry-After)
	Completed bool   // the cycle finished (false: it stopped and resumes later)
	Requests  int    // requests sent to Atlassian
	Reported  int    // accounts reported
	Closed    int    // accounts Atlassian said were closed
	Erased    int    // of those, accounts whose data was erased
	Updated   int    // accounts Atlassian said were updated
	Refreshed int    // of those, cached profile data dropped
	Ignored   int    // answers not applied
	Message   string // why it stopped, or what is next
	NextCycle *time.Time
}

// reportGate keeps one cycle at a time in this process (the advisory
// lock does it across PostgreSQL replicas; on SQLite there is one
// process).
type reportGate struct{ mu sync.Mutex }

// ReportAll runs the cycle for every active site that is due (force: for
// every active site now; each account still at most once per period),
// on one replica at a time. ran is false when another replica holds the
// cycle's lock.
func (s *Service) ReportAll(ctx context.Context, force bool) (sums []ReportSummary, ran bool, err error) {
	if s.cfg.Reporting == nil {
		return nil, false, &models.Error{Code: models.CodePrecondition, Message: "the Personal Data Reporting API is not configured"}
	}
	if !s.reporting.mu.TryLock() {
		return nil, false, nil
	}
	defer s.reporting.mu.Unlock()
	release, ok, err := s.store.TryLock(ctx, ReportLockName)
	if err != nil || !ok {
		return nil, false, err
	}
	defer release()
	ids, err := s.store.View(ctx).ActiveSiteIDs()
	if err != nil {
		return nil, true, err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return sums, true, err
		}
		site, err := s.store.View(ctx).FindSiteByID(id)
		if models.IsNotFound(err) {
			continue
		}
		if err != nil {
			return sums, true, err
		}
		if !site.Active() {
			continue
		}
		sum, err := s.reportSite(ctx, site, force)
		if err != nil {
			s.log.Warn("personal data reporting: site stopped", "site_id", site.ID, "error", err.Error())
			sum.Message = models.ErrorMessage(err)
		}
		sums = append(sums, sum)
	}
	return sums, true, nil
}

// reportSite runs (or resumes) the cycle of one site.
func (s *Service) reportSite(ctx context.Context, site *models.Site, force bool) (ReportSummary, error) {
	sum := ReportSummary{SiteID: site.ID}
	st, err := s.store.View(ctx).FindReportSite(site.ID)
	if err != nil {
		return sum, err
	}
	now := s.now()
	if st.RetryAt != nil && now.Before(*st.RetryAt) {
		if wait := st.RetryAt.Sub(now); !force || wait > maxInlineWait {
			sum.Message = "waiting until " + st.RetryAt.UTC().Format(time.RFC3339) + ", as Atlassian asked"
			return sum, nil
		} else if err := s.sleep(ctx, wait); err != nil {
			return sum, err
		}
		now = s.now()
	}
	if st.CycleStartedAt == nil {
		if !force && st.NextCycleAt != nil && now.Before(*st.NextCycleAt) {
			sum.NextCycle = st.NextCycleAt
			return sum, nil
		}
		started := now
		st.CycleStartedAt = &started
		st.Reported, st.Closed, st.Erased, st.Updated, st.Ignored = 0, 0, 0, 0, 0
		st.LastStatus, st.LastMessage = "running", "collecting the accounts idbridge holds data for"
		if err := s.saveReportSite(ctx, st); err != nil {
			return sum, err
		}
	}
	sum.Ran = true
	if err := s.collect(ctx, site.ID, *st.CycleStartedAt); err != nil {
		return sum, s.stopped(ctx, st, "failed", err)
	}
	period := periodOr(st.CyclePeriod)
	dueBefore := st.CycleStartedAt.Add(-period)
	after := ""
	retries := 0
	for {
		if err := ctx.Err(); err != nil {
			return sum, s.stopped(ctx, st, "interrupted", err)
		}
		batch, err := s.store.View(ctx).DueReportAccounts(site.ID, after, dueBefore, atlassian.MaxReportAccounts)
		if err != nil {
			return sum, s.stopped(ctx, st, "failed", err)
		}
		if len(batch) == 0 {
			break
		}
		accounts := make([]atlassian.ReportedAccount, len(batch))
		for i, a := range batch {
			accounts[i] = atlassian.ReportedAccount{AccountID: a.AccountID, UpdatedAt: a.UpdatedAt}
		}
		sum.Requests++
		ans, err := s.cfg.Reporting.Report(ctx, site, accounts)
		if err != nil {
			s.reported("error")
			return sum, s.stopped(ctx, st, "failed", err)
		}
		s.reported(strconv.Itoa(ans.Status))
		if !ans.RetryAt.IsZero() {
			wait := ans.RetryAt.Sub(s.now())
			retries++
			if wait > maxInlineWait || retries > maxRetries {
				at := ans.RetryAt
				st.RetryAt = &at
				why := models.Errorf(models.CodeUnavailable, "Atlassian answered %d; the cycle resumes after %s", ans.Status, at.UTC().Format(time.RFC3339))
				sum.Message = why.Message
				return sum, s.stopped(ctx, st, "waiting", why)
			}
			if err := s.sleep(ctx, max(wait, 0)); err != nil {
				return sum, s.stopped(ctx, st, "interrupted", err)
			}
			continue
		}
		retries = 0
		st.RetryAt = nil
		if ans.CyclePeriod > 0 {
			st.CyclePeriod = ans.CyclePeriod
		}
		var got ReportSummary
		// The batch's state is saved in the transaction that marks it
		// reported: one commit per request.
		saved := *st
		err = s.apply(ctx, site.ID, batch, ans, &got, func(tx *store.Tx) error {
			saved = *st
			saved.Reported += int64(len(batch))
			saved.Closed += int64(got.Closed)
			saved.Erased += int64(got.Erased)
			saved.Updated += int64(len(ans.Updated))
			saved.Ignored += int64(got.Ignored)
			return tx.SaveReportSite(&saved)
		})
		sum.add(got)
		if err != nil {
			st.Closed += int64(got.Closed)
			st.Erased += int64(got.Erased)
			return sum, s.stopped(ctx, st, "failed", err)
		}
		*st = saved
		after = batch[len(batch)-1].AccountID
	}
	finished := s.now()
	// The next cycle is due when the least recently reported account is:
	// a period after its report (a forced cycle that found nothing due
	// does not push it back).
	next := finished.Add(periodOr(st.CyclePeriod))
	if oldest, err := s.store.View(ctx).OldestReport(site.ID); err != nil {
		return sum, s.stopped(ctx, st, "failed", err)
	} else if oldest != nil && oldest.Add(periodOr(st.CyclePeriod)).Before(next) {
		next = oldest.Add(periodOr(st.CyclePeriod))
	}
	st.CycleStartedAt, st.CycleFinishedAt, st.NextCycleAt, st.RetryAt = nil, &finished, &next, nil
	st.LastStatus = "ok"
	st.LastMessage = fmt.Sprintf("%d accounts reported in %d requests; %d closed (%d erased), %d updated, %d answers ignored",
		st.Reported, sum.Requests, st.Closed, st.Erased, st.Updated, st.Ignored)
	if err := s.saveReportSite(ctx, st); err != nil {
		return sum, err
	}
	sum.Completed, sum.NextCycle, sum.Message = true, &next, st.LastMessage
	return sum, nil
}

func (r *ReportSummary) add(o ReportSummary) {
	r.Reported += o.Reported
	r.Closed += o.Closed
	r.Erased += o.Erased
	r.Updated += o.Updated
	r.Refreshed += o.Refreshed
	r.Ignored += o.Ignored
}

// collect brings report_accounts up to date with every reported column:
// each account found is marked seen by this cycle (new ones added), then
// the accounts this cycle did not find are swept out.
func (s *Service) collect(ctx context.Context, siteID string, cycle time.Time) error {
	for _, c := range store.ReportableColumns() {
		after := ""
		for {
			ids, err := s.store.View(ctx).DistinctAccountIDs(siteID, c, after, collectBatch)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				break
			}
			if err := s.store.View(ctx).UpsertReportAccounts(siteID, ids, cycle); err != nil {
				return err
			}
			if len(ids) < collectBatch {
				break
			}
			after = ids[len(ids)-1]
		}
	}
	for {
		n, err := s.store.View(ctx).SweepReportAccounts(siteID, cycle, sweepBatch)
		if err != nil {
			return err
		}
		if n < sweepBatch {
			return nil
		}
	}
}

// apply applies one answer: closed accounts are erased (each in its own
// transaction, as an erasure by an administrator would be), updated ones
// lose their cached profile data unless their processing is restricted,
// and the batch is marked reported.
func (s *Service) apply(ctx context.Context, siteID string, batch []store.ReportAccount, ans *atlassian.ReportAnswer, sum *ReportSummary, save func(tx *store.Tx) error) error {
	sum.Closed += len(ans.Closed)
	sum.Ignored += ans.Ignored
	if ans.Malformed {
		sum.Ignored++
		s.log.Warn("personal data reporting: an answer that is not JSON was ignored", "site_id", siteID, "accounts", len(batch))
		s.reported("ignored")
	} else if ans.Ignored > 0 {
		s.log.Warn("personal data reporting: answers about accounts not sent, or with an unknown status, were ignored", "site_id", siteID, "ignored", ans.Ignored)
		s.reported("ignored")
	}
	for _, id := range ans.Closed {
		e, err := s.erase(ctx, siteID, "", id, "account_closed")
		if err != nil {
			return err
		}
		if !e.Nothing() {
			sum.Erased++
		}
		s.reported("closed")
	}
	now := s.now()
	refreshed := 0
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		refreshed = 0
		for _, id := range ans.Updated {
			s.reported("updated")
			restricted, err := tx.Restricted(siteID, id, models.BlockedReportingRefresh)
			if err != nil {
				return err
			}
			if restricted {
				s.blocked(models.BlockedReportingRefresh)
				continue
			}
			n, err := tx.DropCachedProfile(siteID, id)
			if err != nil {
				return err
			}
			if n > 0 {
				refreshed++
			}
			if err := tx.TouchReportAccount(siteID, id, now); err != nil {
				return err
			}
		}
		ids := make([]string, len(batch))
		for i, a := range batch {
			ids[i] = a.AccountID
		}
		if err := tx.MarkReported(siteID, ids, now); err != nil {
			return err
		}
		return save(tx)
	})
	if err != nil {
		return err
	}
	sum.Reported += len(batch)
	sum.Updated += len(ans.Updated)
	sum.Refreshed += refreshed
	return nil
}

func (s *Service) saveReportSite(ctx context.Context, st *store.ReportSite) error {
	// Progress is recorded even when ctx ended, so a resume knows it.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.store.InTx(sctx, func(tx *store.Tx) error { return tx.SaveReportSite(st) })
}

// stopped records why the cycle stopped; it stays in progress and
// resumes at the next run.
func (s *Service) stopped(ctx context.Context, st *store.ReportSite, status string, cause error) error {
	st.LastStatus, st.LastMessage = status, models.ErrorMessage(cause)
	if err := s.saveReportSite(ctx, st); err != nil {
		return errors.Join(cause, err)
	}
	if status == "waiting" {
		return nil
	}
	return cause
}

func (s *Service) reported(outcome string) {
	if s.cfg.OnReport != nil {
		s.cfg.OnReport(outcome)
	}
}

func (s *Service) sleep(ctx context.Context, d time.Duration) error {
	if s.cfg.Sleep != nil {
		return s.cfg.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
