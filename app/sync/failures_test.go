package sync_test

import (
	"context"
	"fmt"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"idbridge/app/fakeatlassian"
	"idbridge/app/privacy"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	syncw "idbridge/app/sync"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// TestStormOfFailuresEndsWithTheDirectorysState: with the site answering
// 429 (Retry-After in seconds, as a date, or none), 503, and dropping the
// connection after applying a change, at random, the site ends with the
// directory's state, nothing applied twice, nothing retried before its
// Retry-After.
func TestStormOfFailuresEndsWithTheDirectorysState(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		for _, f := range []fakeatlassian.Fault{
			{Status: 429, RetryAfterIn: 2 * time.Second, Probability: 0.08},
			{Status: 429, RetryAfterIn: 3 * time.Second, AsDate: true, Probability: 0.05},
			{Status: 429, Probability: 0.05},
			{Status: 503, Probability: 0.05},
			{Status: 502, RetryAfterIn: time.Second, Probability: 0.03},
			{DropAfterApply: true, Probability: 0.06},
		} {
			e.fs.Inject(f)
		}
		e.start()
		var users []string
		for i := range 24 {
			users = append(users, e.createUser(fmt.Sprintf("user%02d@example.com", i), true))
		}
		groups := []string{
			e.createGroup("alpha", users[:10]...),
			e.createGroup("beta", users[5:15]...),
			e.createGroup("gamma", users[12:24]...),
			e.createGroup("delta"),
		}
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)

		// A second wave: deactivations, reactivations, renames, deletions.
		for _, u := range users[:6] {
			e.setActive(u, false)
		}
		e.setActive(users[2], true)
		e.rename(groups[0], "alpha-renamed")
		e.addMembers(groups[3], users[20:24]...)
		e.removeMember(groups[1], users[7])
		e.delete("Users", users[23])
		e.delete("Groups", groups[2])
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
		for _, it := range e.items() {
			if it.Status != models.OutboxStatusApplied {
				t.Errorf("item %d %s: %s %q", it.ID, it.Op, it.Status, it.LastError)
			}
		}
		if d := cmp.Diff(map[string]bool{"429": true, "dropped": true, "503": true}, map[string]bool{"429": e.fs.RequestCount("", 429) > 0,
			"dropped": e.fs.RequestCount("", fakeatlassian.StatusDropped) > 0, "503": e.fs.RequestCount("", 503) > 0}); d != "" {
			t.Errorf("the storm did not happen, answers seen (-want +got):\n%s%+v", d, e.fs.Requests())
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if d := cmp.Diff(map[string]bool{"results.retry": true, "answers.429": true, "answers.no_answer": true}, map[string]bool{"results.retry": e.results["retry"] > 0,
			"answers.429": e.answers["429"] > 0, "answers.no_answer": e.answers["no_answer"] > 0}); d != "" {
			t.Errorf("metrics seen (-want +got):\n%sresults %v answers %v", d, e.results, e.answers)
		}
	})
}

// TestSlowAnswersAreRetried: an answer slower than the request timeout is
// a retry, looked up first when it was a change.
func TestSlowAnswersAreRetried(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		// The answer would take far longer than the request may (and than
		// the test waits): only a call given up on ends sooner, however
		// loaded the machine.
		e := newEnv(t, b, withConfig(func(c *syncw.Config) { c.RequestTimeout = 500 * time.Millisecond }))
		e.fs.Inject(fakeatlassian.Fault{Route: "POST /rest/api/3/user", Delay: time.Hour, Times: 1})
		e.start()
		e.createUser("slow@example.com", true)
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
		// The fake notes the abandoned call once it sees the connection go.
		e.waitFor("the abandoned call", func() bool { return e.fs.RequestCount("POST /rest/api/3/user", fakeatlassian.StatusGone) == 1 })
	})
}

// Test401PausesTheSiteAndLosesNothing: Atlassian refusing the credentials
// pauses the site's sync, marks the service account invalid and keeps
// every change; new credentials resume it, as does Resume.
func Test401PausesTheSiteAndLosesNothing(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.fs.RevokeCredentials()
		e.start()
		ada := e.createUser("ada@example.com", true)
		e.createUser("bob@example.com", true)
		e.waitFor("the pause", func() bool { return e.status().Paused && e.idle() })
		st := e.status()
		if st.Pending != 2 || !strings.Contains(st.PausedReason, "401") || !strings.Contains(st.PausedReason, "Service account") {
			t.Fatalf("status: %+v", st)
		}
		acc, err := e.st.View(context.Background()).FindServiceAccount(e.site.ID)
		if err != nil || acc.Status != models.AccountInvalid {
			t.Fatalf("service account: %+v %v", acc, err)
		}
		// New changes wait too, without calls.
		before := e.fs.TotalRequests()
		e.createGroup("waiting", ada)
		e.w.Wake(nil)
		e.clock.Advance(time.Hour)
		e.w.Wake(nil)
		e.waitFor("the worker to settle", e.idle)
		if n := e.fs.TotalRequests(); n != before {
			t.Errorf("a paused site got %d more requests", n-before)
		}

		// The admin saves working credentials: the sync resumes by itself.
		e.fs.AddServiceAccount(fakeatlassian.ServiceAccount{Email: svcEmail, APIToken: "ATATT-new-token-0123456789", Admin: true})
		e.clock.Advance(time.Second)
		err = e.st.InTx(context.Background(), func(tx *store.Tx) error {
			acc.Token = "ATATT-new-token-0123456789"
			_, err := tx.SaveServiceAccount(e.site.ID, acc)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		e.w.Wake(nil)
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		if st := e.status(); st.Paused {
			t.Errorf("still paused: %+v", st)
		}

		// Paused again; Resume lifts it.
		e.fs.RevokeCredentials()
		e.createUser("cyd@example.com", true)
		e.waitFor("the second pause", func() bool { return e.status().Paused })
		e.fs.AddServiceAccount(fakeatlassian.ServiceAccount{Email: svcEmail, APIToken: "ATATT-new-token-0123456789", Admin: true})
		st, err = e.w.Resume(context.Background(), &models.Caller{Site: e.site, AccountID: "557058:admin"})
		if err != nil || st.Paused {
			t.Fatalf("resume: %+v %v", st, err)
		}
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
	})
}

// Test403IsAFailedItemNotAPause: an account the organization may not
// manage fails its item in words; the site goes on; an admin may retry.
func Test403IsAFailedItemNotAPause(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.setProvisioning(func(p *models.Provisioning) { p.Deactivation = models.DeactivateSuspend })
		e.fs.AddAccount(fakeatlassian.Account{Email: "guest@partner.example", DisplayName: "Guest"})
		e.start()
		guest := e.createUser("guest@partner.example", true)
		other := e.createUser("other@example.com", true)
		e.drain()
		e.setActive(guest, false)
		e.setActive(other, false)
		e.drain()
		st := e.status()
		if st.Paused || len(st.FailedItems) != 1 {
			t.Fatalf("status: %+v", st)
		}
		f := st.FailedItems[0]
		if f.Subject != "guest@partner.example" || !strings.Contains(f.Error, "403") || !strings.Contains(f.Error, "not managed by your organization") {
			t.Errorf("failed item: %+v", f)
		}
		if a, _ := e.fs.Account("other@example.com"); !a.Suspended {
			t.Error("the other user was not suspended")
		}
		// The organization takes the account over; the admin retries.
		e.fs.SetManaged("guest@partner.example", true)
		if _, err := e.w.Retry(context.Background(), &models.Caller{Site: e.site, AccountID: "557058:admin"}, f.ID); err != nil {
			t.Fatal(err)
		}
		e.drain()
		if a, _ := e.fs.Account("guest@partner.example"); !a.Suspended {
			t.Error("the retried suspension did not happen")
		}
		// Retrying what has not failed is a conflict; an unknown one not found.
		caller := &models.Caller{Site: e.site, AccountID: "557058:admin"}
		if _, err := e.w.Retry(context.Background(), caller, f.ID); models.ErrorCode(err) != models.CodeConflict {
			t.Errorf("retry of an applied item: %v", err)
		}
		if _, err := e.w.Retry(context.Background(), caller, 999999); models.ErrorCode(err) != models.CodeNotFound {
			t.Errorf("retry of an unknown item: %v", err)
		}
		e.checkClean()
	})
}

// TestAddsAreRecordedBeforeTheirCalls: a group claim records the
// memberships it adds as being added before the calls. An add whose answer
// was lost stays so until the next claim finds it in the site and
// confirms it; an add Atlassian refuses leaves nothing recorded, and the
// admin's retry adds it and confirms it.
func TestAddsAreRecordedBeforeTheirCalls(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.start()
		ada := e.createUser("ada@example.com", true)
		bob := e.createUser("bob@example.com", true)
		g := e.createGroup("delta")
		e.drain()
		account := func(email string) string {
			t.Helper()
			a, ok := e.fs.Account(email)
			if !ok {
				t.Fatalf("%s is not in the site", email)
			}
			return a.AccountID
		}
		members := func() map[string]models.SyncMember {
			t.Helper()
			got, err := e.st.View(context.Background()).SyncMembers(e.site.ID, g, nil)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}

		// The answer is lost: applied in the site, recorded as being added.
		e.fs.Inject(fakeatlassian.Fault{Route: "POST /rest/api/3/group/user", DropAfterApply: true, Times: 1})
		e.addMembers(g, ada)
		e.waitFor("the lost answer", func() bool {
			return e.fs.RequestCount("POST /rest/api/3/group/user", fakeatlassian.StatusDropped) == 1 && e.idle()
		})
		if diff := cmp.Diff(map[string]models.SyncMember{ada: {AccountID: account("ada@example.com"), Adding: true}}, members()); diff != "" {
			t.Fatalf("after the lost answer (-want +got):\n%s", diff)
		}
		e.drain()
		if diff := cmp.Diff(map[string]models.SyncMember{ada: {AccountID: account("ada@example.com")}}, members()); diff != "" {
			t.Fatalf("after the next claim (-want +got):\n%s", diff)
		}

		// Refused: the item fails, and no membership is recorded.
		e.fs.Inject(fakeatlassian.Fault{Route: "POST /rest/api/3/group/user", Status: 403, Times: 1})
		e.addMembers(g, bob)
		e.drain()
		st := e.status()
		if len(st.FailedItems) != 1 || !strings.Contains(st.FailedItems[0].Error, "403") {
			t.Fatalf("failed items: %+v", st.FailedItems)
		}
		if _, ok := members()[bob]; ok {
			t.Fatalf("bob's refused add is recorded: %+v", members()[bob])
		}
		if _, err := e.w.Retry(context.Background(), &models.Caller{Site: e.site, AccountID: "557058:admin"}, st.FailedItems[0].ID); err != nil {
			t.Fatal(err)
		}
		e.drain()
		if diff := cmp.Diff(map[string]models.SyncMember{ada: {AccountID: account("ada@example.com")}, bob: {AccountID: account("bob@example.com")}}, members()); diff != "" {
			t.Fatalf("after the retry (-want +got):\n%s", diff)
		}
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
	})
}

// TestNoServiceAccountKeepsChangesPending: without a service account the
// changes wait, and the status says why.
func TestNoServiceAccountKeepsChangesPending(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, withoutServiceAccount())
		e.start()
		e.createUser("ada@example.com", true)
		e.w.Wake(nil)
		st := e.status()
		if !st.Paused || !strings.Contains(st.PausedReason, "No service account") || st.Pending != 1 {
			t.Errorf("status: %+v", st)
		}
		if n := e.fs.TotalRequests(); n != 0 {
			t.Errorf("%d requests without a service account", n)
		}
	})
}

// TestUninstalledMidSyncStopsAtOnce: a site uninstalled while its changes
// are being applied stops at once (the call in flight is abandoned, not
// waited for), nothing more is sent, and its changes stay pending, lost to
// nobody, until the site's data is purged; the status says why. Once its
// retention ends, the retention purge drops the pending changes with the
// rest of the site's data, and the worker sends nothing for it after.
func TestUninstalledMidSyncStopsAtOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		// Every answer takes a minute: only an abandoned call ends sooner.
		e.fs.Inject(fakeatlassian.Fault{Delay: time.Minute})
		e.start()
		for i := range 10 {
			e.createUser(fmt.Sprintf("gone%02d@example.com", i), true)
		}
		e.waitFor("calls in flight", func() bool { return e.fs.TotalRequests() >= 1 })
		err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
			return tx.MarkSiteUninstalled(e.site.ID, e.clock.Now().Add(30*24*time.Hour))
		})
		if err != nil {
			t.Fatal(err)
		}
		e.w.SiteChanged(e.site.ClientKey) // as sites.Service tells it
		e.waitFor("the worker to let go", e.idle)
		sent := e.fs.TotalRequests()
		// Wake-ups and time passing send nothing more.
		e.w.Wake(nil)
		e.clock.Advance(time.Hour)
		e.w.Wake(nil)
		e.waitFor("the worker to settle", e.idle)
		if n := e.fs.TotalRequests(); n != sent {
			t.Errorf("%d requests after the uninstall", n-sent)
		}
		// The fake notes the abandoned call once it sees the connection go.
		e.waitFor("the abandoned call", func() bool { return e.fs.RequestCount("", fakeatlassian.StatusGone) > 0 })
		st := e.status()
		if d := cmp.Diff(map[string]any{"paused": true, "resumable": false, "reason says uninstalled": true, "pending": 10, "failed": 0},
			map[string]any{"paused": st.Paused, "resumable": st.Resumable, "reason says uninstalled": strings.Contains(st.PausedReason, "uninstalled"),
				"pending": st.Pending, "failed": len(st.FailedItems)}); d != "" {
			t.Errorf("status %+v (-want +got):\n%s", st, d)
		}
		if n := len(e.fs.Snapshot().Users); n != 0 {
			t.Errorf("%d accounts made in the uninstalled site", n)
		}

		// The retention ends: the purge takes the pending changes along.
		e.clock.Advance(31 * 24 * time.Hour)
		res, err := privacy.New(privacy.Config{}, e.st, e.clock.Now, nil).Purge(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]int{"sites": 1, "outbox rows": 10}, map[string]int{"sites": res.Sites, "outbox rows": res.SiteRows["outbox"]}); d != "" {
			t.Errorf("purge %s (-want +got):\n%s", res, d)
		}
		if drained, err := e.st.View(context.Background()).SyncDrained(e.site.ID); err != nil || !drained {
			t.Errorf("after the purge: drained %v, %v; want nothing left", drained, err)
		}
		e.w.Wake(nil)
		e.clock.Advance(time.Hour)
		e.w.Wake(nil)
		e.waitFor("the worker to settle after the purge", e.idle)
		if n := e.fs.TotalRequests(); n != sent {
			t.Errorf("%d requests after the purge", n-sent)
		}
	})
}

// TestReplicasShareTheWork: on PostgreSQL two replicas (each its own
// store and worker, as two processes have) share one site's work: the one
// that did not accept the changes learns of them through NOTIFY (it polls
// only once an hour here), each change is applied by one of them, and
// nothing is applied twice.
func TestReplicasShareTheWork(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		if b.Name != store.Postgres {
			t.Skip("on SQLite one process applies the outbox")
		}
		testReplicas(t, b)
	})
}

func testReplicas(t *testing.T, b storetest.Backend) {
	e := newEnv(t, b)
	st2 := b.Open(t, storetest.SameDatabase(e.st))
	var mu gosync.Mutex
	applied := map[string]int{}
	replica := func(owner string, st *store.Store) *syncw.Worker {
		cfg := e.cfg
		cfg.Owner = owner
		cfg.OnResult = func(o string) {
			if o == models.OutboxStatusApplied {
				mu.Lock()
				applied[owner]++
				mu.Unlock()
			}
		}
		return syncw.New(cfg, st, e.sa, e.now, nil)
	}
	e.w = replica("replica-1", e.st)
	e.st.OnOutbox(e.w.Wake)
	w2 := replica("replica-2", st2)
	st2.OnOutbox(w2.Wake)
	e.others = append(e.others, w2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w2.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// Answers take a moment, so that the first replica cannot be done
	// before the second hears of the work (its NOTIFY goes out within 50 ms).
	e.fs.Inject(fakeatlassian.Fault{Delay: 25 * time.Millisecond})
	e.start()
	e.waitFor("the replicas to settle", e.idle)
	var users []string
	for i := range 40 {
		users = append(users, e.createUser(fmt.Sprintf("r%02d@example.com", i), true))
	}
	e.createGroup("both", users...)
	e.drain()
	e.checkState(models.DeactivateRemoveGroups)
	e.checkClean()
	mu.Lock()
	defer mu.Unlock()
	if d := cmp.Diff(map[string]bool{"replica-1": true, "replica-2": true}, map[string]bool{"replica-1": applied["replica-1"] > 0, "replica-2": applied["replica-2"] > 0}); d != "" {
		t.Errorf("one replica did all the work: %v; replicas that applied something (-want +got):\n%s", applied, d)
	}
}

// TestRenameWhoseDeleteLostItsAnswer: the old group of a rename is
// deleted, the answer is lost; the next claim looks its members up and
// must still look the old group up before deleting it again.
func TestRenameWhoseDeleteLostItsAnswer(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.start()
		ada := e.createUser("ada@example.com", true)
		g := e.createGroup("old-name", ada)
		e.drain()
		e.fs.Inject(fakeatlassian.Fault{Route: "DELETE /rest/api/3/group", DropAfterApply: true, Times: 1})
		e.rename(g, "new-name")
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
		if n := e.fs.RequestCount("DELETE /rest/api/3/group", -2); n != 1 {
			t.Errorf("the old group was deleted %d times: %+v", n, e.fs.Requests())
		}
	})
}

// TestCredentialsSavedJustAfterACheckStartTheSync: saving credentials wakes
// the worker. A site found without a usable service account is looked at
// again on new changes at most once a second (a stream of SCIM writes
// must not check it at every commit), and a wake-up inside that second is
// kept for the look at its end, not dropped: the harness's BlockedRecheck
// is an hour, so a dropped one fails here.
func TestCredentialsSavedJustAfterACheckStartTheSync(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, withoutServiceAccount())
		e.start()
		e.createUser("ada@example.com", true)
		// The worker looks within milliseconds and finds no service
		// account; the credentials come well inside the second after.
		time.Sleep(200 * time.Millisecond)
		err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
			_, err := tx.SaveServiceAccount(e.site.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: svcEmail, Token: svcToken,
				OrgAdminKey: orgKey, OrgID: e.fs.OrgID})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		e.waitFor("the change to be applied", func() bool { return e.status().Pending == 0 })
		if n := e.fs.TotalRequests(); n == 0 {
			t.Fatal("applied without a request to the site")
		}
	})
}

// TestGroupMadeAgainGetsEveryMember: a group deleted in the site (by an
// admin, outside idbridge) is made again at the next change of it, with
// every member, even when the claims that do it stop half-way: here each
// claim may make three calls, so the group's making and its six members
// take several claims, and those after the first are about one new member
// only. (They added that member alone, and the group stayed without the
// others, before the group's making queued a refresh of all its members.)
func TestGroupMadeAgainGetsEveryMember(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, withConfig(func(c *syncw.Config) { c.CallsPerClaim = 3 }))
		e.start()
		var ids []string
		for i := range 6 {
			ids = append(ids, e.createUser(fmt.Sprintf("m%d@example.com", i), true))
		}
		g := e.createGroup("delta", ids[:5]...)
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		if !e.fs.DeleteGroupByName("delta") {
			t.Fatal("the fake has no group delta")
		}
		e.addMembers(g, ids[5])
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
	})
}
