package sync_test

// The request sequences Microsoft Entra ID and Okta document for SCIM
// servers (the same ones, with the same bodies, as
// provisioning.TestServerEntraDocumentedSequence and
// TestServerOktaDocumentedSequence replay against the SCIM server), sent
// to idbridge with the sync running: after every step, and again when the
// whole sequence is applied at once (folded), the fake site holds exactly
// what the directory says.

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// idpStep is one request of a documented sequence; v carries the ids the
// server assigned.
type idpStep struct {
	name string
	do   func(e *env, v map[string]string)
}

func (e *env) scimCreate(endpoint, body string) string {
	e.t.Helper()
	doc, err := e.scim.Create(context.Background(), e.request(endpoint, "", body))
	if err != nil {
		e.t.Fatalf("POST %s: %v", endpoint, err)
	}
	return idOf(e.t, doc)
}

func (e *env) scimPatch(endpoint, id, body string) {
	e.t.Helper()
	if _, err := e.scim.Patch(context.Background(), e.request(endpoint, id, body)); err != nil {
		e.t.Fatalf("PATCH %s/%s: %v", endpoint, id, err)
	}
}

func (e *env) scimPut(endpoint, id, body string) {
	e.t.Helper()
	if _, err := e.scim.Replace(context.Background(), e.request(endpoint, id, body)); err != nil {
		e.t.Fatalf("PUT %s/%s: %v", endpoint, id, err)
	}
}

func sub(s string, v map[string]string) string {
	for k, x := range v {
		s = strings.ReplaceAll(s, "{{"+k+"}}", x)
	}
	return s
}

// checkByAccount compares the site with the directory through the account
// and group IDs the sync recorded (an account keeps the email it was made
// with when the identity provider changes the user's email later): every
// active user's account is in the site, not suspended, named as the
// directory names it; every group exists under its name with exactly the
// active members' accounts.
func (e *env) checkByAccount(step string) {
	e.t.Helper()
	view := e.st.View(context.Background())
	users, _, err := view.ListDirectoryUsers(e.site.ID, store.DirectoryQuery{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	groups, _, err := view.ListDirectoryGroups(e.site.ID, store.DirectoryQuery{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	snap := e.fs.Snapshot()
	byAccount := map[string]string{} // account ID → lower-cased email in the site
	for email, u := range snap.Users {
		byAccount[u.AccountID] = email
	}
	account := map[string]string{} // directory user → account email
	active := map[string]bool{}
	for _, u := range users {
		active[u.ID] = u.Active
		su, err := view.FindSyncUser(e.site.ID, u.ID, false)
		if !u.Active {
			continue
		}
		if err != nil || su.AccountID == "" {
			e.t.Errorf("%s: %s is active but has no account in the site (%v)", step, u.UserName, err)
			continue
		}
		email, ok := byAccount[su.AccountID]
		if !ok {
			e.t.Errorf("%s: %s's account %s is not in the site", step, u.UserName, su.AccountID)
			continue
		}
		account[u.ID] = email
		a := snap.Users[email]
		if !a.InSite || a.Suspended {
			e.t.Errorf("%s: %s is active, but the site has %+v", step, u.UserName, a)
		}
		if want := wantName(u); want != "" && a.DisplayName != want {
			e.t.Errorf("%s: %s is called %q in the site, want %q", step, u.UserName, a.DisplayName, want)
		}
	}
	names := map[string]bool{}
	for _, g := range groups {
		names[g.DisplayName] = true
		ids, err := view.GroupMemberIDs(e.site.ID, g.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		want := []string{}
		for _, id := range ids {
			if active[id] {
				want = append(want, account[id])
			}
		}
		sort.Strings(want)
		have, ok := snap.Groups[g.DisplayName]
		if !ok {
			e.t.Errorf("%s: group %q is not in the site (it has %v)", step, g.DisplayName, snap.Groups)
			continue
		}
		if have == nil {
			have = []string{}
		}
		if diff := cmp.Diff(want, have); diff != "" {
			e.t.Errorf("%s: members of %q (-directory +site):\n%s", step, g.DisplayName, diff)
		}
	}
	for name := range snap.Groups {
		if !names[name] {
			e.t.Errorf("%s: the site has group %q, which the directory does not", step, name)
		}
	}
}

// wantName is the name the identity provider gave a user (displayName,
// else given and family name); "" when none, and Atlassian's own stands.
func wantName(u models.DirectoryUser) string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return strings.TrimSpace(u.GivenName + " " + u.FamilyName)
}

// runIdPSequence replays steps with the sync applying after each (live)
// or only at the end, and checks the site against the directory.
func runIdPSequence(t *testing.T, steps []idpStep) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		for _, live := range []bool{true, false} {
			t.Run(map[bool]string{true: "step by step", false: "all at once"}[live], func(t *testing.T) {
				e := newEnv(t, b)
				v := map[string]string{}
				if live {
					e.start()
				}
				for _, s := range steps {
					s.do(e, v)
					if live {
						e.drain()
						e.checkByAccount(s.name)
					}
				}
				e.start()
				e.drain()
				e.checkByAccount("the end")
				e.checkClean()
				for _, it := range e.items() {
					if it.Status != models.OutboxStatusApplied {
						t.Errorf("item %d %s %s: %s %q", it.ID, it.ResourceType, it.Op, it.Status, it.LastError)
					}
				}
				if !live {
					if got, want := e.fs.RequestCount("", -2), e.fs.MinRequests(); got != want {
						t.Errorf("all at once: %d requests, the fewest possible is %d: %v", got, want, e.fs.Requests())
					}
				}
			})
		}
	})
}

func TestEntraDocumentedSequenceReachesTheSite(t *testing.T) {
	t.Parallel()
	runIdPSequence(t, []idpStep{
		{"create user", func(e *env, v map[string]string) {
			v["id"] = e.scimCreate("Users", `{
				"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
				"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
				"userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
				"active": true,
				"emails": [{"primary": true, "type": "work", "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"}],
				"meta": {"resourceType": "User"},
				"name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
				"roles": []
			}`)
		}},
		{"update user [multi-valued properties]", func(e *env, v map[string]string) {
			e.scimPatch("Users", v["id"], `{
				"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [
					{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
					{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
				]
			}`)
		}},
		{"update user [single-valued properties]", func(e *env, v map[string]string) {
			e.scimPatch("Users", v["id"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [{"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]}`)
		}},
		{"disable user", func(e *env, v map[string]string) {
			e.scimPatch("Users", v["id"], `{"Operations": [{"op": "Replace", "path": "active", "value": false}],
				"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`)
		}},
		{"enable user (a string flag)", func(e *env, v map[string]string) {
			e.scimPatch("Users", v["id"], `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations":[{"op":"Replace","path":"active","value":"True"}]}`)
		}},
		{"a member", func(e *env, v map[string]string) {
			v["member"] = e.scimCreate("Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"member@testuser.com","active":true,
				"emails":[{"value":"member@testuser.com","type":"work","primary":true}]}`)
		}},
		{"create group", func(e *env, v map[string]string) {
			v["group"] = e.scimCreate("Groups", `{
				"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
				"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
				"displayName": "displayName",
				"meta": {"resourceType": "Group"}
			}`)
		}},
		{"update group [non-member attributes]", func(e *env, v map[string]string) {
			e.scimPatch("Groups", v["group"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]}`)
		}},
		{"update group [add members]", func(e *env, v map[string]string) {
			e.scimPatch("Groups", v["group"], sub(`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "{{member}}"}, {"$ref": null, "value": "{{id}}"}]}]}`, v))
		}},
		{"update group [remove members]", func(e *env, v map[string]string) {
			e.scimPatch("Groups", v["group"], sub(`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "{{member}}"}]}]}`, v))
		}},
		{"delete group", func(e *env, v map[string]string) {
			e.delete("Groups", v["group"])
		}},
		{"delete user", func(e *env, v map[string]string) {
			e.delete("Users", v["id"])
		}},
	})
}

func TestOktaDocumentedSequenceReachesTheSite(t *testing.T) {
	t.Parallel()
	runIdPSequence(t, []idpStep{
		{"create the user (password and groups dropped)", func(e *env, v map[string]string) {
			v["id"] = e.scimCreate("Users", `{
				"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
				"userName": "test.user@okta.local",
				"name": {"givenName": "Test", "familyName": "User"},
				"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
				"displayName": "Test User",
				"locale": "en-US",
				"externalId": "00ujl29u0le5T6Aj10h7",
				"groups": [],
				"password": "1mz050nq",
				"active": true
			}`)
		}},
		{"the same user again (409, nothing changes)", func(e *env, v map[string]string) {
			_, err := e.scim.Create(context.Background(), e.request("Users", "",
				`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local","password":"x","active":true}`))
			if models.ErrorCode(err) != models.CodeConflict {
				e.t.Fatalf("duplicate: %v", err)
			}
		}},
		{"update the user with PUT", func(e *env, v map[string]string) {
			e.scimPut("Users", v["id"], sub(`{
				"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
				"id": "{{id}}",
				"userName": "test.user@okta.local",
				"name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
				"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work", "display": "test.user@okta.local"}],
				"active": true,
				"groups": [],
				"meta": {"resourceType": "User"}
			}`, v))
		}},
		{"deactivate (no path)", func(e *env, v map[string]string) {
			e.scimPatch("Users", v["id"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [{"op": "replace", "value": {"active": false}}]}`)
		}},
		{"reactivate", func(e *env, v map[string]string) {
			e.scimPatch("Users", v["id"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [{"op": "replace", "value": {"active": true}}]}`)
		}},
		{"another user", func(e *env, v map[string]string) {
			v["other"] = e.scimCreate("Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"other.user@okta.local","active":true,
				"emails":[{"value":"other.user@okta.local","type":"work","primary":true}]}`)
		}},
		{"push a group", func(e *env, v map[string]string) {
			v["group"] = e.scimCreate("Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Test SCIMv2", "members": []}`)
		}},
		{"rename (the read-only id in the value)", func(e *env, v map[string]string) {
			e.scimPatch("Groups", v["group"], sub(`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [{"op": "replace", "value": {"id": "{{group}}", "displayName": "Test SCIMv20"}}]}`, v))
		}},
		{"remove by filter and add", func(e *env, v map[string]string) {
			e.scimPatch("Groups", v["group"], sub(`{
				"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [
					{"op": "remove", "path": "members[value eq \"{{other}}\"]"},
					{"op": "add", "path": "members", "value": [{"value": "{{id}}", "display": "test.user@okta.local"}]}
				]}`, v))
		}},
		{"full push of the members", func(e *env, v map[string]string) {
			e.scimPatch("Groups", v["group"], sub(`{
				"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [{"op": "replace", "path": "members", "value": [
					{"value": "{{id}}", "display": "test.user@okta.local"},
					{"value": "{{other}}", "display": "other.user@okta.local"}]}]}`, v))
		}},
		{"deactivate a member (remove_groups)", func(e *env, v map[string]string) {
			e.scimPatch("Users", v["other"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [{"op": "replace", "value": {"active": false}}]}`)
		}},
		{"reactivate it: its membership comes back", func(e *env, v map[string]string) {
			e.scimPatch("Users", v["other"], `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [{"op": "replace", "value": {"active": true}}]}`)
		}},
		{"unlink with delete", func(e *env, v map[string]string) {
			e.delete("Groups", v["group"])
		}},
	})
}
