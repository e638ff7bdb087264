package privacy

import (
	"context"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"idbridge/app/audit"
	"idbridge/app/store"
	"idbridge/models"
)

// DirectoryPatch applies one SCIM PatchOp to directory users of a site
// exactly as an identity provider's PATCH of each would (validated, the
// versioned write, the outbox items that take the change to the site), all
// of them in one transaction in which within runs after them: nothing is
// written unless everything is. The composition root gives the
// provisioning service's (PatchUsers).
type DirectoryPatch func(ctx context.Context, siteID string, userIDs []string, body []byte, within func(tx *store.Tx) error) error

// maxRectifiedLength bounds a corrected attribute.
const maxRectifiedLength = 256

// Rectify corrects the directory attributes of the person's directory
// users (GDPR Art. 16): applied at once, taken to the site by the sync, and
// recorded as record_corrected (section "directory", the attributes'
// names). The correction of every one of the person's directory users,
// their outbox items and the audit event are written in one transaction:
// all of it or, when anything fails, none of it. The identity provider
// stays the source: its next change of the same attributes wins, which the
// answer says.
func (s *Service) Rectify(ctx context.Context, site *models.Site, actorAccountID, accountID string, r models.Rectification) (*models.Rectified, error) {
	if !models.ValidAccountID(accountID) {
		return nil, badAccountID()
	}
	if s.cfg.PatchDirectoryUsers == nil {
		return nil, &models.Error{Code: models.CodePrecondition, Message: "rectification of directory attributes is not available"}
	}
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	var ops []op
	var fields []string
	for _, f := range []struct {
		name, path string
		v          *string
	}{
		{"displayName", "displayName", r.DisplayName}, {"givenName", "name.givenName", r.GivenName},
		{"familyName", "name.familyName", r.FamilyName}, {"email", "emails", r.Email},
	} {
		if f.v == nil {
			continue
		}
		v := strings.TrimSpace(*f.v)
		if v == "" || utf8.RuneCountInString(v) > maxRectifiedLength || !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r\n") {
			return nil, models.FieldError(f.name, "%s must be text of 1 to %d characters on one line.", f.name, maxRectifiedLength)
		}
		if f.name == "email" {
			at := strings.LastIndexByte(v, '@')
			if at < 1 || at == len(v)-1 || strings.ContainsAny(v, " \t") {
				return nil, models.FieldError("email", "%q is not an email address.", v)
			}
			ops = append(ops, op{"replace", f.path, []map[string]any{{"value": v, "type": "work", "primary": true}}})
		} else {
			ops = append(ops, op{"replace", f.path, v})
		}
		fields = append(fields, f.name)
	}
	if len(ops) == 0 {
		return nil, &models.Error{Code: models.CodeInvalid, Message: "Send at least one of displayName, givenName, familyName or email."}
	}
	ids, err := s.store.View(ctx).DirectoryUsersOfAccount(site.ID, accountID)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, &models.Error{Code: models.CodeNotFound, Message: "idbridge has no provisioned directory user with this Atlassian account ID."}
	}
	body, err := json.Marshal(map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops})
	if err != nil {
		return nil, err
	}
	err = s.cfg.PatchDirectoryUsers(ctx, site.ID, ids, body, func(tx *store.Tx) error {
		_, err := audit.Record(tx, models.AuditEvent{SiteID: site.ID, ActorAccountID: actorAccountID, TargetAccountID: accountID,
			Event: models.AuditRecordCorrected, Section: "directory", Fields: fields})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &models.Rectified{UserIDs: ids, Fields: fields}, nil
}
