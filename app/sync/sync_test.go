package sync_test

import (
	"strings"
	"testing"

	"idbridge/app/fakeatlassian"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// TestUsersGroupsAndMembershipsReachTheSite: what the identity provider
// does in the directory, the sync makes true in the site.
func TestUsersGroupsAndMembershipsReachTheSite(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		e.start()
		ada := e.createUser("ada@example.com", true)
		bob := e.createUser("bob@example.com", true)
		eng := e.createGroup("Engineering", ada, bob)
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		if got := e.fs.Snapshot().Groups["Engineering"]; len(got) != 2 {
			t.Fatalf("members: %v", got)
		}
		st := e.status()
		if d := cmp.Diff(map[string]any{"pending": 0, "applied at least 3": true, "failed": 0, "paused": false},
			map[string]any{"pending": st.Pending, "applied at least 3": st.Applied >= 3, "failed": len(st.FailedItems), "paused": st.Paused}); d != "" {
			t.Errorf("status %+v (-want +got):\n%s", st, d)
		}

		// Deactivation (remove from groups), then reactivation restores them.
		e.setActive(bob, false)
		e.drain()
		if d := cmp.Diff([]string{"ada@example.com"}, e.fs.Snapshot().Groups["Engineering"]); d != "" {
			t.Fatalf("Engineering's members after deactivation (-want +got):\n%s", d)
		}
		e.setActive(bob, true)
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)

		// Rename: a new group with the members, the old one gone.
		e.rename(eng, "Platform")
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		if _, ok := e.fs.GroupByName("Engineering"); ok {
			t.Error("the old group is still in the site")
		}

		// Membership removal, user deletion, group deletion.
		e.removeMember(eng, ada)
		e.delete("Users", bob)
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.delete("Groups", eng)
		e.drain()
		if _, ok := e.fs.GroupByName("Platform"); ok {
			t.Error("the deleted group is still in the site")
		}
		e.checkClean()
		if twice := e.fs.AppliedTwice(); len(twice) > 0 {
			t.Errorf("%+v", twice)
		}
	})
}

// TestPendingChangesFoldIntoTheLeastWork: a subject's pending changes are
// applied as one, from the directory's state: a user created and
// deactivated before either was applied costs nothing, three renames one
// group.
func TestPendingChangesFoldIntoTheLeastWork(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		gone := e.createUser("gone@example.com", true)
		e.setActive(gone, false)
		g := e.createGroup("one")
		e.rename(g, "two")
		e.rename(g, "three")
		e.rename(g, "four")
		e.start()
		e.drain()
		if n := e.fs.RequestCount("", -2); n != 2 {
			t.Errorf("%d requests, want 2 (look the group up, create it): %+v", n, e.fs.Requests())
		}
		if _, ok := e.fs.GroupByName("four"); !ok {
			t.Error("the group is not in the site under its last name")
		}
		if _, ok := e.fs.Account("gone@example.com"); ok {
			t.Error("the user created and deactivated before the sync ran is in the site")
		}
		for _, it := range e.items() {
			if it.Status != models.OutboxStatusApplied {
				t.Errorf("item %d %s: %s %q", it.ID, it.Op, it.Status, it.LastError)
			}
		}
		if got, want := e.fs.RequestCount("", -2), e.fs.MinRequests(); got != want {
			t.Errorf("requests %d, minimum %d", got, want)
		}
	})
}

// TestConfluenceSiteUsesConfluenceGroups: on a Confluence-only site the
// sync makes groups and memberships with Confluence's group API.
func TestConfluenceSiteUsesConfluenceGroups(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, withProduct("confluence"))
		// A membership's answer is lost: the next claim reads the group's
		// members (Confluence's membersByGroupId) before going on.
		e.fs.Inject(fakeatlassian.Fault{Route: "POST /wiki/rest/api/group/userByGroupId", DropAfterApply: true, Times: 1})
		e.start()
		ada := e.createUser("ada@example.com", true)
		bob := e.createUser("bob@example.com", true)
		g := e.createGroup("Writers", ada, bob)
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.setActive(bob, false)
		e.rename(g, "Editors")
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)

		e.delete("Groups", g)
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
		for _, rc := range e.fs.Requests() {
			if strings.Contains(rc.Route, "/rest/api/3/group") {
				t.Errorf("Jira's group API on a Confluence site: %+v", rc)
			}
		}
		if e.fs.RequestCount("GET /wiki/rest/api/group/{groupId}/membersByGroupId", 200) == 0 {
			t.Errorf("the members were not looked up after the lost answer: %+v", e.fs.Requests())
		}
		if d := cmp.Diff(map[string]bool{"POST /wiki/rest/api/group": true, "POST /wiki/rest/api/group/userByGroupId": true},
			map[string]bool{"POST /wiki/rest/api/group": e.fs.RequestCount("POST /wiki/rest/api/group", -2) > 0,
				"POST /wiki/rest/api/group/userByGroupId": e.fs.RequestCount("POST /wiki/rest/api/group/userByGroupId", -2) > 0}); d != "" {
			t.Errorf("Confluence's group API was not used, routes called (-want +got):\n%s%+v", d, e.fs.Requests())
		}
	})
}
