package audit

import (
	"context"
	"slices"
	"time"

	"idbridge/app/atlassian"
	"idbridge/models"
)

// MaxNames bounds one lookup of names.
const MaxNames = 50

// Names looks up the display names of account IDs live, as the app (app
// system token) or as the site's service account (atlassian.AccountReader),
// for the admin page: the audit log stores IDs only, never names. An
// account that cannot be read is left out.
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
	r, err := l.namesReader(ctx, site)
	if err != nil || r == nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, id := range ids {
		u, err := r.User(ctx, id)
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
// app system token Forge handed idbridge, while the site (Jira or
// Confluence, with a cloudId) has a current one, because reading users
// needs no person's credentials; otherwise, or once Atlassian refuses the
// token, the site's service account.
const (
	NamesCredentialSystemToken    = "app system token"
	NamesCredentialServiceAccount = "service account"
)

// namesReader reads users for site: as the app with its system token
// while it has a current one, else as the service account; nil when
// neither is there.
func (l *Log) namesReader(ctx context.Context, site *models.Site) (*atlassian.AccountReader, error) {
	view := l.store.View(ctx)
	var token string
	if site.CloudID != "" {
		tok, err := view.FindSystemToken(site.ID, l.now())
		switch {
		case err == nil:
			token = tok.Token
		case !models.IsNotFound(err):
			return nil, err
		}
	}
	acc, err := view.FindServiceAccount(site.ID)
	switch {
	case models.IsNotFound(err):
		acc = nil
	case err != nil:
		return nil, err
	}
	return l.accounts.AccountReader(site, acc, token), nil
}

// WithNames lets the log look names up through the service accounts.
func (l *Log) WithNames(accounts *atlassian.ServiceAccounts) *Log {
	l.accounts = accounts
	return l
}
