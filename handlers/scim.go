package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// SCIMServer is the SCIM 2.0 behaviour behind /scim/v2/{siteID}/…
// (SPEC section 6, shared/SCIM.md). endpoint is "Users" or "Groups" as the
// dispatcher resolved it; bodies are the raw request bytes; errors are
// models.Errors, their scimType in SCIMType (see writeSCIMFailure).
type SCIMServer interface {
	// Admit authenticates a request with the site's bearer token and
	// admits it under the site's share of capacity; write says whether it
	// changes the directory. done is called when the request ends.
	Admit(ctx context.Context, siteID, token string, write bool) (done func(), err error)
	// List and Search answer a ListResponse as any JSON-marshalable value.
	List(ctx context.Context, siteID, endpoint string, q url.Values) (any, error)
	Search(ctx context.Context, siteID, endpoint string, body []byte) (any, error)
	Get(ctx context.Context, siteID, endpoint, id string, q url.Values) (*models.SCIMDocument, error)
	Create(ctx context.Context, siteID, endpoint string, body []byte, q url.Values) (*models.SCIMDocument, error)
	Replace(ctx context.Context, siteID, endpoint, id string, body []byte, ifMatch string, q url.Values) (*models.SCIMDocument, error)
	Patch(ctx context.Context, siteID, endpoint, id string, body []byte, ifMatch string, q url.Values) (*models.SCIMDocument, error)
	Delete(ctx context.Context, siteID, endpoint, id, ifMatch string) error
	ServiceProviderConfig(siteID string) map[string]any
	ResourceTypes(siteID, name string) (map[string]any, error)
	Schemas(siteID, id string) (map[string]any, error)
}

// scimContentType is the media type of every SCIM answer (RFC 7644 3.1).
// Requests in application/json are accepted as well.
const scimContentType = "application/scim+json"

// scimErrorSchema is the URN of SCIM error bodies.
const scimErrorSchema = "urn:ietf:params:scim:api:messages:2.0:Error"

// scimPrefix is where the SCIM server lives; every answer under it, even a
// 404 for an unknown route or a 413, is a SCIM message.
const scimPrefix = "/scim/"

func isSCIMPath(p string) bool { return strings.HasPrefix(p, scimPrefix) || p == "/scim" }

// scimErrorBody is an RFC 7644 (3.12) error message: status as a JSON
// string, scimType and detail only when non-empty (never an empty string or
// null in an answer).
type scimErrorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	SCIMType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

// writeSCIMFailure answers f as a SCIM error message and stops the chain.
func writeSCIMFailure(c *gin.Context, f failure) {
	if f.status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="idbridge SCIM"`)
	}
	b, _ := json.Marshal(scimErrorBody{Schemas: []string{scimErrorSchema}, Status: strconv.Itoa(f.status), SCIMType: f.scimType, Detail: f.message})
	c.Data(f.status, scimContentType, b)
	c.Abort()
}

// writeSCIM answers a SCIM body, without HTML escaping: values read as
// they were sent.
func (s *server) writeSCIM(c *gin.Context, status int, body any) {
	if raw, ok := body.(json.RawMessage); ok {
		// Already JSON, built by the service from stored documents.
		c.Header("Cache-Control", "no-store")
		c.Data(status, scimContentType, raw)
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(status, scimContentType, bytes.TrimRight(buf.Bytes(), "\n"))
}

// bearerToken reads "Authorization: Bearer <token>" (scheme
// case-insensitive).
func bearerToken(h string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// requireSCIMToken authenticates the site's identity provider and admits
// the request under the site's share of capacity until it ends.
func (s *server) requireSCIMToken(c *gin.Context) {
	write := isSCIMWrite(c.Request.Method, c.Param("path"))
	done, err := s.SCIM.Admit(c.Request.Context(), c.Param("siteID"), bearerToken(c.GetHeader("Authorization")), write)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer done()
	c.Next()
}

// isSCIMWrite reports whether a request may change the directory: POST
// (other than a .search), PUT, PATCH and DELETE.
func isSCIMWrite(method, path string) bool {
	switch method {
	case http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	case http.MethodPost:
		return !strings.HasSuffix(strings.ToLower(strings.TrimRight(path, "/")), "/.search")
	}
	return false
}

// scimRoute is a request path under a site's SCIM base, resolved: the
// dispatcher matches resource names case-insensitively and ignores a
// trailing slash, which gin's router does not.
type scimRoute struct {
	segments []string
}

func parseSCIMRoute(p string) scimRoute {
	var segs []string
	for seg := range strings.SplitSeq(p, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	return scimRoute{segments: segs}
}

func (r scimRoute) first() string {
	if len(r.segments) == 0 {
		return ""
	}
	return strings.ToLower(r.segments[0])
}

// handleSCIM dispatches every request under /scim/v2/{siteID}.
func (s *server) handleSCIM(c *gin.Context) {
	siteID := c.Param("siteID")
	r := parseSCIMRoute(c.Param("path"))
	switch r.first() {
	case "users", "groups":
		endpoint := "Users"
		if r.first() == "groups" {
			endpoint = "Groups"
		}
		s.handleSCIMResource(c, siteID, endpoint, r.segments[1:])
	case ".search":
		if len(r.segments) != 1 {
			refuseWith(c, models.CodeNotFound, "no such SCIM endpoint")
			return
		}
		s.handleSCIMSearch(c, siteID, "")
	case "serviceproviderconfig", "serviceproviderconfigs":
		if !s.scimDiscovery(c, len(r.segments) == 1) {
			return
		}
		s.writeSCIM(c, http.StatusOK, s.SCIM.ServiceProviderConfig(siteID))
	case "resourcetypes":
		if !s.scimDiscovery(c, len(r.segments) <= 2) {
			return
		}
		doc, err := s.SCIM.ResourceTypes(siteID, segment(r.segments, 1))
		if err != nil {
			s.fail(c, err)
			return
		}
		s.writeSCIM(c, http.StatusOK, doc)
	case "schemas":
		if !s.scimDiscovery(c, len(r.segments) <= 2) {
			return
		}
		doc, err := s.SCIM.Schemas(siteID, segment(r.segments, 1))
		if err != nil {
			s.fail(c, err)
			return
		}
		s.writeSCIM(c, http.StatusOK, doc)
	case "me":
		refuseWith(c, models.CodeNotImplemented, "/Me is not supported: identity providers act on /Users")
	case "bulk":
		refuseWith(c, models.CodeNotImplemented, "bulk operations are not supported (bulk.supported is false)")
	default:
		refuseWith(c, models.CodeNotFound, "no such SCIM endpoint")
	}
}

func segment(segs []string, i int) string {
	if i < len(segs) {
		return segs[i]
	}
	return ""
}

// scimDiscovery checks a request to /ServiceProviderConfig, /ResourceTypes
// or /Schemas: GET only, no filter (RFC 7644 4: 403).
func (s *server) scimDiscovery(c *gin.Context, pathOK bool) bool {
	if !pathOK {
		refuseWith(c, models.CodeNotFound, "no such SCIM endpoint")
		return false
	}
	if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
		c.Header("Allow", "GET")
		refuseWith(c, models.CodeMethodNotAllowed, "this SCIM endpoint answers GET only")
		return false
	}
	for k := range c.Request.URL.Query() {
		if strings.EqualFold(k, "filter") {
			refuseWith(c, models.CodeForbidden, "filtering is not supported on this endpoint")
			return false
		}
	}
	return true
}

// handleSCIMResource handles /Users… and /Groups…; rest is the path after
// the resource name.
func (s *server) handleSCIMResource(c *gin.Context, siteID, endpoint string, rest []string) {
	method := c.Request.Method
	switch {
	case len(rest) == 0:
		switch method {
		case http.MethodGet, http.MethodHead:
			doc, err := s.SCIM.List(c.Request.Context(), siteID, endpoint, c.Request.URL.Query())
			if err != nil {
				s.fail(c, err)
				return
			}
			s.writeSCIM(c, http.StatusOK, doc)
		case http.MethodPost:
			body, ok := s.readSCIMBody(c)
			if !ok {
				return
			}
			doc, err := s.SCIM.Create(c.Request.Context(), siteID, endpoint, body, c.Request.URL.Query())
			if err != nil {
				s.fail(c, err)
				return
			}
			s.writeSCIMDocument(c, http.StatusCreated, doc)
		default:
			c.Header("Allow", "GET, POST")
			refuseWith(c, models.CodeMethodNotAllowed, "use GET to list or POST to create")
		}
	case len(rest) == 1 && strings.EqualFold(rest[0], ".search"):
		s.handleSCIMSearch(c, siteID, endpoint)
	case len(rest) == 1:
		s.handleSCIMOne(c, siteID, endpoint, rest[0])
	default:
		refuseWith(c, models.CodeNotFound, "no such SCIM endpoint")
	}
}

func (s *server) handleSCIMSearch(c *gin.Context, siteID, endpoint string) {
	if c.Request.Method != http.MethodPost {
		c.Header("Allow", "POST")
		refuseWith(c, models.CodeMethodNotAllowed, ".search takes POST")
		return
	}
	body, ok := s.readSCIMBody(c)
	if !ok {
		return
	}
	doc, err := s.SCIM.Search(c.Request.Context(), siteID, endpoint, body)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeSCIM(c, http.StatusOK, doc)
}

func (s *server) handleSCIMOne(c *gin.Context, siteID, endpoint, id string) {
	q := c.Request.URL.Query()
	ifMatch := c.GetHeader("If-Match")
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead:
		doc, err := s.SCIM.Get(c.Request.Context(), siteID, endpoint, id, q)
		if err != nil {
			s.fail(c, err)
			return
		}
		if inm := c.GetHeader("If-None-Match"); inm != "" && etagListMatches(inm, doc.Version) {
			c.Header("ETag", doc.Version)
			c.Status(http.StatusNotModified)
			return
		}
		s.writeSCIMDocument(c, http.StatusOK, doc)
	case http.MethodPut:
		body, ok := s.readSCIMBody(c)
		if !ok {
			return
		}
		doc, err := s.SCIM.Replace(c.Request.Context(), siteID, endpoint, id, body, ifMatch, q)
		if err != nil {
			s.fail(c, err)
			return
		}
		s.writeSCIMDocument(c, http.StatusOK, doc)
	case http.MethodPatch:
		body, ok := s.readSCIMBody(c)
		if !ok {
			return
		}
		doc, err := s.SCIM.Patch(c.Request.Context(), siteID, endpoint, id, body, ifMatch, q)
		if err != nil {
			s.fail(c, err)
			return
		}
		if doc.Body == nil {
			if doc.Version != "" {
				c.Header("ETag", doc.Version)
			}
			c.Status(http.StatusNoContent)
			return
		}
		s.writeSCIMDocument(c, http.StatusOK, doc)
	case http.MethodDelete:
		if err := s.SCIM.Delete(c.Request.Context(), siteID, endpoint, id, ifMatch); err != nil {
			s.fail(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	default:
		c.Header("Allow", "GET, PUT, PATCH, DELETE")
		refuseWith(c, models.CodeMethodNotAllowed, "use GET, PUT, PATCH or DELETE on a resource")
	}
}

// writeSCIMDocument answers a resource with its ETag (and Location when it
// was created).
func (s *server) writeSCIMDocument(c *gin.Context, status int, doc *models.SCIMDocument) {
	if doc.Version != "" {
		c.Header("ETag", doc.Version)
	}
	if status == http.StatusCreated && doc.Location != "" {
		c.Header("Location", doc.Location)
	}
	s.writeSCIM(c, status, doc.Body)
}

// etagListMatches implements If-None-Match's weak comparison: "*" or any
// listed tag equal to etag once W/ and quotes are set aside.
func etagListMatches(header, etag string) bool {
	header = strings.TrimSpace(header)
	if header == "*" {
		return etag != ""
	}
	want := opaqueTag(etag)
	for tag := range strings.SplitSeq(header, ",") {
		if opaqueTag(tag) == want && want != "" {
			return true
		}
	}
	return false
}

func opaqueTag(t string) string {
	t = strings.TrimSpace(t)
	t = strings.TrimPrefix(strings.TrimPrefix(t, "W/"), "w/")
	return strings.Trim(t, `"`)
}

// readSCIMBody reads the whole request body; too large is 413, unreadable
// 400, both as SCIM errors.
func (s *server) readSCIMBody(c *gin.Context) ([]byte, bool) {
	if c.Request.Body == nil {
		return nil, true
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			refuseWith(c, models.CodeTooLarge, "the request body is larger than "+strconv.FormatInt(s.MaxBodyBytes, 10)+" bytes")
			return nil, false
		}
		refuse(c, failureOf(&models.Error{Code: models.CodeInvalid, SCIMType: "invalidSyntax", Message: "the request body could not be read"}))
		return nil, false
	}
	return body, true
}
