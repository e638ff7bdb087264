// Package provisioning is idbridge's SCIM 2.0 service behind
// /scim/v2/{siteID}, on the protocol of app/scim and the database of
// app/store: it authenticates a site's identity provider by its bearer
// token, admits each request under its site's share of the server,
// compiles filters to SQL, answers lists and reads, and applies changes in
// short versioned transactions together with the outbox items the sync
// worker applies to the Atlassian site; a feature that corrects users on
// the site's behalf writes several users, and its own rows, in one such
// transaction (PatchUsers). It also owns the provisioning
// settings and the token that the admin page manages.
package provisioning
