// Package fakeatlassian is the one stateful fake of Atlassian that unit,
// end-to-end, browser and benchmark tests share (and, later, the demo
// subcommand): Jira and Confluence Cloud sites with real state, the API
// gateway ({api}/ex/jira/{cloudId}), the OAuth 2.0 token endpoint and the
// organization Admin API, each answering as Atlassian documents it,
// including its errors; and, on a listener of its own, the Marketplace
// vendor reporting API (marketplace.go).
//
// Shape:
//   - A Fake owns one listener for api.atlassian.com and auth.atlassian.com
//     together (APIURL) and one listener per site (Site.BaseURL), so that a
//     site is keyed by its own origin exactly as idbridge keys it.
//   - A Site holds accounts (Atlassian accounts and JSM customers), groups,
//     memberships and the credentials it accepts, under one mutex. Each area
//     of Atlassian lives in its own file and registers its routes on the
//     site's mux (see routes in site.go): jira.go (users, groups,
//     memberships, the admin check), customers.go (JSM customers),
//     confluence.go (Confluence's group endpoints), orgadmin.go (the
//     organization Admin API). Another area adds a file, a routes method and
//     one line in Site.routes; its state goes in a field of Site guarded by
//     Site.mu (use Site.Do).
//   - Every request goes through one pipeline (pipeline.go): injected faults
//     (429 with or without Retry-After, 5xx, 401, 403, slow answers, no
//     answer at all, a dropped connection after the change was applied), a
//     per-site request rate, authentication exactly as Atlassian checks it
//     (an app JWT only with an installation's current secret and the
//     request's own qsh; refusals are listed), then the route.
//     The pipeline counts requests by route and answer, logs every change a
//     route applied, notices a request repeated before its Retry-After ran
//     out, and computes the minimum number of requests the site's changes
//     needed (record.go).
//
// It imports nothing from idbridge, so what it says about Atlassian is never
// derived from the code under test. Only tests, bench/ and the demo may
// import it (deps_test.go); serve's code path never does.
package fakeatlassian
