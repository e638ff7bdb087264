// Package app is idbridge's composition root: it opens the store and the
// key ring, builds the services and the HTTP engine, starts and stops the
// background workers, and owns graceful shutdown. It holds no logic of its
// own beyond wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/time/rate"

	"idbridge/app/account"
	"idbridge/app/atlassian"
	"idbridge/app/audit"
	"idbridge/app/connect"
	"idbridge/app/forge"
	"idbridge/app/portal"
	"idbridge/app/privacy"
	"idbridge/app/profile"
	"idbridge/app/provisioning"
	"idbridge/app/secret"
	"idbridge/app/sites"
	"idbridge/app/sso"
	"idbridge/app/store"
	syncworker "idbridge/app/sync"
	"idbridge/config"
	"idbridge/handlers"

	"idbridge/models"
)

// Build facts, set by the linker (-X idbridge/app.Version=…).
var (
	Version  = "dev"
	Revision = "unknown"
)

// Outbound install-key fetches (docs/SECURITY.md): at most this many a
// second, in bursts of this many; cached keys and remembered failures cost
// no fetch.
const (
	installKeyFetchRate  rate.Limit = 2
	installKeyFetchBurst int        = 10
)

// Options are the parts of App that tests and the CLI choose.
type Options struct {
	Log *slog.Logger
	Now func() time.Time
	// DescriptorTemplate is atlassian-connect.json, embedded by main.
	DescriptorTemplate []byte
	// HTTPTransport, when set, is the base transport for every call to
	// Atlassian (install keys, site REST); tests point it at fakes.
	HTTPTransport http.RoundTripper
	// IdPTransport, when set, is the base transport for calls to customer
	// identity providers.
	IdPTransport http.RoundTripper
	// AtlassianLimiter is the per-site request rate to Atlassian; zero
	// fields take atlassian's defaults. Sync tunes the outbox worker.
	// Benchmarks and tests set them.
	AtlassianLimiter atlassian.LimiterOptions
	Sync             syncworker.Config
	// Listener, when set, is where the App serves instead of binding
	// cfg.Addr: the demo binds its loopback address first, to know the
	// base URL before the App is configured.
	Listener net.Listener
	// ConnectJS, when set, is the URL of the all.js the admin page loads
	// in place of Atlassian's: only the demo sets it, to its simulated
	// site's stand-in. It is no configuration: serve always loads
	// Atlassian's.
	ConnectJS string
	// OnStatement, when set, hears every database statement (store.Options):
	// the sync benchmark counts statements per request to Atlassian.
	OnStatement func(ctx context.Context)
	// ConnState, when set, hears every connection's state change
	// (http.Server.ConnState): the shutdown test waits until its half-sent
	// request is active before it starts the shutdown.
	ConnState func(net.Conn, http.ConnState)
}

// App is one running idbridge.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	now      func() time.Time
	ring     *secret.Ring
	store    *store.Store
	registry *prometheus.Registry
	handler  http.Handler
	listener net.Listener
	server   *http.Server

	sites    *sites.Service
	accounts *account.Service
	profiles *profile.Service
	scim     *provisioning.Service
	sso      *sso.Service
	sync     *syncworker.Worker
	privacy  *privacy.Service

	workers      sync.WaitGroup
	stop         context.CancelFunc
	workersReady chan struct{}
}

// NewLogger builds the slog logger that configuration asks for.
func NewLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// OpenRing builds the key ring from configuration: the configured keys, or
// for SQLite alone a development key kept in the data directory.
func OpenRing(cfg config.Config, log *slog.Logger) (*secret.Ring, error) {
	if cfg.EncryptionKeys != "" {
		keys, err := secret.ParseKeys(cfg.EncryptionKeys)
		if err != nil {
			return nil, fmt.Errorf("IDBRIDGE_ENCRYPTION_KEYS: %w", err)
		}
		return secret.NewRing(keys)
	}
	if cfg.Database.Driver != config.DriverSQLite {
		return nil, errors.New("IDBRIDGE_ENCRYPTION_KEYS is required with PostgreSQL")
	}
	key, created, err := secret.LoadOrCreateDevKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	verb := "using"
	if created {
		verb = "generated"
	}
	log.Warn(fmt.Sprintf("%s a development encryption key in %s; set IDBRIDGE_ENCRYPTION_KEYS for production", verb, cfg.DataDir), "key_id", key.ID)
	return secret.NewRing([]secret.Key{key})
}

// OpenStore opens the key ring and the database, without migrating.
func OpenStore(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time) (*store.Store, *secret.Ring, error) {
	return openStore(ctx, cfg, log, now, nil)
}

func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time, onStatement func(context.Context)) (*store.Store, *secret.Ring, error) {
	ring, err := OpenRing(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, store.Options{
		Driver: cfg.Database.Driver,
		DSN:    cfg.Database.DSN,
		Ring:   ring,
		Now:    now,
		Logger: log,

		OnStatement: onStatement,
	})
	if err != nil {
		return nil, nil, err
	}
	return st, ring, nil
}

// Open builds an App: key ring, database (migrated, key ring checked),
// services and HTTP engine, and binds the listen address. Nothing runs
// until Run.
func Open(ctx context.Context, cfg config.Config, opts Options) (*App, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	st, ring, err := openStore(ctx, cfg, log, now, opts.OnStatement)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, now: now, ring: ring, store: st, workersReady: make(chan struct{})}
	if err := a.init(ctx, opts); err != nil {
		_ = st.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) init(ctx context.Context, opts Options) error {
	if _, err := a.store.Migrate(ctx); err != nil {
		return err
	}
	if err := a.store.CheckKeyRing(ctx); err != nil {
		return err
	}
	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(a.store.SQLDB(), a.store.Dialect()),
		buildInfo(),
		newOutboxCollector(a.store, a.now, a.log),
	)
	var descriptor []byte
	if opts.DescriptorTemplate != nil {
		d, err := connect.RenderDescriptor(opts.DescriptorTemplate, a.cfg.AppKey, a.cfg.BaseURL.String())
		if err != nil {
			return err
		}
		descriptor = d
	}
	jwtFailures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_jwt_failures_total",
		Help: "Refused Connect JWTs by reason.",
	}, []string{"reason"})
	a.registry.MustRegister(jwtFailures)

	var keyClient *http.Client // nil: the fetcher's own, with its redirect rules
	if opts.HTTPTransport != nil {
		keyClient = &http.Client{
			Timeout:       connect.KeyFetchTimeout,
			Transport:     opts.HTTPTransport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	keys := connect.NewKeyFetcher(keyClient, 0, 0, a.now)
	// Atlassian signs installs with a handful of keys that change rarely:
	// a few fetches a second is plenty, and bounds what a flood of installs
	// with random kids can make this process ask of the key server.
	keys.Limiter = rate.NewLimiter(installKeyFetchRate, installKeyFetchBurst)
	clients := atlassian.New(atlassian.Options{AppKey: a.cfg.AppKey, Base: opts.HTTPTransport, Now: a.now, Limiter: opts.AtlassianLimiter})
	a.sites = sites.New(sites.Config{
		AppKey:             a.cfg.AppKey,
		BaseURL:            a.cfg.BaseURL,
		TrustedHost:        a.cfg.IsTrustedHost,
		AllowsPlainHTTP:    a.cfg.AllowsPlainHTTP,
		UninstallRetention: a.cfg.UninstallRetention,
	}, a.store, &connect.InstallVerifier{
		Keys:              keys,
		AppBaseURL:        a.cfg.BaseURL.String(),
		KeyServerOverride: a.cfg.InstallKeysURL,
		Now:               a.now,
	}, clients, a.now, a.log)
	a.sites.OnAuthFailure = func(reason string) { jwtFailures.WithLabelValues(reason).Inc() }
	a.enableForge(opts)
	serviceAccounts := atlassian.NewServiceAccounts(clients, a.cfg.AtlassianAPIURL, a.cfg.AtlassianAuthURL)
	a.accounts = account.New(a.store, serviceAccounts, a.now, a.log)
	a.profiles = profile.New(a.store, clients.Marketplace(atlassian.MarketplaceConfig{
		URL: a.cfg.MarketplaceURL, VendorID: a.cfg.MarketplaceVendorID, DeveloperID: a.cfg.MarketplaceDeveloperID,
		APIURL: a.cfg.AtlassianAPIURL, User: a.cfg.MarketplaceUser, Token: a.cfg.MarketplaceToken, AppKey: a.cfg.AppKey,
	}), a.now, a.log)
	a.scim = provisioning.NewService(provisioning.ServiceConfig{BaseURL: a.cfg.BaseURL}, a.store, a.now, a.log)
	a.privacy = newPrivacy(a.cfg, a.store, clients, a.registry, a.now, a.log, a.scim.PatchUsers)
	// Processing restrictions (GDPR Art. 18): one guard, consulted by the
	// sign-in, the sync, the audit log (store) and the reporting cycle.
	a.sso = sso.New(sso.Config{
		BaseURL:           a.cfg.BaseURL,
		AllowLoopbackIdPs: plainLoopback(a.cfg.BaseURL),
		IdPTransport:      opts.IdPTransport,
		Restricted:        a.privacy.Restricted,
	}, a.store, serviceAccounts, a.now, a.log)

	syncResults := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_sync_results_total",
		Help: "Directory changes the sync finished with, by outcome (applied, failed, not_applicable, held), or put back (retry, waiting).",
	}, []string{"outcome"})
	syncRequests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_sync_requests_total",
		Help: "Calls the sync made to Atlassian, by Atlassian's answer (HTTP status, or no_answer).",
	}, []string{"answer"})
	a.registry.MustRegister(syncResults, syncRequests)
	syncCfg := opts.Sync
	syncCfg.OnResult = func(outcome string) { syncResults.WithLabelValues(outcome).Inc() }
	syncCfg.OnRequest = func(answer string) { syncRequests.WithLabelValues(answer).Inc() }
	syncCfg.Restricted = a.privacy.RestrictedUser
	a.sync = syncworker.New(syncCfg, a.store, serviceAccounts, a.now, a.log)
	a.store.OnOutbox(a.sync.Wake)
	a.sites.OnSiteChanged = a.sync.SiteChanged

	a.handler = handlers.New(handlers.Deps{
		Connect:    a.sites,
		Descriptor: descriptor,
		Log:        a.log,
		Registry:   a.registry,
		Ready:      readiness{a.store},
		BaseURL:    a.cfg.BaseURL,
		Version:    Version,
		Now:        a.now,

		ServiceAccounts: a.accounts,
		Profiles:        a.profiles,
		PrivacyContact:  a.cfg.PrivacyContact,
		SCIM:            a.scim,
		Provisioning:    a.scim,
		SSO:             a.sso,
		Audit:           audit.NewLog(a.store, a.now).WithNames(serviceAccounts),
		Sync:            a.sync,
		Portal:          portal.New(a.store, serviceAccounts, a.now, a.log),
		Privacy:         a.privacy,
		Forge:           a.sites,
		SystemTokens:    a.sites,
		ConnectJS:       opts.ConnectJS,
	})
	ln := opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w", a.cfg.Addr, err)
		}
	}
	a.listener = ln
	a.server = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		ConnState:         opts.ConnState,
	}
	return nil
}

// enableForge makes the sites service accept Forge invocation tokens for
// IDBRIDGE_FORGE_APP_ID, with keys from IDBRIDGE_FORGE_JWKS_URL, and counts
// refusals and key-set fetches. Without an app ID every Forge token is
// refused (reason forge_not_configured).
func (a *App) enableForge(opts Options) {
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_forge_token_failures_total",
		Help: "Refused Forge invocation tokens by reason.",
	}, []string{"reason"})
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_forge_jwks_fetches_total",
		Help: "Fetches of Forge's signing keys (IDBRIDGE_FORGE_JWKS_URL) by outcome (ok, error).",
	}, []string{"outcome"})
	accepted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_forge_tokens_accepted_total",
		Help: "Accepted Forge invocation tokens by how: cached (seen and verified before, within its life) or verified (an RSA verification).",
	}, []string{"how"})
	a.registry.MustRegister(failures, fetches, accepted)
	jwksURL := forge.DefaultJWKSURL
	if a.cfg.ForgeJWKSURL != nil {
		jwksURL = a.cfg.ForgeJWKSURL.String()
	}
	var client *http.Client // nil: the key set's own, with its redirect rule
	if opts.HTTPTransport != nil {
		client = &http.Client{
			Timeout:       forge.JWKSFetchTimeout,
			Transport:     opts.HTTPTransport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	keys := forge.NewJWKS(jwksURL, client, a.now)
	keys.OnFetch = func(outcome string) { fetches.WithLabelValues(outcome).Inc() }
	a.sites.EnableForge(&forge.Verifier{AppID: a.cfg.ForgeAppID, Environment: a.cfg.ForgeEnvironment, Keys: keys, Now: a.now,
		OnVerified: func(how string) { accepted.WithLabelValues(how).Inc() }},
		func(reason string) { failures.WithLabelValues(reason).Inc() })
}

func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "idbridge_build_info",
		Help: "Build facts of the running binary; always 1.",
	}, []string{"version", "revision"})
	g.WithLabelValues(Version, Revision).Set(1)
	return g
}

// Addr is the bound listen address (useful when configured as ":0").
func (a *App) Addr() net.Addr { return a.listener.Addr() }

// Handler is the HTTP engine, for tests that drive it without a socket.
func (a *App) Handler() http.Handler { return a.handler }

// WorkersReady is closed once Run's background workers are in effect: on
// PostgreSQL, once the site caches listen for other replicas' changes.
func (a *App) WorkersReady() <-chan struct{} { return a.workersReady }

// Store is the database handle, for tests and CLI subcommands.
func (a *App) Store() *store.Store { return a.store }

// Run serves until ctx is done, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish (up to the shutdown timeout),
// and stops the workers. It returns nil after a clean shutdown.
func (a *App) Run(ctx context.Context) error {
	workCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = stop
	a.startWorkers(workCtx)

	a.log.Info("listening", "addr", a.listener.Addr().String(), "base_url", a.cfg.BaseURL.String(), "database", a.store.Dialect(), "version", Version)
	errc := make(chan error, 1)
	go func() { errc <- a.server.Serve(a.listener) }()

	select {
	case err := <-errc:
		stop()
		a.workers.Wait()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "timeout", a.shutdownTimeout().String())
	shutCtx, cancel := context.WithTimeout(context.Background(), a.shutdownTimeout())
	defer cancel()
	err := a.server.Shutdown(shutCtx)
	stop()
	a.workers.Wait()
	<-errc
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	a.log.Info("stopped")
	return nil
}

func (a *App) shutdownTimeout() time.Duration {
	if a.cfg.ShutdownTimeout > 0 {
		return a.cfg.ShutdownTimeout
	}
	return config.DefaultShutdownTimeout
}

// startWorkers starts the background workers; each stops when ctx is done
// and is waited for by Run.
func (a *App) startWorkers(ctx context.Context) {
	a.goWorker(ctx, "site cache invalidation", func(ctx context.Context) error { return a.sites.Run(ctx, a.workersReady) })
	a.goWorker(ctx, "marketplace licence sync", a.profiles.Run)
	a.goWorker(ctx, "scim token cache invalidation", a.scim.Run)
	a.goWorker(ctx, "sso state purge", a.sso.Run)
	a.goWorker(ctx, "outbox sync", a.sync.Run)
	a.goWorker(ctx, "privacy: reporting cycle and retention purge", a.privacy.Run)
}

// goWorker runs one background worker; Run and Close wait for it.
func (a *App) goWorker(ctx context.Context, name string, fn func(context.Context) error) {
	a.workers.Add(1)
	go func() {
		defer a.workers.Done()
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("worker stopped", "worker", name, "error", err.Error())
		}
	}()
}

// Close releases the listener (if Run never ran) and the database.
func (a *App) Close() error {
	if a.stop != nil {
		a.stop()
	}
	a.workers.Wait()
	if a.listener != nil {
		_ = a.listener.Close()
	}
	return a.store.Close()
}

// plainLoopback reports whether the base URL is plain http on a loopback
// host (tests, the demo): only then may identity providers live on
// loopback or private addresses.
func plainLoopback(u *url.URL) bool {
	if u == nil || u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// readiness is /readyz: the database answers and the schema is current.
type readiness struct{ st *store.Store }

func (r readiness) Ready(ctx context.Context) error {
	// The message of the unavailable error is the public reason; the cause
	// is logged only.
	if err := r.st.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", models.Errorf(models.CodeUnavailable, "database unreachable"), err)
	}
	n, err := r.st.PendingMigrations(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", models.Errorf(models.CodeUnavailable, "database unreachable"), err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %d pending", models.Errorf(models.CodeUnavailable, "migrations pending"), n)
	}
	return nil
}
