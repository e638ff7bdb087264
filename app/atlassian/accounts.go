package atlassian

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"idbridge/models"
)

// AccountReader reads the accounts of one site for display (the audit
// log's account names): as the app, with the app system token Forge handed
// idbridge, through the site's product REST API (Jira's
// GET /rest/api/3/user with read:jira-user, Confluence's
// GET /wiki/rest/api/user with read:confluence-user), else as the site's
// service account. Once Atlassian refuses the token (401: revoked, expired
// or without the scope; 403: the app's bot may not read), the rest of the
// reads go as the service account, as the sync's reads do
// (Provisioner.read). It is for one request and not safe for concurrent
// use.
type AccountReader struct {
	app        *ServiceClient // nil without a token or cloudId
	svc        *ServiceClient // nil without a usable service account
	confluence bool
	appRefused bool
}

// AccountReader returns the reader of site's accounts with the app system
// token (may be empty) and the service account acc (may be nil); nil when
// neither can be used.
func (s *ServiceAccounts) AccountReader(site *models.Site, acc *models.ServiceAccount, systemToken string) *AccountReader {
	r := &AccountReader{confluence: strings.EqualFold(site.ProductType, ProductConfluence)}
	product := ProductJira
	if r.confluence {
		product = ProductConfluence
	}
	if systemToken != "" {
		if c, err := s.appClient(site, systemToken, product); err == nil {
			r.app = c
		}
	}
	if acc != nil {
		if c, err := s.Client(site, acc); err == nil {
			r.svc = c
		}
	}
	if r.app == nil && r.svc == nil {
		return nil
	}
	return r
}

// AsApp says whether the next read goes as the app.
func (r *AccountReader) AsApp() bool { return r.app != nil && !r.appRefused }

// User reads an account; unknown: not found.
func (r *AccountReader) User(ctx context.Context, accountID string) (*User, error) {
	if r.AsApp() {
		path := "/rest/api/3/user?accountId=" + url.QueryEscape(accountID)
		if r.confluence {
			path = "/wiki/rest/api/user?accountId=" + url.QueryEscape(accountID)
		}
		var u User
		err := r.app.Do(ctx, http.MethodGet, path, nil, &u)
		switch statusOf(err) {
		case http.StatusUnauthorized, http.StatusForbidden:
			r.appRefused = true
		default:
			if err != nil {
				return nil, err
			}
			return &u, nil
		}
	}
	if r.svc == nil {
		return nil, &models.Error{Code: models.CodePrecondition, Message: "Atlassian refused the app system token and no service account is configured"}
	}
	return r.svc.User(ctx, accountID)
}
