package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// ServiceAccounts is the service-account behaviour of the admin API
// (SPEC section 5).
type ServiceAccounts interface {
	// Get returns the site's service account; none: not found.
	Get(ctx context.Context, siteID string) (*models.ServiceAccount, error)
	// Save validates and saves what an admin entered, with an audit event.
	Save(ctx context.Context, site *models.Site, actorAccountID string, in models.ServiceAccountInput) (*models.ServiceAccount, error)
	// Test checks the saved credentials against Atlassian.
	Test(ctx context.Context, site *models.Site) (*models.ConnectionTest, error)
}

// Profiles is the customer-record behaviour of the admin API (SPEC 3).
type Profiles interface {
	Get(ctx context.Context, siteID string) (*models.CustomerProfile, error)
	Correct(ctx context.Context, site *models.Site, actorAccountID string, changes []models.ProfileChange) (*models.CustomerProfile, error)
	SyncSite(ctx context.Context, site *models.Site) (*models.CustomerProfile, error)
	SyncConfigured() bool
}

// hintMask is how a write-only secret is shown: four bullets, then its
// last four characters when it is long enough to give them away.
const hintMask = "••••"

func maskHint(hint string, stored bool) string {
	if !stored && hint == "" {
		return ""
	}
	return hintMask + hint
}

// serviceAccountBody is the public face of a service account: never a
// secret, only hints.
type serviceAccountBody struct {
	Configured           bool       `json:"configured"`
	Kind                 string     `json:"kind"`
	Email                string     `json:"email,omitempty"`
	TokenHint            string     `json:"tokenHint,omitempty"`
	CloudID              string     `json:"cloudId,omitempty"`
	ClientID             string     `json:"clientId,omitempty"`
	ExpiresAt            *time.Time `json:"expiresAt"`
	ExpiresSoon          bool       `json:"expiresSoon"`
	OrgAdminKeyHint      string     `json:"orgAdminKeyHint,omitempty"`
	OrgID                string     `json:"orgId,omitempty"`
	OrgAdminKeyExpiresAt *time.Time `json:"orgAdminKeyExpiresAt"`
	Status               string     `json:"status"`
	StatusMessage        string     `json:"statusMessage,omitempty"`
	CheckedAt            *time.Time `json:"checkedAt"`
	UpdatedAt            *time.Time `json:"updatedAt"`
	UpdatedBy            string     `json:"updatedBy,omitempty"`
	Warnings             []string   `json:"warnings"`
}

func toServiceAccountBody(a *models.ServiceAccount, now time.Time) serviceAccountBody {
	if a == nil {
		return serviceAccountBody{Status: string(models.AccountUntested), Warnings: []string{}}
	}
	secretStored := a.Token != "" || a.ClientSecret != ""
	updated := a.UpdatedAt
	b := serviceAccountBody{
		Configured:           true,
		Kind:                 string(a.Kind),
		Email:                a.Email,
		TokenHint:            maskHint(a.TokenHint, secretStored),
		CloudID:              a.CloudID,
		ClientID:             a.ClientID,
		ExpiresAt:            a.ExpiresAt,
		ExpiresSoon:          a.ExpiresSoon(now),
		OrgAdminKeyHint:      maskHint(a.OrgAdminKeyHint, a.OrgAdminKey != ""),
		OrgID:                a.OrgID,
		OrgAdminKeyExpiresAt: a.OrgAdminKeyExpiresAt,
		Status:               string(a.Status),
		StatusMessage:        a.StatusMessage,
		CheckedAt:            a.CheckedAt,
		UpdatedAt:            &updated,
		UpdatedBy:            a.UpdatedBy,
		Warnings:             a.Warnings(now),
	}
	if b.Warnings == nil {
		b.Warnings = []string{}
	}
	return b
}

// optional is a JSON member whose absence differs from null: Set says it
// was sent, Raw holds what was sent ("null" included).
type optional struct {
	Set bool
	Raw json.RawMessage
}

func (o *optional) UnmarshalJSON(b []byte) error {
	o.Set = true
	o.Raw = append(o.Raw[:0], b...)
	return nil
}

func (o optional) null() bool { return o.Set && bytes.Equal(bytes.TrimSpace(o.Raw), []byte("null")) }

// str reads the member as a string; nil when absent or null.
func (o optional) str(field string) (*string, error) {
	if !o.Set || o.null() {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(o.Raw, &s); err != nil {
		return nil, models.FieldError(field, "%s must be text.", field)
	}
	return &s, nil
}

// date reads the member as a time: RFC 3339, or a date (YYYY-MM-DD, taken
// as the end of that day in UTC). nil when absent or null.
func (o optional) date(field string) (*time.Time, error) {
	s, err := o.str(field)
	if err != nil {
		return nil, models.FieldError(field, "%s must be a date such as 2027-01-31.", field)
	}
	if s == nil {
		return nil, nil
	}
	v := strings.TrimSpace(*s)
	if v == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return &t, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		end := t.Add(24*time.Hour - time.Second)
		return &end, nil
	}
	return nil, models.FieldError(field, "%q is not a date such as 2027-01-31.", truncateText(v, 40))
}

// serviceAccountInput is the body of PUT /api/admin/service-account.
type serviceAccountInput struct {
	Kind                 string   `json:"kind"`
	Email                string   `json:"email"`
	Token                optional `json:"token"`
	CloudID              string   `json:"cloudId"`
	ClientID             string   `json:"clientId"`
	ClientSecret         optional `json:"clientSecret"`
	ExpiresAt            optional `json:"expiresAt"`
	OrgAdminKey          optional `json:"orgAdminKey"`
	ClearOrgAdminKey     bool     `json:"clearOrgAdminKey"`
	OrgAdminKeyExpiresAt optional `json:"orgAdminKeyExpiresAt"`
	OrgID                optional `json:"orgId"`
}

func (in *serviceAccountInput) toModel() (models.ServiceAccountInput, error) {
	out := models.ServiceAccountInput{
		Kind: models.AccountKind(in.Kind), Email: in.Email, CloudID: in.CloudID, ClientID: in.ClientID,
		ExpiresAtSet: in.ExpiresAt.Set, OrgAdminKeyExpiresAtSet: in.OrgAdminKeyExpiresAt.Set,
		ClearOrgAdminKey: in.ClearOrgAdminKey || in.OrgAdminKey.null(),
	}
	var err error
	if out.Token, err = in.Token.str("token"); err != nil {
		return out, err
	}
	if out.ClientSecret, err = in.ClientSecret.str("clientSecret"); err != nil {
		return out, err
	}
	if out.OrgAdminKey, err = in.OrgAdminKey.str("orgAdminKey"); err != nil {
		return out, err
	}
	if out.OrgID, err = in.OrgID.str("orgId"); err != nil {
		return out, err
	}
	if in.OrgID.null() {
		empty := ""
		out.OrgID = &empty
	}
	if out.ClearOrgAdminKey && out.OrgAdminKey != nil {
		return out, models.FieldError("orgAdminKey", "Send either a new organization Admin API key or clearOrgAdminKey, not both.")
	}
	if out.ExpiresAt, err = in.ExpiresAt.date("expiresAt"); err != nil {
		return out, err
	}
	if out.OrgAdminKeyExpiresAt, err = in.OrgAdminKeyExpiresAt.date("orgAdminKeyExpiresAt"); err != nil {
		return out, err
	}
	return out, nil
}

func (s *server) handleAdminServiceAccountGet(c *gin.Context) {
	caller := callerOf(c)
	acc, err := s.ServiceAccounts.Get(c.Request.Context(), caller.Site.ID)
	if err != nil && !models.IsNotFound(err) {
		s.fail(c, err)
		return
	}
	body := serviceAccountGetBody{serviceAccountBody: toServiceAccountBody(acc, s.Now())}
	if s.SystemTokens != nil {
		st, err := s.SystemTokens.SystemTokenStatus(c.Request.Context(), caller.Site.ID)
		if err != nil {
			s.fail(c, err)
			return
		}
		body.SystemToken = toSystemTokenBody(st)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, body)
}

// serviceAccountGetBody is GET /api/admin/service-account's answer: the
// service account, and whether Forge's app system token, the other
// credential, is held.
type serviceAccountGetBody struct {
	serviceAccountBody
	SystemToken *systemTokenBody `json:"systemToken,omitempty"`
}

func (s *server) handleAdminServiceAccountPut(c *gin.Context) {
	caller := callerOf(c)
	var body serviceAccountInput
	if err := decodeJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	in, err := body.toModel()
	if err != nil {
		s.fail(c, err)
		return
	}
	acc, err := s.ServiceAccounts.Save(c.Request.Context(), caller.Site, caller.AccountID, in)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, toServiceAccountBody(acc, s.Now()))
}

// connectionTestBody is the answer of POST /api/admin/service-account/test.
type connectionTestBody struct {
	OK             bool                  `json:"ok"`
	Checks         []connectionCheckBody `json:"checks"`
	ServiceAccount *serviceAccountBody   `json:"serviceAccount,omitempty"`
}

type connectionCheckBody struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

func (s *server) handleAdminServiceAccountTest(c *gin.Context) {
	caller := callerOf(c)
	res, err := s.ServiceAccounts.Test(c.Request.Context(), caller.Site)
	if err != nil {
		s.fail(c, err)
		return
	}
	body := connectionTestBody{OK: res.OK, Checks: make([]connectionCheckBody, 0, len(res.Checks))}
	for _, ch := range res.Checks {
		body.Checks = append(body.Checks, connectionCheckBody{Name: ch.Name, OK: ch.OK, Message: ch.Message})
	}
	if res.Account != nil {
		acc := toServiceAccountBody(res.Account, s.Now())
		body.ServiceAccount = &acc
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, body)
}

// profileBody is the customer record as GET /api/admin/profile answers it:
// the five effective values, where each came from and when, the values
// the last sync found (what clearing a correction brings back), and how
// the last sync went.
type profileBody struct {
	Name           string                `json:"name"`
	Email          string                `json:"email"`
	Location       string                `json:"location"`
	Company        string                `json:"company"`
	Purchaser      string                `json:"purchaser"`
	Sources        map[string]string     `json:"sources"`
	FieldUpdatedAt map[string]*time.Time `json:"fieldUpdatedAt"`
	Synced         map[string]string     `json:"synced"`
	UpdatedAt      *time.Time            `json:"updatedAt"`
	LastSyncAt     *time.Time            `json:"lastSyncAt"`
	SyncStatus     string                `json:"syncStatus,omitempty"`
	SyncConfigured bool                  `json:"syncConfigured"`
}

func (s *server) toProfileBody(p *models.CustomerProfile) profileBody {
	b := profileBody{
		Sources:        map[string]string{},
		FieldUpdatedAt: map[string]*time.Time{},
		Synced:         map[string]string{},
		LastSyncAt:     p.LastSyncAt,
		SyncStatus:     p.SyncStatus,
		SyncConfigured: s.Profiles.SyncConfigured(),
	}
	if !p.UpdatedAt.IsZero() {
		t := p.UpdatedAt
		b.UpdatedAt = &t
	}
	for _, f := range models.ProfileFields() {
		v := p.Field(f)
		switch f {
		case models.ProfileName:
			b.Name = v.Value()
		case models.ProfileEmail:
			b.Email = v.Value()
		case models.ProfileLocation:
			b.Location = v.Value()
		case models.ProfileCompany:
			b.Company = v.Value()
		case models.ProfilePurchaser:
			b.Purchaser = v.Value()
		}
		if src := v.Source(); src != "" {
			b.Sources[string(f)] = string(src)
			b.FieldUpdatedAt[string(f)] = v.UpdatedAt()
		}
		if v.Synced != "" {
			b.Synced[string(f)] = v.Synced
		}
	}
	return b
}

func (s *server) handleAdminProfileGet(c *gin.Context) {
	p, err := s.Profiles.Get(c.Request.Context(), callerOf(c).Site.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, s.toProfileBody(p))
}

// handleAdminProfilePut is a rectification: each of name, email, location,
// company, purchaser sent as text corrects that field; null clears the
// correction.
func (s *server) handleAdminProfilePut(c *gin.Context) {
	caller := callerOf(c)
	var body map[string]json.RawMessage
	if err := decodeJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	if body == nil {
		s.fail(c, &models.Error{Code: models.CodeInvalid, Message: "The body must be a JSON object such as {\"name\": \"Jane Doe\"}."})
		return
	}
	var changes []models.ProfileChange
	for _, f := range models.ProfileFields() {
		raw, ok := body[string(f)]
		if !ok {
			continue
		}
		delete(body, string(f))
		ch := models.ProfileChange{Field: f}
		if !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				s.fail(c, models.FieldError(string(f), "%s must be text, or null to clear the correction.", f))
				return
			}
			ch.Value = &v
		}
		changes = append(changes, ch)
	}
	for k := range body {
		s.fail(c, models.FieldError(truncateText(k, 40), "%q is not a field of the customer record; use name, email, location, company or purchaser.", truncateText(k, 40)))
		return
	}
	p, err := s.Profiles.Correct(c.Request.Context(), caller.Site, caller.AccountID, changes)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, s.toProfileBody(p))
}

func (s *server) handleAdminProfileSync(c *gin.Context) {
	p, err := s.Profiles.SyncSite(c.Request.Context(), callerOf(c).Site)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, s.toProfileBody(p))
}

func truncateText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
