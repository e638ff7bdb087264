package provisioning

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// The expensive part of a change (decoding, the PATCH, normalising,
// rendering) runs before the write transaction, holding no lock: while a
// change is being computed another writer takes SQLite's write lock, or
// PostgreSQL's row lock on the very same row, at once (a 25,000 operation
// PATCH held SQLite's write lock for 27 s before, and other sites' writes
// failed). The write then checks the version it was computed from: a
// change made meanwhile makes it compute again from what is stored (both
// changes survive), and with If-Match it is a 412.
func TestWriteLockNotHeldWhileComputing(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		// Room for the change made from inside another's computation.
		svc := NewService(ServiceConfig{Capacity: CapacityConfig{Work: 4, SiteWork: 4}}, st, nil, nil)
		var site *models.Site
		if err := st.InTx(ctx, func(tx *store.Tx) error {
			var err error
			site, err = tx.SaveInstall(&models.Site{
				SiteFacts:    models.SiteFacts{ClientKey: "c", BaseURL: "https://a.atlassian.net"},
				SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
			})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		user, err := svc.Create(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Users, Body: []byte(`{"userName":"alice"}`)})
		if err != nil {
			t.Fatal(err)
		}
		uid := idOf(t, user)
		group, err := svc.Create(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Groups, Body: []byte(`{"displayName":"admins"}`)})
		if err != nil {
			t.Fatal(err)
		}
		gid := idOf(t, group)

		// lockedOut tries, while a change is being computed, to lock the
		// row of table/id for writing without waiting.
		lockedOut := func(table, id string) error {
			if st.Dialect() == store.Postgres {
				return st.InTx(ctx, func(tx *store.Tx) error {
					var v int64
					return st.SQLDB().QueryRowContext(ctx, "SELECT version FROM "+table+" WHERE site_id = $1 AND id = $2 FOR UPDATE NOWAIT", site.ID, id).Scan(&v)
				})
			}
			conn, err := st.SQLDB().Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
				return err
			}
			defer conn.ExecContext(ctx, "PRAGMA busy_timeout = 5000") //nolint:errcheck
			tx, err := conn.BeginTx(ctx, &sql.TxOptions{})
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE "+table+" SET updated_at = updated_at WHERE site_id = ? AND id = ?", site.ID, id); err != nil {
				_ = tx.Rollback()
				return err
			}
			return tx.Commit()
		}

		// A user: while the first computation runs, another request
		// changes the same user; the first is computed again and both
		// changes are kept.
		calls := 0
		doc, err := svc.updateUser(ctx, site.ID, uid, "", scim.Projection{}, func(u *models.DirectoryUser, doc map[string]any) (map[string]any, bool, error) {
			calls++
			if calls == 1 {
				if err := lockedOut(store.UsersTable, uid); err != nil {
					t.Errorf("the user's row is locked while its change is computed: %v", err)
				}
				if _, err := svc.Patch(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Users, ID: uid, Body: []byte(`{"Operations":[{"op":"add","path":"title","value":"Boss"}]}`)}); err != nil {
					t.Fatal(err)
				}
			}
			doc["nickName"] = fmt.Sprintf("computed %d times", calls)
			out, err := scim.Normalize(scim.Users, doc)
			return out, true, err
		})
		if err != nil {
			t.Fatal(err)
		}
		body := string(doc.Body)
		if calls != 2 || !contains(body, `"title":"Boss"`) || !contains(body, `"nickName":"computed 2 times"`) || doc.ETag != `W/"3"` {
			t.Fatalf("calls %d, version %s, body %s: want the change computed again over the other", calls, doc.ETag, body)
		}

		// With If-Match, a change made meanwhile is a 412.
		_, err = svc.updateUser(ctx, site.ID, uid, `W/"3"`, scim.Projection{}, func(u *models.DirectoryUser, doc map[string]any) (map[string]any, bool, error) {
			if _, err := svc.Patch(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Users, ID: uid, Body: []byte(`{"Operations":[{"op":"add","path":"title","value":"Chief"}]}`)}); err != nil {
				t.Fatal(err)
			}
			doc["nickName"] = "lost"
			out, err := scim.Normalize(scim.Users, doc)
			return out, true, err
		})
		if models.ErrorCode(err) != models.CodePrecondition {
			t.Fatalf("If-Match over a change made meanwhile: %v, want 412", err)
		}

		// A group: the plan (members checked, PATCH applied) runs without
		// the group's row or the write lock held.
		planned := 0
		_, err = svc.updateGroup(ctx, site.ID, gid, "", scim.Projection{}, func(view *store.Tx, g *models.DirectoryGroup, doc map[string]any) (map[string]any, []memberOp, error) {
			planned++
			if planned == 1 {
				if err := lockedOut(store.GroupsTable, gid); err != nil {
					t.Errorf("the group's row is locked while its change is planned: %v", err)
				}
				if _, err := svc.Patch(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Groups, ID: gid, Body: []byte(`{"Operations":[{"op":"replace","path":"displayName","value":"owners"}]}`)}); err != nil {
					t.Fatal(err)
				}
			}
			return doc, []memberOp{{kind: "add", ids: []string{uid}}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := svc.Get(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Groups, ID: gid})
		if err != nil {
			t.Fatal(err)
		}
		if body := string(got.Body); planned != 2 || !contains(body, `"displayName":"owners"`) || !contains(body, uid) {
			t.Fatalf("planned %d times, group %s: want the plan made again and both changes kept", planned, body)
		}
	})
}

func idOf(t *testing.T, d *scim.Answer) string {
	t.Helper()
	loc := d.Location
	return loc[len(loc)-len("u_")-26:]
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestWriteUsersComputedAgain: a change of several users in one
// transaction (PatchUsers) keeps the versioned write: when one of them
// changed while the change was computed, the whole change is computed
// again and written over it (both changes kept), and the caller's writes
// (within) commit once, with the second attempt.
func TestWriteUsersComputedAgain(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		svc := NewService(ServiceConfig{Capacity: CapacityConfig{Work: 4, SiteWork: 4}}, st, nil, nil)
		var site *models.Site
		if err := st.InTx(ctx, func(tx *store.Tx) error {
			var err error
			site, err = tx.SaveInstall(&models.Site{
				SiteFacts:    models.SiteFacts{ClientKey: "c", BaseURL: "https://a.atlassian.net"},
				SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
			})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, name := range []string{"ann", "ann.work"} {
			u, err := svc.Create(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Users, Body: []byte(`{"userName":"` + name + `"}`)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, idOf(t, u))
		}
		computed, within := map[string]int{}, 0
		_, err := svc.writeUsers(ctx, site.ID, ids, "", func(u *models.DirectoryUser, doc map[string]any) (map[string]any, bool, error) {
			computed[u.ID]++
			if u.ID == ids[1] && computed[u.ID] == 1 {
				// The first user changes meanwhile.
				if _, err := svc.Patch(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Users, ID: ids[0], Body: []byte(`{"Operations":[{"op":"add","path":"title","value":"Boss"}]}`)}); err != nil {
					t.Fatal(err)
				}
			}
			doc["nickName"] = "corrected"
			out, err := scim.Normalize(scim.Users, doc)
			return out, true, err
		}, func(tx *store.Tx) error {
			within++
			_, err := tx.CreateAuditEvent(site.ID, models.AuditEvent{Event: models.AuditRecordCorrected, Section: "directory"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if computed[ids[0]] != 2 || computed[ids[1]] != 2 || within != 1 {
			t.Errorf("computed %v, within ran %d times: want every user computed twice and within once", computed, within)
		}
		first, err := svc.Get(ctx, &scim.Request{SiteID: site.ID, Type: &scim.Users, ID: ids[0]})
		if err != nil {
			t.Fatal(err)
		}
		if body := string(first.Body); !contains(body, `"title":"Boss"`) || !contains(body, `"nickName":"corrected"`) || first.ETag != `W/"3"` {
			t.Errorf("first user %s %s: want both changes", first.ETag, body)
		}
		evs, err := st.View(ctx).FindAuditEvents(site.ID, store.AuditQuery{Event: models.AuditRecordCorrected})
		if err != nil || len(evs) != 1 {
			t.Errorf("audit events %d %v, want 1", len(evs), err)
		}
	})
}
