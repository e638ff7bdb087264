package atlassian

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"idbridge/models"
)

// Product types, as a site's installed payload names them.
const (
	ProductJira       = "jira"
	ProductConfluence = "confluence"
)

// IsSiteAdmin asks the site whether accountID administers it (SPEC 2.5):
// Jira's ADMINISTER global permission, or Confluence's administer operation
// on the application. productType "" means the site's own. An account the
// site does not know (404) is no admin. The answer is not cached here.
func (c *SiteClient) IsSiteAdmin(ctx context.Context, productType, accountID string) (bool, error) {
	if accountID == "" {
		return false, models.FieldError("accountId", "an account ID is required")
	}
	if productType == "" {
		productType = c.productType
	}
	var (
		admin bool
		err   error
	)
	switch strings.ToLower(productType) {
	case ProductJira:
		admin, err = c.isJiraAdmin(ctx, accountID)
	case ProductConfluence:
		admin, err = c.isConfluenceAdmin(ctx, accountID)
	default:
		return false, models.Errorf(models.CodeInvalid, "unknown product type %q", productType)
	}
	if models.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check site admin: %w", err)
	}
	return admin, nil
}

// isJiraAdmin uses the bulk permission check, which answers with the subset
// of the asked global permissions the account holds. It is a read, so the
// POST is marked idempotent and may be retried like a GET.
func (c *SiteClient) isJiraAdmin(ctx context.Context, accountID string) (bool, error) {
	body := struct {
		GlobalPermissions []string `json:"globalPermissions"`
		AccountID         string   `json:"accountId"`
	}{[]string{"ADMINISTER"}, accountID}
	var out struct {
		GlobalPermissions []string `json:"globalPermissions"`
	}
	if err := c.Do(WithIdempotent(ctx), http.MethodPost, "/rest/api/3/permissions/check", body, &out); err != nil {
		return false, err
	}
	return slices.Contains(out.GlobalPermissions, "ADMINISTER"), nil
}

// isConfluenceAdmin reads the user with its operations expanded; an
// administrator has {"operation":"administer","targetType":"application"}.
func (c *SiteClient) isConfluenceAdmin(ctx context.Context, accountID string) (bool, error) {
	query := url.Values{"accountId": {accountID}, "expand": {"operations"}}
	var out struct {
		Operations []struct {
			Operation  string `json:"operation"`
			TargetType string `json:"targetType"`
		} `json:"operations"`
	}
	if err := c.Do(ctx, http.MethodGet, "/rest/api/user?"+query.Encode(), nil, &out); err != nil {
		return false, err
	}
	for _, op := range out.Operations {
		if op.Operation == "administer" && op.TargetType == "application" {
			return true, nil
		}
	}
	return false, nil
}
