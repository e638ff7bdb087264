package audit

import (
	"context"
	"slices"
	"strings"
	"time"

	"idbridge/app/atlassian"
	"idbridge/models"
)

// MaxNames bounds one lookup of names.
const MaxNames = 50

// Names looks up the display names of account IDs live, as the app (app
// system token) or through the site's service account (namesClient), for
// the admin page: the audit log stores IDs
// only, never names. An account that cannot be read is left out.
func (l *Log) Names(ctx context.Context, site *models.Site, ids []string) (map[string]string, error) {
	out := map[string]string{}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) > MaxNames {
		return nil, models.FieldError("accountId", "Ask for at most %d names at a time.", MaxNames)
	}
	for _, id := range ids {
		if !accountIDPattern.MatchString(id) {
			return nil, models.FieldError("accountId", "An account ID is letters, digits, colons, dashes and underscores (at most 128).")
		}
	}
	if l.accounts == nil || len(ids) == 0 {
		return out, nil
	}
	c, err := l.namesClient(ctx, site)
	if err != nil || c == nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, id := range ids {
		u, err := c.User(ctx, id)
		if err != nil {
			if models.ErrorCode(err) == models.CodeNotFound {
				continue
			}
			return out, nil // a partial answer: the page shows IDs for the rest
		}
		if u.DisplayName != "" {
			out[id] = u.DisplayName
		}
	}
	return out, nil
}

// NamesCredential says which credential looks names up for a site: the
// app system token Forge handed idbridge, while the site (a Jira site with
// a cloudId) has a current one, because reading users needs no person's
// credentials; otherwise the site's service account.
const (
	NamesCredentialSystemToken    = "app system token"
	NamesCredentialServiceAccount = "service account"
)

// namesClient is the client that reads users for site: as the app with
// its system token when it has a current one, else as the service account;
// nil when neither is there.
func (l *Log) namesClient(ctx context.Context, site *models.Site) (*atlassian.ServiceClient, error) {
	if site.CloudID != "" && !strings.EqualFold(site.ProductType, atlassian.ProductConfluence) {
		tok, err := l.store.View(ctx).FindSystemToken(site.ID, l.now())
		switch {
		case err == nil:
			if c, err := l.accounts.AppClient(site, tok.Token); err == nil {
				return c, nil
			}
		case !models.IsNotFound(err):
			return nil, err
		}
	}
	acc, err := l.store.View(ctx).FindServiceAccount(site.ID)
	if models.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := l.accounts.Client(site, acc)
	if err != nil {
		return nil, nil
	}
	return c, nil
}

// WithNames lets the log look names up through the service accounts.
func (l *Log) WithNames(accounts *atlassian.ServiceAccounts) *Log {
	l.accounts = accounts
	return l
}
