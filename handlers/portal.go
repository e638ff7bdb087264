package handlers

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

//go:embed portal
var portalFS embed.FS

// portalPages are the portal's pages, each the layout with its content.
var portalPages = func() map[string]*template.Template {
	m := map[string]*template.Template{}
	// trusted marks HTML that app/portal built from JSM's markup (only a
	// handful of safe elements, every text escaped) as safe to insert.
	funcs := template.FuncMap{"trusted": func(s string) template.HTML { return template.HTML(s) }}
	for _, name := range []string{"message", "chooser", "steps", "home", "form", "requests", "request"} {
		m[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(portalFS, "portal/layout.html", "portal/"+name+".html"))
	}
	return m
}()

// portalCSP is the portal's policy: its own stylesheet, forms to itself,
// no script at all, never framed.
const portalCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxSAMLPostBytes bounds the body posted to the ACS: a SAMLResponse of at
// most 256 KiB (base64) and its RelayState, refused before parsing.
const maxSAMLPostBytes = 256<<10 + 4<<10

// Cookie names: __Host- (Secure, Path=/, no Domain) on https; plain names
// on plain-http loopback base URLs (tests, the demo), where a browser would
// refuse a Secure cookie.
func (s *server) portalCookieName() string {
	if s.secureCookies() {
		return "__Host-idbridge_portal"
	}
	return "idbridge_portal"
}

func (s *server) loginCookieName() string {
	if s.secureCookies() {
		return "__Host-idbridge_login"
	}
	return "idbridge_login"
}

func (s *server) secureCookies() bool { return s.BaseURL == nil || s.BaseURL.Scheme == "https" }

func (s *server) cookie(c *gin.Context, name string) string {
	v, err := c.Cookie(name)
	if err != nil {
		return ""
	}
	return v
}

func (s *server) setCookie(c *gin.Context, name, value string, maxAge int, sameSite http.SameSite) {
	if sameSite == http.SameSiteNoneMode && !s.secureCookies() {
		// SameSite=None needs Secure; on plain-http loopback the IdP and
		// idbridge are the same site anyway.
		sameSite = http.SameSiteLaxMode
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: s.secureCookies(), SameSite: sameSite,
	})
}

// portalData is what the portal templates see.
type portalData struct {
	Title        string
	SiteName     string
	Home         string
	AssetVersion string
	Session      *models.PortalSession
	CSRF         string
	Paragraphs   []string
	Link         string
	LinkText     string
	Choices      []portalChoice
	Steps        []models.SignInStep
	OK           bool

	Desks      []models.PortalDesk
	Form       *models.PortalForm
	Requests   []models.PortalRequestSummary
	Request    *models.PortalRequest
	Values     map[string]string
	Error      string
	ErrorField string
	Notice     string
}

type portalChoice struct {
	Name string
	URL  string
}

func (s *server) portalHome(siteID string) string { return "/portal/" + url.PathEscape(siteID) + "/" }

func (s *server) renderPortal(c *gin.Context, status int, page string, d portalData) {
	if d.SiteName == "" {
		d.SiteName = "Help center"
	}
	if d.Home == "" {
		d.Home = s.portalHome(c.Param("siteID"))
	}
	d.AssetVersion = assetVersion
	var buf bytes.Buffer
	if err := portalPages[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		s.Log.ErrorContext(c, "render portal page", "request_id", requestID(c), "page", page, "error", err.Error())
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", portalCSP)
	// same-origin, not no-referrer: with no-referrer a browser sends
	// "Origin: null" on the portal's own form posts, and the origin check
	// of requireSameOrigin could not tell them from another site's.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// portalFail renders err as a plain page in words.
func (s *server) portalFail(c *gin.Context, err error) {
	f := failureOf(err)
	st := f.status
	s.logFailure(c, st, err)
	if f.retryAfter != "" {
		c.Header("Retry-After", f.retryAfter)
	}
	title := "Something went wrong"
	switch st {
	case http.StatusNotFound:
		title = "Not available"
	case http.StatusUnauthorized:
		title = "Sign-in failed"
	case http.StatusForbidden:
		title = "Access denied"
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		title = "That did not work"
	case http.StatusServiceUnavailable:
		title = "Try again later"
	}
	d := portalData{Title: title, Paragraphs: []string{f.message}}
	if st == http.StatusUnauthorized || st == http.StatusServiceUnavailable {
		d.Link, d.LinkText = s.portalHome(c.Param("siteID"))+"login", "Sign in again"
	}
	s.renderPortal(c, st, "message", d)
	c.Abort()
}

func clientIP(c *gin.Context) string {
	ip := c.ClientIP()
	if net.ParseIP(ip) == nil {
		return ""
	}
	return ip
}

// handlePortalRedirect sends /portal/{siteID} to /portal/{siteID}/.
func (s *server) handlePortalRedirect(c *gin.Context) {
	c.Redirect(http.StatusMovedPermanently, s.portalHome(c.Param("siteID")))
}

func (s *server) handlePortalLogin(c *gin.Context) {
	siteID := c.Param("siteID")
	start, err := s.SSO.BeginLogin(c.Request.Context(), models.LoginRequest{
		SiteID: siteID, IdPID: c.Query("idp"), Email: c.Query("email"), ReturnTo: c.Query("returnTo"),
		TestTicket: c.Query("test"), BrowserToken: s.cookie(c, s.loginCookieName()),
	})
	if err != nil {
		s.portalFail(c, err)
		return
	}
	if start.Chooser != nil {
		d := portalData{Title: "Sign in", SiteName: start.SiteName}
		for _, p := range start.Chooser {
			q := url.Values{"idp": {p.ID}}
			if rt := c.Query("returnTo"); rt != "" {
				q.Set("returnTo", rt)
			}
			d.Choices = append(d.Choices, portalChoice{Name: p.Name, URL: s.portalHome(siteID) + "login?" + q.Encode()})
		}
		s.renderPortal(c, http.StatusOK, "chooser", d)
		return
	}
	sameSite := http.SameSiteLaxMode
	if start.Protocol == models.ProtocolSAML {
		// The IdP posts the response back cross-site: the binding cookie
		// must go with that POST.
		sameSite = http.SameSiteNoneMode
	}
	s.setCookie(c, s.loginCookieName(), start.BrowserToken, int(models.LoginStateTTL.Seconds()), sameSite)
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, start.RedirectURL)
}

func (s *server) handlePortalOIDCCallback(c *gin.Context) {
	res, err := s.SSO.FinishOIDC(c.Request.Context(), models.LoginCallback{
		SiteID: c.Param("siteID"), State: c.Query("state"), Code: c.Query("code"), Error: c.Query("error"),
		BrowserToken: s.cookie(c, s.loginCookieName()), OldSessionToken: s.cookie(c, s.portalCookieName()),
		IP: clientIP(c), UserAgent: c.Request.UserAgent(),
	})
	s.finishLogin(c, res, err)
}

func (s *server) handlePortalSAMLACS(c *gin.Context) {
	if c.Request.ContentLength > maxSAMLPostBytes {
		s.portalFail(c, &models.Error{Code: models.CodeInvalid, Message: "The identity provider's answer is too large."})
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxSAMLPostBytes)
	if err := c.Request.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		msg := "The identity provider's answer could not be read."
		if errors.As(err, &mbe) {
			msg = "The identity provider's answer is too large."
		}
		s.portalFail(c, &models.Error{Code: models.CodeInvalid, Message: msg})
		return
	}
	res, err := s.SSO.FinishSAML(c.Request.Context(), models.LoginCallback{
		SiteID: c.Param("siteID"), State: c.Request.PostForm.Get("RelayState"), SAMLResponse: c.Request.PostForm.Get("SAMLResponse"),
		BrowserToken: s.cookie(c, s.loginCookieName()), OldSessionToken: s.cookie(c, s.portalCookieName()),
		IP: clientIP(c), UserAgent: c.Request.UserAgent(),
	})
	s.finishLogin(c, res, err)
}

// finishLogin answers a finished sign-in: the test report, an error page,
// or the new session's cookie and a redirect to where the person was going.
func (s *server) finishLogin(c *gin.Context, res *models.LoginResult, err error) {
	if res != nil && res.Test {
		s.setCookie(c, s.loginCookieName(), "", -1, http.SameSiteLaxMode)
		st := http.StatusOK
		if err != nil {
			st = http.StatusUnauthorized
		}
		s.renderPortal(c, st, "steps", portalData{Title: "Test sign-in", Steps: res.Steps, OK: err == nil})
		return
	}
	if err != nil {
		s.portalFail(c, err)
		return
	}
	s.setCookie(c, s.loginCookieName(), "", -1, http.SameSiteLaxMode)
	s.setCookie(c, s.portalCookieName(), res.SessionToken, 0, http.SameSiteLaxMode)
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, res.ReturnTo)
}

func (s *server) handlePortalSAMLMetadata(c *gin.Context) {
	xml, err := s.SSO.SPMetadata(c.Request.Context(), c.Param("siteID"))
	if err != nil {
		s.portalFail(c, err)
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "application/samlmetadata+xml", xml)
}

const portalSessionKey = "idbridge.portal_session"

// requirePortalSession lets a signed-in customer through; anyone else goes
// to sign in, and comes back to the page they asked for.
func (s *server) requirePortalSession(c *gin.Context) {
	siteID := c.Param("siteID")
	sess, err := s.SSO.Session(c.Request.Context(), siteID, s.cookie(c, s.portalCookieName()))
	if err != nil {
		if models.ErrorCode(err) != models.CodeUnauthorized {
			s.portalFail(c, err)
			return
		}
		if c.Request.Method != http.MethodGet {
			s.portalFail(c, &models.Error{Code: models.CodeUnauthorized, Message: "Your session has ended. Sign in again."})
			return
		}
		c.Header("Cache-Control", "no-store")
		c.Redirect(http.StatusSeeOther, s.portalHome(siteID)+"login?"+url.Values{"returnTo": {c.Request.URL.Path}}.Encode())
		c.Abort()
		return
	}
	c.Set(portalSessionKey, sess)
	c.Next()
}

func portalSession(c *gin.Context) *models.PortalSession {
	v, _ := c.Get(portalSessionKey)
	sess, _ := v.(*models.PortalSession)
	return sess
}

// csrfToken is bound to the session: a hash of the session cookie, which a
// page of another origin cannot read.
func (s *server) csrfToken(c *gin.Context) string {
	sum := sha256.Sum256([]byte("csrf\x00" + s.cookie(c, s.portalCookieName())))
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}

// requireSameOrigin refuses a state-changing portal request from another
// origin: the CSRF token of the form must match, and a browser's Origin
// header (when sent) must be ours.
func (s *server) requireSameOrigin(c *gin.Context) {
	if o := c.GetHeader("Origin"); o != "" && s.BaseURL != nil && o != s.BaseURL.Scheme+"://"+s.BaseURL.Host {
		s.portalFail(c, &models.Error{Code: models.CodeForbidden, Message: "This form was sent from another site."})
		return
	}
	if c.Request.PostFormValue("csrf") != s.csrfToken(c) {
		s.portalFail(c, &models.Error{Code: models.CodeForbidden, Message: "This form has expired. Go back, reload the page and try again."})
		return
	}
	c.Next()
}

func (s *server) handlePortalHome(c *gin.Context) {
	sess := portalSession(c)
	d := portalData{Title: "Home", Session: sess, CSRF: s.csrfToken(c)}
	if s.Portal != nil {
		desks, err := s.Portal.Desks(c.Request.Context(), sess)
		if err != nil {
			s.portalFail(c, err)
			return
		}
		d.Desks = desks
	}
	s.renderPortal(c, http.StatusOK, "home", d)
}

func (s *server) handlePortalLogoutPage(c *gin.Context) {
	sess, err := s.SSO.Session(c.Request.Context(), c.Param("siteID"), s.cookie(c, s.portalCookieName()))
	if err != nil {
		s.renderPortal(c, http.StatusOK, "message", portalData{Title: "Signed out", Paragraphs: []string{"You are signed out."},
			Link: s.portalHome(c.Param("siteID")) + "login", LinkText: "Sign in"})
		return
	}
	s.renderPortal(c, http.StatusOK, "message", portalData{Title: "Sign out", Session: sess, CSRF: s.csrfToken(c),
		Paragraphs: []string{"Use the Sign out button at the top of the page to end your session."}})
}

func (s *server) handlePortalLogout(c *gin.Context) {
	siteID := c.Param("siteID")
	if err := s.SSO.Logout(c.Request.Context(), siteID, s.cookie(c, s.portalCookieName()), clientIP(c), c.Request.UserAgent()); err != nil {
		s.portalFail(c, err)
		return
	}
	s.setCookie(c, s.portalCookieName(), "", -1, http.SameSiteLaxMode)
	s.renderPortal(c, http.StatusOK, "message", portalData{Title: "Signed out",
		Paragraphs: []string{"You are signed out of the help center. To sign out of your company account too, sign out at your identity provider."},
		Link:       s.portalHome(siteID) + "login", LinkText: "Sign in again"})
}
