package privacy_test

import (
	"context"
	"testing"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
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
		if err != nil || r.Reason != "contests the accuracy of her data" || r.RestrictedBy != "557058:admin" {
			t.Fatalf("restrict: %+v %v", r, err)
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
		if len(evs) != 1 || evs[0].IP != "" || evs[0].UserAgent != "" || evs[0].ActorAccountID != ann {
			t.Errorf("audit of a restricted person: %+v", evs)
		}
		counts, _ := e.st.View(ctx).AuditDayCounts(e.site.ID, "2026-01-01", "2027-12-31", []models.AuditEventType{models.AuditLoginFailure})
		if len(counts) != 0 {
			t.Errorf("a restricted person's sign-in was counted in the chart: %+v", counts)
		}
		r, _ = e.st.View(ctx).FindRestriction(e.site.ID, ann)
		if r.BlockedCount != 3 || r.LastBlocked != models.BlockedAuditDetail || r.LastBlockedAt == nil {
			t.Errorf("restriction counts %+v", r)
		}
		// Restricting again changes the reason only.
		r2, err := e.svc.Restrict(ctx, e.site, "557058:admin2", ann, "new reason")
		if err != nil || r2.Reason != "new reason" || r2.BlockedCount != 3 || !r2.RestrictedAt.Equal(r.RestrictedAt) {
			t.Errorf("restrict again: %+v %v", r2, err)
		}
		list, _ := e.svc.Restrictions(ctx, e.site.ID, "", 10)
		if len(list) != 1 || list[0].AccountID != ann {
			t.Errorf("list %+v", list)
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
		if kinds[models.AuditProcessingRestricted] != 2 || kinds[models.AuditProcessingUnrestrict] != 1 {
			t.Errorf("audit: %v", kinds)
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
