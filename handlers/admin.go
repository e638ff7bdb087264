package handlers

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

//go:embed assets
var assetFS embed.FS

var adminPage = template.Must(template.ParseFS(assetFS, "assets/admin.html"))

// allJS is the one script served from elsewhere: Atlassian's Connect
// JavaScript API, which a page in a Jira/Confluence iframe must load.
const allJS = "https://connect-cdn.atl-paas.net"

// adminCSP allows the admin page to be framed by the trusted product hosts
// and to load only our own assets and all.js.
func (s *server) adminCSP() string {
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self' " + allJS,
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors " + s.frameAncestors(),
	}, "; ")
}

func (s *server) handleAdminPage(c *gin.Context) {
	caller := callerOf(c)
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", s.adminCSP())
	h.Del("X-Frame-Options")
	h.Set("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	c.Header("Content-Type", "text/html; charset=utf-8")
	data := struct {
		Base string
		Site *models.Site
	}{Base: strings.TrimSuffix(s.BaseURL.Path, "/"), Site: caller.Site}
	if err := adminPage.Execute(c.Writer, data); err != nil {
		s.Log.ErrorContext(c, "render admin page", "error", err.Error())
	}
}

// assetHandler serves the embedded static files with long caching; their
// content changes only with a release.
func assetHandler() gin.HandlerFunc {
	sub, _ := fs.Sub(assetFS, "assets")
	files := http.FileServer(http.FS(sub))
	return func(c *gin.Context) {
		name := c.Param("file")
		if strings.HasSuffix(name, ".html") {
			writeError(c, http.StatusNotFound, "no such asset")
			return
		}
		c.Header("Cache-Control", "public, max-age=3600")
		c.Request.URL.Path = name
		files.ServeHTTP(c.Writer, c.Request)
	}
}
