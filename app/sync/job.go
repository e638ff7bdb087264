package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/store"
	"idbridge/models"
)

// gate is what a worker needs to apply a site's changes, checked before it
// claims: the site is installed, has a usable service account and is not
// paused.
type gate struct {
	sr       *siteRun
	site     *models.Site
	acc      *models.ServiceAccount
	settings *models.Provisioning
	prov     *atlassian.Provisioner
	opened   time.Time
	pausedAt *atomic.Bool
}

func (g *gate) paused() bool { return g.pausedAt.Load() }

// openGate checks the site and builds its provisioning client; nil and how
// long to wait when the site cannot sync now (why is in the status).
func (w *Worker) openGate(ctx context.Context, sr *siteRun) (*gate, time.Duration) {
	view := w.store.View(ctx)
	site, err := view.FindSiteByID(sr.id)
	if err != nil {
		return nil, w.cfg.BlockedRecheck
	}
	w.mu.Lock()
	sr.clientKey = site.ClientKey
	w.mu.Unlock()
	if site.EffectiveState() != models.SiteInstalled {
		return nil, w.cfg.BlockedRecheck
	}
	acc, err := view.FindServiceAccount(sr.id)
	if err != nil || !hasCredentials(acc) {
		return nil, w.cfg.BlockedRecheck
	}
	ss, err := view.FindSyncSite(sr.id)
	if err != nil {
		return nil, w.cfg.IdlePoll
	}
	if ss.Paused {
		// Credentials saved after the pause resume it.
		if ss.AccountUpdatedAt == nil || !acc.UpdatedAt.After(*ss.AccountUpdatedAt) {
			return nil, w.cfg.BlockedRecheck
		}
		if err := w.store.InTx(ctx, func(tx *store.Tx) error { return tx.ResumeSync(sr.id) }); err != nil {
			return nil, w.cfg.IdlePoll
		}
		w.log.Info("sync: resumed after new credentials were saved", "site_id", sr.id)
	}
	settings, err := view.FindProvisioning(sr.id)
	if err != nil {
		return nil, w.cfg.IdlePoll
	}
	prov, err := w.accounts.Provisioner(site, acc)
	if err != nil {
		w.log.Warn("sync: cannot call the site", "site_id", sr.id, "error", err.Error())
		return nil, w.cfg.BlockedRecheck
	}
	// Reads of users and groups go as the app while Forge's app system
	// token has a while to live; Atlassian refusing it sends them back to
	// the service account (atlassian.Provisioner.UseSystemToken).
	if tok, err := view.FindSystemToken(sr.id, w.now().Add(systemTokenMargin)); err == nil {
		prov.UseSystemToken(w.accounts, site, tok.Token)
	}
	return &gate{sr: sr, site: site, acc: acc, settings: settings, prov: prov, opened: w.now(), pausedAt: &atomic.Bool{}}, 0
}

// systemTokenMargin is the least life an app system token must have left
// to be used for a claim.
const systemTokenMargin = time.Minute

func hasCredentials(acc *models.ServiceAccount) bool {
	if acc.Kind == models.AccountOAuthClient {
		return acc.ClientID != "" && acc.ClientSecret != ""
	}
	return acc.Email != "" && acc.Token != ""
}

// outcome is what a claim's work came to for its items.
type outcome struct {
	status       string // an outbox status; pending to try again
	msg          string
	retryAt      time.Time
	countAttempt bool
	recover      bool
	waitingFor   string
}

func applied() outcome { return outcome{status: models.OutboxStatusApplied} }

func failed(format string, args ...any) outcome {
	return outcome{status: models.OutboxStatusFailed, msg: fmt.Sprintf(format, args...)}
}

func notApplicable(format string, args ...any) outcome {
	return outcome{status: models.OutboxStatusNotApplicable, msg: fmt.Sprintf(format, args...)}
}

// errBudget stops a claim that used its calls or time; the rest follows in
// the next claim, at once.
var errBudget = errors.New("sync: this claim's budget is used up")

// job is the work on one claimed subject.
type job struct {
	w       *Worker
	g       *gate
	c       *store.SyncClaim
	ctx     context.Context
	started time.Time
	calls   int
	// recover: the claim must look things up before changing them, and has
	// not yet (cleared once the user or the memberships were looked up);
	// recovering: the claim began so, kept for the lookups before a
	// create or a delete, which the first lookups do not cover.
	recover    bool
	recovering bool
}

// call makes one call to Atlassian within the claim's budget, with its own
// timeout.
func (j *job) call(fn func(ctx context.Context) error) error {
	if j.calls >= j.w.cfg.CallsPerClaim || j.w.now().Sub(j.started) > j.w.cfg.Lease/3 {
		return errBudget
	}
	if j.g.paused() {
		return errBudget
	}
	j.calls++
	ctx, cancel := context.WithTimeout(j.ctx, j.w.cfg.RequestTimeout)
	defer cancel()
	if on := j.w.cfg.OnRequest; on != nil {
		ctx = atlassian.WithAnswerHook(ctx, func(status int) {
			if status == 0 {
				on("no_answer")
				return
			}
			on(strconv.Itoa(status))
		})
	}
	return fn(ctx)
}

// attempts is how often the claim's items were tried before.
func (j *job) attempts() int {
	n := 0
	for _, it := range j.c.Items {
		n = max(n, it.Attempts)
	}
	return n
}

// classify turns a failed call into the items' outcome. what names the
// call for people ("create the account", "add the member"); mutating says
// the call may have changed the site even without an answer.
func (j *job) classify(err error, what string, mutating bool) outcome {
	o := j.classifyCall(err, what, mutating)
	if o.status == models.OutboxStatusPending && (j.recover || j.recovering) {
		// The claim had to look things up first and has not finished: the
		// next one still must. Not only while the first lookups are
		// undone (recover): a claim that began recovering also looks
		// before a create or a delete (recovering), and stopping before
		// that lookup (a 429 on it, its budget) must not let the next
		// claim repeat the change blindly — a rename's old group was
		// deleted twice that way (TestStormOfFailuresEndsWithTheDirectorysState,
		// about 1 run in 20).
		o.recover = true
	}
	return o
}

func (j *job) classifyCall(err error, what string, mutating bool) outcome {
	now := j.w.now()
	if errors.Is(err, errBudget) {
		return outcome{status: models.OutboxStatusPending, retryAt: now}
	}
	if j.ctx.Err() != nil {
		return outcome{status: models.OutboxStatusPending, retryAt: now, recover: mutating,
			msg: "Interrupted while it was being applied; it goes on when idbridge runs again."}
	}
	var se *atlassian.StatusError
	var o outcome
	switch {
	case errors.As(err, &se):
		status := fmt.Sprintf("%d %s", se.StatusCode, http.StatusText(se.StatusCode))
		switch {
		case se.StatusCode == http.StatusUnauthorized:
			j.pause(what)
			return outcome{status: models.OutboxStatusPending, retryAt: now,
				msg: "Waiting: Atlassian rejected the service account's credentials (401), so this site's sync is paused."}
		case se.StatusCode == http.StatusTooManyRequests || se.StatusCode >= 500:
			at := se.RetryAt
			if at.IsZero() || !at.After(now) {
				at = now.Add(j.w.backoff(j.attempts() + 1))
			}
			o = outcome{status: models.OutboxStatusPending, retryAt: at, countAttempt: true,
				recover: mutating && se.StatusCode >= 500,
				msg:     fmt.Sprintf("Atlassian answered %s when idbridge tried to %s; trying again at %s UTC.", status, what, at.UTC().Format("15:04:05"))}
		case se.StatusCode == http.StatusForbidden:
			return failed("Atlassian refused to %s (%s): the service account may not do this for this account. %s", what, status, forbiddenHint(what))
		case se.StatusCode == http.StatusBadRequest:
			msg := se.Body
			if msg == "" {
				msg = "no reason given"
			}
			return failed("Atlassian rejected the request to %s (%s): %s", what, status, msg)
		case se.StatusCode == http.StatusNotFound:
			return failed("Atlassian could not %s: it does not know the account or group (%s).", what, status)
		default:
			return failed("Atlassian answered %s when idbridge tried to %s.", status, what)
		}
	case models.ErrorCode(err) == models.CodePrecondition:
		return failed("Cannot %s: %s.", what, models.ErrorMessage(err))
	case models.ErrorCode(err) == models.CodeUnauthorized:
		// The OAuth token endpoint refused the client credentials.
		j.pause(what)
		return outcome{status: models.OutboxStatusPending, retryAt: now,
			msg: "Waiting: Atlassian rejected the service account's credentials, so this site's sync is paused."}
	case models.ErrorCode(err) == models.CodeUnavailable:
		at := now.Add(j.w.backoff(j.attempts() + 1))
		o = outcome{status: models.OutboxStatusPending, retryAt: at, countAttempt: true, recover: mutating,
			msg: fmt.Sprintf("Atlassian did not answer when idbridge tried to %s (%s); trying again at %s UTC.", what, models.ErrorMessage(err), at.UTC().Format("15:04:05"))}
	default:
		j.w.log.Error("sync: unexpected failure", "site_id", j.c.SiteID, "op", what, "error", err.Error())
		at := now.Add(j.w.backoff(j.attempts() + 1))
		o = outcome{status: models.OutboxStatusPending, retryAt: at, countAttempt: true, recover: mutating,
			msg: fmt.Sprintf("idbridge could not %s because of an internal error; trying again at %s UTC.", what, at.UTC().Format("15:04:05"))}
	}
	if o.countAttempt && j.attempts()+1 >= maxAttempts {
		return failed("Gave up after %d attempts. %s", maxAttempts, o.msg)
	}
	return o
}

func forbiddenHint(what string) string {
	switch what {
	case "suspend the account", "restore the account's access", "change the account's name":
		return "Atlassian says the account is not managed by your organization, or the organization Admin API key may not manage it."
	case "create the account":
		return "Creating accounts may need an organization admin; or provision new users as customers."
	}
	return "Give the service account the Administer Jira permission (or site admin rights)."
}

// pause stops the site's sync after a 401 and marks the credentials
// invalid; nothing is lost: the items wait. Credentials saved later, or
// Resume, lift it.
func (j *job) pause(what string) {
	if j.g.pausedAt.Swap(true) {
		return
	}
	reason := fmt.Sprintf("Atlassian rejected the service account's credentials (401) when idbridge tried to %s, at %s UTC. "+
		"Changes wait and nothing is lost: save working credentials in the Service account section (the sync resumes by itself), or press Resume once they work again.",
		what, j.w.now().UTC().Format("2006-01-02 15:04"))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), 10*time.Second)
	defer cancel()
	err := j.w.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.PauseSync(j.c.SiteID, reason, j.g.acc.UpdatedAt); err != nil {
			return err
		}
		err := tx.SetServiceAccountStatus(j.c.SiteID, models.AccountInvalid, "Atlassian rejected these credentials (401) during user provisioning; the sync is paused until they are fixed.", j.w.now())
		if models.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		j.w.log.Error("sync: could not record the pause", "site_id", j.c.SiteID, "error", err.Error())
	}
	j.w.log.Warn("sync: paused: Atlassian rejected the service account", "site_id", j.c.SiteID)
}

// record writes progress in one transaction, and renews the lease once a
// third of it has passed since it was taken or last renewed. (Renewing it
// on every record rewrote every claimed item for each membership: a group
// claim of 500 items did 500 row updates per member added.)
func (j *job) record(fn func(tx *store.Tx) error) error {
	return j.write(true, fn)
}

// recordAhead is record for what must be kept before a call is made
// (recordAdding): its commit waits for the database to make it durable,
// as a lost record would leave the call's change without a trace.
func (j *job) recordAhead(fn func(tx *store.Tx) error) error {
	return j.write(false, fn)
}

func (j *job) write(lazy bool, fn func(tx *store.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), 10*time.Second)
	defer cancel()
	now := j.w.now()
	renew := j.c.LeaseUntil.Sub(now) < j.w.cfg.Lease*2/3
	inTx := j.w.store.InTx
	if lazy {
		// A record lost with a crashed database leaves the claim's lease:
		// the next claim looks things up first (store.InTxLazyCommit).
		inTx = j.w.store.InTxLazyCommit
	}
	return inTx(ctx, func(tx *store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if !renew {
			return nil
		}
		_, err := tx.RenewSyncLease(j.c, j.c.Owner, now.Add(j.w.cfg.Lease))
		return err
	})
}

// process applies one claimed subject and records what became of its
// items.
func (w *Worker) process(g *gate, c *store.SyncClaim) {
	j := &job{w: w, g: g, c: c, ctx: g.sr.ctx, started: w.now(), recover: c.Recover, recovering: c.Recover}
	var results []store.SyncResult
	switch c.ResourceType {
	case "User":
		results = j.user()
	case "Group":
		results = j.group()
	default:
		results = j.all(failed("idbridge does not know how to apply a change of a %q.", c.ResourceType))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(g.sr.ctx), 10*time.Second)
	defer cancel()
	var lost bool
	// As a record (job.record): an outcome lost with a crashed database
	// leaves the lease, and the next claim looks things up first.
	err := w.store.InTxLazyCommit(ctx, func(tx *store.Tx) error {
		if err := w.stopWaitingForGranted(tx, c.SiteID, results); err != nil {
			return err
		}
		var err error
		lost, err = tx.FinishSyncItems(c, c.Owner, results)
		return err
	})
	if err != nil {
		w.log.Error("sync: could not record the outcome", "site_id", c.SiteID, "error", err.Error())
		return
	}
	if lost {
		w.log.Warn("sync: lease lost before the outcome was recorded; another worker took over", "site_id", c.SiteID)
	}
	for _, r := range results {
		if w.cfg.OnResult == nil {
			break
		}
		switch {
		case r.Status != models.OutboxStatusPending:
			w.cfg.OnResult(r.Status)
		case r.WaitingFor != "":
			w.cfg.OnResult("waiting")
		case r.CountAttempt || r.Error != "":
			w.cfg.OnResult("retry")
		}
	}
}

// all gives every claimed item the same outcome.
func (j *job) all(o outcome) []store.SyncResult {
	out := make([]store.SyncResult, 0, len(j.c.Items))
	for _, it := range j.c.Items {
		out = append(out, result(it.ID, o))
	}
	return out
}

func result(id int64, o outcome) store.SyncResult {
	return store.SyncResult{ID: id, Status: o.status, Error: o.msg, NextAttemptAt: o.retryAt,
		CountAttempt: o.countAttempt, Recover: o.recover, WaitingFor: o.waitingFor}
}

// memberPayload is the part of a membership item the worker reads.
type memberPayload struct {
	GroupDisplayName string   `json:"groupDisplayName"`
	UserIDs          []string `json:"userIds"`
	Verify           bool     `json:"verify,omitempty"`
	// All asks for every member of the group (directory or site), not
	// only UserIDs: written when the group is made in the site.
	All    bool   `json:"all,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// refreshItems are members_refresh items: check the user's membership in
// each group again.
func refreshItems(siteID, userID string, groups map[string]string, reason string, verify bool) ([]*models.OutboxItem, error) {
	out := make([]*models.OutboxItem, 0, len(groups))
	for gid, name := range groups {
		b, err := json.Marshal(memberPayload{GroupDisplayName: name, UserIDs: []string{userID}, Reason: reason, Verify: verify})
		if err != nil {
			return nil, err
		}
		out = append(out, &models.OutboxItem{SiteID: siteID, ResourceType: "Group", ResourceID: gid, Op: models.OutboxMembersRefresh, Payload: b})
	}
	return out, nil
}

// groupNames names groups for refresh items: the directory's name, else
// the one recorded for the site.
func groupNames(tx *store.Tx, siteID string, ids []string) (map[string]string, error) {
	return tx.SyncGroupNames(siteID, ids)
}

// stopWaitingForGranted turns a wait for a user that got access while the
// claim ran into a retry at once. The user's grant takes the same lock,
// so either it sees the wait (and wakes it) or the wait sees it.
func (w *Worker) stopWaitingForGranted(tx *store.Tx, siteID string, results []store.SyncResult) error {
	// A claim's items mostly wait for one user: each user is looked at
	// once, and several in sorted order, as recordMembers locks them (two
	// transactions taking the same locks in different orders could
	// deadlock).
	var waiting []string
	for _, r := range results {
		if r.WaitingFor != "" {
			waiting = append(waiting, r.WaitingFor)
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	slices.Sort(waiting)
	waiting = slices.Compact(waiting)
	granted := make(map[string]bool, len(waiting))
	for _, u := range waiting {
		if err := tx.LockSyncUser(siteID, u); err != nil {
			return err
		}
		su, err := tx.FindSyncUser(siteID, u, false)
		if err != nil && !models.IsNotFound(err) {
			return err
		}
		granted[u] = err == nil && su.AccountID != "" && su.State.HasAccess()
	}
	for i := range results {
		if r := &results[i]; r.WaitingFor != "" && granted[r.WaitingFor] {
			r.WaitingFor, r.NextAttemptAt = "", w.now()
		}
	}
	return nil
}
