package profile_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/fakeatlassian"
	"idbridge/app/profile"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

var epoch = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

const actor = "557058:admin"

// newFakeMarketplace is the vendor reporting API of vendor 1234 (the shared
// fake of Atlassian) with these licences.
func newFakeMarketplace(t *testing.T, licenses ...map[string]any) *fakeatlassian.Marketplace {
	m := fakeatlassian.NewMarketplace("1234", "vendor@example.com", "vendor-token", licenses...)
	t.Cleanup(m.Close)
	return m
}

func license(addonLicenseID, entitlementNumber, cloudID, tech, email, billing, company, country, region string) map[string]any {
	return map[string]any{
		"addonLicenseId": addonLicenseID, "licenseId": "SEN-L" + addonLicenseID, "appEntitlementNumber": entitlementNumber,
		"cloudId": cloudID, "addonKey": "idbridge", "hosting": "Cloud", "status": "active", "lastUpdated": "2026-10-01",
		"contactDetails": map[string]any{"company": company, "country": country, "region": region,
			"technicalContact": map[string]any{"name": tech, "email": email},
			"billingContact":   map[string]any{"name": billing, "email": "billing@example.com"}},
	}
}

type env struct {
	st    *store.Store
	svc   *profile.Service
	mp    *fakeatlassian.Marketplace
	clock *storetest.Clock
}

func newService(t *testing.T, st *store.Store, mp *fakeatlassian.Marketplace, clock *storetest.Clock, configured bool) *profile.Service {
	u, _ := url.Parse(mp.URL())
	clients := atlassian.New(atlassian.Options{AppKey: "idbridge", MaxAttempts: 1, Base: &http.Transport{ResponseHeaderTimeout: 300 * time.Millisecond}})
	cfg := atlassian.MarketplaceConfig{URL: u, VendorID: "1234", User: "vendor@example.com", Token: "vendor-token", AppKey: "idbridge"}
	if !configured {
		cfg = atlassian.MarketplaceConfig{URL: u}
	}
	return profile.New(st, clients.Marketplace(cfg), clock.Now, nil)
}

func newEnv(t *testing.T, b storetest.Backend, licenses ...map[string]any) *env {
	clock := storetest.NewClock(epoch)
	st := b.Open(t, storetest.WithNow(clock.Now))
	mp := newFakeMarketplace(t, licenses...)
	return &env{st: st, svc: newService(t, st, mp, clock, true), mp: mp, clock: clock}
}

var siteSeq atomic.Int64

func (e *env) install(t *testing.T, mod func(s *models.Site)) *models.Site {
	n := siteSeq.Add(1)
	in := &models.Site{
		SiteFacts: models.SiteFacts{
			ClientKey:   "client-" + strconv.FormatInt(n, 10),
			BaseURL:     "https://s" + strconv.FormatInt(n, 10) + ".atlassian.net",
			ProductType: "jira",
		},
		SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
	}
	if mod != nil {
		mod(in)
	}
	var site *models.Site
	if err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		site, err = tx.SaveInstall(in)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return site
}

func (e *env) get(t *testing.T, siteID string) *models.CustomerProfile {
	p, err := e.svc.Get(context.Background(), siteID)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func value(p *models.CustomerProfile, f models.ProfileField) string { return p.Field(f).Value() }

func TestSyncAllMatchesEachSiteAndKeepsCorrections(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		var lics []map[string]any
		for i := range 120 { // more than two pages of 50
			lics = append(lics, license(strconv.Itoa(5000+i), "E-X"+strconv.Itoa(i), "cloud-x"+strconv.Itoa(i), "T", "t@example.com", "B", "C", "France", ""))
		}
		lics = append(lics,
			license("1001", "E-1", "cloud-1", "Ann Tech", "ann@acme.example", "Bob Buyer", "Acme", "Germany", "EMEA"),
			license("1002", "E-2", "cloud-2", "RTBF", "RTBF", "Carol", "Globex", "RTBF", "RTBF"),
			license("1003", "", "cloud-3", "Dan", "dan@initech.example", "Dan", "Initech", "Japan", "APAC"),
		)
		e := newEnv(t, b, lics...)
		byNumber := e.install(t, func(s *models.Site) { s.EntitlementNumber = "E-1"; s.CloudID = "cloud-other" })
		bySEN := e.install(t, func(s *models.Site) { s.ServiceEntitlementNumber = "SEN-1002" })
		byCloud := e.install(t, func(s *models.Site) { s.CloudID = "cloud-3" })
		unmatched := e.install(t, func(s *models.Site) { s.EntitlementNumber = "E-404" })
		gone := e.install(t, func(s *models.Site) { s.CloudID = "cloud-1" })
		ctx := context.Background()
		if err := e.st.InTx(ctx, func(tx *store.Tx) error { return tx.MarkSiteUninstalled(gone.ID, epoch.Add(time.Hour)) }); err != nil {
			t.Fatal(err)
		}
		// bySEN had its name erased at Atlassian after we learned it.
		if err := e.st.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.ApplyProfileSync(bySEN.ID, map[models.ProfileField]string{models.ProfileName: "Old Name", models.ProfileEmail: "old@globex.example"}, models.SourceMarketplace, "")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// An admin corrected byNumber's company before the sync.
		if _, err := e.svc.Correct(ctx, byNumber, actor, []models.ProfileChange{{Field: models.ProfileCompany, Value: strp("ACME GmbH")}}); err != nil {
			t.Fatal(err)
		}

		res, ran, err := e.svc.SyncAll(ctx)
		if err != nil || !ran {
			t.Fatalf("SyncAll = %+v, %v, %v", res, ran, err)
		}
		if d := cmp.Diff(map[string]int{"licenses": 123, "sites": 4, "matched": 3}, map[string]int{"licenses": res.Licenses, "sites": res.Sites, "matched": res.Matched}); d != "" {
			t.Errorf("result (-want +got):\n%s", d)
		}

		p := e.get(t, byNumber.ID)
		want := map[models.ProfileField]string{models.ProfileName: "Ann Tech", models.ProfileEmail: "ann@acme.example",
			models.ProfilePurchaser: "Bob Buyer", models.ProfileCompany: "ACME GmbH", models.ProfileLocation: "Germany, EMEA"}
		for f, v := range want {
			if value(p, f) != v {
				t.Errorf("by entitlement number: %s = %q, want %q", f, value(p, f), v)
			}
		}
		if d := cmp.Diff(map[string]any{"company.source": models.SourceAdmin, "company.synced": "Acme", "name.source": models.SourceMarketplace},
			map[string]any{"company.source": p.Field(models.ProfileCompany).Source(), "company.synced": p.Field(models.ProfileCompany).Synced,
				"name.source": p.Field(models.ProfileName).Source()}); d != "" {
			t.Errorf("sources (-want +got):\n%s", d)
		}
		if !strings.Contains(p.SyncStatus, "E-1") || p.LastSyncAt == nil {
			t.Errorf("sync status %q at %v", p.SyncStatus, p.LastSyncAt)
		}

		p = e.get(t, bySEN.ID)
		if d := cmp.Diff(map[string]string{"name": "", "email": "", "location": "", "purchaser": "Carol"},
			map[string]string{"name": value(p, models.ProfileName), "email": value(p, models.ProfileEmail), "location": value(p, models.ProfileLocation),
				"purchaser": value(p, models.ProfilePurchaser)}); d != "" {
			t.Errorf("RTBF values were not erased (-want +got):\n%s", d)
		}
		if p = e.get(t, byCloud.ID); value(p, models.ProfileEmail) != "dan@initech.example" {
			t.Errorf("by cloud ID: %+v", p.Fields)
		}
		if p = e.get(t, unmatched.ID); value(p, models.ProfileName) != "" || !strings.Contains(p.SyncStatus, "No Marketplace licence") {
			t.Errorf("unmatched: %+v %q", p.Fields, p.SyncStatus)
		}
		if _, err := e.st.View(ctx).FindCustomerProfile(gone.ID); !models.IsNotFound(err) {
			t.Errorf("an uninstalled site was synced: %v", err)
		}
		run, err := e.st.View(ctx).FindJobRun(profile.JobName)
		if err != nil || run.LastStatus != "ok" || !strings.Contains(run.LastMessage, "3 of 4") {
			t.Errorf("job run = %+v, %v", run, err)
		}

		// Clearing the correction shows the synced value at once.
		p, err = e.svc.Correct(ctx, byNumber, actor, []models.ProfileChange{{Field: models.ProfileCompany}})
		if err != nil {
			t.Errorf("clearing: %v", err)
		} else if d := cmp.Diff(map[string]any{"company": "Acme", "company.source": models.SourceMarketplace},
			map[string]any{"company": value(p, models.ProfileCompany), "company.source": p.Field(models.ProfileCompany).Source()}); d != "" {
			t.Errorf("after clearing (-want +got):\n%s", d)
		}
	})
}

func TestRunDueRunsOncePerInterval(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, license("1", "E-1", "c-1", "A", "a@example.com", "B", "C", "", ""))
		e.install(t, func(s *models.Site) { s.EntitlementNumber = "E-1" })
		ctx := context.Background()
		if _, ran, err := e.svc.RunDue(ctx); err != nil || !ran {
			t.Fatalf("first RunDue: ran %v, %v", ran, err)
		}
		e.clock.Advance(23 * time.Hour)
		if _, ran, err := e.svc.RunDue(ctx); err != nil || ran {
			t.Fatalf("RunDue 23 h later: ran %v, %v; want not due", ran, err)
		}
		// Another replica (another service on the same database) agrees.
		other := newService(t, b.Open(t, storetest.SameDatabase(e.st)), e.mp, e.clock, true)
		if _, ran, err := other.RunDue(ctx); err != nil || ran {
			t.Fatalf("another replica's RunDue: ran %v, %v; want not due", ran, err)
		}
		e.clock.Advance(time.Hour)
		if _, ran, err := other.RunDue(ctx); err != nil || !ran {
			t.Fatalf("RunDue 24 h later: ran %v, %v", ran, err)
		}
	})
}

// TestOneSyncAcrossReplicas: two replicas start the sync at once; only
// one runs it (PostgreSQL advisory lock; on SQLite, one process).
func TestOneSyncAcrossReplicas(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends(t) {
		if b.Name != store.Postgres {
			continue
		}
		e := newEnv(t, b, license("1", "E-1", "c-1", "A", "a@example.com", "B", "C", "", ""))
		gate := make(chan struct{})
		e.mp.Gate(gate)
		other := newService(t, b.Open(t, storetest.SameDatabase(e.st)), e.mp, e.clock, true)
		ctx := context.Background()
		done := make(chan bool, 1)
		go func() {
			_, ran, err := e.svc.SyncAll(ctx)
			if err != nil {
				t.Error(err)
			}
			done <- ran
		}()
		// Wait until the first holds the lock and is reading licences.
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := len(e.mp.Requests())
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the first sync never reached the Marketplace")
			}
			time.Sleep(5 * time.Millisecond)
		}
		_, ran, err := other.SyncAll(ctx)
		if err != nil || ran {
			t.Errorf("the second replica ran the sync too: ran %v, %v", ran, err)
		}
		close(gate)
		if !<-done {
			t.Error("the first replica did not run")
		}
	}
}

func TestSyncSite(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, license("2001", "E-21", "cloud-21", "Eve", "eve@example.com", "Frank", "Hooli", "USA", "Americas"),
			license("2002", "", "cloud-22", "Gil", "gil@example.com", "Gil", "Pied Piper", "", ""))
		ctx := context.Background()
		site := e.install(t, func(s *models.Site) { s.EntitlementNumber = "E-21" })
		p, err := e.svc.SyncSite(ctx, site)
		if err != nil {
			t.Fatalf("SyncSite: %v", err)
		}
		if d := cmp.Diff(map[string]string{"email": "eve@example.com", "location": "USA, Americas"},
			map[string]string{"email": value(p, models.ProfileEmail), "location": value(p, models.ProfileLocation)}); d != "" {
			t.Fatalf("SyncSite (-want +got):\n%s", d)
		}
		if reqs := e.mp.Requests(); !strings.Contains(reqs[0], "text=E-21") {
			t.Errorf("first request %s does not search by the entitlement number", reqs[0])
		}

		// Not found by text: the full listing is read and matched exactly.
		bySEN := e.install(t, func(s *models.Site) { s.ServiceEntitlementNumber = "2002-unlisted"; s.CloudID = "cloud-22" })
		if p, err := e.svc.SyncSite(ctx, bySEN); err != nil || value(p, models.ProfileName) != "Gil" {
			t.Fatalf("fallback: %+v, %v", p, err)
		}

		// Vendor credentials refused: a 503 in words, never a 401 of ours.
		// (Each press below comes after the site's cooldown.)
		e.clock.Advance(profile.SiteSyncCooldown)
		e.mp.Refuse(true)
		_, err = e.svc.SyncSite(ctx, site)
		if models.ErrorCode(err) != models.CodeUnavailable || !strings.Contains(models.ErrorMessage(err), "vendor credentials") {
			t.Errorf("refused vendor credentials: %v", err)
		}
		e.mp.Refuse(false)

		// A Marketplace that does not answer: nothing changes.
		before := e.get(t, site.ID)
		e.clock.Advance(profile.SiteSyncCooldown)
		e.mp.Hang(true)
		_, err = e.svc.SyncSite(ctx, site)
		e.mp.Hang(false)
		if models.ErrorCode(err) != models.CodeUnavailable || !strings.Contains(models.ErrorMessage(err), "did not answer in time") {
			t.Errorf("hanging Marketplace: %v", err)
		}
		if after := e.get(t, site.ID); !after.LastSyncAt.Equal(*before.LastSyncAt) {
			t.Error("a failed sync changed the record")
		}

		// Without vendor credentials: a precondition, said in words.
		off := newService(t, e.st, e.mp, e.clock, false)
		if _, err := off.SyncSite(ctx, site); models.ErrorCode(err) != models.CodePrecondition || !strings.Contains(models.ErrorMessage(err), "not set up") {
			t.Errorf("unconfigured: %v", err)
		}
		if off.SyncConfigured() {
			t.Error("SyncConfigured without credentials")
		}
		if err := off.Run(ctx); err != nil {
			t.Errorf("Run without credentials: %v", err)
		}
	})
}

func strp(s string) *string { return &s }

func TestCorrectValidatesAndAudits(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		site := e.install(t, nil)
		ctx := context.Background()
		bad := []struct {
			change models.ProfileChange
			says   string
		}{
			{models.ProfileChange{Field: models.ProfileEmail, Value: strp("not-an-email")}, "not an email address"},
			{models.ProfileChange{Field: models.ProfileEmail, Value: strp("a@b")}, "not an email address"},
			{models.ProfileChange{Field: models.ProfileName, Value: strp(strings.Repeat("n", 201))}, "at most 200"},
			{models.ProfileChange{Field: models.ProfileCompany, Value: strp("Acme\nEvil")}, "line breaks"},
			{models.ProfileChange{Field: "phone", Value: strp("1")}, "not a field"},
		}
		for _, c := range bad {
			// A valid change beside the bad one is not saved either.
			_, err := e.svc.Correct(ctx, site, actor, []models.ProfileChange{{Field: models.ProfileName, Value: strp("Fine")}, c.change})
			if models.ErrorCode(err) != models.CodeInvalid || !strings.Contains(models.ErrorMessage(err), c.says) {
				t.Errorf("%s=%v: %v, want invalid saying %q", c.change.Field, c.change.Value, err, c.says)
			}
			var me *models.Error
			if ok := asModelError(err, &me); !ok || me.Field != string(c.change.Field) {
				t.Errorf("%s: error field %+v", c.change.Field, me)
			}
		}
		if _, err := e.svc.Correct(ctx, site, actor, nil); models.ErrorCode(err) != models.CodeInvalid {
			t.Errorf("no changes: %v", err)
		}
		if p := e.get(t, site.ID); value(p, models.ProfileName) != "" {
			t.Errorf("refused input was saved: %+v", p.Fields)
		}
		if evs, _ := e.st.View(ctx).FindAuditEvents(site.ID, store.AuditQuery{}); len(evs) != 0 {
			t.Errorf("refused input wrote %d audit events", len(evs))
		}

		p, err := e.svc.Correct(ctx, site, actor, []models.ProfileChange{
			{Field: models.ProfileName, Value: strp("  Jane Doe ")}, {Field: models.ProfileEmail, Value: strp("jane@example.com")}})
		if err != nil {
			t.Fatalf("Correct: %v", err)
		}
		if d := cmp.Diff(map[string]any{"name": "Jane Doe", "name.source": models.SourceAdmin},
			map[string]any{"name": value(p, models.ProfileName), "name.source": p.Field(models.ProfileName).Source()}); d != "" {
			t.Fatalf("Correct (-want +got):\n%s", d)
		}
		evs, _ := e.st.View(ctx).FindAuditEvents(site.ID, store.AuditQuery{})
		if len(evs) != 1 {
			t.Fatalf("audit = %+v, want one event", evs)
		}
		if d := cmp.Diff(map[string]any{"event": models.AuditRecordCorrected, "actor": actor, "fields": []string{"email", "name"}},
			map[string]any{"event": evs[0].Event, "actor": evs[0].ActorAccountID, "fields": evs[0].Fields}); d != "" {
			t.Fatalf("audit (-want +got):\n%s", d)
		}
		raw, _ := json.Marshal(evs)
		if strings.Contains(string(raw), "Jane") || strings.Contains(string(raw), "jane@") {
			t.Errorf("the audit event holds a value: %s", raw)
		}
	})
}

func asModelError(err error, target **models.Error) bool {
	for err != nil {
		if me, ok := err.(*models.Error); ok {
			*target = me
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestContactOf(t *testing.T) {
	l := atlassian.License{ContactDetails: atlassian.ContactDetails{
		Company: " Acme\tInc ", Country: "Germany",
		TechnicalContact: atlassian.Contact{Name: "RTBF", Email: "rtbf"},
		BillingContact:   atlassian.Contact{Name: ""},
	}}
	got := profile.ContactOf(l).Values
	want := map[models.ProfileField]string{models.ProfileName: "", models.ProfileEmail: "", models.ProfileCompany: "Acme Inc", models.ProfileLocation: "Germany"}
	if len(got) != len(want) {
		t.Fatalf("ContactOf = %v, want %v", got, want)
	}
	for f, v := range want {
		if got[f] != v {
			t.Errorf("%s = %q, want %q", f, got[f], v)
		}
	}
	if _, ok := got[models.ProfilePurchaser]; ok {
		t.Error("a missing purchaser was set (it must stay unknown)")
	}
}
