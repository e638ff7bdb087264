package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"idbridge/models"
)

// MaxClaimItems bounds how many outbox items of one subject a claim takes;
// the rest wait for the next claim, in order.
const MaxClaimItems = 500

// openStatuses are the statuses that keep a subject's later items waiting:
// items of one user or group are applied in order.
const openStatuses = `('pending', 'held')`

// outboxColumns are the columns scanOutboxItem reads, in order.
const outboxColumns = `site_id, id, resource_type, resource_id, op, payload, status, attempts,
	next_attempt_at, last_error, created_at, updated_at, lease_owner, lease_until, recover, waiting_for`

// SyncItem is an outbox item as the sync worker sees it.
type SyncItem struct {
	models.OutboxItem
	LeaseOwner string // who holds its lease ("" when nobody)
	LeaseUntil *time.Time
	Recover    bool
	WaitingFor string
}

func scanSyncItem(rows *sql.Rows) (SyncItem, error) {
	var it SyncItem
	var op, payload string
	var until sql.NullTime
	err := rows.Scan(&it.SiteID, &it.ID, &it.ResourceType, &it.ResourceID, &op, &payload, &it.Status, &it.Attempts,
		&it.NextAttemptAt, &it.LastError, &it.CreatedAt, &it.UpdatedAt, &it.LeaseOwner, &until, &it.Recover, &it.WaitingFor)
	if err != nil {
		return it, err
	}
	it.LeaseUntil = nullTime(until)
	it.Op, it.Payload = models.OutboxOp(op), []byte(payload)
	it.NextAttemptAt, it.CreatedAt, it.UpdatedAt = it.NextAttemptAt.UTC(), it.CreatedAt.UTC(), it.UpdatedAt.UTC()
	return it, nil
}

// SitePending is a site with outbox items to apply and when the first of
// them is due.
type SitePending struct {
	SiteID string
	NextAt time.Time
}

// SitesWithPendingOutbox lists the sites with pending outbox items, over
// all sites: the one sync read not scoped to a site (like the backlog
// metric), since the worker serves every site. It skips through the
// outbox_site_claim index one site at a time, so its cost follows the
// number of sites, not of items. At most limit sites.
func (s *Store) SitesWithPendingOutbox(ctx context.Context, limit int) ([]SitePending, error) {
	rows, err := s.sqlDB.QueryContext(ctx, s.native(`WITH RECURSIVE s(site_id) AS (
			SELECT min(site_id) FROM outbox WHERE status = 'pending'
			UNION ALL
			SELECT (SELECT min(o.site_id) FROM outbox o WHERE o.status = 'pending' AND o.site_id > s.site_id)
			FROM s WHERE s.site_id IS NOT NULL
		)
		SELECT site_id FROM s WHERE site_id IS NOT NULL LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("sites with pending outbox: %w", translate(err))
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sites with pending outbox: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sites with pending outbox: %w", translate(err))
	}
	out := make([]SitePending, 0, len(ids))
	for _, id := range ids {
		var at time.Time
		// The column itself, not min(): SQLite's driver reads a time only
		// from a column declared as one.
		err := s.sqlDB.QueryRowContext(ctx, s.native(`SELECT next_attempt_at FROM outbox
			WHERE site_id = ? AND status = 'pending' ORDER BY next_attempt_at LIMIT 1`), id).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sites with pending outbox: %w", translate(err))
		}
		out = append(out, SitePending{SiteID: id, NextAt: at.UTC()})
	}
	return out, nil
}

// SyncClaim is one subject (a user or a group) of a site leased to a
// worker: its pending items in order.
type SyncClaim struct {
	SiteID       string
	ResourceType string
	ResourceID   string
	// Head is the ID of the item that holds the lease: the subject's
	// oldest open item, Items[0]; Owner the name the lease is held under.
	Head  int64
	Owner string
	Items []SyncItem
	// Recover says an earlier attempt may have been applied without being
	// recorded (a worker died holding the lease, or an answer was lost).
	Recover    bool
	LeaseUntil time.Time
}

// IDs are the claimed items' IDs.
func (c *SyncClaim) IDs() []int64 {
	ids := make([]int64, len(c.Items))
	for i, it := range c.Items {
		ids[i] = it.ID
	}
	return ids
}

// ClaimSyncSubject leases the site's next due subject to owner until
// now+lease: the subject whose oldest open item (its head) is due and not
// leased by a live worker. On PostgreSQL, replicas skip each other's rows
// (FOR UPDATE SKIP LOCKED); an expired lease is taken over, and the claim
// is marked to look things up first (recover). With nothing to claim it
// returns nil and when the site has something due next (zero: nothing
// scheduled).
//
// Only the head carries the lease: a subject's later items cannot be
// claimed while an earlier one is open, so the head's lease is the
// subject's. The claim leases the head in one statement (walking the
// outbox_site_claim index in order) and reads the subject's next pending
// items with it, up to MaxClaimItems in all; those are written once, at
// their outcome (FinishSyncItems), not at every claim.
func (s *Store) ClaimSyncSubject(ctx context.Context, siteID, owner string, lease time.Duration) (*SyncClaim, time.Time, error) {
	var claim *SyncClaim
	var next time.Time
	err := s.InTx(ctx, func(tx *Tx) error {
		claim, next = nil, time.Time{}
		now := tx.s.Now()
		// A few tries: a candidate whose later items another claim holds
		// steps aside (below), and the walk goes on past it.
		for range 3 {
			c, aside, err := tx.claimSyncHead(siteID, owner, now, lease)
			if err != nil || c != nil {
				claim = c
				return err
			}
			if !aside {
				next, err = tx.nextSyncDue(siteID, now)
				return err
			}
		}
		next = now
		return nil
	})
	return claim, next, err
}

// claimSyncHead leases the site's next due head and reads the items
// behind it; nil when there is none, or when the candidate stepped aside
// (aside): an item behind it is leased by a live claim, as
// happens when an older item of a subject in flight becomes pending again
// (an admin's retry of a failed item) or commits late (PostgreSQL's IDs
// are taken before commit). Two claims of one subject would both call
// Atlassian, and the later would record over the earlier; the candidate
// waits instead, a few seconds or until that lease ends. A lease behind
// the candidate that ran out is a claim that died: its items are taken
// over (its owner's outcome is then lost) and looked up first.
func (tx *Tx) claimSyncHead(siteID, owner string, now time.Time, lease time.Duration) (c *SyncClaim, aside bool, err error) {
	lock := ""
	if tx.s.dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	until := now.Add(lease)
	// SET reads the row as it was: recover keeps what an earlier holder
	// of the lease (one that ran out) may have left unrecorded.
	rows, err := tx.db.Raw(`UPDATE outbox SET lease_owner = ?, lease_until = ?, recover = (recover OR lease_owner <> '')
		WHERE site_id = ? AND id = (
			SELECT o.id FROM outbox o
			WHERE o.site_id = ? AND o.status = 'pending' AND o.next_attempt_at <= ?
			  AND (o.lease_until IS NULL OR o.lease_until < ?)
			  AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.site_id = o.site_id AND p.resource_id = o.resource_id
			                  AND p.id < o.id AND p.status IN `+openStatuses+`)
			ORDER BY o.next_attempt_at, o.id LIMIT 1`+lock+`)
		RETURNING `+outboxColumns, owner, until, siteID, siteID, now, now).Rows()
	if err != nil {
		return nil, false, fmt.Errorf("claim sync subject: %w", translate(err))
	}
	items, err := scanSyncItems(rows)
	if err != nil {
		return nil, false, fmt.Errorf("claim sync subject: %w", err)
	}
	if len(items) == 0 {
		return nil, false, nil
	}
	head := items[0]
	rows, err = tx.db.Raw(`SELECT `+outboxColumns+` FROM outbox
		WHERE site_id = ? AND resource_id = ? AND id > ? AND status = 'pending' ORDER BY id LIMIT `+strconv.Itoa(MaxClaimItems-1),
		siteID, head.ResourceID, head.ID).Rows()
	if err != nil {
		return nil, false, fmt.Errorf("claim sync subject: %w", translate(err))
	}
	rest, err := scanSyncItems(rows)
	if err != nil {
		return nil, false, fmt.Errorf("claim sync subject: %w", err)
	}
	c = &SyncClaim{SiteID: siteID, ResourceType: head.ResourceType, ResourceID: head.ResourceID, LeaseUntil: until,
		Head: head.ID, Owner: owner, Items: append(items, rest...)}
	var dead []int64
	for _, it := range rest {
		if it.LeaseOwner == "" {
			continue
		}
		if it.LeaseUntil != nil && it.LeaseUntil.After(now) {
			wait := min(it.LeaseUntil.Sub(now), claimStepAside)
			err := tx.db.Exec(`UPDATE outbox SET lease_owner = '', lease_until = NULL, next_attempt_at = ? WHERE site_id = ? AND id = ?`,
				now.Add(wait), siteID, head.ID).Error
			if err != nil {
				return nil, false, fmt.Errorf("claim sync subject: %w", translate(err))
			}
			return nil, true, nil
		}
		dead = append(dead, it.ID)
	}
	if len(dead) > 0 {
		err := tx.db.Exec(`UPDATE outbox SET lease_owner = '', lease_until = NULL WHERE site_id = ? AND id IN ?`, siteID, dead).Error
		if err != nil {
			return nil, false, fmt.Errorf("claim sync subject: %w", translate(err))
		}
		c.Recover = true
	}
	for _, it := range c.Items {
		// A later item marked recover (a lease of the protocol before
		// head-only leases) counts as well.
		c.Recover = c.Recover || it.Recover
	}
	return c, false, nil
}

// claimStepAside is how long at most a candidate waits that stepped aside
// for a live claim of the items behind it.
const claimStepAside = 5 * time.Second

// scanSyncItems reads and closes rows of outboxColumns.
func scanSyncItems(rows *sql.Rows) ([]SyncItem, error) {
	defer rows.Close()
	var items []SyncItem
	for rows.Next() {
		it, err := scanSyncItem(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return items, nil
}

// nextLeaseSQL reads when the site's next lease runs out, from
// outbox_leased (its lease_until condition implies the index's).
const nextLeaseSQL = `SELECT lease_until FROM outbox WHERE site_id = ? AND lease_until > ? AND status = 'pending' ORDER BY lease_until LIMIT 1`

// nextSyncDue is when the site's next pending item is due or its next
// lease runs out, whichever is first; zero when neither.
func (tx *Tx) nextSyncDue(siteID string, now time.Time) (time.Time, error) {
	var next time.Time
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`SELECT next_attempt_at FROM outbox WHERE site_id = ? AND status = 'pending' AND next_attempt_at > ? AND next_attempt_at < ?
			ORDER BY next_attempt_at LIMIT 1`, []any{siteID, now, deferredAt}},
		{nextLeaseSQL, []any{siteID, now}},
	} {
		var at time.Time
		err := tx.db.Raw(q.sql, q.args...).Row().Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("next sync due: %w", translate(err))
		}
		if next.IsZero() || at.Before(next) {
			next = at.UTC()
		}
	}
	return next, nil
}

// RenewSyncLease extends owner's lease on the claimed subject; false when
// the lease was lost (another worker took the subject over).
func (tx *Tx) RenewSyncLease(c *SyncClaim, owner string, until time.Time) (bool, error) {
	res := tx.db.Exec(`UPDATE outbox SET lease_until = ? WHERE site_id = ? AND id = ? AND lease_owner = ?`,
		until, c.SiteID, c.Head, owner)
	if res.Error != nil {
		return false, fmt.Errorf("renew sync lease: %w", translate(res.Error))
	}
	c.LeaseUntil = until
	return res.RowsAffected == 1, nil
}

// SyncResult is what became of one claimed item.
type SyncResult struct {
	ID     int64
	Status string // an outbox status; pending to try again
	Error  string // the reason, in words
	// For pending: when to try again, whether to count an attempt, whether
	// to look the change up first, and which user it waits for.
	NextAttemptAt time.Time
	CountAttempt  bool
	Recover       bool
	WaitingFor    string
}

// deferredAt is the next attempt of a pending item that waits behind its
// subject's head (FinishSyncItems): later than any real time, so that the
// claim's walk of outbox_site_claim never reaches it, and recognisable.
var deferredAt = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// FinishSyncItems records the outcome of a claim's items and releases its
// lease, if owner still holds it; lost is true when it does not (another
// worker took the subject over: it will look things up) and nothing is
// written then. Items with the same outcome are written in one statement
// (a claim's items mostly share one).
//
// Of the items still pending, only the first (the subject's head from now
// on) is written with the outcome: when to try again, why, whether to look
// things up first, whom it waits for — for the whole subject, since later
// items wait behind it. The others are deferred once (next attempt
// deferredAt, so that no claim walks past them while the head waits) and
// otherwise not touched until their own outcome: a group of 170 pending
// memberships stopped by a 429 every 20 calls was rewritten whole at each
// stop, about ten row versions per request sent (docs/PERFORMANCE.md).
//
// The statements name rows by their key only, and the head's lock guards
// them (only its holder changes a claimed subject's pending items): a
// status condition would let the planner take a status index
// (outbox_site_claim, outbox_due) for a few rows when the table has no
// statistics yet, scanning the site's whole backlog (measured: about
// 1,200 buffer reads for a 4-row update).
func (tx *Tx) FinishSyncItems(c *SyncClaim, owner string, results []SyncResult) (lost bool, err error) {
	now := tx.s.Now()
	q := `SELECT lease_owner, status FROM outbox WHERE site_id = ? AND id = ?`
	if tx.s.dialect == Postgres {
		q += ` FOR UPDATE`
	}
	var holder, status string
	err = tx.db.Raw(q, c.SiteID, c.Head).Row().Scan(&holder, &status)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (holder != owner || status != models.OutboxStatusPending)) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("finish sync items: %w", translate(err))
	}
	sorted := slices.Clone(results)
	slices.SortFunc(sorted, func(a, b SyncResult) int { return cmp.Compare(a.ID, b.ID) })
	type outcome struct {
		status, msg, waitingFor string
		next                    time.Time
		inc                     int
		recover                 bool
	}
	var order []outcome
	ids := map[outcome][]int64{}
	var deferred []int64
	headWritten, pendingSeen := false, false
	for _, r := range sorted {
		if r.Status == models.OutboxStatusPending {
			if pendingSeen {
				deferred = append(deferred, r.ID)
				continue
			}
			pendingSeen = true
		}
		headWritten = headWritten || r.ID == c.Head
		next := r.NextAttemptAt
		if next.IsZero() {
			next = now
		}
		o := outcome{status: r.Status, msg: truncateText(r.Error, 1000), waitingFor: r.WaitingFor, next: next.UTC(), recover: r.Recover}
		if r.CountAttempt {
			o.inc = 1
		}
		if _, ok := ids[o]; !ok {
			order = append(order, o)
		}
		ids[o] = append(ids[o], r.ID)
	}
	for _, o := range order {
		for chunk := range slices.Chunk(ids[o], 500) {
			err := tx.db.Exec(`UPDATE outbox SET status = ?, last_error = ?, next_attempt_at = ?, attempts = attempts + ?,
				recover = ?, waiting_for = ?, lease_owner = '', lease_until = NULL, updated_at = ?
				WHERE site_id = ? AND id IN ?`,
				o.status, o.msg, o.next, o.inc, o.recover, o.waitingFor, now, c.SiteID, chunk).Error
			if err != nil {
				return false, fmt.Errorf("finish sync items: %w", translate(err))
			}
		}
	}
	for chunk := range slices.Chunk(deferred, 500) {
		// Only those not deferred yet: most were, at an earlier stop.
		// Its head carries whether to look things up and whom it waits
		// for; the flags of an item behind it would only mislead.
		err := tx.db.Exec(`UPDATE outbox SET next_attempt_at = ?, lease_owner = '', lease_until = NULL, recover = FALSE, waiting_for = ''
			WHERE site_id = ? AND id IN ? AND next_attempt_at < ?`, deferredAt, c.SiteID, chunk, deferredAt).Error
		if err != nil {
			return false, fmt.Errorf("finish sync items: %w", translate(err))
		}
	}
	if !pendingSeen && len(c.Items) >= MaxClaimItems {
		// Every item of a full claim reached its outcome: the subject's
		// next open item, beyond what the claim read, may be one deferred
		// by an earlier claim that began later in the subject (an older
		// item came back before it); it is the head now, due at once.
		last := c.Items[len(c.Items)-1].ID
		err := tx.db.Exec(`UPDATE outbox SET next_attempt_at = ? WHERE site_id = ? AND id = (
				SELECT n.id FROM outbox n WHERE n.site_id = ? AND n.resource_id = ? AND n.id > ? AND n.status IN `+openStatuses+`
				ORDER BY n.id LIMIT 1)
			AND next_attempt_at >= ?`, now, c.SiteID, c.SiteID, c.ResourceID, last, deferredAt).Error
		if err != nil {
			return false, fmt.Errorf("finish sync items: %w", translate(err))
		}
	}
	if !headWritten {
		// No result for the head (a caller's slip): release its lease all
		// the same, so the subject is not stuck until it runs out.
		err := tx.db.Exec(`UPDATE outbox SET lease_owner = '', lease_until = NULL WHERE site_id = ? AND id = ?`, c.SiteID, c.Head).Error
		if err != nil {
			return false, fmt.Errorf("finish sync items: %w", translate(err))
		}
	}
	return false, nil
}

// UndeferSyncHeads makes due every deferred item (FinishSyncItems) that is
// its subject's oldest open item, over all sites, at most limit of them:
// the hourly safety net should a subject ever lose its head otherwise (an
// item before it changed outside a claim). Returns how many it woke.
func (s *Store) UndeferSyncHeads(ctx context.Context, limit int) (int64, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE outbox SET next_attempt_at = ? WHERE (site_id, id) IN (
			SELECT o.site_id, o.id FROM outbox o WHERE o.status = 'pending' AND o.next_attempt_at >= ?
			  AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.site_id = o.site_id AND p.resource_id = o.resource_id
			                  AND p.id < o.id AND p.status IN `+openStatuses+`)
			LIMIT ?)`, s.Now(), deferredAt, limit)
	if res.Error != nil {
		return 0, fmt.Errorf("undefer sync heads: %w", translate(res.Error))
	}
	return res.RowsAffected, nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// --- the Atlassian side of users, groups and memberships ------------------

// FindSyncUser returns the Atlassian side of a directory user; none yet:
// not found.
func (tx *Tx) FindSyncUser(siteID, userID string, forUpdate bool) (*models.SyncUser, error) {
	q := `SELECT site_id, user_id, account_id, state, name, keep_access, gen, updated_at FROM sync_users WHERE site_id = ? AND user_id = ?`
	if forUpdate && tx.s.dialect == Postgres {
		q += ` FOR UPDATE`
	}
	var u models.SyncUser
	var state string
	err := tx.db.Raw(q, siteID, userID).Row().Scan(&u.SiteID, &u.UserID, &u.AccountID, &state, &u.Name, &u.KeepAccess, &u.Gen, &u.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "the user has no Atlassian side yet"}
	}
	if err != nil {
		return nil, fmt.Errorf("find sync user: %w", translate(err))
	}
	u.State, u.UpdatedAt = models.SyncUserState(state), u.UpdatedAt.UTC()
	return &u, nil
}

// FindSyncUsers returns the Atlassian side of the listed users that have
// one, by user ID.
func (tx *Tx) FindSyncUsers(siteID string, userIDs []string) (map[string]models.SyncUser, error) {
	out := make(map[string]models.SyncUser, len(userIDs))
	for start := 0; start < len(userIDs); start += 500 {
		chunk := userIDs[start:min(start+500, len(userIDs))]
		rows, err := tx.db.Raw(`SELECT site_id, user_id, account_id, state, name, keep_access, gen, updated_at
			FROM sync_users WHERE site_id = ? AND user_id IN ?`, siteID, chunk).Rows()
		if err != nil {
			return nil, fmt.Errorf("find sync users: %w", translate(err))
		}
		for rows.Next() {
			var u models.SyncUser
			var state string
			if err := rows.Scan(&u.SiteID, &u.UserID, &u.AccountID, &state, &u.Name, &u.KeepAccess, &u.Gen, &u.UpdatedAt); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find sync users: %w", err)
			}
			u.State, u.UpdatedAt = models.SyncUserState(state), u.UpdatedAt.UTC()
			out[u.UserID] = u
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find sync users: %w", translate(err))
		}
	}
	return out, nil
}

// LockSyncUsers takes LockSyncUser's lock of each listed user, in one
// statement and in sorted order (so two transactions locking overlapping
// users cannot deadlock), and returns their Atlassian side read under the
// lock (rows locked for update on PostgreSQL, as FindSyncUser's forUpdate).
func (tx *Tx) LockSyncUsers(siteID string, userIDs []string) (map[string]models.SyncUser, error) {
	ids := slices.Clone(userIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if tx.s.dialect != Postgres {
		return tx.FindSyncUsers(siteID, ids)
	}
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		var q strings.Builder
		args := make([]any, 0, len(chunk)+1)
		args = append(args, siteID)
		q.WriteString(`SELECT count(pg_advisory_xact_lock(hashtextextended('idbridge sync user: ' || current_schema() || '/' || ? || '/' || u.id, 0)))
			FROM (VALUES `)
		for i, id := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?)")
			args = append(args, id)
		}
		q.WriteString(`) AS u(id)`)
		// The VALUES rows are read in order, each taking its lock before the next.
		if err := tx.db.Exec(q.String(), args...).Error; err != nil {
			return nil, fmt.Errorf("lock sync users: %w", translate(err))
		}
	}
	out := make(map[string]models.SyncUser, len(ids))
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		rows, err := tx.db.Raw(`SELECT site_id, user_id, account_id, state, name, keep_access, gen, updated_at
			FROM sync_users WHERE site_id = ? AND user_id IN ? ORDER BY user_id FOR UPDATE`, siteID, chunk).Rows()
		if err != nil {
			return nil, fmt.Errorf("lock sync users: %w", translate(err))
		}
		for rows.Next() {
			var u models.SyncUser
			var state string
			if err := rows.Scan(&u.SiteID, &u.UserID, &u.AccountID, &state, &u.Name, &u.KeepAccess, &u.Gen, &u.UpdatedAt); err != nil {
				rows.Close()
				return nil, fmt.Errorf("lock sync users: %w", err)
			}
			u.State, u.UpdatedAt = models.SyncUserState(state), u.UpdatedAt.UTC()
			out[u.UserID] = u
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("lock sync users: %w", translate(err))
		}
	}
	return out, nil
}

// SaveSyncUser creates or replaces the Atlassian side of a user. A change
// of state counts a new generation.
func (tx *Tx) SaveSyncUser(u *models.SyncUser) error {
	now := tx.s.Now()
	err := tx.db.Exec(`INSERT INTO sync_users (site_id, user_id, account_id, state, name, keep_access, gen, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 1, ?)
		ON CONFLICT (site_id, user_id) DO UPDATE SET account_id = excluded.account_id, name = excluded.name,
			keep_access = excluded.keep_access, updated_at = excluded.updated_at,
			gen = CASE WHEN sync_users.state = excluded.state THEN sync_users.gen ELSE sync_users.gen + 1 END,
			state = excluded.state`,
		u.SiteID, u.UserID, u.AccountID, string(u.State), u.Name, u.KeepAccess, now).Error
	if err != nil {
		return fmt.Errorf("save sync user: %w", translate(err))
	}
	return nil
}

// DeleteSyncUser forgets the Atlassian side of a user (after its deletion
// was applied), with the memberships recorded for it.
func (tx *Tx) DeleteSyncUser(siteID, userID string) error {
	if err := tx.db.Exec(`DELETE FROM sync_users WHERE site_id = ? AND user_id = ?`, siteID, userID).Error; err != nil {
		return fmt.Errorf("delete sync user: %w", translate(err))
	}
	return nil
}

// FindSyncGroup returns the Atlassian side of a directory group; none yet:
// not found.
func (tx *Tx) FindSyncGroup(siteID, groupID string) (*models.SyncGroup, error) {
	var g models.SyncGroup
	err := tx.db.Raw(`SELECT site_id, group_id, atlassian_id, name, previous_id, updated_at FROM sync_groups
		WHERE site_id = ? AND group_id = ?`, siteID, groupID).Row().Scan(&g.SiteID, &g.GroupID, &g.AtlassianID, &g.Name, &g.PreviousID, &g.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "the group has no Atlassian side yet"}
	}
	if err != nil {
		return nil, fmt.Errorf("find sync group: %w", translate(err))
	}
	g.UpdatedAt = g.UpdatedAt.UTC()
	return &g, nil
}

// SaveSyncGroup creates or replaces the Atlassian side of a group.
func (tx *Tx) SaveSyncGroup(g *models.SyncGroup) error {
	err := tx.db.Exec(`INSERT INTO sync_groups (site_id, group_id, atlassian_id, name, previous_id, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (site_id, group_id) DO UPDATE SET atlassian_id = excluded.atlassian_id, name = excluded.name,
			previous_id = excluded.previous_id, updated_at = excluded.updated_at`,
		g.SiteID, g.GroupID, g.AtlassianID, g.Name, g.PreviousID, tx.s.Now()).Error
	if err != nil {
		return fmt.Errorf("save sync group: %w", translate(err))
	}
	return nil
}

// DeleteSyncGroup forgets the Atlassian side of a group and its memberships.
func (tx *Tx) DeleteSyncGroup(siteID, groupID string) error {
	for _, q := range []string{`DELETE FROM sync_members WHERE site_id = ? AND group_id = ?`,
		`DELETE FROM sync_groups WHERE site_id = ? AND group_id = ?`} {
		if err := tx.db.Exec(q, siteID, groupID).Error; err != nil {
			return fmt.Errorf("delete sync group: %w", translate(err))
		}
	}
	return nil
}

// SyncMembers returns the memberships of the group recorded, by user ID:
// applied, or being added (Adding); only among userIDs when it is not nil.
func (tx *Tx) SyncMembers(siteID, groupID string, userIDs []string) (map[string]models.SyncMember, error) {
	out := map[string]models.SyncMember{}
	scan := func(q string, args ...any) error {
		rows, err := tx.db.Raw(q, args...).Rows()
		if err != nil {
			return fmt.Errorf("sync members: %w", translate(err))
		}
		defer rows.Close()
		for rows.Next() {
			var u string
			var m models.SyncMember
			if err := rows.Scan(&u, &m.AccountID, &m.Adding); err != nil {
				return fmt.Errorf("sync members: %w", err)
			}
			out[u] = m
		}
		return rows.Err()
	}
	if userIDs == nil {
		return out, scan(`SELECT user_id, account_id, adding FROM sync_members WHERE site_id = ? AND group_id = ?`, siteID, groupID)
	}
	for chunk := range slices.Chunk(userIDs, 500) {
		if err := scan(`SELECT user_id, account_id, adding FROM sync_members WHERE site_id = ? AND group_id = ? AND user_id IN ?`, siteID, groupID, chunk); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SyncGroupsOfUser lists the groups in which the user's membership is
// recorded: applied, or being added (the site may have it).
func (tx *Tx) SyncGroupsOfUser(siteID, userID string) ([]string, error) {
	var ids []string
	if err := tx.db.Raw(`SELECT group_id FROM sync_members WHERE site_id = ? AND user_id = ? ORDER BY group_id`, siteID, userID).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("sync groups of user: %w", translate(err))
	}
	return ids, nil
}

// SetSyncMember records (member true) a membership as applied, confirming
// one being added, or forgets it.
func (tx *Tx) SetSyncMember(siteID, groupID, userID, accountID string, member bool) error {
	if member {
		return tx.upsertSyncMembers("set sync member", siteID, groupID, map[string]string{userID: accountID}, false)
	}
	if err := tx.db.Exec(`DELETE FROM sync_members WHERE site_id = ? AND group_id = ? AND user_id = ?`, siteID, groupID, userID).Error; err != nil {
		return fmt.Errorf("set sync member: %w", translate(err))
	}
	return nil
}

// SetSyncMembers records several memberships of one group at once:
// members maps user IDs to the account that joined (applied, confirming
// those being added), removed lists users that left (or whose add did not
// happen).
func (tx *Tx) SetSyncMembers(siteID, groupID string, members map[string]string, removed []string) error {
	if err := tx.upsertSyncMembers("set sync members", siteID, groupID, members, false); err != nil {
		return err
	}
	for chunk := range slices.Chunk(removed, 500) {
		if err := tx.db.Exec(`DELETE FROM sync_members WHERE site_id = ? AND group_id = ? AND user_id IN ?`, siteID, groupID, chunk).Error; err != nil {
			return fmt.Errorf("set sync members: %w", translate(err))
		}
	}
	return nil
}

// SetSyncMembersAdding records memberships of one group about to be added,
// before the calls that add them: members maps user IDs to the account
// being added. A membership recorded as applied stays so; one being added
// takes the new account.
func (tx *Tx) SetSyncMembersAdding(siteID, groupID string, members map[string]string) error {
	return tx.upsertSyncMembers("set sync members adding", siteID, groupID, members, true)
}

// upsertSyncMembers writes memberships of one group, 200 a statement:
// applied ones over whatever was recorded, or (adding) ones being added
// over nothing or another being added.
func (tx *Tx) upsertSyncMembers(what, siteID, groupID string, members map[string]string, adding bool) error {
	users := make([]string, 0, len(members))
	for u := range members {
		users = append(users, u)
	}
	slices.Sort(users)
	conflict := ` ON CONFLICT (site_id, group_id, user_id) DO UPDATE SET account_id = excluded.account_id, adding = FALSE`
	if adding {
		conflict = ` ON CONFLICT (site_id, group_id, user_id) DO UPDATE SET account_id = excluded.account_id WHERE sync_members.adding`
	}
	for chunk := range slices.Chunk(users, 200) {
		var q strings.Builder
		args := make([]any, 0, 5*len(chunk))
		q.WriteString(`INSERT INTO sync_members (site_id, group_id, user_id, account_id, adding) VALUES `)
		for i, u := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?)")
			args = append(args, siteID, groupID, u, members[u], adding)
		}
		q.WriteString(conflict)
		if err := tx.db.Exec(q.String(), args...).Error; err != nil {
			return fmt.Errorf("%s: %w", what, translate(err))
		}
	}
	return nil
}

// DeleteSyncMembersOfUser forgets every membership of a user (the site
// dropped them, or an admin chose to leave the site as it is).
func (tx *Tx) DeleteSyncMembersOfUser(siteID, userID string) error {
	if err := tx.db.Exec(`DELETE FROM sync_members WHERE site_id = ? AND user_id = ?`, siteID, userID).Error; err != nil {
		return fmt.Errorf("delete sync members of user: %w", translate(err))
	}
	return nil
}

// DirectoryMembersAmong returns which of userIDs are members of the
// directory group now.
func (tx *Tx) DirectoryMembersAmong(siteID, groupID string, userIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for start := 0; start < len(userIDs); start += 500 {
		chunk := userIDs[start:min(start+500, len(userIDs))]
		var ids []string
		if err := tx.db.Raw(`SELECT user_id FROM scim_group_members WHERE site_id = ? AND group_id = ? AND user_id IN ?`,
			siteID, groupID, chunk).Scan(&ids).Error; err != nil {
			return nil, fmt.Errorf("directory members: %w", translate(err))
		}
		for _, id := range ids {
			out[id] = true
		}
	}
	return out, nil
}

// SyncGroupNames names groups for the sync, by group ID: the directory's
// display name, else the name recorded for the site, else "".
func (tx *Tx) SyncGroupNames(siteID string, groupIDs []string) (map[string]string, error) {
	out := make(map[string]string, len(groupIDs))
	type named struct{ ID, Name string }
	for start := 0; start < len(groupIDs); start += 500 {
		chunk := groupIDs[start:min(start+500, len(groupIDs))]
		for _, q := range []string{
			`SELECT id, display_name AS name FROM scim_groups WHERE site_id = ? AND id IN ?`,
			`SELECT group_id AS id, name FROM sync_groups WHERE site_id = ? AND group_id IN ?`,
		} {
			var rows []named
			if err := tx.db.Raw(q, siteID, chunk).Scan(&rows).Error; err != nil {
				return nil, fmt.Errorf("sync group names: %w", translate(err))
			}
			for _, r := range rows {
				if _, ok := out[r.ID]; !ok {
					out[r.ID] = r.Name
				}
			}
		}
	}
	for _, id := range groupIDs {
		if _, ok := out[id]; !ok {
			out[id] = ""
		}
	}
	return out, nil
}

// DirectoryGroupsOfUser lists the directory groups the user belongs to now.
func (tx *Tx) DirectoryGroupsOfUser(siteID, userID string) ([]string, error) {
	var ids []string
	if err := tx.db.Raw(`SELECT group_id FROM scim_group_members WHERE site_id = ? AND user_id = ? ORDER BY group_id`, siteID, userID).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("directory groups of user: %w", translate(err))
	}
	return ids, nil
}

// DirectoryUsersActive returns, for the listed users that exist in the
// directory, whether they are active.
func (tx *Tx) DirectoryUsersActive(siteID string, userIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for start := 0; start < len(userIDs); start += 500 {
		chunk := userIDs[start:min(start+500, len(userIDs))]
		rows, err := tx.db.Raw(`SELECT id, active FROM scim_users WHERE site_id = ? AND id IN ?`, siteID, chunk).Rows()
		if err != nil {
			return nil, fmt.Errorf("directory users active: %w", translate(err))
		}
		for rows.Next() {
			var id string
			var active bool
			if err := rows.Scan(&id, &active); err != nil {
				rows.Close()
				return nil, fmt.Errorf("directory users active: %w", err)
			}
			out[id] = active
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("directory users active: %w", translate(err))
		}
	}
	return out, nil
}

// HasOpenSyncItems reports whether the subject has items still to apply
// (pending or held).
func (tx *Tx) HasOpenSyncItems(siteID, resourceID string) (bool, error) {
	var n int
	if err := tx.db.Raw(`SELECT count(*) FROM outbox WHERE site_id = ? AND resource_id = ? AND status IN `+openStatuses,
		siteID, resourceID).Row().Scan(&n); err != nil {
		return false, fmt.Errorf("open sync items: %w", translate(err))
	}
	return n > 0, nil
}

// WakeSyncWaiting makes the items waiting for a user due now.
func (tx *Tx) WakeSyncWaiting(siteID, userID string) error {
	// waiting_for <> '' (implied, but not by a parameter) lets a prepared
	// statement's plan use outbox_waiting; the open statuses, not
	// status = 'pending', keep outbox_site_claim out of its way.
	err := tx.db.Exec(`UPDATE outbox SET next_attempt_at = ?, waiting_for = '' WHERE site_id = ? AND waiting_for = ? AND waiting_for <> ''
		AND status IN `+openStatuses,
		tx.s.Now(), siteID, userID).Error
	if err != nil {
		return fmt.Errorf("wake waiting sync items: %w", translate(err))
	}
	return nil
}

// --- the site's sync state ---------------------------------------------------

// SyncSite is a site's pause and brake state.
type SyncSite struct {
	Paused           bool
	PausedReason     string
	PausedAt         *time.Time
	AccountUpdatedAt *time.Time
	BrakeReleasedAt  *time.Time
}

// FindSyncSite returns the site's sync state (the zero state when none
// was recorded).
func (tx *Tx) FindSyncSite(siteID string) (SyncSite, error) {
	var st SyncSite
	var pausedAt, accountAt, releasedAt sql.NullTime
	err := tx.db.Raw(`SELECT paused, paused_reason, paused_at, account_updated_at, brake_released_at FROM sync_sites WHERE site_id = ?`, siteID).
		Row().Scan(&st.Paused, &st.PausedReason, &pausedAt, &accountAt, &releasedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("find sync site: %w", translate(err))
	}
	st.PausedAt, st.AccountUpdatedAt, st.BrakeReleasedAt = nullTime(pausedAt), nullTime(accountAt), nullTime(releasedAt)
	return st, nil
}

func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

func (tx *Tx) upsertSyncSite(siteID, set string, args ...any) error {
	now := tx.s.Now()
	if err := tx.db.Exec(`INSERT INTO sync_sites (site_id, updated_at) VALUES (?, ?) ON CONFLICT (site_id) DO NOTHING`, siteID, now).Error; err != nil {
		return fmt.Errorf("sync site: %w", translate(err))
	}
	args = append(append([]any{}, args...), now, siteID)
	if err := tx.db.Exec(`UPDATE sync_sites SET `+set+`, updated_at = ? WHERE site_id = ?`, args...).Error; err != nil {
		return fmt.Errorf("sync site: %w", translate(err))
	}
	return nil
}

// PauseSync pauses the site's sync with a reason; accountUpdatedAt is when
// the credentials that failed were saved (newer ones resume it).
func (tx *Tx) PauseSync(siteID, reason string, accountUpdatedAt time.Time) error {
	return tx.upsertSyncSite(siteID, `paused = TRUE, paused_reason = ?, paused_at = ?, account_updated_at = ?`,
		reason, tx.s.Now(), accountUpdatedAt.UTC())
}

// ResumeSync lifts a pause.
func (tx *Tx) ResumeSync(siteID string) error {
	return tx.upsertSyncSite(siteID, `paused = FALSE, paused_reason = '', paused_at = NULL, account_updated_at = NULL`)
}

// --- the accidental-deletion brake ---------------------------------------------

// CountSyncDeactivations counts the site's user deactivations and
// deletions accepted since the given time (held and applied ones too,
// discarded ones not), and when the first of them came.
func (tx *Tx) CountSyncDeactivations(siteID string, since time.Time) (int, time.Time, error) {
	var n int
	if err := tx.db.Raw(`SELECT count(*) FROM outbox WHERE site_id = ? AND resource_type = 'User' AND op IN (?, ?)
		AND created_at > ? AND status <> ?`, siteID, string(models.OutboxUserDeactivated), string(models.OutboxUserDeleted),
		since, models.OutboxStatusDiscarded).Row().Scan(&n); err != nil {
		return 0, time.Time{}, fmt.Errorf("count deactivations: %w", translate(err))
	}
	if n == 0 {
		return 0, time.Time{}, nil
	}
	var first time.Time
	if err := tx.db.Raw(`SELECT created_at FROM outbox WHERE site_id = ? AND resource_type = 'User' AND op IN (?, ?)
		AND created_at > ? AND status <> ? ORDER BY created_at LIMIT 1`, siteID, string(models.OutboxUserDeactivated), string(models.OutboxUserDeleted),
		since, models.OutboxStatusDiscarded).Row().Scan(&first); err != nil {
		return 0, time.Time{}, fmt.Errorf("count deactivations: %w", translate(err))
	}
	return n, first.UTC(), nil
}

// CountProvisionedUsers is the size of the site's provisioned population:
// the directory's users, or the users with an Atlassian account, whichever
// is more (a mass deletion empties the directory first).
func (tx *Tx) CountProvisionedUsers(siteID string) (int, error) {
	dir, err := tx.count("scim_users", " WHERE site_id = ?", []any{siteID})
	if err != nil {
		return 0, err
	}
	synced, err := tx.count("sync_users", " WHERE site_id = ? AND account_id <> ''", []any{siteID})
	if err != nil {
		return 0, err
	}
	return max(dir, synced), nil
}

// HeldSyncSummary is what the status says of the site's held items: how
// many, since when, the latest reason, and the first of them (at most
// limit) to name some subjects. Its cost does not grow with their number
// beyond a count.
type HeldSyncSummary struct {
	Count  int
	Since  time.Time
	Reason string
	First  []SyncItem
}

// SummarizeHeldSync summarizes the site's held items; Count 0 when none.
func (tx *Tx) SummarizeHeldSync(siteID string, limit int) (HeldSyncSummary, error) {
	var h HeldSyncSummary
	var err error
	if h.Count, err = tx.count("outbox", " WHERE site_id = ? AND status = ?", []any{siteID, models.OutboxStatusHeld}); err != nil || h.Count == 0 {
		return h, err
	}
	if h.First, err = tx.HeldSyncItems(siteID, limit); err != nil {
		return h, err
	}
	last, err := tx.syncItems(`WHERE site_id = ? AND status = ? ORDER BY id DESC LIMIT 1`, siteID, models.OutboxStatusHeld)
	if err != nil {
		return h, err
	}
	for _, it := range append(h.First, last...) {
		if h.Since.IsZero() || it.CreatedAt.Before(h.Since) {
			h.Since = it.CreatedAt
		}
	}
	if len(last) > 0 {
		h.Reason = last[0].LastError
	}
	return h, nil
}

// HeldSyncItems lists the site's held items, oldest first (at most limit).
func (tx *Tx) HeldSyncItems(siteID string, limit int) ([]SyncItem, error) {
	return tx.syncItems(`WHERE site_id = ? AND status = ? ORDER BY id LIMIT ?`, siteID, models.OutboxStatusHeld, limit)
}

func (tx *Tx) syncItems(where string, args ...any) ([]SyncItem, error) {
	rows, err := tx.db.Raw(`SELECT `+outboxColumns+` FROM outbox `+where, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("sync items: %w", translate(err))
	}
	defer rows.Close()
	var out []SyncItem
	for rows.Next() {
		it, err := scanSyncItem(rows)
		if err != nil {
			return nil, fmt.Errorf("sync items: %w", err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// ApplyHeldSync lets the site's held items through: they are due now, and
// the brake counts only deactivations accepted from now on.
func (tx *Tx) ApplyHeldSync(siteID string) (int, error) {
	now := tx.s.Now()
	res := tx.db.Exec(`UPDATE outbox SET status = 'pending', next_attempt_at = ?, last_error = '', updated_at = ? WHERE site_id = ? AND status = ?`,
		now, now, siteID, models.OutboxStatusHeld)
	if res.Error != nil {
		return 0, fmt.Errorf("apply held sync items: %w", translate(res.Error))
	}
	if err := tx.upsertSyncSite(siteID, `brake_released_at = ?`, now); err != nil {
		return 0, err
	}
	return int(res.RowsAffected), nil
}

// DiscardHeldSync discards the site's held items (the site keeps its
// state): a deactivated user keeps its access until reactivated, a deleted
// user is forgotten without touching its account. It returns how many.
func (tx *Tx) DiscardHeldSync(siteID, reason string) (int, error) {
	held, err := tx.syncItems(`WHERE site_id = ? AND status = ? ORDER BY id`, siteID, models.OutboxStatusHeld)
	if err != nil {
		return 0, err
	}
	users := map[string]bool{}
	for _, it := range held {
		if it.ResourceType == "User" {
			users[it.ResourceID] = true
		}
	}
	for id := range users {
		exists, err := tx.ExistingDirectoryUsers(siteID, []string{id})
		if err != nil {
			return 0, err
		}
		if exists[id] {
			err = tx.db.Exec(`UPDATE sync_users SET keep_access = TRUE, updated_at = ? WHERE site_id = ? AND user_id = ?`, tx.s.Now(), siteID, id).Error
		} else {
			// Deleted in the directory: idbridge lets go of the account.
			if err = tx.DeleteSyncMembersOfUser(siteID, id); err == nil {
				err = tx.DeleteSyncUser(siteID, id)
			}
		}
		if err != nil {
			return 0, fmt.Errorf("discard held sync items: %w", translate(err))
		}
	}
	now := tx.s.Now()
	res := tx.db.Exec(`UPDATE outbox SET status = ?, last_error = ?, updated_at = ? WHERE site_id = ? AND status = ?`,
		models.OutboxStatusDiscarded, reason, now, siteID, models.OutboxStatusHeld)
	if res.Error != nil {
		return 0, fmt.Errorf("discard held sync items: %w", translate(res.Error))
	}
	if err := tx.upsertSyncSite(siteID, `brake_released_at = ?`, now); err != nil {
		return 0, err
	}
	return int(res.RowsAffected), nil
}

// --- status and admin actions -------------------------------------------------

// SyncStatusCounts is what the status needs from the outbox.
type SyncStatusCounts struct {
	Pending         int
	OldestPendingAt *time.Time
	Applied         int
	Failed          int
	NotApplicable   int
}

// CountSyncStatus counts the site's pending items and the outcomes since
// the given time.
func (tx *Tx) CountSyncStatus(siteID string, since time.Time) (SyncStatusCounts, error) {
	var c SyncStatusCounts
	var err error
	if c.Pending, err = tx.count("outbox", " WHERE site_id = ? AND status = 'pending'", []any{siteID}); err != nil {
		return c, err
	}
	if c.Pending > 0 {
		var at time.Time
		err := tx.db.Raw(`SELECT created_at FROM outbox WHERE site_id = ? AND status = 'pending' ORDER BY created_at LIMIT 1`, siteID).Row().Scan(&at)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return c, fmt.Errorf("sync status: %w", translate(err))
		}
		if err == nil {
			at = at.UTC()
			c.OldestPendingAt = &at
		}
	}
	rows, err := tx.db.Raw(`SELECT status, count(*) FROM outbox WHERE site_id = ? AND status IN (?, ?, ?) AND updated_at > ? GROUP BY status`,
		siteID, models.OutboxStatusApplied, models.OutboxStatusFailed, models.OutboxStatusNotApplicable, since).Rows()
	if err != nil {
		return c, fmt.Errorf("sync status: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return c, fmt.Errorf("sync status: %w", err)
		}
		switch status {
		case models.OutboxStatusApplied:
			c.Applied = n
		case models.OutboxStatusFailed:
			c.Failed = n
		case models.OutboxStatusNotApplicable:
			c.NotApplicable = n
		}
	}
	return c, rows.Err()
}

// SyncDrained reports whether the site has nothing left to apply: no item
// pending or held. It reads at most one row of each (the claim index and
// the status index), so it is cheap however large the outbox is.
func (tx *Tx) SyncDrained(siteID string) (bool, error) {
	var open int
	err := tx.db.Raw(`SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE site_id = ? AND status = 'pending' LIMIT 1) p)
		+ (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE site_id = ? AND status = 'held' LIMIT 1) h)`, siteID, siteID).Row().Scan(&open)
	if err != nil {
		return false, fmt.Errorf("sync drained: %w", translate(err))
	}
	return open == 0, nil
}

// FailedSyncItems lists the site's failed items, most recent first.
func (tx *Tx) FailedSyncItems(siteID string, limit int) ([]SyncItem, error) {
	return tx.syncItems(`WHERE site_id = ? AND status = ? ORDER BY updated_at DESC, id DESC LIMIT ?`, siteID, models.OutboxStatusFailed, limit)
}

// RecentSyncItems lists the site's latest outcomes, most recent first.
func (tx *Tx) RecentSyncItems(siteID string, limit int) ([]SyncItem, error) {
	return tx.syncItems(`WHERE site_id = ? AND status IN (?, ?, ?, ?) ORDER BY updated_at DESC, id DESC LIMIT ?`, siteID,
		models.OutboxStatusApplied, models.OutboxStatusFailed, models.OutboxStatusNotApplicable, models.OutboxStatusDiscarded, limit)
}

// RetrySyncItem requeues a failed item of the site: due now, attempts
// counted afresh. Unknown: not found; not failed: conflict.
func (tx *Tx) RetrySyncItem(siteID string, id int64) error {
	var status string
	err := tx.db.Raw(`SELECT status FROM outbox WHERE site_id = ? AND id = ?`, siteID, id).Row().Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return &models.Error{Code: models.CodeNotFound, Message: "There is no such change in this site's sync.", Field: "id"}
	}
	if err != nil {
		return fmt.Errorf("retry sync item: %w", translate(err))
	}
	if status != models.OutboxStatusFailed {
		return &models.Error{Code: models.CodeConflict, Message: fmt.Sprintf("Only a failed change can be retried; this one is %s.", strings.ReplaceAll(status, "_", " ")), Field: "id"}
	}
	now := tx.s.Now()
	err = tx.db.Exec(`UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, last_error = '', updated_at = ?
		WHERE site_id = ? AND id = ?`, now, now, siteID, id).Error
	if err != nil {
		return fmt.Errorf("retry sync item: %w", translate(err))
	}
	tx.noteOutbox(siteID)
	return nil
}

// SyncAtlassianIDs returns the Atlassian account or group ID of the listed
// subjects that have one, by resource ID.
func (tx *Tx) SyncAtlassianIDs(siteID string, userIDs, groupIDs []string) (map[string]string, error) {
	out := map[string]string{}
	type row struct{ ID, AtlassianID string }
	for _, q := range []struct {
		sql string
		ids []string
	}{
		{`SELECT user_id AS id, account_id AS atlassian_id FROM sync_users WHERE site_id = ? AND account_id <> '' AND user_id IN ?`, userIDs},
		{`SELECT group_id AS id, atlassian_id FROM sync_groups WHERE site_id = ? AND atlassian_id <> '' AND group_id IN ?`, groupIDs},
	} {
		if len(q.ids) == 0 {
			continue
		}
		var rows []row
		if err := tx.db.Raw(q.sql, siteID, q.ids).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("sync atlassian ids: %w", translate(err))
		}
		for _, r := range rows {
			out[r.ID] = r.AtlassianID
		}
	}
	return out, nil
}

// PurgeSyncedItems deletes, over all sites, up to limit outbox items with
// one of the statuses whose outcome is older than the given time: their
// payload is personal data the site no longer needs from idbridge. It
// returns how many.
func (s *Store) PurgeSyncedItems(ctx context.Context, before time.Time, statuses []string, limit int) (int, error) {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
		WHERE status IN ? AND updated_at < ? LIMIT ?)`, statuses, before.UTC(), limit)
	if res.Error != nil {
		return 0, fmt.Errorf("purge synced items: %w", translate(res.Error))
	}
	return int(res.RowsAffected), nil
}

// Announce sends ids on channel (PostgreSQL NOTIFY) in its own statement,
// outside any transaction; several at once are sent as one notification
// (too many as "*"). On SQLite it does nothing.
func (s *Store) Announce(ctx context.Context, channel string, ids []string) error {
	if s.dialect != Postgres || len(ids) == 0 {
		return nil
	}
	payload := strings.Join(ids, ",")
	if len(payload) > 7000 {
		payload = "*"
	}
	if _, err := s.sqlDB.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("announce on %s: %w", channel, err)
	}
	return nil
}

// ListSyncItems lists the site's outbox items in order, leases included
// (for tests and diagnostics), at most limit.
func (tx *Tx) ListSyncItems(siteID string, limit int) ([]SyncItem, error) {
	return tx.syncItems(`WHERE site_id = ? ORDER BY id LIMIT ?`, siteID, limit)
}

// LockSyncUser serialises, until the transaction ends, the transactions
// that change whether a user has access in the site and those that decide
// a membership waits for it (PostgreSQL: an advisory transaction lock, as
// the user's row may not exist yet; SQLite's writers are serialised
// anyway).
func (tx *Tx) LockSyncUser(siteID, userID string) error {
	if tx.s.dialect != Postgres {
		return nil
	}
	err := tx.db.Exec(`SELECT pg_advisory_xact_lock(hashtextextended('idbridge sync user: ' || current_schema() || '/' || ? || '/' || ?, 0))`,
		siteID, userID).Error
	if err != nil {
		return fmt.Errorf("lock sync user: %w", translate(err))
	}
	return nil
}
