package account_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"idbridge/app/account"
	"idbridge/app/atlassian"
	"idbridge/app/fakeatlassian"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

var epoch = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

const (
	goodToken  = "ATATT3xFfGF0-good-token-1a2b"
	adminEmail = "bot@example.com"
	actor      = "557058:admin"
)

type env struct {
	st    *store.Store
	svc   *account.Service
	site  *models.Site
	jira  *fakeatlassian.Site
	clock *storetest.Clock
}

// The credentials the fake site accepts: the admin's classic and scoped
// API tokens, and an OAuth client, all with Jira's ADMINISTER.
func apiTokenAccount(admin bool) fakeatlassian.ServiceAccount {
	return fakeatlassian.ServiceAccount{Email: adminEmail, APIToken: goodToken, ScopedToken: goodToken, Admin: admin}
}

var oauthClient = fakeatlassian.ServiceAccount{ClientID: "cid", ClientSecret: "good-client-secret-5678", Admin: true}

// setAdmin makes the site grant the admin's tokens ADMINISTER or not.
func (e *env) setAdmin(admin bool) {
	e.jira.RevokeCredentials()
	e.jira.AddServiceAccount(apiTokenAccount(admin))
	e.jira.AddServiceAccount(oauthClient)
}

func newEnv(t *testing.T, b storetest.Backend) *env {
	clock := storetest.NewClock(epoch)
	st := b.Open(t, storetest.WithNow(clock.Now))
	fake := fakeatlassian.New(fakeatlassian.Options{Now: clock.Now})
	t.Cleanup(fake.Close)
	jira := fake.NewSite(fakeatlassian.SiteOptions{CloudID: "cloud-1"})
	jira.AddAccount(fakeatlassian.Account{Email: adminEmail, DisplayName: "Automation Bot"})
	jira.AddServiceAccount(apiTokenAccount(true))
	jira.AddServiceAccount(oauthClient)
	jira.AddOrgKey("good-org-key-0000")
	var site *models.Site
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		site, err = tx.SaveInstall(&models.Site{
			SiteFacts:    models.SiteFacts{ClientKey: "client-1", BaseURL: jira.BaseURL(), ProductType: "jira"},
			SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(fake.APIURL())
	clients := atlassian.New(atlassian.Options{AppKey: "idbridge", MaxAttempts: 1,
		Base: &http.Transport{ResponseHeaderTimeout: 200 * time.Millisecond}})
	svc := account.New(st, atlassian.NewServiceAccounts(clients, u, u), clock.Now, nil)
	svc.TestTimeout = 2 * time.Second
	return &env{st: st, svc: svc, site: site, jira: jira, clock: clock}
}

func strp(s string) *string { return &s }

func (e *env) auditRows(t *testing.T) []models.AuditEvent {
	t.Helper()
	evs, err := e.st.View(context.Background()).FindAuditEvents(e.site.ID, store.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func validInput() models.ServiceAccountInput {
	return models.ServiceAccountInput{Kind: models.AccountAPIToken, Email: adminEmail, Token: strp(goodToken)}
}

func TestSaveRefusesBadInputAndSavesNothing(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		long := strings.Repeat("a", 300)
		cases := []struct {
			name  string
			in    func(in *models.ServiceAccountInput)
			field string
			says  string
		}{
			{"no kind", func(in *models.ServiceAccountInput) { in.Kind = "" }, "kind", "Choose"},
			{"unknown kind", func(in *models.ServiceAccountInput) { in.Kind = "password" }, "kind", "not a kind"},
			{"malformed email", func(in *models.ServiceAccountInput) { in.Email = "bot@" }, "email", "not an email address"},
			{"email with a name", func(in *models.ServiceAccountInput) { in.Email = "Bot <bot@example.com>" }, "email", "not an email address"},
			{"no email", func(in *models.ServiceAccountInput) { in.Email = " " }, "email", "Enter the email"},
			{"overlong email", func(in *models.ServiceAccountInput) { in.Email = long + "@example.com" }, "email", "longer than 254"},
			{"empty token", func(in *models.ServiceAccountInput) { in.Token = strp("") }, "token", "empty"},
			{"blank token", func(in *models.ServiceAccountInput) { in.Token = strp("  \n") }, "token", "empty"},
			{"no token yet", func(in *models.ServiceAccountInput) { in.Token = nil }, "token", "Enter the API token"},
			{"token with a space", func(in *models.ServiceAccountInput) { in.Token = strp("abc def") }, "token", "spaces"},
			{"overlong token", func(in *models.ServiceAccountInput) { in.Token = strp(strings.Repeat("x", 5000)) }, "token", "longer than 4096"},
			{"scoped without cloud ID", func(in *models.ServiceAccountInput) { in.Kind = models.AccountScopedToken }, "cloudId", "cloud ID"},
			{"bad cloud ID", func(in *models.ServiceAccountInput) { in.Kind = models.AccountScopedToken; in.CloudID = "../admin" }, "cloudId", "letters, digits"},
			{"oauth without client ID", func(in *models.ServiceAccountInput) {
				*in = models.ServiceAccountInput{Kind: models.AccountOAuthClient, CloudID: "cloud-1", ClientSecret: strp("s3cret-0123456789")}
			}, "clientId", "client ID"},
			{"overlong client ID", func(in *models.ServiceAccountInput) {
				*in = models.ServiceAccountInput{Kind: models.AccountOAuthClient, CloudID: "cloud-1", ClientID: long, ClientSecret: strp("s3cret-0123456789")}
			}, "clientId", "longer than 256"},
			{"oauth without secret", func(in *models.ServiceAccountInput) {
				*in = models.ServiceAccountInput{Kind: models.AccountOAuthClient, CloudID: "cloud-1", ClientID: "cid"}
			}, "clientSecret", "client secret"},
			{"expired date", func(in *models.ServiceAccountInput) {
				in.ExpiresAtSet, in.ExpiresAt = true, func() *time.Time { t := epoch.Add(-time.Hour); return &t }()
			}, "expiresAt", "in the past"},
			{"date far ahead", func(in *models.ServiceAccountInput) {
				in.ExpiresAtSet, in.ExpiresAt = true, func() *time.Time { t := epoch.AddDate(10, 0, 0); return &t }()
			}, "expiresAt", "years ahead"},
			{"empty org key", func(in *models.ServiceAccountInput) { in.OrgAdminKey = strp("") }, "orgAdminKey", "empty"},
		}
		for _, c := range cases {
			in := validInput()
			c.in(&in)
			_, err := e.svc.Save(context.Background(), e.site, actor, in)
			var me *models.Error
			if !asError(err, &me) {
				t.Errorf("%s: err = %v, want a models.Error", c.name, err)
			} else if d := cmp.Diff(map[string]any{"code": models.CodeInvalid, "field": c.field, "says " + c.says: true},
				map[string]any{"code": me.Code, "field": me.Field, "says " + c.says: strings.Contains(me.Message, c.says)}); d != "" {
				t.Errorf("%s: err = %v (-want +got):\n%s", c.name, err, d)
			}
			if strings.Contains(fmt.Sprint(err), goodToken) {
				t.Errorf("%s: the error shows the token", c.name)
			}
		}
		if _, err := e.svc.Get(context.Background(), e.site.ID); !models.IsNotFound(err) {
			t.Errorf("after refused input a service account exists: %v", err)
		}
		if evs := e.auditRows(t); len(evs) != 0 {
			t.Errorf("refused input wrote %d audit events", len(evs))
		}
	})
}

func asError(err error, target **models.Error) bool {
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

func TestSaveKeepsSecretsAndAudits(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		ctx := context.Background()
		exp := epoch.Add(10 * 24 * time.Hour)
		in := validInput()
		in.ExpiresAtSet, in.ExpiresAt = true, &exp
		acc, err := e.svc.Save(ctx, e.site, actor, in)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]any{"token": goodToken, "tokenHint": "1a2b", "status": models.AccountUntested, "updatedBy": actor, "expiresSoon": true},
			map[string]any{"token": acc.Token, "tokenHint": acc.TokenHint, "status": acc.Status, "updatedBy": acc.UpdatedBy, "expiresSoon": acc.ExpiresSoon(e.clock.Now())}); d != "" {
			t.Fatalf("saved (-want +got):\n%s", d)
		}
		evs := e.auditRows(t)
		if len(evs) != 1 {
			t.Fatalf("audit = %+v, want one event", evs)
		}
		if d := cmp.Diff(map[string]any{"event": models.AuditConfigChanged, "section": "service_account", "actor": actor, "fields": []string{"email", "expiresAt", "kind", "token"}},
			map[string]any{"event": evs[0].Event, "section": evs[0].Section, "actor": evs[0].ActorAccountID, "fields": evs[0].Fields}); d != "" {
			t.Fatalf("audit (-want +got):\n%s", d)
		}
		// The audit row names fields, never values.
		raw, _ := json.Marshal(evs)
		if strings.Contains(string(raw), goodToken) || strings.Contains(string(raw), adminEmail) {
			t.Errorf("the audit event holds a value: %s", raw)
		}

		// Leaving the token out keeps it; only the email changes.
		e.clock.Advance(time.Second)
		in2 := models.ServiceAccountInput{Kind: models.AccountAPIToken, Email: "other@example.com"}
		acc, err = e.svc.Save(ctx, e.site, actor, in2)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]any{"token": goodToken, "email": "other@example.com", "has expiresAt": true},
			map[string]any{"token": acc.Token, "email": acc.Email, "has expiresAt": acc.ExpiresAt != nil}); d != "" {
			t.Fatalf("after changing the email (-want +got):\n%s", d)
		}
		if evs := e.auditRows(t); len(evs) != 2 || !slices.Equal(evs[0].Fields, []string{"email"}) {
			t.Errorf("second audit = %+v", evs)
		}
		// Saving the same again changes nothing and logs nothing.
		if _, err := e.svc.Save(ctx, e.site, actor, in2); err != nil {
			t.Fatal(err)
		}
		if evs := e.auditRows(t); len(evs) != 2 {
			t.Errorf("an unchanged save wrote an audit event: %d", len(evs))
		}
		// Switching kind needs the new kind's secret; the token is dropped.
		_, err = e.svc.Save(ctx, e.site, actor, models.ServiceAccountInput{Kind: models.AccountOAuthClient, ClientID: "cid", CloudID: "cloud-1"})
		if models.ErrorCode(err) != models.CodeInvalid {
			t.Fatalf("switch without a secret: %v", err)
		}
		acc, err = e.svc.Save(ctx, e.site, actor, models.ServiceAccountInput{Kind: models.AccountOAuthClient, ClientID: "cid", CloudID: "cloud-1",
			ClientSecret: strp("good-client-secret-5678"), OrgAdminKey: strp("good-org-key-0000")})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]any{"token": "", "clientSecret": "good-client-secret-5678", "tokenHint": "5678", "has expiresAt": false, "orgAdminKeyHint": "0000"},
			map[string]any{"token": acc.Token, "clientSecret": acc.ClientSecret, "tokenHint": acc.TokenHint, "has expiresAt": acc.ExpiresAt != nil, "orgAdminKeyHint": acc.OrgAdminKeyHint}); d != "" {
			t.Errorf("after switching to OAuth (-want +got):\n%s", d)
		}
		// Removing the org key.
		acc, err = e.svc.Save(ctx, e.site, actor, models.ServiceAccountInput{Kind: models.AccountOAuthClient, ClientID: "cid", CloudID: "cloud-1", ClearOrgAdminKey: true})
		if err != nil {
			t.Errorf("clearing the org key: %v", err)
		} else if d := cmp.Diff(map[string]any{"orgAdminKey": "", "has clientSecret": true},
			map[string]any{"orgAdminKey": acc.OrgAdminKey, "has clientSecret": acc.ClientSecret != ""}); d != "" {
			t.Errorf("after clearing the org key (-want +got):\n%s", d)
		}
	})
}

// TestSaveIsAtomicWithItsAuditEvent: when the audit event cannot be
// written, the change is not saved either.
func TestSaveIsAtomicWithItsAuditEvent(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		ctx := context.Background()
		if _, err := e.st.SQLDB().ExecContext(ctx, `ALTER TABLE audit_events RENAME TO audit_events_away`); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Save(ctx, e.site, actor, validInput()); err == nil {
			t.Fatal("Save succeeded without an audit log")
		}
		if _, err := e.st.SQLDB().ExecContext(ctx, `ALTER TABLE audit_events_away RENAME TO audit_events`); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Get(ctx, e.site.ID); !models.IsNotFound(err) {
			t.Errorf("the change was saved although its audit event failed: %v", err)
		}
	})
}

func checkNamed(res *models.ConnectionTest, name string) *models.ConnectionCheck {
	for i := range res.Checks {
		if res.Checks[i].Name == name {
			return &res.Checks[i]
		}
	}
	return nil
}

func TestConnectionTest(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		ctx := context.Background()
		if _, err := e.svc.Test(ctx, e.site); models.ErrorCode(err) != models.CodePrecondition {
			t.Fatalf("test without an account: %v", err)
		}
		if _, err := e.svc.Save(ctx, e.site, actor, validInput()); err != nil {
			t.Fatal(err)
		}

		res, err := e.svc.Test(ctx, e.site)
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK || res.Account.Status != models.AccountOK || res.Account.CheckedAt == nil {
			t.Fatalf("a good admin token: %+v", res)
		}
		if c := checkNamed(res, account.CheckCredentials); c == nil || !strings.Contains(c.Message, "Automation Bot") {
			t.Errorf("credentials check = %+v", c)
		}

		// Not an administrator: said in words.
		e.setAdmin(false)
		res, err = e.svc.Test(ctx, e.site)
		if err != nil {
			t.Fatal(err)
		}
		c := checkNamed(res, account.CheckAdmin)
		if res.OK || c == nil || c.OK || !strings.Contains(c.Message, "Token valid, but the account is not a Jira administrator: customers cannot be created") {
			t.Fatalf("not an admin: %+v", res)
		}
		if res.Account.Status != models.AccountOK {
			t.Errorf("status %s for valid credentials without admin rights, want ok", res.Account.Status)
		}
		e.setAdmin(true)

		// A timeout changes nothing and says so.
		before, _ := e.svc.Get(ctx, e.site.ID)
		e.clock.Advance(time.Hour)
		e.jira.Inject(fakeatlassian.Fault{Delay: time.Minute})
		_, err = e.svc.Test(ctx, e.site)
		e.jira.ClearFaults()
		if models.ErrorCode(err) != models.CodeUnavailable || !strings.Contains(models.ErrorMessage(err), "did not answer") ||
			!strings.Contains(models.ErrorMessage(err), "Nothing was changed") {
			t.Fatalf("timeout: %v", err)
		}
		after, _ := e.svc.Get(ctx, e.site.ID)
		if d := cmp.Diff(map[string]any{"status": before.Status, "checkedAt": before.CheckedAt.UTC(), "statusMessage": before.StatusMessage},
			map[string]any{"status": after.Status, "checkedAt": after.CheckedAt.UTC(), "statusMessage": after.StatusMessage}); d != "" {
			t.Errorf("a timed-out test changed the status (-want +got):\n%s", d)
		}

		// A token Atlassian rejects: invalid, persisted, shown.
		if _, err := e.svc.Save(ctx, e.site, actor, models.ServiceAccountInput{Kind: models.AccountAPIToken, Email: adminEmail, Token: strp("revoked-token-0000")}); err != nil {
			t.Fatal(err)
		}
		res, err = e.svc.Test(ctx, e.site)
		if err != nil {
			t.Fatal(err)
		}
		if res.OK || res.Account.Status != models.AccountInvalid || !strings.Contains(res.Account.StatusMessage, "rejected") {
			t.Fatalf("rejected token: %+v / %+v", res, res.Account)
		}
		if w := res.Account.Warnings(e.clock.Now()); len(w) == 0 || !strings.Contains(w[0], "rejected") {
			t.Errorf("warnings of an invalid account: %v", w)
		}
		if len(res.Checks) != 1 {
			t.Errorf("after a 401 the permission check ran anyway: %+v", res.Checks)
		}
	})
}

func TestConnectionTestGatewayKinds(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		ctx := context.Background()
		// OAuth client credentials and an organization key.
		if _, err := e.svc.Save(ctx, e.site, actor, models.ServiceAccountInput{Kind: models.AccountOAuthClient, ClientID: "cid", CloudID: "cloud-1",
			ClientSecret: strp("good-client-secret-5678"), OrgAdminKey: strp("good-org-key-0000")}); err != nil {
			t.Fatal(err)
		}
		res, err := e.svc.Test(ctx, e.site)
		if err != nil || !res.OK {
			t.Fatalf("oauth: %+v, %v", res, err)
		}
		if c := checkNamed(res, account.CheckOrgKey); c == nil || !c.OK || !strings.Contains(c.Message, "Organization "+e.jira.OrgID[:8]) {
			t.Errorf("org key check = %+v", c)
		}
		// A wrong secret: refused at the token endpoint, invalid.
		if _, err := e.svc.Save(ctx, e.site, actor, models.ServiceAccountInput{Kind: models.AccountOAuthClient, ClientID: "cid", CloudID: "cloud-1",
			ClientSecret: strp("wrong-client-secret-000")}); err != nil {
			t.Fatal(err)
		}
		res, err = e.svc.Test(ctx, e.site)
		if err != nil || res.OK || res.Account.Status != models.AccountInvalid || !strings.Contains(res.Checks[0].Message, "client ID and secret") {
			t.Fatalf("wrong secret: %+v, %v", res, err)
		}
		// A scoped token with an unknown cloud ID: 404, said in words.
		if _, err := e.svc.Save(ctx, e.site, actor, models.ServiceAccountInput{Kind: models.AccountScopedToken, Email: adminEmail, CloudID: "cloud-9",
			Token: strp(goodToken)}); err != nil {
			t.Fatal(err)
		}
		res, err = e.svc.Test(ctx, e.site)
		if err != nil || res.OK || !strings.Contains(res.Checks[0].Message, "cloud ID cloud-9") {
			t.Fatalf("unknown cloud ID: %+v, %v", res, err)
		}
	})
}
