package fakeatlassian_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"idbridge/app/fakeatlassian"

	"github.com/google/go-cmp/cmp"
)

// clock is a settable clock shared by the fake and the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	svcEmail = "svc@example.com"
	apiToken = "classic-token-0123456789"
	scoped   = "scoped-token-0123456789"
	clientID = "client-1"
	secret   = "client-secret-0123456789"
	orgKey   = "org-key-0123456789"
)

func newFake(t *testing.T) (*fakeatlassian.Fake, *fakeatlassian.Site, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	f := fakeatlassian.New(fakeatlassian.Options{Now: c.Now, Seed: 7})
	t.Cleanup(f.Close)
	s := f.NewSite(fakeatlassian.SiteOptions{})
	s.AddServiceAccount(fakeatlassian.ServiceAccount{Email: svcEmail, APIToken: apiToken, ScopedToken: scoped, Admin: true})
	s.AddServiceAccount(fakeatlassian.ServiceAccount{ClientID: clientID, ClientSecret: secret, Admin: true})
	s.AddOrgKey(orgKey)
	return f, s, c
}

type answer struct {
	status int
	header http.Header
	body   string
	err    error
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		t.Fatalf("answer %d is not JSON: %s", a.status, a.body)
	}
}

// do sends a request; auth is "basic", "scoped", "bearer:<tok>", "org" or "".
func do(t *testing.T, method, target, auth, body string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case auth == "basic":
		req.SetBasicAuth(svcEmail, apiToken)
	case auth == "scoped":
		req.SetBasicAuth(svcEmail, scoped)
	case auth == "org":
		req.Header.Set("Authorization", "Bearer "+orgKey)
	case strings.HasPrefix(auth, "bearer:"):
		req.Header.Set("Authorization", "Bearer "+strings.TrimPrefix(auth, "bearer:"))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, header: res.Header, body: string(b)}
}

func oauthToken(t *testing.T, f *fakeatlassian.Fake, id, sec string) (int, string) {
	t.Helper()
	res, err := http.PostForm(f.APIURL()+"/oauth/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {id}, "client_secret": {sec}, "audience": {"api.atlassian.com"}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out.AccessToken
}

func TestCredentialsAreCheckedAsAtlassianDoes(t *testing.T) {
	f, s, c := newFake(t)
	site := s.Origin() + "/rest/api/3/myself"
	gw := f.APIURL() + "/ex/jira/" + s.CloudID + "/rest/api/3/myself"
	code, tok := oauthToken(t, f, clientID, secret)
	if d := cmp.Diff(map[string]any{"status": 200, "has token": true}, map[string]any{"status": code, "has token": tok != ""}); d != "" {
		t.Fatalf("token endpoint (-want +got):\n%s", d)
	}
	if code, _ := oauthToken(t, f, clientID, "wrong"); code != 401 {
		t.Errorf("wrong client secret: %d", code)
	}
	for _, tc := range []struct {
		name, target, auth string
		want               int
	}{
		{"classic at the site", site, "basic", 200},
		{"classic through the gateway", gw, "basic", 401},
		{"scoped through the gateway", gw, "scoped", 200},
		{"scoped at the site", site, "scoped", 401},
		{"oauth bearer through the gateway", gw, "bearer:" + tok, 200},
		{"oauth bearer at the site", site, "bearer:" + tok, 401},
		{"unknown bearer", gw, "bearer:nope", 401},
		{"nothing", site, "", 401},
		{"unknown cloud", f.APIURL() + "/ex/jira/nope/rest/api/3/myself", "scoped", 404},
	} {
		if a := do(t, "GET", tc.target, tc.auth, ""); a.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, a.status, a.body, tc.want)
		}
	}
	// An access token lives an hour.
	c.Advance(61 * time.Minute)
	if a := do(t, "GET", gw, "bearer:"+tok, ""); a.status != 401 {
		t.Errorf("expired bearer: %d", a.status)
	}
	// Revoked credentials are refused everywhere.
	s.RevokeCredentials()
	if a := do(t, "GET", site, "basic", ""); a.status != 401 || !strings.Contains(a.body, "Client must be authenticated") {
		t.Errorf("revoked classic token: %d %s", a.status, a.body)
	}
	// The org key is a Bearer on the Admin API only.
	if a := do(t, "GET", f.APIURL()+"/admin/v1/orgs", "org", ""); a.status != 200 || !strings.Contains(a.body, s.OrgID) {
		t.Errorf("orgs with the key: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", f.APIURL()+"/admin/v1/orgs", "bearer:nope", ""); a.status != 401 {
		t.Errorf("orgs with a wrong key: %d", a.status)
	}
}

func TestUsersGroupsAndMemberships(t *testing.T) {
	_, s, _ := newFake(t)
	base := s.Origin()
	// Create, then find by email prefix; a second create returns the same.
	a := do(t, "POST", base+"/rest/api/3/user", "basic", `{"emailAddress":"Ada@Example.com","products":["jira-software"]}`)
	var u struct{ AccountID, AccountType string }
	a.json(t, &u)
	if d := cmp.Diff(map[string]any{"status": 201, "has accountId": true, "accountType": "atlassian"},
		map[string]any{"status": a.status, "has accountId": u.AccountID != "", "accountType": u.AccountType}); d != "" {
		t.Fatalf("create user %s (-want +got):\n%s", a.body, d)
	}
	if a := do(t, "POST", base+"/rest/api/3/user", "basic", `{"emailAddress":"x@example.com","products":["nope"]}`); a.status != 400 || !strings.Contains(a.body, "products") {
		t.Errorf("bad product: %d %s", a.status, a.body)
	}
	if a := do(t, "POST", base+"/rest/api/3/user", "basic", `{"emailAddress":"x@example.com"}`); a.status != 400 {
		t.Errorf("products missing: %d %s", a.status, a.body)
	}
	a = do(t, "GET", base+"/rest/api/3/user/search?query=ada%40example", "basic", "")
	if a.status != 200 || !strings.Contains(a.body, u.AccountID) {
		t.Errorf("search: %d %s", a.status, a.body)
	}
	// Customers: 409 with strictConflictStatusCode, 400 without.
	if a := do(t, "POST", base+"/rest/servicedeskapi/customer?strictConflictStatusCode=true", "basic", `{"email":"cust@example.com","displayName":"Cust"}`); a.status != 201 {
		t.Errorf("create customer: %d %s", a.status, a.body)
	}
	if a := do(t, "POST", base+"/rest/servicedeskapi/customer?strictConflictStatusCode=true", "basic", `{"email":"ada@example.com","displayName":"Ada"}`); a.status != 409 {
		t.Errorf("existing customer, strict: %d %s", a.status, a.body)
	}
	if a := do(t, "POST", base+"/rest/servicedeskapi/customer", "basic", `{"email":"ada@example.com","displayName":"Ada"}`); a.status != 400 {
		t.Errorf("existing customer, not strict: %d %s", a.status, a.body)
	}
	// Groups: create, find by exact name, add (twice: 400), remove (twice: 404).
	a = do(t, "POST", base+"/rest/api/3/group", "basic", `{"name":"Engineering"}`)
	var g struct{ GroupID string }
	a.json(t, &g)
	if d := cmp.Diff(map[string]any{"status": 201, "has groupId": true}, map[string]any{"status": a.status, "has groupId": g.GroupID != ""}); d != "" {
		t.Fatalf("create group %s (-want +got):\n%s", a.body, d)
	}
	if a := do(t, "POST", base+"/rest/api/3/group", "basic", `{"name":"engineering"}`); a.status != 400 {
		t.Errorf("same name: %d", a.status)
	}
	if a := do(t, "GET", base+"/rest/api/3/group/bulk?groupName=ENGINEERING", "basic", ""); !strings.Contains(a.body, g.GroupID) {
		t.Errorf("bulk by name: %s", a.body)
	}
	add := base + "/rest/api/3/group/user?groupId=" + g.GroupID
	if a := do(t, "POST", add, "basic", `{"accountId":"`+u.AccountID+`"}`); a.status != 201 {
		t.Errorf("add member: %d %s", a.status, a.body)
	}
	if a := do(t, "POST", add, "basic", `{"accountId":"`+u.AccountID+`"}`); a.status != 400 || !strings.Contains(a.body, "already a member") {
		t.Errorf("add member again: %d %s", a.status, a.body)
	}
	// Both customer creates, the group of the same name and the second add
	// asked for what was already so.
	var kinds []string
	for _, c := range s.AppliedTwice() {
		kinds = append(kinds, c.Kind)
	}
	if len(kinds) != 4 {
		t.Errorf("applied twice: %v, want 4 changes", kinds)
	} else if d := cmp.Diff([]string{"group", "member"}, kinds[2:]); d != "" {
		t.Errorf("applied twice, the last two kinds (-want +got):\n%s", d)
	}
	if a := do(t, "GET", base+"/rest/api/3/user/groups?accountId="+u.AccountID, "basic", ""); !strings.Contains(a.body, "Engineering") {
		t.Errorf("user's groups: %s", a.body)
	}
	rm := add + "&accountId=" + u.AccountID
	if a := do(t, "DELETE", rm, "basic", ""); a.status != 200 {
		t.Errorf("remove member: %d %s", a.status, a.body)
	}
	if a := do(t, "DELETE", rm, "basic", ""); a.status != 404 {
		t.Errorf("remove member again: %d", a.status)
	}
	// Removing the user from the site drops it from search and groups.
	do(t, "POST", add, "basic", `{"accountId":"`+u.AccountID+`"}`)
	if a := do(t, "DELETE", base+"/rest/api/3/user?accountId="+u.AccountID, "basic", ""); a.status != 204 {
		t.Errorf("remove user: %d", a.status)
	}
	if a := do(t, "GET", base+"/rest/api/3/user/search?query=ada", "basic", ""); a.body != "[]\n" {
		t.Errorf("search after removal: %s", a.body)
	}
	st := s.Snapshot()
	if u := st.Users["ada@example.com"]; u.InSite || len(st.Groups["Engineering"]) != 0 {
		t.Errorf("state after removal: %+v", st)
	}
	// Created again: same account ID.
	a = do(t, "POST", base+"/rest/api/3/user", "basic", `{"emailAddress":"ada@example.com","products":[]}`)
	if a.status != 201 || !strings.Contains(a.body, u.AccountID) {
		t.Errorf("create again: %d %s", a.status, a.body)
	}
	// Not an admin: 403.
	s.AddServiceAccount(fakeatlassian.ServiceAccount{Email: "reader@example.com", APIToken: "reader-token-0123456789"})
	req, _ := http.NewRequest("POST", base+"/rest/api/3/group", strings.NewReader(`{"name":"x"}`))
	req.SetBasicAuth("reader@example.com", "reader-token-0123456789")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 403 {
		t.Errorf("not an admin: %v %v", res, err)
	}
}

func TestOrganizationAdminAPI(t *testing.T) {
	f, s, _ := newFake(t)
	managed := s.AddAccount(fakeatlassian.Account{Email: "m@example.com", DisplayName: "M", Managed: true})
	other := s.AddAccount(fakeatlassian.Account{Email: "o@example.com", DisplayName: "O"})
	suspend := func(id string) answer {
		return do(t, "POST", f.APIURL()+"/admin/v1/orgs/"+s.OrgID+"/directory/users/"+id+"/suspend-access", "org", "")
	}
	if a := suspend(managed); a.status != 200 {
		t.Errorf("suspend: %d %s", a.status, a.body)
	}
	if u, _ := s.Account("m@example.com"); !u.Suspended {
		t.Error("not suspended")
	}
	if a := do(t, "GET", s.Origin()+"/rest/api/3/user?accountId="+managed, "basic", ""); !strings.Contains(a.body, `"active":false`) {
		t.Errorf("a suspended user reads active: %s", a.body)
	}
	if a := suspend(other); a.status != 403 {
		t.Errorf("suspend an unmanaged account: %d", a.status)
	}
	if a := do(t, "POST", f.APIURL()+"/admin/v1/orgs/"+s.OrgID+"/directory/users/"+managed+"/restore-access", "bearer:wrong", ""); a.status != 401 {
		t.Errorf("restore with a wrong key: %d", a.status)
	}
	if a := do(t, "POST", f.APIURL()+"/admin/v1/orgs/"+s.OrgID+"/directory/users/"+managed+"/restore-access", "org", ""); a.status != 200 {
		t.Errorf("restore: %d", a.status)
	}
	if a := do(t, "PATCH", f.APIURL()+"/users/"+managed+"/manage/profile", "org", `{"name":"Margaret"}`); a.status != 200 {
		t.Errorf("profile: %d %s", a.status, a.body)
	}
	if u, _ := s.Account("m@example.com"); u.DisplayName != "Margaret" || u.Suspended {
		t.Errorf("after restore and rename: %+v", u)
	}
	if got := s.RequestCount("POST /admin/v1/orgs/{orgId}/directory/users/{accountId}/suspend-access", 200); got != 1 {
		t.Errorf("suspend requests counted: %d", got)
	}
}

func TestFaults(t *testing.T) {
	_, s, c := newFake(t)
	search := s.Origin() + "/rest/api/3/user/search?query=a"
	route := "GET /rest/api/3/user/search"

	s.Inject(fakeatlassian.Fault{Route: route, Status: 429, RetryAfterIn: 1500 * time.Millisecond, Times: 1})
	a := do(t, "GET", search, "basic", "")
	if d := cmp.Diff(map[string]any{"status": 429, "Retry-After": "2"}, map[string]any{"status": a.status, "Retry-After": a.header.Get("Retry-After")}); d != "" {
		t.Fatalf("429 with seconds (-want +got):\n%s", d)
	}
	// Asked again a second later: early.
	c.Advance(time.Second)
	do(t, "GET", search, "basic", "")
	if got := s.EarlyRetries(); len(got) != 1 {
		t.Fatalf("early retries: %+v", got)
	}
	c.Advance(time.Second)
	do(t, "GET", search, "basic", "")
	if got := s.EarlyRetries(); len(got) != 1 {
		t.Errorf("a retry after Retry-After counted as early: %+v", got)
	}

	s.Inject(fakeatlassian.Fault{Route: route, Status: 429, RetryAfterIn: 3 * time.Second, AsDate: true, Times: 1})
	a = do(t, "GET", search, "basic", "")
	at, err := http.ParseTime(a.header.Get("Retry-After"))
	if a.status != 429 || err != nil || at.Before(c.Now().Add(3*time.Second)) {
		t.Errorf("429 with a date: %d %q", a.status, a.header.Get("Retry-After"))
	}
	s.Inject(fakeatlassian.Fault{Route: route, Status: 429, Times: 1})
	a = do(t, "GET", search, "basic", "")
	if d := cmp.Diff(map[string]any{"status": 429, "Retry-After": ""}, map[string]any{"status": a.status, "Retry-After": a.header.Get("Retry-After")}); d != "" {
		t.Errorf("429 without Retry-After (-want +got):\n%s", d)
	}
	s.Inject(fakeatlassian.Fault{Status: 503, Times: 2})
	if a := do(t, "GET", search, "basic", ""); a.status != 503 {
		t.Errorf("503: %d", a.status)
	}
	if a := do(t, "GET", s.Origin()+"/rest/api/3/myself", "basic", ""); a.status != 503 {
		t.Errorf("503 on any route: %d", a.status)
	}
	if a := do(t, "GET", search, "basic", ""); a.status != 200 {
		t.Errorf("after Times ran out: %d", a.status)
	}

	// A dropped connection after the change: the caller gets no answer,
	// the group exists.
	s.Inject(fakeatlassian.Fault{Route: "POST /rest/api/3/group", DropAfterApply: true, Times: 1})
	if a := do(t, "POST", s.Origin()+"/rest/api/3/group", "basic", `{"name":"Dropped"}`); a.err == nil {
		t.Errorf("dropped: got an answer %d", a.status)
	}
	if _, ok := s.GroupByName("Dropped"); !ok {
		t.Error("the change was not applied before the drop")
	}
	if got := s.RequestCount("POST /rest/api/3/group", fakeatlassian.StatusDropped); got != 1 {
		t.Errorf("dropped counted: %d", got)
	}

	// No answer after the change, until the caller gives up: the group
	// exists while the caller still waits.
	s.Inject(fakeatlassian.Fault{Route: "POST /rest/api/3/group", HangAfterApply: true, Times: 1})
	ctx, cancel := context.WithCancel(context.Background())
	hung := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", s.Origin()+"/rest/api/3/group", strings.NewReader(`{"name":"Hung"}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(svcEmail, apiToken)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			err = fmt.Errorf("an answer: %d", res.StatusCode)
		}
		hung <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, ok := s.GroupByName("Hung"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hung request's change was not applied")
		}
	}
	select {
	case err := <-hung:
		t.Fatalf("the hung request ended before its caller gave up: %v", err)
	default:
	}
	cancel()
	if err := <-hung; !errors.Is(err, context.Canceled) {
		t.Errorf("hung: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); s.RequestCount("POST /rest/api/3/group", fakeatlassian.StatusGone) != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the hung request was not counted as gone")
		}
	}

	// Probability: about that share, repeatably.
	s.ClearFaults()
	s.Inject(fakeatlassian.Fault{Route: route, Status: 500, Probability: 0.25})
	fails := 0
	for range 400 {
		if do(t, "GET", search, "basic", "").status == 500 {
			fails++
		}
	}
	if fails < 60 || fails > 140 {
		t.Errorf("25%% faults: %d of 400", fails)
	}

	// The site's own rate: beyond the burst, 429 with Retry-After.
	s.ClearFaults()
	s.SetRateLimit(2, 2)
	codes := []int{}
	for range 3 {
		codes = append(codes, do(t, "GET", search, "basic", "").status)
	}
	if d := cmp.Diff([]int{200, 200, 429}, codes); d != "" {
		t.Errorf("rate limit (-want +got):\n%s", d)
	}
	c.Advance(time.Second)
	if a := do(t, "GET", search, "basic", ""); a.status != 200 {
		t.Errorf("after a second: %d", a.status)
	}
}

func TestMinRequests(t *testing.T) {
	_, s, _ := newFake(t)
	base := s.Origin()
	old := s.AddGroup("old")
	s.MarkBaseline()
	do(t, "POST", base+"/rest/api/3/user", "basic", `{"emailAddress":"a@example.com","products":[]}`)
	do(t, "POST", base+"/rest/servicedeskapi/customer", "basic", `{"email":"c@example.com"}`)
	var g struct{ GroupID string }
	do(t, "POST", base+"/rest/api/3/group", "basic", `{"name":"new"}`).json(t, &g)
	u, _ := s.Account("a@example.com")
	do(t, "POST", base+"/rest/api/3/group/user?groupId="+g.GroupID, "basic", `{"accountId":"`+u.AccountID+`"}`)
	do(t, "DELETE", base+"/rest/api/3/group?groupId="+old, "basic", "")
	// user 2 + customer 1 + group 2 + member 1 + delete 1
	if got := s.MinRequests(); got != 7 {
		t.Errorf("MinRequests = %d, want 7", got)
	}
}

func TestConfluenceGroups(t *testing.T) {
	f := fakeatlassian.New(fakeatlassian.Options{})
	t.Cleanup(f.Close)
	s := f.NewSite(fakeatlassian.SiteOptions{Product: "confluence"})
	s.AddServiceAccount(fakeatlassian.ServiceAccount{Email: svcEmail, APIToken: apiToken, Admin: true})
	if !strings.HasSuffix(s.BaseURL(), "/wiki") {
		t.Errorf("base URL %s", s.BaseURL())
	}
	id := s.AddAccount(fakeatlassian.Account{Email: "a@example.com"})
	a := do(t, "POST", s.Origin()+"/wiki/rest/api/group", "basic", `{"name":"writers"}`)
	var g struct{ ID string }
	a.json(t, &g)
	if d := cmp.Diff(map[string]any{"status": 201, "has id": true}, map[string]any{"status": a.status, "has id": g.ID != ""}); d != "" {
		t.Fatalf("create %s (-want +got):\n%s", a.body, d)
	}
	if a := do(t, "GET", s.Origin()+"/wiki/rest/api/group/picker?query=writ", "basic", ""); !strings.Contains(a.body, g.ID) {
		t.Errorf("picker: %s", a.body)
	}
	if a := do(t, "POST", s.Origin()+"/wiki/rest/api/group/userByGroupId?groupId="+g.ID, "basic", `{"accountId":"`+id+`"}`); a.status != 201 {
		t.Errorf("add: %d %s", a.status, a.body)
	}
	if d := cmp.Diff([]string{"a@example.com"}, s.Snapshot().Groups["writers"]); d != "" {
		t.Errorf("members (-want +got):\n%s", d)
	}
	if a := do(t, "DELETE", s.Origin()+"/wiki/rest/api/group/userByGroupId?groupId="+g.ID+"&accountId="+id, "basic", ""); a.status != 204 {
		t.Errorf("remove: %d", a.status)
	}
	if a := do(t, "DELETE", s.Origin()+"/wiki/rest/api/group/by-id?id="+g.ID, "basic", ""); a.status != 204 {
		t.Errorf("delete: %d", a.status)
	}
}
