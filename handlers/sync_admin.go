package handlers

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// Sync is the outbox sync's part of the admin API (SPEC 6.1): its status
// and the admin's actions on it. Every action answers the new status.
type Sync interface {
	Status(ctx context.Context, siteID string) (*models.SyncStatus, error)
	Retry(ctx context.Context, caller *models.Caller, id int64) (*models.SyncStatus, error)
	Resume(ctx context.Context, caller *models.Caller) (*models.SyncStatus, error)
	ApplyHeld(ctx context.Context, caller *models.Caller) (*models.SyncStatus, error)
	DiscardHeld(ctx context.Context, caller *models.Caller) (*models.SyncStatus, error)
	Directory(ctx context.Context, siteID, kind, cursor, q string) (*models.SyncDirectoryPage, error)
}

// syncBody is GET /api/admin/sync.
type syncBody struct {
	Paused                  bool           `json:"paused"`
	PausedReason            *string        `json:"pausedReason"`
	Resumable               bool           `json:"resumable"`
	Pending                 int            `json:"pending"`
	OldestPendingAgeSeconds int64          `json:"oldestPendingAgeSeconds"`
	Counts                  syncCountsBody `json:"counts"`
	Failed                  []syncItemBody `json:"failed"`
	Recent                  []syncItemBody `json:"recent"`
	Held                    *syncHeldBody  `json:"held"`
}

type syncCountsBody struct {
	Applied       int `json:"applied"`
	Failed        int `json:"failed"`
	NotApplicable int `json:"notApplicable"`
}

// syncItemBody is one change: failed ones carry attempts and error, recent
// ones outcome and at; both say what they were about.
type syncItemBody struct {
	ID          int64      `json:"id"`
	Op          string     `json:"op"`
	Kind        string     `json:"kind"`
	Subject     string     `json:"subject"`
	AtlassianID string     `json:"atlassianId,omitempty"`
	Attempts    *int       `json:"attempts,omitempty"`
	Error       *string    `json:"error,omitempty"`
	UpdatedAt   *time.Time `json:"updatedAt,omitempty"`
	Outcome     string     `json:"outcome,omitempty"`
	At          *time.Time `json:"at,omitempty"`
}

type syncHeldBody struct {
	Count    int       `json:"count"`
	Since    time.Time `json:"since"`
	Reason   string    `json:"reason"`
	Subjects []string  `json:"subjects"`
}

func toSyncBody(st *models.SyncStatus, now time.Time) syncBody {
	b := syncBody{
		Paused:    st.Paused,
		Resumable: st.Resumable,
		Pending:   st.Pending,
		Counts:    syncCountsBody{Applied: st.Applied, Failed: st.Failed, NotApplicable: st.NotApplicable},
		Failed:    make([]syncItemBody, 0, len(st.FailedItems)),
		Recent:    make([]syncItemBody, 0, len(st.Recent)),
	}
	if st.PausedReason != "" {
		r := st.PausedReason
		b.PausedReason = &r
	}
	if st.OldestPendingAt != nil {
		b.OldestPendingAgeSeconds = max(int64(now.Sub(*st.OldestPendingAt)/time.Second), 0)
	}
	for _, it := range st.FailedItems {
		attempts, msg, at := it.Attempts, it.Error, it.At
		b.Failed = append(b.Failed, syncItemBody{ID: it.ID, Op: string(it.Op), Kind: it.Kind, Subject: it.Subject,
			AtlassianID: it.AtlassianID, Attempts: &attempts, Error: &msg, UpdatedAt: &at})
	}
	for _, it := range st.Recent {
		at := it.At
		item := syncItemBody{ID: it.ID, Op: string(it.Op), Kind: it.Kind, Subject: it.Subject,
			AtlassianID: it.AtlassianID, Outcome: it.Outcome, At: &at}
		if it.Error != "" {
			msg := it.Error
			item.Error = &msg
		}
		b.Recent = append(b.Recent, item)
	}
	if st.Held != nil {
		subjects := st.Held.Subjects
		if subjects == nil {
			subjects = []string{}
		}
		b.Held = &syncHeldBody{Count: st.Held.Count, Since: st.Held.Since, Reason: st.Held.Reason, Subjects: subjects}
	}
	return b
}

func (s *server) writeSync(c *gin.Context, st *models.SyncStatus, err error) {
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, toSyncBody(st, s.Now()))
}

func (s *server) handleAdminSyncGet(c *gin.Context) {
	st, err := s.Sync.Status(c.Request.Context(), callerOf(c).Site.ID)
	s.writeSync(c, st, err)
}

func (s *server) handleAdminSyncRetry(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(c, models.FieldError("id", "%q is not the number of a change.", truncateText(c.Param("id"), 40)))
		return
	}
	st, err := s.Sync.Retry(c.Request.Context(), callerOf(c), id)
	s.writeSync(c, st, err)
}

func (s *server) handleAdminSyncResume(c *gin.Context) {
	st, err := s.Sync.Resume(c.Request.Context(), callerOf(c))
	s.writeSync(c, st, err)
}

func (s *server) handleAdminSyncHeldApply(c *gin.Context) {
	st, err := s.Sync.ApplyHeld(c.Request.Context(), callerOf(c))
	s.writeSync(c, st, err)
}

func (s *server) handleAdminSyncHeldDiscard(c *gin.Context) {
	st, err := s.Sync.DiscardHeld(c.Request.Context(), callerOf(c))
	s.writeSync(c, st, err)
}

// syncDirectoryBody is GET /api/admin/sync/directory: directory users or
// groups with their IDs in the Atlassian site.
type syncDirectoryBody struct {
	Items []syncDirectoryItem `json:"items"`
	Next  *string             `json:"next"`
}

type syncDirectoryItem struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Active      bool    `json:"active"`
	AtlassianID *string `json:"atlassianId"`
	State       string  `json:"state"`
	Pending     bool    `json:"pending"`
}

func (s *server) handleAdminSyncDirectory(c *gin.Context) {
	page, err := s.Sync.Directory(c.Request.Context(), callerOf(c).Site.ID, c.Query("type"), c.Query("cursor"), c.Query("q"))
	if err != nil {
		s.fail(c, err)
		return
	}
	b := syncDirectoryBody{Items: make([]syncDirectoryItem, 0, len(page.Items))}
	for _, it := range page.Items {
		item := syncDirectoryItem{ID: it.ID, Name: it.Name, Active: it.Active, State: string(it.State), Pending: it.Pending}
		if it.AtlassianID != "" {
			id := it.AtlassianID
			item.AtlassianID = &id
		}
		b.Items = append(b.Items, item)
	}
	if page.Next != "" {
		b.Next = &page.Next
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, b)
}
