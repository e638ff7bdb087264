package handlers

import (
	"context"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// SSO is customer SSO (SPEC 7): the admin API's settings and identity
// providers, and the portal's sign-in and sessions.
type SSO interface {
	Settings(ctx context.Context, siteID string) (*models.SSOSettings, error)
	SaveSettings(ctx context.Context, site *models.Site, actor string, in models.SSOSettingsInput) (*models.SSOSettings, error)
	IdentityProviders(ctx context.Context, siteID string) ([]*models.IdentityProvider, error)
	IdentityProvider(ctx context.Context, siteID, id string) (*models.IdentityProvider, error)
	CreateIdentityProvider(ctx context.Context, site *models.Site, actor string, in models.IdentityProviderInput) (*models.IdentityProvider, error)
	UpdateIdentityProvider(ctx context.Context, site *models.Site, actor, id string, in models.IdentityProviderInput) (*models.IdentityProvider, error)
	DeleteIdentityProvider(ctx context.Context, site *models.Site, actor, id string) error
	PortalURL(siteID string) string
	TestSignInURL(site *models.Site, idpID string) string
	RedirectURI(siteID string) string
	SP(siteID string) models.SPFacts

	BeginLogin(ctx context.Context, req models.LoginRequest) (*models.LoginStart, error)
	FinishOIDC(ctx context.Context, cb models.LoginCallback) (*models.LoginResult, error)
	FinishSAML(ctx context.Context, cb models.LoginCallback) (*models.LoginResult, error)
	Session(ctx context.Context, siteID, token string) (*models.PortalSession, error)
	Logout(ctx context.Context, siteID, token, ip, userAgent string) error
	SPMetadata(ctx context.Context, siteID string) ([]byte, error)
}

// AuditLog is the admin API's reading of the audit log.
type AuditLog interface {
	Page(ctx context.Context, siteID string, q models.AuditQuery) (*models.AuditPage, error)
	Stream(ctx context.Context, siteID string, q models.AuditQuery, fn func(models.AuditEvent) error) error
	Stats(ctx context.Context, siteID string, days int) ([]models.AuditDay, error)
	// Names looks display names up live (they are never stored).
	Names(ctx context.Context, site *models.Site, accountIDs []string) (map[string]string, error)
}

// ssoBody is GET /api/admin/sso.
type ssoBody struct {
	Enabled               bool              `json:"enabled"`
	AllowedDomains        []string          `json:"allowedDomains"`
	AutoCreateCustomers   bool              `json:"autoCreateCustomers"`
	ServiceDeskIDs        []string          `json:"serviceDeskIds"`
	OrganizationsByDomain map[string]string `json:"organizationsByDomain"`
	SessionIdleMinutes    int               `json:"sessionIdleMinutes"`
	SessionMaxHours       int               `json:"sessionMaxHours"`
	PortalURL             string            `json:"portalUrl"`
	SPEntityID            string            `json:"spEntityId"`
	ACSURL                string            `json:"acsUrl"`
	SPMetadataURL         string            `json:"spMetadataUrl"`
	RedirectURI           string            `json:"redirectUri"`
	UpdatedAt             *time.Time        `json:"updatedAt"`
}

func (s *server) toSSOBody(st *models.SSOSettings) ssoBody {
	sp := s.SSO.SP(st.SiteID)
	b := ssoBody{
		Enabled: st.Enabled, AllowedDomains: st.AllowedDomains, AutoCreateCustomers: st.AutoCreateCustomers,
		ServiceDeskIDs: st.ServiceDeskIDs, OrganizationsByDomain: st.OrganizationsByDomain,
		SessionIdleMinutes: st.SessionIdleMinutes, SessionMaxHours: st.SessionMaxHours,
		PortalURL: s.SSO.PortalURL(st.SiteID), SPEntityID: sp.EntityID, ACSURL: sp.ACSURL, SPMetadataURL: sp.MetadataURL,
		RedirectURI: s.SSO.RedirectURI(st.SiteID),
	}
	if b.AllowedDomains == nil {
		b.AllowedDomains = []string{}
	}
	if b.ServiceDeskIDs == nil {
		b.ServiceDeskIDs = []string{}
	}
	if b.OrganizationsByDomain == nil {
		b.OrganizationsByDomain = map[string]string{}
	}
	if !st.UpdatedAt.IsZero() {
		t := st.UpdatedAt
		b.UpdatedAt = &t
	}
	return b
}

func (s *server) handleAdminSSOGet(c *gin.Context) {
	st, err := s.SSO.Settings(c.Request.Context(), callerOf(c).Site.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, s.toSSOBody(st))
}

type ssoInput struct {
	Enabled               *bool              `json:"enabled"`
	AllowedDomains        *[]string          `json:"allowedDomains"`
	AutoCreateCustomers   *bool              `json:"autoCreateCustomers"`
	ServiceDeskIDs        *[]string          `json:"serviceDeskIds"`
	OrganizationsByDomain *map[string]string `json:"organizationsByDomain"`
	SessionIdleMinutes    *int               `json:"sessionIdleMinutes"`
	SessionMaxHours       *int               `json:"sessionMaxHours"`
}

func (s *server) handleAdminSSOPut(c *gin.Context) {
	caller := callerOf(c)
	var in ssoInput
	if err := decodeJSON(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	st, err := s.SSO.SaveSettings(c.Request.Context(), caller.Site, caller.AccountID, models.SSOSettingsInput{
		Enabled: in.Enabled, AllowedDomains: in.AllowedDomains, AutoCreateCustomers: in.AutoCreateCustomers,
		ServiceDeskIDs: in.ServiceDeskIDs, OrganizationsByDomain: in.OrganizationsByDomain,
		SessionIdleMinutes: in.SessionIdleMinutes, SessionMaxHours: in.SessionMaxHours,
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, s.toSSOBody(st))
}

// idpBody is an identity provider as the admin API shows it: secrets as
// hints only.
type idpBody struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	Protocol     string       `json:"protocol"`
	Enabled      bool         `json:"enabled"`
	EmailDomains []string     `json:"emailDomains"`
	OIDC         *idpOIDCBody `json:"oidc,omitempty"`
	SAML         *idpSAMLBody `json:"saml,omitempty"`
	RedirectURI  string       `json:"redirectUri,omitempty"`
	SP           *spFactsBody `json:"sp,omitempty"`
	TestURL      string       `json:"testSignInUrl"`
	CreatedAt    time.Time    `json:"createdAt"`
	UpdatedAt    time.Time    `json:"updatedAt"`
}

type idpOIDCBody struct {
	Issuer               string   `json:"issuer"`
	ClientID             string   `json:"clientId"`
	ClientSecretHint     string   `json:"clientSecretHint"`
	Scopes               []string `json:"scopes"`
	EmailClaim           string   `json:"emailClaim"`
	NameClaim            string   `json:"nameClaim"`
	RequireVerifiedEmail bool     `json:"requireVerifiedEmail"`
}

type idpSAMLBody struct {
	MetadataURL    string `json:"metadataUrl,omitempty"`
	HasMetadataXML bool   `json:"hasMetadataXml"`
	EntityID       string `json:"entityId,omitempty"`
	SSOURL         string `json:"ssoUrl,omitempty"`
	Certificate    string `json:"certificate,omitempty"`
	EmailAttribute string `json:"emailAttribute"`
	NameAttribute  string `json:"nameAttribute"`
}

type spFactsBody struct {
	EntityID    string `json:"spEntityId"`
	ACSURL      string `json:"acsUrl"`
	MetadataURL string `json:"spMetadataUrl"`
}

func (s *server) toIdPBody(site *models.Site, p *models.IdentityProvider) idpBody {
	b := idpBody{
		ID: p.ID, Name: p.Name, Protocol: p.Protocol, Enabled: p.Enabled, EmailDomains: p.EmailDomains,
		TestURL:   s.SSO.TestSignInURL(site, p.ID),
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	if b.EmailDomains == nil {
		b.EmailDomains = []string{}
	}
	if o := p.OIDC; o != nil {
		b.OIDC = &idpOIDCBody{
			Issuer: o.Issuer, ClientID: o.ClientID, ClientSecretHint: maskHint(o.ClientSecretHint, o.ClientSecret != ""),
			Scopes: o.Scopes, EmailClaim: o.EmailClaim, NameClaim: o.NameClaim, RequireVerifiedEmail: o.RequireVerifiedEmail,
		}
		b.RedirectURI = s.SSO.RedirectURI(p.SiteID)
	}
	if sm := p.SAML; sm != nil {
		b.SAML = &idpSAMLBody{
			MetadataURL: sm.MetadataURL, HasMetadataXML: sm.MetadataXML != "", EntityID: sm.EntityID, SSOURL: sm.SSOURL,
			Certificate: sm.Certificate, EmailAttribute: sm.EmailAttribute, NameAttribute: sm.NameAttribute,
		}
		sp := s.SSO.SP(p.SiteID)
		b.SP = &spFactsBody{EntityID: sp.EntityID, ACSURL: sp.ACSURL, MetadataURL: sp.MetadataURL}
	}
	return b
}

type idpInput struct {
	Name         *string   `json:"name"`
	Protocol     *string   `json:"protocol"`
	Enabled      *bool     `json:"enabled"`
	EmailDomains *[]string `json:"emailDomains"`
	OIDC         *struct {
		Issuer               *string   `json:"issuer"`
		ClientID             *string   `json:"clientId"`
		ClientSecret         *string   `json:"clientSecret"`
		Scopes               *[]string `json:"scopes"`
		EmailClaim           *string   `json:"emailClaim"`
		NameClaim            *string   `json:"nameClaim"`
		RequireVerifiedEmail *bool     `json:"requireVerifiedEmail"`
	} `json:"oidc"`
	SAML *struct {
		MetadataXML    *string `json:"metadataXml"`
		MetadataURL    *string `json:"metadataUrl"`
		EntityID       *string `json:"entityId"`
		SSOURL         *string `json:"ssoUrl"`
		Certificate    *string `json:"certificate"`
		EmailAttribute *string `json:"emailAttribute"`
		NameAttribute  *string `json:"nameAttribute"`
	} `json:"saml"`
}

func (in *idpInput) toModel() models.IdentityProviderInput {
	out := models.IdentityProviderInput{Name: in.Name, Protocol: in.Protocol, Enabled: in.Enabled, EmailDomains: in.EmailDomains}
	if o := in.OIDC; o != nil {
		out.OIDC = &models.OIDCInput{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret, Scopes: o.Scopes,
			EmailClaim: o.EmailClaim, NameClaim: o.NameClaim, RequireVerifiedEmail: o.RequireVerifiedEmail}
	}
	if sm := in.SAML; sm != nil {
		out.SAML = &models.SAMLInput{MetadataXML: sm.MetadataXML, MetadataURL: sm.MetadataURL, EntityID: sm.EntityID,
			SSOURL: sm.SSOURL, Certificate: sm.Certificate, EmailAttribute: sm.EmailAttribute, NameAttribute: sm.NameAttribute}
	}
	return out
}

func (s *server) handleAdminIdPList(c *gin.Context) {
	site := callerOf(c).Site
	idps, err := s.SSO.IdentityProviders(c.Request.Context(), site.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]idpBody, 0, len(idps))
	for _, p := range idps {
		out = append(out, s.toIdPBody(site, p))
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"identityProviders": out})
}

func (s *server) handleAdminIdPGet(c *gin.Context) {
	site := callerOf(c).Site
	p, err := s.SSO.IdentityProvider(c.Request.Context(), site.ID, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, s.toIdPBody(site, p))
}

func (s *server) handleAdminIdPCreate(c *gin.Context) {
	caller := callerOf(c)
	var in idpInput
	if err := decodeJSON(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.SSO.CreateIdentityProvider(c.Request.Context(), caller.Site, caller.AccountID, in.toModel())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, s.toIdPBody(caller.Site, p))
}

func (s *server) handleAdminIdPUpdate(c *gin.Context) {
	caller := callerOf(c)
	var in idpInput
	if err := decodeJSON(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.SSO.UpdateIdentityProvider(c.Request.Context(), caller.Site, caller.AccountID, c.Param("id"), in.toModel())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, s.toIdPBody(caller.Site, p))
}

func (s *server) handleAdminIdPDelete(c *gin.Context) {
	caller := callerOf(c)
	if err := s.SSO.DeleteIdentityProvider(c.Request.Context(), caller.Site, caller.AccountID, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// auditEventBody is one event of GET /api/admin/audit.
type auditEventBody struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Event     string    `json:"event"`
	AccountID string    `json:"accountId"`
	IdP       string    `json:"idp"`
	Protocol  string    `json:"protocol"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"userAgent"`
	Reason    string    `json:"reason"`
	Actor     string    `json:"actor"`
	Target    string    `json:"target,omitempty"`
	Section   string    `json:"section,omitempty"`
	Fields    []string  `json:"fields,omitempty"`
	// Restricted marks an event whose person's processing is restricted.
	Restricted bool `json:"restricted,omitempty"`
}

func toAuditEventBody(e *models.AuditEvent) auditEventBody {
	// accountId is whom the event is about: the target of an admin action,
	// else who acted.
	account := e.TargetAccountID
	if account == "" {
		account = e.ActorAccountID
	}
	return auditEventBody{
		ID: e.ID, At: e.OccurredAt, Event: string(e.Event), AccountID: account, IdP: e.IdP, Protocol: e.Protocol,
		IP: e.IP, UserAgent: e.UserAgent, Reason: e.Reason, Actor: e.ActorAccountID, Target: e.TargetAccountID,
		Section: e.Section, Fields: e.Fields,
	}
}

// auditQuery reads the filter of the audit routes: from and to (RFC 3339
// or a date), accountId, event, cursor, limit.
func auditQuery(c *gin.Context) (models.AuditQuery, error) {
	q := models.AuditQuery{AccountID: c.Query("accountId"), Event: models.AuditEventType(c.Query("event")), Cursor: c.Query("cursor")}
	for _, f := range []struct {
		name string
		out  *time.Time
		end  bool
	}{{"from", &q.From, false}, {"to", &q.To, true}} {
		v := strings.TrimSpace(c.Query(f.name))
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			*f.out = t
			continue
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return q, models.FieldError(f.name, "%s must be a date such as 2026-12-01, or a time such as 2026-12-01T09:00:00Z.", f.name)
		}
		if f.end { // a "to" date includes that day
			t = t.AddDate(0, 0, 1)
		}
		*f.out = t
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return q, models.FieldError("limit", "limit must be a positive number.")
		}
		q.Limit = n
	}
	return q, nil
}

func (s *server) handleAdminAudit(c *gin.Context) {
	q, err := auditQuery(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	page, err := s.Audit.Page(c.Request.Context(), callerOf(c).Site.ID, q)
	if err != nil {
		s.fail(c, err)
		return
	}
	events := make([]auditEventBody, 0, len(page.Events))
	for i := range page.Events {
		b := toAuditEventBody(&page.Events[i])
		b.Restricted = page.Restricted[b.AccountID]
		events = append(events, b)
	}
	var next *string
	if page.Next != "" {
		next = &page.Next
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"events": events, "next": next})
}

func (s *server) handleAdminAuditStats(c *gin.Context) {
	days := 30
	if v := c.Query("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.fail(c, models.FieldError("days", "days must be a positive number."))
			return
		}
		days = n
	}
	stats, err := s.Audit.Stats(c.Request.Context(), callerOf(c).Site.ID, days)
	if err != nil {
		s.fail(c, err)
		return
	}
	type day struct {
		Date      string `json:"date"`
		Successes int64  `json:"successes"`
		Failures  int64  `json:"failures"`
	}
	out := make([]day, len(stats))
	for i, d := range stats {
		out[i] = day{Date: d.Date, Successes: d.Successes, Failures: d.Failures}
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"days": out})
}

// csvHeader is the header row of the CSV export.
var csvHeader = []string{"id", "at", "event", "accountId", "idp", "protocol", "ip", "userAgent", "reason", "actor", "target", "section", "fields"}

// handleAdminAuditCSV streams the filtered log as CSV: rows are written as
// they are read, a bounded batch at a time, so memory stays constant.
func (s *server) handleAdminAuditCSV(c *gin.Context) {
	q, err := auditQuery(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	site := callerOf(c).Site
	w := c.Writer
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="idbridge-audit-`+s.Now().UTC().Format("20060102")+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	started := false
	rows := 0
	row := make([]string, len(csvHeader))
	err = s.Audit.Stream(c.Request.Context(), site.ID, q, func(e models.AuditEvent) error {
		if !started {
			started = true
			w.WriteHeader(http.StatusOK)
			if err := cw.Write(csvHeader); err != nil {
				return err
			}
		}
		b := toAuditEventBody(&e)
		row[0], row[1], row[2], row[3], row[4], row[5] = b.ID, b.At.Format(time.RFC3339Nano), b.Event, b.AccountID, b.IdP, b.Protocol
		row[6], row[7], row[8], row[9], row[10], row[11] = csvSafe(b.IP), csvSafe(b.UserAgent), b.Reason, b.Actor, b.Target, b.Section
		row[12] = strings.Join(b.Fields, " ")
		if err := cw.Write(row); err != nil {
			return err
		}
		rows++
		if rows%2000 == 0 {
			cw.Flush()
			return cw.Error()
		}
		return nil
	})
	if err != nil && !started {
		s.fail(c, err)
		return
	}
	if !started {
		w.WriteHeader(http.StatusOK)
		_ = cw.Write(csvHeader)
	}
	cw.Flush()
	if err != nil {
		// The header is out: the best left is to stop, logged.
		s.Log.WarnContext(c, "audit csv stopped", "request_id", requestID(c), "error", err.Error())
	}
}

// csvSafe keeps a spreadsheet from reading a value as a formula.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// handleAdminAccountNames answers the display names of up to 50 account
// IDs, looked up live: GET /api/admin/accounts?accountId=…&accountId=….
func (s *server) handleAdminAccountNames(c *gin.Context) {
	names, err := s.Audit.Names(c.Request.Context(), callerOf(c).Site, c.QueryArray("accountId"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"names": names})
}
