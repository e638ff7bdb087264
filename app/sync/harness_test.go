package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"idbridge/app/atlassian"
	"idbridge/app/fakeatlassian"
	"idbridge/app/provisioning"
	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	syncw "idbridge/app/sync"
	"idbridge/models"
)

var epoch = time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)

const (
	svcEmail = "svc@example.com"
	svcToken = "ATATT-sync-test-token-0123456789"
	orgKey   = "org-admin-key-0123456789abcdef"
)

// env is one site with idbridge's directory on a real store, the sync
// worker, and the fake Atlassian site it applies to. The clock is fixed:
// the test moves it (drain), so a Retry-After runs out only when the test
// says so, and the fake checks retries against the same clock.
type env struct {
	t     *testing.T
	b     storetest.Backend
	st    *store.Store
	clock *storetest.Clock
	fake  *fakeatlassian.Fake
	fs    *fakeatlassian.Site
	site  *models.Site
	scim  *provisioning.Service
	sa    *atlassian.ServiceAccounts
	cfg   syncw.Config
	w     *syncw.Worker

	noAccount bool
	// product is the fake site's product ("jira" or "confluence").
	product string
	// now is the clock everything uses: clock.Now, or time.Now with
	// withRealTime (drain then waits instead of moving the clock).
	now      func() time.Time
	realTime bool
	// clockAt is where the test's clock starts (withClockAt); epoch if zero.
	clockAt time.Time
	// openStore, when set, opens the store (withStore).
	openStore func(now func() time.Time) *store.Store
	// others are more workers (replicas) on the same database.
	others []*syncw.Worker

	mu      gosync.Mutex
	results map[string]int
	answers map[string]int
	cancel  context.CancelFunc
	done    chan struct{}
}

type envOption func(*env)

func withConfig(fn func(*syncw.Config)) envOption { return func(e *env) { fn(&e.cfg) } }

// withProduct makes the site a Confluence-only one ("confluence").
func withProduct(product string) envOption { return func(e *env) { e.product = product } }

// withRealTime runs on the real clock (for a worker in another process).
func withRealTime() envOption { return func(e *env) { e.realTime = true } }

// withClockAt starts the test's clock at t instead of epoch: at the real
// time, a worker in another process (on the real clock) finds the test's
// changes due, while its leases run out only when the test moves the
// clock past them.
func withClockAt(t time.Time) envOption { return func(e *env) { e.clockAt = t } }

// withStore opens the store with fn instead of the backend's Open.
func withStore(fn func(now func() time.Time) *store.Store) envOption {
	return func(e *env) { e.openStore = fn }
}

// withoutServiceAccount leaves the site without a service account.
func withoutServiceAccount() envOption { return func(e *env) { e.noAccount = true } }

func newEnv(t *testing.T, b storetest.Backend, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, b: b, results: map[string]int{}, answers: map[string]int{}}
	e.cfg = syncw.Config{
		Owner: "test-" + b.Name, IdlePoll: time.Hour, BlockedRecheck: time.Hour,
		RequestTimeout: 5 * time.Second,
		Random:         func() float64 { return 0.5 },
	}
	for _, o := range opts {
		o(e)
	}
	if e.clockAt.IsZero() {
		e.clockAt = epoch
	}
	e.clock = storetest.NewClock(e.clockAt)
	e.now = e.clock.Now
	if e.realTime {
		e.now = time.Now
	}
	if e.openStore != nil {
		e.st = e.openStore(e.now)
	} else {
		e.st = b.Open(t, storetest.WithNow(e.now))
	}
	e.fake = fakeatlassian.New(fakeatlassian.Options{Now: e.now, Seed: 42})
	t.Cleanup(e.fake.Close)
	e.fs = e.fake.NewSite(fakeatlassian.SiteOptions{Product: e.product})
	e.fs.AddServiceAccount(fakeatlassian.ServiceAccount{Email: svcEmail, APIToken: svcToken, Admin: true})
	e.fs.AddOrgKey(orgKey)
	st, fake, fs := e.st, e.fake, e.fs
	ctx := context.Background()
	err := st.InTx(ctx, func(tx *store.Tx) error {
		site, err := tx.SaveInstall(&models.Site{
			SiteFacts: models.SiteFacts{
				ClientKey:   "ck-" + fs.CloudID[:8],
				BaseURL:     fs.BaseURL(),
				ProductType: fs.Product,
				CloudID:     fs.CloudID,
			},
			SharedSecret: []byte("shared-secret-0123456789abcdef"),
		})
		if err != nil {
			return err
		}
		e.site = site
		if e.noAccount {
			p, err := tx.FindProvisioning(site.ID)
			if err != nil {
				return err
			}
			return tx.SaveProvisioning(p)
		}
		if _, err := tx.SaveServiceAccount(site.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: svcEmail, Token: svcToken,
			OrgAdminKey: orgKey, OrgID: fs.OrgID}); err != nil {
			return err
		}
		p, err := tx.FindProvisioning(site.ID)
		if err != nil {
			return err
		}
		return tx.SaveProvisioning(p)
	})
	if err != nil {
		t.Fatal(err)
	}
	api, _ := url.Parse(fake.APIURL())
	clients := atlassian.New(atlassian.Options{Now: e.now, Limiter: atlassian.LimiterOptions{Rate: 1e6, Burst: 1e6}})
	e.sa = atlassian.NewServiceAccounts(clients, api, api)
	base, _ := url.Parse("https://idbridge.test")
	e.scim = provisioning.NewService(provisioning.ServiceConfig{BaseURL: base}, st, e.now, nil)
	e.w = e.newWorker(st, e.cfg)
	st.OnOutbox(e.w.Wake)
	return e
}

func (e *env) newWorker(st *store.Store, cfg syncw.Config) *syncw.Worker {
	cfg.OnResult = func(o string) { e.mu.Lock(); e.results[o]++; e.mu.Unlock() }
	cfg.OnRequest = func(a string) { e.mu.Lock(); e.answers[a]++; e.mu.Unlock() }
	return syncw.New(cfg, st, e.sa, e.now, slog.New(slog.DiscardHandler))
}

// start runs the worker until the test ends (or stop).
func (e *env) start() {
	e.t.Helper()
	if e.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		if err := e.w.Run(ctx); err != nil {
			e.t.Errorf("worker: %v", err)
		}
	}()
	e.t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	<-e.done
	e.cancel = nil
}

// --- SCIM as the identity provider -----------------------------------------

func (e *env) createUser(userName string, active bool) string {
	e.t.Helper()
	body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"active":%v,
		"name":{"givenName":"Given","familyName":%q},"emails":[{"value":%q,"type":"work","primary":true}]}`, userName, active, userName, userName)
	doc, err := e.scim.Create(context.Background(), e.request("Users", "", body))
	if err != nil {
		e.t.Fatalf("create user %s: %v", userName, err)
	}
	return idOf(e.t, doc)
}

func (e *env) createGroup(name string, members ...string) string {
	e.t.Helper()
	ms := make([]string, len(members))
	for i, m := range members {
		ms[i] = fmt.Sprintf(`{"value":%q}`, m)
	}
	body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":%q,"members":[%s]}`, name, strings.Join(ms, ","))
	doc, err := e.scim.Create(context.Background(), e.request("Groups", "", body))
	if err != nil {
		e.t.Fatalf("create group %s: %v", name, err)
	}
	return idOf(e.t, doc)
}

// request is a SCIM request to the site's endpoint ("Users", "Groups").
func (e *env) request(endpoint, id, body string) *scim.Request {
	e.t.Helper()
	rt, ok := scim.ResourceTypeByEndpoint(endpoint)
	if !ok {
		e.t.Fatalf("no SCIM endpoint %q", endpoint)
	}
	return &scim.Request{SiteID: e.site.ID, Type: &rt, ID: id, Body: []byte(body)}
}

func (e *env) patch(endpoint, id, ops string) {
	e.t.Helper()
	body := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":` + ops + `}`
	if _, err := e.scim.Patch(context.Background(), e.request(endpoint, id, body)); err != nil {
		e.t.Fatalf("patch %s %s: %v", endpoint, id, err)
	}
}

func (e *env) setActive(id string, active bool) {
	e.patch("Users", id, fmt.Sprintf(`[{"op":"replace","path":"active","value":%v}]`, active))
}

func (e *env) rename(groupID, name string) {
	e.patch("Groups", groupID, fmt.Sprintf(`[{"op":"replace","path":"displayName","value":%q}]`, name))
}

func (e *env) addMembers(groupID string, ids ...string) {
	vs := make([]string, len(ids))
	for i, id := range ids {
		vs[i] = fmt.Sprintf(`{"value":%q}`, id)
	}
	e.patch("Groups", groupID, `[{"op":"add","path":"members","value":[`+strings.Join(vs, ",")+`]}]`)
}

func (e *env) removeMember(groupID, id string) {
	e.patch("Groups", groupID, fmt.Sprintf(`[{"op":"remove","path":"members[value eq \"%s\"]"}]`, id))
}

func (e *env) delete(endpoint, id string) {
	e.t.Helper()
	if err := e.scim.Delete(context.Background(), e.request(endpoint, id, "")); err != nil {
		e.t.Fatalf("delete %s %s: %v", endpoint, id, err)
	}
}

func (e *env) setProvisioning(fn func(p *models.Provisioning)) {
	e.t.Helper()
	err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
		p, err := tx.FindProvisioning(e.site.ID)
		if err != nil {
			return err
		}
		fn(p)
		return tx.SaveProvisioning(p)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func idOf(t *testing.T, doc *scim.Answer) string {
	t.Helper()
	b := doc.Body
	var v struct{ ID string }
	_ = json.Unmarshal(b, &v)
	if v.ID == "" {
		t.Fatalf("no id in %s", b)
	}
	return v.ID
}

// --- waiting ------------------------------------------------------------------

func (e *env) items() []store.SyncItem {
	e.t.Helper()
	items, err := e.st.View(context.Background()).ListSyncItems(e.site.ID, 100000)
	if err != nil {
		e.t.Fatal(err)
	}
	return items
}

// drain waits until no item is pending, moving the clock to the next
// item's due time whenever nothing is in flight, so that retries happen
// exactly when they may and never before. It fails after a real deadline.
func (e *env) drain() {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	if e.realTime {
		deadline = time.Now().Add(3 * time.Minute)
	}
	for time.Now().Before(deadline) {
		now := e.now()
		var next time.Time
		pending, leased := 0, false
		heads := map[string]bool{} // subjects whose oldest open item was seen
		for _, it := range e.items() {
			open := it.Status == models.OutboxStatusPending || it.Status == models.OutboxStatusHeld
			if !open || heads[it.ResourceID] {
				if it.Status == models.OutboxStatusPending {
					pending++
				}
				continue
			}
			heads[it.ResourceID] = true
			if it.Status == models.OutboxStatusHeld {
				continue
			}
			pending++
			if it.LeaseOwner != "" && it.LeaseUntil != nil && it.LeaseUntil.After(now) {
				leased = true
			}
			if next.IsZero() || it.NextAttemptAt.Before(next) {
				next = it.NextAttemptAt
			}
		}
		if pending == 0 {
			return
		}
		if !e.realTime && !leased && next.After(now) && e.idle() {
			// Small steps, so that a claim that started meanwhile keeps
			// its lease (2 minutes).
			e.clock.Advance(min(next.Sub(now), 20*time.Second))
			e.w.Wake(nil)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("the outbox did not drain: %s", e.describe())
}

// idle says no worker of the test is in the middle of a claim.
func (e *env) idle() bool {
	for _, w := range append([]*syncw.Worker{e.w}, e.others...) {
		if !w.Idle() {
			return false
		}
	}
	return true
}

// waitFor waits until cond holds, with a deadline.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("waited in vain for %s: %s", what, e.describe())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) describe() string {
	var b strings.Builder
	for _, it := range e.items() {
		fmt.Fprintf(&b, "\n  #%d %s %s %s attempts=%d next=%s lease=%q err=%q", it.ID, it.ResourceType, it.Op, it.Status,
			it.Attempts, it.NextAttemptAt.Sub(e.now()), it.LeaseOwner, it.LastError)
	}
	return b.String()
}

// status is what the admin API shows.
func (e *env) status() *models.SyncStatus {
	e.t.Helper()
	st, err := e.w.Status(context.Background(), e.site.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// --- the site against the directory -------------------------------------------

// wantState is the fake site's state the directory calls for, in the
// remove_groups mode: every active user in the site, every group with
// its active members; deactivated users' accounts are left in the site.
// Only users and groups idbridge provisioned are compared.
func (e *env) checkState(mode models.DeactivationMode) {
	e.t.Helper()
	view := e.st.View(context.Background())
	users, _, err := view.ListDirectoryUsers(e.site.ID, store.DirectoryQuery{Limit: 100000})
	if err != nil {
		e.t.Fatal(err)
	}
	groups, _, err := view.ListDirectoryGroups(e.site.ID, store.DirectoryQuery{Limit: 100000})
	if err != nil {
		e.t.Fatal(err)
	}
	got := e.fs.Snapshot()
	active := map[string]bool{}
	byID := map[string]string{}
	for _, u := range users {
		email := strings.ToLower(u.Email)
		byID[u.ID] = email
		active[u.ID] = u.Active
		a, ok := got.Users[email]
		switch {
		case u.Active && (!ok || !a.InSite || a.Suspended):
			e.t.Errorf("%s is active in the directory, but the site has %+v (found %v)", email, a, ok)
		case !u.Active && mode == models.DeactivateRemoveFromSite && ok && a.InSite:
			e.t.Errorf("%s is deactivated, but still in the site", email)
		case !u.Active && mode == models.DeactivateSuspend && ok && !a.Suspended:
			e.t.Errorf("%s is deactivated, but not suspended", email)
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
			if active[id] || mode == models.DeactivateSuspend {
				want = append(want, byID[id])
			}
		}
		sort.Strings(want)
		have, ok := got.Groups[g.DisplayName]
		if !ok {
			e.t.Errorf("group %q is not in the site", g.DisplayName)
			continue
		}
		if have == nil {
			have = []string{}
		}
		if diff := cmp.Diff(want, have); diff != "" {
			e.t.Errorf("members of %q (-directory +site):\n%s", g.DisplayName, diff)
		}
	}
	for name := range got.Groups {
		if !names[name] && !slices.Contains(e.preexisting(), name) {
			e.t.Errorf("the site has group %q, which the directory does not", name)
		}
	}
}

func (e *env) preexisting() []string { return nil }

// checkClean fails when a change was applied twice or retried before its
// Retry-After ran out.
func (e *env) checkClean() {
	e.t.Helper()
	if twice := e.fs.AppliedTwice(); len(twice) > 0 {
		e.t.Errorf("changes applied twice: %+v", twice)
		for _, c := range e.fs.Changes() {
			if c.Key == twice[0].Key {
				e.t.Logf("  %s %s %s applied=%v", c.At.Format("15:04:05.000"), c.Route, c.Op, c.Applied)
			}
		}
		e.t.Log(e.describe())
	}
	if early := e.fs.EarlyRetries(); len(early) > 0 {
		e.t.Errorf("retries before Retry-After: %+v", early)
	}
	// Once every change reached its outcome and none failed, no membership
	// is left recorded as being added: each was confirmed or forgotten.
	failed := false
	for _, it := range e.items() {
		failed = failed || it.Status == models.OutboxStatusPending || it.Status == models.OutboxStatusFailed || it.Status == models.OutboxStatusHeld
	}
	if failed {
		return
	}
	view := e.st.View(context.Background())
	groups, _, err := view.ListDirectoryGroups(e.site.ID, store.DirectoryQuery{Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range groups {
		members, err := view.SyncMembers(e.site.ID, g.ID, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		for u, m := range members {
			if m.Adding {
				e.t.Errorf("group %s: %s still recorded as being added, with every change applied", g.DisplayName, u)
			}
		}
	}
}
