package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"idbridge/app/scim"
	"idbridge/models"
)

// SCIMServer is the SCIM 2.0 behaviour behind /scim/v2/{siteID}/…
// (SPEC section 6, shared/SCIM.md). Requests come resolved by the
// dispatcher (the resource type known, see scim.Request); answers are JSON
// ready to send with the headers that describe them; errors are
// models.Errors, their scimType in SCIMType (see writeSCIMFailure).
type SCIMServer interface {
	// Admit authenticates a request with the site's bearer token and
	// admits it under the site's share of capacity; write says whether it
	// changes the directory. done is called when the request ends.
	Admit(ctx context.Context, siteID, token string, write bool) (done func(), err error)
	// List and Search answer a ListResponse; a Search without a resource
	// type covers all of them.
	List(ctx context.Context, r *scim.Request) (*scim.Answer, error)
	Search(ctx context.Context, r *scim.Request) (*scim.Answer, error)
	Get(ctx context.Context, r *scim.Request) (*scim.Answer, error)
	Create(ctx context.Context, r *scim.Request) (*scim.Answer, error)
	Replace(ctx context.Context, r *scim.Request) (*scim.Answer, error)
	// Patch answers no body (204) when Answer.Body is nil.
	Patch(ctx context.Context, r *scim.Request) (*scim.Answer, error)
	Delete(ctx context.Context, r *scim.Request) error
	ServiceProviderConfig(siteID string) (*scim.Answer, error)
	ResourceTypes(siteID, name string) (*scim.Answer, error)
	Schemas(siteID, id string) (*scim.Answer, error)
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
	b, _ := scim.Marshal(scimErrorBody{Schemas: []string{scimErrorSchema}, Status: strconv.Itoa(f.status), SCIMType: f.scimType, Detail: f.message})
	c.Data(f.status, scimContentType, b)
	c.Abort()
}

// writeSCIM sends a SCIM answer with the headers that describe it: ETag,
// and Location when it was created.
func (s *server) writeSCIM(c *gin.Context, status int, a *scim.Answer) {
	if a.ETag != "" {
		c.Header("ETag", a.ETag)
	}
	if status == http.StatusCreated && a.Location != "" {
		c.Header("Location", a.Location)
	}
	c.Header("Cache-Control", "no-store")
	c.Data(status, scimContentType, a.Body)
}

// answerSCIM sends a or fails with err.
func (s *server) answerSCIM(c *gin.Context, status int, a *scim.Answer, err error) {
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeSCIM(c, status, a)
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
		rt, _ := scim.ResourceTypeByEndpoint(r.first())
		s.handleSCIMResource(c, s.scimRequest(c, siteID, &rt), r.segments[1:])
	case ".search":
		if len(r.segments) != 1 {
			refuseWith(c, models.CodeNotFound, "no such SCIM endpoint")
			return
		}
		s.handleSCIMSearch(c, s.scimRequest(c, siteID, nil))
	case "serviceproviderconfig", "serviceproviderconfigs":
		if !s.scimDiscovery(c, len(r.segments) == 1) {
			return
		}
		a, err := s.SCIM.ServiceProviderConfig(siteID)
		s.answerSCIM(c, http.StatusOK, a, err)
	case "resourcetypes":
		if !s.scimDiscovery(c, len(r.segments) <= 2) {
			return
		}
		a, err := s.SCIM.ResourceTypes(siteID, segment(r.segments, 1))
		s.answerSCIM(c, http.StatusOK, a, err)
	case "schemas":
		if !s.scimDiscovery(c, len(r.segments) <= 2) {
			return
		}
		a, err := s.SCIM.Schemas(siteID, segment(r.segments, 1))
		s.answerSCIM(c, http.StatusOK, a, err)
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

// scimRequest starts the request value of a resource endpoint; rt is nil
// for a search at the root.
func (s *server) scimRequest(c *gin.Context, siteID string, rt *scim.ResourceType) *scim.Request {
	return &scim.Request{SiteID: siteID, Type: rt, Query: c.Request.URL.Query(), IfMatch: c.GetHeader("If-Match")}
}

// handleSCIMResource handles /Users… and /Groups…; rest is the path after
// the resource name.
func (s *server) handleSCIMResource(c *gin.Context, req *scim.Request, rest []string) {
	ctx := c.Request.Context()
	switch {
	case len(rest) == 0:
		switch c.Request.Method {
		case http.MethodGet, http.MethodHead:
			a, err := s.SCIM.List(ctx, req)
			s.answerSCIM(c, http.StatusOK, a, err)
		case http.MethodPost:
			if !s.readSCIMBody(c, req) {
				return
			}
			a, err := s.SCIM.Create(ctx, req)
			s.answerSCIM(c, http.StatusCreated, a, err)
		default:
			c.Header("Allow", "GET, POST")
			refuseWith(c, models.CodeMethodNotAllowed, "use GET to list or POST to create")
		}
	case len(rest) == 1 && strings.EqualFold(rest[0], ".search"):
		s.handleSCIMSearch(c, req)
	case len(rest) == 1:
		req.ID = rest[0]
		s.handleSCIMOne(c, req)
	default:
		refuseWith(c, models.CodeNotFound, "no such SCIM endpoint")
	}
}

func (s *server) handleSCIMSearch(c *gin.Context, req *scim.Request) {
	if c.Request.Method != http.MethodPost {
		c.Header("Allow", "POST")
		refuseWith(c, models.CodeMethodNotAllowed, ".search takes POST")
		return
	}
	if !s.readSCIMBody(c, req) {
		return
	}
	a, err := s.SCIM.Search(c.Request.Context(), req)
	s.answerSCIM(c, http.StatusOK, a, err)
}

func (s *server) handleSCIMOne(c *gin.Context, req *scim.Request) {
	ctx := c.Request.Context()
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead:
		a, err := s.SCIM.Get(ctx, req)
		if err != nil {
			s.fail(c, err)
			return
		}
		if inm := c.GetHeader("If-None-Match"); inm != "" && etagListMatches(inm, a.ETag) {
			c.Header("ETag", a.ETag)
			c.Status(http.StatusNotModified)
			return
		}
		s.writeSCIM(c, http.StatusOK, a)
	case http.MethodPut:
		if !s.readSCIMBody(c, req) {
			return
		}
		a, err := s.SCIM.Replace(ctx, req)
		s.answerSCIM(c, http.StatusOK, a, err)
	case http.MethodPatch:
		if !s.readSCIMBody(c, req) {
			return
		}
		a, err := s.SCIM.Patch(ctx, req)
		if err != nil {
			s.fail(c, err)
			return
		}
		if a.Body == nil {
			if a.ETag != "" {
				c.Header("ETag", a.ETag)
			}
			c.Status(http.StatusNoContent)
			return
		}
		s.writeSCIM(c, http.StatusOK, a)
	case http.MethodDelete:
		if err := s.SCIM.Delete(ctx, req); err != nil {
			s.fail(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	default:
		c.Header("Allow", "GET, PUT, PATCH, DELETE")
		refuseWith(c, models.CodeMethodNotAllowed, "use GET, PUT, PATCH or DELETE on a resource")
	}
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

// readSCIMBody reads the whole request body into req; too large is 413,
// unreadable 400, both as SCIM errors.
func (s *server) readSCIMBody(c *gin.Context, req *scim.Request) bool {
	if c.Request.Body == nil {
		return true
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			refuseWith(c, models.CodeTooLarge, "the request body is larger than "+strconv.FormatInt(s.MaxBodyBytes, 10)+" bytes")
			return false
		}
		refuse(c, failureOf(&models.Error{Code: models.CodeInvalid, SCIMType: "invalidSyntax", Message: "the request body could not be read"}))
		return false
	}
	req.Body = body
	return true
}
