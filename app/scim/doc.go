// Package scim owns the SCIM 2.0 protocol of idbridge's provisioning
// server, free of database and HTTP framework: the User, EnterpriseUser and
// Group schemas, filter parsing and in-memory matching, PATCH paths and the
// PATCH engine, attribute projection, the normalisation of incoming
// resources, the rendering of stored ones, and its errors (models.Errors
// carrying their scimType). It accepts the request shapes Okta and
// Microsoft Entra ID really send (shared/SCIM.md), not only the RFC
// 7643/7644 ones. The store-backed service is app/provisioning.
package scim
