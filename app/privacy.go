package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"idbridge/app/atlassian"
	"idbridge/app/privacy"
	"idbridge/app/store"
	"idbridge/config"
	"idbridge/models"
)

// newPrivacy builds the privacy features with their metrics (registry nil:
// none, for the CLI).
func newPrivacy(cfg config.Config, st *store.Store, clients *atlassian.Clients, registry *prometheus.Registry, now func() time.Time, log *slog.Logger, patch privacy.DirectoryPatch) *privacy.Service {
	pc := privacy.Config{
		AuditRetention:      cfg.AuditRetention,
		UninstallRetention:  cfg.UninstallRetention,
		PatchDirectoryUsers: patch,
	}
	if cfg.AtlassianAPIURL != nil {
		pc.Reporting = clients.Reporting(cfg.AtlassianAPIURL)
	}
	if registry != nil {
		blocked := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idbridge_privacy_restricted_total",
			Help: "Processing held back because a person's processing is restricted (GDPR Art. 18), by what (sync, sign_in, audit_detail, reporting_refresh).",
		}, []string{"what"})
		reports := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idbridge_personal_data_reports_total",
			Help: "Requests of the Personal Data Reporting cycle, by Atlassian's answer (204, 200, 429, 503, error) and applied outcomes (closed, updated, ignored).",
		}, []string{"outcome"})
		registry.MustRegister(blocked, reports)
		pc.OnBlocked = func(what string) { blocked.WithLabelValues(what).Inc() }
		pc.OnReport = func(outcome string) { reports.WithLabelValues(outcome).Inc() }
	}
	return privacy.New(pc, st, now, log)
}

// PrivacyTool is the privacy features for the command line: the
// database (migrated, key ring checked) and the service, without an HTTP
// server. Close it when done.
type PrivacyTool struct {
	svc *privacy.Service
	st  *store.Store
}

// OpenPrivacyTool opens the database and builds the privacy features.
// transport, when not nil, is the base transport for calls to Atlassian
// (tests point it at fakes).
func OpenPrivacyTool(ctx context.Context, cfg config.Config, log *slog.Logger, transport http.RoundTripper) (*PrivacyTool, error) {
	st, _, err := OpenStore(ctx, cfg, log, time.Now)
	if err != nil {
		return nil, err
	}
	if _, err := st.Migrate(ctx); err != nil {
		_ = st.Close()
		return nil, err
	}
	if err := st.CheckKeyRing(ctx); err != nil {
		_ = st.Close()
		return nil, err
	}
	clients := atlassian.New(atlassian.Options{AppKey: cfg.AppKey, Base: transport})
	return &PrivacyTool{svc: newPrivacy(cfg, st, clients, nil, time.Now, log, nil), st: st}, nil
}

// Close closes the database.
func (p *PrivacyTool) Close() error { return p.st.Close() }

// site finds the site by its client key, installed or not.
func (p *PrivacyTool) site(ctx context.Context, clientKey string) (*models.Site, error) {
	site, err := p.st.View(ctx).FindSiteByClientKey(clientKey)
	if models.IsNotFound(err) {
		return nil, fmt.Errorf("no site has the client key %q", clientKey)
	}
	return site, err
}

// Export writes the export of the site (accountID "") or of one person,
// as the operator.
func (p *PrivacyTool) Export(ctx context.Context, clientKey, accountID string, w io.Writer) (models.ExportSummary, error) {
	site, err := p.site(ctx, clientKey)
	if err != nil {
		return models.ExportSummary{}, err
	}
	return p.svc.Export(ctx, site, "", accountID, w)
}

// Erase erases one person from the site, as the operator.
func (p *PrivacyTool) Erase(ctx context.Context, clientKey, accountID string) (*models.Erasure, error) {
	site, err := p.site(ctx, clientKey)
	if err != nil {
		return nil, err
	}
	return p.svc.Erase(ctx, site, "", accountID)
}

// ValidAccountID reports whether s has the shape of an Atlassian account
// ID, for the command line's flags.
func ValidAccountID(s string) bool { return models.ValidAccountID(s) }

// ReportPersonalData runs one Personal Data Reporting cycle for every
// active site now (each account still at most once per cycle period).
// ran is false when another replica is running it.
func (p *PrivacyTool) ReportPersonalData(ctx context.Context) ([]privacy.ReportSummary, bool, error) {
	return p.svc.ReportAll(ctx, true)
}

// Purge runs the retention purge now.
func (p *PrivacyTool) Purge(ctx context.Context) (privacy.PurgeResult, error) {
	return p.svc.Purge(ctx)
}
