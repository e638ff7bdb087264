package sync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"idbridge/app/fakeatlassian"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// TestDeactivationModes: remove from the site, or suspend the managed
// account; reactivation undoes exactly that and restores the memberships.
func TestDeactivationModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []models.DeactivationMode{models.DeactivateRemoveFromSite, models.DeactivateSuspend} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				e := newEnv(t, b)
				e.setProvisioning(func(p *models.Provisioning) { p.Deactivation = mode })
				e.start()
				ada := e.createUser("ada@example.com", true)
				e.createGroup("Engineering", ada)
				e.drain()
				first, _ := e.fs.Account("ada@example.com")
				e.setActive(ada, false)
				e.drain()
				e.checkState(mode)
				a, _ := e.fs.Account("ada@example.com")
				switch mode {
				case models.DeactivateRemoveFromSite:
					if a.InSite || len(e.fs.Snapshot().Groups["Engineering"]) != 0 {
						t.Fatalf("after deactivation: %+v %v", a, e.fs.Snapshot().Groups)
					}
				case models.DeactivateSuspend:
					if !a.Suspended {
						t.Fatalf("not suspended: %+v", a)
					}
				}
				// The admin switches modes meanwhile: reactivation undoes what
				// was done, not what the new mode would do.
				e.setProvisioning(func(p *models.Provisioning) { p.Deactivation = models.DeactivateRemoveGroups })
				e.setActive(ada, true)
				e.drain()
				e.checkState(models.DeactivateRemoveGroups)
				a, _ = e.fs.Account("ada@example.com")
				if a.AccountID != first.AccountID || !a.InSite || a.Suspended {
					t.Errorf("after reactivation: %+v", a)
				}
				// Deletion: as deactivation, then the account ID is forgotten.
				e.setProvisioning(func(p *models.Provisioning) { p.Deactivation = mode })
				e.delete("Users", ada)
				e.drain()
				if _, err := e.st.View(context.Background()).FindSyncUser(e.site.ID, ada, false); !models.IsNotFound(err) {
					t.Errorf("the deleted user's account ID is still kept: %v", err)
				}
				e.checkClean()
			})
		})
	}
}

// TestCustomersAndAttributes: provisioning as JSM customers (409 → found),
// and a user without an email fails in words.
func TestCustomersAndAttributes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.setProvisioning(func(p *models.Provisioning) { p.ProvisionAs = models.ProvisionCustomer })
		existing := e.fs.AddAccount(fakeatlassian.Account{Email: "known@example.com", Type: fakeatlassian.AccountCustomer, DisplayName: "Known"})
		e.start()
		e.createUser("new@example.com", true)
		e.createUser("known@example.com", true)
		body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"no-email","active":true}`
		if _, err := e.scim.Create(context.Background(), e.request("Users", "", body)); err != nil {
			t.Fatal(err)
		}
		e.drain()
		if a, ok := e.fs.Account("new@example.com"); !ok || a.Type != fakeatlassian.AccountCustomer {
			t.Errorf("customer: %+v %v", a, ok)
		}
		if n := e.fs.RequestCount("POST /rest/servicedeskapi/customer", 409); n != 1 {
			t.Errorf("409 for the existing customer: %d", n)
		}
		st := e.status()
		if len(st.FailedItems) != 1 {
			t.Errorf("failed: %+v, want one", st.FailedItems)
		} else if d := cmp.Diff(map[string]any{"subject": "no-email", "says no email address": true}, map[string]any{"subject": st.FailedItems[0].Subject,
			"says no email address": strings.Contains(st.FailedItems[0].Error, "no email address")}); d != "" {
			t.Errorf("failed %+v (-want +got):\n%s", st.FailedItems[0], d)
		}
		var sawKnown bool
		for _, r := range st.Recent {
			if r.Subject == "known@example.com" && r.AtlassianID == existing {
				sawKnown = true
			}
		}
		if !sawKnown {
			t.Errorf("the found customer's account ID is not shown: %+v", st.Recent)
		}
	})
}

// TestNameChanges: a name change applies to a managed account through the
// organization's key; without one it is not applicable, in words.
func TestNameChanges(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.start()
		ada := e.createUser("ada@example.com", true)
		e.drain()
		e.patch("Users", ada, `[{"op":"replace","path":"displayName","value":"Ada Lovelace"}]`)
		e.drain()
		if a, _ := e.fs.Account("ada@example.com"); a.DisplayName != "Ada Lovelace" {
			t.Errorf("name: %+v", a)
		}
		// Without the organization's key: not applicable, in words. (The
		// worker is restarted: a running one reads credentials again only
		// every ten seconds.)
		e.stop()
		err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
			acc, err := tx.FindServiceAccount(e.site.ID)
			if err != nil {
				return err
			}
			acc.OrgAdminKey, acc.OrgAdminKeyHint = "", ""
			_, err = tx.SaveServiceAccount(e.site.ID, acc)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		e.patch("Users", ada, `[{"op":"replace","path":"displayName","value":"Countess"}]`)
		e.start()
		e.drain()
		st := e.status()
		if len(st.Recent) == 0 {
			t.Fatalf("status: %+v, nothing recent", st)
		}
		if d := cmp.Diff(map[string]any{"notApplicable": 1, "recent[0].outcome": models.OutboxStatusNotApplicable, "recent[0] names the org key": true},
			map[string]any{"notApplicable": st.NotApplicable, "recent[0].outcome": st.Recent[0].Outcome,
				"recent[0] names the org key": strings.Contains(st.Recent[0].Error, "organization Admin API key")}); d != "" {
			t.Errorf("status %+v %+v (-want +got):\n%s", st, st.Recent, d)
		}
		e.checkClean()
	})
}

// TestAccidentalDeletionBrake: deactivations beyond the threshold within
// an hour are held with the reason; other changes flow; apply lets them
// through, discard leaves the site as it is.
func TestAccidentalDeletionBrake(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.start()
		var users []string
		for i := range 30 {
			users = append(users, e.createUser(fmt.Sprintf("u%02d@example.com", i), true))
		}
		e.createGroup("all", users...)
		e.drain()
		// The identity provider misfires: 25 deactivations (more than 20,
		// the minimum, and 10% of 30) arrive before the sync looks ...
		e.stop()
		for _, u := range users[:25] {
			e.setActive(u, false)
		}
		// ... while other work goes on.
		newcomer := e.createUser("newcomer@example.com", true)
		e.start()
		e.drain()
		st := e.status()
		if st.Held == nil {
			t.Fatal("nothing held")
		}
		if d := cmp.Diff(map[string]any{"count": 25, "subjects": 20, "reason says 25 deactivations and deletions": true},
			map[string]any{"count": st.Held.Count, "subjects": len(st.Held.Subjects),
				"reason says 25 deactivations and deletions": strings.Contains(st.Held.Reason, "25 deactivations and deletions")}); d != "" {
			t.Fatalf("held %+v (-want +got):\n%s", st.Held, d)
		}
		if got := e.fs.Snapshot().Groups["all"]; len(got) != 30 {
			t.Errorf("a held deactivation reached the site: %d members", len(got))
		}
		if _, ok := e.fs.Account("newcomer@example.com"); !ok {
			t.Error("other changes did not flow while the brake held")
		}
		caller := &models.Caller{Site: e.site, AccountID: "557058:admin"}
		// Discard: the site keeps the access; a later reactivation is no change.
		st, err := e.w.DiscardHeld(context.Background(), caller)
		if err != nil || st.Held != nil {
			t.Fatalf("discard: %+v %v", st, err)
		}
		e.drain()
		if got := e.fs.Snapshot().Groups["all"]; len(got) != 30 {
			t.Errorf("after discard: %d members", len(got))
		}
		before := e.fs.TotalRequests()
		e.setActive(users[0], true)
		e.drain()
		if n := e.fs.TotalRequests() - before; n != 0 {
			t.Errorf("reactivating a kept user cost %d requests", n)
		}
		// Within the same hour the brake counts only what came after the
		// discard; a second misfire is held again, and applied.
		e.clock.Advance(2 * time.Hour)
		for _, u := range append(users[1:25], newcomer) {
			e.setActive(u, true)
		}
		e.drain()
		// This time the sync runs while they arrive: the first ones, up to
		// the limit, go through; the rest is held.
		for _, u := range users[:22] {
			e.setActive(u, false)
		}
		e.drain()
		st = e.status()
		if st.Held == nil || st.Held.Count < 2 || st.Held.Count > 22 {
			t.Fatalf("second misfire: %+v", st.Held)
		}
		if _, err := e.w.ApplyHeld(context.Background(), caller); err != nil {
			t.Fatal(err)
		}
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		if got := e.fs.Snapshot().Groups["all"]; len(got) != 8 {
			t.Errorf("after apply: %d members, want 8", len(got))
		}
		if _, err := e.w.ApplyHeld(context.Background(), caller); models.ErrorCode(err) != models.CodeConflict {
			t.Errorf("apply with nothing held: %v", err)
		}
		// Threshold 0 turns the brake off.
		e.setProvisioning(func(p *models.Provisioning) { p.DeletionThreshold = 0 })
		for _, u := range users {
			e.setActive(u, true)
		}
		e.drain()
		e.clock.Advance(2 * time.Hour)
		for _, u := range users {
			e.setActive(u, false)
		}
		e.drain()
		if st := e.status(); st.Held != nil {
			t.Errorf("held with the brake off: %+v", st.Held)
		}
		e.checkClean()
	})
}
