// Package handlers is idbridge's HTTP layer and the only package that
// imports Gin: routes, middleware, wire formats (DTOs) and error rendering.
// It depends on the behaviour it needs through interfaces it declares
// itself, so it never reaches for the store, the configuration or app.
package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// Readiness answers whether the service can take traffic.
type Readiness interface {
	Ready(ctx context.Context) error
}

// Deps is everything the HTTP layer needs. Unset optional parts leave their
// routes out.
type Deps struct {
	Log      *slog.Logger
	Registry *prometheus.Registry // /metrics; nil leaves it out
	Ready    Readiness
	BaseURL  *url.URL
	// TrustedHosts are the Atlassian product host patterns ("*.atlassian.net")
	// allowed to frame the admin page.
	TrustedHosts []string
	// MaxBodyBytes bounds request bodies; 1 MiB when zero.
	MaxBodyBytes int64
	Version      string
	Now          func() time.Time
	// Connect serves the lifecycle and authenticates Connect JWTs.
	Connect Connect
	// Descriptor is the rendered atlassian-connect.json.
	Descriptor []byte
}

type server struct {
	Deps
	metrics *httpMetrics
}

// New builds the HTTP engine with every route and middleware.
func New(d Deps) *gin.Engine {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 1 << 20
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &server{Deps: d}
	if d.Registry != nil {
		s.metrics = newHTTPMetrics(d.Registry)
	}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.ContextWithFallback = true
	// Never trust X-Forwarded-For blindly; operators behind a proxy set
	// the proxy's address through the platform, not through us.
	_ = e.SetTrustedProxies(nil)

	e.Use(s.requireRequestID, s.logAccess, s.recoverPanic, s.setSecurityHeaders, s.limitBody)
	e.NoRoute(func(c *gin.Context) { writeError(c, http.StatusNotFound, "no such route") })
	e.NoMethod(func(c *gin.Context) { writeError(c, http.StatusMethodNotAllowed, "method not allowed on this route") })

	e.GET("/healthz", s.handleHealthz)
	e.GET("/readyz", s.handleReadyz)
	if d.Registry != nil {
		e.GET("/metrics", s.handleMetrics())
	}
	e.GET("/", s.handleRoot)
	e.GET("/assets/*file", assetHandler())
	if d.Descriptor != nil {
		e.GET("/atlassian-connect.json", s.handleDescriptor)
	}
	if d.Connect != nil {
		lc := e.Group("/lifecycle")
		lc.POST("/installed", s.handleLifecycle(d.Connect.Installed))
		lc.POST("/uninstalled", s.handleLifecycle(d.Connect.Uninstalled))
		lc.POST("/enabled", s.handleLifecycle(d.Connect.Enabled))
		lc.POST("/disabled", s.handleLifecycle(d.Connect.Disabled))

		e.GET("/admin", s.requireURLJWT, s.requireSiteAdmin, s.handleAdminPage)

		api := e.Group("/api/admin", s.requireContextJWT, s.requireSiteAdmin)
		api.GET("/site", s.handleAdminSiteGet)
	}
	return e
}

// handleRoot says what this service is, for a person who opens its URL.
func (s *server) handleRoot(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{
		"name":       "idbridge",
		"about":      "Backend of an Atlassian cloud app: SCIM provisioning, customer SSO for Jira Service Management, privacy tooling.",
		"descriptor": "/atlassian-connect.json",
	})
}
