// Package sync is the outbox worker (SPEC 6.1): it applies every directory
// change that the SCIM server accepted to the Atlassian site, through the
// site's service account, and owns what the admin page shows about it.
//
// How it works, in one place:
//   - Work is claimed per subject (one directory user or group) with a
//     lease in the database: the subject's oldest open item is the lock
//     and alone carries the lease (FOR UPDATE SKIP LOCKED on PostgreSQL,
//     so replicas share the work; on SQLite one process); the items
//     behind it are written once, at their outcome. A lease that runs out
//     (a replica died) is taken over, and the taker looks things up in
//     the site before acting.
//   - A subject's pending items are folded into the least work: the worker
//     brings the site to the directory's current state for that subject,
//     from what it recorded of the site (sync_users, sync_groups,
//     sync_members). A user created and deactivated before either was
//     applied costs nothing; three renames cost one.
//   - Memberships belong to the group: a user whose access changes
//     enqueues members_refresh items for its groups; a membership whose
//     user is not in the site yet waits for it (waiting_for). A group
//     claim records the memberships it adds before the calls, as being
//     added (sync_members.adding), and confirms them after: a crash in
//     between leaves the account known to the user's deactivation.
//   - Failures are scheduled in the database (Retry-After, else jittered
//     backoff), never slept on; permanent answers stop the item with a
//     sentence; a 401 pauses the site until new credentials or Resume.
//   - The accidental-deletion brake holds deactivations and deletions that
//     exceed the site's threshold within an hour, for an admin to apply or
//     discard.
package sync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"strconv"
	gosync "sync"
	"sync/atomic"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/store"
	"idbridge/models"
)

// Defaults of Config.
const (
	DefaultPerSite        = 4
	DefaultMaxWorkers     = 128
	DefaultLease          = 2 * time.Minute
	DefaultIdlePoll       = 3 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	DefaultCallsPerClaim  = 50
	DefaultBlockedRecheck = 30 * time.Second
	DefaultWaitRecheck    = 5 * time.Minute
	DefaultDoneRetention  = 7 * 24 * time.Hour
	DefaultFailedKeep     = 30 * 24 * time.Hour
	// OutboxChannel is the PostgreSQL channel on which a replica tells the
	// others that it added outbox items (payload: site IDs).
	OutboxChannel = "idbridge_outbox"
	// maxAttempts bounds retries of transient failures; then the item fails.
	maxAttempts = 25
	// minDispatchGap is the least time between two looks at the outbox
	// that new changes prompt (real time): at 2,000 SCIM creates a second
	// the worker looked after every commit, 45 % of the server's CPU
	// (docs/PERFORMANCE.md).
	minDispatchGap = 20 * time.Millisecond
	// gateRecheckOnWake is how often at most new changes make the worker
	// check again a site it found unable to sync (no service account,
	// paused, not installed); saving credentials or Resume is seen then.
	gateRecheckOnWake = time.Second
)

// Config tunes the worker; zero fields take the defaults.
type Config struct {
	// Owner names this replica in leases (each claim adds its number:
	// owner#n); a random one when empty.
	Owner string
	// PerSite bounds the subjects of one site applied at once, MaxWorkers
	// those of all sites: no site can take every worker.
	PerSite    int
	MaxWorkers int
	// Lease is how long a claim stays with this replica; a claim does at
	// most CallsPerClaim calls and stops after a third of the lease.
	Lease          time.Duration
	CallsPerClaim  int
	RequestTimeout time.Duration
	// IdlePoll is the longest an idle worker waits before looking again
	// (new outbox rows wake it at once).
	IdlePoll time.Duration
	// BlockedRecheck is how often a site that cannot sync (no service
	// account, paused) is looked at again.
	BlockedRecheck time.Duration
	// WaitRecheck is how long a membership waiting for its user waits at
	// most before it is looked at again (the user's creation wakes it).
	WaitRecheck time.Duration
	// BaseBackoff and MaxBackoff bound the jittered backoff of failures
	// without a Retry-After.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// DoneRetention and FailedKeep are how long applied (or discarded, or
	// not applicable) and failed items stay for the admin page.
	DoneRetention time.Duration
	FailedKeep    time.Duration

	// Restricted, when set, says whether processing is restricted for a
	// directory user (GDPR Art. 18, SPEC 8): its changes wait.
	Restricted func(ctx context.Context, siteID, userID string) (bool, error)
	// OnResult hears every item's outcome (an outbox status, or "retry",
	// "waiting"); OnRequest the answer to every request sent to Atlassian
	// (its HTTP status: "201", "429", …; "no_answer" for a timeout or a
	// dropped connection). For metrics; they must not block.
	OnResult  func(outcome string)
	OnRequest func(answer string)

	// Random is the jitter source, in [0, 1); math/rand/v2 when nil.
	Random func() float64
}

func (c *Config) defaults() {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&c.PerSite, DefaultPerSite)
	set(&c.MaxWorkers, DefaultMaxWorkers)
	set(&c.CallsPerClaim, DefaultCallsPerClaim)
	setD(&c.Lease, DefaultLease)
	setD(&c.RequestTimeout, DefaultRequestTimeout)
	setD(&c.IdlePoll, DefaultIdlePoll)
	setD(&c.BlockedRecheck, DefaultBlockedRecheck)
	setD(&c.WaitRecheck, DefaultWaitRecheck)
	setD(&c.BaseBackoff, 2*time.Second)
	setD(&c.MaxBackoff, 15*time.Minute)
	setD(&c.DoneRetention, DefaultDoneRetention)
	setD(&c.FailedKeep, DefaultFailedKeep)
	if c.Owner == "" {
		host, _ := os.Hostname()
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		c.Owner = host + "/" + hex.EncodeToString(b)
	}
	if c.Random == nil {
		c.Random = mrand.Float64
	}
}

// Worker applies the outbox. Build one with New; Run runs it.
type Worker struct {
	cfg      Config
	store    *store.Store
	accounts *atlassian.ServiceAccounts
	now      func() time.Time
	log      *slog.Logger

	wake chan struct{}
	sem  chan struct{}
	wg   gosync.WaitGroup
	// claims numbers this replica's claims (their lease owner names).
	claims atomic.Uint64

	mu      gosync.Mutex
	sites   map[string]*siteRun
	woken   map[string]bool
	wokeAll bool
	// local: site IDs this replica added items for, to tell the others.
	local map[string]bool
}

// siteRun is the worker's in-memory view of one site; w.mu guards it.
type siteRun struct {
	id      string
	running int
	// processing counts the running workers applying a claim (the others
	// are looking for one).
	processing int
	notBefore  time.Time
	// wakes counts the wake-ups for the site, so that a worker that found
	// nothing to claim does not go to sleep over one that came meanwhile.
	wakes uint64
	// ctx ends when the site stops (uninstalled): its calls end at once.
	ctx    context.Context
	cancel context.CancelFunc
	// clientKey, once known, matches lifecycle notifications.
	clientKey string
	// gateClosed is when (real time) the site was last found unable to
	// sync (not installed, no usable service account, paused): new
	// changes reopen the question at most every gateRecheckOnWake; an
	// admin's action (Reopen) at once.
	gateClosed time.Time
}

// New builds a worker; it starts nothing.
func New(cfg Config, st *store.Store, accounts *atlassian.ServiceAccounts, now func() time.Time, log *slog.Logger) *Worker {
	cfg.defaults()
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{
		cfg: cfg, store: st, accounts: accounts, now: now, log: log,
		wake:  make(chan struct{}, 1),
		sem:   make(chan struct{}, cfg.MaxWorkers),
		sites: map[string]*siteRun{}, woken: map[string]bool{}, local: map[string]bool{},
	}
}

// Wake tells the worker that sites got new outbox items (nil: any site).
// It never blocks; the store calls it after each commit (Store.OnOutbox).
func (w *Worker) Wake(siteIDs []string) {
	w.mu.Lock()
	if siteIDs == nil {
		w.wokeAll = true
	}
	for _, id := range siteIDs {
		w.woken[id] = true
		w.local[id] = true
		if sr, ok := w.sites[id]; ok {
			sr.wakes++
		}
	}
	if siteIDs == nil {
		for _, sr := range w.sites {
			sr.wakes++
		}
	}
	w.mu.Unlock()
	w.poke()
}

// Reopen wakes the worker for a site an admin acted on (Resume, a retry,
// new settings): a site found unable to sync is checked again at once.
func (w *Worker) Reopen(siteID string) {
	w.mu.Lock()
	if sr, ok := w.sites[siteID]; ok {
		sr.gateClosed = time.Time{}
	}
	w.mu.Unlock()
	w.Wake([]string{siteID})
}

func (w *Worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// SiteChanged is told the clientKey of a site whose lifecycle changed
// (sites.Service.OnSiteChanged): an uninstalled site's work stops at once.
// It does not block (the caller is a lifecycle request or the LISTEN
// loop): the site is read again on a goroutine of its own.
func (w *Worker) SiteChanged(clientKey string) {
	w.mu.Lock()
	var runs []*siteRun
	for _, sr := range w.sites {
		if sr.clientKey == clientKey {
			runs = append(runs, sr)
		}
	}
	w.mu.Unlock()
	if len(runs) == 0 {
		return
	}
	go func() {
		for _, sr := range runs {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			site, err := w.store.View(ctx).FindSiteByID(sr.id)
			cancel()
			if models.IsNotFound(err) || (err == nil && !site.Active()) {
				sr.cancel()
				w.log.Info("sync: site stopped", "site_id", sr.id)
			}
		}
		w.poke()
	}()
}

// Run applies the outbox until ctx ends, then waits for the claims in
// flight to record what they did.
func (w *Worker) Run(ctx context.Context) error {
	if w.store.Dialect() == store.Postgres {
		w.wg.Add(2)
		go func() {
			defer w.wg.Done()
			_ = w.store.Listen(ctx, OutboxChannel, func(string) { w.Wake(nil) }, func() { w.Wake(nil) }, nil)
		}()
		go func() {
			defer w.wg.Done()
			w.announce(ctx)
		}()
	}
	defer w.wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastPurge, lastDispatch time.Time
	for {
		select {
		case <-ctx.Done():
			w.stopAll()
			return nil
		case <-w.wake:
			// A stream of SCIM writes wakes the worker at every commit:
			// one look at the outbox serves those of the next few
			// milliseconds too, instead of one look each.
			if gap := time.Since(lastDispatch); gap < minDispatchGap {
				select {
				case <-ctx.Done():
					w.stopAll()
					return nil
				case <-time.After(minDispatchGap - gap):
				}
			}
		case <-timer.C:
		}
		lastDispatch = time.Now()
		if now := w.now(); now.Sub(lastPurge) >= time.Hour {
			lastPurge = now
			w.purge(ctx)
		}
		next := w.dispatch(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// announce tells the other replicas (PostgreSQL NOTIFY) about outbox
// items added here, at most every 50 ms and outside the writers'
// transactions, so SCIM writes never wait on it.
func (w *Worker) announce(ctx context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.mu.Lock()
		ids := make([]string, 0, len(w.local))
		for id := range w.local {
			ids = append(ids, id)
		}
		clear(w.local)
		w.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		if err := w.store.Announce(ctx, OutboxChannel, ids); err != nil && ctx.Err() == nil {
			w.log.Warn("sync: could not tell other replicas about new changes", "error", err.Error())
		}
	}
}

func (w *Worker) stopAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, sr := range w.sites {
		sr.cancel()
	}
}

// dispatch starts a worker for each site with due work and none running,
// and says how long to wait before looking again.
func (w *Worker) dispatch(ctx context.Context) time.Duration {
	pending, err := w.store.SitesWithPendingOutbox(ctx, 100000)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("sync: cannot read the outbox", "error", err.Error())
		}
		return w.cfg.IdlePoll
	}
	now := w.now()
	wait := w.cfg.IdlePoll
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := make(map[string]bool, len(pending))
	var keep []string
	for _, p := range pending {
		seen[p.SiteID] = true
		sr := w.siteRunLocked(ctx, p.SiteID)
		if w.wokeAll || w.woken[p.SiteID] {
			if since := time.Since(sr.gateClosed); sr.gateClosed.IsZero() || since >= gateRecheckOnWake {
				sr.notBefore = time.Time{}
			} else {
				// Checked moments ago: the wake-up (new credentials, say)
				// is kept for the look at the end of the second.
				keep = append(keep, p.SiteID)
				wait = min(wait, gateRecheckOnWake-since)
			}
		}
		due := p.NextAt
		if sr.notBefore.After(due) {
			due = sr.notBefore
		}
		if due.After(now) {
			wait = min(wait, due.Sub(now))
			continue
		}
		// A site with new changes of its own (not merely another
		// replica's announcement) whose workers are all busy applying a
		// claim gets one more (up to PerSite): a claim waiting on a slow
		// call (up to RequestTimeout) must not hold back the site's other
		// subjects. A worker still looking for work will see them anyway.
		if sr.running == 0 || (w.woken[p.SiteID] && sr.processing == sr.running) {
			w.spawnLocked(sr)
		}
	}
	clear(w.woken)
	w.wokeAll = false
	for _, id := range keep {
		w.woken[id] = true
	}
	// Forget idle sites without work, so the map follows the active sites.
	for id, sr := range w.sites {
		if !seen[id] && sr.running == 0 {
			sr.cancel()
			delete(w.sites, id)
		}
	}
	return max(wait, 10*time.Millisecond)
}

func (w *Worker) siteRunLocked(ctx context.Context, siteID string) *siteRun {
	sr, ok := w.sites[siteID]
	if ok && sr.ctx.Err() == nil {
		return sr
	}
	if ok && sr.running > 0 {
		return sr // stopping; its workers are on their way out
	}
	sctx, cancel := context.WithCancel(ctx)
	sr = &siteRun{id: siteID, ctx: sctx, cancel: cancel}
	w.sites[siteID] = sr
	return sr
}

// spawnLocked starts one more worker for the site when a slot is free;
// w.mu is held.
func (w *Worker) spawnLocked(sr *siteRun) bool {
	if sr.running >= w.cfg.PerSite || sr.ctx.Err() != nil {
		return false
	}
	select {
	case w.sem <- struct{}{}:
	default:
		return false
	}
	sr.running++
	w.wg.Add(1)
	go func() {
		defer func() {
			<-w.sem
			w.mu.Lock()
			sr.running--
			w.mu.Unlock()
			w.wg.Done()
			w.poke()
		}()
		w.runSite(sr)
	}()
	return true
}

// runSite claims and applies the site's subjects one after the other
// until none is due, starting a sibling after each claim (up to PerSite)
// so a busy site ramps up.
func (w *Worker) runSite(sr *siteRun) {
	ctx := sr.ctx
	w.mu.Lock()
	wakes := sr.wakes
	w.mu.Unlock()
	g, retry := w.openGate(ctx, sr)
	w.mu.Lock()
	if g == nil {
		sr.gateClosed = time.Now()
	} else {
		sr.gateClosed = time.Time{}
	}
	w.mu.Unlock()
	if g == nil {
		if !w.sleepUnlessWoken(sr, w.now().Add(retry), wakes) {
			w.mu.Lock()
			sr.notBefore = time.Time{}
			w.mu.Unlock()
		}
		return
	}
	for ctx.Err() == nil {
		if w.now().Sub(g.opened) > 10*time.Second {
			if g, retry = w.openGate(ctx, sr); g == nil {
				w.setNotBefore(sr, w.now().Add(retry))
				return
			}
		}
		if g.paused() {
			return
		}
		w.mu.Lock()
		wakes := sr.wakes
		w.mu.Unlock()
		// Each claim leases under a name of its own, so that a claim that
		// outlived its lease and was taken over by this same replica finds
		// its outcome lost, as one taken over by another replica does.
		owner := w.cfg.Owner + "#" + strconv.FormatUint(w.claims.Add(1), 36)
		claim, next, err := w.store.ClaimSyncSubject(ctx, sr.id, owner, w.cfg.Lease)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("sync: claim failed", "site_id", sr.id, "error", err.Error())
			}
			w.setNotBefore(sr, w.now().Add(w.cfg.IdlePoll))
			return
		}
		if claim == nil {
			if next.IsZero() {
				next = w.now().Add(w.cfg.BlockedRecheck)
			}
			if !w.sleepUnlessWoken(sr, next, wakes) {
				continue // woken while it looked: look again
			}
			return
		}
		w.mu.Lock()
		sr.processing++
		w.spawnLocked(sr)
		w.mu.Unlock()
		w.process(g, claim)
		w.mu.Lock()
		sr.processing--
		w.mu.Unlock()
	}
}

// sleepUnlessWoken sets when the site is looked at next, unless it was
// woken since the worker read wakes; false then.
func (w *Worker) sleepUnlessWoken(sr *siteRun, t time.Time, wakes uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if sr.wakes != wakes {
		return false
	}
	if sr.running <= 1 || t.Before(sr.notBefore) || sr.notBefore.IsZero() {
		sr.notBefore = t
	}
	return true
}

func (w *Worker) setNotBefore(sr *siteRun, t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if sr.running <= 1 || t.Before(sr.notBefore) || sr.notBefore.IsZero() {
		sr.notBefore = t
	}
}

// purge deletes outbox items that reached their outcome long ago, and
// makes due any deferred item left without a head before it (the safety
// net of store.FinishSyncItems' deferral).
func (w *Worker) purge(ctx context.Context) {
	now := w.now()
	if n, err := w.store.UndeferSyncHeads(ctx, 10000); err != nil {
		if ctx.Err() == nil {
			w.log.Warn("sync: could not check deferred changes", "error", err.Error())
		}
	} else if n > 0 {
		w.log.Warn("sync: deferred changes had no change before them; made due", "count", n)
	}
	for _, p := range []struct {
		before   time.Time
		statuses []string
	}{
		{now.Add(-w.cfg.DoneRetention), []string{"applied", "not_applicable", "discarded"}},
		{now.Add(-w.cfg.FailedKeep), []string{"failed"}},
	} {
		for range 100 {
			n, err := w.store.PurgeSyncedItems(ctx, p.before, p.statuses, 1000)
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn("sync: purge of old outbox items failed", "error", err.Error())
				}
				return
			}
			if n < 1000 {
				break
			}
		}
	}
}

// backoff is the jittered wait before attempt n+1 (n ≥ 1): between half
// and all of min(MaxBackoff, BaseBackoff·2^(n-1)).
func (w *Worker) backoff(n int) time.Duration {
	ceiling := float64(w.cfg.MaxBackoff)
	if d := float64(w.cfg.BaseBackoff) * math.Pow(2, float64(max(n-1, 0))); d < ceiling {
		ceiling = d
	}
	return time.Duration(ceiling/2 + w.cfg.Random()*ceiling/2)
}

// Idle reports whether no claim is being worked on in this process (for
// tests and diagnostics).
func (w *Worker) Idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, sr := range w.sites {
		if sr.running > 0 {
			return false
		}
	}
	return true
}
