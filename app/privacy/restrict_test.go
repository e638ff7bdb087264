package privacy_test

import (
	"context"
	"testing"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// TestRestrictionGuard: while a person's processing is restricted, the
// one guard answers yes to every code path that asks (sign-in by account
// ID, the sync by directory user), the audit log keeps a marker without
// detail and leaves it out of the chart, and every attempt is counted on
// the restriction; lifting it lets everything through again. Restricting
// and lifting are audited with the person as target.
func TestRestrictionGuard(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newReportEnv(t, b)
		ctx := context.Background()
		const ann, bob = "557058:ann", "557058:bob"
		if err := e.st.InTx(ctx, func(tx *store.Tx) error {
			return tx.SaveSyncUser(&models.SyncUser{SiteID: e.site.ID, UserID: "u-ann", AccountID: ann, State: models.SyncUserActive})
		}); err != nil {
			t.Fatal(err)
		}
		r, err := e.svc.Restrict(ctx, e.site, "557058:admin", ann, "  contests the accuracy of her data ")
		if err != nil {
			t.Fatalf("restrict: %v", err)
		}
		if d := cmp.Diff(map[string]string{"reason": "contests the accuracy of her data", "restrictedBy": "557058:admin"},
			map[string]string{"reason": r.Reason, "restrictedBy": r.RestrictedBy}); d != "" {
			t.Fatalf("restrict (-want +got):\n%s", d)
		}
		for _, check := range []func() (bool, error){
			func() (bool, error) { return e.svc.Restricted(ctx, e.site.ID, ann) },
			func() (bool, error) { return e.svc.RestrictedUser(ctx, e.site.ID, "u-ann") },
		} {
			if got, err := check(); err != nil || !got {
				t.Errorf("guard: %v %v, want restricted", got, err)
			}
		}
		if got, _ := e.svc.Restricted(ctx, e.site.ID, bob); got {
			t.Errorf("Bob is not restricted")
		}
		if got, _ := e.svc.RestrictedUser(ctx, e.site.ID, "u-unknown"); got {
			t.Errorf("a user without an account is not restricted")
		}
		// A sign-in failure of Ann: a marker, no IP or browser, no count.
		err = e.st.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.CreateAuditEvent(e.site.ID, models.AuditEvent{ActorAccountID: ann, Event: models.AuditLoginFailure, IP: "192.0.2.7", UserAgent: "Firefox", Reason: "domain_not_allowed"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		evs, _ := e.st.View(ctx).FindAuditEvents(e.site.ID, store.AuditQuery{Event: models.AuditLoginFailure})
		if len(evs) != 1 {
			t.Errorf("audit of a restricted person: %+v, want one event", evs)
		} else if d := cmp.Diff(map[string]string{"ip": "", "userAgent": "", "actor": ann},
			map[string]string{"ip": evs[0].IP, "userAgent": evs[0].UserAgent, "actor": evs[0].ActorAccountID}); d != "" {
			t.Errorf("audit of a restricted person (-want +got):\n%s", d)
		}
		counts, _ := e.st.View(ctx).AuditDayCounts(e.site.ID, "2026-01-01", "2027-12-31", []models.AuditEventType{models.AuditLoginFailure})
		if len(counts) != 0 {
			t.Errorf("a restricted person's sign-in was counted in the chart: %+v", counts)
		}
		r, _ = e.st.View(ctx).FindRestriction(e.site.ID, ann)
		if d := cmp.Diff(map[string]any{"blockedCount": int64(3), "lastBlocked": models.BlockedAuditDetail, "has lastBlockedAt": true},
			map[string]any{"blockedCount": r.BlockedCount, "lastBlocked": r.LastBlocked, "has lastBlockedAt": r.LastBlockedAt != nil}); d != "" {
			t.Errorf("restriction counts (-want +got):\n%s", d)
		}
		// Restricting again changes the reason only.
		r2, err := e.svc.Restrict(ctx, e.site, "557058:admin2", ann, "new reason")
		if err != nil {
			t.Errorf("restrict again: %v", err)
		} else if d := cmp.Diff(map[string]any{"reason": "new reason", "blockedCount": int64(3), "restrictedAt": r.RestrictedAt},
			map[string]any{"reason": r2.Reason, "blockedCount": r2.BlockedCount, "restrictedAt": r2.RestrictedAt}); d != "" {
			t.Errorf("restrict again (-want +got):\n%s", d)
		}
		list, _ := e.svc.Restrictions(ctx, e.site.ID, "", 10)
		var listed []string
		for _, l := range list {
			listed = append(listed, l.AccountID)
		}
		if d := cmp.Diff([]string{ann}, listed); d != "" {
			t.Errorf("restrictions listed (-want +got):\n%s", d)
		}
		if err := e.svc.Unrestrict(ctx, e.site, "557058:admin", ann); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Unrestrict(ctx, e.site, "557058:admin", ann); !models.IsNotFound(err) {
			t.Errorf("lifting twice: %v", err)
		}
		if got, _ := e.svc.Restricted(ctx, e.site.ID, ann); got {
			t.Errorf("still restricted after lifting")
		}
		kinds := map[models.AuditEventType]int{}
		all, _ := e.st.View(ctx).FindAuditEvents(e.site.ID, store.AuditQuery{AccountID: ann})
		for _, ev := range all {
			kinds[ev.Event]++
		}
		if d := cmp.Diff(map[string]int{"restricted": 2, "unrestricted": 1},
			map[string]int{"restricted": kinds[models.AuditProcessingRestricted], "unrestricted": kinds[models.AuditProcessingUnrestrict]}); d != "" {
			t.Errorf("audit: %v (-want +got):\n%s", kinds, d)
		}
		// Bad input names the field.
		for _, c := range []struct{ id, reason, field string }{{"a b", "", "accountId"}, {ann, string(make([]byte, 600)), "reason"}} {
			_, err := e.svc.Restrict(ctx, e.site, "557058:admin", c.id, c.reason)
			var me *models.Error
			if !asError(err, &me) || me.Field != c.field {
				t.Errorf("restrict %q: %v", c.id, err)
			}
		}
	})
}
