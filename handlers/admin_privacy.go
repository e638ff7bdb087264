package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// Privacy is the admin API's GDPR behaviour (SPEC 8): export, erasure,
// restriction, and the Personal Data Reporting cycle's status.
type Privacy interface {
	// Export writes the site's data (accountID "") or one person's as
	// JSON to w, streamed; an invalid account ID fails before anything
	// is written.
	Export(ctx context.Context, site *models.Site, actorAccountID, accountID string, w io.Writer) (models.ExportSummary, error)
	// Count says how many rows the export would hold.
	Count(ctx context.Context, site *models.Site, accountID string) (int64, error)
	Erase(ctx context.Context, site *models.Site, actorAccountID, accountID string) (*models.Erasure, error)
	Restrict(ctx context.Context, site *models.Site, actorAccountID, accountID, reason string) (*models.Restriction, error)
	Unrestrict(ctx context.Context, site *models.Site, actorAccountID, accountID string) error
	Restrictions(ctx context.Context, siteID, after string, limit int) ([]models.Restriction, error)
	Status(ctx context.Context, site *models.Site) (*models.PrivacyStatus, error)
	Rectify(ctx context.Context, site *models.Site, actorAccountID, accountID string, r models.Rectification) (*models.Rectified, error)
}

// maxRestrictionsPage bounds one page of restrictions.
const maxRestrictionsPage = 200

// handleAdminGDPRExport streams the export: GET /api/admin/gdpr/export
// [?accountId=…]. Rows are written as they are read, so memory stays
// constant; an error after the first byte can only end the stream (the
// JSON is then incomplete, which a reader notices), and is logged.
func (s *server) handleAdminGDPRExport(c *gin.Context) {
	caller := callerOf(c)
	accountID, ok := c.GetQuery("accountId")
	if ok && accountID == "" {
		s.fail(c, models.FieldError("accountId", "accountId is empty: leave it out to export the whole site."))
		return
	}
	w := &lazyWriter{c: c, name: exportFileName(accountID, s.Now())}
	// The server's write timeout (60 s for the whole answer) would cut a
	// large export short: each write gets a window of its own instead, and
	// the export as a whole a bound.
	ctx, cancel := context.WithTimeout(c.Request.Context(), exportMaxDuration)
	defer cancel()
	_, err := s.Privacy.Export(ctx, caller.Site, caller.AccountID, accountID, w)
	if err != nil {
		if !w.started {
			s.fail(c, err)
			return
		}
		s.Log.WarnContext(c, "gdpr export stopped", "request_id", requestID(c), "error", err.Error())
	}
}

// An export ends when it has run exportMaxDuration, or when its client
// took more than exportWriteWindow to accept a write.
const (
	exportMaxDuration = 30 * time.Minute
	exportWriteWindow = 60 * time.Second
)

func exportFileName(accountID string, now time.Time) string {
	kind := "site"
	if accountID != "" {
		kind = "person"
	}
	return "idbridge-export-" + kind + "-" + now.UTC().Format("20060102") + ".json"
}

// lazyWriter sends the export's headers with its first byte, so that an
// error before any byte is still a proper error answer.
type lazyWriter struct {
	c       *gin.Context
	name    string
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		h := l.c.Writer.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+l.name+`"`)
		h.Set("Cache-Control", "no-store")
		l.c.Writer.WriteHeader(http.StatusOK)
	}
	// Not every writer can (a test recorder): then the server's own
	// timeout stays.
	_ = http.NewResponseController(l.c.Writer).SetWriteDeadline(time.Now().Add(exportWriteWindow))
	n, err := l.c.Writer.Write(p)
	if err == nil {
		l.c.Writer.Flush()
	}
	return n, err
}

// handleAdminGDPRExportCount answers how many rows an export would hold:
// GET /api/admin/gdpr/export/count[?accountId=…] → {"rows": n}.
func (s *server) handleAdminGDPRExportCount(c *gin.Context) {
	caller := callerOf(c)
	accountID, ok := c.GetQuery("accountId")
	if ok && accountID == "" {
		s.fail(c, models.FieldError("accountId", "accountId is empty: leave it out to count the whole site."))
		return
	}
	n, err := s.Privacy.Count(c.Request.Context(), caller.Site, accountID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"rows": n})
}

// accountBody is a body naming one account: {"accountId": …}.
type accountBody struct {
	AccountID *string `json:"accountId"`
	Reason    *string `json:"reason"`
}

func readAccountBody(c *gin.Context) (accountBody, error) {
	var b accountBody
	if err := decodeJSON(c, &b); err != nil {
		return b, err
	}
	if b.AccountID == nil || *b.AccountID == "" {
		return b, models.FieldError("accountId", "accountId is required: the Atlassian account ID of the person.")
	}
	return b, nil
}

// erasureBody is the answer of POST /api/admin/gdpr/erase.
type erasureBody struct {
	Pseudonym      string           `json:"pseudonym"`
	Rows           map[string]int64 `json:"rows"`
	Tables         []string         `json:"tables"`
	DirectoryUsers int64            `json:"directoryUsers"`
	Notice         string           `json:"notice,omitempty"`
}

// handleAdminGDPRErase erases a person: 200 with what was erased, or 204
// when idbridge held nothing of them (recorded in the audit log either way).
func (s *server) handleAdminGDPRErase(c *gin.Context) {
	caller := callerOf(c)
	b, err := readAccountBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	e, err := s.Privacy.Erase(c.Request.Context(), caller.Site, caller.AccountID, *b.AccountID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	if e.Nothing() {
		c.Status(http.StatusNoContent)
		return
	}
	out := erasureBody{Pseudonym: e.Pseudonym, Rows: e.Rows, DirectoryUsers: e.DirectoryUsers}
	for t := range e.Rows {
		out.Tables = append(out.Tables, t)
	}
	sort.Strings(out.Tables)
	if e.DirectoryUsers > 0 {
		out.Notice = "This person was a user provisioned by the site's identity provider. Their directory record is erased here, but the identity provider still has them and will provision them again at its next push unless they are unassigned from the app there."
	}
	c.JSON(http.StatusOK, out)
}

// restrictionBody is a restriction as the admin API shows it.
type restrictionBody struct {
	AccountID     string     `json:"accountId"`
	Reason        string     `json:"reason"`
	RestrictedAt  time.Time  `json:"restrictedAt"`
	RestrictedBy  string     `json:"restrictedBy,omitempty"`
	BlockedCount  int64      `json:"blockedCount"`
	LastBlockedAt *time.Time `json:"lastBlockedAt"`
	LastBlocked   string     `json:"lastBlocked,omitempty"`
}

func toRestrictionBody(r *models.Restriction) restrictionBody {
	return restrictionBody{AccountID: r.AccountID, Reason: r.Reason, RestrictedAt: r.RestrictedAt, RestrictedBy: r.RestrictedBy,
		BlockedCount: r.BlockedCount, LastBlockedAt: r.LastBlockedAt, LastBlocked: r.LastBlocked}
}

// handleAdminGDPRRestrict restricts processing of a person's data:
// POST /api/admin/gdpr/restrict {"accountId", "reason"}.
func (s *server) handleAdminGDPRRestrict(c *gin.Context) {
	caller := callerOf(c)
	b, err := readAccountBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	reason := ""
	if b.Reason != nil {
		reason = *b.Reason
	}
	r, err := s.Privacy.Restrict(c.Request.Context(), caller.Site, caller.AccountID, *b.AccountID, reason)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, toRestrictionBody(r))
}

// handleAdminGDPRUnrestrict lifts a restriction:
// DELETE /api/admin/gdpr/restrict/{accountId}.
func (s *server) handleAdminGDPRUnrestrict(c *gin.Context) {
	caller := callerOf(c)
	if err := s.Privacy.Unrestrict(c.Request.Context(), caller.Site, caller.AccountID, c.Param("accountId")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// handleAdminGDPRRestrictions lists restrictions, a page at a time:
// GET /api/admin/gdpr/restrictions[?after=…&limit=…].
func (s *server) handleAdminGDPRRestrictions(c *gin.Context) {
	limit := 50
	if v := c.Query("limit"); v != "" {
		var n int
		if err := json.Unmarshal([]byte(v), &n); err != nil || n < 1 || n > maxRestrictionsPage {
			s.fail(c, models.FieldError("limit", "limit is a number from 1 to %d.", maxRestrictionsPage))
			return
		}
		limit = n
	}
	after := c.Query("after")
	if len(after) > 128 {
		s.fail(c, models.FieldError("after", "after is an account ID from the previous page."))
		return
	}
	rs, err := s.Privacy.Restrictions(c.Request.Context(), callerOf(c).Site.ID, after, limit+1)
	if err != nil {
		s.fail(c, err)
		return
	}
	var next *string
	if len(rs) > limit {
		rs = rs[:limit]
		n := rs[limit-1].AccountID
		next = &n
	}
	out := make([]restrictionBody, len(rs))
	for i := range rs {
		out[i] = toRestrictionBody(&rs[i])
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"restrictions": out, "next": next})
}

// privacyStatusBody is GET /api/admin/gdpr/status.
type privacyStatusBody struct {
	Restrictions int64         `json:"restrictions"`
	Reporting    reportingBody `json:"reporting"`
}

// reportingBody is GET /api/admin/gdpr/reporting, and the reporting part
// of GET /api/admin/gdpr/status: the site's Personal Data Reporting cycle.
type reportingBody struct {
	Enabled           bool       `json:"enabled"`
	AccountsHeld      int64      `json:"accountsHeld"`
	CyclePeriodDays   float64    `json:"cyclePeriodDays"`
	InProgress        bool       `json:"inProgress"`
	LastCycleAt       *time.Time `json:"lastCycleAt"`
	NextCycleAt       *time.Time `json:"nextCycleAt"`
	RetryAt           *time.Time `json:"retryAt"`
	AccountsReported  int64      `json:"accountsReported"`
	AccountsClosed    int64      `json:"accountsClosed"`
	ClosedErased      int64      `json:"closedAccountsErased"`
	AccountsUpdated   int64      `json:"accountsUpdated"`
	AnswersIgnored    int64      `json:"answersIgnored"`
	LastStatus        string     `json:"lastStatus,omitempty"`
	LastStatusMessage string     `json:"lastMessage,omitempty"`
}

func toReportingBody(st *models.PrivacyStatus) reportingBody {
	return reportingBody{
		Enabled: st.ReportingEnabled, AccountsHeld: st.AccountsHeld, CyclePeriodDays: st.CyclePeriod.Hours() / 24,
		InProgress: st.CycleInProgress, LastCycleAt: st.LastCycleAt, NextCycleAt: st.NextCycleAt, RetryAt: st.RetryAt,
		AccountsReported: st.Reported, AccountsClosed: st.Closed, ClosedErased: st.Erased, AccountsUpdated: st.Updated,
		AnswersIgnored: st.Ignored, LastStatus: st.LastStatus, LastStatusMessage: st.LastMessage,
	}
}

func (s *server) handleAdminGDPRStatus(c *gin.Context) {
	st, err := s.Privacy.Status(c.Request.Context(), callerOf(c).Site)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, privacyStatusBody{Restrictions: st.Restrictions, Reporting: toReportingBody(st)})
}

// handleAdminGDPRReporting answers the reporting cycle's facts alone, the
// route SPEC 4 names; the admin page reads them within /gdpr/status.
func (s *server) handleAdminGDPRReporting(c *gin.Context) {
	st, err := s.Privacy.Status(c.Request.Context(), callerOf(c).Site)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, toReportingBody(st))
}

// rectifyBody is POST /api/admin/gdpr/rectify.
type rectifyBody struct {
	AccountID   *string  `json:"accountId"`
	DisplayName optional `json:"displayName"`
	GivenName   optional `json:"givenName"`
	FamilyName  optional `json:"familyName"`
	Email       optional `json:"email"`
}

// handleAdminGDPRRectify corrects a person's directory attributes.
func (s *server) handleAdminGDPRRectify(c *gin.Context) {
	caller := callerOf(c)
	var b rectifyBody
	if err := decodeJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	if b.AccountID == nil || *b.AccountID == "" {
		s.fail(c, models.FieldError("accountId", "accountId is required: the Atlassian account ID of the person."))
		return
	}
	var r models.Rectification
	for _, f := range []struct {
		name string
		o    optional
		dst  **string
	}{{"displayName", b.DisplayName, &r.DisplayName}, {"givenName", b.GivenName, &r.GivenName}, {"familyName", b.FamilyName, &r.FamilyName}, {"email", b.Email, &r.Email}} {
		v, err := f.o.str(f.name)
		if err != nil {
			s.fail(c, err)
			return
		}
		*f.dst = v
	}
	out, err := s.Privacy.Rectify(c.Request.Context(), caller.Site, caller.AccountID, *b.AccountID, r)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"accountId": *b.AccountID, "directoryUsers": out.UserIDs, "fields": out.Fields,
		"notice": "The correction is applied in idbridge at once and taken to the site by the sync. Your identity provider remains the source of these attributes: correct them there too, or its next change will replace them."})
}
