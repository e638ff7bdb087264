package store

import (
	"context"
	"fmt"
	"time"

	"idbridge/models"
)

// SCIM creates on SQLite, batched: SQLite has one writer at a time, and a
// create is two small inserts, so the cost of a create alone is mostly its
// transaction (BEGIN IMMEDIATE, the commit's WAL append). Creates that
// arrive while a batch is being written queue, and the next batch writes
// them all in one write transaction (BEGIN IMMEDIATE), each in a
// savepoint of its own, so that one create's failure (a taken userName)
// is its own answer and the others still commit. Every create is answered
// only after the commit: nothing acknowledged is lost (TestSCIMCreatesSurviveSIGKILL).

// sqliteMaxBatch bounds a SQLite batch of creates, and with it how long
// the batch holds SQLite's only write lock (about 60 µs a create, and the
// commit): the site's other writes, and other sites', take the lock between
// batches. Under the SCIM load test batches average 6 to 7 creates.
const sqliteMaxBatch = 16

// SQLiteCreateSlots is one: SQLite writes one transaction at a time
// anyway; a second batch would only wait for the first's lock, smaller.
// Each slot holds a pooled connection while its batch runs, outside the
// SCIM work slots (app/provisioning/capacity.go reserves it).
const SQLiteCreateSlots = 1

func (s *Store) initSQLiteBatches() {
	if s.dialect != SQLite {
		return
	}
	s.writeTurn = make(chan struct{}, 1)
	s.liteCreates = newCoalescer(SQLiteCreateSlots, sqliteMaxBatch, s.createUsersSQLite)
}

const (
	insertUserSQL = `INSERT INTO scim_users (` + userColumns + `, user_name_lower) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertItemSQL = `INSERT INTO outbox (site_id, resource_type, resource_id, op, payload, status, attempts, next_attempt_at, last_error, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, '', ?, ?)`
)

// createUsersSQLite writes a batch of creates in one transaction.
func (s *Store) createUsersSQLite(ctx context.Context, batch []*userCreate) {
	live := batch[:0:0]
	for _, c := range batch {
		if c.ctx != nil && c.ctx.Err() != nil {
			c.finish(c.ctx.Err())
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	errs := make([]error, len(live))
	err := s.InTx(ctx, func(tx *Tx) error {
		for i, c := range live {
			if len(live) > 1 {
				if _, err := tx.execStmt(`SAVEPOINT create_user`); err != nil {
					return err
				}
			}
			errs[i] = tx.insertUserCreate(c)
			if len(live) > 1 {
				if errs[i] != nil {
					if _, err := tx.execStmt(`ROLLBACK TO create_user`); err != nil {
						return err
					}
				}
				if _, err := tx.execStmt(`RELEASE create_user`); err != nil {
					return err
				}
			} else if errs[i] != nil {
				return errs[i]
			}
		}
		return nil
	})
	for i, c := range live {
		if err != nil {
			c.finish(err)
		} else {
			c.finish(errs[i])
		}
	}
}

// insertUserCreate inserts one user and its outbox item.
func (tx *Tx) insertUserCreate(c *userCreate) error {
	u, it := c.u, c.item
	now := u.CreatedAt
	if _, err := tx.execStmt(insertUserSQL,
		u.SiteID, u.ID, u.UserName, nullString(u.ExternalID), nullString(u.DisplayName), nullString(u.GivenName),
		nullString(u.FamilyName), nullString(u.Email), u.Active, string(u.Doc), u.Version, now, now, LowerUserName(u.UserName)); err != nil {
		return err
	}
	_, err := tx.execStmt(insertItemSQL, it.SiteID, it.ResourceType, it.ResourceID, string(it.Op), outboxPayload(it), it.Status, now, now, now)
	return err
}

// Write turns (SQLite). Every InTx on SQLite is a write transaction (BEGIN
// IMMEDIATE), and SQLite has one write lock. A transaction that finds it
// taken sleeps in SQLite's busy handler and tries again (after 1, 2, 5,
// 10 … 100 ms), so a writer that takes the lock again at once, as the
// create batches do under a flood of one site's creates, wins it over and
// over against writers that sleep: another site's PUT waited 48–89 ms at
// p99 (docs/PERFORMANCE.md). So this process's write transactions take a
// turn first, in the order they asked: a channel's waiting senders are
// served first in, first out, and a writer that is done and asks again
// queues behind those already waiting. The wait is bounded like SQLite's
// own (the busy timeout) and by the caller's context; a transaction
// started while this goroutine holds a turn waits the same bound and
// fails, as it would on SQLite's lock. Writers of other processes (the
// `idbridge` commands) still meet SQLite's busy handler.
func (s *Store) takeWriteTurn(ctx context.Context) (done func(), err error) {
	done = func() { <-s.writeTurn }
	select {
	case s.writeTurn <- struct{}{}:
		return done, nil
	default:
	}
	timer := time.NewTimer(s.stmtTimeout)
	defer timer.Stop()
	select {
	case s.writeTurn <- struct{}{}:
		return done, nil
	case <-timer.C:
		return nil, &models.Error{Code: models.CodeUnavailable, Message: "the database is busy with other writes; try again shortly"}
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", &models.Error{Code: models.CodeUnavailable, Message: "the request ended while it waited to write"}, ctx.Err())
	}
}
