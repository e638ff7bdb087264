package sync

import (
	"context"
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"idbridge/models"
)

// DirectoryPageSize is how many users or groups one page of the directory
// listing has.
const DirectoryPageSize = 50

// maxDirectoryQuery bounds the name prefix an admin may search for.
const maxDirectoryQuery = 200

// Directory lists the site's directory users (kind "users") or groups
// ("groups") with their Atlassian account or group IDs, by name, one page
// after cursor (GET /api/admin/sync/directory). q keeps those whose name
// starts with it (case-insensitive).
func (w *Worker) Directory(ctx context.Context, siteID, kind, cursor, q string) (*models.SyncDirectoryPage, error) {
	var groups bool
	switch kind {
	case "", "users":
	case "groups":
		groups = true
	default:
		return nil, models.FieldError("type", "type must be users or groups.")
	}
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(b) == 0 || len(b) > 1024 || !utf8.Valid(b) {
			return nil, models.FieldError("cursor", "This cursor is not one idbridge gave out: start again from the first page.")
		}
		after = string(b)
	}
	q = strings.TrimSpace(q)
	if len(q) > maxDirectoryQuery || !utf8.ValidString(q) || strings.ContainsRune(q, 0) {
		return nil, models.FieldError("q", "Search for at most %d characters of a name.", maxDirectoryQuery)
	}
	rows, err := w.store.View(ctx).ListSyncDirectory(siteID, groups, after, q, DirectoryPageSize+1)
	if err != nil {
		return nil, err
	}
	page := &models.SyncDirectoryPage{Items: make([]models.SyncDirectoryEntry, 0, min(len(rows), DirectoryPageSize))}
	for i, r := range rows {
		if i == DirectoryPageSize {
			page.Next = base64.RawURLEncoding.EncodeToString([]byte(rows[i-1].Key))
			break
		}
		page.Items = append(page.Items, models.SyncDirectoryEntry{ID: r.ID, Name: r.Name, Active: r.Active,
			AtlassianID: r.AtlassianID, State: models.SyncUserState(r.State), Pending: r.Open})
	}
	return page, nil
}
