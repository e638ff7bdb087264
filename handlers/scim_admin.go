package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// Provisioning is the user-provisioning behaviour of the admin API (SPEC
// sections 4 and 6): settings, the SCIM token, and the directory's size.
type Provisioning interface {
	Provisioning(ctx context.Context, siteID string) (*models.Provisioning, error)
	DirectoryCounts(ctx context.Context, siteID string) (users, groups int, err error)
	UpdateProvisioning(ctx context.Context, caller *models.Caller, upd models.ProvisioningUpdate) (*models.Provisioning, error)
	// RotateToken makes a new token, revoking the previous one, and returns
	// it: the only time it is shown.
	RotateToken(ctx context.Context, caller *models.Caller) (string, error)
	// BaseURL is the site's SCIM base URL.
	BaseURL(siteID string) string
}

// choiceBody is one option the admin page offers, in words.
type choiceBody struct {
	Value       string `json:"value"`
	Label       string `json:"label"`
	Description string `json:"description"`
}

// deactivationChoices say what each deactivation mode does in the site.
func deactivationChoices() []choiceBody {
	return []choiceBody{
		{string(models.DeactivateRemoveGroups), "Remove from provisioned groups",
			"The user loses the groups idbridge provisioned, and with them the access those groups grant. The Atlassian account stays; reactivating the user restores the memberships. Needs only the service account."},
		{string(models.DeactivateRemoveFromSite), "Remove from the site",
			"The user is removed from this site. Reactivating the user adds them back with the product access chosen below and restores their group memberships."},
		{string(models.DeactivateSuspend), "Suspend the managed account",
			"The user's managed Atlassian account is suspended through the organization Admin API key, everywhere in the organization; reactivating restores it. Needs an organization admin API key on the service account."},
	}
}

func provisionAsChoices() []choiceBody {
	return []choiceBody{
		{string(models.ProvisionAccount), "Atlassian accounts with product access",
			"A new user gets an Atlassian account (or the existing one, found by email) with the product access below. Creating accounts may need an organization admin."},
		{string(models.ProvisionCustomer), "Jira Service Management customers",
			"A new user becomes a help-center customer of this site: no product licence is used."},
	}
}

// provisioningBody is what the admin page shows about provisioning. The
// token itself is never in it.
type provisioningBody struct {
	Enabled             bool         `json:"enabled"`
	BaseURL             string       `json:"baseUrl"`
	TokenCreatedAt      *time.Time   `json:"tokenCreatedAt"`
	Deactivation        string       `json:"deactivation"`
	DeactivationOptions []choiceBody `json:"deactivationOptions"`
	ProvisionAs         string       `json:"provisionAs"`
	ProvisionAsOptions  []choiceBody `json:"provisionAsOptions"`
	Products            []string     `json:"products"`
	AvailableProducts   []string     `json:"availableProducts"`
	DeletionThreshold   int          `json:"deletionThreshold"`
	Directory           struct {
		Users  int `json:"users"`
		Groups int `json:"groups"`
	} `json:"directory"`
	UpdatedAt *time.Time `json:"updatedAt"`
}

func (s *server) provisioningBody(c *gin.Context, p *models.Provisioning) (provisioningBody, error) {
	b := provisioningBody{
		Enabled:             p.Enabled,
		BaseURL:             s.Provisioning.BaseURL(p.SiteID),
		TokenCreatedAt:      p.TokenCreatedAt,
		Deactivation:        string(p.Deactivation),
		DeactivationOptions: deactivationChoices(),
		ProvisionAs:         string(p.ProvisionAs),
		ProvisionAsOptions:  provisionAsChoices(),
		Products:            p.Products,
		AvailableProducts:   models.ProvisioningProducts(),
		DeletionThreshold:   p.DeletionThreshold,
	}
	if b.Products == nil {
		b.Products = []string{}
	}
	if !p.UpdatedAt.IsZero() {
		t := p.UpdatedAt
		b.UpdatedAt = &t
	}
	users, groups, err := s.Provisioning.DirectoryCounts(c.Request.Context(), p.SiteID)
	if err != nil {
		return b, err
	}
	b.Directory.Users, b.Directory.Groups = users, groups
	return b, nil
}

// writeProvisioning answers GET and PUT /api/admin/provisioning: 200 with p
// as the admin page shows it, not to be cached.
func (s *server) writeProvisioning(c *gin.Context, p *models.Provisioning) {
	body, err := s.provisioningBody(c, p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, body)
}

func (s *server) handleAdminProvisioningGet(c *gin.Context) {
	p, err := s.Provisioning.Provisioning(c.Request.Context(), callerOf(c).Site.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeProvisioning(c, p)
}

// provisioningInput is PUT /api/admin/provisioning: every member optional.
type provisioningInput struct {
	Enabled      optional `json:"enabled"`
	Deactivation optional `json:"deactivation"`
	ProvisionAs  optional `json:"provisionAs"`
	Products     optional `json:"products"`
	// DeletionThreshold is the accidental-deletion brake's percentage.
	DeletionThreshold optional `json:"deletionThreshold"`
}

func (in provisioningInput) toModel() (models.ProvisioningUpdate, error) {
	var upd models.ProvisioningUpdate
	if in.Enabled.Set && !in.Enabled.null() {
		var b bool
		if err := json.Unmarshal(in.Enabled.Raw, &b); err != nil {
			return upd, models.FieldError("enabled", "enabled must be true or false.")
		}
		upd.Enabled = &b
	}
	d, err := in.Deactivation.str("deactivation")
	if err != nil {
		return upd, err
	}
	if d != nil {
		m := models.DeactivationMode(*d)
		upd.Deactivation = &m
	}
	pa, err := in.ProvisionAs.str("provisionAs")
	if err != nil {
		return upd, err
	}
	if pa != nil {
		v := models.ProvisionAs(*pa)
		upd.ProvisionAs = &v
	}
	if in.Products.Set {
		products := []string{}
		if !in.Products.null() {
			if err := json.Unmarshal(in.Products.Raw, &products); err != nil {
				return upd, models.FieldError("products", "products must be a list of product keys.")
			}
		}
		upd.Products = &products
	}
	if in.DeletionThreshold.Set && !in.DeletionThreshold.null() {
		var n int
		if err := json.Unmarshal(in.DeletionThreshold.Raw, &n); err != nil {
			return upd, models.FieldError("deletionThreshold", "deletionThreshold must be a whole percentage from 0 (no brake) to 100.")
		}
		upd.DeletionThreshold = &n
	}
	return upd, nil
}

func (s *server) handleAdminProvisioningPut(c *gin.Context) {
	var in provisioningInput
	if err := decodeJSON(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	upd, err := in.toModel()
	if err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.Provisioning.UpdateProvisioning(c.Request.Context(), callerOf(c), upd)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeProvisioning(c, p)
}

// tokenBody answers POST /api/admin/provisioning/token: the token, shown
// once, and where the identity provider sends it.
type tokenBody struct {
	Token   string `json:"token"`
	BaseURL string `json:"baseUrl"`
}

func (s *server) handleAdminProvisioningToken(c *gin.Context) {
	caller := callerOf(c)
	token, err := s.Provisioning.RotateToken(c.Request.Context(), caller)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, tokenBody{Token: token, BaseURL: s.Provisioning.BaseURL(caller.Site.ID)})
}
