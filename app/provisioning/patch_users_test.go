package provisioning_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// TestPatchUsersOneTransaction: PatchUsers writes the change of every user
// it names, their outbox items for the sync and the caller's own writes
// (within, here an audit event) in one transaction. A failure anywhere (in
// the database at the second user, after the first was written; in within;
// in the audit write) leaves no user changed, no outbox item and no event;
// success writes all of it. The outbox items are visible to within, in its
// transaction.
func TestPatchUsersOneTransaction(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newSCIMEnv(t, b)
		s := e.newSite()
		ctx := context.Background()
		ann, annWork, bob := s.createUser("ann"), s.createUser("ann.work"), s.createUser("bob")
		ids := []string{ann, annWork}
		slices.Sort(ids) // the order PatchUsers writes them in
		body := []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Ann Corrected"}]}`)

		// state is every user's displayName and version, as stored.
		state := func() map[string]string {
			t.Helper()
			out := map[string]string{}
			for _, id := range []string{ann, annWork, bob} {
				r := s.do("GET", "/Users/"+id, nil).want(200)
				out[id] = r.str("displayName") + " " + r.str("meta.version")
			}
			return out
		}
		events := func() int {
			t.Helper()
			evs, err := e.st.View(ctx).FindAuditEvents(s.site.ID, store.AuditQuery{Event: models.AuditRecordCorrected})
			if err != nil {
				t.Fatal(err)
			}
			return len(evs)
		}
		before, outboxBefore := state(), len(s.outbox())
		nothingWritten := func(what string) {
			t.Helper()
			if diff := cmp.Diff(before, state()); diff != "" {
				t.Errorf("%s: users changed (-before +after):\n%s", what, diff)
			}
			if n := len(s.outbox()); n != outboxBefore {
				t.Errorf("%s: %d outbox items, want %d", what, n, outboxBefore)
			}
			if n := events(); n != 0 {
				t.Errorf("%s: %d audit events, want none", what, n)
			}
		}
		record := func(tx *store.Tx) error {
			_, err := tx.CreateAuditEvent(s.site.ID, models.AuditEvent{ActorAccountID: "557058:admin", TargetAccountID: "557058:ann",
				Event: models.AuditRecordCorrected, Section: "directory", Fields: []string{"displayName"}})
			return err
		}

		// The database refuses the second user's write, after the first
		// user was written in the same transaction.
		remove := storetest.FailWrites(t, e.st, "scim_users", "UPDATE", "NEW.id = '"+ids[1]+"'")
		ran := false
		err := e.svc.PatchUsers(ctx, s.site.ID, ids, body, func(tx *store.Tx) error { ran = true; return record(tx) })
		if err == nil || !strings.Contains(err.Error(), storetest.FailMessage) || ran {
			t.Errorf("the second user's write refused: %v (within ran: %v), want the database's error before within", err, ran)
		}
		nothingWritten("the second user's write refused")
		remove()

		// within fails after its own write, with an error that is not a
		// change made meanwhile whatever its code: nothing is written, and
		// nothing is computed again. Inside, within sees both users
		// changed and their outbox items.
		calls := 0
		refused := &models.Error{Code: models.CodePrecondition, Message: "refused by the caller"}
		err = e.svc.PatchUsers(ctx, s.site.ID, ids, body, func(tx *store.Tx) error {
			calls++
			items, err := tx.FindOutboxItems(s.site.ID, 0, 1000)
			if err != nil {
				return err
			}
			var subjects []string
			for _, it := range items[outboxBefore:] {
				subjects = append(subjects, it.ResourceID+" "+string(it.Op))
			}
			if want := []string{ids[0] + " " + string(models.OutboxUserUpdated), ids[1] + " " + string(models.OutboxUserUpdated)}; !slices.Equal(subjects, want) {
				t.Errorf("outbox items inside the transaction: %v, want %v", subjects, want)
			}
			for _, id := range ids {
				if u, err := tx.FindDirectoryUser(s.site.ID, id, false); err != nil || u.DisplayName != "Ann Corrected" {
					t.Errorf("user %s inside the transaction: %+v %v", id, u, err)
				}
			}
			if err := record(tx); err != nil {
				return err
			}
			return refused
		})
		if !errors.Is(err, refused) || calls != 1 {
			t.Errorf("within failing: %v after %d calls, want its error after 1", err, calls)
		}
		nothingWritten("within failing")

		// The database refuses the audit event, after both users.
		remove = storetest.FailWrites(t, e.st, "audit_events", "INSERT", "NEW.event = '"+string(models.AuditRecordCorrected)+"'")
		err = e.svc.PatchUsers(ctx, s.site.ID, ids, body, record)
		if err == nil || !strings.Contains(err.Error(), storetest.FailMessage) {
			t.Errorf("the audit write refused: %v, want the database's error", err)
		}
		nothingWritten("the audit write refused")
		remove()

		// An ID that is no user of the site (or cannot be one): 404, and
		// nothing is written.
		for _, bad := range []string{ann[:2] + strings.Repeat("a", len(ann)-2), "not-an-id"} {
			err = e.svc.PatchUsers(ctx, s.site.ID, []string{ids[0], bad}, body, record)
			if !models.IsNotFound(err) {
				t.Errorf("PatchUsers with %q: %v, want not found", bad, err)
			}
		}
		nothingWritten("an unknown user")

		// Success, with the IDs out of order and one twice: both users
		// once, one outbox item each, the event; Bob untouched.
		if err := e.svc.PatchUsers(ctx, s.site.ID, []string{ids[1], ids[0], ids[1]}, body, record); err != nil {
			t.Fatal(err)
		}
		after := state()
		for _, id := range ids {
			if after[id] != `Ann Corrected W/"2"` {
				t.Errorf("user %s after the correction: %s", id, after[id])
			}
		}
		if after[bob] != before[bob] {
			t.Errorf("Bob changed: %s → %s", before[bob], after[bob])
		}
		items := s.outbox()
		if got := ops(items, outboxBefore); !slices.Equal(got, []string{string(models.OutboxUserUpdated), string(models.OutboxUserUpdated)}) {
			t.Errorf("outbox after the correction: %v", got)
		}
		if n := events(); n != 1 {
			t.Errorf("%d audit events, want 1", n)
		}

		// Once more: no user changes, so no outbox item; within runs.
		calls = 0
		if err := e.svc.PatchUsers(ctx, s.site.ID, ids, body, func(tx *store.Tx) error { calls++; return record(tx) }); err != nil || calls != 1 {
			t.Fatalf("the same correction again: %v, within ran %d times", err, calls)
		}
		if n := len(s.outbox()); n != len(items) || events() != 2 || !cmp.Equal(state(), after) {
			t.Errorf("the same correction again: %d outbox items (want %d), %d events (want 2)", n, len(items), events())
		}
	})
}
