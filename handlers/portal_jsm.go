package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// Portal is the customer portal's work on JSM, for a signed-in customer.
type Portal interface {
	Desks(ctx context.Context, sess *models.PortalSession) ([]models.PortalDesk, error)
	Form(ctx context.Context, sess *models.PortalSession, deskID, typeID string) (*models.PortalForm, error)
	Raise(ctx context.Context, sess *models.PortalSession, deskID, typeID string, values map[string]string, ip, userAgent string) (string, error)
	MyRequests(ctx context.Context, sess *models.PortalSession) ([]models.PortalRequestSummary, error)
	Request(ctx context.Context, sess *models.PortalSession, key, ip, userAgent string) (*models.PortalRequest, error)
	Comment(ctx context.Context, sess *models.PortalSession, key, body, ip, userAgent string) error
}

func (s *server) handlePortalForm(c *gin.Context) {
	sess := portalSession(c)
	form, err := s.Portal.Form(c.Request.Context(), sess, c.Param("deskID"), c.Param("typeID"))
	if err != nil {
		s.portalFail(c, err)
		return
	}
	s.renderPortal(c, http.StatusOK, "form", portalData{Title: form.RequestType.Name, Session: sess, CSRF: s.csrfToken(c),
		Form: form, Values: map[string]string{}})
}

func (s *server) handlePortalRaise(c *gin.Context) {
	sess := portalSession(c)
	values := map[string]string{}
	for k, v := range c.Request.PostForm {
		if id, ok := strings.CutPrefix(k, "f."); ok && len(v) > 0 {
			values[id] = v[0]
		}
	}
	key, err := s.Portal.Raise(c.Request.Context(), sess, c.Param("deskID"), c.Param("typeID"), values, clientIP(c), c.Request.UserAgent())
	if err != nil {
		var me *models.Error
		if errors.As(err, &me) && me.Code == models.CodeInvalid {
			// Show the form again, with what was entered and the error
			// next to it.
			form, ferr := s.Portal.Form(c.Request.Context(), sess, c.Param("deskID"), c.Param("typeID"))
			if ferr == nil {
				s.renderPortal(c, http.StatusBadRequest, "form", portalData{Title: form.RequestType.Name, Session: sess, CSRF: s.csrfToken(c),
					Form: form, Values: values, Error: me.Message, ErrorField: me.Field})
				return
			}
		}
		s.portalFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, s.portalHome(sess.SiteID)+"requests/"+url.PathEscape(key)+"?created=1")
}

func (s *server) handlePortalRequests(c *gin.Context) {
	sess := portalSession(c)
	reqs, err := s.Portal.MyRequests(c.Request.Context(), sess)
	if err != nil {
		s.portalFail(c, err)
		return
	}
	s.renderPortal(c, http.StatusOK, "requests", portalData{Title: "Your requests", Session: sess, CSRF: s.csrfToken(c), Requests: reqs})
}

func (s *server) handlePortalRequest(c *gin.Context) {
	sess := portalSession(c)
	req, err := s.Portal.Request(c.Request.Context(), sess, c.Param("key"), clientIP(c), c.Request.UserAgent())
	if err != nil {
		s.portalFail(c, err)
		return
	}
	d := portalData{Title: req.Key, Session: sess, CSRF: s.csrfToken(c), Request: req, Values: map[string]string{}}
	switch c.Query("done") + c.Query("created") {
	case "1":
		d.Notice = "Your request was sent."
	case "comment":
		d.Notice = "Your comment was added."
	}
	s.renderPortal(c, http.StatusOK, "request", d)
}

func (s *server) handlePortalComment(c *gin.Context) {
	sess := portalSession(c)
	key := c.Param("key")
	body := c.Request.PostFormValue("comment")
	err := s.Portal.Comment(c.Request.Context(), sess, key, body, clientIP(c), c.Request.UserAgent())
	if err != nil {
		var me *models.Error
		if errors.As(err, &me) && me.Code == models.CodeInvalid {
			req, rerr := s.Portal.Request(c.Request.Context(), sess, key, clientIP(c), c.Request.UserAgent())
			if rerr == nil {
				s.renderPortal(c, http.StatusBadRequest, "request", portalData{Title: req.Key, Session: sess, CSRF: s.csrfToken(c),
					Request: req, Values: map[string]string{"comment": body}, Error: me.Message})
				return
			}
		}
		s.portalFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, s.portalHome(sess.SiteID)+"requests/"+url.PathEscape(key)+"?done=comment")
}
