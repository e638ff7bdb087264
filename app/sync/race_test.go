package sync_test

import (
	"context"
	"strings"
	"testing"

	"idbridge/app/fakeatlassian"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// The membership of a user that is deleted while the membership is being
// added: the user's deletion forgets its account, so the group must know
// the account to take it out of the group again. Seen as a rare failure of
// TestStormOfFailuresEndsWithTheDirectorysState ("delta" kept a deleted
// user); these make its two interleavings happen every time.

// TestDeletedWhileItsMembershipLostItsAnswer: the site adds the member,
// the answer is lost; before the group's retry looks its members up, the
// user is deleted and its deletion applied. The retry takes the account
// out of the group.
func TestDeletedWhileItsMembershipLostItsAnswer(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.start()
		ada := e.createUser("ada@example.com", true)
		e.createUser("bob@example.com", true)
		g := e.createGroup("delta")
		e.drain()

		e.fs.Inject(fakeatlassian.Fault{Route: "POST /rest/api/3/group/user", DropAfterApply: true, Times: 1})
		e.addMembers(g, ada)
		// The group's retry waits for its backoff, which the clock does
		// not reach before the deletion is applied.
		e.waitFor("the lost answer", func() bool {
			return e.fs.RequestCount("POST /rest/api/3/group/user", fakeatlassian.StatusDropped) == 1 && e.idle()
		})
		e.delete("Users", ada)
		e.waitFor("the deletion", func() bool { return !e.open(ada) && e.idle() })
		if !e.open(g) {
			t.Fatal("the group's retry came before the deletion")
		}
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
	})
}

// TestDeletedWhileItsMembershipIsAdded: the user's deletion is applied
// while the site is adding it to the group (after the group read the
// user's account, before the site answered): the deletion did not see
// the membership, and the group's record finds the user gone.
func TestDeletedWhileItsMembershipIsAdded(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.start()
		ada := e.createUser("ada@example.com", true)
		e.createUser("bob@example.com", true)
		g := e.createGroup("delta")
		e.drain()

		hold := make(chan struct{})
		e.fs.Inject(fakeatlassian.Fault{Route: "POST /rest/api/3/group/user", Hold: hold, Times: 1})
		before := e.fs.TotalRequests()
		e.addMembers(g, ada)
		e.waitFor("the add in flight", func() bool { return e.fs.TotalRequests() == before+1 })
		// A second worker on the same database (a replica, as far as the
		// claims go) applies the deletion now, as another replica would.
		cfg := e.cfg
		cfg.Owner = "deleter"
		w2 := e.newWorker(e.st, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w2.Run(ctx) }()
		e.delete("Users", ada)
		w2.Wake(nil)
		e.waitFor("the deletion", func() bool { return !e.open(ada) })
		cancel()
		<-done
		close(hold)
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
		if n := e.fs.RequestCount("POST /rest/api/3/group/user", 201); n != 1 {
			t.Errorf("the add was answered %d times, want once", n)
		}
	})
}

// open says the subject has items not applied yet.
func (e *env) open(subject string) bool {
	for _, it := range e.items() {
		if it.ResourceID == subject && (it.Status == models.OutboxStatusPending || it.Status == models.OutboxStatusHeld) {
			return true
		}
	}
	return false
}

// A claim waiting on a slow call does not hold back the site's other
// subjects: new changes get a worker of their own at once.
func TestNewChangesBesideAClaimInFlight(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.start()
		e.createUser("ada@example.com", true)
		e.drain()

		hold := make(chan struct{})
		released := false
		release := func() {
			if !released {
				released = true
				close(hold)
			}
		}
		defer release()
		// The first request from now on (the group's) waits for the test.
		e.fs.Inject(fakeatlassian.Fault{Hold: hold, Times: 1})
		before := e.fs.TotalRequests()
		g := e.createGroup("slow")
		e.waitFor("the group's first call in flight", func() bool { return e.fs.TotalRequests() == before+1 })
		bob := e.createUser("bob@example.com", true)
		e.waitFor("bob applied", func() bool { return !e.open(bob) })
		// Not after the held call timed out (RequestTimeout, 5 s), which
		// ends the group's claim and frees its worker.
		if n := e.fs.RequestCount("", fakeatlassian.StatusGone); n != 0 {
			t.Fatalf("bob was applied only after the group's held call was given up (%d)", n)
		}
		if !e.open(g) {
			t.Fatal("the group was applied while its call was held")
		}
		// The group's claim leases under a name of its own, the replica's
		// and its number, so that a takeover within this replica is seen.
		leases := 0
		for _, it := range e.items() {
			if it.ResourceID != g || it.LeaseOwner == "" {
				continue
			}
			leases++
			if !strings.HasPrefix(it.LeaseOwner, e.cfg.Owner+"#") {
				t.Errorf("the group's lease is held as %q, want %q and the claim's number", it.LeaseOwner, e.cfg.Owner+"#")
			}
		}
		if leases != 1 {
			t.Errorf("the group's claim holds %d leases, want 1 (its head's)", leases)
		}
		release()
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
	})
}
