package store

import (
	"context"
)

// SCIM creates on SQLite, batched: SQLite has one writer at a time, and a
// create is two small inserts, so the cost of a create alone is mostly its
// transaction (BEGIN IMMEDIATE, the commit's WAL append). Creates that
// arrive while a batch is being written queue, and the next batch writes
// them all in one write transaction (BEGIN IMMEDIATE), each in a
// savepoint of its own, so that one create's failure (a taken userName)
// is its own answer and the others still commit. Every create is answered
// only after the commit: nothing acknowledged is lost (TestSCIMCreatesSurviveSIGKILL).

// SQLiteCreateSlots is one: SQLite writes one transaction at a time
// anyway; a second batch would only wait for the first's lock, smaller.
// Each slot holds a pooled connection while its batch runs, outside the
// SCIM work slots (app/provisioning/capacity.go reserves it).
const SQLiteCreateSlots = 1

func (s *Store) initSQLiteBatches() {
	if s.dialect != SQLite {
		return
	}
	s.liteCreates = newCoalescer(SQLiteCreateSlots, coalescerMaxBatch, s.createUsersSQLite)
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
