// Package profile owns each site's customer record (SPEC section 3): the
// contact name and email, location, company and purchaser that the privacy
// policy says idbridge keeps, each with its source and time. Values come
// from the installation's Marketplace licence (a scheduled sync, and on
// demand) and from site admins, whose corrections apply at once, are
// written to the audit log in the same transaction, and win over later
// syncs until cleared.
package profile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"idbridge/app/atlassian"
	"idbridge/app/audit"
	"idbridge/app/store"
	"idbridge/models"
)

// JobName is the scheduled sync's name in scheduled_jobs and its advisory
// lock.
const JobName = "marketplace-licence-sync"

// Defaults of the scheduled sync.
const (
	DefaultInterval = 24 * time.Hour
	DefaultPoll     = 15 * time.Minute
	// siteSyncTimeout bounds an on-demand sync, which an admin waits for.
	siteSyncTimeout = 45 * time.Second
	// SiteSyncCooldown is how soon after an on-demand sync of a site
	// (successful or not) the next one may start: one admin, or twenty
	// pressing at once, cost the Marketplace one sync per site a minute.
	SiteSyncCooldown = time.Minute
	// licenceListTTL is how long one reading of the whole licence list
	// serves the on-demand syncs that need it (a site whose licence the
	// text search did not find); they share one reading in flight too.
	licenceListTTL = 2 * time.Minute
	// maxCooldowns bounds the cooldown table (site IDs of admins who
	// pressed the button; expired entries are swept when it is full).
	maxCooldowns = 100_000
)

// Rate budgets (atlassian.WithBudget) of the Marketplace calls: the
// scheduled sync has its own, so admins pressing "sync now" can never
// starve it, nor it them.
const (
	budgetScheduled = "marketplace-scheduled"
	budgetOnDemand  = "marketplace-on-demand"
)

// Bounds of what an admin may enter, in characters.
var maxLength = map[models.ProfileField]int{
	models.ProfileName:      200,
	models.ProfileEmail:     254,
	models.ProfileLocation:  200,
	models.ProfileCompany:   200,
	models.ProfilePurchaser: 200,
}

// Service keeps the customer records.
type Service struct {
	store  *store.Store
	market *atlassian.Marketplace // nil or unconfigured: no sync
	now    func() time.Time
	log    *slog.Logger

	// Interval is how often the scheduled sync runs; Poll how often Run
	// checks whether it is due.
	Interval time.Duration
	Poll     time.Duration

	running sync.Mutex // one full sync at a time in this process

	cooldownMu sync.Mutex
	cooldowns  map[string]time.Time // site ID → when its on-demand sync may run again

	listMu   sync.Mutex
	list     *licenceList // the last whole listing read, nil when none
	listCall *listCall    // the reading in flight, nil when none
}

// licenceList is one reading of every licence, indexed.
type licenceList struct {
	ix     *index
	count  int
	readAt time.Time
}

// listCall is a reading of the whole list that concurrent on-demand syncs
// share.
type listCall struct {
	done chan struct{}
	list *licenceList
	err  error
}

// New builds the service; it starts nothing (Run is the worker).
func New(st *store.Store, market *atlassian.Marketplace, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: st, market: market, now: now, log: log, Interval: DefaultInterval, Poll: DefaultPoll,
		cooldowns: map[string]time.Time{}}
}

// SyncConfigured reports whether the Marketplace sync can run.
func (s *Service) SyncConfigured() bool { return s.market.Configured() }

// Get returns the site's customer record; an empty one when nothing is
// known yet.
func (s *Service) Get(ctx context.Context, siteID string) (*models.CustomerProfile, error) {
	p, err := s.store.View(ctx).FindCustomerProfile(siteID)
	if models.IsNotFound(err) {
		return &models.CustomerProfile{SiteID: siteID, Fields: map[models.ProfileField]models.ProfileValue{}}, nil
	}
	return p, err
}

// Correct applies an admin's corrections (a rectification): each change
// sets a field's correction, or clears it when its value is nil. All are
// validated first; nothing is saved if any is invalid. Changes and a
// record_corrected audit event commit together.
func (s *Service) Correct(ctx context.Context, site *models.Site, actorAccountID string, changes []models.ProfileChange) (*models.CustomerProfile, error) {
	if len(changes) == 0 {
		return nil, &models.Error{Code: models.CodeInvalid, Message: "Send at least one of name, email, location, company or purchaser."}
	}
	clean := make([]models.ProfileChange, 0, len(changes))
	for _, ch := range changes {
		if !ch.Field.Valid() {
			return nil, models.FieldError(string(ch.Field), "%q is not a field of the customer record; use name, email, location, company or purchaser.", ch.Field)
		}
		if ch.Value != nil {
			v, err := validate(ch.Field, *ch.Value)
			if err != nil {
				return nil, err
			}
			ch.Value = &v
		}
		clean = append(clean, ch)
	}
	var out *models.CustomerProfile
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		p, changed, err := tx.CorrectCustomerProfile(site.ID, clean)
		if err != nil {
			return err
		}
		out = p
		if len(changed) == 0 {
			return nil
		}
		names := make([]string, len(changed))
		for i, f := range changed {
			names[i] = string(f)
		}
		_, err = audit.Record(tx, audit.RecordCorrected(site.ID, actorAccountID, names))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// validate trims v and checks it for field f.
func validate(f models.ProfileField, v string) (string, error) {
	v = strings.TrimSpace(v)
	if !utf8.ValidString(v) {
		return "", models.FieldError(string(f), "The %s is not valid text.", f)
	}
	if n := utf8.RuneCountInString(v); n > maxLength[f] {
		return "", models.FieldError(string(f), "The %s is %d characters long; at most %d fit.", f, n, maxLength[f])
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return "", models.FieldError(string(f), "The %s contains line breaks or control characters; enter it on one line.", f)
	}
	if f == models.ProfileEmail && v != "" {
		a, err := mail.ParseAddress(v)
		if err != nil || a.Address != v || a.Name != "" || !strings.Contains(v[strings.LastIndexByte(v, '@')+1:], ".") {
			return "", models.FieldError("email", "%q is not an email address such as jane@example.com.", truncate(v, 60))
		}
	}
	return v, nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// SyncSite refreshes one site's record from its Marketplace licence now,
// for the admin's "sync now". It looks the licence up by the site's own
// identifiers and falls back to the whole listing, which concurrent calls
// share (one reading, kept for licenceListTTL). A site may sync on demand
// once per SiteSyncCooldown: sooner is a too_many_requests error that says
// when to try again. Its Marketplace calls draw on the on-demand budget.
func (s *Service) SyncSite(ctx context.Context, site *models.Site) (*models.CustomerProfile, error) {
	if !s.SyncConfigured() {
		return nil, &models.Error{Code: models.CodePrecondition, Message: "The Marketplace licence sync is not set up on this idbridge server, so the record cannot be refreshed from your licence. You can still correct it here."}
	}
	if wait := s.startCooldown(site.ID); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		return nil, &models.Error{Code: models.CodeTooMany, RetryAfter: wait,
			Message: fmt.Sprintf("This record was refreshed from the Marketplace moments ago; try again in %d seconds.", secs)}
	}
	ctx, cancel := context.WithTimeout(atlassian.WithBudget(ctx, budgetOnDemand), siteSyncTimeout)
	defer cancel()
	var best *candidate
	consider := func(l atlassian.License) error {
		if rank := matchRank(site, l); rank > 0 {
			best = better(best, &candidate{license: l, rank: rank})
		}
		return nil
	}
	for _, text := range searchTerms(site) {
		if err := s.market.Licenses(ctx, text, consider); err != nil {
			return nil, marketplaceError(err)
		}
		if best != nil {
			break
		}
	}
	if best == nil {
		list, err := s.sharedList(ctx)
		if err != nil {
			return nil, marketplaceError(err)
		}
		best = list.ix.find(site)
	}
	if err := s.apply(ctx, site.ID, best); err != nil {
		return nil, err
	}
	return s.Get(ctx, site.ID)
}

// startCooldown starts the site's cooldown and returns 0, or returns how
// long the cooldown it is in still lasts.
func (s *Service) startCooldown(siteID string) time.Duration {
	now := s.now()
	s.cooldownMu.Lock()
	defer s.cooldownMu.Unlock()
	if until, ok := s.cooldowns[siteID]; ok && now.Before(until) {
		return until.Sub(now)
	}
	if len(s.cooldowns) >= maxCooldowns {
		for id, until := range s.cooldowns {
			if !now.Before(until) {
				delete(s.cooldowns, id)
			}
		}
		if len(s.cooldowns) >= maxCooldowns {
			// Every entry is live: more sites synced within a minute
			// than the table holds. Refusing is safe; forgetting a
			// cooldown would not be.
			return SiteSyncCooldown
		}
	}
	s.cooldowns[siteID] = now.Add(SiteSyncCooldown)
	return 0
}

// sharedList returns the whole licence listing: the last reading when it is
// younger than licenceListTTL, else the reading in flight, else a new one
// that later callers join. The reading runs for every caller waiting on
// it, so one caller leaving does not cancel it; siteSyncTimeout bounds it.
func (s *Service) sharedList(ctx context.Context) (*licenceList, error) {
	s.listMu.Lock()
	if l := s.list; l != nil && s.now().Sub(l.readAt) < licenceListTTL {
		s.listMu.Unlock()
		return l, nil
	}
	call := s.listCall
	if call == nil {
		call = &listCall{done: make(chan struct{})}
		s.listCall = call
		readCtx, cancel := context.WithTimeout(atlassian.WithBudget(context.WithoutCancel(ctx), budgetOnDemand), siteSyncTimeout)
		go func() {
			defer cancel()
			list, err := s.readList(readCtx)
			s.listMu.Lock()
			s.listCall = nil
			if err == nil {
				s.list = list
			}
			s.listMu.Unlock()
			call.list, call.err = list, err
			close(call.done)
		}()
	}
	s.listMu.Unlock()
	select {
	case <-call.done:
		return call.list, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readList reads every licence once and indexes them.
func (s *Service) readList(ctx context.Context) (*licenceList, error) {
	var licenses []atlassian.License
	err := s.market.Licenses(ctx, "", func(l atlassian.License) error {
		licenses = append(licenses, l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &licenceList{ix: newIndex(licenses), count: len(licenses), readAt: s.now()}, nil
}

// SyncResult counts what a full sync did.
type SyncResult struct {
	Licenses int // licences read
	Sites    int // active sites visited
	Matched  int // sites whose licence was found
}

// SyncAll refreshes every active site's record from the Marketplace, on one
// replica at a time (PostgreSQL advisory lock) and one run at a time in this
// process. ran is false when another run holds the lock.
func (s *Service) SyncAll(ctx context.Context) (res SyncResult, ran bool, err error) {
	if !s.SyncConfigured() {
		return res, false, &models.Error{Code: models.CodePrecondition, Message: "the Marketplace licence sync is not configured"}
	}
	return s.locked(ctx, false)
}

// RunDue runs the full sync when it is due (it never ran, or last started
// at least Interval ago), under the same exclusion as SyncAll.
func (s *Service) RunDue(ctx context.Context) (res SyncResult, ran bool, err error) {
	if !s.SyncConfigured() {
		return res, false, nil
	}
	return s.locked(ctx, true)
}

func (s *Service) locked(ctx context.Context, onlyIfDue bool) (res SyncResult, ran bool, err error) {
	if !s.running.TryLock() {
		return res, false, nil
	}
	defer s.running.Unlock()
	release, ok, err := s.store.TryLock(ctx, JobName)
	if err != nil || !ok {
		return res, false, err
	}
	defer release()
	if onlyIfDue {
		last, err := s.store.View(ctx).FindJobRun(JobName)
		if err != nil && !models.IsNotFound(err) {
			return res, false, err
		}
		if err == nil && last.LastStartedAt != nil && s.now().Sub(*last.LastStartedAt) < s.interval() {
			return res, false, nil
		}
	}
	if err := s.store.InTx(ctx, func(tx *store.Tx) error { return tx.StartJobRun(JobName) }); err != nil {
		return res, false, err
	}
	res, err = s.syncAll(ctx)
	status, msg := "ok", fmt.Sprintf("%d licences read; %d of %d sites matched", res.Licenses, res.Matched, res.Sites)
	if err != nil {
		status, msg = "failed", models.ErrorMessage(err)
		s.log.Warn("marketplace licence sync failed", "error", err.Error())
	} else {
		s.log.Info("marketplace licence sync done", "licenses", res.Licenses, "sites", res.Sites, "matched", res.Matched)
	}
	// The run's outcome is recorded even when ctx ended.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if ferr := s.store.InTx(fctx, func(tx *store.Tx) error { return tx.FinishJobRun(JobName, status, msg) }); ferr != nil && err == nil {
		err = ferr
	}
	return res, true, err
}

func (s *Service) interval() time.Duration {
	if s.Interval > 0 {
		return s.Interval
	}
	return DefaultInterval
}

// syncAll reads every licence once, under the scheduled sync's own rate
// budget, and matches each active site to its best licence. The reading
// also serves on-demand syncs for a while.
func (s *Service) syncAll(ctx context.Context) (SyncResult, error) {
	var res SyncResult
	list, err := s.readList(atlassian.WithBudget(ctx, budgetScheduled))
	if err != nil {
		return res, marketplaceError(err)
	}
	res.Licenses = list.count
	s.listMu.Lock()
	s.list = list
	s.listMu.Unlock()
	idx := list.ix
	ids, err := s.store.View(ctx).ActiveSiteIDs()
	if err != nil {
		return res, err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		site, err := s.store.View(ctx).FindSiteByID(id)
		if models.IsNotFound(err) {
			continue // uninstalled and purged meanwhile
		}
		if err != nil {
			return res, err
		}
		if !site.Active() {
			continue
		}
		res.Sites++
		best := idx.find(site)
		if best != nil {
			res.Matched++
		}
		if err := s.apply(ctx, site.ID, best); err != nil {
			return res, err
		}
	}
	return res, nil
}

// apply records what the sync found for one site.
func (s *Service) apply(ctx context.Context, siteID string, best *candidate) error {
	return s.store.InTx(ctx, func(tx *store.Tx) error {
		if best == nil {
			return tx.RecordProfileSyncStatus(siteID, "No Marketplace licence matches this installation yet.")
		}
		_, err := tx.ApplyProfileSync(siteID, ContactOf(best.license).Values, models.SourceMarketplace, describe(best.license))
		return err
	})
}

func describe(l atlassian.License) string {
	id := firstNonEmpty(l.AppEntitlementNumber, l.LicenseID, l.AddonLicenseID, l.AppEntitlementID)
	status := strings.ToLower(l.Status)
	switch {
	case id != "" && status != "":
		return fmt.Sprintf("Matched to Marketplace licence %s (%s).", id, status)
	case id != "":
		return fmt.Sprintf("Matched to Marketplace licence %s.", id)
	}
	return "Matched to a Marketplace licence."
}

// marketplaceError turns a failed Marketplace call into something an admin
// can act on; it is never a 401 of ours (that would read as "your session
// ended").
func marketplaceError(err error) error {
	switch code := models.ErrorCode(err); {
	case code == models.CodeUnauthorized || code == models.CodeForbidden:
		return fmt.Errorf("marketplace: %w: %w", &models.Error{Code: models.CodeUnavailable,
			Message: "The Marketplace refused this idbridge server's vendor credentials, so the record cannot be refreshed now. The operator must renew them."}, err)
	case atlassian.IsTimeout(err):
		return fmt.Errorf("marketplace: %w: %w", &models.Error{Code: models.CodeUnavailable,
			Message: "The Marketplace did not answer in time, so the record could not be refreshed. Nothing was changed; try again later."}, err)
	case code == models.CodeUnavailable, errors.As(err, new(*atlassian.StatusError)):
		return fmt.Errorf("marketplace: %w: %w", &models.Error{Code: models.CodeUnavailable,
			Message: "The Marketplace is not answering properly right now, so the record could not be refreshed. Nothing was changed; try again later."}, err)
	}
	return fmt.Errorf("marketplace: %w", err)
}

// Run is the scheduled sync: it checks every Poll whether a run is due and
// runs it, until ctx is done. Without Marketplace credentials it returns
// at once.
func (s *Service) Run(ctx context.Context) error {
	if !s.SyncConfigured() {
		return nil
	}
	poll := s.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	timer := time.NewTimer(time.Second) // shortly after start
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if _, _, err := s.RunDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("marketplace licence sync", "error", err.Error())
		}
		timer.Reset(poll)
	}
}
