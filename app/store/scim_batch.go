package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"idbridge/models"
)

// The identity providers' hot paths, coalesced on PostgreSQL (coalesce.go):
// looking a user up by a unique key (GET /Users?filter=userName eq "…",
// GET /Users/{id}) and creating a user with its outbox item (POST /Users).
// SQLite runs in-process, without round trips to save: it runs them one
// by one as before.

// DirectoryKey names one row of a site by a unique key: a user's
// lower-cased userName or its id.
type DirectoryKey struct {
	Column string // KeyUserName or KeyID
	Value  string
}

// The unique keys a DirectoryQuery may name.
const (
	KeyUserName = "user_name_lower"
	KeyID       = "id"
)

// userLookup is one request for the user of a site with a key.
type userLookup struct {
	batchItem
	siteID, value string
	groups        bool
	user          *models.DirectoryUser // the answer; nil when there is none
}

// userCreate is one request to create a user and its outbox item.
type userCreate struct {
	batchItem
	ctx  context.Context // the request's: a create whose caller left before its batch started is not written
	u    *models.DirectoryUser
	item *models.OutboxItem
}

// scimBatches holds the coalescers of a PostgreSQL store.
type scimBatches struct {
	lookups map[string]*coalescer[*userLookup] // by key column
	creates *coalescer[*userCreate]
}

func (s *Store) initBatches() {
	if s.dialect != Postgres {
		return
	}
	s.batches = &scimBatches{
		lookups: map[string]*coalescer[*userLookup]{
			KeyUserName: newCoalescer(lookupSlots, coalescerMaxBatch, s.lookupUsers(KeyUserName)),
			KeyID:       newCoalescer(lookupSlots, coalescerMaxBatch, s.lookupUsers(KeyID)),
		},
		creates: newCoalescer(createSlots, coalescerMaxBatch, s.createUsers),
	}
}

// pooled reports whether tx reads from the pool, not inside a
// transaction: only such reads may be answered by a shared statement.
func (tx *Tx) pooled() bool {
	_, ok := tx.db.Statement.ConnPool.(*sql.DB)
	return ok
}

func (tx *Tx) ctx() context.Context {
	if ctx := tx.db.Statement.Context; ctx != nil {
		return ctx
	}
	return context.Background()
}

// lookupUser answers a list whose filter is exactly q.Key through the
// coalesced lookup; ok is false when q cannot be answered that way.
func (tx *Tx) lookupUser(siteID string, q DirectoryQuery) (users []models.DirectoryUser, total int, ok bool, err error) {
	if q.Key == nil || q.Offset > 0 || q.Limit <= 0 || tx.s.batches == nil || !tx.pooled() {
		return nil, 0, false, nil
	}
	c := tx.s.batches.lookups[q.Key.Column]
	if c == nil {
		return nil, 0, false, nil
	}
	it := &userLookup{siteID: siteID, value: q.Key.Value, groups: q.WithGroups}
	if err := c.do(tx.ctx(), it); err != nil {
		return nil, 0, true, fmt.Errorf("list directory users: %w", translate(err))
	}
	if it.user == nil {
		return []models.DirectoryUser{}, 0, true, nil
	}
	return []models.DirectoryUser{*it.user}, 1, true, nil
}

// lookupUsers is the batch statement for lookups by column: one row per
// request that found its user, numbered by the request's place in the
// batch. The groups column is filled only for requests that want it; the
// manager column whenever the document names one (userManagerColumn).
func (s *Store) lookupUsers(column string) func(ctx context.Context, batch []*userLookup) {
	query := `SELECT ` + userColumns + `, CASE WHEN k.want_groups THEN ` + pgUserGroups + ` END, ` + pgUserManager + `, k.ord
		FROM unnest(?::text[], ?::text[], ?::boolean[]) WITH ORDINALITY AS k(key_site, key_value, want_groups, ord)
		JOIN scim_users ON scim_users.site_id = k.key_site AND scim_users.` + column + ` = k.key_value`
	var run func(ctx context.Context, batch []*userLookup)
	run = func(ctx context.Context, batch []*userLookup) {
		sites := make([]string, len(batch))
		values := make([]string, len(batch))
		groups := make([]bool, len(batch))
		for i, it := range batch {
			sites[i], values[i], groups[i] = it.siteID, it.value, it.groups
		}
		err := s.queryEach(ctx, query, []any{sites, values, groups}, func(rows *sql.Rows) error {
			var g, mgr sql.NullString
			var ord int64
			u, err := scanUser(rows, &g, &mgr, &ord)
			if err != nil {
				return err
			}
			if ord < 1 || int(ord) > len(batch) {
				return fmt.Errorf("batched lookup: row for request %d of %d", ord, len(batch))
			}
			it := batch[ord-1]
			if u.Groups, err = parseUserGroups(g.String); err != nil {
				return err
			}
			if u.Manager, err = parseUserRef(mgr.String); err != nil {
				return err
			}
			it.user = &u
			return nil
		})
		if err != nil && len(batch) > 1 {
			// One request's bad value must not fail the others: each
			// goes again on its own.
			for _, it := range batch {
				it.user = nil
				run(ctx, []*userLookup{it})
			}
			return
		}
		for _, it := range batch {
			it.finish(err)
		}
	}
	return run
}

// queryEach runs a read statement (cached, prepared) on the pool and calls
// fn for each row.
func (s *Store) queryEach(ctx context.Context, query string, args []any, fn func(*sql.Rows) error) error {
	var rows *sql.Rows
	var err error
	if st := s.prepared(ctx, query); st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = s.sqlDB.QueryContext(ctx, s.native(query), args...)
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// newUserCreate checks u and sets what the store sets on a new user and its
// outbox item: IDs, version, times and status.
func (s *Store) newUserCreate(u *models.DirectoryUser, item *models.OutboxItem) (*userCreate, error) {
	if u.SiteID == "" || u.UserName == "" {
		return nil, &models.Error{Code: models.CodeInvalid, Message: "a directory user needs a site and a userName"}
	}
	if item.ResourceType == "" || item.Op == "" {
		return nil, fmt.Errorf("create directory user: the outbox item needs a resource type and an op")
	}
	now := s.Now()
	u.ID = NewOrderedID("u", now)
	u.Version = 1
	u.CreatedAt, u.UpdatedAt = now, now
	item.SiteID, item.ResourceID = u.SiteID, u.ID
	item.Status, item.NextAttemptAt, item.CreatedAt, item.UpdatedAt = models.OutboxStatusPending, now, now, now
	return &userCreate{u: u, item: item}, nil
}

// createUserSQL creates one user and its outbox item in one statement,
// committed on its own.
const createUserSQL = `WITH u AS (INSERT INTO scim_users (` + userColumns + `, user_name_lower)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING site_id, id)
		INSERT INTO outbox (site_id, resource_type, resource_id, op, payload, status, attempts, next_attempt_at, last_error, created_at, updated_at)
		SELECT u.site_id, ?, u.id, ?, ?, ?, 0, ?, '', ?, ? FROM u`

// createUsersSQL creates many users and their outbox items in one
// statement: a user whose userName is taken in its site (also by another
// user of the same batch) is skipped with its item, and only the created
// ones are returned. Items are numbered in the order of the batch.
const createUsersSQL = `WITH k AS (SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
			?::text[], ?::boolean[], ?::text[], ?::timestamptz[], ?::text[], ?::text[], ?::text[], ?::text[])
		WITH ORDINALITY AS k(site_id, id, user_name, external_id, display_name, given_name, family_name,
			email, active, doc, ts, user_name_lower, resource_type, op, payload, ord)),
	u AS (INSERT INTO scim_users (` + userColumns + `, user_name_lower)
		SELECT site_id, id, user_name, NULLIF(external_id, ''), NULLIF(display_name, ''), NULLIF(given_name, ''),
			NULLIF(family_name, ''), NULLIF(email, ''), active, doc, 1, ts, ts, user_name_lower FROM k ORDER BY ord
		ON CONFLICT (site_id, user_name_lower) DO NOTHING
		RETURNING site_id, id)
	INSERT INTO outbox (site_id, resource_type, resource_id, op, payload, status, attempts, next_attempt_at, last_error, created_at, updated_at)
		SELECT k.site_id, k.resource_type, k.id, k.op, k.payload, ?, 0, k.ts, '', k.ts, k.ts
		FROM k JOIN u ON u.site_id = k.site_id AND u.id = k.id ORDER BY k.ord
		RETURNING resource_id`

// errUserNameTaken is the answer to a create whose userName is taken.
func errUserNameTaken() error {
	return &models.Error{Code: models.CodeConflict, Message: "already exists"}
}

// createUsers is the batch statement for creates. A batch of one runs the
// single statement, so that its error is exactly its own; a batch that
// fails as a whole (a site removed meanwhile, say) is retried one by one
// for the same reason.
func (s *Store) createUsers(ctx context.Context, batch []*userCreate) {
	live := batch[:0:0]
	for _, c := range batch {
		if c.ctx != nil && c.ctx.Err() != nil {
			c.finish(c.ctx.Err())
			continue
		}
		live = append(live, c)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	if len(batch) == 1 {
		batch[0].finish(s.createUser(ctx, batch[0]))
		return
	}
	n := len(batch)
	cols := make([][]string, 13)
	for i := range cols {
		cols[i] = make([]string, n)
	}
	active := make([]bool, n)
	times := make([]time.Time, n)
	for i, c := range batch {
		u, it := c.u, c.item
		for j, v := range []string{u.SiteID, u.ID, u.UserName, u.ExternalID, u.DisplayName, u.GivenName, u.FamilyName,
			u.Email, string(u.Doc), LowerUserName(u.UserName), it.ResourceType, string(it.Op), outboxPayload(it)} {
			cols[j][i] = v
		}
		active[i], times[i] = u.Active, u.CreatedAt
	}
	args := []any{cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], active, cols[8], times,
		cols[9], cols[10], cols[11], cols[12], models.OutboxStatusPending}
	created := make(map[string]bool, n)
	err := s.queryEach(ctx, createUsersSQL, args, func(rows *sql.Rows) error {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		created[id] = true
		return nil
	})
	if err != nil {
		for _, c := range batch {
			c.finish(s.createUser(ctx, c))
		}
		return
	}
	for _, c := range batch {
		if created[c.u.ID] {
			c.finish(nil)
		} else {
			c.finish(errUserNameTaken())
		}
	}
}

// createUser runs the single statement for one create.
func (s *Store) createUser(ctx context.Context, c *userCreate) error {
	u, it := c.u, c.item
	now := u.CreatedAt
	_, err := s.View(ctx).execStmt(createUserSQL,
		u.SiteID, u.ID, u.UserName, nullString(u.ExternalID), nullString(u.DisplayName), nullString(u.GivenName),
		nullString(u.FamilyName), nullString(u.Email), u.Active, string(u.Doc), u.Version, now, now, LowerUserName(u.UserName),
		it.ResourceType, string(it.Op), outboxPayload(it), it.Status, now, now, now)
	return err
}

func outboxPayload(it *models.OutboxItem) string {
	if len(it.Payload) == 0 {
		return "{}"
	}
	return string(it.Payload)
}
