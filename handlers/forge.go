package handlers

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// Authenticator verifies one kind of request credential and names the
// caller: each route chooses its own (SPEC 2, "request authentication is
// chosen per route"), through requireAuth. Connect's URL-bound and context
// JWTs and Forge's invocation token are the ones that name a site.
type Authenticator func(r *http.Request) (*models.Caller, error)

// requireAuth runs auth and, on success, makes the caller available to the
// handlers; a failure answers with its error (401 for a refused token).
func (s *server) requireAuth(auth Authenticator) gin.HandlerFunc {
	return func(c *gin.Context) {
		caller, err := auth(c.Request)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.Set(callerKey, caller)
		c.Next()
	}
}

// Forge is idbridge as a Forge remote: the lifecycle events Forge delivers
// and the authentication of Forge invocation tokens.
type Forge interface {
	// ForgeLifecycle verifies the request's Forge invocation token and
	// records the event (installed, upgraded).
	ForgeLifecycle(ctx context.Context, r *http.Request, ev *models.ForgeEvent) error
	// AuthenticateForge verifies a Forge invocation token and names the
	// site of its installation.
	AuthenticateForge(r *http.Request) (*models.Caller, error)
}

// forgeEventBody is the JSON of a Forge lifecycle event.
type forgeEventBody struct {
	EventType string `json:"eventType"`
	ID        string `json:"id"`
	App       struct {
		Version string `json:"version"`
	} `json:"app"`
	Context string `json:"context"`
}

func (s *server) handleForgeLifecycle(c *gin.Context) {
	var body forgeEventBody
	if err := decodeJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	ev := &models.ForgeEvent{EventType: body.EventType, ID: body.ID, AppVersion: body.App.Version, Context: body.Context}
	if err := s.Forge.ForgeLifecycle(c.Request.Context(), c.Request, ev); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// handleForgeSite answers a Forge invocation with the public face of its
// site: the smallest route a Forge function or Custom UI can call to see
// that idbridge knows the installation.
func (s *server) handleForgeSite(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, toSiteBody(callerOf(c).Site))
}
