package sync_test

import (
	"context"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// keepSystemToken stores an app system token for the site, as the Forge
// routes do when Forge hands one over.
func (e *env) keepSystemToken(token string, exp time.Time) {
	e.t.Helper()
	err := e.st.InTx(context.Background(), func(tx *store.Tx) error {
		return tx.SaveSystemToken(e.site.ID, "ari:cloud:ecosystem::installation/sync-test", token, exp)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// TestReadsGoAsTheAppWithItsSystemToken: while the site holds a current
// app system token, the sync's reads of users and groups go as the app
// (the fake site counts them), its writes as the service account (the
// app's bot administers nothing: the fake would answer 403); a token
// Atlassian refuses (revoked: 401) sends the reads back to the service
// account without pausing or failing anything; an expired token is not
// used. On a Confluence site the app reads Confluence's groups.
func TestReadsGoAsTheAppWithItsSystemToken(t *testing.T) {
	t.Parallel()
	for _, product := range []string{"jira", "confluence"} {
		t.Run(product, func(t *testing.T) {
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				e := newEnv(t, b, withProduct(product))
				exp := e.now().Add(time.Hour)
				e.keepSystemToken(e.fs.IssueSystemToken(time.Hour), exp)
				e.start()
				ada := e.createUser("ada@example.com", true)
				bob := e.createUser("bob@example.com", true)
				e.createGroup("Engineering", ada, bob)
				e.drain()
				e.checkState(models.DeactivateRemoveGroups)
				asApp := e.fs.AppCalls()
				if asApp == 0 {
					t.Fatalf("no read went as the app: %+v", e.fs.Requests())
				}
				if n := e.fs.RequestCount("", 403); n != 0 {
					t.Errorf("%d requests refused 403 (a write as the app?): %+v", n, e.fs.Requests())
				}

				// Revoked: Atlassian refuses the token; the reads go as the
				// service account, nothing pauses or fails.
				e.fs.RevokeSystemTokens()
				carol := e.createUser("carol@example.com", true)
				e.createGroup("Operations", carol)
				e.drain()
				e.checkState(models.DeactivateRemoveGroups)
				if n := e.fs.RequestCount("", 401); n == 0 {
					t.Errorf("the revoked token was never tried: %+v", e.fs.Requests())
				}
				if st := e.status(); st.Paused || len(st.FailedItems) != 0 {
					t.Errorf("status after the token was refused: paused %v, failed %+v", st.Paused, st.FailedItems)
				}
				if e.fs.AppCalls() != asApp {
					t.Errorf("the site accepted a revoked token")
				}

				// A newer token is used again; once expired, it is not.
				// The worker reads the token when it opens a site's gate and
				// keeps the gate (with the provisioner that Atlassian's
				// refusal sent to the service account) for up to 10 s of its
				// clock; a gate of the phase above may still be looking for
				// work and would take the next items. Past those 10 s every
				// gate opens again and reads the new token.
				e.keepSystemToken(e.fs.IssueSystemToken(2*time.Hour), e.now().Add(2*time.Hour))
				e.clock.Advance(11 * time.Second)
				dan := e.createUser("dan@example.com", true)
				e.createGroup("Support", dan)
				e.drain()
				after := e.fs.AppCalls()
				if after == asApp {
					t.Errorf("the new token was not used")
				}
				e.clock.Advance(2 * time.Hour)
				e.setActive(dan, false)
				e.createGroup("Sales", e.createUser("eve@example.com", true))
				e.drain()
				e.checkState(models.DeactivateRemoveGroups)
				if e.fs.AppCalls() != after {
					t.Errorf("an expired token was used")
				}
				if st := e.status(); st.Paused || len(st.FailedItems) != 0 {
					t.Errorf("final status: paused %v, failed %+v", st.Paused, st.FailedItems)
				}
			})
		})
	}
}
