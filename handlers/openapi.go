package handlers

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDocument describes every route under /api/admin; a test walks the
// engine's routes and fails when the two disagree.
//
//go:embed openapi.json
var openAPIDocument []byte

// handleOpenAPI serves the admin API's description. It is public on
// purpose (SPEC 9): it describes the API, it holds no data.
func (s *server) handleOpenAPI(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, "application/json; charset=utf-8", openAPIDocument)
}
