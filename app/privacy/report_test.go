package privacy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/fakeatlassian"
	"idbridge/app/privacy"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

const appKey = "idbridge-privacy-test"

// reportEnv is one site with accounts in several tables, a fake
// reporting API that verifies the app JWT and its qsh, and a fake clock
// that the cycle's sleeps advance.
type reportEnv struct {
	t      *testing.T
	st     *store.Store
	clock  *storetest.Clock
	fake   *fakeatlassian.Fake
	site   *models.Site
	svc    *privacy.Service
	sleeps []time.Duration
	mu     sync.Mutex
	hook   func(n int) // after each answer from the API, with its number
	calls  int
}

func newReportEnv(t *testing.T, b storetest.Backend, opts ...storetest.Option) *reportEnv {
	t.Helper()
	e := &reportEnv{t: t, clock: storetest.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))}
	e.st = b.Open(t, append([]storetest.Option{storetest.WithNow(e.clock.Now)}, opts...)...)
	e.fake = fakeatlassian.New(fakeatlassian.Options{Now: e.clock.Now})
	t.Cleanup(e.fake.Close)
	fs := e.fake.NewSite(fakeatlassian.SiteOptions{})
	secret := "reporting-shared-secret-" + strings.Repeat("x", 16)
	fs.InstallApp(appKey, secret)
	err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
		in := &models.Site{SharedSecret: []byte(secret)}
		in.ClientKey, in.BaseURL, in.ProductType = "client-"+fs.CloudID, fs.BaseURL(), "jira"
		var err error
		e.site, err = tx.SaveInstall(in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = e.service()
	return e
}

// service builds another privacy service on the same store (as another
// process would).
func (e *reportEnv) service() *privacy.Service {
	sleep := func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		e.sleeps = append(e.sleeps, d)
		e.mu.Unlock()
		e.clock.Advance(d)
		return ctx.Err()
	}
	clients := atlassian.New(atlassian.Options{AppKey: appKey, Now: e.clock.Now, Sleep: sleep,
		Base:    hookTransport{e},
		Limiter: atlassian.LimiterOptions{Rate: 1e6, Burst: 1e6}})
	api, _ := url.Parse(e.fake.APIURL())
	return privacy.New(privacy.Config{Reporting: clients.Reporting(api), Sleep: sleep}, e.st, e.clock.Now, nil)
}

// hookTransport calls the env's hook after each answer of the API.
type hookTransport struct{ e *reportEnv }

func (h hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	h.e.mu.Lock()
	h.e.calls++
	n, hook := h.e.calls, h.e.hook
	h.e.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return resp, err
}

// seed gives the site n accounts, spread over the tables that hold
// account IDs: sign-ins (audit actors), admin actions (audit targets),
// portal sessions and directory users' Atlassian accounts.
func (e *reportEnv) seed(n int) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("557058:acct-%05d", i)
	}
	err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
		var evs []models.AuditEvent
		for i, id := range ids {
			switch i % 4 {
			case 0:
				evs = append(evs, models.AuditEvent{ActorAccountID: id, Event: models.AuditLoginSuccess, IP: "192.0.2.1"})
			case 1:
				evs = append(evs, models.AuditEvent{ActorAccountID: "557058:acct-00000", TargetAccountID: id, Event: models.AuditProcessingRestricted})
			case 2:
				if err := tx.CreatePortalSession(e.site.ID, &models.PortalSession{SiteID: e.site.ID, ID: fmt.Sprintf("sess-%05d", i), AccountID: id,
					Email: "c@example.com", DisplayName: "C", IdPID: "idp", CreatedAt: e.clock.Now(), LastSeenAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(time.Hour)}); err != nil {
					return err
				}
			case 3:
				if err := tx.SaveSyncUser(&models.SyncUser{SiteID: e.site.ID, UserID: fmt.Sprintf("u-%05d", i), AccountID: id,
					State: models.SyncUserActive, Name: "Name " + id}); err != nil {
					return err
				}
			}
		}
		return tx.CreateAuditEvents(e.site.ID, evs)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ids
}

func (e *reportEnv) run(force bool) []privacy.ReportSummary {
	e.t.Helper()
	sums, ran, err := e.svc.ReportAll(context.Background(), force)
	if err != nil || !ran {
		e.t.Fatalf("ReportAll: ran %v, %v", ran, err)
	}
	return sums
}

// reported lists every account the API was sent, in order.
func reported(f *fakeatlassian.Fake) []string {
	var out []string
	for _, r := range f.Reports() {
		out = append(out, r.Accounts...)
	}
	return out
}

// TestReportingCycleBatchesAndBody: every account held is reported once,
// in batches of at most 90, with exactly the documented body, signed so
// that the API (which verifies the JWT and its qsh) accepts every request.
func TestReportingCycleBatchesAndBody(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newReportEnv(t, b)
		ids := e.seed(200)
		sums := e.run(false)
		if len(sums) != 1 {
			t.Fatalf("summaries %+v, want one", sums)
		}
		// want is what was got, with the fields this test expects set.
		want := sums[0]
		want.Completed, want.Requests, want.Reported = true, 3, 200
		if d := cmp.Diff(want, sums[0]); d != "" {
			t.Fatalf("summary (-want +got):\n%s", d)
		}
		c := e.fake.ReportCounts()
		if d := cmp.Diff(fakeatlassian.ReportCounts{Requests: 3, MaxBatch: 90, Rejected: 0, Accounts: 200, TooSoon: c.TooSoon}, c); d != "" {
			t.Fatalf("counts (-want +got):\n%s", d)
		}
		got := reported(e.fake)
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			t.Fatalf("reported %d accounts, want each of the %d once", len(got), len(ids))
		}
		var body struct {
			Accounts []map[string]string `json:"accounts"`
		}
		r := e.fake.Reports()[0]
		if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Accounts) != 90 {
			t.Fatalf("body %s", r.Body)
		}
		for _, a := range body.Accounts {
			if a["accountId"] == "" {
				t.Fatalf("account in the body without an accountId: %v", a)
			}
			if d := cmp.Diff(map[string]string{"accountId": a["accountId"], "updatedAt": "2026-12-01T09:00:00Z"}, a); d != "" {
				t.Fatalf("account in the body (-want +got):\n%s", d)
			}
		}
		// Within the period nothing is reported again, even when forced.
		e.clock.Advance(24 * time.Hour)
		if sums := e.run(true); sums[0].Requests != 0 {
			t.Errorf("a cycle a day later sent %d requests", sums[0].Requests)
		}
		// Not due: the scheduled run does nothing.
		if sums := e.run(false); sums[0].Ran {
			t.Errorf("a scheduled run before the next cycle ran: %+v", sums[0])
		}
		// A week later every account is reported again, once.
		e.clock.Advance(6*24*time.Hour + time.Minute)
		next := e.run(false)[0]
		if d := cmp.Diff(map[string]int{"requests": 3, "reported": 200}, map[string]int{"requests": next.Requests, "reported": next.Reported}); d != "" {
			t.Errorf("the next cycle (-want +got):\n%s", d)
		}
		c = e.fake.ReportCounts()
		if d := cmp.Diff(map[string]int{"tooSoon": 0, "accounts": 400}, map[string]int{"tooSoon": c.TooSoon, "accounts": c.Accounts}); d != "" {
			t.Errorf("counts (-want +got):\n%s", d)
		}
		st, err := e.svc.Status(context.Background(), e.site)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if d := cmp.Diff(map[string]any{"accountsHeld": int64(200), "reported": int64(200), "has lastCycleAt": true, "has nextCycleAt": true, "lastStatus": "ok"},
			map[string]any{"accountsHeld": st.AccountsHeld, "reported": st.Reported, "has lastCycleAt": st.LastCycleAt != nil,
				"has nextCycleAt": st.NextCycleAt != nil, "lastStatus": st.LastStatus}); d != "" {
			t.Errorf("status (-want +got):\n%s", d)
		}
	})
}

// TestReportingClosedAndUpdated: a closed account is erased everywhere
// (as an erasure would), an updated one loses its cached profile data,
// unless its processing is restricted (then it is counted); a 204 changes
// nothing.
func TestReportingClosedAndUpdated(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newReportEnv(t, b)
		ids := e.seed(8)
		closedSignIn, closedSession, updatedUser, restrictedUser := ids[0], ids[2], ids[3], ids[7]
		if _, err := e.svc.Restrict(context.Background(), e.site, "557058:admin", restrictedUser, "contested"); err != nil {
			t.Fatal(err)
		}
		e.fake.CloseAccounts(closedSignIn, closedSession)
		e.fake.UpdateAccounts(updatedUser, restrictedUser)
		sums := e.run(false)
		s := sums[0]
		// Nine accounts: the eight, and the administrator who restricted one.
		want := s
		want.Completed, want.Reported, want.Closed, want.Erased, want.Updated, want.Refreshed = true, 9, 2, 2, 2, 1
		if d := cmp.Diff(want, s); d != "" {
			t.Fatalf("summary (-want +got):\n%s", d)
		}
		view := e.st.View(context.Background())
		for _, id := range []string{closedSignIn, closedSession} {
			evs, err := view.FindAuditEvents(e.site.ID, store.AuditQuery{AccountID: id})
			if err != nil || len(evs) != 0 {
				t.Errorf("audit events of closed account %s: %v %v", id, evs, err)
			}
		}
		if n, _ := view.CountPortalSessions(e.site.ID); n != 1 {
			t.Errorf("%d portal sessions left, want 1 (the closed account's is gone)", n)
		}
		erased, _ := view.FindAuditEvents(e.site.ID, store.AuditQuery{Event: models.AuditDataErased})
		if len(erased) != 2 {
			t.Errorf("data_erased events %+v, want two", erased)
		} else if d := cmp.Diff(map[string]string{"actor": "", "reason": "account_closed"}, map[string]string{"actor": erased[0].ActorAccountID, "reason": erased[0].Reason}); d != "" {
			t.Errorf("data_erased event (-want +got):\n%s", d)
		}
		u, err := view.FindSyncUser(e.site.ID, "u-00003", false)
		if err != nil {
			t.Errorf("updated account: %v", err)
		} else if d := cmp.Diff(map[string]string{"name": "", "accountId": updatedUser}, map[string]string{"name": u.Name, "accountId": u.AccountID}); d != "" {
			t.Errorf("updated account's cached name (-want +got):\n%s", d)
		}
		u, _ = view.FindSyncUser(e.site.ID, "u-00007", false)
		if u.Name == "" {
			t.Errorf("a restricted account's data was refreshed")
		}
		r, err := view.FindRestriction(e.site.ID, restrictedUser)
		if err != nil {
			t.Errorf("restriction: %v", err)
		} else if d := cmp.Diff(map[string]any{"blockedCount": int64(1), "lastBlocked": models.BlockedReportingRefresh},
			map[string]any{"blockedCount": r.BlockedCount, "lastBlocked": r.LastBlocked}); d != "" {
			t.Errorf("restriction (-want +got):\n%s", d)
		}
		if held, _ := view.CountReportAccounts(e.site.ID); held != 7 {
			t.Errorf("%d accounts held after two were erased, want 7", held)
		}
		// A week later: the erased accounts are not reported again; 204.
		e.clock.Advance(8 * 24 * time.Hour)
		next := e.run(false)[0]
		want = next
		want.Reported, want.Closed, want.Completed = 7, 0, true
		if d := cmp.Diff(want, next); d != "" {
			t.Errorf("next cycle (-want +got):\n%s", d)
		}
		for _, id := range reported(e.fake)[9:] {
			if id == closedSignIn || id == closedSession {
				t.Errorf("erased account %s reported again", id)
			}
		}
	})
}

// TestReportingIgnoresBadAnswers: an answer that is not JSON, or that
// names accounts not sent, is logged and ignored, never applied.
func TestReportingIgnoresBadAnswers(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newReportEnv(t, b)
		ids := e.seed(100)
		other := "557058:someone-else"
		// Someone not in this site's requests, with data here under
		// another site? No: an account of this site, but not in the batch
		// that names it.
		e.fake.QueueMalformedReportAnswers(1)
		e.fake.QueueStrangerAccounts(ids[0], other)
		s := e.run(false)[0]
		want := s
		want.Completed, want.Requests, want.Closed, want.Erased, want.Ignored = true, 2, 0, 0, 3
		if d := cmp.Diff(want, s); d != "" {
			t.Fatalf("summary (-want +got):\n%s", d)
		}
		if held, _ := e.st.View(context.Background()).CountReportAccounts(e.site.ID); held != 100 {
			t.Errorf("%d accounts held, want all 100", held)
		}
		erased, _ := e.st.View(context.Background()).FindAuditEvents(e.site.ID, store.AuditQuery{Event: models.AuditDataErased})
		if len(erased) != 0 {
			t.Errorf("an ignored answer erased someone: %+v", erased)
		}
	})
}

// TestReportingRetryAfterAndCyclePeriod: 429 and 503 are retried after
// the Retry-After they name (seconds or an HTTP date); a wait too long
// for one run ends it, persisted, and the next run resumes where it
// stopped; Cycle-Period in days or ISO 8601 sets the next cycle.
func TestReportingRetryAfterAndCyclePeriod(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newReportEnv(t, b)
		e.seed(270)
		date := e.clock.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
		date2 := e.clock.Now().Add(100 * time.Second).UTC().Format(http.TimeFormat)
		e.fake.QueueReportFaults(fakeatlassian.ReportFault{Status: 429, RetryAfter: "7"}, fakeatlassian.ReportFault{Status: 503, RetryAfter: date},
			fakeatlassian.ReportFault{Status: 429, RetryAfter: date2})
		e.fake.SetCyclePeriod("14")
		s := e.run(false)[0]
		want := s
		want.Completed, want.Requests, want.Reported = true, 6, 270
		if d := cmp.Diff(want, s); d != "" {
			t.Fatalf("summary (-want +got):\n%s", d)
		}
		// 7 s; then the date 90 s after the start, 7 s in: 83 s; then the
		// date 100 s after the start, 90 s in: 10 s.
		if d := cmp.Diff([]time.Duration{7 * time.Second, 83 * time.Second, 10 * time.Second}, e.sleeps); d != "" {
			t.Fatalf("sleeps (-want +got):\n%s", d)
		}
		st, _ := e.svc.Status(context.Background(), e.site)
		if st.CyclePeriod != 14*24*time.Hour || st.NextCycleAt == nil || !st.NextCycleAt.Equal(e.clock.Now().Add(14*24*time.Hour)) {
			t.Errorf("period %v next %v", st.CyclePeriod, st.NextCycleAt)
		}

		// A week later nothing is due (the period is 14 days now).
		e.clock.Advance(8 * 24 * time.Hour)
		if s := e.run(true)[0]; s.Requests != 0 {
			t.Errorf("reported again within Cycle-Period: %+v", s)
		}
		// After 14 days: a long Retry-After on the second batch ends the
		// run, and the next run resumes with that batch.
		e.clock.Advance(7 * 24 * time.Hour)
		e.fake.SetCyclePeriod("P3D")
		e.fake.QueueReportFaults() // none on the first
		before := len(reported(e.fake))
		e.hook = func(n int) {
			if n == 7 { // the first request of this cycle
				e.fake.QueueReportFaults(fakeatlassian.ReportFault{Status: 429, RetryAfter: "3600"})
			}
		}
		s = e.run(false)[0]
		e.hook = nil
		if s.Completed || !s.Ran || s.Reported != 90 {
			t.Fatalf("a long Retry-After: %+v", s)
		}
		st, _ = e.svc.Status(context.Background(), e.site)
		if st.RetryAt == nil || !st.CycleInProgress || st.LastStatus != "waiting" {
			t.Fatalf("status after a long Retry-After: %+v", st)
		}
		if s := e.run(false)[0]; s.Ran {
			t.Errorf("ran before Retry-After: %+v", s)
		}
		e.clock.Advance(time.Hour + time.Second)
		s = e.run(false)[0]
		if !s.Completed || s.Reported != 180 {
			t.Fatalf("resumed: %+v", s)
		}
		got := reported(e.fake)[before:]
		if len(got) != 270 {
			for _, r := range e.fake.Reports() {
				t.Logf("report at %v: %d accounts, %s..%s", r.At, len(r.Accounts), r.Accounts[0], r.Accounts[len(r.Accounts)-1])
			} // the request answered 429 is not an accepted report
			t.Errorf("%d accounts sent in this cycle", len(got))
		}
		seen := map[string]int{}
		for _, id := range got {
			seen[id]++
		}
		if len(seen) != 270 {
			t.Errorf("%d distinct accounts reported, want 270", len(seen))
		}
		st, _ = e.svc.Status(context.Background(), e.site)
		if st.CyclePeriod != 3*24*time.Hour {
			t.Errorf("period %v after P3D", st.CyclePeriod)
		}
	})
}

// TestReportingResumesAfterACrash: a cycle interrupted mid-way (the
// process dies after an answer, before recording it) resumes at the next
// run with the batch it had not recorded, and reports nothing twice
// beyond that batch.
func TestReportingResumesAfterACrash(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newReportEnv(t, b)
		ids := e.seed(300)
		ctx, cancel := context.WithCancel(context.Background())
		e.hook = func(n int) {
			if n == 2 {
				cancel()
			}
		}
		sums, _, _ := e.svc.ReportAll(ctx, false)
		e.hook = nil
		if len(sums) != 1 || sums[0].Completed {
			t.Fatalf("interrupted cycle %+v", sums)
		}
		st, _ := e.svc.Status(context.Background(), e.site)
		if !st.CycleInProgress || st.Reported != 90 {
			t.Fatalf("status after the crash: %+v", st)
		}
		// Another process resumes it.
		e.svc = e.service()
		s := e.run(false)[0]
		if !s.Completed || s.Reported != 210 {
			t.Fatalf("resumed: %+v", s)
		}
		got := reported(e.fake)
		if len(got) != 390 || !slices.Equal(got[90:180], got[180:270]) {
			t.Fatalf("%d accounts sent; the second batch should be sent again, and only it", len(got))
		}
		distinct := slices.Compact(slices.Sorted(slices.Values(got)))
		if !slices.Equal(distinct, ids) {
			t.Errorf("not every account was reported")
		}
	})
}

// TestReportingOneReplicaAtATime: two processes on one PostgreSQL run the
// cycle at once; the requests are exactly those of one cycle.
func TestReportingOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	b, ok := postgres(t)
	if !ok {
		t.Skip("needs PostgreSQL (IDBRIDGE_TEST_DATABASE_URL)")
	}
	e := newReportEnv(t, b)
	e.seed(450)
	st2 := b.Open(t, storetest.SameDatabase(e.st))
	e2 := &reportEnv{t: t, st: st2, clock: e.clock, fake: e.fake, site: e.site}
	svc2 := e2.service()
	var wg sync.WaitGroup
	ran := make([]bool, 2)
	for i, svc := range []*privacy.Service{e.svc, svc2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, r, err := svc.ReportAll(context.Background(), true)
			if err != nil {
				t.Errorf("process %d: %v", i, err)
			}
			ran[i] = r
		}()
	}
	wg.Wait()
	c := e.fake.ReportCounts()
	if d := cmp.Diff(map[string]int{"requests": 5, "accounts": 450}, map[string]int{"requests": c.Requests, "accounts": c.Accounts}); d != "" {
		t.Errorf("two processes sent more or less than the requests of one cycle (-want +got):\n%s", d)
	}
	if !ran[0] && !ran[1] {
		t.Errorf("neither process ran the cycle")
	}
}

func postgres(t *testing.T) (storetest.Backend, bool) {
	for _, b := range storetest.Backends(t) {
		if b.Name == store.Postgres {
			return b, true
		}
	}
	return storetest.Backend{}, false
}

func asError(err error, me **models.Error) bool { return errors.As(err, me) }
