package provisioning

import (
	"context"
	"slices"

	"idbridge/app/audit"
	"idbridge/app/store"
	"idbridge/models"
)

// Provisioning returns the site's provisioning settings.
func (s *Service) Provisioning(ctx context.Context, siteID string) (*models.Provisioning, error) {
	return s.store.View(ctx).FindProvisioning(siteID)
}

// DirectoryCounts counts the site's provisioned users and groups.
func (s *Service) DirectoryCounts(ctx context.Context, siteID string) (users, groups int, err error) {
	view := s.store.View(ctx)
	if _, users, err = view.ListDirectoryUsers(siteID, store.DirectoryQuery{}); err != nil {
		return 0, 0, err
	}
	if _, groups, err = view.ListDirectoryGroups(siteID, store.DirectoryQuery{}); err != nil {
		return 0, 0, err
	}
	return users, groups, nil
}

// UpdateProvisioning applies a site admin's change of the settings, with a
// config_changed audit event naming the fields, in one transaction.
// Turning provisioning off revokes the token at once (SCIM answers 401) and
// keeps the directory; turning it on takes a token (RotateToken).
func (s *Service) UpdateProvisioning(ctx context.Context, caller *models.Caller, upd models.ProvisioningUpdate) (*models.Provisioning, error) {
	if caller == nil || caller.Site == nil {
		return nil, &models.Error{Code: models.CodeForbidden, Message: "this is for site administrators"}
	}
	siteID := caller.Site.ID
	if upd.Deactivation != nil && !slices.Contains(models.DeactivationModes(), *upd.Deactivation) {
		return nil, models.FieldError("deactivation", "deactivation must be one of remove_groups, remove_from_site or suspend")
	}
	if upd.ProvisionAs != nil && *upd.ProvisionAs != models.ProvisionAccount && *upd.ProvisionAs != models.ProvisionCustomer {
		return nil, models.FieldError("provisionAs", "provisionAs must be account or customer")
	}
	if upd.DeletionThreshold != nil && (*upd.DeletionThreshold < 0 || *upd.DeletionThreshold > 100) {
		return nil, models.FieldError("deletionThreshold", "deletionThreshold is a percentage of the provisioned users, from 0 (no brake) to 100")
	}
	if upd.Products != nil {
		for _, p := range *upd.Products {
			if !slices.Contains(models.ProvisioningProducts(), p) {
				return nil, models.FieldError("products", "%q is not a product idbridge can give access to", p)
			}
		}
	}
	var out *models.Provisioning
	revoked := false
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		cur, err := tx.FindProvisioning(siteID)
		if err != nil {
			return err
		}
		next := *cur
		var fields []string
		if upd.Deactivation != nil && *upd.Deactivation != cur.Deactivation {
			next.Deactivation = *upd.Deactivation
			fields = append(fields, "deactivation")
		}
		if upd.ProvisionAs != nil && *upd.ProvisionAs != cur.ProvisionAs {
			next.ProvisionAs = *upd.ProvisionAs
			fields = append(fields, "provisionAs")
		}
		if upd.DeletionThreshold != nil && *upd.DeletionThreshold != cur.DeletionThreshold {
			next.DeletionThreshold = *upd.DeletionThreshold
			fields = append(fields, "deletionThreshold")
		}
		if upd.Products != nil && !slices.Equal(dedupeStrings(*upd.Products), cur.Products) {
			next.Products = dedupeStrings(*upd.Products)
			fields = append(fields, "products")
		}
		if upd.Enabled != nil && *upd.Enabled != cur.Enabled {
			if *upd.Enabled {
				return models.FieldError("enabled", "generate a token to turn provisioning on")
			}
			if err := tx.RevokeSCIMToken(siteID); err != nil {
				return err
			}
			revoked = true
			fields = append(fields, "enabled")
		}
		if len(fields) == 0 {
			out = cur
			return nil
		}
		if err := tx.SaveProvisioning(&next); err != nil {
			return err
		}
		if _, err := audit.Record(tx, audit.ConfigChanged(siteID, caller.AccountID, audit.SectionProvisioning, fields)); err != nil {
			return err
		}
		out, err = tx.FindProvisioning(siteID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if revoked {
		s.tokens.forget(siteID)
	}
	return out, nil
}

// RotateToken makes a new SCIM token for the caller's site and returns it:
// the only time it is ever shown. The previous token stops working when
// this commits (on every replica: they are notified). The first token turns
// provisioning on. A token_rotated audit event is written with it.
func (s *Service) RotateToken(ctx context.Context, caller *models.Caller) (string, error) {
	if caller == nil || caller.Site == nil {
		return "", &models.Error{Code: models.CodeForbidden, Message: "this is for site administrators"}
	}
	siteID := caller.Site.ID
	token, hash := newToken()
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.SetSCIMToken(siteID, hash); err != nil {
			return err
		}
		_, err := audit.Record(tx, models.AuditEvent{SiteID: siteID, ActorAccountID: caller.AccountID,
			Event: models.AuditTokenRotated, Section: audit.SectionProvisioning, Fields: []string{"token"}})
		return err
	})
	if err != nil {
		return "", err
	}
	s.tokens.forget(siteID)
	return token, nil
}

func dedupeStrings(in []string) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
