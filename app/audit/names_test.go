package audit_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"idbridge/app/atlassian"
	"idbridge/app/audit"
	"idbridge/app/fakeatlassian"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

const (
	namesSvcEmail = "svc@example.com"
	namesSvcToken = "svc-api-token-0123456789"
)

// namesEnv is a site of the shared fake Atlassian installed in a real
// store, with the audit log that looks its names up.
type namesEnv struct {
	t     *testing.T
	clock *storetest.Clock
	st    *store.Store
	fs    *fakeatlassian.Site
	site  *models.Site
	log   *audit.Log
	ada   string
}

func newNamesEnv(t *testing.T, b storetest.Backend, product string, serviceAccount bool) *namesEnv {
	t.Helper()
	e := &namesEnv{t: t, clock: storetest.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))}
	e.st = b.Open(t, storetest.WithNow(e.clock.Now))
	fake := fakeatlassian.New(fakeatlassian.Options{Now: e.clock.Now, Seed: 7})
	t.Cleanup(fake.Close)
	e.fs = fake.NewSite(fakeatlassian.SiteOptions{Product: product})
	e.fs.AddServiceAccount(fakeatlassian.ServiceAccount{Email: namesSvcEmail, APIToken: namesSvcToken})
	e.ada = e.fs.AddAccount(fakeatlassian.Account{Email: "ada@example.com", DisplayName: "Ada Lovelace"})
	err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
		site, err := tx.SaveInstall(&models.Site{
			SiteFacts: models.SiteFacts{ClientKey: "ck-names-" + product, BaseURL: e.fs.BaseURL(), ProductType: product,
				CloudID: e.fs.CloudID, InstallationID: "ari:cloud:ecosystem::installation/names-" + product},
			SharedSecret: []byte("shared-secret-0123456789abcdef"),
		})
		if err != nil {
			return err
		}
		e.site = site
		if serviceAccount {
			_, err = tx.SaveServiceAccount(site.ID, &models.ServiceAccount{Kind: models.AccountAPIToken, Email: namesSvcEmail, Token: namesSvcToken})
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	api, _ := url.Parse(fake.APIURL())
	clients := atlassian.New(atlassian.Options{Now: e.clock.Now})
	e.log = audit.NewLog(e.st, e.clock.Now).WithNames(atlassian.NewServiceAccounts(clients, api, api))
	return e
}

// keepToken stores an app system token for the site, as the Forge routes
// do when Forge hands one over.
func (e *namesEnv) keepToken(token string, ttl time.Duration) {
	e.t.Helper()
	err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
		return tx.SaveSystemToken(e.site.ID, e.site.InstallationID, token, e.clock.Now().Add(ttl))
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *namesEnv) names() map[string]string {
	e.t.Helper()
	got, err := e.log.Names(context.Background(), e.site, []string{e.ada, "557058:nobody"})
	if err != nil {
		e.t.Fatalf("Names: %v", err)
	}
	return got
}

// serviceAccountReads counts the user reads made as the service account:
// Jira's REST API at the site's origin, answered (not refused).
func (e *namesEnv) serviceAccountReads() int {
	const route = "GET /rest/api/3/user"
	return e.fs.RequestCount(route, 200) + e.fs.RequestCount(route, 404) - e.jiraAppReads()
}

func (e *namesEnv) jiraAppReads() int {
	if e.fs.Product == "jira" {
		return e.fs.AppCalls()
	}
	return 0
}

// TestNamesAsTheApp: on Jira and on Confluence sites the audit log's
// account names are read as the app while the site holds a current app
// system token with the product's user scope (Confluence through its own
// GET /wiki/rest/api/user), and as the service account when the token is
// missing the scope (a manifest from before the scope), revoked or
// expired; without a service account, a refused token means no names,
// never an error.
func TestNamesAsTheApp(t *testing.T) {
	t.Parallel()
	scopes := map[string][]string{
		"jira":       {"read:jira-user"},
		"confluence": {"read:confluence-groups", "read:confluence-user"},
	}
	for _, product := range []string{"jira", "confluence"} {
		t.Run(product, func(t *testing.T) {
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				e := newNamesEnv(t, b, product, true)
				want := "Ada Lovelace"

				// No token: the service account.
				if got := e.names(); got[e.ada] != want || len(got) != 1 {
					t.Fatalf("names without a token: %v", got)
				}
				if e.fs.AppCalls() != 0 || e.serviceAccountReads() != 2 {
					t.Fatalf("without a token: %d app reads, %d service account reads: %+v", e.fs.AppCalls(), e.serviceAccountReads(), e.fs.Requests())
				}

				// A current token with the scope: only the app reads.
				e.keepToken(e.fs.IssueSystemToken(time.Hour, scopes[product]...), time.Hour)
				if got := e.names(); got[e.ada] != want || len(got) != 1 {
					t.Fatalf("names with the token: %v", got)
				}
				if e.fs.AppCalls() != 2 || e.serviceAccountReads() != 2 {
					t.Fatalf("with the token: %d app reads, %d service account reads: %+v", e.fs.AppCalls(), e.serviceAccountReads(), e.fs.Requests())
				}
				if product == "confluence" && e.fs.RequestCount("GET /wiki/rest/api/user", 200) != 1 {
					t.Errorf("the app did not read through Confluence's user API: %+v", e.fs.Requests())
				}

				// Revoked: one refused call, then the service account.
				e.fs.RevokeSystemTokens()
				if got := e.names(); got[e.ada] != want || len(got) != 1 {
					t.Fatalf("names with a revoked token: %v", got)
				}
				if e.fs.AppCalls() != 2 || e.serviceAccountReads() != 4 || e.fs.RequestCount("", 401) != 1 {
					t.Fatalf("revoked: %d app reads, %d service account reads: %+v", e.fs.AppCalls(), e.serviceAccountReads(), e.fs.Requests())
				}

				// A token without the user scope (the Connect scope and
				// the other product's scope only): refused, the service
				// account answers.
				e.keepToken(e.fs.IssueSystemToken(2*time.Hour, "read:app-system-token", "read:confluence-groups"), 2*time.Hour)
				if product == "jira" {
					e.keepToken(e.fs.IssueSystemToken(3*time.Hour, "read:app-system-token", "read:confluence-user"), 3*time.Hour)
				}
				if got := e.names(); got[e.ada] != want || len(got) != 1 {
					t.Fatalf("names with a token lacking the scope: %v", got)
				}
				if e.fs.AppCalls() != 2 || e.serviceAccountReads() != 6 || e.fs.RequestCount("", 401) != 2 {
					t.Fatalf("without the scope: %d app reads, %d service account reads: %+v", e.fs.AppCalls(), e.serviceAccountReads(), e.fs.Requests())
				}

				// Expired: not even tried.
				e.clock.Advance(4 * time.Hour)
				if got := e.names(); got[e.ada] != want {
					t.Fatalf("names after the token expired: %v", got)
				}
				if e.fs.RequestCount("", 401) != 2 {
					t.Errorf("an expired token was sent: %+v", e.fs.Requests())
				}
			})
		})
	}
}

// TestNamesWithoutServiceAccount: the app alone reads names; once its
// token is refused there are none, and no error.
func TestNamesWithoutServiceAccount(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		e := newNamesEnv(t, b, "confluence", false)
		if got := e.names(); len(got) != 0 {
			t.Fatalf("names with no credential: %v", got)
		}
		e.keepToken(e.fs.IssueSystemToken(time.Hour, "read:confluence-user"), time.Hour)
		if got := e.names(); got[e.ada] != "Ada Lovelace" || len(got) != 1 {
			t.Fatalf("names as the app alone: %v", got)
		}
		e.fs.RevokeSystemTokens()
		if got := e.names(); len(got) != 0 {
			t.Fatalf("names with a revoked token and no service account: %v", got)
		}
		if e.fs.RequestCount("GET /rest/api/3/user", -2) != 0 {
			t.Errorf("a service account read without a service account: %+v", e.fs.Requests())
		}
	})
}
