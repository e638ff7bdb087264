// Package privacy owns the rights of the people whose data idbridge holds
// (SPEC 8): export (GDPR Art. 15), erasure (Art. 17), restriction of
// processing (Art. 18) and its guard, rectification of directory
// attributes (Art. 16), Atlassian's Personal Data Reporting cycle, and
// the retention purge. Everything is driven by the data inventory and the
// table declarations in models, never by code per table.
package privacy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"idbridge/app/atlassian"
	"idbridge/app/audit"
	"idbridge/app/store"
	"idbridge/models"
)

// Config is what the privacy features need from configuration.
type Config struct {
	// AuditRetention and UninstallRetention are the retention periods
	// (IDBRIDGE_AUDIT_RETENTION, IDBRIDGE_UNINSTALL_RETENTION).
	AuditRetention     time.Duration
	UninstallRetention time.Duration
	// Reporting calls Atlassian's Personal Data Reporting API; nil: no
	// reporting cycle runs.
	Reporting *atlassian.Reporting
	// Sleep waits between reporting requests that Atlassian asked to
	// delay (Retry-After); a context-aware timer when nil. Tests inject it.
	Sleep func(ctx context.Context, d time.Duration) error
	// PatchDirectoryUsers applies a rectification to a person's directory
	// users, in one transaction with the caller's audit event; nil:
	// rectification is not available.
	PatchDirectoryUsers DirectoryPatch
	// OnBlocked hears every attempt the restriction guard held back, and
	// OnReport every reporting request's outcome; for metrics.
	OnBlocked func(what string)
	OnReport  func(outcome string)
}

// Service is the privacy features of one process.
type Service struct {
	cfg       Config
	store     *store.Store
	now       func() time.Time
	log       *slog.Logger
	reporting reportGate
	exports   exportGate
}

// New builds the service; it starts nothing.
func New(cfg Config, st *store.Store, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, store: st, now: now, log: log}
}

// MaxReasonLength bounds the reason of a restriction.
const MaxReasonLength = 500

// newPseudonym is the irreversible token that replaces an erased person's
// account ID: random, so nothing can map it back.
func newPseudonym() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return models.ErasedTokenPrefix + hex.EncodeToString(b)
}

// Erase erases one person from the site in one transaction: their rows
// deleted, the audit rows by or about them pseudonymised, their restriction
// and their entry in the reporting table gone, and a data_erased event
// that names only the pseudonym. Erasing again, or erasing an account
// idbridge holds nothing of, erases nothing and is recorded too.
func (s *Service) Erase(ctx context.Context, site *models.Site, actorAccountID, accountID string) (*models.Erasure, error) {
	if !models.ValidAccountID(accountID) {
		return nil, badAccountID()
	}
	return s.erase(ctx, site.ID, actorAccountID, accountID, "")
}

func (s *Service) erase(ctx context.Context, siteID, actorAccountID, accountID, reason string) (*models.Erasure, error) {
	out := &models.Erasure{Pseudonym: newPseudonym()}
	if actorAccountID == accountID {
		// Someone erasing themselves is not named by the record either.
		actorAccountID = out.Pseudonym
	}
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		counts, err := tx.ErasePerson(siteID, accountID, out.Pseudonym)
		if err != nil {
			return err
		}
		out.Rows = counts
		out.DirectoryUsers = counts["scim_users"]
		ev := models.AuditEvent{SiteID: siteID, ActorAccountID: actorAccountID, TargetAccountID: out.Pseudonym,
			Event: models.AuditDataErased, Section: "gdpr", Reason: reason}
		if out.Nothing() {
			ev.Reason = joinReason(reason, "nothing_held")
		}
		for t := range counts {
			ev.Fields = append(ev.Fields, t)
		}
		_, err = audit.Record(tx, ev)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

// Restrict restricts processing of the person's data, or changes the
// reason of a restriction; recorded as processing_restricted.
func (s *Service) Restrict(ctx context.Context, site *models.Site, actorAccountID, accountID, reason string) (*models.Restriction, error) {
	if !models.ValidAccountID(accountID) {
		return nil, badAccountID()
	}
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > MaxReasonLength || !utf8.ValidString(reason) || strings.ContainsRune(reason, 0) {
		return nil, models.FieldError("reason", "The reason is text of at most %d characters.", MaxReasonLength)
	}
	var out *models.Restriction
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		r, created, err := tx.SaveRestriction(&models.Restriction{SiteID: site.ID, AccountID: accountID, Reason: reason, RestrictedBy: actorAccountID})
		if err != nil {
			return err
		}
		out = r
		fields := []string{"reason"}
		if created {
			fields = nil
		}
		_, err = audit.Record(tx, models.AuditEvent{SiteID: site.ID, ActorAccountID: actorAccountID, TargetAccountID: accountID,
			Event: models.AuditProcessingRestricted, Section: "gdpr", Fields: fields})
		return err
	})
	return out, err
}

// Unrestrict lifts a restriction; recorded as processing_unrestricted.
// Not found when processing was not restricted.
func (s *Service) Unrestrict(ctx context.Context, site *models.Site, actorAccountID, accountID string) error {
	if !models.ValidAccountID(accountID) {
		return badAccountID()
	}
	return s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.DeleteRestriction(site.ID, accountID); err != nil {
			return err
		}
		_, err := audit.Record(tx, models.AuditEvent{SiteID: site.ID, ActorAccountID: actorAccountID, TargetAccountID: accountID,
			Event: models.AuditProcessingUnrestrict, Section: "gdpr"})
		return err
	})
}

// Restrictions lists up to limit of the site's restrictions after the
// account ID after.
func (s *Service) Restrictions(ctx context.Context, siteID, after string, limit int) ([]models.Restriction, error) {
	return s.store.View(ctx).ListRestrictions(siteID, after, limit)
}

// Restricted is the guard for code paths that process a person by account
// ID (customer sign-in): true when processing is restricted, counted.
func (s *Service) Restricted(ctx context.Context, siteID, accountID string) (bool, error) {
	return s.guard(ctx, models.BlockedSignIn, func(tx *store.Tx) (bool, error) {
		return tx.Restricted(siteID, accountID, models.BlockedSignIn)
	})
}

// RestrictedUser is the guard for the sync, which processes directory
// users: true when the user's account is restricted, counted.
func (s *Service) RestrictedUser(ctx context.Context, siteID, userID string) (bool, error) {
	return s.guard(ctx, models.BlockedSync, func(tx *store.Tx) (bool, error) {
		return tx.RestrictedUser(siteID, userID, models.BlockedSync)
	})
}

func (s *Service) guard(ctx context.Context, what string, check func(tx *store.Tx) (bool, error)) (bool, error) {
	var restricted bool
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		restricted, err = check(tx)
		return err
	})
	if err != nil {
		return false, err
	}
	if restricted {
		s.blocked(what)
	}
	return restricted, nil
}

func (s *Service) blocked(what string) {
	if s.cfg.OnBlocked != nil {
		s.cfg.OnBlocked(what)
	}
}

// Status is the site's privacy state for the admin page.
func (s *Service) Status(ctx context.Context, site *models.Site) (*models.PrivacyStatus, error) {
	view := s.store.View(ctx)
	out := &models.PrivacyStatus{ReportingEnabled: s.cfg.Reporting != nil}
	var err error
	if out.Restrictions, err = view.CountRestrictions(site.ID); err != nil {
		return nil, err
	}
	if out.AccountsHeld, err = view.CountReportAccounts(site.ID); err != nil {
		return nil, err
	}
	rs, err := view.FindReportSite(site.ID)
	if err != nil {
		return nil, err
	}
	out.CyclePeriod = periodOr(rs.CyclePeriod)
	out.CycleInProgress = rs.CycleStartedAt != nil
	out.LastCycleAt, out.NextCycleAt, out.RetryAt = rs.CycleFinishedAt, rs.NextCycleAt, rs.RetryAt
	out.Reported, out.Closed, out.Erased, out.Updated, out.Ignored = rs.Reported, rs.Closed, rs.Erased, rs.Updated, rs.Ignored
	out.LastStatus, out.LastMessage = rs.LastStatus, rs.LastMessage
	return out, nil
}

func periodOr(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return atlassian.DefaultCyclePeriod
}

// Scheduling of the background work.
const (
	// RunInterval is how often the worker looks for due work.
	RunInterval = 10 * time.Minute
	// runFirstAfter is how long after start it first looks.
	runFirstAfter = time.Minute
)

// Run is the privacy worker: until ctx ends, it runs the reporting cycle
// of the sites that are due and the retention purge when it is due, each
// on one replica at a time.
func (s *Service) Run(ctx context.Context) error {
	timer := time.NewTimer(runFirstAfter)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if _, _, err := s.PurgeDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("retention purge", "error", err.Error())
		}
		if s.cfg.Reporting != nil {
			if _, _, err := s.ReportAll(ctx, false); err != nil && ctx.Err() == nil {
				s.log.Warn("personal data reporting", "error", err.Error())
			}
		}
		timer.Reset(RunInterval)
	}
}
