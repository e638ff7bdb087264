// Package portal is the customer portal's work on Jira Service Management
// (SPEC 7): the site's service desks and request types, the request form
// built from a request type's fields, raising a request on behalf of the
// signed-in customer, the customer's own requests (checked again on every
// read), a request's public comments, and adding one. It acts through the
// site's service account; who the customer is comes from the portal
// session that app/sso started.
package portal

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"idbridge/app/atlassian"
	"idbridge/app/audit"
	"idbridge/app/store"
	"idbridge/models"
)

// Bounds of what the portal reads and shows.
const (
	maxDesks        = 50
	maxRequestTypes = 100
	maxRequests     = 50
	maxComments     = 100
	maxSummary      = 255
	callTimeout     = 30 * time.Second
)

// Service is the portal for every site of this process.
type Service struct {
	store    *store.Store
	accounts *atlassian.ServiceAccounts
	now      func() time.Time
	log      *slog.Logger
}

// New builds the service; it starts nothing.
func New(st *store.Store, accounts *atlassian.ServiceAccounts, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: st, accounts: accounts, now: now, log: log}
}

var errUnavailable = &models.Error{Code: models.CodeUnavailable, Message: "The help center cannot reach Jira Service Management just now. Try again in a minute."}

// client returns the site's service-account client.
func (s *Service) client(ctx context.Context, siteID string) (*atlassian.ServiceClient, *models.Site, error) {
	site, err := s.store.View(ctx).FindSiteByID(siteID)
	if err != nil || !site.Active() {
		return nil, nil, &models.Error{Code: models.CodeNotFound, Message: "There is no help center at this address."}
	}
	acc, err := s.store.View(ctx).FindServiceAccount(site.ID)
	if err != nil {
		return nil, nil, &models.Error{Code: models.CodeUnavailable, Message: "This help center is not fully set up. Contact its administrators."}
	}
	c, err := s.accounts.Client(site, acc)
	if err != nil {
		return nil, nil, &models.Error{Code: models.CodeUnavailable, Message: "This help center is not fully set up. Contact its administrators."}
	}
	return c, site, nil
}

// jsmError turns an Atlassian failure into words for the customer.
func (s *Service) jsmError(ctx context.Context, what string, err error) error {
	switch models.ErrorCode(err) {
	case models.CodeNotFound:
		return &models.Error{Code: models.CodeNotFound, Message: "That does not exist, or you cannot see it."}
	case models.CodeInvalid:
		return &models.Error{Code: models.CodeInvalid, Message: "Jira Service Management did not accept this: " + strings.TrimPrefix(models.ErrorMessage(err), "Atlassian rejected the request: ")}
	}
	s.log.WarnContext(ctx, "portal: jsm call failed", "what", what, "error", err.Error())
	return errUnavailable
}

// allowedDesks is the site's configured service desks (empty: all).
func (s *Service) allowedDesks(ctx context.Context, siteID string) ([]string, error) {
	st, err := s.store.View(ctx).FindSSOSettings(siteID)
	if models.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return st.ServiceDeskIDs, nil
}

// Desks lists the service desks the portal offers, with their request types.
func (s *Service) Desks(ctx context.Context, sess *models.PortalSession) ([]models.PortalDesk, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c, _, err := s.client(ctx, sess.SiteID)
	if err != nil {
		return nil, err
	}
	allowed, err := s.allowedDesks(ctx, sess.SiteID)
	if err != nil {
		return nil, err
	}
	desks, err := c.ServiceDesks(ctx, maxDesks)
	if err != nil {
		return nil, s.jsmError(ctx, "service desks", err)
	}
	var out []models.PortalDesk
	for _, d := range desks {
		if len(allowed) > 0 && !slices.Contains(allowed, d.ID) {
			continue
		}
		types, err := c.RequestTypes(ctx, d.ID, maxRequestTypes)
		if err != nil {
			return nil, s.jsmError(ctx, "request types", err)
		}
		out = append(out, models.PortalDesk{ID: d.ID, Name: d.ProjectName, RequestTypes: requestTypes(types)})
	}
	return out, nil
}

// Form reads the form of a request type of an offered service desk.
func (s *Service) Form(ctx context.Context, sess *models.PortalSession, deskID, typeID string) (*models.PortalForm, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c, _, err := s.client(ctx, sess.SiteID)
	if err != nil {
		return nil, err
	}
	allowed, err := s.allowedDesks(ctx, sess.SiteID)
	if err != nil {
		return nil, err
	}
	if len(allowed) > 0 && !slices.Contains(allowed, deskID) {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "That does not exist, or you cannot see it."}
	}
	desk, err := c.ServiceDesk(ctx, deskID)
	if err != nil {
		return nil, s.jsmError(ctx, "service desk", err)
	}
	types, err := c.RequestTypes(ctx, deskID, maxRequestTypes)
	if err != nil {
		return nil, s.jsmError(ctx, "request types", err)
	}
	f := &models.PortalForm{Desk: models.PortalDesk{ID: desk.ID, Name: desk.ProjectName}}
	found := false
	for _, rt := range types {
		if rt.ID == typeID {
			f.RequestType, found = models.PortalRequestType{ID: rt.ID, Name: rt.Name, Description: rt.Description}, true
		}
	}
	if !found {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "That does not exist, or you cannot see it."}
	}
	fields, err := c.RequestTypeFields(ctx, deskID, typeID)
	if err != nil {
		return nil, s.jsmError(ctx, "request type fields", err)
	}
	for _, rf := range fields {
		fd := models.PortalField{ID: rf.FieldID, Label: rf.Name, Description: rf.Description, Required: rf.Required}
		switch {
		case rf.FieldID == "summary":
			fd.Kind = "summary"
		case rf.FieldID == "description" || rf.JiraSchema.Type == "string" && len(rf.ValidValues) == 0 && strings.Contains(rf.JiraSchema.System, "textarea"):
			fd.Kind = "textarea"
		case len(rf.ValidValues) > 0 && (rf.JiraSchema.Type == "option" || rf.JiraSchema.Type == "priority"):
			fd.Kind = "select"
			for _, v := range rf.ValidValues {
				fd.Options = append(fd.Options, v.Value)
			}
		case rf.JiraSchema.Type == "string" || rf.JiraSchema.Type == "":
			fd.Kind = "text"
		default:
			if rf.Required {
				// A required field the portal cannot fill: say so rather
				// than send a request JSM will refuse.
				return nil, &models.Error{Code: models.CodeUnavailable, Message: fmt.Sprintf("This request type needs a %q field that this help center cannot show yet. Contact its administrators.", rf.Name)}
			}
			continue
		}
		f.Fields = append(f.Fields, fd)
	}
	return f, nil
}

// Raise creates a request of the form's type on behalf of the customer,
// with values for the form's fields (required ones enforced, texts
// converted from the Markdown subset), and records request_created.
func (s *Service) Raise(ctx context.Context, sess *models.PortalSession, deskID, typeID string, values map[string]string, ip, userAgent string) (string, error) {
	form, err := s.Form(ctx, sess, deskID, typeID)
	if err != nil {
		return "", err
	}
	fields := map[string]any{}
	for _, f := range form.Fields {
		v := strings.TrimSpace(values[f.ID])
		if v == "" {
			if f.Required {
				return "", models.FieldError(f.ID, "%s is required.", f.Label)
			}
			continue
		}
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return "", models.FieldError(f.ID, "%s contains characters that cannot be sent.", f.Label)
		}
		switch f.Kind {
		case "summary", "text":
			if strings.ContainsAny(v, "\r\n") || utf8.RuneCountInString(v) > maxSummary {
				return "", models.FieldError(f.ID, "%s must be one line of at most %d characters.", f.Label, maxSummary)
			}
			fields[f.ID] = v
		case "textarea":
			if len(v) > MaxTextBytes {
				return "", models.FieldError(f.ID, "%s is longer than %d KiB.", f.Label, MaxTextBytes>>10)
			}
			fields[f.ID] = ToWiki(v)
		case "select":
			if !slices.Contains(f.Options, v) {
				return "", models.FieldError(f.ID, "Choose one of the options for %s.", f.Label)
			}
			fields[f.ID] = map[string]string{"value": v}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c, _, err := s.client(ctx, sess.SiteID)
	if err != nil {
		return "", err
	}
	req, err := c.CreateRequest(ctx, deskID, typeID, sess.AccountID, fields)
	if err != nil {
		return "", s.jsmError(ctx, "create request", err)
	}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		_, err := audit.Record(tx, models.AuditEvent{SiteID: sess.SiteID, ActorAccountID: sess.AccountID, Event: models.AuditRequestCreated,
			IdP: sess.IdPID, IP: ip, UserAgent: userAgent, Fields: []string{"request:" + req.IssueKey}})
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "portal: record request_created", "site_id", sess.SiteID, "error", err.Error())
	}
	return req.IssueKey, nil
}

// MyRequests lists the customer's own requests (reporter or participant),
// each checked again: the search's answer is not trusted on its own.
func (s *Service) MyRequests(ctx context.Context, sess *models.PortalSession) ([]models.PortalRequestSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c, _, err := s.client(ctx, sess.SiteID)
	if err != nil {
		return nil, err
	}
	issues, err := c.CustomerRequests(ctx, sess.AccountID, maxRequests)
	if err != nil {
		return nil, s.jsmError(ctx, "search requests", err)
	}
	var out []models.PortalRequestSummary
	for _, is := range issues {
		mine := is.Fields.Reporter != nil && is.Fields.Reporter.AccountID == sess.AccountID
		if !mine {
			participants, err := c.RequestParticipants(ctx, is.Key)
			if err != nil {
				return nil, s.jsmError(ctx, "participants", err)
			}
			mine = slices.Contains(participants, sess.AccountID)
		}
		if !mine {
			continue
		}
		out = append(out, models.PortalRequestSummary{Key: is.Key, Summary: is.Fields.Summary, Status: is.Fields.Status.Name, Created: readableTime(is.Fields.Created)})
	}
	return out, nil
}

// errNotYours is what a customer sees for a request that is not theirs:
// the same as for one that does not exist.
var errNotYours = &models.Error{Code: models.CodeNotFound, Message: "That does not exist, or you cannot see it."}

// ownRequest reads a request and checks that the customer reported it or
// participates in it; another's is recorded as access_denied.
func (s *Service) ownRequest(ctx context.Context, c *atlassian.ServiceClient, sess *models.PortalSession, key, ip, userAgent string) (*atlassian.Request, error) {
	if key == "" || len(key) > 64 || strings.ContainsAny(key, "/?#%\\ ") {
		return nil, errNotYours
	}
	req, err := c.Request(ctx, key)
	if err != nil {
		return nil, s.jsmError(ctx, "request", err)
	}
	if req.Reporter.AccountID == sess.AccountID {
		return req, nil
	}
	participants, err := c.RequestParticipants(ctx, key)
	if err != nil {
		return nil, s.jsmError(ctx, "participants", err)
	}
	if slices.Contains(participants, sess.AccountID) {
		return req, nil
	}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		_, err := audit.Record(tx, models.AuditEvent{SiteID: sess.SiteID, ActorAccountID: sess.AccountID, Event: models.AuditAccessDenied,
			IdP: sess.IdPID, IP: ip, UserAgent: userAgent, Reason: "not_own_request"})
		return err
	})
	if err != nil {
		return nil, err
	}
	return nil, errNotYours
}

// Request shows one of the customer's requests with its public comments.
func (s *Service) Request(ctx context.Context, sess *models.PortalSession, key, ip, userAgent string) (*models.PortalRequest, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c, _, err := s.client(ctx, sess.SiteID)
	if err != nil {
		return nil, err
	}
	req, err := s.ownRequest(ctx, c, sess, key, ip, userAgent)
	if err != nil {
		return nil, err
	}
	comments, err := c.PublicComments(ctx, req.IssueKey, maxComments)
	if err != nil {
		return nil, s.jsmError(ctx, "comments", err)
	}
	v := &models.PortalRequest{Key: req.IssueKey, Summary: req.Field("summary"), Status: req.CurrentStatus.Status,
		Created: readableTime(req.CreatedDate.ISO8601), Description: ToHTML(req.Field("description"))}
	for _, cm := range comments {
		if !cm.Public {
			continue
		}
		v.Comments = append(v.Comments, models.PortalComment{Author: cm.Author.DisplayName, Created: readableTime(cm.Created.ISO8601), Body: ToHTML(cm.Body)})
	}
	return v, nil
}

// Comment adds a public comment to one of the customer's requests. JSM
// has no way to comment as the customer through the service account, so
// the comment says whom it is from.
func (s *Service) Comment(ctx context.Context, sess *models.PortalSession, key, body, ip, userAgent string) error {
	body = strings.TrimSpace(body)
	switch {
	case body == "":
		return models.FieldError("comment", "Write a comment first.")
	case len(body) > MaxTextBytes:
		return models.FieldError("comment", "The comment is longer than %d KiB.", MaxTextBytes>>10)
	case !utf8.ValidString(body) || strings.ContainsRune(body, 0):
		return models.FieldError("comment", "The comment contains characters that cannot be sent.")
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c, _, err := s.client(ctx, sess.SiteID)
	if err != nil {
		return err
	}
	req, err := s.ownRequest(ctx, c, sess, key, ip, userAgent)
	if err != nil {
		return err
	}
	who := sess.DisplayName
	if who == "" {
		who = "the customer"
	}
	text := "_" + escapeWiki("From "+who+", in the help center:") + "_\n\n" + ToWiki(body)
	if _, err := c.AddPublicComment(ctx, req.IssueKey, text); err != nil {
		return s.jsmError(ctx, "add comment", err)
	}
	return nil
}

func requestTypes(in []atlassian.RequestType) []models.PortalRequestType {
	out := make([]models.PortalRequestType, len(in))
	for i, rt := range in {
		out[i] = models.PortalRequestType{ID: rt.ID, Name: rt.Name, Description: rt.Description}
	}
	return out
}

// readableTime shows an Atlassian timestamp as a person reads it, in UTC
// (the portal has no time zone of the customer); unreadable ones as sent.
func readableTime(iso string) string {
	for _, layout := range []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05-0700", time.RFC3339} {
		if t, err := time.Parse(layout, iso); err == nil {
			return t.UTC().Format("2 Jan 2006, 15:04 UTC")
		}
	}
	return iso
}
