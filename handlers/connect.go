package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// Connect is the Atlassian Connect behaviour the HTTP layer needs: the
// lifecycle callbacks and request authentication.
type Connect interface {
	Installed(ctx context.Context, r *http.Request, ev *models.InstallEvent) error
	Uninstalled(ctx context.Context, r *http.Request, ev *models.InstallEvent) error
	Enabled(ctx context.Context, r *http.Request, ev *models.InstallEvent) error
	Disabled(ctx context.Context, r *http.Request, ev *models.InstallEvent) error
	// AuthenticateURL verifies a URL-bound token (qsh of the request).
	AuthenticateURL(r *http.Request) (*models.Caller, error)
	// AuthenticateContext verifies a context token (qsh "context-qsh", sub).
	AuthenticateContext(r *http.Request) (*models.Caller, error)
	// RequireAdmin confirms with the site that the caller is an admin.
	RequireAdmin(ctx context.Context, caller *models.Caller) error
}

const callerKey = "idbridge.caller"

// lifecycleBody is the JSON Atlassian posts to every lifecycle URL.
type lifecycleBody struct {
	Key                             string `json:"key"`
	ClientKey                       string `json:"clientKey"`
	SharedSecret                    string `json:"sharedSecret"`
	BaseURL                         string `json:"baseUrl"`
	DisplayURL                      string `json:"displayUrl"`
	DisplayURLServicedeskHelpCenter string `json:"displayUrlServicedeskHelpCenter"`
	ProductType                     string `json:"productType"`
	Description                     string `json:"description"`
	ServiceEntitlementNumber        string `json:"serviceEntitlementNumber"`
	EntitlementID                   string `json:"entitlementId"`
	EntitlementNumber               string `json:"entitlementNumber"`
	InstallationID                  string `json:"installationId"`
	CloudID                         string `json:"cloudId"`
	EventType                       string `json:"eventType"`
}

func (b *lifecycleBody) toModel() *models.InstallEvent {
	return &models.InstallEvent{
		EventType: b.EventType, Key: b.Key, SharedSecret: b.SharedSecret,
		SiteFacts: models.SiteFacts{
			ClientKey: b.ClientKey, BaseURL: b.BaseURL, DisplayURL: b.DisplayURL,
			DisplayURLServicedeskHelpCenter: b.DisplayURLServicedeskHelpCenter,
			ProductType:                     b.ProductType, Description: b.Description,
			ServiceEntitlementNumber: b.ServiceEntitlementNumber, EntitlementID: b.EntitlementID,
			EntitlementNumber: b.EntitlementNumber, InstallationID: b.InstallationID, CloudID: b.CloudID,
		},
	}
}

// decodeJSON reads one JSON object from the body into v. A body over the
// limit, text that is not UTF-8 (JSON must be, RFC 8259; a decoder would
// silently replace the bytes), malformed JSON, or trailing data is a 4xx,
// never a 500.
func decodeJSON(c *gin.Context, v any) error {
	if ct := c.ContentType(); ct != "" && ct != "application/json" && !strings.HasSuffix(ct, "+json") {
		return &models.Error{Code: models.CodeInvalid, Message: "the body must be JSON (Content-Type: application/json)"}
	}
	// The body limit (limitBody) bounds what is read here.
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &models.Error{Code: models.CodeInvalid, Message: "the body is too large"}
		}
		return &models.Error{Code: models.CodeInvalid, Message: "the body could not be read"}
	}
	if !utf8.Valid(data) {
		return &models.Error{Code: models.CodeInvalid, Message: "the body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return &models.Error{Code: models.CodeInvalid, Message: "the body is empty"}
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return models.FieldError(typeErr.Field, "%s has the wrong type", typeErr.Field)
		}
		return &models.Error{Code: models.CodeInvalid, Message: "the body is not valid JSON"}
	}
	if dec.More() {
		return &models.Error{Code: models.CodeInvalid, Message: "the body has data after the JSON object"}
	}
	return nil
}

func (s *server) handleLifecycle(event func(context.Context, *http.Request, *models.InstallEvent) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		var body lifecycleBody
		if err := decodeJSON(c, &body); err != nil {
			s.fail(c, err)
			return
		}
		// The request's context, not c: gin reuses c once the handler
		// returns, while database/sql may still be watching the context.
		if err := event(c.Request.Context(), c.Request, body.toModel()); err != nil {
			s.fail(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

func (s *server) handleDescriptor(c *gin.Context) {
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "application/json; charset=utf-8", s.Descriptor)
}

// requireSiteAdmin confirms server side that the caller administers the
// site: descriptor conditions only hide links.
func (s *server) requireSiteAdmin(c *gin.Context) {
	if err := s.Connect.RequireAdmin(c.Request.Context(), callerOf(c)); err != nil {
		s.fail(c, err)
		return
	}
	c.Next()
}

func callerOf(c *gin.Context) *models.Caller {
	v, _ := c.Get(callerKey)
	caller, _ := v.(*models.Caller)
	return caller
}

// siteBody is the public face of a site: no secret, no entitlement data.
type siteBody struct {
	ID             string    `json:"id"`
	BaseURL        string    `json:"baseUrl"`
	DisplayURL     string    `json:"displayUrl,omitempty"`
	ProductType    string    `json:"productType"`
	State          string    `json:"state"`
	InstalledAt    time.Time `json:"installedAt"`
	InstallationID string    `json:"installationId,omitempty"`
	CloudID        string    `json:"cloudId,omitempty"`
}

// systemTokenBody says whether an app system token is held for the site
// and until when; never the token.
type systemTokenBody struct {
	State     string     `json:"state"` // held, expired or none
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// SystemTokens reads the state of a site's app system token.
type SystemTokens interface {
	SystemTokenStatus(ctx context.Context, siteID string) (models.SystemTokenStatus, error)
}

func toSystemTokenBody(st models.SystemTokenStatus) *systemTokenBody {
	b := &systemTokenBody{State: st.State}
	if !st.ExpiresAt.IsZero() {
		exp := st.ExpiresAt.UTC()
		b.ExpiresAt = &exp
	}
	return b
}

func toSiteBody(s *models.Site) siteBody {
	return siteBody{
		ID: s.ID, BaseURL: s.BaseURL, DisplayURL: s.DisplayURL, ProductType: s.ProductType,
		State: string(s.EffectiveState()), InstalledAt: s.InstalledAt, InstallationID: s.InstallationID, CloudID: s.CloudID,
	}
}

// handleAdminSiteGet answers from the verified caller alone, no database
// read: it is the route the Connect JWT's cost is measured on
// (docs/PERFORMANCE.md). The app system token's state is with the other
// credentials, in GET /api/admin/service-account.
func (s *server) handleAdminSiteGet(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, toSiteBody(callerOf(c).Site))
}
