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

	"idbridge/models"
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
	// MaxBodyBytes bounds request bodies; 1 MiB when zero.
	MaxBodyBytes int64
	Version      string
	Now          func() time.Time
	// Connect serves the lifecycle and authenticates Connect JWTs.
	Connect Connect
	// Descriptor is the rendered atlassian-connect.json.
	Descriptor []byte
	// ServiceAccounts and Profiles serve the admin API's service account
	// and customer record; nil leaves their routes out.
	ServiceAccounts ServiceAccounts
	Profiles        Profiles
	// PrivacyContact is shown on /privacy (an email address or https URL).
	PrivacyContact string
	// SCIM serves /scim/v2/{siteID}/… and Provisioning the admin API's
	// provisioning settings; nil leaves their routes out.
	SCIM         SCIMServer
	Provisioning Provisioning
	// SSO serves customer SSO (admin API and portal sign-in) and Audit the
	// admin API's audit log; nil leaves their routes out.
	SSO   SSO
	Audit AuditLog
	// Sync serves the admin API's sync status and actions; nil leaves
	// their routes out.
	Sync Sync
	// Portal serves the signed-in customer's portal pages; nil shows a
	// home page without JSM.
	Portal Portal
	// Privacy serves the admin API's GDPR routes (export, erasure,
	// restriction, reporting status); nil leaves them out.
	Privacy Privacy
	// Forge serves the Forge remote routes (/forge/…); nil leaves them out.
	Forge Forge
	// SystemTokens says whether an app system token is held for a site
	// (the admin API's site and the admin page); nil leaves that out.
	SystemTokens SystemTokens
	// ConnectJS is the URL of Atlassian's all.js that the admin page loads
	// (and its CSP allows); empty is Atlassian's CDN. Only the demo sets it,
	// to its simulated site's stand-in: it is no configuration, so serve
	// always loads Atlassian's.
	ConnectJS string
}

type server struct {
	Deps
	metrics *httpMetrics
	// allJS is the URL of all.js the admin page loads, allJSOrigin its
	// origin for the CSP.
	allJS, allJSOrigin string
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
	s.allJS, s.allJSOrigin = allJSURL, allJSOrigin
	if origin, ok := cspOrigin(d.ConnectJS, true); ok {
		s.allJS, s.allJSOrigin = d.ConnectJS, origin
	}
	if d.Registry != nil {
		s.metrics = newHTTPMetrics(d.Registry)
	}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	// gin reuses a *gin.Context once its handler returns; it must never
	// serve as a context.Context for work that may outlive the handler
	// (database/sql watches a context from a goroutine). Handlers pass
	// c.Request.Context(); without fallback, a c passed by mistake carries
	// no Done channel for anything to watch.
	e.ContextWithFallback = false
	// Never trust X-Forwarded-For blindly; operators behind a proxy set
	// the proxy's address through the platform, not through us.
	_ = e.SetTrustedProxies(nil)

	e.Use(s.requireRequestID, s.logAccess, s.recoverPanic, s.setSecurityHeaders, s.limitBody)
	e.NoRoute(func(c *gin.Context) { refuseWith(c, models.CodeNotFound, "no such route") })
	e.NoMethod(func(c *gin.Context) { refuseWith(c, models.CodeMethodNotAllowed, "method not allowed on this route") })

	e.GET("/healthz", s.handleHealthz)
	e.GET("/readyz", s.handleReadyz)
	if d.Registry != nil {
		e.GET("/metrics", s.handleMetrics())
	}
	e.GET("/", s.handleRoot)
	e.GET("/privacy", s.handlePrivacy)
	e.GET("/api/admin/openapi.json", s.handleOpenAPI)
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

		e.GET("/admin", s.requireAuth(d.Connect.AuthenticateURL), s.requireSiteAdmin, s.handleAdminPage)

		api := e.Group("/api/admin", s.requireAuth(d.Connect.AuthenticateContext), s.requireSiteAdmin)
		api.GET("/site", s.handleAdminSiteGet)
		if d.Profiles != nil {
			api.GET("/profile", s.handleAdminProfileGet)
			api.PUT("/profile", s.handleAdminProfilePut)
			api.POST("/profile/sync", s.handleAdminProfileSync)
		}
		if d.ServiceAccounts != nil {
			api.GET("/service-account", s.handleAdminServiceAccountGet)
			api.PUT("/service-account", s.handleAdminServiceAccountPut)
			api.POST("/service-account/test", s.handleAdminServiceAccountTest)
		}
		if d.Provisioning != nil {
			api.GET("/provisioning", s.handleAdminProvisioningGet)
			api.PUT("/provisioning", s.handleAdminProvisioningPut)
			api.POST("/provisioning/token", s.handleAdminProvisioningToken)
		}
		if d.Sync != nil {
			api.GET("/sync", s.handleAdminSyncGet)
			api.GET("/sync/directory", s.handleAdminSyncDirectory)
			api.POST("/sync/items/:id/retry", s.handleAdminSyncRetry)
			api.POST("/sync/resume", s.handleAdminSyncResume)
			api.POST("/sync/held/apply", s.handleAdminSyncHeldApply)
			api.POST("/sync/held/discard", s.handleAdminSyncHeldDiscard)
		}
		if d.SSO != nil {
			api.GET("/sso", s.handleAdminSSOGet)
			api.PUT("/sso", s.handleAdminSSOPut)
			api.GET("/idps", s.handleAdminIdPList)
			api.POST("/idps", s.handleAdminIdPCreate)
			api.GET("/idps/:id", s.handleAdminIdPGet)
			api.PUT("/idps/:id", s.handleAdminIdPUpdate)
			api.DELETE("/idps/:id", s.handleAdminIdPDelete)
		}
		if d.Audit != nil {
			api.GET("/audit", s.handleAdminAudit)
			api.GET("/audit.csv", s.handleAdminAuditCSV)
			api.GET("/audit/stats", s.handleAdminAuditStats)
			api.GET("/accounts", s.handleAdminAccountNames)
		}
		if d.Privacy != nil {
			api.GET("/gdpr/export", s.handleAdminGDPRExport)
			api.GET("/gdpr/export/count", s.handleAdminGDPRExportCount)
			api.POST("/gdpr/erase", s.handleAdminGDPRErase)
			api.POST("/gdpr/rectify", s.handleAdminGDPRRectify)
			api.POST("/gdpr/restrict", s.handleAdminGDPRRestrict)
			api.DELETE("/gdpr/restrict/:accountId", s.handleAdminGDPRUnrestrict)
			api.GET("/gdpr/restrictions", s.handleAdminGDPRRestrictions)
			api.GET("/gdpr/status", s.handleAdminGDPRStatus)
			api.GET("/gdpr/reporting", s.handleAdminGDPRReporting)
		}
	}
	if d.Forge != nil {
		// Forge remote routes, authenticated by a Forge invocation token.
		e.POST("/forge/lifecycle", s.handleForgeLifecycle)
		e.GET("/forge/site", s.requireAuth(func(r *http.Request) (*models.Caller, error) { return d.Forge.AuthenticateForge(r) }), s.handleForgeSite)
	}
	if d.SSO != nil {
		// The customer portal: sign-in routes are public on purpose (the
		// identity provider's answer is what authenticates them); the rest
		// need a portal session.
		e.GET("/portal/:siteID", s.handlePortalRedirect)
		p := e.Group("/portal/:siteID")
		p.GET("/login", s.handlePortalLogin)
		p.GET("/oidc/callback", s.handlePortalOIDCCallback)
		p.POST("/saml/acs", s.handlePortalSAMLACS)
		p.GET("/saml/metadata", s.handlePortalSAMLMetadata)
		p.GET("/logout", s.handlePortalLogoutPage)
		p.POST("/logout", s.requireSameOrigin, s.handlePortalLogout)
		p.GET("/", s.requirePortalSession, s.handlePortalHome)
		if d.Portal != nil {
			p.GET("/requests", s.requirePortalSession, s.handlePortalRequests)
			p.GET("/requests/:key", s.requirePortalSession, s.handlePortalRequest)
			p.POST("/requests/:key/comment", s.requirePortalSession, s.requireSameOrigin, s.handlePortalComment)
			p.GET("/create/:deskID/:typeID", s.requirePortalSession, s.handlePortalForm)
			p.POST("/create/:deskID/:typeID", s.requirePortalSession, s.requireSameOrigin, s.handlePortalRaise)
		}
	}
	if d.SCIM != nil {
		// One catch-all per site: handleSCIM matches resource names
		// case-insensitively and ignores trailing slashes.
		e.Any("/scim/v2/:siteID", s.requireSCIMToken, s.handleSCIM)
		e.Any("/scim/v2/:siteID/*path", s.requireSCIMToken, s.handleSCIM)
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
